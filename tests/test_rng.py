"""The format-defined random stream: known answers, golden bytes, and agreement
between the numpy reference, the numba fast path and torch (CPU, CUDA)."""

import hashlib
import math
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketpack.nn import frozen as rng
from ticketpack.errors import UsageError
from ticketpack.format import philox

# Random123 kat_vectors, "philox4x32 10" lines: counter[4], key[2] -> output[4].
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

# SHA-256 of the little-endian float32 bytes of frozen tensors, fixed when the
# format was defined: any change in any library or code path shows up here.
GOLDEN_CASES = [(1234, "blocks.0.mlp.fc.weight", (64, 48)), (0, "tok_emb.weight", (257, 3)),
                (4294967295, "h.3.attn.proj.weight", (5, 2, 3))]
GOLDEN = {
    "xavier_uniform": ["04289bef7cd07c5681b212d5d1de946a993bea439ce7794436fc8554c82935a4",
                       "b4a03d68b967de089990797dc772b5148c06fd43f9176c043068948d9219a83c",
                       "287e82ca265f7595684edd663c88d8a8ba11df01de35701309e441dd6db6bd9f"],
    "he_uniform": ["436306438f9769c0ef8a8cab09695d2cc030822d305b1745aeb96921630762f9",
                   "8910c9db7667bc00f806415d436c8c560d378f0a8acdbe8f4ba7b533412cd19f",
                   "6c8a2f57f2ab35213b9acdc00866de7a16d3eff15d25e3d91195d3a5cbbcd0e6"],
    "signed_constant_xavier": ["7a1a3b122c839a4495d09c4b131d75d1df85ebabf1d1931cfb623f4652b4de66",
                               "6c2ac9cf39933e6af412298e8f77e590c3419d2cecbb360ad90ccceb4b79df5e",
                               "f8515423f2ef351837d820dc021d0631cc01e82b3a9d46582f8248cf60b45c48"],
    "signed_constant_he": ["9f2283edcafcfeca23443bd505d7580e8f28d4f37e4db2ba969cf8f3b61ff18a",
                           "0960b13ef578185416dd808c3ce228f2eb0432a0d1a023fa797eff8cbb7e21ec",
                           "28d112e6515601b820648a92b267ff0a9ef3c9bbc90281ca5dcec6de77cd7008"],
    # format v3: the normal family (normal_std with init_std 0.05, STD below)
    "xavier_normal": ["7f454458b4cc62bd20da780812468cf4094889eeedfa10c4b4e634a733e5c518",
                      "205bd502c87116d35f4ee03f7399abc50129c91befdae7325a3b57db8f76e0f6",
                      "12a17745c39f94c33e72191c9468163a3a8697b889214c537de47ed0d6f996ac"],
    "he_normal": ["43f11f60e03500d3fca2c368d06ee003441a2583131a97fcda2e5d6bd4cedae5",
                  "3fb5721a15a4f5c13648447a35631ca875ca6cf1bc5e6517f2bf144b5e76a29b",
                  "ca4c070551b0d019a1c517bf8fe06f6579f132c644fd79a51cf6a554bf9b5cdb"],
    "normal_std": ["4a5af4e6c839595b7bceb09b753181918bfe65a7cbf8bcf84992569e933c8468",
                   "f666dd1715c44acb336b6b3fa294c4e51fd3ca06a1af0837a6abeacade87a61b",
                   "ffc2809ea4ea369a2e730b1a1751f2f5aa74bf88f9f050599330bfe320885fd1"],
}
STD = {"normal_std": 0.05}  # the init_std of the rules that take one

# Shapes with sizes 1, 2, 3, 4, 5, odd and 3-D, so partial blocks are covered.
SHAPES = [(1,), (2,), (3, 1), (4,), (5,), (7, 3), (16, 17), (3, 4, 5)]


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, "<f4").tobytes()).hexdigest()


def same_bits(*arrays: np.ndarray) -> bool:
    return all(a.dtype == np.float32 and a.shape == arrays[0].shape and a.tobytes() == arrays[0].tobytes()
               for a in arrays)


# ----------------------------------------------------------------------------- Philox and the stream layout


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_philox_known_answers(counter, key, expected):
    out = rng.philox4x32_10(np.array([counter], np.uint32), key)
    assert out.dtype == np.uint32 and out.tolist() == [list(expected)]


