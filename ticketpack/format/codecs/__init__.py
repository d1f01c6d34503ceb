"""Mask and trit encodings: flat arrays of small integer symbols <-> bytes.

Symbols are mask levels 0..K-1 (binary and N:M masks: K = 2) or trits stored as
0, 1, 2 (= trit + 1). Encodings: `bits`, `planes`, `trits5` (both versions), `rans0`,
`ransrow`, `ransnm` (format v2, ``..rans``), `ans0`, `ansrow`, `nm` (format v1, read only in
practice); `choose` picks the smallest together with an outer compression.
"""

from .registry import COMPRESSIBLE, ENCODINGS, applicable, decode, encode, encodings
from .select import choose, entropy_bits

__all__ = ["COMPRESSIBLE", "ENCODINGS", "applicable", "choose", "decode", "encode", "encodings",
           "entropy_bits"]
