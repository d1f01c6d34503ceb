"""Externally trained ternary weights (TriLM / BitNet b1.58 style) as tickets.

A ternary tensor is ``gamma * t`` with ``t`` in {-1, 0, +1} and one gamma per tensor or per
row. ``ticket_from_ternary`` finds that structure in a safetensors state dict exactly (a
tensor is ternary only if every value is 0 or +-gamma of its row or tensor), stores the trits
(5 per byte or entropy-coded, whichever is smaller) and gamma as fp16; every other tensor is
kept as a plain tensor in its own precision (float32 exactly, anything else as fp16).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError, LimitError, UsageError
from ..format.constants import DEFAULT_LIMITS, Limits
from ..format.digest import canonical_bytes
from ..models.gpt_config import DEFAULT_MODEL_LIMITS, ModelLimits, config_from_dict
from ..models.fit import EXTERNAL_ARCH
from ..strict_json import loads_strict
from ..ticket import PlainTensor, TensorEntry, TernaryTensor, Ticket, default_provenance


def ternary_parts(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(trits int8, gamma float32) if ``weight`` is exactly gamma * trit per tensor or per row."""
    if weight.ndim < 1 or weight.size == 0 or not np.issubdtype(weight.dtype, np.floating):
        return None
    w = weight.astype(np.float32)
    if not np.isfinite(w).all():  # an infinite gamma is no ternary tensor (nor a storable one)
        return None
    mag = np.abs(w)
    top = float(mag.max())
    if np.all((mag == 0) | (mag == top)):
        gamma = np.array(top, dtype=np.float32)
    elif w.ndim >= 2:
        gamma = mag.reshape(w.shape[0], -1).max(axis=1)
        rows = gamma.reshape((-1,) + (1,) * (w.ndim - 1))
        if not np.all((mag == 0) | (mag == rows)):
            return None
    else:
        return None
    scale = gamma.reshape((-1,) + (1,) * (w.ndim - 1)) if gamma.ndim else gamma
    ratio = np.divide(w, scale, out=np.zeros_like(w), where=np.broadcast_to(scale != 0, w.shape))
    return np.rint(ratio).astype(np.int8), gamma


def gamma_change(gamma: np.ndarray) -> float:
    """The largest relative change of a nonzero gamma stored as the nearest fp16 (0: exact;
    inf: a gamma outside fp16's range, which rounding cannot keep)."""
    g = np.asarray(gamma, np.float32).reshape(-1)
    g = g[g != 0]
    if not g.size:
        return 0.0
    with np.errstate(over="ignore"):
        stored = g.astype(np.float16).astype(np.float32)
    if not np.isfinite(stored).all() or (stored == 0).any():
        return float("inf")
    return float(np.max(np.abs(stored - g) / np.abs(g)))


