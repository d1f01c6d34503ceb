"""The format-defined frozen-weight stream (``philox4x32-10/v1``) and init rules, in numpy.

Every frozen weight is regenerated from a 32-bit seed, the tensor's name and an init
rule, bit for bit, on any machine (docs/FORMAT.md section 4):

    stream_id(name) = the first 8 bytes of SHA-256(UTF-8 name), a little-endian u64 ``sid``.
    Word j of stream (seed, sid) is lane j % 4 of Philox4x32-10 (Salmon et al. 2011) with
        key = (seed, 0), counter = (b & 0xffffffff, b >> 32, sid & 0xffffffff, sid >> 32),
        b = j // 4. Element j of a tensor, row-major, uses word j.
    uniform(-b, b): k = 2 * (w >> 8) - (2**24 - 1); value = float32(k) * float32(b * 2**-24).
    signed constant: +c if w >> 31 == 0 else -c, c = float32(sqrt(2 / fan)).
    normal (format v3): u1 = w & 0xFFFF, u2 = w >> 16, a = float32(|u1 - u2|) * 2**-16;
        h = a * P(a) (float32 Horner over constants.NORMAL_POLY, no fused multiply-add);
        value = float32(h * std), negated when u1 < u2.

``frozen_weight`` / ``fill_values`` run numba kernels (``philox_numba``) when numba is
importable and a vectorised numpy path otherwise: the same bits either way.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from ..errors import UsageError
from .constants import (DEFAULT_LAYOUT, INIT_RULES, LAYOUT_RANKS, MAX_INIT_STD, MAX_WORDS,
                        NORMAL_POLY, PHILOX_M, PHILOX_ROUNDS, PHILOX_W, STD_FROM_ENTRY)
from .constants import fans as _fans
from .constants import init_bound as _init_bound

try:  # the fast path is optional: without numba the numpy path gives the same bits
    from . import philox_numba as _fast
except ImportError:
    _fast = None

_MASK32 = 0xFFFFFFFF
_U24_OFFSET = 2**24 - 1
_NORMAL_POLY32 = tuple(np.float32(c) for c in NORMAL_POLY)
_HALF_SCALE = np.float32(2.0**-16)
_NUMPY_CHUNK_BLOCKS = 1 << 16  # blocks per numpy step: bounds the (n, 4) uint64 temporaries

# ----------------------------------------------------------------------------- checks


def _check_int(field: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{field}: got {value!r}, expected an integer in {lo}..{hi}")
    if not lo <= int(value) <= hi:
        raise UsageError(f"{field}: got {int(value)}, expected an integer in {lo}..{hi}")
    return int(value)


def check_seed(seed: object) -> int:
    return _check_int("seed", seed, 0, _MASK32)


def check_shape(shape: object) -> tuple[int, ...]:
    """A non-empty tuple of positive integers (a frozen weight has at least one element)."""
    if isinstance(shape, (int, np.integer)) or not isinstance(shape, Sequence) or len(shape) == 0:
        raise UsageError(f"shape: got {shape!r}, expected a non-empty tuple of positive integers")
    dims = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or int(d) < 1:
            raise UsageError(f"shape: got {tuple(shape)!r}, expected a non-empty tuple of positive integers")
        dims.append(int(d))
    if math.prod(dims) > MAX_WORDS:
        raise UsageError(f"shape: got {tuple(dims)} ({math.prod(dims)} elements), expected at most {MAX_WORDS}")
    return tuple(dims)


def is_uniform(rule: str) -> bool:
    """Whether ``rule`` is of the uniform family."""
    return INIT_RULES[rule].family == "uniform"


def family(rule: str) -> str:
    """The family of ``rule``: how a stream word becomes a value."""
    return INIT_RULES[rule].family


def check_rule(rule: object) -> str:
    if rule not in INIT_RULES:
        raise UsageError(f"init_rule: got {rule!r}, expected one of {', '.join(INIT_RULES)}")
    return rule


def check_layout(layout: object, shape: Sequence[int]) -> str:
    """A known layout whose rank range holds ``shape``."""
    if layout not in LAYOUT_RANKS:
        raise UsageError(f"layout: got {layout!r}, expected one of {', '.join(LAYOUT_RANKS)}")
    lo, hi = LAYOUT_RANKS[layout]
    if len(shape) < lo or (hi is not None and len(shape) > hi):
        raise UsageError(f"layout: {layout} needs rank {lo}..{hi or ''}, got shape {tuple(shape)}")
    return layout


def check_init_std(rule: str, init_std: object) -> float | None:
    """``init_std`` must be given (finite, > 0, <= 1e6) exactly when ``rule`` takes it."""
    needs = INIT_RULES[rule].fan == STD_FROM_ENTRY
    if not needs:
        if init_std is not None:
            raise UsageError(f"init_std: given for init {rule!r}, which computes its own")
        return None
    ok = isinstance(init_std, (int, float, np.floating)) and not isinstance(init_std, bool)
    if not ok or not (math.isfinite(init_std) and 0 < init_std <= MAX_INIT_STD):
        raise UsageError(f"init_std: got {init_std!r} for init {rule!r}, expected a finite "
                         f"number in (0, {MAX_INIT_STD:g}]")
    return float(init_std)


# ----------------------------------------------------------------------------- names, fans, bounds


def stream_id(name: str) -> int:
    """First 8 bytes of SHA-256(UTF-8 name) as a little-endian uint64."""
    if not isinstance(name, str):
        raise UsageError(f"name: got {type(name).__name__}, expected str")
    try:
        data = name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"name: got {name!r}, expected text encodable as UTF-8") from None
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little")


def fans(shape: Sequence[int], layout: str = DEFAULT_LAYOUT) -> tuple[int, int]:
    """(fan_in, fan_out) of a shape under ``layout`` (out_in: fan_out = d0, fan_in = d1 * d2 * ...)."""
    shape = check_shape(shape)
    return _fans(shape, check_layout(layout, shape))


def init_bound(rule: str, shape: Sequence[int], layout: str = DEFAULT_LAYOUT,
               init_std: float | None = None) -> float:
    """The uniform bound b, the signed constant c or the normal std of ``rule``, in float64."""
    shape, rule = check_shape(shape), check_rule(rule)
    return _init_bound(rule, shape, check_layout(layout, shape), check_init_std(rule, init_std))


def value_scale(rule: str, shape: Sequence[int], layout: str = DEFAULT_LAYOUT,
                init_std: float | None = None) -> np.float32:
    """float32(b * 2**-24) for a uniform rule, float32(c) for a signed constant, float32(std)
    for a normal rule."""
    bound = init_bound(rule, shape, layout, init_std)
    return np.float32(bound * 2.0**-24) if is_uniform(rule) else np.float32(bound)


# ----------------------------------------------------------------------------- numpy path


def philox4x32_10(counter: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox4x32-10 of each row of ``counter`` (uint32, shape (n, 4)) under ``key``."""
    counter = np.asarray(counter)
    if counter.ndim != 2 or counter.shape[1] != 4:
        raise UsageError(f"counter: got shape {counter.shape}, expected (n, 4)")
    k0, k1 = (_check_int("key", k, 0, _MASK32) for k in key)
    c0, c1, c2, c3 = (counter[:, i].astype(np.uint64) for i in range(4))
    m0, m1, mask, s32 = np.uint64(PHILOX_M[0]), np.uint64(PHILOX_M[1]), np.uint64(_MASK32), np.uint64(32)
    for _ in range(PHILOX_ROUNDS):
        p0, p1 = m0 * c0, m1 * c2  # 32x32 -> 64-bit products, exact in uint64
        c0, c1, c2, c3 = (p1 >> s32) ^ c1 ^ np.uint64(k0), p1 & mask, (p0 >> s32) ^ c3 ^ np.uint64(k1), p0 & mask
        k0, k1 = (k0 + PHILOX_W[0]) & _MASK32, (k1 + PHILOX_W[1]) & _MASK32
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


