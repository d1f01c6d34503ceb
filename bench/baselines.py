"""The bake-off's methods: how each one is trained, packed and sized, all on the same data.

The dense baselines are the package's (``ticketpack.baselines``: the dense trainer, int8
export, ternary / binary QAT, their sizes before training); this module only drives them and the
ticket trainer with one bake-off's settings.

- ``int8``: a dense GPT of the built-in family trained normally (AdamW), then int8 per row
  + fp16 scales, compressed whole with zlib-9 / zstd-19 (the parameter-golf baseline
  export; ``ticketpack.baselines.encode_int8_state``); size = those bytes.
- ``ternary``: the same dense GPT trained quantisation-aware (TriLM: gamma = 1e-5 +
  mean|W|, straight-through), packed as TernaryTensors in a ticketpack artifact.
- ``binary``: the same dense GPT trained quantisation-aware with 1-bit weights (sign of
  the latent weight times a per-row scale alpha = mean|W_row|, straight-through), packed as
  TernaryTensors whose trits are all +-1 (the coder spends ~1 bit each) + fp16 row scales.
- ``ticket``: a supermask GPT trained by ``ticketpack.train.loop`` (frozen seeded weights,
  learned masks and scales), packed with ``encode_artifact(codec="auto")``.

Every method sees the same training batches (``text.corpus.batch_iterator``: a pure function of
seed and step), the same number of steps, batch size and sequence length, the same
warm-up / warm-down shape, and is scored by ``evaluate`` on the same held-out text, always
on the model rebuilt from the bytes that are counted.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import nn

from ticketpack.train import shape_budget
from ticketpack.artifact import decode_artifact, encode_artifact, parse_artifact
from ticketpack.baselines import (DENSE_FAMILIES, build_dense, encode_int8_state, make_binary, make_ternary,
                                  model_from_int8_state, ternary_ticket, train_dense, worst_case_dense_bytes)
from ticketpack.text.corpus import TokenStream, bundled_corpus_path, load_tokens, split_train_val
from ticketpack.errors import ConfigError
from ticketpack.eval.evaluate import evaluate
from ticketpack.format.tensors import TernaryTensor, nonzero_share
from ticketpack.format.maskspec import MaskSpec
from ticketpack.nn.layers import masked_layers
from ticketpack.nn.mask_training import MaskTraining
from ticketpack.models.gpt_model import GPT, GPTConfig, config_from_preset
from ticketpack.models.gpt_config import INIT_CHOICES, PRESETS
from ticketpack.ticket import model_from_ticket, ticket_from_model
from ticketpack.train.loop import train
from ticketpack.train.options import TrainOptions, declared_default

FAMILIES = DENSE_FAMILIES + ("ticket",)
WARMUP, WARMDOWN = declared_default("warmup"), declared_default("warmdown")  # for every method
EVAL_BATCH = 8
LOG_EVERY = 10  # steps between progress events
Callback = Callable[[dict], None]


# ---------------------------------------------------------------- data

@dataclass
class Corpus:
    """Training text and held-out text, as token streams and as files for the trainer."""

    train: TokenStream
    val: TokenStream
    train_path: str
    val_path: str


def prepare_corpus(folder: str, val_fraction: float = 0.1, val_tokens: int | None = 131072,
                   max_bytes: int | None = None) -> Corpus:
    """Bundled Shakespeare, byte-level: the last ``val_fraction`` is held out and its first
    ``val_tokens`` bytes are scored; the rest trains. Both parts are written to ``folder``
    so the trainer reads exactly the same bytes."""
    stream = load_tokens(bundled_corpus_path(), max_bytes=max_bytes)
    train_s, val_s = split_train_val(stream, val_fraction)
    if val_tokens is not None:
        val_s = val_s[:val_tokens]
    paths = []
    for name, part in (("train.txt", train_s), ("val.txt", val_s)):
        path = os.path.join(folder, name)
        Path(path).write_bytes(part.tokens.astype(np.uint8).tobytes())  # byte ids are the bytes
        paths.append(path)
    return Corpus(train_s, val_s, *paths)


# ---------------------------------------------------------------- run settings and methods

@dataclass
class RunSpec:
    """Equal for every method in a bake-off: the training-token budget and the data order."""

    steps: int = 400
    batch_size: int = 16
    seq_len: int = 128
    seed: int = 1

    @property
    def tokens(self) -> int:
        return self.steps * self.batch_size * self.seq_len


@dataclass
class Method:
    """One line of the bake-off: a family and its (tuned) hyperparameters."""

    name: str
    family: str  # int8 | ternary | binary | ticket
    lr: float  # AdamW lr (dense), score lr (ticket; trainer units)
    weight_decay: float = 0.1  # dense: AdamW decay of 2-D weights
    gamma_mode: str = "tensor"  # ternary: per tensor (TriLM) or per row, linear layers
    mask: str = "binary"  # ticket: binary | multibit:K
    # ticket: the trainer's options of the same name, with its declared defaults (trainer_settings)
    estimator: str = declared_default("estimator")
    init: str = "pg"  # ticket: pg (xavier, He for mlp.fc) | xavier | he | signed-constant
    density: float | None = declared_default("density")
    dense_warmup: float = declared_default("dense_warmup")
    density_ramp: float = declared_default("density_ramp")
    scale_mode: str = "none"  # ticket: learned scale per masked tensor: none | tensor | row
    scale_lr: float = declared_default("scale_lr")
    temperature_start: float = declared_default("temperature_start")
    temperature_end: float = declared_default("temperature_end")
    mlp_mult: int = 2
    adapter_rank: int = 0  # ticket: low-rank adapters B @ A on every frozen weight (mask none: a backbone)
    adapter_dtype: str = declared_default("adapter_dtype")
    adapter_lr: float = declared_default("adapter_lr")
    # ticket: size the mask as if it were a nested top-k mask of this density (its order-0
    # entropy) instead of its estimator's worst case. Not a bound: for recipes whose trained
    # masks code well below their worst case; the row's real bytes say whether it fits.
    sizing_density: float | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"family: {self.family!r}, expected one of {', '.join(FAMILIES)}")

    def mask_training(self) -> MaskTraining | None:
        """How a ticket method's masks train (sizing needs its target density); None otherwise."""
        if self.family != "ticket":
            return None
        return MaskTraining.for_mask(MaskSpec.parse(self.mask), self.estimator, self.density)

    def sizing_training(self) -> MaskTraining | None:
        """The mask training the budget solver sizes for: ``mask_training`` unless the method
        sets ``sizing_density`` (then a nested top-k mask of that density)."""
        if self.family != "ticket" or self.sizing_density is None:
            return self.mask_training()
        return MaskTraining.for_mask(MaskSpec.parse(self.mask), "nested", self.sizing_density)

    def init_overrides(self) -> dict[str, str]:
        fields = ("init", "mlp_fc_init", "embed_init")
        if self.init == "pg":  # the pg-lth preset's rules
            return {f: PRESETS["pg-lth"][f] for f in fields}
        return dict(zip(fields, INIT_CHOICES[self.init]))


