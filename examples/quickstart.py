"""The quickstart from Python: train a supermask model on the bundled Shakespeare, pack it,
size it, load-and-eval it (what ``ticketpack quickstart`` runs).

    python examples/quickstart.py                 # the default training budget
    python examples/quickstart.py --minutes 1     # a quicker, weaker model

Training learns only mask levels over frozen weights regenerated from a seed, plus a few
fp16 scales; the artifact holds the seed, the masks and the scales. The held-out text is the
last 10% of the corpus (xz -9 compresses it to about 2.48 bits per byte); the tokenizer, a
1,024-piece BPE, is trained on the first 90% only. All of it lands in the output folder.
"""

from __future__ import annotations

import argparse
import json

from ticketpack import api
from ticketpack.cli.progress import reporter
from ticketpack.train.recipes import QUICKSTART_MINUTES


def main() -> None:
    p = argparse.ArgumentParser(description="train, pack and load-and-eval the quickstart model")
    p.add_argument("--out-dir", default="runs/quickstart")
    p.add_argument("--minutes", type=float, default=QUICKSTART_MINUTES, help="training time budget")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args()
    figures = api.quickstart(args.out_dir, minutes=args.minutes, say=print, progress=reporter(args.quiet))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
