"""The .tpk artifact format, version 1 (specified in docs/FORMAT.md).

Layout, all integers little-endian::

    magic (8) | version u16 | header codec u8 | flags u8 | header stored u32
    | header raw u32 | payload u64 | header (compressed JSON) | payload | crc32 u32

The reader validates before it allocates: fixed prefix, declared sizes against
the bytes present, the whole-file CRC-32, the header's every field and every
section's bounds, and only then decompresses, each section to exactly its
declared size.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import codecs, rng
from .atomic import atomic_write_bytes
from .compression import compress, decompress, check_codec
from .errors import (ArtifactError, BadMagicError, BudgetExceededError, ChecksumError, DecodeError,
                     HeaderError, LimitError, TicketpackError, TruncatedError,
                     UnsupportedVersionError, UsageError, VerificationError)
from .eval_context import check_eval_context
from .masking import MaskSpec
from .strict_json import loads_strict
from .ticket import MaskedTensor, PlainTensor, TernaryTensor, Ticket, weights_sha256

MAGIC = b"\x89TPK\r\n\x1a\n"
FORMAT_VERSION = 1
PREFIX = struct.Struct("<8sHBBIIQ")  # magic, version, header codec, flags, stored, raw, payload
TRAILER = struct.Struct("<I")
HEADER_CODECS = {0: "none", 1: "zlib", 2: "zstd"}
WRITE_CODECS = ("auto", "zstd", "zlib", "none")
KINDS = ("masked", "plain", "ternary")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Encodings of scale / gamma / plain-data sections: little-endian IEEE floats. Writers keep
# float32 arrays as f32 (exact fp32 values, e.g. imported scales) and store all else as f16.
VALUE_ENCODINGS = {"f16": np.dtype("<f2"), "f32": np.dtype("<f4")}
# Declared raw size of a mask / trit section: no encoding needs more than this (ANS spends
# at most 24 bits per symbol, a histogram at most 10 B per level), so a section can never
# make the reader decompress more than ~8 B per element of its tensor.
SYMBOL_RAW_PER_ELEMENT = 8
SYMBOL_RAW_SLACK = 4096
Progress = Callable[[dict], None]  # receives progress events (ticketpack.cli.progress shows them)


@dataclass(frozen=True)
class Limits:
    """Safety caps checked before any allocation; raise them for very large models."""

    max_file_bytes: int = 4 * 2**30
    max_header_bytes: int = 16 * 2**20
    max_tensors: int = 100_000
    max_rank: int = 8
    max_dim: int = 2**31
    max_total_elements: int = 2**30  # loading costs ~4 B (effective fp32) + 1-8 B per element
    max_name_bytes: int = 1024


DEFAULT_LIMITS = Limits()


@dataclass
class Section:
    """Where one encoded part of a tensor lies in the payload, and how it is coded."""

    role: str  # "mask" | "scale" | "data" | "trits" | "gamma"
    enc: str
    codec: str
    offset: int
    length: int
    raw: int
    crc: int


@dataclass
class ArtifactInfo:
    """A parsed artifact: its header, section table and sizes, before any decoding."""

    header: dict
    file_bytes: int
    header_bytes: int  # prefix + stored header + trailer
    payload: bytes = field(repr=False, default=b"")

    @property
    def tensors(self) -> list[dict]:
        return self.header["tensors"]


# ---------------------------------------------------------------- writing

def encode_artifact(ticket: Ticket, codec: str = "auto", level: int | None = None,
                    creation: dict | None = None, progress: Progress | None = None) -> bytes:
    """Encode a ticket into artifact bytes (``codec``: auto picks the smallest per section).

    ``progress`` receives a ``tensor`` event (stage ``pack``) after each tensor."""
    if codec not in WRITE_CODECS:
        raise UsageError(f"codec: got {codec!r}, expected one of {', '.join(WRITE_CODECS)}")
    if codec != "auto":
        check_codec(codec, level)
    if ticket.eval is not None:
        check_eval_context(ticket.eval, "ticket.eval", UsageError)
    payload = bytearray()
    entries = []
    report = _tensor_reporter("pack", [t.shape for t in ticket.tensors], progress)
    for tensor in ticket.tensors:
        entry, parts = _encode_tensor(tensor, codec, level)
        report()
        sections = []
        for role, enc, comp, stored, raw in parts:
            sections.append({"role": role, "enc": enc, "codec": comp, "offset": len(payload),
                             "length": len(stored), "raw": raw, "crc": zlib.crc32(stored)})
            payload += stored
        entry["sections"] = sections
        entries.append(entry)
    header = {
        "seed": ticket.seed,
        "rng": ticket.rng,
        "config": ticket.config,
        "weights_sha256": weights_sha256(ticket.effective_state_dict()),
        "provenance": {**ticket.provenance, **({"creation": creation} if creation else {})},
        **({"eval": ticket.eval} if ticket.eval is not None else {}),
        "tensors": entries,
    }
    return _assemble(header, bytes(payload), "none" if codec == "none" else "zstd")


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


def _assemble(header: dict, payload: bytes, header_codec: str) -> bytes:
    raw = json.dumps(header, separators=(",", ":"), sort_keys=False).encode("utf-8")
    stored = compress(raw, header_codec, None)
    code = {name: num for num, name in HEADER_CODECS.items()}[header_codec]
    prefix = PREFIX.pack(MAGIC, FORMAT_VERSION, code, 0, len(stored), len(raw), len(payload))
    body = prefix + stored + payload
    return body + TRAILER.pack(zlib.crc32(body))


def _encode_tensor(tensor, codec: str, level: int | None) -> tuple[dict, list[tuple]]:
    if isinstance(tensor, MaskedTensor):
        entry = {"name": tensor.name, "kind": "masked", "shape": list(tensor.shape),
                 "init": tensor.init, "mask": str(tensor.mask), "scale": tensor.scale_mode}
        parts = [("mask", *_encode_symbols(tensor.levels, tensor.mask.levels, tensor.mask,
                                           codec, level))]
        if tensor.scale is not None:
            parts.append(("scale", *_encode_values(tensor.scale, codec, level)))
        return entry, parts
    if isinstance(tensor, PlainTensor):
        entry = {"name": tensor.name, "kind": "plain", "shape": list(tensor.shape)}
        return entry, [("data", *_encode_values(tensor.data, codec, level))]
    if isinstance(tensor, TernaryTensor):
        entry = {"name": tensor.name, "kind": "ternary", "shape": list(tensor.shape),
                 "gamma": tensor.gamma_mode, "gamma_count": int(tensor.gamma.size)}
        symbols = (tensor.trits.astype(np.int16) + 1).astype(np.uint8)
        parts = [("trits", *_encode_symbols(symbols, 3, None, codec, level)),
                 ("gamma", *_encode_values(tensor.gamma, codec, level))]
        return entry, parts
    raise UsageError(f"ticket: unknown tensor type {type(tensor).__name__}")


def _encode_symbols(symbols: np.ndarray, K: int, spec: MaskSpec | None, codec: str,
                    level: int | None) -> tuple[str, str, bytes, int]:
    shape = tuple(symbols.shape)
    n, m = (spec.n, spec.m) if spec is not None and spec.kind == "nm" else (0, 0)
    flat = np.ascontiguousarray(symbols, dtype=np.uint8).reshape(-1)
    if codec == "auto":
        return codecs.choose(flat, K=K, shape=shape, n=n, m=m, level=level)
    enc = "bits" if K == 2 else ("trits5" if K == 3 else "planes")
    raw = codecs.encode(enc, flat, K=K, shape=shape)
    return enc, codec, compress(raw, codec, level), len(raw)


def _encode_values(values: np.ndarray, codec: str, level: int | None) -> tuple[str, str, bytes, int]:
    enc = "f32" if np.asarray(values).dtype == np.float32 else "f16"
    raw = np.ascontiguousarray(values, dtype=VALUE_ENCODINGS[enc]).tobytes()
    if codec != "auto":
        return enc, codec, compress(raw, codec, level), len(raw)
    options = [(compress(raw, c, None), c) for c in ("none", "zstd", "zlib")]
    stored, best = min(options, key=lambda o: len(o[0]))
    return enc, best, stored, len(raw)


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
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(f"format version: got {version}, this reader supports "
                                      f"{FORMAT_VERSION} (upgrade ticketpack)" if version > FORMAT_VERSION
                                      else f"format version: got {version}, expected {FORMAT_VERSION}")
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
    header = _parse_header(hbytes, payload_len, limits)
    payload = bytes(data[PREFIX.size + stored:PREFIX.size + stored + payload_len])
    return ArtifactInfo(header=header, file_bytes=len(data),
                        header_bytes=PREFIX.size + stored + TRAILER.size, payload=payload)


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


def decode_artifact(info: ArtifactInfo, progress: Progress | None = None) -> Ticket:
    """Decode every section of a parsed artifact into a Ticket.

    ``progress`` receives a ``tensor`` event (stage ``load``) after each tensor."""
    h = info.header
    report = _tensor_reporter("load", [t["shape"] for t in h["tensors"]], progress)
    tensors = []
    for t in h["tensors"]:
        tensors.append(_decode_tensor(t, info.payload))
        report()
    return Ticket(seed=h["seed"], config=h["config"], tensors=tensors, rng=h["rng"],
                  provenance=h["provenance"], eval=h.get("eval"))


def load_ticket(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                verify: bool = True) -> Ticket:
    """Read, validate and decode an artifact; with ``verify`` check the regenerated-weight hash."""
    info = parse_artifact(read_artifact_bytes(path, limits), limits)
    ticket = decode_artifact(info)
    if verify:
        verify_ticket(ticket, info.header["weights_sha256"])
    return ticket


def verify_ticket(ticket: Ticket, expected_sha256: str) -> dict:
    """Regenerate the effective weights and compare their hash; returns the state dict."""
    state = ticket.effective_state_dict()
    got = weights_sha256(state)
    if got != expected_sha256:
        raise VerificationError(f"weights_sha256: regenerated {got[:16]}..., artifact stores "
                                f"{expected_sha256[:16]}... (different weights)")
    return state


def _section_bytes(s: dict, payload: bytes, name: str) -> bytes:
    chunk = payload[s["offset"]:s["offset"] + s["length"]]
    if zlib.crc32(chunk) != s["crc"]:
        raise ChecksumError(f"{name}: section {s['role']} crc32 {zlib.crc32(chunk):#010x}, "
                            f"expected {s['crc']:#010x}")
    return decompress(chunk, s["codec"], s["raw"], f"{name}/{s['role']}")


def _decode_tensor(t: dict, payload: bytes):
    name, shape = t["name"], tuple(t["shape"])
    sections = {s["role"]: s for s in t["sections"]}
    if t["kind"] == "plain":
        return PlainTensor(name, _decode_values(sections["data"], payload, name, shape))
    if t["kind"] == "ternary":
        symbols = _decode_symbols(sections["trits"], payload, name, shape, 3, None)
        gshape = () if t["gamma"] == "tensor" else (t["gamma_count"],)
        gamma = _decode_values(sections["gamma"], payload, name, gshape)
        return TernaryTensor(name, symbols.astype(np.int8) - 1, gamma)
    spec = MaskSpec.parse(t["mask"])
    levels = _decode_symbols(sections["mask"], payload, name, shape, spec.levels, spec)
    if spec.kind == "nm":
        _check_nm_pattern(levels, spec, name)
    scale = None
    if t["scale"] != "none":
        sshape = () if t["scale"] == "tensor" else (shape[0],)
        scale = _decode_values(sections["scale"], payload, name, sshape)
    return MaskedTensor(name, shape, t["init"], spec, levels, scale)


def _decode_symbols(s: dict, payload: bytes, name: str, shape: tuple, K: int,
                    spec: MaskSpec | None) -> np.ndarray:
    raw = _section_bytes(s, payload, name)
    n, m = (spec.n, spec.m) if spec is not None and spec.kind == "nm" else (0, 0)
    try:
        out = codecs.decode(s["enc"], raw, K=K, shape=shape, n=n, m=m)
    except DecodeError as exc:  # say which tensor the codec was decoding
        raise DecodeError(f"{name}/{s['role']}: {exc}") from None
    if out.shape != shape:
        raise DecodeError(f"{name}: decoded shape {out.shape}, expected {shape}")
    return out


def _check_nm_pattern(levels: np.ndarray, spec: MaskSpec, name: str) -> None:
    """Whatever the encoding, an N:M mask must hold N kept in every M (2:4 kernels rely on it)."""
    kept = levels.reshape(-1, spec.m).sum(axis=1)
    bad = np.flatnonzero(kept != spec.n)
    if bad.size:
        raise DecodeError(f"{name}/mask: group {int(bad[0])} of {spec.m} keeps {int(kept[bad[0]])}, "
                          f"mask {spec} expects {spec.n}")


def _decode_values(s: dict, payload: bytes, name: str, shape: tuple) -> np.ndarray:
    if s["enc"] not in VALUE_ENCODINGS:
        raise DecodeError(f"{name}: {s['role']} encoding {s['enc']!r}, expected 'f16' or 'f32'")
    dtype = VALUE_ENCODINGS[s["enc"]]
    need = dtype.itemsize * math.prod(shape)
    if s["raw"] != need:
        raise DecodeError(f"{name}: {s['role']} is {s['raw']} B raw, shape {shape} needs {need} B")
    raw = _section_bytes(s, payload, name)
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(shape)


# ---------------------------------------------------------------- header validation

def _load_json(hbytes: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN / Infinity / 1e400, no over-long integers."""
    return loads_strict(hbytes, "header", HeaderError)


