"""Shared by the fuzz harness and the bounded mutation test: seeds, mutations, the oracle.

The oracle (``load_untrusted``) runs the whole untrusted load path on bytes and says how
it ended; anything other than a ticketpack error escapes and fails the caller.

Random bytes never get past the file CRC, so the mutators work on structure: ``fixup``
re-seals mutated bytes (re-finds the header, recomputes every CRC) and ``mutate`` edits
the parsed header, a section's raw bytes or the prefix, then seals again, so the mutation
reaches the header validator and the codec decoders behind the checksums.
"""

from __future__ import annotations

import copy
import json
import math
import struct
import zlib
from typing import Any, Protocol

import numpy as np
import torch

from tests.hostile.make_hostile import (Parts, base_ticket, repack, section_blobs,
                                  sections, split)
from ticketpack.format import codecs
from ticketpack.artifact import (Limits, PREFIX, TRAILER, decode_artifact,
                                 encode_artifact, parse_artifact, verify_info)
from ticketpack.format.constants import V1_ENTROPY_ENCODINGS, symbol_encodings
from ticketpack.format.digest import weights_sha256_v1
from ticketpack.format.compression import compress, decompress
from ticketpack.errors import TicketpackError
from ticketpack.ticket import MaskedTensor, TernaryTensor

# Small caps keep every input's memory tiny; the caps themselves are what is under test.
FUZZ_LIMITS = Limits(max_file_bytes=1 << 22, max_header_bytes=1 << 20, max_tensors=1000,
                     max_total_elements=1 << 20)
VERIFY_ELEMENTS = 1 << 14  # regenerate and hash the weights of tickets up to this size


def load_untrusted(data: bytes, limits: Limits = FUZZ_LIMITS) -> str:
    """Parse, decode and (for small tickets) verify; the name of the outcome."""
    try:
        info = parse_artifact(data, limits)
        ticket = decode_artifact(info)
        if sum(math.prod(t.shape) for t in ticket.tensors) <= VERIFY_ELEMENTS:
            verify_info(info, ticket)
            return "verified"
        return "decoded"
    except TicketpackError as exc:
        return type(exc).__name__


# ---------------------------------------------------------------- seeds

def seed_corpus() -> list[bytes]:
    """Valid artifacts covering every encoding, every outer codec and every header codec."""
    ticket = base_ticket()
    seeds = [encode_artifact(ticket, codec=c) for c in ("auto", "zstd", "zlib")]
    base = split(seeds[1])
    for enc in codecs.ENCODINGS:
        data = _force_encoding(ticket, base, enc)
        if data is not None:
            seeds.append(data)
    for hcodec in (0, 1):  # plain-text header: byte mutations land in the JSON itself
        parts = split(seeds[0])
        seeds.append(repack(parts.header, section_blobs(parts), hcodec=hcodec))
    return seeds


def _force_encoding(ticket, base: Parts, enc: str) -> bytes | None:
    """The base artifact with every symbol section that can take ``enc`` coded with it
    (a format-v1 file for v1's encodings, with v1's weights hash)."""
    header, blobs = copy.deepcopy(base.header), section_blobs(base)
    version = 1 if enc in V1_ENTROPY_ENCODINGS else 2
    changed, i = False, 0
    for tensor, entry in zip(ticket.tensors, header["tensors"]):
        for s in entry["sections"]:
            symbols = _symbols(tensor) if s["role"] in ("mask", "trits") else None
            holds = tensor.mask.kind if isinstance(tensor, MaskedTensor) else "trits"
            if symbols is not None and enc in symbol_encodings(version, holds):
                K, n, m = symbols[1:]
                try:
                    raw = codecs.encode(enc, symbols[0], K=K, shape=tensor.shape, n=n, m=m)
                except TicketpackError:
                    raw = None
                if raw is not None:
                    blobs[i] = raw
                    s.update(enc=enc, codec="none", raw=len(raw))
                    changed = True
            i += 1
    if version == 1:
        header["weights_sha256"] = weights_sha256_v1(ticket.effective_arrays().items())
        del header["model_sha256"]
    return repack(header, blobs, version=version) if changed else None


