"""``supermask``: any module's Linear / Embedding / Conv layers made masked layers over frozen
seeded weights, in place (as PEFT wraps modules by name, and bitsandbytes swaps nn.Linear).

A targeted module is replaced by its masked twin (nn/modules.py) under the same path, so its
weight's tensor name is ``<path>.weight`` and its bias keeps its name (and stays trainable,
stored as a plain tensor, as every untargeted parameter). A weight shared by two modules (tied
input / output embeddings) becomes one masked layer, at the first path ``named_modules``
lists; the other module reads its effective weight, so the tensor is stored once, under the
name ``named_parameters`` gives it.

``round_like_artifact`` rounds in place what an artifact stores in fp16 (plain parameters,
learned scales, adapters), so the module computes exactly what the packed file will.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..format.maskspec import MaskSpec
from ..format.philox import check_seed
from ..format.tensors import quantize_rows_int8
from .layers import MASKED_PARTS, _MaskedWeight, bind_seed, masked_layers
from .mask_training import MaskTraining
from .modules import (SupermaskConv, SupermaskConv1D, SupermaskEmbedding, SupermaskLinear,
                      TiedEmbedding, TiedLinear)

# The frozen-weight init of each module family when the caller names none: a Hugging Face
# model's own (normal, std = its config's initializer_range), torch's default N(0, 1) for an
# nn.Embedding, and for nn.Linear / Conv the kaiming (He) normal rule edge-popup draws its
# frozen weights with (fans by layout, so a Conv1D's (in, out) weight gets the right fan_in).
HF_INIT = "normal_std"
EMBEDDING_INIT = ("normal_std", 1.0)
TORCH_INIT = ("he_normal", None)


def is_hf_conv1d(module: nn.Module) -> bool:
    """transformers' Conv1D (weight stored (in, out)), recognised without importing transformers."""
    cls = type(module)
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers") and hasattr(module, "nf")


def maskable(module: nn.Module) -> bool:
    """Whether ``supermask`` can replace this module (its class, not a subclass of another kind)."""
    if is_hf_conv1d(module):
        return True
    return type(module) in (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _twin(module: nn.Module, options: dict[str, Any]) -> _MaskedWeight:
    if is_hf_conv1d(module):
        return SupermaskConv1D(module, **options)
    if isinstance(module, nn.Linear):
        return SupermaskLinear(module, **options)
    if isinstance(module, nn.Embedding):
        return SupermaskEmbedding(module, **options)
    return SupermaskConv(module, **options)


def _tied_twin(source: _MaskedWeight, module: nn.Module, path: str) -> nn.Module:
    if tuple(module.weight.shape) != source.shape or type(module) not in (nn.Linear, nn.Embedding):
        raise ConfigError(f"supermask: {path} shares its weight with {source.tensor_name or 'another module'} "
                          f"as a {type(module).__name__}; only Linear / Embedding ties are supported")
    return TiedLinear(source, module) if isinstance(module, nn.Linear) else TiedEmbedding(source, module)


def default_init(model: nn.Module, module: nn.Module) -> tuple[str, float | None]:
    """(init rule, init_std) of ``module``'s frozen weight when the caller names none."""
    std = getattr(getattr(model, "config", None), "initializer_range", None)
    if isinstance(std, float) and std > 0:
        return HF_INIT, std
    return EMBEDDING_INIT if isinstance(module, nn.Embedding) else TORCH_INIT


def _matches(path: str, patterns: str | Iterable[str] | None) -> bool:
    """PEFT's rule: a string is a regular expression matched against the whole path; a list
    names modules by path or by the path's last parts (``q_proj`` matches ``...attn.q_proj``)."""
    if patterns is None:
        return False
    if isinstance(patterns, str):
        return re.fullmatch(patterns, path) is not None
    return any(path == p or path.endswith("." + p) for p in patterns)


def _plan(model: nn.Module, target_modules, exclude) -> list[tuple[str, nn.Module]]:
    if maskable(model):  # in place means under a parent: the root has none
        raise ConfigError(f"supermask: the model itself is a {type(model).__name__}; convert a module "
                          f"that holds it, e.g. nn.Sequential(layer)")
    chosen = [(path, m) for path, m in model.named_modules(remove_duplicate=False)
              if maskable(m) and (target_modules is None or _matches(path, target_modules))
              and not _matches(path, exclude)]
    if not chosen:
        raise ConfigError("supermask: no Linear, Embedding, Conv or Conv1D module matched "
                          f"target_modules={target_modules!r}, exclude={exclude!r}")
    weights = {id(m.weight) for _, m in chosen}
    for name, p in model.named_parameters(remove_duplicate=False):
        owner = name.rpartition(".")[0]
        if id(p) in weights and not any(path == owner for path, _ in chosen):
            raise ConfigError(f"supermask: {name} shares its tensor with a targeted module but is not "
                              f"targeted itself; target or exclude both")
    return chosen


def _set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent_path) if parent_path else model, leaf, new)


