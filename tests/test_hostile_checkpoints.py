"""Checkpoints are untrusted input: each crafted checkpoint ends ``pack`` (and ``train --resume``)
with its documented exit code and a one-line message, and writes nothing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ticketpack import api
from ticketpack.train.checkpoint import load_checkpoint, ticket_from_checkpoint
from ticketpack.cli.main import main
from ticketpack.errors import CheckpointError, LimitError
from ticketpack.artifact import Limits

from tests.hostile.hostile_checkpoints import CASES, RESUME_CASES, control_checkpoint, read_parts, write_parts


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "control.safetensors"
    control_checkpoint(path)
    return path


def _one_line_error(result, code: int, field: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ticketpack: error: "), result.stderr
    assert field in lines[0], lines[0]


def test_control_packs(control, tmp_path):
    assert api.pack(control, tmp_path / "ok.tpk") > 0
    assert api.verify(tmp_path / "ok.tpk")["ok"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_pack_refuses_hostile_checkpoint(case, control, tmp_path):
    parts = read_parts(control)
    case.edit(parts)
    bad, out = tmp_path / f"{case.name}.safetensors", tmp_path / "out.tpk"
    write_parts(bad, parts)
    result = CliRunner().invoke(main, ["pack", str(bad), "-o", str(out)])
    _one_line_error(result, case.exit_code, case.field)
    assert not out.exists()


@pytest.mark.parametrize("case", RESUME_CASES, ids=lambda c: c.name)
def test_resume_refuses_hostile_saved_options(case, control, tmp_path):
    parts = read_parts(control)
    case.edit(parts)
    bad = tmp_path / f"{case.name}.safetensors"
    write_parts(bad, parts)
    text = tmp_path / "t.txt"
    text.write_text("some text to train on, long enough for a few windows. " * 20)
    result = CliRunner().invoke(main, ["train", "--data", str(text), "--out", str(tmp_path / "o.safetensors"),
                                       "--resume", str(bad), "--steps", "3", "--device", "cpu"])
    _one_line_error(result, case.exit_code, case.field)
    assert not (tmp_path / "o.safetensors").exists()


def test_checkpoint_element_cap_before_reading(control):
    ckpt = load_checkpoint(control)
    total = sum(t.numel() for t in ckpt.tensors.values())
    with pytest.raises(LimitError, match="elements"):
        load_checkpoint(control, Limits(max_total_elements=total // 6 - 1))
    assert ticket_from_checkpoint(load_checkpoint(control, Limits(max_total_elements=total // 6 + 1)))


def test_checkpoint_error_is_exit_3():
    assert CheckpointError.exit_code == 3
