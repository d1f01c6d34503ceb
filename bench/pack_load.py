"""Pack and load a parameter-golf-scale ticket (118,489,088 one-bit connections, ~15 MB).

Compares, in one run, ticketpack's load, stage by stage (read, parse + CRC, decompress +
decode, regenerate, effective weights, digests: each stage parallel over tensors), and its
one-call loader ``ticketpack.format.load_artifact`` (the same stages fused per tensor), both
including the weights-digest check, against the existing practice of the parameter-golf
lottery-ticket entry: one zlib stream, sequential torch MT19937 ``uniform_`` regeneration,
numpy ``unpackbits`` to a torch bool tensor, then masking (no hash check).

    python bench/pack_load.py            # full scale (~118M connections)
    python bench/pack_load.py --scale 0.1
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ticketpack.nn import frozen as rng
from ticketpack.train.shape_budget import entropy
from ticketpack.format import load_artifact
from ticketpack.interop.pg_import import encode_pg_artifact
from ticketpack.format.container import decode_artifact, parse_artifact, write_artifact
from ticketpack.format.digest import combine_digests, tensor_sha256
from ticketpack.format.maskspec import MaskSpec
from ticketpack.format.tensors import MaskedTensor, Ticket, philox_frozen
from ticketpack.models.gpt_config import config_from_preset
from ticketpack.train.shape_budget import stored_tensors


def pg_shapes(width: int, layers: int, vocab: int = 1024) -> list[tuple[str, tuple[int, ...]]]:
    """The lottery-ticket entry's frozen tensors (tok_emb, then 6 linears per block): the
    package's ``pg-lth`` preset at this width and depth."""
    config = config_from_preset("pg-lth", model_dim=width, num_layers=layers, vocab_size=vocab)
    return [(t.name, t.shape) for t in stored_tensors(config.to_dict()) if t.kind == "masked"]


def make_ticket(shapes, density: float, seed: int = 1234) -> Ticket:
    gen = np.random.default_rng(0)
    tensors = [MaskedTensor(name, shape, "xavier_uniform", MaskSpec.parse("binary"),
                            (gen.random(shape, dtype=np.float32) < density).astype(np.uint8))
               for name, shape in shapes]
    return Ticket(seed=seed, config={"bench": "pack_load"}, tensors=tensors)


CPU: dict[str, float] = {}  # CPU seconds (all threads) of the last ``timed`` call per stage


def timed(fn, *args, stage: str | None = None):
    """(result, wall seconds); with ``stage`` also records the process CPU seconds it took."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    if stage is not None:
        CPU[stage] = time.process_time() - c
    return out, time.perf_counter() - t


def _with_cpu(stages: dict, prefix: str) -> tuple[dict, dict]:
    """A run's wall seconds per stage with the CPU seconds ``timed`` recorded for them."""
    return stages, {k: CPU[prefix + k] for k in stages}


def ticketpack_load(path: str, threads: int) -> tuple[dict, dict]:
    """Load stage by stage, each stage over all tensors in ``threads`` threads."""
    stages = {}
    data, stages["read"] = timed(lambda: open(path, "rb").read(), stage="read")
    info, stages["parse+crc"] = timed(parse_artifact, data, stage="parse+crc")
    ticket, stages["decompress+decode"] = timed(decode_artifact, info, None, threads,
                                                stage="decompress+decode")
    with ThreadPoolExecutor(threads) as pool:
        frozen, stages["regenerate"] = timed(lambda: list(pool.map(
            lambda m: philox_frozen(ticket.seed, m, 1), ticket.tensors)), stage="regenerate")
        weights, stages["effective"] = timed(lambda: list(pool.map(
            lambda mw: mw[0].effective(ticket.seed, mw[1], inplace=True), zip(ticket.tensors, frozen))),
            stage="effective")
        digests, stages["digest"] = timed(lambda: list(pool.map(
            lambda mw: tensor_sha256(mw[0].name, mw[1]), zip(ticket.tensors, weights))), stage="digest")
    if combine_digests(digests) != info.header["weights_sha256"]:
        raise SystemExit("regenerated weights do not match the artifact's hash")
    return dict(zip((m.name for m in ticket.tensors), weights)), stages


def fused_load(path: str, threads: int) -> tuple[float, float]:
    """(wall, CPU) seconds of ``load_artifact``: read, parse, decode, then regenerate +
    effective + digest fused per tensor, digests checked."""
    _, seconds = timed(load_artifact, path, stage="fused")
    return seconds, CPU["fused"]


def pg_pack(shapes, masks: list[np.ndarray], seed: int) -> bytes:
    """The existing layout: seed, mask section (packbits little), scales (here none), zlib-9."""
    return encode_pg_artifact(seed, {name: mask for (name, _), mask in zip(shapes, masks)})


