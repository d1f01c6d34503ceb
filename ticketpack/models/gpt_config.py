"""The built-in GPT's configuration: its schema, validation and the resources it implies.

Torch-free, so the format core can check an artifact's ``config`` before anything is built.
A config comes from untrusted places (an artifact header, a checkpoint, ``train --model``,
``import-pg --config``), so ``config_from_dict`` checks, in this order and before any
allocation: the object is a JSON object; no unknown key; each value's type (``bool`` is not
an integer, numbers are finite) and range from ``CONFIG_SCHEMA``; the fields fit together
(heads divide the width, ...); and the parameters and activations the config implies stay
under ``ModelLimits``, which a caller may raise. docs/FORMAT.md mirrors ``CONFIG_SCHEMA``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, TicketpackError
from ..format.constants import INIT_RECIPES, INIT_RULES, SCALE_MODES, STD_FROM_ENTRY
from ..format.maskspec import MaskSpec

ACTIVATIONS = ("relu", "relu2")
# Hugging Face built-in causal LMs an artifact may record (models/hf.py builds them) and the
# architectures ``train --arch`` offers: the built-in GPT and those.
HF_MODEL_TYPES = ("llama", "mistral", "qwen2", "gpt2")
TRAIN_ARCHES = ("gpt",) + HF_MODEL_TYPES


@dataclass(frozen=True)
class ConfigField:
    """One key of the config: its JSON type, default and allowed values."""

    name: str
    type: str  # "int" | "float" | "bool" | "str" | "float-or-null"
    default: Any
    low: float | None = None  # numbers: inclusive range
    high: float | None = None
    choices: tuple[str, ...] | None = None  # strings: allowed values (None: see ``doc``)
    doc: str = ""


# The format core's init rules the built-in GPT can use: every rule that computes its scale from
# the fans (normal_std takes a std per tensor entry, which this config has no field for).
INIT_RULE_NAMES = tuple(rule for rule, row in INIT_RULES.items() if row.fan != STD_FROM_ENTRY)
# ``train --init`` choices -> (init, mlp_fc_init, embed_init): every rule alone, and the recipes
INIT_CHOICES: dict[str, tuple[str, str, str]] = {**{rule: (rule,) * 3 for rule in INIT_RULE_NAMES},
                                                 **INIT_RECIPES}

# The schema, key by key, in the order FORMAT.md lists it. Ranges are hard limits of the
# built-in model; the resources a whole config implies are bounded by ModelLimits.
CONFIG_SCHEMA: tuple[ConfigField, ...] = (
    ConfigField("vocab_size", "int", 256, 1, 2**24, doc="tokens; 256 = the byte-level tokenizer"),
    ConfigField("num_layers", "int", 4, 1, 1024, doc="transformer blocks"),
    ConfigField("model_dim", "int", 256, 2, 2**16, doc="residual width C"),
    ConfigField("num_heads", "int", 4, 1, 4096, doc="query heads; model_dim / num_heads is even"),
    ConfigField("num_kv_heads", "int", 4, 1, 4096, doc="key/value heads; divides num_heads"),
    ConfigField("mlp_mult", "int", 2, 1, 64, doc="MLP hidden width = mlp_mult * model_dim"),
    ConfigField("mlp_activation", "str", "relu2", choices=ACTIVATIONS, doc="relu2 = relu squared"),
    ConfigField("tie_embeddings", "bool", True, doc="logits use the token embedding; no lm_head"),
    ConfigField("logit_softcap", "float", 0.0, 0.0, 1e4, doc="c * tanh(logits / c); 0 = off"),
    ConfigField("rope_base", "float", 10000.0, 1.0, 1e12, doc="rotary inv_freq = base^(-2i/head_dim)"),
    ConfigField("qk_norm", "bool", True, doc="RMS-normalise q and k per head before rotary"),
    ConfigField("rmsnorm_weight", "bool", False, doc="learnable RMSNorm gains"),
    ConfigField("embed_norm", "bool", True, doc="RMS-normalise the token embedding"),
    ConfigField("init", "str", "xavier_uniform", choices=INIT_RULE_NAMES,
                doc="frozen init rule of the linear layers"),
    ConfigField("mlp_fc_init", "str", "xavier_uniform", choices=INIT_RULE_NAMES,
                doc="frozen init rule of blocks.N.mlp.fc"),
    ConfigField("embed_init", "str", "xavier_uniform", choices=INIT_RULE_NAMES,
                doc="frozen init rule of tok_emb"),
    ConfigField("mask", "str", "binary",
                doc="binary | multibit:K (2 <= K <= 256) | nm:N:M (0 < N < M <= 256) | none (no mask) "
                    "| signed:K (levels -(K-1)..K-1, 2 <= K <= 128)"),
    ConfigField("scale_mode", "str", "none", choices=SCALE_MODES, doc="learned scale of each masked layer"),
    ConfigField("block_scales", "bool", True, doc="per-block attn_scale / mlp_scale vectors"),
    ConfigField("head_scales", "bool", True, doc="per-head attention output scales"),
    ConfigField("pre_logit_scale", "bool", True, doc="pre_logit_scale vector"),
    ConfigField("adapter_rank", "int", 0, 0, 4096,
                doc="rank r of the low-rank adapter B @ A added to every masked weight (A: r x in, "
                    "B: out x r); 0 = none"),
)
SCHEMA = {f.name: f for f in CONFIG_SCHEMA}
# Keys that configs written before the training settings left the config still carry (how
# the mask was trained: see mask_training.MaskTraining). Readers check their type and drop them.
LEGACY_TRAINING_KEYS: tuple[ConfigField, ...] = (
    ConfigField("mask_estimator", "str", ""),
    ConfigField("mask_density", "float-or-null", None, 0.0, 1.0),
)
LEGACY = {f.name: f for f in LEGACY_TRAINING_KEYS}


@dataclass(frozen=True)
class ModelLimits:
    """Bounds on what a config may ask for, checked before anything is built; raise them for
    bigger models. ``max_parameters`` counts every weight, masked or plain (``parameter_count``);
    ``max_activations_per_token`` bounds ``activations_per_token``, the floats a training step
    keeps for each token of a batch (so a batch of B x T tokens needs about 4 * B * T times that
    in bytes)."""

    max_parameters: int = 2**28
    max_activations_per_token: int = 2**21


DEFAULT_MODEL_LIMITS = ModelLimits()


@dataclass
class GPTConfig:
    """The built-in GPT's shape and options; ``CONFIG_SCHEMA`` documents each field."""

    vocab_size: int = 256
    num_layers: int = 4
    model_dim: int = 256
    num_heads: int = 4
    num_kv_heads: int = 4
    mlp_mult: int = 2
    mlp_activation: str = "relu2"
    tie_embeddings: bool = True
    logit_softcap: float = 0.0
    rope_base: float = 10000.0
    qk_norm: bool = True
    rmsnorm_weight: bool = False
    embed_norm: bool = True
    init: str = "xavier_uniform"
    mlp_fc_init: str = "xavier_uniform"
    embed_init: str = "xavier_uniform"
    mask: str = "binary"
    scale_mode: str = "none"
    block_scales: bool = True
    head_scales: bool = True
    pre_logit_scale: bool = True
    adapter_rank: int = 0

    def __post_init__(self) -> None:
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return self.mlp_mult * self.model_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def mask_spec(self) -> MaskSpec:
        return MaskSpec.parse(self.mask)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> "GPTConfig":
        """A config from JSON; see ``config_from_dict``."""
        return config_from_dict(data, limits)

    def validate(self) -> None:
        """Types and ranges of every field, then how they fit together (ConfigError)."""
        for f in CONFIG_SCHEMA:
            setattr(self, f.name, _check_value(f, getattr(self, f.name)))
        if self.model_dim % self.num_heads:
            raise ConfigError(f"model_dim: {self.model_dim}, expected a multiple of num_heads={self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_kv_heads: {self.num_kv_heads}, expected a divisor of num_heads={self.num_heads}")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim: {self.head_dim} (model_dim / num_heads), expected an even number")
        spec = self.mask_spec()
        if spec.kind == "nm" and (self.model_dim % spec.m or self.mlp_hidden % spec.m):
            raise ConfigError(f"mask {self.mask}: model_dim {self.model_dim} and MLP width "
                              f"{self.mlp_hidden}, expected multiples of M={spec.m}")

    def check_bounds(self, limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> None:
        """Refuse a config whose parameters or activations exceed ``limits`` (ConfigError)."""
        params = parameter_count(self)
        if params > limits.max_parameters:
            raise ConfigError(f"{params:,} parameters, the bound is {limits.max_parameters:,} "
                              f"(raise it with --max-elements or TICKETPACK_MAX_ELEMENTS)")
        acts = activations_per_token(self)
        if acts > limits.max_activations_per_token:
            raise ConfigError(f"{acts:,} activations per token, the bound is "
                              f"{limits.max_activations_per_token:,} (raise it with --max-activations "
                              f"or TICKETPACK_MAX_ACTIVATIONS)")


def _check_value(f: ConfigField, value: Any) -> Any:
    """``value`` checked against field ``f``: returned as stored (JSON 30 -> 30.0 for floats)."""
    if f.type == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{f.name}: {_show(value)}, expected true or false")
        return value
    if f.type == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{f.name}: {_show(value)}, expected a string")
        if f.choices is not None and value not in f.choices:
            raise ConfigError(f"{f.name}: {_show(value)}, expected one of "
                              f"{', '.join(repr(c) for c in f.choices)}")
        return value
    if f.type == "float-or-null" and value is None:
        return None
    if f.type == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not f.low <= value <= f.high:
            raise ConfigError(f"{f.name}: {_show(value)}, expected an integer in {f.low}..{f.high}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise ConfigError(f"{f.name}: {_show(value)}, expected a finite number")
    low_open = f.type == "float-or-null"  # a density of 0 keeps nothing
    if not (f.low < value if low_open else f.low <= value) or not value <= f.high:
        bracket = "(" if low_open else "["
        raise ConfigError(f"{f.name}: {_show(value)}, expected a number in {bracket}{f.low:g}, {f.high:g}]")
    return float(value)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({type(value).__name__} of {len(text):,} chars)"


def gpt_keys(config: dict) -> dict:
    """The built-in GPT's own keys of a config: the record without its ``arch`` (absent or
    ``gpt``, docs/FORMAT.md 2.2)."""
    return {k: v for k, v in config.items() if k != "arch"}


def config_from_dict(data: Any, limits: ModelLimits = DEFAULT_MODEL_LIMITS, *,
                     error: type[TicketpackError] = ConfigError, where: str = "model config",
                     ignore_unknown: bool = False) -> GPTConfig:
    """A validated, bounded GPTConfig from JSON-like data; missing keys take their defaults.

    Every failure raises ``error`` (ConfigError for a user's own flags; the artifact and
    checkpoint readers pass their malformed-content classes) with a message naming the key.
    ``ignore_unknown``: skip keys outside the schema (format-1 artifacts had free-form configs).
    Legacy training keys (``LEGACY_TRAINING_KEYS``) are type-checked and dropped.
    """
    try:
        if not isinstance(data, dict):
            raise ConfigError(f"{type(data).__name__}, expected a JSON object")
        for key in LEGACY.keys() & data.keys():
            _check_value(LEGACY[key], data[key])
        unknown = sorted((k for k in data if k not in SCHEMA and k not in LEGACY), key=str)
        if unknown and not ignore_unknown:
            raise ConfigError(f"unknown key {_show(unknown[0])}, expected one of {', '.join(SCHEMA)}")
        config = GPTConfig(**{k: v for k, v in data.items() if k in SCHEMA})
        config.check_bounds(limits)
        return config
    except ConfigError as exc:
        raise error(f"{where}: {exc}") from None


def split_training_keys(config: dict) -> tuple[dict, dict]:
    """(``config`` without the legacy training keys, those keys): what an artifact written now
    stores as its config, and what the trainer's provenance records instead."""
    return ({k: v for k, v in config.items() if k not in LEGACY},
            {k: v for k, v in config.items() if k in LEGACY})


def parameter_count(c: GPTConfig) -> int:
    """Every weight the config's model holds: embedding, blocks, norms, scales, untied head."""
    C, V, H = c.model_dim, c.vocab_size, c.num_heads
    attention = 2 * C * C + 2 * C * c.kv_dim + (H if c.head_scales else 0)
    block = (attention + 2 * C * c.mlp_hidden + (2 * C if c.block_scales else 0)
             + (2 * C if c.rmsnorm_weight else 0))
    norms = ((1 + c.embed_norm) * C if c.rmsnorm_weight else 0) + (C if c.pre_logit_scale else 0)
    heads = 1 if c.tie_embeddings else 2
    adapters = c.adapter_rank * ((V + C) * heads + c.num_layers * (
        2 * (C + C) + 2 * (C + c.kv_dim) + 2 * (C + c.mlp_hidden)))
    return V * C * heads + c.num_layers * block + norms + adapters


def activations_per_token(c: GPTConfig) -> int:
    """Floats per token a training step keeps (an estimate, documented in SECURITY.md): per block
    the normalised inputs, q/k/v, the attention output and the MLP's hidden values; then the
    final norm and the logits with their gradient."""
    per_block = 8 * c.model_dim + 2 * c.kv_dim + 3 * c.mlp_hidden
    return c.num_layers * per_block + 2 * c.model_dim + 3 * c.vocab_size


PRESETS: dict[str, dict[str, Any]] = {
    # seconds on CPU: smoke tests
    "tiny": dict(num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, mlp_mult=2),
    # the quickstart scale: a few minutes on 2 CPU cores
    "small": dict(num_layers=4, model_dim=256, num_heads=4, num_kv_heads=4, mlp_mult=2),
    # the parameter-golf lottery-ticket submission's defaults
    "pg-lth": dict(vocab_size=1024, num_layers=16, model_dim=1024, num_heads=8, num_kv_heads=4,
                   mlp_mult=2, mlp_activation="relu", tie_embeddings=True, logit_softcap=30.0,
                   rope_base=10000.0, qk_norm=True, rmsnorm_weight=False, embed_norm=True,
                   init="xavier_uniform", mlp_fc_init="he_uniform", embed_init="xavier_uniform",
                   mask="binary", scale_mode="none", block_scales=True, head_scales=True,
                   pre_logit_scale=True),
}


def config_from_preset(name: str, limits: ModelLimits = DEFAULT_MODEL_LIMITS, **overrides: Any) -> GPTConfig:
    """A preset's config with some fields replaced (validated and bounded)."""
    if name not in PRESETS:
        raise ConfigError(f"preset: {name!r}, expected one of {', '.join(PRESETS)}")
    return config_from_dict({**PRESETS[name], **overrides}, limits)

