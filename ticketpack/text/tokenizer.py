"""Tokenizers with per-token byte accounting for bits per byte.

Two tokenizers share one small interface (``Tokenizer``):

- ``ByteTokenizer``: byte b is token id b (vocabulary 256); nothing is inserted.
- ``SentencePieceTokenizer``: wraps a SentencePiece ``.model`` file (e.g. parameter
  golf's 1024-piece BPE).

``byte_counts(ids, prev_id)`` says how many bytes of text each token stands for, so
that val_bpb = total nats / ln 2 / total bytes. For SentencePiece it follows the
official parameter-golf scorer exactly:

- a normal piece counts the UTF-8 length of its text without the leading "▁" (U+2581),
  plus 1 for that leading space unless the previous token is a boundary token
  (control, unknown or unused: BOS/EOS, <unk>);
- a byte-fallback piece ``<0xNN>`` counts 1 byte;
- control, unknown and unused pieces count 0 bytes.

The official scorer never scores the first token of a stream (it is only context), so it
never needs a rule for "no previous token". We treat a missing previous token like BOS
(no +1): a text's first "▁" is SentencePiece's dummy prefix, not a byte of the text, so
the bytes counted over ``encode(text)`` equal ``len(text.encode())`` for any text the
model's normaliser leaves unchanged.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import DataError

SPACE_MARK = "\u2581"  # SentencePiece's visible space, "▁"


@runtime_checkable
class Tokenizer(Protocol):
    """What data loading, training and evaluation need from a tokenizer."""

    name: str  # recorded in artifacts and logs: "bytes" or "sentencepiece:<sha256>"
    vocab_size: int
    bos_id: int | None  # inserted before each document by data.load_tokens; None = none

    def encode(self, text: str) -> np.ndarray: ...
    def decode(self, ids) -> str: ...
    def byte_counts(self, ids: np.ndarray, prev_id: int | None = None) -> np.ndarray: ...
    def identity(self) -> dict: ...


class ByteTokenizer:
    """Byte b -> id b; vocabulary 256; inserts nothing; every token is one byte."""

    name = "bytes"
    vocab_size = 256
    bos_id = None

    def encode(self, text: str) -> np.ndarray:
        return self.encode_bytes(text.encode("utf-8"))

    def encode_bytes(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8).astype(np.int32)

    def decode(self, ids) -> str:
        ids = _check_ids(ids, self.vocab_size)
        return ids.astype(np.uint8).tobytes().decode("utf-8", errors="replace")

    def byte_counts(self, ids: np.ndarray, prev_id: int | None = None) -> np.ndarray:
        ids = _check_ids(ids, self.vocab_size)
        return np.ones(len(ids), dtype=np.int32)

    def identity(self) -> dict:
        """The artifact's ``eval.tokenizer`` entry for this tokenizer."""
        return {"kind": "bytes"}


class SentencePieceTokenizer:
    """A SentencePiece model with the parameter-golf byte accounting (see module doc)."""

    def __init__(self, model_path: str | os.PathLike):
        import sentencepiece as spm  # imported here: only SentencePiece users pay for it

        path = Path(model_path)
        data = _read_model_file(path)
        try:  # a corrupt model can also hold pieces that are not UTF-8 (UnicodeDecodeError)
            self.sp = spm.SentencePieceProcessor(model_proto=data)
            if int(self.sp.get_piece_size()) < 1:
                raise DataError(f"tokenizer {path}: a SentencePiece model without pieces")
            self.vocab_size = int(self.sp.vocab_size())
            bos = int(self.sp.bos_id())
            self.base_bytes, self.has_leading_space, self.is_boundary = _piece_tables(self.sp)
        except (RuntimeError, OSError, ValueError):
            raise DataError(f"tokenizer {path}: not a valid SentencePiece model file") from None
        self.path = str(path)
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.name = f"sentencepiece:{self.sha256}"
        self.bos_id = bos if bos >= 0 else None

    def identity(self) -> dict:
        """The artifact's ``eval.tokenizer`` entry: the .model file's SHA-256 and vocabulary."""
        return {"kind": "sentencepiece", "sha256": self.sha256, "vocab_size": self.vocab_size}

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.sp.encode(text), dtype=np.int32)

    def decode(self, ids) -> str:
        ids = _check_ids(ids, self.vocab_size)
        return self.sp.decode([int(i) for i in ids])

    def byte_counts(self, ids: np.ndarray, prev_id: int | None = None) -> np.ndarray:
        ids = _check_ids(ids, self.vocab_size)
        if len(ids) == 0:
            return np.zeros(0, dtype=np.int32)
        # The token before ids[0] is prev_id; None behaves like BOS (see module doc).
        if prev_id is None:
            first_prev_boundary = True
        else:
            first_prev_boundary = bool(self.is_boundary[_check_ids([prev_id], self.vocab_size)[0]])
        prev_boundary = np.empty(len(ids), dtype=bool)
        prev_boundary[0] = first_prev_boundary
        prev_boundary[1:] = self.is_boundary[ids[:-1]]
        space = self.has_leading_space[ids] & ~prev_boundary
        return (self.base_bytes[ids] + space).astype(np.int32)


