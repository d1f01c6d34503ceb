"""The conventions every command follows, walked over the click group's own definitions
(``ticketpack.cli.main.main.commands``), so a new command is checked without being listed:

- every command has ``--json``; every command but ``QUICK_COMMANDS`` reports progress and takes
  ``--quiet``;
- a usage error caught by option parsing (unknown option, a value of the wrong type, a missing
  argument) is one stderr line ``ticketpack: error: ...`` and exit 2, nothing on stdout;
- under torchrun only rank 0 writes to stdout; other ranks keep their errors.
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from ticketpack.cli.conventions import QUICK_COMMANDS, TORCH_FREE_COMMANDS
from ticketpack.cli.main import main

COMMANDS = sorted(main.commands)
BAD_VALUE = "not-a-value%"  # no int, float, choice or word accepts it


def _option(cmd: click.Command, name: str) -> bool:
    return any(isinstance(p, click.Option) and f"--{name}" in p.opts for p in cmd.params)


def one_line_usage_error(args: list[str], env: dict | None = None) -> str:
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 2, (args, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ticketpack: error: "), (args, result.stderr)
    assert result.stdout == "" and "Usage:" not in result.stderr
    return lines[0]


def test_the_command_lists_name_real_commands():
    assert set(QUICK_COMMANDS) <= set(TORCH_FREE_COMMANDS) <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_json_everywhere_and_quiet_where_it_runs_long(name):
    cmd = main.commands[name]
    assert _option(cmd, "json"), f"{name}: no --json"
    assert _option(cmd, "quiet") == (name not in QUICK_COMMANDS), f"{name}: --quiet"


@pytest.mark.parametrize("name", COMMANDS)
def test_unknown_option_is_one_line(name):
    assert "--no-such-option" in one_line_usage_error([name, "--no-such-option"])


def _typed_options(cmd: click.Command) -> list[click.Option]:
    """Options that take a value whose type refuses ``BAD_VALUE``."""
    out = []
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.is_flag and p.nargs == 1:
            try:
                p.type.convert(BAD_VALUE, p, None)
            except click.BadParameter:
                out.append(p)
    return out


CASES = [(name, opt.opts[0]) for name in COMMANDS for opt in _typed_options(main.commands[name])]


def test_every_kind_of_typed_option_is_walked():
    assert len(CASES) > 30 and {name for name, _ in CASES} >= {"train", "load-and-eval", "sample", "pack"}


@pytest.mark.parametrize("name, flag", CASES)
def test_wrong_type_is_one_line(name, flag):
    line = one_line_usage_error([name, flag, BAD_VALUE])
    assert flag in line and BAD_VALUE in line


@pytest.mark.parametrize("name", [n for n in COMMANDS
                                  if any(isinstance(p, click.Argument) for p in main.commands[n].params)])
def test_missing_argument_is_one_line(name):
    assert "Missing argument" in one_line_usage_error([name])


def test_group_options_and_commands():
    line = one_line_usage_error(["--max-elements", "abc", "verify", "x.tpk"])
    assert "--max-elements" in line and "'abc'" in line
    one_line_usage_error(["verify", "x.tpk"], env={"TICKETPACK_MAX_ELEMENTS": "abc"})
    assert "no-such-command" in one_line_usage_error(["no-such-command"])


def test_only_rank_zero_writes_stdout(tmp_path):
    for rank, speaks in (("0", True), ("1", False)):
        out = tmp_path / f"loader{rank}.py"
        result = CliRunner().invoke(main, ["export-loader", "-o", str(out), "--json"], env={"RANK": rank})
        assert result.exit_code == 0 and out.exists()
        assert (result.stdout != "") == speaks, (rank, result.stdout)
    failed = CliRunner().invoke(main, ["verify", str(tmp_path / "missing.tpk")], env={"RANK": "1"})
    assert failed.exit_code == 2 and failed.stderr.startswith("ticketpack: error: ")  # errors still show
