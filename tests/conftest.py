"""Shared fixtures (the helpers they build on are in tests/tiny.py)."""

from __future__ import annotations

import pytest
import torch

from ticketpack.ticket import Ticket
from ticketpack.text.tokenizer import SentencePieceTokenizer, train_sentencepiece

from ticketpack.errors import UsageError

from tests.tiny import HAVE_V1_EXTRA, make_ticket, corpus_slice


@pytest.fixture
def ticket() -> Ticket:
    return make_ticket()


@pytest.fixture(scope="session")
def sp(tmp_path_factory) -> SentencePieceTokenizer:
    """A 512-piece BPE model trained on the first 200 kB of the bundled corpus (~0.1 s)."""
    folder = tmp_path_factory.mktemp("sp")
    corpus_slice(folder / "slice.txt", 200_000)
    return SentencePieceTokenizer(train_sentencepiece(folder / "slice.txt", folder / "m", 512))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """As pytest_runtest_call below, for fixtures that write a format-v1 entropy-coded file."""
    outcome = yield
    _skip_without_v1(outcome)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Without the optional `v1` extra (constriction), a test that reaches format v1's
    entropy-coded sections skips with the library's own one-line reason; with it installed
    (CI's `.[test]`) nothing is skipped. tests/test_optional_v1.py checks that everything else
    runs without it."""
    outcome = yield
    _skip_without_v1(outcome)


def _skip_without_v1(outcome) -> None:
    exc = outcome.excinfo[1] if outcome.excinfo else None
    if not HAVE_V1_EXTRA and isinstance(exc, UsageError) and "ticketpack[v1]" in str(exc):
        outcome.force_exception(pytest.skip.Exception(f"needs the v1 extra: {exc}", _use_item_location=True))
