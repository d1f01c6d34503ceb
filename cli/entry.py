"""The console entry point: Ctrl-C at any moment ends with one line and exit code 130.

Importing the command line pulls in torch (seconds). ``run`` arms a SIGINT handler before
those imports that prints ``ticketpack: error: interrupted`` and exits 130 at once: while
the arguments are parsed nothing needs cleaning up. While a command runs, ``interrupts_raise``
puts Python's default back, so Ctrl-C raises ``KeyboardInterrupt``, atomic writes remove
their temporary files, and the CLI's error handler prints the same line and exits 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
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


def run() -> None:
    """``ticketpack``: arm the interrupt handler, then import and run the click group."""
    signal.signal(signal.SIGINT, _exit_now)
    from ticketpack.cli.main import main

    main()


if __name__ == "__main__":
    run()
