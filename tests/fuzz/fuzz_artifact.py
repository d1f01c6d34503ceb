"""Long-running fuzz harness for the artifact loader (parse + decode + verify).

Property: on any input the loader ends with a result or a ticketpack error; any other
exception, a hang (``-timeout``) or memory past ``-rss_limit_mb`` is a finding.

Engines:
  atheris (coverage-guided, libFuzzer; ``pip install atheris``):
      python -m tests.fuzz.fuzz_artifact atheris -max_total_time=300 -timeout=10 \\
          -rss_limit_mb=2048 -print_final_stats=1 [CORPUS_DIR]
    Each input is tried as given and again after ``fixup`` (lengths and CRCs recomputed),
    and also drives one structured mutation of a seed artifact, so mutations reach the
    header checks and the codec decoders behind the checksums. Crashing inputs are written
    as ``crash-*`` files by libFuzzer.
  random (no extra dependency; structured mutations from a seeded PRNG):
      python -m tests.fuzz.fuzz_artifact random --seconds 300 --seed 1
  codecs (the mask / trit decoders alone, on mutated valid encodings and random bytes,
  under every encoding, level count, shape and N:M pair, valid or not):
      python -m tests.fuzz.fuzz_artifact codecs --seconds 60 --seed 1
  config (model configs and training checkpoints, tests/fuzz/fuzz_config.py: a config either
  fails validation or builds a model of exactly the size the bound counted; a mutated
  checkpoint loads, packs and passes the resume checks, or ends in a ticketpack error):
      python -m tests.fuzz.fuzz_artifact config --seconds 300 --seed 1
  inputs (tests/fuzz/fuzz_inputs.py: an artifact's eval context and config, a checkpoint's
  eval metadata and saved options, pack-ternary's safetensors (names, ranks, dtypes, values,
  config metadata; what it packs must verify) and SentencePiece model files):
      python -m tests.fuzz.fuzz_artifact inputs --seconds 300 --seed 1

All print the number of inputs run; SECURITY.md records the runs and what they found.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
import traceback
from pathlib import Path



def run_atheris(argv: list[str]) -> None:
    import atheris

    # rng's numba kernels compile from bytecode, so they stay uninstrumented
    with atheris.instrument_imports(include=["ticketpack", "tests.fuzz.mutate", "tests.hostile"],
                                    exclude=["ticketpack.nn.frozen"]):
        from tests.fuzz import mutate

    seeds = mutate.seed_corpus()
    counts: collections.Counter = collections.Counter()

    class FDPChooser:
        def __init__(self, fdp) -> None:
            self.fdp = fdp

        def int(self, n: int) -> int:
            return self.fdp.ConsumeIntInRange(0, n - 1) if n > 1 else 0

        def bytes(self, n: int) -> bytes:
            return self.fdp.ConsumeBytes(self.int(n + 1))

    start = time.time()

    def one_input(data: bytes) -> None:
        counts["inputs"] += 1
        if counts["inputs"] & (counts["inputs"] - 1) == 0:  # libFuzzer exits without a return
            _report(counts, time.time() - start, "atheris")
        counts[mutate.load_untrusted(data)] += 1
        counts[mutate.load_untrusted(mutate.fixup(data))] += 1
        fdp = atheris.FuzzedDataProvider(data)
        ch = FDPChooser(fdp)
        counts[mutate.load_untrusted(mutate.mutate(seeds[ch.int(len(seeds))], ch))] += 1

    corpus = [a for a in argv[1:] if not a.startswith("-")]
    for folder in corpus:  # start libFuzzer from the valid artifacts
        for i, seed in enumerate(seeds):
            path = Path(folder) / f"seed-{i}.tpk"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(seed)
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def run_random(seconds: float, seed: int) -> None:
    from tests.fuzz import mutate

    seeds = mutate.seed_corpus()
    rng = random.Random(seed)
    ch = mutate.RandomChooser(rng)
    counts: collections.Counter = collections.Counter()
    start, failures = time.time(), 0
    while time.time() - start < seconds:
        counts["inputs"] += 1
        data = mutate.mutate(seeds[rng.randrange(len(seeds))], ch)
        try:
            counts[mutate.load_untrusted(data)] += 1
        except Exception:  # noqa: BLE001 - a finding: keep the input, go on
            failures += 1
            path = Path(f"crash-random-{seed}-{failures}.tpk")
            path.write_bytes(data)
            print(f"FINDING written to {path}:\n{traceback.format_exc(limit=-3)}", file=sys.stderr)
    _report(counts, time.time() - start, "random")
    sys.exit(1 if failures else 0)


SHAPES = [(0,), (1,), (7,), (8, 16), (3, 5), (16, 4), (2, 3, 8), (1, 64), (64, 1), (5, 0), (4, 128)]
LEVELS = [0, 1, 2, 3, 4, 5, 16, 255, 256, 257]
NM = [(0, 0), (2, 4), (1, 2), (3, 4), (1, 64), (32, 64), (5, 4), (0, 4), (2, 8), (4, 128)]


def codec_input(rng: random.Random) -> tuple[str, bytes, int, tuple, int, int]:
    """An encoding, its bytes and the parameters it is decoded with."""
    import numpy as np

    from ticketpack.format import codecs
    from ticketpack.errors import TicketpackError

    enc, shape, K = rng.choice(codecs.ENCODINGS), rng.choice(SHAPES), rng.choice(LEVELS)
    n, m = rng.choice(NM)
    if rng.random() < 0.5:  # random bytes
        return enc, rng.randbytes(rng.randrange(40)), K, shape, n, m
    size = int(np.prod(shape))
    symbols = np.array([rng.randrange(max(min(K, 256), 1)) for _ in range(size)], np.uint8)
    try:
        data = bytearray(codecs.encode(enc, symbols.reshape(shape), K=K, shape=shape, n=n, m=m))
    except TicketpackError:
        data = bytearray()
    for _ in range(rng.randrange(4)):
        if data and rng.random() < 0.6:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif rng.random() < 0.5:
            data += rng.randbytes(rng.randrange(5))
        elif data:
            del data[rng.randrange(len(data)):]
    return enc, bytes(data), K, shape, n, m


def run_codecs(seconds: float, seed: int) -> None:
    from ticketpack.format import codecs
    from ticketpack.errors import TicketpackError

    rng = random.Random(seed)
    counts: collections.Counter = collections.Counter()
    start, failures = time.time(), 0
    while time.time() - start < seconds:
        counts["inputs"] += 1
        enc, data, K, shape, n, m = codec_input(rng)
        try:
            codecs.decode(enc, data, K=K, shape=shape, n=n, m=m)
            counts["decoded"] += 1
        except TicketpackError as exc:
            counts[type(exc).__name__] += 1
        except Exception:  # noqa: BLE001 - a finding
            failures += 1
            print(f"FINDING {enc} K={K} shape={shape} n={n} m={m} data={data.hex()}:\n"
                  f"{traceback.format_exc(limit=-3)}", file=sys.stderr)
    _report(counts, time.time() - start, "codecs")
    sys.exit(1 if failures else 0)


def run_config(seconds: float, seed: int) -> None:
    from tests.fuzz import fuzz_config

    _run_target(fuzz_config.run, seconds, seed, "config")


def run_inputs(seconds: float, seed: int) -> None:
    from tests.fuzz import fuzz_inputs

    _run_target(fuzz_inputs.run, seconds, seed, "inputs")


def _run_target(run, seconds: float, seed: int, engine: str) -> None:
    """A target module's seeded run: its counts reported, or its first finding and exit 1."""
    start = time.time()
    try:
        counts = collections.Counter(run(seconds, seed))
    except Exception:  # noqa: BLE001 - a finding: the seeded PRNG replays it
        print(f"FINDING (seed {seed}):\n{traceback.format_exc(limit=-4)}", file=sys.stderr)
        sys.exit(1)
    counts.pop("seconds", None)
    _report(counts, time.time() - start, engine)


def _report(counts: collections.Counter, seconds: float, engine: str) -> None:
    inputs = counts["inputs"]
    outcomes = {k: v for k, v in counts.most_common() if k != "inputs"}
    print(f"{engine}: {inputs:,} inputs, {sum(outcomes.values()):,} loads in {seconds:.0f} s "
          f"({inputs / max(seconds, 1e-9):,.0f} inputs/s); outcomes: {outcomes}", file=sys.stderr,
          flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "atheris":
        run_atheris([sys.argv[0]] + sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("engine", choices=["random", "codecs", "config", "inputs"])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    engines = {"codecs": run_codecs, "random": run_random, "config": run_config, "inputs": run_inputs}
    engines[args.engine](args.seconds, args.seed)


if __name__ == "__main__":
    main()
