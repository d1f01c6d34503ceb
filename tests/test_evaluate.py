"""Evaluation: windows score every token after the first exactly once; exact losses and bpb."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ticketpack.text.corpus import (TokenStream, bundled_corpus_path, load_tokens, read_text_file,
                                    write_shard)
from ticketpack.errors import ConfigError, DataError
from ticketpack.eval.evaluate import EvalResult, eval_windows, evaluate
from ticketpack.text.tokenizer import ByteTokenizer



class Uniform(nn.Module):
    """All-zero logits: every token costs exactly ln V nats."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, idx):
        return torch.zeros(*idx.shape, self.vocab)


class NextToken(nn.Module):
    """Predicts (x + 1) % V with certainty: zero loss only if targets are the inputs shifted by one."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, idx):
        return 100.0 * nn.functional.one_hot((idx + 1) % self.vocab, self.vocab).float()


class PositionLM(nn.Module):
    """Logit of token 0 grows with the position in the window; the loss tells which window scored."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, idx):
        logits = torch.zeros(*idx.shape, self.vocab)
        logits[..., 0] = 0.01 * torch.arange(idx.shape[1], dtype=torch.float32)
        return logits


class TinyLM(nn.Module):
    """A small deterministic causal model: embedding, running mean over the context, linear head."""

    def __init__(self, vocab: int, dim: int = 16, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.emb = nn.Parameter(torch.randn(vocab, dim, generator=gen))
        self.head = nn.Parameter(torch.randn(dim, vocab, generator=gen) / dim**0.5)

    def forward(self, idx):
        h = self.emb[idx]  # (B, T, C)
        h = h.cumsum(1) / torch.arange(1, idx.shape[1] + 1).view(1, -1, 1)  # causal mean
        return torch.tanh(h) @ self.head  # (B, T, V)


def byte_stream(data: bytes) -> TokenStream:
    tok = ByteTokenizer()
    ids = tok.encode_bytes(data)
    return TokenStream(ids, tok.byte_counts(ids), tok.name)


# ---------------------------------------------------------------- windows


def scored_positions(n: int, seq_len: int, stride: int | None) -> list[int]:
    out = []
    for w in eval_windows(n, seq_len, stride):
        out += [w.start + 1 + t for t in range(w.first, w.length)]
    return out


@settings(max_examples=300, deadline=None)
@given(n=st.integers(2, 200), seq_len=st.integers(1, 40), data=st.data())
def test_every_token_after_the_first_is_scored_once(n, seq_len, data):
    stride = data.draw(st.one_of(st.none(), st.integers(1, seq_len)))
    assert scored_positions(n, seq_len, stride) == list(range(1, n))


def test_non_overlapping_windows_follow_the_contract():
    windows = eval_windows(n_tokens=11, seq_len=4)  # 10 targets: windows of 4, 4 and 2
    assert [(w.start, w.length, w.first) for w in windows] == [(0, 4, 0), (4, 4, 0), (8, 2, 0)]


def test_sliding_windows_give_context():
    windows = eval_windows(n_tokens=20, seq_len=8, stride=3)
    assert windows[0].first == 0
    for w in windows[1:]:
        assert w.first >= 8 - 3  # every later target sees at least L - S + 1 tokens
    assert windows[-1].start + windows[-1].length == 19


@pytest.mark.parametrize("stride", [0, 9])
def test_bad_stride(stride):
    with pytest.raises(ConfigError, match="stride"):
        eval_windows(100, 8, stride)


# ---------------------------------------------------------------- exact numbers


@pytest.mark.parametrize("stride", [None, 5, 16])
def test_uniform_logits_give_ln_v(stride):
    stream = byte_stream(bytes(range(256)) * 3 + b"tail")  # 772 tokens: a partial last window
    res = evaluate(Uniform(256), stream, seq_len=16, batch_size=3, stride=stride)
    assert res.tokens == len(stream) - 1 and res.bytes == len(stream) - 1
    assert res.val_loss == float(np.float32(math.log(256)))  # float32 CE, exact float64 sum
    assert res.val_bpb == pytest.approx(8.0, abs=1e-6)
    assert (res.seq_len, res.stride, res.device) == (16, stride, "cpu")


def test_bpb_uses_the_bytes_of_the_scored_targets():
    ids = np.array([5, 6, 7, 8, 9], dtype=np.int32)
    stream = TokenStream(ids, np.array([100, 2, 3, 0, 4], dtype=np.int32), "made-up")
    res = evaluate(Uniform(10), stream, seq_len=2)
    assert (res.tokens, res.bytes) == (4, 9)  # the first token's 100 bytes are never scored
    assert res.val_bpb == pytest.approx(4 * math.log(10) / math.log(2) / 9, rel=1e-7)


@pytest.mark.parametrize("stride", [None, 1, 7])
def test_targets_are_the_next_tokens(stride):
    stream = byte_stream(bytes(i % 256 for i in range(1000)))
    res = evaluate(NextToken(256), stream, seq_len=32, batch_size=4, stride=stride)
    assert res.val_loss == 0.0 and res.tokens == 999
    shifted = byte_stream(bytes((i * 2) % 256 for i in range(1000)))  # next token is x + 2
    assert evaluate(NextToken(256), shifted, seq_len=32, stride=stride).val_loss > 90


@pytest.mark.parametrize("n, seq_len, stride", [(100, 16, None), (100, 16, 4), (101, 10, 10), (37, 8, 1)])
def test_each_target_is_scored_at_the_expected_window_position(n, seq_len, stride):
    """Against an independent formula: target p is scored in the first window that holds it."""
    vocab = 3
    stream = byte_stream(bytes(i % vocab for i in range(n)))
    res = evaluate(PositionLM(vocab), stream, seq_len=seq_len, batch_size=4, stride=stride)
    step = stride or seq_len
    total = 0.0
    for p in range(1, n):
        j = max(0, math.ceil((p - seq_len) / step))  # first window with j*step + 1 <= p <= j*step + L
        t = p - 1 - j * step  # position inside that window
        lse = math.log(math.exp(0.01 * t) + vocab - 1)
        total += lse - (0.01 * t if stream.tokens[p] == 0 else 0.0)
    assert res.val_loss == pytest.approx(total / (n - 1), rel=1e-6)


# ---------------------------------------------------------------- text vs shards, determinism


def test_bpb_from_text_and_from_shards_agree(sp, tmp_path):
    text = read_text_file(bundled_corpus_path(), 12_000).decode() + "\n 😀 中文  end"
    (tmp_path / "val.txt").write_text(text, encoding="utf-8")
    from_text = load_tokens([str(tmp_path / "val.txt")], sp)
    half = len(from_text) // 2
    write_shard(tmp_path / "fineweb_val_000000.bin", from_text.tokens[:half])
    write_shard(tmp_path / "fineweb_val_000001.bin", from_text.tokens[half:])
    from_shards = load_tokens(str(tmp_path / "fineweb_val_*.bin"), sp)
    model = TinyLM(sp.vocab_size)
    for stride in (None, 48):
        a = evaluate(model, from_text, seq_len=64, batch_size=4, stride=stride)
        b = evaluate(model, from_shards, seq_len=64, batch_size=4, stride=stride)
        assert (a.val_loss, a.val_bpb, a.tokens, a.bytes) == (b.val_loss, b.val_bpb, b.tokens, b.bytes)
        assert a.bytes == len(text.encode()) - from_text.byte_counts[0]  # all but the first token (BOS)
    assert a.val_bpb < math.log2(sp.vocab_size)  # sanity: bpb is per byte, tokens span > 1 byte


def test_byte_level_text_and_shards_agree(tmp_path):
    data = read_text_file(bundled_corpus_path(), 5_000)
    (tmp_path / "v.txt").write_bytes(data)
    write_shard(tmp_path / "v.bin", ByteTokenizer().encode_bytes(data))
    model = TinyLM(256)
    a = evaluate(model, load_tokens([str(tmp_path / "v.txt")]), seq_len=50)
    b = evaluate(model, load_tokens([str(tmp_path / "v.bin")]), seq_len=50)
    assert (a.val_loss, a.val_bpb, a.bytes) == (b.val_loss, b.val_bpb, b.bytes)
    assert a.val_bpb == pytest.approx(a.val_loss / math.log(2), rel=1e-12)  # 1 byte per token


def test_deterministic_run_to_run():
    stream = byte_stream(read_text_file(bundled_corpus_path(), 4_000))
    runs = [evaluate(TinyLM(256), stream, seq_len=40, batch_size=3, stride=30).to_dict() for _ in range(3)]
    for r in runs:
        r.pop("seconds"), r.pop("tokens_per_second")
    assert runs[0] == runs[1] == runs[2]


def test_sliding_windows_help_a_model_that_uses_context():
    stream = byte_stream(read_text_file(bundled_corpus_path(), 4_000))
    model = TinyLM(256)
    plain = evaluate(model, stream, seq_len=32)
    sliding = evaluate(model, stream, seq_len=32, stride=8)
    assert plain.tokens == sliding.tokens == len(stream) - 1
    assert plain.val_loss != sliding.val_loss


# ---------------------------------------------------------------- interface and errors


def test_result_dict_and_mode_restored():
    model = TinyLM(256).train()
    res = evaluate(model, byte_stream(b"hello world, " * 20), seq_len=16, max_tokens=101)
    assert model.training
    assert isinstance(res, EvalResult) and res.tokens == 100
    d = res.to_dict()
    for key in ["val_loss", "val_bpb", "tokens", "bytes", "seconds", "tokens_per_second", "device",
                "seq_len", "stride"]:
        assert key in d
    assert d["seconds"] > 0 and d["tokens"] == 100
    assert d["tokens_per_second"] == pytest.approx(d["tokens"] / d["seconds"])


def test_bf16_autocast_close_to_fp32():
    stream = byte_stream(read_text_file(bundled_corpus_path(), 2_000))
    fp32 = evaluate(TinyLM(256), stream, seq_len=64)
    bf16 = evaluate(TinyLM(256), stream, seq_len=64, autocast_bf16=True)
    assert bf16.val_loss == pytest.approx(fp32.val_loss, rel=0.02)


def test_errors():
    stream = byte_stream(b"abcdef")
    with pytest.raises(DataError, match="expected at least 2"):
        evaluate(Uniform(256), byte_stream(b"a"), seq_len=4)
    with pytest.raises(DataError, match="token id 102 is outside the model's vocabulary 0..99"):
        evaluate(Uniform(100), stream, seq_len=4)
    with pytest.raises(ConfigError, match="stride"):
        evaluate(Uniform(256), stream, seq_len=4, stride=5)
    with pytest.raises(ConfigError, match="model output"):
        evaluate(nn.Identity(), stream, seq_len=4)
    zero_bytes = TokenStream(stream.tokens, np.zeros(6, dtype=np.int32), "x")
    with pytest.raises(DataError, match="0 bytes"):
        evaluate(Uniform(256), zero_bytes, seq_len=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    stream = byte_stream(read_text_file(bundled_corpus_path(), 50_000))
    cpu = evaluate(TinyLM(256), stream, seq_len=128, batch_size=8)
    gpu = evaluate(TinyLM(256).cuda(), stream, seq_len=128, batch_size=8, device="cuda")
    assert gpu.device.startswith("cuda") and gpu.tokens == cpu.tokens and gpu.bytes == cpu.bytes
    assert gpu.val_bpb == pytest.approx(cpu.val_bpb, rel=1e-4)
    bf16 = evaluate(TinyLM(256).cuda(), stream, seq_len=128, device="cuda", autocast_bf16=True)
    assert bf16.val_bpb == pytest.approx(cpu.val_bpb, rel=0.02)
    with pytest.raises(ConfigError, match="device"):
        evaluate(TinyLM(256), stream, seq_len=128, device="cuda")