def shape_config(model_dim: int, num_layers: int, method: Method, head_dim: int = 32, *,
                 num_heads: int | None = None, mlp_mult: int | None = None,
                 adapter_rank: int | None = None) -> GPTConfig:
    """The built-in family at a width and depth: head_dim 32, no grouped KV, MLP 2x relu^2
    (the method's); ``num_heads``, ``mlp_mult``, ``adapter_rank`` replace the method's
    (the budget fill's finer knobs)."""
    heads = num_heads or max(1, model_dim // head_dim)
    fields = dict(num_layers=num_layers, model_dim=model_dim, num_heads=heads, num_kv_heads=heads,
                  mlp_mult=mlp_mult or method.mlp_mult)
    if method.family == "ticket":
        rank = method.adapter_rank if adapter_rank is None else adapter_rank
        fields.update(method.init_overrides(), mask=method.mask, scale_mode=method.scale_mode, adapter_rank=rank)
    return config_from_preset("small", **fields)


def knobs(config: dict | GPTConfig) -> dict[str, int]:
    """The shape fields of a config that ``shape_config`` takes (what the budget search moves)."""
    c = config.to_dict() if isinstance(config, GPTConfig) else config
    return dict(model_dim=c["model_dim"], num_layers=c["num_layers"], num_heads=c["num_heads"],
                mlp_mult=c["mlp_mult"], adapter_rank=c["adapter_rank"])


# ---------------------------------------------------------------- results

@dataclass
class Result:
    method: str
    family: str
    budget: int
    artifact_bytes: int
    connections: int  # weights (dense) or frozen connections (ticket), matrices only
    other_params: int  # vectors stored as fp16 (scales, gains)
    bits_per_connection: float  # 8 * artifact bytes / connections (everything included)
    val_bpb: float
    val_loss: float
    train_seconds: float
    tokens: int
    model_dim: int
    num_layers: int
    density: float | None = None  # ticket: share of nonzero levels; ternary: share of nonzero trits
    fits: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count(model: nn.Module) -> tuple[int, int]:
    """(matrix elements or masked connections, other stored parameter elements)."""
    layers = [layer for _, layer in masked_layers(model)]
    if not layers:
        mats = sum(p.numel() for p in model.parameters() if p.dim() == 2)
        return mats, sum(p.numel() for p in model.parameters() if p.dim() != 2)
    owned = {id(p) for layer in layers for p in layer.parameters(recurse=False)}
    other = sum(p.numel() for p in model.parameters() if id(p) not in owned)
    other += sum(p.numel() for layer in layers for p in (layer.scale, layer.adapter_a, layer.adapter_b)
                 if p is not None)
    return sum(layer.frozen.numel() for layer in layers), other


def _score(model: nn.Module, corpus: Corpus, spec: RunSpec) -> tuple[float, float]:
    res = evaluate(model, corpus.val, seq_len=spec.seq_len, batch_size=EVAL_BATCH)
    return res.val_bpb, res.val_loss


# ---------------------------------------------------------------- dense baselines (int8, ternary, binary)

def _train_dense(model: nn.Module, method: Method, corpus: Corpus, spec: RunSpec,
                 progress: Callback | None) -> float:
    return train_dense(model, corpus.train.tokens, steps=spec.steps, batch_size=spec.batch_size,
                       seq_len=spec.seq_len, seed=spec.seed, lr=method.lr,
                       weight_decay=method.weight_decay, warmup=WARMUP, warmdown=WARMDOWN,
                       log_every=LOG_EVERY, progress=progress)


def run_int8(method: Method, config: GPTConfig, corpus: Corpus, spec: RunSpec, budget: int,
             progress: Callback | None = None) -> Result:
    model = build_dense(config, spec.seed)
    seconds = _train_dense(model, method, corpus, spec, progress)
    blob = encode_int8_state(model.state_dict(), config.to_dict())
    bpb, loss = _score(model_from_int8_state(blob), corpus, spec)  # score what the bytes hold
    mats, other = _count(model)
    return _result(method, budget, len(blob), mats, other, bpb, loss, seconds, spec, config)


def run_ternary(method: Method, config: GPTConfig, corpus: Corpus, spec: RunSpec, budget: int,
                progress: Callback | None = None) -> Result:
    """Ternary QAT (family ternary) or binary QAT (family binary), packed as TernaryTensors."""
    dense = build_dense(config, spec.seed)
    model = make_binary(dense) if method.family == "binary" else make_ternary(dense, mode=method.gamma_mode)
    seconds = _train_dense(model, method, corpus, spec, progress)
    ticket = ternary_ticket(model, spec.seed, config.to_dict())
    blob = encode_artifact(ticket)
    rebuilt = model_from_ticket(decode_artifact(parse_artifact(blob)))
    bpb, loss = _score(rebuilt, corpus, spec)
    mats, other = _count(GPT(config, masked=False))
    density, _ = nonzero_share(t.trits for t in ticket.tensors if isinstance(t, TernaryTensor))
    return _result(method, budget, len(blob), mats, other, bpb, loss, seconds, spec, config,
                   density=density)


# ---------------------------------------------------------------- tickets (ticketpack.train.loop)

# Method fields named like a TrainOptions field that reach the trainer through the shape's
# config instead (``init`` "pg" is a recipe of three rules, not a ``--init`` choice).
VIA_CONFIG = ("mask", "init", "adapter_rank", "scale_mode")


def trainer_settings(method: Method) -> dict[str, Any]:
    """The method's fields that are trainer options of the same name, passed as they are."""
    options = set(TrainOptions.__dataclass_fields__) - set(VIA_CONFIG)
    return {name: getattr(method, name) for name in Method.__dataclass_fields__ if name in options}


def ticket_options(method: Method, config: GPTConfig, corpus: Corpus, spec: RunSpec, out: str) -> TrainOptions:
    """The trainer's options for a method at a shape (the model fields go in as overrides)."""
    model = {k: v for k, v in config.to_dict().items()
             if k in ("num_layers", "model_dim", "num_heads", "num_kv_heads", "mlp_mult", "init",
                      "mlp_fc_init", "embed_init", "scale_mode", "adapter_rank")}
    return TrainOptions(data=[corpus.train_path], val_data=[corpus.val_path], out=out, preset="small",
                        model=model, mask=config.mask, seed=spec.seed, steps=spec.steps,
                        seq_len=spec.seq_len, batch_size=spec.batch_size, warmup=WARMUP, warmdown=WARMDOWN,
                        eval_every=0, log_every=0, checkpoint_every=0, eval_batch_size=EVAL_BATCH,
                        device="cpu", **trainer_settings(method))


def run_ticket(method: Method, config: GPTConfig, corpus: Corpus, spec: RunSpec, budget: int,
               progress: Callback | None = None) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        opts = ticket_options(method, config, corpus, spec, os.path.join(tmp, "t.safetensors"))
        if progress is not None:  # step events; the masks learned do not depend on logging
            opts.log_every = LOG_EVERY
        res = train(opts, callback=progress)
    ticket = ticket_from_model(res.model, spec.seed, res.config, adapter_dtype=method.adapter_dtype)
    blob = encode_artifact(ticket)
    rebuilt = model_from_ticket(decode_artifact(parse_artifact(blob)))
    bpb, loss = _score(rebuilt, corpus, spec)
    mats, other = _count(res.model)
    return _result(method, budget, len(blob), mats, other, bpb, loss, res.seconds, spec,
                   GPTConfig.from_dict(res.config), density=res.density,
                   extra={"trainer_val_bpb": res.val_bpb})


def run_method(method: Method, config: GPTConfig, corpus: Corpus, spec: RunSpec, budget: int,
               progress: Callback | None = None) -> Result:
    """Train, pack and score one method; ``progress`` receives the training's step events."""
    runner = {"int8": run_int8, "ternary": run_ternary, "binary": run_ternary, "ticket": run_ticket}[method.family]
    return runner(method, config, corpus, spec, budget, progress)


def _result(method: Method, budget: int, nbytes: int, mats: int, other: int, bpb: float, loss: float,
            seconds: float, spec: RunSpec, config: GPTConfig, density: float | None = None,
            extra: dict | None = None) -> Result:
    return Result(method=method.name, family=method.family, budget=budget, artifact_bytes=nbytes,
                  connections=mats, other_params=other, bits_per_connection=8 * nbytes / mats,
                  val_bpb=bpb, val_loss=loss, train_seconds=seconds, tokens=spec.tokens,
                  model_dim=config.model_dim, num_layers=config.num_layers, density=density,
                  fits=nbytes <= budget, extra=extra or {})


# ---------------------------------------------------------------- exact sizes before training

def proxy_bytes(method: Method, config: GPTConfig, seed: int = 0) -> int:
    """Packed bytes of an untrained stand-in whose tensors are as costly as the method allows:
    the package's worst cases, ``baselines.worst_case_dense_bytes`` (int8, ternary, binary)
    and ``train.shape_budget.worst_case_bytes`` (tickets: levels uniform over the levels, or at
    exactly the target density; fp16 values random)."""
    if method.family == "ticket":
        return shape_budget.worst_case_bytes(config.to_dict(), seed, creation={},
                                             adapter_dtype=method.adapter_dtype,
                                             training=method.sizing_training())
    return worst_case_dense_bytes(config, method.family, method.gamma_mode, seed)