def test_philox_rows_are_independent():
    counters = np.array([k[0] for k in KAT[:2]] * 3, np.uint32)
    out = rng.philox4x32_10(counters, (0, 0))
    assert out[0].tolist() == list(KAT[0][2])
    assert (out[::2] == out[0]).all() and not (out[1] == out[0]).any()


def test_stream_block_zero_is_the_zero_known_answer():
    assert rng.stream_words(0, 0, 0, 4).tolist() == list(KAT[0][2])
    assert rng.stream_words_reference(0, 0, 0, 4).tolist() == list(KAT[0][2])


@pytest.mark.parametrize("j", [0, 1, 6, 4 * 0xFFFFFFFF + 3, 4 * 2**32 + 2, 4 * (2**40 + 12345) + 1])
def test_word_j_is_lane_of_its_counter_block(j):
    seed, sid = 0xDEADBEEF, 0x0123456789ABCDEF
    b = j // 4
    counter = np.array([[b & 0xFFFFFFFF, b >> 32, sid & 0xFFFFFFFF, sid >> 32]], np.uint32)
    expected = rng.philox4x32_10(counter, (seed, 0))[0, j % 4]
    assert rng.stream_words(seed, sid, j, 1)[0] == expected
    assert rng.stream_words_reference(seed, sid, j, 1)[0] == expected


def test_stream_id_is_sha256_prefix_little_endian():
    # SHA-256("") = e3b0c442 98fc1c14 ...; SHA-256("abc") = ba7816bf 8f01cfea ...
    assert rng.stream_id("") == 0x141CFC9842C4B0E3
    assert rng.stream_id("abc") == 0xEACF018FBF1678BA
    assert rng.stream_id("é") == int.from_bytes(hashlib.sha256(b"\xc3\xa9").digest()[:8], "little")


def test_constants():
    """The one place the tests pin the stream id and the init-rule table (other tests use the
    constants): a change here is a format change."""
    from ticketpack.format.constants import FAN_RULES, INIT_FAMILIES, NORMAL_POLY_BITS, InitRule

    assert rng.RNG_ID == "philox4x32-10/v1"
    assert rng.PG_RNG_PREFIX == "torch-mt19937-cpu/"
    assert rng.INIT_RULES == {"xavier_uniform": InitRule("uniform", "fan_in+fan_out"),
                              "he_uniform": InitRule("uniform", "fan_in"),
                              "signed_constant_xavier": InitRule("signed_constant", "fan_in+fan_out"),
                              "signed_constant_he": InitRule("signed_constant", "fan_in"),
                              "xavier_normal": InitRule("normal", "fan_in+fan_out"),
                              "he_normal": InitRule("normal", "fan_in"),
                              "normal_std": InitRule("normal", "init_std")}
    assert INIT_FAMILIES == {"uniform": 6.0, "signed_constant": 2.0, "normal": 2.0}
    assert NORMAL_POLY_BITS == (0x40225C21, 0xC0214869, 0x41A51139, 0xC2FD8B5A, 0x43E9BDA6,
                                0xC47C2672, 0x449D7861, 0xC452B743, 0x436A2C2B)
    assert FAN_RULES == {"fan_in": (1, 0), "fan_out": (0, 1), "fan_in+fan_out": (1, 1)}


def test_every_rule_has_golden_digests_and_a_known_family():
    # a new rule of an existing family needs only its row and its digests here; a new family
    # also needs its kernel in format/philox.py, format/philox_numba.py and nn/frozen.py
    assert set(GOLDEN) == set(rng.INIT_RULES)
    from ticketpack.format.constants import FAN_RULES, INIT_FAMILIES, STD_FROM_ENTRY

    for rule in rng.INIT_RULES.values():
        assert rule.family in INIT_FAMILIES and (rule.fan in FAN_RULES or rule.fan == STD_FROM_ENTRY)


def rules_of(family: str) -> list[str]:
    return [name for name, rule in rng.INIT_RULES.items() if rule.family == family]


# ----------------------------------------------------------------------------- fast path == reference