def _parse_header(hbytes: bytes, payload_len: int, limits: Limits) -> dict:
    header = _load_json(hbytes)
    _require(header, dict, "header")
    _field(header, "seed", int, "header")
    if not 0 <= header["seed"] < 2**32:
        raise HeaderError(f"seed: got {header['seed']}, expected 0..2^32-1")
    rng_id = _field(header, "rng", str, "header")
    if rng_id != rng.RNG_ID and not rng_id.startswith(rng.PG_RNG_PREFIX):
        raise HeaderError(f"rng: got {rng_id[:100]!r}, expected {rng.RNG_ID!r} or "
                          f"{rng.PG_RNG_PREFIX + '<torch version>'!r}")
    _field(header, "config", dict, "header")
    if not SHA256_HEX.fullmatch(_field(header, "weights_sha256", str, "header")):
        raise HeaderError(f"weights_sha256: got {header['weights_sha256'][:80]!r}, "
                          f"expected 64 lowercase hex digits")
    _field(header, "provenance", dict, "header")
    if "eval" in header:
        check_eval_context(header["eval"])
    tensors = _field(header, "tensors", list, "header")
    if len(tensors) > limits.max_tensors:
        raise LimitError(f"tensors: {len(tensors):,} entries, cap is {limits.max_tensors:,}")
    seen: set[str] = set()
    total = 0
    extents: list[tuple[int, int]] = []
    for i, t in enumerate(tensors):
        total = _check_tensor(t, i, seen, payload_len, limits, extents, total)
    _check_coverage(extents, payload_len)
    return header


