"""constriction is the optional extra ``v1``: only format 1's entropy-coded sections (ans0,
ansrow, nm) need it. With its import blocked, reading such a section fails with one line naming
the extra (exit 2), and everything else works: other v1 files, v2 files, every fast command."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ticketpack.artifact import load_ticket
from ticketpack.format import codecs
from ticketpack.format.codecs.entropy import V1_EXTRA

from tests.hostile.make_hostile import repack, section_blobs, split

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"

# A finder first on sys.meta_path refuses constriction, as on a machine without the extra.
RUN = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "constriction":
            raise ImportError(name, name=name)
sys.meta_path.insert(0, Blocker())
sys.argv = ["ticketpack"] + {args!r}
from ticketpack.cli.entry import run
run()
"""


def ticketpack_without_constriction(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN.format(args=[str(a) for a in args])],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def v1_ans(tmp_path_factory) -> Path:
    """The golden v1 file with its binary mask stored as ans0 (the digests cover the weights,
    not their encoding, so they still hold)."""
    parts = split((GOLDEN / "small-v1.tpk").read_bytes())
    levels = {t.name: getattr(t, "levels", None) for t in load_ticket(GOLDEN / "small-v1.tpk").tensors}
    blobs = section_blobs(parts)
    i = 0
    for tensor in parts.header["tensors"]:
        for section in tensor["sections"]:
            if section["enc"] == "bits" and section["role"] == "mask":
                section.update(enc="ans0", codec="none")
                mask = levels[tensor["name"]]
                blobs[i] = codecs.encode("ans0", mask.reshape(-1), K=2, shape=mask.shape)
                section["raw"] = len(blobs[i])
            i += 1
    path = tmp_path_factory.mktemp("v1") / "small-v1-ans0.tpk"
    path.write_bytes(repack(parts.header, blobs, version=parts.version))
    assert load_ticket(path).tensors[0].levels.tobytes() == levels["a.weight"].tobytes()  # with it
    return path


def test_the_extra_is_declared_and_tested():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(d.startswith("constriction") for d in extras[V1_EXTRA])
    assert any(d.startswith("constriction") for d in extras["test"])  # CI still reads v1's ANS
    assert not any(d.startswith("constriction") for d in project["dependencies"])


def test_v1_ans_section_without_constriction_is_one_line_naming_the_extra(v1_ans):
    for command in (["verify", "--format-only", v1_ans], ["size", v1_ans], ["export", v1_ans, "-o", v1_ans.with_suffix(".st")]):
        proc = ticketpack_without_constriction(*command)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ticketpack: error: "), proc.stderr
        assert f"pip install 'ticketpack[{V1_EXTRA}]'" in lines[0] and "ans0" in lines[0]
        assert proc.stdout == ""
    assert not v1_ans.with_suffix(".st").exists()  # nothing half-written


def test_everything_else_works_without_constriction(v1_ans, tmp_path):
    header = ticketpack_without_constriction("inspect", "--json", v1_ans)  # the header alone
    assert header.returncode == 0 and json.loads(header.stdout)["tensors"][0]["name"] == "a.weight"
    for golden in ("small-v1.tpk", "small-v2.tpk"):  # v1 without ANS sections, and v2
        proc = ticketpack_without_constriction("verify", "--format-only", "--json", GOLDEN / golden)
        assert proc.returncode == 0 and json.loads(proc.stdout)["ok"], proc.stderr
    text = tmp_path / "t.txt"
    text.write_text("To be, or not to be, that is the question. " * 40)
    ckpt, art = tmp_path / "m.safetensors", tmp_path / "m.tpk"
    steps = [("train", "--data", text, "--out", ckpt, "--preset", "tiny", "--steps", "2", "--seq-len", "16",
              "--batch-size", "2", "--eval-every", "0", "--device", "cpu", "--quiet"),
             ("pack", ckpt, "-o", art), ("verify", art), ("size", art),
             ("load-and-eval", art, "--data", text, "--device", "cpu", "--seq-len", "16")]
    for step in steps:
        proc = ticketpack_without_constriction(*step)
        assert proc.returncode == 0, (step, proc.stderr)