def pg_load(path: str) -> tuple[dict, dict]:
    stages, cpu = {}, {}
    t, c = time.perf_counter(), time.process_time()
    blob = open(path, "rb").read()
    body = zlib.decompress(blob)
    stages["read+decompress"] = time.perf_counter() - t
    cpu["read+decompress"], c = time.process_time() - c, time.process_time()
    t = time.perf_counter()
    seed, _ = struct.unpack_from("<II", body)
    pos = 8
    (count,) = struct.unpack_from("<I", body, pos)
    pos += 4
    entries = []
    for _ in range(count):
        (ln,) = struct.unpack_from("<I", body, pos)
        name = body[pos + 4:pos + 4 + ln].decode()
        pos += 4 + ln
        (nd,) = struct.unpack_from("<I", body, pos)
        shape = struct.unpack_from(f"<{nd}I", body, pos + 4)
        pos += 4 + 4 * nd
        (plen,) = struct.unpack_from("<I", body, pos)
        bits = np.unpackbits(np.frombuffer(body, np.uint8, plen, pos + 4), bitorder="little")
        pos += 4 + plen
        entries.append((name, shape, torch.from_numpy(bits[:math.prod(shape)].reshape(shape)).bool()))
    stages["decode"] = time.perf_counter() - t
    cpu["decode"], c = time.process_time() - c, time.process_time()
    t = time.perf_counter()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    frozen = {}
    for name, shape, _ in entries:  # the documented order is part of the old format
        fan_in, fan_out = shape[1], shape[0]
        bound = math.sqrt(3) * math.sqrt(2 / (fan_in + fan_out))
        frozen[name] = torch.empty(shape).uniform_(-bound, bound, generator=gen)
    stages["regenerate"] = time.perf_counter() - t
    cpu["regenerate"], c = time.process_time() - c, time.process_time()
    t = time.perf_counter()
    state = {name: frozen[name] * mask for name, _, mask in entries}
    stages["assemble"] = time.perf_counter() - t
    cpu["assemble"], c = time.process_time() - c, time.process_time()
    CPU.update({f"pg {k}": v for k, v in cpu.items()})
    return state, stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the width (1.0 = 1024)")
    ap.add_argument("--density", type=float, default=0.461)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--codecs", nargs="+", default=["auto", "zstd"], help="ticketpack codecs to compare")
    ap.add_argument("--repeats", type=int, default=3, help="each load path: the best of this many runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    width = max(64, int(1024 * args.scale) // 64 * 64)
    shapes = pg_shapes(width, 16)
    n = sum(math.prod(s) for _, s in shapes)
    print(f"{len(shapes)} tensors, {n:,} one-bit connections, density {args.density}, "
          f"{args.threads} threads")
    ticket = make_ticket(shapes, args.density)
    rng.frozen_weight(1, "warm-up", (4, 4), "xavier_uniform")  # compile numba outside the timings
    bound = sum(m.levels.size for m in ticket.tensors) * entropy([args.density, 1 - args.density]) / 8
    with tempfile.TemporaryDirectory() as tmp:
        old = os.path.join(tmp, "pg.ptz")
        old_blob, t_old_pack = timed(pg_pack, shapes, [m.levels for m in ticket.tensors], ticket.seed)
        with open(old, "wb") as fh:
            fh.write(old_blob)
        theirs = min((_with_cpu(pg_load(old)[1], "pg ") for _ in range(args.repeats)),
                     key=lambda run: sum(run[0].values()))
        print(f"existing practice: {len(old_blob):,} B, packed in {t_old_pack:.2f} s")
        for codec in args.codecs:
            tpk = os.path.join(tmp, f"{codec}.tpk")
            nbytes, t_pack = timed(write_artifact, ticket, tpk, codec)
            ours = min((_with_cpu(ticketpack_load(tpk, args.threads)[1], "") for _ in range(args.repeats)),
                       key=lambda run: sum(run[0].values()))
            fused = min(fused_load(tpk, args.threads) for _ in range(args.repeats))
            encs = sorted({s["enc"] for t in parse_artifact(open(tpk, "rb").read()).tensors
                           for s in t["sections"]})
            print(f"\nticketpack --codec {codec} ({', '.join(encs)}): {nbytes:,} B "
                  f"({8 * nbytes / n:.4f} bits/conn, {100 * (nbytes / bound - 1):+.2f}% vs n*H(p)), "
                  f"packed in {t_pack:.2f} s")
            _table(ours, theirs, fused)


def _table(ours: tuple[dict, dict], theirs: tuple[dict, dict], fused: tuple[float, float]) -> None:
    """Wall and CPU seconds (all threads) per stage; CPU seconds move less on a busy machine."""
    print("\n| stage (best run) | ticketpack wall (s) | CPU (s) | existing practice wall (s) | CPU (s) |\n"
          "|---|---|---|---|---|")
    fmt = lambda d, k: "-" if k not in d else f"{d[k]:.3f}"  # noqa: E731
    for stage in ("read", "parse+crc", "read+decompress", "decompress+decode", "decode", "regenerate",
                  "effective", "assemble", "digest"):
        print(f"| {stage} | {fmt(ours[0], stage)} | {fmt(ours[1], stage)} | {fmt(theirs[0], stage)} | "
              f"{fmt(theirs[1], stage)} |")
    (aw, ac), (bw, bc) = (tuple(sum(d.values()) for d in run) for run in (ours, theirs))
    print(f"| **total load, digest checked** | **{aw:.3f}** | {ac:.3f} | **{bw:.3f}** (no digest) | {bc:.3f} |")
    print(f"| load_artifact (fused) | {fused[0]:.3f} | {fused[1]:.3f} | | |")
    print(f"load speed-up including ticketpack's digest check (the old path has none), target >= 5x: "
          f"wall {bw / aw:.2f}x staged, {bw / fused[0]:.2f}x fused; "
          f"CPU seconds {bc / ac:.2f}x staged, {bc / fused[1]:.2f}x fused")


if __name__ == "__main__":
    main()
