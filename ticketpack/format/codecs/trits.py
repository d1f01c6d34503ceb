"""`trits5`: five trits per byte (3**5 = 243 <= 256), 1.6 bits per trit.

Symbols are 0, 1, 2 (trit + 1). Byte i holds trits 5i..5i+4 as base-3 digits,
least significant first; the final byte holds the remainder and its unused
high digits are zero, so valid bytes are < 243 (< 3**r in a final byte of r trits).
"""

from __future__ import annotations

import numpy as np

from ...errors import DecodeError

_POW3 = np.array([1, 3, 9, 27, 81], np.uint8)


def encode_trits5(sym: np.ndarray) -> bytes:
    padded = np.zeros(-(-sym.size // 5) * 5, np.uint8)
    padded[:sym.size] = sym
    return (padded.reshape(-1, 5) * _POW3).sum(axis=1, dtype=np.uint8).tobytes()


def decode_trits5(data: bytes, n: int) -> np.ndarray:
    if len(data) != -(-n // 5):
        raise DecodeError(f"trits5: got {len(data)} bytes, expected {-(-n // 5)} for {n} trits")
    packed = np.frombuffer(data, np.uint8)
    if len(packed) and int(packed.max()) > 242:
        raise DecodeError(f"trits5: byte value {int(packed.max())} found, expected at most 242")
    rem = n % 5
    if rem and packed[-1] >= 3**rem:
        raise DecodeError(f"trits5: final byte {packed[-1]} holds more than {rem} trits")
    digits = (packed[:, None] // _POW3) % 3
    return digits.reshape(-1)[:n].astype(np.uint8)
