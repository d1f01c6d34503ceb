"""Progress on stderr when it is not a terminal: one line per interval, silenced by --quiet."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from ticketpack.cli.main import main
from ticketpack.cli.progress import EVERY_ENV, ProgressBar, ProgressLog, every_seconds, reporter
from ticketpack.errors import UsageError

from tests.tiny import TEXT, make_checkpoint

STEP = {"event": "step", "step": 40, "loss": 2.5, "progress": 0.25, "train_seconds": 60.0,
        "tokens_per_second": 7700.0}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_writes_one_line_per_interval():
    stream, clock = io.StringIO(), Clock()
    log = ProgressLog(stream, every=30, clock=clock)
    for t in (5, 20, 31, 40, 59, 62):
        clock.now = t
        log(STEP)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # at 31 s and at 62 s
    assert lines[0] == "progress: train step 40 (25.0%) loss 2.500 7,700 tok/s 03:00 left"


def test_log_reports_tensors_and_the_last_evaluation():
    stream, clock = io.StringIO(), Clock()
    log = ProgressLog(stream, every=0, clock=clock)
    log({"event": "eval", "val_bpb": 2.25})
    log(STEP)
    clock.now = 10
    log({"event": "tensor", "stage": "load", "done": 3, "total": 12, "elements": 250,
         "total_elements": 1000})
    log({"event": "start"})  # other events print nothing
    lines = stream.getvalue().splitlines()
    assert lines == ["progress: train step 40 (25.0%) loss 2.500 val 2.250 7,700 tok/s 03:00 left",
                     "progress: load 3/12 tensors, 25.0% of 1,000 elements, 00:10 elapsed, 00:30 left"]


def test_reporter_picks_the_display(monkeypatch):
    assert reporter(True) is None
    assert isinstance(reporter(False, stream=io.StringIO()), ProgressLog)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    show = reporter(False, stream=tty)
    show(STEP)
    assert tty.getvalue().startswith("\r[")  # the bar draws training steps on a terminal
    assert isinstance(ProgressBar(tty), ProgressBar)


@pytest.mark.parametrize("value, expected", [(None, 30.0), ("0", 0.0), ("2.5", 2.5)])
def test_cadence_from_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(EVERY_ENV, raising=False)
    else:
        monkeypatch.setenv(EVERY_ENV, value)
    assert every_seconds() == expected


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_cadence_is_a_usage_error(monkeypatch, value):
    monkeypatch.setenv(EVERY_ENV, value)
    with pytest.raises(UsageError, match=EVERY_ENV):
        every_seconds()


def test_train_pack_and_load_report_progress_unless_quiet(tmp_path, monkeypatch):
    monkeypatch.setenv(EVERY_ENV, "0")
    text = tmp_path / "t.txt"
    text.write_text(TEXT * 8)
    args = ["train", "--data", str(text), "--out", str(tmp_path / "m.safetensors"), "--preset", "tiny",
            "--steps", "10", "--seq-len", "16", "--batch-size", "2", "--eval-every", "0"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "progress: train step 10 (100.0%) loss " in res.stderr
    assert "progress" not in res.stdout
    res = CliRunner().invoke(main, args + ["--quiet"])
    assert res.exit_code == 0 and "progress" not in res.stderr

    ckpt, artifact = tmp_path / "c.safetensors", tmp_path / "c.tpk"
    make_checkpoint(ckpt)
    res = CliRunner().invoke(main, ["pack", str(ckpt), "-o", str(artifact)])
    assert res.exit_code == 0 and "progress: pack 1/" in res.stderr
    res = CliRunner().invoke(main, ["load-and-eval", str(artifact), "--data", str(text), "--device",
                                    "cpu", "--json"])
    assert res.exit_code == 0 and "progress: load 1/" in res.stderr
    for cmd in (["verify", str(artifact)], ["pack", str(ckpt), "-o", str(artifact)]):
        res = CliRunner().invoke(main, cmd + ["--quiet"])
        assert res.exit_code == 0 and "progress" not in res.stderr


def test_importers_report_progress_and_take_quiet(tmp_path, monkeypatch):
    """pack-ternary and import-pg write tensor by tensor: progress lines, none with --quiet."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    from tests.test_pg_import import ARCH, make_pg

    monkeypatch.setenv(EVERY_ENV, "0")
    save_file({"w": np.array([[1.0, 0.0], [-1.0, 1.0]], np.float32)}, str(tmp_path / "tri.safetensors"))
    (tmp_path / "pg.bin").write_bytes(make_pg()[0])
    (tmp_path / "arch.json").write_text(json.dumps(ARCH))
    commands = [["pack-ternary", str(tmp_path / "tri.safetensors"), "-o", str(tmp_path / "tri.tpk")],
                ["import-pg", str(tmp_path / "pg.bin"), "--config", str(tmp_path / "arch.json"),
                 "-o", str(tmp_path / "pg.tpk")]]
    for cmd in commands:
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 0 and "progress: pack 1/" in res.stderr, res.output
        res = CliRunner().invoke(main, cmd + ["--quiet"])
        assert res.exit_code == 0 and "progress" not in res.stderr
