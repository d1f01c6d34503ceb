"""Bits per connection against the entropy bound: bit-packing + zlib-9 / zstd-19
versus ticketpack's auto choice, on synthetic masks and trits, with throughput.

    python bench/coding.py [--elements 4194304]

Prints a markdown table and saves nothing. Bound: the order-0 empirical entropy
of the symbols, except for 2:4 masks, whose bound is log2(C(4,2))/4 bits.
"""

from __future__ import annotations

import argparse
import platform
import time
from math import comb, log2

import constriction
import numpy as np
import zstandard

from timing import best_of

from ticketpack import __version__
from ticketpack.format import codecs
from ticketpack.format.compression import compress, decompress


def cases(n: int, seed: int = 0):
    """(label, symbols (rows, cols), K, N, M, bound in bits per element)."""
    gen = np.random.default_rng(seed)
    rows = 2048
    for p in (0.01, 0.05, 0.1, 0.3, 0.46, 0.5):
        mask = (gen.random((rows, n // rows)) < p).astype(np.uint8)
        yield f"binary p={p}", mask, 2, 0, 0, codecs.entropy_bits(mask, 2)
    order = np.argsort(gen.random((n // 4, 4)), axis=1)
    mask24 = (order < 2).astype(np.uint8).reshape(rows, -1)
    yield "2:4", mask24, 2, 2, 4, log2(comb(4, 2)) / 4
    levels = gen.choice(4, size=(rows, n // rows), p=[0.55, 0.3, 0.1, 0.05]).astype(np.uint8)
    yield "2-bit levels (.55/.3/.1/.05)", levels, 4, 0, 0, codecs.entropy_bits(levels, 4)
    trits = gen.choice(3, size=(rows, n // rows), p=[0.3, 0.4, 0.3]).astype(np.uint8)
    yield "ternary (.3/.4/.3)", trits, 3, 0, 0, codecs.entropy_bits(trits, 3)


def row(label, sym, K, n, m, bound) -> str:
    size, shape = sym.size, sym.shape
    packed = codecs.encode("bits" if K == 2 else "planes", sym, K=K, shape=shape)
    zlib9 = 8 * len(compress(packed, "zlib", 9)) / size
    zstd19 = 8 * len(compress(packed, "zstd", 19)) / size
    t_choose = time.perf_counter()
    enc, codec, stored, raw_size = codecs.choose(sym, K=K, shape=shape, n=n, m=m)
    t_choose = time.perf_counter() - t_choose
    auto = 8 * len(stored) / size
    t_enc, _ = best_of(lambda: compress(codecs.encode(enc, sym, K=K, shape=shape, n=n, m=m), codec), 3)
    t_dec, out = best_of(lambda: codecs.decode(enc, decompress(stored, codec, raw_size), K=K,
                                               shape=shape, n=n, m=m), 3)
    assert np.array_equal(out, sym), label
    choice = enc if codec == "none" else f"{enc}+{codec}"
    return (f"| {label} | {bound:.4f} | {zlib9:.4f} ({zlib9 / bound:.3f}) "
            f"| {zstd19:.4f} ({zstd19 / bound:.3f}) | {choice} | {auto:.4f} ({auto / bound:.4f}) "
            f"| {auto / zstd19:.3f} | {size / t_enc / 1e6:.0f} | {size / t_dec / 1e6:.0f} "
            f"| {size / t_choose / 1e6:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", type=int, default=1 << 22, help="elements per case")
    args = ap.parse_args()
    print(f"ticketpack {__version__}, numpy {np.__version__}, constriction "
          f"{getattr(constriction, '__version__', '0.5')}, zstandard {zstandard.__version__}, "
          f"{platform.processor() or platform.machine()}; {args.elements:,} elements per case; "
          f"bits per element (ratio to the bound)\n")
    print("| case | bound | packed + zlib-9 | packed + zstd-19 | auto choice | auto "
          "| auto / zstd-19 | encode Melem/s | decode Melem/s | choose Melem/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in cases(args.elements):
        print(row(*case), flush=True)
    print("\npacked = `bits` (K = 2) or `planes` (K > 2); auto = `codecs.choose` (every applicable "
          "encoding x none/zstd-19/zlib-9); encode/decode = the chosen encoding, best of 3; "
          "choose = the whole search.")


if __name__ == "__main__":
    main()
