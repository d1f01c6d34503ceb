"""import-pg: a parameter-golf lottery-ticket artifact, written here by following
shared/notes/pg-lth-format.md, imports to the same effective weights (bit for bit) and the
same logits (exactly) as the original code path, also after a .tpk round trip; hostile
files are refused with ticketpack errors and never execute code."""

from __future__ import annotations

import io
import json
import math
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from cli.main import main
from ticketpack import api, artifact
from ticketpack.interop import pg_import
from ticketpack.format.constants import PG_RNG_PREFIX
from ticketpack.errors import (ArtifactError, ConfigError, DecodeError, HeaderError, LimitError,
                               TruncatedError)
from ticketpack.nn.masking import MaskSpec
from ticketpack.interop.pg_import import PgLimits, import_pg, parse_pg_bytes
from ticketpack.ticket import MaskedTensor, PlainTensor, Ticket, model_from_ticket

ARCH = dict(vocab_size=64, num_layers=2, model_dim=32, num_heads=4, num_kv_heads=2, mlp_mult=2)
SEED = 2024


# ---------------------------------------------------------------- the original code path (reference)

def ref_shapes(arch: dict) -> dict[str, tuple[int, int]]:
    """The submission's frozen 2-D weights, in module-registration order."""
    V, C, L = arch["vocab_size"], arch["model_dim"], arch["num_layers"]
    kv = arch["num_kv_heads"] * C // arch["num_heads"]
    shapes = {"tok_emb.weight": (V, C)}
    for i in range(L):
        b = f"blocks.{i}"
        shapes.update({f"{b}.attn.c_q.weight": (C, C), f"{b}.attn.c_k.weight": (kv, C),
                       f"{b}.attn.c_v.weight": (kv, C), f"{b}.attn.proj.weight": (C, C),
                       f"{b}.mlp.fc.weight": (arch["mlp_mult"] * C, C),
                       f"{b}.mlp.proj.weight": (C, arch["mlp_mult"] * C)})
    if not arch.get("tie_embeddings", True):
        shapes["lm_head.weight"] = (V, C)
    return shapes