def _check_tensor(t: Any, i: int, seen: set, payload_len: int, limits: Limits,
                  extents: list, total: int) -> int:
    """Validate tensor entry ``i``; returns the running element total including it."""
    where = f"tensors[{i}]"
    _require(t, dict, where)
    name = _field(t, "name", str, where)
    try:
        name_bytes = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise HeaderError(f"{where}.name: {name[:100]!r} is not encodable as UTF-8, "
                          f"expected text") from None
    if not name or name_bytes > limits.max_name_bytes:
        raise LimitError(f"{where}.name: {name_bytes} B, expected 1..{limits.max_name_bytes}")
    if name in seen:
        raise HeaderError(f"{where}.name: duplicate tensor name {name!r}")
    seen.add(name)
    kind = _field(t, "kind", str, where)
    if kind not in KINDS:
        raise HeaderError(f"{name}: kind {kind!r}, expected one of {', '.join(KINDS)}")
    shape = _field(t, "shape", list, where)
    if len(shape) > limits.max_rank:
        raise LimitError(f"{name}: rank {len(shape)}, cap is {limits.max_rank}")
    for d in shape:
        if type(d) is not int or not 0 <= d <= limits.max_dim:
            raise LimitError(f"{name}: dimension {d!r}, expected an integer 0..{limits.max_dim}")
    elements = math.prod(shape)
    if total + elements > limits.max_total_elements:  # before any size derived from the shape
        raise LimitError(f"tensors: {total + elements:,} elements in all (up to {name!r}), cap is "
                         f"{limits.max_total_elements:,} (raise Limits.max_total_elements)")
    roles = _check_kind_fields(t, name, kind, shape)
    sections = _field(t, "sections", list, where)
    if len(sections) != len(roles):
        raise HeaderError(f"{name}: {len(sections)} sections, expected {len(roles)} ({', '.join(roles)})")
    got_roles = []
    for s in sections:
        _check_section(s, name, payload_len, extents)
        got_roles.append(s["role"])
    if sorted(got_roles) != sorted(roles):
        raise HeaderError(f"{name}: sections {got_roles}, expected {list(roles)}")
    for s in sections:
        _check_raw(s, name, roles[s["role"]], elements)
    return total + elements


