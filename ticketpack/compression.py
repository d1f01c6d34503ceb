"""General-purpose compression of payload sections: zstd, zlib or none.

Decompression is always bounded by the exactly declared raw size, so a
hostile section cannot make the reader allocate more than it declared.
"""

from __future__ import annotations

import io
import zlib

import zstandard

from .errors import DecodeError, UsageError

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
        return zstandard.ZstdCompressor(level=level, write_content_size=False,
                                        write_checksum=False).compress(data)
    if codec == "zlib":
        return zlib.compress(data, level)
    return bytes(data)


def decompress(data: bytes, codec: str, raw_size: int, what: str = "section") -> bytes:
    """Decompress ``data`` to exactly ``raw_size`` bytes, never producing more."""
    if codec not in CODECS:
        raise DecodeError(f"{what}: unknown codec {codec!r}, expected one of {', '.join(CODECS)}")
    try:
        if codec == "zstd":
            out = _zstd_bounded(data, raw_size)
        elif codec == "zlib":
            out = _zlib_bounded(data, raw_size)
        else:
            out = bytes(data)
    except (zstandard.ZstdError, zlib.error) as exc:
        raise DecodeError(f"{what}: {codec} data is corrupt ({exc})") from None
    if len(out) != raw_size:
        raise DecodeError(f"{what}: decompressed to {len(out)} bytes, expected {raw_size}")
    return out


def _zstd_bounded(data: bytes, raw_size: int) -> bytes:
    # A stream reader lets us stop after raw_size + 1 output bytes: a frame that
    # claims or produces more is refused before the memory is spent.
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=False)
    chunks, got = [], 0
    while got <= raw_size:
        chunk = reader.read(raw_size + 1 - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got > raw_size:
        raise DecodeError(f"section: zstd output exceeds the declared {raw_size} bytes")
    return b"".join(chunks)


def _zlib_bounded(data: bytes, raw_size: int) -> bytes:
    dobj = zlib.decompressobj()
    out = dobj.decompress(data, raw_size + 1)
    if len(out) > raw_size:
        raise DecodeError(f"section: zlib output exceeds declared {raw_size} bytes")
    if not dobj.eof:
        raise DecodeError("section: zlib stream is truncated")
    if dobj.unused_data or dobj.unconsumed_tail:
        raise DecodeError("section: trailing bytes after the zlib stream")
    return out
