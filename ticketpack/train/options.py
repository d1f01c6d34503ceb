"""The training options, declared once: ``TrainOptions`` fields with their types, defaults, help
text and command-line flag.

``ticketpack train``'s flags are generated from these fields (ticketpack.cli.flags), one flag
per field (``max_minutes`` -> ``--max-minutes``; the field's metadata may rename it, restrict
it to choices or name the function that parses its text); bench scripts build the same
``TrainOptions``. ``validate`` checks every field's type and range for all of them, and for
the options a resumed checkpoint brings back.

Torch-free (the command line imports it at start-up for its flags).
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import stat
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from ..atomic import check_output_path, refuse_input_overwrite
from ..budget import parse_budget
from ..errors import ConfigError, OutputWriteError, UsageError
from ..format.constants import ADAPTER_DTYPES, SCALE_MODES
from ..nn.mask_training import DENSITY_ESTIMATORS, ESTIMATORS, estimator_names
from ..format.eval_context import MAX_SEQ_LEN
from ..models.gpt_config import INIT_CHOICES, LEGACY, PRESETS, SCHEMA, TRAIN_ARCHES
from .recipes import QUICKSTART_MINUTES
from ..strict_json import loads_strict

if typing.TYPE_CHECKING:
    from ..text.quickstart import QuickstartData

DEFAULT_STEPS = 1000  # when neither steps nor max_minutes is given
# Upper bounds of the numeric options (flags and a resumed checkpoint's saved options alike):
# past them a run overflows float32 (an lr of 1e300) or asks for memory no machine has.
MAX_BATCH = 2**16  # sequences per step (training and evaluation)
MAX_STEP_TOKENS = 2**24  # batch_size * seq_len
MAX_RATE = 1e6  # learning rates
MAX_TEMPERATURE = 1e6
MAX_MINUTES = 1e6
MAX_STEPS = 2**40


def json_object(text: str) -> dict[str, Any]:
    """``--model``'s text: a JSON object (strict: unique keys, finite numbers), else UsageError."""
    value = loads_strict(text, "--model", UsageError)
    if not isinstance(value, dict):
        raise UsageError(f"--model: got {type(value).__name__}, expected a JSON object")
    return value


def _option(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None,
            choices: tuple[str, ...] | None = None, parse: Callable[[str], Any] | None = None,
            none_word: str | None = None, resumed: bool = False, file: bool = False,
            factory: Callable[[], Any] | None = None) -> Any:
    """A ``TrainOptions`` field and what its flag needs: ``help``, a ``flag`` name other than
    the field's, ``choices``, ``parse`` (flag text -> value), ``none_word`` (the flag's word for
    None where the default is not None), ``resumed`` (a resumed run takes it from its
    checkpoint: it defines the model and its training) and ``file`` (a file path, not a folder)."""
    metadata = {"help": help, "flag": flag, "choices": choices, "parse": parse,
                "none_word": none_word, "resumed": resumed, "file": file}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# --estimator's help, from the estimator table (mask_training.ESTIMATORS: the first is a kind's default)
_KIND_DEFAULTS = ", ".join(f"{kind} {names[0]}" for kind, names in ESTIMATORS.items() if kind != "none")
_ESTIMATOR_HELP = (f"{' | '.join(estimator_names())} (default: by mask kind, {_KIND_DEFAULTS}; "
                   f"{' / '.join(DENSITY_ESTIMATORS)} with a density)")


