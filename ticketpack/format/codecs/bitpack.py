"""Fixed-width packings: `bits` (binary masks) and `planes` (multi-bit levels).

Bits are packed with ``np.packbits(bitorder="little")``: element j lands in byte
j // 8 at bit j % 8, and the last byte is zero-padded. A decoder refuses set
padding bits so every tensor has exactly one valid encoding.
"""

from __future__ import annotations

import numpy as np

from ...errors import DecodeError


def pack_bits(bits: np.ndarray) -> bytes:
    """Pack a flat 0/1 array into ceil(n/8) bytes, LSB first."""
    return np.packbits(bits.astype(np.uint8, copy=False), bitorder="little").tobytes()


def unpack_bits(data: bytes, n: int, what: str) -> np.ndarray:
    """Unpack exactly ``n`` bits from ``data`` (ceil(n/8) bytes, zero padding)."""
    if len(data) != (n + 7) // 8:
        raise DecodeError(f"{what}: got {len(data)} bytes, expected {(n + 7) // 8} for {n} bits")
    bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    if bits[n:].any():
        raise DecodeError(f"{what}: padding bits after bit {n} are set, expected zero")
    return bits[:n]


def plane_count(K: int) -> int:
    """Bit-planes needed for levels 0..K-1 (K=1 needs none)."""
    return (K - 1).bit_length()


def encode_planes(sym: np.ndarray, K: int) -> bytes:
    # Plane 0 holds the least significant bit of every level, then plane 1, ...
    return b"".join(pack_bits((sym >> b) & 1) for b in range(plane_count(K)))


def decode_planes(data: bytes, K: int, n: int) -> np.ndarray:
    planes, per = plane_count(K), (n + 7) // 8
    if len(data) != planes * per:
        raise DecodeError(f"planes: got {len(data)} bytes, expected {planes * per} "
                          f"({planes} planes of {per})")
    sym = np.zeros(n, np.uint8)
    for b in range(planes):
        sym |= unpack_bits(data[b * per:(b + 1) * per], n, f"planes: plane {b}") << b
    if n and int(sym.max()) >= K:
        raise DecodeError(f"planes: level {int(sym.max())} found, expected levels below {K}")
    return sym
