"""The documents' command lines run as written from the repository root.

Every command line of README.md and of docs/GUIDE.md's hand-written part (fenced ``bash``
blocks, and inline code that starts with ``ticketpack``/``python``/``pip`` and has arguments)
is either run here, in order (README first), in a temporary folder laid out like a fresh
clone (the bundled corpus at its path), or listed in NOT_RUN with the reason. A new command
that is neither fails this test, and so does a NOT_RUN entry that no document has any more.
(GUIDE's generated command reference quotes help texts, not commands to run.)
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ticketpack.cli.main import main
from ticketpack.text.corpus import bundled_corpus_path, read_text_file

ROOT = Path(__file__).resolve().parent.parent
GENERATED = "<!-- BEGIN GENERATED"  # where docs/GUIDE.md's hand-written part ends
SLOW = "minutes of training or a benchmark"
OUTSIDE = "needs a file from outside the repository"
NOT_RUN = {
    "pip install torch==2.13.0": "installs packages",
    "pip install torch==2.13.0 -e . && ticketpack quickstart": SLOW,
    "python examples/quickstart.py": SLOW,
    "python docs/make_guide.py": "rewrites docs/GUIDE.md (tests/test_docs.py checks it in memory)",
    "pip install torch==2.13.0 -e '.[test]' && python -m pytest -q": "the test suite itself",
    "python -m pytest -q": "the test suite itself",
    "ticketpack load-and-eval runs/quickstart/model.tpk --data runs/quickstart/val.txt "
    "--tokenizer runs/quickstart/tokenizer.model": "needs the quickstart's artifact",
    'ticketpack sample runs/quickstart/model.tpk --tokenizer runs/quickstart/tokenizer.model '
    '--prompt "ROMEO:"': "needs the quickstart's artifact",
    "ticketpack import-pg final_model.ptz -o runs/pg.tpk --config arch.json": OUTSIDE,
    "ticketpack pack-ternary trilm.safetensors -o runs/tri.tpk": OUTSIDE,
    "pip install 'ticketpack[v1]'": "installs packages",
    "python bench/cli_latency.py runs/quickstart/model.tpk": "needs the quickstart's artifact",
    "pip install 'ticketpack[hf]'": "installs packages",
    "ticketpack train --arch llama --preset small --model '{\"num_key_value_heads\": 2}' ...": SLOW,
    "ticketpack export runs/own.tpk --hf runs/own-hf": "needs an own-model artifact (tests/test_train_arch.py "
                                                       "exports one)",
    "ticketpack export own.tpk --hf own-hf": "README's own-model block writes own.tpk "
                                            "(test_the_own_model_example_runs exports it)",
    "ticketpack train --arch llama": SLOW,
}
INLINE = re.compile(r"`((?:ticketpack|python|pip) [^`]+)`")


def readme_commands(text: str) -> list[str]:
    """Command lines in README order: bash blocks' lines, then runnable inline code spans."""
    lines, in_bash = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if in_bash and line.strip() and not line.lstrip().startswith("#"):
            lines.append(line.split("  #")[0].strip())
    for span in INLINE.findall(text):
        words = span.split()
        runnable = words[0] in ("python", "pip") or len(words) >= 3
        if runnable and span not in lines:
            lines.append(span)
    return lines


def documented_commands() -> list[str]:
    """README's command lines, then those of docs/GUIDE.md's hand-written part."""
    guide = (ROOT / "docs" / "GUIDE.md").read_text().split(GENERATED, 1)[0]
    commands = readme_commands((ROOT / "README.md").read_text())
    return commands + [c for c in readme_commands(guide) if c not in commands]


def test_every_command_is_run_or_listed():
    commands = documented_commands()
    stale = [c for c in NOT_RUN if c not in commands]
    assert not stale, f"NOT_RUN lists commands no document has any more: {stale}"
    unknown = [c for c in commands if c not in NOT_RUN
               and not c.startswith(("ticketpack ", "mkdir ", "python "))]
    assert not unknown, f"commands of README / GUIDE this test neither runs nor lists: {unknown}"


def test_readme_commands_run_as_written(tmp_path, monkeypatch):
    # the bundled corpus's path, holding its first 200 KB: the same commands, less data to read
    corpus = tmp_path / "ticketpack" / "data" / "shakespeare.txt.xz"
    corpus.parent.mkdir(parents=True)
    corpus.write_bytes(lzma.compress(read_text_file(bundled_corpus_path(), max_bytes=200_000)))
    monkeypatch.chdir(tmp_path)
    commands = [c for c in documented_commands()
                if c not in NOT_RUN and not c.startswith("python bench/")]
    assert any(c.startswith("ticketpack train ") for c in commands)
    for command in commands:
        words = shlex.split(command)
        if words[0] == "mkdir":
            assert words[1] == "-p"
            os.makedirs(words[2], exist_ok=True)
            continue
        if words[0] == "python":  # a script the lines above wrote (the standalone loader)
            assert (tmp_path / words[1]).is_file(), f"{command}: no line above writes {words[1]}"
            done = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
            continue
        result = CliRunner().invoke(main, words[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}"
        if "--json" in words or words[1] == "inspect":
            json.loads(result.stdout)


def test_the_python_api_example_runs(tmp_path, monkeypatch):
    """README's first Python block: the built-in GPT through the API."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "m.tpk").is_file()


def test_the_own_model_example_runs(tmp_path, monkeypatch):
    """README's "Your own model" block as written (its `...` stands for the user's training),
    then the export it names: from_pretrained on the folder gives the loaded model's logits."""
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoModelForCausalLM

    text = (ROOT / "README.md").read_text()
    block = text.split("## Your own model", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    result = CliRunner().invoke(main, ["export", "own.tpk", "--hf", "own-hf"])
    assert result.exit_code == 0, result.output
    ids = torch.arange(16).reshape(1, 16)
    with torch.no_grad():
        exported = AutoModelForCausalLM.from_pretrained(tmp_path / "own-hf").eval()(ids).logits
        loaded = scope["model"].eval()(ids)
    loaded = getattr(loaded, "logits", loaded)
    assert torch.equal(exported, loaded)


@pytest.mark.parametrize("command", [c for c in documented_commands() if c.startswith("python bench/")])
def test_bench_commands_name_existing_scripts(command):
    assert (ROOT / shlex.split(command)[1]).is_file(), command


def test_the_guides_baselines_example_runs(tmp_path, monkeypatch):
    """docs/GUIDE.md's dense-baselines block (its training block runs for minutes, like the quickstart)."""
    text = (ROOT / "docs" / "GUIDE.md").read_text().split(GENERATED, 1)[0]
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    block = next(b for b in blocks if "encode_int8_state" in b)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "docs/GUIDE.md", "exec"), scope)
    assert len(scope["int8_bytes"]) > 0 and len(scope["ternary_bytes"]) > 0
