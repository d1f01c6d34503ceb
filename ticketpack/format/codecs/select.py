"""The auto choice: the smallest (encoding, outer compression) for a tensor,
and the order-0 entropy that sizes are measured against."""

from __future__ import annotations

import numpy as np

from .. import compression
from ...errors import UsageError
from .registry import COMPRESSIBLE, _applies, _check_params, encode, encodings, flat_symbols


def entropy_bits(symbols: np.ndarray, K: int) -> float:
    """Order-0 empirical entropy of ``symbols`` in bits per symbol."""
    sym = np.asarray(symbols).reshape(-1)
    if sym.size == 0:
        return 0.0
    p = np.bincount(sym, minlength=K) / sym.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _outer(name: str) -> tuple[str, ...]:
    return ("none", "zstd", "zlib") if name in COMPRESSIBLE else ("none",)


def _level(codec: str, level: int | None) -> int | None:
    """One level knob for both: zstd takes it as given, zlib tops out at 9."""
    if level is None or codec == "none":
        return None
    return min(level, 9) if codec == "zlib" else level


def choose(symbols: np.ndarray, *, K: int, shape: tuple[int, ...], n: int = 0, m: int = 0,
           level: int | None = None, candidates: tuple[str, ...] | None = None
           ) -> tuple[str, str, bytes, int]:
    """Try every applicable encoding of ``candidates`` (default: those of the current format
    version) under every useful outer compression and return ``(encoding, compression,
    stored_bytes, raw_size)`` of the smallest; ties go to the earlier encoding and to no
    compression."""
    sym, shape = flat_symbols(symbols, K, shape), _check_params(K, shape, UsageError)
    best, seen = None, set()
    for name in candidates or encodings():
        if not _applies(name, sym, K, shape, n, m):
            continue
        raw = encode(name, sym, K=K, shape=shape, n=n, m=m)
        if raw in seen:  # e.g. planes of a binary mask are its bits
            continue
        seen.add(raw)
        for codec in _outer(name):
            stored = compression.compress(raw, codec, _level(codec, level))
            if best is None or len(stored) < len(best[2]):
                best = (name, codec, stored, len(raw))
    return best
