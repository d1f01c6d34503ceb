"""Training schedules: each a pure function of the run's progress p in [0, 1].

Progress is ``step / steps``, or with a time budget the larger of that and
``train_seconds / budget_seconds`` (parameter golf's wall-clock schedule), so a run that
must stop early still warms down and anneals. A step-count run is therefore a pure
function of (options, seed, step) and resumes bit-identically; a time-budget run is not
(its schedule follows the clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError


def progress(step: int, steps: int | None, seconds: float, budget_seconds: float | None) -> float:
    """How far the run is, in [0, 1]; 1 means stop."""
    p = 0.0
    if steps is not None:
        p = step / steps
    if budget_seconds is not None:
        p = max(p, seconds / budget_seconds)
    return min(p, 1.0)


def lr_multiplier(p: float, warmup: float, warmdown: float) -> float:
    """Linear warm-up over the first ``warmup`` of the run, linear warm-down to 0 over the last ``warmdown``."""
    if warmup > 0 and p < warmup:
        return max(p / warmup, 0.01)  # never 0: the first step still moves
    if warmdown > 0 and p > 1 - warmdown:
        return max(0.0, (1 - p) / warmdown)
    return 1.0


def temperature(p: float, start: float, end: float) -> float:
    """Geometric annealing of the STE surrogate temperature from ``start`` to ``end``."""
    return start * (end / start) ** p


@dataclass(frozen=True)
class DensitySchedule:
    """Target density over the run (topk / nested estimators), as in Mixed Sparsity Training.

    Phases in fractions of the run: dense (density 1) until ``dense_until``; a cosine ramp
    down to ``target`` until ``ramp_until``; ``target`` after that; and, when ``restore`` is
    set, a linear restoration from ``target`` to the denser ``restore`` from ``restore_from`` on.
    """

    target: float
    dense_until: float = 0.0
    ramp_until: float = 0.0
    restore: float | None = None
    restore_from: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.target <= 1:
            raise ConfigError(f"density: {self.target!r}, expected a number in (0, 1]")
        if not 0 <= self.dense_until <= 1 or not 0 <= self.ramp_until <= 1:
            raise ConfigError(f"density schedule: dense {self.dense_until!r} / ramp end {self.ramp_until!r}, "
                              f"expected fractions of the run in [0, 1]")
        if self.restore is not None and not self.target <= self.restore <= 1:
            raise ConfigError(f"restore density: {self.restore!r}, expected a number in "
                              f"[{self.target}, 1] (denser than the target)")
        if self.restore is not None and not max(self.dense_until, self.ramp_until) <= self.restore_from < 1:
            raise ConfigError(f"restore_from: {self.restore_from!r}, expected a fraction in "
                              f"[{max(self.dense_until, self.ramp_until)}, 1)")

    def __call__(self, p: float) -> float:
        if p < self.dense_until:
            return 1.0
        if p < self.ramp_until:
            r = (p - self.dense_until) / (self.ramp_until - self.dense_until)
            return self.target + (1 - self.target) * 0.5 * (1 + math.cos(math.pi * r))
        if self.restore is not None and p >= self.restore_from:
            r = (p - self.restore_from) / (1 - self.restore_from)
            return self.target + (self.restore - self.target) * min(r, 1.0)
        return self.target

    @property
    def final(self) -> float:
        return self.restore if self.restore is not None else self.target
