"""General-purpose compression of payload sections: zstd, zlib or none.

Decompression is always bounded by the exactly declared raw size, so a
hostile section cannot make the reader allocate more than it declared.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import zstandard

from ..errors import DecodeError, UsageError

CODECS = ("zstd", "zlib", "none")
DEFAULT_LEVELS = {"zstd": 19, "zlib": 9, "none": 0}


def check_codec(codec: str, level: int | None = None) -> int:
    """Validate a codec name and level; return the level to use."""
    if codec not in CODECS:
        raise UsageError(f"codec: got {codec!r}, expected one of {', '.join(CODECS)}")
    if level is None:
        return DEFAULT_LEVELS[codec]
    lo, hi = {"zstd": (1, 22), "zlib": (0, 9), "none": (0, 0)}[codec]
    if not lo <= level <= hi:
        raise UsageError(f"level: got {level} for {codec}, expected {lo}..{hi}")
    return level


def compress(data: bytes, codec: str, level: int | None = None) -> bytes:
    """Compress ``data`` with ``codec`` at ``level`` (the codec's default when None)."""
    level = check_codec(codec, level)
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=level, write_content_size=True,
                                        write_checksum=False).compress(data)
    if codec == "zlib":
        return zlib.compress(data, level)
    return bytes(data)


def decompress(data: bytes, codec: str, raw_size: int, what: str = "section") -> bytes:
    """Decompress ``data`` to exactly ``raw_size`` bytes, never producing more.

    Output is produced in small steps and stops just past ``raw_size``, so memory follows
    the bytes really produced, never a size the input merely claims; truncated streams and
    bytes after the end of the stream are refused.
    """
    if codec not in CODECS:
        raise DecodeError(f"{what}: unknown codec {codec!r}, expected one of {', '.join(CODECS)}")
    if isinstance(raw_size, bool) or not isinstance(raw_size, int) or raw_size < 0:
        raise DecodeError(f"{what}: declared raw size {raw_size!r}, expected an integer >= 0")
    try:
        if codec == "zstd":
            out = _zstd_bounded(data, raw_size, what)
        elif codec == "zlib":
            out = _zlib_bounded(data, raw_size, what)
        else:
            out = bytes(data)
    except (zstandard.ZstdError, zlib.error) as exc:
        raise DecodeError(f"{what}: {codec} data is corrupt ({exc})") from None
    if len(out) != raw_size:
        raise DecodeError(f"{what}: decompressed to {len(out)} bytes, expected {raw_size}")
    return out


CHUNK = 1 << 20  # bytes of zlib output requested per step


def _zstd_bounded(data: bytes, raw_size: int, what: str) -> bytes:
    # Writers put the content size in the frame header. Requiring it to equal the declared
    # raw size lets libzstd size its output once and refuse ("destination buffer too small")
    # any frame that would produce more, before the memory is spent; one call, full speed.
    declared = zstandard.frame_content_size(data)
    if declared != raw_size:
        raise DecodeError(f"{what}: zstd frame declares {declared} content bytes, expected {raw_size}")
    dobj = zstandard.ZstdDecompressor().decompressobj()
    out = dobj.decompress(data)
    if len(out) > raw_size:
        raise DecodeError(f"{what}: zstd output exceeds the declared {raw_size} bytes")
    if not dobj.eof:
        raise DecodeError(f"{what}: zstd frame is truncated")
    if dobj.unused_data:
        raise DecodeError(f"{what}: trailing bytes after the zstd frame")
    return out


def _zlib_bounded(data: bytes, raw_size: int, what: str) -> bytes:
    inflated = inflate_bounded(data, raw_size)
    if len(inflated.data) > raw_size:
        raise DecodeError(f"{what}: zlib output exceeds the declared {raw_size} bytes")
    if not inflated.complete:
        raise DecodeError(f"{what}: zlib stream is truncated")
    if inflated.trailing:
        raise DecodeError(f"{what}: trailing bytes after the zlib stream")
    return inflated.data


@dataclass(frozen=True)
class Inflated:
    data: bytes     # at most cap + 1 bytes: longer than cap means the stream goes past it
    complete: bool  # the stream's end was reached
    trailing: int   # bytes after the stream's end


def inflate_bounded(data: bytes, cap: int) -> Inflated:
    """Inflate one zlib stream without ever holding more than ``cap + 1`` output bytes.

    Raises ``zlib.error`` on corrupt data; the caller names the error for its own file kind.
    """
    dobj, out, tail = zlib.decompressobj(), bytearray(), bytes(data)
    while not dobj.eof and len(out) <= cap:
        piece = dobj.decompress(tail, min(CHUNK, cap + 1 - len(out)))
        progressed = piece or len(dobj.unconsumed_tail) != len(tail)
        tail = dobj.unconsumed_tail
        out += piece
        if not progressed:  # input used up before the end of the stream
            break
    return Inflated(bytes(out), dobj.eof, len(dobj.unused_data) + len(dobj.unconsumed_tail))
