"""The trainer behind ``ticketpack train``: learn mask scores and scales over frozen seeded weights.

The built-in GPT is built with masked layers whose weights are regenerated from the seed and
never trained. What Adam trains: every masked layer's ``scores`` (turned into mask levels by
the layer's estimator, see nn/masking.py) at ``lr``, and everything else (per-block attention /
MLP scales, per-head scales, the pre-logit scale, optional per-tensor or per-row scales, the
quant estimator's step) at ``scale_lr``.

Schedules (train/schedule.py) follow the run's progress p: learning-rate warm-up and warm-down,
geometric annealing of the STE temperature, and for the topk / nested estimators a target
density (dense warm-up, ramp, optional restoration). Batches are a pure function of
(seed, step) (data.batch_iterator), so a step-count run gives the same masks every time and
a run resumed from a checkpoint gives bit-identical masks and scales to an uninterrupted one
(same device, same thread count). A ``max_minutes`` run follows the clock instead.

Under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel (NCCL on
CUDA, gloo on CPU); each rank takes rows ``rank::world_size`` of the global batch, and only
rank 0 evaluates and writes files.

The final ``val_bpb`` is measured on the model rebuilt from the ticket (hard masks,
fp16-rounded scales: exactly what an artifact holds), with the same evaluation as
``ticketpack load-and-eval`` (fp32 on CPU, bf16 autocast on CUDA, batch size 8), so
load-and-eval of the packed checkpoint reproduces it on the same text, device and seq len.

The options are declared in train/options.py; the device, process group, log file and
provenance in train/runtime.py; this module is the run itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn

from ..artifact import DEFAULT_LIMITS, Limits
from .checkpoint import Checkpoint, load_checkpoint, packed_size, save_checkpoint
from ..text.corpus import TokenStream, batch_iterator, load_tokens, split_train_val
from ..errors import BudgetExceededError, CheckpointError, ConfigError, UsageError
from ..format.eval_context import make_eval_context
from ..eval.evaluate import EvalResult, evaluate
from ..format.tensors import nonzero_share
from ..nn.layers import masked_layers
from ..nn.mask_training import DENSITY_ESTIMATORS, ESTIMATORS, MaskTraining
from ..nn.masking import QUANT_STEP_INIT
from ..models.gpt_model import GPT, GPTConfig, config_from_preset
from ..models.gpt_config import DEFAULT_MODEL_LIMITS, INIT_CHOICES, ModelLimits, config_from_dict
from .runtime import DistContext, Event, JsonlLog, provenance, resolve_device, setup_distributed
from .schedule import DensitySchedule, lr_multiplier, progress, temperature
from .shape_budget import ShapeChoice, fill as fill_budget
from ..models.registry import Logits, rebuilt_model
from ..ticket import ticket_from_model
from .arch import RecordConfig, build_record_model, logits_loss, record_config
from .arch_shape import budget_record_config
from ..text.tokenizer import Tokenizer, load_tokenizer
from .options import DEFAULT_STEPS, TrainOptions, check_number, option_flags, resumed_fields, shown

Callback = Callable[[Event], None]


@dataclass
class TrainResult:
    """What a run ends with; ``to_dict`` is the ``--json`` object of ``ticketpack train``."""

    val_bpb: float | None  # final, on the model rebuilt from the ticket (None on ranks > 0)
    val_loss: float | None
    steps: int
    tokens: int  # training tokens seen (global)
    seconds: float  # training time (evaluations and checkpoints excluded)
    checkpoint: str
    density: float  # share of nonzero mask levels over all masked connections
    connections: int
    config: dict
    eval: dict | None = None  # the final EvalResult as a dict
    log: str | None = None
    shape: str | None = None  # with a byte budget: which shape it bought, and why
    packed_bytes: int | None = None  # with a byte budget: bytes of the trained ticket, packed
    model: nn.Module | None = field(default=None, repr=False)  # the trained masked model

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        out["tokens_per_second"] = self.tokens / self.seconds if self.seconds > 0 else None
        return out


# ---------------------------------------------------------------- configuration

def build_config(opts: TrainOptions, limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> GPTConfig:
    """The model config: the preset, then ``model`` overrides, then mask / init
    (validated and bounded by ``limits`` before anything is built). ``--arch`` other than gpt:
    the Hugging Face model of the preset's shape (train/arch.py)."""
    if opts.arch != "gpt":
        return record_config(opts, limits)
    overrides = dict(opts.model)
    if opts.mask is not None:
        overrides["mask"] = opts.mask
    if opts.adapter_rank is not None:
        overrides["adapter_rank"] = opts.adapter_rank
    if opts.scale_mode is not None:
        overrides["scale_mode"] = opts.scale_mode
    if opts.init is not None:
        overrides["init"], overrides["mlp_fc_init"], overrides["embed_init"] = INIT_CHOICES[opts.init]
    config = config_from_preset(opts.preset, limits, **overrides)
    mask_training(opts, config)  # the estimator and density must fit the mask
    return config


