"""Training speed: a supermask step vs a dense step of the same model shape and batch.

Both models are the built-in GPT (or, with ``--arch``, a Hugging Face causal LM of the same
shape: the dense one as transformers builds it, the other made a supermask by
``ticketpack.supermask``); the supermask one learns mask scores and scales over
frozen seeded weights (the trainer's optimizer and estimator), the dense one trains its
weights normally (Adam). Steps alternate between the two so machine load hits both alike;
each step is split into forward (+ loss), backward and optimizer (clip + Adam), and the
median of each is reported. Target: supermask / dense step time <= 1.15 on CPU.

    python bench/train_speed.py                     # the quickstart shape, 2 threads
    python bench/train_speed.py --preset small --batch 16 --seq-len 256 --profile
    python bench/train_speed.py --arch llama        # a HF Llama of the quickstart's shape
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from ticketpack.nn.layers import masked_layers
from ticketpack.models.gpt_model import GPT, config_from_preset
from ticketpack.train.loop import build_model, make_optimizer
from ticketpack.models.gpt_config import TRAIN_ARCHES
from ticketpack.models import hf
from ticketpack.models.registry import Logits
from ticketpack.train.loop import build_config
from ticketpack.train.arch import preset_keys
from ticketpack.train.options import QUICKSTART_MODEL, TrainOptions


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--quickstart-shape", action=argparse.BooleanOptionalAction, default=True,
                   help="use the quickstart model shape on top of the preset")
    p.add_argument("--arch", default="gpt", choices=TRAIN_ARCHES)
    p.add_argument("--mask", default="binary")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=12, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops")
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_step(model, optimizer, x, y, device) -> tuple[float, float, float]:
    """(forward, backward, optimizer) seconds of one training step."""
    sync(device)
    t0 = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    sync(device)
    t1 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    sync(device)
    t2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    sync(device)
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = dict(QUICKSTART_MODEL) if args.quickstart_shape else {}
    config = config_from_preset(args.preset, **{**overrides, "mask": args.mask})
    opts = TrainOptions(data=["-"], out="-")
    if args.arch != "gpt":  # the same shape in the architecture's own config keys
        opts = TrainOptions(data=["-"], out="-", arch=args.arch, preset=args.preset, mask=args.mask,
                            seq_len=args.seq_len, model=preset_keys(args.arch, config.to_dict(), args.seq_len))
        config = build_config(opts)
    masked = build_model(config, 0, device)
    masked_opt = make_optimizer(masked, opts)
    torch.manual_seed(0)
    if args.arch == "gpt":
        dense = GPT(config, masked=False).to(device)
    else:  # both as token ids -> logits modules
        dense = Logits(hf.new_model(config.record).float().to(device), config.record)
        masked = Logits(masked, config.record)
    dense_opt = torch.optim.Adam(dense.parameters(), lr=1e-3, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, config.vocab_size, (args.batch, args.seq_len), generator=gen).to(device)
    y = torch.randint(0, config.vocab_size, (args.batch, args.seq_len), generator=gen).to(device)

    times = {"supermask": [], "dense": []}
    for i in range(args.warmup + args.steps):  # alternate, so load drifts hit both
        for name, model, opt in (("supermask", masked, masked_opt), ("dense", dense, dense_opt)):
            t = timed_step(model, opt, x, y, device)
            if i >= args.warmup:
                times[name].append(t)
    report(args, config, masked, times)
    if args.profile:
        profile(masked, masked_opt, x, y, device)


def report(args, config, masked, times) -> None:
    connections = sum(layer.frozen.numel() for _, layer in masked_layers(masked))  # mask none has no scores
    tokens = args.batch * args.seq_len
    shape = (f"{config.num_layers} layers x {config.model_dim}, mlp x{config.mlp_mult}" if args.arch == "gpt"
             else f"{args.arch} {config.record['hf_config']}")
    print(f"model: {shape}, mask {config.mask}, {connections:,} connections; batch {args.batch} x {args.seq_len} "
          f"= {tokens:,} tokens; device {args.device}, {args.threads} threads, torch {torch.__version__}")
    print(f"{'model':<10} {'forward ms':>11} {'backward ms':>12} {'optim ms':>9} {'step ms':>9} {'tokens/s':>10}")
    medians = {}
    for name, rows in times.items():
        fwd, bwd, opt = (statistics.median(r[i] for r in rows) * 1e3 for i in range(3))
        step = statistics.median(sum(r) for r in rows) * 1e3
        medians[name] = step
        print(f"{name:<10} {fwd:>11.1f} {bwd:>12.1f} {opt:>9.1f} {step:>9.1f} {tokens / step * 1e3:>10,.0f}")
    ratio = medians["supermask"] / medians["dense"]
    print(f"supermask / dense step time: {ratio:.3f} (target <= 1.15 on CPU)")


def profile(model, optimizer, x, y, device) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        timed_step(model, optimizer, x, y, device)
    key = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=12))


if __name__ == "__main__":
    main()
