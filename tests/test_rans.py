"""The rANS coding of format v2 (docs/FORMAT.md section 5.2): round trips, numpy == numba bytes,
golden bytes, size bounds against the empirical entropy, and hostile streams."""

from __future__ import annotations

from math import comb, log2

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketpack.errors import DecodeError, UsageError
from ticketpack.format import rans
from ticketpack.format.constants import min_lanes

from tests.tiny import HAVE_V1_EXTRA

KERNELS = [k for k in (rans.NUMPY_KERNELS, rans.NUMBA_KERNELS) if k is not None]
IDS = [k.name for k in KERNELS]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def entropy_bytes(levels: np.ndarray) -> float:
    """n * H(order-0 empirical) in bytes."""
    counts = np.bincount(levels.reshape(-1))
    counts = counts[counts > 0]
    return float((counts * np.log2(levels.size / counts)).sum()) / 8


def nm_mask(rows: int, cols: int, N: int, M: int, seed: int = 0) -> np.ndarray:
    gen = np.random.default_rng(seed)
    groups = np.zeros((rows * cols // M, M), np.uint8)
    order = np.argsort(gen.random(groups.shape), axis=1)[:, :N]
    np.put_along_axis(groups, order, 1, axis=1)
    return groups.reshape(rows, cols)


# --- round trips and identical bytes from both kernel sets ---------------------------------

def check_rans0(levels: np.ndarray, K: int, lanes_log2: int | None = None) -> bytes:
    data = {k.name: rans.encode_rans0(levels, K, kernels=k, lanes_log2=lanes_log2) for k in KERNELS}
    assert len(set(data.values())) == 1, "numpy and numba kernels wrote different bytes"
    blob = data[KERNELS[0].name]
    for k in KERNELS:
        out = rans.decode_rans0(blob, levels.size, K, kernels=k)
        assert out.dtype == np.uint8 and np.array_equal(out, levels.reshape(-1))
    return blob


@FAST
@given(st.integers(1, 17).flatmap(lambda K: st.tuples(
    st.just(K), st.lists(st.integers(0, K - 1), max_size=300))), st.none() | st.integers(0, 5))
def test_rans0_round_trip(case, lanes_log2):
    K, values = case
    check_rans0(np.array(values, np.uint8), K, lanes_log2)


@FAST
@given(st.integers(0, 9), st.integers(0, 40), st.floats(0, 1), st.integers(0, 2**32 - 1),
       st.integers(0, 5))
def test_ransrow_round_trip(rows, cols, density, seed, lanes_log2):
    gen = np.random.default_rng(seed)
    bits = (gen.random((rows, cols)) < gen.random((rows, 1)) * density).astype(np.uint8)
    if rows > 2:
        bits[0], bits[1] = 0, 1  # all-zero and all-one rows cost nothing
    data = {k.name: rans.encode_ransrow(bits, kernels=k, lanes_log2=lanes_log2) for k in KERNELS}
    assert len(set(data.values())) == 1
    for k in KERNELS:
        assert np.array_equal(rans.decode_ransrow(data["numpy"], rows, cols, kernels=k), bits)


@FAST
@given(st.sampled_from([(2, 4), (1, 4), (0, 4), (4, 4), (4, 8), (3, 7), (1, 1), (5, 16), (2, 64)]),
       st.integers(0, 5), st.integers(0, 4), st.integers(0, 2**32 - 1), st.integers(0, 4))
def test_ransnm_round_trip(nm, rows, groups, seed, lanes_log2):
    N, M = nm
    mask = nm_mask(rows, groups * M, N, M, seed)
    data = {k.name: rans.encode_ransnm(mask, N, M, kernels=k, lanes_log2=lanes_log2) for k in KERNELS}
    assert len(set(data.values())) == 1
    for k in KERNELS:
        out = rans.decode_ransnm(data["numpy"], rows, groups * M, N, M, kernels=k)
        assert np.array_equal(out, mask)


@pytest.mark.parametrize("p", [0.02, 0.5, 0.97])
def test_larger_streams_match_between_kernels(p):
    levels = (np.random.default_rng(1).random(60_003) < p).astype(np.uint8)
    check_rans0(levels, 2, lanes_log2=4)
    multi = np.random.default_rng(2).choice(4, 50_001, p=[0.6, 0.25, 0.1, 0.05]).astype(np.uint8)
    check_rans0(multi, 4, lanes_log2=7)
    assert check_rans0(multi[:20_000], 4) != check_rans0(multi[:20_000], 4, lanes_log2=3)


def test_decoders_run_in_parallel_threads():
    from concurrent.futures import ThreadPoolExecutor
    gen = np.random.default_rng(9)
    masks = [(gen.random((64, 256)) < p).astype(np.uint8) for p in (0.1, 0.3, 0.5, 0.7)]
    blobs = [rans.encode_rans0(m, 2) for m in masks] + [rans.encode_ransrow(m) for m in masks]
    jobs = [(lambda b=b: rans.decode_rans0(b, 64 * 256, 2)) for b in blobs[:4]]
    jobs += [(lambda b=b: rans.decode_ransrow(b, 64, 256).reshape(-1)) for b in blobs[4:]]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda job: job(), jobs * 3))
    for i, out in enumerate(outs):
        assert np.array_equal(out, masks[i % 4].reshape(-1))


