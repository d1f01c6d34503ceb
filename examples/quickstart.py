"""The quickstart: train a supermask model on the bundled Shakespeare, pack it, size it, load-and-eval it.

    python examples/quickstart.py                 # ~7 minutes of training on a laptop CPU
    python examples/quickstart.py --minutes 1     # a quicker, weaker model

Training learns only mask levels over frozen weights regenerated from a seed, plus a few
fp16 scales; the artifact holds the seed, the masks and the scales. The held-out text is the
last 10% of the corpus; xz -9 compresses it to about 2.48 bits per byte.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ticketpack import api
from ticketpack.data import bundled_corpus_path
from ticketpack.train import QUICKSTART_MINUTES, ProgressBar, quickstart_options, train


def main() -> None:
    p = argparse.ArgumentParser(description="train, pack and load-and-eval the quickstart model")
    p.add_argument("--out-dir", default="runs/quickstart")
    p.add_argument("--minutes", type=float, default=QUICKSTART_MINUTES, help="training time budget")
    args = p.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    ckpt = os.path.join(args.out_dir, "model.safetensors")
    artifact = os.path.join(args.out_dir, "model.tpk")
    start = time.perf_counter()

    opts = quickstart_options(ckpt, log=os.path.join(args.out_dir, "train.jsonl"), max_minutes=args.minutes)
    print(f"training on {bundled_corpus_path()} for {args.minutes:g} minutes "
          f"(log: {opts.log}) ...", flush=True)
    result = train(opts, callback=ProgressBar(sys.stderr) if sys.stderr.isatty() else None)
    print(f"trained {result.steps} steps, {result.tokens:,} tokens in {result.seconds:.0f} s: "
          f"val_bpb {result.val_bpb:.4f}, density {result.density:.3f}, "
          f"{result.connections:,} connections")

    nbytes = api.pack(ckpt, artifact)
    report = api.size(artifact)
    print(f"packed {artifact}: {nbytes:,} bytes "
          f"({8 * nbytes / result.connections:.3f} bits per connection)")

    ev = api.load_and_eval(artifact, [bundled_corpus_path()], device="cpu", seq_len=opts.seq_len,
                           split="val")
    same = "the same as training reported" if ev["val_bpb"] == result.val_bpb else "DIFFERS from training"
    print(f"load-and-eval: val_bpb {ev['val_bpb']:.4f} on {ev['bytes']:,} held-out bytes ({same}); "
          f"xz -9 needs 2.48")
    print(json.dumps({"val_bpb": ev["val_bpb"], "artifact_bytes": report.total_bytes,
                      "steps": result.steps, "train_seconds": round(result.seconds, 1),
                      "total_seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