def mask_training(opts: TrainOptions, config: GPTConfig) -> MaskTraining:
    """How the masked layers train: ``estimator`` (default: the mask kind's, or with a target
    density the kind's density-setting one: edge-popup topk / multicoated nested) and the
    starting density (``restore_density`` when given, else ``density``)."""
    spec = config.mask_spec()
    if opts.density is None:
        return MaskTraining.for_mask(spec, opts.estimator)
    if spec.kind == "nm":
        raise ConfigError(f"density: {opts.density} given with mask {config.mask}, expected none "
                          f"(an N:M mask keeps N of every M)")
    estimator = opts.estimator or next((e for e in ESTIMATORS[spec.kind] if e in DENSITY_ESTIMATORS), None)
    if estimator is None:
        raise ConfigError(f"density: {opts.density} given with mask {config.mask}, expected none "
                          f"(no estimator of this mask kind follows a density)")
    start = opts.restore_density if opts.restore_density is not None else opts.density
    return MaskTraining.for_mask(spec, estimator, start)


def budget_config(opts: TrainOptions, limits: ModelLimits = DEFAULT_MODEL_LIMITS
                  ) -> tuple[GPTConfig, ShapeChoice | None]:
    """``build_config``, resized by ``byte_budget`` to the fullest shape that fits (if given):
    ``train.shape_budget.fill``, the widest shape and then finer knobs until the worst case packs to
    95% of the budget (``--arch``: train/arch_shape.py)."""
    config = build_config(opts, limits)
    if opts.byte_budget is None:
        return config, None
    if isinstance(config, RecordConfig):  # another arch: the same search over its converted model
        return budget_record_config(opts, config, limits, mask_training(opts, config))
    choice = fill_budget(config.to_dict(), opts.byte_budget, adapter_dtype=opts.adapter_dtype,
                         training=mask_training(opts, config), depth=opts.budget_layers)
    return config_from_dict(choice.config, limits), choice


def density_schedule(opts: TrainOptions, config: GPTConfig, training: MaskTraining) -> DensitySchedule | None:
    if training.estimator not in DENSITY_ESTIMATORS or config.mask_spec().kind == "nm":
        return None
    target = opts.density if opts.density is not None else training.density
    return DensitySchedule(target=target, dense_until=opts.dense_warmup,
                           ramp_until=max(opts.density_ramp, opts.dense_warmup),
                           restore=opts.restore_density, restore_from=opts.restore_from)


def score_unit(training: MaskTraining | None) -> float:
    """Score units per 'lr' / 'temperature' unit: quant scores live on a grid of step delta."""
    return QUANT_STEP_INIT if training is not None and training.estimator == "quant" else 1.0


# ---------------------------------------------------------------- data and model