def test_edge_cases():
    assert rans.encode_rans0(np.zeros(0, np.uint8), 2) == b"\x00"
    assert rans.decode_rans0(b"\x00", 0, 2).shape == (0,)
    assert rans.encode_rans0(np.zeros(5, np.uint8), 1) == b""  # K = 1: nothing to store
    assert np.array_equal(rans.decode_rans0(b"", 5, 1), np.zeros(5, np.uint8))
    assert rans.encode_ransrow(np.zeros((0, 4), np.uint8)) == b"\x00\x00"
    assert rans.encode_ransrow(np.ones((3, 0), np.uint8)) == b"\x00\x00"
    assert rans.encode_ransnm(nm_mask(4, 8, 0, 4), 0, 4) == b""  # C(M, N) = 1
    assert rans.encode_ransnm(nm_mask(4, 8, 4, 4), 4, 4) == b""
    assert np.array_equal(rans.decode_ransnm(b"", 2, 8, 4, 4), np.ones((2, 8), np.uint8))
    # Position 0 of a group is its first element: rank 0 of 2:4 is 1100.
    groups = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]], np.uint8)
    assert rans._ranks(groups, 2).tolist() == [0, 1, 2, 5]
    assert np.array_equal(rans._patterns(2, 4)[[0, 1, 2, 5]], groups)


@pytest.mark.parametrize("cols", [64, 61, 3])
def test_ransrow_models_padding_and_direct_rows(cols):
    gen = np.random.default_rng(cols)
    bits = (gen.random((40, cols)) < np.linspace(0.1, 0.9, 40)[:, None]).astype(np.uint8)
    bits[:, 0], bits[:, 1] = 0, 1  # every row mixed: 64 columns decode straight into the grid
    data = {k.name: rans.encode_ransrow(bits, kernels=k) for k in KERNELS}
    assert len(set(data.values())) == 1
    for k in KERNELS:
        assert np.array_equal(rans.decode_ransrow(data["numpy"], 40, cols, kernels=k), bits)


@pytest.mark.skipif(rans.NUMBA_KERNELS is None, reason="numba not importable")
def test_row_model_tables_match_between_kernels():
    counts = np.array([[5, 3], [1, 99], [50, 50], [7, 1]], np.int64)
    weight = rans.level_weights(counts)
    tables = []
    for k in KERNELS:
        out = (np.empty((4, 256), np.int64), np.empty((4, 257), np.int64), np.empty((4, 1024), np.uint8))
        k.row_models(weight, 8, *out)
        tables.append(out)
    for a, b in zip(*tables):
        assert np.array_equal(a, b)
    assert np.array_equal(tables[0][0], rans.product_table(counts, 8))


