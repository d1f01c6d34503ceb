"""Mask specs and the straight-through estimators that turn learned scores into mask levels.

A masked tensor keeps a frozen seeded weight and learns one score per connection. The
score becomes an integer level ``0..K-1`` (binary and N:M: K = 2; signed masks
``-(K-1)..K-1``, below); the effective weight is
``(frozen * level) * scale``. Every estimator below has a hard forward rule, used in
training and eval alike, and a backward rule that sends a gradient to the scores:

binary / ste     level = 1[s >= 0]. Backward: the derivative of sigmoid(s / T), i.e.
                 sigmoid'(s/T) / T, at the layer's temperature T (the trainer anneals T).
binary / topk    edge-popup: level 1 for the round(d * n) largest scores of the layer
                 (d = target density). Backward: identity (straight through).
multibit / quant level = clamp(floor(s / delta) + 1, 0, K-1): thresholds at
                 0, delta, 2*delta, ... (K-1 of them), so level 0 <=> s < 0 as for binary.
                 delta = exp(mask_log_step) is a learned per-layer parameter, so the
                 thresholds adapt without any sort, and per-layer sparsity (the share of
                 s < 0) emerges from training. Backward: the gradient of the soft staircase
                 sum_j sigmoid((s - (j-1)*delta) / T) w.r.t. s and delta.
multibit / nested multicoated: nested top-k sets. A connection's level is the number of
                 sets it belongs to; set j holds the round(d**j * n) largest scores
                 (d = target density, e.g. 0.3 gives 30% / 9% / 2.7% at levels >=1/2/3).
                 One sort per step. Backward: identity.
nm / topk        N:M: level 1 for the top N of every M consecutive scores along the last
                 (input) dimension. Backward: identity.

Signed masks (``signed:K``, levels -(K-1)..K-1: "Hide and Invert", a connection is dropped,
kept, or kept with its sign inverted; the frozen magnitude never changes). The same rules
read the magnitude |s| for how much to keep and take the level's sign from the score's:

signed / quant   level = sign(s) * clamp(floor(|s| / delta), 0, K-1): thresholds at delta,
                 2*delta, ... on |s| (level 0 <=> |s| < delta), delta learned per layer as
                 above. Backward: the gradient of the odd soft staircase
                 sum_j sigmoid((s - j*delta) / T) - sigmoid((-s - j*delta) / T).
signed / topk    edge-popup on |s|: level sign(s) for the round(d * n) largest |s|
                 (signed:2 only). Backward: identity.
signed / nested  the nested top-k sets of |s|, level magnitude as for multibit, times sign(s).

Unsigned kinds keep raw scores (higher means "keep", not |s| as in edge-popup), so every
unsigned estimator agrees on the meaning of a score; signed ones agree on |s| and sign(s).
Hard levels are uint8 for unsigned kinds and int8 for signed ones (the artifact's level
values; the codec maps them to stored symbols).

How a layer finds its mask is a training setting, ``MaskTraining`` (estimator, target
density): it never reaches an artifact's config, only the provenance of what was trained.

Per-layer state (``MaskState``) is read from the masked layer itself: ``temperature`` (a
plain float, default 1.0, set with ``nn.layers.set_temperature``), ``target_density``
(initialised from ``MaskTraining.density``, changed with ``nn.layers.set_density`` for a
density schedule) and, for ``quant``, the parameter ``mask_log_step``.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from ..errors import ConfigError
from ..format.maskspec import MaskSpec  # noqa: F401 (re-exported: the torch-free spec)
from .mask_training import DENSITY_ESTIMATORS, ESTIMATORS, MaskTraining  # noqa: F401 (re-exported)

QUANT_STEP_INIT = 0.05  # initial delta of the quant estimator (score units)


class MaskState(Protocol):
    """The per-layer values an estimator reads (the masked layers provide them)."""

    temperature: float
    target_density: float | None
    mask_log_step: torch.Tensor | None


# ---------------------------------------------------------------- hard rules

def _topk_levels(scores: torch.Tensor, density: float) -> torch.Tensor:
    flat = scores.detach().reshape(-1)
    k = min(flat.numel(), max(0, int(round(density * flat.numel()))))
    out = torch.zeros(flat.numel(), dtype=torch.uint8, device=flat.device)
    out[flat.topk(k, sorted=False).indices] = 1
    return out.view(scores.shape)


def _nested_levels(scores: torch.Tensor, density: float, levels: int) -> torch.Tensor:
    flat = scores.detach().reshape(-1)
    n = flat.numel()
    order = flat.argsort(descending=True, stable=True)
    rank = torch.empty(n, dtype=torch.long, device=flat.device)
    rank[order] = torch.arange(n, device=flat.device)
    out = torch.zeros(n, dtype=torch.uint8, device=flat.device)
    for j in range(1, levels):
        out += (rank < int(round(density ** j * n))).to(torch.uint8)
    return out.view(scores.shape)


def _signed(magnitude: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """int8 levels: an unsigned rule's level (computed on |s|) with the sign of s."""
    return magnitude.to(torch.int8) * torch.sign(scores.detach()).to(torch.int8)


