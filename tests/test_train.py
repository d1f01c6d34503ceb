"""The trainer: it learns, its number survives packing, it resumes exactly, its schedules and errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ticketpack import api
from ticketpack.train.checkpoint import load_checkpoint, save_checkpoint
from ticketpack.cli.progress import ProgressBar
from ticketpack.errors import CheckpointError, ConfigError, UsageError
from ticketpack.eval.evaluate import evaluate
from ticketpack.nn.layers import masked_layers
from ticketpack.nn.mask_training import MaskTraining
from ticketpack.models.gpt_config import LEGACY
from ticketpack.train.schedule import DensitySchedule, lr_multiplier, progress, temperature
from ticketpack.train.loop import (TrainOptions, build_config, build_model, load_data,
                                   train)
from tests.tiny import corpus_slice

TINY = dict(preset="tiny", seq_len=32, batch_size=8, eval_every=0, log_every=5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The first 40 KB of the bundled corpus: 36 KB to train on, 4 KB held out."""
    return str(corpus_slice(tmp_path_factory.mktemp("corpus") / "shakespeare-40k.txt", 40_000))


def options(corpus, tmp_path, name="m", **kw) -> TrainOptions:
    return TrainOptions(data=[corpus], out=str(tmp_path / f"{name}.safetensors"), **{**TINY, **kw})


def model_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def test_short_run_lowers_the_loss(corpus, tmp_path):
    opts = options(corpus, tmp_path, steps=60, log=str(tmp_path / "log.jsonl"))
    _, val, _ = load_data(opts)
    untrained = build_model(build_config(opts), opts.seed, torch.device("cpu"))
    before = evaluate(untrained, val, seq_len=opts.seq_len).val_bpb
    result = train(opts)
    assert result.steps == 60 and result.tokens == 60 * 8 * 32
    assert result.val_bpb < before - 1.0, (before, result.val_bpb)
    events = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "final"
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 12 and steps[-1]["loss"] < steps[0]["loss"]
    for key in ("loss", "lr", "temperature", "tokens_per_second", "progress"):
        assert key in steps[0]
    final = events[-1]
    assert final["val_bpb"] == result.val_bpb and set(final["layer_density"]) >= {"tok_emb.weight"}
    assert events[0]["provenance"]["torch"] == torch.__version__


@pytest.mark.parametrize("mask, extra", [
    ("binary", {}),
    ("multibit:4", {}),
    ("binary", {"density": 0.3, "dense_warmup": 0.2, "density_ramp": 0.6}),  # edge-popup top-k
    ("multibit:3", {"density": 0.5}),  # nested (multicoated)
    ("nm:2:4", {}),
    ("binary", {"init": "signed-constant", "model": {"scale_mode": "row"}}),
])
def test_packed_artifact_reproduces_the_final_val_bpb(corpus, tmp_path, mask, extra):
    opts = options(corpus, tmp_path, steps=12, mask=mask, **extra)
    result = train(opts)
    artifact = tmp_path / "m.tpk"
    api.pack(opts.out, artifact)
    out = api.load_and_eval(artifact, [corpus], device="cpu", seq_len=opts.seq_len, split="val")
    assert out["val_bpb"] == result.val_bpb  # exactly: same weights, same evaluation
    assert out["tokens"] == result.eval["tokens"]
    ckpt = load_checkpoint(opts.out)
    assert ckpt.train_state["val_bpb"] == result.val_bpb and ckpt.train_state["done"]
    assert ckpt.config["mask"] == mask


def test_target_density_is_reached_and_stays_out_of_the_artifact_config(corpus, tmp_path):
    """A density picks the topk estimator (the options say how to train); the artifact's config
    holds only the model, and its provenance records how the masks were trained."""
    result = train(options(corpus, tmp_path, steps=10, density=0.25, density_ramp=0.5))
    assert {layer.mask_training for _, layer in masked_layers(result.model)} == {MaskTraining("topk", 0.25)}
    assert result.density == pytest.approx(0.25, abs=0.002)
    assert result.config == build_config(options(corpus, tmp_path)).to_dict()  # no training keys
    out = tmp_path / "m.tpk"
    api.pack(result.checkpoint, out)
    header = api.inspect(out)
    assert header["config"] == result.config and not LEGACY.keys() & header["config"].keys()
    assert header["provenance"]["train"]["mask_training"] == {"estimator": "topk", "density": 0.25}


