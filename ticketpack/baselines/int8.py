"""The int8 baseline export: a dense model's state dict as int8 per row + fp16, compressed whole.

Every 2-D weight becomes int8 with one fp16 scale per row (``quantize_rows_int8``: the
parameter-golf baseline's rule); every other tensor is stored as fp16. The serialisation (a
prefix, then a JSON header and the raw little-endian tensors in header order) is compressed
whole with zlib-9 or zstd-19, whichever is smaller, and its length is the model's size. It
is a baseline to compare tickets against, not a ticketpack artifact:

    prefix   magic ``TPI8``, codec id (u8: 1 zlib, 2 zstd), stored bytes (u32), raw bytes (u32)
    raw      header length (u32), header JSON ``{"config": ..., "tensors": [{"name", "shape",
             "kind": "int8" | "f16"}, ...]}``, then per tensor: int8 q and ``<f2`` scales
             (one per row), or ``<f2`` values
"""

from __future__ import annotations

import json
import struct

import numpy as np
import torch

from ..errors import ConfigError, DecodeError, HeaderError, TruncatedError
from ..format.compression import compress, decompress
from ..format.tensors import quantize_rows_int8
from ..models.gpt_model import GPT, GPTConfig

INT8_MAGIC = b"TPI8"
INT8_PREFIX = struct.Struct("<4sBII")  # magic, codec id, stored JSON bytes, raw payload bytes
INT8_CODECS = {1: "zlib", 2: "zstd"}


def dequantize_rows_int8(q: np.ndarray, scale: np.ndarray) -> torch.Tensor:
    """float32 q * scale, one scale per row."""
    return torch.from_numpy(q.astype(np.float32) * scale.astype(np.float32)[:, None])


def _rows_int8(t: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return quantize_rows_int8(t.detach().to("cpu", torch.float32).numpy())


def int8_roundtrip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 weights an int8 serialisation of ``state`` gives back (2-D int8, rest fp16)."""
    out = {}
    for name, t in state.items():
        if t.dim() == 2:
            out[name] = dequantize_rows_int8(*_rows_int8(t))
        else:
            out[name] = t.detach().to("cpu", torch.float16).float()
    return out


def encode_int8_state(state: dict[str, torch.Tensor], config: dict, codec: str = "auto") -> bytes:
    """Serialise a state dict as int8 per row (2-D) + fp16 (rest), compressed whole.

    ``codec``: zlib (level 9), zstd (level 19) or auto (the smaller). The JSON header
    holds the model config and each tensor's name, shape and kind, so the bytes alone
    rebuild the model, as a ticket artifact's do.
    """
    if codec not in ("auto", "zlib", "zstd"):
        raise ConfigError(f"codec: {codec!r}, expected auto, zlib or zstd")
    entries, chunks = [], []
    for name, t in state.items():
        if t.dim() == 2:
            q, scale = _rows_int8(t)
            entries.append({"name": name, "shape": list(q.shape), "kind": "int8"})
            chunks += [q.tobytes(), scale.astype("<f2").tobytes()]
        else:
            data = t.detach().to("cpu", torch.float16).numpy().astype("<f2")
            entries.append({"name": name, "shape": list(data.shape), "kind": "f16"})
            chunks.append(data.tobytes())
    header = json.dumps({"config": config, "tensors": entries}, separators=(",", ":")).encode()
    raw = struct.pack("<I", len(header)) + header + b"".join(chunks)
    names = ("zlib", "zstd") if codec == "auto" else (codec,)
    stored, name = min(((compress(raw, c), c) for c in names), key=lambda o: len(o[0]))
    code = {v: k for k, v in INT8_CODECS.items()}[name]
    return INT8_PREFIX.pack(INT8_MAGIC, code, len(stored), len(raw)) + stored


def decode_int8_state(data: bytes, max_raw: int = 2**31) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, float32 state dict) from ``encode_int8_state`` bytes."""
    if len(data) < INT8_PREFIX.size:
        raise TruncatedError(f"int8 state: {len(data)} B, expected at least {INT8_PREFIX.size} B")
    magic, code, stored, raw_len = INT8_PREFIX.unpack_from(data)
    if magic != INT8_MAGIC:
        raise HeaderError(f"int8 state magic: {magic!r}, expected {INT8_MAGIC!r}")
    if code not in INT8_CODECS:
        raise HeaderError(f"int8 state codec: {code}, expected one of {sorted(INT8_CODECS)}")
    if stored != len(data) - INT8_PREFIX.size or raw_len > max_raw:
        raise TruncatedError(f"int8 state: {len(data) - INT8_PREFIX.size} B stored, header "
                             f"declares {stored} B (raw {raw_len} B, cap {max_raw} B)")
    raw = decompress(data[INT8_PREFIX.size:], INT8_CODECS[code], raw_len, "int8 state")
    (hlen,) = struct.unpack_from("<I", raw) if len(raw) >= 4 else (len(raw),)
    if hlen > len(raw) - 4:
        raise TruncatedError(f"int8 state header: {hlen} B declared, {max(0, len(raw) - 4)} B present")
    try:
        header = json.loads(raw[4:4 + hlen])
        config, entries = header["config"], header["tensors"]
        return config, _int8_tensors(entries, memoryview(raw)[4 + hlen:])
    except (ValueError, KeyError, TypeError) as exc:
        raise HeaderError(f"int8 state header: {type(exc).__name__} ({exc}), expected the JSON "
                          f"that encode_int8_state writes") from None


def model_from_int8_state(data: bytes) -> GPT:
    """The dense built-in GPT that ``encode_int8_state`` bytes hold (eval mode)."""
    config, state = decode_int8_state(data)
    model = GPT(GPTConfig.from_dict(config), masked=False)
    model.load_state_dict(state)
    return model.eval()


def _int8_tensors(entries: list[dict], body: memoryview) -> dict[str, torch.Tensor]:
    out, pos = {}, 0
    for e in entries:
        shape = tuple(int(d) for d in e["shape"])
        n = int(np.prod(shape))
        need = n + 2 * shape[0] if e["kind"] == "int8" else 2 * n
        if pos + need > len(body):
            raise DecodeError(f"int8 state payload: {len(body)} B, tensor {e['name']!r} needs "
                              f"bytes up to {pos + need}")
        if e["kind"] == "int8":
            q = np.frombuffer(body, np.int8, n, pos).reshape(shape)
            scale = np.frombuffer(body, "<f2", shape[0], pos + n)
            out[e["name"]], pos = dequantize_rows_int8(q, scale), pos + n + 2 * shape[0]
        else:
            vals = np.frombuffer(body, "<f2", n, pos).reshape(shape)
            out[e["name"]], pos = torch.from_numpy(vals.astype(np.float32)), pos + 2 * n
    if pos != len(body):
        raise DecodeError(f"int8 state payload: {len(body)} B, tensors use {pos} B")
    return out
