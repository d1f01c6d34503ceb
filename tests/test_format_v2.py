"""Format v2: mask none, int8 tensors, rANS sections under auto, the weight and model digests."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from ticketpack.errors import HeaderError, UsageError, VerificationError
from ticketpack.format import philox
from ticketpack.format.container import (assemble, check_digests, decode_artifact, encode_artifact,
                                         parse_artifact)
from ticketpack.format.digest import (canonical_bytes, combine_digests, model_sha256, tensor_sha256,
                                      weights_sha256_v2)
from ticketpack.format.maskspec import MaskSpec
from ticketpack.format.tensors import Int8Tensor, MaskedTensor, PlainTensor, Ticket

from tests.tiny import make_ticket


def adapter_ticket() -> Ticket:
    """A seeded backbone with no mask (row scales) and int8 adapters."""
    gen = np.random.default_rng(0)
    return Ticket(seed=11, config={"adapter_rank": 2}, tensors=[
        MaskedTensor("w", (6, 8), "he_uniform", MaskSpec.parse("none"), None,
                     np.linspace(0.5, 2, 6).astype(np.float16)),
        MaskedTensor("v", (4, 4), "xavier_uniform", MaskSpec.parse("none"), None, None),
        Int8Tensor("w.adapter_a", gen.integers(-128, 128, (2, 8), dtype=np.int8),
                   np.array([0.01, -0.02], np.float16)),
        Int8Tensor("w.adapter_b", gen.integers(-128, 128, (6, 2), dtype=np.int8),
                   np.arange(1, 7, dtype=np.float16) / 64),
    ], eval={"seq_len": 64, "tokenizer": {"kind": "bytes"}})


def _reseal(data: bytes, edit) -> bytes:
    info = parse_artifact(data)
    header = info.header
    edit(header)
    return assemble(header, info.payload, "zstd", info.version)


def test_mask_none_parses_and_stores_nothing():
    spec = MaskSpec.parse("none")
    assert str(spec) == "none" and not spec.stored and spec.kind == "none"


@pytest.mark.parametrize("codec", ["auto", "zstd", "zlib", "none"])
def test_mask_none_and_int8_round_trip(codec):
    ticket = adapter_ticket()
    info = parse_artifact(encode_artifact(ticket, codec=codec))
    roles = {t["name"]: [s["role"] for s in t["sections"]] for t in info.tensors}
    assert roles == {"w": ["scale"], "v": [], "w.adapter_a": ["q", "scale"], "w.adapter_b": ["q", "scale"]}
    assert [s["enc"] for s in info.tensors[2]["sections"]] == ["i8", "f16"]
    back = decode_artifact(info)
    weights, digests = check_digests(back, info.header, info.version)
    frozen = philox.frozen_weight(11, "w", (6, 8), "he_uniform")
    assert np.array_equal(weights["w"], frozen * np.linspace(0.5, 2, 6).astype(np.float16)
                          .astype(np.float32)[:, None])
    assert np.array_equal(weights["v"], philox.frozen_weight(11, "v", (4, 4), "xavier_uniform"))
    a = ticket.tensors[2]
    assert np.array_equal(weights["w.adapter_a"], a.q.astype(np.float32) * a.scale.astype(np.float32)[:, None])
    assert back.eval == ticket.eval and digests["model_sha256"] == info.header["model_sha256"]


def test_v1_files_cannot_hold_v2_content():
    data = encode_artifact(adapter_ticket())
    info = parse_artifact(data)
    as_v1 = assemble(info.header, info.payload, "zstd", 1)
    with pytest.raises(HeaderError, match="format version 1|mask none is format version 2"):
        parse_artifact(as_v1)


def test_v2_refuses_v1_and_illegal_encodings():
    data = encode_artifact(make_ticket(), codec="none")

    def to_ans0(h):
        h["tensors"][0]["sections"][0]["enc"] = "ans0"

    with pytest.raises(HeaderError, match="encoding 'ans0'"):
        parse_artifact(_reseal(data, to_ans0))

    def planes_for_binary(h):
        h["tensors"][0]["sections"][0]["enc"] = "planes"

    with pytest.raises(HeaderError, match="encoding 'planes', expected one of bits, rans0, ransrow"):
        parse_artifact(_reseal(data, planes_for_binary))


@pytest.mark.parametrize("key, value", [("config", {"note": "other"}),
                                        ("eval", {"seq_len": 65, "tokenizer": {"kind": "bytes"}})])
def test_model_digest_covers_config_and_eval(key, value):
    data = encode_artifact(adapter_ticket())
    edited = parse_artifact(_reseal(data, lambda h: h.update({key: value})))
    with pytest.raises(VerificationError, match="model_sha256.*weights match"):
        check_digests(decode_artifact(edited), edited.header, edited.version)


def test_weights_digest_is_per_tensor_then_combined():
    ticket = make_ticket()
    weights = ticket.effective_arrays()
    per = []
    for name, w in weights.items():
        raw = name.encode()
        record = struct.pack("<I", len(raw)) + raw + struct.pack("<I", w.ndim) + \
            struct.pack(f"<{w.ndim}Q", *w.shape) + w.astype("<f4").tobytes()
        per.append(hashlib.sha256(record).digest())
        assert tensor_sha256(name, w) == per[-1]
    expected = hashlib.sha256(b"".join(per)).hexdigest()
    assert combine_digests(per) == weights_sha256_v2(weights.items(), threads=1) == expected
    assert weights_sha256_v2(weights.items(), threads=3) == expected
    assert parse_artifact(encode_artifact(ticket)).header["weights_sha256"] == expected


def test_canonical_encoding_known_answer():
    value = {"b": [1, 2.5, None, True], "a": "x", "é": False}
    assert canonical_bytes(value).hex() == (
        "07" "03000000"                       # object of 3, keys by UTF-8 bytes: a, b, é
        "01000000" "61" "05" "01000000" "78"  # "a": "x"
        "01000000" "62" "06" "04000000"       # "b": array of 4
        "03" "0100000000000000"               # 1
        "04" "0000000000000440"               # 2.5 as binary64
        "00" "02"                             # null, true
        "02000000" "c3a9" "01")               # "é": false
    assert canonical_bytes(1) != canonical_bytes(1.0)
    with pytest.raises(ValueError):
        canonical_bytes(2**63)


def test_model_digest_definition():
    w = "ab" * 32
    expected = hashlib.sha256(b"ticketpack/model-sha256/v2\x00" + bytes.fromhex(w)
                              + canonical_bytes({"x": 1}) + b"\x00").hexdigest()
    assert model_sha256(w, {"x": 1}, None) == expected


def test_auto_picks_rans_for_large_masks():
    gen = np.random.default_rng(1)
    tensors = [
        MaskedTensor("bin", (64, 256), "xavier_uniform", MaskSpec.parse("binary"),
                     (gen.random((64, 256)) < 0.1).astype(np.uint8)),
        MaskedTensor("multi", (64, 256), "he_uniform", MaskSpec.parse("multibit:4"),
                     np.minimum(gen.geometric(0.6, (64, 256)) - 1, 3).astype(np.uint8)),
        MaskedTensor("nm", (64, 256), "he_uniform", MaskSpec.parse("nm:2:4"),
                     gen.permuted(np.tile(np.array([1, 1, 0, 0], np.uint8), (64 * 64, 1)), axis=1)
                     .reshape(64, 256)),
    ]
    ticket = Ticket(seed=2, config={}, tensors=tensors)
    info = parse_artifact(encode_artifact(ticket))
    encs = {t["name"]: t["sections"][0]["enc"] for t in info.tensors}
    assert encs["bin"] in ("rans0", "ransrow") and encs["multi"] == "rans0" and encs["nm"] == "ransnm"
    back = decode_artifact(info)
    for a, b in zip(ticket.tensors, back.tensors):
        assert np.array_equal(a.levels, b.levels)
    check_digests(back, info.header, info.version)


def test_int8_refuses_bad_shapes():
    with pytest.raises(UsageError, match="one per row"):
        Int8Tensor("x", np.zeros((3, 2), np.int8), np.zeros(2, np.float16))
    with pytest.raises(UsageError, match="int8"):
        Int8Tensor("x", np.zeros((3, 2), np.int16), np.zeros(3, np.float16))


def test_plain_tensor_kinds_still_round_trip():
    ticket = Ticket(seed=1, config={}, tensors=[PlainTensor("g", np.array([1.5, -2], np.float32))])
    info = parse_artifact(encode_artifact(ticket))
    assert info.tensors[0]["sections"][0]["enc"] == "f32"
    assert decode_artifact(info).tensors[0].data.dtype == np.float32
