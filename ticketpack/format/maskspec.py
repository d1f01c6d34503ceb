"""What a mask is: ``MaskSpec``, parsed from and written as the header's ``mask`` string.

binary      levels 0/1
multibit:K  levels 0..K-1 (2 <= K <= 256)
nm:N:M      binary with exactly N kept in every M consecutive elements of the last dimension
none        no mask at all: every connection kept (effective = frozen * scale); no section
signed:K    levels -(K-1)..K-1 (2 <= K <= 128; format v3), stored as symbols level + K - 1

This is all a loader needs and all an artifact stores. How training finds a mask (the
estimator, a target density) is a training setting: ``ticketpack.nn.mask_training.MaskTraining``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from .constants import COUNTED_MASK_KINDS, MASK_KINDS, MAX_MASK_LEVELS, MAX_SIGNED_LEVELS

_SYNTAX = re.compile(r"binary|none|multibit:(\d{1,3})|nm:(\d{1,3}):(\d{1,3})|signed:(\d{1,3})")


@dataclass(frozen=True)
class MaskSpec:
    """What a mask is: its kind, levels and N:M (the header's ``mask`` string)."""

    kind: str = "binary"  # binary | multibit | nm | none | signed
    levels: int = 2  # K: levels 0..K-1 (2 for binary, nm and none); signed: -(K-1)..K-1
    n: int | None = None  # nm: kept per group
    m: int | None = None  # nm: group size along the input dimension

    def __post_init__(self) -> None:
        if self.kind not in MASK_KINDS:
            raise ConfigError(f"mask kind: {self.kind!r}, expected one of {', '.join(MASK_KINDS)}")
        self._check_levels()

    @property
    def stored(self) -> bool:
        """Whether the artifact holds a mask section (every kind but ``none``)."""
        return self.kind != "none"

    @property
    def alphabet(self) -> int:
        """Symbols a stored mask section codes: 2K - 1 for signed:K, else K."""
        return 2 * self.levels - 1 if self.kind == "signed" else self.levels

    @property
    def offset(self) -> int:
        """What a level adds to become its stored symbol (K - 1 for signed:K, else 0)."""
        return self.levels - 1 if self.kind == "signed" else 0

    def _check_levels(self) -> None:
        if self.kind == "multibit":
            if not _is_int(self.levels) or not 2 <= self.levels <= MAX_MASK_LEVELS:
                raise ConfigError(f"mask levels: {self.levels!r}, expected an integer in 2..{MAX_MASK_LEVELS}")
        elif self.kind == "signed":
            if not _is_int(self.levels) or not 2 <= self.levels <= MAX_SIGNED_LEVELS:
                raise ConfigError(f"mask levels: {self.levels!r} for signed masks, expected an "
                                  f"integer in 2..{MAX_SIGNED_LEVELS}")
        elif self.levels != 2:
            raise ConfigError(f"mask levels: {self.levels!r} for {self.kind} masks, expected 2")
        if self.kind == "nm":
            if not (_is_int(self.n) and _is_int(self.m) and 0 < self.n < self.m <= MAX_MASK_LEVELS):
                raise ConfigError(f"mask nm: N={self.n!r} M={self.m!r}, expected integers 0 < N < M <= {MAX_MASK_LEVELS}")
        elif self.n is not None or self.m is not None:
            raise ConfigError(f"mask nm: N={self.n!r} M={self.m!r} given for {self.kind} masks, expected none")

    @classmethod
    def parse(cls, text: str) -> "MaskSpec":
        """'binary' | 'multibit:K' | 'nm:N:M' | 'none' | 'signed:K'."""
        m = _SYNTAX.fullmatch(str(text).strip())
        if m is None:
            raise ConfigError(f"mask: {text!r}, expected 'binary', 'multibit:K', 'nm:N:M', 'none' "
                              f"or 'signed:K'")
        if m.group(4) is not None:
            return cls("signed", int(m.group(4)))
        if m.group(1) is not None:
            return cls("multibit", int(m.group(1)))
        if m.group(2) is not None:
            return cls("nm", 2, int(m.group(2)), int(m.group(3)))
        return cls(m.group(0), 2)

    def __str__(self) -> str:
        if self.kind in COUNTED_MASK_KINDS:
            return f"{self.kind}:{self.levels}"
        if self.kind == "nm":
            return f"nm:{self.n}:{self.m}"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MaskSpec":
        if not isinstance(data, dict):
            raise ConfigError(f"mask spec: {type(data).__name__}, expected a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"mask spec: unknown key {unknown[0]!r}, expected {', '.join(cls.__dataclass_fields__)}")
        return cls(**data)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
