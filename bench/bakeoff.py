"""Quality per byte: tickets against dense int8 + zlib/zstd and ternary QAT at equal bytes.

    python bench/bakeoff.py                      # the full bake-off (two budgets, ~20 min, 2 cores)
    python bench/bakeoff.py --quick              # a CI-size smoke run (a few minutes)
    python bench/bakeoff.py --budgets 64KB --methods int8,binary --steps 100
    python bench/bakeoff.py --seconds 300        # equal wall-clock time instead of equal tokens

For each byte budget, every method gets the fullest shape of the built-in GPT family whose
artifact fits (``solve``, the package's ``shape_budget`` solver: an analytic estimate ranks
the shapes, then a stand-in model is packed for real to check it fits; ``train.shape_budget.fill``
then moves finer knobs -- head width, a head or a block, the MLP ratio, the adapter rank --
packing stand-ins until one fills 95% of the budget; a method with a ``sizing_density``, e.g.
``multibit4-sized``, is sized by the entropy its trained masks were measured to reach instead
of its worst case, and its row says whether it fit). A trained artifact that packs to less
than 95% of its budget (its masks or weights compress below the stand-in's), or over it, is
sized again by the share of its stand-in it measured and trained again (at most twice; over
the budget at the end, the last pass that fit is the row); every row states the packed bytes
it used beside its val_bpb (``--no-fill``: the coarse shapes of the earlier bake-offs;
``--size-ratio``: start at a share measured before; ``--layers``: pin the depth). It trains on the
same bytes of the bundled Shakespeare corpus for the same number of tokens (equal training
tokens, not equal time), and is scored on the same held-out text (the first ``--val-tokens``
bytes of the last 10%) from the model rebuilt from its counted bytes. Prints a markdown
table with each method's val_bpb against the dense int8 baseline of the same budget, and
saves a plot (val_bpb vs bytes, one line per method) and the rows as JSON.

``--seconds S`` compares at equal training time instead: before each method's run, a short
calibration run of that method at its shape (``--calibration-steps``, the first ten untimed)
measures its seconds per step, and the method then trains for the step count that fills S
seconds. Every run still has a fixed step count, so its learning-rate warm-down and
temperature schedule end as in an equal-token run; the train seconds actually spent are
reported beside each row (they differ from S by the calibration's error and machine load).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from baselines import (LOG_EVERY, Corpus, Method, Result, RunSpec, knobs, prepare_corpus, proxy_bytes,
                       run_method, shape_config)
from plots import Series, save_line_plot

from ticketpack import __version__
from ticketpack.train import shape_budget
from ticketpack.baselines import estimate_dense_bytes
from ticketpack.budget import parse_budget
from ticketpack.cli.progress import reporter
from ticketpack.errors import ConfigError
from ticketpack.models.gpt_model import GPTConfig
from ticketpack.train.runtime import git_commit

CALIBRATION_VAL_TOKENS = 4096  # held-out bytes a calibration run scores (the score is not used)

ADAPTER_LR = 0.01  # the adapter methods' lr, in their row names too

# The methods, each at the best learning rate of a sweep at the 64 KB shape, 400 steps
# (docs/RESULTS.md lists the sweeps).
METHODS: dict[str, Method] = {
    "int8": Method("dense int8 + zlib/zstd", "int8", lr=1e-2),
    "ternary": Method("ternary QAT (TriLM)", "ternary", lr=3e-3),
    "binary-qat": Method("binary QAT (sign x row scale)", "binary", lr=3e-3),
    "binary": Method("ticket binary (pg-lth)", "ticket", lr=0.01),
    "binary-sc": Method("ticket binary, signed const", "ticket", lr=0.01, init="signed-constant"),
    "multibit4": Method("ticket 2-bit (multibit:4)", "ticket", lr=0.3, mask="multibit:4"),
    # the same, sized by the bits its trained masks reach instead of the 2-bit worst case:
    # trained multibit:4 masks coded at 1.41-1.49 bits per connection, all included, in the 4x
    # and 16x rows; a nested mask of density 0.4 has an order-0 entropy of 1.51 bits
    "multibit4-sized": Method("ticket 2-bit, sized at 1.5 bits", "ticket", lr=0.3, mask="multibit:4",
                              sizing_density=0.4),
    # the best ticket recipe found so far (docs/RESULTS.md): signed constant, sharper surrogate
    "best": Method("ticket best (sc, T 1->0.05)", "ticket", lr=0.01, init="signed-constant",
                   temperature_start=1.0, temperature_end=0.05),
    # signed supermask (issue 26, "Hide and Invert"): each connection dropped, kept or kept
    # inverted, over the best ticket's frozen weights; the quant estimator; lr swept at 64 KB x
    # 1x, filled (bench/results/issue26/curve/signed_64KB_400_lr*): 0.03 2.8198, 0.1 2.7756,
    # 0.3 2.9122, 1.0 3.3406
    "signed": Method("ticket signed:2 (sc, quant)", "ticket", lr=0.1, mask="signed:2", init="signed-constant"),
    # seeded backbones + adapters (issue 16): no mask, a frozen random network + trained rank-4
    # adapters and per-row scales; and the hybrid, the best ticket + rank-1 adapters. Both at
    # the adapter lr of the sweep in docs/RESULTS.md, named with it (rows named without an lr
    # trained at the earlier 0.003)
    "adapters": Method(f"backbone + adapters (r 4, adapter lr {ADAPTER_LR:g})", "ticket", lr=0.01,
                       mask="none", scale_mode="row", adapter_rank=4, adapter_lr=ADAPTER_LR),
    "mask-adapters": Method(f"best ticket + adapters (r 1, adapter lr {ADAPTER_LR:g})", "ticket", lr=0.01,
                            init="signed-constant", temperature_start=1.0, temperature_end=0.05,
                            adapter_rank=1, adapter_lr=ADAPTER_LR),
}


# ---------------------------------------------------------------- sizing solver

# A run whose packed artifact fills less than FILL of its budget is sized again once, its
# stand-in's bytes scaled by the share the trained artifact measured (+ REFILL_MARGIN), and
# trained again at the fuller shape.
FILL = shape_budget.FILL
REFILL_MARGIN = 0.01
MAX_REFILLS = 2  # a refill that still packs short is sized again from its own measured share
# a share above 1 is honoured up to this, not capped at 1: the dense families' stand-ins are
# not proven bounds (no trained artifact has packed above its stand-in so far; ternary's
# over-budget refill at 64 KB x 32x packed to 0.934 of it, above the 0.927 it was sized at)
MAX_SIZE_RATIO = 1.25


@dataclass(frozen=True)
class Shape:
    model_dim: int
    num_layers: int
    connections: int
    estimate: float  # analytic bytes
    config: GPTConfig | None = None  # the whole config (the fill moves heads, MLP ratio, rank too)
    refined: str = ""  # what the fill moved from the coarse shape

    def model_config(self, method: Method) -> GPTConfig:
        return self.config or shape_config(self.model_dim, self.num_layers, method)


def estimate_bytes(method: Method, model_dim: int, num_layers: int, **shape: int) -> float:
    """The package's analytic bytes: ``train.shape_budget.estimate_bytes`` (tickets) or
    ``baselines.estimate_dense_bytes`` (int8, ternary, binary); ``shape``: finer knobs
    (``shape_config``'s num_heads, mlp_mult, adapter_rank)."""
    config = shape_config(model_dim, num_layers, method, **shape)
    if method.family == "ticket":
        return shape_budget.estimate_bytes(config.to_dict(), method.adapter_dtype, method.sizing_training())
    return estimate_dense_bytes(config, method.family, method.gamma_mode)


def solve(method: Method, budget: int, fill: bool = True, ratio: float = 1.0, share: float = FILL,
          depth: int | None = None) -> tuple[Shape, int]:
    """The shape a method gets at a budget, and its stand-in's packed bytes (times ``ratio``).

    The package's solver over the family's shapes (head width 32, width / depth 32..128
    around the ``small`` preset's 64), with this method's estimate and stand-in
    (``baselines.proxy_bytes``: tensors as costly as the method's worst case, packed for
    real); no reserve, as the trained model's real bytes are reported. ``fill``: then
    ``train.shape_budget.fill``'s measured search over finer knobs until the stand-in fills FILL of
    the budget (``share`` of it). ``ratio``: the share of its stand-in's bytes a trained artifact of this method
    was measured to pack to (1: the stand-in's worst case). ``depth``: pin the number of blocks.
    """
    template = shape_config(256, 4, method).to_dict()
    sizes = dict(measure=lambda cfg: math.ceil(ratio * proxy_bytes(method, GPTConfig.from_dict(cfg))),
                 estimate=lambda cfg: ratio * estimate_bytes(method, **knobs(cfg)))
    if fill:
        choice = shape_budget.fill(template, budget, reserve=0, share=share, depth=depth, **sizes)
    else:
        choice = shape_budget.solve(template, budget, reserve=0, depth=depth, **sizes)
    config = shape_config(method=method, **knobs(choice.config))
    connections = shape_budget.connections(config.to_dict())
    return Shape(choice.model_dim, choice.num_layers, connections, choice.estimate, config, choice.refined), choice.bytes


# ---------------------------------------------------------------- the run

@dataclass(frozen=True)
class EqualTime:
    """Equal wall-clock training: ``seconds`` per method, steps set by a timed calibration run."""

    seconds: float
    calibration_steps: int = 30
    calibration: Corpus | None = None  # the same split with a short held-out part: cheap to score


def seconds_per_step(method: Method, config: GPTConfig, corpus: Corpus, spec: RunSpec, budget: int,
                     steps: int) -> float:
    """Training seconds per step of the method at this shape: a ``steps``-step run, timed from
    its first progress event (step LOG_EVERY: allocation and first-touch costs left out) to its last."""
    marks: dict[int, float] = {}

    def on_event(event: dict) -> None:
        if event.get("event") == "step":
            marks[event["step"]] = event["train_seconds"]

    run_method(method, config, corpus, dataclasses.replace(spec, steps=steps), budget, on_event)
    last = max(marks)
    return (marks[last] - marks[LOG_EVERY]) / (last - LOG_EVERY)


def steps_for_seconds(seconds: float, step_seconds: float) -> int:
    """Whole steps that fill ``seconds`` at ``step_seconds`` each (at least one)."""
    return max(1, round(seconds / step_seconds))


def run_budget(methods: list[Method], budget: int, corpus: Corpus, spec: RunSpec, log,
               progress=None, equal_time: EqualTime | None = None, fill: bool = True,
               share: float = FILL, measured: float | None = None, depth: int | None = None) -> list[Result]:
    """Each method at its fullest fitting shape; ``progress(label)`` gives a run's step callback.
    With ``equal_time`` each method's step count fills its seconds (calibrated per method).
    With ``fill``, a run whose packed artifact fills less than ``share`` of the budget is sized
    again by the share of its stand-in it measured and trained again; its row is the
    last run's, the first's figures in its ``extra["first_pass"]`` (all earlier ones in
    ``extra["earlier_passes"]`` when there were several; at most ``MAX_REFILLS`` refills). A
    pass that packs over the budget is sized again from its own share while refills remain (the
    share moves with the shape: ternary at 64 KB x 32x packed to 0.917 of its stand-in at
    2 x 128, 0.934 at 3 x 112, over the margin); when the last is still over, the last pass that fit is kept, the
    over-budget one noted in its ``extra["over_budget_pass"]``. ``measured``: size every
    method at once as if an earlier run of it had measured that share of its stand-in.
    ``depth``: pin every shape's number of blocks."""
    rows = []
    for method in methods:
        if measured is None:
            shape, proxy = solve(method, budget, fill, share=share, depth=depth)
        else:  # the stand-in's own bytes kept, so a refill measures against them as usual
            shape, predicted, ratio = resize(method, budget, measured, share, depth)
            proxy = proxy_bytes(method, shape.model_config(method))
        result = _run_shape(method, shape, proxy, budget, corpus, spec, log, progress, equal_time)
        if measured is not None:
            result.extra.update(size_ratio=round(ratio, 4), predicted_bytes=predicted)
        # stand_in: the unscaled stand-in's bytes at ``shape``; fitting: the last pass that fit
        stand_in, passes, tried = proxy, [], [shape.config]
        fitting = result if result.artifact_bytes <= budget else None
        while fill and not share * budget <= result.artifact_bytes <= budget and len(passes) < MAX_REFILLS:
            again, predicted, ratio = resize(method, budget, result.artifact_bytes / stand_in, share, depth)
            if again.config in tried:
                break
            log(f"  {method.name:32s} used {result.artifact_bytes / budget:.2%} of the budget: "
                f"resized at {ratio:.3f} of its stand-in, training again")
            passes.append(_summary(result))
            shape, stand_in = again, proxy_bytes(method, again.model_config(method))
            tried.append(shape.config)
            result = _run_shape(method, again, stand_in, budget, corpus, spec, log, progress, equal_time)
            result.extra.update(size_ratio=round(ratio, 4), predicted_bytes=predicted, first_pass=passes[0],
                                **({"earlier_passes": list(passes)} if len(passes) > 1 else {}))
            if result.artifact_bytes <= budget:
                fitting = result
        if result.artifact_bytes > budget and fitting is not None:
            log(f"  {method.name:32s} the last pass packed over the budget: the last that fit is kept")
            fitting.extra["over_budget_pass"] = _summary(result)
            result = fitting
        if measured is not None:
            result.extra["sized_at_measured"] = measured  # how the run started
        rows.append(result)
    return rows


def resize(method: Method, budget: int, measured: float, share: float = FILL, depth: int | None = None
           ) -> tuple[Shape, int, float]:
    """The shape a method gets once a trained artifact of it was ``measured`` to pack to that
    share of its stand-in's bytes: (shape, predicted bytes, the stand-in ratio it was sized at);
    ``depth``: pin its number of blocks."""
    ratio = measured + REFILL_MARGIN  # measured, with a margin so the new shape fits
    # the margin inflates the stand-in, so the fill's bar rises by as much: the shape chosen
    # must fill ``share`` at the measured ratio, not only at the inflated one
    shape, predicted = solve(method, budget, True, ratio, min(1.0, share * ratio / measured), depth)
    return shape, predicted, ratio


def _run_shape(method: Method, shape: Shape, proxy: int, budget: int, corpus: Corpus, spec: RunSpec, log,
               progress, equal_time: EqualTime | None) -> Result:
    """Train, pack and score ``method`` at ``shape`` (equal time: calibrate its steps first);
    ``proxy``: its stand-in's unscaled bytes, so ``artifact_bytes / proxy_bytes`` is the share
    a later run can be sized at (rows before 2026-12-07's fifth session stored a refill's
    scaled prediction there)."""
    config = shape.model_config(method)
    t0 = time.perf_counter()
    run_spec, timing = spec, {}
    if equal_time is not None:
        step_s = seconds_per_step(method, config, equal_time.calibration or corpus, spec, budget,
                                  equal_time.calibration_steps)
        run_spec = dataclasses.replace(spec, steps=steps_for_seconds(equal_time.seconds, step_s))
        timing = dict(seconds_target=equal_time.seconds, calibrated_step_seconds=round(step_s, 5),
                      steps=run_spec.steps)
        log(f"  {method.name:32s} calibrated {step_s:.3f} s/step -> {run_spec.steps} steps")
    callback = progress(f"{_kb(budget)} {method.name}") if progress else None
    result = run_method(method, config, corpus, run_spec, budget, callback)
    result.extra.update(lr=method.lr, **({"adapter_lr": method.adapter_lr} if method.adapter_rank else {}),
                        proxy_bytes=proxy, wall_seconds=round(time.perf_counter() - t0, 1),
                        shape=_shape_words(config), **({"filled_by": shape.refined} if shape.refined else {}),
                        **timing)
    log(f"  {method.name:32s} {_shape_words(config):28s} {result.artifact_bytes:>9,} B "
        f"({result.artifact_bytes / budget:.1%}) val_bpb {result.val_bpb:.4f}  train {result.train_seconds:.0f}s")
    return result


def _shape_words(config: GPTConfig) -> str:
    """'2 x 160, 5 heads of 32, MLP 2x' (+ ', adapter rank r')."""
    words = (f"{config.num_layers} x {config.model_dim}, {config.num_heads} heads of {config.head_dim}, "
             f"MLP {config.mlp_mult}x")
    return words + (f", adapter rank {config.adapter_rank}" if config.adapter_rank else "")


def _summary(result: Result) -> dict:
    """What a row keeps of the run the fill replaced."""
    return {k: result.extra.get(k, getattr(result, k, None))
            for k in ("artifact_bytes", "proxy_bytes", "val_bpb", "num_layers", "model_dim", "shape", "train_seconds")}


def markdown_table(rows: list[Result]) -> str:
    """One line per (budget, method); 'vs int8' = val_bpb / dense int8's at that budget; the
    packed bytes used (and their share of the budget) beside val_bpb. A training-tokens column
    is added when the rows' tokens differ (an equal-time run)."""
    base = {r.budget: r.val_bpb for r in rows if r.family == "int8"}
    tokens = len({r.tokens for r in rows}) > 1
    out = ["| budget | method | shape (L x C) | params / connections | bits per connection | density "
           "| bytes used | val_bpb | vs int8 | train s |" + (" training tokens |" if tokens else ""),
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if tokens else "")]
    for r in rows:
        density = "" if r.density is None else f"{r.density:.3f}"
        ratio = f"{r.val_bpb / base[r.budget]:.3f}" if r.budget in base else ""
        flag = "" if r.fits else " OVER"
        out.append(f"| {_kb(r.budget)} | {r.method} | {r.num_layers} x {r.model_dim} | {r.connections:,} "
                   f"| {r.bits_per_connection:.3f} | {density} | {r.artifact_bytes:,} "
                   f"({r.artifact_bytes / r.budget:.1%}{flag}) | {r.val_bpb:.4f} | {ratio} "
                   f"| {r.train_seconds:.0f} |" + (f" {r.tokens:,} |" if tokens else ""))
    return "\n".join(out)


