"""The rANS coding of format v2: `rans0`, `ransrow` and `ransnm` (docs/FORMAT.md section 5.2).

Every constant and integer rule that decides a byte is defined by FORMAT.md; this module follows
it. In short: 32-bit states in [2^16, 2^32) renormalised by 16-bit little-endian words,
probabilities at 16 bits, L = 2^e interleaved states taking symbols round-robin, each lane's
encoder starting (and its decoder ending) at 2^16.

- `rans0`: level counts, then symbols of B elements each under the product model of the counts.
- `ransrow`: row counts, then B elements per symbol of each mixed row under the product model
  of that row's counts.
- `ransnm`: the colex rank of each group of M among C(M, N) patterns, G ranks per symbol under
  a uniform model over C^G.

Two kernel sets write and read the same bytes: vectorised numpy (over the lanes) and, when numba
imports, the compiled kernels of ``rans_numba`` (one thread each, GIL released). Decoders raise
DecodeError on anything malformed and allocate only the declared output plus model tables
(ransrow: one per distinct row count).
"""

from __future__ import annotations

from math import comb, log2
from types import SimpleNamespace

import numpy as np

from ..errors import DecodeError, UsageError
from .constants import FORMAT_VERSION, MIN_LANES_FROM_VERSION, min_lanes
from .varint import get_varint, put_varint

PROB_BITS = 16
PROB_ONE = 1 << PROB_BITS          # frequencies of a model sum to this
STATE_LOW = 1 << 16                # states live in [STATE_LOW, 2^32); encoders start here
WEIGHT_BITS = 31                   # fixed-point bits of the level weights in the product rule
MAX_LANES_LOG2 = 12                # a stream has at most 2^12 lanes
MAX_SYMBOLS = {"rans0": 256, "ransnm": PROB_ONE}  # alphabet size of one model
PER_SYMBOL = (8, 4, 2, 1)          # rans0: elements per symbol a stream may use
MAX_K = 256
BUCKET_BITS = 6                    # ransrow decoders start each slot's search at its 64-slot bucket
MAX_M = 64

WRITER_MAX_LANES_LOG2 = 8          # writers use at most 256 lanes,
WRITER_FLUSH_SHARE = 1000          # and at most ~1/1000 of the stream for final states
WRITER_SLACK = 0.0015              # rans0/ransnm: the most symbol-grouping may cost over the bound
WRITER_NM_TABLE = 1 << 20          # ransnm writers keep the expansion table under 1 MiB


def _byte(data: bytes, pos: int, what: str) -> int:
    if pos >= len(data):
        raise DecodeError(f"{what}: data ends at byte {pos}, expected one more header byte")
    return data[pos]


# --- models: integer rules from stored counts to 16-bit frequencies -------------------------

def product_freqs(counts: list[int], per: int) -> np.ndarray:
    """Frequencies of the P^per symbols of ``per`` levels each (P = len(counts) >= 2, all > 0).

    Symbol s holds level digits d_j = (s // P^j) % P; its weight is the product of the digits'
    31-bit level weights, truncated after each multiplication; frequencies are the weights scaled
    to 2^16 (at least 1), and the largest (lowest symbol on ties) absorbs the difference.
    """
    return product_table(np.array([counts], np.int64), per)[0]


def product_table(counts: np.ndarray, per: int) -> np.ndarray:
    """``product_freqs`` of each row of ``counts`` (models x P), as a models x P^per array."""
    return _product_weights(level_weights(counts), per)


