"""``train --arch ... --budget``: the shape of the Hugging Face model a byte budget buys.

The search is ``shape_budget.fill``'s, over the built-in GPT's shape keys (width, depth,
heads, key/value heads, MLP ratio, adapter rank), each mapped onto the architecture's own
config keys as a preset is (``arch.preset_keys``: the intermediate size is MLP ratio x width).
A shape's bytes are measured on the converted model itself: the model of that shape is built
on the meta device (nothing allocated), made a supermask with the run's mask, scales, adapters
and init, and its stored tensors become a worst-case stand-in ticket (``shape_budget.stand_in``)
that is packed. A shape key that ``--model`` sets is fixed: a shape that moves it is no
candidate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..errors import ConfigError, TicketpackError
from ..models import hf
from ..models.gpt_config import ModelLimits, config_from_dict, config_from_preset
from ..nn.layers import MASKED_PARTS, masked_layers
from ..nn.mask_training import MaskTraining
from ..nn.supermask import supermask
from .arch import RecordConfig, shaped_record
from .options import TrainOptions
from .shape_budget import (ShapeChoice, StoredTensor, fill, mask_bits, packed_bytes, stand_in,
                           tensors_bytes)

# the GPT shape key each architecture's config key stands for (``arch.preset_keys``)
GPT2_KEYS = {"n_embd": "model_dim", "n_layer": "num_layers", "n_head": "num_heads", "n_inner": "mlp_mult"}
LLAMA_KEYS = {"hidden_size": "model_dim", "num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
              "num_key_value_heads": "num_kv_heads", "intermediate_size": "mlp_mult"}


def shape_keys(model_type: str) -> dict[str, str]:
    return GPT2_KEYS if model_type == "gpt2" else LLAMA_KEYS


def template(opts: TrainOptions, config: RecordConfig, limits: ModelLimits) -> dict[str, Any]:
    """The recipe as a GPT config: the record's shape (preset, then ``--model``), the run's mask,
    scales and adapters (the search keeps its head width, key/value grouping and MLP ratio)."""
    c = config.record["hf_config"]
    names = {gpt: key for key, gpt in shape_keys(opts.arch).items()}
    dim, heads = c[names["model_dim"]], c[names["num_heads"]]
    kv = c.get(names.get("num_kv_heads", ""), None) or heads
    inner = c.get(names["mlp_mult"]) or 4 * dim  # gpt2: n_inner None means 4 x n_embd
    preset = config_from_preset(opts.preset, limits).to_dict()
    out = {**preset, "model_dim": dim, "num_layers": c[names["num_layers"]], "num_heads": heads,
           "num_kv_heads": kv, "vocab_size": config.vocab_size, "mask": config.mask,
           "scale_mode": config.scale_mode, "adapter_rank": config.adapter_rank,
           "tie_embeddings": bool(c.get("tie_word_embeddings", preset["tie_embeddings"])),
           "mlp_mult": inner // dim if inner % dim == 0 else preset["mlp_mult"]}
    return config_from_dict(out, limits).to_dict()


class ArchShapes:
    """What a shape of ``opts.arch`` stores and costs, shape by shape (each built once)."""

    def __init__(self, opts: TrainOptions, config: RecordConfig, limits: ModelLimits, training: MaskTraining,
                 template: dict[str, Any]):
        self.opts, self.config, self.limits, self.training, self.template = opts, config, limits, training, template
        self.fixed = {shape_keys(opts.arch)[k] for k in opts.model if k in shape_keys(opts.arch)}
        self.bits = mask_bits(template, training)
        self._tensors: dict[tuple, tuple[dict, list[StoredTensor]]] = {}

    def record_config(self, shape: dict[str, Any]) -> RecordConfig:
        """The run's config in ``shape`` (``ConfigError`` when the shape moves a fixed key or
        the model does not fit the limits)."""
        moved = sorted(k for k in self.fixed if shape[k] != self.template[k])
        if moved:
            raise ConfigError(f"shape: moves {', '.join(moved)}, which --model sets")
        record = shaped_record(self.opts, shape)
        return dataclasses.replace(self.config, record=record, adapter_rank=shape["adapter_rank"])

    def tensors(self, shape: dict[str, Any]) -> tuple[dict, list[StoredTensor]]:
        """(record, stored tensors in a ticket's order) of the converted model of ``shape``."""
        key = tuple(sorted((k, str(v)) for k, v in shape.items()))
        if key not in self._tensors:
            config = self.record_config(shape)
            try:
                model = hf.meta_model(config.record, self.limits)
            except TicketpackError as exc:  # over the limits: no candidate
                raise ConfigError(str(exc)) from None
            self._tensors[key] = config.record, converted_tensors(model, config, self.training)
        return self._tensors[key]

    def estimate(self, shape: dict[str, Any]) -> float:
        return tensors_bytes(self.tensors(shape)[1], self.bits, self.config.scale_mode, self.opts.adapter_dtype)

    def measure(self, shape: dict[str, Any]) -> int:
        record, tensors = self.tensors(shape)
        ticket = stand_in(tensors, record, self.config.mask_spec(), self.training, self.config.scale_mode,
                          adapter_dtype=self.opts.adapter_dtype)
        return packed_bytes(ticket)

    def count(self, shape: dict[str, Any]) -> int:
        return sum(math.prod(t.shape) for t in self.tensors(shape)[1] if t.kind == "masked")


def converted_tensors(model: torch.nn.Module, config: RecordConfig, training: MaskTraining) -> list[StoredTensor]:
    """The tensors a ticket of ``model`` (on the meta device) made a supermask holds, in
    ``ticket_from_model``'s order: masked weights each followed by its adapters, then the rest."""
    init_std = config.record["hf_config"].get("initializer_range", 0.02) if config.init == "normal_std" else None
    with torch.device("meta"):
        supermask(model, config.mask, seed=0, init=config.init, init_std=init_std, scale_mode=config.scale_mode,
                  adapter_rank=config.adapter_rank, estimator=training.estimator, density=training.density)
    out, owned = [], set()
    for path, layer in masked_layers(model):
        prefix = f"{path}." if path else ""
        owned.update(f"{prefix}{p}" for p in MASKED_PARTS)
        out.append(StoredTensor(layer.tensor_name, "masked", tuple(layer.shape), layer.init, layer.layout,
                                layer.init_std))
        out += [StoredTensor(f"{prefix}{role}", "adapter", tuple(getattr(layer, role).shape))
                for role in ("adapter_a", "adapter_b") if getattr(layer, role, None) is not None]
    out += [StoredTensor(name, "plain", tuple(p.shape)) for name, p in model.named_parameters() if name not in owned]
    return out


def budget_record_config(opts: TrainOptions, config: RecordConfig, limits: ModelLimits,
                         training: MaskTraining) -> tuple[RecordConfig, ShapeChoice]:
    """The fullest shape of ``opts.arch`` whose packed artifact fits ``opts.byte_budget``
    (``shape_budget.fill``); BudgetExceededError when even the smallest does not."""
    recipe = template(opts, config, limits)
    arch = ArchShapes(opts, config, limits, training, recipe)
    arch.tensors(recipe)  # what no shape can fix (e.g. adapters on a Conv1D) fails here, once
    choice = fill(recipe, opts.byte_budget, measure=arch.measure, estimate=arch.estimate, count=arch.count,
                  adapter_dtype=opts.adapter_dtype, training=training, depth=opts.budget_layers)
    return arch.record_config(choice.config), choice