def load_data(opts: TrainOptions) -> tuple[TokenStream, TokenStream, Tokenizer]:
    """(train, val, tokenizer): the val split is the same as load-and-eval --split val."""
    tok = load_tokenizer(opts.tokenizer)
    stream = load_tokens(opts.data, tok)
    if opts.val_data:
        train_stream, val_stream = stream, load_tokens(opts.val_data, tok)
    else:
        train_stream, val_stream = split_train_val(stream, opts.val_fraction)
    if len(train_stream) <= opts.seq_len:
        raise ConfigError(f"seq_len: {opts.seq_len}, expected fewer than the {len(train_stream)} "
                          f"training tokens")
    return train_stream, val_stream, tok


def build_model(config: GPTConfig | RecordConfig, seed: int, device: torch.device,
                training: MaskTraining | None = None) -> nn.Module:
    """The masked GPT (or ``--arch`` model) with seeded frozen weights; scores drawn from torch's
    RNG seeded by ``seed``."""
    if isinstance(config, RecordConfig):
        return build_record_model(config, seed, device, training)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # built on the CPU: same init on any device
        model = GPT(config, masked=True, seed=seed, mask_training=training)
    return model.to(device)


def param_groups(model: nn.Module, opts: TrainOptions) -> list[dict]:
    """Scores at lr (in the score units of the layers' estimator), adapters at adapter_lr,
    everything else trainable at scale_lr (mask none has no scores: its first group is empty)."""
    scores, adapters, others = [], [], []
    for name, p in model.named_parameters():
        if name.endswith("scores"):
            scores.append(p)
        else:
            (adapters if name.endswith(("adapter_a", "adapter_b")) else others).append(p)
    layers = masked_layers(model)
    lr = opts.lr * score_unit(layers[0][1].mask_training if layers else None)
    groups = [{"params": scores, "lr": lr, "base_lr": lr, "name": "scores"}]
    if adapters:
        groups.append({"params": adapters, "lr": opts.adapter_lr, "base_lr": opts.adapter_lr, "name": "adapters"})
    if others:
        groups.append({"params": others, "lr": opts.scale_lr, "base_lr": opts.scale_lr, "name": "scales"})
    return groups


def make_optimizer(model: nn.Module, opts: TrainOptions) -> torch.optim.Adam:
    return torch.optim.Adam(param_groups(model, opts), betas=tuple(opts.adam_betas),
                            eps=opts.adam_eps)


def optimizer_tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam's per-parameter state, keyed ``opt/<param name>/<field>``, for the checkpoint."""
    out = {}
    for name, p in model.named_parameters():
        for key, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value):
                out[f"opt/{name}/{key}"] = value
    return out


def restore_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, extra: dict[str, torch.Tensor]) -> None:
    for name, p in model.named_parameters():
        state = {k.rsplit("/", 1)[1]: v for k, v in extra.items() if k.rsplit("/", 1)[0] == f"opt/{name}"}
        if not state:
            continue
        optimizer.state[p] = {k: (v if k == "step" else v.to(p.device, p.dtype)) for k, v in state.items()}


def layer_densities(model: nn.Module) -> dict[str, float]:
    return {layer.tensor_name: round(layer.density(), 6) for _, layer in masked_layers(model)}


def overall_density(model: nn.Module) -> tuple[float, int]:
    return nonzero_share(layer.hard_mask() for _, layer in masked_layers(model))


# ---------------------------------------------------------------- the run

class _Objective(nn.Module):
    """The training loss as a module's forward, so that DistributedDataParallel (which wraps
    forward) syncs the gradients of ``GPT.loss`` (or the cross-entropy of another arch's logits)."""

    def __init__(self, model: nn.Module, logits: nn.Module) -> None:
        super().__init__()
        self.model, self._logits = model, (logits,)  # the wrapper shares the model's parameters

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(self.model, GPT):
            return self.model.loss(x, y)
        return logits_loss(self._logits[0](x), y)


@dataclass
class _State:
    step: int = 0
    tokens: int = 0
    train_seconds: float = 0.0


