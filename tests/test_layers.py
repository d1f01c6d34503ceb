"""Masked layers: seed binding, effective weights, scales, masks, and any torch module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ticketpack.nn import frozen as rng
from ticketpack.errors import ConfigError
from ticketpack.nn.layers import (MaskedEmbedding, MaskedLinear, bind_seed, masked_layers, set_density,
                                  set_temperature)
from ticketpack.format.constants import SCALE_MODES
from ticketpack.nn.mask_training import MaskTraining
from ticketpack.ticket import ticket_from_model


class Custom(nn.Module):
    """Not a GPT: an embedding, a nested list of linears and a plain parameter."""

    def __init__(self):
        super().__init__()
        self.emb = MaskedEmbedding(50, 16, init="signed_constant_xavier")
        self.stack = nn.ModuleList([
            nn.Sequential(MaskedLinear(16, 32, init="he_uniform", scale_mode="row"), nn.ReLU()),
            MaskedLinear(32, 8, mask="multibit:4", scale_mode="tensor"),
        ])
        self.gain = nn.Parameter(torch.full((8,), 2.0))

    def forward(self, idx):
        x = self.emb(idx)  # (B, T, 16)
        x = self.stack[1](self.stack[0](x))  # (B, T, 8)
        return x * self.gain


def test_bind_seed_regenerates_named_frozen_weights_on_a_custom_module():
    model = Custom()
    bind_seed(model, 1234)
    names = [(p, layer.tensor_name) for p, layer in masked_layers(model)]
    assert names == [("emb", "emb.weight"), ("stack.0.0", "stack.0.0.weight"), ("stack.1", "stack.1.weight")]
    for _, layer in masked_layers(model):
        expect = rng.frozen_weight_torch(1234, layer.tensor_name, layer.shape, layer.init)
        assert torch.equal(layer.frozen, expect)
        assert np.array_equal(layer.frozen.numpy(), rng.frozen_weight(1234, layer.tensor_name, layer.shape, layer.init))
        assert layer.seed == 1234
    assert not torch.equal(model.stack[1].frozen, rng.frozen_weight_torch(1235, "stack.1.weight", (8, 32), "xavier_uniform"))


def test_bind_seed_on_a_bare_layer_and_bad_seeds():
    layer = MaskedLinear(4, 3)
    bind_seed(layer, 0)
    assert layer.tensor_name == "weight"
    for seed in (-1, 2**32, 1.5, True, "7"):
        with pytest.raises(ConfigError, match="seed"):
            bind_seed(layer, seed)


def test_unbound_layer_refuses_to_run():
    with pytest.raises(ConfigError, match="bind_seed"):
        MaskedLinear(4, 3)(torch.randn(2, 4))


def test_frozen_is_not_saved_scores_and_scales_are():
    model = Custom()
    keys = set(model.state_dict())
    assert not any(k.endswith("frozen") for k in keys)
    assert {"emb.scores", "stack.0.0.scores", "stack.0.0.scale", "stack.1.scale", "stack.1.mask_log_step",
            "gain"} <= keys
    assert model.emb.scale is None
    assert model.stack[0][0].scale.shape == (32, 1) and model.stack[1].scale.shape == ()


@pytest.mark.parametrize("scale_mode", SCALE_MODES)
def test_effective_weight_rule_and_forward(scale_mode):
    torch.manual_seed(0)
    layer = MaskedLinear(12, 6, mask="multibit:4", scale_mode=scale_mode)
    bind_seed(layer, 9)
    if layer.scale is not None:
        with torch.no_grad():
            layer.scale.copy_(torch.rand(layer.scale.shape) + 0.5)
    level = layer.hard_mask()
    assert level.dtype == torch.uint8 and int(level.max()) <= 3
    expect = layer.frozen * level.float()
    if layer.scale is not None:
        expect = expect * layer.scale.detach()
    assert torch.equal(layer.effective_weight().detach(), expect)
    x = torch.randn(3, 12)
    assert torch.equal(layer(x).detach(), F.linear(x, expect))


def test_embedding_forward_is_row_lookup():
    emb = MaskedEmbedding(20, 8, scale_mode="row")
    bind_seed(emb, 3)
    idx = torch.tensor([[0, 5, 19], [5, 5, 1]])
    weight = emb.effective_weight().detach()
    assert torch.equal(emb(idx).detach(), weight[idx])
    assert torch.equal(weight, emb.frozen * emb.hard_mask().float())  # scale starts at 1


def test_gradients_reach_scores_scale_and_step():
    torch.manual_seed(1)
    model = Custom()
    bind_seed(model, 5)
    model(torch.randint(0, 50, (2, 7))).square().sum().backward()
    for _, layer in masked_layers(model):
        assert layer.scores.grad is not None and layer.scores.grad.abs().sum() > 0
        assert layer.scale is None or layer.scale.grad.abs().sum() > 0
    assert model.stack[1].mask_log_step.grad != 0
    assert model.emb.frozen.grad is None


def test_density_and_setters():
    layer = MaskedLinear(40, 25, mask="binary")
    with torch.no_grad():
        layer.scores.copy_(torch.arange(1000).view(25, 40) - 300.0)
    assert layer.density() == 0.7
    topk = MaskedLinear(40, 25, mask="binary", mask_training=MaskTraining("topk", 0.5))
    assert topk.density() == 0.5
    set_density(topk, 0.1)
    assert topk.density() == 0.1
    set_temperature(topk, 0.25)
    assert topk.temperature == 0.25
    for bad in (0, -1.0):
        with pytest.raises(ConfigError):
            set_temperature(topk, bad)
        with pytest.raises(ConfigError):
            set_density(topk, bad)


def test_set_temperature_reaches_every_layer_and_the_gradient():
    model = Custom()
    bind_seed(model, 5)
    set_temperature(model, 0.01)
    assert all(layer.temperature == 0.01 for _, layer in masked_layers(model))
    with torch.no_grad():
        model.emb.scores.fill_(1.0)  # far from the threshold at T = 0.01
    model(torch.randint(0, 50, (1, 4))).sum().backward()
    assert model.emb.scores.grad.abs().max() < 1e-30


@pytest.mark.parametrize("kwargs,field", [
    (dict(init="normal"), "init"), (dict(scale_mode="col"), "scale_mode"),
    (dict(mask="nm:2:3"), "multiple of M=3"), (dict(mask="trinary"), "mask"),
    (dict(mask_training=MaskTraining("quant")), "estimator"),  # not for binary masks
    (dict(mask_training=MaskTraining("topk")), "density"),
])
def test_bad_layer_arguments(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        MaskedLinear(16, 4, **kwargs)


def test_custom_module_ticket_rebuilds_the_same_weights():
    """The layers' contract with ticket.py: a ticket of any module has its effective weights."""
    torch.manual_seed(2)
    model = Custom()
    bind_seed(model, 77)
    with torch.no_grad():  # fp16-exact scales so the fp16 ticket holds them exactly
        model.stack[0][0].scale.copy_(torch.linspace(0.5, 2.0, 32).half().float().view(32, 1))
        model.stack[1].scale.fill_(0.75)
    state = ticket_from_model(model, 77, {}).effective_state_dict()
    for _, layer in masked_layers(model):
        assert torch.equal(state[layer.tensor_name], layer.effective_weight().detach())
    assert torch.equal(state["gain"], model.gain.detach())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bind_seed_on_cuda_gives_the_cpu_bits():
    cpu, gpu = Custom(), Custom().cuda()
    bind_seed(cpu, 99)
    bind_seed(gpu, 99)
    for (_, a), (_, b) in zip(masked_layers(cpu), masked_layers(gpu)):
        assert b.frozen.is_cuda and torch.equal(a.frozen, b.frozen.cpu())
