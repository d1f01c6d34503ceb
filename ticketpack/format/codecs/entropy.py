"""Entropy-coded masks: `ans0` (order-0, one model per tensor) and `ansrow`
(binary, one density per row), both through constriction's ANS coder.

ANS stream: the words of ``constriction.stream.stack.AnsCoder`` (constriction 0.5
default preset: 32-bit words, 64-bit state, 24-bit probabilities) as little-endian
u32, in ``get_compressed()`` order; symbols are pushed with ``encode_reverse`` so
they decode first to last. Models come from exact integer counts in the header,
so encoder and decoder quantise identically. A decoder checks that the stream is
used up exactly and that the decoded symbols match the declared counts.

Varints are unsigned LEB128 of minimal length.

`ans0` layout (n elements, levels 0..K-1):
  K-1 varints: count of level 0, 1, ..., K-2 (level K-1 gets n minus their sum);
  then, unless at most one level occurs (no stream at all), the ANS stream of the
  levels that occur, renumbered 0..L-1 in level order, under
  ``Categorical(float64(counts of those levels), perfect=False)``.

`ansrow` layout (binary; R = shape[0] rows of C = n / R elements, row-major):
  varint lo (the smallest row count); one byte w (bits per offset, at most
  bit_length(C)); R offsets count_r - lo at w bits each, LSB first, row after row,
  zero-padded to a byte (packed like `bits`); then the ANS stream holding, for each
  row with 0 < count_r < C, its elements under ``Bernoulli(count_r / C, perfect=False)``
  (rows 0 first when decoding; all-zero and all-one rows take no words).
"""

from __future__ import annotations

import numpy as np

from ...errors import DecodeError, UsageError
from ..varint import get_varint, put_varint
from .bitpack import pack_bits, unpack_bits


V1_EXTRA = "v1"  # the optional extra that installs constriction: pip install 'ticketpack[v1]'


def constriction_stream():
    """``constriction.stream``, imported on first use: only format-v1 ANS sections need it, and
    it is an optional extra (``V1_EXTRA``)."""
    try:
        import constriction
    except ImportError:
        raise UsageError(f"this artifact's format-v1 entropy-coded sections (ans0, ansrow, nm) need "
                         f"the constriction package: pip install 'ticketpack[{V1_EXTRA}]'") from None
    return constriction.stream


def _model():
    return constriction_stream().model


def _AnsCoder(*args):
    return constriction_stream().stack.AnsCoder(*args)


# --- ANS word streams ---------------------------------------------------------

def _words_to_bytes(coder) -> bytes:
    return coder.get_compressed().astype("<u4").tobytes()


def _coder_from_bytes(data: bytes, what: str):
    if len(data) % 4:
        raise DecodeError(f"{what}: ANS stream has {len(data)} bytes, expected a multiple of 4")
    try:
        return _AnsCoder(np.frombuffer(data, "<u4").astype(np.uint32))
    except ValueError as exc:
        raise DecodeError(f"{what}: invalid ANS stream ({exc})") from None


def _check_used_up(coder, what: str) -> None:
    if not coder.is_empty():
        raise DecodeError(f"{what}: ANS stream has data left after the last symbol")


# --- ans0: order-0 model from the symbol histogram ----------------------------

CHUNK = 1 << 22  # symbols coded per call, to bound temporary memory (same stream as one call)


def encode_ans0(sym: np.ndarray, K: int) -> bytes:
    counts = np.bincount(sym, minlength=K)
    header = b"".join(put_varint(int(c)) for c in counts[:-1])
    present = np.flatnonzero(counts)
    if len(present) < 2:
        return header
    # Code only the levels present: absent levels take no probability mass.
    index = np.zeros(K, np.int32)
    index[present] = np.arange(len(present), dtype=np.int32)
    model = _model().Categorical(counts[present].astype(np.float64), perfect=False)
    coder = _AnsCoder()
    for start in reversed(range(0, sym.size, CHUNK)):  # a stack: push the tail first
        coder.encode_reverse(index[sym[start:start + CHUNK]], model)
    return header + _words_to_bytes(coder)


