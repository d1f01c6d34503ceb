"""Progress display for long commands: the library reports events through a callback, this
module turns them into text on stderr.

Two displays:

- ``ProgressBar``: one redrawn line, for a terminal (training only).
- ``ProgressLog``: one plain line per ``every`` seconds, for logs, CI and remote shells, where a
  redrawn line shows nothing: ``progress: train step 120 (12.3%) loss 2.345 7,700 tok/s
  08:12 left`` or ``progress: pack 12/25 tensors, 48.0% of 1,523,712 elements, 00:31 elapsed``.

Events are dicts with an ``event`` key. The trainer sends ``step`` / ``eval`` / ``final``
(ticketpack.train.loop); pack and load send ``tensor`` events with ``stage``, ``done``, ``total``,
``elements`` and ``total_elements``. Torch-free: imported by the CLI at start-up.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Callable, TextIO

from ticketpack.cli.conventions import speaks

Event = dict[str, Any]
Callback = Callable[[Event], None]
DEFAULT_EVERY_SECONDS = 30.0
EVERY_ENV = "TICKETPACK_PROGRESS_SECONDS"  # the cadence of ProgressLog, for tests and impatient logs


class ProgressBar:
    """Draws one updating line on a terminal stream from the trainer's events."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream, self.width = stream, width
        self.val_bpb: float | None = None

    def __call__(self, event: Event) -> None:
        kind = event.get("event")
        if kind == "eval":
            self.val_bpb = event["val_bpb"]
        elif kind == "step":
            self._draw(event)
        elif kind in ("final", "stop"):
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, e: Event) -> None:
        p = e["progress"]
        filled = int(round(p * self.width))
        val = f" val {self.val_bpb:.3f}" if self.val_bpb is not None else ""
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {p:6.1%} step {e['step']} "
                          f"loss {e['loss']:.3f}{val} {e['tokens_per_second']:,.0f} tok/s "
                          f"{mmss(time_left(e['train_seconds'], p))} left ")
        self.stream.flush()


class ProgressLog:
    """One plain line on ``stream`` when ``every`` seconds have passed since the last one."""

    def __init__(self, stream: TextIO, every: float | None = None, label: str = "train",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.label, self.clock = stream, label, clock
        self.every = every_seconds() if every is None else every
        self.start = self.last = clock()
        self.val_bpb: float | None = None

    def __call__(self, event: Event) -> None:
        kind = event.get("event")
        if kind == "eval":
            self.val_bpb = event["val_bpb"]
        line = {"step": self._step_line, "tensor": self._tensor_line}.get(kind)
        if line is None:
            return
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        self.stream.write(f"progress: {line(event, now - self.start)}\n")
        self.stream.flush()

    def _step_line(self, e: Event, elapsed: float) -> str:
        p = e["progress"]
        val = f" val {self.val_bpb:.3f}" if self.val_bpb is not None else ""
        return (f"{self.label} step {e['step']} ({p:.1%}) loss {e['loss']:.3f}{val} "
                f"{e['tokens_per_second']:,.0f} tok/s {mmss(time_left(e['train_seconds'], p))} left")

    def _tensor_line(self, e: Event, elapsed: float) -> str:
        share = e["elements"] / e["total_elements"] if e["total_elements"] else 1.0
        return (f"{e['stage']} {e['done']}/{e['total']} tensors, {share:.1%} of "
                f"{e['total_elements']:,} elements, {mmss(elapsed)} elapsed, "
                f"{mmss(time_left(elapsed, share))} left")


def every_seconds() -> float:
    """The ProgressLog cadence: $TICKETPACK_PROGRESS_SECONDS, else 30 s."""
    value = os.environ.get(EVERY_ENV)
    if value is None:
        return DEFAULT_EVERY_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or math.isinf(seconds):
        from ticketpack.errors import UsageError

        raise UsageError(f"{EVERY_ENV}: got {value!r}, expected a number of seconds >= 0")
    return seconds


def reporter(quiet: bool, label: str = "train", stream: TextIO | None = None) -> Callback | None:
    """The display a command passes to the library: None when quiet or not rank 0, a bar for
    training on a terminal, else plain lines at a steady cadence."""
    if quiet or not speaks():  # under torchrun only rank 0 reports
        return None
    stream = sys.stderr if stream is None else stream
    log = ProgressLog(stream, label=label)
    if not stream.isatty():
        return log
    bar = ProgressBar(stream)

    def on_terminal(event: Event) -> None:  # the bar draws steps, the log reports pack / load
        (bar if event.get("event") in ("step", "eval", "final", "stop") else log)(event)

    return on_terminal


def time_left(elapsed: float, share: float) -> float:
    return elapsed * (1 - share) / share if share > 0 else float("nan")


def mmss(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60:02d}:{seconds % 60:02d}"
