"""Masked layers: a frozen seeded weight, learned mask scores and an optional learned scale.

Effective weight (float32, in this order): ``(frozen * level) * scale`` where ``level`` comes
from the layer's scores through its ``MaskSpec`` (see nn/masking.py). The frozen weight is a
non-persistent buffer: it is never saved, only regenerated from ``(seed, tensor_name)`` by
``bind_seed``. A layer is unusable until bound (its forward raises ConfigError).

Per-layer training state read by the estimators: ``mask_training`` (a ``MaskTraining``:
estimator and starting density; the kind's default estimator when not given),
``temperature`` (float, default 1.0; set all layers at once with ``set_temperature``),
``target_density`` (starts at ``mask_training.density``; ``set_density`` moves it for a
schedule) and, for multibit ``quant``, the learned parameter ``mask_log_step``.

Mask ``none``: no scores at all; the effective weight is ``frozen * scale`` (a seeded
backbone). Adapters (``adapter_rank`` r > 0): trained ``adapter_a`` (r x in, LoRA's uniform
init) and ``adapter_b`` (out x r, zero, so training starts from the backbone) add ``B @ A``:
a linear layer computes ``x @ W_eff.T + (x @ A.T) @ B.T``, an embedding looks rows up in
``W_eff + B @ A``. ``AdaptedLinear`` / ``AdaptedEmbedding`` are the dense twins a ticket
with adapters loads into.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import frozen as rng
from ..errors import ConfigError
from ..format.constants import DEFAULT_LAYOUT, SCALE_MODES
from ..format.philox import check_init_std, check_layout
from ..format.tensors import nonzero_share
from .mask_training import MaskTraining
from .masking import MaskSpec, hard_levels, init_scores, mask_levels, quant_log_step_init



# a masked layer's own parameters (beside the frozen weight): what a ticket stores of it and what
# an optimizer trains, named once for the ticket bridge and the converter
MASKED_PARTS = ("scores", "scale", "mask_log_step", "adapter_a", "adapter_b")


class _MaskedWeight(nn.Module):
    """What MaskedLinear and MaskedEmbedding share: frozen, scores, scale, levels."""

    def _setup(self, shape: tuple[int, ...], init: str, mask: MaskSpec | str, scale_mode: str,
               adapter_rank: int = 0, mask_training: MaskTraining | None = None,
               layout: str = DEFAULT_LAYOUT, init_std: float | None = None) -> None:
        if init not in rng.INIT_RULES:
            raise ConfigError(f"init: {init!r}, expected one of {', '.join(rng.INIT_RULES)}")
        # how the shape maps to fans (format v3: out_in, in_out, conv) and normal_std's std
        self.layout, self.init_std = check_layout(layout, shape), check_init_std(init, init_std)
        if scale_mode not in SCALE_MODES:
            raise ConfigError(f"scale_mode: {scale_mode!r}, expected one of {', '.join(SCALE_MODES)}")
        self.mask = MaskSpec.parse(mask) if isinstance(mask, str) else mask
        if mask_training is None:
            mask_training = MaskTraining.for_mask(self.mask)
        else:  # checked against this layer's mask kind
            mask_training = MaskTraining.for_mask(self.mask, mask_training.estimator, mask_training.density)
        self.mask_training = mask_training
        if self.mask.kind == "nm" and shape[-1] % self.mask.m:  # N of M along the last dimension
            raise ConfigError(f"nm mask: last dimension {shape[-1]} of {tuple(shape)}, "
                              f"expected a multiple of M={self.mask.m}")
        self.init, self.scale_mode = init, scale_mode
        self.tensor_name: str | None = None  # set by bind_seed
        self.seed: int | None = None
        self.temperature = 1.0
        self.target_density = mask_training.density
        self.register_buffer("frozen", torch.empty(shape, dtype=torch.float32), persistent=False)
        self.scores = None if self.mask.kind == "none" else nn.Parameter(
            init_scores(shape, self.mask, mask_training, device=self.frozen.device))
        log_step = None
        if mask_training.estimator == "quant":
            log_step = nn.Parameter(torch.tensor(quant_log_step_init(), device=self.frozen.device))
        self.mask_log_step = log_step
        scale = None
        if scale_mode != "none":
            # per row: (d0, 1, ...), so it broadcasts over the rows of a weight of any rank
            scale = nn.Parameter(torch.ones(() if scale_mode == "tensor" else (shape[0],) + (1,) * (len(shape) - 1),
                                            device=self.frozen.device))
        self.scale = scale
        self.adapter_a, self.adapter_b = _adapters(shape, adapter_rank, self.frozen.device)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.frozen.shape)

    def effective_weight(self) -> torch.Tensor:
        """(frozen * level) * scale in float32; gradients reach scores, step and scale."""
        self._check_bound()
        weight = self.frozen if self.scores is None else self.frozen * mask_levels(self.scores, self.mask, self.mask_training, self)
        return weight if self.scale is None else weight * self.scale

    def _check_bound(self) -> None:
        if self.seed is None:
            raise ConfigError("masked layer: frozen weights not generated; "
                              "call ticketpack.nn.layers.bind_seed(module, seed) first")

    def hard_mask(self) -> torch.Tensor:
        """The levels this layer's forward uses (uint8; int8 for a signed mask)."""
        if self.scores is None:  # mask none: every connection kept
            return torch.ones(self.shape, dtype=torch.uint8, device=self.frozen.device)
        with torch.no_grad():
            return hard_levels(self.scores, self.mask, self.mask_training, self)

    def density(self) -> float:
        """Share of connections with a nonzero level."""
        return nonzero_share([self.hard_mask()])[0]

    def extra_repr(self) -> str:
        rank = 0 if self.adapter_a is None else self.adapter_a.shape[0]
        return (f"shape={self.shape}, init={self.init}, mask={self.mask}/{self.mask_training.estimator}, "
                f"scale={self.scale_mode}, adapter_rank={rank}, name={self.tensor_name}")


