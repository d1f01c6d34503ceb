"""Write the negative conformance files: one small artifact per MUST rule of docs/FORMAT.md
section 7.1 (several for some), each breaking that rule and no other.

``python tests/conformance/negative/make_negative.py`` writes ``<id>-<case>.tpk`` beside
``<id>-<case>.json`` (``{"rule": id, "reason": ...}``). Each file starts as a valid small
artifact (every tensor kind, every section codec); one edit breaks the rule, then the file is
re-sealed: section offsets, lengths and CRC-32s, both digests (recomputed from the effective
weights the edit implies) and the file CRC, so a reader that skips the rule would load it.
Every conforming reader (ticketpack's and the standalone loader) refuses all of them
(tests/test_negative_conformance.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import zstandard

from ticketpack.format.compression import compress, decompress
from ticketpack.format.constants import MAGIC, MODEL_DIGEST_TAG
from ticketpack.format.digest import canonical_bytes, record_prefix
from ticketpack.format.maskspec import MaskSpec
from ticketpack.format.philox import frozen_weight
from ticketpack.format.sections import encode_tensor
from ticketpack.format.tensors import Int8Tensor, MaskedTensor, PlainTensor, TernaryTensor

HERE = Path(__file__).resolve().parent
ONE = 1 << 16
SEED = 20261207


# ---------------------------------------------------------------- the file under edit

@dataclass
class Section:
    role: str
    enc: str
    codec: str
    raw: bytes
    stored: bytes | None = None  # stored bytes given as they are (else compress(raw, codec))
    fields: dict = field(default_factory=dict)  # descriptor values set after sealing


@dataclass
class Tensor:
    entry: dict  # the header entry without "sections"
    sections: list[Section]
    weight: np.ndarray  # effective weight (float32), what the digests cover


@dataclass
class File:
    version: int
    tensors: list[Tensor]
    config: dict = field(default_factory=lambda: {"note": "negative conformance file"})
    eval: dict | None = field(default_factory=lambda: {"seq_len": 16, "tokenizer": {"kind": "bytes"}})
    hcodec: int = 2
    flags: int = 0
    edit_header: Callable[[dict], None] | None = None  # after the digests are set
    text: Callable[[str], str] | None = None  # edits the header's JSON text
    post: Callable[[bytes], bytes] | None = None  # edits the sealed bytes (then no CRC fix)

    def tensor(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t.entry["name"] == name)


def digests(f: File) -> dict:
    records = [record_prefix(t.entry["name"], tuple(t.entry["shape"])) + np.ascontiguousarray(t.weight, "<f4").tobytes()
               for t in f.tensors]
    if f.version == 1:
        weights = hashlib.sha256(b"".join(records))
    else:
        weights = hashlib.sha256(b"".join(hashlib.sha256(r).digest() for r in records))
    model = hashlib.sha256(MODEL_DIGEST_TAG + weights.digest() + canonical_bytes(f.config) + canonical_bytes(f.eval))
    out = {"weights_sha256": weights.hexdigest()}
    return out if f.version == 1 else {**out, "model_sha256": model.hexdigest()}


def seal(f: File) -> bytes:
    payload, entries = bytearray(), []
    for t in f.tensors:
        descs = []
        for s in t.sections:
            stored = s.stored if s.stored is not None else compress(s.raw, s.codec)
            descs.append({"role": s.role, "enc": s.enc, "codec": s.codec, "offset": len(payload),
                          "length": len(stored), "raw": len(s.raw), "crc": zlib.crc32(stored), **s.fields})
            payload += stored
        entries.append({**t.entry, "sections": descs})
    header = {"seed": SEED, "rng": "philox4x32-10/v1", "config": f.config, **digests(f),
              "provenance": {"made_by": "tests/conformance/negative/make_negative.py"},
              **({"eval": f.eval} if f.eval is not None else {}), "tensors": entries}
    if f.edit_header:
        f.edit_header(header)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False)
    raw = (f.text(text) if f.text else text).encode("utf-8", "surrogatepass")
    stored = {0: raw, 1: zlib.compress(raw, 9), 2: zstandard.ZstdCompressor(level=19).compress(raw)}[f.hcodec]
    body = struct.pack("<8sHBBIIQ", MAGIC, f.version, f.hcodec, f.flags, len(stored), len(raw), len(payload))
    body += stored + payload
    data = body + struct.pack("<I", zlib.crc32(body))
    return f.post(data) if f.post else data


def reseal_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


# ---------------------------------------------------------------- the valid base files

def _gen(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _from_library(tensor, forced: dict[str, tuple[str, str]]) -> Tensor:
    """One tensor encoded by the format core, with (enc, codec) forced per role."""
    entry, parts = encode_tensor(tensor, "none", None)
    sections = []
    for role, enc, codec, stored, raw_len in parts:
        raw = decompress(stored, codec, raw_len)
        if role in forced and forced[role][0] != enc:
            raw = _symbols_raw(tensor, forced[role][0])
            enc = forced[role][0]
        sections.append(Section(role, enc, forced.get(role, (enc, codec))[1], raw))
    return Tensor(entry, sections, _effective(tensor))


def _symbols_raw(tensor, enc: str) -> bytes:
    from ticketpack.format import codecs

    if isinstance(tensor, TernaryTensor):
        return codecs.encode(enc, (tensor.trits + 1).astype(np.uint8), K=3, shape=tensor.shape)
    spec = tensor.mask
    n, m = (spec.n, spec.m) if spec.kind == "nm" else (0, 0)
    return codecs.encode(enc, tensor.levels, K=spec.levels, shape=tensor.shape, n=n, m=m)


def _effective(t) -> np.ndarray:
    if isinstance(t, PlainTensor):
        return t.data.astype(np.float32)
    if isinstance(t, Int8Tensor):
        return t.q.astype(np.float32) * t.scale.astype(np.float32)[:, None]
    if isinstance(t, TernaryTensor):
        g = t.gamma.astype(np.float32).reshape(-1)
        return np.repeat(g, t.shape[0] // g.size)[:, None] * t.trits.astype(np.float32)
    w = frozen_weight(SEED, t.name, t.shape, t.init)
    if t.levels is not None:
        w = w * t.levels.astype(np.float32)
    if t.scale is not None:
        w = w * t.scale.astype(np.float32).reshape((-1,) + (1,) * (len(t.shape) - 1))
    return w


def nm_levels(shape, n, m, seed) -> np.ndarray:
    groups = np.zeros((math.prod(shape) // m, m), np.uint8)
    groups[:, :n] = 1
    return _gen(seed).permuted(groups, axis=1).reshape(shape)


def base(version: int = 2) -> File:
    """Every kind, the fixed-width and rANS encodings, all three section codecs."""
    g = _gen(1)
    b = MaskSpec.parse("binary")
    tensors = [
        _from_library(MaskedTensor("w", (7, 13), "he_uniform", b, (g.random((7, 13)) < 0.3).astype(np.uint8),
                                   np.linspace(0.5, 2, 7).astype(np.float16)),
                      {"mask": ("rans0" if version > 1 else "bits", "none"), "scale": ("f16", "zstd")}),
        _from_library(MaskedTensor("b", (3, 5), "xavier_uniform", b, (g.random((3, 5)) < 0.5).astype(np.uint8), None),
                      {"mask": ("bits", "none")}),
        _from_library(MaskedTensor("n", (4, 8), "xavier_uniform", MaskSpec.parse("nm:2:4"), nm_levels((4, 8), 2, 4, 2), None),
                      {"mask": ("bits", "zlib")}),
        _from_library(MaskedTensor("m", (2, 6), "signed_constant_he", MaskSpec.parse("multibit:3"),
                                   g.integers(0, 3, (2, 6)).astype(np.uint8), None), {"mask": ("planes", "none")}),
        _from_library(TernaryTensor("t", (g.integers(0, 3, (3, 7)) - 1).astype(np.int8), np.array(0.25, np.float16)),
                      {"trits": ("trits5", "none"), "gamma": ("f16", "none")}),
        _from_library(PlainTensor("p", np.array([1.0, -2.5, 3.25], np.float16)), {"data": ("f16", "zlib")}),
    ]
    if version >= 2:
        tensors += [
            _from_library(MaskedTensor("r", (4, 8), "he_uniform", b, np.repeat([[0], [1], [1], [0]], 8, 1).astype(np.uint8),
                                       None), {"mask": ("ransrow", "none")}),
            _from_library(MaskedTensor("s", (2, 8), "he_uniform", MaskSpec.parse("nm:2:4"), nm_levels((2, 8), 2, 4, 3), None),
                          {"mask": ("ransnm", "none")}),
            _from_library(Int8Tensor("q", g.integers(-127, 128, (2, 4)).astype(np.int8), np.array([0.5, 0.25], np.float16)),
                          {"q": ("i8", "none"), "scale": ("f16", "none")}),
        ]
    return File(version, tensors)


# ---------------------------------------------------------------- rANS, written from FORMAT.md 5.2

def product_model(counts: list[int], B: int) -> list[int]:
    n, P = sum(counts), len(counts)
    u = [(k << 31) // n for k in counts]
    a = []
    for s in range(P ** B):
        v = 1 << 31
        for j in range(B):
            v = v * u[(s // P ** j) % P] >> 31
        a.append(v)
    f = [max(1, (v << 16) // sum(a)) for v in a]
    f[f.index(max(f))] += ONE - sum(f)
    return f


def stream(symbols: list[int], f: list[int], e: int, start: int = ONE) -> bytes:
    c = [sum(f[:s]) for s in range(len(f))]
    L, words = 1 << e, []
    x = [start] * L
    for i in reversed(range(len(symbols))):
        j, s = i % L, symbols[i]
        if x[j] >= f[s] << 16:
            words.append(x[j] & 0xFFFF)
            x[j] >>= 16
        x[j] = (x[j] // f[s] << 16) + x[j] % f[s] + c[s]
    return bytes([e]) + struct.pack(f"<{L}I", *x) + struct.pack(f"<{len(words)}H", *reversed(words))


def leb(v: int) -> bytes:
    out = bytearray()
    while True:
        out.append(v & 127 | (128 if v >> 7 else 0))
        v >>= 7
        if not v:
            return bytes(out)


def rans0(levels: np.ndarray, K: int, B: int = 8, e: int = 0, counts: list[int] | None = None,
          pad: int | None = None, start: int = ONE) -> bytes:
    """A rans0 section of ``levels``; ``counts``, ``pad`` and ``start`` break it on purpose."""
    flat = [int(v) for v in levels.reshape(-1)]
    counts = counts or [flat.count(k) for k in range(K)]
    present = [k for k in range(K) if counts[k]]
    head = b"".join(leb(c) for c in counts[:-1])
    digit = {v: d for d, v in enumerate(present)}
    z = max(range(len(present)), key=lambda d: (counts[present[d]], -d)) if pad is None else pad
    d = [digit[v] for v in flat] + [z] * (-len(flat) % B)
    P = len(present)
    syms = [sum(d[i + j] * P ** j for j in range(B)) for i in range(0, len(d), B)]
    return head + bytes([B]) + stream(syms, product_model([counts[v] for v in present], B), e, start)


# ---------------------------------------------------------------- the cases

def _sec(f: File, name: str, role: str) -> Section:
    return next(s for s in f.tensor(name).sections if s.role == role)


def _hdr(fn: Callable[[dict], None]) -> Callable[[File], None]:
    def edit(f: File) -> None:
        f.edit_header = fn
    return edit


def _tensor_entry(name: str, fn: Callable[[dict], None]) -> Callable[[File], None]:
    return _hdr(lambda h: fn(next(t for t in h["tensors"] if t["name"] == name)))


def _desc(name: str, role: str, **values) -> Callable[[File], None]:
    return _tensor_entry(name, lambda t: next(s for s in t["sections"] if s["role"] == role).update(values))


def _raw(name: str, role: str, fn: Callable[[bytes], bytes], weight: Callable[[File], np.ndarray] | None = None):
    def edit(f: File) -> None:
        s = _sec(f, name, role)
        s.raw = fn(s.raw)
        if weight:
            f.tensor(name).weight = weight(f)
    return edit


def _frozen(name: str, shape, rule: str) -> np.ndarray:
    return frozen_weight(SEED, name, shape, rule)


def _levels_w(f: File) -> np.ndarray:
    """w's current binary levels (from its effective weight: the frozen values are never 0)."""
    w = f.tensor("w")
    scale = np.linspace(0.5, 2, 7).astype(np.float16).astype(np.float32)[:, None]
    return (w.weight != 0).astype(np.uint8), scale


