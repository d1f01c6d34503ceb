"""The negative conformance files (tests/conformance/negative/, docs/FORMAT.md section 7.1):
one or more per MUST rule, each refused by ticketpack's reader and by the standalone loader
(exit code and one line), while every positive conformance file still loads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ticketpack import api
from ticketpack.errors import TicketpackError
from ticketpack.format.container import load_artifact

from tests.conformance.negative.make_negative import cases

ROOT = Path(__file__).resolve().parents[1]
NEGATIVE = ROOT / "tests" / "conformance" / "negative"
POSITIVE = ROOT / "tests" / "conformance"
FILES = sorted(NEGATIVE.glob("*.tpk"))
DIGEST_RULES = {"M26", "M27"}  # a digest mismatch: exit 1; every other refusal: exit 3


def must_rules() -> dict[str, str]:
    """FORMAT.md's MUST rows: id -> rule text."""
    text = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| (M\d\d) \| MUST \| (.+?) \|", text, re.M))


def test_every_case_has_its_files_and_a_must_rule():
    names = {name for name, _, _ in cases()}
    assert {p.stem for p in FILES} == names == {p.stem for p in NEGATIVE.glob("*.json")}
    rules = must_rules()
    assert len(rules) >= 25
    for path in FILES:
        doc = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        assert doc["rule"] == path.stem.split("-")[0] and doc["rule"] in rules and doc["reason"]
    assert {p.stem.split("-")[0] for p in FILES} == set(rules)  # every MUST rule has a file


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_the_library_refuses(path):
    with pytest.raises(TicketpackError) as exc:
        load_artifact(path)
    assert exc.value.exit_code == (1 if path.stem[:3] in DIGEST_RULES else 3)


CHILD = """
import io, json, runpy, sys
out = {}
for path in PATHS:
    sys.argv, err = [LOADER, path], io.StringIO()
    sys.stderr = err
    try:
        runpy.run_path(LOADER, run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    sys.stderr = sys.__stderr__
    out[path] = [code, err.getvalue()]
print(json.dumps(out))
"""


def run_loader_cli(loader: Path, paths: list[Path]) -> dict:
    """The loader's command line on each path, in one child process: {path: [exit, stderr]}."""
    code = f"LOADER = {str(loader)!r}\nPATHS = {[str(p) for p in paths]!r}\n" + CHILD
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_standalone_loader_refuses_each_with_its_exit_code_and_one_line(tmp_path):
    loader = Path(api.export_loader(tmp_path / "tpk_loader.py")["path"])
    got = run_loader_cli(loader, FILES)
    for path in FILES:
        code, err = got[str(path)]
        assert code == (1 if path.stem[:3] in DIGEST_RULES else 3), (path.stem, code, err)
        assert err.startswith("error: ") and err.count("\n") == 1, (path.stem, err)


def test_every_positive_conformance_file_still_loads_with_both_readers(tmp_path):
    loader = Path(api.export_loader(tmp_path / "tpk_loader.py")["path"])
    paths = [p for p in sorted(POSITIVE.glob("*.tpk")) if not p.stem.startswith("rng-torch")]
    got = run_loader_cli(loader, paths)
    for path in paths:
        assert got[str(path)][0] == 0, (path.stem, got[str(path)])
        load_artifact(path)


SLOW_TO_BUILD = {"M06-header-cap", "M11-tensors", "M11-elements"}  # 16 MiB header, 100,001 tensors, 2^28 weights


@pytest.mark.parametrize("everything", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_the_script_rebuilds_the_committed_files(everything):
    """make_negative.py is deterministic: every file is what it writes (the three slow cases in
    the slow run only)."""
    from tests.conformance.negative.make_negative import seal

    for name, _, make in cases():
        if everything or name not in SLOW_TO_BUILD:
            assert seal(make()) == (NEGATIVE / f"{name}.tpk").read_bytes(), name
