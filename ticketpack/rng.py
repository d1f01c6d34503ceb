"""The format-defined random stream and the frozen-weight init rules.

Every frozen weight is regenerated from a 32-bit seed, the tensor's name and an
init rule, bit for bit, on any machine, in numpy (numba) or torch (CPU or CUDA).

Stream (RNG_ID "philox4x32-10/v1")
    stream_id(name) = the first 8 bytes of SHA-256(UTF-8 name) read as a
    little-endian uint64 ``sid``.
    Word j (j = 0, 1, 2, ...) of stream (seed, sid) is lane j % 4 of
    Philox4x32-10 (Salmon et al. 2011, Random123; 10 rounds, multipliers
    0xD2511F53 / 0xCD9E8D57, key bumps 0x9E3779B9 / 0xBB67AE85) with
        key     = (seed, 0)
        counter = (b & 0xffffffff, b >> 32, sid & 0xffffffff, sid >> 32),  b = j // 4.
    Element j of a tensor, in row-major (C) order, uses word j of its stream.

Init rules (shape (d0, d1, ...): fan_out = d0, fan_in = d1 * d2 * ..., 1 for a 1-D shape)
    xavier_uniform           uniform(-b, b), b = sqrt(6 / (fan_in + fan_out))
    he_uniform               uniform(-b, b), b = sqrt(6 / fan_in)
    signed_constant_xavier   +-c, c = float32(sqrt(2 / (fan_in + fan_out)))
    signed_constant_he       +-c, c = float32(sqrt(2 / fan_in))
    uniform(-b, b):  u = w >> 8;  k = 2*u - (2**24 - 1)  (an odd integer, exact in float32);
                     value = float32(k) * float32(b * 2**-24), one correctly rounded
                     float32 multiply, so every device gets the same bits and
                     |value| < b strictly (never 0, symmetric).
    signed constant: value = +c if w >> 31 == 0 else -c.
    b and c are computed in float64 (IEEE sqrt and division are correctly rounded)
    and rounded to float32 once.

Implementations: a vectorised numpy reference (``philox4x32_10``,
``stream_words_reference``, ``values_from_words``), a numba fast path
(``stream_words``, ``frozen_weight``; compiled on first use and cached on disk)
and pure torch ops (``frozen_weight_torch``: int64 with 16-bit halves for the
32x32->64 multiplies, since torch has no full uint32 support). All agree bit for bit.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Sequence

import numba
import numpy as np
import torch
from numba import njit, prange

from .errors import UsageError

RNG_ID = "philox4x32-10/v1"
# RNG ids of imported parameter-golf tickets: this prefix + the torch version (pg_import.py)
PG_RNG_PREFIX = "torch-mt19937-cpu/"
INIT_RULES = ("xavier_uniform", "he_uniform", "signed_constant_xavier", "signed_constant_he")

# Philox4x32 constants (Random123): round multipliers and Weyl key increments.
PHILOX_M = (0xD2511F53, 0xCD9E8D57)
PHILOX_W = (0x9E3779B9, 0xBB67AE85)
PHILOX_ROUNDS = 10
MAX_WORDS = 2**62  # implementation limit on word indices (the format allows 2**66)

_MASK32 = 0xFFFFFFFF
_U24_OFFSET = 2**24 - 1

# ----------------------------------------------------------------------------- checks


def _check_int(field: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{field}: got {value!r}, expected an integer in {lo}..{hi}")
    if not lo <= int(value) <= hi:
        raise UsageError(f"{field}: got {int(value)}, expected an integer in {lo}..{hi}")
    return int(value)


def _check_seed(seed: object) -> int:
    return _check_int("seed", seed, 0, _MASK32)


def _check_shape(shape: object) -> tuple[int, ...]:
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


def _is_uniform(rule: str) -> bool:
    return rule in ("xavier_uniform", "he_uniform")


def _check_rule(rule: object) -> str:
    if rule not in INIT_RULES:
        raise UsageError(f"init_rule: got {rule!r}, expected one of {', '.join(INIT_RULES)}")
    return rule


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


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a shape (d0, d1, ...): fan_out = d0, fan_in = d1 * d2 * ..."""
    dims = _check_shape(shape)
    return math.prod(dims[1:]), dims[0]


def init_bound(rule: str, shape: Sequence[int]) -> float:
    """The uniform bound b or the signed constant c of ``rule``, in float64."""
    fan_in, fan_out = fans(shape)
    numerator = 6.0 if _is_uniform(_check_rule(rule)) else 2.0
    denominator = fan_in if rule in ("he_uniform", "signed_constant_he") else fan_in + fan_out
    return math.sqrt(numerator / denominator)


