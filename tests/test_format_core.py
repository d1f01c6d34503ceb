"""The format core (ticketpack.format) stands alone: no torch, no numba, no import cycle."""

from __future__ import annotations

import ast
import re
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ticketpack import api
from ticketpack.artifact import parse_artifact, read_artifact_bytes
from ticketpack.format import accel, philox
from ticketpack.format.constants import INIT_RULES
from ticketpack.train.loop import TrainOptions, train
from tests.tiny import corpus_slice

PACKAGE = Path(__file__).resolve().parents[1] / "ticketpack"

# Runs first in the child: importing any of these modules raises ImportError.
BLOCKER = """
import sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, _Blocker())
"""

LOAD = """
import json
from ticketpack.format import decode_artifact, parse_artifact, read_artifact_bytes
from ticketpack.format import accel, philox
from ticketpack.format.container import check_digests
info = parse_artifact(read_artifact_bytes(PATH))
weights, digests = check_digests(decode_artifact(info), info.header, info.version)  # raises on a mismatch
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({**digests, "numba": philox.has_numba(), "loaded": loaded, "tensors": len(weights)}))
"""


@pytest.fixture(scope="module")
def trained_artifact(tmp_path_factory) -> Path:
    """A tiny model trained for a few steps and packed with the default codec."""
    tmp = tmp_path_factory.mktemp("trained")
    corpus = tmp / "corpus.txt"
    corpus_slice(corpus, 20_000)
    opts = TrainOptions(data=[str(corpus)], out=str(tmp / "m.safetensors"), preset="tiny", seq_len=32,
                        batch_size=4, eval_every=0, log_every=0, steps=4, mask="multibit:4")
    train(opts)
    api.pack(opts.out, tmp / "m.tpk")
    return tmp / "m.tpk"


def _run_blocked(path: Path, blocked: set[str]) -> dict:
    code = (f"BLOCKED = {sorted(blocked)!r}\n" + BLOCKER + f"PATH = {str(path)!r}\n" + LOAD)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("blocked", [{"torch", "constriction"}, {"torch", "numba", "constriction"}])
def test_core_loads_a_trained_artifact_without_torch(trained_artifact, blocked):
    got = _run_blocked(trained_artifact, blocked)
    header = parse_artifact(read_artifact_bytes(trained_artifact)).header
    assert got["weights_sha256"] == header["weights_sha256"]
    assert got["model_sha256"] == header["model_sha256"]
    assert got["loaded"] == [] and got["tensors"] == len(header["tensors"])
    assert got["numba"] is ("numba" not in blocked)


def test_numpy_and_numba_paths_give_the_same_bits(monkeypatch):
    monkeypatch.setenv(accel.ENV, "always")  # numba even for jobs this small (when importable)
    shape, name = (37, 29), "blocks.0.attn.q.weight"
    for rule in INIT_RULES:
        std = 0.5 if INIT_RULES[rule].fan == "init_std" else None
        fast = philox.frozen_weight(5, name, shape, rule, init_std=std)
        monkeypatch.setattr(philox, "_fast", None)
        slow = philox.frozen_weight(5, name, shape, rule, init_std=std)
        monkeypatch.undo()
        assert fast.tobytes() == slow.tobytes(), rule
    out = np.empty(1000, np.float32)
    monkeypatch.setattr(philox, "_fast", None)
    philox.fill_values(out, 9, 77, 3, "he_uniform", (10, 100))  # an unaligned start
    monkeypatch.undo()
    words = philox.stream_words_reference(9, 77, 3, 1000)
    assert out.tobytes() == philox.values_from_words(words, "he_uniform", (10, 100)).tobytes()


def _imports(path: Path, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every ticketpack module ``module`` imports, at any depth of its code (lazy ones too)."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return {m for m in found if m in known and m != module}


def test_package_has_no_import_cycle():
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph = {m: _imports(p, m, pkg, set(files)) for m, (p, pkg) in files.items()}
    state: dict[str, int] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep])
            if dep not in state:
                visit(dep, stack + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert "ticketpack.format.container" in graph  # the walk saw the package


def test_core_imports_only_numpy_zstandard_and_the_standard_library():
    allowed = {"numpy", "zstandard", "numba", "constriction"}  # numba optional, constriction lazy (v1)
    for path in (PACKAGE / "format").rglob("*.py"):
        tree = ast.parse(path.read_text())
        bridge = [n for n in ast.walk(tree)  # the one torch method: Ticket.effective_state_dict
                  if isinstance(n, ast.FunctionDef) and n.name == "effective_state_dict"]
        exempt = {id(n) for b in bridge for n in ast.walk(b)}
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or top in sys.stdlib_module_names or \
                    (top == "torch" and id(node) in exempt), (path.name, name)


FORMAT_MD = PACKAGE.parent / "docs" / "FORMAT.md"


def test_format_md_known_answers_are_what_the_core_computes():
    from ticketpack.format.digest import tensor_sha256

    rows = re.findall(r"^\| (\d+) \| `([^`]+)` \| `(\[[\d, ]+\])` \| `(\w+)` \| `([0-9a-f ]+)` \| `([0-9a-f]{64})` \|$",
                      FORMAT_MD.read_text(encoding="utf-8"), re.M)
    assert len(rows) >= 5
    for seed, name, shape, rule, first, digest in rows:
        w = philox.frozen_weight(int(seed), name, tuple(json.loads(shape)), rule)
        assert " ".join(f"{int(x):08x}" for x in w.reshape(-1)[:4].view("<u4")) == first, name
        assert tensor_sha256(name, w).hex() == digest, name


def test_format_md_lists_the_config_schema():
    from ticketpack.models.gpt_config import CONFIG_SCHEMA

    text = FORMAT_MD.read_text(encoding="utf-8")
    for f in CONFIG_SCHEMA:
        assert re.search(rf"^\| `{f.name}` \| [^|]+ \| `{re.escape(json.dumps(f.default))}` \|", text, re.M), f.name
