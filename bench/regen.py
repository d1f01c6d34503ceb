"""Regeneration speed of frozen weights: ticketpack's Philox stream vs torch's CPU generator.

    python bench/regen.py            # 100M float32 (a 10000 x 10000 xavier_uniform tensor)
    python bench/regen.py --quick    # 10.24M (3200 x 3200), for a quick look
    python bench/regen.py --n 25000000 --repeats 5

Baseline, measured in the same run: torch.Generator().manual_seed(s) and
torch.empty(n).uniform_(-b, b, generator=g) with torch.set_num_threads(1)
(MT19937). Each figure is the best of --repeats runs and includes allocating
the output, as a loader does; "fill" figures write into an existing buffer.

The normal family (format v3, rule he_normal) is timed in the same run against the uniform
rule: its regeneration cost must stay within 2x the uniform rule's ("normal / uniform").
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numba
import numpy as np
import torch

from timing import best_of

from ticketpack.nn import frozen as rng

SEED, NAME, RULE = 1234, "bench.weight", "xavier_uniform"
NORMAL_RULE = "he_normal"


def shape_for(n: int) -> tuple[int, ...]:
    """A square matrix when n is a square, else (n // 1000, 1000) or a vector."""
    side = math.isqrt(n)
    if side * side == n:
        return (side, side)
    return (n // 1000, 1000) if n % 1000 == 0 else (n,)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def check_exact(w: np.ndarray, shape: tuple[int, ...], sample: int = 1 << 20, rule: str = RULE) -> bool:
    """Compare three slices (start, middle, end) of ``w`` with the numpy reference."""
    flat, sid = w.reshape(-1), rng.stream_id(NAME)
    for start in sorted({0, max(0, flat.size // 2 - 1), max(0, flat.size - sample)}):
        count = min(sample, flat.size - start)
        ref = rng.values_from_words(rng.stream_words_reference(SEED, sid, start, count), rule, shape)
        if ref.tobytes() != flat[start:start + count].tobytes():
            return False
    return True


def row(label: str, seconds: float, n: int, baseline: float | None = None) -> None:
    ratio = f"  {baseline / seconds:6.2f}x torch" if baseline else ""
    print(f"{label:<44} {seconds:8.4f} s  {n / seconds / 1e6:9.1f} M values/s{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000_000, help="values to regenerate (default 100M)")
    parser.add_argument("--quick", action="store_true", help="10.24M values (3200 x 3200) instead of 100M")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = 3200 * 3200 if args.quick else args.n
    shape = shape_for(n)
    bound = rng.init_bound(RULE, shape)
    all_threads = numba.get_num_threads()

    print(f"ticketpack regen bench: n={n:,} shape={shape} rule={RULE} repeats={args.repeats}")
    print(f"python {platform.python_version()} numpy {np.__version__} numba {numba.__version__} "
          f"torch {torch.__version__}; cpu: {cpu_name()} x{os.cpu_count()}; numba threads {all_threads}")

    t = time.perf_counter()
    rng.frozen_weight(SEED, "warmup", (4, 4), RULE, threads=1)
    rng.frozen_weight(SEED, "warmup", (1024, 1024), RULE, threads=all_threads)
    print(f"first calls (numba compile or cache load): {time.perf_counter() - t:.2f} s; "
          f"numba threading layer: {numba.threading_layer()}")

    torch.set_num_threads(1)
    g = torch.Generator()

    def torch_regen() -> torch.Tensor:
        g.manual_seed(SEED)
        return torch.empty(n).uniform_(-bound, bound, generator=g)

    t_torch = best_of(torch_regen, args.repeats)[0]
    t_tp1 = best_of(lambda: rng.frozen_weight(SEED, NAME, shape, RULE, threads=1), args.repeats)[0]
    t_tpn = best_of(lambda: rng.frozen_weight(SEED, NAME, shape, RULE, threads=all_threads), args.repeats)[0]
    t_nrm1 = best_of(lambda: rng.frozen_weight(SEED, NAME, shape, NORMAL_RULE, threads=1), args.repeats)[0]

    buf_t, buf_np, sid = torch.empty(n), np.empty(n, np.float32), rng.stream_id(NAME)
    buf_t.zero_(), buf_np.fill(0)  # touch the pages before timing
    t_torch_fill = best_of(lambda: buf_t.uniform_(-bound, bound, generator=g.manual_seed(SEED)), args.repeats)[0]
    t_tp1_fill = best_of(lambda: rng.fill_values(buf_np, SEED, sid, 0, RULE, shape, threads=1), args.repeats)[0]
    t_nrm1_fill = best_of(lambda: rng.fill_values(buf_np, SEED, sid, 0, NORMAL_RULE, shape, threads=1),
                          args.repeats)[0]
    del buf_t, buf_np

    print("\nregenerate (allocate + fill):")
    row("torch MT19937 uniform_, 1 thread", t_torch, n)
    row("ticketpack frozen_weight, 1 thread", t_tp1, n, t_torch)
    row(f"ticketpack frozen_weight, {all_threads} threads", t_tpn, n, t_torch)
    print("fill an existing buffer:")
    row("torch MT19937 uniform_, 1 thread", t_torch_fill, n)
    row("ticketpack fill_values, 1 thread", t_tp1_fill, n, t_torch_fill)
    print(f"normal family ({NORMAL_RULE}) against the uniform rule ({RULE}), 1 thread:")
    row(f"ticketpack frozen_weight {NORMAL_RULE}", t_nrm1, n, t_torch)
    row(f"ticketpack fill_values {NORMAL_RULE}", t_nrm1_fill, n, t_torch_fill)

    n_torch = min(n, 1_000_000)
    shape_torch = shape_for(n_torch)
    t_tt = best_of(lambda: rng.frozen_weight_torch(SEED, NAME, shape_torch, RULE), 1)[0]
    print(f"for information, ticketpack's pure-torch path on CPU ({n_torch:,} values, 1 thread):")
    row("ticketpack frozen_weight_torch, cpu", t_tt, n_torch, None)

    w = rng.frozen_weight(SEED, NAME, shape, RULE)
    exact = check_exact(w, shape)
    exact_torch = rng.frozen_weight_torch(SEED, NAME, shape_torch, RULE).numpy().tobytes() == \
        rng.frozen_weight(SEED, NAME, shape_torch, RULE).tobytes()
    print(f"\nbit-exact vs numpy reference (3 slices of 1M): {exact}; torch path == numba path: {exact_torch}")
    exact_normal = check_exact(rng.frozen_weight(SEED, NAME, shape, NORMAL_RULE), shape, rule=NORMAL_RULE)
    print(f"normal family bit-exact vs numpy reference (3 slices of 1M): {exact_normal}")
    print(f"single-core speed-up over torch: {t_torch / t_tp1:.2f}x (target >= 2x)")
    print(f"normal / uniform regeneration time, 1 thread: {t_nrm1 / t_tp1:.2f}x allocate + fill, "
          f"{t_nrm1_fill / t_tp1_fill:.2f}x fill (target <= 2x)")


if __name__ == "__main__":
    main()
