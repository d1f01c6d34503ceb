"""How a mask trains, named once and torch-free: the estimators of each mask kind and
``MaskTraining`` (the estimator and its target density).

A training setting, not a format one: ``format.maskspec.MaskSpec`` is what an artifact
stores; this is what the trainer, the layers (``masking`` holds the estimators themselves)
and the budget solver use, and what provenance records. Torch-free, so the command line can
name the estimators at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..format.maskspec import MaskSpec

# The estimators each mask kind can train with; the first is the kind's default. Signed masks
# list nested before topk, so a target density alone picks the one that fits every K (at
# signed:2 the two give the same levels; topk is edge-popup's name for it).
ESTIMATORS = {"binary": ("ste", "topk"), "multibit": ("quant", "nested"), "nm": ("topk",),
              "signed": ("quant", "nested", "topk"), "none": ("none",)}
DENSITY_ESTIMATORS = ("topk", "nested")  # a target density sets their levels (nm: N of M instead)


@dataclass(frozen=True)
class MaskTraining:
    """How training finds a mask: the estimator and its target density.

    Built with ``for_mask``, which fills in the kind's default estimator and checks the pair.
    ``density`` is the starting target of the topk / nested estimators (the trainer's density
    schedule moves each layer's ``target_density`` from there)."""

    estimator: str
    density: float | None = None

    @classmethod
    def for_mask(cls, spec: MaskSpec, estimator: str = "", density: float | None = None) -> "MaskTraining":
        estimator = estimator or ESTIMATORS[spec.kind][0]
        if estimator not in ESTIMATORS[spec.kind]:
            raise ConfigError(f"mask estimator: {estimator!r} for {spec.kind} masks, "
                              f"expected one of {', '.join(ESTIMATORS[spec.kind])}")
        if density is not None and (isinstance(density, bool) or not isinstance(density, (int, float))
                                    or not 0 < density <= 1):
            raise ConfigError(f"mask density: {density!r}, expected a number in (0, 1]")
        if estimator in DENSITY_ESTIMATORS and spec.kind != "nm" and density is None:
            raise ConfigError(f"mask density: none given, the {estimator} estimator needs a target density")
        if estimator == "topk" and spec.kind == "signed" and spec.levels > 2:
            raise ConfigError(f"mask estimator: topk for {spec.kind}:{spec.levels} masks trains levels -1..1 "
                              f"only, expected nested (or quant) for more levels")
        return cls(estimator, None if density is None else float(density))

    def to_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "density": self.density}


def level_range(spec: MaskSpec) -> tuple[int, int]:
    """(lowest, highest) level a mask of ``spec`` holds: 0..K-1, or -(K-1)..K-1 when signed
    (the stored symbol is level + ``spec.offset``)."""
    return -spec.offset, spec.levels - 1


def level_dtype(spec: MaskSpec) -> str:
    """numpy dtype name of a mask's levels: int8 where levels go negative (signed), else uint8."""
    return "int8" if spec.offset else "uint8"


def estimator_names() -> tuple[str, ...]:
    """Every estimator a mask kind can train with, each once, in table order."""
    return tuple(dict.fromkeys(e for estimators in ESTIMATORS.values() for e in estimators))
