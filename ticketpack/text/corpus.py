"""Corpus and token-shard loading, the train/val split, and training batches.

Inputs are text files (``.xz`` decompressed transparently) or parameter-golf token
shards: a 256 x int32 little-endian header (magic 20240520, version 1, token count,
the rest zero) followed by that many little-endian uint16 tokens. A path is read as a
shard when its first four bytes are the shard magic.

Text files are tokenized one file per document; a tokenizer with a BOS id gets BOS before
each document (as the parameter-golf shards have), the byte tokenizer inserts nothing.
Every token carries its byte count (``TokenStream.byte_counts``) for bits per byte.
"""

from __future__ import annotations

import glob
import lzma
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..atomic import atomic_open
from ..errors import ConfigError, DataError
from .tokenizer import ByteTokenizer, Tokenizer

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
SHARD_HEADER_INTS = 256
SHARD_HEADER_BYTES = SHARD_HEADER_INTS * 4
SHARD_MAX_TOKEN = 65535  # tokens are uint16
_GLOB_CHARS = set("*?[")


def bundled_corpus_path() -> str:
    """The Shakespeare corpus shipped in the package (xz, ~5 MB of English text)."""
    return str(Path(__file__).parents[1] / "data" / "shakespeare.txt.xz")


# ---------------------------------------------------------------- text files


# An .xz file may expand to at most this many times its size (past XZ_FREE_BYTES): real text
# compresses 3-10x, so more is a decompression bomb (1.2 MB of xz can hold 8 GiB of zeros).
XZ_MAX_RATIO = 100
XZ_FREE_BYTES = 64 * 2**20


def read_text_file(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """Raw bytes of a text file (``.xz`` decompressed), at most ``max_bytes`` of them: neither
    reading nor decompression goes further. An ``.xz`` file expanding past
    ``XZ_MAX_RATIO`` times its size (and past ``XZ_FREE_BYTES``) is refused (DataError)."""
    p = _existing_file(path)
    limit = -1 if max_bytes is None else max_bytes
    try:
        if p.suffix == ".xz":
            return _read_xz(p, limit)
        with open(p, "rb") as fh:
            return fh.read(limit)
    except lzma.LZMAError as exc:
        raise DataError(f"data {p}: corrupt xz file ({exc})") from None
    except OSError as exc:
        raise DataError(f"data {p}: cannot read ({exc.strerror or exc})") from None


def _read_xz(p: Path, limit: int) -> bytes:
    """At most ``limit`` bytes (-1: all) of an .xz file, decompressed no further than its cap."""
    cap = max(XZ_FREE_BYTES, XZ_MAX_RATIO * p.stat().st_size)
    with lzma.open(p, "rb") as fh:
        data = fh.read(cap + 1 if limit < 0 or limit > cap else limit)
    if len(data) > cap:
        raise DataError(f"data {p}: expands past {cap:,} bytes, more than {XZ_MAX_RATIO}x its "
                        f"{p.stat().st_size:,} compressed bytes: refused as a decompression bomb "
                        f"(decompress it yourself if it is real text)")
    return data


def read_corpus(paths: Sequence[str | os.PathLike]) -> bytes:
    """The concatenated bytes of text files, in the order given."""
    return b"".join(read_text_file(p) for p in paths)


def expand_data_paths(specs: str | Sequence[str]) -> list[str]:
    """Paths and globs -> paths; each glob expands in sorted order and must match something."""
    specs = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs)
    if not specs:
        raise DataError("data: no paths given, expected at least one file or glob")
    out: list[str] = []
    for spec in map(str, specs):
        if _GLOB_CHARS & set(spec) and not os.path.exists(spec):
            matches = sorted(glob.glob(spec))
            if not matches:
                raise DataError(f"data: glob {spec!r} matches no files")
            out.extend(matches)
        else:
            out.append(spec)
    return out


def check_data_paths(specs: str | Sequence[str]) -> None:
    """Every path (globs expanded) names an existing regular file (DataError): a command checks
    this before long work, so a typo is reported at once."""
    for path in expand_data_paths(specs):
        _existing_file(path)


def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"data: file {p} does not exist")
    if not p.is_file():
        raise DataError(f"data: {p} is not a regular file (a directory?)")
    return p


# ---------------------------------------------------------------- token shards


