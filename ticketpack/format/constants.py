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
FORMAT_VERSION = 2  # what writers write
READ_VERSIONS = (1, 2)  # what readers accept
PREFIX = struct.Struct("<8sHBBIIQ")  # magic, version, header codec, flags, stored, raw, payload
TRAILER = struct.Struct("<I")  # crc32 of everything before it
HEADER_CODECS = {0: "none", 1: "zlib", 2: "zstd"}  # prefix byte -> header compression
SECTION_CODECS = ("zstd", "zlib", "none")  # general-purpose compression around a section
WRITE_CODECS = ("auto",) + SECTION_CODECS  # what a writer may be asked for

# ---------------------------------------------------------------- tensors
TENSOR_KINDS = ("masked", "plain", "ternary", "int8")
TENSOR_KINDS_BY_VERSION = {1: TENSOR_KINDS[:3], 2: TENSOR_KINDS}
ROLES = ("mask", "scale", "data", "trits", "gamma", "q")
SCALE_MODES = ("none", "tensor", "row")
GAMMA_MODES = ("tensor", "row", "shard")
MASK_KINDS = ("binary", "multibit", "nm", "none")  # none: every connection kept, no section
MAX_MASK_LEVELS = 256  # levels are uint8

# ---------------------------------------------------------------- encodings
VALUE_ENCODINGS = ("f16", "f32")  # IEEE little-endian floats: scales, gammas, plain data
VALUE_DTYPES = {"f16": "<f2", "f32": "<f4"}
INT8_ENCODING = "i8"  # int8 weights: one signed byte per element
ADAPTER_DTYPES = ("f16", "int8")  # how a ticket stores trained adapters: plain f16, or int8 rows
PACKED_ENCODINGS = ("bits", "planes", "trits5")  # fixed-width symbol packings (outer-compressible)
V1_ENTROPY_ENCODINGS = ("ans0", "ansrow", "nm")  # constriction ANS streams: format v1 only
V2_ENTROPY_ENCODINGS = ("rans0", "ransrow", "ransnm")  # the format-defined rANS: from v2
SYMBOL_ENCODINGS_BY_VERSION = {1: PACKED_ENCODINGS + V1_ENTROPY_ENCODINGS,
                               2: PACKED_ENCODINGS + V2_ENTROPY_ENCODINGS}
# v2: the encodings legal for each symbol section, by what it holds (v1 allows any symbol
# encoding that can code the symbols).
V2_SYMBOL_ENCODINGS = {"binary": ("bits", "rans0", "ransrow"), "nm": ("bits", "rans0", "ransrow", "ransnm"),
                       "multibit": ("planes", "rans0"), "trits": ("trits5", "rans0")}


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
INIT_FAMILIES = {"uniform": 6.0, "signed_constant": 2.0}  # family -> numerator of sqrt(numerator / fan)
FAN_RULES = {"fan_in": (1, 0), "fan_out": (0, 1), "fan_in+fan_out": (1, 1)}  # fan = a * fan_in + b * fan_out


@dataclass(frozen=True)
class InitRule:
    """One init rule: values of ``family`` with the bound sqrt(numerator / fan), fan by ``fan``."""

    family: str  # a key of INIT_FAMILIES
    fan: str  # a key of FAN_RULES


INIT_RULES: dict[str, InitRule] = {
    "xavier_uniform": InitRule("uniform", "fan_in+fan_out"),
    "he_uniform": InitRule("uniform", "fan_in"),
    "signed_constant_xavier": InitRule("signed_constant", "fan_in+fan_out"),
    "signed_constant_he": InitRule("signed_constant", "fan_in"),
}
# Named rule choices for a model's (linear layers, blocks.N.mlp.fc, tok_emb) weights, offered by
# ``train --init`` beside every rule name (which sets all three). signed-constant: the signed
# constant with fan_in on the MLP input layer, fan_in + fan_out elsewhere.
INIT_RECIPES = {
    "xavier": ("xavier_uniform",) * 3,
    "he": ("he_uniform",) * 3,
    "signed-constant": ("signed_constant_xavier", "signed_constant_he", "signed_constant_xavier"),
}


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """The fan rule: (fan_in, fan_out) of (d0, d1, ...) is (d1 * d2 * ..., d0); rank 1: (1, d0)."""
    return math.prod(shape[1:]), shape[0]


def init_bound(rule: str, shape: Sequence[int]) -> float:
    """float64 uniform bound b (sqrt(6 / fan)) or signed constant c (sqrt(2 / fan)) of ``rule``."""
    row = INIT_RULES[rule]
    fan_in, fan_out = fans(shape)
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
