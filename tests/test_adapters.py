"""Seeded backbones (mask none) and low-rank adapters: layers, tickets, checkpoints, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ticketpack.nn import frozen as rng
from ticketpack.train.checkpoint import load_checkpoint, save_checkpoint, ticket_from_checkpoint
from ticketpack.errors import ConfigError
from ticketpack.eval.evaluate import evaluate
from ticketpack.nn.layers import AdaptedLinear, MaskedLinear, bind_seed, masked_layers
from ticketpack.models.gpt_model import GPT, config_from_preset
from ticketpack.models.gpt_config import parameter_count
from ticketpack.format.tensors import quantize_rows_int8
from ticketpack.ticket import Int8Tensor, MaskedTensor, PlainTensor, model_from_ticket, ticket_from_model
from ticketpack.train.loop import TrainOptions, train


def trained_like(mask: str, rank: int = 3, seed: int = 5, **overrides) -> GPT:
    """A tiny model whose adapters and scales hold arbitrary values, as training leaves them."""
    torch.manual_seed(seed)
    model = GPT(config_from_preset("tiny", mask=mask, adapter_rank=rank, **overrides), masked=True, seed=seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("adapter_b", "scale")):
                p.copy_(torch.randn(p.shape) * 0.05 + (1 if name.endswith("scale") else 0))
    return model


def test_mask_none_is_the_frozen_weight_times_its_scale():
    layer = MaskedLinear(12, 8, mask="none", scale_mode="row")
    bind_seed(layer, 7)
    assert layer.scores is None and layer.shape == (8, 12)
    with torch.no_grad():
        layer.scale.copy_(torch.linspace(0.5, 2.0, 8).view(8, 1))
    frozen = torch.from_numpy(rng.frozen_weight(7, "weight", (8, 12), "xavier_uniform"))
    assert torch.equal(layer.effective_weight(), frozen * layer.scale)
    assert layer.density() == 1.0 and bool((layer.hard_mask() == 1).all())
    assert [n for n, _ in layer.named_parameters()] == ["scale"]


@pytest.mark.parametrize("scale_mode", ["row", "tensor"])
def test_mask_none_forward_scales_the_output_with_the_weights_gradients(scale_mode):
    layer = MaskedLinear(12, 8, mask="none", scale_mode=scale_mode, adapter_rank=2)
    bind_seed(layer, 7)
    with torch.no_grad():
        layer.scale.mul_(torch.linspace(0.5, 2.0, 8).view(8, 1) if scale_mode == "row" else 1.5)
        layer.adapter_b.normal_()
    x = torch.randn(3, 5, 12, requires_grad=True)
    y = layer(x)
    # the reference: x @ (frozen * scale + B @ A).T, the dense twin's arithmetic
    ref_params = [p.detach().clone().requires_grad_() for p in (layer.scale, layer.adapter_a, layer.adapter_b)]
    x_ref = x.detach().clone().requires_grad_()
    scale, a, b = ref_params
    want = x_ref @ (layer.frozen * scale + b @ a).T
    assert torch.allclose(y, want, atol=1e-5)
    grad = torch.randn_like(y)
    y.backward(grad)
    want.backward(grad)
    for got, ref in zip((x, layer.scale, layer.adapter_a, layer.adapter_b), (x_ref, *ref_params)):
        assert got.grad.shape == ref.grad.shape and torch.allclose(got.grad, ref.grad, atol=1e-4)
    with pytest.raises(ConfigError, match="bind_seed"):
        MaskedLinear(12, 8, mask="none", scale_mode="row")(x)


def test_adapters_start_at_the_backbone_and_learn():
    plain = GPT(config_from_preset("tiny", mask="binary"), masked=True, seed=1)
    torch.manual_seed(0)
    adapted = GPT(config_from_preset("tiny", mask="binary", adapter_rank=4), masked=True, seed=1)
    adapted.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        assert torch.allclose(adapted(x), plain(x), atol=1e-6)  # B = 0
    c_q = adapted.blocks[0].attn.c_q
    assert c_q.adapter_a.shape == (4, 64) and c_q.adapter_b.shape == (64, 4)
    assert bool((c_q.adapter_a.abs() <= 64 ** -0.5).all()) and not bool((c_q.adapter_a == 0).all())
    adapted.loss(x[:, :-1], x[:, 1:]).backward()
    assert c_q.adapter_b.grad.abs().sum() > 0
    assert adapted.tok_emb.adapter_b.grad.abs().sum() > 0
    trainable = sum(p.numel() for p in adapted.parameters())
    scores = sum(layer.scores.numel() for _, layer in masked_layers(adapted))
    assert trainable == parameter_count(adapted.config) == scores + (trainable - scores)  # adapters counted


def test_adapted_linear_is_x_at_weight_plus_low_rank():
    layer = AdaptedLinear(6, 5, rank=2)
    with torch.no_grad():
        layer.adapter_b.normal_()
    x = torch.randn(3, 6)
    want = x @ (layer.weight + layer.adapter_b @ layer.adapter_a).T
    assert torch.allclose(layer(x), want, atol=1e-5)
    with pytest.raises(ConfigError, match="adapter_rank"):
        AdaptedLinear(6, 5, rank=-1)


@pytest.mark.parametrize("mask", ["none", "binary", "multibit:4"])
@pytest.mark.parametrize("dtype", ["f16", "int8"])
def test_ticket_holds_adapters_after_their_layer(mask, dtype):
    model = trained_like(mask, scale_mode="row")
    ticket = ticket_from_model(model, 5, model.config.to_dict(), adapter_dtype=dtype)
    names = [t.name for t in ticket.tensors]
    i = names.index("blocks.1.mlp.fc.weight")
    assert names[i + 1:i + 3] == ["blocks.1.mlp.fc.adapter_a", "blocks.1.mlp.fc.adapter_b"]
    kind = Int8Tensor if dtype == "int8" else PlainTensor
    adapters = [t for t in ticket.tensors if ".adapter_" in t.name]
    assert len(adapters) == 2 * (1 + 6 * 2) and all(isinstance(t, kind) for t in adapters)
    masked = [t for t in ticket.tensors if isinstance(t, MaskedTensor)]
    assert all((t.levels is None) == (mask == "none") for t in masked)
    b = dict(model.named_parameters())["blocks.0.attn.c_k.adapter_b"].detach()
    stored = next(t for t in ticket.tensors if t.name == "blocks.0.attn.c_k.adapter_b")
    if dtype == "int8":
        q, scale = quantize_rows_int8(b)
        assert np.array_equal(stored.q, q) and np.array_equal(stored.scale, scale)
    else:
        assert np.array_equal(stored.data, b.numpy().astype(np.float16))
    dense = model_from_ticket(ticket)
    state = dict(dense.named_parameters())
    for t in ticket.tensors:  # the dense twin holds exactly the ticket's values
        assert torch.equal(state[t.name].detach(), torch.from_numpy(t.effective(5))), t.name
    x = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        assert torch.allclose(dense(x), model(x), atol=0.05)


@pytest.mark.parametrize("mask,dtype", [("none", "int8"), ("binary", "f16")])
def test_checkpoint_round_trips_the_ticket_exactly(tmp_path, mask, dtype):
    model = trained_like(mask, scale_mode="tensor")
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, seed=5, config=model.config.to_dict(), adapter_dtype=dtype)
    back = ticket_from_checkpoint(load_checkpoint(path))
    want = ticket_from_model(model, 5, model.config.to_dict(), adapter_dtype=dtype)
    assert [t.name for t in back.tensors] == [t.name for t in want.tensors]
    for got, exp in zip(back.tensors, want.tensors):
        assert type(got) is type(exp)
        assert np.array_equal(got.effective(5), exp.effective(5)), got.name


def test_trainer_final_figure_is_the_rebuilt_tickets(tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "t.txt"
    data.write_bytes(bytes(np.random.default_rng(0).choice(list(b"abcd efgh\n"), 30_000).astype(np.uint8)))
    opts = TrainOptions(data=[str(data)], out=str(tmp_path / "c.safetensors"), preset="tiny", mask="none",
                        adapter_rank=2, adapter_dtype="int8", steps=3, seq_len=16, batch_size=2,
                        eval_every=0, model={"scale_mode": "row"})
    res = train(opts)
    assert res.config["adapter_rank"] == 2 and res.density == 1.0
    ticket = ticket_from_checkpoint(load_checkpoint(res.checkpoint))
    assert any(isinstance(t, Int8Tensor) for t in ticket.tensors)
    rebuilt = model_from_ticket(ticket)
    from ticketpack.text.corpus import load_tokens, split_train_val

    val = split_train_val(load_tokens([str(data)]), 0.1)[1]
    again = evaluate(rebuilt, val, seq_len=16, batch_size=8)
    assert again.val_bpb == res.val_bpb  # exactly: the same weights, the same evaluation
    with pytest.raises(ConfigError, match="adapter_dtype"):
        train(TrainOptions(data=[str(data)], out=str(tmp_path / "d.safetensors"), adapter_dtype="bf16"))


@pytest.mark.parametrize("mask,dtype", [("none", "f16"), ("binary", "int8")])
def test_adapter_artifacts_round_trip_exactly(tmp_path, mask, dtype):
    """train -> pack -> size / verify / load-and-eval / export: the artifact scores exactly what
    the trainer reported, and regenerates exactly the trained model's weights."""
    import json

    from click.testing import CliRunner
    from safetensors.numpy import load_file

    from ticketpack.cli.main import main as cli
    from ticketpack.ticket import weights_sha256

    torch.set_num_threads(1)
    data = tmp_path / "t.txt"
    data.write_bytes(bytes(np.random.default_rng(1).choice(list(b"abcd efgh\n"), 30_000).astype(np.uint8)))
    ckpt, tpk, dense = tmp_path / "c.safetensors", tmp_path / "c.tpk", tmp_path / "d.safetensors"

    def run(*args):
        res = CliRunner().invoke(cli, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        return res.stdout

    trained = json.loads(run("train", "--data", data, "--out", ckpt, "--preset", "tiny", "--mask", mask,
                             "--adapter-rank", 3, "--adapter-dtype", dtype, "--steps", 3, "--seq-len", 16,
                             "--batch-size", 2, "--eval-every", 0, "--json"))
    run("pack", ckpt, "-o", tpk)
    sizes = json.loads(run("size", tpk, "--json"))
    kinds = {t["name"]: t["kind"] for t in sizes["tensors"]}
    assert kinds["blocks.0.mlp.fc.adapter_b"] == ("int8" if dtype == "int8" else "plain")
    assert kinds["blocks.0.mlp.fc.weight"] == "masked"
    assert sizes["total_bytes"] == tpk.stat().st_size
    scored = json.loads(run("load-and-eval", tpk, "--data", data, "--split", "val", "--device", "cpu", "--json"))
    assert scored["val_bpb"] == trained["val_bpb"]  # exactly
    run("verify", tpk)
    run("export", tpk, "-o", dense)
    exported = {k: torch.from_numpy(v) for k, v in load_file(str(dense)).items()}
    state = ticket_from_checkpoint(load_checkpoint(ckpt)).effective_state_dict()
    assert set(exported) == set(state) and "blocks.1.attn.c_v.adapter_a" in exported
    assert weights_sha256((k, exported[k]) for k in state) == weights_sha256(state)  # bit for bit
