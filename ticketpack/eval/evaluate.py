"""Cross-entropy and bits per byte of a model over a token stream.

Windows (L = seq_len, N tokens, so N - 1 targets):

- non-overlapping (default): window i reads tokens [i*L, (i+1)*L) and predicts
  [i*L+1, (i+1)*L+1); the final partial window is scored too, so every token after
  the first is scored exactly once;
- sliding (``stride`` S <= L): windows start every S tokens and each scores only the
  targets no earlier window scored (the first window scores all of its own), so every
  token after the first is still scored exactly once, most with L - S + 1 or more tokens
  of context. The last window is cut short at the end of the stream.

val_loss = total nats / scored tokens; val_bpb = total nats / ln 2 / bytes of the scored
targets (``TokenStream.byte_counts``). Cross-entropy is taken in float32 and summed in
float64 in a fixed order, with a fixed batch composition, so the same model and data on
CPU give bit-identical numbers run to run.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..text.corpus import TokenStream
from ..errors import ConfigError, DataError


@dataclass
class EvalResult:
    val_loss: float  # mean nats per scored token
    val_bpb: float  # bits per byte of the scored targets
    tokens: int  # scored tokens
    bytes: int  # bytes those tokens stand for
    seconds: float
    tokens_per_second: float
    device: str
    seq_len: int
    stride: int | None  # None: non-overlapping windows

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    """Inputs tokens[start : start+length], targets shifted by one; targets from ``first`` on are scored."""

    start: int
    length: int
    first: int


def eval_windows(n_tokens: int, seq_len: int, stride: int | None = None) -> list[Window]:
    """The windows that score each of tokens 1..n_tokens-1 exactly once."""
    check_windows(seq_len, stride)
    return list(_iter_windows(n_tokens, seq_len, stride))


def check_windows(seq_len: int, stride: int | None) -> None:
    if seq_len < 1:
        raise ConfigError(f"seq_len: got {seq_len}, expected >= 1")
    if stride is not None and not 1 <= stride <= seq_len:
        raise ConfigError(f"stride: got {stride}, expected 1..seq_len ({seq_len})")


def _iter_windows(n_tokens: int, seq_len: int, stride: int | None) -> Iterator[Window]:
    """``eval_windows`` one at a time: at seq_len 1 a long text has a window per token, too
    many to hold as a list."""
    step = seq_len if stride is None else stride
    n_targets = n_tokens - 1
    covered, start = 0, 0  # covered: targets [0, covered) already scored
    while covered < n_targets:
        length = min(seq_len, n_targets - start)
        yield Window(start, length, covered - start)
        covered = start + length
        start += step


# A batch holds at least this many tokens: with a short seq_len (an artifact may declare 1) a
# batch takes more windows, so evaluation time follows the tokens scored, not their count of
# windows. Equal for the trainer's final evaluation and load-and-eval: both come through here.
MIN_BATCH_TOKENS = 1024


def windows_per_batch(seq_len: int, batch_size: int) -> int:
    """Windows in one batch: ``batch_size``, or more when that holds under MIN_BATCH_TOKENS."""
    return max(batch_size, MIN_BATCH_TOKENS // seq_len)


def _batches(windows: Iterable[Window], batch_size: int) -> Iterator[list[Window]]:
    """Consecutive windows of equal (length, first), at most batch_size per batch (lazily)."""
    last: list[Window] = []
    for w in windows:
        if last and len(last) < batch_size and (last[0].length, last[0].first) == (w.length, w.first):
            last.append(w)
        else:
            if last:
                yield last
            last = [w]
    if last:
        yield last


def evaluate(model: torch.nn.Module, stream: TokenStream, *, seq_len: int, batch_size: int = 8,
             device: str | torch.device = "cpu", stride: int | None = None,
             autocast_bf16: bool = False, max_tokens: int | None = None) -> EvalResult:
    """Score ``stream`` with ``model`` (``model(idx)`` -> logits (B, T, V)); see the module doc.

    The model must already be on ``device``. ``max_tokens`` keeps only the stream's first
    ``max_tokens`` tokens. The model's train/eval mode is restored afterwards.
    """
    dev = torch.device(device)
    if batch_size < 1:
        raise ConfigError(f"batch_size: got {batch_size}, expected >= 1")
    _check_model_device(model, dev)
    if max_tokens is not None:
        stream = stream[:max_tokens]
    if len(stream) < 2:
        raise DataError(f"eval data: {len(stream)} tokens, expected at least 2")
    check_windows(seq_len, stride)
    windows = _iter_windows(len(stream), seq_len, stride)
    was_training = model.training
    model.eval()
    try:
        t0 = time.perf_counter()
        nats, n_tok, n_bytes = _score(model, stream, windows, windows_per_batch(seq_len, batch_size), dev,
                                      autocast_bf16)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
    finally:
        model.train(was_training)
    if n_bytes == 0:
        raise DataError(f"eval data: the {n_tok} scored tokens stand for 0 bytes, expected > 0")
    return EvalResult(val_loss=nats / n_tok, val_bpb=nats / math.log(2) / n_bytes, tokens=n_tok,
                      bytes=n_bytes, seconds=seconds, tokens_per_second=n_tok / max(seconds, 1e-9),
                      device=str(dev), seq_len=seq_len, stride=stride)


def _score(model, stream: TokenStream, windows: Iterable[Window], batch_size: int,
           dev: torch.device, autocast_bf16: bool) -> tuple[float, int, int]:
    """Total nats (float64, fixed order), scored tokens and their bytes."""
    tokens = stream.tokens
    max_id = int(tokens.max())
    nats, n_tok, n_bytes = 0.0, 0, 0
    with torch.inference_mode():
        for batch in _batches(windows, batch_size):
            length, first = batch[0].length, batch[0].first
            starts = np.array([w.start for w in batch], dtype=np.int64)
            idx = starts[:, None] + np.arange(length + 1)  # (B, T+1)
            win = torch.from_numpy(tokens[idx].astype(np.int64)).to(dev)
            x, y = win[:, :-1], win[:, 1:]
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                logits = model(x)
            if isinstance(logits, (tuple, list)):  # models that return (logits, loss)
                logits = logits[0]
            _check_logits(logits, x, max_id)
            logits = logits[:, first:].float()  # (B, T', V): only the scored positions
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y[:, first:].reshape(-1),
                                   reduction="none")
            nats += float(loss.cpu().numpy().astype(np.float64).sum())
            n_tok += loss.numel()
            tgt = (starts[:, None] + 1 + np.arange(first, length))  # positions of scored targets
            n_bytes += int(stream.byte_counts[tgt].sum(dtype=np.int64))
    return nats, n_tok, n_bytes


def _check_logits(logits: torch.Tensor, x: torch.Tensor, max_id: int) -> None:
    if logits.dim() != 3 or logits.shape[:2] != x.shape:
        raise ConfigError(f"model output: got shape {tuple(logits.shape)}, expected (B, T, V) "
                          f"with (B, T) = {tuple(x.shape)}")
    if max_id >= logits.size(-1):
        raise DataError(f"eval data: token id {max_id} is outside the model's vocabulary "
                        f"0..{logits.size(-1) - 1}")


def _check_model_device(model: torch.nn.Module, dev: torch.device) -> None:
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    if p is not None and p.device.type != dev.type:
        raise ConfigError(f"device: model is on {p.device}, evaluation asked for {dev}")
