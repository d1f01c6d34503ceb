"""Load-and-eval speed on CPU for a model of the parameter-golf submission's default shape.

Random binary masks (density 0.461) and fp32 scales for the pg-lth preset (16 x 1024, vocab
1024: 118,489,088 connections), stored three ways, then in one run:

1. time from artifact to first logits (read + verify + regenerate + build + one forward) for
   - a native ticketpack .tpk (Philox stream),
   - the .tpk that ``import-pg`` makes of the same masks (torch-mt19937-cpu stream),
   - the baseline: the parameter-golf file itself, loaded the existing way (zlib, unpack bits,
     sequential torch MT19937 regeneration, mask, build, forward), no hash check;
2. eval throughput (tokens/s) over random token ids 0..1023 in non-overlapping windows:
   ticketpack's load-and-eval model (dense effective weights) against the baseline of the
   masked model, which recomputes frozen * mask in every forward as training code does.

    python bench/eval_speed.py                     # ~3 minutes, 1 thread
    python bench/eval_speed.py --threads 2         # both cores (only on an idle machine)
    python bench/eval_speed.py --tokens 1024       # score fewer tokens
    python bench/eval_speed.py --layers 2 --tokens 512   # a quick smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import tempfile
import time
from collections import Counter

import numba
import numpy as np
import torch

from ticketpack import api
from ticketpack.interop import pg_import
from ticketpack.nn import frozen as rng
from ticketpack.artifact import decode_artifact, parse_artifact, read_artifact_bytes, write_artifact
from ticketpack.text.corpus import TokenStream
from ticketpack.eval.evaluate import evaluate
from ticketpack.nn.layers import masked_layers
from ticketpack.models.gpt_model import GPT
from ticketpack.ticket import Ticket, load_effective, weights_sha256

DENSITY = 0.461


def now() -> float:
    return time.perf_counter()


# ---------------------------------------------------------------- inputs

def random_pg_file(path: str, cfg, seed: int) -> dict[str, np.ndarray]:
    """Write the parameter-golf layout (what pg_import reads) with random masks; returns the masks."""
    with torch.device("meta"):
        shapes = {n: tuple(p.shape) for n, p in GPT(cfg, masked=False).named_parameters()}
    gen = np.random.default_rng(seed)
    masks = {n: (gen.random(s, dtype=np.float32) < DENSITY).astype(np.uint8)
             for n, s in shapes.items() if len(s) == 2}
    scales = {n: torch.from_numpy(1 + gen.random(s, dtype=np.float32) / 3)
              for n, s in shapes.items() if len(s) == 1}
    stored = {n.removesuffix(".weight") + pg_import.MASK_SUFFIX: bits for n, bits in masks.items()}
    with open(path, "wb") as fh:
        fh.write(pg_import.encode_pg_artifact(seed, stored, scales))
    return masks


# ---------------------------------------------------------------- artifact -> first logits

def tpk_first_logits(path: str, idx: torch.Tensor) -> tuple[torch.Tensor, dict, torch.nn.Module]:
    """ticketpack's load path, stage by stage (what load-and-eval runs before scoring)."""
    st = {}
    t = now()
    info = parse_artifact(read_artifact_bytes(path))
    ticket = decode_artifact(info)
    st["read + parse + decode"] = now() - t
    t = now()
    state = ticket.effective_state_dict()
    st["regenerate + mask"] = now() - t
    t = now()
    if weights_sha256(state) != info.header["weights_sha256"]:
        raise SystemExit(f"{path}: regenerated weights do not match the stored hash")
    st["verify sha256"] = now() - t
    t = now()
    model = api.build_model(ticket, state, "cpu")
    st["build model"] = now() - t
    t = now()
    with torch.inference_mode():
        logits = model(idx)
    st["first forward"] = now() - t
    return logits, st, model


def pg_first_logits(path: str, cfg, idx: torch.Tensor) -> tuple[torch.Tensor, dict, dict]:
    """The existing practice: inflate, unpack, regenerate in the documented order, mask, build."""
    st = {}
    t = now()
    pg = pg_import.read_pg_artifact(path)
    masks = {k.removesuffix(".mask_scores") + ".weight": torch.from_numpy(v) for k, v in pg.masks.items()}
    st["read + parse + decode"] = now() - t
    t = now()
    gen = torch.Generator(device="cpu").manual_seed(pg.seed)
    frozen = {}
    for name in ["tok_emb.weight"] + sorted(n for n in masks if n != "tok_emb.weight"):
        fan_out, fan_in = masks[name].shape
        xavier = math.sqrt(3) * math.sqrt(2 / (fan_in + fan_out))
        b = math.sqrt(6 / fan_in) if "mlp.fc.weight" in name else xavier
        frozen[name] = torch.empty(masks[name].shape).uniform_(-b, b, generator=gen)
    state = {n: frozen[n] * masks[n] for n in masks} | dict(pg.scales)
    st["regenerate + mask"] = now() - t
    t = now()
    model = GPT(cfg, masked=False)
    load_effective(model, state)
    model.eval()
    st["build model"] = now() - t
    t = now()
    with torch.inference_mode():
        logits = model(idx)
    st["first forward"] = now() - t
    return logits, st, {"frozen": frozen, "masks": masks, "scales": pg.scales, "seed": pg.seed}


