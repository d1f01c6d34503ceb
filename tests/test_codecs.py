"""Mask / trit encodings: round trips, exact bytes, size bounds, the auto choice, hostile input."""

from __future__ import annotations

from math import ceil, comb, log2, prod

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketpack.format import codecs
from ticketpack.format.codecs import nm as nm_codec
from ticketpack.format.compression import decompress
from ticketpack.errors import DecodeError, UsageError
from ticketpack.format.constants import V1_ENTROPY_ENCODINGS

from tests.tiny import HAVE_V1_EXTRA

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bernoulli(n: int, p: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(np.uint8)


def nm_mask(groups: int, n: int, m: int, seed: int = 0) -> np.ndarray:
    """A flat mask with exactly n ones in every group of m, patterns uniform at random."""
    order = np.argsort(np.random.default_rng(seed).random((groups, m)), axis=1)
    return (order < n).astype(np.uint8).reshape(-1)


def entropy_bytes(symbols: np.ndarray, K: int) -> float:
    return symbols.size * codecs.entropy_bits(symbols, K) / 8


def round_trip(name: str, symbols: np.ndarray, K: int, shape: tuple, n: int = 0, m: int = 0):
    data = codecs.encode(name, symbols, K=K, shape=shape, n=n, m=m)
    out = codecs.decode(name, data, K=K, shape=shape, n=n, m=m)
    assert out.dtype == np.uint8 and out.shape == tuple(shape)
    np.testing.assert_array_equal(out, np.asarray(symbols).reshape(shape))
    return data


# ---------------------------------------------------------------- round trips

@st.composite
def tensors(draw):
    """(symbols, K, shape): shapes with 0..3 dims (zero-sized and odd ones included),
    levels from a random histogram that may put everything on one level."""
    K = draw(st.sampled_from([2, 3, 4, 16]))
    shape = tuple(draw(st.lists(st.integers(0, 37), min_size=0, max_size=3)))
    seed = draw(st.integers(0, 2**32 - 1))
    gen = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["random", "single", "skewed"]))
    size = prod(shape)
    if kind == "single":
        symbols = np.full(size, draw(st.integers(0, K - 1)), np.uint8)
    else:
        weights = gen.dirichlet(np.full(K, 0.3 if kind == "skewed" else 3.0))
        symbols = gen.choice(K, size=size, p=weights).astype(np.uint8)
    return symbols.reshape(shape), K, shape


@FAST
@given(tensors())
def test_every_applicable_encoding_round_trips(case):
    symbols, K, shape = case
    names = [e for e in codecs.ENCODINGS if codecs.applicable(e, symbols, K, shape)]
    assert "ans0" in names and "planes" in names
    assert ("bits" in names) == (K == 2) and ("trits5" in names) == (K == 3)
    for name in names:
        round_trip(name, symbols, K, shape)


@FAST
@given(st.sampled_from([(2, 4), (1, 4), (4, 8), (0, 4), (4, 4), (3, 7), (1, 1), (8, 16)]),
       st.integers(0, 5), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_nm_round_trips(nm, rows, groups, seed):
    n, m = nm
    shape = (rows, groups * m)
    mask = nm_mask(rows * groups, n, m, seed).reshape(shape)
    assert codecs.applicable("nm", mask, 2, shape, n, m)
    round_trip("nm", mask, 2, shape, n, m)


@pytest.mark.parametrize("name", ["bits", "planes", "ans0", "ansrow"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 13), (1, 9), (9, 1), (2, 3, 5)])
@pytest.mark.parametrize("fill", ["zeros", "ones", "half"])
def test_binary_edge_cases_round_trip(name, shape, fill):
    n = prod(shape)
    symbols = {"zeros": np.zeros(n), "ones": np.ones(n),
               "half": np.arange(n) % 2}[fill].astype(np.uint8).reshape(shape)
    round_trip(name, symbols, 2, shape)


def test_one_dimensional_and_scalar_tensors():
    for shape in [(), (1,), (11,)]:
        symbols = (np.arange(prod(shape)) % 3).astype(np.uint8).reshape(shape)
        for name in ("planes", "ans0", "trits5"):
            round_trip(name, symbols, 3, shape)
    assert not codecs.applicable("ansrow", np.zeros(5, np.uint8), 2, (5,))