def _symbols(tensor) -> tuple[np.ndarray, int, int, int] | None:
    if isinstance(tensor, MaskedTensor):
        spec = tensor.mask
        n, m = (spec.n, spec.m) if spec.kind == "nm" else (0, 0)
        return tensor.levels, spec.levels, n, m
    if isinstance(tensor, TernaryTensor):
        return (tensor.trits + 1).astype(np.uint8), 3, 0, 0
    return None


# ---------------------------------------------------------------- re-sealing

def fixup(data: bytes) -> bytes:
    """Best effort: make mutated bytes consistent again (lengths, section CRCs, file CRC).

    With a plain-text header (codec 0) the header is re-found as the JSON value after the
    prefix, so inserted or deleted header bytes keep a valid prefix. Never raises.
    """
    if len(data) < PREFIX.size + TRAILER.size:
        return data
    data = bytearray(data)
    try:
        _fix_plain_header(data)
    except Exception:  # noqa: BLE001 - a best-effort repair of arbitrary bytes
        pass
    body = bytes(data[:-TRAILER.size])
    return body + TRAILER.pack(zlib.crc32(body))


def _fix_plain_header(data: bytearray) -> None:
    magic, version, hcodec, flags, stored, raw, plen = PREFIX.unpack_from(data)
    if hcodec != 0:
        return
    text = data[PREFIX.size:-TRAILER.size].decode("utf-8", errors="replace")
    header, end = json.JSONDecoder().raw_decode(text)
    end = len(text[:end].encode("utf-8", errors="replace"))
    payload = bytes(data[PREFIX.size + end:-TRAILER.size])
    if isinstance(header, dict) and isinstance(header.get("tensors"), list):
        for t in header["tensors"]:
            for s in t.get("sections", []) if isinstance(t, dict) else []:
                off, length = s.get("offset"), s.get("length")
                if type(off) is int and type(length) is int and 0 <= off <= off + length <= len(payload):
                    s["crc"] = zlib.crc32(payload[off:off + length])
    hbytes = bytes(data[PREFIX.size:PREFIX.size + end])
    if isinstance(header, dict) and "tensors" in header:
        hbytes = json.dumps(header, separators=(",", ":")).encode()
    data[:] = (PREFIX.pack(magic, version, hcodec, flags, len(hbytes), len(hbytes), len(payload))
               + hbytes + payload + bytes(TRAILER.size))


# ---------------------------------------------------------------- structured mutation

class Chooser(Protocol):
    """Where a mutation's choices come from (random, hypothesis or atheris)."""

    def int(self, n: int) -> int: ...  # 0..n-1

    def bytes(self, n: int) -> bytes: ...  # at most n bytes


INTERESTING: list[Any] = [
    0, 1, -1, 2, 3, 4, 7, 8, 255, 256, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63,
    2**64, -2**63, 10**30, 0.5, -0.0, 1e308, "", "x", "\ud800", "binary", "multibit:3",
    "multibit:256", "nm:2:4", "nm:1:2", "nm:63:64", "nm:255:256", "ans0", "ansrow", "nm", "bits",
    "planes", "trits5", "f16", "zstd", "zlib", "none", "masked", "plain", "ternary", "row",
    "tensor", "shard", "mask", "scale", "data", "trits", "gamma", "xavier_uniform",
    "signed_constant_he", None, True, False, [], {}, [0], [1], [2**31], [1] * 8, [1] * 9,
    [3, 0], [0, 3], [2**20, 2**20], "torch-mt19937-cpu/" + torch.__version__, "f32",
]


def mutate(seed: bytes, ch: Chooser) -> bytes:
    """One structured mutation of a valid artifact, re-sealed so it passes the file CRC."""
    parts = split(seed)
    kind = ch.int(5)
    if kind == 0:
        return _mutate_bytes(seed, ch)
    if kind == 1:
        return fixup(_mutate_bytes(seed, ch))
    if kind == 2:
        return _mutate_header(parts, ch)
    if kind == 3:
        return _mutate_section(parts, ch)
    return _mutate_prefix(parts, ch)