@dataclass
class TrainOptions:
    """Everything ``train`` needs; each field is one flag of ``ticketpack train``."""

    data: list[str] = _option(help="text files (.xz ok), token shards or globs to train on")
    out: str = _option(file=True, help="checkpoint to write (.safetensors), also the periodic checkpoint")
    val_data: list[str] | None = _option(None, help="held-out text (default: the last val_fraction of the data)")
    val_fraction: float = _option(0.1, resumed=True, help="share of the data held out when no val data is "
                                  "given (load-and-eval --split val uses the same split)")
    tokenizer: str | None = _option(None, help="SentencePiece .model (default: bytes, vocabulary 256)")
    arch: str = _option("gpt", resumed=True, choices=TRAIN_ARCHES,
                        help="the built-in GPT, or a Hugging Face causal LM of the preset's shape, or "
                             "with --budget the shape the budget buys (--model then overrides its "
                             "transformers config, and those keys stay fixed; needs ticketpack[hf])")
    preset: str = _option("small", resumed=True, help=f"model preset: {', '.join(PRESETS)}")
    model: dict[str, Any] = _option(factory=dict, resumed=True, parse=json_object,
                                    help='model config overrides as JSON, e.g. \'{"model_dim": 512}\'')
    byte_budget: int | None = _option(None, flag="--budget", parse=parse_budget,
                                      help="byte budget (256KB, 16MB): train the fullest shape of the recipe "
                                           "whose packed artifact fits (finer steps until 95% of it is used)")
    budget_layers: int | None = _option(None, help="with --budget: this many blocks (the search then moves "
                                                   "width, heads and MLP ratio only; default: its choice)")
    mask: str | None = _option(None, resumed=True, help="binary | multibit:K | signed:K (levels -(K-1)..K-1: "
                                                        "drop, keep or invert) | nm:N:M | none (frozen seeded "
                                                        "weights, no mask; default: the preset's)")
    scale_mode: str | None = _option(None, resumed=True, choices=SCALE_MODES,
                                     help="learned scale of each masked layer (default: the preset's, none)")
    estimator: str = _option("", resumed=True, help=_ESTIMATOR_HELP)
    init: str | None = _option(None, resumed=True, choices=tuple(INIT_CHOICES),
                               help="frozen init: a rule, or a recipe (default: the preset's)")
    density: float | None = _option(None, resumed=True, help=f"target density ({' / '.join(DENSITY_ESTIMATORS)} "
                                                             "estimators; default: free)")
    dense_warmup: float = _option(0.0, resumed=True, help="density schedule: dense until this fraction of the run")
    density_ramp: float = _option(0.0, resumed=True, help="density schedule: cosine ramp to the target "
                                                          "until this fraction")
    restore_density: float | None = _option(None, resumed=True, help="density schedule: then restore "
                                                                      "towards this denser value")
    restore_from: float = _option(0.8, resumed=True, help="density schedule: restoration starts at this fraction")
    seed: int = _option(0, resumed=True, help="frozen weights (Philox), score init and data order")
    steps: int | None = _option(None, help=f"stop after this many steps (default with no max minutes: "
                                           f"{DEFAULT_STEPS})")
    max_minutes: float | None = _option(None, help="or after this much training time (schedules follow it)")
    seq_len: int = _option(256, resumed=True, help="tokens per training sequence")
    batch_size: int = _option(32, resumed=True, help="global sequences per step (a multiple of the world size)")
    lr: float = _option(0.1, resumed=True, help="Adam lr of the mask scores (quant: in units of the "
                                                "initial level step)")
    scale_lr: float = _option(0.01, resumed=True, help="Adam lr of scales and other continuous parameters")
    adapter_rank: int | None = _option(None, resumed=True, help="rank of trained low-rank adapters B @ A on "
                                                                "every frozen weight (default: the preset's, 0)")
    adapter_dtype: str = _option("f16", resumed=True, choices=ADAPTER_DTYPES,
                                 help="how the artifact stores adapters (int8: per row, fp16 scales)")
    adapter_lr: float = _option(0.01, resumed=True, help="Adam lr of the adapters")
    warmup: float = _option(0.02, resumed=True, help="lr warm-up, fraction of the run")
    warmdown: float = _option(0.3, resumed=True, help="lr warm-down to 0, fraction of the run")
    temperature_start: float = _option(2.0, resumed=True, help="STE surrogate temperature at the start "
                                                               "(quant: in level steps)")
    temperature_end: float = _option(0.1, resumed=True, help="STE surrogate temperature at the end "
                                                             "(annealed geometrically)")
    grad_clip: float = _option(1.0, resumed=True, help="global gradient-norm clip; 0 = off")
    adam_betas: tuple[float, float] = _option((0.9, 0.95), resumed=True, help="Adam beta1 beta2")
    adam_eps: float = _option(1e-8, resumed=True, help="Adam epsilon")
    eval_every: int = _option(250, help="steps between held-out evaluations; 0 = only the final one")
    eval_tokens: int | None = _option(65536, none_word="all", help="val tokens a periodic evaluation "
                                                                   "scores ('all': the whole split)")
    eval_batch_size: int = _option(8, help="evaluation batch size (as load-and-eval's default, so the "
                                           "final number matches it)")
    final_eval: bool = _option(True, help="score the held-out text at the end (the quickstart scores "
                                          "the artifact instead)")
    log_every: int = _option(10, help="steps between 'step' log lines")
    checkpoint_every: int = _option(500, help="steps between checkpoints to --out (a run resumes from "
                                              "the last); 0 = only at the end")
    log: str | None = _option(None, file=True, help="JSON-lines log file")
    resume: str | None = _option(None, file=True, help="checkpoint to continue from")
    device: str = _option("auto", help="auto, cpu or cuda")

    def validate(self) -> None:
        """Every option's type and range (ConfigError naming it); the CLI's flags and a resumed
        checkpoint's saved options go through this same check."""
        if not self.data or not all(isinstance(d, str) for d in self.data):
            raise UsageError("data: no paths given, expected at least one file")
        if not isinstance(self.out, str) or not self.out:
            raise UsageError("out: empty path, expected a checkpoint path")
        check_output_path(self.out)  # before training, not after it
        check_number("steps", self.steps, int, low=1, high=MAX_STEPS, optional=True)
        check_number("max_minutes", self.max_minutes, float, low=0, open_low=True, high=MAX_MINUTES,
                     optional=True)
        check_number("seq_len", self.seq_len, int, low=1, high=MAX_SEQ_LEN)
        for name in ("batch_size", "eval_batch_size"):
            check_number(name, getattr(self, name), int, low=1, high=MAX_BATCH)
        if self.batch_size * self.seq_len > MAX_STEP_TOKENS:
            raise ConfigError(f"batch_size * seq_len: {self.batch_size} x {self.seq_len}, expected at most "
                              f"{MAX_STEP_TOKENS:,} tokens per step")
        check_number("seed", self.seed, int, low=0, high=2**32 - 1)
        for name in ("lr", "scale_lr"):
            check_number(name, getattr(self, name), float, low=0, open_low=True, high=MAX_RATE)
        for name in ("temperature_start", "temperature_end"):
            check_number(name, getattr(self, name), float, low=0, open_low=True, high=MAX_TEMPERATURE)
        check_number("adam_eps", self.adam_eps, float, low=0, open_low=True, high=1)
        for name in ("warmup", "warmdown", "dense_warmup", "density_ramp", "restore_from"):
            check_number(name, getattr(self, name), float, low=0, high=1)
        if self.warmup + self.warmdown > 1:
            raise ConfigError(f"warmup + warmdown: {self.warmup + self.warmdown}, expected at most 1")
        check_number("val_fraction", self.val_fraction, float, low=0, high=1, open_low=True)
        for name in ("density", "restore_density"):
            check_number(name, getattr(self, name), float, low=0, high=1, open_low=True, optional=True)
        check_number("grad_clip", self.grad_clip, float, low=0, high=MAX_RATE)
        betas = self.adam_betas
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ConfigError(f"adam_betas: {shown(betas)}, expected two numbers in [0, 1)")
        for beta in betas:
            check_number("adam_betas", beta, float, low=0, high=1, open_high=True)
        for name in ("eval_every", "log_every", "checkpoint_every"):
            check_number(name, getattr(self, name), int, low=0, high=MAX_STEPS)
        check_number("eval_tokens", self.eval_tokens, int, low=1, high=2**62, optional=True)
        if not isinstance(self.final_eval, bool):
            raise ConfigError(f"final_eval: {shown(self.final_eval)}, expected true or false")
        for name in ("preset", "estimator", "device"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}: {shown(getattr(self, name))}, expected a string")
        if self.estimator and self.estimator not in estimator_names():
            raise ConfigError(f"estimator: {shown(self.estimator)}, expected one of {', '.join(estimator_names())}")
        for name in ("mask", "tokenizer", "log", "resume"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}: {shown(getattr(self, name))}, expected a string")
        if not isinstance(self.model, dict):
            raise ConfigError(f"model: {shown(self.model)}, expected a JSON object of config fields")
        for key in LEGACY.keys() & self.model.keys():  # how to train is not part of the model
            raise ConfigError(f"model: {key!r} is a training setting, not a model config field; "
                              f"use estimator / density (--estimator, --density)")
        if self.arch not in TRAIN_ARCHES:
            raise ConfigError(f"arch: {shown(self.arch)}, expected one of {', '.join(TRAIN_ARCHES)}")
        if self.scale_mode is not None and self.scale_mode not in SCALE_MODES:
            raise ConfigError(f"scale_mode: {shown(self.scale_mode)}, expected one of {', '.join(SCALE_MODES)}")
        if self.init is not None and self.init not in INIT_CHOICES:
            raise ConfigError(f"init: {shown(self.init)}, expected one of {', '.join(INIT_CHOICES)}")
        check_number("byte_budget", self.byte_budget, int, low=1, high=2**62, optional=True)
        check_number("budget_layers", self.budget_layers, int, low=1, high=SCHEMA["num_layers"].high, optional=True)
        if self.budget_layers is not None and self.byte_budget is None:
            raise ConfigError(f"budget_layers: {self.budget_layers} given without a byte budget (--budget), "
                              f"expected both or neither")
        check_number("adapter_rank", self.adapter_rank, int, low=0, high=SCHEMA["adapter_rank"].high, optional=True)
        check_number("adapter_lr", self.adapter_lr, float, low=0, open_low=True, high=MAX_RATE)
        if self.adapter_dtype not in ADAPTER_DTYPES:
            raise ConfigError(f"adapter_dtype: {shown(self.adapter_dtype)}, expected one of "
                              f"{', '.join(ADAPTER_DTYPES)}")
        self.check_paths()

    def check_paths(self) -> None:
        """Outputs that are no input (UsageError): --out and --log are neither a data file, the
        val data nor the tokenizer, nor each other; the log is not the checkpoint resumed from
        (the checkpoint itself may be: a resumed run continues in it). A log that cannot be
        written is refused now, not after the data is read."""
        inputs = {"data": expand_globs(self.data), "val_data": expand_globs(self.val_data or []),
                  "tokenizer": self.tokenizer}
        refuse_input_overwrite({"out": self.out, "log": self.log}, inputs)
        refuse_input_overwrite({"log": self.log}, {"resume": self.resume})
        if self.log is not None:
            check_log_path(self.log)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def expand_globs(specs: list[str]) -> list[str]:
    """Data paths with their globs expanded (a path that exists is kept as it is)."""
    out: list[str] = []
    for spec in specs:
        out.extend(sorted(glob.glob(spec)) if set("*?[") & set(spec) and not os.path.exists(spec) else [spec])
    return out


