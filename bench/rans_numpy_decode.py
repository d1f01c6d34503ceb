"""Decode time of a 2^24-element mask with the pure-numpy rANS kernels (numba not used):
format v3's minimum lanes bound the rounds to 4096, and each round is one numpy step over all
lanes, so the numpy path stays within seconds (target: <= 2 s per mask).

    python bench/rans_numpy_decode.py [--log2 24] [--repeats 2]

Each mask is encoded by the writer (v3 lanes: max(Lmin(S), the size rule)), then decoded by
``rans.NUMPY_KERNELS`` and checked equal to the input. Figures: best of --repeats, wall time and
the calling thread's CPU time (``time.thread_time``, less disturbed by other jobs).
"""

from __future__ import annotations

import argparse
import sys
import time

sys.modules["numba"] = None  # block numba: encoder and decoder both take the numpy kernels

import numpy as np  # noqa: E402

from timing import best_of  # noqa: E402

from ticketpack.format import rans  # noqa: E402
from ticketpack.format.constants import min_lanes  # noqa: E402


def cases(n: int, seed: int = 0):
    """(label, encode, decode) of masks of n elements."""
    gen = np.random.default_rng(seed)
    cols = 4096
    binary = (gen.random(n) < 0.3).astype(np.uint8)
    yield "binary p=0.3, rans0", binary, lambda: rans.encode_rans0(binary, 2), \
        lambda d, k: rans.decode_rans0(d, n, 2, kernels=k)
    levels = gen.choice(4, n, p=[0.55, 0.3, 0.1, 0.05]).astype(np.uint8)
    yield "4 levels, rans0", levels, lambda: rans.encode_rans0(levels, 4), \
        lambda d, k: rans.decode_rans0(d, n, 4, kernels=k)
    signed = gen.choice(7, n, p=[0.02, 0.08, 0.2, 0.4, 0.2, 0.08, 0.02]).astype(np.uint8)
    yield "signed:4 (7 symbols), rans0", signed, lambda: rans.encode_rans0(signed, 7), \
        lambda d, k: rans.decode_rans0(d, n, 7, kernels=k)
    rows = (gen.random((n // cols, cols)) < np.linspace(0.02, 0.6, n // cols)[:, None]).astype(np.uint8)
    yield "binary, row densities 0.02..0.6, ransrow", rows, lambda: rans.encode_ransrow(rows), \
        lambda d, k: rans.decode_ransrow(d, n // cols, cols, kernels=k)
    groups = np.zeros((n // 4, 4), np.uint8)
    groups[:, :2] = 1
    nm = gen.permuted(groups, axis=1).reshape(n // cols, cols)
    yield "2:4, ransnm", nm, lambda: rans.encode_ransnm(nm, 2, 4), \
        lambda d, k: rans.decode_ransnm(d, n // cols, cols, 2, 4, kernels=k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2", type=int, default=24, help="log2 of the mask elements (default 24)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    n = 1 << args.log2
    print(f"pure-numpy rANS decode, {n:,} elements per mask, best of {args.repeats}")
    assert rans.NUMBA_KERNELS is None
    print(f"{'mask':<42} {'bytes':>10} {'wall s':>8} {'cpu s':>8}")
    for label, mask, encode, decode in cases(n):
        data = encode()
        wall, out = best_of(lambda: decode(data, rans.NUMPY_KERNELS), args.repeats)
        cpu = best_of(lambda: decode(data, rans.NUMPY_KERNELS), args.repeats, time.thread_time)[0]
        assert np.array_equal(out.reshape(-1), mask.reshape(-1)), label
        print(f"{label:<42} {len(data):>10,} {wall:>8.3f} {cpu:>8.3f}")
    print(f"Lmin(2^24 symbols) = {min_lanes(1 << 24)}: at most 4096 rounds per stream")


if __name__ == "__main__":
    main()
