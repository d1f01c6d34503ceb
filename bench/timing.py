"""Timing for the bench scripts: the best of repeated runs, the one least disturbed by the
rest of the machine."""

from __future__ import annotations

import time
from typing import Any, Callable


def best_of(fn: Callable[[], Any], repeats: int, clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:
    """(the fewest seconds, by ``clock``, of ``repeats`` calls of ``fn``; the last call's result)."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        t = clock()
        out = fn()
        best = min(best, clock() - t)
    return best, out
