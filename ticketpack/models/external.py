"""Architecture ``external``: tensors only (``{"arch": "external"}`` and an optional free-form
``info`` object); the model's code is the user's, so loading needs a skeleton module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # this record is checked by the fast commands, which load no torch
    import torch
    from torch import nn

from ..errors import HeaderError
from .gpt_config import ModelLimits

NAME = "external"
KEYS = ("arch", "info")


def check(config: dict, limits: ModelLimits) -> None:
    extra = sorted(set(config) - set(KEYS), key=str)
    if extra:
        raise HeaderError(f"config: unknown key {str(extra[0])[:60]!r} in an external record, "
                          f"expected {', '.join(KEYS)}")
    if "info" in config and not isinstance(config["info"], dict):
        raise HeaderError("config.info: expected a JSON object")


build = None  # no code to build it from: ticketpack.load(path, model=skeleton)


def record(model: nn.Module) -> dict[str, Any]:
    cls = type(model)
    return {"arch": NAME, "info": {"class": f"{cls.__module__}.{cls.__qualname__}"}}


def logits(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    return model(idx)


def vocab_size(config: dict) -> int | None:
    return None  # not recorded
