"""Architecture ``gpt`` (the record absent or ``"arch": "gpt"``): the built-in GPT, config as
model_config.CONFIG_SCHEMA; every artifact written before architecture records loads here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import HeaderError
from .gpt_config import ModelLimits, config_from_dict, gpt_keys

if TYPE_CHECKING:  # the record's check runs in the fast commands, which load no torch
    import torch
    from torch import nn

NAME = "gpt"


def check(config: dict, limits: ModelLimits) -> None:
    # keys outside the schema are left to the builder: format-1 configs were free-form
    config_from_dict(gpt_keys(config), limits, error=HeaderError, where="config", ignore_unknown=True)


def meta_model(config: dict, limits: ModelLimits) -> nn.Module:
    from .gpt_model import dense_gpt_on_meta

    return dense_gpt_on_meta(config_from_dict(gpt_keys(config), limits, error=HeaderError, where="config"))


def build(config: dict, state: dict[str, torch.Tensor], limits: ModelLimits) -> nn.Module:
    from ..ticket import gpt_from_state

    return gpt_from_state(gpt_keys(config), state, limits)


def record(model: nn.Module) -> dict[str, Any] | None:
    from .gpt_model import GPT

    return model.config.to_dict() if isinstance(model, GPT) else None


def logits(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    return model(idx)


def vocab_size(config: dict) -> int | None:
    value = config.get("vocab_size")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
