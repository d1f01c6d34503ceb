"""Architecture records by name, torch-free (docs/FORMAT.md 2.2): which architecture a config
names and its bounded check. ``verify`` and the other fast commands check a record here without
torch; the transformers record's module (hf.py) loads torch and transformers when it is named.
Adding an architecture is one module and one line in ``ARCH_MODULES``."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from ..errors import HeaderError
from .gpt_config import DEFAULT_MODEL_LIMITS, ModelLimits

# config["arch"] -> the module under ticketpack/models/ that implements it
ARCH_MODULES = {"gpt": "gpt", "transformers": "hf", "external": "external"}
DEFAULT_ARCH = "gpt"  # a config without "arch"


def arch_module(name: str) -> ModuleType:
    """The module of architecture ``name`` (a key of ARCH_MODULES)."""
    return import_module(f"{__package__}.{ARCH_MODULES[name]}")


def architecture(config: object) -> ModuleType:
    """The architecture module a config names (HeaderError for anything else)."""
    if not isinstance(config, dict):
        raise HeaderError(f"config: {type(config).__name__}, expected a JSON object")
    name = config.get("arch", DEFAULT_ARCH)
    if not isinstance(name, str) or name not in ARCH_MODULES:
        raise HeaderError(f"config.arch: {str(name)[:60]!r}, expected one of {', '.join(ARCH_MODULES)}")
    return arch_module(name)


def check_config(config: object, limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> None:
    """An artifact's config: its record valid and the model it implies within ``limits``."""
    architecture(config).check(config, limits)
