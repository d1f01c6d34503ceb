"""Masked twins of the layers people's models are made of, over the masked weight of nn/layers.py.

Each class takes the module it replaces and keeps what is not its weight: the bias (the same
Parameter, still trained, stored as a plain tensor), strides, paddings. Its forward calls the
very op the original calls with the effective weight ``(frozen * level) * scale`` in place of
the weight, so a dense module holding the effective weights gives the same bits:

- ``SupermaskLinear`` (nn.Linear), ``SupermaskEmbedding`` (nn.Embedding);
- ``SupermaskConv`` (nn.Conv1d / 2d / 3d: weight (out, in / groups, *kernel), layout ``conv``);
- ``SupermaskConv1D`` (transformers' Conv1D: weight stored (in, out), layout ``in_out``);
- ``TiedLinear`` / ``TiedEmbedding``: a layer whose weight is another masked layer's effective
  weight (tied input / output embeddings: one tensor, stored once, used by two modules).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .layers import MaskedEmbedding, MaskedLinear, _MaskedWeight, adapted_table, add_adapters

CONV_OPS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class SupermaskLinear(MaskedLinear):
    """nn.Linear as a supermask: ``F.linear(x, W_eff, bias)``, the bias the original one."""

    def __init__(self, source: nn.Linear, **options: Any) -> None:
        super().__init__(source.in_features, source.out_features, **options)
        self.bias = source.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.effective_weight(), self.bias if self.adapter_a is None else None)
        if self.adapter_a is None:
            return y
        y = add_adapters(y, x, self.adapter_a, self.adapter_b)
        return y if self.bias is None else y + self.bias


class SupermaskEmbedding(MaskedEmbedding):
    """nn.Embedding as a supermask (padding_idx kept: that row gets no gradient)."""

    def __init__(self, source: nn.Embedding, **options: Any) -> None:
        if source.max_norm is not None or source.sparse:
            raise ConfigError("supermask: an nn.Embedding with max_norm or sparse gradients "
                              "cannot be masked; exclude it")
        super().__init__(source.num_embeddings, source.embedding_dim, **options)
        self.padding_idx = source.padding_idx

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.table(), self.padding_idx)


class SupermaskConv(_MaskedWeight):
    """nn.Conv1d / 2d / 3d as a supermask: the same convolution with the effective weight."""

    def __init__(self, source: nn.modules.conv._ConvNd, **options: Any) -> None:
        super().__init__()
        if source.transposed or len(source.kernel_size) not in CONV_OPS:
            raise ConfigError(f"supermask: {type(source).__name__} is not supported (Conv1d/2d/3d only)")
        if options.get("adapter_rank"):
            raise ConfigError("supermask: adapters are for linear and embedding layers, not convolutions")
        self._setup(tuple(source.weight.shape), layout="conv", **options)
        for key in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                    "groups", "padding_mode", "_reversed_padding_repeated_twice"):
            setattr(self, key, getattr(source, key))
        self.bias = source.bias
        self._conv = CONV_OPS[len(source.kernel_size)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, padding = self.effective_weight(), self.padding
        if self.padding_mode != "zeros":  # what nn.Conv does: pad first, then convolve unpadded
            x, padding = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode), 0
        return self._conv(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)


class SupermaskConv1D(_MaskedWeight):
    """transformers' Conv1D (GPT-2) as a supermask: weight (in, out), ``x @ W_eff + bias``."""

    def __init__(self, source: nn.Module, **options: Any) -> None:
        super().__init__()
        if options.get("adapter_rank"):
            raise ConfigError("supermask: adapters are for linear and embedding layers, not Conv1D")
        self.nx, self.nf = source.nx, source.nf
        self._setup((source.nx, source.nf), layout="in_out", **options)
        self.bias = source.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size_out = x.size()[:-1] + (self.nf,)
        w = self.effective_weight()
        y = torch.addmm(self.bias, x.view(-1, x.size(-1)), w) if self.bias is not None else x.view(-1, x.size(-1)) @ w
        return y.view(size_out)


class _Tied(nn.Module):
    """A module whose weight is another masked layer's effective weight, with its adapters
    (tied input / output embeddings). The source is held outside the module tree, so its
    parameters are listed, and stored, once: under the source's own name."""

    def __init__(self, source: _MaskedWeight) -> None:
        super().__init__()
        self._source = (source,)  # a tuple: nn.Module does not register it as a child

    @property
    def source(self) -> _MaskedWeight:
        return self._source[0]

    def weight_value(self) -> torch.Tensor:
        src = self.source
        return adapted_table(src.effective_weight(), src.adapter_a, src.adapter_b)

    def extra_repr(self) -> str:
        return f"tied to {self.source.tensor_name}"


class TiedLinear(_Tied):
    """nn.Linear over a tied weight: ``F.linear(x, W, bias)``."""

    def __init__(self, source: _MaskedWeight, replaced: nn.Linear) -> None:
        super().__init__(source)
        self.bias = replaced.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_value(), self.bias)


class TiedEmbedding(_Tied):
    """nn.Embedding over a tied weight."""

    def __init__(self, source: _MaskedWeight, replaced: nn.Embedding) -> None:
        super().__init__(source)
        self.padding_idx = replaced.padding_idx

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.weight_value(), self.padding_idx)