def _read_histogram(data: bytes, K: int, n: int) -> tuple[np.ndarray, int]:
    counts, pos = np.zeros(K, np.int64), 0
    for level in range(K - 1):
        counts[level], pos = get_varint(data, pos, n, f"ans0: count of level {level}")
    rest = n - int(counts.sum())
    if rest < 0:
        raise DecodeError(f"ans0: histogram counts sum to {int(counts.sum())}, expected {n}")
    counts[K - 1] = rest
    return counts, pos


def decode_ans0(data: bytes, K: int, n: int) -> np.ndarray:
    counts, pos = _read_histogram(data, K, n)
    present = np.flatnonzero(counts)
    if len(present) < 2:
        if pos != len(data):
            raise DecodeError(f"ans0: {len(data) - pos} bytes after a single-level histogram, "
                              f"expected 0")
        return np.full(n, present[0] if len(present) else 0, np.uint8)
    coder = _coder_from_bytes(data[pos:], "ans0")
    model = _model().Categorical(counts[present].astype(np.float64), perfect=False)
    out, seen = np.empty(n, np.uint8), np.zeros(len(present), np.int64)
    for start in range(0, n, CHUNK):
        index = coder.decode(model, min(CHUNK, n - start))
        seen += np.bincount(index, minlength=len(present))
        out[start:start + len(index)] = present[index]
    _check_used_up(coder, "ans0")
    if not np.array_equal(seen, counts[present]):
        raise DecodeError("ans0: decoded symbols do not match the declared histogram")
    return out


def encode_ansrow(sym: np.ndarray, rows: int, cols: int) -> bytes:
    grid = sym.reshape(rows, cols)
    counts = grid.sum(axis=1, dtype=np.int64)
    lo = int(counts.min()) if rows else 0
    width = int(counts.max() - lo).bit_length() if rows else 0
    offsets = ((counts - lo)[:, None] >> np.arange(width)) & 1
    header = put_varint(lo) + bytes([width]) + pack_bits(offsets.reshape(-1))
    coder = _AnsCoder()
    for r in range(rows - 1, -1, -1):  # a stack: the last row pushed is popped first
        if 0 < counts[r] < cols:
            coder.encode_reverse(grid[r].astype(np.int32),
                                 _model().Bernoulli(counts[r] / cols, perfect=False))
    return header + _words_to_bytes(coder)


def _read_row_counts(data: bytes, rows: int, cols: int) -> tuple[np.ndarray, int]:
    lo, pos = get_varint(data, 0, cols, "ansrow: lowest row count")
    if pos >= len(data):
        raise DecodeError("ansrow: header ends before the count width")
    width, pos = data[pos], pos + 1
    if width > max(cols, 1).bit_length():
        raise DecodeError(f"ansrow: count width {width} bits, expected at most "
                          f"{max(cols, 1).bit_length()}")
    size = (rows * width + 7) // 8
    if pos + size > len(data):
        raise DecodeError(f"ansrow: header needs {pos + size} bytes, got {len(data)}")
    bits = unpack_bits(data[pos:pos + size], rows * width, "ansrow: row counts")
    offsets = (bits.reshape(rows, width).astype(np.int64) << np.arange(width)).sum(axis=1)
    if rows and int(offsets.max()) + lo > cols:
        raise DecodeError(f"ansrow: row count {int(offsets.max()) + lo} exceeds the row length {cols}")
    # One encoding per mask: lo is the smallest count and w the fewest bits that hold the rest.
    if rows and (int(offsets.min()) != 0 or int(offsets.max()).bit_length() != width):
        raise DecodeError(f"ansrow: row-count header is not minimal (lo {lo}, width {width})")
    return lo + offsets, pos + size


def decode_ansrow(data: bytes, rows: int, cols: int) -> np.ndarray:
    counts, pos = _read_row_counts(data, rows, cols)
    coder = _coder_from_bytes(data[pos:], "ansrow")
    grid = np.zeros((rows, cols), np.uint8)
    for r in range(rows):
        c = int(counts[r])
        if c == cols:
            grid[r] = 1
        elif c:
            grid[r] = coder.decode(_model().Bernoulli(c / cols, perfect=False), cols)
            if int(grid[r].sum()) != c:
                raise DecodeError(f"ansrow: row {r} decodes to {int(grid[r].sum())} ones, "
                                  f"expected {c}")
    _check_used_up(coder, "ansrow")
    return grid.reshape(-1)
