"""Tickets and torch modules: the bridge between the format core and the model.

A ticket (``ticketpack.format.tensors``, re-exported here) holds everything an artifact
stores, decoded: mask levels, fp16 scales, plain tensors, trits, int8 weights.
``Ticket.effective_state_dict`` turns it into the dense float32 weights a torch module
loads; this module reads a trained module into a ticket and builds the model back.
Importing it registers the imported torch-MT19937 stream (``ticketpack.interop.pg_import``).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

from .interop import pg_import  # noqa: F401 (registers the torch-MT19937 stream)
from .errors import ConfigError, HeaderError
from .format.constants import ADAPTER_DTYPES
from .format.digest import weights_sha256_v2
from .nn.layers import MASKED_PARTS
from .nn.mask_training import level_dtype
from .models.gpt_config import DEFAULT_MODEL_LIMITS, ModelLimits, config_from_dict
from .models.fit import check_shapes_fit
from .provenance import default_provenance
from .format.tensors import (Int8Tensor, MaskedTensor, PlainTensor, TensorEntry,  # noqa: F401
                             TernaryTensor, Ticket, frozen_weights, quantize_rows_int8)


# a masked layer's parameters that its tensor entry (and adapter entries) store


def weights_sha256(state: dict[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]) -> str:
    """The current format's ``weights_sha256`` of a state dict (per-tensor digests, combined)."""
    items = state.items() if isinstance(state, dict) else state
    return weights_sha256_v2((name, t.detach().to("cpu", torch.float32).contiguous().numpy())
                             for name, t in items)


def ticket_from_model(module: nn.Module, seed: int, config: dict,
                      provenance: dict | None = None, adapter_dtype: str = "f16") -> Ticket:
    """Read a module's masked layers (hard masks, fp16 scales) and other parameters into a Ticket.

    A masked layer's adapters follow its entry as ``<path>.adapter_a`` / ``.adapter_b``:
    plain fp16 tensors, or (``adapter_dtype="int8"``) int8 with one fp16 scale per row.
    """
    from .nn.layers import masked_layers

    if adapter_dtype not in ADAPTER_DTYPES:
        raise ConfigError(f"adapter dtype: {adapter_dtype!r}, expected one of {', '.join(ADAPTER_DTYPES)}")
    tensors: list[TensorEntry] = []
    owned: set[str] = set()
    for path, layer in masked_layers(module):
        prefix = f"{path}." if path else ""
        # what the masked entry and its adapters hold; any other parameter (a bias) is plain
        owned.update(f"{prefix}{p}" for p in MASKED_PARTS if getattr(layer, p, None) is not None)
        tensors.append(_masked_entry(layer))
        tensors += adapter_entries(layer, prefix, adapter_dtype)
    for name, param in module.named_parameters():
        if name not in owned:
            tensors.append(PlainTensor(name, param.detach().cpu().float().numpy().astype(np.float16)))
    return Ticket(seed=seed, config=dict(config), tensors=tensors,
                  provenance=provenance or default_provenance())


def adapter_entries(layer: nn.Module, prefix: str, dtype: str) -> list[TensorEntry]:
    """A layer's adapters A, B as stored tensors (none without adapters)."""
    out: list[TensorEntry] = []
    for role in ("adapter_a", "adapter_b"):
        param = getattr(layer, role, None)
        if param is None:
            continue
        out.append(adapter_tensor(f"{prefix}{role}", param.detach().cpu().float(), dtype))
    return out


def adapter_tensor(name: str, value: torch.Tensor, dtype: str) -> TensorEntry:
    """fp16 plain, or int8 per row (``quantize_rows_int8``: scale = fp16(max|row| / 127))."""
    if dtype == "int8":
        return Int8Tensor(name, *quantize_rows_int8(value.numpy()))
    return PlainTensor(name, value.numpy().astype(np.float16))


def _masked_entry(layer: nn.Module) -> MaskedTensor:
    if getattr(layer, "tensor_name", None) is None:
        raise ConfigError("masked layer: no tensor name; call layers.bind_seed(module, seed) first")
    scale = None
    if getattr(layer, "scale", None) is not None:
        scale = layer.scale.detach().cpu().float().numpy().astype(np.float16).reshape(-1)
        scale = scale.reshape(()) if scale.size == 1 and layer.scale.dim() == 0 else scale
    levels = None if not layer.mask.stored else layer.hard_mask().detach().cpu().numpy().astype(level_dtype(layer.mask))
    return MaskedTensor(name=layer.tensor_name, shape=tuple(layer.shape), init=layer.init,
                        mask=layer.mask, levels=levels, scale=scale, layout=layer.layout,
                        init_std=layer.init_std)


def model_from_ticket(ticket: Ticket, device: str | torch.device = "cpu",
                      state: dict[str, torch.Tensor] | None = None,
                      limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> nn.Module:
    """The built-in GPT with dense layers holding the ticket's effective weights, in eval mode.

    ``state``: the ticket's effective state dict when the caller already has it (verified).
    The config is validated and bounded first (``HeaderError``: it is the artifact's content).
    """
    config_from_dict(ticket.config, limits, error=HeaderError, where="config")  # before regenerating
    state = ticket.effective_state_dict() if state is None else state
    return gpt_from_state(ticket.config, state, limits).to(device)


def gpt_from_state(config: dict, state: dict[str, torch.Tensor],
                   limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> nn.Module:
    """The dense built-in GPT of ``config`` holding ``state`` (on the CPU, eval mode); the
    tensors are checked against the model on the meta device first (a config bomb is refused
    before allocation)."""
    from .models.gpt_model import dense_gpt_on_meta, materialize_unfilled

    gpt_config = config_from_dict(config, limits, error=HeaderError, where="config")
    model = dense_gpt_on_meta(gpt_config)
    check_fits(model, state)
    load_effective(materialize_unfilled(model), state)
    return model.eval()


def check_fits(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Every parameter of ``model`` and nothing else in ``state``, with the same shapes."""
    check_shapes_fit({name: tuple(p.shape) for name, p in model.named_parameters()},
                     {name: tuple(v.shape) for name, v in state.items()})


def load_effective(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load effective weights into a dense module, naming any key that does not fit."""
    check_fits(model, state)
    own = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value)
