"""Differential fuzz target: the standalone loader (`ticketpack export-loader`) against the
library's reader on mutated artifacts.

Both read the same bytes: the library parses, decodes and verifies both digests
(``ticketpack.format``); the loader runs ``loads``. They must agree on accept or refuse. A file
the library refuses and the loader accepts is a MUST rule of docs/FORMAT.md 7.1 the loader skips
(or a library bug); a file the library accepts and the loader refuses is a loader bug, unless the
loader refuses a feature it may refuse (R01: the torch-mt19937 stream, R02: version 1's
constriction encodings). Any exception other than each reader's own error class is a finding
too. Where both refuse with different exit codes (1: digests, 3: anything else) the file breaks
several rules and each reader names the first it checks: counted, not a finding (the negative
conformance files, one broken rule each, pin the exit codes).

Inputs are the structured mutations of tests/fuzz/mutate.py (header edits, section bytes,
prefix fields, byte flips, each re-sealed so it passes the CRCs) of the fuzz seeds and of every
positive conformance file. Tickets over 2^18 elements are skipped (counted) to keep each input
cheap. The default test run does a bounded, seeded version (tests/test_fuzz_loader.py); the long
run:

    python -m tests.fuzz.fuzz_loader --seconds 600 --seed 1

prints the inputs run and the outcomes, writes each disagreement as
``loader-finding-<seed>-<n>.tpk`` and exits 1 if there is any (SECURITY.md records the runs).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import random
import sys
import tempfile
import time
from pathlib import Path

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
MAX_ELEMENTS = 1 << 18


def exported_loader(folder: str):
    from ticketpack import api

    path = api.export_loader(Path(folder) / "tpk_loader.py")["path"]
    spec = importlib.util.spec_from_file_location("tpk_loader_fuzzed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeds() -> list[bytes]:
    from tests.fuzz.mutate import seed_corpus

    return seed_corpus() + [p.read_bytes() for p in sorted(CONFORMANCE.glob("*.tpk"))]


def library_verdict(data: bytes) -> tuple[str, int]:
    """("ok", 0), ("big", 0) for a ticket over MAX_ELEMENTS, or (error class, exit code)."""
    import math

    import numpy as np

    from ticketpack.errors import TicketpackError
    from ticketpack.format.container import check_digests, decode_artifact, parse_artifact

    try:
        info = parse_artifact(data)
        if sum(math.prod(t["shape"]) for t in info.tensors) > MAX_ELEMENTS:
            return "big", 0
        with np.errstate(all="ignore"):
            check_digests(decode_artifact(info, threads=1), info.header, info.version, threads=1)
        return "ok", 0
    except TicketpackError as exc:
        return type(exc).__name__, exc.exit_code


def loader_verdict(loader, data: bytes) -> tuple[str, int, str]:
    try:
        loader.loads(data)
        return "ok", 0, ""
    except loader.TpkError as exc:
        return "refused", exc.code, str(exc)


def may_refuse(message: str) -> bool:
    """The loader refuses a valid file for a feature FORMAT.md 7.1 lets it refuse (R01, R02)."""
    return "is not supported" in message and ("torch-mt19937" in message or "constriction" in message)


def run(seconds: float, seed: int, max_inputs: int | None = None, keep: Path | None = None) -> dict:
    """Mutate and compare for ``seconds`` (or ``max_inputs``); the outcome counts and findings."""
    from tests.fuzz import mutate

    corpus = seeds()
    rng = random.Random(seed)
    ch = mutate.RandomChooser(rng)
    counts: collections.Counter = collections.Counter()
    findings: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        loader = exported_loader(tmp)
        start = time.time()
        while time.time() - start < seconds and (max_inputs is None or counts["inputs"] < max_inputs):
            counts["inputs"] += 1
            seed_bytes = corpus[rng.randrange(len(corpus))]
            try:
                data = mutate.mutate(seed_bytes, ch)
            except IndexError:  # a section mutation of a file without sections: flip bytes instead
                data = mutate.fixup(mutate._mutate_bytes(seed_bytes, ch))
            try:
                lib, lib_code = library_verdict(data)
                if lib == "big":
                    counts["skipped (over 2^18 elements)"] += 1
                    continue
                got, code, message = loader_verdict(loader, data)
            except Exception as exc:  # noqa: BLE001 - a reader raised something else: a finding
                why = f"exception {type(exc).__name__}: {str(exc)[:200]}"
            else:
                counts[f"library {lib} / loader {got}"] += 1
                if (lib == "ok") == (got == "ok"):
                    if lib_code != code:  # several rules broken: each reader names the first it checks
                        counts["both refuse, other exit codes"] += 1
                    continue
                if may_refuse(message):  # whatever the library says, the loader may refuse it
                    counts["loader refuses a MAY-refuse feature"] += 1
                    continue
                why = f"library {lib} (exit {lib_code}), loader {got} (exit {code}): {message[:200]}"
            findings.append(why)
            if keep is not None:
                path = keep / f"loader-finding-{seed}-{len(findings)}.tpk"
                path.write_bytes(data)
                why += f" [{path}]"
            print(f"FINDING {len(findings)}: {why}", file=sys.stderr, flush=True)
        counts["seconds"] = round(time.time() - start)
    return {"counts": dict(counts), "findings": findings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = run(args.seconds, args.seed, keep=Path.cwd())
    c = out["counts"]
    print(f"loader differential: {c['inputs']:,} inputs in {c['seconds']} s, "
          f"{len(out['findings'])} findings; outcomes: { {k: v for k, v in c.items() if k not in ('inputs', 'seconds')} }",
          file=sys.stderr)
    sys.exit(1 if out["findings"] else 0)


if __name__ == "__main__":
    main()