def ternary_form(weight: np.ndarray, round_gamma: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """(trits int8, gamma float16) if ``weight`` is exactly gamma * trit per tensor or per row.

    Gamma must survive fp16 rounding, so that loading gives back exactly the same values;
    ``round_gamma`` accepts the nearest fp16 instead (when it is finite and nonzero).
    """
    parts = ternary_parts(weight)
    if parts is None:
        return None
    change = gamma_change(parts[1])
    if change == float("inf") or (change and not round_gamma):
        return None
    return parts[0], parts[1].astype(np.float16)


def ticket_from_ternary(state: dict[str, np.ndarray], config: dict | None = None,
                        source: str | None = None, round_gamma: bool = False) -> Ticket:
    """A ticket holding ``state``: ternary tensors as trits + gamma, the rest as plain tensors.

    A tensor that is gamma * {-1, 0, +1} with a gamma fp16 cannot hold is refused (UsageError
    naming it) unless ``round_gamma``: then the nearest fp16 is stored and the provenance
    records the largest relative change (``ternary.gamma_max_relative_change``)."""
    tensors: list[TensorEntry] = []
    worst = 0.0
    for name, value in state.items():
        parts = ternary_parts(value) if value.ndim >= 2 else None
        if parts is not None:
            change = _checked_change(name, parts[1], round_gamma)
            worst = max(worst, change)
            tensors.append(TernaryTensor(name, parts[0], parts[1].astype(np.float16)))
        else:
            tensors.append(PlainTensor(name, _plain_values(name, value)))
    if not any(isinstance(t, TernaryTensor) for t in tensors):
        raise UsageError(f"ternary: no tensor of {source or 'the input'} is gamma * {{-1, 0, +1}} "
                         f"per tensor or per row")
    record = {"source": source} if source else {}
    record["ternary"] = {"gamma_rounded": round_gamma, "gamma_max_relative_change": worst}
    return Ticket(seed=0, config=config or {"arch": EXTERNAL_ARCH}, tensors=tensors, provenance=default_provenance(record))


def _checked_change(name: str, gamma: np.ndarray, round_gamma: bool) -> float:
    """The relative change fp16 makes to ``name``'s gamma, refused when it is not allowed."""
    change = gamma_change(gamma)
    if change == float("inf"):
        raise UsageError(f"ternary: {name} is gamma * {{-1, 0, +1}} but a gamma ({_first_off(gamma)}) "
                         f"is outside fp16's range (6e-08 .. 65504); scale the tensor first")
    if change and not round_gamma:
        raise UsageError(f"ternary: {name} is gamma * {{-1, 0, +1}} but its gamma {_first_off(gamma)} is "
                         f"not an fp16 value (the nearest changes it by up to {change:.2e} relative); "
                         f"--round-gamma stores the nearest fp16")
    return change


def _first_off(gamma: np.ndarray) -> str:
    """The first gamma fp16 does not hold exactly, for a message."""
    g = np.asarray(gamma, np.float32).reshape(-1)
    with np.errstate(over="ignore"):
        off = g[g.astype(np.float16).astype(np.float32) != g]
    return f"{float(off[0]):.9g}" if off.size else "?"


# safetensors dtypes a ternary input may hold: what numpy holds exactly (bf16 widened to float32)
READABLE_DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL")


def _plain_values(name: str, value: np.ndarray) -> np.ndarray:
    """float32 kept exactly, anything else as fp16; values an artifact cannot hold (not finite,
    past fp16's range) are refused here rather than written (CheckpointError)."""
    keep = np.float32 if value.dtype == np.float32 else np.float16
    wide = value.astype(np.float64, copy=False)
    limit = np.finfo(keep).max
    bad = ~np.isfinite(wide) | (np.abs(wide) > limit)
    if bad.any():
        raise CheckpointError(f"weights tensor {name[:100]!r}: value {float(wide.reshape(-1)[np.flatnonzero(bad)[0]])!r} "
                              f"is not finite or overflows {np.dtype(keep).name}, expected a storable value")
    return np.ascontiguousarray(value, dtype=keep)


def read_safetensors(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                     model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> tuple[dict[str, np.ndarray], dict]:
    """Tensors (as numpy, bf16 widened to float32) and the ``config`` JSON of its metadata.

    The file is untrusted input, checked before any tensor is read with the rules the artifact
    reader applies to what ``pack-ternary`` would write (``CheckpointError``, exit 3): tensor
    names, ranks, dimensions and counts under ``limits``, dtypes numpy can hold, and the config
    as strict JSON valid under the config schema (unknown keys kept, as an artifact's config
    may hold them) within ``model_limits``.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"weights: no such file {str(p)!r}")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
            config = _metadata_config(meta, p, model_limits)
            _check_entries(fh, limits)
            state = {k: _to_numpy(fh.get_tensor(k)) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"weights {str(p)!r}: not a readable safetensors file ({exc})") from None
    return state, config


def _metadata_config(meta: dict, p: Path, model_limits: ModelLimits) -> dict:
    """The metadata's ``config``: strict JSON, an object, valid as an artifact's config."""
    config = loads_strict(meta.get("config", "{}"), f"weights {str(p)!r}: metadata config", CheckpointError)
    where = f"weights {str(p)!r}: metadata config"
    config_from_dict(config, model_limits, error=CheckpointError, where=where, ignore_unknown=True)
    try:  # the model digest encodes it: every key and value must be canonical JSON (no lone surrogate)
        canonical_bytes(config)
    except (ValueError, OverflowError, RecursionError) as exc:
        raise CheckpointError(f"{where}: {str(exc)[:200]}, expected JSON values an artifact can hold") from None
    return config


def _check_entries(fh, limits: Limits) -> None:
    """Names, dtypes, ranks, dimensions and element totals from the safetensors header alone."""
    keys = list(fh.keys())
    if len(keys) > limits.max_tensors:
        raise LimitError(f"weights: {len(keys):,} tensors, cap is {limits.max_tensors:,}")
    total = 0
    for key in keys:
        name_bytes = len(key.encode("utf-8", "surrogatepass"))
        if not 1 <= name_bytes <= limits.max_name_bytes:
            raise LimitError(f"weights tensor {key[:100]!r}: name of {name_bytes} B, expected "
                             f"1..{limits.max_name_bytes} (an artifact's name rule)")
        view = fh.get_slice(key)
        dtype, shape = view.get_dtype(), view.get_shape()
        if dtype not in READABLE_DTYPES:
            raise CheckpointError(f"weights tensor {key[:100]!r}: dtype {dtype}, expected one of "
                                  f"{', '.join(READABLE_DTYPES)}")
        if len(shape) > limits.max_rank or any(d > limits.max_dim for d in shape):
            raise LimitError(f"weights tensor {key[:100]!r}: shape {shape[:10]}, expected rank <= "
                             f"{limits.max_rank} and dimensions <= {limits.max_dim:,}")
        total += math.prod(shape)
        if total > limits.max_total_elements:
            raise LimitError(f"weights: {total:,} elements in all (up to {key[:100]!r}), cap is "
                             f"{limits.max_total_elements:,} (raise it with --max-elements)")


def _to_numpy(tensor) -> np.ndarray:
    import torch

    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()  # exact
    return tensor.numpy()