def test_an_old_checkpoint_with_training_keys_packs_them_into_provenance(tmp_path):
    """Checkpoints written before the split carry mask_estimator / mask_density in their config:
    they still load, and pack moves the keys to provenance."""
    config = build_config(TrainOptions(data=["-"], out=str(tmp_path / "x"), preset="tiny"))
    model = build_model(config, 3, torch.device("cpu"), MaskTraining("topk", 0.5))
    path = tmp_path / "old.safetensors"
    save_checkpoint(path, model, seed=3, config={**config.to_dict(), "mask_estimator": "topk",
                                                 "mask_density": 0.5})
    api.pack(path, tmp_path / "old.tpk")
    header = api.inspect(tmp_path / "old.tpk")
    assert header["config"] == config.to_dict()
    assert header["provenance"]["train"]["mask_training"] == {"estimator": "topk", "density": 0.5}


def test_training_settings_in_the_model_overrides_are_refused(corpus, tmp_path):
    with pytest.raises(ConfigError, match="mask_estimator.*--estimator"):
        train(options(corpus, tmp_path, steps=2, model={"mask_estimator": "topk"}))


class Interrupt(Exception):
    pass


def _interrupt_at(step):
    def callback(event):
        if event["event"] == "step" and event["step"] == step:
            raise Interrupt
    return callback


@pytest.mark.parametrize("mask, training", [("binary", {}), ("multibit:4", {}), ("signed:2", {}),
                                            ("binary", dict(density=0.3, density_ramp=0.5))])
