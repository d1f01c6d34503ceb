"""The built-in GPT, in the parameter-golf style, built from masked (or plain dense) layers.

emb -> [rms] -> blocks -> rms -> * pre_logit_scale -> (tied) logits -> softcap.
Block: x += attn_scale * Attn(rms(x)); x += mlp_scale * MLP(rms(x)).
Attn: q/k/v projections, grouped KV heads, per-head RMS-norm of q and k, rotary, causal
SDPA, per-head scale, output projection. MLP: fc -> relu or relu^2 -> proj.

Module names follow the parameter-golf lottery-ticket entry (the layout interop/pg_import.py reads):
``tok_emb``, ``blocks.N.attn.{c_q,c_k,c_v,proj}``, ``blocks.N.mlp.{fc,proj}``,
``blocks.N.{attn_scale,mlp_scale}``, ``blocks.N.attn.head_scale``, ``pre_logit_scale``,
``lm_head`` (untied only). ``GPT(config, masked=False)`` has ``nn.Linear`` / ``nn.Embedding``
under the same names, so its state-dict keys ``X.weight`` are the masked layers' tensor names;
with ``adapter_rank`` > 0 each of them also holds ``X.adapter_a`` / ``X.adapter_b`` (nn/layers.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.layers import AdaptedEmbedding, AdaptedLinear, MaskedEmbedding, MaskedLinear, bind_seed
from ..nn.mask_training import MaskTraining
# the config lives in a torch-free module; re-exported so ``from ticketpack.models.gpt_model import ...`` works
from .gpt_config import (ACTIVATIONS, PRESETS, GPTConfig, config_from_preset,  # noqa: F401
                         ModelLimits)

# ---------------------------------------------------------------- modules

def _linear(cfg: GPTConfig, masked: bool, in_f: int, out_f: int, init: str,
            training: MaskTraining | None = None) -> nn.Module:
    if masked:
        return MaskedLinear(in_f, out_f, init=init, mask=cfg.mask_spec(), scale_mode=cfg.scale_mode,
                            adapter_rank=cfg.adapter_rank, mask_training=training)
    if cfg.adapter_rank:
        return AdaptedLinear(in_f, out_f, cfg.adapter_rank)
    return nn.Linear(in_f, out_f, bias=False)


def _ones(n: int, enabled: bool) -> nn.Parameter | None:
    return nn.Parameter(torch.ones(n)) if enabled else None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, weight: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim)) if weight else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight)


class Rotary(nn.Module):
    """cos/sin tables of the rotary embedding, inv_freq = base^(-2i/head_dim)."""

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        self.head_dim, self.base = head_dim, base
        self.register_buffer("inv_freq", self.frequencies(), persistent=False)

    def frequencies(self) -> torch.Tensor:
        return 1.0 / (self.base ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))

    def forward(self, T: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.arange(T, dtype=torch.float32, device=self.inv_freq.device)
        freqs = torch.outer(t, self.inv_freq)  # (T, D/2)
        return freqs.cos()[None, None].to(dtype), freqs.sin()[None, None].to(dtype)  # (1, 1, T, D/2)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D): halves x1, x2 -> cat(x1*cos + x2*sin, -x1*sin + x2*cos)."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat((x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, masked: bool, training: MaskTraining | None = None) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.qk_norm = cfg.qk_norm
        C, kv_dim = cfg.model_dim, cfg.num_kv_heads * cfg.head_dim
        self.c_q = _linear(cfg, masked, C, C, cfg.init, training)
        self.c_k = _linear(cfg, masked, C, kv_dim, cfg.init, training)
        self.c_v = _linear(cfg, masked, C, kv_dim, cfg.init, training)
        self.proj = _linear(cfg, masked, C, C, cfg.init, training)
        self.head_scale = _ones(cfg.num_heads, cfg.head_scales)
        self.rotary = Rotary(cfg.head_dim, cfg.rope_base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        H, Hkv, D = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.c_q(x).view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = self.c_k(x).view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        v = self.c_v(x).view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        if self.qk_norm:
            q, k = F.rms_norm(q, (D,)), F.rms_norm(k, (D,))
        cos, sin = self.rotary(T, q.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=Hkv != H)  # (B, H, T, D)
        if self.head_scale is not None:
            y = y * self.head_scale.to(y.dtype)[None, :, None, None]
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig, masked: bool, training: MaskTraining | None = None) -> None:
        super().__init__()
        self.fc = _linear(cfg, masked, cfg.model_dim, cfg.mlp_hidden, cfg.mlp_fc_init, training)
        self.proj = _linear(cfg, masked, cfg.mlp_hidden, cfg.model_dim, cfg.init, training)
        self.squared = cfg.mlp_activation == "relu2"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(x))  # (B, T, mlp_hidden)
        return self.proj(h.square() if self.squared else h)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, masked: bool, training: MaskTraining | None = None) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.model_dim, cfg.rmsnorm_weight)
        self.attn = CausalSelfAttention(cfg, masked, training)
        self.mlp_norm = RMSNorm(cfg.model_dim, cfg.rmsnorm_weight)
        self.mlp = MLP(cfg, masked, training)
        self.attn_scale = _ones(cfg.model_dim, cfg.block_scales)
        self.mlp_scale = _ones(cfg.model_dim, cfg.block_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + _scaled(self.attn_scale, self.attn(self.attn_norm(x)))
        return x + _scaled(self.mlp_scale, self.mlp(self.mlp_norm(x)))


def _scaled(scale: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
    return y if scale is None else scale.to(y.dtype) * y


class GPT(nn.Module):
    """The built-in language model; ``masked=False`` gives the dense twin a ticket loads into.

    ``mask_training``: how the masked layers train (estimator, density); None: each mask
    kind's default estimator. The config holds only what an artifact stores."""

    def __init__(self, config: GPTConfig, *, masked: bool = True, seed: int | None = None,
                 mask_training: MaskTraining | None = None) -> None:
        super().__init__()
        self.config, self.masked = config, masked
        C, V = config.model_dim, config.vocab_size
        if masked:
            self.tok_emb = MaskedEmbedding(V, C, init=config.embed_init, mask=config.mask_spec(),
                                           scale_mode=config.scale_mode, adapter_rank=config.adapter_rank,
                                           mask_training=mask_training)
        elif config.adapter_rank:
            self.tok_emb = AdaptedEmbedding(V, C, config.adapter_rank)
        else:
            self.tok_emb = nn.Embedding(V, C)
        self.emb_norm = RMSNorm(C, config.rmsnorm_weight) if config.embed_norm else None
        self.blocks = nn.ModuleList(Block(config, masked, mask_training) for _ in range(config.num_layers))
        self.final_norm = RMSNorm(C, config.rmsnorm_weight)
        self.pre_logit_scale = _ones(C, config.pre_logit_scale)
        self.lm_head = None if config.tie_embeddings else _linear(config, masked, C, V, config.init, mask_training)
        if masked and seed is not None:
            bind_seed(self, seed)

    def _embedding_weight(self) -> torch.Tensor:
        emb = self.tok_emb
        return emb.table() if isinstance(emb, (MaskedEmbedding, AdaptedEmbedding)) else emb.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) int64 -> logits (B, T, V) float32."""
        emb_w = self._embedding_weight()  # (V, C), computed once when tied
        x = F.embedding(idx, emb_w)  # (B, T, C)
        if self.emb_norm is not None:
            x = self.emb_norm(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_norm(x)
        if self.pre_logit_scale is not None:
            x = x * self.pre_logit_scale.to(x.dtype)
        logits = F.linear(x, emb_w) if self.lm_head is None else self.lm_head(x)
        logits = logits.float()  # (B, T, V)
        c = self.config.logit_softcap
        return c * torch.tanh(logits / c) if c > 0 else logits

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per token) of targets (B, T) under float32 logits."""
        logits = self(idx)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def dense_gpt_on_meta(config: GPTConfig) -> GPT:
    """A dense GPT with shapes but no storage: check what will be loaded before allocating."""
    with torch.device("meta"):
        return GPT(config, masked=False)


def materialize_unfilled(model: GPT) -> GPT:
    """Give a meta-device GPT uninitialised CPU storage, for loaders that overwrite every
    parameter (``ticket.load_effective`` checks that they do); skipping torch's default
    init saves about a second per 100M weights."""
    model.to_empty(device="cpu")
    for module in model.modules():
        if isinstance(module, Rotary):  # non-persistent buffers are not loaded: recompute
            module.inv_freq = module.frequencies()
    return model
