"""Format v3: signed masks, the normal init rules, layouts, the rANS lane minimum, and the
version rule that keeps every v3 addition out of v1 / v2 files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ticketpack.errors import DecodeError, HeaderError, UsageError
from ticketpack.format import constants as c
from ticketpack.format import philox, rans
from ticketpack.format.container import (assemble, check_digests, decode_artifact, encode_artifact,
                                         parse_artifact)
from ticketpack.format.maskspec import MaskSpec
from ticketpack.format.tensors import MaskedTensor, PlainTensor, TernaryTensor, Ticket


def signed_ticket(K: int = 4, shape=(12, 20)) -> Ticket:
    gen = np.random.default_rng(K)
    levels = gen.integers(-(K - 1), K, size=shape, dtype=np.int8)
    return Ticket(seed=5, config={"mask": f"signed:{K}"}, tensors=[
        MaskedTensor("w", shape, "he_normal", MaskSpec.parse(f"signed:{K}"), levels,
                     np.float16(0.5)),
        MaskedTensor("c", (6, 3, 3), "xavier_normal", MaskSpec.parse("binary"),
                     (gen.random((6, 3, 3)) < 0.5).astype(np.uint8), layout="conv"),
        MaskedTensor("e", (7, 5), "normal_std", MaskSpec.parse("none"), None, None, "in_out", 0.02),
    ])


def _reseal(data: bytes, edit, version: int | None = None) -> bytes:
    info = parse_artifact(data)
    edit(info.header)
    return assemble(info.header, info.payload, "zstd", version or info.version)


def test_version_constants():
    assert c.FORMAT_VERSION == 3 and c.READ_VERSIONS == (1, 2, 3)
    assert c.MODEL_DIGEST_TAG == b"ticketpack/model-sha256/v2\x00"


@pytest.mark.parametrize("K", [2, 4, 128])
def test_signed_spec(K):
    spec = MaskSpec.parse(f"signed:{K}")
    assert (spec.kind, spec.levels, spec.alphabet, spec.offset, str(spec)) == \
        ("signed", K, 2 * K - 1, K - 1, f"signed:{K}")


@pytest.mark.parametrize("text", ["signed:1", "signed:129", "signed:", "signed:-2", "signed"])
def test_bad_signed_spec(text):
    with pytest.raises(Exception, match="mask"):
        MaskSpec.parse(text)


@pytest.mark.parametrize("K", [2, 4, 128])
@pytest.mark.parametrize("codec", ["auto", "none", "zstd"])
def test_signed_ticket_round_trips_bit_exactly(K, codec):
    ticket = signed_ticket(K)
    data = encode_artifact(ticket, codec=codec)
    info = parse_artifact(data)
    assert info.version == 3
    entry = info.tensors[0]
    assert entry["mask"] == f"signed:{K}" and entry["sections"][0]["enc"] in ("planes", "rans0")
    back = decode_artifact(info)
    assert back.tensors[0].levels.dtype == np.int8
    assert np.array_equal(back.tensors[0].levels, ticket.tensors[0].levels)
    weights, _ = check_digests(back, info.header, info.version)
    frozen = philox.frozen_weight(5, "w", (12, 20), "he_normal")
    want = (frozen * ticket.tensors[0].levels.astype(np.float32)) * np.float32(0.5)
    assert weights["w"].tobytes() == want.tobytes()
    assert info.tensors[1]["layout"] == "conv" and "layout" not in info.tensors[0]
    assert info.tensors[2]["init_std"] == 0.02 and back.tensors[2].init_std == 0.02
    assert back.tensors[2].layout == "in_out" and back.tensors[1].layout == "conv"


@pytest.mark.parametrize("enc", ["planes", "rans0"])
def test_signed_sections_code_level_plus_k_minus_1(enc):
    from ticketpack.format import codecs
    from ticketpack.format.sections import mask_levels, mask_symbols

    spec = MaskSpec.parse("signed:3")
    levels = np.array([-2, -1, 0, 1, 2, 0], np.int8)
    symbols = mask_symbols(levels, spec)
    assert symbols.tolist() == [0, 1, 2, 3, 4, 2]
    raw = codecs.encode(enc, symbols, K=5, shape=(6,))
    assert np.array_equal(mask_levels(codecs.decode(enc, raw, K=5, shape=(6,)), spec), levels)
    with pytest.raises(UsageError, match="levels"):
        mask_symbols(np.array([3], np.int8), spec)


def test_signed_planes_symbol_above_the_alphabet_is_refused():
    from ticketpack.format import codecs

    # signed:2: 3 symbols in 2 planes; symbol 3 (both planes set) does not exist
    with pytest.raises(DecodeError, match="levels below 3"):
        codecs.decode("planes", bytes([1, 1]), K=3, shape=(1,))


# ---------------------------------------------------------------- v3 additions in older files

def _v2_with(edit) -> bytes:
    plain = Ticket(seed=1, config={}, tensors=[MaskedTensor("w", (4, 6), "he_uniform", MaskSpec.parse("binary"),
                                                            np.ones((4, 6), np.uint8))])
    return _reseal(encode_artifact(plain), edit, version=2)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h["tensors"][0].update(layout="in_out"), "layout"),
    (lambda h: h["tensors"][0].update(layout="out_in"), "layout"),
    (lambda h: h["tensors"][0].update(init="he_normal"), "he_normal"),
    (lambda h: h["tensors"][0].update(init="normal_std", init_std=0.1), "init"),
    (lambda h: h["tensors"][0].update(mask="signed:2"), "signed"),
])
@pytest.mark.parametrize("version", [1, 2])
def test_v3_additions_are_refused_in_older_files(edit, match, version):
    with pytest.raises(HeaderError, match=match):
        parse_artifact(_reseal(_v2_with(lambda h: None), edit, version))


def test_the_same_edits_are_legal_in_v3():
    for edit in (lambda h: h["tensors"][0].update(layout="in_out"),
                 lambda h: h["tensors"][0].update(init="he_normal")):
        _reseal(_v2_with(lambda h: None), edit, 3)  # parses (digests differ: not checked here)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h["tensors"][0].update(layout="conv"), "rank 3..5"),
    (lambda h: h["tensors"][0].update(layout="in_col"), "layout"),
    (lambda h: h["tensors"][0].update(layout=3), "layout"),
    (lambda h: h["tensors"][0].update(init="normal_std"), "init_std"),
    (lambda h: h["tensors"][0].update(init_std=0.1), "init_std"),
    (lambda h: h["tensors"][0].update(init="normal_std", init_std=0), "init_std"),
    (lambda h: h["tensors"][0].update(init="normal_std", init_std=-1.0), "init_std"),
    (lambda h: h["tensors"][0].update(init="normal_std", init_std=1e7), "init_std"),
    (lambda h: h["tensors"][0].update(init="normal_std", init_std=True), "init_std"),
    (lambda h: h["tensors"][0].update(init="normal_std", init_std="0.1"), "init_std"),
    (lambda h: h["tensors"][0].update(mask="signed:129"), "mask"),
    (lambda h: h["tensors"][0].update(mask="signed:02"), "canonical"),
    (lambda h: h.update(rng="torch-mt19937-cpu/2.13.0") or h["tensors"][0].update(layout="in_out"), "allows only"),
])
def test_v3_entry_rules(edit, match):
    with pytest.raises(HeaderError, match=match):
        parse_artifact(_reseal(_v2_with(lambda h: None), edit, 3))


def test_layout_on_other_kinds_is_refused():
    ticket = Ticket(seed=1, config={}, tensors=[PlainTensor("p", np.ones((2, 3), np.float16))])
    data = _reseal(encode_artifact(ticket), lambda h: h["tensors"][0].update(layout="in_out"))
    with pytest.raises(HeaderError, match="only on masked"):
        parse_artifact(data)


def test_signed_masks_allow_planes_and_rans0_only():
    data = encode_artifact(signed_ticket(2), codec="none")
    bad = _reseal(data, lambda h: h["tensors"][0]["sections"][0].update(enc="bits"))
    with pytest.raises(HeaderError, match="planes, rans0"):
        parse_artifact(bad)


# ---------------------------------------------------------------- lanes

@pytest.mark.parametrize("S, L", [(0, 1), (1, 1), (4096, 1), (4097, 2), (8192, 2), (8193, 4),
                                  (2**24, 4096), (2**24 + 1, 4096), (2**30, 4096)])
def test_min_lanes(S, L):
    assert c.min_lanes(S) == L


@pytest.mark.parametrize("kernels", [k for k in (rans.NUMPY_KERNELS, rans.NUMBA_KERNELS) if k])
def test_writers_use_at_least_min_lanes(kernels):
    gen = np.random.default_rng(1)
    levels = (gen.random(1 << 17) < 0.02).astype(np.uint8)  # small stream: v2 would use 1 lane
    data = rans.encode_rans0(levels, 2, kernels=kernels)
    per, e = data[3], data[4]  # count of zeros (3 bytes), B, lane byte
    assert 1 << e == c.min_lanes(-(-levels.size // per)) > 1
    grid = (gen.random((512, 512)) < np.linspace(0.001, 0.01, 512)[:, None]).astype(np.uint8)
    data = rans.encode_ransrow(grid, kernels=kernels)
    assert np.array_equal(rans.decode_ransrow(data, 512, 512, kernels=kernels), grid)


def test_v3_readers_refuse_fewer_lanes_v2_readers_do_not():
    levels = (np.random.default_rng(2).random(1 << 16) < 0.3).astype(np.uint8)
    one = rans.encode_rans0(levels, 2, lanes_log2=0)  # S = 8192 symbols: Lmin = 2
    with pytest.raises(DecodeError, match="1 lanes for 8192 symbols.*at least 2"):
        rans.decode_rans0(one, levels.size, 2)
    assert np.array_equal(rans.decode_rans0(one, levels.size, 2, version=2), levels)
    grid = levels.reshape(256, 256)
    row = rans.encode_ransrow(grid, lanes_log2=0)
    with pytest.raises(DecodeError, match="at least"):
        rans.decode_ransrow(row, 256, 256)
    assert np.array_equal(rans.decode_ransrow(row, 256, 256, version=2), grid)


def test_size_report_of_a_signed_mask(tmp_path):
    from ticketpack import api
    from ticketpack.format.container import write_artifact

    ticket = signed_ticket(3, (40, 50))
    write_artifact(ticket, tmp_path / "s.tpk")
    report = api.size(tmp_path / "s.tpk")
    row = next(r for r in report.tensors if r.name == "w")
    levels = ticket.tensors[0].levels
    assert row.density == pytest.approx(np.count_nonzero(levels) / levels.size)
    counts = np.bincount(levels.reshape(-1) + 2, minlength=5) / levels.size
    assert row.entropy_bits_per_connection == pytest.approx(-(counts * np.log2(counts)).sum())
    assert report.total_bytes == (tmp_path / "s.tpk").stat().st_size


def test_an_artifact_with_too_few_lanes_is_refused_in_v3_only():
    from ticketpack.format.container import append_sections, ticket_header

    levels = (np.random.default_rng(3).random((256, 256)) < 0.3).astype(np.uint8)
    ticket = Ticket(seed=2, config={}, tensors=[MaskedTensor("w", (256, 256), "he_uniform",
                                                             MaskSpec.parse("binary"), levels)])
    raw = rans.encode_rans0(levels, 2, lanes_log2=0)  # 8192 symbols in one lane: Lmin is 2
    payload = bytearray()
    entry = {"name": "w", "kind": "masked", "shape": [256, 256], "init": "he_uniform",
             "mask": "binary", "scale": "none",
             "sections": append_sections(payload, [("mask", "rans0", "none", raw, len(raw))])}
    header = ticket_header(ticket, [entry], {})
    with pytest.raises(DecodeError, match="w/mask: rans0: 1 lanes for 8192 symbols"):
        decode_artifact(parse_artifact(assemble(header, bytes(payload), "zstd", 3)))
    info = parse_artifact(assemble(header, bytes(payload), "zstd", 2))
    assert np.array_equal(decode_artifact(info).tensors[0].levels, levels)
