"""Write the conformance artifacts: one small file per tensor kind x encoding x compression,
each beside a JSON file with its expected digests (docs/FORMAT.md section 9). The format-v2
files stay as they were written (the v2 reference); the v3 additions (signed masks, the normal
init rules, layouts, the rANS lane minimum) are version-3 files.

Run ``python tests/conformance/make_conformance.py`` to regenerate them; the files are what an
independent reader checks itself against. ``tests/test_conformance.py`` loads every file with
the format core and compares the digests, and rebuilds every file with this script to check
that the header and the decoded section bytes are unchanged.

Each JSON file holds: ``file_sha256`` (of the .tpk bytes), ``format_version``, ``rng``,
``weights_sha256``, ``model_sha256``, ``tensors`` (name -> ``tensor_sha256`` of its effective
weight, in header order) and ``describes`` (what the file exercises).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from ticketpack.format import codecs
from ticketpack.format.compression import compress
from ticketpack.format.constants import INIT_RULES, INIT_RULES_BY_VERSION, PG_RNG_PREFIX, RNG_ID
from ticketpack.format.container import append_sections, assemble, model_digest, ticket_header
from ticketpack.format.digest import combine_digests
from ticketpack.format.maskspec import MaskSpec
from ticketpack.format.sections import encode_tensor, mask_symbols
from ticketpack.format.tensors import (Int8Tensor, MaskedTensor, PlainTensor, TernaryTensor, Ticket,
                                       effective_weights)

HERE = Path(__file__).resolve().parent
CONFIG = {"note": "conformance file", "dims": [3, 1.5, None, True]}
EVAL_SP = {"seq_len": 64, "tokenizer": {"kind": "sentencepiece", "sha256": "ab" * 32, "vocab_size": 1024}}


def _gen(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def binary(shape=(6, 20), p=0.3, seed=1) -> np.ndarray:
    return (_gen(seed).random(shape) < p).astype(np.uint8)


def levels(K: int, shape=(5, 12), seed=2) -> np.ndarray:
    return _gen(seed).integers(0, K, size=shape, dtype=np.uint8)


def nm_mask(n: int, m: int, shape=(4, 16), seed=3) -> np.ndarray:
    groups = np.zeros((int(np.prod(shape)) // m, m), np.uint8)
    groups[:, :n] = 1
    return _gen(seed).permuted(groups, axis=1).reshape(shape)


def signed_levels(K: int, shape=(6, 10), seed=16) -> np.ndarray:
    return _gen(seed).integers(-(K - 1), K, size=shape, dtype=np.int8)


def masked(name, shape, init, spec, lv, scale=None, layout="out_in", init_std=None) -> MaskedTensor:
    return MaskedTensor(name, shape, init, MaskSpec.parse(spec), lv, scale, layout, init_std)


def f16(values) -> np.ndarray:
    return np.asarray(values, np.float16)


# name -> (ticket factory, {role: (enc, codec)} forced per tensor name, or codec for all,
# description, format version)
Case = tuple[Callable[[], Ticket], dict[str, dict[str, tuple[str, str]]], str, int]


def _ticket(tensors, rng: str = RNG_ID, seed: int = 20261130, eval_context=None) -> Ticket:
    return Ticket(seed=seed, config=dict(CONFIG), tensors=tensors, rng=rng, provenance={},
                  eval=eval_context)


def _one(name: str, tensor_fn, enc: str, codec: str, role: str = "mask", extra: str = "") -> tuple[str, Case]:
    return name, (lambda: _ticket([tensor_fn()]), {"w": {role: (enc, codec)}}, extra)


def cases() -> dict[str, Case]:
    out: dict[str, Case] = {}

    def add(name, make, forced, describes, version=2):
        out[name] = (make, forced, describes, version)

    for codec in ("none", "zstd", "zlib"):
        add(f"binary-bits-{codec}", lambda: _ticket([masked("w", (6, 20), "xavier_uniform", "binary", binary())]),
            {"w": {"mask": ("bits", codec)}}, f"binary mask, bits, {codec}")
        add(f"multibit4-planes-{codec}", lambda: _ticket([masked("w", (5, 12), "he_uniform", "multibit:4", levels(4))]),
            {"w": {"mask": ("planes", codec)}}, f"4-level mask, planes, {codec}")
        add(f"nm24-bits-{codec}", lambda: _ticket([masked("w", (4, 16), "xavier_uniform", "nm:2:4", nm_mask(2, 4))]),
            {"w": {"mask": ("bits", codec)}}, f"2:4 mask, bits, {codec}")
        add(f"ternary-trits5-{codec}", lambda: _ticket([TernaryTensor("w", levels(3, (7, 9), 4).astype(np.int8) - 1,
                                                                      f16(0.125))]),
            {"w": {"trits": ("trits5", codec), "gamma": ("f16", codec)}}, f"ternary, trits5, per-tensor gamma, {codec}")
        add(f"plain-f16-{codec}", lambda: _ticket([PlainTensor("w", f16(np.linspace(-3, 3, 24).reshape(2, 3, 4)))]),
            {"w": {"data": ("f16", codec)}}, f"plain rank-3 tensor, f16, {codec}")
        add(f"int8-{codec}", lambda: _ticket([Int8Tensor("w", _gen(5).integers(-128, 128, (6, 10), dtype=np.int8),
                                                          f16(np.linspace(0.01, 0.06, 6)))]),
            {"w": {"q": ("i8", codec), "scale": ("f16", codec)}}, f"int8 with a scale per row, {codec}")
    add("binary-rans0", lambda: _ticket([masked("w", (16, 64), "xavier_uniform", "binary", binary((16, 64), 0.1))]),
        {"w": {"mask": ("rans0", "none")}}, "binary mask, rans0")
    add("binary-ransrow", lambda: _ticket([masked("w", (16, 64), "xavier_uniform", "binary",
                                                  (_gen(6).random((16, 64)) < _gen(7).choice([0.02, 0.5, 0.0, 1.0], (16, 1)))
                                                  .astype(np.uint8))]),
        {"w": {"mask": ("ransrow", "none")}}, "binary mask with all-zero, all-one and mixed rows, ransrow")
    add("binary-rank1-rans0", lambda: _ticket([masked("w", (37,), "he_uniform", "binary", binary((37,), 0.6))]),
        {"w": {"mask": ("rans0", "none")}}, "rank-1 masked tensor (fan_in = 1), rans0")
    add("multibit4-rans0", lambda: _ticket([masked("w", (8, 40), "he_uniform", "multibit:4", levels(4, (8, 40)))]),
        {"w": {"mask": ("rans0", "none")}}, "4-level mask, rans0")
    add("multibit3-planes-none", lambda: _ticket([masked("w", (3, 11), "xavier_uniform", "multibit:3", levels(3, (3, 11)))]),
        {"w": {"mask": ("planes", "none")}}, "3-level mask (2 planes, levels below 3), planes")
    add("multibit256-rans0", lambda: _ticket([masked("w", (4, 64), "he_uniform", "multibit:256", levels(256, (4, 64)))]),
        {"w": {"mask": ("rans0", "none")}}, "256-level mask, rans0")
    add("nm24-ransnm", lambda: _ticket([masked("w", (8, 32), "xavier_uniform", "nm:2:4", nm_mask(2, 4, (8, 32)))]),
        {"w": {"mask": ("ransnm", "none")}}, "2:4 mask, ransnm")
    add("nm48-ransnm", lambda: _ticket([masked("w", (2, 3, 16), "he_uniform", "nm:4:8", nm_mask(4, 8, (2, 3, 16)))]),
        {"w": {"mask": ("ransnm", "none")}}, "4:8 mask on a rank-3 tensor, ransnm")
    add("nm24-rans0", lambda: _ticket([masked("w", (4, 16), "xavier_uniform", "nm:2:4", nm_mask(2, 4))]),
        {"w": {"mask": ("rans0", "none")}}, "2:4 mask, rans0")
    add("nm24-ransrow", lambda: _ticket([masked("w", (4, 16), "xavier_uniform", "nm:2:4", nm_mask(2, 4))]),
        {"w": {"mask": ("ransrow", "none")}}, "2:4 mask, ransrow")
    add("ternary-rans0", lambda: _ticket([TernaryTensor("w", levels(3, (10, 30), 8).astype(np.int8) - 1,
                                                        f16(np.linspace(0.05, 0.5, 10)))]),
        {"w": {"trits": ("rans0", "none")}}, "ternary, rans0, per-row gamma")
    add("ternary-shard-gamma", lambda: _ticket([TernaryTensor("w", levels(3, (6, 5), 9).astype(np.int8) - 1,
                                                              f16([0.25, -0.5, 2.0]))]),
        {"w": {"trits": ("trits5", "none")}}, "ternary, gamma per shard of 2 rows (3 values)")
    add("ternary-row-gamma-rank1", lambda: _ticket([TernaryTensor("w", np.array([-1, 0, 1, 1, 0], np.int8),
                                                                  f16([1, 2, 3, 4, -5]))]),
        {"w": {"trits": ("trits5", "none")}}, "ternary rank 1, gamma per row, 5 trits in one byte")
    for mode, scale in (("tensor", f16(0.75)), ("row", f16(np.linspace(0.5, 2, 6))),
                        ("row-f32", np.linspace(0.1, 0.6, 6).astype(np.float32))):
        add(f"scale-{mode}", lambda scale=scale: _ticket([masked("w", (6, 20), "he_uniform", "binary", binary(), scale)]),
            {"w": {"mask": ("bits", "none")}}, f"binary mask with a {mode} scale")
    add("masknone-rowscale", lambda: _ticket([masked("w", (6, 8), "he_uniform", "none", None, f16(np.linspace(0.5, 2, 6)))]),
        {}, "mask none (no mask section), per-row scale: a seeded backbone")
    add("masknone-noscale", lambda: _ticket([masked("w", (3, 4, 5), "xavier_uniform", "none", None, None)]),
        {}, "mask none and scale none: no section at all, effective = frozen")
    for rule in INIT_RULES:  # one case per row of the init-rule table
        version = 2 if rule in INIT_RULES_BY_VERSION[2] else 3
        std = 0.05 if INIT_RULES[rule].fan == "init_std" else None
        add(f"init-{rule}", lambda rule=rule, std=std: _ticket([masked("blocks.0.attn.q.weight", (9, 4, 3), rule, "binary",
                                                                        np.ones((9, 4, 3), np.uint8), init_std=std)]),
            {"blocks.0.attn.q.weight": {"mask": ("bits", "none")}},
            f"all-ones mask exposing {rule} frozen values" + (f" (init_std {std})" if std else ""), version)
    add("plain-f32-rank0", lambda: _ticket([PlainTensor("w", np.array(-1.25e-3, np.float32))]),
        {"w": {"data": ("f32", "none")}}, "plain rank-0 tensor, f32")
    add("plain-empty", lambda: _ticket([PlainTensor("w", np.zeros((0, 3), np.float16))]),
        {"w": {"data": ("f16", "none")}}, "plain tensor with a zero dimension (0 values, an empty section)")
    add("unicode-name", lambda: _ticket([masked("couche.é/ü∑", (2, 8), "he_uniform", "binary", binary((2, 8)))]),
        {"couche.é/ü∑": {"mask": ("bits", "none")}}, "a name whose UTF-8 length differs from its characters")
    add("model-eval-sentencepiece", lambda: _ticket([PlainTensor("w", f16([1, 2]))], eval_context=EVAL_SP),
        {}, "an eval context (covered by model_sha256)")
    add("several-tensors", lambda: _ticket([
        masked("tok_emb.weight", (16, 8), "xavier_uniform", "binary", binary((16, 8), 0.5, 10), f16(0.5)),
        masked("blocks.0.mlp.fc.weight", (24, 8), "signed_constant_he", "multibit:3", levels(3, (24, 8), 11)),
        Int8Tensor("blocks.0.mlp.fc.weight.adapter_a", _gen(12).integers(-100, 100, (2, 8), dtype=np.int8),
                   f16([0.01, 0.02])),
        PlainTensor("blocks.0.attn_scale", f16(np.ones(8))),
        TernaryTensor("lm_head.weight", levels(3, (16, 8), 13).astype(np.int8) - 1, f16(np.full(4, 0.1))),
    ], eval_context={"seq_len": 128, "tokenizer": {"kind": "bytes"}}), {}, "several kinds in one file, auto encodings")
    add("rng-torch-mt19937", lambda: _ticket([
        masked("tok_emb.weight", (12, 4), "xavier_uniform", "binary", binary((12, 4), 0.5, 14)),
        masked("blocks.0.attn.q.weight", (4, 4), "he_uniform", "binary", binary((4, 4), 0.5, 15)),
        PlainTensor("blocks.0.attn.q.scale", np.array([0.5, 1, 1.5, 2], np.float32)),
    ], rng=PG_RNG_PREFIX + "2.13.0", seed=1337), {}, "the imported torch MT19937 stream (regenerating needs torch)")
    _add_v3(add)
    return out


def _add_v3(add: Callable) -> None:
    """The format-v3 additions: signed masks, layouts, the rANS lane minimum (the normal init
    rules are in the init-rule loop)."""
    for K in (2, 4):
        for enc, codec in (("planes", "none"), ("rans0", "none")):
            add(f"signed{K}-{enc}", lambda K=K: _ticket([masked("w", (6, 10), "he_uniform", f"signed:{K}",
                                                                signed_levels(K), f16(0.5))]),
                {"w": {"mask": (enc, codec)}}, f"signed:{K} mask (levels -{K - 1}..{K - 1}), {enc}", 3)
    add("signed4-planes-zstd-rowscale", lambda: _ticket([masked("w", (5, 3, 4), "xavier_normal", "signed:4",
                                                                signed_levels(4, (5, 3, 4), 17),
                                                                f16(np.linspace(0.25, 2, 5)))]),
        {"w": {"mask": ("planes", "zstd")}}, "signed:4 mask, planes, zstd, per-row scale, xavier_normal", 3)
    for name, shape, init in (("layout-in_out", (6, 10), "xavier_uniform"),
                              ("layout-conv3", (6, 2, 5), "he_uniform"),
                              ("layout-conv4", (8, 4, 3, 3), "xavier_normal"),
                              ("layout-conv5", (2, 3, 2, 2, 2), "signed_constant_he")):
        layout = name.split("-")[1].rstrip("345")
        add(name, lambda shape=shape, init=init, layout=layout: _ticket([masked(
                "w", shape, init, "binary", binary(shape, 0.6, 18), layout=layout)]),
            {"w": {"mask": ("bits", "none")}}, f"layout {layout} on rank {len(shape)} ({init})", 3)
    add("lanes-rans0-lmin8", lambda: _ticket([masked("w", (256, 512), "he_uniform", "binary",
                                                     binary((256, 512), 0.001, 19))]),
        {"w": {"mask": ("rans0", "none")}},
        "131072-element sparse binary mask, rans0 (B = 4): its 32768 symbols need Lmin = 8 lanes", 3)


def build(make: Callable[[], Ticket], forced: dict[str, dict[str, tuple[str, str]]],
          version: int = 2) -> bytes:
    """Format-``version`` artifact bytes of the ticket, with the forced (encoding, compression)
    per tensor and role (other sections: the writer's auto choice)."""
    ticket = make()
    payload, entries = bytearray(), []
    for tensor in ticket.tensors:
        entry, parts = encode_tensor(tensor, "auto", None)
        entry["sections"] = append_sections(payload, [_forced(tensor, part, forced) for part in parts])
        entries.append(entry)
    header = ticket_header(ticket, entries, {"made_by": "tests/conformance/make_conformance.py"})
    return assemble(header, bytes(payload), "zstd", version)


def _forced(tensor, part: tuple, forced: dict[str, dict[str, tuple[str, str]]]) -> tuple:
    """``part`` re-encoded with the (encoding, compression) forced for its tensor and role."""
    role, enc, codec, stored, raw = part
    if role not in forced.get(tensor.name, {}):
        return part
    enc, codec = forced[tensor.name][role]
    raw_bytes = _raw(tensor, role, enc)
    return role, enc, codec, compress(raw_bytes, codec), len(raw_bytes)


def _raw(tensor, role: str, enc: str) -> bytes:
    """The encoded (uncompressed) bytes of one section under encoding ``enc``."""
    if enc in ("f16", "f32"):
        values = {"scale": getattr(tensor, "scale", None), "gamma": getattr(tensor, "gamma", None),
                  "data": getattr(tensor, "data", None)}[role]
        return np.ascontiguousarray(values, {"f16": "<f2", "f32": "<f4"}[enc]).tobytes()
    if enc == "i8":
        return np.ascontiguousarray(tensor.q, np.int8).tobytes()
    if isinstance(tensor, MaskedTensor):
        spec = tensor.mask
        n, m = (spec.n, spec.m) if spec.kind == "nm" else (0, 0)
        return codecs.encode(enc, mask_symbols(tensor.levels, spec).reshape(-1), K=spec.alphabet,
                             shape=tensor.shape, n=n, m=m)
    trits = (tensor.trits.astype(np.int16) + 1).astype(np.uint8).reshape(-1)
    return codecs.encode(enc, trits, K=3, shape=tensor.shape)


def expected(data: bytes, make: Callable[[], Ticket], describes: str, version: int) -> dict:
    ticket = make()
    weights, digests = effective_weights(ticket, digests=True)
    weights_hex = combine_digests(digests)
    return {"describes": describes, "file_sha256": hashlib.sha256(data).hexdigest(), "format_version": version,
            "rng": ticket.rng, "weights_sha256": weights_hex,
            "model_sha256": model_digest(weights_hex, ticket.config, ticket.eval),
            "tensors": {t.name: d.hex() for t, d in zip(ticket.tensors, digests)}}


def main(out: Path = HERE, keep: bool = True) -> int:
    """Write every case's files; with ``keep`` an existing file whose content the generator
    rebuilds unchanged is left as it is (its compressed bytes may come from another zstd)."""
    import ticketpack.ticket  # noqa: F401 - registers the torch MT19937 stream for that one case

    written = 0
    for name, (make, forced, describes, version) in cases().items():
        if keep and (out / f"{name}.tpk").exists() and (out / f"{name}.json").exists():
            continue
        data = build(make, forced, version)
        (out / f"{name}.tpk").write_bytes(data)
        (out / f"{name}.json").write_text(json.dumps(expected(data, make, describes, version), indent=1,
                                                     ensure_ascii=False) + "\n", encoding="utf-8")
        written += 1
    print(f"wrote {written} of {len(cases())} conformance files to {out} (existing files kept; "
          f"--all rewrites them)")
    return 0


if __name__ == "__main__":
    sys.exit(main(keep="--all" not in sys.argv[1:]))