def supermask(model: nn.Module, mask: MaskSpec | str = "binary", *, seed: int, init: str | None = None,
              init_std: float | None = None, target_modules: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None,
              scale_mode: str = "none", adapter_rank: int = 0, estimator: str = "",
              density: float | None = None) -> nn.Module:
    """Make ``model``'s Linear / Embedding / Conv1d-3d / transformers Conv1D layers masked layers
    over frozen weights drawn from ``seed``, in place; returns ``model``.

    ``init`` / ``init_std``: the frozen weights' init rule and, for ``normal_std``, its std
    (default: ``default_init``, by module family). ``target_modules`` /
    ``exclude``: which modules (PEFT's matching; None targets every supported module).
    ``mask``, ``scale_mode``, ``adapter_rank`` as for the built-in GPT; ``estimator`` and
    ``density``: how the masks train (mask_training.MaskTraining). Scores are drawn from
    torch's generator seeded with ``seed``, so a conversion is reproducible.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"supermask: got {type(model).__name__}, expected a torch.nn.Module")
    spec = MaskSpec.parse(mask) if isinstance(mask, str) else mask
    training = MaskTraining.for_mask(spec, estimator, density)
    check_seed(seed)  # before anything changes
    plan = _plan(model, target_modules, exclude)
    owners: dict[int, _MaskedWeight] = {}
    swaps: list[tuple[str, nn.Module]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for path, module in plan:
            weight = module.weight
            if id(weight) in owners:
                swaps.append((path, _tied_twin(owners[id(weight)], module, path)))
                continue
            rule, std = (init, init_std) if init else default_init(model, module)
            options = dict(init=rule, init_std=std, mask=spec, scale_mode=scale_mode,
                           adapter_rank=adapter_rank, mask_training=training)
            twin = _twin(module, options).to(weight.device)
            owners[id(weight)] = twin
            swaps.append((path, twin))
    for path, new in swaps:  # every twin built: only now does the model change
        _set_module(model, path, new)
    bind_seed(model, seed)
    return model


# ---------------------------------------------------------------- what an artifact rounds

def stored_float_parameters(model: nn.Module, adapter_dtype: str = "f16") -> list[tuple[str, nn.Parameter, str]]:
    """(name, parameter, how stored) of every parameter an artifact stores as numbers: learned
    scales (f16), adapters (``adapter_dtype``) and every other parameter (plain f16); mask
    scores and the quant step are not stored (the hard levels are)."""
    out: list[tuple[str, nn.Parameter, str]] = []
    owned: set[str] = set()
    for path, layer in masked_layers(model):
        prefix = f"{path}." if path else ""
        owned.update(f"{prefix}{p}" for p in MASKED_PARTS if getattr(layer, p, None) is not None)
        if layer.scale is not None:
            out.append((f"{prefix}scale", layer.scale, "f16"))
        for role in ("adapter_a", "adapter_b"):
            if getattr(layer, role) is not None:
                out.append((f"{prefix}{role}", getattr(layer, role), adapter_dtype))
    out += [(name, p, "f16") for name, p in model.named_parameters() if name not in owned]
    return out


def stored_value(value: torch.Tensor, how: str) -> torch.Tensor:
    """``value`` as an artifact stores it, back in float32 (f16 rounding, or int8 rows)."""
    v = value.detach().float().cpu()
    if how == "int8":
        q, scale = quantize_rows_int8(v.numpy())
        return torch.from_numpy(q.astype(np.float32) * scale.astype(np.float32)[:, None])
    return v.half().float()


def rounding(model: nn.Module, adapter_dtype: str = "f16") -> dict[str, float]:
    """What an artifact of ``model`` changes: {parameter: largest absolute change} for every stored
    parameter that storing changes; ConfigError for one that does not fit fp16 (overflow)."""
    changed: dict[str, float] = {}
    for name, p, how in stored_float_parameters(model, adapter_dtype):
        stored = stored_value(p, how)
        if not torch.isfinite(stored).all():
            raise ConfigError(f"{name}: values beyond fp16's range (|x| > 65504), an artifact cannot store them")
        delta = (stored - p.detach().float().cpu()).abs().max().item() if p.numel() else 0.0
        if delta:
            changed[name] = delta
    return changed


def round_like_artifact(model: nn.Module, adapter_dtype: str = "f16") -> dict[str, float]:
    """Round in place every parameter an artifact stores in fp16 (or int8 rows) to what it stores,
    so the module computes what the loaded artifact computes; returns ``rounding``'s report."""
    report = rounding(model, adapter_dtype)
    with torch.no_grad():
        for name, p, how in stored_float_parameters(model, adapter_dtype):
            if name in report:
                p.copy_(stored_value(p, how).to(p.device, p.dtype))
    return report