def test_constant_tensors_cost_only_the_header():
    n = 1 << 20
    for level in (0, 1):
        assert len(codecs.encode("ans0", np.full(n, level), K=2, shape=(n,))) <= 4
    assert len(codecs.encode("ans0", np.full(n, 2), K=3, shape=(n,))) <= 8
    mask = np.ones((256, 4096), np.uint8)
    assert len(codecs.encode("ansrow", mask, K=2, shape=mask.shape)) <= 4


def test_large_tensor_coded_in_chunks_round_trips():
    from ticketpack.format.codecs import entropy
    x = bernoulli(entropy.CHUNK * 2 + 123, 0.2, seed=5)
    round_trip("ans0", x, 2, x.shape)


# ---------------------------------------------------------------- exact bytes (format)

def test_bits_golden_bytes():
    symbols = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1])
    assert codecs.encode("bits", symbols, K=2, shape=(11,)) == bytes([0x81, 0x05])


def test_planes_golden_bytes():
    # plane 0 (LSB) of [3, 1, 2] is 1,1,0 -> 0x03; plane 1 is 1,0,1 -> 0x05
    assert codecs.encode("planes", np.array([3, 1, 2]), K=4, shape=(3,)) == bytes([0x03, 0x05])
    assert codecs.encode("planes", np.array([4, 0]), K=5, shape=(2,)) == bytes([0, 0, 1])


def test_trits5_golden_bytes():
    # 2 + 1*3 + 0 + 0 + 1*81 = 86; final byte holds one trit: 2
    symbols = np.array([2, 1, 0, 0, 1, 2])
    assert codecs.encode("trits5", symbols, K=3, shape=(6,)) == bytes([86, 2])
    assert codecs.encode("trits5", np.full(5, 2), K=3, shape=(5,)) == bytes([242])


def test_nm_colex_ranks():
    patterns = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0],
                         [1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1]], np.uint8)
    ranks = nm_codec._rank(patterns, nm_codec._table(4))
    assert ranks.tolist() == list(range(6))
    np.testing.assert_array_equal(nm_codec._unrank(ranks, 2, nm_codec._table(4)), patterns)


@pytest.mark.parametrize("name,symbols,K,shape,nm,hexbytes", [
    ("ans0", [0, 1, 1, 0, 0, 0, 0, 1, 0, 0], 2, (10,), (0, 0), "07a2991925"),
    ("ans0", [2, 0, 2, 2, 1, 2], 4, (6,), (0, 0), "0101041d008030"),
    ("ansrow", [[0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], 2, (3, 4), (0, 0), "0003100100008002"),
    ("nm", [1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1], 2, (12,), (2, 4), "00000018"),
])
def test_entropy_coded_golden_bytes(name, symbols, K, shape, nm, hexbytes):
    # Pins the stream format (constriction's ANS words, our headers): a change here breaks
    # every artifact written before it.
    data = codecs.encode(name, np.array(symbols), K=K, shape=shape, n=nm[0], m=nm[1])
    assert data.hex() == hexbytes
    np.testing.assert_array_equal(codecs.decode(name, data, K=K, shape=shape, n=nm[0], m=nm[1]),
                                  np.array(symbols).reshape(shape))


# ---------------------------------------------------------------- size bounds

@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 0.99])
def test_ans0_within_half_percent_of_entropy(p):
    x = bernoulli(1_000_000, p)
    data = round_trip("ans0", x, 2, x.shape)
    assert len(data) <= 1.005 * entropy_bytes(x, 2) + 64


@pytest.mark.parametrize("K,alpha", [(3, 0.5), (4, 0.3), (16, 0.3), (256, 1.0)])
def test_ans0_multilevel_within_half_percent_of_entropy(K, alpha):
    gen = np.random.default_rng(K)
    x = gen.choice(K, size=1_000_000, p=gen.dirichlet(np.full(K, alpha))).astype(np.uint8)
    data = round_trip("ans0", x, K, x.shape)
    header = 64 if K <= 16 else 2 * K + 64  # one varint per level
    assert len(data) <= 1.005 * entropy_bytes(x, K) + header