def _set_byte(pos: int, value: int) -> Callable[[bytes], bytes]:
    return lambda b: b[:pos] + bytes([value]) + b[pos + 1:]


def _w_rans0(**kw) -> Callable[[File], None]:
    def edit(f: File) -> None:
        levels, _ = _levels_w(f)
        _sec(f, "w", "mask").raw = rans0(levels, 2, **kw)
    return edit


def _w_all_ones_then(extra: bytes) -> Callable[[File], None]:
    def edit(f: File) -> None:
        _, scale = _levels_w(f)
        _sec(f, "w", "mask").raw = leb(0) + extra
        f.tensor("w").weight = _frozen("w", (7, 13), "he_uniform") * scale
    return edit


def _n_group_of_three(f: File) -> None:
    s = _sec(f, "n", "mask")
    bits = np.unpackbits(np.frombuffer(s.raw, np.uint8), bitorder="little")
    bits[:4] = [1, 1, 1, 0]
    s.raw = np.packbits(bits, bitorder="little").tobytes()
    f.tensor("n").weight = _frozen("n", (4, 8), "xavier_uniform") * bits.reshape(4, 8).astype(np.float32)


def _m_level_three(f: File) -> None:
    s = _sec(f, "m", "mask")
    planes = np.unpackbits(np.frombuffer(s.raw, np.uint8).reshape(2, 2), 1, bitorder="little")[:, :12]
    planes[:, 0] = 1  # element 0 gets level 3 of a 3-level mask
    s.raw = np.packbits(planes, 1, bitorder="little").tobytes()
    levels = planes[0] + 2 * planes[1].astype(np.float32)
    f.tensor("m").weight = _frozen("m", (2, 6), "signed_constant_he") * levels.reshape(2, 6)


