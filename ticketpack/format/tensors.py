"""What an artifact holds, decoded: a seed, a random stream and named tensors (numpy only).

Tensor kinds (docs/FORMAT.md section 2):

- ``MaskedTensor``: a frozen seeded weight times mask levels times an optional scale
  (mask ``none``: no levels, every connection kept).
- ``PlainTensor``: a small learned tensor stored as float16 or float32.
- ``TernaryTensor``: gamma * trit, trit in {-1, 0, +1}.
- ``Int8Tensor``: float32(q) * float32(scale[row]), q int8, one fp16 scale per row.

``effective`` of each kind is the documented float32 rule; frozen weights come from
``frozen_weights`` (Philox in the core; other streams are registered by the layer that
can regenerate them, e.g. imported torch-MT19937 tickets by ``ticketpack.interop.pg_import``).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence, Union

import numpy as np

from ..errors import ConfigError, DecodeError, HeaderError, UsageError
from . import philox
from .digest import default_threads, tensor_sha256
from .constants import DEFAULT_LAYOUT, PG_RNG_PREFIX, RNG_ID
from .maskspec import MaskSpec


def nonzero_share(arrays: Iterable) -> tuple[float, int]:
    """Density: the share of nonzero elements over ``arrays`` (numpy, or torch on any device),
    and how many elements they hold (0.0 when none)."""
    kept = total = 0
    for a in arrays:
        kept += int(np.count_nonzero(a)) if isinstance(a, np.ndarray) else int(a.count_nonzero())
        total += math.prod(a.shape)
    return (kept / total if total else 0.0), total


def broadcast_rows(values: np.ndarray, ndim: int) -> np.ndarray:
    """Shape a per-row vector (d0,) as (d0, 1, ...) so it scales whole rows."""
    if values.ndim == 0:
        return values
    return values.reshape((-1,) + (1,) * (ndim - 1))


@dataclass
class MaskedTensor:
    """A frozen seeded weight times a mask of levels (0..K-1; signed:K: -(K-1)..K-1), times an
    optional fp16 scale. ``layout`` says how the shape maps to fans; ``init_std`` is the std of
    init rule normal_std (None for every other rule)."""

    name: str
    shape: tuple[int, ...]
    init: str
    mask: MaskSpec
    levels: np.ndarray | None  # uint8 (signed: int8), ``shape``; None for mask ``none`` (level 1)
    scale: np.ndarray | None = None  # float16 (or float32): shape () per tensor or (shape[0],) per row
    layout: str = DEFAULT_LAYOUT
    init_std: float | None = None

    @property
    def scale_mode(self) -> str:
        if self.scale is None:
            return "none"
        return "tensor" if self.scale.ndim == 0 else "row"

    def effective(self, seed: int, frozen: np.ndarray | None = None, inplace: bool = False) -> np.ndarray:
        """(frozen * level) * scale in float32, in that order (the documented rule).

        ``frozen`` is the regenerated weight; None draws it from the Philox stream.
        ``inplace``: overwrite ``frozen`` with the result (saves a copy of the tensor).
        """
        if frozen is None:
            frozen, inplace = philox_frozen(seed, self, threads=1), True
        weight = frozen if inplace else frozen.copy()
        if self.levels is not None:
            np.multiply(weight, self.levels, out=weight, dtype=np.float32, casting="unsafe")
        if self.scale is not None:
            weight *= broadcast_rows(self.scale.astype(np.float32), len(self.shape))
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
        # np.asarray: a rank-0 product is a numpy scalar, not an array
        return np.asarray(broadcast_rows(gamma, self.trits.ndim) * self.trits.astype(np.float32))


@dataclass
class Int8Tensor:
    """An int8 weight with one fp16 scale per row: float32(q) * float32(scale[row])."""

    name: str
    q: np.ndarray  # int8, the weight's shape (rank >= 1)
    scale: np.ndarray  # float16, (shape[0],)

    def __post_init__(self) -> None:
        if self.q.dtype != np.int8 or self.q.ndim < 1:
            raise UsageError(f"{self.name}: q is {self.q.dtype} of rank {self.q.ndim}, "
                             f"expected int8 of rank >= 1")
        if self.scale.shape != (self.q.shape[0],):
            raise UsageError(f"{self.name}: scale shape {self.scale.shape}, expected "
                             f"({self.q.shape[0]},) (one per row)")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.q.shape)

    def effective(self, seed: int) -> np.ndarray:
        return self.q.astype(np.float32) * broadcast_rows(self.scale.astype(np.float32), self.q.ndim)


INT8_MAX = 127  # symmetric: -127..127, so -q is always representable


def quantize_rows_int8(weight) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D float matrix (numpy, or a CPU torch tensor) as ``Int8Tensor`` parts: (int8 q,
    fp16 per-row scale), ``scale = fp16(max|row| / 127)``, ``q = round(w / scale)``.

    The scale is rounded to fp16 first (upwards where fp16 rounded it down, so |q| <= 127
    without clipping), so q is computed against the very scale stored.
    """
    w = np.asarray(weight, dtype=np.float32)
    if w.ndim != 2:
        raise ConfigError(f"int8 weight: {w.ndim}-D tensor, expected 2-D (rows, cols)")
    amax = np.abs(w).max(axis=1) if w.shape[1] else np.zeros(w.shape[0], np.float32)
    scale = (amax / INT8_MAX).astype(np.float16)
    low = scale.astype(np.float32) * INT8_MAX < amax
    scale[low] = np.nextafter(scale[low], np.float16(np.inf))
    scale[scale == 0] = np.finfo(np.float16).smallest_subnormal  # an all-zero row
    q = np.clip(np.round(w / scale.astype(np.float32)[:, None]), -INT8_MAX, INT8_MAX)
    return q.astype(np.int8), scale


