"""Atomic writes: pack, export and checkpoints interrupted mid-write leave the previous file
intact and no temporary file behind (and a killed writer leaves the target intact)."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ticketpack import api
from ticketpack.artifact import encode_artifact, write_artifact
from ticketpack.atomic import atomic_write_bytes
from ticketpack.errors import UsageError
from ticketpack.train.checkpoint import load_checkpoint, save_checkpoint

from tests.tiny import make_checkpoint, make_ticket

PREVIOUS = b"the previous file, which must survive"


class _FailsHalfway:
    """A file whose first write puts half the bytes on disk, then fails as a full disk does."""

    def __init__(self, fh) -> None:
        self.fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()

    def write(self, data: bytes) -> int:
        self.fh.write(data[:len(data) // 2])
        self.fh.flush()
        raise OSError(errno.ENOSPC, "No space left on device (injected)")

    def flush(self) -> None:
        self.fh.flush()

    def fileno(self) -> int:
        return self.fh.fileno()


def _inject(monkeypatch, where: str) -> None:
    def fail(*args, **kwargs):
        raise OSError(errno.EIO, f"{where} failed (injected)")

    if where == "write":
        real = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FailsHalfway(real(*a, **k)))
    elif where == "fsync":
        monkeypatch.setattr(os, "fsync", fail)
    else:
        monkeypatch.setattr(os, "replace", fail)


@pytest.fixture
def gpt_checkpoint(tmp_path):
    path = tmp_path / "inputs" / "m.safetensors"
    path.parent.mkdir()
    model = make_checkpoint(path, seed=3)
    return model, model.config, path


def _writers(gpt_checkpoint):
    model, config, ckpt = gpt_checkpoint
    artifact = ckpt.parent / "m.tpk"
    api.pack(ckpt, artifact)
    return {
        "write_artifact": lambda out: write_artifact(make_ticket(), out),
        "pack": lambda out: api.pack(ckpt, out),
        "save_checkpoint": lambda out: save_checkpoint(out, model, seed=3, config=config.to_dict()),
        "export": lambda out: api.export(artifact, out),
    }


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
@pytest.mark.parametrize("writer", ["write_artifact", "pack", "save_checkpoint", "export"])
def test_interrupted_write_keeps_previous_file(tmp_path, monkeypatch, gpt_checkpoint, writer, where):
    write = _writers(gpt_checkpoint)[writer]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "result.bin"
    target.write_bytes(PREVIOUS)
    _inject(monkeypatch, where)
    with pytest.raises(OSError, match="injected"):
        write(target)
    monkeypatch.undo()
    assert target.read_bytes() == PREVIOUS
    assert sorted(p.name for p in out_dir.iterdir()) == ["result.bin"]  # no temporary left
    write(target)  # the same write, uninterrupted, replaces it
    assert target.read_bytes() != PREVIOUS
    assert sorted(p.name for p in out_dir.iterdir()) == ["result.bin"]


def test_full_disk_is_a_one_line_usage_error_in_the_cli(tmp_path, monkeypatch, gpt_checkpoint):
    from click.testing import CliRunner

    from ticketpack.cli.main import main as cli
    from ticketpack.errors import OutputWriteError

    _, _, ckpt = gpt_checkpoint
    _inject(monkeypatch, "write")  # ENOSPC after half the bytes
    with pytest.raises(OutputWriteError, match="No space left") as info:
        api.pack(ckpt, tmp_path / "direct.tpk")
    assert info.value.errno == errno.ENOSPC and info.value.exit_code == 2
    res = CliRunner().invoke(cli, ["pack", str(ckpt), "-o", str(tmp_path / "m.tpk")])
    assert res.exit_code == 2
    message = res.output.strip()
    assert "\n" not in message and "cannot write" in message and "m.tpk" in message
    assert not list(tmp_path.glob("*.tpk")) and not list(tmp_path.glob(".*.tmp"))


def test_interrupted_first_write_leaves_nothing(tmp_path, monkeypatch):
    _inject(monkeypatch, "write")
    with pytest.raises(OSError):
        write_artifact(make_ticket(), tmp_path / "new.tpk")
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_survives_a_failed_save(tmp_path, monkeypatch, gpt_checkpoint):
    model, config, ckpt = gpt_checkpoint
    before = load_checkpoint(ckpt).tensors
    _inject(monkeypatch, "replace")
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.endswith("scores")).add_(1.0)
    with pytest.raises(OSError):
        save_checkpoint(ckpt, model, seed=3, config=config.to_dict())
    monkeypatch.undo()
    after = load_checkpoint(ckpt).tensors  # still the old, complete checkpoint
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_killed_writer_leaves_target_intact(tmp_path):
    """SIGKILL mid-write (no cleanup can run): the target is still the previous file."""
    target = tmp_path / "a.tpk"
    target.write_bytes(PREVIOUS)
    script = textwrap.dedent(f"""
        import sys, time
        from ticketpack.atomic import atomic_open
        with atomic_open({str(target)!r}) as fh:
            fh.write(b"x" * 100_000)
            fh.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert target.read_bytes() == PREVIOUS
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "a.tpk"]
    assert all(n.startswith(".a.tpk.") and n.endswith(".tmp") for n in leftovers)  # hidden temp only


def test_budget_refusal_writes_nothing(tmp_path):
    target = tmp_path / "a.tpk"
    target.write_bytes(PREVIOUS)
    size = len(encode_artifact(make_ticket()))
    with pytest.raises(Exception, match="budget"):
        write_artifact(make_ticket(), target, budget=size - 1)
    assert target.read_bytes() == PREVIOUS and len(list(tmp_path.iterdir())) == 1


# ---------------------------------------------------------------- what is at the output path

def test_new_files_follow_the_umask_and_overwrites_keep_the_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o640
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"old")
    kept.chmod(0o644)
    atomic_write_bytes(kept, b"new")
    assert kept.read_bytes() == b"new" and stat.S_IMODE(kept.stat().st_mode) == 0o644


def test_symlink_is_followed_and_stays_a_link(tmp_path):
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    dangling = tmp_path / "dangling.bin"
    dangling.symlink_to(tmp_path / "missing.bin")
    atomic_write_bytes(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "missing.bin").read_bytes() == b"made"


def test_devices_fifos_and_directories_are_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    link_to_null = tmp_path / "null-link"
    link_to_null.symlink_to("/dev/null")
    for target, kind in ((Path("/dev/null"), "device"), (fifo, "FIFO"), (tmp_path / "dir", "directory"),
                         (link_to_null, "device")):
        with pytest.raises(UsageError, match=kind):
            atomic_write_bytes(target, b"x")
    assert Path("/dev/null").is_char_device() and stat.S_ISFIFO(fifo.stat().st_mode)
    assert not list(tmp_path.glob(".*.tmp"))
