"""The standalone loader (`ticketpack export-loader`) on the 118M-connection benchmark ticket.

Packs the ticket of bench/pack_load.py (parameter-golf shapes, binary masks at density 0.461)
and loads it, in one run, with the library (`api.load_verified`: numba when importable) and
with the exported one-file loader (numpy only), checking that both give the same bits.

    python bench/loader_speed.py                 # full scale (~118M connections)
    python bench/loader_speed.py --scale 0.25 --codecs zstd
    python bench/loader_speed.py --masks-only    # the 2^24-element mask decodes alone

The second table times the loader's rANS decoders alone on one 2^24-element mask (times
--scale) per encoding, coded with exactly the lanes format version 3 requires (Lmin(S),
docs/FORMAT.md 5.2.1): the fewest a valid v3 stream can have, so the slowest decode.
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
    ap.add_argument("--masks-only", action="store_true", help="only the rANS decode table")
    args = ap.parse_args()
    if args.masks_only:
        return mask_decodes(max(4096, int(2**24 * args.scale)))
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
        mask_decodes(max(4096, int(2**24 * args.scale)), loader)


def lmin_log2(symbols: int) -> int:
    """log2 of FORMAT.md 5.2.1's minimum lanes of a version-3 stream of ``symbols`` symbols."""
    return min(12, (-(-symbols // 4096) - 1).bit_length())


def stream_symbols(loader, name: str, data: bytes, shape: tuple[int, int]) -> int:
    """S of the stream in a section, from the B or G the writer chose (FORMAT.md 5.2.2-5.2.4)."""
    rows, cols = shape
    if name.startswith("ransnm"):
        return -(-(rows * cols // 4) // data[0])
    pos = 0
    for _ in range(255 if "256" in name else 1):  # the K - 1 counts
        _, pos = loader.varint(data, pos)
    if name.startswith("rans0"):
        return -(-(rows * cols) // data[pos])
    pos += 1 + -(-rows * data[pos] // 8)  # ransrow: every row mixed at this density
    return rows * -(-cols // data[pos])


def mask_decodes(n: int, loader=None) -> None:
    """The loader's rANS decoders on one n-element mask per encoding, at v3's minimum lanes."""
    from ticketpack.format import rans

    if loader is None:
        with tempfile.TemporaryDirectory() as tmp:
            loader = import_loader(api.export_loader(os.path.join(tmp, "tpk_loader.py"))["path"])
    gen = np.random.default_rng(0)
    rows = 4096 if n >= 4096 * 64 else 64
    shape = (rows, n // rows)
    binary = (gen.random(shape) < 0.461).astype(np.uint8)
    groups = np.zeros((binary.size // 4, 4), np.uint8)
    groups[:, :2] = 1
    nm = gen.permuted(groups, axis=1).reshape(shape)
    levels = gen.integers(0, 256, shape).astype(np.uint8)  # 256 levels: one element per symbol
    cases = {"rans0 (binary)": (lambda e: rans.encode_rans0(binary, 2, lanes_log2=e), lambda d: loader.rans0(d, list(shape), binary.size, 2, v3=1), binary),
             "rans0 (multibit:256)": (lambda e: rans.encode_rans0(levels, 256, lanes_log2=e), lambda d: loader.rans0(d, list(shape), levels.size, 256, v3=1), levels),
             "ransrow (binary)": (lambda e: rans.encode_ransrow(binary, lanes_log2=e), lambda d: loader.ransrow(d, list(shape), v3=1), binary),
             "ransnm (2:4)": (lambda e: rans.encode_ransnm(nm, 2, 4, lanes_log2=e), lambda d: loader.ransnm(d, list(shape), nm.size, 2, 2, 4, v3=1), nm)}
    print(f"\n{binary.size:,}-element masks ({shape[0]} x {shape[1]}), v3's minimum lanes, "
          f"loader decode alone:\n\n| encoding | symbols | lanes | bytes | decode (s) |\n|---|---|---|---|---|")
    for name, (encode, decode, want) in cases.items():
        symbols = stream_symbols(loader, name, encode(None), shape)
        data = encode(lmin_log2(symbols))
        got, t = timed(decode, data)
        assert np.array_equal(np.asarray(got).reshape(shape), want), name
        print(f"| {name} | {symbols:,} | {1 << lmin_log2(symbols)} | {len(data):,} | {t:.2f} |")


def _pack(ticket, tmp: str, codec: str) -> str:
    path = os.path.join(tmp, f"{codec}.tpk")
    write_artifact(ticket, path, codec=codec)
    return path


if __name__ == "__main__":
    main()
