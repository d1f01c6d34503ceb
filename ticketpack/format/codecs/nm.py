"""`nm`: binary masks with exactly N ones in every group of M consecutive
elements along the last dimension.

Layout: the groups are taken in row-major order (element g*M + p is position p of
group g). A group with ones at positions p_1 < ... < p_N has the colex rank
sum_j C(p_j, j) (j = 1..N) in 0..C(M, N)-1. The ranks, first group first, form one
ANS stream (see `entropy`: constriction ``AnsCoder`` words, little-endian u32)
under ``Uniform(C(M, N))``: log2(C(M, N)) bits per group plus the final state
(at most 8 bytes). A mask with a single possible pattern (N = 0 or N = M) or no
groups is zero bytes.
"""

from __future__ import annotations

from math import comb

import numpy as np

from ...errors import DecodeError, UsageError
from .entropy import constriction_stream

# Uniform models up to 2**20 symbols stay within ~0.25% of log2(C) at 24-bit precision.
MAX_PATTERNS = 2**20
MAX_M = 64
CHUNK = 1 << 20  # groups ranked at a time, to bound temporary memory


def check_nm(n: int, m: int, shape: tuple[int, ...]) -> str | None:
    """Why (n, m, shape) cannot use `nm`, or None when it can."""
    ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (n, m))
    if not (ints and 1 <= m <= MAX_M and 0 <= n <= m):
        return f"N:M is {n!r}:{m!r}, expected 0 <= N <= M and 1 <= M <= {MAX_M}"
    if comb(m, n) > MAX_PATTERNS:
        return f"C({m},{n}) = {comb(m, n)} patterns, expected at most {MAX_PATTERNS}"
    if not shape or shape[-1] % m:
        last = shape[-1] if shape else "none"
        return f"last dimension is {last}, expected a multiple of M = {m}"
    return None


def pattern_holds(sym: np.ndarray, n: int, m: int) -> bool:
    """Whether every group of m consecutive elements holds exactly n ones."""
    return sym.size % m == 0 and all((chunk.sum(axis=1) == n).all()
                                     for chunk in _chunks(sym.reshape(-1, m)))


def _chunks(groups: np.ndarray):
    return (groups[i:i + CHUNK] for i in range(0, len(groups), CHUNK))


def _table(m: int) -> np.ndarray:
    """C(p, j) for p, j in 0..m, as int64 (C(64, 32) < 2**63)."""
    return np.array([[comb(p, j) for j in range(m + 1)] for p in range(m + 1)], np.int64)


def _rank(groups: np.ndarray, table: np.ndarray) -> np.ndarray:
    rank = np.zeros(len(groups), np.int64)
    ones = np.zeros(len(groups), np.int64)  # ones seen so far, including position p
    for p in range(groups.shape[1]):
        ones += groups[:, p]
        rank += np.where(groups[:, p], table[p, ones], 0)
    return rank.astype(np.int32)


def _unrank(ranks: np.ndarray, n: int, table: np.ndarray) -> np.ndarray:
    # The j-th one (counting down from the top) sits at the largest p with C(p, j) <= rest.
    groups = np.zeros((len(ranks), table.shape[0] - 1), np.uint8)
    rest, rows = ranks.astype(np.int64), np.arange(len(ranks))
    for j in range(n, 0, -1):
        p = np.searchsorted(table[:, j], rest, side="right") - 1
        groups[rows, p] = 1
        rest -= table[p, j]
    return groups


def encode_nm(sym: np.ndarray, n: int, m: int) -> bytes:
    """Code a flat mask whose every group of m holds n ones (check_nm already passed)."""
    if not pattern_holds(sym, n, m):
        raise UsageError(f"nm: a group of {m} elements does not hold exactly {n} ones")
    groups = sym.reshape(-1, m)
    if comb(m, n) == 1 or not len(groups):
        return b""
    table = _table(m)
    ranks = np.concatenate([_rank(chunk, table) for chunk in _chunks(groups)])
    coder = constriction_stream().stack.AnsCoder()
    coder.encode_reverse(ranks, constriction_stream().model.Uniform(comb(m, n)))
    return coder.get_compressed().astype("<u4").tobytes()


def decode_nm(data: bytes, n: int, m: int, size: int) -> np.ndarray:
    count = size // m
    if comb(m, n) == 1 or not count:
        if data:
            raise DecodeError(f"nm: {len(data)} bytes for a mask with one pattern, expected 0")
        return np.tile(np.array([1] * n + [0] * (m - n), np.uint8), count)
    if len(data) % 4:
        raise DecodeError(f"nm: ANS stream has {len(data)} bytes, expected a multiple of 4")
    try:
        coder = constriction_stream().stack.AnsCoder(np.frombuffer(data, "<u4").astype(np.uint32))
    except ValueError as exc:
        raise DecodeError(f"nm: invalid ANS stream ({exc})") from None
    ranks = coder.decode(constriction_stream().model.Uniform(comb(m, n)), count)
    if not coder.is_empty():
        raise DecodeError("nm: ANS stream has data left after the last group")
    table = _table(m)
    return np.concatenate([_unrank(r, n, table) for r in _chunks(ranks)]).reshape(-1)
