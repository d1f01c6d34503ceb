"""Recipe figures the command line shows in its help, importable without torch (train.py,
which holds the recipes themselves, imports torch)."""

from __future__ import annotations

# The quickstart's training time: 9.25 of its 10 minutes train (train.quickstart_options).
QUICKSTART_MINUTES = 9.25
