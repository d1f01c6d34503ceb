"""Tiny tickets and model configs that build in milliseconds, shared by the tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ticketpack.train.checkpoint import save_checkpoint
from ticketpack.nn.layers import bind_seed, randomize_scores
from ticketpack.nn.masking import MaskSpec
from ticketpack.models.gpt_model import GPT, GPTConfig
from ticketpack.text.corpus import bundled_corpus_path, read_text_file
from ticketpack.ticket import MaskedTensor, PlainTensor, Ticket

# format v1's entropy-coded sections (ans0 / ansrow / nm) need the optional `v1` extra
# (constriction); without it the tests of those codecs skip (tests/conftest.py)
HAVE_V1_EXTRA = importlib.util.find_spec("constriction") is not None

TINY_CONFIG = dict(vocab_size=256, num_layers=1, model_dim=32, num_heads=2, num_kv_heads=1,
                   mlp_mult=2)
TINY_QUICKSTART = dict(model_dim=32, num_layers=1, num_heads=2, num_kv_heads=2, mlp_mult=2)


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


def corpus_slice(path: Path, max_bytes: int) -> Path:
    """Write the first ``max_bytes`` of the bundled corpus (decompressed) to ``path``."""
    path.write_bytes(read_text_file(bundled_corpus_path(), max_bytes=max_bytes))
    return path


TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\n") * 6


def make_checkpoint(path, seed: int = 11, mask: str = "binary") -> GPT:
    """A tiny masked GPT with arbitrary scores, saved as a training checkpoint."""
    config = GPTConfig.from_dict({**TINY_CONFIG, "mask": mask})
    model = GPT(config, masked=True)
    randomize_scores(model, 0)  # any scores: the public API packs whatever it is given
    bind_seed(model, seed)
    save_checkpoint(path, model, seed=seed, config=config.to_dict())
    return model
