"""The standalone loader (`ticketpack export-loader`) on the 118M-connection benchmark ticket.

Packs the ticket of bench/pack_load.py (parameter-golf shapes, binary masks at density 0.461)
and loads it, in one run, with the library (`api.load_verified`: numba when importable) and
with the exported one-file loader (numpy only), checking that both give the same bits.

    python bench/loader_speed.py                 # full scale (~118M connections)
    python bench/loader_speed.py --scale 0.25 --codecs zstd
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import tempfile
import time

import numpy as np

from pack_load import make_ticket, pg_shapes  # the same benchmark ticket

from ticketpack import api
from ticketpack.artifact import write_artifact


def import_loader(path: str):
    spec = importlib.util.spec_from_file_location("tpk_loader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the width (1.0 = 1024)")
    ap.add_argument("--density", type=float, default=0.461)
    ap.add_argument("--codecs", nargs="+", default=["auto", "zstd"])
    args = ap.parse_args()
    width = max(64, int(1024 * args.scale) // 64 * 64)
    shapes = pg_shapes(width, 16)
    n = sum(math.prod(s) for _, s in shapes)
    ticket = make_ticket(shapes, args.density)
    with tempfile.TemporaryDirectory() as tmp:
        info = api.export_loader(os.path.join(tmp, "tpk_loader.py"))
        loader = import_loader(info["path"])
        print(f"{len(shapes)} tensors, {n:,} connections, density {args.density}, "
              f"{os.cpu_count()} cores; standalone loader: {info['bytes']:,} bytes")
        api.load_verified(_pack(ticket, tmp, "zstd"))  # warm-up: numba compiles outside the timings
        print("\n| codec | artifact (B) | library load (s) | standalone loader (s) | ratio |\n|---|---|---|---|---|")
        for codec in args.codecs:
            path = _pack(ticket, tmp, codec)
            (_, state, _), t_lib = timed(api.load_verified, path)
            weights, t_alone = timed(loader.load, path)
            assert all(np.array_equal(weights[k].view(np.uint32), v.numpy().view(np.uint32))
                       for k, v in state.items()), "the loaders disagree"
            print(f"| {codec} | {os.path.getsize(path):,} | {t_lib:.2f} | {t_alone:.2f} | "
                  f"{t_alone / t_lib:.1f}x |")


def _pack(ticket, tmp: str, codec: str) -> str:
    path = os.path.join(tmp, f"{codec}.tpk")
    write_artifact(ticket, path, codec=codec)
    return path


if __name__ == "__main__":
    main()