@pytest.mark.parametrize("start", range(9))
def test_stream_words_every_alignment(start):
    sid = 2**63 + 5
    full = rng.stream_words_reference(7, sid, 0, 32)
    for count in range(14):
        assert np.array_equal(rng.stream_words(7, sid, start, count), full[start:start + count])
        assert np.array_equal(rng.stream_words_reference(7, sid, start, count), full[start:start + count])


def test_stream_words_across_the_low_counter_word():
    start = 4 * (2**32 - 3) + 1  # b_lo wraps to 0 and b_hi becomes 1 inside this range
    fast = rng.stream_words(99, 12345, start, 50)
    assert np.array_equal(fast, rng.stream_words_reference(99, 12345, start, 50))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sid=st.integers(0, 2**64 - 1),
       start=st.integers(0, 2**40), count=st.integers(0, 70))
def test_stream_words_fast_equals_reference(seed, sid, start, count):
    assert np.array_equal(rng.stream_words(seed, sid, start, count),
                          rng.stream_words_reference(seed, sid, start, count))


@pytest.mark.parametrize("rule", rng.INIT_RULES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fast_reference_torch_agree(rule, shape):
    ref = rng.frozen_weight_reference(42, "w", shape, rule, init_std=STD.get(rule))
    fast = rng.frozen_weight(42, "w", shape, rule, init_std=STD.get(rule))
    tch = rng.frozen_weight_torch(42, "w", shape, rule, init_std=STD.get(rule))
    assert tch.dtype == torch.float32 and tch.device.type == "cpu"
    assert same_bits(ref, fast, tch.numpy())


@pytest.mark.parametrize("rule", rng.INIT_RULES)
def test_golden_digests(rule):
    for (seed, name, shape), digest in zip(GOLDEN_CASES, GOLDEN[rule]):
        std = STD.get(rule)
        fast = rng.frozen_weight(seed, name, shape, rule, init_std=std)
        assert sha(fast) == digest
        assert sha(rng.frozen_weight_reference(seed, name, shape, rule, init_std=std)) == digest
        assert sha(rng.frozen_weight_torch(seed, name, shape, rule, init_std=std).numpy()) == digest


def test_golden_first_values():
    w = rng.frozen_weight(1234, "blocks.0.mlp.fc.weight", (64, 48), "xavier_uniform")
    assert w.ravel()[:4].tolist() == [0.20551343262195587, -0.1057550460100174,
                                      -0.17083151638507843, 0.03624871373176575]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("rule", rng.INIT_RULES)
def test_torch_cuda_agrees(rule):
    for (seed, name, shape), digest in zip(GOLDEN_CASES, GOLDEN[rule]):
        cuda = rng.frozen_weight_torch(seed, name, shape, rule, device="cuda", init_std=STD.get(rule))
        assert cuda.device.type == "cuda" and sha(cuda.cpu().numpy()) == digest
    shape = (1031, 1027)  # > one torch chunk, odd size
    cuda = rng.frozen_weight_torch(3, "big", shape, rule, device="cuda", init_std=STD.get(rule)).cpu().numpy()
    assert same_bits(cuda, rng.frozen_weight(3, "big", shape, rule, init_std=STD.get(rule)))


@pytest.mark.parametrize("rule", ["xavier_uniform", "signed_constant_he", "he_normal"])
def test_threads_do_not_change_values(rule):
    shape = (601, 503)  # above the parallel threshold, odd size
    one = rng.frozen_weight(5, "t", shape, rule, threads=1)
    assert same_bits(one, rng.frozen_weight(5, "t", shape, rule, threads=2),
                     rng.frozen_weight(5, "t", shape, rule, threads=7),
                     rng.frozen_weight(5, "t", shape, rule))


def test_torch_crosses_chunks():
    shape = (4 * (1 << 16) + 9,)  # more than one 2**16-block CPU torch chunk
    tch = rng.frozen_weight_torch(8, "long", shape, "he_uniform").numpy()
    assert same_bits(tch, rng.frozen_weight(8, "long", shape, "he_uniform"))


# ----------------------------------------------------------------------------- statelessness


@pytest.mark.parametrize("threads", [1, 2])
def test_any_sub_range_alone(threads):
    shape = (700, 401)
    full = rng.frozen_weight(11, "s", shape, "he_uniform").ravel()
    sid = rng.stream_id("s")
    ranges = [(0, 1), (1, 3), (2, 2), (3, 5), (280_699, 1), (123_457, 150_001), (5, full.size - 5)]
    for start, count in reversed(ranges):
        out = np.empty(count, np.float32)
        rng.fill_values(out, 11, sid, start, "he_uniform", shape, threads=threads)
        assert same_bits(out, full[start:start + count])


def test_tensors_alone_in_any_order():
    specs = [("a.weight", (30, 20), "xavier_uniform"), ("b.weight", (9, 9), "signed_constant_xavier"),
             ("c.weight", (5, 40), "he_uniform")]
    forward = [rng.frozen_weight(3, *s) for s in specs]
    rng.stream_words(3, 1, 0, 1000)  # unrelated draws in between change nothing
    backward = [rng.frozen_weight(3, *s) for s in reversed(specs)][::-1]
    for f, b in zip(forward, backward):
        assert same_bits(f, b)
    assert not np.array_equal(forward[0], rng.frozen_weight(4, *specs[0]))  # the seed matters
    assert not np.array_equal(forward[0], rng.frozen_weight(3, "a.bias", (30, 20), "xavier_uniform"))


# ----------------------------------------------------------------------------- init rules


def test_fans_and_bounds():
    assert rng.fans((3, 5)) == (5, 3)
    assert rng.fans((256, 64)) == (64, 256)  # an embedding (vocab, dim): fan_in = dim
    assert rng.fans((4, 3, 2)) == (6, 4)
    assert rng.fans((7,)) == (1, 7)
    assert rng.init_bound("xavier_uniform", (3, 5)) == math.sqrt(6 / 8)
    assert rng.init_bound("he_uniform", (3, 5)) == math.sqrt(6 / 5)
    assert rng.init_bound("signed_constant_xavier", (3, 5)) == math.sqrt(2 / 8)
    assert rng.init_bound("signed_constant_he", (3, 5)) == math.sqrt(2 / 5)


@pytest.mark.parametrize("rule", rules_of("signed_constant"))
def test_signed_constant_is_exactly_plus_minus_c(rule):
    shape = (48, 40)
    w = rng.frozen_weight(9, "sc", shape, rule)
    c = np.float32(rng.init_bound(rule, shape))
    assert set(np.unique(w).tolist()) == {float(c), float(-c)}
    words = rng.stream_words(9, rng.stream_id("sc"), 0, w.size)
    assert np.array_equal(w.ravel() > 0, words >> 31 == 0)  # top bit 0 -> +c
    assert 0.45 < (w > 0).mean() < 0.55


@pytest.mark.parametrize("rule", rules_of("uniform"))
def test_uniform_strictly_inside_bound(rule):
    shape = (64, 50)
    w = rng.frozen_weight(13, "u", shape, rule)
    b = rng.init_bound(rule, shape)
    assert (np.abs(w) < b).all() and (np.abs(w) < np.float32(b)).all() and (w != 0).all()
    assert 0.45 < (np.abs(w) < b / 2).mean() < 0.55 and abs(w.mean()) < 0.05 * b


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5000), min_size=1, max_size=3).map(tuple),
       rule=st.sampled_from(rules_of("uniform")))
