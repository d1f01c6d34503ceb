"""What a ticket is: a seed plus a named, ordered list of masked, plain and ternary tensors.

A ticket holds everything an artifact stores, decoded: mask levels, fp16 scales,
fp16 plain tensors and trits. ``effective_state_dict`` turns it into the dense
float32 weights a torch module loads, regenerating each frozen weight with the
ticket's random stream (``rng``): from ``(seed, tensor name)`` for Philox, or in
one documented sequence for imported torch-MT19937 tickets (``frozen_weights``).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
import torch
from torch import nn

from . import __version__, rng
from .errors import ConfigError, HeaderError
from .masking import MaskSpec
from .model_config import DEFAULT_MODEL_LIMITS, ModelLimits, config_from_dict

SCALE_MODES = ("none", "tensor", "row")
GAMMA_MODES = ("tensor", "row", "shard")


@dataclass
class MaskedTensor:
    """A frozen seeded weight times a mask of levels 0..K-1, times an optional fp16 scale."""

    name: str
    shape: tuple[int, ...]
    init: str
    mask: MaskSpec
    levels: np.ndarray  # uint8, ``shape``
    scale: np.ndarray | None = None  # float16: shape () per tensor or (shape[0],) per row

    @property
    def scale_mode(self) -> str:
        if self.scale is None:
            return "none"
        return "tensor" if self.scale.ndim == 0 else "row"

    def effective(self, seed: int, frozen: np.ndarray | None = None) -> np.ndarray:
        """(frozen * level) * scale in float32, in that order (the documented rule).

        ``frozen`` is the regenerated weight; None draws it from the Philox stream.
        """
        if frozen is None:
            frozen = rng.frozen_weight(seed, self.name, self.shape, self.init)
        weight = frozen * self.levels.astype(np.float32)
        if self.scale is not None:
            weight *= _broadcast_rows(self.scale.astype(np.float32), len(self.shape))
        return weight


@dataclass
class PlainTensor:
    """A small learned tensor (scale, gain): float16, or float32 where values must stay exact."""

    name: str
    data: np.ndarray  # float16 (stored f16) or float32 (stored f32, e.g. imported fp32 scales)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def effective(self, seed: int) -> np.ndarray:
        return self.data.astype(np.float32)


@dataclass
class TernaryTensor:
    """An externally trained ternary weight: gamma * trit, trit in {-1, 0, +1}."""

    name: str
    trits: np.ndarray  # int8 in {-1, 0, 1}, the weight's shape
    gamma: np.ndarray  # float16: () per tensor, (d0,) per row, (S,) per shard of rows

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.trits.shape)

    @property
    def gamma_mode(self) -> str:
        if self.gamma.ndim == 0:
            return "tensor"
        return "row" if self.gamma.shape[0] == self.trits.shape[0] else "shard"

    def effective(self, seed: int) -> np.ndarray:
        gamma = self.gamma.astype(np.float32)
        if gamma.ndim == 1 and self.gamma_mode == "shard":
            gamma = np.repeat(gamma, self.trits.shape[0] // gamma.shape[0])
        return _broadcast_rows(gamma, self.trits.ndim) * self.trits.astype(np.float32)


TensorEntry = Union[MaskedTensor, PlainTensor, TernaryTensor]


@dataclass
class Ticket:
    """A seed, the random stream it drives, a model config and the ordered tensors."""

    seed: int
    config: dict
    tensors: list[TensorEntry]
    rng: str = rng.RNG_ID
    provenance: dict = field(default_factory=dict)
    eval: dict | None = None  # evaluation context: {"seq_len", "tokenizer"} (eval_context.py)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise HeaderError(f"tensors: duplicate name {dup!r}, expected unique names")

    def effective_state_dict(self) -> dict[str, torch.Tensor]:
        """Dense float32 CPU weights, keyed by tensor name, in ticket order."""
        masked = {t.name: t for t in self.tensors if isinstance(t, MaskedTensor)}
        done = {name: masked[name].effective(self.seed, frozen)
                for name, frozen in frozen_weights(self.seed, self.rng, list(masked.values()))}
        return {t.name: torch.from_numpy(done[t.name] if t.name in done else t.effective(self.seed))
                for t in self.tensors}

    def check_rng(self) -> None:
        """Refuse a random stream this version cannot regenerate (HeaderError)."""
        frozen_weights(self.seed, self.rng, [])

    def connections(self) -> int:
        return sum(int(np.prod(t.shape)) for t in self.tensors if not isinstance(t, PlainTensor))


def frozen_weights(seed: int, rng_id: str,
                   tensors: Sequence[MaskedTensor]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, frozen float32 weight) of each masked tensor, in the order ``rng_id``'s stream draws them.

    ``philox4x32-10/v1``: each tensor alone from its own stream. ``torch-mt19937-cpu/<version>``
    (imported parameter-golf tickets): all from one torch generator, in the order pg_import documents.
    """
    if rng_id == rng.RNG_ID:
        return ((t.name, rng.frozen_weight(seed, t.name, t.shape, t.init)) for t in tensors)
    if rng_id.startswith(rng.PG_RNG_PREFIX):
        from . import pg_import

        return pg_import.mt19937_frozen_weights(seed, tensors)
    raise HeaderError(f"rng: this ticket uses {rng_id!r}; effective weights need {rng.RNG_ID!r} "
                      f"or {rng.PG_RNG_PREFIX + '<torch version>'!r}")