def test_counts_beyond_32_bits_follow_the_exact_rule():
    big = rans.product_freqs([3 << 40, 1 << 40], 2)
    assert big.tolist() == rans.product_freqs([3, 1], 2).tolist()


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="level 3"):
        rans.encode_rans0(np.array([0, 3], np.uint8), 3)
    with pytest.raises(UsageError, match="exactly 2 ones"):
        rans.encode_ransnm(np.array([[1, 1, 1, 0]], np.uint8), 2, 4)
    with pytest.raises(UsageError, match="multiple of M"):
        rans.encode_ransnm(np.zeros((1, 6), np.uint8), 2, 4)
    with pytest.raises(UsageError, match="0/1"):
        rans.encode_ransrow(np.full((2, 2), 2, np.uint8))
    with pytest.raises(UsageError, match="lanes_log2"):
        rans.encode_rans0(np.array([0, 1, 1], np.uint8), 2, lanes_log2=13)


# --- golden bytes: the format must never drift silently ------------------------------------

GOLDEN = [
    ("rans0", lambda: rans.encode_rans0(np.array([0, 1, 1, 0, 0, 0, 1, 0, 0, 0], np.uint8), 2),
     "0708007f8fd40d"),
    ("rans0 ternary", lambda: rans.encode_rans0(np.array([1, 1, 0, 2, 1, 1, 1, 0, 1], np.uint8), 3),
     "0206040050e6f31d"),
    ("rans0 two lanes", lambda: rans.encode_rans0(
        np.array([int(c) for c in "011010001110010110100111"], np.uint8), 2, lanes_log2=1),
     "0b08019f0f01002f99de00b1dc"),
    ("rans0 four lanes", lambda: rans.encode_rans0(
        (np.random.default_rng(5).random(100) < 0.3).astype(np.uint8), 2, lanes_log2=2),
     "4a08023ae0a70b1f440300a5e903005ce7200012cd24342a9a3c71"),
    ("ransrow two lanes", lambda: rans.encode_ransrow(
        (np.random.default_rng(6).random((3, 20)) < np.array([[0.2], [0.5], [0.8]])).astype(np.uint8),
        lanes_log2=1), "0404700a080101016626057ec82b0af6db83"),
    ("rans0 one level", lambda: rans.encode_rans0(np.array([2, 2, 2], np.uint8), 4), "000003"),
    ("ransrow", lambda: rans.encode_ransrow(np.array([[0] * 8, [1] * 8, [0, 1, 0, 0, 0, 0, 1, 0]],
                                                     np.uint8)), "000480020800f39d5900"),
    ("ransnm", lambda: rans.encode_ransnm(np.array([[1, 1, 0, 0, 0, 1, 0, 1],
                                                   [0, 0, 1, 1, 1, 0, 1, 0]], np.uint8), 2, 4),
     "0500cb0e711c"),
]