def _check_range(seed: object, sid: object, start: object, count: object) -> tuple[int, int, int, int]:
    seed = check_seed(seed)
    sid = _check_int("stream_id", sid, 0, 2**64 - 1)
    start = _check_int("start", start, 0, MAX_WORDS)
    count = _check_int("count", count, 0, MAX_WORDS - start)
    return seed, sid, start, count


def _words_numpy(out: np.ndarray, seed: int, sid: int, start: int, chunk: int) -> None:
    """out[i] = word start + i of stream (seed, sid), ``chunk`` blocks per numpy step."""
    first, last = start // 4, (start + out.size + 3) // 4
    for b0 in range(first, last, chunk):
        blocks = np.arange(b0, min(b0 + chunk, last), dtype=np.uint64)
        counter = np.empty((blocks.size, 4), np.uint32)
        counter[:, 0], counter[:, 1] = blocks & np.uint64(_MASK32), blocks >> np.uint64(32)
        counter[:, 2], counter[:, 3] = sid & _MASK32, sid >> 32
        words = philox4x32_10(counter, (seed, 0)).reshape(-1)
        lo = max(start, 4 * b0)  # first word index this step delivers
        hi = min(start + out.size, 4 * (b0 + blocks.size))
        out[lo - start:hi - start] = words[lo - 4 * b0:hi - 4 * b0]


def stream_words_reference(seed: int, sid: int, start: int, count: int) -> np.ndarray:
    """Words start .. start+count-1 of stream (seed, sid) by the vectorised numpy path."""
    seed, sid, start, count = _check_range(seed, sid, start, count)
    out = np.empty(count, np.uint32)
    _words_numpy(out, seed, sid, start, 1 << 18)
    return out


