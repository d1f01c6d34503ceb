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

from .constants import DEFAULT_LIMITS, FORMAT_VERSION, MAGIC, RNG_ID, Limits
from .maskspec import MaskSpec

# The readers, writers and tensors load on first use: the vocabulary above is all a torch-free
# caller such as the command line's option table needs, and the codecs take most of a second.
_LAZY = {name: "container" for name in ("ArtifactInfo", "check_digests", "decode_artifact",
                                         "encode_artifact", "load_artifact", "parse_artifact",
                                         "read_artifact_bytes", "verify_weights", "write_artifact")}
_LAZY.update({name: "tensors" for name in ("Int8Tensor", "MaskedTensor", "PlainTensor",
                                           "TernaryTensor", "Ticket", "effective_weights")})

__all__ = ["DEFAULT_LIMITS", "FORMAT_VERSION", "MAGIC", "RNG_ID", "Limits", "ArtifactInfo",
           "check_digests", "decode_artifact", "encode_artifact", "load_artifact", "parse_artifact",
           "read_artifact_bytes", "verify_weights", "write_artifact", "MaskSpec", "Int8Tensor",
           "MaskedTensor", "PlainTensor", "TernaryTensor", "Ticket", "effective_weights"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value
