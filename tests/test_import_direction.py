"""Modules import downward only (docs/ARCHITECTURE.md, "Layers"): every import of a ticketpack
module, at the top or inside a function, read from the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lower number = lower layer; a module may import its own layer's modules and any layer below.
LAYERS = {
    0: ["ticketpack", "ticketpack.version", "ticketpack.errors", "ticketpack.strict_json",
        "ticketpack.atomic", "ticketpack.budget", "ticketpack.provenance"],
    1: ["ticketpack.format"],
    2: ["ticketpack.text", "ticketpack.nn"],
    3: ["ticketpack.ticket", "ticketpack.artifact", "ticketpack.models"],
    4: ["ticketpack.train", "ticketpack.eval"],
    5: ["ticketpack.api", "ticketpack.own", "ticketpack.sizing", "ticketpack.baselines", "ticketpack.loader",
        "ticketpack.interop"],
    6: ["ticketpack.cli"],
}
IMPORTERS = {"ticketpack.interop.pg_import", "ticketpack.interop.ternary"}  # beside api

# The upward edges the code has today, each documented in ARCHITECTURE.md ("Import direction").
KNOWN_UPWARD = {
    ("ticketpack.ticket", "ticketpack.interop.pg_import"),  # registers the torch-MT19937 stream
    ("ticketpack", "ticketpack.own"),  # the package's public own-model names, loaded on first use
    ("ticketpack.ticket", "ticketpack.interop"),  # the import of a module in this folder, seen as the folder's too
}


def _layer(module: str) -> int:
    for layer, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") and p != "ticketpack" for p in prefixes):
            return layer
    raise AssertionError(f"{module}: in no layer of this test (add it, and to ARCHITECTURE.md)")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "cli":
        parts = ["ticketpack", "cli"] + parts[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    files = list((ROOT / "ticketpack").rglob("*.py")) + list((ROOT / "cli").glob("*.py"))
    return {_module_name(f): f for f in files}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target not in (name, "ticketpack"):
                found.add(target)
    return found


def _edges() -> set[tuple[str, str]]:
    sources = _sources()
    return {(name, dep) for name, path in sources.items() for dep in _imports(name, path, set(sources))}


def _upward(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    def against(src: str, dst: str) -> bool:
        if _layer(dst) > _layer(src):
            return True
        return src in IMPORTERS and dst in IMPORTERS  # importers do not lean on each other

    return {(s, d) for s, d in edges if against(s, d)}


def test_imports_point_down_the_layers():
    upward = _upward(_edges())
    assert upward - KNOWN_UPWARD == set(), "imports against the layers (docs/ARCHITECTURE.md)"


def test_known_exceptions_are_still_real():
    assert KNOWN_UPWARD <= _upward(_edges()), "an exception is gone: drop it here and in ARCHITECTURE.md"


def test_the_check_sees_an_upward_import():
    edges = _edges()
    assert ("ticketpack.format.container", "ticketpack.format.header") in edges  # relative import
    assert ("ticketpack.cli.main", "ticketpack.api") in edges
    assert _upward({("ticketpack.format.tensors", "ticketpack.nn.layers")}) != set()
    assert _upward({("ticketpack.nn.layers", "ticketpack.format.tensors")}) == set()
