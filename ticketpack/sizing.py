"""The size report behind ``ticketpack size``: where every byte of an artifact goes."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .format import codecs
from .format.sections import mask_symbols
from .format.tensors import nonzero_share
from .artifact import ArtifactInfo, decode_artifact
from .errors import UsageError
from .ticket import MaskedTensor, TernaryTensor


@dataclass
class TensorSize:
    name: str
    kind: str
    codec: str  # encoding[+compression] of the main section, e.g. "ans0" or "bits+zstd"
    connections: int
    bytes: int
    bits_per_connection: float
    density: float | None
    entropy_bits_per_connection: float | None
    entropy_bound_bytes: float | None
    over_bound_percent: float | None
    scale_bytes: int = 0
    raw_bytes: int = 0
    symbol_bytes: int = 0  # stored bytes of the mask / trits section (what the bound bounds)


@dataclass
class SizeReport:
    total_bytes: int
    header_bytes: int
    code_bytes: int
    budget: int | None
    over_budget: bool
    connections: int
    raw_bytes: int
    compression_saving_bytes: int
    entropy_bound_bytes: float  # sum of the masked / ternary tensors' order-0 entropy bounds
    # Totals over the masked (and ternary) tensors, the ones with an entropy bound:
    masked_connections: int = 0
    masked_bytes: int = 0  # all their sections (masks / trits and scales / gammas)
    masked_bits_per_connection: float | None = None
    entropy_bound_bits_per_connection: float | None = None
    mask_over_bound_bytes: float | None = None  # mask / trit sections minus the bound
    mask_over_bound_percent: float | None = None
    artifact_over_bound_bytes: float | None = None  # the whole file minus the bound
    artifact_over_bound_percent: float | None = None
    tensors: list[TensorSize] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def code_size(paths: list[str]) -> int:
    """Bytes of the given source files, counted as parameter golf counts code."""
    total = 0
    for p in paths:
        if not Path(p).is_file():
            raise UsageError(f"--code: no such file {p!r}")
        total += os.path.getsize(p)
    return total


def size_report(info: ArtifactInfo, budget: int | None = None, code_bytes: int = 0) -> SizeReport:
    """Break an artifact's bytes down per tensor against each tensor's entropy bound."""
    ticket = decode_artifact(info)
    rows = [_tensor_size(entry, tensor) for entry, tensor in zip(info.tensors, ticket.tensors)]
    total = info.file_bytes + code_bytes
    raw = info.header_bytes + sum(r.raw_bytes for r in rows)
    bound = sum(r.entropy_bound_bytes or 0.0 for r in rows)
    return SizeReport(total_bytes=total, header_bytes=info.header_bytes, code_bytes=code_bytes,
                      budget=budget, over_budget=budget is not None and total > budget,
                      connections=sum(r.connections for r in rows if r.kind != "plain"),
                      raw_bytes=raw, compression_saving_bytes=raw - info.file_bytes,
                      entropy_bound_bytes=bound, tensors=rows,
                      **_masked_totals(rows, bound, info.file_bytes))


def _masked_totals(rows: list[TensorSize], bound: float, file_bytes: int) -> dict:
    """Bits per connection over the tensors with an entropy bound, and the distance to it."""
    bounded = [r for r in rows if r.entropy_bound_bytes is not None]
    n = sum(r.connections for r in bounded)
    if not n:
        return {}
    stored = sum(r.bytes for r in bounded)
    symbols = sum(r.symbol_bytes for r in bounded)
    return {"masked_connections": n, "masked_bytes": stored,
            "masked_bits_per_connection": 8.0 * stored / n,
            "entropy_bound_bits_per_connection": 8.0 * bound / n,
            "mask_over_bound_bytes": symbols - bound, "mask_over_bound_percent": _percent(symbols, bound),
            "artifact_over_bound_bytes": file_bytes - bound,
            "artifact_over_bound_percent": _percent(file_bytes, bound)}


def _percent(value: float, bound: float) -> float | None:
    return 100.0 * (value - bound) / bound if bound > 0 else None


def _tensor_size(entry: dict, tensor) -> TensorSize:
    sections = {s["role"]: s for s in entry["sections"]}
    # the main section: mask / trits / data / int8 values; mask none stores none at all
    main = next((sections[r] for r in ("mask", "trits", "data", "q") if r in sections),
                {"enc": "-", "codec": "none", "length": 0})
    stored = sum(s["length"] for s in entry["sections"])
    raw = sum(s["raw"] for s in entry["sections"])
    side = stored - main["length"]
    n = math.prod(entry["shape"])
    codec = main["enc"] if main["codec"] == "none" else f"{main['enc']}+{main['codec']}"
    density = entropy = bound = over = None
    if isinstance(tensor, MaskedTensor) and tensor.levels is None:
        density = 1.0  # mask none: every connection kept, nothing coded
    elif isinstance(tensor, (MaskedTensor, TernaryTensor)):
        symbols, K = _symbols(tensor)
        density = nonzero_share([tensor.levels if isinstance(tensor, MaskedTensor) else tensor.trits])[0]
        entropy = codecs.entropy_bits(symbols.reshape(-1), K)
        bound = n * entropy / 8
        over = _percent(main["length"], bound)
    return TensorSize(name=entry["name"], kind=entry["kind"], codec=codec, connections=n,
                      bytes=stored, bits_per_connection=8.0 * stored / max(n, 1), density=density,
                      entropy_bits_per_connection=entropy, entropy_bound_bytes=bound,
                      over_bound_percent=over, scale_bytes=side, raw_bytes=raw,
                      symbol_bytes=main["length"] if bound is not None else 0)


def _symbols(tensor) -> tuple[np.ndarray, int]:
    """The stored symbols of a mask or trit section and their alphabet."""
    if isinstance(tensor, MaskedTensor):
        return mask_symbols(tensor.levels, tensor.mask), tensor.mask.alphabet
    return (tensor.trits.astype(np.int16) + 1).astype(np.uint8), 3


__all__ = ["SizeReport", "TensorSize", "size_report", "code_size"]