def _kb(n: int) -> str:
    return f"{n / 1000:g} KB" if n % 1000 == 0 else f"{n:,} B"


def save_plot(rows: list[Result], path: str, title: str = "Quality per byte at equal training tokens") -> None:
    """val_bpb against artifact bytes, a line per method."""
    series: Series = {}
    for r in rows:
        series.setdefault(r.method, []).append((r.artifact_bytes / 1000, r.val_bpb))
    save_line_plot(path, [(title, series)], xlabel="artifact bytes (KB, log scale)", panel_width=7)


def swept(method: Method, lr: float | None, adapter_lr: float | None, adapter_rank: int | None = None) -> Method:
    """``method`` with the learning rates (and adapter rank) a sweep replaces (None keeps the
    tuned one); a new rank is named in the row's method name ("r 2")."""
    for flag, value in (("--adapter-lr", adapter_lr), ("--adapter-rank", adapter_rank)):
        if value is not None and method.adapter_rank == 0:
            raise ConfigError(f"{flag}: method {method.name!r} has no adapters")
    if adapter_rank is not None and adapter_rank < 1:
        raise ConfigError(f"--adapter-rank: {adapter_rank}, expected at least 1")
    changes = {k: v for k, v in (("lr", lr), ("adapter_lr", adapter_lr), ("adapter_rank", adapter_rank))
               if v is not None}
    if adapter_rank is not None:
        changes["name"] = re.sub(r"\(r \d+", f"(r {adapter_rank}", method.name)
    return dataclasses.replace(method, **changes)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets", default=None, help="comma-separated byte budgets (default 64KB,256KB)")
    ap.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--steps", type=int, default=None, help="training steps of every method (default 400)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="equal wall-clock time instead: each method trains the steps that fill this many "
                         "seconds, from a timed calibration run of it (replaces --steps)")
    ap.add_argument("--calibration-steps", type=int, default=30,
                    help=f"steps of each method's calibration run with --seconds (the first {LOG_EVERY} untimed)")
    ap.add_argument("--lr", type=float, default=None,
                    help="replace every chosen method's tuned learning rate (for sweeps)")
    ap.add_argument("--adapter-lr", type=float, default=None,
                    help="replace the adapter learning rate of every chosen method with adapters (for sweeps)")
    ap.add_argument("--adapter-rank", type=int, default=None,
                    help="replace the adapter rank of every chosen method with adapters (for sweeps)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--val-tokens", type=int, default=None, help="held-out bytes scored (default 131072)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="CI-size smoke run: small budgets, few steps")
    ap.add_argument("--no-fill", dest="fill", action="store_false",
                    help="size by the coarse head-width steps only, as the bake-offs before issue 26 did "
                         "(default: fill each budget to 95%% of its packed bytes, measured)")
    ap.add_argument("--out", default="bench/results/bakeoff.png", help="plot path (rows go to .json beside it)")
    ap.add_argument("--size-ratio", type=float, default=None,
                    help="size each method as if an earlier run measured its trained artifact at this share "
                         "of its stand-in (the refill's sizing, without training the first shape again)")
    ap.add_argument("--layers", type=int, default=None,
                    help="pin every method's number of blocks (the fill then moves width, heads and MLP "
                         "only; default: the solver's choice)")
    ap.add_argument("--quiet", action="store_true",
                    help="no progress lines on stderr (default: one every 30 s while a method trains)")
    args = ap.parse_args(argv)
    if args.seconds is not None and (args.steps is not None or not args.seconds > 0):
        ap.error("--seconds: expected a positive number of seconds, and no --steps")
    if args.size_ratio is not None and not (0 < args.size_ratio <= MAX_SIZE_RATIO and args.fill):
        ap.error(f"--size-ratio: {args.size_ratio}, expected a share in (0, {MAX_SIZE_RATIO:g}], and no --no-fill")
    if args.layers is not None and args.layers < 1:
        ap.error(f"--layers: {args.layers}, expected a positive number of blocks")
    if args.calibration_steps < 2 * LOG_EVERY:
        ap.error(f"--calibration-steps: {args.calibration_steps}, expected at least {2 * LOG_EVERY}")
    quick = dict(budgets="24KB,48KB", steps=20, val_tokens=8192)
    full = dict(budgets="64KB,256KB", steps=400, val_tokens=131072)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    keys = args.methods.split(",") if args.methods else list(METHODS)
    unknown = [k for k in keys if k not in METHODS]
    if unknown:
        raise ConfigError(f"methods: {unknown[0]!r}, expected some of {', '.join(METHODS)}")
    methods = [swept(METHODS[k], args.lr, args.adapter_lr, args.adapter_rank) for k in keys]
    budgets = [parse_budget(b) for b in args.budgets.split(",")]
    spec = RunSpec(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, seed=args.seed)
    equal = f"{spec.tokens:,} training tokens per method ({spec.steps} steps x {spec.batch_size} x {spec.seq_len})"
    if args.seconds is not None:
        equal = (f"{args.seconds:g} s of training per method (steps from a {args.calibration_steps}-step "
                 f"timed calibration; batches {spec.batch_size} x {spec.seq_len})")
    commit = git_commit()  # read at the start: the tree may move on while a long run trains
    print(f"# bake-off: budgets {', '.join(_kb(b) for b in budgets)}; {equal}; {args.threads} threads; "
          f"ticketpack {__version__} ({(commit or 'no git')[:10]}), torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}", flush=True)
    rows: list[Result] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = prepare_corpus(tmp, val_tokens=args.val_tokens)
        print(f"# data: bundled Shakespeare, {len(corpus.train):,} training bytes, "
              f"{len(corpus.val):,} held-out bytes scored", flush=True)
        equal_time = None
        if args.seconds is not None:
            os.makedirs(cal_dir := os.path.join(tmp, "calibration"))
            equal_time = EqualTime(args.seconds, args.calibration_steps,
                                   prepare_corpus(cal_dir, val_tokens=CALIBRATION_VAL_TOKENS))
        for budget in budgets:
            print(f"## budget {_kb(budget)}", flush=True)
            rows += run_budget(methods, budget, corpus, spec, lambda s: print(s, flush=True),
                               lambda label: reporter(args.quiet, label), equal_time, args.fill,
                               measured=args.size_ratio, depth=args.layers)
    print()
    print(markdown_table(rows))
    save_plot(rows, args.out, "Quality per byte at equal training tokens" if args.seconds is None
              else f"Quality per byte at equal training time ({args.seconds:g} s per method)")
    json_path = str(Path(args.out).with_suffix(".json"))
    meta = {"command": "python bench/bakeoff.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "tokens": None if args.seconds else spec.tokens,
            "spec": {**vars(spec), "steps": None if args.seconds else spec.steps}, "val_tokens": args.val_tokens,
            "seconds": args.seconds, "calibration_steps": args.calibration_steps if args.seconds else None,
            "threads": args.threads, "fill": args.fill, "layers": args.layers, "ticketpack": __version__, "git_commit": commit,
            "torch": torch.__version__, "wall_seconds": round(time.perf_counter() - t0, 1)}
    Path(json_path).write_text(json.dumps({"meta": meta, "rows": [r.to_dict() for r in rows]}, indent=1))
    print(f"\nplot: {args.out}  rows: {json_path}  wall {meta['wall_seconds']:.0f}s")
    return rows


if __name__ == "__main__":
    main()
