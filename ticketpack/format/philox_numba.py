"""numba kernels of the Philox stream (the optional fast path of ``philox``; the same bits).

Imported only when numba is importable. Kernels release the GIL, so tensors regenerate
in parallel Python threads; one large tensor can also use numba's own threads.
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import njit, prange

from .constants import INIT_FAMILIES, NORMAL_POLY, PHILOX_M, PHILOX_ROUNDS, PHILOX_W

# numba's "omp" layer shares PyTorch's bundled OpenMP runtime, and numba's thread count then
# replaces the one torch.set_num_threads chose for the rest of the process (one-thread training
# ran two threads, oversubscribed ~5x on a busy machine). Layers with their own threads go first
# unless the user chose a layer.
_USER_LAYER_VARS = ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY")
if numba.config.THREADING_LAYER == "default" and not any(v in os.environ for v in _USER_LAYER_VARS):
    numba.config.THREADING_LAYER_PRIORITY = ["tbb", "workqueue", "omp"]

_MASK32 = 0xFFFFFFFF
_U24_OFFSET = 2**24 - 1

# All arithmetic is uint64 holding 32-bit values: numba promotes mixed
# signed/unsigned 64-bit integers to float64, so every operand is typed uint64.

_M0, _M1 = np.uint64(PHILOX_M[0]), np.uint64(PHILOX_M[1])
_W0, _W1 = np.uint64(PHILOX_W[0]), np.uint64(PHILOX_W[1])
_LO32, _S32 = np.uint64(_MASK32), np.uint64(32)
_S8, _S31, _ZERO, _U24 = np.uint64(8), np.uint64(31), np.uint64(0), np.int64(_U24_OFFSET)
_C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9 = (np.float32(c) for c in NORMAL_POLY)
_HALF = np.float32(2.0**-16)
_LO16, _S16 = np.uint64(0xFFFF), np.uint64(16)
_FAMILY = {name: i for i, name in enumerate(INIT_FAMILIES)}  # the kernels' family codes
_SIGNED, _NORMAL = _FAMILY["signed_constant"], _FAMILY["normal"]
_CHUNK_BLOCKS = 1 << 15  # blocks per parallel task (512 KiB of float32 output)


@njit(cache=True, nogil=True, inline="always")
def _philox_block(b, sid_lo, sid_hi, k0, k1):
    """The four words of block ``b`` (int64 >= 0)."""
    c0, c1, c2, c3 = np.uint64(b) & _LO32, np.uint64(b) >> _S32, sid_lo, sid_hi
    for _ in range(PHILOX_ROUNDS):
        p0, p1 = _M0 * c0, _M1 * c2
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _LO32, (p0 >> _S32) ^ c3 ^ k1, p0 & _LO32
        k0, k1 = (k0 + _W0) & _LO32, (k1 + _W1) & _LO32
    return c0, c1, c2, c3


@njit(cache=True, nogil=True, inline="always")
def _normal(w, std):
    """The normal family's value of word ``w``: float32 Horner, a separate multiply and add."""
    d = np.int64(w & _LO16) - np.int64((w >> _S16) & _LO16)
    a = np.float32(abs(d)) * _HALF
    h = _C9 * a + _C8
    h = h * a + _C7
    h = h * a + _C6
    h = h * a + _C5
    h = h * a + _C4
    h = h * a + _C3
    h = h * a + _C2
    h = h * a + _C1
    h = (h * a) * std
    return -h if d < 0 else h


@njit(cache=True, nogil=True, inline="always")
def _value(w, fam, scale):
    """Element value of word ``w`` in family ``fam`` (its index in INIT_FAMILIES); ``scale`` is
    float32(b * 2**-24), float32(c) or float32(std)."""
    if fam == _SIGNED:
        return scale if (w >> _S31) == _ZERO else -scale
    if fam == _NORMAL:
        return _normal(w, scale)
    return np.float32(np.int64(w >> _S8) * 2 - _U24) * scale


@njit(cache=True, nogil=True)
def _values_blocks(out, b, nblocks, sid_lo, sid_hi, k0, k1, fam, scale):
    """out[4i + lane] = value of that lane of block b + i, for i < nblocks.

    ``out`` starts at the first element of block b (callers pass a slice): an
    index offset here would make numba's negative-index check block SIMD.
    """
    for i in range(nblocks):
        w0, w1, w2, w3 = _philox_block(b + i, sid_lo, sid_hi, k0, k1)
        out[4 * i] = _value(w0, fam, scale)
        out[4 * i + 1] = _value(w1, fam, scale)
        out[4 * i + 2] = _value(w2, fam, scale)
        out[4 * i + 3] = _value(w3, fam, scale)


@njit(cache=True, nogil=True)
def _words_blocks(out, b, nblocks, sid_lo, sid_hi, k0, k1):
    for i in range(nblocks):
        w0, w1, w2, w3 = _philox_block(b + i, sid_lo, sid_hi, k0, k1)
        out[4 * i], out[4 * i + 1], out[4 * i + 2], out[4 * i + 3] = w0, w1, w2, w3


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _fill_value_edges(out, start, sid_lo, sid_hi, k0, k1, fam, scale):
    """Write the partial blocks at both ends; return (offset, first block, whole blocks)."""
    head, tail = _edge_words(start, out.size, sid_lo, sid_hi, k0, k1)
    for t in range(head.size):
        out[t] = _value(head[t], fam, scale)
    for t in range(tail.size):
        out[out.size - tail.size + t] = _value(tail[t], fam, scale)
    return head.size, (start + head.size) // 4, (out.size - head.size) // 4


@njit(cache=True, nogil=True)
def _fill_values_serial(out, start, sid_lo, sid_hi, k0, k1, fam, scale):
    o, b0, nblocks = _fill_value_edges(out, start, sid_lo, sid_hi, k0, k1, fam, scale)
    _values_blocks(out[o:], b0, nblocks, sid_lo, sid_hi, k0, k1, fam, scale)


@njit(cache=True, nogil=True, parallel=True)
def _fill_values_parallel(out, start, sid_lo, sid_hi, k0, k1, fam, scale):
    o, b0, nblocks = _fill_value_edges(out, start, sid_lo, sid_hi, k0, k1, fam, scale)
    for c in prange((nblocks + _CHUNK_BLOCKS - 1) // _CHUNK_BLOCKS):
        i = c * _CHUNK_BLOCKS
        m = min(_CHUNK_BLOCKS, nblocks - i)
        _values_blocks(out[o + 4 * i:], b0 + i, m, sid_lo, sid_hi, k0, k1, fam, scale)


@njit(cache=True, nogil=True)
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


def fill_words(out: np.ndarray, seed: int, sid: int, start: int) -> None:
    """out[i] = word start + i (uint32) of stream (seed, sid); arguments already checked."""
    _fill_words(out, *_stream_args(seed, sid, start))


_PARALLEL_MIN = 1 << 18  # below this many elements threads cost more than they save
_PARALLEL_LOCK = threading.Lock()  # numba's default workqueue layer aborts on concurrent launches


def fill_values(out: np.ndarray, seed: int, sid: int, start: int, family: str, scale: np.float32,
                threads: int | None) -> None:
    """Values of words start .. into ``out`` in init ``family``; arguments already checked by
    ``philox``."""
    args = (out, *_stream_args(seed, sid, start), np.int64(_FAMILY[family]), scale)
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
