"""Packed bytes of a dense baseline before training: the worst case a shape can cost.

The counterpart of ``shape_budget.worst_case_bytes`` (tickets) for the dense families, so a
budget solver (``shape_budget.solve(measure=...)``) can pick a baseline's widest fitting
shape. The stand-in is an untrained model whose tensors are as costly as the family allows:
int8, uniform weights (int8 values uniform over -127..127, nothing to compress; trained
weights come out within ~2% of it); ternary, trits of Gaussian weights (about 1/3 zeros:
~1.58 bits); binary, signs of Gaussian weights (1 bit). Every vector (gains, scales) gets
random values, as training leaves them (at init they are ones, which compress to nothing).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..format.container import encode_artifact
from ..model import GPT, GPTConfig
from .int8 import encode_int8_state
from .qat import make_binary, make_ternary, ternary_ticket

Draw = Callable[[torch.Size, torch.Generator], torch.Tensor]


def _uniform(shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=gen) * 2 - 1


def _gaussian(shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=gen)


def _int8_bytes(model: GPT, seed: int, gamma_mode: str) -> int:
    return len(encode_int8_state(model.state_dict(), model.config.to_dict()))


def _ternary_bytes(model: GPT, seed: int, gamma_mode: str) -> int:
    make_ternary(model, mode=gamma_mode)
    return len(encode_artifact(ternary_ticket(model, seed, model.config.to_dict())))


def _binary_bytes(model: GPT, seed: int, gamma_mode: str) -> int:
    make_binary(model)
    return len(encode_artifact(ternary_ticket(model, seed, model.config.to_dict())))


# family -> how its stand-in's weight matrices are drawn (the scale is irrelevant: int8 and
# ternary are relative to it) and how it is packed
STAND_INS: dict[str, tuple[Draw, Callable[[GPT, int, str], int]]] = {
    "int8": (_uniform, _int8_bytes),
    "ternary": (_gaussian, _ternary_bytes),
    "binary": (_gaussian, _binary_bytes),
}
DENSE_FAMILIES = tuple(STAND_INS)


def worst_case_dense_bytes(config: GPTConfig, family: str, gamma_mode: str = "tensor",
                           seed: int = 0) -> int:
    """Packed bytes of ``family``'s stand-in at ``config``: ``encode_int8_state`` bytes (int8)
    or artifact bytes of ``ternary_ticket`` (ternary with ``gamma_mode``, binary)."""
    if family not in STAND_INS:
        raise ConfigError(f"dense family: {family!r}, expected one of {', '.join(DENSE_FAMILIES)}")
    draw, pack = STAND_INS[family]
    gen = torch.Generator().manual_seed(seed)
    model = GPT(config, masked=False)
    _random_vectors_(model, gen)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(draw(p.shape, gen))
    return pack(model, seed, gamma_mode)


def _random_vectors_(model: nn.Module, gen: torch.Generator) -> None:
    """Random values in every parameter that is not a weight matrix."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2 and p.shape[1] > 1:
                continue
            p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))