@pytest.mark.parametrize("name,encode,expected", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_bytes(name, encode, expected):
    assert encode().hex() == expected


def test_golden_bytes_with_words():
    levels = (np.random.default_rng(5).random(600) < 0.3).astype(np.uint8)
    data = rans.encode_rans0(levels, 2)
    assert data.hex() == (
        "9b030800d6d1662151dee585a0811db41a8eb51889069d4a74e6263795ae38535bcdd787c57a00deaba7d0"
        "5899d39cfe423eefc2b15c259bcfccd66c321c2f400256c76f445600dd7644")
    assert np.array_equal(rans.decode_rans0(data, 600, 2), levels)


def test_frequency_rules():
    freq = rans.product_freqs([3, 1], 2)  # weights 3/4, 1/4: 9/16, 3/16, 3/16, 1/16 of 2^16
    assert freq.tolist() == [36864, 12288, 12288, 4096]
    assert rans.uniform_freqs(6).tolist() == [10923] * 4 + [10922] * 2
    freq = rans.product_freqs([10**6, 1], 8)  # every symbol at least 1, the largest absorbs
    assert freq.min() == 1 and freq.sum() == 1 << 16 and freq.argmax() == 0
    table = rans.product_table(np.array([[3, 1], [1, 3], [7, 3]]), 2)  # one model per row
    assert table[0].tolist() == [36864, 12288, 12288, 4096] and table[1].tolist() == [4096, 12288, 12288, 36864]
    assert np.array_equal(table[2], rans.product_freqs([7, 3], 2))


# --- sizes against the order-0 bound --------------------------------------------------------

@pytest.mark.parametrize("p", [0.01, 0.05, 0.3, 0.5, 0.9, 0.99])
def test_binary_size_within_bound(p):
    # + the final states of the format-v3 minimum lanes (at most 4 bytes per 4096 symbols)
    levels = (np.random.default_rng(3).random(300_000) < p).astype(np.uint8)
    assert len(rans.encode_rans0(levels, 2)) <= entropy_bytes(levels) * 1.005 + 64 + 4 * min_lanes(levels.size)


@pytest.mark.parametrize("probs", [[0.7, 0.2, 0.07, 0.03], [0.25] * 4, [0.05, 0.9, 0.05],
                                   [0.3, 0.4, 0.3], list(np.exp(-np.arange(8)) / np.exp(-np.arange(8)).sum()),
                                   list(np.exp(-np.arange(16) / 2) / np.exp(-np.arange(16) / 2).sum())])
def test_multilevel_size_within_bound(probs):
    gen = np.random.default_rng(4)
    levels = gen.choice(len(probs), 200_000, p=np.array(probs) / sum(probs)).astype(np.uint8)
    assert len(rans.encode_rans0(levels, len(probs))) <= entropy_bytes(levels) * 1.005 + 64 + 4 * min_lanes(levels.size)


def test_ransrow_sizes():
    gen = np.random.default_rng(6)
    uniform = (gen.random((256, 512)) < 0.3).astype(np.uint8)
    header = len(rans._row_header(uniform.sum(axis=1)))
    assert len(rans.encode_ransrow(uniform)) <= len(rans.encode_rans0(uniform, 2)) + header
    varying = (gen.random((256, 512)) < np.linspace(0.02, 0.7, 256)[:, None]).astype(np.uint8)
    by_row = sum(entropy_bytes(row) for row in varying)
    row_size = len(rans.encode_ransrow(varying))
    assert row_size <= by_row * 1.005 + 64 + 4 * min_lanes(varying.size) + len(rans._row_header(varying.sum(axis=1)))
    assert row_size < 0.95 * len(rans.encode_rans0(varying, 2))


@pytest.mark.parametrize("N,M", [(2, 4), (1, 4), (4, 8), (8, 16), (3, 7)])
def test_ransnm_size(N, M):
    mask = nm_mask(128, 64 * M, N, M)
    bound = mask.size // M * log2(comb(M, N)) / 8
    assert len(rans.encode_ransnm(mask, N, M)) <= bound * 1.005 + 64


# --- hostile input --------------------------------------------------------------------------

def sample_streams():
    gen = np.random.default_rng(7)
    binary = (gen.random(5000) < 0.3).astype(np.uint8)
    grid = (gen.random((20, 50)) < 0.4).astype(np.uint8)
    nm = nm_mask(8, 32, 2, 4)
    return [
        ("rans0", rans.encode_rans0(binary, 2), lambda d: rans.decode_rans0(d, 5000, 2)),
        ("ransrow", rans.encode_ransrow(grid), lambda d: rans.decode_ransrow(d, 20, 50)),
        ("ransnm", rans.encode_ransnm(nm, 2, 4), lambda d: rans.decode_ransnm(d, 8, 32, 2, 4)),
    ]


@pytest.mark.parametrize("kernels", KERNELS, ids=IDS)
def test_truncated_and_extended_streams_are_refused(kernels):
    for name, data, decode in sample_streams():
        for bad in (data[:-1], data[:-2], data[:-4], data + b"\x00\x00", data + b"\x00",
                    data[:len(data) // 2]):
            with pytest.raises(DecodeError):
                decode(bad)


def test_bad_headers_are_refused():
    data = rans.encode_rans0((np.arange(100) % 3 == 0).astype(np.uint8), 2)
    with pytest.raises(DecodeError, match="sum to 101"):
        rans.decode_rans0(b"\x32\x33", 100, 3)  # 50 + 51 > n
    with pytest.raises(DecodeError, match="exceeds"):
        rans.decode_rans0(b"\xff\x01", 100, 2)
    with pytest.raises(DecodeError, match="elements per symbol"):
        rans.decode_rans0(data[:1] + b"\x03" + data[2:], 100, 2)
    with pytest.raises(DecodeError, match="lanes"):
        rans.decode_rans0(data[:2] + b"\x0d" + data[3:], 100, 2)
    with pytest.raises(DecodeError, match="below 2\\^16"):
        rans.decode_rans0(data[:3] + b"\x00\x00\x00\x00" + data[7:], 100, 2)
    with pytest.raises(DecodeError, match="bytes after a one-level"):
        rans.decode_rans0(b"\x64\x00", 100, 2)
    with pytest.raises(DecodeError, match="not minimal"):
        rans.decode_ransrow(b"\x00\x02\x01", 2, 4)  # offsets 1, 0 fit in width 1
    with pytest.raises(DecodeError, match="exceeds the row length"):
        rans.decode_ransrow(b"\x03\x02\x08", 2, 4)  # counts 3 and 3 + 2
    with pytest.raises(DecodeError, match="one pattern"):
        rans.decode_ransnm(b"\x00", 1, 4, 4, 4)
    with pytest.raises(DecodeError, match="ranks per symbol"):
        rans.decode_ransnm(b"\x07\x00" + bytes(4), 1, 8, 2, 4)  # 6^7 > 2^16


def test_huge_declared_size_is_refused_before_allocating():
    data = rans.encode_rans0(np.array([0, 1] * 20, np.uint8), 2)
    huge = 1 << 40
    forged = rans.put_varint(huge // 2) + data[1:]
    with pytest.raises(DecodeError, match="cannot hold|needs at least"):
        rans.decode_rans0(forged, huge, 2)
    with pytest.raises(DecodeError, match="cannot hold"):
        rans.decode_rans0(forged, huge, 2, version=2)
    with pytest.raises(DecodeError, match="cannot hold"):
        rans.decode_ransnm(rans.encode_ransnm(nm_mask(1, 8, 2, 4), 2, 4), 1 << 20, 1 << 20, 2, 4, version=2)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_streams_raise_decode_error_or_decode(data):
    for name, blob, decode in sample_streams():
        pos = data.draw(st.integers(0, len(blob) - 1))
        value = data.draw(st.integers(0, 255))
        bad = blob[:pos] + bytes([value]) + blob[pos + 1:]
        try:
            decode(bad)
        except DecodeError:
            pass


@pytest.mark.skipif(not HAVE_V1_EXTRA, reason="the bench compares v1's codecs (the bench extra has constriction)")
def test_bench_script_runs():
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "bench" / "rans_speed.py"
    run = subprocess.run([sys.executable, str(script), "--elements", "16384", "--repeats", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("| binary p=") == 7 and "| 2:4 | ransnm |" in run.stdout


# --- the scalar decoder for streams of few lanes -------------------------------------------

@FAST
@given(st.integers(2, 40), st.integers(0, 4), st.integers(0, 2**31), st.integers(1, 3000))
def test_few_lane_decoder_agrees_with_numpy_on_good_and_damaged_streams(K, lanes_log2, seed, n):
    gen = np.random.default_rng(seed)
    levels = np.minimum(gen.geometric(0.4, n) - 1, K - 1).astype(np.uint8)
    blob = rans.encode_rans0(levels, K, kernels=rans.NUMPY_KERNELS, lanes_log2=lanes_log2)
    for data in (blob, blob[:-2], blob[:-1] + bytes([blob[-1] ^ 0x5A]), blob + b"\0\0"):
        results = []
        for k in (rans.NUMPY_KERNELS, rans.FEW_LANE_KERNELS):
            try:
                results.append(rans.decode_rans0(data, n, K, kernels=k).tobytes())
            except DecodeError as exc:
                results.append(str(exc))
        assert results[0] == results[1]
    assert rans.decode_rans0(blob, n, K).tobytes() == levels.tobytes()  # the default choice