def _mutate_bytes(data: bytes, ch: Chooser) -> bytes:
    out = bytearray(data)
    for _ in range(1 + ch.int(4)):
        op, pos = ch.int(6), ch.int(len(out) + 1)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] ^= 1 << ch.int(8)
        elif op == 1 and out:
            out[min(pos, len(out) - 1)] = ch.int(256)
        elif op == 2:
            out[pos:pos] = ch.bytes(16)
        elif op == 3:
            del out[pos:pos + 1 + ch.int(16)]
        elif op == 4:
            del out[pos:]
        else:
            out[pos:pos] = out[pos:pos + 1 + ch.int(64)]
    return bytes(out)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _mutate_header(parts: Parts, ch: Chooser) -> bytes:
    header = copy.deepcopy(parts.header)
    for _ in range(1 + ch.int(3)):
        paths = _paths(header)[1:]
        path = paths[ch.int(len(paths))]
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        key, op = path[-1], ch.int(5)
        if op == 0:
            parent[key] = copy.deepcopy(INTERESTING[ch.int(len(INTERESTING))])
        elif op == 1 and isinstance(parent[key], int) and not isinstance(parent[key], bool):
            parent[key] += ch.int(9) - 4
        elif op == 2:
            del parent[key]
        elif op == 3 and isinstance(parent, list):
            parent.insert(ch.int(len(parent) + 1), copy.deepcopy(parent[key]))
        else:
            other = paths[ch.int(len(paths))]
            node = header
            for k in other:
                node = node[k]
            parent[key] = copy.deepcopy(node)
    blobs = section_blobs(parts)
    keep_crcs = ch.int(2)
    try:
        if keep_crcs:
            return repack(header, blobs, hcodec=ch.int(3))
    except Exception:  # noqa: BLE001 - sections no longer line up: seal the header as it is
        pass
    return _seal_any(header, parts.payload, ch)


def _seal_any(header: Any, payload: bytes, ch: Chooser) -> bytes:
    from tests.hostile.make_hostile import seal

    return seal(json.dumps(header, separators=(",", ":")), payload, hcodec=ch.int(3))


def _mutate_section(parts: Parts, ch: Chooser) -> bytes:
    """Give one section new raw bytes (its codec, raw size and CRC updated to match)."""
    header, blobs = copy.deepcopy(parts.header), section_blobs(parts)
    i = ch.int(len(blobs))
    s = sections(header)[i]
    raw = bytearray(decompress(blobs[i], s["codec"], s["raw"]))
    for _ in range(1 + ch.int(4)):
        op, pos = ch.int(4), ch.int(len(raw) + 1)
        if op == 0 and raw:
            raw[min(pos, len(raw) - 1)] ^= 1 << ch.int(8)
        elif op == 1:
            raw[pos:pos] = ch.bytes(8)
        elif op == 2:
            del raw[pos:pos + 1 + ch.int(8)]
        else:
            raw[pos:pos + 4] = ch.bytes(4)
    s["codec"] = ("none", "zstd", "zlib")[ch.int(3)]
    s["raw"] = len(raw)
    blobs[i] = compress(bytes(raw), s["codec"], 1 if s["codec"] != "none" else None)
    return repack(header, blobs)


def _mutate_prefix(parts: Parts, ch: Chooser) -> bytes:
    data = bytearray(repack(copy.deepcopy(parts.header), section_blobs(parts)))
    field = ch.int(6)
    fmt, offset = [("<H", 8), ("<B", 10), ("<B", 11), ("<I", 12), ("<I", 16), ("<Q", 20)][field]
    size = struct.calcsize(fmt)
    data[offset:offset + size] = ch.bytes(size).ljust(size, b"\x00")
    return fixup(bytes(data))


# ---------------------------------------------------------------- choosers

class RandomChooser:
    def __init__(self, rng) -> None:
        self.rng = rng

    def int(self, n: int) -> int:
        return self.rng.randrange(n) if n > 0 else 0

    def bytes(self, n: int) -> bytes:
        return self.rng.randbytes(self.rng.randrange(n + 1))


class DrawChooser:
    """Hypothesis: every choice is drawn, so failures shrink."""

    def __init__(self, draw) -> None:
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def int(self, n: int) -> int:
        return self.draw(self.st.integers(0, n - 1)) if n > 1 else 0

    def bytes(self, n: int) -> bytes:
        return self.draw(self.st.binary(max_size=n))
