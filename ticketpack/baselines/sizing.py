"""Bytes of a dense baseline before training: an analytic estimate and the worst case.

The counterparts of ``train.shape_budget.estimate_bytes`` and ``train.shape_budget.worst_case_bytes``
(tickets) for the dense families, so the package's budget solver (``train.shape_budget.solve``
with ``estimate=`` and ``measure=``) can pick a baseline's widest fitting shape.

The worst-case stand-in is an untrained model whose tensors are as costly as the family
allows: int8, uniform weights (int8 values uniform over -127..127, nothing to compress;
trained weights come out within ~2% of it); ternary, trits of Gaussian weights (about 1/3
zeros: ~1.58 bits); binary, signs of Gaussian weights (1 bit). Every vector (gains, scales)
gets random values, as training leaves them (at init they are ones, which compress to nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..format.container import encode_artifact
from ..models.gpt_model import GPT, GPTConfig
from ..train.shape_budget import stored_tensors
from .int8 import encode_int8_state
from .qat import make_binary, make_ternary, ternary_ticket

Draw = Callable[[torch.Size, torch.Generator], torch.Tensor]
Pack = Callable[[GPT, int, str], int]  # (stand-in, seed, gamma mode) -> packed bytes


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


@dataclass(frozen=True)
class DenseFamily:
    """How a dense family spends bytes, and how its worst-case stand-in is built."""

    bits: float  # worst-case bits per weight (ternary: trits5's 1.6; auto never picks more)
    header: int  # bytes of container and header before the per-tensor entries
    per_row: bool  # one fp16 scale per row of every matrix (ternary: as its gamma mode says)
    draw: Draw  # the stand-in's weight matrices (the scale is irrelevant: codes are relative)
    pack: Pack

    def row_scales(self, name: str, gamma_mode: str) -> bool:
        """Whether matrix ``name`` stores one fp16 scale per row (else one per tensor)."""
        return self.per_row or gamma_mode == "row" or name == "tok_emb.weight"  # make_ternary's embed_mode


FAMILIES: dict[str, DenseFamily] = {
    "int8": DenseFamily(8.0, 120, True, _uniform, _int8_bytes),
    "ternary": DenseFamily(1.6, 400, False, _gaussian, _ternary_bytes),
    "binary": DenseFamily(1.0, 400, True, _gaussian, _binary_bytes),
}
DENSE_FAMILIES = tuple(FAMILIES)
ENTRY_BYTES = 45  # header bytes per tensor entry, about


def _family(family: str) -> DenseFamily:
    if family not in FAMILIES:
        raise ConfigError(f"dense family: {family!r}, expected one of {', '.join(DENSE_FAMILIES)}")
    return FAMILIES[family]


def estimate_dense_bytes(config: GPTConfig, family: str, gamma_mode: str = "tensor") -> float:
    """Analytic bytes of ``family`` at ``config``: weights at the family's worst-case bits,
    their fp16 scales, every vector as fp16, and the header."""
    fam = _family(family)
    tensors = stored_tensors(config.to_dict())
    total = float(fam.header + ENTRY_BYTES * len(tensors))
    for t in tensors:
        n = math.prod(t.shape)
        if t.kind == "plain":
            total += 2 * n
        else:
            total += n * fam.bits / 8 + 2 * (t.shape[0] if fam.row_scales(t.name, gamma_mode) else 1)
    return total


def worst_case_dense_bytes(config: GPTConfig, family: str, gamma_mode: str = "tensor",
                           seed: int = 0) -> int:
    """Packed bytes of ``family``'s stand-in at ``config``: ``encode_int8_state`` bytes (int8)
    or artifact bytes of ``ternary_ticket`` (ternary with ``gamma_mode``, binary)."""
    fam = _family(family)
    gen = torch.Generator().manual_seed(seed)
    model = GPT(config, masked=False)
    _random_vectors_(model, gen)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(fam.draw(p.shape, gen))
    return fam.pack(model, seed, gamma_mode)


def _random_vectors_(model: nn.Module, gen: torch.Generator) -> None:
    """Random values in every parameter that is not a weight matrix."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2 and p.shape[1] > 1:
                continue
            p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))
