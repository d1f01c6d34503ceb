"""train --arch ... --budget: the Hugging Face model sized to the byte budget by shape_budget's
search, measured on stand-ins of the converted model (tiny budgets: seconds)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ticketpack.artifact import encode_artifact
from ticketpack.cli.main import main
from ticketpack.errors import BudgetExceededError
from ticketpack.ticket import ticket_from_model
from ticketpack.train.arch import build_record_model
from ticketpack.train.arch_shape import ArchShapes, template
from ticketpack.train.loop import TrainOptions, budget_config, build_config, mask_training, train
from ticketpack.train.shape_budget import FILL, RESERVE
from ticketpack.models.gpt_config import DEFAULT_MODEL_LIMITS
from tests.tiny import corpus_slice

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(corpus_slice(tmp_path_factory.mktemp("corpus") / "shakespeare-20k.txt", 20_000))


def options(corpus, tmp_path, **kw) -> TrainOptions:
    return TrainOptions(data=[corpus], out=str(tmp_path / "m.safetensors"), preset="tiny", seq_len=32,
                        batch_size=4, eval_every=0, final_eval=False, **kw)


def packed(config, opts) -> tuple[bytes, list]:
    """The artifact of the chosen shape's real converted model (untrained masks) and its tensors."""
    model = build_record_model(config, opts.seed, "cpu", mask_training(opts, config))
    ticket = ticket_from_model(model, opts.seed, config.record, adapter_dtype=opts.adapter_dtype)
    return encode_artifact(ticket, creation={"codec": "auto", "level": None}), ticket.tensors


@pytest.mark.parametrize("arch, extra", [("llama", {}), ("gpt2", dict(mask="multibit:4", scale_mode="row")),
                                         ("llama", dict(scale_mode="row", adapter_rank=2))])
def test_the_chosen_shape_fits_and_fills(corpus, tmp_path, arch, extra):
    budget = 65536
    opts = options(corpus, tmp_path, arch=arch, byte_budget=budget, **extra)
    config, choice = budget_config(opts)
    assert choice.bytes + RESERVE <= budget and choice.bytes + RESERVE >= FILL * budget
    assert choice.config["model_dim"] != 64 or choice.config["num_layers"] != 2  # moved from the preset
    blob, tensors = packed(config, opts)
    assert len(blob) <= budget
    # the stand-in mirrors the converted model: the same tensors, names and shapes in the same order
    arch_shapes = ArchShapes(opts, build_config(opts), DEFAULT_MODEL_LIMITS, mask_training(opts, config),
                             template(opts, build_config(opts), DEFAULT_MODEL_LIMITS))
    stand_in = arch_shapes.tensors(choice.config)[1]
    assert [(t.name, tuple(t.shape)) for t in stand_in] == [(t.name, tuple(t.shape)) for t in tensors]


def test_model_keys_stay_fixed(corpus, tmp_path):
    opts = options(corpus, tmp_path, arch="mistral", byte_budget=40_000,
                   model={"hidden_size": 48, "num_attention_heads": 4, "intermediate_size": 100})
    config, choice = budget_config(opts)
    hf_config = config.record["hf_config"]
    assert (hf_config["hidden_size"], hf_config["num_attention_heads"], hf_config["intermediate_size"]) == (48, 4, 100)
    assert hf_config["num_hidden_layers"] > 2  # the free key took the budget
    assert len(packed(config, opts)[0]) <= 40_000


def test_a_budget_no_shape_fits_is_refused_before_training(corpus, tmp_path):
    with pytest.raises(BudgetExceededError, match="no shape of this recipe fits"):
        train(options(corpus, tmp_path, arch="llama", steps=1, byte_budget=2000))
    assert not (tmp_path / "m.safetensors").exists()
    out = tmp_path / "cli.safetensors"
    result = CliRunner().invoke(main, ["train", "--data", corpus, "--out", str(out), "--arch", "gpt2", "--preset", "tiny",
                                       "--budget", "2KB", "--steps", "1"])
    assert result.exit_code == BudgetExceededError.exit_code == 1
    assert "no shape of this recipe fits" in result.output and not out.exists()
