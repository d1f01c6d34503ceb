"""The torch-free format core: everything a reader or writer of .tpk artifacts needs.

Imports only numpy, zstandard and the standard library (numba when importable, for speed:
the same bits). ``constants`` names the format's vocabulary; ``container`` reads, checks
and writes files; ``header`` validates headers; ``sections`` and ``codecs`` encode tensors;
``philox`` regenerates frozen weights; ``tensors`` holds the decoded ticket and its
effective weights; ``digest`` hashes them. The torch bridge (``ticketpack.ticket``,
``ticketpack.artifact``) sits on top.
"""

from .constants import DEFAULT_LIMITS, FORMAT_VERSION, MAGIC, RNG_ID, Limits
from .container import (ArtifactInfo, check_digests, decode_artifact, encode_artifact,
                        load_artifact, parse_artifact, read_artifact_bytes, verify_weights,
                        write_artifact)
from .maskspec import MaskSpec
from .tensors import (Int8Tensor, MaskedTensor, PlainTensor, TernaryTensor, Ticket,
                      effective_weights)

__all__ = ["DEFAULT_LIMITS", "FORMAT_VERSION", "MAGIC", "RNG_ID", "Limits", "ArtifactInfo",
           "check_digests", "decode_artifact", "encode_artifact", "load_artifact", "parse_artifact",
           "read_artifact_bytes", "verify_weights", "write_artifact", "MaskSpec", "Int8Tensor",
           "MaskedTensor", "PlainTensor", "TernaryTensor", "Ticket", "effective_weights"]
