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
WEIGHT_BITS = 31


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
def encode(symbols, per_model, model_of, freq, cum, lanes, buf, x):
    """Encode ``symbols`` (last first) into ``buf`` from its end; returns where the words start.

    Symbol i uses model ``model_of[i // per_model]`` (rows of ``freq`` / ``cum``); ``x`` (one
    state per lane) receives the final states, which the decoder reads first.
    """
    n = symbols.size
    for j in range(lanes):
        x[j] = STATE_LOW
    p = buf.size
    for i in range(n - 1, -1, -1):
        j = i % lanes
        m = model_of[i // per_model]
        s = symbols[i]
        f = freq[m, s]
        state = x[j]
        if state >= (f << PROB_BITS):
            p -= 1
            buf[p] = state & 0xFFFF
            state >>= 16
        x[j] = ((state // f) << PROB_BITS) + state % f + cum[m, s]
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
def decode_rows(words, n_words, x, per_row, model_of, cum, start, tab, out, ones_of, ones):
    """ransrow: ``per_row`` symbols for each row k under model ``model_of[k]``, a row of ``cum``
    (A + 1 ascending entries ending at 2^16). ``start[m, b]`` is the symbol owning the first slot
    of bucket b (2^16 slots in ``start.shape[1]`` buckets), where the search for a slot of that
    bucket begins.

    Writes ``out[i] = tab[s]``, adds ``ones_of[s]`` to ``ones[k]``; returns the words read or -1.
    """
    lanes, pos, j, i = x.size, 0, 0, 0
    shift = _bucket_shift(start.shape[1])
    for k in range(model_of.size):
        m = model_of[k]
        row, first = cum[m], start[m]
        count = 0
        for _ in range(per_row):
            state = x[j]
            slot = state & PROB_MASK
            s = np.int64(first[slot >> shift])
            while slot >= row[s + 1]:
                s += 1
            low = row[s]
            state = (row[s + 1] - low) * (state >> PROB_BITS) + slot - low
            need = np.int64(state < STATE_LOW)
            state = (state << (need * 16)) | (np.int64(words[pos]) & -need)
            pos += need
            x[j] = state
            out[i] = tab[s]
            count += ones_of[s]
            i += 1
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
def row_models(weight, per, freq, cum, start):
    """The product model (FORMAT.md 5.2.2) of each row of level weights ``weight`` (models x P),
    its cumulative frequencies and its bucket starts (see ``decode_rows``)."""
    models, P = weight.shape
    size = freq.shape[1]
    acc = np.empty(size, np.int64)
    digits = np.empty((size, per), np.int64)
    for s in range(size):
        t = s
        for j in range(per):
            digits[s, j] = t % P
            t //= P
    for m in range(models):
        total = 0
        for s in range(size):
            a = np.int64(1) << WEIGHT_BITS
            for j in range(per):
                a = (a * weight[m, digits[s, j]]) >> WEIGHT_BITS
            acc[s] = a
            total += a
        top, given = 0, 0
        for s in range(size):
            f = max((acc[s] << PROB_BITS) // total, 1)
            freq[m, s] = f
            given += f
            if f > freq[m, top]:
                top = s
        freq[m, top] += (1 << PROB_BITS) - given
        cum[m, 0] = 0
        for s in range(size):
            cum[m, s + 1] = cum[m, s] + freq[m, s]
        s, shift = 0, _bucket_shift(start.shape[1])
        for b in range(start.shape[1]):
            while cum[m, s + 1] <= b << shift:
                s += 1
            start[m, b] = s


@njit(nogil=True, cache=True)
def _bucket_shift(buckets):
    """log2 of the slots per bucket when 2^16 slots fall into ``buckets`` (a power of two)."""
    shift = PROB_BITS
    while buckets > 1:
        buckets >>= 1
        shift -= 1
    return shift