def level_weights(counts: np.ndarray) -> np.ndarray:
    """(n_d * 2^31) // n for each row of counts (models x P), exactly."""
    totals = counts.sum(axis=1, keepdims=True)
    if int(counts.max()) < 1 << 32:  # counts * 2^31 fits in int64
        return (counts << WEIGHT_BITS) // totals
    return np.array([[(int(c) << WEIGHT_BITS) // int(t[0]) for c in row]
                     for row, t in zip(counts, totals)], np.int64)


def _product_weights(weight: np.ndarray, per: int) -> np.ndarray:
    P = weight.shape[1]
    digits = _digits(P ** per, P, per)
    acc = np.full((len(weight), P ** per), 1 << WEIGHT_BITS, np.int64)
    for j in range(per):
        acc = (acc * weight[:, digits[:, j]]) >> WEIGHT_BITS
    freq = np.maximum((acc << PROB_BITS) // acc.sum(axis=1, keepdims=True), 1)
    freq[np.arange(len(freq)), np.argmax(freq, axis=1)] += PROB_ONE - freq.sum(axis=1)
    return freq


def uniform_freqs(size: int) -> np.ndarray:
    """q = 2^16 // size for every symbol, plus one for the first 2^16 % size symbols."""
    freq = np.full(size, PROB_ONE // size, np.int64)
    freq[:PROB_ONE % size] += 1
    return freq


def _cum(freq: np.ndarray) -> np.ndarray:
    """Cumulative frequencies along the last axis, starting at 0, with 2^16 appended."""
    zero = np.zeros(freq.shape[:-1] + (1,), np.int64)
    return np.concatenate([zero, np.cumsum(freq, axis=-1)], axis=-1)


def _max_symbols(words: int, lanes: int, top_freq: int) -> int:
    """Most symbols any valid stream of ``words`` words and ``lanes`` lanes can hold.

    Between two reads a lane's state drops by at least (2^16 - f) * (state >> 16) per symbol,
    which bounds the symbols per read by 13 * 2^16 / (2^16 - f) + 2^16 + 1.
    """
    per_read = 13 * PROB_ONE // (PROB_ONE - top_freq) + PROB_ONE + 1
    return (words + lanes) * per_read


# --- streams: lanes, final states, words --------------------------------------------------

def _choose_lanes(bits: float, n_symbols: int) -> int:
    """Writer's rule: the most lanes (up to 256, at most one per symbol) whose final states
    take at most 1/1000 of the estimated stream; one lane for streams under 8,000 bytes; and
    never fewer than the format-v3 minimum Lmin(S)."""
    budget = max(4, int(bits / 8) // WRITER_FLUSH_SHARE)
    e = 0
    while e < WRITER_MAX_LANES_LOG2 and 4 << (e + 1) <= budget and 1 << (e + 1) <= n_symbols:
        e += 1
    return max(e, min_lanes(n_symbols).bit_length() - 1)


def _pack_stream(e: int, states: np.ndarray, words: np.ndarray) -> bytes:
    return (bytes([e]) + states.astype("<u4").tobytes() + words.astype("<u2").tobytes())


def _open_stream(data: bytes, pos: int, what: str, n_symbols: int,
                 version: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Lane count byte, initial states (checked) and the u16 words after them.

    The words come back followed by lanes + 1 zero words the kernels may read past the end.
    From format v3 a stream of ``n_symbols`` needs at least Lmin(n_symbols) lanes.
    """
    e = _byte(data, pos, what)
    if e > MAX_LANES_LOG2:
        raise DecodeError(f"{what}: 2^{e} lanes, expected at most 2^{MAX_LANES_LOG2}")
    if version >= MIN_LANES_FROM_VERSION and 1 << e < min_lanes(n_symbols):
        raise DecodeError(f"{what}: {1 << e} lanes for {n_symbols} symbols, a format version "
                          f"{version} stream needs at least {min_lanes(n_symbols)}")
    lanes, pos = 1 << e, pos + 1
    rest = len(data) - pos - 4 * lanes
    if rest < 0 or rest % 2:
        raise DecodeError(f"{what}: stream of {len(data) - pos} bytes does not hold {lanes} "
                          f"states and whole 16-bit words")
    states = np.frombuffer(data, "<u4", lanes, pos).astype(np.int64)
    if (states < STATE_LOW).any():
        raise DecodeError(f"{what}: an initial state is below 2^16")
    words = np.zeros(rest // 2 + lanes + 1, np.uint16)
    words[:rest // 2] = np.frombuffer(data, "<u2", rest // 2, pos + 4 * lanes)
    return states, words, rest // 2


def _close_stream(read: int, n_words: int, states: np.ndarray, what: str) -> None:
    if read < 0:
        raise DecodeError(f"{what}: stream ends before the last symbol")
    if read != n_words:
        raise DecodeError(f"{what}: {n_words - read} words left after the last symbol")
    if (states != STATE_LOW).any():
        raise DecodeError(f"{what}: a final state is not 2^16 (corrupt stream)")


# --- numpy kernels (vectorised over the lanes) ------------------------------------------------

def _np_encode(symbols, per_model, model_of, freq, cum, lanes, buf, x):
    n, p = symbols.size, buf.size
    x[:] = STATE_LOW
    for start in range((n - 1) // lanes * lanes if n else -1, -1, -lanes):
        s = symbols[start:start + lanes].astype(np.int64)
        m = model_of[(start + np.arange(s.size)) // per_model]
        f, xs = freq[m, s], x[:s.size]
        out = xs >= (f << PROB_BITS)
        k = int(np.count_nonzero(out))
        if k:
            buf[p - k:p] = xs[out] & 0xFFFF
            p -= k
            xs[out] >>= 16
        xs[:] = ((xs // f) << PROB_BITS) + xs % f + cum[m, s]
    return p


def _np_decode_symbols(words, n_words, x, n_symbols, slot_symbol, freq, cum):
    symbols = np.empty(n_symbols, slot_symbol.dtype)
    lanes, pos = x.size, 0
    for start in range(0, n_symbols, lanes):
        xs = x[:min(lanes, n_symbols - start)]
        slot = xs & 0xFFFF
        s = slot_symbol[slot]
        xs[:] = freq[s] * (xs >> PROB_BITS) + slot - cum[s]
        pos = _np_refill(xs, words, n_words, pos)
        if pos < 0:
            return symbols, -1
        symbols[start:start + xs.size] = s
    return symbols, pos


def _np_refill(xs, words, n_words, pos):
    low = xs < STATE_LOW
    k = int(np.count_nonzero(low))
    if k:
        if pos + k > n_words:
            return -1
        xs[low] = (xs[low] << 16) | words[pos:pos + k]
    return pos + k


def _np_decode_static(words, n_words, x, n_symbols, slot_symbol, freq, cum, tab, out, hist):
    symbols, pos = _np_decode_symbols(words, n_words, x, n_symbols, slot_symbol, freq, cum)
    if pos >= 0:
        hist += np.bincount(symbols, minlength=hist.size)
        out[:] = tab[symbols]
    return pos


def _np_expand_groups(symbols, digits, patterns, out):
    out[:] = patterns[digits[symbols]].reshape(-1)


def _np_decode_rows(words, n_words, x, per_row, model_of, cum, start, tab, out, ones_of, ones):
    n, lanes, pos = model_of.size * per_row, x.size, 0
    symbols, half = np.empty(n, np.int64), (cum.shape[1] - 1) // 2
    for start in range(0, n, lanes):
        xs = x[:min(lanes, n - start)]
        m = model_of[(start + np.arange(xs.size)) // per_row]
        slot = xs & 0xFFFF
        s, step = np.zeros(xs.size, np.int64), half
        while step:
            s += step * (slot >= cum[m, s + step])
            step >>= 1
        low = cum[m, s]
        xs[:] = (cum[m, s + 1] - low) * (xs >> PROB_BITS) + slot - low
        pos = _np_refill(xs, words, n_words, pos)
        if pos < 0:
            return -1
        symbols[start:start + xs.size] = s
    out[:] = tab[symbols]
    ones[:] = ones_of[symbols].reshape(model_of.size, per_row).sum(axis=1)
    return pos


def _np_row_models(weight, per, freq, cum, start):
    """Product models of the rows of ``weight``, their cumulative frequencies and bucket starts."""
    freq[:] = _product_weights(weight, per)
    cum[:] = _cum(freq)
    shift = np.arange(len(cum))[:, None] << (PROB_BITS + 1)  # models side by side, ascending
    flat = (cum + shift).reshape(-1)
    firsts = np.arange(0, PROB_ONE, 1 << BUCKET_BITS)
    found = np.searchsorted(flat, (firsts + shift).reshape(-1), side="right").reshape(len(cum), -1)
    start[:] = found - 1 - np.arange(len(cum))[:, None] * cum.shape[1]


NUMPY_KERNELS = SimpleNamespace(
    name="numpy", encode=_np_encode, decode_static=_np_decode_static,
    expand_groups=_np_expand_groups, decode_rows=_np_decode_rows, row_models=_np_row_models)

try:
    from . import rans_numba as _rn
    NUMBA_KERNELS = SimpleNamespace(
        name="numba", encode=_rn.encode, decode_static=_rn.decode_static,
        expand_groups=_rn.expand_groups, decode_rows=_rn.decode_rows, row_models=_rn.row_models)
except ImportError:  # numba is optional: the numpy kernels give the same bytes
    NUMBA_KERNELS = None


def default_kernels() -> SimpleNamespace:
    return NUMBA_KERNELS or NUMPY_KERNELS


# --- static-model streams (rans0, ransnm) ---------------------------------------------------

def _encode_stream(symbols: np.ndarray, per_model: int, model_of: np.ndarray, freq: np.ndarray,
                   bits: float, kernels, lanes_log2: int | None) -> bytes:
    """Symbol i under model ``model_of[i // per_model]`` (a row of ``freq``)."""
    if lanes_log2 is None:
        e = _choose_lanes(bits, symbols.size)
    elif isinstance(lanes_log2, (int, np.integer)) and 0 <= lanes_log2 <= MAX_LANES_LOG2:
        e = int(lanes_log2)
    else:
        raise UsageError(f"lanes_log2 = {lanes_log2!r}, expected 0..{MAX_LANES_LOG2}")
    buf, x = np.empty(symbols.size, np.uint16), np.empty(1 << e, np.int64)
    start = kernels.encode(symbols.astype(np.uint16), per_model, model_of.astype(np.int64),
                           freq, _cum(freq), 1 << e, buf, x)
    return _pack_stream(e, x, buf[start:])


def _encode_static(symbols: np.ndarray, freq: np.ndarray, bits: float, kernels,
                   lanes_log2: int | None) -> bytes:
    one = np.zeros(1, np.int64)
    return _encode_stream(symbols, max(symbols.size, 1), one, freq[None], bits, kernels, lanes_log2)


def _decode_static(data: bytes, pos: int, n_symbols: int, freq: np.ndarray, tab: np.ndarray,
                   what: str, kernels, version: int) -> tuple[np.ndarray, np.ndarray]:
    """``tab[s]`` for each symbol s of the stream at ``data[pos]`` (the lane byte), and the
    symbol histogram."""
    states, words, n_words = _open_stream(data, pos, what, n_symbols, version)
    if n_symbols > _max_symbols(n_words, states.size, int(freq.max())):
        raise DecodeError(f"{what}: {len(data)} bytes cannot hold {n_symbols} symbols")
    slot_type = np.uint8 if freq.size <= 256 else np.uint16
    slot_symbol = np.repeat(np.arange(freq.size, dtype=slot_type), freq)
    out, hist = np.empty(n_symbols, tab.dtype), np.zeros(freq.size, np.int64)
    read = kernels.decode_static(words, n_words, states, n_symbols, slot_symbol, freq,
                                 _cum(freq)[:-1], tab, out, hist)
    _close_stream(read, n_words, states, what)
    return out, hist


def _units(table: np.ndarray) -> np.ndarray:
    """Rows of a uint8 table as one unsigned integer each (rows of 1, 2, 4 or 8 bytes), or as
    words of 8 bytes when wider: the kernels then copy whole words."""
    width = table.shape[1]
    unit = {1: np.uint8, 2: np.uint16, 4: np.uint32}.get(width, np.uint64)
    if width % np.dtype(unit).itemsize:
        unit = np.uint8
    return np.ascontiguousarray(table).view(unit)


def _digits(size: int, base: int, count: int) -> np.ndarray:
    """(size, count) base-``base`` digits of 0..size-1, least significant first."""
    s = np.arange(size, dtype=np.int64)[:, None]
    return (s // base ** np.arange(count, dtype=np.int64)) % base


def _group(digits: np.ndarray, base: int, per: int, pad: int) -> np.ndarray:
    """Symbols of ``per`` consecutive digits (first digit least significant), tail padded."""
    n_symbols = -(-digits.size // per)
    full = np.full(n_symbols * per, pad, np.uint16)
    full[:digits.size] = digits
    full = full.reshape(n_symbols, per)
    symbols = np.zeros(n_symbols, np.uint16)
    for j in range(per - 1, -1, -1):
        symbols *= base
        symbols += full[:, j]
    return symbols


def _cost_bits(symbols: np.ndarray, freq: np.ndarray) -> float:
    """Exact coded size in bits of ``symbols`` under ``freq`` (one model, or one per row of
    ``symbols`` when both are 2-D), final states aside."""
    if freq.ndim == 1:
        hist = np.bincount(symbols, minlength=freq.size)
        return float((hist * (PROB_BITS - np.log2(freq))).sum())
    return float((PROB_BITS - np.log2(np.take_along_axis(freq, symbols.astype(np.int64), 1))).sum())


# --- rans0 --------------------------------------------------------------------------------

def _check_levels(levels: np.ndarray, K: int) -> np.ndarray:
    if not (isinstance(K, (int, np.integer)) and 1 <= K <= MAX_K):
        raise UsageError(f"rans0: K = {K!r}, expected 1 <= K <= {MAX_K}")
    flat = np.ascontiguousarray(levels, np.uint8).reshape(-1)
    if flat.size and int(flat.max()) >= K:
        raise UsageError(f"rans0: level {int(flat.max())} found, expected levels below {K}")
    return flat


def _pad_digit(counts: list[int]) -> int:
    """The digit padding the last symbol: the most frequent present level (lowest on ties)."""
    return max(range(len(counts)), key=lambda d: (counts[d], -d))


def encode_rans0(levels: np.ndarray, K: int, *, kernels=None, lanes_log2: int | None = None) -> bytes:
    """Order-0 coding of levels 0..K-1 (any shape, taken flat in C order).

    ``kernels`` (NUMPY_KERNELS / NUMBA_KERNELS, default: numba when importable) gives the same
    bytes either way; ``lanes_log2`` overrides the writer's choice of 2^e lanes.
    """
    flat = _check_levels(levels, K)
    counts = np.bincount(flat, minlength=K)
    header = b"".join(put_varint(int(c)) for c in counts[:-1])
    present = np.flatnonzero(counts)
    if present.size < 2:
        return header
    kept = [int(c) for c in counts[present]]
    P, n = len(kept), flat.size
    index = np.zeros(K, np.uint8)
    index[present] = np.arange(P)
    digits = index[flat]
    bound = sum(c * log2(n / c) for c in kept)
    best = None
    for per in PER_SYMBOL:
        if P ** per > MAX_SYMBOLS["rans0"]:
            continue
        freq = product_freqs(kept, per)
        symbols = _group(digits, P, per, _pad_digit(kept))
        bits = _cost_bits(symbols, freq)
        if best is None or bits < best[0]:
            best = (bits, per, symbols, freq)
        if bits <= bound * (1 + WRITER_SLACK) + 64:  # most elements per symbol within the slack
            break
    bits, per, symbols, freq = best
    stream = _encode_static(symbols, freq, bits, kernels or default_kernels(), lanes_log2)
    return header + bytes([per]) + stream


def decode_rans0(data: bytes, n: int, K: int, *, kernels=None,
                 version: int = FORMAT_VERSION) -> np.ndarray:
    """Levels (uint8, length n) of a `rans0` section of a format-``version`` file."""
    if not 1 <= K <= MAX_K:
        raise DecodeError(f"rans0: K = {K}, expected 1 <= K <= {MAX_K}")
    counts, pos = [], 0
    for level in range(K - 1):
        count, pos = get_varint(data, pos, n, f"rans0: count of level {level}")
        counts.append(count)
    if sum(counts) > n:
        raise DecodeError(f"rans0: level counts sum to {sum(counts)}, more than the {n} elements")
    counts.append(n - sum(counts))
    present = [level for level in range(K) if counts[level]]
    if len(present) < 2:
        if pos != len(data):
            raise DecodeError(f"rans0: {len(data) - pos} bytes after a one-level header, expected 0")
        return np.full(n, present[0] if present else 0, np.uint8)
    kept, P = [counts[level] for level in present], len(present)
    per = _byte(data, pos, "rans0")
    if per not in PER_SYMBOL or P ** per > MAX_SYMBOLS["rans0"]:
        raise DecodeError(f"rans0: {per} elements per symbol with {P} levels present, expected "
                          f"one of {PER_SYMBOL} and {P}^B <= {MAX_SYMBOLS['rans0']}")
    n_symbols = -(-n // per)
    digits = _digits(P ** per, P, per)
    tab = _units(np.array(present, np.uint8)[digits]).reshape(-1)
    freq = product_freqs(kept, per)
    units, hist = _decode_static(data, pos + 1, n_symbols, freq, tab, "rans0",
                                 kernels or default_kernels(), version)
    out = units.view(np.uint8)
    if (out[n:] != present[_pad_digit(kept)]).any():
        raise DecodeError("rans0: padding after the last element is not the most frequent level")
    seen = (hist[:, None] * (digits[:, :, None] == np.arange(P)).sum(axis=1)).sum(axis=0)
    expected = np.array(kept, np.int64)
    expected[_pad_digit(kept)] += n_symbols * per - n
    if not np.array_equal(seen, expected):
        raise DecodeError("rans0: decoded levels do not match the declared counts")
    return out[:n]


# --- ransrow ------------------------------------------------------------------------------

def _check_bits(bits: np.ndarray) -> np.ndarray:
    if bits.ndim != 2:
        raise UsageError(f"ransrow: a {bits.ndim}-D array, expected rows x cols")
    grid = np.ascontiguousarray(bits, np.uint8)
    if grid.size and int(grid.max()) > 1:
        raise UsageError(f"ransrow: value {int(grid.max())} found, expected 0/1")
    return grid


def _row_header(counts: np.ndarray) -> bytes:
    counts = counts.astype(np.int64)
    lo = int(counts.min()) if counts.size else 0
    width = int(counts.max() - lo).bit_length() if counts.size else 0
    offsets = ((counts - lo)[:, None] >> np.arange(width)) & 1
    packed = np.packbits(offsets.reshape(-1).astype(np.uint8), bitorder="little").tobytes()
    return put_varint(lo) + bytes([width]) + packed


def _read_row_header(data: bytes, rows: int, cols: int) -> tuple[np.ndarray, int]:
    lo, pos = get_varint(data, 0, cols, "ransrow: lowest row count")
    width = _byte(data, pos, "ransrow")
    pos += 1
    if width > cols.bit_length():
        raise DecodeError(f"ransrow: count width {width} bits, expected at most {cols.bit_length()}")
    size = (rows * width + 7) // 8
    if pos + size > len(data):
        raise DecodeError(f"ransrow: header needs {pos + size} bytes, got {len(data)}")
    bits = np.unpackbits(np.frombuffer(data, np.uint8, size, pos), bitorder="little")
    if bits[rows * width:].any():
        raise DecodeError("ransrow: padding bits after the row counts are set, expected zero")
    offsets = (bits[:rows * width].reshape(rows, width).astype(np.int64) << np.arange(width)).sum(1)
    if rows and (int(offsets.min()) != 0 or int(offsets.max()).bit_length() != width):
        raise DecodeError(f"ransrow: row-count header is not minimal (lowest {lo}, width {width})")
    if not rows and (lo or width):
        raise DecodeError("ransrow: a header for no rows must be lowest 0, width 0")
    counts = lo + offsets
    if rows and int(counts.max()) > cols:
        raise DecodeError(f"ransrow: row count {int(counts.max())} exceeds the row length {cols}")
    return counts, pos + size


def _row_models(counts: np.ndarray, cols: int, per: int) -> tuple[np.ndarray, np.ndarray]:
    """(model index of each mixed row, one product model per distinct count)."""
    distinct, model_of = np.unique(counts, return_inverse=True)
    return model_of.astype(np.int64), product_table(np.stack([cols - distinct, distinct], 1), per)


def _row_symbols(rows: np.ndarray, pad: np.ndarray, per: int) -> np.ndarray:
    """(rows, ceil(cols / per)) symbols: ``per`` bits each, first bit least significant, the
    row's tail padded with its bit ``pad``."""
    count, cols = rows.shape
    per_row = -(-cols // per)
    full = np.repeat(pad.astype(np.uint8)[:, None], per_row * per, axis=1)
    full[:, :cols] = rows
    full = full.reshape(count, per_row, per)
    symbols = np.zeros((count, per_row), np.uint16)
    for j in range(per - 1, -1, -1):
        symbols <<= 1
        symbols |= full[:, :, j]
    return symbols




def encode_ransrow(bits: np.ndarray, *, kernels=None, lanes_log2: int | None = None) -> bytes:
    """Binary (rows, cols) mask: row counts, then mixed rows under their own density."""
    grid = _check_bits(bits)
    rows, cols = grid.shape
    counts = grid.sum(axis=1, dtype=np.int64)
    header = _row_header(counts)
    mixed = np.flatnonzero((counts > 0) & (counts < cols))
    if not mixed.size:
        return header
    ones = counts[mixed]
    pad = ones > cols - ones  # the more frequent bit of each row (0 on ties)
    bound = float((ones * np.log2(cols / ones) + (cols - ones) * np.log2(cols / (cols - ones))).sum())
    best = None
    for per in PER_SYMBOL:
        model_of, freq = _row_models(ones, cols, per)
        symbols = _row_symbols(grid[mixed], pad, per)
        bits = _cost_bits(symbols, freq[model_of])
        if best is None or bits < best[0]:
            best = (bits, per, symbols, model_of, freq)
        if bits <= bound * (1 + WRITER_SLACK) + 64:
            break
    bits, per, symbols, model_of, freq = best
    stream = _encode_stream(symbols.reshape(-1), symbols.shape[1], model_of, freq, bits,
                            kernels or default_kernels(), lanes_log2)
    return header + bytes([per]) + stream


def decode_ransrow(data: bytes, rows: int, cols: int, *, kernels=None,
                   version: int = FORMAT_VERSION) -> np.ndarray:
    """Binary (rows, cols) uint8 mask of a `ransrow` section of a format-``version`` file."""
    counts, pos = _read_row_header(data, rows, cols)
    grid = np.zeros((rows, cols), np.uint8)
    grid[counts == cols] = 1
    mixed = np.flatnonzero((counts > 0) & (counts < cols))
    if not mixed.size:
        if pos != len(data):
            raise DecodeError(f"ransrow: {len(data) - pos} bytes after a header without mixed "
                              f"rows, expected 0")
        return grid
    per = _byte(data, pos, "ransrow")
    if per not in PER_SYMBOL:
        raise DecodeError(f"ransrow: {per} elements per symbol, expected one of {PER_SYMBOL}")
    per_row = -(-cols // per)
    states, words, n_words = _open_stream(data, pos + 1, "ransrow", mixed.size * per_row, version)
    kernels = kernels or default_kernels()
    ones = counts[mixed]
    distinct, model_of = np.unique(ones, return_inverse=True)
    weight = level_weights(np.stack([cols - distinct, distinct], 1))
    freq = np.empty((distinct.size, 1 << per), np.int64)
    cum = np.empty((distinct.size, (1 << per) + 1), np.int64)
    start = np.empty((distinct.size, PROB_ONE >> BUCKET_BITS), np.uint8)
    kernels.row_models(weight, per, freq, cum, start)
    if mixed.size * per_row > _max_symbols(n_words, states.size, int(freq.max())):
        raise DecodeError(f"ransrow: {len(data)} bytes cannot hold {mixed.size * per_row} symbols")
    bits = _digits(1 << per, 2, per).astype(np.uint8)
    tab = _units(bits).reshape(-1)
    direct = mixed.size == rows and per_row * per == cols  # decode straight into the grid
    block = grid if direct else np.empty((mixed.size, per_row * per), np.uint8)
    seen = np.zeros(mixed.size, np.int64)
    read = kernels.decode_rows(
        words, n_words, states, per_row, model_of.astype(np.int64), cum, start, tab,
        block.reshape(-1).view(tab.dtype), bits.sum(axis=1, dtype=np.int64), seen)
    _close_stream(read, n_words, states, "ransrow")
    pad = ones > cols - ones
    if (block[:, cols:] != pad[:, None]).any():
        raise DecodeError("ransrow: padding after a row's last element is not its more frequent bit")
    seen -= pad * (per_row * per - cols)
    bad = np.flatnonzero(seen != ones)
    if bad.size:
        raise DecodeError(f"ransrow: row {int(mixed[bad[0]])} decodes to {int(seen[bad[0]])} "
                          f"ones, expected {int(ones[bad[0]])}")
    if not direct:
        grid[mixed] = block[:, :cols]
    return grid


# --- ransnm -------------------------------------------------------------------------------

def _check_nm(N: int, M: int, cols: int, what: str, error: type) -> int:
    if not (1 <= M <= MAX_M and 0 <= N <= M):
        raise error(f"{what}: N:M is {N}:{M}, expected 0 <= N <= M and 1 <= M <= {MAX_M}")
    patterns = comb(M, N)
    if patterns > MAX_SYMBOLS["ransnm"]:
        raise error(f"{what}: C({M},{N}) = {patterns} patterns, expected at most "
                    f"{MAX_SYMBOLS['ransnm']}")
    if cols % M:
        raise error(f"{what}: {cols} columns, expected a multiple of M = {M}")
    return patterns


def _patterns(N: int, M: int) -> np.ndarray:
    """(C(M,N), M) uint8: the pattern of each colex rank (position 0 = first element of a group)."""
    table = np.array([[comb(p, j) for j in range(N + 1)] for p in range(M + 1)], np.int64)
    rest = np.arange(comb(M, N), dtype=np.int64)
    out, rows = np.zeros((rest.size, M), np.uint8), np.arange(rest.size)
    for j in range(N, 0, -1):  # the j-th one sits at the largest p with C(p, j) <= rest
        p = np.searchsorted(table[:, j], rest, side="right") - 1
        out[rows, p] = 1
        rest -= table[p, j]
    return out


def _ranks(groups: np.ndarray, N: int) -> np.ndarray:
    M = groups.shape[1]
    table = np.array([[comb(p, j) for j in range(N + 2)] for p in range(M + 1)], np.int64)
    rank, ones = np.zeros(len(groups), np.int64), np.zeros(len(groups), np.int64)
    for p in range(M):
        ones += groups[:, p]
        rank += np.where(groups[:, p] == 1, table[p, np.minimum(ones, N + 1)], 0)
    return rank


def _uniform_cost(size: int) -> float:
    """Mean extra bits per symbol of uniform_freqs(size) over the ideal log2(size)."""
    freq = uniform_freqs(size)
    return float(PROB_BITS - np.log2(freq).mean() - log2(size))


def _choose_group(patterns: int, M: int) -> int:
    """Writer's rule: most ranks per symbol within the slack and the table limit."""
    best = 1
    for per in range(2, 17):
        size = patterns ** per
        if size > MAX_SYMBOLS["ransnm"] or size * per * M > WRITER_NM_TABLE:
            break
        if _uniform_cost(size) <= WRITER_SLACK * log2(size):
            best = per
    return best


def encode_ransnm(levels: np.ndarray, N: int, M: int, *, kernels=None,
                  lanes_log2: int | None = None) -> bytes:
    """(rows, cols) 0/1 mask with exactly N ones in each group of M along the last dim."""
    grid = np.ascontiguousarray(levels, np.uint8)
    if grid.ndim != 2:
        raise UsageError(f"ransnm: a {grid.ndim}-D array, expected rows x cols")
    patterns = _check_nm(N, M, grid.shape[1], "ransnm", UsageError)
    groups = grid.reshape(-1, M)
    if groups.size and (int(groups.max()) > 1 or (groups.sum(axis=1) != N).any()):
        raise UsageError(f"ransnm: a group of {M} elements does not hold exactly {N} ones")
    if patterns == 1 or not len(groups):
        return b""
    per = _choose_group(patterns, M)
    size = patterns ** per
    freq = uniform_freqs(size)
    symbols = _group(_ranks(groups, N), patterns, per, 0)
    bits = _cost_bits(symbols, freq)
    return bytes([per]) + _encode_static(symbols, freq, bits, kernels or default_kernels(),
                                         lanes_log2)


def decode_ransnm(data: bytes, rows: int, cols: int, N: int, M: int, *, kernels=None,
                  version: int = FORMAT_VERSION) -> np.ndarray:
    """(rows, cols) uint8 N:M mask of a `ransnm` section of a format-``version`` file."""
    patterns = _check_nm(N, M, cols, "ransnm", DecodeError)
    n_groups = rows * cols // M
    if patterns == 1 or not n_groups:
        if data:
            raise DecodeError(f"ransnm: {len(data)} bytes for a mask with one pattern, expected 0")
        return np.tile(_patterns(N, M)[0], n_groups).reshape(rows, cols)
    per = _byte(data, 0, "ransnm")
    if per < 1 or patterns ** per > MAX_SYMBOLS["ransnm"]:
        raise DecodeError(f"ransnm: {per} ranks per symbol, expected 1 <= G and "
                          f"{patterns}^G <= {MAX_SYMBOLS['ransnm']}")
    size = patterns ** per
    n_symbols = -(-n_groups // per)
    kernels = kernels or default_kernels()
    symbols, _ = _decode_static(data, 1, n_symbols, uniform_freqs(size),
                                np.arange(size, dtype=np.uint16), "ransnm", kernels, version)
    digits = _digits(size, patterns, per).astype(np.uint16)
    if (digits[symbols[-1], per - (n_symbols * per - n_groups):] != 0).any():
        raise DecodeError("ransnm: padding ranks after the last group are not 0")
    table = _units(_patterns(N, M))
    out = np.empty((n_symbols * per, table.shape[1]), table.dtype)
    kernels.expand_groups(symbols, digits, table, out.reshape(-1))
    return out.view(np.uint8).reshape(-1)[:rows * cols].reshape(rows, cols)
