"""Corpus reading, token shards, token streams, the train/val split and batches."""

from __future__ import annotations

import lzma
import os

import numpy as np
import pytest
import torch

from ticketpack.text.corpus import (SHARD_MAGIC, TokenStream, batch_iterator, batch_offsets,
                                    bundled_corpus_path, expand_data_paths, get_batch, is_shard,
                                    load_tokens, read_corpus, read_shard, read_text_file,
                                    split_train_val, write_shard)
from ticketpack.errors import ConfigError, DataError
from ticketpack.text.tokenizer import ByteTokenizer, SentencePieceTokenizer, train_sentencepiece
from tests.tiny import corpus_slice


@pytest.fixture(scope="module")
def sp(tmp_path_factory) -> SentencePieceTokenizer:
    folder = tmp_path_factory.mktemp("sp")
    corpus_slice(folder / "slice.txt", 200_000)
    return SentencePieceTokenizer(train_sentencepiece(folder / "slice.txt", folder / "m", 512))


def header(magic=SHARD_MAGIC, version=1, count=0) -> bytes:
    h = np.zeros(256, dtype="<i4")
    h[:3] = (magic, version, count)
    return h.tobytes()


# ---------------------------------------------------------------- text files


def test_read_corpus_plain_and_xz(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello ")
    (tmp_path / "b.txt.xz").write_bytes(lzma.compress("wörld".encode()))
    assert read_corpus([tmp_path / "a.txt", tmp_path / "b.txt.xz"]) == "hello wörld".encode()
    assert read_text_file(tmp_path / "b.txt.xz", max_bytes=2) == b"w\xc3"


def test_read_corpus_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="missing.txt does not exist"):
        read_corpus([tmp_path / "missing.txt"])
    with pytest.raises(DataError, match="is not a regular file"):
        read_corpus([tmp_path])
    (tmp_path / "bad.xz").write_bytes(b"not xz at all")
    with pytest.raises(DataError, match="bad.xz: corrupt xz"):
        read_corpus([tmp_path / "bad.xz"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_file(tmp_path):
    p = tmp_path / "secret.txt"
    p.write_text("x")
    p.chmod(0)
    with pytest.raises(DataError, match="secret.txt: cannot read"):
        read_corpus([p])


def test_bundled_corpus():
    data = read_text_file(bundled_corpus_path())
    assert len(data) == 4_959_681 and data.startswith(b"A Midsummer Night's Dream")
    data.decode("utf-8")


def test_expand_data_paths(tmp_path):
    for name in ["b.bin", "a.bin", "c.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert expand_data_paths(str(tmp_path / "*.bin")) == [str(tmp_path / "a.bin"), str(tmp_path / "b.bin")]
    assert expand_data_paths([str(tmp_path / "c.txt"), str(tmp_path / "?.bin")])[0] == str(tmp_path / "c.txt")
    with pytest.raises(DataError, match="matches no files"):
        expand_data_paths([str(tmp_path / "*.nothing")])
    with pytest.raises(DataError, match="no paths"):
        expand_data_paths([])


# ---------------------------------------------------------------- shards


def test_shard_round_trip_and_layout(tmp_path):
    tokens = np.array([0, 1, 1023, 65535, 7], dtype=np.uint16)
    path = tmp_path / "s.bin"
    write_shard(path, tokens)
    raw = path.read_bytes()
    assert len(raw) == 1024 + 2 * len(tokens)
    assert raw[:1024] == header(count=5)
    assert raw[1024:] == tokens.astype("<u2").tobytes()
    assert is_shard(path)
    got = read_shard(path)
    assert got.dtype == np.uint16 and got.tolist() == tokens.tolist()
    write_shard(path, np.zeros(0, dtype=np.int64))  # an empty shard is valid
    assert read_shard(path).tolist() == []
    assert [p.name for p in tmp_path.iterdir()] == ["s.bin"]  # no temporary files left


@pytest.mark.parametrize("raw, message", [
    (header(magic=20240521, count=1) + b"\0\0", "magic is 20240521, expected 20240520"),
    (header(version=2, count=1) + b"\0\0", "version is 2, expected 1"),
    (header(count=3) + b"\0\0" * 2, "header says 3 tokens"),       # truncated tokens
    (header(count=1) + b"\0\0\0", "header says 1 tokens"),           # trailing byte
    (header(count=-1), "header says -1 tokens"),
    (header(count=1)[:1023], "expected at least the 1024-byte header"),  # short file
    (b"", "expected at least the 1024-byte header"),
])
def test_bad_shards(tmp_path, raw, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=message):
        read_shard(path)


def test_good_shard_beside_bad_ones(tmp_path):
    """Success control for the corrupt-shard matrix: the same bytes, done right, read fine."""
    (tmp_path / "ok.bin").write_bytes(header(count=2) + b"\x01\x00\x02\x00")
    assert read_shard(tmp_path / "ok.bin").tolist() == [1, 2]


def test_write_shard_rejects_bad_tokens_and_keeps_old_file(tmp_path):
    path = tmp_path / "s.bin"
    write_shard(path, np.array([5, 6]))
    before = path.read_bytes()
    for bad, message in [(np.array([65536]), "got token id 65536"), (np.array([-1]), "got token id -1"),
                         (np.zeros((2, 2), dtype=np.int32), "expected 1-D integers"),
                         (np.array([0.5]), "expected 1-D integers")]:
        with pytest.raises(DataError, match=message):
            write_shard(path, bad)
    assert path.read_bytes() == before


# ---------------------------------------------------------------- token streams


def test_load_tokens_bytes_text_and_shards(tmp_path):
    (tmp_path / "t.txt").write_bytes(b"ab\xffc")  # not UTF-8: fine for the byte tokenizer
    write_shard(tmp_path / "s.bin", np.array([100, 101]))
    stream = load_tokens([str(tmp_path / "t.txt"), str(tmp_path / "s.bin")])
    assert stream.tokens.tolist() == [97, 98, 255, 99, 100, 101]
    assert stream.byte_counts.tolist() == [1] * 6 and stream.tokenizer == "bytes"
    assert load_tokens(str(tmp_path / "t.txt"), max_bytes=2).tokens.tolist() == [97, 98]


def test_load_tokens_sentencepiece_documents(sp, tmp_path):
    docs = ["First document.\n", "  Second one, with 😀 and\n\nblank lines.", "third"]
    for i, doc in enumerate(docs):
        (tmp_path / f"doc{i}.txt").write_text(doc, encoding="utf-8")
    stream = load_tokens(str(tmp_path / "doc*.txt"), sp)
    expected = []
    for doc in docs:
        expected += [sp.bos_id] + sp.encode(doc).tolist()
    assert stream.tokens.tolist() == expected
    assert stream.total_bytes == sum(len(d.encode()) for d in docs)
    assert stream.tokenizer == sp.name


def test_text_and_shards_give_the_same_stream(sp, tmp_path):
    text = read_text_file(bundled_corpus_path(), 20_000).decode() + " 😀"
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    from_text = load_tokens([str(tmp_path / "t.txt")], sp)
    cut = len(from_text) // 3  # split the stream over two shards at an arbitrary token
    write_shard(tmp_path / "val_000.bin", from_text.tokens[:cut])
    write_shard(tmp_path / "val_001.bin", from_text.tokens[cut:])
    from_shards = load_tokens(str(tmp_path / "val_*.bin"), sp)
    assert np.array_equal(from_shards.tokens, from_text.tokens)
    assert np.array_equal(from_shards.byte_counts, from_text.byte_counts)
    assert from_text.total_bytes == len(text.encode())


def test_load_tokens_errors(sp, tmp_path):
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.txt: not UTF-8 text"):
        load_tokens([str(tmp_path / "latin1.txt")], sp)
    write_shard(tmp_path / "big.bin", np.array([3, 600]))
    with pytest.raises(DataError, match="token id 600 is outside"):
        load_tokens([str(tmp_path / "big.bin")], sp)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match="no tokens"):
        load_tokens([str(tmp_path / "empty.txt")])
    with pytest.raises(DataError, match="does not exist"):
        load_tokens([str(tmp_path / "nope.txt")])


def test_max_bytes_sentencepiece(sp, tmp_path):
    text = "héllo wörld, " * 50  # 750 bytes
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    for max_bytes in [1, 2, 3, 7, 100]:
        stream = load_tokens([str(tmp_path / "t.txt")], sp, max_bytes=max_bytes)
        # cut at max_bytes, less the first half of a 2-byte character cut in two
        assert max_bytes - 1 <= stream.total_bytes <= max_bytes
    full = load_tokens([str(tmp_path / "t.txt")], sp)
    assert np.array_equal(load_tokens([str(tmp_path / "t.txt")], sp, max_bytes=10_000).tokens, full.tokens)
    with pytest.raises(DataError, match="max_bytes: got 0"):
        load_tokens([str(tmp_path / "t.txt")], sp, max_bytes=0)


def test_split_train_val():
    stream = TokenStream(np.arange(100, dtype=np.int32), np.ones(100, dtype=np.int32), "bytes")
    train, val = split_train_val(stream)
    assert train.tokens.tolist() == list(range(90)) and val.tokens.tolist() == list(range(90, 100))
    train, val = split_train_val(stream, val_fraction=0.5, val_tokens=7)
    assert len(train) == 93 and val.tokens[0] == 93
    with pytest.raises(DataError, match="val_tokens: got 99"):
        split_train_val(stream, val_tokens=99)
    with pytest.raises(ConfigError, match="val_fraction"):
        split_train_val(stream, val_fraction=1.0)


# ---------------------------------------------------------------- batches


def test_batch_offsets_golden():
    """Raw PCG64 words are stream-stable (NEP 19): these numbers must never change."""
    assert batch_offsets(1000 + 8, 0, 4, 8, seed=1).tolist() == [127, 86, 885, 778]
    assert batch_offsets(1000 + 8, 1, 4, 8, seed=1).tolist() == [375, 786, 560, 549]


def test_batches_are_windows_of_the_data():
    tokens = np.arange(5000, dtype=np.int32) * 3
    x, y = get_batch(tokens, step=3, batch_size=6, seq_len=16, seed=9)
    assert x.dtype == torch.int64 and x.shape == y.shape == (6, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one token
    assert torch.equal(torch.diff(x, dim=1), torch.full((6, 15), 3))  # contiguous windows
    assert int(y.max()) <= int(tokens[-1])
    # the last start is reachable and no window runs past the end
    x, y = get_batch(np.arange(17, dtype=np.int32), 0, 4, 16, seed=0)
    assert x[:, 0].tolist() == [0] * 4 and y[:, -1].tolist() == [16] * 4


def test_batch_iterator_is_deterministic_and_resumable():
    tokens = np.random.default_rng(0).integers(0, 256, 10_000).astype(np.int32)
    run = batch_iterator(tokens, 4, 32, seed=5)
    first = [next(run) for _ in range(6)]
    again = [next(batch_iterator(tokens, 4, 32, seed=5)) for _ in range(1)]
    assert torch.equal(first[0][0], again[0][0])
    resumed = batch_iterator(tokens, 4, 32, seed=5, start_step=4)
    for k in (4, 5):
        x, y = next(resumed)
        assert torch.equal(x, first[k][0]) and torch.equal(y, first[k][1])
    other = next(batch_iterator(tokens, 4, 32, seed=6))
    assert not torch.equal(other[0], first[0][0])
    assert not torch.equal(first[1][0], first[0][0])


def test_rank_split_covers_the_global_batch():
    tokens = np.arange(3000, dtype=np.int32)
    gx, gy = get_batch(tokens, 11, 8, 20, seed=3)
    parts = [get_batch(tokens, 11, 8, 20, seed=3, rank=r, world_size=4) for r in range(4)]
    for r, (x, y) in enumerate(parts):
        assert x.shape == (2, 20)
        assert torch.equal(x, gx[r::4]) and torch.equal(y, gy[r::4])
    stacked = torch.cat([p[0] for p in parts])
    assert sorted(map(tuple, stacked.tolist())) == sorted(map(tuple, gx.tolist()))
    ranks = [next(batch_iterator(tokens, 8, 20, 3, start_step=11, rank=r, world_size=4)) for r in range(4)]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(ranks, parts))


def test_batch_argument_errors():
    tokens = np.arange(100, dtype=np.int32)
    with pytest.raises(ConfigError, match="multiple of world_size=4"):
        get_batch(tokens, 0, 6, 8, 0, rank=0, world_size=4)
    with pytest.raises(ConfigError, match="rank"):
        get_batch(tokens, 0, 8, 8, 0, rank=4, world_size=4)
    with pytest.raises(DataError, match="expected at least seq_len \\+ 1 = 101"):
        get_batch(tokens, 0, 2, 100, 0)
    with pytest.raises(ConfigError, match="seed"):
        next(batch_iterator(tokens, 2, 8, seed=-1))
