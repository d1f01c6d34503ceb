"""Tensors <-> payload sections: encode each tensor's parts, decode them back (numpy only).

A section is one encoded part of a tensor (docs/FORMAT.md section 3): its ``role``, its
encoding ``enc``, the general-purpose ``codec`` around it, where it lies in the payload,
its exact raw size and its CRC-32.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from ..errors import ChecksumError, DecodeError, UsageError
from . import codecs
from .compression import check_codec, compress, decompress
from .constants import (DEFAULT_LAYOUT, FORMAT_VERSION, INT8_ENCODING, VALUE_DTYPES, VALUE_ENCODINGS,
                        symbol_encodings)
from .maskspec import MaskSpec
from .tensors import Int8Tensor, MaskedTensor, PlainTensor, TensorEntry, TernaryTensor

# (role, enc, codec, stored bytes, raw size) of one encoded part
Part = tuple[str, str, str, bytes, int]


# ---------------------------------------------------------------- writing

def encode_tensor(tensor: TensorEntry, codec: str, level: int | None) -> tuple[dict, list[Part]]:
    """The header entry (without ``sections``) and the encoded parts of one tensor."""
    if isinstance(tensor, MaskedTensor):
        entry = {"name": tensor.name, "kind": "masked", "shape": list(tensor.shape),
                 **({"layout": tensor.layout} if tensor.layout != DEFAULT_LAYOUT else {}),
                 "init": tensor.init,
                 **({"init_std": float(tensor.init_std)} if tensor.init_std is not None else {}),
                 "mask": str(tensor.mask), "scale": tensor.scale_mode}
        parts = []
        if tensor.mask.stored:
            if tensor.levels is None:
                raise UsageError(f"{tensor.name}: mask {tensor.mask} without levels")
            parts.append(("mask", *encode_symbols(mask_symbols(tensor.levels, tensor.mask),
                                                  tensor.mask.alphabet, tensor.mask, codec, level)))
        if tensor.scale is not None:
            parts.append(("scale", *encode_values(tensor.scale, codec, level, f"{tensor.name}/scale")))
        return entry, parts
    if isinstance(tensor, PlainTensor):
        entry = {"name": tensor.name, "kind": "plain", "shape": list(tensor.shape)}
        return entry, [("data", *encode_values(tensor.data, codec, level, tensor.name))]
    if isinstance(tensor, TernaryTensor):
        entry = {"name": tensor.name, "kind": "ternary", "shape": list(tensor.shape),
                 "gamma": tensor.gamma_mode, "gamma_count": int(tensor.gamma.size)}
        symbols = (tensor.trits.astype(np.int16) + 1).astype(np.uint8)
        parts = [("trits", *encode_symbols(symbols, 3, None, codec, level)),
                 ("gamma", *encode_values(tensor.gamma, codec, level, f"{tensor.name}/gamma"))]
        return entry, parts
    if isinstance(tensor, Int8Tensor):
        entry = {"name": tensor.name, "kind": "int8", "shape": list(tensor.shape)}
        q = np.ascontiguousarray(tensor.q, dtype=np.int8).tobytes()
        return entry, [("q", INT8_ENCODING, *_compressed(q, codec, level)),
                       ("scale", *encode_values(tensor.scale, codec, level, f"{tensor.name}/scale"))]
    raise UsageError(f"ticket: unknown tensor type {type(tensor).__name__}")


def encode_symbols(symbols: np.ndarray, K: int, spec: MaskSpec | None, codec: str,
                   level: int | None) -> tuple[str, str, bytes, int]:
    """Mask levels (``spec``) or trits (None): the smallest legal encoding under ``auto``,
    else the fixed-width packing (bits, planes, trits5) compressed with ``codec``."""
    shape = tuple(symbols.shape)
    n, m = (spec.n, spec.m) if spec is not None and spec.kind == "nm" else (0, 0)
    flat = np.ascontiguousarray(symbols, dtype=np.uint8).reshape(-1)
    if codec == "auto":
        legal = symbol_encodings(FORMAT_VERSION, spec.kind if spec is not None else "trits")
        return codecs.choose(flat, K=K, shape=shape, n=n, m=m, level=level, candidates=legal)
    enc = "bits" if K == 2 else ("trits5" if spec is None else "planes")
    raw = codecs.encode(enc, flat, K=K, shape=shape)
    return enc, codec, compress(raw, codec, level), len(raw)


def mask_symbols(levels: np.ndarray, spec: MaskSpec) -> np.ndarray:
    """A mask's stored symbols: level + K - 1 for signed:K (0..2K-2), the levels otherwise."""
    if spec.offset == 0:
        return levels
    symbols = np.asarray(levels).astype(np.int16) + spec.offset
    if symbols.size and (int(symbols.min()) < 0 or int(symbols.max()) >= spec.alphabet):
        raise UsageError(f"mask {spec}: levels {int(symbols.min()) - spec.offset}.."
                         f"{int(symbols.max()) - spec.offset}, expected -{spec.offset}..{spec.offset}")
    return symbols.astype(np.uint8)


def mask_levels(symbols: np.ndarray, spec: MaskSpec) -> np.ndarray:
    """The levels of decoded mask symbols: int8 symbol - (K - 1) for signed:K, else the symbols."""
    if spec.offset == 0:
        return symbols
    return (symbols.astype(np.int16) - spec.offset).astype(np.int8)


def _compressed(raw: bytes, codec: str, level: int | None) -> tuple[str, bytes, int]:
    """(codec, stored, raw size): ``codec``, or under ``auto`` the smallest of none / zstd / zlib."""
    if codec != "auto":
        return codec, compress(raw, codec, level), len(raw)
    options = [(compress(raw, c, None), c) for c in ("none", "zstd", "zlib")]
    stored, best = min(options, key=lambda o: len(o[0]))
    return best, stored, len(raw)


