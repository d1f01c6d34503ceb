"""Format v2's rANS coding (rans0 / ransrow / ransnm) against v1's constriction codecs
(ans0 / ansrow / nm), same masks, same run: size against the entropy bound and decode speed of
the numba kernels (one thread) and of the pure-numpy kernels.

    python bench/rans_speed.py [--elements 4194304] [--repeats 15]

Prints a markdown table. Bound: n times the order-0 empirical entropy (per-row entropies for
the row-varying mask, log2 C(4,2) / 4 bits per element for 2:4). Speeds are the best of
``--repeats`` runs (v1 and encoding: a fifth of that, numpy: 2), in millions of mask elements
per second of the calling thread's CPU time (``time.thread_time``: every codec here runs on
that one thread), which other jobs on a shared machine disturb far less than wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from math import comb, log2

import numpy as np

from timing import best_of

from ticketpack.format import codecs
from ticketpack.format.codecs import entropy as v1
from ticketpack.format.codecs import nm as v1_nm
from ticketpack.format import rans


def entropy_bits(levels: np.ndarray) -> float:
    """The order-0 bound of a whole array, in bits."""
    return codecs.entropy_bits(levels, int(levels.max()) + 1) * levels.size


def cases(n: int, seed: int = 0):
    """(label, kind, mask (rows, cols), K or (N, M), bound in bits)."""
    gen = np.random.default_rng(seed)
    rows = 2048
    shape = (rows, n // rows)
    for p in (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        mask = (gen.random(shape) < p).astype(np.uint8)
        yield f"binary p={p}", "rans0", mask, 2, entropy_bits(mask)
    levels = gen.choice(4, size=shape, p=[0.55, 0.3, 0.1, 0.05]).astype(np.uint8)
    yield "K=4 (.55/.3/.1/.05)", "rans0", levels, 4, entropy_bits(levels)
    levels = gen.choice(16, size=shape, p=np.exp(-np.arange(16) / 3) / np.exp(-np.arange(16) / 3).sum())
    yield "K=16 (geometric)", "rans0", levels.astype(np.uint8), 16, entropy_bits(levels)
    trits = gen.choice(3, size=shape, p=[0.3, 0.4, 0.3]).astype(np.uint8)
    yield "ternary (.3/.4/.3)", "rans0", trits, 3, entropy_bits(trits)
    varying = (gen.random(shape) < np.linspace(0.05, 0.6, rows)[:, None]).astype(np.uint8)
    yield "rows p=0.05..0.6", "ransrow", varying, 2, sum(entropy_bits(r) for r in varying)
    order = np.argsort(gen.random((n // 4, 4)), axis=1)
    mask24 = (order < 2).astype(np.uint8).reshape(shape)
    yield "2:4", "ransnm", mask24, (2, 4), n // 4 * log2(comb(4, 2))


def coders(kind: str, mask: np.ndarray, param):
    """(v2 encode, v2 decode(data, kernels), v1 encode, v1 decode(data))."""
    rows, cols = mask.shape
    if kind == "rans0":
        return (lambda: rans.encode_rans0(mask, param),
                lambda d, k: rans.decode_rans0(d, mask.size, param, kernels=k),
                lambda: v1.encode_ans0(mask.reshape(-1), param),
                lambda d: v1.decode_ans0(d, param, mask.size))
    if kind == "ransrow":
        return (lambda: rans.encode_ransrow(mask),
                lambda d, k: rans.decode_ransrow(d, rows, cols, kernels=k),
                lambda: v1.encode_ansrow(mask.reshape(-1), rows, cols),
                lambda d: v1.decode_ansrow(d, rows, cols))
    N, M = param
    return (lambda: rans.encode_ransnm(mask, N, M),
            lambda d, k: rans.decode_ransnm(d, rows, cols, N, M, kernels=k),
            lambda: v1_nm.encode_nm(mask.reshape(-1), N, M),
            lambda d: v1_nm.decode_nm(d, N, M, mask.size))


def row(label, kind, mask, param, bound, repeats) -> str:
    encode, decode, v1_encode, v1_decode = coders(kind, mask, param)
    data, old = encode(), v1_encode()
    n, bound_bytes = mask.size, bound / 8
    for k in (rans.NUMBA_KERNELS, rans.NUMPY_KERNELS):
        assert k is None or np.array_equal(decode(data, k).reshape(mask.shape), mask)
    t_numba = best_of(lambda: decode(data, rans.NUMBA_KERNELS), repeats, time.thread_time)[0]
    t_numpy = best_of(lambda: decode(data, rans.NUMPY_KERNELS), min(2, repeats), time.thread_time)[0]
    t_v1 = best_of(lambda: v1_decode(old), max(1, repeats // 5), time.thread_time)[0]
    t_enc = best_of(encode, max(1, repeats // 5), time.thread_time)[0]
    return (f"| {label} | {kind} | {bound / n:.4f} | {len(data) / bound_bytes:.4f} | "
            f"{len(old) / bound_bytes:.4f} | {n / t_numba / 1e6:,.0f} | {n / t_numpy / 1e6:,.1f} | "
            f"{n / t_v1 / 1e6:,.0f} | {t_v1 / t_numba:.1f}x | {n / t_enc / 1e6:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=1 << 22)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if rans.NUMBA_KERNELS is None:
        raise SystemExit("numba is not importable: this bench compares the numba kernels")
    warm = (np.arange(4096) % 3 == 0).astype(np.uint8).reshape(64, 64)
    for kernels in (rans.NUMBA_KERNELS, rans.NUMPY_KERNELS):  # compile outside the timings
        rans.decode_rans0(rans.encode_rans0(warm, 2), warm.size, 2, kernels=kernels)
        rans.decode_ransrow(rans.encode_ransrow(warm), 64, 64, kernels=kernels)
        mask24 = np.tile([1, 1, 0, 0], 1024).astype(np.uint8).reshape(64, 64)
        rans.decode_ransnm(rans.encode_ransnm(mask24, 2, 4), 64, 64, 2, 4, kernels=kernels)
        rans.decode_rans0(rans.encode_rans0(warm * 3, 4), warm.size, 4, kernels=kernels)
        rans.decode_rans0(rans.encode_rans0(warm * 2, 3), warm.size, 3, kernels=kernels)
    print(f"{args.elements:,} elements per case; {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}; M elements per CPU second, one thread\n")
    print("| case | v2 enc | bound bits/el | v2 size / bound | v1 size / bound | v2 decode numba | "
          "v2 decode numpy | v1 decode | numba vs v1 | v2 encode |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in cases(args.elements):
        print(row(*case, args.repeats), flush=True)


if __name__ == "__main__":
    main()
