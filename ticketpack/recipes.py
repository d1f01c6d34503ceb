"""Recipe figures the command line shows in its help, importable without torch or numpy
(the recipes themselves are in train_options.py)."""

from __future__ import annotations

# The quickstart's training time: 9.25 of its 10 minutes train (train_options.quickstart_options).
QUICKSTART_MINUTES = 9.25

# The quickstart's tokenizer: a SentencePiece BPE with this many pieces, trained on the
# bundled corpus's training text (ticketpack.quickstart_data; docs/RESULTS.md has the choice).
QUICKSTART_VOCAB = 1024