def weights_sha256(state: dict[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over (name, shape, float32 little-endian values) of each tensor in order."""
    items = state.items() if isinstance(state, dict) else state
    digest = hashlib.sha256()
    for name, tensor in items:
        raw = name.encode("utf-8")
        values = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
        digest.update(struct.pack("<I", len(raw)) + raw + struct.pack("<I", values.ndim))
        digest.update(struct.pack(f"<{values.ndim}Q", *values.shape))
        digest.update(values.astype("<f4", copy=False).tobytes())
    return digest.hexdigest()


def ticket_from_model(module: nn.Module, seed: int, config: dict,
                      provenance: dict | None = None) -> Ticket:
    """Read a module's masked layers (hard masks, fp16 scales) and other parameters into a Ticket."""
    from .layers import masked_layers

    tensors: list[TensorEntry] = []
    owned: set[str] = set()
    for path, layer in masked_layers(module):
        prefix = f"{path}." if path else ""
        owned.update(f"{prefix}{p}" for p, _ in layer.named_parameters(recurse=False))
        tensors.append(_masked_entry(layer))
    for name, param in module.named_parameters():
        if name not in owned:
            tensors.append(PlainTensor(name, param.detach().cpu().float().numpy().astype(np.float16)))
    return Ticket(seed=seed, config=dict(config), tensors=tensors,
                  provenance=provenance or default_provenance())


def _masked_entry(layer: nn.Module) -> MaskedTensor:
    if getattr(layer, "tensor_name", None) is None:
        raise ConfigError("masked layer: no tensor name; call layers.bind_seed(module, seed) first")
    scale = None
    if getattr(layer, "scale", None) is not None:
        scale = layer.scale.detach().cpu().float().numpy().astype(np.float16).reshape(-1)
        scale = scale.reshape(()) if scale.size == 1 and layer.scale.dim() == 0 else scale
    levels = layer.hard_mask().detach().cpu().numpy().astype(np.uint8)
    return MaskedTensor(name=layer.tensor_name, shape=tuple(levels.shape), init=layer.init,
                        mask=layer.mask, levels=levels, scale=scale)


def model_from_ticket(ticket: Ticket, device: str | torch.device = "cpu",
                      state: dict[str, torch.Tensor] | None = None,
                      limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> nn.Module:
    """The built-in GPT with dense layers holding the ticket's effective weights, in eval mode.

    ``state``: the ticket's effective state dict when the caller already has it (verified).
    The config is validated and bounded first (``HeaderError``: it is the artifact's content).
    """
    from .model import dense_gpt_on_meta, materialize_unfilled

    config = config_from_dict(ticket.config, limits, error=HeaderError, where="config")
    model = dense_gpt_on_meta(config)
    state = ticket.effective_state_dict() if state is None else state
    check_fits(model, state)  # on the meta model: a config bomb is refused before allocation
    load_effective(materialize_unfilled(model), state)
    return model.to(device).eval()


def check_fits(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Every parameter of ``model`` and nothing else in ``state``, with the same shapes."""
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise HeaderError(f"config: the artifact's tensors do not fit the model its config describes "
                          f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for name, value in state.items():
        if tuple(own[name].shape) != tuple(value.shape):
            raise HeaderError(f"{name}: shape {tuple(value.shape)} in the artifact, "
                              f"its config's model expects {tuple(own[name].shape)}")


def load_effective(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load effective weights into a dense module, naming any key that does not fit."""
    check_fits(model, state)
    own = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value)


def default_provenance(extra: dict | None = None) -> dict:
    """Library versions (and any caller facts) recorded in artifacts and logs."""
    out = {"ticketpack": __version__, "torch": torch.__version__, "numpy": np.__version__}
    out.update(extra or {})
    return out


def _broadcast_rows(values: np.ndarray, ndim: int) -> np.ndarray:
    """Shape a per-row vector (d0,) as (d0, 1, ...) so it scales whole rows."""
    if values.ndim == 0:
        return values
    return values.reshape((-1,) + (1,) * (ndim - 1))
