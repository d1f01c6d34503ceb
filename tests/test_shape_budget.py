"""Training to a byte budget: the solver's tensor list, worst case, choice and errors; `train --budget`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ticketpack.cli.main import main as cli
from ticketpack.train import shape_budget as sb
from ticketpack.artifact import encode_artifact
from ticketpack.errors import BudgetExceededError, ConfigError, UsageError
from ticketpack.nn.layers import randomize_scores
from ticketpack.nn.mask_training import MaskTraining
from ticketpack.models.gpt_model import GPT, config_from_preset
from ticketpack.ticket import MaskedTensor, ticket_from_model
from ticketpack.train.loop import TrainOptions, train

TINY = config_from_preset("tiny").to_dict()


@pytest.mark.parametrize("overrides", [
    {},
    dict(tie_embeddings=False, rmsnorm_weight=True, scale_mode="row"),
    dict(head_scales=False, block_scales=False, pre_logit_scale=False, scale_mode="tensor", mask="multibit:3"),
    dict(num_kv_heads=4, embed_norm=False, rmsnorm_weight=True, mlp_mult=3),
    dict(mask="none", adapter_rank=3, scale_mode="row"),
    dict(adapter_rank=2, tie_embeddings=False),
])
def test_stored_tensors_are_the_tickets_tensors(overrides):
    config = {**TINY, **overrides}
    model = GPT(config_from_preset("tiny", **overrides), masked=True, seed=1)
    ticket = ticket_from_model(model, 1, config)
    listed = sb.stored_tensors(config)
    assert [t.name for t in listed] == [t.name for t in ticket.tensors]
    for mine, real in zip(listed, ticket.tensors):
        assert mine.shape == tuple(real.shape)
        kind = "adapter" if ".adapter_" in real.name else "plain"
        assert mine.kind == ("masked" if isinstance(real, MaskedTensor) else kind)
        if isinstance(real, MaskedTensor):
            assert mine.init == real.init
    assert sb.connections(config) == ticket.connections()


def test_mask_bits_are_the_entropy_bounds():
    assert sb.mask_bits(TINY) == 1.0
    assert sb.mask_bits({**TINY, "mask": "multibit:4"}) == 2.0
    assert sb.mask_bits({**TINY, "mask": "nm:2:4"}) == pytest.approx(math.log2(6) / 4)
    h = -(0.2 * math.log2(0.2) + 0.8 * math.log2(0.8))
    assert sb.mask_bits(TINY, MaskTraining("topk", 0.2)) == pytest.approx(h)
    with pytest.raises(ConfigError, match="estimator"):
        sb.mask_bits(TINY, MaskTraining("nested", 0.2))  # not a binary mask's estimator


@pytest.mark.parametrize("overrides, training", [
    ({}, None), (dict(mask="multibit:4", scale_mode="row"), None), ({}, MaskTraining("topk", 0.3)),
    (dict(mask="none", adapter_rank=2, scale_mode="row"), None)])
def test_worst_case_bounds_a_trained_mask(overrides, training):
    config = {**TINY, **overrides}
    model = GPT(config_from_preset("tiny", **overrides), masked=True, seed=2, mask_training=training)
    randomize_scores(model, 3)  # arbitrary masks, as training can leave them
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("scores"):  # values over many exponents, as adapters end up
                p.copy_(torch.randn(p.shape) * 10 ** (4 * torch.rand(p.shape) - 3))
    real = len(encode_artifact(ticket_from_model(model, 2, config), creation={"checkpoint": "x" * 40}))
    worst = sb.worst_case_bytes(config, training=training)
    assert real <= worst
    assert worst <= 1.05 * sb.estimate_bytes(config, training=training)


def test_solver_picks_a_fitting_shape_and_the_next_wider_does_not_fit():
    budget = 30_000
    choice = sb.solve(TINY, budget)
    assert choice.bytes + sb.RESERVE <= budget
    assert choice.bytes == sb.worst_case_bytes(choice.config)
    cfg = choice.config
    assert cfg["model_dim"] // cfg["num_heads"] == 16  # the recipe's head width
    assert cfg["num_heads"] // cfg["num_kv_heads"] == 2  # and its grouping
    assert 16 <= cfg["model_dim"] / cfg["num_layers"] <= 64  # width / depth within 2x of 32
    layers, dim, wider = choice.wider
    assert layers == cfg["num_layers"] and dim == cfg["model_dim"] + 32 and wider > budget
    line = choice.reason()
    assert "\n" not in line and f"{cfg['num_layers']} x {cfg['model_dim']}" in line and "30,000" in line
    # more bytes never buy fewer connections
    assert sb.solve(TINY, 60_000).connections > choice.connections


def test_fill_packs_finer_shapes_until_the_budget_is_95_percent_used():
    budget = 30_000
    coarse = sb.solve(TINY, budget)
    assert coarse.bytes + sb.RESERVE < sb.FILL * budget  # the head-width steps leave a gap here
    filled = sb.fill(TINY, budget)
    assert sb.FILL * budget <= filled.bytes + sb.RESERVE <= budget
    assert filled.bytes == sb.worst_case_bytes(filled.config)  # measured: the stand-in packed
    assert filled.connections > coarse.connections and filled.checked > coarse.checked
    assert "of the budget; filled by" in filled.reason() and filled.refined
    # a budget the coarse shape already fills is left to it
    already = sb.fill(TINY, 20_000)
    assert already.config == sb.solve(TINY, 20_000).config and not already.refined
    with pytest.raises(UsageError, match="fill share"):
        sb.fill(TINY, budget, share=1.5)


def test_a_pinned_depth_holds_in_the_solver_and_the_fill():
    budget = 30_000
    free = sb.solve(TINY, budget).config["num_layers"]
    depth = free + 2  # outside the width / depth span the unpinned search keeps
    pinned = sb.solve(TINY, budget, depth=depth)
    assert pinned.config["num_layers"] == depth and pinned.bytes + sb.RESERVE <= budget
    filled = sb.fill(TINY, budget, depth=depth)
    assert filled.config["num_layers"] == depth and filled.bytes + sb.RESERVE <= budget
    assert filled.connections >= pinned.connections
    with pytest.raises(UsageError, match="depth"):
        sb.solve(TINY, budget, depth=0)
    with pytest.raises(BudgetExceededError, match=r"the smallest, 40 x 32"):
        sb.fill(TINY, budget, depth=40)


def test_budget_nothing_fits_is_a_clear_error():
    with pytest.raises(BudgetExceededError, match=r"budget: 3,000 B, no shape of this recipe fits: "
                                                  r"the smallest, 1 x 32, needs [\d,]+ B"):
        sb.solve(TINY, 3000)
    with pytest.raises(UsageError, match="positive"):
        sb.solve(TINY, 0)


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("d") / "t.txt"
    rng = np.random.default_rng(0)
    path.write_bytes(bytes(rng.choice(list(b"abcdefgh \n"), size=40_000).astype(np.uint8)))
    return str(path)


def test_train_to_a_budget_fits_when_packed(text, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "c.safetensors"
    res = CliRunner().invoke(cli, ["train", "--data", text, "--out", str(out), "--preset", "tiny",
                                   "--budget", "25KB", "--steps", "2", "--seq-len", "16",
                                   "--batch-size", "2", "--eval-every", "0"])
    assert res.exit_code == 0, res.output
    shape_line = [line for line in res.stderr.splitlines() if line.startswith("ticketpack: budget 25,000 B")]
    assert len(shape_line) == 1 and "connections" in shape_line[0]
    tpk = tmp_path / "c.tpk"
    packed = CliRunner().invoke(cli, ["pack", str(out), "-o", str(tpk), "--budget", "25KB"])
    assert packed.exit_code == 0, packed.output
    assert f"packs to {tpk.stat().st_size:,} B" in res.stdout  # the trainer's figure is pack's
    assert tpk.stat().st_size <= 25_000


def test_train_budget_layers_pins_the_depth(text, tmp_path):
    torch.set_num_threads(1)
    free = sb.fill(TINY, 25_000).config["num_layers"]
    opts = TrainOptions(data=[text], out=str(tmp_path / "c.safetensors"), preset="tiny", byte_budget=25_000,
                        budget_layers=free + 1, steps=1, seq_len=16, batch_size=2, eval_every=0,
                        final_eval=False)
    res = train(opts)
    assert res.config["num_layers"] == free + 1 and res.packed_bytes <= 25_000
    bad = CliRunner().invoke(cli, ["train", "--data", text, "--out", str(tmp_path / "d.safetensors"),
                                   "--budget-layers", "2"])
    assert bad.exit_code != 0 and "budget_layers: 2 given without a byte budget" in bad.stderr
    assert not (tmp_path / "d.safetensors").exists()


def test_train_budget_too_small_exits_with_one_line(text, tmp_path):
    res = CliRunner().invoke(cli, ["train", "--data", text, "--out", str(tmp_path / "c.safetensors"),
                                   "--preset", "tiny", "--budget", "2KB", "--steps", "1"])
    assert res.exit_code == 1
    assert res.stderr.startswith("ticketpack: error: budget: 2,000 B, no shape of this recipe fits")
    assert not (tmp_path / "c.safetensors").exists()


def test_train_options_budget_api(text, tmp_path):
    torch.set_num_threads(1)
    opts = TrainOptions(data=[text], out=str(tmp_path / "c.safetensors"), preset="tiny", byte_budget=25_000,
                        steps=1, seq_len=16, batch_size=2, eval_every=0, final_eval=False)
    res = train(opts)
    assert res.shape.startswith("budget 25,000 B: ") and res.packed_bytes <= 25_000
    assert res.config["model_dim"] == int(res.shape.split(" x ")[1].split()[0])
    with pytest.raises(UsageError, match="byte_budget"):
        train(TrainOptions(data=[text], out=str(tmp_path / "d.safetensors"), byte_budget=0))
