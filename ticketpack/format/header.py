"""Strict parsing and validation of the artifact header (docs/FORMAT.md sections 2, 3 and 7).

Every field is checked for presence, type and range, every section for bounds and for a
declared raw size its tensor's shape allows, and the sections must tile the payload, all
before anything is decompressed or allocated from a declared size.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .eval_context import check_eval_context
from ..errors import HeaderError, LimitError, TicketpackError
from ..strict_json import loads_strict
from .constants import (DEFAULT_LAYOUT, ENTRY_KEYS_FROM_VERSION, FORMAT_VERSION, GAMMA_MODES,
                        INIT_RULES, INIT_RULES_BY_VERSION, INT8_ENCODING, LAYOUT_RANKS,
                        LAYOUTS_BY_VERSION, MASK_KINDS_BY_VERSION, MAX_INIT_STD, PG_RNG_PREFIX,
                        RNG_ID, SCALE_MODES, SECTION_CODECS, STD_FROM_ENTRY, TENSOR_KINDS, TENSOR_KINDS_BY_VERSION,
                        SYMBOL_ENCODINGS_BY_VERSION, SYMBOL_RAW_PER_ELEMENT, SYMBOL_RAW_SLACK,
                        VALUE_DTYPES, VALUE_ENCODINGS, Limits, symbol_encodings)
from .maskspec import MaskSpec

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_VALUE_SIZE = {enc: int(VALUE_DTYPES[enc][-1]) for enc in VALUE_ENCODINGS}


def load_json(hbytes: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN / Infinity / 1e400, no over-long integers."""
    return loads_strict(hbytes, "header", HeaderError)


def parse_header(hbytes: bytes, payload_len: int, limits: Limits,
                 version: int = FORMAT_VERSION) -> dict:
    """Decode and validate format-``version`` header bytes against the payload length and ``limits``."""
    header = load_json(hbytes)
    require(header, dict, "header")
    field(header, "seed", int, "header")
    if not 0 <= header["seed"] < 2**32:
        raise HeaderError(f"seed: got {header['seed']}, expected 0..2^32-1")
    rng_id = field(header, "rng", str, "header")
    if rng_id != RNG_ID and not rng_id.startswith(PG_RNG_PREFIX):
        raise HeaderError(f"rng: got {rng_id[:100]!r}, expected {RNG_ID!r} or "
                          f"{PG_RNG_PREFIX + '<torch version>'!r}")
    field(header, "config", dict, "header")
    for key in ("weights_sha256", "model_sha256") if version >= 2 else ("weights_sha256",):
        if not SHA256_HEX.fullmatch(field(header, key, str, "header")):
            raise HeaderError(f"{key}: got {header[key][:80]!r}, expected 64 lowercase hex digits")
    field(header, "provenance", dict, "header")
    if "eval" in header:
        check_eval_context(header["eval"])
    tensors = field(header, "tensors", list, "header")
    if len(tensors) > limits.max_tensors:
        raise LimitError(f"tensors: {len(tensors):,} entries, cap is {limits.max_tensors:,}")
    seen: set[str] = set()
    total = 0
    extents: list[tuple[int, int]] = []
    for i, t in enumerate(tensors):
        total = _check_tensor(t, i, seen, payload_len, limits, extents, total, version)
        if rng_id != RNG_ID and t.get("layout", DEFAULT_LAYOUT) != DEFAULT_LAYOUT:
            raise HeaderError(f"{t['name']}: layout {t['layout']!r} with rng {rng_id[:100]!r}, "
                              f"which allows only {DEFAULT_LAYOUT!r}")
    _check_coverage(extents, payload_len)
    return header