class MaskedLinear(_MaskedWeight):
    """y = x @ W_eff.T with W_eff of shape (out_features, in_features); no bias."""

    def __init__(self, in_features: int, out_features: int, *, init: str = "xavier_uniform",
                 mask: MaskSpec | str = "binary", scale_mode: str = "none", adapter_rank: int = 0,
                 mask_training: MaskTraining | None = None, init_std: float | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._setup((out_features, in_features), init, mask, scale_mode, adapter_rank, mask_training,
                    init_std=init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scores is None and self.scale is not None:
            # No mask: scale the output instead of the frozen weight (the same product up to
            # rounding), so backward skips the weight-sized gradient matmul that only fed the
            # scale's gradient: a third fewer multiply-adds per step.
            self._check_bound()
            y = F.linear(x, self.frozen) * self.scale.reshape(-1).to(x.dtype)
            return add_adapters(y, x, self.adapter_a, self.adapter_b)
        return adapted_linear(x, self.effective_weight(), self.adapter_a, self.adapter_b)


class MaskedEmbedding(_MaskedWeight):
    """Row lookup in W_eff of shape (num_embeddings, dim)."""

    def __init__(self, num_embeddings: int, dim: int, *, init: str = "xavier_uniform",
                 mask: MaskSpec | str = "binary", scale_mode: str = "none", adapter_rank: int = 0,
                 mask_training: MaskTraining | None = None, init_std: float | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, dim
        self._setup((num_embeddings, dim), init, mask, scale_mode, adapter_rank, mask_training,
                    init_std=init_std)

    def table(self) -> torch.Tensor:
        """The rows looked up (and the tied logits' weight): W_eff + B @ A."""
        return adapted_table(self.effective_weight(), self.adapter_a, self.adapter_b)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.table())


# ---------------------------------------------------------------- adapters

def _adapters(shape: tuple[int, int], rank: int, device: torch.device
              ) -> tuple[nn.Parameter | None, nn.Parameter | None]:
    """(A, B) of a rank-r adapter for a (out, in) weight: A ~ U(+-1/sqrt(in)), B = 0."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise ConfigError(f"adapter_rank: {rank!r}, expected an integer >= 0")
    if rank == 0:
        return None, None
    if len(shape) != 2:
        raise ConfigError(f"adapter_rank: {rank} on a weight of shape {tuple(shape)}, adapters need a matrix")
    bound = shape[1] ** -0.5
    a = torch.empty((rank, shape[1]), device=device).uniform_(-bound, bound)
    return nn.Parameter(a), nn.Parameter(torch.zeros((shape[0], rank), device=device))


def adapted_linear(x: torch.Tensor, weight: torch.Tensor, a: torch.Tensor | None,
                   b: torch.Tensor | None) -> torch.Tensor:
    """x @ W.T, plus (x @ A.T) @ B.T with an adapter (never forms B @ A: r << in, out)."""
    return add_adapters(F.linear(x, weight), x, a, b)


def add_adapters(y: torch.Tensor, x: torch.Tensor, a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
    """y + (x @ A.T) @ B.T, or y without an adapter."""
    return y if a is None else y + F.linear(F.linear(x, a.to(x.dtype)), b.to(x.dtype))


def adapted_table(weight: torch.Tensor, a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
    return weight if a is None else weight + b @ a


class AdaptedLinear(nn.Linear):
    """The dense twin of an adapted MaskedLinear: ``weight`` (the effective weight) + adapters."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.adapter_a, self.adapter_b = _adapters((out_features, in_features), rank, self.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adapted_linear(x, self.weight, self.adapter_a, self.adapter_b)


class AdaptedEmbedding(nn.Embedding):
    """The dense twin of an adapted MaskedEmbedding."""

    def __init__(self, num_embeddings: int, dim: int, rank: int) -> None:
        super().__init__(num_embeddings, dim)
        self.adapter_a, self.adapter_b = _adapters((num_embeddings, dim), rank, self.weight.device)

    def table(self) -> torch.Tensor:
        return adapted_table(self.weight, self.adapter_a, self.adapter_b)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.table())


def masked_layers(module: nn.Module) -> list[tuple[str, _MaskedWeight]]:
    """(module path, layer) for every masked layer, in registration order."""
    return [(path, m) for path, m in module.named_modules() if isinstance(m, _MaskedWeight)]


def bind_seed(module: nn.Module, seed: int) -> None:
    """Name every masked layer after its weight and regenerate its frozen buffer from the seed."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed: {seed!r}, expected an integer in 0..{2**32 - 1}")
    for path, layer in masked_layers(module):
        name = f"{path}.weight" if path else "weight"
        device = layer.frozen.device
        with torch.no_grad():
            layer.frozen = _regenerate(seed, name, layer, device)
        layer.tensor_name, layer.seed = name, seed


def _regenerate(seed: int, name: str, layer: _MaskedWeight, device: torch.device) -> torch.Tensor:
    # Both paths give the same bits; numba's CPU path is ~50x faster than torch ops on CPU,
    # the torch path keeps the values on the GPU when the layer lives there.
    shape, rule = tuple(layer.shape), layer.init
    if device.type == "meta":  # a model without values (sizing, shape checks): nothing to draw
        return torch.empty(shape, device=device)
    if device.type == "cpu":
        return torch.from_numpy(rng.frozen_weight(seed, name, shape, rule, layout=layer.layout,
                                                  init_std=layer.init_std))
    return rng.frozen_weight_torch(seed, name, shape, rule, device=device, layout=layer.layout,
                                   init_std=layer.init_std)


def set_temperature(module: nn.Module, temperature: float) -> None:
    """Set the STE surrogate temperature T of every masked layer (the trainer anneals it)."""
    if not temperature > 0:
        raise ConfigError(f"temperature: {temperature!r}, expected a positive number")
    for _, layer in masked_layers(module):
        layer.temperature = float(temperature)


def set_density(module: nn.Module, density: float) -> None:
    """Set the target density of every masked layer (used by the topk and nested estimators)."""
    if not 0 < density <= 1:
        raise ConfigError(f"density: {density!r}, expected a number in (0, 1]")
    for _, layer in masked_layers(module):
        layer.target_density = float(density)


def randomize_scores(module: nn.Module, seed: int) -> None:
    """Set every masked layer's scores to seeded N(0, 1) draws: a ticket with arbitrary masks,
    for tests, benchmarks and checkpoints made without training."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in masked_layers(module):
            if layer.scores is not None:  # mask none has nothing to choose
                layer.scores.copy_(torch.randn(layer.scores.shape, generator=gen))
