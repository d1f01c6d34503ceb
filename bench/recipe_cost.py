"""Per-step cost of quickstart-recipe variants against the first one, measured in the same run.

A fixed-step comparison of recipes (bench/recipe_run.py) is fair only once each variant's
step count is scaled by what its steps cost: the quickstart trains for a fixed time, so a
variant whose step costs 20% more gets 20% fewer steps. This script runs short training
runs of every variant in turn (the real trainer, ``quickstart_options`` plus the variant's
JSON overrides), rotating the order each round so machine load hits all alike, and takes
the median seconds per step after the first logged steps (allocation, first-touch):

    python bench/recipe_cost.py --threads 1 base '{}' ar4 '{"adapter_rank": 4}' \\
        bin '{"mask": "binary"}' --ref-steps 1945

prints each variant's seconds per step, its cost relative to the first variant, and the steps
it would make in the time the first variant needs for ``--ref-steps`` steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import torch
from recipe_run import variant_options

from ticketpack.text.quickstart import QuickstartData, prepare_quickstart_data
from ticketpack.train.loop import train


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="+", help="pairs TAG JSON (TrainOptions overrides); the first is the reference")
    p.add_argument("--steps", type=int, default=40, help="steps per timed run")
    p.add_argument("--skip", type=int, default=10, help="first steps of each run left out of the timing")
    p.add_argument("--rounds", type=int, default=3, help="timed runs per variant")
    p.add_argument("--ref-steps", type=int, default=None,
                   help="also print each variant's steps in the time the reference needs for this many")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if len(args.variants) % 2:
        p.error("variants: expected pairs TAG JSON")
    if not 0 < args.skip < args.steps:
        p.error("--skip: expected 0 < skip < steps")
    return args


def seconds_per_step(overrides: dict, steps: int, skip: int, tmp: str, data: QuickstartData) -> float:
    """Training seconds per step between step ``skip`` and step ``steps`` of one short run."""
    marks: dict[int, float] = {}

    def on_event(event: dict) -> None:
        if event.get("event") == "step":
            marks[event["step"]] = event["train_seconds"]

    opts = variant_options({**overrides, "steps": steps, "max_minutes": None, "final_eval": False,
                            "log_every": skip}, f"{tmp}/run", data)
    train(opts, callback=on_event)
    last = max(marks)
    return (marks[last] - marks[skip]) / (last - skip)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    variants = [(args.variants[i], json.loads(args.variants[i + 1])) for i in range(0, len(args.variants), 2)]
    timings: dict[str, list[float]] = {tag: [] for tag, _ in variants}
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_quickstart_data(tmp)
        for r in range(args.rounds):
            shift = r % len(variants)
            for tag, overrides in variants[shift:] + variants[:shift]:
                timings[tag].append(seconds_per_step(overrides, args.steps, args.skip, tmp, data))
    ref = statistics.median(timings[variants[0][0]])
    print(f"# {args.threads} thread(s), {args.rounds} rounds of {args.steps} steps (first {args.skip} untimed)")
    print("| variant | s / step (median) | cost vs " + variants[0][0] + " |"
          + (f" steps in the time of {args.ref_steps:,} |" if args.ref_steps else ""))
    print("|---|---:|---:|" + ("---:|" if args.ref_steps else ""))
    for tag, _ in variants:
        med = statistics.median(timings[tag])
        row = f"| {tag} | {med:.4f} | {med / ref:.3f} |"
        if args.ref_steps:
            row += f" {round(args.ref_steps * ref / med):,} |"
        print(row)


if __name__ == "__main__":
    main()