def check_log_path(path: str) -> None:
    """A log path whose folder exists and that this process may write (OutputWriteError)."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"log: folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"log {path!r}: is a directory, expected a file path")
    if stat.S_ISFIFO(_mode(path)) or stat.S_ISSOCK(_mode(path)):
        raise UsageError(f"log {path!r}: is a FIFO or socket (opening it would wait for a reader), "
                         f"expected a file path")
    if not os.access(path if os.path.exists(path) else folder, os.W_OK):
        raise OutputWriteError(f"log {path!r}: cannot write (permission denied)")


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def check_number(name: str, value: Any, kind: type, *, low: float | None = None, high: float | None = None,
                 open_low: bool = False, open_high: bool = False, optional: bool = False) -> None:
    """An int (``kind`` int) or a finite number (``kind`` float) in its range, else ConfigError."""
    if value is None and optional:
        return
    kinds = (int,) if kind is int else (int, float)
    ok = not isinstance(value, bool) and isinstance(value, kinds)
    if ok and kind is float:
        ok = math.isfinite(value) if isinstance(value, float) else abs(value) < 2**1023
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        what = "an integer" if kind is int else "a finite number"
        lo = "" if low is None else f"{'>' if open_low else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if open_high else '<='} {high:g}"
        raise ConfigError(f"{name}: {shown(value)}, expected {what} {' and '.join(x for x in (lo, hi) if x)}".strip())


def shown(value: Any) -> str:
    """A value for an error message, cut short when long (it may come from an untrusted file)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({type(value).__name__}, {len(text):,} chars)"