def _scale(rule: str, shape: Sequence[int]) -> np.float32:
    """float32(b * 2**-24) for a uniform rule, float32(c) for a signed constant."""
    bound = init_bound(rule, shape)
    return np.float32(bound * 2.0**-24) if _is_uniform(rule) else np.float32(bound)


# ----------------------------------------------------------------------------- numpy reference


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
    seed = _check_seed(seed)
    sid = _check_int("stream_id", sid, 0, 2**64 - 1)
    start = _check_int("start", start, 0, MAX_WORDS)
    count = _check_int("count", count, 0, MAX_WORDS - start)
    return seed, sid, start, count


def stream_words_reference(seed: int, sid: int, start: int, count: int) -> np.ndarray:
    """Words start .. start+count-1 of stream (seed, sid): vectorised numpy, for tests."""
    seed, sid, start, count = _check_range(seed, sid, start, count)
    out = np.empty(count, np.uint32)
    chunk = 1 << 18  # blocks per step: bounds the (n, 4) temporaries
    first, last = start // 4, (start + count + 3) // 4
    for b0 in range(first, last, chunk):
        blocks = np.arange(b0, min(b0 + chunk, last), dtype=np.uint64)
        counter = np.empty((blocks.size, 4), np.uint32)
        counter[:, 0], counter[:, 1] = blocks & np.uint64(_MASK32), blocks >> np.uint64(32)
        counter[:, 2], counter[:, 3] = sid & _MASK32, sid >> 32
        words = philox4x32_10(counter, (seed, 0)).reshape(-1)
        lo = max(start, 4 * b0)  # first word index this step delivers
        hi = min(start + count, 4 * (b0 + blocks.size))
        out[lo - start:hi - start] = words[lo - 4 * b0:hi - 4 * b0]
    return out


def values_from_words(words: np.ndarray, rule: str, shape: Sequence[int]) -> np.ndarray:
    """Apply ``rule`` (with the fans of ``shape``) to stream words: the numpy reference."""
    words = np.asarray(words, np.uint32)
    scale = _scale(_check_rule(rule), shape)
    if _is_uniform(rule):
        k = (words >> np.uint32(8)).astype(np.int64) * 2 - _U24_OFFSET
        return k.astype(np.float32) * scale
    return np.where(words >> np.uint32(31) == 0, scale, -scale).astype(np.float32)


def frozen_weight_reference(seed: int, name: str, shape: Sequence[int], rule: str) -> np.ndarray:
    """The frozen weight by the pure-numpy reference path (slow; for tests)."""
    shape = _check_shape(shape)
    words = stream_words_reference(seed, stream_id(name), 0, math.prod(shape))
    return values_from_words(words, rule, shape).reshape(shape)


# ----------------------------------------------------------------------------- numba fast path
# All arithmetic is uint64 holding 32-bit values: numba promotes mixed
# signed/unsigned 64-bit integers to float64, so every operand is typed uint64.

_M0, _M1 = np.uint64(PHILOX_M[0]), np.uint64(PHILOX_M[1])
_W0, _W1 = np.uint64(PHILOX_W[0]), np.uint64(PHILOX_W[1])
_LO32, _S32 = np.uint64(_MASK32), np.uint64(32)
_S8, _S31, _ZERO, _U24 = np.uint64(8), np.uint64(31), np.uint64(0), np.int64(_U24_OFFSET)
_CHUNK_BLOCKS = 1 << 15  # blocks per parallel task (512 KiB of float32 output)


@njit(cache=True, inline="always")
def _philox_block(b, sid_lo, sid_hi, k0, k1):
    """The four words of block ``b`` (int64 >= 0)."""
    c0, c1, c2, c3 = np.uint64(b) & _LO32, np.uint64(b) >> _S32, sid_lo, sid_hi
    for _ in range(PHILOX_ROUNDS):
        p0, p1 = _M0 * c0, _M1 * c2
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _LO32, (p0 >> _S32) ^ c3 ^ k1, p0 & _LO32
        k0, k1 = (k0 + _W0) & _LO32, (k1 + _W1) & _LO32
    return c0, c1, c2, c3


@njit(cache=True, inline="always")
def _value(w, signed, scale):
    """Element value of word ``w``; ``scale`` is float32(b * 2**-24) or float32(c)."""
    if signed:
        return scale if (w >> _S31) == _ZERO else -scale
    return np.float32(np.int64(w >> _S8) * 2 - _U24) * scale


