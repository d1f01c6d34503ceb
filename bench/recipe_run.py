"""One variant of the quickstart recipe: train with overrides, print one RESULT line.

The overrides are JSON: ``TrainOptions`` fields on top of ``quickstart_options`` (a nested
``model`` object overrides ``GPTConfig`` fields). docs/RESULTS.md's recipe comparisons ran
two of these at a time, one thread each, with the final held-out evaluation on:

    python bench/recipe_run.py --threads 1 base '{"steps": 585, "final_eval": true}'
    python bench/recipe_run.py --threads 1 mlp2 '{"final_eval": true, "model": {"mlp_mult": 2}}'

The quickstart's 9.25-minute budget stays unless overridden, and a run stops at whichever of
``steps`` / ``max_minutes`` comes first. Checkpoint and log go to ``--out-dir``/TAG.*, beside the
quickstart's prepared data (training text, held-out text, BPE tokenizer). The byte-level recipe
the tables before the tokenizer used, on the same training and held-out bytes:
``'{"tokenizer": null, "model": {"vocab_size": 256}}'``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any

import torch

from ticketpack.text.quickstart import QuickstartData, prepare_quickstart_data
from ticketpack.train.loop import train
from ticketpack.train.options import TrainOptions, quickstart_options


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="train one quickstart-recipe variant")
    p.add_argument("tag", help="name of the run (file names, RESULT line)")
    p.add_argument("overrides", nargs="?", default="{}", help="JSON TrainOptions overrides")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", default="runs/recipe")
    return p.parse_args()


def check_overrides(overrides: dict[str, Any]) -> None:
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainOptions)}
    if unknown:
        raise SystemExit(f"overrides: unknown TrainOptions fields {sorted(unknown)}")


def variant_options(overrides: dict[str, Any], base: str, data: QuickstartData) -> TrainOptions:
    """``quickstart_options`` with ``overrides`` on top; checkpoint ``base``.safetensors, log .jsonl."""
    check_overrides(overrides)
    overrides = dict(overrides)
    opts = quickstart_options(f"{base}.safetensors", data, log=f"{base}.jsonl")
    model = {**opts.model, **overrides.pop("model", {})}
    return dataclasses.replace(opts, **{"log_every": 50, "checkpoint_every": 0, **overrides, "model": model})


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    overrides = json.loads(args.overrides)
    check_overrides(overrides)  # before anything is written
    data = prepare_quickstart_data(args.out_dir)
    opts = variant_options(overrides, os.path.join(args.out_dir, args.tag), data)
    start = time.perf_counter()
    result = train(opts)
    val_bpb = None if result.val_bpb is None else round(result.val_bpb, 4)
    print("RESULT", args.tag, json.dumps({"val_bpb": val_bpb, "steps": result.steps,
                                          "wall": round(time.perf_counter() - start),
                                          "overrides": args.overrides}), flush=True)


if __name__ == "__main__":
    main()
