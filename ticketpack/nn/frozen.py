"""The frozen-weight stream for torch: the format core's Philox stream plus a torch path.

The stream and init rules are defined in docs/FORMAT.md section 4 and implemented,
torch-free, in ``ticketpack.format.philox`` (numba when importable, numpy otherwise);
this module re-exports them for the training side and adds ``frozen_weight_torch``:
the same bits computed with pure torch ops on any device (int64 with 16-bit halves for
the 32x32->64 multiplies, since torch has no full uint32 support).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..format.constants import (DEFAULT_LAYOUT, INIT_RULES, MAX_WORDS, NORMAL_POLY,  # noqa: F401
                                PG_RNG_PREFIX, PHILOX_M, PHILOX_ROUNDS, PHILOX_W, RNG_ID)
from ..format.philox import (check_rule, check_seed, check_shape, family, fans,  # noqa: F401
                             fill_values, frozen_weight, frozen_weight_reference, init_bound,
                             is_uniform, philox4x32_10, stream_id, stream_words,
                             stream_words_reference, value_scale, values_from_words)

_MASK32 = 0xFFFFFFFF
_U24_OFFSET = 2**24 - 1

# ----------------------------------------------------------------------------- torch


def _mulhilo_torch(m: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit halves of m * x for m, x < 2**32, in int64 without overflow."""
    a = m * (x & 0xFFFF)  # < 2**48
    b = m * (x >> 16)  # < 2**48; the product is a + b * 2**16
    mid = (a & _MASK32) + ((b & 0xFFFF) << 16)  # < 2**33
    return (a >> 32) + (b >> 16) + (mid >> 32), mid & _MASK32


def _philox_torch(blocks: torch.Tensor, sid: int, seed: int) -> torch.Tensor:
    """Words (n, 4) as int64 of the int64 block indices ``blocks``."""
    c0, c1 = blocks & _MASK32, blocks >> 32
    c2, c3 = torch.full_like(blocks, sid & _MASK32), torch.full_like(blocks, sid >> 32)
    k0, k1 = seed, 0
    for _ in range(PHILOX_ROUNDS):
        hi0, lo0 = _mulhilo_torch(PHILOX_M[0], c0)
        hi1, lo1 = _mulhilo_torch(PHILOX_M[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + PHILOX_W[0]) & _MASK32, (k1 + PHILOX_W[1]) & _MASK32
    return torch.stack([c0, c1, c2, c3], dim=1)


def _f32(value: float, device: str | torch.device) -> torch.Tensor:
    """A 0-d float32 tensor: float32 operands, so every product is one float32 multiply."""
    return torch.from_numpy(np.array(value, np.float32)).to(device)


def normal_torch(words: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The normal family's values of int64 stream words: each multiply and add its own torch op
    (a float32 rounding each; separate kernels never fuse into a multiply-add)."""
    d = (words & 0xFFFF) - (words >> 16)
    a = d.abs().to(torch.float32) * _f32(2.0**-16, words.device)
    coeffs = [_f32(c, words.device) for c in NORMAL_POLY]
    h = coeffs[-1].expand_as(a)
    for c in coeffs[-2::-1]:
        h = torch.add(torch.mul(h, a), c)
    h = torch.mul(torch.mul(h, a), std)
    return torch.where(d < 0, -h, h)


def frozen_weight_torch(seed: int, name: str, shape: Sequence[int], rule: str,
                        device: str | torch.device = "cpu", layout: str = DEFAULT_LAYOUT,
                        init_std: float | None = None) -> torch.Tensor:
    """``frozen_weight`` computed with torch ops on ``device``; the same bits."""
    seed, shape, rule = check_seed(seed), check_shape(shape), check_rule(rule)
    sid, n = stream_id(name), math.prod(shape)
    scale = _f32(value_scale(rule, shape, layout, init_std), device)  # rounded once
    out = torch.empty(n, dtype=torch.float32, device=device)
    # Blocks per step: bounds the int64 temporaries; on CPU small ones stay in cache.
    chunk = 1 << 16 if out.device.type == "cpu" else 1 << 22
    for b0 in range(0, (n + 3) // 4, chunk):
        b1 = min(b0 + chunk, (n + 3) // 4)
        blocks = torch.arange(b0, b1, dtype=torch.int64, device=device)
        words = _philox_torch(blocks, sid, seed).reshape(-1)[:min(n, 4 * b1) - 4 * b0]
        if is_uniform(rule):
            k = (words >> 8) * 2 - _U24_OFFSET
            out[4 * b0:4 * b1] = k.to(torch.float32) * scale
        elif family(rule) == "normal":
            out[4 * b0:4 * b1] = normal_torch(words, scale)
        else:
            out[4 * b0:4 * b1] = torch.where(words >> 31 == 0, scale, -scale)
    return out.reshape(shape)