MAX_MODEL_BYTES = 64 * 2**20  # real SentencePiece models are a few MB at most


def _read_model_file(path: Path) -> bytes:
    """The .model file's bytes: a non-empty regular file under the cap (never a device or FIFO,
    which could be read forever)."""
    if not path.exists():
        raise DataError(f"tokenizer: file {path} does not exist")
    if path.is_dir():
        raise DataError(f"tokenizer: {path} is a directory, expected a SentencePiece .model file")
    if not path.is_file():
        raise DataError(f"tokenizer: {path} is not a regular file, expected a SentencePiece .model file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise DataError(f"tokenizer {path}: cannot read ({exc.strerror})") from None
    if not data:
        raise DataError(f"tokenizer {path}: the file is empty, expected a SentencePiece .model file")
    if len(data) > MAX_MODEL_BYTES:
        raise DataError(f"tokenizer {path}: larger than {MAX_MODEL_BYTES:,} B, expected a SentencePiece "
                        f".model file")
    return data


def _piece_tables(sp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-id (base bytes, has leading space, is boundary), as the official scorer builds them."""
    n = int(sp.vocab_size())
    base = np.zeros(n, dtype=np.int32)
    lead = np.zeros(n, dtype=bool)
    boundary = np.ones(n, dtype=bool)
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue  # 0 bytes, and the next token's leading space is not counted
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1  # <0xNN> stands for exactly one byte (not len("<0xNN>"))
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith(SPACE_MARK):
            lead[i] = True
            piece = piece[1:]
        # An interior "▁" would count 3 bytes here, as in the official scorer; models
        # trained with the default split_by_whitespace have none.
        base[i] = len(piece.encode("utf-8"))
    return base, lead, boundary


def _check_ids(ids, vocab_size: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise DataError(f"token ids: got shape {ids.shape}, expected a 1-D array")
    if ids.dtype.kind not in "iu":
        raise DataError(f"token ids: got dtype {ids.dtype}, expected integers")
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        bad = int(ids.max()) if int(ids.max()) >= vocab_size else int(ids.min())
        raise DataError(f"token id: got {bad}, expected 0..{vocab_size - 1}")
    return ids


def load_tokenizer(spec: str | None) -> ByteTokenizer | SentencePieceTokenizer:
    """None or "bytes" -> ByteTokenizer; a path to a SentencePiece .model -> SentencePieceTokenizer."""
    if spec is None or spec == "bytes":
        return ByteTokenizer()
    return SentencePieceTokenizer(spec)


def train_sentencepiece(text_path: str | os.PathLike, out_prefix: str | os.PathLike,
                        vocab_size: int, byte_fallback: bool = True) -> str:
    """Train a small SentencePiece BPE model on a UTF-8 text file; write ``out_prefix``.model
    atomically and return its path.

    Identity normalisation and no whitespace folding, so that decode(encode(text)) == text
    and the byte accounting equals the text's UTF-8 length. The text goes in line by line
    (the sentences BPE counts pairs within) and the model comes back as bytes, so no path is
    recorded in it: one thread, the same text and vocabulary give a byte-identical file.
    """
    import io

    import sentencepiece as spm

    from ..atomic import atomic_write_bytes

    path = Path(text_path)
    if not path.is_file():
        raise DataError(f"tokenizer training text: file {text_path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"tokenizer training text {text_path}: not UTF-8 (invalid byte at offset "
                        f"{exc.start})") from None
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, model_type="bpe",
            vocab_size=vocab_size, byte_fallback=byte_fallback, character_coverage=1.0,
            normalization_rule_name="identity", remove_extra_whitespaces=False,
            split_digits=True, num_threads=1, minloglevel=2,
        )
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
        raise DataError(f"tokenizer training: sentencepiece failed ({first_line})") from None
    out = f"{out_prefix}.model"
    atomic_write_bytes(out, model.getvalue())
    return out
