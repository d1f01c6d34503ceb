"""The own-model examples run end to end (fast forms: a few steps / one epoch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_own_model_example(tmp_path):
    out = run("own_model.py", "--steps", "2", "--out-dir", str(tmp_path))
    assert out["arch"] == "transformers" and out["loaded_equals_trained"] and out["export_equals_loaded"]
    assert (tmp_path / "hf" / "model.safetensors").exists() and out["sample"].startswith("ROMEO:")


def test_edge_popup_digits_example(tmp_path):
    pytest.importorskip("sklearn")
    out = run("edge_popup_digits.py", "--epochs", "1", "--out", str(tmp_path / "d.tpk"))
    assert out["edge_popup"]["bytes"] == (tmp_path / "d.tpk").stat().st_size
    assert out["edge_popup"]["bytes"] < out["dense"]["bytes"] / 10
    assert out["edge_popup"]["test_accuracy"] > 0.3 and out["dense"]["test_accuracy"] > 0.3  # above chance (0.1)
