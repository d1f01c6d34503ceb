"""The format's vocabulary, named once: every other module imports these names.

Magic and versions, header codecs, tensor kinds and the section roles of each kind,
encodings, scale / gamma modes, mask kinds, init rules with their fan rule, random
stream ids and Philox constants, and the reader's safety limits (docs/FORMAT.md).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Sequence

# ---------------------------------------------------------------- container
MAGIC = b"\x89TPK\r\n\x1a\n"
FORMAT_VERSION = 3  # what writers write
READ_VERSIONS = (1, 2, 3)  # what readers accept
PREFIX = struct.Struct("<8sHBBIIQ")  # magic, version, header codec, flags, stored, raw, payload
TRAILER = struct.Struct("<I")  # crc32 of everything before it
HEADER_CODECS = {0: "none", 1: "zlib", 2: "zstd"}  # prefix byte -> header compression
SECTION_CODECS = ("zstd", "zlib", "none")  # general-purpose compression around a section
WRITE_CODECS = ("auto",) + SECTION_CODECS  # what a writer may be asked for

# ---------------------------------------------------------------- tensors
TENSOR_KINDS = ("masked", "plain", "ternary", "int8")
TENSOR_KINDS_BY_VERSION = {1: TENSOR_KINDS[:3], 2: TENSOR_KINDS, 3: TENSOR_KINDS}
ROLES = ("mask", "scale", "data", "trits", "gamma", "q")
SCALE_MODES = ("none", "tensor", "row")
GAMMA_MODES = ("tensor", "row", "shard")
# none: every connection kept, no section; signed:K: levels -(K-1)..K-1 (v3)
MASK_KINDS = ("binary", "multibit", "nm", "none", "signed")
MASK_KINDS_BY_VERSION = {1: MASK_KINDS[:3], 2: MASK_KINDS[:4], 3: MASK_KINDS}
COUNTED_MASK_KINDS = ("multibit", "signed")  # spelled <kind>:K
MAX_MASK_LEVELS = 256  # levels are uint8
MAX_SIGNED_LEVELS = 128  # signed:K: symbols level + K - 1 in 0..2K-2 fit a byte
# Layouts: how a masked tensor's shape maps to fans (v3 key ``layout``, default out_in).
LAYOUTS = ("out_in", "in_out", "conv")
DEFAULT_LAYOUT = LAYOUTS[0]
# (lowest, highest) rank; out_in: any rank the reader's limits allow
LAYOUT_RANKS: dict[str, tuple[int, int | None]] = {"out_in": (1, None), "in_out": (2, 2), "conv": (3, 5)}
LAYOUTS_BY_VERSION = {1: LAYOUTS[:1], 2: LAYOUTS[:1], 3: LAYOUTS}
# Tensor-entry keys a version defines beyond its first: an older file holding one is refused
# (an older reader would ignore it and compute other weights).
ENTRY_KEYS_FROM_VERSION = {"layout": 3, "init_std": 3}
MAX_INIT_STD = 1e6

# ---------------------------------------------------------------- encodings
VALUE_ENCODINGS = ("f16", "f32")  # IEEE little-endian floats: scales, gammas, plain data
VALUE_DTYPES = {"f16": "<f2", "f32": "<f4"}
INT8_ENCODING = "i8"  # int8 weights: one signed byte per element
ADAPTER_DTYPES = ("f16", "int8")  # how a ticket stores trained adapters: plain f16, or int8 rows
PACKED_ENCODINGS = ("bits", "planes", "trits5")  # fixed-width symbol packings (outer-compressible)
V1_ENTROPY_ENCODINGS = ("ans0", "ansrow", "nm")  # constriction ANS streams: format v1 only
V2_ENTROPY_ENCODINGS = ("rans0", "ransrow", "ransnm")  # the format-defined rANS: from v2
SYMBOL_ENCODINGS_BY_VERSION = {1: PACKED_ENCODINGS + V1_ENTROPY_ENCODINGS,
                               2: PACKED_ENCODINGS + V2_ENTROPY_ENCODINGS,
                               3: PACKED_ENCODINGS + V2_ENTROPY_ENCODINGS}
# v2: the encodings legal for each symbol section, by what it holds (v1 allows any symbol
# encoding that can code the symbols).
V2_SYMBOL_ENCODINGS = {"binary": ("bits", "rans0", "ransrow"), "nm": ("bits", "rans0", "ransrow", "ransnm"),
                       "multibit": ("planes", "rans0"), "signed": ("planes", "rans0"),
                       "trits": ("trits5", "rans0")}
# From v3 every rANS stream of S symbols has at least min_lanes(S) lanes (bounded decode cost).
MIN_LANES_FROM_VERSION = 3
LANE_SYMBOLS_LOG2 = 12  # at most 2^12 symbols per lane (up to 2^24 symbols),
MIN_LANES_CAP = 1 << 12  # and never more than 2^12 lanes required


def min_lanes(n_symbols: int) -> int:
    """Lmin(S) = min(2^12, the smallest power of two >= ceil(S / 2^12))."""
    need = -(-n_symbols // (1 << LANE_SYMBOLS_LOG2))
    return min(MIN_LANES_CAP, 1 << max(need - 1, 0).bit_length())


def symbol_encodings(version: int, holds: str) -> tuple[str, ...]:
    """Encodings a section may use in format ``version`` for ``holds``: a mask kind
    (binary, nm, multibit) or "trits". v1 allows every v1 encoding that can code the symbols."""
    return SYMBOL_ENCODINGS_BY_VERSION[1] if version == 1 else V2_SYMBOL_ENCODINGS[holds]
# Declared raw size of a mask / trit section: no encoding needs more than this per element
# (plus a fixed slack for histograms), so a section can never make a reader decompress more.
SYMBOL_RAW_PER_ELEMENT = 8
SYMBOL_RAW_SLACK = 4096

# ---------------------------------------------------------------- random streams
RNG_ID = "philox4x32-10/v1"
PG_RNG_PREFIX = "torch-mt19937-cpu/"  # + torch version: imported parameter-golf tickets
PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # round multipliers
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # Weyl key increments
PHILOX_ROUNDS = 10
MAX_WORDS = 2**62  # implementation limit on word indices of one stream

# ---------------------------------------------------------------- init rules
# An init rule is a family (how a stream word becomes a value) and a fan rule (which fan
# sets the bound); every path (numpy, numba, torch, the CLI's --init, the exported loader)
# reads this table, so a rule of an existing family and fan rule is one row here.
INIT_FAMILIES = {"uniform": 6.0, "signed_constant": 2.0, "normal": 2.0}  # family -> numerator of sqrt(numerator / fan)
FAN_RULES = {"fan_in": (1, 0), "fan_out": (0, 1), "fan_in+fan_out": (1, 1)}  # fan = a * fan_in + b * fan_out
STD_FROM_ENTRY = "init_std"  # the "fan rule" of a rule whose std is the tensor entry's init_std


@dataclass(frozen=True)
class InitRule:
    """One init rule: values of ``family`` with the bound sqrt(numerator / fan), fan by ``fan``."""

    family: str  # a key of INIT_FAMILIES
    fan: str  # a key of FAN_RULES, or STD_FROM_ENTRY: the tensor entry's ``init_std`` is the std


INIT_RULES: dict[str, InitRule] = {
    "xavier_uniform": InitRule("uniform", "fan_in+fan_out"),
    "he_uniform": InitRule("uniform", "fan_in"),
    "signed_constant_xavier": InitRule("signed_constant", "fan_in+fan_out"),
    "signed_constant_he": InitRule("signed_constant", "fan_in"),
    "xavier_normal": InitRule("normal", "fan_in+fan_out"),
    "he_normal": InitRule("normal", "fan_in"),
    "normal_std": InitRule("normal", STD_FROM_ENTRY),
}
INIT_RULES_BY_VERSION = {1: tuple(INIT_RULES)[:4], 2: tuple(INIT_RULES)[:4], 3: tuple(INIT_RULES)}
# The normal family (v3): word w -> u1 = w & 0xFFFF, u2 = w >> 16, a = |u1 - u2| * 2^-16 in
# [0, 1); h = a * P(a) with P's float32 coefficients c1..c9 below, by Horner from c9, one
# float32 multiply and one float32 add per step (no fused multiply-add); value = float32(h *
# std), negated when u1 < u2. A fit of the quantile map of the triangular |u1 - u2| to the
# Gaussian's: exact Kolmogorov-Smirnov distance 9.8e-5 (bench/normal_ks.py).
NORMAL_POLY_BITS = (0x40225C21, 0xC0214869, 0x41A51139, 0xC2FD8B5A, 0x43E9BDA6,
                    0xC47C2672, 0x449D7861, 0xC452B743, 0x436A2C2B)  # c1 .. c9, float32 bits
NORMAL_POLY = tuple(struct.unpack("<f", struct.pack("<I", b))[0] for b in NORMAL_POLY_BITS)
# Named rule choices for a model's (linear layers, blocks.N.mlp.fc, tok_emb) weights, offered by
# ``train --init`` beside every rule name (which sets all three). signed-constant: the signed
# constant with fan_in on the MLP input layer, fan_in + fan_out elsewhere.
INIT_RECIPES = {
    "xavier": ("xavier_uniform",) * 3,
    "he": ("he_uniform",) * 3,
    "signed-constant": ("signed_constant_xavier", "signed_constant_he", "signed_constant_xavier"),
}


def fans(shape: Sequence[int], layout: str = DEFAULT_LAYOUT) -> tuple[int, int]:
    """(fan_in, fan_out) of a shape (d0, d1, ...) under ``layout``:
    out_in: (d1 * d2 * ..., d0) (rank 1: (1, d0)); in_out (rank 2): (d0, d1);
    conv (rank 3..5): (d1 * r, d0 * r), r = d2 * d3 * ... the receptive field."""
    if layout == "in_out":
        return shape[0], shape[1]
    if layout == "conv":
        field = math.prod(shape[2:])
        return shape[1] * field, shape[0] * field
    return math.prod(shape[1:]), shape[0]


def init_bound(rule: str, shape: Sequence[int], layout: str = DEFAULT_LAYOUT,
               init_std: float | None = None) -> float:
    """float64 uniform bound b (sqrt(6 / fan)), signed constant c (sqrt(2 / fan)) or normal std
    (sqrt(2 / fan), or ``init_std`` for normal_std) of ``rule``."""
    row = INIT_RULES[rule]
    if row.fan == STD_FROM_ENTRY:
        return float(init_std)
    fan_in, fan_out = fans(shape, layout)
    a, b = FAN_RULES[row.fan]
    return math.sqrt(INIT_FAMILIES[row.family] / (a * fan_in + b * fan_out))


# ---------------------------------------------------------------- digests
MODEL_DIGEST_TAG = b"ticketpack/model-sha256/v2\x00"  # first bytes hashed into model_sha256

# ---------------------------------------------------------------- limits
@dataclass(frozen=True)
class Limits:
    """Safety caps a reader checks before any allocation; raise them for very large models."""

    max_file_bytes: int = 4 * 2**30
    max_header_bytes: int = 16 * 2**20
    max_tensors: int = 100_000
    max_rank: int = 8
    max_dim: int = 2**31
    max_total_elements: int = 2**28  # loading costs ~10 B per element: ~2.7 GB at the cap
    max_name_bytes: int = 1024


DEFAULT_LIMITS = Limits()