def is_shard(path: str | os.PathLike) -> bool:
    """True when the file starts with the shard magic (little-endian int32 20240520)."""
    p = _existing_file(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise DataError(f"data {p}: cannot read ({exc.strerror or exc})") from None
    return len(head) == 4 and int.from_bytes(head, "little", signed=True) == SHARD_MAGIC


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """The uint16 tokens of a shard, after checking magic, version and count vs file size."""
    p = _existing_file(path)
    size = p.stat().st_size
    if size < SHARD_HEADER_BYTES:
        raise DataError(f"shard {p}: file is {size} bytes, expected at least the {SHARD_HEADER_BYTES}-byte header")
    try:
        with open(p, "rb") as fh:
            header = np.frombuffer(fh.read(SHARD_HEADER_BYTES), dtype="<i4")
            magic, version, count = (int(v) for v in header[:3])
            if magic != SHARD_MAGIC:
                raise DataError(f"shard {p}: magic is {magic}, expected {SHARD_MAGIC}")
            if version != SHARD_VERSION:
                raise DataError(f"shard {p}: version is {version}, expected {SHARD_VERSION}")
            expected = SHARD_HEADER_BYTES + 2 * count
            if count < 0 or size != expected:
                raise DataError(f"shard {p}: header says {count} tokens ({expected} bytes), file is {size} bytes")
            tokens = np.fromfile(fh, dtype="<u2", count=count)
    except OSError as exc:
        raise DataError(f"shard {p}: cannot read ({exc.strerror or exc})") from None
    if len(tokens) != count:  # the file shrank while we read it
        raise DataError(f"shard {p}: read {len(tokens)} tokens, expected {count}")
    return tokens.astype(np.uint16, copy=False)


def write_shard(path: str | os.PathLike, tokens: np.ndarray) -> None:
    """Write tokens as a shard, atomically (temporary file, fsync, rename)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
        raise DataError(f"shard tokens: got {tokens.dtype} array of shape {tokens.shape}, expected 1-D integers")
    if len(tokens) and (int(tokens.min()) < 0 or int(tokens.max()) > SHARD_MAX_TOKEN):
        bad = int(tokens.max()) if int(tokens.max()) > SHARD_MAX_TOKEN else int(tokens.min())
        raise DataError(f"shard tokens: got token id {bad}, expected 0..{SHARD_MAX_TOKEN} (uint16)")
    if len(tokens) > np.iinfo(np.int32).max:
        raise DataError(f"shard tokens: got {len(tokens)} tokens, expected at most {np.iinfo(np.int32).max}")
    header = np.zeros(SHARD_HEADER_INTS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, len(tokens))
    with atomic_open(path) as fh:
        fh.write(header.tobytes())
        fh.write(tokens.astype("<u2").tobytes())


# ---------------------------------------------------------------- token streams


@dataclass
class TokenStream:
    """A token sequence and the number of text bytes each token stands for."""

    tokens: np.ndarray  # (N,) int32 token ids
    byte_counts: np.ndarray  # (N,) int32; token i's bytes given token i-1 (see text/tokenizer.py)
    tokenizer: str = ""  # the tokenizer's name, for provenance

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, key: slice) -> "TokenStream":
        if not isinstance(key, slice):
            raise TypeError("TokenStream supports slicing only")
        return TokenStream(self.tokens[key], self.byte_counts[key], self.tokenizer)

    @property
    def total_bytes(self) -> int:
        return int(self.byte_counts.sum(dtype=np.int64))


def load_tokens(specs: str | Sequence[str | os.PathLike], tokenizer: Tokenizer | None = None,
                max_bytes: int | None = None) -> TokenStream:
    """Tokenize text files and read shards (paths or globs, in order) into one stream.

    ``max_bytes`` keeps the longest prefix of the stream whose byte counts sum to at most
    that many bytes (text is also read no further than needed).
    """
    tokenizer = tokenizer or ByteTokenizer()
    paths = expand_data_paths(specs)
    if max_bytes is not None and max_bytes < 1:
        raise DataError(f"max_bytes: got {max_bytes}, expected a positive byte count")
    chunks, budget = [], max_bytes
    for path in paths:
        if budget is not None and budget <= 0:
            break
        chunk = _path_tokens(path, tokenizer, budget)
        chunks.append(chunk)
        if budget is not None:  # only to stop reading early; the exact cut is made below
            budget -= int(tokenizer.byte_counts(chunk).sum(dtype=np.int64))
    tokens = np.concatenate(chunks).astype(np.int32, copy=False) if chunks else np.zeros(0, np.int32)
    stream = TokenStream(tokens, tokenizer.byte_counts(tokens), tokenizer.name)
    if max_bytes is not None:
        stream = stream[: _prefix_within(stream.byte_counts, max_bytes)]
    if len(stream) == 0:
        raise DataError(f"data: no tokens in {', '.join(map(str, paths))}")
    return stream


def _path_tokens(path, tokenizer: Tokenizer, max_bytes: int | None) -> np.ndarray:
    if is_shard(path):
        tokens = read_shard(path)
        if len(tokens) and int(tokens.max()) >= tokenizer.vocab_size:
            raise DataError(f"shard {path}: token id {int(tokens.max())} is outside the "
                            f"tokenizer's vocabulary 0..{tokenizer.vocab_size - 1} ({tokenizer.name})")
        return tokens
    raw = read_text_file(path, max_bytes)
    if isinstance(tokenizer, ByteTokenizer):
        return tokenizer.encode_bytes(raw)
    text = _utf8(raw, path, truncated=max_bytes is not None and len(raw) == max_bytes)
    ids = tokenizer.encode(text)
    if tokenizer.bos_id is not None:
        ids = np.concatenate([np.array([tokenizer.bos_id], dtype=ids.dtype), ids])
    return ids


def _utf8(raw: bytes, path, truncated: bool) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if truncated and exc.end == len(raw) and exc.reason == "unexpected end of data":
            # max_bytes cut the last character in two: drop its first bytes
            return raw[: exc.start].decode("utf-8")
        raise DataError(f"data {path}: not UTF-8 text (invalid byte at offset {exc.start})") from None


def _prefix_within(byte_counts: np.ndarray, max_bytes: int) -> int:
    """The number of leading tokens whose bytes sum to at most max_bytes."""
    cum = np.cumsum(byte_counts, dtype=np.int64)
    return int(np.searchsorted(cum, max_bytes, side="right"))


VAL_FRACTION = 0.1  # the held-out share when nothing else is said


def held_out_count(n: int, val_fraction: float = VAL_FRACTION) -> int:
    """How many of ``n`` units (tokens, bytes) the tail holds out: ``val_fraction`` of them, rounded."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction: got {val_fraction}, expected a number in (0, 1)")
    return int(round(n * val_fraction))


