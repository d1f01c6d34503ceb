"""The documents keep their promises: the command reference in docs/GUIDE.md is what the CLI
defines, README and RESULTS stay front pages (size caps), CI runs README's test command, and
every relative link and repository path the documents name exists."""

from __future__ import annotations

import glob
import importlib.util
import itertools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "SECURITY.md", *(ROOT / "docs").glob("*.md")])
SIZE_CAPS = {"README.md": 12_288, "docs/RESULTS.md": 15_360}


def _make_guide():
    spec = importlib.util.spec_from_file_location("make_guide", ROOT / "docs" / "make_guide.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_guide_command_reference_is_generated_from_the_cli():
    make_guide = _make_guide()
    current = (ROOT / "docs" / "GUIDE.md").read_text(encoding="utf-8")
    assert make_guide.generated_guide(current) == current, (
        f"docs/GUIDE.md's command reference differs from the CLI: run `{make_guide.COMMAND}`")


def test_guide_reference_names_every_command_and_option():
    """The generator itself: every command and every option of the CLI appears in its output."""
    from ticketpack.cli.main import main

    reference = _make_guide().reference_markdown()
    assert all(f"`{opt}`" in reference for param in main.params for opt in param.opts)
    for name, cmd in main.commands.items():
        assert f"### {name}\n" in reference, name
        for param in cmd.params:
            for opt in getattr(param, "opts", []) if param.param_type_name == "option" else []:
                assert f"`{opt}`" in reference, (name, opt)


@pytest.mark.parametrize("name,cap", sorted(SIZE_CAPS.items()))
def test_front_documents_stay_short(name, cap):
    size = (ROOT / name).stat().st_size
    assert size <= cap, f"{name} is {size:,} bytes, over its {cap:,}: move detail to docs/"


def _readme_command(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(title, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return block.strip()


def test_ci_runs_exactly_readmes_test_command():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert ci == [_readme_command("**2. The tests**")]


# ---------------------------------------------------------------- links and paths

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
FILE_LIKE = re.compile(r"\.[A-Za-z0-9]{1,12}$")
GLOB_CHARS = set("*?[{")


def _fenced_removed(text: str) -> str:
    """The text outside fenced blocks (their commands are checked by tests/test_readme.py)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _roots() -> dict[str, Path]:
    """First path components a document may start a repository path with, and their base:
    the repository's own top-level entries, and the folders of the package (``format/...``)."""
    gitignore = (ROOT / ".gitignore").read_text().split()
    ignored = {".git", *(line.strip("/") for line in gitignore if "*" not in line)}
    roots = {p.name: ROOT for p in ROOT.iterdir()
             if p.name not in ignored and not p.name.endswith(".egg-info")}
    package = ROOT / "ticketpack"
    roots.update({p.name: package for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"})
    return roots


def _braces(pattern: str) -> list[str]:
    """``a/{b,c}_*`` -> ``a/b_*``, ``a/c_*`` (shell brace expansion, as the documents use it)."""
    parts = re.split(r"\{([^{}]*)\}", pattern)
    options = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(choice) for choice in itertools.product(*options)]


def _exists(base: Path, path: str) -> bool:
    if GLOB_CHARS & set(path):
        return all(glob.glob(str(base / p)) for p in _braces(path))
    return (base / path).exists()


def _path_claims(text: str, roots: dict[str, Path]) -> list[tuple[Path, str]]:
    """Repository paths named in code spans: a word whose first component is a repository
    root and that names a file (an extension), a folder (a trailing slash) or a glob."""
    claims = []
    for span in CODE.findall(_fenced_removed(text)):
        for word in span.split():
            word = word.strip("'\",;()").split("::")[0]
            first = word.split("/", 1)[0]
            if "/" not in word or first not in roots or word.startswith(("/", "http")):
                continue
            if FILE_LIKE.search(word) or word.endswith("/") or GLOB_CHARS & set(word):
                claims.append((roots[first], word))
    return claims


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+ (.+)$", _fenced_removed(text), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_and_links_exist(doc):
    text = doc.read_text(encoding="utf-8")
    missing = [path for base, path in _path_claims(text, _roots()) if not _exists(base, path)]
    for target in LINK.findall(_fenced_removed(text)):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            missing.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text(encoding="utf-8")):
            missing.append(target)
    assert not missing, f"{doc.relative_to(ROOT)} names what does not exist: {missing}"