class _Trainer:
    """One run: built once by ``train``; small methods for each part of the loop."""

    def __init__(self, opts: TrainOptions, callback: Callback | None, limits: Limits,
                 model_limits: ModelLimits, given: Iterable[str] | None = None) -> None:
        opts.validate()
        self.model_limits = model_limits
        self.resumed: Checkpoint | None = (load_checkpoint(opts.resume, limits, model_limits)
                                           if opts.resume else None)
        self.opts = _merge_resumed(opts, self.resumed, given) if self.resumed else opts
        self.callback = callback
        self.device = resolve_device(self.opts.device)
        self.dctx = setup_distributed(self.device)
        self.shape: ShapeChoice | None = None
        self.config = self._config()
        self.mask_training = mask_training(self.opts, self.config)
        self.budget = self.opts.max_minutes * 60 if self.opts.max_minutes else None
        self.train_stream, self.val_stream, tok = load_data(self.opts)
        if tok.vocab_size > self.config.vocab_size:
            raise ConfigError(f"vocab_size: {self.config.vocab_size}, expected at least the "
                              f"tokenizer's {tok.vocab_size}")
        self.eval_context = make_eval_context(self.opts.seq_len, tok.identity())
        self.model = build_model(self.config, self.opts.seed, self.device, self.mask_training)
        self.logits = Logits(self.model, self.config.to_dict())  # token ids -> float32 logits
        self.optimizer = make_optimizer(self.model, self.opts)
        self.density_schedule = density_schedule(self.opts, self.config, self.mask_training)
        self.state = _State()
        self.last_loss: float | None = None  # the last logged training loss
        if self.resumed:
            self._restore(self.resumed)
        self.net = self._wrap_ddp()
        self.log = JsonlLog(self.opts.log if self.dctx.main else None, append=self.resumed is not None)

    def _config(self) -> GPTConfig | RecordConfig:
        if self.resumed is not None and "arch" in self.resumed.config:  # another architecture's record
            return record_config(self.opts, self.model_limits, record=self.resumed.config)
        if self.resumed is not None:  # the checkpoint's shape, whatever the budget says now
            return config_from_dict(self.resumed.config, self.model_limits, error=CheckpointError,
                                    where="checkpoint config")
        config, self.shape = budget_config(self.opts, self.model_limits)
        return config

    def _restore(self, ckpt: Checkpoint) -> None:
        model_state = ckpt.model_state()
        own = self.model.state_dict()
        if set(model_state) != set(own):
            raise CheckpointError(f"resume: checkpoint model keys do not fit the model "
                                  f"(e.g. {sorted(set(model_state) ^ set(own))[:2]})")
        self.model.load_state_dict({k: v.to(self.device) for k, v in model_state.items()})
        restore_optimizer(self.model, self.optimizer, ckpt.extra())
        self.state = _resumed_state(ckpt.train_state)

    def _wrap_ddp(self) -> nn.Module:
        objective = _Objective(self.model, self.logits)
        if self.dctx.world == 1:
            return objective
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(objective, device_ids=ids, **ddp_no_buffer_sync())

    # -- events

    def emit(self, event: Event) -> None:
        if not self.dctx.main:
            return
        self.log.write(event)
        if self.callback is not None:
            self.callback(event)

    def start_event(self) -> None:
        self.emit({"event": "start", "step": self.state.step, "resumed": self.opts.resume,
                   "mask": str(self.config.mask_spec()), "estimator": self.mask_training.estimator,
                   "connections": overall_density(self.model)[1],
                   "train_tokens": len(self.train_stream), "val_tokens": len(self.val_stream),
                   "steps": self.opts.steps, "max_minutes": self.opts.max_minutes,
                   **({"budget_shape": self.shape.reason()} if self.shape else {}),
                   "provenance": self._provenance()})

    # -- schedule and step

    def progress(self) -> float:
        steps = self.opts.steps if self.opts.steps else (None if self.budget else DEFAULT_STEPS)
        return progress(self.state.step, steps, self.state.train_seconds, self.budget)

    def apply_schedule(self, p: float) -> dict[str, float]:
        mult = lr_multiplier(p, self.opts.warmup, self.opts.warmdown)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * mult
        t = temperature(p, self.opts.temperature_start, self.opts.temperature_end)
        unit = score_unit(self.mask_training)
        density = self.density_schedule(p) if self.density_schedule else None
        for _, layer in masked_layers(self.model):
            layer.temperature = t * unit
            if density is not None:
                layer.target_density = density
        return {"lr": self.optimizer.param_groups[0]["lr"], "lr_multiplier": mult, "temperature": t,
                **({"target_density": density} if density is not None else {})}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss = self.net(x, y)  # GPT.loss: float32 logits, so cross-entropy runs in float32
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.opts.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.opts.grad_clip)
        self.optimizer.step()
        return loss.detach()

    def sync_seconds(self) -> None:
        """Every rank follows rank 0's clock, so all agree on the schedule and when to stop."""
        if self.dctx.world > 1 and self.budget is not None:
            t = torch.tensor([self.state.train_seconds], dtype=torch.float64, device=self._comm_device())
            dist.broadcast(t, src=0)
            self.state.train_seconds = float(t.item())

    def mean_loss(self, loss: torch.Tensor) -> float:
        if self.dctx.world > 1:
            loss = loss.to(self._comm_device(), torch.float32).clone()
            dist.all_reduce(loss)
            loss /= self.dctx.world
        return float(loss.item())

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    # -- evaluation and checkpoints

    def periodic_eval(self, sched: dict) -> None:
        if not self.dctx.main:
            return
        res = evaluate(self.logits, self.val_stream, seq_len=self.opts.seq_len,
                       batch_size=self.opts.eval_batch_size, device=self.device,
                       autocast_bf16=self.device.type == "cuda", max_tokens=self.opts.eval_tokens)
        self.emit({"event": "eval", "step": self.state.step, "val_loss": res.val_loss,
                   "val_bpb": res.val_bpb, "eval_tokens": res.tokens, "loss": self.last_loss, **sched,
                   "tokens": self.state.tokens, "train_seconds": self.state.train_seconds,
                   "tokens_per_second": self.state.tokens / max(self.state.train_seconds, 1e-9),
                   "density": overall_density(self.model)[0], "layer_density": layer_densities(self.model)})

    def final_eval(self) -> EvalResult:
        """val_bpb of the model rebuilt from the ticket, evaluated as load-and-eval does."""
        ticket = ticket_from_model(self.model, self.opts.seed, self.config.to_dict(),
                                   adapter_dtype=self.opts.adapter_dtype)
        rebuilt = rebuilt_model(ticket.config, ticket.effective_state_dict(), self.model_limits).to(self.device)
        return evaluate(rebuilt, self.val_stream, seq_len=self.opts.seq_len,
                        batch_size=self.opts.eval_batch_size, device=self.device,
                        autocast_bf16=self.device.type == "cuda")

    def save(self, done: bool, final: EvalResult | None = None) -> None:
        if not self.dctx.main:
            return
        state = {"step": self.state.step, "tokens": self.state.tokens,
                 "train_seconds": self.state.train_seconds, "done": done,
                 "options": self.opts.to_dict(), "mask_training": self.mask_training.to_dict()}
        if final is not None:
            state.update(val_bpb=final.val_bpb, val_loss=final.val_loss, seq_len=final.seq_len,
                         eval_tokens=final.tokens, eval_bytes=final.bytes)
        save_checkpoint(self.opts.out, self.model, seed=self.opts.seed, config=self.config.to_dict(),
                        train_state=state, extra_tensors=optimizer_tensors(self.model, self.optimizer),
                        provenance=self._provenance(),
                        eval_context=self.eval_context, adapter_dtype=self.opts.adapter_dtype)

    def _provenance(self) -> dict:
        return provenance(self.config, self.mask_training, self.opts, self.dctx, self.device)

    # -- the loop

    def run(self) -> TrainResult:
        self.start_event()
        B, L = self.opts.batch_size, self.opts.seq_len
        batches = batch_iterator(self.train_stream.tokens, B, L, self.opts.seed, self.state.step,
                                 self.dctx.rank, self.dctx.world)
        sched: dict = {}
        while (p := self.progress()) < 1.0:
            sched = self.apply_schedule(p)
            t0 = time.perf_counter()
            loss = self.train_step(*next(batches))
            self.state.step += 1
            self.state.tokens += B * L
            if self.opts.log_every and self.state.step % self.opts.log_every == 0:
                self._log_step(loss, sched, p, t0)
            else:
                self.state.train_seconds += time.perf_counter() - t0
            self.sync_seconds()
            self._periodic(sched)
        return self.finish(sched)

    def _log_step(self, loss: torch.Tensor, sched: dict, p: float, t0: float) -> None:
        value = self.last_loss = self.mean_loss(loss)  # waits for the device: the step's time is complete
        if not math.isfinite(value):
            raise ConfigError(f"training diverged: loss {value} at step {self.state.step}; "
                              f"lower --lr / --scale-lr")
        self.state.train_seconds += time.perf_counter() - t0
        self.emit({"event": "step", "step": self.state.step, "loss": value, **sched,
                   "progress": self.progress(), "tokens": self.state.tokens,
                   "train_seconds": self.state.train_seconds,
                   "tokens_per_second": self.state.tokens / max(self.state.train_seconds, 1e-9)})

    def _periodic(self, sched: dict) -> None:
        step = self.state.step
        if self.opts.eval_every and step % self.opts.eval_every == 0 and self.progress() < 1.0:
            self.periodic_eval(sched)
        if self.opts.checkpoint_every and step % self.opts.checkpoint_every == 0 and self.progress() < 1.0:
            self.save(done=False)

    def finish(self, sched: dict) -> TrainResult:
        self.save(done=True)  # before the final evaluation: a failure there loses no training
        final = self.final_eval() if self.dctx.main and self.opts.final_eval else None
        if final is not None:
            self.save(done=True, final=final)
        density, connections = overall_density(self.model)
        packed = self.packed_bytes() if self.dctx.main and self.opts.byte_budget else None
        if packed is not None and packed > self.opts.byte_budget:  # the proof; the shape was solved to fit
            raise BudgetExceededError(f"budget: the trained model packs to {packed:,} bytes, over the "
                                      f"{self.opts.byte_budget:,}-byte budget; the checkpoint {self.opts.out} "
                                      f"is kept (pick a smaller --model shape)")
        if self.dctx.main:
            scores = {} if final is None else {"val_loss": final.val_loss, "val_bpb": final.val_bpb,
                                               "eval_tokens": final.tokens, "eval_bytes": final.bytes}
            if packed is not None:
                scores.update(packed_bytes=packed, byte_budget=self.opts.byte_budget)
            self.emit({"event": "final", "step": self.state.step, **scores,
                       "tokens": self.state.tokens, "train_seconds": self.state.train_seconds,
                       "density": density, "layer_density": layer_densities(self.model),
                       "checkpoint": self.opts.out, **sched})
        return TrainResult(val_bpb=final.val_bpb if final else None,
                           val_loss=final.val_loss if final else None, steps=self.state.step,
                           tokens=self.state.tokens, seconds=self.state.train_seconds,
                           checkpoint=str(self.opts.out), density=density, connections=connections,
                           config=self.config.to_dict(), eval=final.to_dict() if final else None,
                           log=self.opts.log, model=self.model,
                           shape=self.shape.reason() if self.shape else None, packed_bytes=packed)

    def packed_bytes(self) -> int:
        """Bytes ``ticketpack pack`` writes for the final checkpoint (the budget's proof)."""
        return packed_size(self.opts.out)

    def close(self) -> None:
        self.log.close()
        if self.dctx.world > 1:
            dist.barrier()
            if self.dctx.owned:
                dist.destroy_process_group()


