"""The .tpk container (docs/FORMAT.md section 1): read, check, write, decode (numpy only).

Layout, all integers little-endian::

    magic (8) | version u16 | header codec u8 | flags u8 | header stored u32
    | header raw u32 | payload u64 | header (compressed JSON) | payload | crc32 u32

The reader validates before it allocates: fixed prefix, declared sizes against the bytes
present, the whole-file CRC-32, the header's every field and every section's bounds, and
only then decompresses, each section to exactly its declared size.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..atomic import atomic_write_bytes
from .eval_context import check_eval_context
from ..errors import (ArtifactError, BadMagicError, BudgetExceededError, ChecksumError,
                      HeaderError, LimitError, TruncatedError, UnsupportedVersionError,
                      UsageError, VerificationError)
from .compression import compress, decompress
from .constants import (DEFAULT_LIMITS, FORMAT_VERSION, HEADER_CODECS, MAGIC, PREFIX,
                        READ_VERSIONS, TRAILER, WRITE_CODECS, Limits)
from .header import parse_header
from .sections import check_write_codec, decode_tensor, encode_tensor, section_bytes
from .digest import combine_digests, default_threads, model_sha256, weights_sha256_v1
from .tensors import Ticket, effective_weights

Progress = Callable[[dict], None]  # receives progress events (ticketpack.cli.progress shows them)


@dataclass
class ArtifactInfo:
    """A parsed artifact: its header, section table and sizes, before any decoding."""

    header: dict
    file_bytes: int
    header_bytes: int  # prefix + stored header + trailer
    payload: bytes = field(repr=False, default=b"")
    version: int = FORMAT_VERSION

    @property
    def tensors(self) -> list[dict]:
        return self.header["tensors"]


# ---------------------------------------------------------------- writing

def encode_artifact(ticket: Ticket, codec: str = "auto", level: int | None = None,
                    creation: dict | None = None, progress: Progress | None = None) -> bytes:
    """Encode a ticket into artifact bytes (``codec``: auto picks the smallest per section).

    ``progress`` receives a ``tensor`` event (stage ``pack``) after each tensor."""
    check_write_codec(codec, level, WRITE_CODECS)
    if ticket.eval is not None:
        check_eval_context(ticket.eval, "ticket.eval", UsageError)
    payload = bytearray()
    entries = []
    report = _tensor_reporter("pack", [t.shape for t in ticket.tensors], progress)
    for tensor in ticket.tensors:
        entry, parts = encode_tensor(tensor, codec, level)
        report()
        entry["sections"] = append_sections(payload, parts)
        entries.append(entry)
    provenance = {**ticket.provenance, **({"creation": creation} if creation else {})}
    try:
        header = ticket_header(ticket, entries, provenance)
        data = assemble(header, bytes(payload), "none" if codec == "none" else "zstd")
        check_written(data)
    except ArtifactError as exc:  # the reader's own rules refuse it: never emit such a file
        raise UsageError(f"ticket: a reader would refuse this artifact ({exc}); nothing written") from None
    return data


# What a writer checks its output against: the reader's rules and its structural limits (rank,
# dimension, name length); the size caps a reader's caller may raise are not a writer's concern.
WRITE_CHECK_LIMITS = Limits(max_file_bytes=2**63, max_header_bytes=2**32 - 1, max_tensors=2**62,
                            max_total_elements=2**62)


def check_written(data: bytes) -> None:
    """Parse artifact bytes as a reader does (prefix, CRC-32, every header and section rule) and
    check each section's CRC-32 and bounded decompression to its declared size: cheap next to
    encoding, and nothing a writer emits then fails those checks. Raises ArtifactError."""
    info = parse_artifact(data, WRITE_CHECK_LIMITS)
    for t in info.tensors:
        for s in t["sections"]:
            section_bytes(s, info.payload, t["name"])


def append_sections(payload: bytearray, parts: list[tuple]) -> list[dict]:
    """Append each encoded ``(role, enc, codec, stored, raw)`` part to ``payload``; their
    section descriptors, in order."""
    sections = []
    for role, enc, comp, stored, raw in parts:
        sections.append({"role": role, "enc": enc, "codec": comp, "offset": len(payload),
                         "length": len(stored), "raw": raw, "crc": zlib.crc32(stored)})
        payload += stored
    return sections


def ticket_header(ticket: Ticket, entries: list[dict], provenance: dict) -> dict:
    """The header of ``ticket`` with its tensor ``entries``, digests computed, in writer order."""
    _, digests = effective_weights(ticket, digests=True)
    weights_hex = combine_digests(digests)
    return {
        "seed": ticket.seed,
        "rng": ticket.rng,
        "config": ticket.config,
        "weights_sha256": weights_hex,
        "model_sha256": model_digest(weights_hex, ticket.config, ticket.eval),
        "provenance": provenance,
        **({"eval": ticket.eval} if ticket.eval is not None else {}),
        "tensors": entries,
    }


def write_artifact(ticket: Ticket, path: str | os.PathLike, codec: str = "auto",
                   level: int | None = None, budget: int | None = None,
                   code_bytes: int = 0, creation: dict | None = None,
                   progress: Progress | None = None) -> int:
    """Encode and write atomically; over budget raises and writes nothing. Returns bytes."""
    data = encode_artifact(ticket, codec, level, creation, progress)
    total = len(data) + code_bytes
    if budget is not None and total > budget:
        raise BudgetExceededError(f"budget: artifact {len(data):,} B + code {code_bytes:,} B = "
                                  f"{total:,} B exceeds {budget:,} B by {total - budget:,} B; "
                                  f"nothing written")
    atomic_write_bytes(path, data)
    return len(data)


def assemble(header: dict, payload: bytes, header_codec: str,
             version: int = FORMAT_VERSION) -> bytes:
    """Prefix, compressed header, payload and CRC-32 trailer around a finished header."""
    raw = json.dumps(header, separators=(",", ":"), sort_keys=False).encode("utf-8")
    stored = compress(raw, header_codec, None)
    code = {name: num for num, name in HEADER_CODECS.items()}[header_codec]
    prefix = PREFIX.pack(MAGIC, version, code, 0, len(stored), len(raw), len(payload))
    body = prefix + stored + payload
    return body + TRAILER.pack(zlib.crc32(body))


def _tensor_reporter(stage: str, shapes: list, progress: Progress | None) -> Callable[[], None]:
    """A function to call after each tensor: sends ``progress`` how far the stage has got."""
    sizes = [math.prod(shape) for shape in shapes]
    total, state = sum(sizes), {"done": 0, "elements": 0}

    def report() -> None:
        if progress is None:
            return
        state["elements"] += sizes[state["done"]]
        state["done"] += 1
        progress({"event": "tensor", "stage": stage, "done": state["done"], "total": len(sizes),
                  "elements": state["elements"], "total_elements": total})

    return report


# ---------------------------------------------------------------- reading

def read_artifact_bytes(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read a whole artifact file, refusing missing paths and files over the size cap."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"artifact: no such file {str(p)!r}")
    try:
        size = p.stat().st_size
        if size > limits.max_file_bytes:
            raise LimitError(f"artifact: file is {size:,} B, cap is {limits.max_file_bytes:,} B")
        with open(p, "rb") as fh:  # read() allocates what it is asked for: ask for size + 1
            data = fh.read(size + 1)
    except OSError as exc:
        raise ArtifactError(f"artifact {str(p)!r}: cannot be read ({exc.strerror or exc})") from None
    if len(data) != size:
        raise ArtifactError(f"artifact {str(p)!r}: {len(data):,} B read, expected {size:,} B "
                            f"(the file changed while being read)")
    return data


def _check_version(version: int) -> None:
    if version in READ_VERSIONS:
        return
    newest = max(READ_VERSIONS)
    supported = ", ".join(map(str, READ_VERSIONS))
    raise UnsupportedVersionError(f"format version: got {version}, this reader supports "
                                  f"{supported} (upgrade ticketpack)" if version > newest
                                  else f"format version: got {version}, expected {supported}")


def parse_artifact(data: bytes, limits: Limits = DEFAULT_LIMITS) -> ArtifactInfo:
    """Check prefix, sizes, checksum and header of artifact bytes; decode nothing yet."""
    if data[:len(MAGIC)] != MAGIC[:len(data)]:
        raise BadMagicError(f"magic: got {bytes(data[:8])!r}, expected {MAGIC!r} (not a .tpk artifact)")
    if len(data) < PREFIX.size + TRAILER.size:
        raise TruncatedError(f"file: {len(data)} B is shorter than the "
                             f"{PREFIX.size + TRAILER.size} B fixed prefix and trailer")
    magic, version, hcodec, flags, stored, raw, payload_len = PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BadMagicError(f"magic: got {magic!r}, expected {MAGIC!r} (not a .tpk artifact)")
    _check_version(version)
    if hcodec not in HEADER_CODECS:
        raise HeaderError(f"header codec: got {hcodec}, expected one of {sorted(HEADER_CODECS)}")
    if flags != 0:
        raise HeaderError(f"flags: got {flags:#x}, expected 0")
    if stored > limits.max_header_bytes or raw > limits.max_header_bytes:
        raise LimitError(f"header: {max(stored, raw):,} B exceeds the cap of "
                         f"{limits.max_header_bytes:,} B")
    expected = PREFIX.size + stored + payload_len + TRAILER.size
    if len(data) < expected:
        raise TruncatedError(f"file: {len(data):,} B, header declares {expected:,} B (truncated)")
    if len(data) > expected:
        raise HeaderError(f"file: {len(data):,} B, header declares {expected:,} B "
                          f"({len(data) - expected:,} B of trailing data)")
    body = memoryview(data)[:-TRAILER.size]
    (crc,) = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    if zlib.crc32(body) != crc:
        raise ChecksumError(f"checksum: file crc32 {zlib.crc32(body):#010x}, stored {crc:#010x} "
                            f"(the artifact is corrupt{_damaged_section(data, stored, raw, hcodec)})")
    hbytes = decompress(bytes(data[PREFIX.size:PREFIX.size + stored]), HEADER_CODECS[hcodec], raw,
                        "header")
    header = parse_header(hbytes, payload_len, limits, version)
    payload = bytes(data[PREFIX.size + stored:PREFIX.size + stored + payload_len])
    return ArtifactInfo(header=header, file_bytes=len(data),
                        header_bytes=PREFIX.size + stored + TRAILER.size, payload=payload,
                        version=version)


def _damaged_section(data: bytes, stored: int, raw: int, hcodec: int) -> str:
    """Best effort: name the first section whose own crc32 fails (for a helpful message)."""
    try:
        hbytes = decompress(bytes(data[PREFIX.size:PREFIX.size + stored]), HEADER_CODECS[hcodec], raw)
        header = json.loads(hbytes)
        base = PREFIX.size + stored
        for t in header["tensors"]:
            for s in t["sections"]:
                chunk = data[base + s["offset"]:base + s["offset"] + s["length"]]
                if zlib.crc32(chunk) != s["crc"]:
                    return f"; section {s['role']} of {t['name']!r} fails its crc32"
    except Exception:  # noqa: BLE001 - only refines a message about an already-rejected file
        return "; the header itself is damaged"
    return ""


def decode_artifact(info: ArtifactInfo, progress: Progress | None = None,
                    threads: int | None = None) -> Ticket:
    """Decode every section of a parsed artifact into a Ticket, tensors in parallel threads
    (CRC-32, zstd / zlib and the rANS kernels release the GIL).

    ``progress`` receives a ``tensor`` event (stage ``load``) after each tensor, in header order."""
    h = info.header
    report = _tensor_reporter("load", [t["shape"] for t in h["tensors"]], progress)
    tensors = []
    with ThreadPoolExecutor(threads or default_threads()) as pool:
        for tensor in pool.map(lambda t: decode_tensor(t, info.payload, info.version), h["tensors"]):
            tensors.append(tensor)
            report()
    return Ticket(seed=h["seed"], config=h["config"], tensors=tensors, rng=h["rng"],
                  provenance=h["provenance"], eval=h.get("eval"))


def model_digest(weights_hex: str, config: dict, eval_context: dict | None) -> str:
    """``model_sha256`` of a model; a config that is no JSON value is a HeaderError."""
    try:
        return model_sha256(weights_hex, config, eval_context)
    except ValueError as exc:
        raise HeaderError(f"config: {exc}, expected JSON values only") from None


def check_digests(ticket: Ticket, header: dict, version: int = FORMAT_VERSION,
                  threads: int | None = None, check_model: bool = True) -> tuple[dict, dict]:
    """Regenerate the effective weights and check them against ``header``'s digests.

    Returns the weights (name -> float32 array) and the digests recomputed from them:
    ``weights_sha256`` (checked in every version) and ``model_sha256`` (checked from v2 on;
    computed for v1 files as well, so callers can report it). VerificationError on a mismatch.
    """
    if version == 1:
        weights = effective_weights(ticket, threads)
        got = weights_sha256_v1(weights.items())
    else:
        weights, digests = effective_weights(ticket, threads, digests=True)
        got = combine_digests(digests)
    if got != header["weights_sha256"]:
        raise VerificationError(f"weights_sha256: regenerated {got[:16]}..., artifact stores "
                                f"{header['weights_sha256'][:16]}... (different weights)")
    model = model_digest(got, ticket.config, ticket.eval)
    if check_model and version >= 2 and model != header["model_sha256"]:
        raise VerificationError(f"model_sha256: computed {model[:16]}..., artifact stores "
                                f"{header['model_sha256'][:16]}... (the weights match; the config "
                                f"or evaluation context differs from what was packed)")
    return weights, {"weights_sha256": got, "model_sha256": model}


def verify_weights(ticket: Ticket, expected_sha256: str, version: int = FORMAT_VERSION,
                   threads: int | None = None) -> dict:
    """Regenerate the effective weights (numpy) and compare their ``weights_sha256``; returns them."""
    return check_digests(ticket, {"weights_sha256": expected_sha256}, version, threads,
                         check_model=False)[0]


def load_artifact(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                  verify: bool = True) -> tuple[Ticket, dict | None]:
    """Read, validate and decode an artifact; with ``verify`` regenerate and check its digests.

    Returns the ticket and, when verified, its effective weights (name -> float32 array).
    """
    info = parse_artifact(read_artifact_bytes(path, limits), limits)
    ticket = decode_artifact(info)
    weights = check_digests(ticket, info.header, info.version)[0] if verify else None
    return ticket, weights
