"""When the format core runs its numba kernels instead of numpy (the same bits either way).

Importing numba and loading its compiled kernels costs about 0.3 s and 100 MB of memory
(measured: ``verify`` of the quickstart artifact peaks at 157 MB with them, 51 MB without):
more than a small artifact takes to decode in numpy. A kernel module loads on the first job
whose estimated numpy time, added to the numpy time this process already spent, exceeds
``NUMPY_BUDGET_SECONDS``, so a run never pays much more than the better of the two choices
(the ski-rental rule, the budget a little above numba's cost because of its memory); once
numba is loaded every later job uses it. ``TICKETPACK_NUMBA=always`` or ``never`` overrides the choice (tests, benches).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType

NUMPY_BUDGET_SECONDS = 0.4
# Measured numpy costs (2-core CPU): one sequential step of an rANS stream (every lane decodes
# one symbol), and one Philox word turned into a value.
RANS_STEP_SECONDS = 5e-6
PHILOX_WORD_SECONDS = 3e-8
ENV = "TICKETPACK_NUMBA"
LAZY = object()  # a kernel slot not decided yet

_lock = threading.Lock()
_loaded: dict[str, ModuleType | None] = {}  # kernel module -> module, or None: not importable
_spent = 0.0


def numba_kernels(module: str, numpy_seconds: float) -> ModuleType | None:
    """The numba kernel module ``module`` (``philox_numba``, ``rans_numba``) for a job numpy
    would take ``numpy_seconds`` on, or None: run this job in numpy."""
    global _spent
    with _lock:
        if module in _loaded:
            return _loaded[module]
        mode = os.environ.get(ENV, "auto")
        if mode == "never":
            return None
        paid = "numba" in sys.modules or mode == "always"
        if not paid and _spent + numpy_seconds <= NUMPY_BUDGET_SECONDS:
            _spent += numpy_seconds
            return None
        _loaded[module] = _import(module)
        return _loaded[module]


def _import(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"{__package__}.{module}")
    except ImportError:  # numba is optional
        return None


def numba_available() -> bool:
    """Whether the numba kernels can run here (imports numba to find out)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True