def _t_byte_243(f: File) -> None:
    s = _sec(f, "t", "trits")
    s.raw = bytes([243]) + s.raw[1:]
    trits = (np.frombuffer(s.raw, np.uint8)[:, None] // 3 ** np.arange(5) % 3).reshape(-1)[:21]
    f.tensor("t").weight = np.float32(0.25) * (trits.astype(np.float32) - 1).reshape(3, 7)


def _values(name: str, role: str, values, enc: str = "f16") -> Callable[[File], None]:
    def edit(f: File) -> None:
        s = _sec(f, name, role)
        arr = np.asarray(values, {"f16": "<f2", "f32": "<f4"}[enc])
        s.raw, s.enc = arr.tobytes(), enc
        t = f.tensor(name)
        if arr.size != np.asarray(t.weight).shape[:1][0] if name in ("w", "q") else False:
            return  # a section of the wrong size: refused before any weight exists
        with np.errstate(all="ignore"):
            if name == "w":
                levels, _ = _levels_w(f)
                t.weight = _frozen("w", (7, 13), "he_uniform") * levels * arr.astype(np.float32)[:, None]
            elif name == "q":
                q = np.frombuffer(_sec(f, "q", "q").raw, np.int8).reshape(2, 4)
                t.weight = q.astype(np.float32) * arr.astype(np.float32)[:, None]
            elif name == "t":
                trits = (np.frombuffer(_sec(f, "t", "trits").raw, np.uint8)[:, None] // 3 ** np.arange(5) % 3)
                t.weight = arr.astype(np.float32) * (trits.reshape(-1)[:21].astype(np.float32) - 1).reshape(3, 7)
            else:
                t.weight = arr.astype(np.float32)
    return edit


def _drop_section(name: str, role: str) -> Callable[[File], None]:
    def edit(f: File) -> None:
        t = f.tensor(name)
        t.sections = [s for s in t.sections if s.role != role]
    return edit


def _hole(f: File) -> None:
    s = _sec(f, "p", "data")
    s.stored = compress(s.raw, s.codec) + b"\0"  # one byte no section covers
    s.fields["length"] = len(s.stored) - 1
    s.fields["crc"] = zlib.crc32(s.stored[:-1])


def _overlap(f: File) -> None:
    """A second plain tensor whose section is p's bytes (same offset, length, CRC)."""
    p = f.tensor("p")
    f.tensors.append(Tensor({**p.entry, "name": "p2"}, [Section("data", "f16", "zlib", b"", stored=b"")], p.weight))

    def edit(h: dict) -> None:
        first, second = (next(t for t in h["tensors"] if t["name"] == n) for n in ("p", "p2"))
        second["sections"] = copy.deepcopy(first["sections"])
    f.edit_header = edit


def _extra_role(f: File) -> None:
    f.tensor("p").sections.append(Section("scale", "f16", "none", b"\0\x3c"))


def _rename(old: str, new: str, weight: Callable[[File], np.ndarray] | None = None) -> Callable[[File], None]:
    def edit(f: File) -> None:
        t = f.tensor(old)
        w = weight(f) if weight else t.weight
        t.entry["name"], t.weight = new, w
    return edit


def _reshape(name: str, shape: list[int]) -> Callable[[File], None]:
    def edit(f: File) -> None:
        t = f.tensor(name)
        t.entry["shape"], t.weight = shape, t.weight.reshape(shape)
    return edit


def _rans0_parts(raw: bytes) -> tuple[int, bytes, bytes]:
    """(offset of B, the counts' bytes, the rest) of a binary rans0 section."""
    pos = 0
    while raw[pos] & 128:
        pos += 1
    return pos + 1, raw[:pos + 1], raw[pos + 1:]


def _w_rans0_bytes(fn: Callable[[bytes], bytes]) -> Callable[[File], None]:
    return _raw("w", "mask", fn)


def _with_e(raw: bytes, e: int) -> bytes:
    at, _, _ = _rans0_parts(raw)
    return raw[:at + 1] + bytes([e]) + raw[at + 2:]


def _state(raw: bytes, value: int) -> bytes:
    at, _, _ = _rans0_parts(raw)
    return raw[:at + 2] + struct.pack("<I", value) + raw[at + 6:]


def _b3(raw: bytes) -> bytes:
    at, _, _ = _rans0_parts(raw)
    return raw[:at] + b"\3" + raw[at + 1:]


def _overlong_count(raw: bytes) -> bytes:
    at, counts, rest = _rans0_parts(raw)
    return counts[:-1] + bytes([counts[-1] | 128, 0]) + rest


def _w_rans0_counts(f: File) -> None:
    levels, _ = _levels_w(f)
    ones = int(levels.sum())
    _sec(f, "w", "mask").raw = rans0(levels, 2, counts=[levels.size - ones + 1, ones - 1])


def _w_rans0_pad(f: File) -> None:
    levels, _ = _levels_w(f)
    z = int(2 * levels.sum() > levels.size)
    _sec(f, "w", "mask").raw = rans0(levels, 2, pad=1 - z)


def _ransrow_wide(raw: bytes) -> bytes:
    counts = [0, 8, 8, 0]  # r's rows: no mixed row, so the section is the counts alone
    bits = [(c >> k) & 1 for c in counts for k in range(5)]
    return b"\0\5" + np.packbits(np.array(bits, np.uint8), bitorder="little").tobytes()


def _s_ransnm_pad(f: File) -> None:
    levels = nm_levels((2, 8), 2, 4, 3).reshape(-1, 4)
    ranks = [sum(math.comb(p, j + 1) for j, p in enumerate(np.flatnonzero(g))) for g in levels]
    ranks += [1, 1]  # G = 3: two padding ranks, which must be 0
    A = 6 ** 3
    syms = [sum(r * 6 ** j for j, r in enumerate(ranks[i:i + 3])) for i in range(0, 6, 3)]
    f_ = [ONE // A + (s < ONE % A) for s in range(A)]
    _sec(f, "s", "mask").raw = b"\3" + stream(syms, f_, 0)


def _v1_v2_digest(f: File) -> None:
    f2 = copy.copy(f)
    f2.version = 2
    v2 = digests(f2)["weights_sha256"]
    f.edit_header = lambda h: h.update(weights_sha256=v2)


def _v1_rans0(f: File) -> None:
    levels, _ = _levels_w(f)
    s = _sec(f, "w", "mask")
    s.enc, s.raw = "rans0", rans0(levels, 2)


def _b_levels(f: File) -> np.ndarray:
    return _frozen("w", (3, 5), "xavier_uniform") * (f.tensor("b").weight != 0)


def _zero_dim_plain(f: File) -> None:
    shape = [0, 2**31 + 1]
    f.tensors.append(Tensor({"name": "z", "kind": "plain", "shape": shape}, [Section("data", "f16", "none", b"")],
                            np.zeros((0, 2**31 + 1), np.float32)))


def _zstd_section(fn: Callable[[bytes, bytes], bytes], **fields) -> Callable[[File], None]:
    """w's scale (a zstd section) stored as fn(frame, raw)."""
    def edit(f: File) -> None:
        s = _sec(f, "w", "scale")
        s.stored = fn(compress(s.raw, "zstd"), s.raw)
        s.fields.update(fields)
    return edit


def _no_content_size(frame: bytes, raw: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=False).compress(raw)


SKIPPABLE = struct.pack("<II", 0x184D2A50, 4) + b"skip"


def _many_tensors(f: File) -> None:
    f.tensors = [Tensor({"name": f"e{i}", "kind": "plain", "shape": [0]}, [Section("data", "f16", "none", b"")],
                        np.zeros(0, np.float32)) for i in range(100_001)]


def _too_many_elements(f: File) -> None:
    shape = (1, 2**28 + 1)
    f.tensors.append(Tensor({"name": "big", "kind": "masked", "shape": list(shape), "init": "he_uniform",
                             "mask": "none", "scale": "none"}, [], _frozen("big", shape, "he_uniform")))


def _min_lanes(f: File) -> None:
    levels = (_gen(9).random((64, 520)) < 0.5).astype(np.uint8)  # 33,280 elements: S = 4,160 > 4,096
    t = MaskedTensor("wide", (64, 520), "he_uniform", MaskSpec.parse("binary"), levels, None)
    f.tensors.append(Tensor({"name": "wide", "kind": "masked", "shape": [64, 520], "init": "he_uniform",
                             "mask": "binary", "scale": "none"},
                            [Section("mask", "rans0", "none", rans0(levels, 2, e=0))], _effective(t)))


def _version(v: int, then: Callable[[File], None] | None = None) -> Callable[[], File]:
    def make() -> File:
        f = base(v)
        if then:
            then(f)
        return f
    return make


def _v1_int8(f: File) -> None:
    g = base(2)
    f.tensors.append(g.tensor("q"))


Case = tuple[str, str, Callable[[], File]]


def _case(rule: str, case: str, reason: str, edit: Callable[[File], None] | None = None,
          version: int = 2) -> Case:
    def make() -> File:
        f = base(version)
        if edit:
            edit(f)
        return f
    return f"{rule}-{case}", reason, make


def _post(fn: Callable[[bytes], bytes]) -> Callable[[File], None]:
    def edit(f: File) -> None:
        f.post = fn
    return edit


def cases() -> list[Case]:
    c = _case
    return [
        c("M01", "magic", "the first 8 bytes are not the magic", _post(lambda d: b"\x89TPX" + d[4:])),
        c("M02", "version-4", "format version 4 (readers accept 1, 2, 3)", _post(lambda d: reseal_crc(d[:8] + b"\4\0" + d[10:]))),
        c("M02", "version-0", "format version 0", _post(lambda d: reseal_crc(d[:8] + b"\0\0" + d[10:]))),
        c("M03", "flags", "flags byte 1 (must be 0)", lambda f: setattr(f, "flags", 1)),
        c("M03", "header-codec", "header codec 3 (0, 1, 2 exist)", _post(lambda d: reseal_crc(d[:10] + b"\3" + d[11:]))),
        c("M04", "truncated", "the file is one byte shorter than 28 + H + P + 4 (CRC over what is there)",
          _post(lambda d: reseal_crc(d[:-5] + d[-4:]))),
        c("M04", "trailing", "one byte after the CRC", _post(lambda d: d + b"\0")),
        c("M05", "file-crc", "the file CRC-32 does not match", _post(lambda d: d[:-4] + bytes([d[-4] ^ 1]) + d[-3:])),
        c("M06", "header-cap", "the header's raw JSON is over 16 MiB", _hdr(lambda h: h["provenance"].update(pad=" " * (1 << 24)))),
        c("M07", "zstd-no-content-size", "a zstd section whose frame does not declare its content size",
          _zstd_section(_no_content_size)),
        c("M07", "zstd-skippable", "a skippable zstd frame before the section's frame", _zstd_section(lambda fr, r: SKIPPABLE + fr)),
        c("M07", "zstd-two-frames", "a second zstd frame after the section's frame", _zstd_section(lambda fr, r: fr + compress(b"", "zstd"))),
        c("M07", "zstd-skippable-after", "a skippable frame after the section's frame", _zstd_section(lambda fr, r: fr + SKIPPABLE)),
        c("M07", "zstd-size", "the zstd frame declares 14 bytes, the descriptor's raw says 16 (a row scale of 7 f16 is 14)",
          _zstd_section(lambda fr, r: compress(r[:-2], "zstd"))),
        c("M07", "zlib-trailing", "a byte after the zlib stream", lambda f: setattr(_sec(f, "p", "data"), "stored",
                                                                               compress(_sec(f, "p", "data").raw, "zlib") + b"\0")),
        c("M07", "none-length", "a `none` section whose stored length differs from raw",
          lambda f: (setattr(_sec(f, "b", "mask"), "stored", _sec(f, "b", "mask").raw + b"\0"))),
        c("M07", "header-raw", "the header decompresses to one byte more than the prefix's raw length",
          _post(lambda d: reseal_crc(d[:16] + struct.pack("<I", struct.unpack_from("<I", d, 16)[0] - 1) + d[20:]))),
        c("M08", "duplicate-key", "a duplicate key in the header JSON", lambda f: setattr(f, "text", lambda t: t.replace('{"seed":', '{"seed":0,"seed":', 1))),
        c("M08", "nan", "NaN in the header JSON", _hdr(lambda h: h["provenance"].update(x=float("nan")))),
        c("M08", "overflow", "1e400 in the header JSON", lambda f: setattr(f, "text", lambda t: t.replace('"provenance":{', '"provenance":{"x":1e400,', 1))),
        c("M08", "long-integer", "an integer of 5,000 digits", lambda f: setattr(f, "text", lambda t: t.replace('"provenance":{', '"provenance":{"x":' + "9" * 5000 + ",", 1))),
        c("M08", "not-utf8", "the header is not UTF-8", lambda f: setattr(f, "text", lambda t: t.replace('"made_by"', '"made_by\udcff"', 1))),
        c("M09", "seed", "seed 2^32", _hdr(lambda h: h.update(seed=2**32))),
        c("M09", "rng", "an unknown rng", _hdr(lambda h: h.update(rng="philox4x32-7/v1"))),
        c("M09", "no-provenance", "no provenance key", _hdr(lambda h: h.pop("provenance"))),
        c("M09", "no-model-sha256", "a version-2 file without model_sha256", _hdr(lambda h: h.pop("model_sha256"))),
        c("M09", "weights-sha256-upper", "weights_sha256 in upper-case hex", _hdr(lambda h: h.update(weights_sha256=h["weights_sha256"].upper()))),
        c("M09", "config-array", "config is an array", lambda f: setattr(f, "config", [1])),
        c("M09", "config-int64", "an integer 2^63 in config (canon has no encoding for it; model_sha256 left as packed)",
          _hdr(lambda h: h["config"].update(big=2**63))),
        c("M10", "eval-null", "\"eval\": null (eval is an object or absent)", _hdr(lambda h: h.update(eval=None))),
        c("M10", "eval-unknown-key", "an unknown key in eval", _hdr(lambda h: h["eval"].update(extra=1))),
        c("M10", "eval-seq-len", "eval.seq_len 0", _hdr(lambda h: h["eval"].update(seq_len=0))),
        c("M11", "tensors", "100,001 tensors", _many_tensors),
        c("M11", "elements", "2^28 + 9 elements in all (one masked tensor without sections holds 2^28 + 1)", _too_many_elements),
        c("M12", "name-empty", "an empty tensor name", _rename("p", "")),
        c("M12", "name-long", "a name of 1025 UTF-8 bytes (513 characters)", _rename("p", "é" * 512 + "x")),
        c("M12", "name-duplicate", "two tensors named w", _rename("b", "w", _b_levels)),
        c("M12", "kind", "an unknown kind", _tensor_entry("p", lambda t: t.update(kind="float8"))),
        c("M12", "kind-int8-v1", "kind int8 in a version-1 file", _v1_int8, version=1),
        c("M12", "rank", "rank 9", _reshape("p", [3] + [1] * 8)),
        c("M12", "dimension", "a dimension of 2^31 + 1 (0 elements)", _zero_dim_plain),
        c("M12", "masked-zero-dim", "a masked tensor with a zero dimension", lambda f: f.tensors.append(
            Tensor({"name": "z", "kind": "masked", "shape": [0, 4], "init": "he_uniform", "mask": "none", "scale": "none"}, [],
                   np.zeros((0, 4), np.float32)))),
        c("M12", "masked-rank0", "a masked tensor of rank 0", lambda f: f.tensors.append(
            Tensor({"name": "z", "kind": "masked", "shape": [], "init": "he_uniform", "mask": "none", "scale": "none"}, [],
                   np.zeros((), np.float32)))),
        c("M13", "init", "an unknown init rule", _tensor_entry("w", lambda t: t.update(init="lecun_uniform"))),
        c("M13", "mask-spelling", "mask multibit:03 (canonical: multibit:3)", _tensor_entry("m", lambda t: t.update(mask="multibit:03"))),
        c("M13", "mask-kind", "mask kind ternary", _tensor_entry("b", lambda t: t.update(mask="ternary"))),
        c("M13", "multibit-257", "mask multibit:257", _tensor_entry("m", lambda t: t.update(mask="multibit:257"))),
        c("M13", "nm-divides", "mask nm:2:3 on a last dimension of 8", _tensor_entry("n", lambda t: t.update(mask="nm:2:3"))),
        c("M13", "nm-n-ge-m", "mask nm:4:4", _tensor_entry("n", lambda t: t.update(mask="nm:4:4"))),
        c("M13", "scale-mode", "scale mode channel", _tensor_entry("b", lambda t: t.update(scale="channel"))),
        c("M13", "mask-none-v1", "mask none in a version-1 file", lambda f: f.tensors.append(
            Tensor({"name": "z", "kind": "masked", "shape": [2, 2], "init": "he_uniform", "mask": "none", "scale": "none"}, [],
                   _frozen("z", (2, 2), "he_uniform"))), version=1),
        c("M13", "layout-in-v2", "the v3 key layout in a version-2 file", _tensor_entry("w", lambda t: t.update(layout="out_in"))),
        c("M13", "init-std-in-v2", "the v3 key init_std in a version-2 file", _tensor_entry("w", lambda t: t.update(init_std=0.02))),
        c("M13", "signed-in-v2", "mask signed:2 in a version-2 file", _tensor_entry("m", lambda t: t.update(mask="signed:2"))),
        c("M13", "layout-rank", "layout in_out on a rank-3 tensor (in_out needs rank 2; v3)",
          lambda f: f.tensors.append(Tensor({"name": "z", "kind": "masked", "shape": [2, 2, 2], "init": "he_uniform",
                                             "mask": "none", "scale": "none", "layout": "in_out"}, [],
                                            _frozen("z", (2, 2, 2), "he_uniform"))), version=3),
        c("M13", "layout-unknown", "layout in_first (v3)", _tensor_entry("w", lambda t: t.update(layout="in_first")), version=3),
        c("M13", "init-std-extra", "init_std on a he_uniform tensor (v3)", _tensor_entry("w", lambda t: t.update(init_std=0.5)), version=3),
        c("M14", "gamma-count", "gamma tensor with gamma_count 2", _tensor_entry("t", lambda t: t.update(gamma_count=2))),
        c("M14", "gamma-mode", "gamma mode column", _tensor_entry("t", lambda t: t.update(gamma="column"))),
        c("M15", "missing-role", "a row-scaled tensor without its scale section", _drop_section("w", "scale")),
        c("M15", "extra-role", "a plain tensor with a second section role", _extra_role),
        c("M15", "codec", "section codec lz4", _desc("b", "mask", codec="lz4")),
        c("M15", "offset", "a section that ends past the payload", _desc("p", "data", offset=10**6)),
        c("M15", "crc-range", "a section crc of 2^32", _desc("p", "data", crc=2**32)),
        c("M16", "enc-for-content", "a binary mask coded ransnm (only N:M masks may)", _desc("b", "mask", enc="ransnm")),
        c("M16", "planes-for-binary", "a binary mask coded planes (v2: bits, rans0, ransrow)", _desc("b", "mask", enc="planes")),
        c("M16", "rans0-in-v1", "rans0 in a version-1 file", _v1_rans0, version=1),
        c("M16", "values-raw", "a row scale of 7 values declared 16 bytes raw", _values("w", "scale", np.linspace(0.5, 2, 8))),
        c("M16", "symbol-raw-bound", "a mask section declaring more than 8 n + 4096 bytes raw",
          _raw("b", "mask", lambda r: r + bytes(8 * 15 + 4096))),
        c("M17", "hole", "a byte of payload no section covers", _hole),
        c("M17", "overlap", "two sections over the same bytes", _overlap),
        c("M18", "section-crc", "a section's crc does not match its bytes", _desc("p", "data", crc=0)),
        c("M19", "bits-padding", "a padding bit of a bits section is 1", _raw("b", "mask", lambda r: r[:-1] + bytes([r[-1] | 0x80]))),
        c("M19", "bits-length", "a bits section one byte long", _raw("b", "mask", lambda r: r + b"\0")),
        c("M19", "planes-level", "level 3 in a planes section of multibit:3", _m_level_three),
        c("M19", "trits-byte", "a trits5 byte of 243", _t_byte_243),
        c("M19", "trits-padding", "the final trits5 byte has a non-zero digit past the last element",
          _raw("t", "trits", lambda r: r[:-1] + bytes([r[-1] % 3 + 3]))),
        c("M20", "lanes-e13", "a rANS stream with e = 13", _w_rans0_bytes(lambda s: _with_e(s, 13))),
        c("M20", "initial-state", "a rANS initial state below 2^16", _w_rans0_bytes(lambda s: _state(s, 0x8000))),
        c("M20", "odd-words", "an odd number of word bytes", _w_rans0_bytes(lambda s: s + b"\0")),
        c("M20", "unused-word", "a word after the last one the decoder reads", _w_rans0_bytes(lambda s: s + b"\0\0")),
        c("M20", "ends-early", "the last word missing", _w_rans0_bytes(lambda s: s[:-2])),
        c("M20", "final-state", "encoded from 2^16 + 1: every symbol decodes, the final state is not 2^16", _w_rans0(start=ONE + 1)),
        c("M20", "leb128-overlong", "a count written as a non-minimal LEB128", _w_rans0_bytes(_overlong_count)),
        c("M21", "counts", "declared counts differ from the decoded symbols", _w_rans0_counts),
        c("M21", "padding", "the padding digits are not the most frequent digit", _w_rans0_pad),
        c("M21", "b", "B = 3", _w_rans0_bytes(_b3)),
        c("M21", "single-level-bytes", "bytes after the counts of a one-level mask", _w_all_ones_then(b"\0")),
        c("M21", "ransrow-width", "ransrow row counts stored 5 bits wide (4 suffice)", _raw("r", "mask", _ransrow_wide)),
        c("M21", "ransnm-padding", "a ransnm padding rank that is not 0", _s_ransnm_pad),
        c("M22", "nm-pattern", "a group of an nm:2:4 mask keeps 3", _n_group_of_three),
        c("M23", "min-lanes", "one lane for 4,160 symbols in a version-3 file (at least 2)", _min_lanes, version=3),
        c("M24", "scale-nan", "a NaN scale value", _values("w", "scale", [np.nan] + [1.0] * 6)),
        c("M24", "plain-inf", "an infinite plain value", _values("p", "data", [1.0, np.inf, 2.0])),
        c("M24", "gamma-nan", "a NaN gamma", _values("t", "gamma", np.nan)),
        c("M24", "int8-scale-inf", "an infinite int8 scale", _values("q", "scale", [np.inf, 1.0])),
        c("M25", "effective-inf", "finite int8 scale 3e38 (f32) times q up to 127 overflows to infinity",
          _values("q", "scale", [3e38, 1.0], "f32")),
        c("M26", "weights", "weights_sha256 of other weights", _hdr(lambda h: h.update(weights_sha256="0" * 64))),
        c("M26", "weights-v1", "a version-1 file whose weights_sha256 is the version-2 digest", _v1_v2_digest, version=1),
        c("M27", "model", "the config changed after packing (weights match)", _hdr(lambda h: h["config"].update(note="changed"))),
        c("M27", "model-eval", "the eval context changed after packing", _hdr(lambda h: h["eval"].update(seq_len=17))),
    ]


def main(out: Path = HERE) -> int:
    for old in list(out.glob("M*.tpk")) + list(out.glob("M*.json")):
        old.unlink()
    for name, reason, make in cases():
        f = make()
        (out / f"{name}.tpk").write_bytes(seal(f))
        (out / f"{name}.json").write_text(json.dumps({"rule": name.split("-")[0], "reason": reason,
                                                      "format_version": f.version}, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    print(f"wrote {len(cases())} negative conformance files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