@njit(cache=True)
def _values_blocks(out, b, nblocks, sid_lo, sid_hi, k0, k1, signed, scale):
    """out[4i + lane] = value of that lane of block b + i, for i < nblocks.

    ``out`` starts at the first element of block b (callers pass a slice): an
    index offset here would make numba's negative-index check block SIMD.
    """
    for i in range(nblocks):
        w0, w1, w2, w3 = _philox_block(b + i, sid_lo, sid_hi, k0, k1)
        out[4 * i] = _value(w0, signed, scale)
        out[4 * i + 1] = _value(w1, signed, scale)
        out[4 * i + 2] = _value(w2, signed, scale)
        out[4 * i + 3] = _value(w3, signed, scale)


@njit(cache=True)
def _words_blocks(out, b, nblocks, sid_lo, sid_hi, k0, k1):
    for i in range(nblocks):
        w0, w1, w2, w3 = _philox_block(b + i, sid_lo, sid_hi, k0, k1)
        out[4 * i], out[4 * i + 1], out[4 * i + 2], out[4 * i + 3] = w0, w1, w2, w3


@njit(cache=True)
def _edge_words(start, n, sid_lo, sid_hi, k0, k1):
    """The words of [start, start+n) outside whole blocks, as uint64 arrays (head, tail):
    head goes to out[:head.size], tail to out[n - tail.size:], whole blocks between."""
    nhead = min((4 - start % 4) % 4, n)
    head = np.empty(nhead, np.uint64)
    if nhead > 0:
        w = _philox_block(start // 4, sid_lo, sid_hi, k0, k1)
        for t in range(nhead):
            head[t] = w[start % 4 + t]
    ntail = (n - nhead) % 4
    tail = np.empty(ntail, np.uint64)
    if ntail > 0:
        w = _philox_block((start + n - ntail) // 4, sid_lo, sid_hi, k0, k1)
        for t in range(ntail):
            tail[t] = w[t]
    return head, tail


@njit(cache=True)
def _fill_value_edges(out, start, sid_lo, sid_hi, k0, k1, signed, scale):
    """Write the partial blocks at both ends; return (offset, first block, whole blocks)."""
    head, tail = _edge_words(start, out.size, sid_lo, sid_hi, k0, k1)
    for t in range(head.size):
        out[t] = _value(head[t], signed, scale)
    for t in range(tail.size):
        out[out.size - tail.size + t] = _value(tail[t], signed, scale)
    return head.size, (start + head.size) // 4, (out.size - head.size) // 4


@njit(cache=True)
def _fill_values_serial(out, start, sid_lo, sid_hi, k0, k1, signed, scale):
    o, b0, nblocks = _fill_value_edges(out, start, sid_lo, sid_hi, k0, k1, signed, scale)
    _values_blocks(out[o:], b0, nblocks, sid_lo, sid_hi, k0, k1, signed, scale)


@njit(cache=True, parallel=True)
def _fill_values_parallel(out, start, sid_lo, sid_hi, k0, k1, signed, scale):
    o, b0, nblocks = _fill_value_edges(out, start, sid_lo, sid_hi, k0, k1, signed, scale)
    for c in prange((nblocks + _CHUNK_BLOCKS - 1) // _CHUNK_BLOCKS):
        i = c * _CHUNK_BLOCKS
        m = min(_CHUNK_BLOCKS, nblocks - i)
        _values_blocks(out[o + 4 * i:], b0 + i, m, sid_lo, sid_hi, k0, k1, signed, scale)


@njit(cache=True)
def _fill_words(out, start, sid_lo, sid_hi, k0, k1):
    head, tail = _edge_words(start, out.size, sid_lo, sid_hi, k0, k1)
    for t in range(head.size):
        out[t] = head[t]
    for t in range(tail.size):
        out[out.size - tail.size + t] = tail[t]
    _words_blocks(out[head.size:], (start + head.size) // 4, (out.size - head.size) // 4, sid_lo, sid_hi, k0, k1)


def _stream_args(seed: int, sid: int, start: int) -> tuple:
    """Kernel arguments with fixed numba types, so one compiled signature serves all calls."""
    return (np.int64(start), np.uint64(sid & _MASK32), np.uint64(sid >> 32), np.uint64(seed), np.uint64(0))


def stream_words(seed: int, sid: int, start: int, count: int) -> np.ndarray:
    """Words start .. start+count-1 (uint32) of stream (seed, sid); ``start`` may be any index."""
    seed, sid, start, count = _check_range(seed, sid, start, count)
    out = np.empty(count, np.uint32)
    _fill_words(out, *_stream_args(seed, sid, start))
    return out


_PARALLEL_MIN = 1 << 18  # below this many elements threads cost more than they save
_PARALLEL_LOCK = threading.Lock()  # numba's default workqueue layer aborts on concurrent launches


def fill_values(out: np.ndarray, seed: int, sid: int, start: int, rule: str, shape: Sequence[int],
                threads: int | None = None) -> None:
    """Write the values of words start .. start+out.size-1 of a ``rule`` tensor of ``shape``
    into the contiguous float32 vector ``out`` (the fast path behind ``frozen_weight``)."""
    if not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.ndim == 1
            and out.flags.c_contiguous and out.flags.writeable):
        raise UsageError("out: expected a writeable contiguous 1-D float32 numpy array")
    seed, sid, start, _ = _check_range(seed, sid, start, out.size)
    signed = not _is_uniform(_check_rule(rule))
    args = (out, *_stream_args(seed, sid, start), signed, _scale(rule, shape))
    if threads is not None:
        threads = _check_int("threads", threads, 1, 1 << 16)
    if threads == 1 or out.size < _PARALLEL_MIN:
        _fill_values_serial(*args)
        return
    with _PARALLEL_LOCK:
        previous = numba.get_num_threads()
        numba.set_num_threads(min(threads or previous, numba.config.NUMBA_NUM_THREADS))
        try:
            _fill_values_parallel(*args)
        finally:
            numba.set_num_threads(previous)


def frozen_weight(seed: int, name: str, shape: Sequence[int], rule: str, threads: int | None = None) -> np.ndarray:
    """Regenerate the frozen float32 tensor ``name`` of ``shape`` under ``rule`` from ``seed``.

    ``threads``: numba threads to use (None: numba's current setting); the result
    does not depend on it.
    """
    shape = _check_shape(shape)
    out = np.empty(math.prod(shape), np.float32)
    fill_values(out, seed, stream_id(name), 0, rule, shape, threads)
    return out.reshape(shape)


# ----------------------------------------------------------------------------- torch


def _mulhilo_torch(m: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit halves of m * x for m, x < 2**32, in int64 without overflow."""
    a = m * (x & 0xFFFF)  # < 2**48
    b = m * (x >> 16)  # < 2**48; the product is a + b * 2**16
    mid = (a & _MASK32) + ((b & 0xFFFF) << 16)  # < 2**33
    return (a >> 32) + (b >> 16) + (mid >> 32), mid & _MASK32


def _philox_torch(blocks: torch.Tensor, sid: int, seed: int) -> torch.Tensor:
    """Words (n, 4) as int64 of the int64 block indices ``blocks``."""
    c0, c1 = blocks & _MASK32, blocks >> 32
    c2, c3 = torch.full_like(blocks, sid & _MASK32), torch.full_like(blocks, sid >> 32)
    k0, k1 = seed, 0
    for _ in range(PHILOX_ROUNDS):
        hi0, lo0 = _mulhilo_torch(PHILOX_M[0], c0)
        hi1, lo1 = _mulhilo_torch(PHILOX_M[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + PHILOX_W[0]) & _MASK32, (k1 + PHILOX_W[1]) & _MASK32
    return torch.stack([c0, c1, c2, c3], dim=1)


def frozen_weight_torch(seed: int, name: str, shape: Sequence[int], rule: str,
                        device: str | torch.device = "cpu") -> torch.Tensor:
    """``frozen_weight`` computed with torch ops on ``device``; the same bits."""
    seed, shape, rule = _check_seed(seed), _check_shape(shape), _check_rule(rule)
    sid, n = stream_id(name), math.prod(shape)
    scale = torch.from_numpy(np.array(_scale(rule, shape))).to(device)  # float32, rounded once
    out = torch.empty(n, dtype=torch.float32, device=device)
    # Blocks per step: bounds the int64 temporaries; on CPU small ones stay in cache.
    chunk = 1 << 16 if out.device.type == "cpu" else 1 << 22
    for b0 in range(0, (n + 3) // 4, chunk):
        b1 = min(b0 + chunk, (n + 3) // 4)
        blocks = torch.arange(b0, b1, dtype=torch.int64, device=device)
        words = _philox_torch(blocks, sid, seed).reshape(-1)[:min(n, 4 * b1) - 4 * b0]
        if _is_uniform(rule):
            k = (words >> 8) * 2 - _U24_OFFSET
            out[4 * b0:4 * b1] = k.to(torch.float32) * scale
        else:
            out[4 * b0:4 * b1] = torch.where(words >> 31 == 0, scale, -scale)
    return out.reshape(shape)
