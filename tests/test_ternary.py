"""Externally trained ternary weights: detected exactly, packed at their entropy, loaded exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from click.testing import CliRunner

from ticketpack import api
from ticketpack.artifact import load_ticket
from ticketpack.cli.main import main
from ticketpack.errors import BudgetExceededError, UsageError
from ticketpack.interop.ternary import ternary_form


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


# --- gammas that fp16 cannot hold ------------------------------------------------------------

def _float32_ternary(path, gamma: float) -> np.ndarray:
    from safetensors.numpy import save_file

    trits = np.random.default_rng(3).integers(-1, 2, (16, 24)).astype(np.float32)
    save_file({"w": trits * np.float32(gamma), "bias": np.ones(4, np.float32)}, str(path))
    return trits


def test_non_fp16_gamma_is_refused_saying_why(tmp_path):
    _float32_ternary(tmp_path / "t.safetensors", 0.02)
    with pytest.raises(UsageError, match=r"w is gamma \* \{-1, 0, \+1\} but its gamma 0.0199999996 is not an fp16 value"):
        api.pack_ternary(tmp_path / "t.safetensors", tmp_path / "t.tpk")
    assert not (tmp_path / "t.tpk").exists()
    result = CliRunner().invoke(main, ["pack-ternary", str(tmp_path / "t.safetensors"), "-o", str(tmp_path / "t.tpk")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "--round-gamma" in result.stderr


def test_round_gamma_stores_the_nearest_fp16_and_reports_the_change(tmp_path):
    trits = _float32_ternary(tmp_path / "t.safetensors", 0.02)
    info = api.pack_ternary(tmp_path / "t.safetensors", tmp_path / "t.tpk", round_gamma=True)
    want = abs(float(np.float16(0.02)) - float(np.float32(0.02))) / float(np.float32(0.02))
    assert info["gamma_rounded"] and info["ternary"] == 1 and info["plain"] == 1
    assert info["gamma_max_relative_change"] == pytest.approx(want, rel=1e-6)
    weights = load_ticket(tmp_path / "t.tpk").effective_arrays()
    assert np.array_equal(weights["w"], trits * np.float32(np.float16(0.02)))
    result = CliRunner().invoke(main, ["pack-ternary", str(tmp_path / "t.safetensors"), "-o",
                                       str(tmp_path / "u.tpk"), "--round-gamma", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["gamma_max_relative_change"] == pytest.approx(want)


def test_gamma_outside_fp16_range_is_refused_even_rounded(tmp_path):
    _float32_ternary(tmp_path / "t.safetensors", 1e6)
    with pytest.raises(UsageError, match="outside fp16's range"):
        api.pack_ternary(tmp_path / "t.safetensors", tmp_path / "t.tpk", round_gamma=True)
