"""Wall time and peak memory of the fast commands, each as a whole process, against Python
importing numpy in the same run.

    ticketpack quickstart                       # or any artifact
    python bench/cli_latency.py runs/quickstart/model.tpk --repeats 5

Each command (``TORCH_FREE_COMMANDS``: inspect, size, verify, export, export-loader) runs
``--repeats`` times in a fresh process, as a user types it (the ``ticketpack`` script beside
this Python). Wall time is the best of the repeats (the run least disturbed by the rest of the
machine); peak RSS is the child's ``ru_maxrss`` from ``os.wait4``, the median of the repeats.
The baseline is ``python -c "import numpy"``: the least any of them can cost. The table gives
both ratios and the targets of issue 25 (0.5 s, 120 MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ticketpack.cli.conventions import TORCH_FREE_COMMANDS

TARGET_SECONDS = 0.5
TARGET_MB = 120.0


def ticketpack_command() -> list[str]:
    """The console script installed beside this interpreter, else the entry module."""
    script = Path(sys.executable).with_name("ticketpack")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ticketpack.cli.entry"]


def measure(argv: list[str], repeats: int) -> tuple[float, float, float]:
    """(best wall seconds, best CPU seconds (user + system), median peak RSS in MB) of ``argv``
    run ``repeats`` times. CPU time shows the work when other processes share the cores."""
    walls, cpus, peaks = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - start)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {err.strip()}")
        cpus.append(usage.ru_utime + usage.ru_stime)
        peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
    return min(walls), min(cpus), statistics.median(peaks)


def command_lines(artifact: str, scratch: str) -> dict[str, list[str]]:
    lines = {"inspect": ["inspect", artifact], "size": ["size", artifact], "verify": ["verify", artifact],
             "export": ["export", artifact, "-o", os.path.join(scratch, "dense.safetensors")],
             "export-loader": ["export-loader", "-o", os.path.join(scratch, "tpk_loader.py")]}
    assert set(lines) == set(TORCH_FREE_COMMANDS), "a fast command without a line here"
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact", help="the .tpk to run the commands on (e.g. the quickstart's)")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="cli_latency_")
    try:
        base_wall, base_cpu, base_mb = measure([sys.executable, "-c", "import numpy"], a.repeats)
        rows = []
        for name, args in command_lines(a.artifact, scratch).items():
            rows.append((f"ticketpack {name}", *measure(ticketpack_command() + args, a.repeats)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"artifact {a.artifact} ({os.path.getsize(a.artifact):,} bytes), best wall of {a.repeats}, "
          f"median peak RSS; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'command':<26} {'wall s':>7} {'x numpy':>8} {'cpu s':>7} {'x numpy':>8} {'peak MB':>8} "
          f"{'x numpy':>8}  target ({TARGET_SECONDS} s, {TARGET_MB:.0f} MB)")
    baseline = "python -c 'import numpy'"
    print(f"{baseline:<26} {base_wall:>7.3f} {1:>8.2f} {base_cpu:>7.3f} {1:>8.2f} "
          f"{base_mb:>8.1f} {1:>8.2f}")
    for label, wall, cpu, mb in rows:
        verdict = "ok" if wall <= TARGET_SECONDS and mb <= TARGET_MB else "OVER"
        print(f"{label:<26} {wall:>7.3f} {wall / base_wall:>8.2f} {cpu:>7.3f} {cpu / base_cpu:>8.2f} "
              f"{mb:>8.1f} {mb / base_mb:>8.2f}  {verdict}")


if __name__ == "__main__":
    main()
