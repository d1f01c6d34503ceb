"""Recipe figures the command line shows in its help, importable without torch or numpy
(the recipes themselves are in train/options.py)."""

from __future__ import annotations

# The quickstart's training time: 9.25 of its 10 minutes train (train_options.quickstart_options).
QUICKSTART_MINUTES = 9.25