def encode_values(values: np.ndarray, codec: str, level: int | None,
                  what: str = "values") -> tuple[str, str, bytes, int]:
    """f32 for float32 arrays (exact fp32 values, e.g. imported scales), f16 for all else;
    a non-finite value is refused (readers refuse it: never write one)."""
    enc = "f32" if np.asarray(values).dtype == np.float32 else "f16"
    stored = np.ascontiguousarray(values, dtype=VALUE_DTYPES[enc])
    if not np.isfinite(stored).all():
        raise UsageError(f"{what}: holds a non-finite value (NaN or infinity, e.g. an overflow of "
                         f"float16's range), expected finite values; nothing written")
    return (enc, *_compressed(stored.tobytes(), codec, level))


def check_write_codec(codec: str, level: int | None, allowed: tuple[str, ...]) -> None:
    if codec not in allowed:
        raise UsageError(f"codec: got {codec!r}, expected one of {', '.join(allowed)}")
    if codec != "auto":
        check_codec(codec, level)


# ---------------------------------------------------------------- reading

def section_bytes(s: dict, payload: bytes, name: str) -> bytes:
    """A section's bytes after its CRC-32 check and bounded decompression to exactly ``raw``."""
    chunk = payload[s["offset"]:s["offset"] + s["length"]]
    if zlib.crc32(chunk) != s["crc"]:
        raise ChecksumError(f"{name}: section {s['role']} crc32 {zlib.crc32(chunk):#010x}, "
                            f"expected {s['crc']:#010x}")
    return decompress(chunk, s["codec"], s["raw"], f"{name}/{s['role']}")


def decode_tensor(t: dict, payload: bytes, version: int = FORMAT_VERSION) -> TensorEntry:
    """Decode one validated header entry (of a format-``version`` file)'s sections into its tensor."""
    name, shape = t["name"], tuple(t["shape"])
    sections = {s["role"]: s for s in t["sections"]}
    if t["kind"] == "plain":
        return PlainTensor(name, decode_values(sections["data"], payload, name, shape))
    if t["kind"] == "ternary":
        symbols = decode_symbols(sections["trits"], payload, name, shape, 3, None, version)
        gshape = () if t["gamma"] == "tensor" else (t["gamma_count"],)
        gamma = decode_values(sections["gamma"], payload, name, gshape)
        # np.asarray: on a rank-0 tensor numpy arithmetic returns a scalar, not an array
        return TernaryTensor(name, np.asarray(symbols.astype(np.int8) - 1), gamma)
    if t["kind"] == "int8":
        q = np.frombuffer(section_bytes(sections["q"], payload, name), np.int8).reshape(shape)
        return Int8Tensor(name, q, decode_values(sections["scale"], payload, name, (shape[0],)))
    spec = MaskSpec.parse(t["mask"])
    levels = None
    if spec.stored:
        symbols = decode_symbols(sections["mask"], payload, name, shape, spec.alphabet, spec, version)
        levels = mask_levels(symbols, spec)
    if spec.kind == "nm":
        check_nm_pattern(levels, spec, name)
    scale = None
    if t["scale"] != "none":
        sshape = () if t["scale"] == "tensor" else (shape[0],)
        scale = decode_values(sections["scale"], payload, name, sshape)
    return MaskedTensor(name, shape, t["init"], spec, levels, scale, t.get("layout", DEFAULT_LAYOUT),
                        float(t["init_std"]) if "init_std" in t else None)


def decode_symbols(s: dict, payload: bytes, name: str, shape: tuple, K: int,
                   spec: MaskSpec | None, version: int = FORMAT_VERSION) -> np.ndarray:
    raw = section_bytes(s, payload, name)
    n, m = (spec.n, spec.m) if spec is not None and spec.kind == "nm" else (0, 0)
    try:
        out = codecs.decode(s["enc"], raw, K=K, shape=shape, n=n, m=m, version=version)
    except DecodeError as exc:  # say which tensor the codec was decoding
        raise DecodeError(f"{name}/{s['role']}: {exc}") from None
    if out.shape != shape:
        raise DecodeError(f"{name}: decoded shape {out.shape}, expected {shape}")
    return out


def check_nm_pattern(levels: np.ndarray, spec: MaskSpec, name: str) -> None:
    """Whatever the encoding, an N:M mask must hold N kept in every M (2:4 kernels rely on it)."""
    kept = levels.reshape(-1, spec.m).sum(axis=1)
    bad = np.flatnonzero(kept != spec.n)
    if bad.size:
        raise DecodeError(f"{name}/mask: group {int(bad[0])} of {spec.m} keeps {int(kept[bad[0]])}, "
                          f"mask {spec} expects {spec.n}")


def decode_values(s: dict, payload: bytes, name: str, shape: tuple) -> np.ndarray:
    if s["enc"] not in VALUE_ENCODINGS:
        raise DecodeError(f"{name}: {s['role']} encoding {s['enc']!r}, expected 'f16' or 'f32'")
    dtype = np.dtype(VALUE_DTYPES[s["enc"]])
    need = dtype.itemsize * math.prod(shape)
    if s["raw"] != need:
        raise DecodeError(f"{name}: {s['role']} is {s['raw']} B raw, shape {shape} needs {need} B")
    raw = section_bytes(s, payload, name)
    values = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(shape)
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values.reshape(-1)))[0])
        raise DecodeError(f"{name}/{s['role']}: value {bad} is {values.reshape(-1)[bad]}, "
                          f"expected finite values")
    return values
