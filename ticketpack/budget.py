"""Byte budgets: plain bytes, decimal units (16MB = 16,000,000) or binary units (16MiB)."""

from __future__ import annotations

import re

from .errors import UsageError

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9,
    "kib": 2**10, "mib": 2**20, "gib": 2**30,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
MAX_DIGITS = 30  # far past any byte count; keeps int() clear of Python's digit limit


def parse_budget(text: str | int) -> int:
    """Parse a budget such as ``16000000``, ``16MB``, ``15.5MB`` or ``16MiB`` into bytes."""
    if isinstance(text, int):
        if text < 0:
            raise UsageError(f"budget: got {text}, expected a non-negative byte count")
        return text
    match = _PATTERN.match(text)
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise UsageError(f"budget: got {text!r}, expected bytes such as 16000000, 16MB or 16MiB")
    number = match.group(1)
    if len(number) > MAX_DIGITS:
        raise UsageError(f"budget: a number of {len(number):,} digits, expected at most {MAX_DIGITS}")
    whole, _, frac = number.partition(".")
    scale = _UNITS[unit]
    # Exact integer arithmetic: 15.5MB is 15,500,000 bytes, not a float rounding of it.
    value = int(whole) * scale + (int(frac) * scale) // 10 ** len(frac) if frac else int(whole) * scale
    if frac and (int(frac) * scale) % 10 ** len(frac):
        raise UsageError(f"budget: {text!r} is not a whole number of bytes")
    return value
