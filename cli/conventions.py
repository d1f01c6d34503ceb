"""What every command shares, applied once by the command group (``ConventionsGroup``):

- Errors are one line, ``ticketpack: error: ...``, and an exit code: click's own usage errors
  (an unknown option, ``--max-elements abc``, a missing argument) included, which click would
  print as a usage block of three or more lines. They exit 2, as every usage error does.
- Under torchrun (``RANK`` / ``LOCAL_RANK`` set) every process runs the same command; only
  rank 0 writes its report and progress, so ``torchrun ... ticketpack train --json | jq`` reads
  one object. Other ranks keep stderr for their errors and warnings.

Torch-free: imported at start-up.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

ERROR_PREFIX = "ticketpack: error: "
# Commands that run on the format core and numpy alone, never importing torch or the model
# code (tests/test_fast_paths.py; bench/cli_latency.py times them).
TORCH_FREE_COMMANDS = ("inspect", "size", "verify", "export", "export-loader")
# Commands that read headers or write a small file: nothing long to report, so no --quiet.
# Every other command reports progress on stderr and takes --quiet (tests/test_cli_conventions.py).
QUICK_COMMANDS = ("inspect", "size", "export-loader")


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (``\\n``, ``\\x1b``),
    so a name taken from a file cannot rewrite the terminal or the table it is printed in."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def error_line(message: str) -> str:
    """The one stderr line of an error: the prefix, the message's words on one line."""
    return f"{ERROR_PREFIX}{printable(' '.join(message.split()))}"


def launch_rank() -> int:
    """This process's rank in a torchrun job (``RANK``, else ``LOCAL_RANK``); 0 alone."""
    value = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))
    try:
        return int(value)
    except ValueError:
        return 0


def speaks() -> bool:
    """Whether this process reports (stdout, progress, notes): rank 0 only."""
    return launch_rank() == 0


def note(line: str) -> None:
    """An informative stderr line (not an error): rank 0 only."""
    if speaks():
        click.echo(line, err=True)


def _one_line(exc: click.ClickException) -> click.ClickException:
    """``exc`` shown as one error line (click calls ``show`` when it ends the program)."""
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message = f"{message.rstrip('.')} (see '{ctx.command_path} --help')"

    def show(file: Any = None) -> None:
        click.echo(error_line(message), err=True)

    exc.show = show  # type: ignore[method-assign]
    return exc


class ConventionsGroup(click.Group):
    """A click group whose parse errors, its own and its commands', are one line with exit 2,
    and whose commands write to stdout on rank 0 only."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            raise _one_line(exc)

    def invoke(self, ctx: click.Context) -> Any:
        if not speaks():
            sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the process's life
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            raise _one_line(exc)