def normal_values(words: np.ndarray, std: np.float32) -> np.ndarray:
    """The normal family's values of stream words (uint32) for float32 ``std``."""
    d = (words & np.uint32(0xFFFF)).astype(np.int32) - (words >> np.uint32(16)).astype(np.int32)
    a = np.abs(d).astype(np.float32) * _HALF_SCALE  # exact: |d| < 2**16
    h = np.full(a.shape, _NORMAL_POLY32[-1], np.float32)
    for c in _NORMAL_POLY32[-2::-1]:  # Horner: one float32 multiply, then one float32 add
        h *= a
        h += c
    h *= a
    h *= std
    return np.where(d < 0, -h, h)


def _scaled_values(words: np.ndarray, fam: str, scale: np.float32) -> np.ndarray:
    if fam == "uniform":
        k = (words >> np.uint32(8)).astype(np.int32) * 2 - _U24_OFFSET  # |k| < 2**24: exact
        return k.astype(np.float32) * scale
    if fam == "normal":
        return normal_values(words, scale)
    return np.where(words >> np.uint32(31) == 0, scale, -scale).astype(np.float32)


def values_from_words(words: np.ndarray, rule: str, shape: Sequence[int],
                      layout: str = DEFAULT_LAYOUT, init_std: float | None = None) -> np.ndarray:
    """Apply ``rule`` (with the fans of ``shape`` under ``layout``) to stream words."""
    words = np.asarray(words, np.uint32)
    return _scaled_values(words, family(rule), value_scale(rule, shape, layout, init_std))


def frozen_weight_reference(seed: int, name: str, shape: Sequence[int], rule: str,
                            layout: str = DEFAULT_LAYOUT, init_std: float | None = None) -> np.ndarray:
    """The frozen weight by the pure-numpy path (no numba involved; for tests)."""
    shape = check_shape(shape)
    words = stream_words_reference(seed, stream_id(name), 0, math.prod(shape))
    return values_from_words(words, rule, shape, layout, init_std).reshape(shape)


def _fill_values_numpy(out: np.ndarray, seed: int, sid: int, start: int, fam: str,
                       scale: np.float32) -> None:
    step = 4 * _NUMPY_CHUNK_BLOCKS
    words = np.empty(min(step, out.size), np.uint32)
    for i in range(0, out.size, step):
        part = words[:min(step, out.size - i)]
        _words_numpy(part, seed, sid, start + i, _NUMPY_CHUNK_BLOCKS + 1)
        out[i:i + part.size] = _scaled_values(part, fam, scale)


# ----------------------------------------------------------------------------- dispatch


def has_numba() -> bool:
    """Whether the numba kernels are in use (the bits do not depend on it)."""
    return _fast is not None


def stream_words(seed: int, sid: int, start: int, count: int) -> np.ndarray:
    """Words start .. start+count-1 (uint32) of stream (seed, sid); ``start`` may be any index."""
    seed, sid, start, count = _check_range(seed, sid, start, count)
    out = np.empty(count, np.uint32)
    if _fast is None:
        _words_numpy(out, seed, sid, start, 1 << 18)
    else:
        _fast.fill_words(out, seed, sid, start)
    return out


def fill_values(out: np.ndarray, seed: int, sid: int, start: int, rule: str, shape: Sequence[int],
                threads: int | None = None, layout: str = DEFAULT_LAYOUT,
                init_std: float | None = None) -> None:
    """Write the values of words start .. start+out.size-1 of a ``rule`` tensor of ``shape``
    into the contiguous float32 vector ``out`` (the fast path behind ``frozen_weight``).

    ``threads``: numba threads for one large tensor (None: numba's setting; 1: this thread
    only, which is what callers that regenerate several tensors in parallel threads want).
    """
    if not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.ndim == 1
            and out.flags.c_contiguous and out.flags.writeable):
        raise UsageError("out: expected a writeable contiguous 1-D float32 numpy array")
    seed, sid, start, _ = _check_range(seed, sid, start, out.size)
    scale = value_scale(rule, shape, layout, init_std)
    if threads is not None:
        threads = _check_int("threads", threads, 1, 1 << 16)
    if _fast is None:
        _fill_values_numpy(out, seed, sid, start, family(rule), scale)
    else:
        _fast.fill_values(out, seed, sid, start, family(rule), scale, threads)


def frozen_weight(seed: int, name: str, shape: Sequence[int], rule: str, threads: int | None = None,
                  layout: str = DEFAULT_LAYOUT, init_std: float | None = None) -> np.ndarray:
    """Regenerate the frozen float32 tensor ``name`` of ``shape`` under ``rule`` from ``seed``
    (fans by ``layout``; ``init_std``: the std of rule normal_std)."""
    shape = check_shape(shape)
    out = np.empty(math.prod(shape), np.float32)
    fill_values(out, seed, stream_id(name), 0, rule, shape, threads, layout, init_std)
    return out.reshape(shape)
