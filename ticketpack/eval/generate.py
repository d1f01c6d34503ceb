"""Sampling text from a model: what the bytes of an artifact bought."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ArtifactError, UsageError

MAX_SEED = 2**64 - 1  # what torch.Generator.manual_seed accepts


def check_sampling(*, tokens: int, temperature: float, top_k: int | None, seed: int,
                   context: int) -> None:
    """Refuse sampling options that cannot work, before any model is loaded (UsageError)."""
    if _not_int(tokens) or tokens < 0:
        raise UsageError(f"tokens: {tokens!r}, expected an integer >= 0")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature < 0:
        raise UsageError(f"temperature: {temperature!r}, expected a finite number >= 0 (0 = greedy)")
    if top_k is not None and (_not_int(top_k) or top_k < 1):
        raise UsageError(f"top-k: {top_k!r}, expected an integer >= 1 (or none: all tokens)")
    if _not_int(seed) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"seed: {_short(seed)}, expected an integer in 0..2^64-1")
    if _not_int(context) or context < 1:
        raise UsageError(f"context: {context!r}, expected an integer >= 1")


def check_prompt(prompt: str) -> None:
    """A prompt that is text (UsageError otherwise): bytes that are not UTF-8 reach Python as
    lone surrogates, which neither a tokenizer nor the terminal can take."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"prompt: not valid UTF-8 text (byte {exc.start} cannot be decoded); "
                         f"give the prompt as UTF-8") from None


def _not_int(value) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)"


@torch.inference_mode()
def generate(model: torch.nn.Module, prompt: np.ndarray, *, tokens: int, temperature: float = 0.8,
             top_k: int | None = None, seed: int = 0, context: int = 256) -> np.ndarray:
    """Continue ``prompt`` by ``tokens`` ids; temperature 0 is greedy. Seeded, so repeatable."""
    check_sampling(tokens=tokens, temperature=temperature, top_k=top_k, seed=seed, context=context)
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
    if not bool(torch.isfinite(logits).all()):
        raise ArtifactError("sample: the model's logits are not finite (NaN or infinity); "
                            "the artifact's weights or config are unusable")
    if temperature == 0:
        return logits.argmax()
    # shifted to a maximum of 0 first, in float64: a tiny temperature (1e-300) then sends the
    # others to -inf instead of every logit to +-inf (NaN probabilities); sampling nears greedy
    logits = (logits.double() - logits.max().double()) / temperature
    if top_k:
        cut = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < cut, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)[0]
