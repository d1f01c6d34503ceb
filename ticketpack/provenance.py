"""What an artifact or log records about the software that made it."""

from __future__ import annotations

import numpy as np
import torch

from .version import __version__


def default_provenance(extra: dict | None = None) -> dict:
    """Library versions (and any caller facts) recorded in artifacts and logs."""
    out = {"ticketpack": __version__, "torch": torch.__version__, "numpy": np.__version__}
    out.update(extra or {})
    return out
