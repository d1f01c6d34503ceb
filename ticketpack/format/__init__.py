"""The torch-free format core: everything a reader or writer of .tpk artifacts needs.

Imports only numpy, zstandard and the standard library (numba when importable, for speed:
the same bits). ``constants`` names the format's vocabulary; ``container`` reads, checks
and writes files; ``header`` validates headers; ``sections`` and ``codecs`` encode tensors;
``philox`` regenerates frozen weights; ``tensors`` holds the decoded ticket and its
effective weights; ``digest`` hashes them. The torch bridge (``ticketpack.ticket``,
``ticketpack.artifact``) sits on top.
"""

from __future__ import annotations

import importlib
from typing import Any

# Where each public name lives. Loaded on first use, so that importing one light module of
# the core (``constants``, ``maskspec``: the command line's choices) does not load numpy,
# zstandard and numba.
_PUBLIC = {
    "constants": ("DEFAULT_LIMITS", "FORMAT_VERSION", "MAGIC", "RNG_ID", "Limits"),
    "container": ("ArtifactInfo", "check_digests", "decode_artifact", "encode_artifact", "load_artifact",
                  "parse_artifact", "read_artifact_bytes", "verify_weights", "write_artifact"),
    "maskspec": ("MaskSpec",),
    "tensors": ("Int8Tensor", "MaskedTensor", "PlainTensor", "TernaryTensor", "Ticket", "effective_weights"),
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = list(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