def ref_frozen(seed: int, shapes: dict[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
    """One CPU generator; tok_emb first, then sorted names; xavier via torch.nn.init, He by hand."""
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    out = {}
    for name in ["tok_emb.weight"] + sorted(n for n in shapes if n != "tok_emb.weight"):
        w = torch.empty(shapes[name], dtype=torch.float32)
        if "mlp.fc.weight" in name:
            b = math.sqrt(6 / shapes[name][1])
            w.uniform_(-b, b, generator=g)
        else:
            torch.nn.init.xavier_uniform_(w, generator=g)
        out[name] = w
    return out


def ref_scales(arch: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """fp32 scales that fp16 cannot hold exactly (any rounding would show)."""
    C, H = arch["model_dim"], arch["num_heads"]
    out = {}
    for i in range(arch["num_layers"]):
        out[f"blocks.{i}.attn_scale"] = 1 + torch.rand(C, generator=gen) / 3
        out[f"blocks.{i}.mlp_scale"] = 1 + torch.rand(C, generator=gen) / 3
        out[f"blocks.{i}.attn.head_scale"] = 1 + torch.rand(H, generator=gen) / 3
    out["pre_logit_scale"] = 1 + torch.rand(C, generator=gen) / 3
    return out


def rotary(x: torch.Tensor, base: float) -> torch.Tensor:
    """x (B, H, T, D): cat(x1*cos + x2*sin, -x1*sin + x2*cos), inv_freq = base^(-2i/D)."""
    T, D = x.size(2), x.size(3)
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    cos, sin = freqs.cos(), freqs.sin()
    x1, x2 = x[..., :D // 2], x[..., D // 2:]
    return torch.cat((x1 * cos + x2 * sin, -x1 * sin + x2 * cos), dim=-1)


def ref_forward(W: dict, S: dict, arch: dict, idx: torch.Tensor) -> torch.Tensor:
    """The forward pass of pg-lth-format.md, written from the document."""
    C, H, Hkv = arch["model_dim"], arch["num_heads"], arch["num_kv_heads"]
    D, (B, T) = C // H, idx.shape
    rms = lambda t: F.rms_norm(t, (t.size(-1),))  # noqa: E731
    x = rms(F.embedding(idx, W["tok_emb.weight"]))
    for i in range(arch["num_layers"]):
        p = f"blocks.{i}."
        h = rms(x)
        q = F.linear(h, W[p + "attn.c_q.weight"]).view(B, T, H, D).transpose(1, 2)
        k = F.linear(h, W[p + "attn.c_k.weight"]).view(B, T, Hkv, D).transpose(1, 2)
        v = F.linear(h, W[p + "attn.c_v.weight"]).view(B, T, Hkv, D).transpose(1, 2)
        q, k = rotary(rms(q), arch.get("rope_base", 10000.0)), rotary(rms(k), arch.get("rope_base", 10000.0))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        y = y * S[p + "attn.head_scale"][None, :, None, None]
        y = F.linear(y.transpose(1, 2).reshape(B, T, C), W[p + "attn.proj.weight"])
        x = x + S[p + "attn_scale"] * y
        h = F.relu(F.linear(rms(x), W[p + "mlp.fc.weight"]))
        x = x + S[p + "mlp_scale"] * F.linear(h, W[p + "mlp.proj.weight"])
    x = rms(x) * S["pre_logit_scale"]
    logits = F.linear(x, W.get("lm_head.weight", W["tok_emb.weight"]))
    return 30.0 * torch.tanh(logits / 30.0)


# ---------------------------------------------------------------- the layout, written from the document

def mask_record(name: str, bits: np.ndarray, packed: bytes | None = None) -> bytes:
    raw = name.encode("utf-8")
    packed = np.packbits(bits.reshape(-1), bitorder="little").tobytes() if packed is None else packed
    return (struct.pack("<I", len(raw)) + raw + struct.pack("<I", bits.ndim)
            + struct.pack(f"<{bits.ndim}I", *bits.shape) + struct.pack("<I", len(packed)) + packed)


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def pg_raw(seed: int, masks: dict[str, np.ndarray], scales_blob: bytes, count: int | None = None,
           extra: bytes = b"") -> bytes:
    section = struct.pack("<I", len(masks) if count is None else count)
    section += b"".join(mask_record(n, b) for n, b in masks.items()) + extra
    return struct.pack("<II", seed, len(section)) + section + scales_blob


def make_pg(arch: dict = ARCH, seed: int = SEED, density: float = 0.46):
    """(artifact bytes, masks by weight name, scales) of a random ticket of this architecture."""
    gen = torch.Generator().manual_seed(seed + 1)
    shapes = ref_shapes(arch)
    masks = {n: (torch.rand(s, generator=gen) < density).numpy().astype(np.uint8) for n, s in shapes.items()}
    scales = ref_scales(arch, gen)
    stored = {n.removesuffix(".weight") + ".mask_scores": m for n, m in masks.items()}
    return zlib.compress(pg_raw(seed, stored, saved(scales)), 9), masks, scales


def ref_effective(arch: dict, seed: int, masks: dict) -> dict[str, torch.Tensor]:
    frozen = ref_frozen(seed, ref_shapes(arch))
    return {n: frozen[n] * torch.from_numpy(masks[n]).float() for n in frozen}


@pytest.fixture
def pg_file(tmp_path: Path):
    data, masks, scales = make_pg()
    path = tmp_path / "final_model.bin"
    path.write_bytes(data)
    return path, masks, scales


# ---------------------------------------------------------------- equivalence

def test_package_writer_writes_the_documented_layout():
    """pg_import.encode_pg_artifact (what the benchmarks write) gives the bytes written here."""
    data, masks, scales = make_pg()
    stored = {n.removesuffix(".weight") + ".mask_scores": m for n, m in masks.items()}
    assert pg_import.encode_pg_artifact(SEED, stored, scales) == data
    assert zlib.decompress(pg_import.encode_pg_artifact(SEED, ONE)) == pg_raw(SEED, ONE, b"")
    back = parse_pg_bytes(pg_import.encode_pg_artifact(SEED, stored, scales))
    assert back.seed == SEED and list(back.masks) == list(stored)
    assert all(np.array_equal(back.masks[n], stored[n]) for n in stored)



def test_import_gives_the_original_weights_and_logits(pg_file):
    path, masks, scales = pg_file
    ticket = import_pg(path, ARCH)
    state = ticket.effective_state_dict()
    W = ref_effective(ARCH, SEED, masks)
    for name, w in W.items():
        assert torch.equal(state[name], w), name
    for name, s in scales.items():
        assert state[name].dtype == torch.float32 and torch.equal(state[name], s), name
    assert set(state) == set(W) | set(scales)
    idx = torch.randint(0, ARCH["vocab_size"], (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model_from_ticket(ticket)(idx), ref_forward(W, scales, ARCH, idx))


def test_written_tpk_loads_to_the_same_weights_and_logits(pg_file, tmp_path):
    path, masks, scales = pg_file
    out = tmp_path / "imported.tpk"
    summary = api.import_pg(path, out, config=_arch_json(tmp_path, ARCH))
    assert summary["rng"] == pg_import.rng_id() and summary["seed"] == SEED
    assert summary["masks"] == len(masks) and summary["scales"] == len(scales)
    ticket, state, _ = api.load_verified(out)  # checks the stored weights hash
    assert ticket.rng == PG_RNG_PREFIX + torch.__version__.split("+")[0]
    assert len(ticket.provenance["import"]["sha256"]) == 64
    W = ref_effective(ARCH, SEED, masks)
    assert all(torch.equal(state[n], W[n]) for n in W)
    assert all(torch.equal(state[n], s) for n, s in scales.items())
    idx = torch.randint(0, ARCH["vocab_size"], (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(api.build_model(ticket, state, "cpu")(idx), ref_forward(W, scales, ARCH, idx))


def test_untied_head_and_other_hyperparameters(tmp_path):
    arch = dict(ARCH, tie_embeddings=False, num_kv_heads=4, mlp_mult=3, rope_base=500.0,
                logit_softcap=30)
    data, masks, scales = make_pg(arch, seed=7)
    path = tmp_path / "untied.bin"
    path.write_bytes(data)
    ticket = import_pg(path, arch)
    W = ref_effective(arch, 7, masks)
    state = ticket.effective_state_dict()
    assert "lm_head.weight" in W and all(torch.equal(state[n], W[n]) for n in W)
    idx = torch.randint(0, 64, (1, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(model_from_ticket(ticket)(idx), ref_forward(W, scales, arch, idx))


def test_draw_order_is_embedding_then_sorted_names():
    names = ["blocks.2.mlp.fc.weight", "blocks.10.attn.c_q.weight", "lm_head.weight",
             "tok_emb.weight", "blocks.1.attn.c_k.weight"]
    assert pg_import.mt19937_order(names) == ["tok_emb.weight", "blocks.1.attn.c_k.weight",
                                              "blocks.10.attn.c_q.weight", "blocks.2.mlp.fc.weight",
                                              "lm_head.weight"]


def test_mt_stream_is_one_sequence_from_the_seed():
    """tok_emb is drawn first whatever the ticket order; dropping a tensor shifts later draws."""
    spec = MaskSpec.parse("binary")
    a = MaskedTensor("tok_emb.weight", (4, 8), "xavier_uniform", spec, np.ones((4, 8), np.uint8))
    b = MaskedTensor("x.weight", (8, 8), "he_uniform", spec, np.ones((8, 8), np.uint8))
    both = dict(pg_import.mt19937_frozen_weights(5, [b, a]))
    alone = dict(pg_import.mt19937_frozen_weights(5, [b]))
    g = torch.Generator().manual_seed(5)
    emb = torch.empty(4, 8).uniform_(-math.sqrt(6 / 12), math.sqrt(6 / 12), generator=g)
    x = torch.empty(8, 8).uniform_(-math.sqrt(6 / 8), math.sqrt(6 / 8), generator=g)
    assert np.array_equal(both["tok_emb.weight"], emb.numpy()) and np.array_equal(both["x.weight"], x.numpy())
    assert not np.array_equal(alone["x.weight"], x.numpy())


def test_mt_ticket_rng_checks():
    spec = MaskSpec.parse("binary")
    t3 = MaskedTensor("w", (2, 2, 2), "xavier_uniform", spec, np.ones((2, 2, 2), np.uint8))
    # what an artifact holds, so malformed content (exit 3), not a usage error
    with pytest.raises(HeaderError, match="2-D"):
        Ticket(1, {}, [t3], rng=pg_import.rng_id()).effective_state_dict()
    sc = MaskedTensor("w", (2, 2), "signed_constant_he", spec, np.ones((2, 2), np.uint8))
    with pytest.raises(HeaderError, match="signed_constant_he"):
        Ticket(1, {}, [sc], rng=pg_import.rng_id()).effective_state_dict()
    with pytest.raises(HeaderError, match="rng"):
        Ticket(1, {}, [sc], rng="mt19937/unknown").effective_state_dict()


def test_default_architecture_is_the_submission():
    cfg = pg_import.arch_config(None)
    assert (cfg.vocab_size, cfg.num_layers, cfg.model_dim, cfg.num_heads, cfg.num_kv_heads,
            cfg.mlp_mult) == (1024, 16, 1024, 8, 4, 2)
    assert cfg.mlp_activation == "relu" and cfg.tie_embeddings and cfg.logit_softcap == 30.0
    assert cfg.qk_norm and not cfg.rmsnorm_weight and cfg.embed_norm and cfg.rope_base == 10000.0
    assert (cfg.embed_init, cfg.init, cfg.mlp_fc_init) == ("xavier_uniform", "xavier_uniform", "he_uniform")
    assert cfg.block_scales and cfg.head_scales and cfg.pre_logit_scale
    masked, plain = pg_import._layout(cfg)
    assert sum(math.prod(s) for _, s, _ in masked) == 118_489_088  # field.md's count
    assert sum(math.prod(s) for _, s in plain) == 33_920


@pytest.mark.parametrize("arch, match", [({"num_layer": 2}, "unknown key 'num_layer'"),
                                         ({"num_layers": "2"}, "num_layers"),
                                         ({"num_heads": 3}, "num_heads")])
def test_bad_arch_is_a_config_error(arch, match):
    with pytest.raises(ConfigError, match=match):
        pg_import.arch_config(arch)


# ---------------------------------------------------------------- the mask layout

def test_bit_order_and_padding():
    bits = (np.arange(15).reshape(3, 5) % 3 == 0).astype(np.uint8)
    raw = pg_raw(9, {"m.mask_scores": bits}, saved({}))
    got = parse_pg_bytes(zlib.compress(raw, 9))
    assert got.seed == 9 and np.array_equal(got.masks["m.mask_scores"], bits)
    # element 0 is the least significant bit of byte 0
    assert np.packbits(bits.reshape(-1), bitorder="little")[0] & 1 == bits[0, 0]
    bad = bytearray(raw)
    bad[8 + 4 + 4 + 13 + 4 + 8 + 4 + 1] |= 0x80  # a padding bit of the last mask byte
    with pytest.raises(DecodeError, match="padding"):
        parse_pg_bytes(zlib.compress(bytes(bad), 9))


# ---------------------------------------------------------------- hostile files

class Exploit:
    """Unpickling this would create ``marker``; a safe reader never does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _deflated(blob: bytes) -> bytes:
    src, out = zipfile.ZipFile(io.BytesIO(blob)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return out.getvalue()


ONE = {"a.mask_scores": np.ones((2, 8), np.uint8)}
GOOD_SCALES = saved({"s": torch.ones(3)})


def _hostile_raws(tmp: Path) -> dict[str, tuple[bytes, type]]:
    ok = pg_raw(1, ONE, GOOD_SCALES)
    rec = mask_record("a.mask_scores", ONE["a.mask_scores"])
    sec = lambda body, n=1: struct.pack("<I", n) + body  # noqa: E731
    whole = lambda body, n=1, blob=GOOD_SCALES: (struct.pack("<II", 1, len(sec(body, n)))  # noqa: E731
                                                 + sec(body, n) + blob)
    bad_name = rec.replace(b"a.mask", b"\xff.mask")
    return {
        "short seed": (ok[:3], TruncatedError),
        "section longer than file": (struct.pack("<II", 1, 10**6) + ok[8:], TruncatedError),
        "too many masks": (whole(rec, 10**9), LimitError),
        "fewer masks than counted": (whole(rec, 2), TruncatedError),
        "bytes after the last mask": (whole(rec + b"\0"), DecodeError),
        "name not utf-8": (whole(bad_name), HeaderError),
        "name too long": (whole(struct.pack("<I", 5000) + rec[4:]), LimitError),
        "ndim 0": (whole(rec[:17] + struct.pack("<I", 0) + rec[21:]), LimitError),
        "ndim 9": (whole(rec[:17] + struct.pack("<I", 9) + rec[21:]), LimitError),
        "zero dim": (whole(rec[:21] + struct.pack("<I", 0) + rec[25:]), HeaderError),
        "packed length wrong": (whole(rec[:29] + struct.pack("<I", 3) + rec[33:]), DecodeError),
        "bits truncated": (whole(rec[:-1]), TruncatedError),
        "duplicate names": (whole(rec + rec, 2), HeaderError),
        "no scales": (pg_raw(1, ONE, b""), DecodeError),
        "scales raw pickle with __reduce__": (pg_raw(1, ONE, pickle.dumps({"s": Exploit(tmp / "a")})),
                                              DecodeError),
        "scales torch.save with __reduce__": (pg_raw(1, ONE, saved({"s": Exploit(tmp / "b")})), DecodeError),
        "scales a list": (pg_raw(1, ONE, saved([torch.ones(3)])), DecodeError),
        "scale not a tensor": (pg_raw(1, ONE, saved({"s": 3})), DecodeError),
        "scale not float": (pg_raw(1, ONE, saved({"s": torch.ones(3, dtype=torch.int32)})), DecodeError),
        "scale float64": (pg_raw(1, ONE, saved({"s": torch.ones(3, dtype=torch.float64)})), DecodeError),
        "scale key not str": (pg_raw(1, ONE, saved({3: torch.ones(3)})), DecodeError),
        "scales zip deflated": (pg_raw(1, ONE, _deflated(GOOD_SCALES)), DecodeError),
        "scales truncated": (pg_raw(1, ONE, GOOD_SCALES[:-40]), DecodeError),
    }


def test_control_parses():
    got = parse_pg_bytes(zlib.compress(pg_raw(1, ONE, GOOD_SCALES), 9))
    assert list(got.masks) == ["a.mask_scores"] and torch.equal(got.scales["s"], torch.ones(3))


@pytest.mark.parametrize("case", list(_hostile_raws(Path("/nonexistent"))))
def test_hostile_layout_is_refused(case, tmp_path):
    raw, err = _hostile_raws(tmp_path)[case]
    with pytest.raises(err):
        parse_pg_bytes(zlib.compress(raw, 9))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # no code ran


@pytest.mark.parametrize("data, err", [
    (b"", TruncatedError),
    (b"not zlib at all", DecodeError),
    (zlib.compress(pg_raw(1, ONE, GOOD_SCALES), 9)[:-7], TruncatedError),
    (zlib.compress(pg_raw(1, ONE, GOOD_SCALES), 9) + b"\0", DecodeError),
])
def test_bad_zlib_stream_is_refused(data, err):
    with pytest.raises(err):
        parse_pg_bytes(data)


def test_inflate_is_bounded():
    bomb = zlib.compress(b"\0" * (8 << 20), 9)  # 8 MiB from ~8 KiB
    with pytest.raises(LimitError, match="cap"):
        parse_pg_bytes(bomb, PgLimits(max_raw_bytes=1 << 20))
    raw = pg_raw(1, ONE, GOOD_SCALES)
    assert parse_pg_bytes(zlib.compress(raw), PgLimits(max_raw_bytes=len(raw))).seed == 1
    with pytest.raises(LimitError):
        parse_pg_bytes(zlib.compress(raw), PgLimits(max_raw_bytes=len(raw) - 1))


def test_artifact_that_does_not_fit_the_architecture(tmp_path):
    data, _, _ = make_pg()
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="missing"):
        import_pg(path, dict(ARCH, num_layers=3))
    with pytest.raises(ConfigError, match="shape"):
        import_pg(path, dict(ARCH, vocab_size=65))
    raw = pg_raw(1, {"tok_emb.weight": np.ones((64, 32), np.uint8)}, GOOD_SCALES)
    path.write_bytes(zlib.compress(raw))
    with pytest.raises(HeaderError, match="mask_scores"):
        import_pg(path, ARCH)


# ---------------------------------------------------------------- CLI

def _arch_json(tmp: Path, arch: dict) -> Path:
    path = tmp / "ARCH.json"
    path.write_text(json.dumps(arch))
    return path


def test_cli_import_pg_then_verify(pg_file, tmp_path):
    path, _, _ = pg_file
    out = tmp_path / "cli.tpk"
    runner = CliRunner()
    arch = _arch_json(tmp_path, ARCH)
    res = runner.invoke(main, ["import-pg", str(path), "-o", str(out), "--config", str(arch)])
    assert res.exit_code == 0, res.output
    assert PG_RNG_PREFIX in res.output and out.exists()
    res = runner.invoke(main, ["verify", str(out)])
    assert res.exit_code == 0, res.output


def test_cli_import_pg_level_budget_and_code(pg_file, tmp_path):
    path, _, _ = pg_file
    arch = _arch_json(tmp_path, ARCH)
    runner = CliRunner()
    small = runner.invoke(main, ["import-pg", str(path), "-o", str(tmp_path / "a.tpk"), "--config", str(arch),
                                 "--codec", "zlib", "--level", "9", "--json", "--code", str(arch)])
    fast = runner.invoke(main, ["import-pg", str(path), "-o", str(tmp_path / "b.tpk"), "--config", str(arch),
                                "--codec", "zlib", "--level", "0", "--json"])
    assert small.exit_code == fast.exit_code == 0, small.output + fast.output
    small, fast = json.loads(small.stdout), json.loads(fast.stdout)
    assert small["code_bytes"] == arch.stat().st_size and fast["code_bytes"] == 0
    assert small["bytes"] < fast["bytes"] == (tmp_path / "b.tpk").stat().st_size  # level 0 stores
    over = runner.invoke(main, ["import-pg", str(path), "-o", str(tmp_path / "c.tpk"), "--config", str(arch),
                                "--codec", "zlib", "--level", "9", "--budget", str(small["bytes"] + small["code_bytes"] - 1), "--code", str(arch)])
    assert over.exit_code == 1 and not (tmp_path / "c.tpk").exists()


def test_cli_import_pg_errors(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(zlib.compress(pg_raw(1, ONE, saved({"s": Exploit(tmp_path / "m")}))))
    runner = CliRunner()
    res = runner.invoke(main, ["import-pg", str(bad), "-o", str(tmp_path / "x.tpk"),
                               "--config", str(_arch_json(tmp_path, ARCH))])
    assert res.exit_code == ArtifactError.exit_code and "scales" in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.tpk").exists()
    res = runner.invoke(main, ["import-pg", str(bad), "-o", str(tmp_path / "x.tpk"),
                               "--config", str(_arch_json(tmp_path, {"layers": 2}))])
    assert res.exit_code == ConfigError.exit_code and "unknown key 'layers'" in res.stderr


# ---------------------------------------------------------------- f32 plain tensors in .tpk

def test_f32_plain_tensors_round_trip_exactly():
    spec = MaskSpec.parse("binary")
    exact = np.array([1 + 2**-20, -3.1415927, 1e-30], dtype=np.float32)  # none fits in fp16
    ticket = Ticket(3, {}, [MaskedTensor("w", (4, 4), "xavier_uniform", spec, np.ones((4, 4), np.uint8)),
                            PlainTensor("f32", exact), PlainTensor("f16", exact.astype(np.float16))])
    info = artifact.parse_artifact(artifact.encode_artifact(ticket))
    encs = {t["name"]: t["sections"][0]["enc"] for t in info.tensors[1:]}
    assert encs == {"f32": "f32", "f16": "f16"}
    back = artifact.decode_artifact(info)
    assert back.tensors[1].data.dtype == np.float32 and np.array_equal(back.tensors[1].data, exact)
    assert back.tensors[2].data.dtype == np.float16
    artifact.verify_ticket(back, info.header["weights_sha256"])


def test_f32_section_with_an_f16_size_is_refused():
    spec = MaskSpec.parse("binary")
    ticket = Ticket(3, {}, [MaskedTensor("w", (4, 4), "xavier_uniform", spec, np.ones((4, 4), np.uint8)),
                            PlainTensor("p", np.ones(3, np.float32))])
    data = artifact.encode_artifact(ticket, codec="none")
    header = artifact.parse_artifact(data).header
    sec = header["tensors"][1]["sections"][0]
    assert (sec["enc"], sec["raw"]) == ("f32", 12)
    sec["raw"] = 6  # the size 3 f16 values would have
    payload = data[artifact.PREFIX.size + artifact.PREFIX.unpack_from(data)[4]:-4]
    with pytest.raises(HeaderError, match="'f32' of 12 B"):
        artifact.parse_artifact(artifact._assemble(header, payload, "none"))


# ---------------------------------------------------------------- views that lie about their size

def _pg_bytes_with_scales(scales: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(scales, buf)
    return zlib.compress(struct.pack("<II", 7, 4) + struct.pack("<I", 0) + buf.getvalue())


@pytest.mark.parametrize("n", [2**28, 2**40])
def test_expanded_scale_is_refused_before_it_is_materialised(n):
    data = _pg_bytes_with_scales({"x": torch.zeros(1).expand(n)})
    assert len(data) < 1000  # the red-team's 590-byte file
    with pytest.raises(DecodeError, match="expanded or overlapping"):
        parse_pg_bytes(data)


def test_dense_views_and_the_scale_element_cap():
    pg = parse_pg_bytes(_pg_bytes_with_scales({"t": torch.arange(12.0).reshape(3, 4).t(),
                                               "s": torch.arange(8.0)[2:6]}))
    assert pg.scales["t"].tolist() == torch.arange(12.0).reshape(3, 4).t().tolist()
    assert pg.scales["s"].tolist() == [2.0, 3.0, 4.0, 5.0]
    with pytest.raises(LimitError, match="cap"):
        parse_pg_bytes(_pg_bytes_with_scales({"s": torch.zeros(100)}), PgLimits(max_total_elements=99))
    with pytest.raises(DecodeError, match="non-finite"):
        parse_pg_bytes(_pg_bytes_with_scales({"s": torch.tensor([1.0, float("nan")])}))
