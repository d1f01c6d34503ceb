"""The .tpk artifact for the torch side: the format core's reader and writer, with
verification that hands back a torch state dict.

Everything about the bytes lives in ``ticketpack.format`` (torch-free, docs/FORMAT.md);
this module keeps the names the CLI, the API, tests and benches use.
"""

from __future__ import annotations

import os

from .format.constants import (DEFAULT_LIMITS, FORMAT_VERSION, MAGIC, PREFIX,  # noqa: F401
                               SYMBOL_RAW_PER_ELEMENT, SYMBOL_RAW_SLACK, TRAILER, Limits)
from .format.container import (ArtifactInfo, Progress, assemble, check_digests,  # noqa: F401
                               decode_artifact, encode_artifact, parse_artifact,
                               read_artifact_bytes, verify_weights, write_artifact)
from .ticket import Ticket

_assemble = assemble  # the name tests that re-seal a header use


def load_ticket(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                verify: bool = True) -> Ticket:
    """Read, validate and decode an artifact; with ``verify`` check the regenerated-weight hash."""
    info = parse_artifact(read_artifact_bytes(path, limits), limits)
    ticket = decode_artifact(info)
    if verify:
        check_digests(ticket, info.header, info.version)
    return ticket


def verify_ticket(ticket: Ticket, expected_sha256: str, version: int = FORMAT_VERSION) -> dict:
    """Regenerate the effective weights and compare their ``weights_sha256`` (as format
    ``version`` defines it); returns the torch state dict."""
    return as_state_dict(verify_weights(ticket, expected_sha256, version))


def verify_info(info: ArtifactInfo, ticket: Ticket) -> tuple[dict, dict]:
    """Check a decoded artifact's weight and model digests; returns (torch state dict, digests)."""
    weights, digests = check_digests(ticket, info.header, info.version)
    return as_state_dict(weights), digests


def as_state_dict(weights: dict) -> dict:
    import torch

    return {name: torch.from_numpy(w) for name, w in weights.items()}
