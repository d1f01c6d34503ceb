"""The fast commands (``TORCH_FREE_COMMANDS``) never import torch or the model code: each runs
as a whole process with those imports blocked, and must still succeed. Their speed and memory
are measured by bench/cli_latency.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ticketpack import api
from ticketpack.cli.conventions import TORCH_FREE_COMMANDS

from tests.tiny import make_checkpoint

BLOCKED = ("torch", "ticketpack.models.gpt_model", "ticketpack.nn.layers", "ticketpack.ticket", "ticketpack.nn.masking",
           "ticketpack.train.loop", "ticketpack.train.checkpoint")

# A finder first on sys.meta_path refuses the blocked modules; then the console entry runs.
RUN = """
import json, os, sys
BLOCKED = {blocked!r}

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED or name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked: a fast command imported it")

def report():
    sys.stderr.write(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numba")
                                       or m in BLOCKED)) + "\\n")
    sys.stderr.flush()

# the entry point ends with os._exit (no interpreter shutdown), so report on the way out
_exit = os._exit
os._exit = lambda code: (report(), _exit(code))
sys.meta_path.insert(0, Blocker())
sys.argv = ["ticketpack"] + {args!r}
from ticketpack.cli.entry import run
try:
    run()
finally:
    report()
"""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fast")
    make_checkpoint(tmp / "m.safetensors")
    api.pack(tmp / "m.safetensors", tmp / "m.tpk")
    return tmp / "m.tpk"


def command_args(name: str, artifact) -> list[str]:
    out = artifact.with_name(f"out-{name}")
    return {"inspect": ["inspect", str(artifact)], "size": ["size", str(artifact)],
            "verify": ["verify", str(artifact)], "export": ["export", str(artifact), "-o", f"{out}.safetensors"],
            "export-loader": ["export-loader", "-o", f"{out}.py"]}[name]


def run_blocked(args: list[str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    proc = subprocess.run([sys.executable, "-c", RUN.format(blocked=BLOCKED, args=args)],
                          capture_output=True, text=True, timeout=300)
    return proc, json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("name", TORCH_FREE_COMMANDS)
def test_fast_command_runs_with_torch_blocked(name, artifact):
    proc, loaded = run_blocked(command_args(name, artifact))
    assert proc.returncode == 0, proc.stderr
    assert loaded == []  # neither torch, the model code, nor numba for a job this small


def test_the_blocker_catches_a_torch_import(artifact, tmp_path):
    """The control: a command that needs torch fails under the same blocker."""
    text = tmp_path / "t.txt"
    text.write_text("To be, or not to be " * 20)
    proc, _ = run_blocked(["load-and-eval", str(artifact), "--data", str(text), "--device", "cpu"])
    assert proc.returncode != 0 and "is blocked" in proc.stderr


def test_exported_weights_are_the_verified_ones(artifact):
    from safetensors.numpy import load_file

    from ticketpack.format.digest import weights_sha256_v2

    out = artifact.with_name("dense.safetensors")
    info = api.export(artifact, out)
    weights = load_file(str(out))
    order = [t["name"] for t in api.inspect(artifact)["tensors"]]  # the digest's order: the file's
    assert sorted(order) == sorted(weights)
    digest = weights_sha256_v2((name, weights[name]) for name in order)
    assert digest == info["weights_sha256"] == api.verify(artifact)["weights_sha256"]