def split_train_val(stream: TokenStream, val_fraction: float = VAL_FRACTION,
                    val_tokens: int | None = None) -> tuple[TokenStream, TokenStream]:
    """Split deterministically: the last tokens are validation, everything before is training.

    ``val_tokens`` (a count) takes precedence over ``val_fraction``; the fraction is
    rounded to a whole number of tokens. Both parts need at least 2 tokens.
    """
    n = len(stream)
    if n < 4:
        raise DataError(f"data: {n} tokens, expected at least 4 to split into training and "
                        f"held-out text (2 each)")
    if val_tokens is None:
        val_tokens = held_out_count(n, val_fraction)
        if not 2 <= val_tokens <= n - 2:
            raise DataError(f"data: {n} tokens; the held-out share {val_fraction:g} of them is {val_tokens}, "
                            f"expected at least 2 held-out and 2 training tokens (give more data)")
    if not 2 <= val_tokens <= n - 2:
        raise DataError(f"val_tokens: got {val_tokens} of {n} tokens, expected 2..{n - 2} "
                        f"so that training and validation each get at least 2 tokens")
    return stream[: n - val_tokens], stream[n - val_tokens:]


# ---------------------------------------------------------------- batches


def batch_offsets(n_tokens: int, step: int, batch_size: int, seq_len: int, seed: int) -> np.ndarray:
    """The global batch's window starts at ``step``: a pure function of (seed, step).

    Drawn from raw PCG64 words (stream-stable by NumPy's NEP 19) seeded with
    SeedSequence([seed, step]), reduced modulo the number of valid starts (the modulo
    bias is below n / 2**64). No Generator method is used, so NumPy releases that change
    a distribution's algorithm cannot change the batches.
    """
    starts = n_tokens - seq_len  # window [o, o + seq_len] must fit: o in 0..n-seq_len-1
    if starts < 1:
        raise DataError(f"data: {n_tokens} tokens, expected at least seq_len + 1 = {seq_len + 1}")
    bits = np.random.PCG64(np.random.SeedSequence([seed, step]))
    return (bits.random_raw(batch_size) % np.uint64(starts)).astype(np.int64)


def get_batch(tokens: np.ndarray, step: int, batch_size: int, seq_len: int, seed: int,
              rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows (r::world_size) of the global batch at ``step``: (x, y), int64 (B/W, T)."""
    _check_batch_args(batch_size, seq_len, seed, rank, world_size)
    offsets = batch_offsets(len(tokens), step, batch_size, seq_len, seed)[rank::world_size]
    idx = offsets[:, None] + np.arange(seq_len + 1)  # (B/W, T+1)
    windows = np.asarray(tokens)[idx].astype(np.int64)
    x = torch.from_numpy(np.ascontiguousarray(windows[:, :-1]))
    y = torch.from_numpy(np.ascontiguousarray(windows[:, 1:]))
    return x, y


def batch_iterator(tokens: np.ndarray, batch_size: int, seq_len: int, seed: int,
                   start_step: int = 0, rank: int = 0,
                   world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (x, y) batches from ``start_step`` on; step k's batch depends only on (seed, k).

    So a run resumed at step k sees exactly the batches an uninterrupted run sees, and
    ``world_size`` ranks together see the same global batch as one process.
    """
    _check_batch_args(batch_size, seq_len, seed, rank, world_size)
    step = start_step
    while True:
        yield get_batch(tokens, step, batch_size, seq_len, seed, rank, world_size)
        step += 1


def _check_batch_args(batch_size: int, seq_len: int, seed: int, rank: int, world_size: int) -> None:
    if batch_size < 1 or seq_len < 1:
        raise ConfigError(f"batch: got batch_size={batch_size}, seq_len={seq_len}, expected both >= 1")
    if seed < 0:
        raise ConfigError(f"seed: got {seed}, expected a non-negative integer")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank: got rank={rank}, world_size={world_size}, expected 0 <= rank < world_size")
    if batch_size % world_size:
        raise ConfigError(f"batch_size: got {batch_size}, expected a multiple of world_size={world_size}")