def _merge_resumed(opts: TrainOptions, ckpt: Checkpoint, given: Iterable[str] | None = None) -> TrainOptions:
    """A resumed run keeps the checkpoint's model, seed and training hyperparameters;
    the stopping rule (steps, max_minutes), data paths, outputs and logging come from ``opts``.

    The saved options are untrusted: they pass the same checks as the CLI's flags
    (``CheckpointError`` naming the option), and a path saved in them (the tokenizer) is never
    opened: the user names it again. ``given``: the options the caller set explicitly (the
    flags typed on the command line); one of them that the checkpoint saved with another value
    is refused (UsageError), never silently replaced. None (the Python API's default): the
    saved values replace the caller's without a check."""
    saved = ckpt.train_state.get("options")
    if not isinstance(saved, dict):
        raise CheckpointError("resume: the checkpoint has no training options (not written by the trainer)")
    kept = {k: saved[k] for k in resumed_fields() if k in saved}
    if isinstance(kept.get("adam_betas"), list):
        kept["adam_betas"] = tuple(kept["adam_betas"])
    if isinstance(kept.get("model"), dict):
        kept["model"] = dict(kept["model"])
    merged = dataclasses.replace(opts, **kept)
    try:
        merged.validate()
    except UsageError as exc:
        raise CheckpointError(f"resume: saved option {exc}") from None
    _refuse_conflicts(opts, merged, kept, given)
    if merged.seed != ckpt.seed:
        raise CheckpointError(f"resume: options seed {merged.seed} differs from checkpoint seed {ckpt.seed}")
    saved_tok = saved.get("tokenizer")
    if (saved_tok is None) != (opts.tokenizer is None):
        raise UsageError(f"tokenizer: the checkpoint was trained with "
                         f"{'the byte-level tokenizer' if saved_tok is None else 'a SentencePiece model'}; "
                         f"resume with {'no --tokenizer' if saved_tok is None else '--tokenizer naming it'}")
    return merged