def _nm_levels(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    if scores.shape[-1] % m:
        raise ConfigError(f"nm mask: last dimension {scores.shape[-1]}, expected a multiple of M={m}")
    groups = scores.detach().reshape(*scores.shape[:-1], scores.shape[-1] // m, m)
    out = torch.zeros(groups.shape, dtype=torch.uint8, device=scores.device)
    out.scatter_(-1, groups.topk(n, dim=-1, sorted=False).indices, 1)
    return out.view(scores.shape)


def _quant_levels_float(scores: torch.Tensor, step: torch.Tensor, levels: int, signed: bool = False) -> torch.Tensor:
    s, step = scores.detach(), step.detach()
    if signed:  # sign(s) * floor(|s| / delta), magnitude clamped to K-1: level 0 <=> |s| < delta
        return torch.floor(s.abs() / step).clamp_(0, levels - 1).mul_(torch.sign(s))
    # float32 floor(s / delta) + 1, clamped: level 0 exactly when s < 0
    return torch.floor(s / step).add_(1).clamp_(0, levels - 1)


def _quant_levels(scores: torch.Tensor, step: torch.Tensor, levels: int, signed: bool = False) -> torch.Tensor:
    return _quant_levels_float(scores, step, levels, signed).to(torch.int8 if signed else torch.uint8)


def _density(state: MaskState, training: MaskTraining) -> float:
    d = state.target_density if state.target_density is not None else training.density
    if d is None:
        raise ConfigError(f"mask density: none set, the {training.estimator} estimator needs a target density")
    return float(d)


def hard_levels(scores: torch.Tensor, spec: MaskSpec, training: MaskTraining, state: MaskState) -> torch.Tensor:
    """The levels the forward pass uses for these scores (same rule in train and eval):
    uint8, or int8 for signed masks."""
    if spec.kind == "nm":
        return _nm_levels(scores, spec.n, spec.m)
    if training.estimator == "quant":
        return _quant_levels(scores, _step(state), spec.levels, signed=spec.kind == "signed")
    if spec.kind == "signed":  # the unsigned rule on |s|, the sign of s
        return _signed(_unsigned_levels(scores.detach().abs(), spec, training, state), scores)
    return _unsigned_levels(scores, spec, training, state)


def _unsigned_levels(scores: torch.Tensor, spec: MaskSpec, training: MaskTraining, state: MaskState) -> torch.Tensor:
    if training.estimator == "ste":
        return (scores.detach() >= 0).to(torch.uint8)
    if training.estimator == "topk":
        return _topk_levels(scores, _density(state, training))
    return _nested_levels(scores, _density(state, training), spec.levels)


def _step(state: MaskState) -> torch.Tensor:
    if state.mask_log_step is None:
        raise ConfigError("mask_log_step: none on this layer, the quant estimator needs it")
    return state.mask_log_step.exp()


# ---------------------------------------------------------------- estimators

class _StraightThrough(torch.autograd.Function):
    """Forward: the given hard levels as float32. Backward: identity to the scores."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
        return hard.to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class _SigmoidSTE(torch.autograd.Function):
    """Forward: 1[s >= 0]. Backward: sigmoid'(s/T) / T."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, temperature: float) -> torch.Tensor:
        ctx.save_for_backward(scores)
        ctx.temperature = temperature
        return (scores >= 0).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scores,) = ctx.saved_tensors
        inv_t = 1.0 / ctx.temperature
        sig = torch.mul(scores, inv_t).sigmoid_()
        return sig.addcmul_(sig, sig, value=-1.0).mul_(grad).mul_(inv_t), None  # sigmoid' = sig - sig^2


class _QuantSTE(torch.autograd.Function):
    """Forward: the quant staircase. Backward: its sigmoid-smoothed version at temperature T."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, log_step: torch.Tensor, levels: int, temperature: float):
        step = log_step.exp()
        ctx.save_for_backward(scores, step)
        ctx.levels, ctx.temperature = levels, temperature
        return _quant_levels_float(scores, step, levels).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # In place, one scratch tensor: this runs over every connection each step, so its
        # memory passes are a visible share of a CPU training step.
        scores, step = ctx.saved_tensors
        inv_t = 1.0 / ctx.temperature
        d_scores = torch.zeros_like(scores)
        d_step = torch.zeros_like(scores) if ctx.levels > 2 else None
        sig = torch.empty_like(scores)
        for j in range(ctx.levels - 1):  # threshold j*delta
            torch.sub(scores, step * j, out=sig).mul_(inv_t).sigmoid_()
            sig.addcmul_(sig, sig, value=-1.0)  # sigmoid'(z) = sig - sig^2
            d_scores.add_(sig)
            if j:
                d_step.add_(sig, alpha=-j)
        # d/d(log delta) = delta * d/d(delta); the 1/T of every slope is applied once here
        d_log_step = (torch.dot(grad.reshape(-1), d_step.reshape(-1)) * step * inv_t
                      if d_step is not None else torch.zeros_like(step))
        return d_scores.mul_(grad).mul_(inv_t), d_log_step.reshape(step.shape), None, None


class _SignedQuantSTE(torch.autograd.Function):
    """Forward: the signed quant staircase. Backward: its odd sigmoid-smoothed version,
    sum_j sigmoid((s - j*delta)/T) - sigmoid((-s - j*delta)/T), j = 1..K-1."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, log_step: torch.Tensor, levels: int, temperature: float):
        step = log_step.exp()
        ctx.save_for_backward(scores, step)
        ctx.levels, ctx.temperature = levels, temperature
        return _quant_levels_float(scores, step, levels, signed=True).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        scores, step = ctx.saved_tensors
        inv_t = 1.0 / ctx.temperature
        d_scores = torch.zeros_like(scores)
        d_step = torch.zeros_like(scores)
        sig = torch.empty_like(scores)
        for j in range(1, ctx.levels):
            for side in (1.0, -1.0):  # the threshold at +j*delta, then the one at -j*delta
                torch.mul(scores, side, out=sig).sub_(step * j).mul_(inv_t).sigmoid_()
                sig.addcmul_(sig, sig, value=-1.0)  # sigmoid'(z) = sig - sig^2
                d_scores.add_(sig)  # d/ds of side * sigmoid((side*s - j*delta)/T), side^2 = 1
                d_step.add_(sig, alpha=-j * side)
        d_log_step = torch.dot(grad.reshape(-1), d_step.reshape(-1)) * step * inv_t
        return d_scores.mul_(grad).mul_(inv_t), d_log_step.reshape(step.shape), None, None


def mask_levels(scores: torch.Tensor, spec: MaskSpec, training: MaskTraining, state: MaskState) -> torch.Tensor:
    """Levels as float32 carrying the estimator's gradient to the scores (and quant's step)."""
    if training.estimator == "ste":
        return _SigmoidSTE.apply(scores, float(state.temperature))
    if training.estimator == "quant":
        quant = _SignedQuantSTE if spec.kind == "signed" else _QuantSTE
        return quant.apply(scores, state.mask_log_step, spec.levels, float(state.temperature))
    return _StraightThrough.apply(scores, hard_levels(scores, spec, training, state))


def init_scores(shape: tuple[int, ...], spec: MaskSpec, training: MaskTraining,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Starting scores (torch's global RNG; not part of any artifact).

    ste: U(-0.02, 0.06), a starting density of 0.75 with every score near the threshold so
    early steps can flip any connection. quant: U(-delta0, (K-1)*delta0), equal shares of
    the K levels; signed quant: U(-K*delta0, K*delta0), equal shares of the K magnitudes,
    each nonzero one split evenly between the two signs. topk / nested / nm: U(0, 1) (only
    the order matters); signed topk / nested: U(-1, 1) (the order of |s|, random signs).
    """
    scores = torch.empty(shape, dtype=torch.float32, device=device)
    signed = spec.kind == "signed"
    if training.estimator == "ste":
        return scores.uniform_(-0.02, 0.06)
    if training.estimator == "quant":
        low = -spec.levels * QUANT_STEP_INIT if signed else -QUANT_STEP_INIT
        high = spec.levels * QUANT_STEP_INIT if signed else (spec.levels - 1) * QUANT_STEP_INIT
        return scores.uniform_(low, high)
    return scores.uniform_(-1.0 if signed else 0.0, 1.0)


def quant_log_step_init() -> float:
    return math.log(QUANT_STEP_INIT)
