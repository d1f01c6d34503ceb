"""``torchrun --nproc_per_node 2 ticketpack train ... --json``: two CPU processes train with
DDP on gloo, and stdout holds exactly one JSON object (rank 0's), as ``| jq`` needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny import corpus_slice


def ticketpack_script() -> str:
    script = Path(sys.executable).with_name("ticketpack")
    return str(script) if script.exists() else shutil.which("ticketpack") or pytest.skip("no ticketpack script")


def test_two_process_ddp_training_prints_one_json_object(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus_slice(corpus, 20_000)
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           ticketpack_script(), "train", "--data", str(corpus), "--out", str(out), "--preset", "tiny",
           "--steps", "4", "--seq-len", "16", "--batch-size", "4", "--eval-every", "0",
           "--device", "cpu", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TICKETPACK_PROGRESS_SECONDS": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)  # the whole of stdout: one object, not one per rank
    assert isinstance(report, dict) and report["steps"] == 4 and report["checkpoint"] == str(out)
    assert out.exists()
    assert proc.stderr.count("progress: train step") <= 4  # rank 0's lines only (one per step at most)
