"""ticketpack: language models stored as a seed, masks and a few scales.

The own-model API (``supermask``, ``param_groups``, ``save``, ``load``, ``load_state_dict``,
``round_like_artifact``, ``export_hf``) lives in ``ticketpack.own``; its names are loaded on
first use, so ``import ticketpack`` (and the torch-free format core under it) imports no torch.
"""

from .version import __version__  # noqa: F401 (the package version)

_OWN_API = ("supermask", "param_groups", "save", "load", "load_state_dict", "round_like_artifact",
            "export_hf")


def __getattr__(name: str):
    if name in _OWN_API:
        from . import own

        return getattr(own, name)
    raise AttributeError(f"module 'ticketpack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_OWN_API))
