"""Strict JSON for untrusted metadata (artifact headers, checkpoint metadata).

``json.loads`` accepts duplicate keys (keeping the last), ``NaN`` / ``Infinity`` and numbers
such as ``1e400`` that become infinity; none of them is valid JSON for ticketpack. Integers
keep Python's digit limit (an over-long integer is refused), nesting is bounded by the
recursion limit, and every failure is one ``error`` naming ``where``.

Writing: ``json_default``, the one ``json.dumps`` fallback for the CLI's output and the
training log.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import ArtifactError, TicketpackError


class _Refused(ValueError):
    """Raised inside the decoder hooks; turned into the caller's error class."""


def loads_strict(text: bytes | str, where: str, error: type[TicketpackError] = ArtifactError) -> Any:
    """Parse UTF-8 JSON: unique keys, finite numbers only; failures raise ``error``."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant,
                          parse_float=_finite_float)
    except _Refused as exc:
        raise error(f"{where}: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError, int digits
        raise error(f"{where}: not valid UTF-8 JSON ({str(exc)[:200]})") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Refused(f"duplicate JSON key {dup[:100]!r}, expected unique keys")
    return out


def _no_constant(token: str) -> None:
    raise _Refused(f"JSON constant {token}, expected finite numbers only")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _Refused(f"JSON number {token[:40]} is out of range for a 64-bit float, "
                       f"expected a finite number")
    return value


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for what ticketpack writes: numpy / torch scalars as numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