def test_resume_equals_uninterrupted(corpus, tmp_path, mask, training):
    """Also with a density: the resumed run takes its estimator from the saved options."""
    common = dict(steps=24, mask=mask, log_every=1, eval_every=8, eval_tokens=512, **training)
    straight = train(options(corpus, tmp_path, "straight", **common))
    opts = options(corpus, tmp_path, "resumed", checkpoint_every=10, log=str(tmp_path / "r.jsonl"), **common)
    with pytest.raises(Interrupt):  # a crash at step 13: the checkpoint of step 10 remains
        train(opts, callback=_interrupt_at(13))
    assert load_checkpoint(opts.out).train_state["step"] == 10
    resumed = train(TrainOptions(**{**opts.to_dict(), "resume": opts.out}))
    assert resumed.steps == 24 and resumed.tokens == straight.tokens
    a, b = model_state(straight.model), model_state(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bit-identical scores and scales
    assert resumed.val_bpb == straight.val_bpb
    starts = [json.loads(l) for l in open(tmp_path / "r.jsonl") if '"start"' in l]
    assert [s["step"] for s in starts] == [0, 10]  # the log was appended to, not restarted


def test_resume_keeps_the_checkpoint_model(corpus, tmp_path):
    first = options(corpus, tmp_path, steps=4, mask="multibit:4", seed=5)
    train(first)
    again = TrainOptions(data=[corpus], out=first.out, resume=first.out, steps=6, preset="small",
                         mask="binary", seed=1)  # model options are taken from the checkpoint
    result = train(again)
    assert result.steps == 6 and result.config["mask"] == "multibit:4"
    assert load_checkpoint(first.out).seed == 5


def test_time_budget_stops_the_run(corpus, tmp_path):
    result = train(options(corpus, tmp_path, max_minutes=0.02))  # 1.2 s of training
    assert result.steps >= 1 and 1.0 <= result.seconds < 5.0
    assert math.isfinite(result.val_bpb)


def test_final_eval_can_be_left_to_the_artifact(corpus, tmp_path):
    log = tmp_path / "log.jsonl"
    result = train(options(corpus, tmp_path, steps=4, final_eval=False, log=str(log)))
    assert result.val_bpb is None and result.eval is None and result.steps == 4
    final = [json.loads(line) for line in log.read_text().splitlines()][-1]
    assert final["event"] == "final" and "val_bpb" not in final and final["step"] == 4
    assert "val_bpb" not in load_checkpoint(result.checkpoint).train_state


def test_same_command_same_masks(corpus, tmp_path):
    a = train(options(corpus, tmp_path, "a", steps=6))
    b = train(options(corpus, tmp_path, "b", steps=6))
    for key, value in model_state(a.model).items():
        assert torch.equal(value, model_state(b.model)[key]), key


def test_progress_bar_draws_on_its_stream(corpus, tmp_path):
    import io

    stream = io.StringIO()
    train(options(corpus, tmp_path, steps=10, log_every=2), callback=ProgressBar(stream))
    text = stream.getvalue()
    assert "\r[" in text and "step 10" in text and "100.0%" in text and text.endswith("\n")


@pytest.mark.parametrize("kw, error, field", [
    (dict(init="gaussian"), ConfigError, "init"),
    (dict(mask="nm:2:4", density=0.5), ConfigError, "density"),
    (dict(mask="none", density=0.5), ConfigError, "density"),  # no mask to find
    (dict(mask="binary", estimator="quant"), ConfigError, "estimator"),
    (dict(estimator="magic"), ConfigError, "estimator"),
    (dict(steps=0), ConfigError, "steps"),
    (dict(warmup=0.6, warmdown=0.6), ConfigError, "warmup"),
    (dict(batch_size=0), ConfigError, "batch_size"),
    (dict(seq_len=100_000), ConfigError, "seq_len"),
    (dict(mask="ternary"), ConfigError, "mask"),
    (dict(device="tpu"), UsageError, "device"),
])
def test_bad_options_name_the_field(corpus, tmp_path, kw, error, field):
    with pytest.raises(error, match=field):
        train(options(corpus, tmp_path, **{"steps": 2, **kw}))


def test_resume_refuses_a_checkpoint_without_training_state(corpus, tmp_path):
    opts = options(corpus, tmp_path, steps=2)
    config = build_config(opts)
    model = build_model(config, 3, torch.device("cpu"))
    path = tmp_path / "plain.safetensors"
    save_checkpoint(path, model, seed=3, config=config.to_dict())
    with pytest.raises(CheckpointError, match="training options"):
        train(TrainOptions(**{**opts.to_dict(), "resume": str(path)}))


def test_schedules():
    assert progress(5, 10, 0.0, None) == 0.5
    assert progress(5, 10, 30.0, 40.0) == 0.75  # the clock is ahead of the step count
    assert progress(20, 10, 0.0, None) == 1.0
    assert lr_multiplier(0.0, 0.1, 0.3) == 0.01 and lr_multiplier(0.05, 0.1, 0.3) == pytest.approx(0.5)
    assert lr_multiplier(0.5, 0.1, 0.3) == 1.0 and lr_multiplier(0.85, 0.1, 0.3) == pytest.approx(0.5)
    assert lr_multiplier(1.0, 0.1, 0.3) == 0.0
    assert temperature(0.0, 2.0, 0.1) == 2.0 and temperature(1.0, 2.0, 0.1) == pytest.approx(0.1)
    assert temperature(0.5, 2.0, 0.1) == pytest.approx(math.sqrt(0.2))
    mst = DensitySchedule(target=0.2, dense_until=0.1, ramp_until=0.5, restore=0.4, restore_from=0.8)
    assert mst(0.05) == 1.0 and mst(0.3) == pytest.approx(0.6) and mst(0.6) == 0.2
    assert mst(0.9) == pytest.approx(0.3) and mst(1.0) == pytest.approx(0.4) and mst.final == 0.4
    with pytest.raises(ConfigError, match="restore"):
        DensitySchedule(target=0.5, restore=0.3)


def test_separate_val_data_is_what_gets_scored(corpus, tmp_path):
    val = tmp_path / "val.txt"
    corpus_slice(val, 3_000)
    result = train(TrainOptions(**{**options(corpus, tmp_path, steps=3).to_dict(), "val_data": [str(val)]}))
    assert result.eval["bytes"] == 3_000 - 1  # every byte after the first is scored once
    artifact = tmp_path / "m.tpk"
    api.pack(result.checkpoint, artifact)
    assert api.load_and_eval(artifact, [str(val)], device="cpu", seq_len=32)["val_bpb"] == result.val_bpb


def test_checkpoint_is_written_before_the_final_evaluation(corpus, tmp_path, monkeypatch):
    """A failure in the final evaluation (a kill, a bug, a full disk) loses no training."""
    import ticketpack.train.loop as train_mod

    def boom(self):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(train_mod._Trainer, "final_eval", boom)
    opts = options(corpus, tmp_path, steps=6)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        train(opts)
    ckpt = load_checkpoint(opts.out)
    assert ckpt.train_state["done"] is True and ckpt.train_state["step"] == 6
    assert "val_bpb" not in ckpt.train_state


def test_a_missing_output_folder_is_refused_before_training(corpus, tmp_path):
    events = []
    with pytest.raises(UsageError, match="output: folder .* does not exist"):
        train(options(corpus, tmp_path / "nowhere", steps=2), callback=events.append)
    assert events == []  # not one step was trained
