"""The built-in GPT: config, names, forward semantics, masked == dense twin, determinism."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from ticketpack.errors import ConfigError
from ticketpack.nn.layers import MaskedEmbedding, MaskedLinear, bind_seed, masked_layers
from ticketpack.models.gpt_model import GPT, PRESETS, GPTConfig, apply_rotary, config_from_preset
from ticketpack.ticket import model_from_ticket, ticket_from_model

TINY = dict(vocab_size=64, num_layers=2, model_dim=32, num_heads=4, num_kv_heads=2, mlp_mult=2)


def tiny(**overrides) -> GPTConfig:
    return GPTConfig.from_dict({**TINY, **overrides})


def masked_model(cfg: GPTConfig, seed: int = 11) -> GPT:
    torch.manual_seed(0)
    return GPT(cfg, seed=seed)


def dense_twin(model: GPT, weights: dict[str, torch.Tensor]) -> GPT:
    """The dense GPT holding ``weights`` for the masked layers and the model's other parameters."""
    owned = {f"{p}.{n}" for p, layer in masked_layers(model) for n, _ in layer.named_parameters()}
    state = dict(weights)
    state.update({n: p.detach() for n, p in model.named_parameters() if n not in owned})
    dense = GPT(model.config, masked=False)
    dense.load_state_dict(state, strict=True)
    return dense.eval()