# ---------------------------------------------------------------- the flags the fields imply

@dataclass(frozen=True)
class OptionFlag:
    """One field as a command-line flag (what ticketpack.cli.flags turns into a click option)."""

    name: str  # the field
    flag: str  # --max-minutes
    value_type: type  # int, float, str or bool (of each value the flag takes)
    default: Any  # the field's default (a list or dict default: its empty value); None if required
    required: bool
    optional: bool  # None allowed
    many: bool  # a list: the flag repeats
    arity: int  # values per use (2 for a pair)
    help: str
    choices: tuple[str, ...] | None
    parse: Callable[[str], Any] | None
    none_word: str | None
    file: bool  # a file path (a folder is refused)


def option_flags() -> list[OptionFlag]:
    """Every ``TrainOptions`` field as the flag that sets it, in declaration order."""
    hints = typing.get_type_hints(TrainOptions)
    return [_flag(f, hints[f.name]) for f in dataclasses.fields(TrainOptions)]


def _flag(f: dataclasses.Field, hint: Any) -> OptionFlag:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = _is_union(hint) and type(None) in typing.get_args(hint)
    base = args[0] if optional else hint
    origin = typing.get_origin(base)
    many, arity, value_type = origin is list, 1, base
    if origin in (list, tuple):
        value_type, arity = typing.get_args(base)[0], (len(typing.get_args(base)) if origin is tuple else 1)
    if f.metadata["parse"] is not None:
        value_type = str  # the flag's text, turned into the value by ``parse``
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    default = None if required else (f.default_factory() if f.default is dataclasses.MISSING else f.default)
    return OptionFlag(name=f.name, flag=f.metadata["flag"] or "--" + f.name.replace("_", "-"),
                      value_type=value_type, default=default, required=required, optional=optional,
                      many=many, arity=arity, help=f.metadata["help"], choices=f.metadata["choices"],
                      parse=f.metadata["parse"], none_word=f.metadata["none_word"],
                      file=f.metadata["file"])