def masked_model(cfg, parts: dict) -> torch.nn.Module:
    """The built-in GPT with masked layers over the same frozen weights and masks."""
    model = GPT(cfg, masked=True)
    for path, layer in masked_layers(model):
        name = f"{path}.weight"
        layer.frozen = parts["frozen"][name]
        with torch.no_grad():  # ste keeps scores >= 0
            layer.scores.copy_(parts["masks"][name].float() * 2 - 1)
        layer.tensor_name, layer.seed = name, parts["seed"]
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in parts["scales"].items():
            params[name].copy_(value)
    return model.eval()


# ---------------------------------------------------------------- report

STAGES = ("read + parse + decode", "regenerate + mask", "verify sha256", "build model", "first forward")


def stage_table(cols: dict[str, dict]) -> None:
    names = list(cols)
    print("\n| stage | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for stage in STAGES:
        cells = [f"{cols[n][stage]:.2f}" if stage in cols[n] else "-" for n in names]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    totals = {n: sum(c.values()) for n, c in cols.items()}
    print("| **artifact -> first logits (s)** | " + " | ".join(f"**{totals[n]:.2f}**" for n in names) + " |")
    base = totals[names[-1]]
    print("| vs baseline | " + " | ".join(f"{base / totals[n]:.2f}x" for n in names) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=4096, help="tokens to score per model")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--first-len", type=int, default=64, help="prompt length of the first forward")
    ap.add_argument("--codec", default="auto", choices=["auto", "zstd", "zlib"], help="codec of the .tpk files")
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch and numba threads (1: on a shared machine more threads spin and stall)")
    ap.add_argument("--repeats", type=int, default=2, help="loads per path; each stage keeps its fastest")
    ap.add_argument("--no-masked-baseline", action="store_true", help="skip the masked-model eval")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    arch = {"num_layers": args.layers, "model_dim": args.width}
    cfg = pg_import.arch_config(arch)
    rng.frozen_weight(1, "warm-up", (4, 4), "xavier_uniform")  # compile numba outside the timings
    print(f"pg-lth shape {args.layers} x {args.width}, vocab {cfg.vocab_size}; torch {torch.__version__}, "
          f"{args.threads} threads; masks density {DENSITY}")
    idx = torch.randint(0, cfg.vocab_size, (1, args.first_len), generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: os.path.join(tmp, k) for k in ("pg.bin", "arch.json", "mt.tpk", "philox.tpk")}
        masks = random_pg_file(paths["pg.bin"], cfg, seed=1234)
        n = sum(m.size for m in masks.values())
        del masks
        with open(paths["arch.json"], "w") as fh:
            json.dump(arch, fh)
        t = now()
        api.import_pg(paths["pg.bin"], paths["mt.tpk"], config=paths["arch.json"], codec=args.codec)
        t_import = now() - t
        imported = pg_import.import_pg(paths["pg.bin"], arch)
        native = Ticket(imported.seed, imported.config, imported.tensors, rng=rng.RNG_ID)
        write_artifact(native, paths["philox.tpk"], codec=args.codec)
        del imported, native
        gc.collect()
        sizes = {k: os.path.getsize(p) for k, p in paths.items() if k != "arch.json"}
        header = parse_artifact(read_artifact_bytes(paths["mt.tpk"])).header
        encs = Counter(f"{s['enc']}+{s['codec']}" for t in header["tensors"] for s in t["sections"]
                       if s["role"] == "mask")
        print(f"{n:,} connections; files: " + ", ".join(f"{k} {v:,} B" for k, v in sizes.items())
              + f"; import-pg took {t_import:.1f} s; .tpk mask sections (--codec {args.codec}): "
              + ", ".join(f"{k} x{v}" for k, v in encs.most_common()))

        cols: dict[str, dict] = {}
        for _ in range(max(1, args.repeats)):  # interleaved, so load on the machine hits all alike
            dense = parts = None
            gc.collect()
            _, st_p, _ = tpk_first_logits(paths["philox.tpk"], idx)
            logits_m, st_m, dense = tpk_first_logits(paths["mt.tpk"], idx)
            logits_b, st_b, parts = pg_first_logits(paths["pg.bin"], cfg, idx)
            for label, st in (("ticketpack .tpk (philox)", st_p), ("ticketpack .tpk (imported, mt19937)", st_m),
                              ("baseline: pg file, existing practice", st_b)):
                cols[label] = {k: min(v, cols.get(label, {}).get(k, v)) for k, v in st.items()}
            if not torch.equal(logits_m, logits_b):
                raise SystemExit("imported artifact disagrees with the original code path")
        stage_table(cols)
        print("imported .tpk logits == pg-file logits (bit for bit): True")

    gen = np.random.default_rng(7)
    stream = TokenStream(gen.integers(0, cfg.vocab_size, args.tokens + 1).astype(np.int32),
                         np.ones(args.tokens + 1, dtype=np.int32), "random ids")
    runs = {"ticketpack load-and-eval (dense fp32)": dense}
    if not args.no_masked_baseline:
        runs["baseline: masked model (frozen * mask per forward)"] = masked_model(cfg, parts)
    print(f"\n| eval ({args.tokens} tokens, seq {args.seq_len}, batch {args.batch_size}) | tokens/s | "
          f"seconds | val_loss |\n|---|---|---|---|")
    speeds = {}
    for label, model in runs.items():
        res = evaluate(model, stream, seq_len=args.seq_len, batch_size=args.batch_size)
        speeds[label] = res.tokens_per_second
        print(f"| {label} | {res.tokens_per_second:.1f} | {res.seconds:.1f} | {res.val_loss:.6f} |")
    if len(speeds) == 2:
        a, b = speeds.values()
        print(f"dense load-and-eval vs masked baseline: {a / b:.2f}x tokens/s")


if __name__ == "__main__":
    main()
