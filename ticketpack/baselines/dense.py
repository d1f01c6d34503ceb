"""The dense trainer the baselines share: the built-in GPT with ordinary float weights.

int8 export trains it as is; ternary and binary QAT train it with their parametrizations
registered (``baselines.qat``). It uses the ticket trainer's batches
(``text.corpus.batch_iterator``: a pure function of seed and step) and learning-rate shape
(``train.schedule.lr_multiplier``), so a dense baseline and a ticket trained with the same steps,
batch size, sequence length and seed see the same tokens in the same order.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..text.corpus import batch_iterator
from ..models.gpt_model import GPT, GPTConfig
from ..train.schedule import lr_multiplier

Progress = Callable[[dict], None]


def init_dense_(model: GPT) -> None:
    """A sensible dense init: embedding N(0, 1/C) (tied logits start near 1), output
    projections zero (each block starts as the identity), other linears torch's default."""
    C = model.config.model_dim
    with torch.no_grad():
        nn.init.normal_(model.tok_emb.weight, std=C ** -0.5)
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                p.zero_()


def build_dense(config: GPTConfig, seed: int) -> GPT:
    """A dense GPT of ``config`` with ``init_dense_``, drawn from torch's generator at ``seed``
    (the global generator's state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT(config, masked=False)
        init_dense_(model)
    return model


def train_dense(model: nn.Module, tokens: np.ndarray, *, steps: int, batch_size: int, seq_len: int,
                seed: int, lr: float, weight_decay: float = 0.1, warmup: float = 0.02,
                warmdown: float = 0.3, log_every: int = 10, progress: Progress | None = None) -> float:
    """AdamW, betas (0.9, 0.95), decay on 2-D weights only, warm-up / warm-down (fractions of
    the run), gradient clipping at 1.0; trains ``model`` in place on ``tokens``.

    ``progress`` receives a ``step`` event every ``log_every`` steps (0: never), with the
    fields the ticket trainer's step events carry. Returns training seconds."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    batches = batch_iterator(tokens, batch_size, seq_len, seed)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        mult = lr_multiplier(step / steps, warmup, warmdown)
        for group in opt.param_groups:
            group["lr"] = lr * mult
        x, y = next(batches)
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if progress is not None and log_every and (step + 1) % log_every == 0:
            seconds, seen = time.perf_counter() - t0, (step + 1) * batch_size * seq_len
            progress({"event": "step", "step": step + 1, "loss": float(loss.detach()), "tokens": seen,
                      "progress": (step + 1) / steps, "train_seconds": seconds,
                      "tokens_per_second": seen / max(seconds, 1e-9)})
    return time.perf_counter() - t0
