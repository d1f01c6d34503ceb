"""Import a parameter-golf lottery-ticket artifact into a ticketpack ticket.

The source layout (one zlib stream, integers little-endian)::

    u32 seed | u32 L | mask section (L bytes) | scales: a torch.save dict name -> float tensor
    mask section: u32 count, then per mask: u32 name length, UTF-8 name (``X.mask_scores``),
                  u32 ndim, ndim x u32 dims, u32 packed length, bits (LSB first, row-major)

The file is treated as hostile: the inflated size is capped, every length is checked against
the bytes that remain, padding bits must be zero, and the scales are read with torch's
``weights_only`` unpickler from a zip whose entries must all be stored uncompressed, then
checked to be a dict of str -> float tensors. No other object is ever built from the file.

The frozen weights of such a ticket come from torch's CPU MT19937 generator, not from
ticketpack's Philox stream, so the ticket records its own RNG id (``RNG_PREFIX`` + the torch
version) and ``mt19937_frozen_weights`` regenerates them in the documented order: one
``torch.Generator`` seeded with the seed, ``tok_emb.weight`` first, then every other frozen
weight in sorted name order, each ``uniform_(-b, b)`` in float32 (docs/FORMAT.md section 4.1).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import (ArtifactError, ConfigError, DecodeError, HeaderError, LimitError, TruncatedError,
                      UsageError)
from ..format.constants import PG_RNG_PREFIX
from ..format.compression import inflate_bounded
from ..format.maskspec import MaskSpec
from ..format.tensors import MaskedTensor, PlainTensor, Ticket, register_stream
from ..provenance import default_provenance
from ..models.gpt_config import DEFAULT_MODEL_LIMITS, ModelLimits, config_from_preset
from ..strict_json import loads_strict

RNG_PREFIX = PG_RNG_PREFIX
MASK_SUFFIX = ".mask_scores"
EMBEDDING = "tok_emb.weight"  # drawn first; every other frozen weight follows in sorted order
# ARCH.json keys and the submission's defaults for them
ARCH_DEFAULTS: dict[str, Any] = dict(vocab_size=1024, num_layers=16, model_dim=1024, num_heads=8,
                                     num_kv_heads=4, mlp_mult=2, tie_embeddings=True,
                                     logit_softcap=30.0, rope_base=10000.0)
# float dtypes a scale may have, all stored exactly (bf16 widens to f32 without rounding)
SCALE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_SCALE_RANK = 8


@dataclass(frozen=True)
class PgLimits:
    """Safety caps of the reader (defaults fit models ~20x the submission's 118M bits)."""

    max_file_bytes: int = 1 << 30
    max_raw_bytes: int = 1 << 30  # inflated size of the zlib stream
    max_masks: int = 100_000
    max_rank: int = 8
    max_name_bytes: int = 1024
    max_scales: int = 100_000
    max_total_elements: int = 2**28  # mask bits and scale values together, checked before unpacking


DEFAULT_PG_LIMITS = PgLimits()


@dataclass
class PgArtifact:
    """The decoded contents of a parameter-golf lottery-ticket artifact."""

    seed: int
    masks: dict[str, np.ndarray]  # name as stored (X.mask_scores) -> uint8 0/1 bits, file order
    scales: dict[str, torch.Tensor]  # name -> float32 / float16 / bfloat16 CPU tensor


# ---------------------------------------------------------------- writing the source layout

def encode_pg_artifact(seed: int, masks: dict[str, np.ndarray],
                       scales: dict[str, torch.Tensor] | None = None, level: int = 9) -> bytes:
    """The parameter-golf layout, the reverse of ``parse_pg_bytes`` (benchmarks, round trips).

    ``masks``: record name (``<module>.mask_scores``) -> 0/1 array, written in this order;
    ``scales``: torch-saved after the mask section (nothing when None); zlib at ``level``.
    """
    section = bytearray(len(masks).to_bytes(4, "little"))
    for name, bits in masks.items():
        raw = name.encode("utf-8")
        packed = np.packbits(bits.reshape(-1), bitorder="little").tobytes()
        section += len(raw).to_bytes(4, "little") + raw + bits.ndim.to_bytes(4, "little")
        section += b"".join(int(d).to_bytes(4, "little") for d in bits.shape)
        section += len(packed).to_bytes(4, "little") + packed
    blob = b""
    if scales is not None:
        buf = io.BytesIO()
        torch.save(scales, buf)
        blob = buf.getvalue()
    body = seed.to_bytes(4, "little") + len(section).to_bytes(4, "little") + bytes(section) + blob
    return zlib.compress(body, level)


# ---------------------------------------------------------------- reading the source layout

def read_pg_artifact(path: str | os.PathLike, limits: PgLimits = DEFAULT_PG_LIMITS) -> PgArtifact:
    """Read and validate a parameter-golf lottery-ticket artifact file."""
    return parse_pg_bytes(_read_file(path, limits.max_file_bytes), limits)


def parse_pg_bytes(data: bytes, limits: PgLimits = DEFAULT_PG_LIMITS) -> PgArtifact:
    """Parse the zlib-compressed bytes of a parameter-golf lottery-ticket artifact."""
    raw = _inflate(data, limits.max_raw_bytes)
    cur = _Cursor(raw, "pg artifact")
    seed = cur.u32("seed")
    length = cur.u32("mask section length")
    masks = _parse_masks(cur.take(length, "mask section"), limits)
    budget = limits.max_total_elements - sum(m.size for m in masks.values())
    scales = _parse_scales(raw[cur.pos:], limits, budget)
    return PgArtifact(seed=seed, masks=masks, scales=scales)


def _read_file(path: str | os.PathLike, cap: int) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"pg artifact: no such file {str(p)!r}")
    try:
        with open(p, "rb") as fh:  # at most cap + 1 bytes, even if the file grows meanwhile
            data = fh.read(cap + 1)
    except OSError as exc:
        raise ArtifactError(f"pg artifact {str(p)!r}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise LimitError(f"pg artifact: file exceeds the cap of {cap:,} B")
    return data


def _inflate(data: bytes, cap: int) -> bytes:
    """Decompress one zlib stream, producing at most ``cap`` bytes; refuse trailing bytes."""
    try:
        inflated = inflate_bounded(data, cap)
    except zlib.error as exc:
        raise DecodeError(f"pg artifact: not a valid zlib stream ({exc})") from None
    if len(inflated.data) > cap:
        raise LimitError(f"pg artifact: zlib stream inflates past the cap of {cap:,} B")
    if not inflated.complete:
        raise TruncatedError(f"pg artifact: zlib stream is truncated ({len(data):,} B read)")
    if inflated.trailing:
        raise DecodeError(f"pg artifact: {inflated.trailing:,} B of trailing data "
                          f"after the zlib stream, expected none")
    return inflated.data


class _Cursor:
    """Reads little-endian fields from a buffer, checking each against the bytes left."""

    def __init__(self, buf: bytes, what: str) -> None:
        self.buf, self.pos, self.what = buf, 0, what

    @property
    def left(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int, field: str) -> bytes:
        if n > self.left:
            raise TruncatedError(f"{self.what}: {field} needs {n:,} B, {self.left:,} B left")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")


def _parse_masks(section: bytes, limits: PgLimits) -> dict[str, np.ndarray]:
    cur = _Cursor(section, "mask section")
    count = cur.u32("mask count")
    if count > limits.max_masks:
        raise LimitError(f"mask section: {count:,} masks, cap is {limits.max_masks:,}")
    masks: dict[str, np.ndarray] = {}
    elements = 0
    for i in range(count):
        name, bits = _parse_mask(cur, i, limits, limits.max_total_elements - elements)
        elements += bits.size
        if name in masks:
            raise HeaderError(f"mask section: duplicate mask name {name!r}")
        masks[name] = bits
    if cur.left:
        raise DecodeError(f"mask section: {cur.left:,} B after the last of {count} masks, expected 0")
    return masks


def _parse_mask(cur: _Cursor, i: int, limits: PgLimits, left: int) -> tuple[str, np.ndarray]:
    n = cur.u32(f"mask {i} name length")
    if not 1 <= n <= limits.max_name_bytes:
        raise LimitError(f"mask {i}: name length {n}, expected 1..{limits.max_name_bytes}")
    try:
        name = cur.take(n, f"mask {i} name").decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError(f"mask {i}: name is not valid UTF-8") from None
    ndim = cur.u32(f"{name} ndim")
    if not 1 <= ndim <= limits.max_rank:
        raise LimitError(f"{name}: ndim {ndim}, expected 1..{limits.max_rank}")
    shape = tuple(cur.u32(f"{name} dim {d}") for d in range(ndim))
    if 0 in shape:
        raise HeaderError(f"{name}: shape {shape}, expected positive dimensions")
    elements = math.prod(shape)
    if elements > left:  # before the bits are unpacked (8x the packed bytes)
        raise LimitError(f"{name}: {elements:,} mask elements exceed what the element cap of "
                         f"{limits.max_total_elements:,} leaves ({left:,})")
    packed = cur.u32(f"{name} packed length")
    if packed != (elements + 7) // 8:
        raise DecodeError(f"{name}: packed length {packed:,} B, shape {shape} needs "
                          f"{(elements + 7) // 8:,} B")
    raw = np.frombuffer(cur.take(packed, f"{name} bits"), dtype=np.uint8)
    if elements % 8 and raw[-1] >> (elements % 8):
        raise DecodeError(f"{name}: padding bits of the last byte are {int(raw[-1]) >> (elements % 8):#x}, "
                          f"expected 0")
    bits = np.unpackbits(raw, count=elements, bitorder="little").reshape(shape)
    return name, bits


def _parse_scales(blob: bytes, limits: PgLimits, budget: int) -> dict[str, torch.Tensor]:
    """torch.save dict -> tensors, through torch's weights_only unpickler only; ``budget``:
    the scale values the element cap leaves."""
    _check_stored_zip(blob)
    try:
        with warnings.catch_warnings():  # the library never prints; failures become errors
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch raises on hostile bytes is a decode error
        raise DecodeError(f"scales: not a weights-only torch.save dict ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:160]})") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"scales: torch.save holds {type(obj).__name__}, expected a dict")
    if len(obj) > limits.max_scales:
        raise LimitError(f"scales: {len(obj):,} entries, cap is {limits.max_scales:,}")
    for k, v in obj.items():  # shapes, dtypes and storage first: nothing is materialised yet
        budget -= _check_scale_view(_scale_name(k), v)
        if budget < 0:
            raise LimitError(f"scales: {k[:80]!r} takes the elements past the cap of "
                             f"{limits.max_total_elements:,}")
    scales = {k: v.detach().contiguous() for k, v in obj.items()}
    for k, v in scales.items():
        if not bool(torch.isfinite(v).all()):
            raise DecodeError(f"scales: {k[:80]!r} holds a non-finite value, expected finite scales")
    return scales


