"""The registered encodings and the checked `encode` / `decode` entry points.

An encoding maps a flat array of symbols 0..K-1 (row-major over ``shape``) to
bytes and back. Decoders treat their input as hostile and raise DecodeError on
anything malformed; the element count comes from ``shape``, which the caller
(the artifact reader) has already capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb, prod
from typing import Callable

import numpy as np

from ...errors import DecodeError, UsageError
from .. import rans
from ..constants import FORMAT_VERSION, SYMBOL_ENCODINGS_BY_VERSION
from . import bitpack, entropy, nm, trits

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Encoding:
    name: str
    compressible: bool  # worth an outer zstd / zlib pass (entropy-coded output is not)
    requires: Callable[[int, Shape, int, int], str | None]  # why it cannot apply, or None
    encode: Callable[[np.ndarray, int, Shape, int, int], bytes]
    decode: Callable[[bytes, int, Shape, int, int, int], np.ndarray]  # flat uint8; last: version


def _any(K: int, shape: Shape, n: int, m: int) -> None:
    return None


def _binary(K: int, shape: Shape, n: int, m: int) -> str | None:
    return None if K == 2 else f"K is {K}, expected 2"


def _binary_rows(K: int, shape: Shape, n: int, m: int) -> str | None:
    if len(shape) < 2:
        return f"shape {shape} has {len(shape)} dimensions, expected at least 2"
    return _binary(K, shape, n, m)


def _binary_nm(K: int, shape: Shape, n: int, m: int) -> str | None:
    return _binary(K, shape, n, m) or nm.check_nm(n, m, shape)


def _ternary(K: int, shape: Shape, n: int, m: int) -> str | None:
    return None if K == 3 else f"K is {K}, expected 3"


def _rows_cols(shape: Shape) -> tuple[int, int]:
    return shape[0], prod(shape[1:])


def _groups_grid(shape: Shape) -> tuple[int, int]:
    """N:M masks as (rows, last dimension): groups run along the last dimension."""
    return prod(shape[:-1]), shape[-1]


def _rans_nm(K: int, shape: Shape, n: int, m: int) -> str | None:
    why = _binary(K, shape, n, m) or nm.check_nm(n, m, shape)
    if why is None and comb(m, n) > rans.MAX_SYMBOLS["ransnm"]:
        return f"C({m},{n}) = {comb(m, n)} patterns, expected at most {rans.MAX_SYMBOLS['ransnm']}"
    return why


_REGISTRY = {e.name: e for e in (
    Encoding("bits", True, _binary,
             lambda s, K, shape, n, m: bitpack.pack_bits(s),
             lambda d, K, shape, n, m, v=FORMAT_VERSION: bitpack.unpack_bits(d, prod(shape), "bits")),
    Encoding("planes", True, _any,
             lambda s, K, shape, n, m: bitpack.encode_planes(s, K),
             lambda d, K, shape, n, m, v=FORMAT_VERSION: bitpack.decode_planes(d, K, prod(shape))),
    Encoding("ans0", False, _any,
             lambda s, K, shape, n, m: entropy.encode_ans0(s, K),
             lambda d, K, shape, n, m, v=FORMAT_VERSION: entropy.decode_ans0(d, K, prod(shape))),
    Encoding("ansrow", False, _binary_rows,
             lambda s, K, shape, n, m: entropy.encode_ansrow(s, *_rows_cols(shape)),
             lambda d, K, shape, n, m, v=FORMAT_VERSION: entropy.decode_ansrow(d, *_rows_cols(shape))),
    Encoding("nm", False, _binary_nm,
             lambda s, K, shape, n, m: nm.encode_nm(s, n, m),
             lambda d, K, shape, n, m, v=FORMAT_VERSION: nm.decode_nm(d, n, m, prod(shape))),
    Encoding("trits5", True, _ternary,
             lambda s, K, shape, n, m: trits.encode_trits5(s),
             lambda d, K, shape, n, m, v=FORMAT_VERSION: trits.decode_trits5(d, prod(shape))),
    Encoding("rans0", False, _any,
             lambda s, K, shape, n, m: rans.encode_rans0(s, K),
             lambda d, K, shape, n, m, v=FORMAT_VERSION: rans.decode_rans0(d, prod(shape), K, version=v)),
    Encoding("ransrow", False, _binary_rows,
             lambda s, K, shape, n, m: rans.encode_ransrow(s.reshape(_rows_cols(shape))),
             lambda d, K, shape, n, m, v=FORMAT_VERSION: rans.decode_ransrow(d, *_rows_cols(shape), version=v)),
    Encoding("ransnm", False, _rans_nm,
             lambda s, K, shape, n, m: rans.encode_ransnm(s.reshape(_groups_grid(shape)), n, m),
             lambda d, K, shape, n, m, v=FORMAT_VERSION: rans.decode_ransnm(d, *_groups_grid(shape), n, m, version=v)),
)}

ENCODINGS: tuple[str, ...] = tuple(_REGISTRY)  # every encoding of any version
COMPRESSIBLE: frozenset[str] = frozenset(e.name for e in _REGISTRY.values() if e.compressible)


def _lookup(name: str, error: type[Exception]) -> Encoding:
    if name not in _REGISTRY:
        raise error(f"encoding: got {name!r}, expected one of {', '.join(ENCODINGS)}")
    return _REGISTRY[name]


def _check_params(K: int, shape: Shape, error: type[Exception]) -> Shape:
    if not (isinstance(K, (int, np.integer)) and not isinstance(K, bool) and 1 <= K <= 256):
        raise error(f"K: got {K!r}, expected an integer in 1..256")
    dims = tuple(shape)
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
               for d in dims):
        raise error(f"shape: got {shape!r}, expected non-negative integers")
    return tuple(int(d) for d in dims)


def flat_symbols(symbols: np.ndarray, K: int, shape: Shape) -> np.ndarray:
    """Check ``symbols`` against K and shape; return them flat as contiguous uint8."""
    shape = _check_params(K, shape, UsageError)
    arr = np.asarray(symbols)
    if arr.dtype != np.bool_ and not np.issubdtype(arr.dtype, np.integer):
        raise UsageError(f"symbols: dtype {arr.dtype}, expected an integer or bool array")
    if arr.size != prod(shape):
        raise UsageError(f"symbols: {arr.size} elements, expected {prod(shape)} for shape {shape}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= K):
        raise UsageError(f"symbols: values {int(arr.min())}..{int(arr.max())}, expected 0..{K - 1}")
    return np.ascontiguousarray(arr.reshape(-1), dtype=np.uint8)


def encodings(version: int = FORMAT_VERSION) -> tuple[str, ...]:
    """The symbol encodings format ``version`` defines."""
    return SYMBOL_ENCODINGS_BY_VERSION[version]


def _applies(name: str, sym: np.ndarray, K: int, shape: Shape, n: int, m: int) -> bool:
    if _REGISTRY[name].requires(K, shape, n, m) is not None:
        return False
    return name not in ("nm", "ransnm") or nm.pattern_holds(sym, n, m)


def applicable(name: str, symbols: np.ndarray, K: int, shape: Shape,
               n: int = 0, m: int = 0) -> bool:
    """Whether encoding ``name`` can code these symbols (nm: whether the N:M pattern holds)."""
    _lookup(name, UsageError)
    shape = _check_params(K, shape, UsageError)
    return _applies(name, flat_symbols(symbols, K, shape), K, shape, n, m)


def encode(name: str, symbols: np.ndarray, *, K: int, shape: Shape,
           n: int = 0, m: int = 0) -> bytes:
    """Encode symbols 0..K-1 of a tensor of ``shape`` with encoding ``name``."""
    enc = _lookup(name, UsageError)
    sym, shape = flat_symbols(symbols, K, shape), _check_params(K, shape, UsageError)
    why = enc.requires(K, shape, n, m)
    if why:
        raise UsageError(f"{name}: {why}")
    return enc.encode(sym, K, shape, n, m)


def decode(name: str, data: bytes, *, K: int, shape: Shape,
           n: int = 0, m: int = 0, version: int = FORMAT_VERSION) -> np.ndarray:
    """Decode ``data`` (a section of a format-``version`` file) to a uint8 array of ``shape``;
    DecodeError on anything malformed."""
    enc = _lookup(name, DecodeError)
    shape = _check_params(K, shape, DecodeError)
    why = enc.requires(K, shape, n, m)
    if why:
        raise DecodeError(f"{name}: {why}")
    return enc.decode(bytes(data), K, shape, n, m, version).reshape(shape)
