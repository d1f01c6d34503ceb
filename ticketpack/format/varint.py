"""Varints: unsigned LEB128 of minimal length (docs/FORMAT.md), shared by the v1 and v2 coders."""

from __future__ import annotations

from ..errors import DecodeError


def put_varint(value: int) -> bytes:
    """``value`` (>= 0) as a minimal LEB128."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def get_varint(data: bytes, pos: int, limit: int, what: str) -> tuple[int, int]:
    """Read one varint at ``pos``; refuse it past ``limit``, truncated or overlong."""
    value = shift = 0
    for i in range(pos, min(len(data), pos + 10)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and i > pos:
                raise DecodeError(f"{what}: overlong varint at byte {pos}")
            if value > limit:
                raise DecodeError(f"{what}: value {value} exceeds {limit}")
            return value, i + 1
    raise DecodeError(f"{what}: truncated or overlong varint at byte {pos}")
