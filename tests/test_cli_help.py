"""`ticketpack --help`: whole command summaries, the exit codes, and no torch at start-up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import ticketpack.errors as errors
from ticketpack.cli.main import EXIT_CODES, INTERNAL_ERROR, main
from ticketpack.cli.entry import INTERRUPTED

ROOT = Path(__file__).resolve().parent.parent


def flat(text: str) -> str:
    """Without whitespace: help text wraps lines, also after hyphens."""
    return "".join(text.split())


def test_importing_the_cli_imports_no_torch():
    code = ("import sys, ticketpack.cli.main; "
            "print(sorted(m for m in ('torch', 'ticketpack.api', 'ticketpack.train.loop') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_top_level_help_lists_whole_summaries_and_exit_codes():
    result = CliRunner().invoke(main, ["--help"], terminal_width=60)
    assert result.exit_code == 0
    text = flat(result.stdout)
    for name, cmd in main.commands.items():
        summary = flat(cmd.get_short_help_str(limit=10_000))
        assert not summary.endswith("...") and f"{name}{summary}" in text, name
    for code, meaning in EXIT_CODES:
        assert f"{code}{flat(meaning)}" in text


def test_exit_codes_cover_every_error_class_and_readme():
    classes = [errors.TicketpackError]
    codes = set()
    while classes:
        cls = classes.pop()
        codes.add(cls.exit_code)
        classes += cls.__subclasses__()
    listed = {int(code) for code, _ in EXIT_CODES}
    assert codes | {0, INTERNAL_ERROR, INTERRUPTED} == listed
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("Exit codes:"):].split("\n\n")[0]
    assert set(map(int, re.findall(r"\*\*(\d+)\*\*", paragraph))) == listed


@pytest.mark.parametrize("name", sorted(main.commands))
def test_each_command_help_shows_its_whole_description(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0
    assert flat(main.commands[name].help.split("\n\n")[0]) in flat(result.stdout)
