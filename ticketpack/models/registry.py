"""The architecture records an artifact's ``config`` may hold, by name (docs/FORMAT.md 2.2).

``config["arch"]``: absent or ``gpt`` (the built-in GPT), ``transformers`` (a Hugging Face
built-in causal LM), ``external`` (tensors only: loading needs the user's skeleton module).
Each architecture is a module with ``NAME``, ``check(config, limits)`` (bounded, before any
allocation; HeaderError), ``build(config, state, limits)`` (the dense model holding the
effective weights, eval mode; None when the artifact holds no code to build it from),
``record(model)`` (a live model's record, or None if not this architecture) and
``logits(model, idx)``. Adding one is one module and one line in ``records.ARCH_MODULES``.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import nn

from ..errors import HeaderError, UsageError
from ..nn.layers import adapted_table
from .gpt_config import DEFAULT_MODEL_LIMITS, ModelLimits
from .records import ARCH_MODULES, DEFAULT_ARCH, arch_module, architecture, check_config  # noqa: F401 - API

# Name -> module, in ARCH_MODULES' order; ``record_of`` asks them in this order (external takes any module).
ARCHITECTURES: dict[str, ModuleType] = {name: arch_module(name) for name in ARCH_MODULES}


def build_model(config: dict, state: dict[str, torch.Tensor],
                limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> nn.Module:
    """The dense model the config records, holding ``state`` (CPU, eval mode)."""
    arch = architecture(config)
    if arch.build is None:
        raise UsageError(f"this artifact records arch {arch.NAME!r} (tensors only): load it into your "
                         f"own module, ticketpack.load(path, model=skeleton)")
    return arch.build(config, state, limits)


def rebuilt_model(config: dict, state: dict[str, torch.Tensor],
                  limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> nn.Module:
    """The dense model of an artifact as a token ids -> float32 logits module (CPU, eval mode):
    the built-in GPT as it is (its adapters are layers of their own), another architecture
    with its adapters folded into its weights, inside ``Logits``."""
    if architecture(config).NAME == DEFAULT_ARCH:
        return build_model(config, state, limits)
    return Logits(build_model(config, fold_adapters(state), limits), config).eval()


def meta_model(config: dict, limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> nn.Module:
    """The dense model the config records, on the meta device (shapes only, nothing allocated)."""
    arch = architecture(config)
    if arch.build is None:
        raise UsageError(f"arch {arch.NAME!r} records no model to build")
    return arch.meta_model(config, limits)


def record_of(model: nn.Module) -> dict:
    """The record to store for a live model: the first architecture that claims it."""
    for arch in ARCHITECTURES.values():
        found = arch.record(model)
        if found is not None:
            return found
    raise AssertionError("the external architecture claims every module")


class Logits(nn.Module):
    """``model`` with a forward that returns float32 logits (B, T, V) for token ids (B, T),
    whatever its architecture returns (evaluation and sampling call this)."""

    def __init__(self, model: nn.Module, config: dict) -> None:
        super().__init__()
        self.model, self.arch = model, architecture(config)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.arch.logits(self.model, idx)


def fold_adapters(state: dict[str, torch.Tensor], keep: set[str] = frozenset()) -> dict[str, torch.Tensor]:
    """``state`` with each layer's adapters folded into its weight, ``W + B @ A`` (float32),
    except those named in ``keep`` (a module that holds adapters of its own)."""
    out = dict(state)
    for name in [n for n in state if n.endswith(".adapter_a") and n not in keep]:
        prefix = name[: -len("adapter_a")]
        a, b = out.pop(name), out.pop(f"{prefix}adapter_b")
        out[f"{prefix}weight"] = adapted_table(out[f"{prefix}weight"], a, b)
    return out
