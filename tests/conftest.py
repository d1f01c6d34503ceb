"""Shared fixtures (the helpers they build on are in tests/tiny.py)."""

from __future__ import annotations

import pytest
import torch

from ticketpack.ticket import Ticket

from tests.tiny import make_ticket


@pytest.fixture
def ticket() -> Ticket:
    return make_ticket()


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield
