"""Tokenizers: byte ids, and SentencePiece byte accounting as the parameter-golf scorer does it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketpack.text.corpus import bundled_corpus_path, read_text_file
from ticketpack.errors import DataError
from ticketpack.text.tokenizer import (ByteTokenizer, SentencePieceTokenizer, Tokenizer, load_tokenizer,
                                       train_sentencepiece)
from tests.tiny import corpus_slice



# ---------------------------------------------------------------- bytes


def test_byte_tokenizer_maps_byte_b_to_id_b():
    tok = ByteTokenizer()
    every_byte = bytes(range(256))
    assert tok.encode_bytes(every_byte).tolist() == list(range(256))
    assert tok.vocab_size == 256 and tok.bos_id is None and tok.name == "bytes"
    assert tok.encode("héllo").tolist() == list("héllo".encode())
    assert tok.decode(tok.encode("héllo 😀")) == "héllo 😀"
    assert tok.byte_counts(tok.encode_bytes(every_byte)).tolist() == [1] * 256
    assert isinstance(tok, Tokenizer)


def test_byte_tokenizer_rejects_ids_out_of_range():
    with pytest.raises(DataError, match="token id: got 256"):
        ByteTokenizer().decode(np.array([1, 256]))
    with pytest.raises(DataError, match="token id: got -1"):
        ByteTokenizer().byte_counts(np.array([-1]))


# ---------------------------------------------------------------- SentencePiece byte accounting

TEXTS = [
    "Now, fair Hippolyta, our nuptial hour",
    "  two leading spaces",
    "multiple   spaces    inside",
    "trailing spaces   ",
    "new\nlines\n\nand a blank line\n",
    "\n starts with a newline",
    "emoji 😀 and CJK 中文 not in the training slice",
    "tabs\tand\r\ncarriage returns",
    " ",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_bytes_counted_equal_utf8_length(sp, text):
    ids = sp.encode(text)
    assert sp.decode(ids) == text  # the normaliser leaves these texts unchanged
    assert int(sp.byte_counts(ids).sum()) == len(text.encode("utf-8"))


def test_document_boundaries_with_bos(sp):
    ids = []
    for text in TEXTS:
        ids += [sp.bos_id] + sp.encode(text).tolist()
    counts = sp.byte_counts(np.array(ids))
    assert int(counts.sum()) == sum(len(t.encode()) for t in TEXTS)
    assert counts[np.array(ids) == sp.bos_id].tolist() == [0] * len(TEXTS)


def test_piece_rules(sp):
    """The rules one by one: leading space +1 except after BOS/control or at the start; byte 1."""
    the = sp.sp.piece_to_id("\u2581the")
    word = sp.sp.piece_to_id("he")
    emoji_byte = sp.sp.piece_to_id("<0xF0>")
    assert sp.sp.id_to_piece(the) == "\u2581the" and sp.sp.is_byte(emoji_byte)
    assert sp.byte_counts(np.array([word, the])).tolist() == [2, 4]  # " the" = 4 bytes
    assert sp.byte_counts(np.array([the])).tolist() == [3]  # first token: dummy prefix, no +1
    assert sp.byte_counts(np.array([the]), prev_id=sp.bos_id).tolist() == [3]
    assert sp.byte_counts(np.array([the]), prev_id=word).tolist() == [4]
    assert sp.byte_counts(np.array([sp.bos_id, the, emoji_byte])).tolist() == [0, 3, 1]
    assert sp.byte_counts(np.array([sp.sp.unk_id(), the])).tolist() == [0, 3]  # unk is a boundary


def test_piece_tables_match_a_plain_loop(sp):
    """The vectorised tables against a straightforward per-token computation."""
    text = read_text_file(bundled_corpus_path(), 30_000).decode() + " 😀 中文"
    ids = [sp.bos_id] + sp.encode(text).tolist()
    expected, prev = [], None
    for i in ids:
        piece = sp.sp.id_to_piece(i)
        if sp.sp.is_control(i) or sp.sp.is_unknown(i):
            n = 0
        elif sp.sp.is_byte(i):
            n = 1
        else:
            n = len(piece.lstrip("\u2581").encode()) if piece.startswith("\u2581") else len(piece.encode())
            boundary_before = prev is None or sp.sp.is_control(prev) or sp.sp.is_unknown(prev)
            n += piece.startswith("\u2581") and not boundary_before
        expected.append(n)
        prev = i
    assert sp.byte_counts(np.array(ids)).tolist() == expected


_ALPHABET = st.sampled_from(list("abc XYZ\n\t.,'") + ["  ", "é", "😀", "中", "\u3000", "ﬁ"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_bytes_counted_equal_utf8_length_fuzz(sp, text):
    ids = sp.encode(text)
    assert sp.decode(ids) == text
    assert int(sp.byte_counts(ids).sum()) == len(text.encode("utf-8"))


def test_name_is_the_model_files_sha256(sp):
    digest = hashlib.sha256(open(sp.path, "rb").read()).hexdigest()
    assert sp.name == f"sentencepiece:{digest}"
    assert sp.vocab_size == 512 and sp.bos_id == 1


def test_training_is_reproducible(sp, tmp_path):
    corpus_slice(tmp_path / "slice.txt", 200_000)
    again = SentencePieceTokenizer(train_sentencepiece(tmp_path / "slice.txt", tmp_path / "m", 512))
    pieces = lambda t: [t.sp.id_to_piece(i) for i in range(t.vocab_size)]  # noqa: E731
    assert pieces(again) == pieces(sp)


# ---------------------------------------------------------------- load_tokenizer


def test_load_tokenizer(sp, tmp_path):
    assert isinstance(load_tokenizer(None), ByteTokenizer)
    assert isinstance(load_tokenizer("bytes"), ByteTokenizer)
    loaded = load_tokenizer(sp.path)
    assert isinstance(loaded, SentencePieceTokenizer) and loaded.name == sp.name
    with pytest.raises(DataError, match="does not exist"):
        load_tokenizer(str(tmp_path / "missing.model"))
    with pytest.raises(DataError, match="is a directory"):
        load_tokenizer(str(tmp_path))
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a valid SentencePiece model"):
        load_tokenizer(str(tmp_path / "junk.model"))
