"""numba kernels of the rANS coding (docs/FORMAT.md section 5.2); imported only when numba is.

They write and read exactly the bytes of the numpy kernels in ``rans.py`` (tested). Each kernel
is ``nogil`` so callers may decode several tensors in parallel threads. Decoders refill
branch-free: ``words`` carries ``lanes + 1`` zero words of padding after the stream, so a lane
may read one word past the end before the check at the end of its round.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PROB_BITS = 16
PROB_MASK = (1 << PROB_BITS) - 1
STATE_LOW = 1 << 16


@njit(nogil=True, cache=True)
def decode_static(words, n_words, x, n_symbols, slot_symbol, freq, cum, tab, out, hist):
    """Decode ``n_symbols`` symbols under one model; symbol s writes ``out[i] = tab[s]``.

    Counts symbols into ``hist`` and leaves the lanes' final states in ``x``. Returns the words
    read, or -1 when the stream (``n_words`` long) ends early.
    """
    lanes, pos, i = x.size, 0, 0
    while i < n_symbols:
        top = min(lanes, n_symbols - i)
        for j in range(top):
            state = x[j]
            slot = state & PROB_MASK
            s = slot_symbol[slot]
            state = freq[s] * (state >> PROB_BITS) + slot - cum[s]
            need = np.int64(state < STATE_LOW)
            state = (state << (need * 16)) | (np.int64(words[pos]) & -need)
            pos += need
            x[j] = state
            out[i + j] = tab[s]
            hist[s] += 1
        i += top
        if pos > n_words:
            return -1
    return pos


@njit(nogil=True, cache=True)
def encode_static(symbols, lanes, freq, cum, buf, x):
    """Encode ``symbols`` (last first) into ``buf`` from its end; returns where the words start.

    ``x`` (one state per lane) receives the final states, which the decoder reads first.
    """
    n = symbols.size
    for j in range(lanes):
        x[j] = STATE_LOW
    p = buf.size
    for i in range(n - 1, -1, -1):
        j = i % lanes
        s = symbols[i]
        f = freq[s]
        state = x[j]
        if state >= (f << PROB_BITS):
            p -= 1
            buf[p] = state & 0xFFFF
            state >>= 16
        x[j] = ((state // f) << PROB_BITS) + state % f + cum[s]
    return p


@njit(nogil=True, cache=True)
def expand_groups(symbols, digits, patterns, out):
    """ransnm: symbol s -> its ranks ``digits[s]`` -> their patterns (``patterns.shape[1]`` units
    each), written one after another into ``out``."""
    per, width = digits.shape[1], patterns.shape[1]
    o = 0
    for i in range(symbols.size):
        s = symbols[i]
        for t in range(per):
            r = digits[s, t]
            for k in range(width):
                out[o + k] = patterns[r, k]
            o += width


@njit(nogil=True, cache=True)
def decode_rows(words, n_words, x, rows, f0, cols, grid, ones):
    """Binary elements of the listed rows, row ``rows[k]`` under its threshold ``f0[k]``.

    Fills ``grid[rows[k]]`` and counts its ones into ``ones[k]``; returns the words read or -1.
    """
    lanes, pos, j = x.size, 0, 0
    for k in range(rows.size):
        r, t = rows[k], f0[k]
        f1, count = (1 << PROB_BITS) - t, 0
        for c in range(cols):
            state = x[j]
            slot = state & PROB_MASK
            bit = np.int64(slot >= t)
            f = t + bit * (f1 - t)
            state = f * (state >> PROB_BITS) + slot - bit * t
            need = np.int64(state < STATE_LOW)
            state = (state << (need * 16)) | (np.int64(words[pos]) & -need)
            pos += need
            x[j] = state
            grid[r, c] = bit
            count += bit
            j += 1
            if j == lanes:
                j = 0
                if pos > n_words:
                    return -1
        ones[k] = count
    if pos > n_words:
        return -1
    return pos


@njit(nogil=True, cache=True)
def encode_rows(grid, rows, f0, lanes, buf, x):
    """Encode the listed rows of a 0/1 grid (last element first); returns where the words start."""
    cols = grid.shape[1]
    for j in range(lanes):
        x[j] = STATE_LOW
    p = buf.size
    for k in range(rows.size - 1, -1, -1):
        r, t = rows[k], f0[k]
        for c in range(cols - 1, -1, -1):
            j = (k * cols + c) % lanes
            if grid[r, c]:
                f, start = (1 << PROB_BITS) - t, t
            else:
                f, start = t, 0
            state = x[j]
            if state >= (f << PROB_BITS):
                p -= 1
                buf[p] = state & 0xFFFF
                state >>= 16
            x[j] = ((state // f) << PROB_BITS) + state % f + start
    return p
