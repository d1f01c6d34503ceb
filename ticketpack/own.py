"""Your own model as a ticket: the Python API around ``supermask`` (nn/supermask.py).

    model = ticketpack.supermask(model, "binary", seed=0)   # in place
    opt = torch.optim.Adam(ticketpack.param_groups(model))  # your loop, DDP, autocast
    ticketpack.save(model, "model.tpk", budget="1MB")
    model = ticketpack.load("model.tpk")                    # or load(path, model=skeleton)

``save`` records the architecture (models/registry.py): a Hugging Face built-in causal LM
(rebuilt by ``load`` alone), the built-in GPT, or ``external`` (tensors only). ``load``
returns dense modules holding the effective weights; adapters, where a layer has them, are
folded into its weight (``W + B @ A``) for any model other than the built-in GPT.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .api import export_hf, load_checked, resolve_device  # noqa: F401 (export_hf: public API)
from .artifact import DEFAULT_LIMITS, Limits, write_artifact
from .budget import parse_budget
from .errors import ConfigError, HeaderError
from .nn.layers import masked_layers
from .models.gpt_config import DEFAULT_MODEL_LIMITS, ModelLimits
from .models import registry
from .models.registry import fold_adapters
from .nn.supermask import round_like_artifact, rounding, supermask  # noqa: F401 (public API)
from .ticket import ticket_from_model
from .train.loop import score_unit
from .train.options import declared_default

__all__ = ["supermask", "param_groups", "save", "load", "load_state_dict", "round_like_artifact",
           "export_hf"]


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (its parameter names carry no ``module.``)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def param_groups(model: nn.Module, *, lr: float | None = None, scale_lr: float | None = None,
                 adapter_lr: float | None = None) -> list[dict[str, Any]]:
    """Optimizer parameter groups with the trainer's default rates: ``scores`` (at ``lr``, in
    the score units of the layers' estimator), ``scales`` (learned scales, the quant step) and
    ``other`` (biases, norms, every untargeted parameter) at ``scale_lr``, ``adapters`` at
    ``adapter_lr``. Parameters that do not require gradients are left out."""
    lr = declared_default("lr") if lr is None else lr
    scale_lr = declared_default("scale_lr") if scale_lr is None else scale_lr
    adapter_lr = declared_default("adapter_lr") if adapter_lr is None else adapter_lr
    role = {}
    layers = masked_layers(model)
    for _, layer in layers:
        for part, group in (("scores", "scores"), ("scale", "scales"), ("mask_log_step", "scales"),
                            ("adapter_a", "adapters"), ("adapter_b", "adapters")):
            if getattr(layer, part, None) is not None:
                role[id(getattr(layer, part))] = group
    rates = {"scores": lr * score_unit(layers[0][1].mask_training if layers else None),
             "scales": scale_lr, "adapters": adapter_lr, "other": scale_lr}
    params: dict[str, list] = {name: [] for name in rates}
    for p in model.parameters():
        if p.requires_grad:
            params[role.get(id(p), "other")].append(p)
    return [{"params": params[name], "lr": rate, "name": name}
            for name, rate in rates.items() if params[name]]


def _seed(model: nn.Module) -> int:
    layers = masked_layers(model)
    if not layers:
        raise ConfigError("save: the module has no masked layers; call ticketpack.supermask(model, ...) first")
    seeds = {layer.seed for _, layer in layers}
    if len(seeds) != 1:
        raise ConfigError(f"save: masked layers bound to {len(seeds)} seeds, expected one")
    return seeds.pop()


def save(model: nn.Module, path: str | os.PathLike, *, budget: int | str | None = None, codec: str = "auto",
         level: int | None = None, code_bytes: int = 0, adapter_dtype: str = "f16",
         eval_context: dict | None = None, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> dict[str, Any]:
    """Pack a supermasked module into an artifact at ``path`` (atomic: over ``budget`` it raises
    BudgetExceededError and writes nothing). Returns {"path", "bytes", "arch", "tensors",
    "rounded"}: ``rounded`` names each parameter that fp16 (or int8 adapter) storage changes,
    with its largest change (``round_like_artifact`` applies the same rounding in place)."""
    model = _unwrap(model)
    seed = _seed(model)
    if isinstance(budget, str):
        budget = parse_budget(budget)
    rounded = rounding(model, adapter_dtype)
    record = registry.record_of(model)
    registry.check_config(record, model_limits)
    ticket = ticket_from_model(model, seed, record, adapter_dtype=adapter_dtype)
    ticket.eval = eval_context
    written = write_artifact(ticket, path, codec=codec, level=level, budget=budget, code_bytes=code_bytes,
                             creation={"command": "save", "codec": codec, "level": level})
    return {"path": os.fspath(path), "bytes": written, "arch": record.get("arch", registry.DEFAULT_ARCH),
            "tensors": len(ticket.tensors), "rounded": rounded}


def fill(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Copy ``state`` into ``model``'s parameters: the same names and shapes, or a one-line
    HeaderError naming the first mismatch (nothing copied)."""
    own = dict(model.named_parameters())
    state = fold_adapters(state, keep=set(own))
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        what = (f"{missing[0]!r} is in the module, not in the artifact" if missing
                else f"{extra[0]!r} is in the artifact, not in the module")
        raise HeaderError(f"skeleton: does not fit the artifact: {what} "
                          f"({len(missing)} missing, {len(extra)} unexpected)")
    for name, value in state.items():
        if tuple(own[name].shape) != tuple(value.shape):
            raise HeaderError(f"skeleton: {name} has shape {tuple(own[name].shape)}, "
                              f"the artifact's is {tuple(value.shape)}")
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value)
    return model


def load(path: str | os.PathLike, model: nn.Module | None = None, *, device: str = "cpu",
         limits: Limits = DEFAULT_LIMITS, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> nn.Module:
    """The dense module an artifact holds, in eval mode on ``device``: rebuilt from its recorded
    architecture, or ``model`` (a skeleton with the same parameter names and shapes) filled."""
    ticket, state, _, _ = load_checked(path, limits, model_limits)
    if model is not None:
        return fill(_unwrap(model), state)
    arch = registry.architecture(ticket.config)
    state = state if arch.NAME == registry.DEFAULT_ARCH else fold_adapters(state)
    return registry.build_model(ticket.config, state, model_limits).to(resolve_device(device)).eval()


def load_state_dict(path: str | os.PathLike, *, limits: Limits = DEFAULT_LIMITS,
                    model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> dict[str, torch.Tensor]:
    """The artifact's effective weights (float32, CPU, adapters folded into their weights),
    verified against its digests; tied weights appear once."""
    return fold_adapters(load_checked(path, limits, model_limits)[1])
