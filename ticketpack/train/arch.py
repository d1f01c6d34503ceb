"""``train --arch``: the trainer's view of a model of another architecture (a Hugging Face
causal LM) made a supermask, beside the built-in GPT's ``GPTConfig``.

``RecordConfig`` answers what the trainer asks a config (``mask_spec``, ``vocab_size``,
``to_dict``); ``to_dict`` is the architecture record that checkpoints and artifacts store
(models/hf.py), while the mask, scales and adapters are training options (a resumed run takes
them from its checkpoint). The preset's shape maps onto the architecture's own config keys;
``--model`` then overrides those keys (transformers' names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, TicketpackError
from ..format.maskspec import MaskSpec
from ..nn.mask_training import MaskTraining
from ..models.gpt_config import INIT_CHOICES, ModelLimits, config_from_preset
from ..models import hf
from ..nn.supermask import supermask
from .options import TrainOptions


@dataclass
class RecordConfig:
    """An architecture record and the masks trained over it."""

    record: dict
    mask: str = "binary"
    scale_mode: str = "none"
    adapter_rank: int = 0
    init: str | None = None  # None: the model family's own (supermask.default_init)

    def mask_spec(self) -> MaskSpec:
        return MaskSpec.parse(self.mask)

    @property
    def vocab_size(self) -> int:
        return hf.vocab_size(self.record) or 0

    def to_dict(self) -> dict[str, Any]:
        return self.record


def preset_keys(model_type: str, preset: dict[str, Any], seq_len: int) -> dict[str, Any]:
    """A GPT preset's shape in ``model_type``'s config keys (tied embeddings as the preset's)."""
    dim, layers, heads = preset["model_dim"], preset["num_layers"], preset["num_heads"]
    hidden, vocab = preset["mlp_mult"] * dim, preset["vocab_size"]
    if model_type == "gpt2":
        return dict(n_embd=dim, n_layer=layers, n_head=heads, n_inner=hidden, vocab_size=vocab,
                    n_positions=seq_len, bos_token_id=None, eos_token_id=None,
                    tie_word_embeddings=preset["tie_embeddings"])
    return dict(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                num_key_value_heads=preset["num_kv_heads"], intermediate_size=hidden, vocab_size=vocab,
                max_position_embeddings=seq_len, tie_word_embeddings=preset["tie_embeddings"],
                bos_token_id=None, eos_token_id=None)


def shaped_record(opts: TrainOptions, shape: dict[str, Any]) -> dict:
    """The record of ``opts.arch`` in ``shape`` (a GPT config's shape keys), ``--model`` over it."""
    hf_config = {**preset_keys(opts.arch, shape, opts.seq_len), **opts.model, "model_type": opts.arch}
    try:
        return hf.record_of_config(hf.hf_config_object({"arch": hf.NAME, "model_type": opts.arch,
                                                        "hf_config": hf_config}))
    except TicketpackError as exc:
        raise ConfigError(f"--model: {exc}") from None


def record_config(opts: TrainOptions, limits: ModelLimits, record: dict | None = None) -> RecordConfig:
    """The model ``--arch`` / ``--preset`` / ``--model`` describe (or a resumed ``record``),
    checked and bounded before anything is built (ConfigError: these are the user's flags)."""
    if record is None:
        record = shaped_record(opts, config_from_preset(opts.preset, limits).to_dict())  # the preset's full shape
    try:
        hf.check(record, limits)
    except TicketpackError as exc:
        raise ConfigError(f"--arch {record.get('model_type')}: {exc}") from None
    init = INIT_CHOICES[opts.init][0] if opts.init is not None else None
    return RecordConfig(record, mask=opts.mask or "binary", scale_mode=opts.scale_mode or "none",
                        adapter_rank=opts.adapter_rank or 0, init=init)


def build_record_model(config: RecordConfig, seed: int, device: torch.device,
                       training: MaskTraining | None) -> nn.Module:
    """The record's model made a supermask over frozen weights from ``seed`` (built on the CPU:
    the same scores on any device)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = hf.new_model(config.record).float()
    init_std = None
    if config.init == "normal_std":  # the model's own std
        init_std = config.record["hf_config"].get("initializer_range", 0.02)
    training = training or MaskTraining.for_mask(config.mask_spec())
    model = supermask(model, config.mask, seed=seed, init=config.init, init_std=init_std,
                      scale_mode=config.scale_mode, adapter_rank=config.adapter_rank,
                      estimator=training.estimator, density=training.density)
    return model.to(device)


def logits_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per token) under float32 logits, as ``GPT.loss``."""
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))

