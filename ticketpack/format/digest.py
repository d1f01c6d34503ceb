"""Digests of effective weights (numpy arrays), per tensor and combined.

A tensor's record is ``u32 len(UTF-8 name) | name | u32 rank | rank x u64 dims |
float32 LE values``. Format v1's ``weights_sha256`` is one SHA-256 over the records of
all tensors in header order; from v2 each record has its own SHA-256 (``tensor_sha256``),
computed in parallel, and ``weights_sha256`` is the SHA-256 of those 32-byte digests
concatenated in header order (docs/FORMAT.md section 6).

hashlib releases the GIL on large buffers, so digests of several tensors run in parallel
threads.
"""

from __future__ import annotations

import hashlib
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np

from .constants import MODEL_DIGEST_TAG


def default_threads() -> int:
    """Worker threads for per-tensor work: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def record_prefix(name: str, shape: tuple[int, ...]) -> bytes:
    """The bytes before a tensor's values in its digest record."""
    raw = name.encode("utf-8")
    return (struct.pack("<I", len(raw)) + raw + struct.pack("<I", len(shape))
            + struct.pack(f"<{len(shape)}Q", *shape))


def _values_bytes(values: np.ndarray) -> np.ndarray:
    """The values as little-endian float32 bytes, without a copy when they already are."""
    return np.ascontiguousarray(values, dtype="<f4").reshape(-1).view(np.uint8)


def tensor_sha256(name: str, values: np.ndarray) -> bytes:
    """SHA-256 (32 raw bytes) of one tensor's record."""
    digest = hashlib.sha256(record_prefix(name, tuple(values.shape)))
    digest.update(_values_bytes(values))
    return digest.digest()


def combine_digests(digests: Iterable[bytes]) -> str:
    """v2 ``weights_sha256``: SHA-256 of the per-tensor digests concatenated in header order."""
    return hashlib.sha256(b"".join(digests)).hexdigest()


def weights_sha256_v1(weights: Iterable[tuple[str, np.ndarray]]) -> str:
    """v1 ``weights_sha256``: one SHA-256 over every tensor's record in header order."""
    digest = hashlib.sha256()
    for name, values in weights:
        digest.update(record_prefix(name, tuple(values.shape)))
        digest.update(_values_bytes(values))
    return digest.hexdigest()


def weights_sha256_v2(weights: Iterable[tuple[str, np.ndarray]], threads: int | None = None) -> str:
    """v2 ``weights_sha256`` of (name, float32 values) pairs, digests computed in threads."""
    items = list(weights)
    with ThreadPoolExecutor(threads or default_threads()) as pool:
        return combine_digests(pool.map(lambda nv: tensor_sha256(*nv), items))


# ---------------------------------------------------------------- the model digest

_NULL, _FALSE, _TRUE, _INT, _FLOAT, _STRING, _ARRAY, _OBJECT = range(8)


def canonical_bytes(value: object) -> bytes:
    """The canonical binary encoding of a JSON value (docs/FORMAT.md section 6.2).

    A type byte, then: integer: i64 LE; float: IEEE binary64 LE bits; string: u32 length
    + UTF-8; array: u32 count + items; object: u32 count + (key as a string, value) pairs
    sorted by the keys' UTF-8 bytes; null, false, true: nothing more.
    """
    out = bytearray()
    _canonical(value, out)
    return bytes(out)


def _canonical(value: object, out: bytearray) -> None:
    if value is None:
        out.append(_NULL)
    elif value is True or value is False:
        out.append(_TRUE if value else _FALSE)
    elif isinstance(value, int):
        if not -2**63 <= value < 2**63:
            raise ValueError(f"integer {value} does not fit in 64 bits")
        out += struct.pack("<Bq", _INT, value)
    elif isinstance(value, float):
        out += struct.pack("<Bd", _FLOAT, value)
    elif isinstance(value, str):
        _string(value, out, _STRING)
    elif isinstance(value, (list, tuple)):
        out += struct.pack("<BI", _ARRAY, len(value))
        for item in value:
            _canonical(item, out)
    elif isinstance(value, dict):
        out += struct.pack("<BI", _OBJECT, len(value))
        for key in sorted(value, key=lambda k: k.encode("utf-8")):
            _string(key, out, None)
            _canonical(value[key], out)
    else:
        raise ValueError(f"{type(value).__name__} is not a JSON value")


def _string(text: str, out: bytearray, tag: int | None) -> None:
    raw = text.encode("utf-8")
    if tag is not None:
        out.append(tag)
    out += struct.pack("<I", len(raw)) + raw


def model_sha256(weights_hex: str, config: dict, eval_context: dict | None) -> str:
    """SHA-256 of the tag, the 32 bytes of ``weights_sha256``, canonical(config), canonical(eval)."""
    digest = hashlib.sha256(MODEL_DIGEST_TAG)
    digest.update(bytes.fromhex(weights_hex))
    digest.update(canonical_bytes(config))
    digest.update(canonical_bytes(eval_context))
    return digest.hexdigest()