def randomise_plain_parameters(model: GPT) -> None:
    """fp16-exact random values for every non-mask parameter, so scales are really exercised."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith(("scores", "mask_log_step")):
                p.copy_((0.5 + torch.rand(p.shape, generator=gen)).half().float())


# ---------------------------------------------------------------- config

def test_config_json_round_trip():
    cfg = tiny(mlp_activation="relu", logit_softcap=30, mask="multibit:4", scale_mode="row")
    again = GPTConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.logit_softcap == 30.0 and isinstance(again.logit_softcap, float)
    assert GPTConfig.from_dict({}) == GPTConfig()


@pytest.mark.parametrize("overrides,field", [
    (dict(colour="red"), "unknown key 'colour'"),
    (dict(model_dim=30), "model_dim"),  # 30 % 4 heads
    (dict(num_kv_heads=3), "num_kv_heads"),
    (dict(model_dim=12, num_heads=4, num_kv_heads=4), "head_dim"),  # head_dim 3 is odd
    (dict(mlp_activation="gelu"), "mlp_activation"),
    (dict(logit_softcap=-1.0), "logit_softcap"),
    (dict(rope_base=0), "rope_base"),
    (dict(init="normal"), "init"),
    (dict(mlp_fc_init="kaiming"), "mlp_fc_init"),
    (dict(scale_mode="column"), "scale_mode"),
    (dict(mask="ternary"), "mask"),
    (dict(mask="nm:2:64"), "multiples of M=64"),
    (dict(mask_estimator=3), "mask_estimator"),  # a legacy key (dropped) of the wrong type
    (dict(num_layers=0), "num_layers"),
    (dict(vocab_size=True), "vocab_size"),
    (dict(vocab_size="256"), "vocab_size"),
    (dict(tie_embeddings=1), "tie_embeddings"),
    (dict(logit_softcap="30"), "logit_softcap"),
])
def test_config_validation(overrides, field):
    with pytest.raises(ConfigError, match=field):
        tiny(**overrides)


def test_presets_build_and_pg_lth_matches_the_submission():
    assert {"tiny", "small", "pg-lth"} <= set(PRESETS)
    with pytest.raises(ConfigError, match="preset"):
        config_from_preset("huge")
    cfg = config_from_preset("pg-lth")
    with torch.device("meta"):  # shapes only: no 118M-element allocation
        model = GPT(cfg)
    frozen = sum(layer.scores.numel() for _, layer in masked_layers(model))
    scales = sum(p.numel() for n, p in model.named_parameters() if not n.endswith("scores"))
    assert (frozen, scales) == (118_489_088, 33_920)  # field.md: the supermask entry's counts
    assert model.blocks[3].mlp.fc.init == "he_uniform" and model.blocks[3].attn.c_k.init == "xavier_uniform"


def test_parameter_names_follow_pg_lth():
    cfg = tiny(tie_embeddings=False)
    names = set(GPT(cfg, masked=False).state_dict())
    for n in range(2):
        for part in ("attn.c_q", "attn.c_k", "attn.c_v", "attn.proj", "mlp.fc", "mlp.proj"):
            assert f"blocks.{n}.{part}.weight" in names
        assert {f"blocks.{n}.attn_scale", f"blocks.{n}.mlp_scale", f"blocks.{n}.attn.head_scale"} <= names
    assert {"tok_emb.weight", "pre_logit_scale", "lm_head.weight"} <= names
    model = GPT(cfg, seed=1)
    assert {layer.tensor_name for _, layer in masked_layers(model)} == {n for n in names if n.endswith(".weight")}
    assert "lm_head.weight" not in GPT(tiny(), masked=False).state_dict()


def test_flags_remove_parameters():
    cfg = tiny(block_scales=False, head_scales=False, pre_logit_scale=False, rmsnorm_weight=True)
    names = set(GPT(cfg, masked=False).state_dict())
    assert not any("scale" in n for n in names)
    assert {"blocks.0.attn_norm.weight", "blocks.0.mlp_norm.weight", "final_norm.weight", "emb_norm.weight"} <= names


# ---------------------------------------------------------------- forward

@pytest.mark.parametrize("overrides", [
    dict(), dict(tie_embeddings=False), dict(num_kv_heads=4), dict(num_kv_heads=1),
    dict(mlp_activation="relu"), dict(logit_softcap=5.0), dict(qk_norm=False, embed_norm=False),
    dict(mask="multibit:4", scale_mode="row"), dict(mask="nm:2:4", scale_mode="tensor"),
])
def test_forward_shapes_and_loss(overrides):
    model = masked_model(tiny(**overrides))
    idx = torch.randint(0, 64, (3, 10))
    logits = model(idx)
    assert logits.shape == (3, 10, 64) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    if model.config.logit_softcap:
        assert logits.abs().max() < model.config.logit_softcap
    expect = F.cross_entropy(logits.reshape(-1, 64), idx.reshape(-1))
    assert torch.equal(model.loss(idx, idx), expect)


def test_softcap_is_c_tanh_of_the_raw_logits():
    capped = masked_model(tiny(logit_softcap=2.0))
    raw = masked_model(tiny(logit_softcap=0.0))
    idx = torch.randint(0, 64, (2, 6))
    assert torch.equal(capped(idx), 2.0 * torch.tanh(raw(idx) / 2.0))


def test_attention_is_causal():
    model = masked_model(tiny()).eval()
    idx = torch.randint(0, 64, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 64
    assert torch.equal(model(idx)[0, :8], model(changed)[0, :8])
    assert not torch.equal(model(idx)[0, 8:], model(changed)[0, 8:])


def test_rotary_follows_the_pg_lth_convention():
    D, T, base = 8, 5, 10000.0
    x = torch.randn(1, 1, T, D, dtype=torch.float64)
    inv = torch.tensor([base ** (-2 * i / D) for i in range(D // 2)], dtype=torch.float64)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv  # (T, D/2)
    x1, x2 = x[..., :4], x[..., 4:]
    expect = torch.cat((x1 * ang.cos() + x2 * ang.sin(), -x1 * ang.sin() + x2 * ang.cos()), -1)
    assert torch.allclose(apply_rotary(x, ang.cos(), ang.sin()), expect)
    model = GPT(tiny(model_dim=16, num_heads=2, num_kv_heads=1), masked=False)
    cos, sin = model.blocks[0].attn.rotary(T, torch.float32)
    assert torch.allclose(cos[0, 0].double(), ang.cos(), atol=1e-6)
    assert torch.allclose(sin[0, 0].double(), ang.sin(), atol=1e-6)


def test_attention_matches_an_explicit_gqa_reference():
    """Grouped KV heads (query head h reads KV head h // (H/Hkv)), qk rms-norm, rotary, head scale."""
    torch.manual_seed(4)
    cfg = tiny(num_heads=4, num_kv_heads=2)
    attn = GPT(cfg, masked=False).blocks[0].attn
    with torch.no_grad():
        attn.head_scale.copy_(torch.tensor([0.5, 1.0, 1.5, 2.0]))
    x = torch.randn(2, 7, 32)
    B, T, H, Hkv, D = 2, 7, 4, 2, 8
    q = F.rms_norm((x @ attn.c_q.weight.T).view(B, T, H, D), (D,)).transpose(1, 2)
    k = F.rms_norm((x @ attn.c_k.weight.T).view(B, T, Hkv, D), (D,)).transpose(1, 2)
    v = (x @ attn.c_v.weight.T).view(B, T, Hkv, D).transpose(1, 2)
    ang = torch.arange(T)[:, None].float() * (10000.0 ** (-torch.arange(0, D, 2).float() / D))
    q, k = apply_rotary(q, ang.cos(), ang.sin()), apply_rotary(k, ang.cos(), ang.sin())
    k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
    att = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    att = att.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")).softmax(-1)
    y = (att @ v) * attn.head_scale[None, :, None, None]
    expect = y.transpose(1, 2).reshape(B, T, H * D) @ attn.proj.weight.T
    assert torch.allclose(attn(x), expect, atol=1e-5)


# ---------------------------------------------------------------- masked vs dense

@pytest.mark.parametrize("tie", [True, False])
def test_all_ones_masked_equals_dense_with_frozen_weights(tie):
    model = masked_model(tiny(tie_embeddings=tie))
    with torch.no_grad():
        for _, layer in masked_layers(model):
            layer.scores.fill_(1.0)  # every level 1
    dense = dense_twin(model, {layer.tensor_name: layer.frozen for _, layer in masked_layers(model)})
    idx = torch.randint(0, 64, (2, 9))
    assert torch.equal(model(idx), dense(idx))


@pytest.mark.parametrize("overrides", [dict(), dict(mask="multibit:4", scale_mode="row", tie_embeddings=False),
                                       dict(mask="nm:2:4", scale_mode="tensor", mlp_activation="relu",
                                            logit_softcap=30.0)])
def test_trained_looking_masked_equals_dense_twin_and_ticket(overrides):
    model = masked_model(tiny(**overrides))
    with torch.no_grad():
        for _, layer in masked_layers(model):
            layer.scores.normal_()
    randomise_plain_parameters(model)
    weights = {layer.tensor_name: layer.effective_weight().detach() for _, layer in masked_layers(model)}
    idx = torch.randint(0, 64, (2, 9))
    logits = model(idx)
    assert torch.equal(logits, dense_twin(model, weights)(idx))
    loaded = model_from_ticket(ticket_from_model(model, 11, model.config.to_dict()))
    assert torch.equal(logits, loaded(idx))


def test_masked_layers_and_dense_layers():
    masked = GPT(tiny(tie_embeddings=False))
    dense = GPT(tiny(tie_embeddings=False), masked=False)
    assert isinstance(masked.tok_emb, MaskedEmbedding) and isinstance(masked.lm_head, MaskedLinear)
    assert len(masked_layers(masked)) == 1 + 2 * 6 + 1 and masked_layers(dense) == []
    with pytest.raises(ConfigError, match="bind_seed"):
        masked(torch.zeros(1, 3, dtype=torch.long))


# ---------------------------------------------------------------- determinism and learning

def test_forward_is_bit_identical_run_to_run():
    idx = torch.randint(0, 64, (2, 16))
    a = masked_model(tiny())
    b = masked_model(tiny())
    assert torch.equal(a(idx), a(idx))
    assert torch.equal(a(idx), b(idx))
    c = GPT(tiny())
    with torch.no_grad():
        c.load_state_dict(a.state_dict())  # scores only: frozen comes from the seed
    bind_seed(c, 11)
    assert torch.equal(a(idx), c(idx))
    bind_seed(c, 12)
    assert not torch.equal(a(idx), c(idx))


def test_mask_training_lowers_the_loss():
    torch.manual_seed(0)
    model = GPT(tiny(), seed=3)
    idx = torch.randint(0, 64, (4, 16))
    opt = torch.optim.Adam([p for n, p in model.named_parameters()], lr=0.05)
    first = model.loss(idx[:, :-1], idx[:, 1:]).item()
    for _ in range(15):
        opt.zero_grad()
        model.loss(idx[:, :-1], idx[:, 1:]).backward()
        opt.step()
    assert model.loss(idx[:, :-1], idx[:, 1:]).item() < first - 0.3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_training_step_and_float32_agreement():
    model = masked_model(tiny(mask="multibit:4", scale_mode="row"))
    idx = torch.randint(0, 64, (2, 16))
    cpu_logits = model(idx)
    model.cuda()
    bind_seed(model, 11)  # regenerated on the GPU: the same bits
    assert torch.allclose(model(idx.cuda()).cpu(), cpu_logits, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model.loss(idx[:, :-1].cuda(), idx[:, 1:].cuda())
    loss.backward()
    assert all(layer.scores.grad.abs().sum() > 0 for _, layer in masked_layers(model))