def _check_tensor(t: Any, i: int, seen: set, payload_len: int, limits: Limits,
                  extents: list, total: int, version: int) -> int:
    """Validate tensor entry ``i``; returns the running element total including it."""
    where = f"tensors[{i}]"
    require(t, dict, where)
    name = field(t, "name", str, where)
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
    kind = field(t, "kind", str, where)
    if kind not in TENSOR_KINDS_BY_VERSION[version]:
        raise HeaderError(f"{name}: kind {kind!r}, expected one of {', '.join(TENSOR_KINDS_BY_VERSION[version])}"
                          + (" (format version 1)" if kind in TENSOR_KINDS else ""))
    shape = field(t, "shape", list, where)
    if len(shape) > limits.max_rank:
        raise LimitError(f"{name}: rank {len(shape)}, cap is {limits.max_rank}")
    for d in shape:
        if type(d) is not int or not 0 <= d <= limits.max_dim:
            raise LimitError(f"{name}: dimension {d!r}, expected an integer 0..{limits.max_dim}")
    elements = math.prod(shape)
    if total + elements > limits.max_total_elements:  # before any size derived from the shape
        raise LimitError(f"tensors: {total + elements:,} elements in all (up to {name!r}), cap is "
                         f"{limits.max_total_elements:,} (raise Limits.max_total_elements; on the "
                         f"command line --max-elements or TICKETPACK_MAX_ELEMENTS)")
    _check_entry_keys(t, name, kind, version)
    roles = _check_kind_fields(t, name, kind, shape, version)
    sections = field(t, "sections", list, where)
    if len(sections) != len(roles):
        raise HeaderError(f"{name}: {len(sections)} sections, expected {len(roles)} ({', '.join(roles)})")
    got_roles = []
    for s in sections:
        _check_section(s, name, payload_len, extents, version)
        got_roles.append(s["role"])
    if sorted(got_roles) != sorted(roles):
        raise HeaderError(f"{name}: sections {got_roles}, expected {list(roles)}")
    for s in sections:
        _check_raw(s, name, roles[s["role"]], elements, version)
    return total + elements


# What a section holds: ("values", n) n floats; ("int8", n) n int8; ("symbols", what) mask
# levels or trits, ``what`` naming them for the v2 encoding table (symbol_encodings).
Content = tuple[str, Any]


def _check_raw(s: dict, name: str, content: Content, elements: int, version: int) -> None:
    """Check a section's encoding against what it holds and bound its declared raw size by the
    tensor's shape, before anything is decompressed."""
    role, enc, raw = s["role"], s["enc"], s["raw"]
    what, arg = content
    if what == "values":  # scales, gammas, plain data: exactly 2 (f16) or 4 (f32) B per value
        if enc not in VALUE_ENCODINGS or raw != _VALUE_SIZE[enc] * arg:
            raise HeaderError(f"{name}: section {role} is {enc!r} of {raw} B raw, expected 'f16' "
                              f"of {2 * arg} B or 'f32' of {4 * arg} B")
        return
    if what == "int8":
        if enc != INT8_ENCODING or raw != arg:
            raise HeaderError(f"{name}: section {role} is {enc!r} of {raw} B raw, expected "
                              f"{INT8_ENCODING!r} of {arg} B")
        return
    legal = symbol_encodings(version, arg)
    if enc not in legal:
        raise HeaderError(f"{name}: section {role} encoding {enc!r}, expected one of "
                          f"{', '.join(legal)}")
    bound = SYMBOL_RAW_PER_ELEMENT * elements + SYMBOL_RAW_SLACK
    if raw > bound:
        raise LimitError(f"{name}: section {role} declares {raw:,} B raw, at most {bound:,} B "
                         f"for {elements:,} elements")


def _check_kind_fields(t: dict, name: str, kind: str, shape: list, version: int) -> dict[str, Content]:
    """The section roles this kind needs and what each holds."""
    if kind == "plain":
        return {"data": ("values", math.prod(shape))}
    if kind == "int8":
        if not shape:
            raise HeaderError(f"{name}: int8 tensor of rank 0, expected rank >= 1 (a scale per row)")
        return {"q": ("int8", math.prod(shape)), "scale": ("values", shape[0])}
    if kind == "ternary":
        mode = field(t, "gamma", str, name)
        count = field(t, "gamma_count", int, name)
        ok = {"tensor": count == 1, "row": bool(shape) and count == shape[0],
              "shard": bool(shape) and 1 <= count <= shape[0] and shape[0] % count == 0}
        if mode not in GAMMA_MODES or not ok[mode]:
            raise HeaderError(f"{name}: gamma {mode!r} with {count} values does not fit shape {shape}")
        return {"trits": ("symbols", "trits"), "gamma": ("values", count)}
    init = field(t, "init", str, name)
    if init not in INIT_RULES_BY_VERSION[version]:
        raise HeaderError(f"{name}: init {init!r}, expected one of {', '.join(INIT_RULES_BY_VERSION[version])}"
                          + (f" (format version {version})" if init in INIT_RULES else ""))
    if not shape or math.prod(shape) == 0:
        raise HeaderError(f"{name}: masked tensor shape {shape}, expected non-empty")
    _check_init_std(t, name, init)
    _check_layout(t, name, shape, version)
    mask = field(t, "mask", str, name)
    try:
        spec = MaskSpec.parse(mask)
    except TicketpackError as exc:  # MaskSpec raises ConfigError: here it is a header error
        raise HeaderError(f"{name}: mask {mask[:100]!r} is not a valid mask kind ({exc})") from None
    if str(spec) != mask:
        raise HeaderError(f"{name}: mask {mask[:100]!r}, expected its canonical spelling {str(spec)!r}")
    if spec.kind not in MASK_KINDS_BY_VERSION[version]:
        raise HeaderError(f"{name}: mask {mask!r} in a format version {version} file, expected "
                          f"one of {', '.join(MASK_KINDS_BY_VERSION[version])} (mask {spec.kind} "
                          f"is a later format version)")
    if spec.kind == "nm" and shape[-1] % spec.m:
        raise HeaderError(f"{name}: mask {spec} on last dimension {shape[-1]}, expected a multiple "
                          f"of {spec.m}")
    scale = field(t, "scale", str, name)
    if scale not in SCALE_MODES:
        raise HeaderError(f"{name}: scale {scale!r}, expected none, tensor or row")
    roles: dict[str, Content] = {"mask": ("symbols", spec.kind)} if spec.stored else {}
    if scale != "none":
        roles["scale"] = ("values", 1 if scale == "tensor" else shape[0])
    return roles