def _check_stored_zip(blob: bytes) -> None:
    """torch.save writes a zip of stored entries; refuse anything else (no inflate bombs)."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DecodeError(f"scales: not a torch.save zip archive ({exc})") from None
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(blob):
            raise DecodeError(f"scales: zip entry {info.filename[:80]!r} is compressed or larger "
                              f"than the section, expected stored entries")


def _scale_name(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise DecodeError(f"scales: key {str(key)[:80]!r} ({type(key).__name__}), expected a name")
    return key


def _check_scale_view(name: str, value: Any) -> int:
    """A scale's declared dtype, rank and storage, read from the tensor's metadata only: its
    elements must lie inside its own storage, densely (no expanded or overlapping view, which
    would make a few stored bytes stand for any number of values). Returns its element count."""
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided or value.is_quantized:
        raise DecodeError(f"scales: {name!r} is {type(value).__name__}, expected a dense tensor")
    if value.dtype not in SCALE_DTYPES:
        raise DecodeError(f"scales: {name!r} has dtype {value.dtype}, expected float32, float16 or bfloat16")
    if value.dim() > MAX_SCALE_RANK:
        raise LimitError(f"scales: {name!r} has rank {value.dim()}, expected at most {MAX_SCALE_RANK}")
    shape, stride = list(value.shape), list(value.stride())
    count = math.prod(shape)
    dense = sorted((st, d) for st, d in zip(stride, shape) if d > 1)
    step = 1
    for st, d in dense:  # strides of a permuted dense layout: each is the product of the smaller
        if st != step:
            raise DecodeError(f"scales: {name!r} is a view with shape {tuple(shape)} and strides "
                              f"{tuple(stride)} (expanded or overlapping), expected dense values")
        step *= d
    end = (value.storage_offset() + count) * value.element_size()
    if count and end > value.untyped_storage().nbytes():
        raise DecodeError(f"scales: {name!r} needs {end:,} B of storage, it holds "
                          f"{value.untyped_storage().nbytes():,} B")
    return count


# ---------------------------------------------------------------- architecture

MAX_ARCH_BYTES = 1 << 20  # ARCH.json: a few hundred bytes of keys


def load_arch(path: str | os.PathLike) -> dict[str, Any]:
    """ARCH.json: a JSON object of the submission's architecture keys."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"config: no such file {str(p)!r}")
    try:
        with open(p, "rb") as fh:  # read no further than the cap: the file may be huge
            text = fh.read(MAX_ARCH_BYTES + 1)
        if len(text) > MAX_ARCH_BYTES:
            raise ConfigError(f"config {str(p)!r}: more than {MAX_ARCH_BYTES:,} bytes, expected a small "
                              f"JSON object of architecture keys")
        arch = loads_strict(text, f"config {str(p)!r}", ConfigError)
    except OSError as exc:
        raise ConfigError(f"config {str(p)!r}: not a readable JSON file ({exc})") from None
    if not isinstance(arch, dict):
        raise ConfigError(f"config {str(p)!r}: {type(arch).__name__}, expected a JSON object")
    return arch