def _is_union(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def options_from_flags(values: dict[str, Any]) -> TrainOptions:
    """``TrainOptions`` from the values the flags gave (field name -> the flag's raw value):
    repeated flags become lists (none given: None where the field allows it), text is parsed by
    the field's ``parse``, ``none_word`` means None. Fields not in ``values`` (or a parsed one
    given as None) keep their default."""
    kept = {}
    for spec in option_flags():
        if spec.name not in values:
            continue
        value = values[spec.name]
        if value is None and spec.parse is not None:
            continue  # a parsed flag not given: the field's default
        if spec.many:
            value = list(value) if value or not spec.optional else None
        elif spec.arity > 1:
            value = tuple(value)
        elif spec.none_word is not None and value == spec.none_word:
            value = None
        elif spec.parse is not None and isinstance(value, str):
            value = spec.parse(value)
        kept[spec.name] = value
    return TrainOptions(**kept)


def declared_default(name: str) -> Any:
    """The default ``TrainOptions`` declares for field ``name`` (for code that offers the same
    setting under its own name, such as the bake-off's methods)."""
    f = TrainOptions.__dataclass_fields__[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def resumed_fields() -> tuple[str, ...]:
    """The options a resumed run takes from its checkpoint (they define the model and its
    training); not the tokenizer: a path saved in a checkpoint is never opened."""
    return tuple(f.name for f in dataclasses.fields(TrainOptions) if f.metadata["resumed"])


# ---------------------------------------------------------------- the quickstart recipe

# The quickstart recipe (docs/RESULTS.md has the measurements behind it): a 4-layer model
# with a 3x MLP (at equal time it beat 4x: ~15% more steps) on the bundled corpus through a
# 1,024-piece BPE (each step covers ~2.2x the text of bytes),
# signed-constant frozen weights, small batches (at equal time, 16 x 128 beat 32 x 128 and
# 8 x 128). No evaluation inside the trainer: the packed artifact is scored once by
# load-and-eval, so 9.25 of the 10 minutes train.
QUICKSTART_MODEL: dict[str, Any] = dict(model_dim=192, num_layers=4, num_heads=4, num_kv_heads=4,
                                        mlp_mult=3, scale_mode="row", logit_softcap=30.0)


def quickstart_options(out: str, data: QuickstartData, *, log: str | None = None,
                       max_minutes: float = QUICKSTART_MINUTES) -> TrainOptions:
    """The README's first command: the bundled Shakespeare's training text and its BPE tokenizer
    (``text.quickstart.prepare_quickstart_data``), the held-out text as val data, the quickstart model."""
    return TrainOptions(data=[data.train], val_data=[data.val], tokenizer=data.tokenizer, out=out,
                        log=log, preset="small", model={**QUICKSTART_MODEL, "vocab_size": data.vocab_size},
                        mask="multibit:4", init="signed-constant", seq_len=128, batch_size=16,
                        max_minutes=max_minutes, eval_every=0, final_eval=False)
