"""The quickstart's data: the byte cut, the files written, the tokenizer trained on the
training text only, reproducible to the byte."""

from __future__ import annotations

import hashlib
import random

import pytest

from ticketpack.text.corpus import TokenStream, bundled_corpus_path, read_corpus, split_train_val
from ticketpack.errors import ConfigError, DataError
from ticketpack.text.quickstart import prepare_quickstart_data, split_point
from ticketpack.text.tokenizer import ByteTokenizer, SentencePieceTokenizer, train_sentencepiece


def test_the_cut_holds_out_the_same_bytes_as_the_byte_level_split():
    raw = read_corpus([bundled_corpus_path()])[:100_003]
    tok = ByteTokenizer()
    ids = tok.encode_bytes(raw)
    byte_val = split_train_val(TokenStream(ids, tok.byte_counts(ids), tok.name))[1]
    assert len(raw) - split_point(raw) == len(byte_val) == 10_000


def test_the_cut_never_splits_a_utf8_character():
    raw = ("a" * 8 + "\u00e9" * 1).encode()  # 10 bytes; 1 held out would land inside the e-acute
    cut = split_point(raw)
    assert cut == 8 and raw[cut:].decode() == "\u00e9"
    with pytest.raises(ConfigError, match="val_fraction"):
        split_point(raw, 1.5)


def test_prepare_writes_train_val_and_a_tokenizer_for_the_training_text_only(tmp_path):
    corpus = tmp_path / "corpus.txt"
    raw = read_corpus([bundled_corpus_path()])[:300_000]
    corpus.write_bytes(raw)
    data = prepare_quickstart_data(tmp_path / "run", vocab_size=400, corpus=corpus)
    train, val = open(data.train, "rb").read(), open(data.val, "rb").read()
    assert train + val == raw and len(val) == data.val_bytes == 30_000
    assert data.train_bytes == len(train)
    tok = SentencePieceTokenizer(data.tokenizer)
    assert tok.vocab_size == data.vocab_size == 400
    # every held-out byte is counted once, and the text comes back whole
    ids = tok.encode(val.decode())
    assert int(tok.byte_counts(ids).sum()) == len(val) and tok.decode(ids) == val.decode()
    # the same text gives the same tokenizer file, byte for byte, wherever it is written
    again = prepare_quickstart_data(tmp_path / "elsewhere", vocab_size=400, corpus=corpus)
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()  # noqa: E731
    assert digest(again.tokenizer) == digest(data.tokenizer)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["tokenizer.model", "train.txt", "val.txt"]


def test_the_tokenizer_never_sees_the_held_out_text(tmp_path):
    # Trained on this whole text, BPE's first merges are "zy" and "zyzzyva" (a tenth of the bytes,
    # the most frequent pairs); held out, the word gets no piece.
    gen = random.Random(0)
    head = "".join("".join(gen.choice("abcdefgh") for _ in range(39)) + "\n" for _ in range(900))
    (tmp_path / "c.txt").write_text(head + "zyzzyva\n" * 500)
    data = prepare_quickstart_data(tmp_path / "run", vocab_size=300, corpus=tmp_path / "c.txt")
    assert open(data.val).read() == "zyzzyva\n" * 500
    tok = SentencePieceTokenizer(data.tokenizer)
    assert not any("zy" in tok.sp.id_to_piece(i) for i in range(tok.vocab_size))


def test_a_corpus_too_short_to_split_is_refused(tmp_path):
    (tmp_path / "c.txt").write_text("abc")
    with pytest.raises(ConfigError, match="too short"):
        prepare_quickstart_data(tmp_path / "run", corpus=tmp_path / "c.txt")


def test_training_text_that_is_not_utf8_is_refused(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe")
    with pytest.raises(DataError, match="not UTF-8"):
        train_sentencepiece(tmp_path / "bad.txt", tmp_path / "m", 300)
    assert not (tmp_path / "m.model").exists()
