"""The main job end to end (CLI, API and the example script) on a tiny stand-in model: the
real recipe's shape is swapped for one that trains in a second; everything else is real."""

from __future__ import annotations

import hashlib
import json
import math
import os
import runpy
import sys

import pytest
from click.testing import CliRunner

import ticketpack.train.options as train_options
from ticketpack import api
from ticketpack.cli.main import main as cli
from ticketpack.text.corpus import bundled_corpus_path, read_corpus
from ticketpack.text.quickstart import QUICKSTART_VOCAB

from tests.tiny import TINY_QUICKSTART

TINY = TINY_QUICKSTART


@pytest.fixture
def tiny_quickstart(monkeypatch):
    monkeypatch.setattr(train_options, "QUICKSTART_MODEL", TINY)


def _check(figures: dict, out_dir) -> None:
    artifact = os.path.join(out_dir, "model.tpk")
    assert figures["artifact"] == artifact
    assert figures["artifact_bytes"] == os.path.getsize(artifact)
    # the packed bytes regenerate exactly what training left in memory
    assert figures["weights_sha256"] == api.verify(artifact)["weights_sha256"]
    assert math.isfinite(figures["val_bpb"]) and 0 < figures["val_bpb"] < 8.5
    assert figures["steps"] >= 1
    # scored at the training sequence length and tokenizer, which the artifact records
    tok = figures["tokenizer"]
    assert tok == os.path.join(out_dir, "tokenizer.model")
    assert api.inspect(artifact)["eval"] == {"seq_len": 128, "tokenizer": {
        "kind": "sentencepiece", "vocab_size": QUICKSTART_VOCAB,
        "sha256": hashlib.sha256(open(tok, "rb").read()).hexdigest()}}
    assert figures["seq_len"] == 128
    # on the held-out last 10% of the corpus, every byte of it
    raw = read_corpus([bundled_corpus_path()])
    assert figures["val_bytes"] == os.path.getsize(figures["val_data"]) == round(len(raw) * 0.1)
    assert api.verify(artifact)["ok"]


def test_cli_quickstart_trains_packs_and_scores_the_same(tiny_quickstart, tmp_path):
    res = CliRunner().invoke(cli, ["quickstart", "--out-dir", str(tmp_path), "--minutes", "0.02", "--json"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert any(line.startswith("packed ") for line in lines)
    assert any("regenerates the trained weights bit-exactly" in line for line in lines)
    _check(json.loads(lines[-1]), tmp_path)


def test_example_script_runs_the_api(tiny_quickstart, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["quickstart.py", "--out-dir", str(tmp_path), "--minutes", "0.02"])
    here = os.path.dirname(os.path.abspath(__file__))
    runpy.run_path(os.path.join(here, "..", "examples", "quickstart.py"), run_name="__main__")
    _check(json.loads(capsys.readouterr().out.strip().splitlines()[-1]), tmp_path)