def _check_entry_keys(t: dict, name: str, kind: str, version: int) -> None:
    """Keys a later version defines are refused in an older file (its readers would ignore them
    and compute other weights) and on kinds that do not take them."""
    for key, since in ENTRY_KEYS_FROM_VERSION.items():
        if key not in t:
            continue
        if version < since:
            raise HeaderError(f"{name}: key {key!r} in a format version {version} file, expected "
                              f"it only from version {since}")
        if kind != "masked":
            raise HeaderError(f"{name}: key {key!r} on a {kind} tensor, expected it only on "
                              f"masked tensors")


def _check_init_std(t: dict, name: str, init: str) -> None:
    """``init_std``: required by a rule whose std it is (a finite number in (0, 1e6]), else absent."""
    needs = INIT_RULES[init].fan == STD_FROM_ENTRY
    if not needs:
        if "init_std" in t:
            raise HeaderError(f"{name}: init_std with init {init!r}, expected it only with a rule "
                              f"that takes its std from the entry")
        return
    if "init_std" not in t:
        raise HeaderError(f"{name}: missing field 'init_std', required by init {init!r}")
    std = t["init_std"]
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not 0 < std <= MAX_INIT_STD:
        raise HeaderError(f"{name}.init_std: got {str(std)[:40]}, expected a number in "
                          f"(0, {MAX_INIT_STD:g}]")


def _check_layout(t: dict, name: str, shape: list, version: int) -> None:
    layout = t.get("layout", DEFAULT_LAYOUT)
    require(layout, str, f"{name}.layout")
    if layout not in LAYOUTS_BY_VERSION[version]:
        raise HeaderError(f"{name}: layout {layout[:40]!r}, expected one of "
                          f"{', '.join(LAYOUTS_BY_VERSION[version])}")
    lo, hi = LAYOUT_RANKS[layout]
    if len(shape) < lo or (hi is not None and len(shape) > hi):
        raise HeaderError(f"{name}: layout {layout!r} on rank {len(shape)}, expected rank {lo}..{hi or ''}")


def _check_section(s: Any, name: str, payload_len: int, extents: list, version: int) -> None:
    require(s, dict, f"{name} section")
    for key, typ in (("role", str), ("enc", str), ("codec", str), ("offset", int),
                     ("length", int), ("raw", int), ("crc", int)):
        field(s, key, typ, f"{name} section")
    if s["codec"] not in SECTION_CODECS:
        raise HeaderError(f"{name}: codec {s['codec']!r}, expected zstd, zlib or none")
    known = VALUE_ENCODINGS + SYMBOL_ENCODINGS_BY_VERSION[version] + (
        (INT8_ENCODING,) if version >= 2 else ())
    if s["enc"] not in known:
        raise HeaderError(f"{name}: encoding {s['enc']!r}, expected one of {', '.join(known)}")
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


def require(value: Any, typ: type, where: str) -> None:
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise HeaderError(f"{where}: got {type(value).__name__}, expected {typ.__name__}")


def field(obj: dict, key: str, typ: type, where: str) -> Any:
    if key not in obj:
        raise HeaderError(f"{where}: missing field {key!r}")
    require(obj[key], typ, f"{where}.{key}")
    return obj[key]