def _check_raw(s: dict, name: str, values: int | None, elements: int) -> None:
    """Bound a section's declared raw size by its tensor's shape, before anything is decompressed."""
    role, enc, raw = s["role"], s["enc"], s["raw"]
    if values is not None:  # scales, gammas, plain data: exactly 2 (f16) or 4 (f32) B per value
        if enc not in VALUE_ENCODINGS or raw != VALUE_ENCODINGS[enc].itemsize * values:
            raise HeaderError(f"{name}: section {role} is {enc!r} of {raw} B raw, expected 'f16' "
                              f"of {2 * values} B or 'f32' of {4 * values} B")
        return
    if enc in VALUE_ENCODINGS:
        raise HeaderError(f"{name}: section {role} encoding {enc!r}, expected one of "
                          f"{', '.join(codecs.ENCODINGS)}")
    bound = SYMBOL_RAW_PER_ELEMENT * elements + SYMBOL_RAW_SLACK
    if raw > bound:
        raise LimitError(f"{name}: section {role} declares {raw:,} B raw, at most {bound:,} B "
                         f"for {elements:,} elements")


def _check_kind_fields(t: dict, name: str, kind: str, shape: list) -> dict[str, int | None]:
    """The section roles this kind needs: role -> float values it holds (None: mask / trits)."""
    if kind == "plain":
        return {"data": math.prod(shape)}
    if kind == "ternary":
        mode = _field(t, "gamma", str, name)
        count = _field(t, "gamma_count", int, name)
        ok = {"tensor": count == 1, "row": bool(shape) and count == shape[0],
              "shard": bool(shape) and 1 <= count <= shape[0] and shape[0] % count == 0}
        if mode not in ok or not ok[mode]:
            raise HeaderError(f"{name}: gamma {mode!r} with {count} values does not fit shape {shape}")
        return {"trits": None, "gamma": count}
    init = _field(t, "init", str, name)
    if init not in rng.INIT_RULES:
        raise HeaderError(f"{name}: init {init!r}, expected one of {', '.join(rng.INIT_RULES)}")
    if not shape or math.prod(shape) == 0:
        raise HeaderError(f"{name}: masked tensor shape {shape}, expected non-empty")
    mask = _field(t, "mask", str, name)
    try:
        spec = MaskSpec.parse(mask)
    except TicketpackError as exc:  # MaskSpec raises ConfigError: here it is a header error
        raise HeaderError(f"{name}: mask {mask[:100]!r} is not a valid mask kind ({exc})") from None
    if spec.kind == "nm" and shape[-1] % spec.m:
        raise HeaderError(f"{name}: mask {spec} on last dimension {shape[-1]}, expected a multiple "
                          f"of {spec.m}")
    scale = _field(t, "scale", str, name)
    if scale not in ("none", "tensor", "row"):
        raise HeaderError(f"{name}: scale {scale!r}, expected none, tensor or row")
    return {"mask": None, **({} if scale == "none" else {"scale": 1 if scale == "tensor" else shape[0]})}


def _check_section(s: Any, name: str, payload_len: int, extents: list) -> None:
    _require(s, dict, f"{name} section")
    for key, typ in (("role", str), ("enc", str), ("codec", str), ("offset", int),
                     ("length", int), ("raw", int), ("crc", int)):
        _field(s, key, typ, f"{name} section")
    if s["codec"] not in ("zstd", "zlib", "none"):
        raise HeaderError(f"{name}: codec {s['codec']!r}, expected zstd, zlib or none")
    if s["enc"] not in VALUE_ENCODINGS and s["enc"] not in codecs.ENCODINGS:
        raise HeaderError(f"{name}: encoding {s['enc']!r}, expected one of "
                          f"{', '.join(tuple(VALUE_ENCODINGS) + tuple(codecs.ENCODINGS))}")
    if s["offset"] < 0 or s["length"] < 0 or s["offset"] + s["length"] > payload_len:
        raise HeaderError(f"{name}: section {s['role']} at {s['offset']}+{s['length']} lies outside "
                          f"the {payload_len} B payload")
    if s["raw"] < 0 or not 0 <= s["crc"] < 2**32:
        raise HeaderError(f"{name}: section {s['role']} raw size {s['raw']} or crc {s['crc']} invalid")
    extents.append((s["offset"], s["length"]))


def _check_coverage(extents: list[tuple[int, int]], payload_len: int) -> None:
    """Sections must tile the payload exactly: no holes, no overlaps (as safetensors asks)."""
    pos = 0
    for off, length in sorted(extents):
        if off != pos:
            raise HeaderError(f"payload: section at {off} but previous ends at {pos} "
                              f"({'overlap' if off < pos else 'hole'})")
        pos = off + length
    if pos != payload_len:
        raise HeaderError(f"payload: sections cover {pos} B of {payload_len} B")


def _require(value: Any, typ: type, where: str) -> None:
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise HeaderError(f"{where}: got {type(value).__name__}, expected {typ.__name__}")


def _field(obj: dict, key: str, typ: type, where: str) -> Any:
    if key not in obj:
        raise HeaderError(f"{where}: missing field {key!r}")
    _require(obj[key], typ, f"{where}.{key}")
    return obj[key]