def arch_config(arch: dict[str, Any] | None = None, limits: ModelLimits = DEFAULT_MODEL_LIMITS):
    """The built-in GPTConfig that expresses the submission's architecture exactly
    (validated and bounded by ``limits`` before any model is built)."""
    arch = dict(arch or {})
    unknown = sorted(set(arch) - set(ARCH_DEFAULTS), key=str)
    if unknown:
        raise ConfigError(f"config: unknown key {unknown[0][:80]!r}, expected one of {', '.join(ARCH_DEFAULTS)}")
    return config_from_preset("pg-lth", limits, **{**ARCH_DEFAULTS, **arch})


def _layout(config) -> tuple[list[tuple[str, tuple[int, ...], str]], list[tuple[str, tuple[int, ...]]]]:
    """(masked (name, shape, init) in registration order, plain (name, shape)) of the model."""
    from ..nn.layers import masked_layers
    from ..models.gpt_model import GPT

    with torch.device("meta"):  # names and shapes only: no memory, no init cost
        model = GPT(config, masked=True)
    masked, owned = [], set()
    for path, layer in masked_layers(model):
        masked.append((f"{path}.weight", tuple(layer.shape), layer.init))
        owned.update(f"{path}.{p}" for p, _ in layer.named_parameters(recurse=False))
    plain = [(n, tuple(p.shape)) for n, p in model.named_parameters() if n not in owned]
    return masked, plain


