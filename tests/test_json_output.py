"""``--json``: stdout is exactly one JSON object for every command that offers it.

Each such command runs once at a tiny size; its WHOLE stdout must parse as one JSON object,
and nothing may reach file descriptor 1 behind click's back (a library printing directly).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from click.testing import CliRunner

import ticketpack.train.options as train_options
from ticketpack.cli.main import main
from ticketpack.cli.progress import EVERY_ENV

from tests.test_pg_import import ARCH, make_pg
from tests.tiny import TEXT, make_checkpoint
from tests.tiny import TINY_QUICKSTART


def json_commands() -> set[str]:
    return {name for name, cmd in main.commands.items()
            if any(p.name == "as_json" for p in cmd.params)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("json")
    ckpt = tmp / "m.safetensors"
    make_checkpoint(ckpt)
    text = tmp / "val.txt"
    text.write_text(TEXT * 8)
    artifact = tmp / "m.tpk"
    assert CliRunner().invoke(main, ["pack", str(ckpt), "-o", str(artifact)]).exit_code == 0
    save_file({"w": torch.tensor([[1.0, 0.0], [-1.0, 1.0]])}, str(tmp / "tri.safetensors"))
    (tmp / "pg.bin").write_bytes(make_pg()[0])
    (tmp / "arch.json").write_text(json.dumps(ARCH))
    return tmp, text, artifact


def command_lines(tmp, text, artifact) -> dict[str, list[str]]:
    return {
        "size": ["size", artifact, "--budget", "1MB", "--code", text],
        "load-and-eval": ["load-and-eval", artifact, "--data", text, "--device", "cpu"],
        "verify": ["verify", artifact],
        "inspect": ["inspect", artifact],
        "sample": ["sample", artifact, "--prompt", "To be", "--tokens", "3", "--device", "cpu"],
        "pack": ["pack", tmp / "m.safetensors", "-o", tmp / "again.tpk", "--budget", "1MB", "--code", text],
        "pack-ternary": ["pack-ternary", tmp / "tri.safetensors", "-o", tmp / "tri.tpk"],
        "import-pg": ["import-pg", tmp / "pg.bin", "-o", tmp / "pg.tpk", "--config", tmp / "arch.json",
                      "--level", "3"],
        "export": ["export", artifact, "-o", tmp / "dense.safetensors"],
        "export-loader": ["export-loader", "-o", tmp / "tpk_loader.py"],
        "train": ["train", "--data", text, "--out", tmp / "t.safetensors", "--preset", "tiny",
                  "--steps", "2", "--seq-len", "16", "--batch-size", "2", "--eval-every", "1"],
        "quickstart": ["quickstart", "--out-dir", tmp / "qs", "--minutes", "0.01"],
    }


def test_every_json_command_is_covered(files):
    assert json_commands() == set(command_lines(*files)) == set(COVERED)


COVERED = ("export", "export-loader", "import-pg", "inspect", "load-and-eval", "pack", "pack-ternary",
           "quickstart", "sample", "size", "train", "verify")


@pytest.mark.parametrize("name", COVERED)
def test_stdout_is_exactly_one_json_object(name, files, monkeypatch, capfd):
    monkeypatch.setattr(train_options, "QUICKSTART_MODEL", TINY_QUICKSTART)
    monkeypatch.setenv(EVERY_ENV, "0")  # progress lines at every event: none may reach stdout
    args = [str(a) for a in command_lines(*files)[name]] + ["--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout), dict)  # the whole of stdout, not its last line
    assert capfd.readouterr().out == ""
    if name == "quickstart":  # its stage lines still show, on stderr
        assert "packed " in result.stderr and "load-and-eval: val_bpb" in result.stderr
        assert "progress: pack " in result.stderr and "progress: load " in result.stderr