TensorEntry = Union[MaskedTensor, PlainTensor, TernaryTensor, Int8Tensor]

# rng id prefix -> function(seed, masked tensors) yielding (name, frozen float32 weight)
FrozenStream = Callable[[int, Sequence[MaskedTensor]], Iterator[tuple[str, np.ndarray]]]
_STREAMS: dict[str, FrozenStream] = {}


def register_stream(prefix: str, stream: FrozenStream) -> None:
    """Let ``frozen_weights`` regenerate tickets whose rng id starts with ``prefix``."""
    _STREAMS[prefix] = stream


def philox_frozen(seed: int, t: MaskedTensor, threads: int | None = 1) -> np.ndarray:
    """The frozen weight of one masked tensor from its own Philox stream."""
    return philox.frozen_weight(seed, t.name, t.shape, t.init, threads, t.layout, t.init_std)


def frozen_weights(seed: int, rng_id: str,
                   tensors: Sequence[MaskedTensor]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, frozen float32 weight) of each masked tensor, in the order ``rng_id``'s stream draws them.

    ``philox4x32-10/v1``: each tensor alone from its own stream. ``torch-mt19937-cpu/<version>``
    (imported parameter-golf tickets): all from one torch generator, registered by pg_import.
    """
    if rng_id == RNG_ID:
        return ((t.name, philox_frozen(seed, t, None)) for t in tensors)
    other = next((t for t in tensors if t.layout != DEFAULT_LAYOUT), None)
    if other is not None:
        raise HeaderError(f"{other.name}: layout {other.layout!r} with rng {rng_id!r}, which "
                          f"allows only {DEFAULT_LAYOUT!r}")
    for prefix, stream in _STREAMS.items():
        if rng_id.startswith(prefix):
            return stream(seed, tensors)
    if rng_id.startswith(PG_RNG_PREFIX):
        raise HeaderError(f"rng: this ticket uses {rng_id!r}, which only torch regenerates "
                          f"(import ticketpack.ticket with torch installed)")
    raise HeaderError(f"rng: this ticket uses {rng_id!r}; effective weights need {RNG_ID!r} "
                      f"or {PG_RNG_PREFIX + '<torch version>'!r}")


@dataclass
class Ticket:
    """A seed, the random stream it drives, a model config, an evaluation context and tensors."""

    seed: int
    config: dict
    tensors: list[TensorEntry]
    rng: str = RNG_ID
    provenance: dict = field(default_factory=dict)
    eval: dict | None = None  # evaluation context: {"seq_len", "tokenizer"} (format/eval_context.py)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise HeaderError(f"tensors: duplicate name {dup!r}, expected unique names")

    def effective_arrays(self, threads: int | None = None) -> dict[str, np.ndarray]:
        """Dense float32 numpy weights, keyed by tensor name, in ticket order."""
        return effective_weights(self, threads)

    def effective_state_dict(self) -> dict:
        """Dense float32 CPU torch tensors, keyed by tensor name, in ticket order (needs torch)."""
        import torch  # the torch bridge: only this method needs it

        return {name: torch.from_numpy(w) for name, w in self.effective_arrays().items()}

    def connections(self) -> int:
        return sum(math.prod(t.shape) for t in self.tensors if not isinstance(t, PlainTensor))


def _effective_one(ticket: Ticket, t: TensorEntry, frozen: np.ndarray | None,
                   numba_threads: int | None, digest: bool) -> tuple[np.ndarray, bytes | None]:
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below
        if isinstance(t, MaskedTensor):
            if frozen is None:
                frozen = philox_frozen(ticket.seed, t, numba_threads)
            value = t.effective(ticket.seed, frozen, inplace=True)
        else:
            value = t.effective(ticket.seed)
    check_finite(t.name, value)
    return value, (tensor_sha256(t.name, value) if digest else None)


def check_finite(name: str, value: np.ndarray) -> None:
    """Every effective weight must be finite (a finite scale times a frozen weight can overflow)."""
    if not np.isfinite(value).all():
        bad = int(np.flatnonzero(~np.isfinite(value.reshape(-1)))[0])
        raise DecodeError(f"{name}: effective weight {bad} is {value.reshape(-1)[bad]}, expected "
                          f"finite values (NaN or infinity after the scale)")


def effective_weights(ticket: Ticket, threads: int | None = None,
                      digests: bool = False) -> dict[str, np.ndarray] | tuple[dict, list[bytes]]:
    """Each tensor's float32 effective weight, in ticket order, computed across ``threads``.

    With ``digests`` also return each tensor's ``tensor_sha256``, computed in the same task
    while the values are still in cache.
    """
    threads = threads or default_threads()
    frozen: dict[str, np.ndarray] = {}
    masked = [t for t in ticket.tensors if isinstance(t, MaskedTensor)]
    if ticket.rng != RNG_ID:  # a shared sequential stream: draw it first, in its own order
        frozen = dict(frozen_weights(ticket.seed, ticket.rng, masked))
    # Few big tensors: let one tensor use numba's threads; many: one thread per tensor.
    numba_threads = 1 if threads > 1 and len(ticket.tensors) >= threads else None
    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(lambda t: _effective_one(ticket, t, frozen.pop(t.name, None),
                                                      numba_threads, digests), ticket.tensors))
    weights = {t.name: value for t, (value, _) in zip(ticket.tensors, done)}
    return (weights, [d for _, d in done]) if digests else weights
