"""bench/recipe_run.py (the driver behind docs/RESULTS.md's quickstart-recipe tables) at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "recipe_run.py"
TINY = {"steps": 3, "final_eval": True, "batch_size": 4, "seq_len": 32,
        "model": {"model_dim": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2}}


def _run(tmp_path, overrides: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--threads", "1", "--out-dir", str(tmp_path),
                           "tiny", json.dumps(overrides)], capture_output=True, text=True, timeout=300)


def test_overrides_reach_the_trainer_and_the_result_line(tmp_path):
    res = _run(tmp_path, TINY)
    assert res.returncode == 0, res.stderr
    tag, figures = res.stdout.strip().splitlines()[-1].split(" ", 2)[1:]
    figures = json.loads(figures)
    assert tag == "tiny" and figures["steps"] == 3 and 0 < figures["val_bpb"] < 9
    log = [json.loads(line) for line in (tmp_path / "tiny.jsonl").read_text().splitlines()]
    start = next(e for e in log if e["event"] == "start")
    assert start["steps"] == 3 and start["provenance"]["config"]["model_dim"] == 32
    assert start["provenance"]["config"]["mlp_mult"] == 3  # the quickstart's, not overridden
    assert start["provenance"]["torch_threads"] == 1
    assert (tmp_path / "tiny.safetensors").is_file()


def test_an_unknown_override_is_refused_before_training(tmp_path):
    res = _run(tmp_path, {**TINY, "stepz": 3})
    assert res.returncode != 0 and "unknown TrainOptions fields ['stepz']" in res.stderr
    assert not list(tmp_path.iterdir())
