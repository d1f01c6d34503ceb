"""The quickstart's data: the bundled corpus cut by bytes into training text and held-out text,
and a SentencePiece BPE tokenizer trained on the training text alone.

The cut is by bytes, not tokens, so the held-out text is the same last 10% of the corpus
whatever the tokenizer (the byte-level quickstart scored exactly these bytes). The tokenizer
never sees the held-out text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..atomic import atomic_write_bytes
from .corpus import VAL_FRACTION, bundled_corpus_path, held_out_count, read_corpus
from ..errors import ConfigError
from .tokenizer import train_sentencepiece

# The quickstart's tokenizer: a SentencePiece BPE with this many pieces, trained on the
# bundled corpus's training text (docs/RESULTS.md has the choice).
QUICKSTART_VOCAB = 1024


@dataclass(frozen=True)
class QuickstartData:
    """Paths of the prepared files, and their sizes."""

    train: str  # the training text (UTF-8)
    val: str  # the held-out text
    tokenizer: str  # the SentencePiece .model trained on ``train``
    vocab_size: int
    train_bytes: int
    val_bytes: int


def split_point(raw: bytes, val_fraction: float = VAL_FRACTION) -> int:
    """The byte offset where the held-out tail starts: as many bytes from the end as the token
    split holds out tokens (``text.corpus.held_out_count``), moved back to the start of a UTF-8
    character if it falls inside one."""
    cut = len(raw) - held_out_count(len(raw), val_fraction)
    while 0 < cut < len(raw) and raw[cut] & 0xC0 == 0x80:  # a continuation byte
        cut -= 1
    return cut


def prepare_quickstart_data(out_dir: str | os.PathLike, vocab_size: int = QUICKSTART_VOCAB,
                            corpus: str | os.PathLike | None = None) -> QuickstartData:
    """Write ``train.txt``, ``val.txt`` and ``tokenizer.model`` into ``out_dir`` (each atomically)."""
    raw = read_corpus([corpus or bundled_corpus_path()])
    cut = split_point(raw)
    if cut == 0 or cut == len(raw):
        raise ConfigError(f"corpus: {len(raw)} bytes, too short to hold out {VAL_FRACTION:.0%}")
    os.makedirs(out_dir, exist_ok=True)
    train_path, val_path = os.path.join(out_dir, "train.txt"), os.path.join(out_dir, "val.txt")
    atomic_write_bytes(train_path, raw[:cut])
    atomic_write_bytes(val_path, raw[cut:])
    tok_path = train_sentencepiece(train_path, os.path.join(out_dir, "tokenizer"), vocab_size)
    return QuickstartData(train_path, val_path, tok_path, vocab_size, cut, len(raw) - cut)