def test_uniform_extreme_words_stay_inside(shape, rule):
    words = np.array([0, 0xFF, 0x100, 0x7FFFFFFF, 0x80000000, 0xFFFFFEFF, 0xFFFFFFFF], np.uint32)
    v = rng.values_from_words(words, rule, shape)
    b = rng.init_bound(rule, shape)
    assert (np.abs(v) < b).all() and (np.abs(v) < np.float32(b)).all()
    # u and 2**24 - 1 - u give opposite values; the low 8 bits are dropped
    assert v[0] == -v[6] and v[1] == v[0] and v[2] == -v[5] and v[3] == -v[4] and v[4] > 0


@settings(max_examples=30, deadline=None)
@given(words=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20),
       shape=st.lists(st.integers(1, 3000), min_size=1, max_size=2).map(tuple))
def test_uniform_is_one_rounded_float32_multiply(words, shape):
    # A 24-bit by 24-bit product is exact in float64, so one rounding to float32
    # gives the correctly rounded float32 product.
    v = rng.values_from_words(np.array(words, np.uint32), "xavier_uniform", shape)
    s = float(np.float32(rng.init_bound("xavier_uniform", shape) * 2.0**-24))
    expected = [np.float32(float(2 * (w >> 8) - (2**24 - 1)) * s) for w in words]
    assert v.tolist() == [float(e) for e in expected]


