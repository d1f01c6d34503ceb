"""Quantisation-aware training of the built-in dense GPT: ternary (TriLM) and binary weights.

ternary   as in TriLM / Spectra: ``gamma = 1e-5 + mean|W|`` (per tensor or per row),
          ``W~ = gamma * round(clip(W / gamma, -1, 1))``, and a straight-through gradient to
          the latent float weights.
binary    1-bit weights (XNOR-Net / BinaryConnect style): ``W~ = alpha * sign(W)`` with one
          scale per output row, ``alpha = mean|W_row|`` (the scale that minimises
          ||W - alpha * sign(W)|| for that row; sign(0) = +1), straight-through likewise.

Both register a torch parametrization on every linear / embedding weight (``make_ternary``,
``make_binary``); train the model as usual (``baselines.dense.train_dense``), then
``ternary_ticket`` turns it into a ``Ticket`` of ``TernaryTensor``s (trits + fp16 gamma;
binary: trits all +-1 and per-row gamma, so the entropy coder spends ~1 bit per weight), which
packs into a ticketpack artifact sized by the same rules as a ticket's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from ..format.constants import GAMMA_MODES
from ..format.tensors import PlainTensor, TensorEntry, TernaryTensor, Ticket
from ..provenance import default_provenance

GAMMA_EPS = 1e-5  # TriLM: gamma = eps + mean|W|
# TriLM QAT computes gamma per tensor or per row; "shard" (imported ternary tickets) is never learned
QAT_GAMMA_MODES = tuple(mode for mode in GAMMA_MODES if mode != "shard")
BINARY_EPS = 1e-8  # alpha of an all-zero row stays positive


# ---------------------------------------------------------------- ternary (TriLM)

def ternary_gamma(weight: torch.Tensor, mode: str = "tensor") -> torch.Tensor:
    """gamma = 1e-5 + mean|W|: shape () per tensor, (rows, 1) per row."""
    if mode not in QAT_GAMMA_MODES:
        raise ConfigError(f"gamma mode: {mode!r}, expected one of {', '.join(QAT_GAMMA_MODES)}")
    if mode == "tensor":
        return GAMMA_EPS + weight.abs().mean()
    return GAMMA_EPS + weight.abs().mean(dim=1, keepdim=True)


def ternary_trits(weight: torch.Tensor, mode: str = "tensor") -> tuple[torch.Tensor, torch.Tensor]:
    """(trits in {-1, 0, 1} as float, gamma) of a weight; no gradient."""
    with torch.no_grad():
        gamma = ternary_gamma(weight, mode)
        return torch.round(torch.clamp(weight / gamma, -1.0, 1.0)), gamma


def ternarize(weight: torch.Tensor, mode: str = "tensor") -> torch.Tensor:
    """gamma * round(clip(W / gamma, -1, 1)) forward; identity gradient to W (straight-through)."""
    trits, gamma = ternary_trits(weight, mode)
    return weight + (gamma * trits - weight).detach()


class Ternarize(nn.Module):
    """A parametrization: the module's weight is used ternarised, learned in float."""

    def __init__(self, mode: str = "tensor") -> None:
        super().__init__()
        ternary_gamma(torch.ones(1, 1), mode)  # validates the mode
        self.mode = mode

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return ternarize(weight, self.mode)

    def codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(trits, gamma) the packed tensor stores."""
        return ternary_trits(weight, self.mode)


# ---------------------------------------------------------------- binary (1 bit + row scale)

def binary_signs(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(signs in {-1, +1} as float, per-row alpha (rows, 1) = mean|W_row|); no gradient."""
    if weight.dim() != 2:
        raise ConfigError(f"binary weight: {weight.dim()}-D tensor, expected 2-D (rows, cols)")
    with torch.no_grad():
        signs = torch.where(weight < 0, -1.0, 1.0).to(weight.dtype)
        return signs, weight.abs().mean(dim=1, keepdim=True).clamp_min(BINARY_EPS)


def binarize(weight: torch.Tensor) -> torch.Tensor:
    """alpha_row * sign(W) forward; identity gradient to W (straight-through)."""
    signs, alpha = binary_signs(weight)
    return weight + (alpha * signs - weight).detach()


class Binarize(nn.Module):
    """A parametrization: the module's weight is used as sign * per-row scale, learned in float."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return binarize(weight)

    def codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(+-1 trits, per-row alpha) the packed tensor stores."""
        return binary_signs(weight)


def ternary_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of every nn.Linear and nn.Embedding: the weights that become ternary."""
    return [(p, m) for p, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]


def make_ternary(model: nn.Module, mode: str = "tensor", embed_mode: str = "row") -> nn.Module:
    """Register the ternary parametrization on every linear / embedding weight, in place.

    ``embed_mode`` sets the embedding's gamma separately: a token's row is its own vector,
    so one gamma per row costs 2 bytes per token and keeps rare tokens' rows in scale.
    """
    for _, module in _bias_free(ternary_modules(model)):
        m = embed_mode if isinstance(module, nn.Embedding) else mode
        parametrize.register_parametrization(module, "weight", Ternarize(m))
    return model


def make_binary(model: nn.Module) -> nn.Module:
    """Register the binary parametrization (sign * per-row alpha) on every linear / embedding
    weight, in place. The embedding's rows are tokens, so its scales are per token."""
    for _, module in _bias_free(ternary_modules(model)):
        parametrize.register_parametrization(module, "weight", Binarize())
    return model


def _bias_free(modules: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    for _, module in modules:
        if getattr(module, "bias", None) is not None:
            raise ConfigError("quantised model: linear layer with a bias, expected bias-free layers")
    return modules


def ternary_ticket(model: nn.Module, seed: int, config: dict, provenance: dict | None = None) -> Ticket:
    """A ternary- or binary-trained model as a Ticket: TernaryTensor per parametrized weight
    (binary: trits all +-1, per-row gamma), fp16 for the rest.

    Tensors are named as the plain model's state dict names them (``X.weight``), so
    ``model_from_ticket`` loads the result into ``GPT(config, masked=False)``.
    """
    tensors: list[TensorEntry] = []
    owned, kinds = set(), set()
    for path, module in ternary_modules(model):
        if not parametrize.is_parametrized(module, "weight"):
            raise ConfigError(f"{path}.weight: not quantised; call make_ternary(model) or "
                              f"make_binary(model) first")
        quantizer = module.parametrizations.weight[0]
        kinds.add("binary-qat" if isinstance(quantizer, Binarize) else "ternary-qat")
        trits, gamma = quantizer.codes(module.parametrizations.weight.original)
        gamma16 = gamma.reshape(-1).to(torch.float16).numpy()
        tensors.append(TernaryTensor(f"{path}.weight", trits.to(torch.int8).numpy(),
                                     gamma16.reshape(()) if gamma.dim() == 0 else gamma16))
        owned.add(f"{path}.parametrizations.weight.original")
    for name, param in model.named_parameters():
        if name not in owned:
            tensors.append(PlainTensor(name, param.detach().cpu().to(torch.float16).numpy()))
    method = "+".join(sorted(kinds)) or "ternary-qat"
    return Ticket(seed=seed, config=dict(config), tensors=tensors,
                  provenance=provenance or default_provenance({"method": method}))
