"""Tickets: from any module, through an artifact, back to bit-identical weights and logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ticketpack.nn import frozen as rng
from ticketpack.artifact import load_ticket, write_artifact
from ticketpack.train.checkpoint import load_checkpoint, save_checkpoint, ticket_from_checkpoint
from ticketpack.errors import CheckpointError, HeaderError
from ticketpack.nn.layers import MaskedEmbedding, MaskedLinear, bind_seed, randomize_scores
from ticketpack.models.gpt_model import GPT, GPTConfig
from ticketpack.ticket import (MaskedTensor, PlainTensor, Ticket, model_from_ticket, ticket_from_model,
                               weights_sha256)

from tests.tiny import TINY_CONFIG


def trained_like(config: GPTConfig, seed: int = 5) -> GPT:
    model = GPT(config)
    randomize_scores(model, seed)
    bind_seed(model, seed)
    return model.eval()


@pytest.mark.parametrize("mask", ["binary", "multibit:4"])
def test_pack_load_gives_bit_identical_weights_and_logits(tmp_path, mask):
    config = GPTConfig.from_dict({**TINY_CONFIG, "mask": mask})
    model = trained_like(config)
    ticket = ticket_from_model(model, 5, config.to_dict())
    write_artifact(ticket, tmp_path / "m.tpk")
    loaded = load_ticket(tmp_path / "m.tpk")
    a, b = ticket.effective_state_dict(), loaded.effective_state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    idx = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        direct = model_from_ticket(ticket)(idx)
        via_file = model_from_ticket(loaded)(idx)
    assert torch.equal(direct, via_file)


def test_masked_model_forward_equals_loaded_dense_model():
    """With fp16-exact plain tensors and no masked scales, the live masked model and the
    model rebuilt from its ticket compute the same logits bit for bit."""
    config = GPTConfig.from_dict({**TINY_CONFIG, "scale_mode": "none"})
    model = trained_like(config)
    idx = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        live = model(idx)
        rebuilt = model_from_ticket(ticket_from_model(model, 5, config.to_dict()))(idx)
    assert torch.equal(live, rebuilt)


def test_checkpoint_ticket_equals_model_ticket(tmp_path):
    config = GPTConfig.from_dict({**TINY_CONFIG, "mask": "multibit:4", "scale_mode": "row"})
    model = trained_like(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".scale"):
                p.uniform_(0.5, 2.0)
    save_checkpoint(tmp_path / "c.safetensors", model, seed=5, config=config.to_dict(),
                    train_state={"step": 3})
    ckpt = load_checkpoint(tmp_path / "c.safetensors")
    assert ckpt.train_state == {"step": 3} and ckpt.seed == 5
    from_ckpt = ticket_from_checkpoint(ckpt)
    from_model = ticket_from_model(model, 5, config.to_dict())
    assert weights_sha256(from_ckpt.effective_state_dict()) == weights_sha256(from_model.effective_state_dict())
    assert any(isinstance(t, MaskedTensor) and t.scale_mode == "row" for t in from_ckpt.tensors)
    restored = GPT(config)
    restored.load_state_dict(ckpt.model_state(), strict=False)
    assert all(torch.equal(dict(restored.named_parameters())[k], v)
               for k, v in model.named_parameters())


def test_masked_layers_form_any_module():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = MaskedEmbedding(10, 8, init="xavier_uniform", mask="binary")
            self.head = nn.Sequential(MaskedLinear(8, 6, init="signed_constant_he", mask="multibit:4",
                                                   scale_mode="tensor"))
            self.gain = nn.Parameter(torch.ones(6))

    module = Tiny()
    bind_seed(module, 77)
    ticket = ticket_from_model(module, 77, {})
    names = [t.name for t in ticket.tensors]
    assert names == ["emb.weight", "head.0.weight", "gain"]
    state = ticket.effective_state_dict()
    frozen = rng.frozen_weight(77, "head.0.weight", (6, 8), "signed_constant_he")
    levels = module.head[0].hard_mask().numpy().astype(np.float32)
    scale = np.float32(module.head[0].scale.detach().numpy().astype(np.float16))
    assert np.array_equal(state["head.0.weight"].numpy(), (frozen * levels) * scale)


def test_unbound_layer_and_duplicate_names_are_refused():
    with pytest.raises(Exception, match="bind_seed"):
        ticket_from_model(nn.Sequential(MaskedLinear(4, 4)), 1, {})
    t = PlainTensor("x", np.zeros(2, np.float16))
    with pytest.raises(HeaderError, match="duplicate"):
        Ticket(seed=1, config={}, tensors=[t, t])


def test_corrupt_checkpoint_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