def _refuse_conflicts(opts: TrainOptions, merged: TrainOptions, kept: dict,
                      given: Iterable[str] | None) -> None:
    """Refuse an option given for this run that the checkpoint's saved value would override."""
    if given is None:  # the Python API's default: the saved options win, as documented
        return
    flags = {spec.name: spec.flag for spec in option_flags()}
    for name in (k for k in kept if k in given):
        if getattr(opts, name) != getattr(merged, name):
            raise UsageError(f"resume: {flags[name]} {shown(getattr(opts, name))} conflicts with the "
                             f"checkpoint's saved {name} {shown(getattr(merged, name))}; a resumed run keeps "
                             f"the checkpoint's model and training options (drop {flags[name]}, or start a new "
                             f"run without --resume)")


def _resumed_state(ts: dict) -> _State:
    """Step, tokens and training seconds of a checkpoint's train_state (CheckpointError if bad)."""
    try:
        for name in ("step", "tokens"):
            check_number(name, ts.get(name, 0), int, low=0)
        check_number("train_seconds", ts.get("train_seconds", 0.0), float, low=0)
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint train_state: {exc}") from None
    return _State(ts.get("step", 0), ts.get("tokens", 0), float(ts.get("train_seconds", 0.0)))


def train(options: TrainOptions, callback: Callback | None = None, *, limits: Limits = DEFAULT_LIMITS,
          model_limits: ModelLimits = DEFAULT_MODEL_LIMITS, given: Iterable[str] | None = None) -> TrainResult:
    """Train a supermask GPT; write the checkpoint (and log); return the final figures.

    ``callback`` receives every log event (dicts with ``event`` in start / step / eval /
    final) on rank 0, e.g. the CLI's progress display (ticketpack.cli.progress). ``limits``
    caps a resumed checkpoint's tensors; ``model_limits`` bounds the model config.
    """
    trainer = _Trainer(options, callback, limits, model_limits, given)
    try:
        return trainer.run()
    finally:
        trainer.close()


def ddp_no_buffer_sync() -> dict[str, bool]:
    """DDP keywords that skip the buffer broadcast before each forward: the frozen buffers are
    regenerated from the seed on every rank. Newer torch deprecates ``broadcast_buffers`` for
    ``forward_sync_buffers`` (whose one start-up sync copies equal values); older torch (>= 2.4
    is supported) has only the first."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}
