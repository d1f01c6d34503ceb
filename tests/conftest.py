"""Shared fixtures: tiny tickets and models that build in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ticketpack.masking import MaskSpec
from ticketpack.ticket import MaskedTensor, PlainTensor, Ticket

TINY_CONFIG = dict(vocab_size=256, num_layers=1, model_dim=32, num_heads=2, num_kv_heads=1,
                   mlp_mult=2)


def make_ticket(seed: int = 7, density: float = 0.4, with_scale: bool = True) -> Ticket:
    """A small hand-made ticket: a binary, a 4-level and a plain tensor."""
    gen = np.random.default_rng(seed)
    binary = (gen.random((24, 16)) < density).astype(np.uint8)
    levels = gen.integers(0, 4, size=(8, 12), dtype=np.uint8)
    scale = np.linspace(0.5, 1.5, 24).astype(np.float16) if with_scale else None
    return Ticket(seed=seed, config={"note": "hand-made"}, tensors=[
        MaskedTensor("a.weight", (24, 16), "xavier_uniform", MaskSpec.parse("binary"), binary, scale),
        MaskedTensor("b.weight", (8, 12), "signed_constant_he", MaskSpec.parse("multibit:4"), levels,
                     np.array(0.75, dtype=np.float16)),
        PlainTensor("gain", np.array([1.0, -2.5, 3.25], dtype=np.float16)),
    ], provenance={"ticketpack": "test"})


@pytest.fixture
def ticket() -> Ticket:
    return make_ticket()


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield
