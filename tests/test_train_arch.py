"""train --arch: Hugging Face causal LMs trained as supermasks by the same trainer, packed,
loaded, scored, resumed and exported like the built-in GPT."""

from __future__ import annotations

import os

import pytest
import torch

from ticketpack import api
from ticketpack.errors import BudgetExceededError, ConfigError
from ticketpack.train.loop import TrainOptions, build_config, train
from tests.tiny import corpus_slice

transformers = pytest.importorskip("transformers")

TINY = dict(preset="tiny", seq_len=32, batch_size=4, eval_every=0, log_every=5, eval_tokens=256)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """20 KB of the bundled corpus: 18 KB to train on, 2 KB held out."""
    return str(corpus_slice(tmp_path_factory.mktemp("corpus") / "shakespeare-20k.txt", 20_000))


def options(corpus, tmp_path, name="m", **kw) -> TrainOptions:
    return TrainOptions(data=[corpus], out=str(tmp_path / f"{name}.safetensors"), **{**TINY, **kw})


@pytest.mark.parametrize("arch, mask", [("llama", "binary"), ("gpt2", "nm:2:4"), ("qwen2", "multibit:4")])
def test_trained_number_survives_packing_and_the_hf_export(corpus, tmp_path, arch, mask):
    result = train(options(corpus, tmp_path, arch=arch, mask=mask, scale_mode="row", steps=4))
    assert api.pack(result.checkpoint, tmp_path / "m.tpk") > 0
    ev = api.load_and_eval(tmp_path / "m.tpk", [corpus], device="cpu", split="val")
    assert ev["val_bpb"] == result.val_bpb  # the trainer scores the model rebuilt from its ticket
    info = api.inspect(tmp_path / "m.tpk")
    assert info["config"]["arch"] == "transformers" and info["config"]["model_type"] == arch
    assert api.sample(tmp_path / "m.tpk", "To be", tokens=5, device="cpu")["text"]
    api.export_hf(tmp_path / "m.tpk", tmp_path / "hf")
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.arange(32).reshape(1, 32)
    with torch.no_grad():
        ours = api.build_model(*api.load_verified(tmp_path / "m.tpk")[:2], "cpu")(ids)
        assert torch.equal(ours, hf_model(input_ids=ids).logits)


class Interrupt(Exception):
    pass


def _interrupt_at(step):
    def callback(event):
        if event["event"] == "step" and event["step"] == step:
            raise Interrupt
    return callback


def test_resume_equals_uninterrupted(corpus, tmp_path):
    common = dict(arch="llama", steps=6, seed=3, adapter_rank=2, log_every=1, final_eval=False)
    straight = train(options(corpus, tmp_path, "straight", **common))
    opts = options(corpus, tmp_path, "resumed", checkpoint_every=3, **common)
    with pytest.raises(Interrupt):  # a crash at step 4: the checkpoint of step 3 remains
        train(opts, callback=_interrupt_at(4))
    resumed = train(TrainOptions(**{**opts.to_dict(), "resume": opts.out}))
    assert resumed.steps == 6
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_model_overrides_and_refusals(corpus, tmp_path):
    config = build_config(options(corpus, tmp_path, arch="mistral", model={"hidden_size": 48, "num_attention_heads": 4}))
    assert config.record["hf_config"]["hidden_size"] == 48 and config.record["model_type"] == "mistral"
    with pytest.raises(ConfigError, match="hidden_size"):
        build_config(options(corpus, tmp_path, arch="llama", model={"hidden_size": "wide"}))
    with pytest.raises(ConfigError, match="auto_map"):
        build_config(options(corpus, tmp_path, arch="llama", model={"auto_map": {"AutoModelForCausalLM": "x.Y"}}))
    with pytest.raises(ConfigError, match="parameters"):
        build_config(options(corpus, tmp_path, arch="llama", model={"hidden_size": 8192, "num_hidden_layers": 64}))
    with pytest.raises(BudgetExceededError, match="no shape"):  # sized before training: nothing written
        train(options(corpus, tmp_path, arch="llama", steps=1, byte_budget=2000, final_eval=False))
    assert not os.path.exists(tmp_path / "m.safetensors")
