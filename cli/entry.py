"""The console entry point: Ctrl-C at any moment ends with one line and exit code 130.

Importing the command line pulls in torch (seconds). ``run`` arms a SIGINT handler before
those imports that prints ``ticketpack: error: interrupted`` and exits 130 at once: while
the arguments are parsed nothing needs cleaning up. While a command runs, ``interrupts_raise``
puts Python's default back, so Ctrl-C raises ``KeyboardInterrupt``, atomic writes remove
their temporary files, and the CLI's error handler prints the same line and exits 130.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from typing import Iterator

INTERRUPTED = 130  # 128 + SIGINT, as shells report it
MESSAGE = b"ticketpack: error: interrupted\n"


def _exit_now(signum, frame) -> None:
    os.write(2, MESSAGE)
    os._exit(INTERRUPTED)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Inside the block Ctrl-C raises KeyboardInterrupt (when ``run`` armed the hard exit)."""
    armed = signal.getsignal(signal.SIGINT) is _exit_now
    if armed:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if armed:
            signal.signal(signal.SIGINT, _exit_now)


STDOUT_ERROR = 2  # the documented code of an output that cannot be written


class StdoutError(OSError):
    """Standard output refused a write (a full disk, ``/dev/full``): exit 2, one line."""


class _Stdout(io.TextIOWrapper):
    """sys.stdout that names its own failures (StdoutError), so the CLI can tell them from
    an OSError the library let through (a bug, exit 4)."""

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None


def _own_stdout() -> None:
    out = sys.stdout
    if out is not None and hasattr(out, "buffer") and not isinstance(out, _Stdout):
        out.flush()
        sys.stdout = _Stdout(out.buffer, encoding=out.encoding, errors=out.errors,
                             line_buffering=out.line_buffering, write_through=getattr(out, "write_through", False))


def stdout_message(exc: BaseException | None = None) -> str:
    reason = getattr(exc, "strerror", None) or "write failed"
    return f"standard output: cannot write ({reason}); nothing more was printed"


def run() -> None:
    """``ticketpack``: arm the interrupt handler, then import and run the click group.

    The process ends with ``os._exit`` once stdout and stderr are flushed: the interpreter's
    own shutdown (seconds with torch loaded) resets SIGINT to its default first, so a Ctrl-C
    then killed the process silently; now every interrupt meets the armed handler."""
    signal.signal(signal.SIGINT, _exit_now)
    _own_stdout()
    try:
        from ticketpack.cli.main import main

        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    except StdoutError as exc:  # help or version text sent to a stdout that cannot take it
        os.write(2, f"ticketpack: error: {stdout_message(exc)}\n".encode())
        code = STDOUT_ERROR
    _finish(code)


def _finish(code: object) -> None:
    """Flush, then exit at once with ``code`` (None: 0; a message: printed, 1)."""
    if isinstance(code, str):
        os.write(2, (code + "\n").encode("utf-8", "replace"))
        code = 1
    status = 0 if code is None else int(code) if isinstance(code, int) else 1
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as exc:
        if status == 0:
            os.write(2, f"ticketpack: error: {stdout_message(exc)}\n".encode())
            status = STDOUT_ERROR
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)


if __name__ == "__main__":
    run()