# ----------------------------------------------------------------------------- memory and errors


def test_no_temporary_larger_than_output():
    shape = (1000, 1000)
    tracemalloc.start()
    try:
        rng.frozen_weight(1, "m", shape, "xavier_uniform", threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1_000_000 * 1.05


@pytest.mark.parametrize("seed", [-1, 2**32, 1.0, True, "1", None])
def test_bad_seed(seed):
    with pytest.raises(UsageError, match="seed"):
        rng.frozen_weight(seed, "w", (2, 2), "xavier_uniform")
    with pytest.raises(UsageError, match="seed"):
        rng.frozen_weight_torch(seed, "w", (2, 2), "xavier_uniform")
    with pytest.raises(UsageError, match="seed"):
        rng.stream_words(seed, 0, 0, 4)


def test_seed_edges_accepted():
    for seed in (0, 2**32 - 1, np.uint32(7)):
        assert rng.frozen_weight(seed, "w", (2, 2), "he_uniform").shape == (2, 2)


@pytest.mark.parametrize("rule", ["xavier", "kaiming_uniform", "", None])
def test_bad_rule(rule):
    with pytest.raises(UsageError, match="init_rule"):
        rng.frozen_weight(1, "w", (2, 2), rule)
    with pytest.raises(UsageError, match="init_rule"):
        rng.frozen_weight_torch(1, "w", (2, 2), rule)
    with pytest.raises(UsageError, match="init_rule"):
        rng.init_bound(rule, (2, 2))


@pytest.mark.parametrize("shape", [(), (0, 3), (3, 0), (-1,), (2.0, 3), (True, 2), "ab", 5, None, (2**31, 2**31, 2)])
def test_bad_shape(shape):
    with pytest.raises(UsageError, match="shape"):
        rng.frozen_weight(1, "w", shape, "xavier_uniform")
    with pytest.raises(UsageError, match="shape"):
        rng.frozen_weight_torch(1, "w", shape, "xavier_uniform")
    with pytest.raises(UsageError, match="shape"):
        rng.fans(shape)


def test_other_bad_arguments():
    with pytest.raises(UsageError, match="name"):
        rng.frozen_weight(1, b"w", (2, 2), "he_uniform")
    with pytest.raises(UsageError, match="name"):
        rng.stream_id("\ud800")  # a lone surrogate has no UTF-8 form
    with pytest.raises(UsageError, match="threads"):
        rng.frozen_weight(1, "w", (2, 2), "he_uniform", threads=0)
    with pytest.raises(UsageError, match="start"):
        rng.stream_words(1, 0, -1, 4)
    with pytest.raises(UsageError, match="count"):
        rng.stream_words(1, 0, 0, -4)
    with pytest.raises(UsageError, match="stream_id"):
        rng.stream_words(1, 2**64, 0, 4)
    with pytest.raises(UsageError, match="counter"):
        rng.philox4x32_10(np.zeros((2, 3), np.uint32), (0, 0))
    with pytest.raises(UsageError, match="out"):
        rng.fill_values(np.zeros(8, np.float64), 1, 0, 0, "he_uniform", (8,))


def test_parallel_regeneration_keeps_torchs_thread_count():
    # numba's omp layer would share torch's OpenMP runtime and replace its thread count for
    # the rest of the process; a fresh process, since numba picks its layer once
    code = ("import torch; torch.set_num_threads(1)\n"
            "torch.__config__.parallel_info(); torch.ones(64, 64) @ torch.ones(64, 64)  # OpenMP started\n"
            "from ticketpack.format import philox\n"
            "philox.frozen_weight(1, 'blocks.0.mlp.fc.weight', (1024, 1024), 'xavier_uniform', threads=2)\n"
            "info = torch.__config__.parallel_info()\n"
            "assert 'at::get_num_threads() : 1' in info, info\n"
            "assert 'omp_get_max_threads() : 1' in info or 'OpenMP' not in info, info\n")
    if not philox.has_numba():
        pytest.skip("numba not installed: no parallel kernel")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "TICKETPACK_NUMBA": "always"})  # numba even for one 1M tensor


