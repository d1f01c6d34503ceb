"""Externally trained ternary weights: detected exactly, packed at their entropy, loaded exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ticketpack import api
from ticketpack.errors import BudgetExceededError, UsageError
from ticketpack.ternary import ternary_form


def trits(shape, p=(0.3, 0.4, 0.3), seed=0):
    return np.random.default_rng(seed).choice([-1, 0, 1], size=shape, p=p).astype(np.int8)


def test_ternary_form_per_tensor_and_per_row():
    t = trits((8, 16))
    got = ternary_form(t.astype(np.float32) * np.float32(0.125))
    assert got is not None and got[1].shape == () and np.array_equal(got[0], t)
    rows = np.linspace(0.25, 2.0, 8).astype(np.float16).astype(np.float32)
    got = ternary_form(t * rows[:, None])
    assert got is not None and got[1].shape == (8,) and np.array_equal(got[0], t)
    assert ternary_form(np.random.default_rng(1).normal(size=(8, 16)).astype(np.float32)) is None
    assert ternary_form((t * np.float32(0.1)).astype(np.float32)) is None  # 0.1 is not fp16-exact


def test_pack_ternary_round_trips_exactly_near_entropy(tmp_path):
    n_rows, n_cols = 256, 512
    t = trits((n_rows, n_cols))
    rows = np.random.default_rng(2).uniform(0.5, 1.5, n_rows).astype(np.float16).astype(np.float32)
    state = {"w": torch.from_numpy(t * rows[:, None]), "norm": torch.linspace(0.5, 1.5, 512)}
    save_file(state, str(tmp_path / "tri.safetensors"))
    out = tmp_path / "tri.tpk"
    api.pack_ternary(tmp_path / "tri.safetensors", out)
    ticket, loaded, _ = api.load_verified(out)
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["norm"], state["norm"])
    report = api.size(out)
    row = next(r for r in report.tensors if r.name == "w")
    counts = np.bincount((t + 1).ravel(), minlength=3) / t.size
    h = -sum(c * math.log2(c) for c in counts if c)
    trit_bytes = row.bytes - row.scale_bytes
    assert row.kind == "ternary" and trit_bytes <= 1.005 * t.size * h / 8 + 64
    assert trit_bytes <= math.ceil(t.size / 5)  # never worse than 5 trits per byte


def test_pack_ternary_refuses_non_ternary_and_budget(tmp_path):
    save_file({"w": torch.randn(4, 4)}, str(tmp_path / "dense.safetensors"))
    with pytest.raises(UsageError, match="ternary"):
        api.pack_ternary(tmp_path / "dense.safetensors", tmp_path / "x.tpk")
    save_file({"w": torch.from_numpy(trits((64, 64)).astype(np.float32))}, str(tmp_path / "t.safetensors"))
    with pytest.raises(BudgetExceededError):
        api.pack_ternary(tmp_path / "t.safetensors", tmp_path / "y.tpk", budget=100)
    assert not (tmp_path / "y.tpk").exists()