# ---------------------------------------------------------------- the ticket

def import_pg(path: str | os.PathLike, arch: dict[str, Any] | None = None,
              limits: PgLimits = DEFAULT_PG_LIMITS,
              model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> Ticket:
    """A ticket with the artifact's seed, masks and scales, regenerated with torch MT19937."""
    data = _read_file(path, limits.max_file_bytes)
    config = arch_config(arch, model_limits)
    pg = parse_pg_bytes(data, limits)
    source = {"format": "parameter-golf lottery ticket", "file": os.path.basename(os.fspath(path)),
              "sha256": hashlib.sha256(data).hexdigest(), "arch": dict(arch or {})}
    return ticket_from_pg(pg, config, default_provenance({"import": source}))


def ticket_from_pg(pg: PgArtifact, config, provenance: dict | None = None) -> Ticket:
    """Map a parsed artifact onto the model's tensors: masks -> binary masks, scales -> plain."""
    masked, plain = _layout(config)
    binary = MaskSpec.parse("binary")
    masks = {_weight_name(k): v for k, v in pg.masks.items()}
    _check_names("masks", set(masks), {n for n, _, _ in masked})
    _check_names("scales", set(pg.scales), {n for n, _ in plain})
    tensors: list = []
    for name, shape, init in masked:
        _check_shape(name, tuple(masks[name].shape), shape)
        tensors.append(MaskedTensor(name, shape, init, binary, masks[name]))
    for name, shape in plain:
        _check_shape(name, tuple(pg.scales[name].shape), shape)
        tensors.append(PlainTensor(name, _exact_numpy(pg.scales[name])))
    return Ticket(seed=pg.seed, config=config.to_dict(), tensors=tensors, rng=rng_id(),
                  provenance=provenance or default_provenance())


def rng_id() -> str:
    """This torch's MT19937 stream id, e.g. ``torch-mt19937-cpu/2.13.0``."""
    return RNG_PREFIX + torch.__version__.split("+")[0]


def _weight_name(mask_name: str) -> str:
    if not mask_name.endswith(MASK_SUFFIX):
        raise HeaderError(f"mask name {mask_name[:100]!r}, expected a name ending in {MASK_SUFFIX!r}")
    return mask_name[:-len(MASK_SUFFIX)] + ".weight"


def _check_names(what: str, got: set[str], expected: set[str]) -> None:
    missing, extra = sorted(expected - got), sorted(got - expected)
    if missing or extra:
        raise ConfigError(f"{what}: the artifact does not fit the architecture (missing "
                          f"{missing[:3]}, unexpected {extra[:3]}); check --config")


def _check_shape(name: str, got: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if got != expected:
        raise ConfigError(f"{name}: shape {got} in the artifact, the architecture expects "
                          f"{expected}; check --config")


def _exact_numpy(t: torch.Tensor) -> np.ndarray:
    """float16 stays float16; float32 and bfloat16 become float32 (exact in both cases)."""
    if t.dtype == torch.float16:
        return t.numpy().copy()
    return t.to(torch.float32).numpy().copy()


# ---------------------------------------------------------------- the frozen weights

def mt_bound(init: str, shape: Sequence[int]) -> float:
    """uniform_ bound of the documented rules, computed as the submission computes it."""
    fan_out, fan_in = shape
    if init == "xavier_uniform":
        return math.sqrt(3.0) * math.sqrt(2.0 / (fan_in + fan_out))
    if init == "he_uniform":
        return math.sqrt(6.0 / fan_in)
    raise HeaderError(f"init: {init!r} is not defined for the {RNG_PREFIX}* stream, "
                      f"expected xavier_uniform or he_uniform")


def mt19937_order(names: Sequence[str]) -> list[str]:
    """The draw order: tok_emb.weight first, then every other name in sorted order."""
    return ([EMBEDDING] if EMBEDDING in names else []) + sorted(n for n in names if n != EMBEDDING)


def mt19937_frozen_weights(seed: int, tensors: Sequence[MaskedTensor]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, frozen float32 weight) of every masked tensor, in draw order, from one generator."""
    by_name = {t.name: t for t in tensors}
    for t in tensors:
        if len(t.shape) != 2:
            raise HeaderError(f"{t.name}: shape {t.shape}, the {RNG_PREFIX}* stream defines 2-D weights only")
        mt_bound(t.init, t.shape)  # refuse unknown rules before drawing anything
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    for name in mt19937_order(list(by_name)):
        t = by_name[name]
        w = torch.empty(t.shape, dtype=torch.float32)
        w.uniform_(-mt_bound(t.init, t.shape), mt_bound(t.init, t.shape), generator=gen)
        yield name, w.numpy()


# ---------------------------------------------------------------- the command

register_stream(RNG_PREFIX, mt19937_frozen_weights)