# ----------------------------------------------------------------------------- format v3: normal, layouts


def test_normal_family_every_magnitude_agrees_across_paths():
    """The value depends on |u1 - u2| and its sign only: all 2 * 65536 - 1 differences, through
    numpy, the numba kernel's element function and torch, give the same bits."""
    from ticketpack.format import philox, philox_numba

    d = np.arange(-65535, 65536)
    u1, u2 = np.maximum(d, 0), np.maximum(-d, 0)
    words = (u1 | (u2 << 16)).astype(np.uint32)
    std = np.float32(0.75)
    ref = philox.normal_values(words, std)
    tch = rng.normal_torch(torch.from_numpy(words.astype(np.int64)), torch.tensor(std)).numpy()
    nb = np.array([philox_numba._normal(np.uint64(w), std) for w in words[::97]], np.float32)
    assert same_bits(ref, tch) and same_bits(ref[::97], nb)
    mags = ref[65535:]  # d >= 0: increasing, the first is +0.0, and -value for -d
    assert (np.diff(mags) > 0).all() and mags[0] == 0 and not np.signbit(mags[0])
    assert same_bits(ref[:65535][::-1], -mags[1:])


def test_normal_family_is_close_to_a_gaussian():
    w = rng.frozen_weight(11, "n", (1000, 1000), "normal_std", init_std=1.0).ravel().astype(np.float64)
    assert abs(w.mean()) < 0.005 and abs(w.std() - 1) < 0.005 and np.abs(w).max() < 3.84
    share = np.mean(np.abs(w) < 1.0)  # P(|Z| < 1) = 0.6827
    assert abs(share - 0.6827) < 0.003


def test_normal_rules_std():
    shape = (30, 20)
    assert rng.init_bound("xavier_normal", shape) == math.sqrt(2 / 50)
    assert rng.init_bound("he_normal", shape) == math.sqrt(2 / 20)
    assert rng.init_bound("normal_std", shape, init_std=0.02) == 0.02
    assert rng.value_scale("normal_std", shape, init_std=0.02) == np.float32(0.02)


@pytest.mark.parametrize("std", [None, 0.0, -1.0, float("nan"), float("inf"), 1e7, True, "0.1"])
def test_normal_std_needs_a_valid_init_std(std):
    with pytest.raises(UsageError, match="init_std"):
        rng.frozen_weight(1, "w", (2, 2), "normal_std", init_std=std)


def test_init_std_only_for_normal_std():
    with pytest.raises(UsageError, match="init_std"):
        rng.frozen_weight(1, "w", (2, 2), "he_normal", init_std=0.1)


@pytest.mark.parametrize("shape, layout, want", [
    ((7,), "out_in", (1, 7)), ((6, 5), "out_in", (5, 6)), ((6, 5), "in_out", (6, 5)),
    ((8, 4, 3), "conv", (12, 24)), ((8, 4, 3, 3), "conv", (36, 72)), ((2, 3, 2, 2, 2), "conv", (24, 16))])
def test_layout_fans(shape, layout, want):
    assert rng.fans(shape, layout) == want
    fan_in, fan_out = want
    assert rng.init_bound("he_uniform", shape, layout) == math.sqrt(6 / fan_in)
    assert rng.init_bound("xavier_normal", shape, layout) == math.sqrt(2 / (fan_in + fan_out))


@pytest.mark.parametrize("shape, layout", [((6,), "in_out"), ((2, 3, 4), "in_out"), ((6, 5), "conv"),
                                           ((1, 1, 1, 1, 1, 1), "conv"), ((3, 3), "in_col")])
def test_layout_rank_and_name_are_checked(shape, layout):
    with pytest.raises(UsageError, match="layout"):
        rng.frozen_weight(1, "w", shape, "he_uniform", layout=layout)


def test_layout_changes_only_the_scale():
    a = rng.frozen_weight(4, "w", (6, 10), "he_normal", layout="in_out")
    b = rng.frozen_weight(4, "w", (6, 10), "normal_std", init_std=math.sqrt(2 / 6))
    t = rng.frozen_weight_torch(4, "w", (6, 10), "he_normal", layout="in_out")
    assert same_bits(a, b, t.numpy())