def test_ansrow_wins_on_row_structured_masks():
    gen = np.random.default_rng(3)
    densities = gen.choice([0.002, 0.05, 0.5], size=512)
    mask = (gen.random((512, 2048)) < densities[:, None]).astype(np.uint8)
    row = round_trip("ansrow", mask, 2, mask.shape)
    flat = codecs.encode("ans0", mask, K=2, shape=mask.shape)
    row_bound = sum(entropy_bytes(r, 2) for r in mask)
    assert len(row) < 0.8 * len(flat)
    assert len(row) <= 1.005 * row_bound + 512 * 11 / 8 + 64  # counts cost <= 11 bits a row


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (4, 8)])
def test_nm_at_log2_patterns_per_group(n, m):
    mask = nm_mask(1_000_000 // m, n, m).reshape(1000, -1)
    data = round_trip("nm", mask, 2, mask.shape, n, m)
    bound = mask.size / m * log2(comb(m, n)) / 8
    assert len(data) <= 1.003 * bound + 16
    if (n, m) == (2, 4):
        assert 8 * len(data) / mask.size <= 0.65


def test_trits_entropy_coded_and_five_per_byte():
    gen = np.random.default_rng(7)
    trits = gen.choice(3, size=1_000_003, p=[0.2, 0.55, 0.25]).astype(np.uint8)
    ans = round_trip("ans0", trits, 3, trits.shape)
    assert len(ans) <= 1.005 * entropy_bytes(trits, 3) + 64
    packed = round_trip("trits5", trits, 3, trits.shape)
    assert len(packed) == ceil(trits.size / 5)


def test_entropy_bits():
    assert codecs.entropy_bits(np.array([0, 1, 0, 1]), 2) == 1.0
    assert codecs.entropy_bits(np.zeros(10, np.uint8), 2) == 0.0
    assert codecs.entropy_bits(np.arange(16) % 4, 4) == 2.0
    assert codecs.entropy_bits(np.array([], np.uint8), 2) == 0.0


# ---------------------------------------------------------------- the auto choice

def all_options(symbols, K, shape, n=0, m=0):
    from ticketpack.format.compression import compress
    sizes = {}
    for name in codecs.encodings():  # what the current format version writes
        if codecs.applicable(name, symbols, K, shape, n, m):
            raw = codecs.encode(name, symbols, K=K, shape=shape, n=n, m=m)
            for codec in ("none", "zstd", "zlib") if name in codecs.COMPRESSIBLE else ("none",):
                sizes[name, codec] = len(compress(raw, codec))
    return sizes


@pytest.mark.parametrize("case", ["sparse", "dense", "nm", "trits", "rows", "levels", "tiny"])
def test_choose_returns_the_smallest_and_it_decodes(case):
    gen = np.random.default_rng(11)
    n = m = 0
    K, symbols = 2, bernoulli(200_000, 0.01).reshape(200, -1)
    if case == "dense":
        symbols = bernoulli(200_000, 0.46).reshape(400, -1)
    elif case == "nm":
        n, m, symbols = 2, 4, nm_mask(50_000, 2, 4).reshape(100, -1)
    elif case == "trits":
        K, symbols = 3, gen.choice(3, size=(300, 301), p=[0.3, 0.4, 0.3]).astype(np.uint8)
    elif case == "rows":
        p = gen.choice([0.001, 0.3], size=400)[:, None]
        symbols = (gen.random((400, 512)) < p).astype(np.uint8)
    elif case == "levels":
        K, symbols = 4, gen.choice(4, size=(64, 999), p=[0.7, 0.2, 0.07, 0.03]).astype(np.uint8)
    elif case == "tiny":
        symbols = np.array([[1]], np.uint8)
    shape = symbols.shape
    enc, codec, stored, raw_size = codecs.choose(symbols, K=K, shape=shape, n=n, m=m)
    sizes = all_options(symbols, K, shape, n, m)
    assert len(stored) == min(sizes.values()) == sizes[enc, codec]
    raw = decompress(stored, codec, raw_size)
    np.testing.assert_array_equal(codecs.decode(enc, raw, K=K, shape=shape, n=n, m=m), symbols)
    expected = {"sparse": "rans0", "nm": "ransnm", "rows": "ransrow"}
    if case in expected:
        assert enc == expected[case]


def test_choose_level_reaches_the_outer_compressors():
    symbols = (np.arange(40_000) % 7 == 0).astype(np.uint8)  # periodic: zstd/zlib win
    enc, codec, stored, raw_size = codecs.choose(symbols, K=2, shape=symbols.shape, level=3)
    assert codec in ("zstd", "zlib") and len(stored) < raw_size


# ---------------------------------------------------------------- caller errors

def test_encoder_rejects_inputs_it_cannot_code():
    with pytest.raises(UsageError, match="multiple of M"):
        codecs.encode("nm", np.ones((2, 6), np.uint8), K=2, shape=(2, 6), n=2, m=4)
    with pytest.raises(UsageError, match="exactly 2 ones"):
        codecs.encode("nm", np.ones((2, 8), np.uint8), K=2, shape=(2, 8), n=2, m=4)
    with pytest.raises(UsageError, match="K is 3"):
        codecs.encode("bits", np.zeros(4, np.uint8), K=3, shape=(4,))
    with pytest.raises(UsageError, match="K is 2"):
        codecs.encode("trits5", np.zeros(4, np.uint8), K=2, shape=(4,))
    with pytest.raises(UsageError, match="values"):
        codecs.encode("planes", np.array([0, 4]), K=4, shape=(2,))
    with pytest.raises(UsageError, match="elements"):
        codecs.encode("ans0", np.zeros(5, np.uint8), K=2, shape=(2, 3))
    with pytest.raises(UsageError, match="dtype"):
        codecs.encode("ans0", np.zeros(4, np.float32), K=2, shape=(4,))
    with pytest.raises(UsageError, match="encoding"):
        codecs.encode("lzma", np.zeros(4, np.uint8), K=2, shape=(4,))
    assert not codecs.applicable("nm", np.ones(8, np.uint8), 2, (8,), 2, 4)


# ---------------------------------------------------------------- hostile input

def valid_encodings():
    """(name, data, K, shape, n, m) for a small tensor in every encoding."""
    mask = bernoulli(6 * 29, 0.3, seed=1).reshape(6, 29)
    levels = np.random.default_rng(2).integers(0, 5, size=(7, 11)).astype(np.uint8)
    trits = np.random.default_rng(3).integers(0, 3, size=(13,)).astype(np.uint8)
    nm = nm_mask(24, 2, 4).reshape(4, 24)
    cases = [("bits", mask, 2, 0, 0), ("planes", levels, 5, 0, 0), ("ans0", mask, 2, 0, 0),
             ("ans0", levels, 5, 0, 0), ("ansrow", mask, 2, 0, 0), ("nm", nm, 2, 2, 4),
             ("trits5", trits, 3, 0, 0), ("ans0", trits, 3, 0, 0)]
    return [(name, codecs.encode(name, s, K=K, shape=s.shape, n=n, m=m), K, s.shape, n, m)
            for name, s, K, n, m in cases if HAVE_V1_EXTRA or name not in V1_ENTROPY_ENCODINGS]


VALID = valid_encodings()


@pytest.mark.parametrize("name,data,K,shape,n,m", VALID, ids=[f"{c[0]}-K{c[2]}" for c in VALID])
def test_truncated_and_overlong_data_raise(name, data, K, shape, n, m):
    codecs.decode(name, data, K=K, shape=shape, n=n, m=m)  # the control decodes
    for cut in sorted({0, 1, len(data) // 2, len(data) - 1}):
        if name == "nm" and cut == 0:  # the empty stream is the code of all-rank-0 groups
            out = codecs.decode(name, b"", K=K, shape=shape, n=n, m=m)
            assert (out.reshape(-1, m) == [1, 1, 0, 0]).all()
            continue
        with pytest.raises(DecodeError):
            codecs.decode(name, data[:cut], K=K, shape=shape, n=n, m=m)
    for extra in (b"\x00", b"\x01\x00\x00\x00", b"\xff" * 4):
        with pytest.raises(DecodeError):
            codecs.decode(name, data + extra, K=K, shape=shape, n=n, m=m)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.binary(max_size=64), st.integers(0, 2**32 - 1))
def test_random_or_mutated_bytes_raise_only_decode_error(case, junk, seed):
    name, data, K, shape, n, m = case
    gen = np.random.default_rng(seed)
    mutated = bytearray(data)
    if mutated:
        mutated[gen.integers(len(mutated))] ^= 1 << int(gen.integers(8))
    for candidate in (junk, bytes(mutated)):
        try:
            out = codecs.decode(name, candidate, K=K, shape=shape, n=n, m=m)
        except DecodeError:
            continue
        assert out.shape == shape and out.dtype == np.uint8 and int(out.max()) < K


def test_padding_bits_set_raise():
    data = bytearray(codecs.encode("bits", np.zeros(11, np.uint8), K=2, shape=(11,)))
    data[-1] |= 0x80
    with pytest.raises(DecodeError, match="padding"):
        codecs.decode("bits", bytes(data), K=2, shape=(11,))
    planes = bytearray(codecs.encode("planes", np.zeros(5, np.uint8), K=4, shape=(5,)))
    planes[0] |= 0x20
    with pytest.raises(DecodeError, match="padding"):
        codecs.decode("planes", bytes(planes), K=4, shape=(5,))


def test_levels_out_of_range_raise():
    # K = 3 in two planes: level 3 (both bits set) does not exist
    with pytest.raises(DecodeError, match="level 3"):
        codecs.decode("planes", bytes([1, 1]), K=3, shape=(1,))
    with pytest.raises(DecodeError, match="242"):
        codecs.decode("trits5", bytes([243]), K=3, shape=(5,))
    with pytest.raises(DecodeError, match="final byte"):
        codecs.decode("trits5", bytes([9]), K=3, shape=(2,))  # third digit set, two trits


def test_histograms_that_do_not_add_up_raise():
    n = 100
    with pytest.raises(DecodeError, match="sum"):  # level 0 and 1 together exceed n
        codecs.decode("ans0", bytes([60, 60]), K=3, shape=(n,))
    with pytest.raises(DecodeError, match="exceeds"):
        codecs.decode("ans0", bytes([101]), K=2, shape=(n,))
    with pytest.raises(DecodeError, match="overlong"):
        codecs.decode("ans0", bytes([0x85, 0x00]), K=2, shape=(n,))
    # a valid stream whose header claims one more zero than it holds
    x = bernoulli(n, 0.4, seed=9)
    data = codecs.encode("ans0", x, K=2, shape=(n,))
    with pytest.raises(DecodeError):
        codecs.decode("ans0", bytes([data[0] + 1]) + data[1:], K=2, shape=(n,))
    # all-zero header with stream bytes after it
    with pytest.raises(DecodeError, match="single-level"):
        codecs.decode("ans0", bytes([n]) + b"\x01\x00\x00\x00", K=2, shape=(n,))


def test_ansrow_counts_beyond_the_row_raise():
    with pytest.raises(DecodeError, match="exceeds"):
        codecs.decode("ansrow", bytes([9, 0]), K=2, shape=(2, 8))
    with pytest.raises(DecodeError, match="width"):
        codecs.decode("ansrow", bytes([0, 9, 0xff, 0xff, 0xff]), K=2, shape=(2, 8))
    for header in (bytes([0, 1, 0b00]), bytes([1, 1, 0b11])):  # wider / higher than needed
        with pytest.raises(DecodeError, match="not minimal"):
            codecs.decode("ansrow", header, K=2, shape=(2, 8))


def test_decoder_rejects_bad_parameters_as_decode_errors():
    with pytest.raises(DecodeError, match="encoding"):
        codecs.decode("lzma", b"", K=2, shape=(1,))
    with pytest.raises(DecodeError, match="K"):
        codecs.decode("ans0", b"", K=0, shape=(1,))
    with pytest.raises(DecodeError, match="K"):
        codecs.decode("ans0", b"", K=257, shape=(1,))
    with pytest.raises(DecodeError, match="shape"):
        codecs.decode("bits", b"", K=2, shape=(-1,))
    with pytest.raises(DecodeError, match="N:M"):
        codecs.decode("nm", b"", K=2, shape=(8,), n=5, m=4)
    with pytest.raises(DecodeError, match="N:M"):
        codecs.decode("nm", b"", K=2, shape=(8,), n=2, m=10**9)
    with pytest.raises(DecodeError, match="patterns"):
        codecs.decode("nm", b"", K=2, shape=(64,), n=16, m=32)
    with pytest.raises(DecodeError, match="multiple of M"):
        codecs.decode("nm", b"", K=2, shape=(6,), n=2, m=4)
    with pytest.raises(DecodeError, match="K is 3"):
        codecs.decode("bits", b"\x00", K=3, shape=(1,))
