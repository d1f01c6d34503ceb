"""Sampling text from a model: what the bytes of an artifact bought."""

from __future__ import annotations

import numpy as np
import torch

from .errors import UsageError


@torch.inference_mode()
def generate(model: torch.nn.Module, prompt: np.ndarray, *, tokens: int, temperature: float = 0.8,
             top_k: int | None = None, seed: int = 0, context: int = 256) -> np.ndarray:
    """Continue ``prompt`` by ``tokens`` ids; temperature 0 is greedy. Seeded, so repeatable."""
    if tokens < 0 or temperature < 0:
        raise UsageError(f"sample: tokens {tokens} and temperature {temperature} must be >= 0")
    if len(prompt) == 0:
        raise UsageError("sample: the prompt is empty; give at least one token of text")
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.as_tensor(np.asarray(prompt, dtype=np.int64), device=device)[None]
    for _ in range(tokens):
        logits = model(ids[:, -context:])[0, -1].float().cpu()  # (V,)
        ids = torch.cat([ids, _pick(logits, temperature, top_k, gen).to(device)[None, None]], dim=1)
    return ids[0, len(prompt):].cpu().numpy()


def _pick(logits: torch.Tensor, temperature: float, top_k: int | None,
          gen: torch.Generator) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax()
    logits = logits / temperature
    if top_k:
        cut = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < cut, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)[0]
