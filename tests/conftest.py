"""Shared fixtures (the helpers they build on are in tests/tiny.py)."""

from __future__ import annotations

import pytest
import torch

from ticketpack.text.corpus import bundled_corpus_path, read_text_file
from ticketpack.ticket import Ticket
from ticketpack.text.tokenizer import SentencePieceTokenizer, train_sentencepiece

from tests.tiny import make_ticket


@pytest.fixture
def ticket() -> Ticket:
    return make_ticket()


@pytest.fixture(scope="session")
def sp(tmp_path_factory) -> SentencePieceTokenizer:
    """A 512-piece BPE model trained on the first 200 kB of the bundled corpus (~0.1 s)."""
    folder = tmp_path_factory.mktemp("sp")
    (folder / "slice.txt").write_bytes(read_text_file(bundled_corpus_path(), 200_000))
    return SentencePieceTokenizer(train_sentencepiece(folder / "slice.txt", folder / "m", 512))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield
