"""Signed masks (signed:K, issue 26): levels -(K-1)..K-1, the estimators on |score| with the
score's sign, int8 levels through tickets and checkpoints, sizing, and the trainer end to end."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ticketpack import api
from ticketpack.nn import masking
from ticketpack.train import shape_budget as sb
from ticketpack.artifact import encode_artifact
from ticketpack.train.checkpoint import load_checkpoint, save_checkpoint, ticket_from_checkpoint
from ticketpack.cli.main import main as cli
from ticketpack.errors import CheckpointError, ConfigError
from ticketpack.format.maskspec import MaskSpec
from ticketpack.nn.layers import MaskedLinear, bind_seed, masked_layers
from ticketpack.nn.mask_training import MaskTraining
from ticketpack.models.gpt_model import GPT, config_from_preset
from ticketpack.ticket import MaskedTensor, ticket_from_model
from ticketpack.train.loop import TrainOptions, train
from tests.tiny import corpus_slice

TINY = dict(preset="tiny", seq_len=32, batch_size=8, eval_every=0, log_every=5)


def _state(density=None, log_step=None, temperature=0.5):
    step = torch.nn.Parameter(torch.tensor(masking.quant_log_step_init() if log_step is None else log_step))
    return types.SimpleNamespace(temperature=temperature, target_density=density, mask_log_step=step)


CASES = [(2, "quant", None), (2, "topk", 0.3), (2, "nested", 0.4), (3, "quant", None), (3, "nested", 0.5),
         (8, "quant", None), (128, "quant", None), (128, "nested", 0.9)]


@pytest.mark.parametrize("K, estimator, density", CASES)
def test_init_and_every_estimator_give_levels_in_range(K, estimator, density):
    spec = MaskSpec("signed", K)
    training = MaskTraining.for_mask(spec, estimator, density)
    torch.manual_seed(0)
    scores = masking.init_scores((96, 64), spec, training)
    for s in (scores, scores * 50, -scores * 50, torch.zeros_like(scores)):  # far past every threshold too
        levels = masking.hard_levels(s, spec, training, _state(density))
        assert levels.dtype == torch.int8
        assert int(levels.min()) >= -(K - 1) and int(levels.max()) <= K - 1
        # the sign comes from the score, the magnitude from |score|
        assert torch.all((levels == 0) | (torch.sign(levels.float()) == torch.sign(s)))
    at_init = masking.hard_levels(scores, spec, training, _state(density))
    assert (at_init > 0).any() and (at_init < 0).any()  # both signs from the start


def test_signed_quant_init_gives_equal_shares_of_magnitudes():
    spec = MaskSpec("signed", 3)
    training = MaskTraining.for_mask(spec)
    assert training.estimator == "quant"  # the kind's default
    torch.manual_seed(1)
    levels = masking.hard_levels(masking.init_scores((400, 500), spec, training), spec, training, _state())
    shares = [float((levels.abs() == j).float().mean()) for j in range(3)]
    assert shares == pytest.approx([1 / 3] * 3, abs=0.01)
    assert float((levels == 2).float().mean()) == pytest.approx(1 / 6, abs=0.01)


def test_signed_quant_thresholds_and_gradient():
    """Forward: sign(s) * floor(|s| / delta), magnitude clamped; backward: the odd soft staircase."""
    spec, K, T = MaskSpec("signed", 3), 3, 0.3
    training = MaskTraining.for_mask(spec)
    delta = math.exp(masking.quant_log_step_init())
    s = torch.tensor([0.0, 0.99, 1.0, 1.5, 2.0, 7.0, -0.99, -1.0, -2.5, -9.0]) * delta * 1.0001
    state = _state(temperature=T)
    levels = masking.hard_levels(s, spec, training, state)
    assert levels.tolist() == [0, 0, 1, 1, 2, 2, 0, -1, -2, -2]
    # the gradient is that of sum_j sigmoid((s - j d)/T) - sigmoid((-s - j d)/T)
    gen = torch.Generator().manual_seed(2)
    scores = (torch.randn(500, generator=gen, dtype=torch.float64) * 0.15)
    grad = torch.randn(500, generator=gen, dtype=torch.float64)
    log_step = torch.tensor(-2.3, dtype=torch.float64)
    s64, l64 = scores.clone().requires_grad_(), log_step.clone().requires_grad_()
    d = l64.exp()
    soft = sum(torch.sigmoid((s64 - j * d) / T) - torch.sigmoid((-s64 - j * d) / T) for j in range(1, K))
    (soft * grad).sum().backward()
    s32, l32 = scores.float().requires_grad_(), torch.nn.Parameter(log_step.float())
    out = masking.mask_levels(s32, spec, training, types.SimpleNamespace(temperature=T, mask_log_step=l32,
                                                                      target_density=None))
    assert torch.equal(out.detach(), masking.hard_levels(s32, spec, training, _state(log_step=-2.3)).float())
    (out * grad.float()).sum().backward()
    assert torch.allclose(s32.grad.double(), s64.grad, atol=1e-5)
    assert float(l32.grad) == pytest.approx(float(l64.grad), rel=1e-4)


def test_signed_topk_and_nested_follow_the_magnitude_order():
    spec = MaskSpec("signed", 2)
    scores = torch.tensor([0.9, -0.8, 0.1, -0.05, 0.5, -0.6, 0.2, -0.3, 0.0, 0.7])
    topk = masking.hard_levels(scores, spec, MaskTraining.for_mask(spec, "topk", 0.4), _state(0.4))
    assert topk.tolist() == [1, -1, 0, 0, 0, -1, 0, 0, 0, 1]  # the 4 largest |s|, their signs
    spec3 = MaskSpec("signed", 3)
    nested = masking.hard_levels(scores, spec3, MaskTraining.for_mask(spec3, "nested", 0.5), _state(0.5))
    # level >= 1: the 5 largest |s|; level 2: the round(0.25 * 10) = 2 largest
    assert nested.tolist() == [2, -2, 0, 0, 1, -1, 0, 0, 0, 1]


def test_signed_topk_with_more_levels_is_refused():
    with pytest.raises(ConfigError, match="topk for signed:3 masks trains levels -1..1 only"):
        MaskTraining.for_mask(MaskSpec("signed", 3), "topk", 0.3)
    with pytest.raises(ConfigError, match="expected one of quant, nested, topk"):
        MaskTraining.for_mask(MaskSpec("signed", 2), "ste")


def test_effective_weight_inverts_and_the_ticket_holds_int8_levels():
    layer = MaskedLinear(16, 12, mask="signed:2", scale_mode="row")
    bind_seed(layer, 5)
    with torch.no_grad():
        layer.scores.copy_(torch.linspace(-0.2, 0.2, 192).reshape(12, 16))
        layer.scale.fill_(0.5)
    levels = layer.hard_mask()
    assert levels.dtype == torch.int8 and set(levels.unique().tolist()) == {-1, 0, 1}
    expected = (layer.frozen * levels.float()) * layer.scale
    assert torch.equal(layer.effective_weight().detach(), expected)
    entry = ticket_from_model(layer, 5, {}).tensors[0]
    assert isinstance(entry, MaskedTensor) and entry.levels.dtype == np.int8
    assert np.array_equal(entry.levels, levels.numpy())
    assert np.array_equal(entry.effective(5), expected.detach().numpy().astype(np.float32))


def _signed_gpt(seed=3):
    model = GPT(config_from_preset("tiny", mask="signed:2"), masked=True, seed=seed)
    return model, config_from_preset("tiny", mask="signed:2").to_dict()


def test_checkpoint_keeps_signed_levels_and_refuses_bad_ones(tmp_path):
    model, config = _signed_gpt()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, seed=3, config=config)
    ticket = ticket_from_checkpoint(load_checkpoint(path))
    for mine, theirs in zip(ticket.tensors, ticket_from_model(model, 3, config).tensors):
        if isinstance(mine, MaskedTensor):
            assert mine.levels.dtype == np.int8 and np.array_equal(mine.levels, theirs.levels)
    name = masked_layers(model)[0][1].tensor_name
    ckpt = load_checkpoint(path)
    ckpt.tensors[f"ticket/{name}/levels"] = ckpt.tensors[f"ticket/{name}/levels"].to(torch.uint8)
    with pytest.raises(CheckpointError, match=rf"{name}: levels of dtype uint8, mask signed:2 expects int8"):
        ticket_from_checkpoint(ckpt)
    ckpt.tensors[f"ticket/{name}/levels"] = torch.full((256, 64), -2, dtype=torch.int8)
    with pytest.raises(CheckpointError, match=rf"{name}: mask level -2, mask signed:2 allows -1..1"):
        ticket_from_checkpoint(ckpt)


def test_sizing_of_signed_masks():
    tiny = config_from_preset("tiny").to_dict()
    assert sb.mask_bits({**tiny, "mask": "signed:2"}) == pytest.approx(math.log2(3))
    assert sb.mask_bits({**tiny, "mask": "signed:4"}) == pytest.approx(math.log2(7))
    d = 0.3
    topk = MaskTraining("topk", d)  # H(d) + d: which are kept, then one sign bit each
    h = -(d * math.log2(d) + (1 - d) * math.log2(1 - d))
    assert sb.mask_bits({**tiny, "mask": "signed:2"}, topk) == pytest.approx(h + d)
    config = {**tiny, "mask": "signed:2"}
    stand_in = sb.worst_case_ticket(config, training=topk)
    masked = [t for t in stand_in.tensors if isinstance(t, MaskedTensor)]
    kept = sum(int(np.count_nonzero(t.levels)) for t in masked)
    assert kept == sum(round(d * t.levels.size) for t in masked)
    assert all(t.levels.dtype == np.int8 and set(np.unique(t.levels)) <= {-1, 0, 1} for t in masked)
    # the stand-in's packed bytes bound a trained model's of the same shape
    model = GPT(config_from_preset("tiny", mask="signed:2"), masked=True, seed=0)
    trained = encode_artifact(ticket_from_model(model, 0, config))
    assert len(trained) <= sb.worst_case_bytes(config)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(corpus_slice(tmp_path_factory.mktemp("corpus") / "shakespeare-40k.txt", 40_000))


@pytest.mark.parametrize("mask, extra", [("signed:2", {}), ("signed:2", {"density": 0.4}),
                                         ("signed:3", {"density": 0.5, "init": "signed-constant"})])
def test_packed_signed_artifact_reproduces_the_final_val_bpb(corpus, tmp_path, mask, extra):
    torch.set_num_threads(1)
    opts = TrainOptions(data=[corpus], out=str(tmp_path / "m.safetensors"), steps=12, mask=mask, **TINY, **extra)
    result = train(opts)
    artifact = tmp_path / "m.tpk"
    api.pack(opts.out, artifact)
    out = api.load_and_eval(artifact, [corpus], device="cpu", seq_len=opts.seq_len, split="val")
    assert out["val_bpb"] == result.val_bpb  # bit-exact: same weights, same evaluation
    levels = [layer.hard_mask() for _, layer in masked_layers(result.model)]
    assert any(bool((lv < 0).any()) for lv in levels)  # inverted connections survive packing
    assert load_checkpoint(opts.out).config["mask"] == mask


def test_cli_trains_a_signed_ticket_to_a_budget(corpus, tmp_path):
    torch.set_num_threads(1)
    out, tpk = tmp_path / "c.safetensors", tmp_path / "c.tpk"
    res = CliRunner().invoke(cli, ["train", "--data", corpus, "--out", str(out), "--preset", "tiny",
                                   "--mask", "signed:2", "--budget", "30KB", "--steps", "3", "--seq-len", "16",
                                   "--batch-size", "2", "--eval-every", "0"])
    assert res.exit_code == 0, res.output
    packed = CliRunner().invoke(cli, ["pack", str(out), "-o", str(tpk), "--budget", "30KB"])
    assert packed.exit_code == 0, packed.output
    assert f"packs to {tpk.stat().st_size:,} B" in res.stdout and tpk.stat().st_size <= 30_000
    evaluated = CliRunner().invoke(cli, ["load-and-eval", str(tpk), "--data", corpus, "--split", "val",
                                         "--seq-len", "16"])
    assert evaluated.exit_code == 0, evaluated.output
    sized = CliRunner().invoke(cli, ["size", str(tpk), "--json"])
    assert sized.exit_code == 0, sized.output
    report = json.loads(sized.stdout)
    masked = [t for t in report["tensors"] if t["kind"] == "masked"]
    # the entropy bound counts stored symbols of a 3-letter alphabet: at most log2(3) bits each
    assert masked and all(0 < t["entropy_bits_per_connection"] <= math.log2(3) + 1e-9 for t in masked)
    assert all(0 < t["density"] <= 1 for t in masked)
