"""Bring your own model (issue 24): ticketpack.supermask over Hugging Face causal LMs and a
plain conv net; save, load, load into a skeleton, the --hf export; what is refused."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from torch import nn

import ticketpack
from ticketpack import api
from ticketpack.errors import BudgetExceededError, ConfigError, HeaderError
from ticketpack.artifact import load_ticket
from ticketpack.nn.layers import masked_layers
from ticketpack.train.loop import ddp_no_buffer_sync

transformers = pytest.importorskip("transformers")

MASKS = ("binary", "multibit:4", "nm:2:4", "signed:2")
HF_MODELS = {  # 2 layers, width 32: built in milliseconds
    "llama": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=64, tie_word_embeddings=True),
    "gpt2": dict(n_embd=32, n_layer=2, n_head=4, vocab_size=64, n_positions=64, bos_token_id=0,
                 eos_token_id=0),  # tied by default; its layers are Conv1D, weights (in, out)
    "qwen2": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=64),  # untied, biased q/k/v
}


def hf_model(model_type: str) -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.AutoConfig.for_model(model_type, **HF_MODELS[model_type])
    return transformers.AutoModelForCausalLM.from_config(cfg)


class ConvNet(nn.Module):
    """A small conv net (kernel width 4, so N:M groups of 4 fit along its last dimension)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=4, padding=2)
        self.conv2 = nn.Conv2d(8, 8, kernel_size=(3, 4), padding=1, padding_mode="reflect")
        self.conv3 = nn.Conv1d(8, 8, kernel_size=4)
        self.head = nn.Linear(8 * 5, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))  # (B, 8, 9, 9)
        x = torch.relu(self.conv2(x))  # (B, 8, 9, 8)
        x = torch.relu(self.conv3(x.mean(2)))  # (B, 8, 5)
        return self.head(x.flatten(1))


def train_steps(model: nn.Module, batch, loss_fn, steps: int = 3) -> None:
    opt = torch.optim.Adam(ticketpack.param_groups(model))
    model.train()
    for _ in range(steps):
        loss = loss_fn(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()


def lm_loss(model, ids):
    return model(input_ids=ids, labels=ids).loss


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("model_type", sorted(HF_MODELS))
def test_hf_model_loads_and_exports_to_the_trained_logits(tmp_path, model_type, mask):
    model = ticketpack.supermask(hf_model(model_type), mask, seed=5, scale_mode="row")
    ids = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(1))
    train_steps(model, ids, lm_loss)
    report = ticketpack.save(model, tmp_path / "m.tpk")
    assert report["arch"] == "transformers" and report["rounded"] == ticketpack.round_like_artifact(model)
    model.eval()
    with torch.no_grad():
        trained = model(input_ids=ids).logits
        loaded = ticketpack.load(tmp_path / "m.tpk")(input_ids=ids).logits
    ticketpack.export_hf(tmp_path / "m.tpk", tmp_path / "hf")
    assert sorted(os.listdir(tmp_path / "hf")) == ["config.json", "generation_config.json", "model.safetensors"]
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        from_pretrained = exported(input_ids=ids).logits
    assert torch.equal(loaded, from_pretrained)
    assert torch.equal(trained, loaded)


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_tied_embeddings_stay_tied_and_are_stored_once(tmp_path, model_type):
    model = ticketpack.supermask(hf_model(model_type), seed=1)
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    assert head.source is emb  # one masked layer serves both
    ticketpack.save(model, tmp_path / "m.tpk")
    names = [t.name for t in load_ticket(tmp_path / "m.tpk").tensors]
    assert emb.tensor_name in names and "lm_head.weight" not in names
    assert set(ticketpack.load_state_dict(tmp_path / "m.tpk")) == set(dict(hf_model(model_type).named_parameters()))


@pytest.mark.parametrize("mask", MASKS)
def test_conv_net_fills_a_skeleton_with_the_trained_outputs(tmp_path, mask):
    torch.manual_seed(0)
    model = ticketpack.supermask(ConvNet(), mask, seed=9, scale_mode="tensor")
    assert len(masked_layers(model)) == 4
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(6) % 10
    train_steps(model, (x, y), lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]))
    ticketpack.save(model, tmp_path / "c.tpk")
    ticketpack.round_like_artifact(model)
    model.eval()
    loaded = ticketpack.load(tmp_path / "c.tpk", model=ConvNet())
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert load_ticket(tmp_path / "c.tpk").config["arch"] == "external"
    with pytest.raises(ticketpack.errors.UsageError, match="skeleton"):
        ticketpack.load(tmp_path / "c.tpk")  # tensors only: the code is the user's


def test_untargeted_parameters_stay_trainable_and_plain(tmp_path):
    model = ticketpack.supermask(hf_model("qwen2"), seed=2, target_modules=["q_proj", "v_proj"])
    assert isinstance(model.model.layers[0].self_attn.k_proj, nn.Linear)  # left as it was
    groups = {g["name"]: g for g in ticketpack.param_groups(model)}
    assert set(groups) == {"scores", "other"} and groups["scores"]["lr"] == 0.1
    assert any(p is model.model.layers[0].self_attn.q_proj.bias for p in groups["other"]["params"])
    ticketpack.save(model, tmp_path / "m.tpk")
    kinds = {t.name: type(t).__name__ for t in load_ticket(tmp_path / "m.tpk").tensors}
    assert kinds["model.layers.0.self_attn.q_proj.weight"] == "MaskedTensor"
    assert kinds["model.layers.0.self_attn.k_proj.weight"] == "PlainTensor"
    assert kinds["model.layers.0.self_attn.q_proj.bias"] == "PlainTensor"


def test_conversion_is_seeded_and_refuses_what_it_cannot_do():
    a = ticketpack.supermask(ConvNet(), "binary", seed=4)
    b = ticketpack.supermask(ConvNet(), "binary", seed=4)
    assert all(torch.equal(x.scores, y.scores) and torch.equal(x.frozen, y.frozen)
               for (_, x), (_, y) in zip(masked_layers(a), masked_layers(b)))
    with pytest.raises(ConfigError, match="no Linear"):
        ticketpack.supermask(ConvNet(), seed=1, target_modules=["nothing"])
    with pytest.raises(ConfigError, match="shares its tensor"):
        ticketpack.supermask(hf_model("llama"), seed=1, exclude=["lm_head"])
    with pytest.raises(ConfigError, match="M=4"):
        ticketpack.supermask(nn.Sequential(nn.Conv2d(1, 2, 3)), "nm:2:4", seed=1)
    with pytest.raises(ConfigError, match="adapters"):
        ticketpack.supermask(ConvNet(), seed=1, adapter_rank=2)
    untouched = ConvNet()
    with pytest.raises(ConfigError):
        ticketpack.supermask(untouched, seed=1, adapter_rank=2)
    assert not masked_layers(untouched)  # a refused conversion changes nothing


def test_over_budget_writes_nothing(tmp_path):
    model = ticketpack.supermask(hf_model("llama"), seed=1)
    with pytest.raises(BudgetExceededError):
        ticketpack.save(model, tmp_path / "m.tpk", budget="1KB")
    assert not (tmp_path / "m.tpk").exists()


def test_adapters_fold_into_the_exported_weights(tmp_path):
    model = ticketpack.supermask(hf_model("llama"), seed=1, adapter_rank=2)
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    train_steps(model, ids, lm_loss, steps=2)
    ticketpack.save(model, tmp_path / "m.tpk")
    ticketpack.round_like_artifact(model)
    with torch.no_grad():
        trained = model.eval()(input_ids=ids).logits
        loaded = ticketpack.load(tmp_path / "m.tpk")(input_ids=ids).logits
    # x W^T + (x A^T) B^T trained, x (W + B A)^T loaded: equal up to float32 rounding
    torch.testing.assert_close(trained, loaded, rtol=1e-4, atol=1e-4)
    assert api.verify(tmp_path / "m.tpk")["ok"]  # verify folds the adapters as loading does


def test_autocast_and_ddp_wrap_train_and_save(tmp_path):
    import torch.distributed as dist

    model = ticketpack.supermask(hf_model("llama"), seed=1)
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        with warnings.catch_warnings():  # the keyword chosen is one this torch does not deprecate
            warnings.simplefilter("error", FutureWarning)
            ddp = nn.parallel.DistributedDataParallel(model, **ddp_no_buffer_sync())
        opt = torch.optim.Adam(ticketpack.param_groups(ddp))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = ddp(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        assert ticketpack.save(ddp, tmp_path / "m.tpk")["bytes"] > 0
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- hostile records

def _artifact_with_config(path, config: dict) -> None:
    """A valid file whose config is ``config`` (one plain tensor: the record is what is tested)."""
    import numpy as np

    from ticketpack.artifact import write_artifact
    from ticketpack.ticket import PlainTensor, Ticket

    write_artifact(Ticket(seed=1, config=config, tensors=[PlainTensor("w", np.ones(4, np.float16))]), path)


LLAMA = {"arch": "transformers", "model_type": "llama"}
HOSTILE = {
    "unknown model type": ({**LLAMA, "model_type": "my_remote_llm", "hf_config": {}}, "model_type"),
    "remote code": ({**LLAMA, "hf_config": {"auto_map": {"AutoModelForCausalLM": "evil.Model"}}}, "auto_map"),
    "nested remote code": ({**LLAMA, "hf_config": {"rope_parameters": {"trust_remote_code": True}}},
                           "trust_remote_code"),
    "hub kernels": ({**LLAMA, "hf_config": {"attn_implementation": "kernels-community/x"}}, "attn_implementation"),
    "2^40 parameters": ({**LLAMA, "hf_config": {"hidden_size": 2**16, "intermediate_size": 2**16,
                                               "num_attention_heads": 64, "vocab_size": 2**24,
                                               "num_hidden_layers": 1024}}, "parameters"),
    "a billion layers": ({**LLAMA, "hf_config": {"num_hidden_layers": 10**9}}, "num_hidden_layers"),
    "unknown arch": ({"arch": "pickle"}, "arch"),
    "record key": ({**LLAMA, "hf_config": {}, "code": "import os"}, "unknown key"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_records_are_refused_with_exit_3(tmp_path, case):
    from ticketpack import api
    from ticketpack.models.registry import check_config

    config, word = HOSTILE[case]
    with pytest.raises(HeaderError, match=word) as caught:
        check_config(config)
    assert caught.value.exit_code == 3 and "\n" not in str(caught.value)
    _artifact_with_config(tmp_path / "h.tpk", config)
    with pytest.raises(HeaderError, match=word):
        api.verify(tmp_path / "h.tpk")
    with pytest.raises(HeaderError, match=word):
        ticketpack.load(tmp_path / "h.tpk")


def test_cli_refuses_a_hostile_record_in_one_line(tmp_path):
    import subprocess
    import sys

    _artifact_with_config(tmp_path / "h.tpk", HOSTILE["remote code"][0])
    for command in (["verify"], ["load-and-eval", "--data", str(tmp_path / "h.tpk")], ["export", "--hf", str(tmp_path / "d")]):
        run = subprocess.run([sys.executable, "-m", "ticketpack.cli.entry", command[0], str(tmp_path / "h.tpk"),
                              *command[1:]], capture_output=True, text=True, timeout=120)
        assert run.returncode == 3, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "auto_map" in run.stderr
    assert not (tmp_path / "d").exists()


def test_a_skeleton_that_does_not_fit_is_named(tmp_path):
    model = ticketpack.supermask(ConvNet(), seed=1)
    ticketpack.save(model, tmp_path / "c.tpk")
    wrong = ConvNet()
    wrong.head = nn.Linear(8 * 5, 11)
    with pytest.raises(HeaderError, match=r"head\.weight has shape \(11, 40\)"):
        ticketpack.load(tmp_path / "c.tpk", model=wrong)
    bigger = ConvNet()
    bigger.extra = nn.Linear(2, 2, bias=False)
    with pytest.raises(HeaderError, match=r"'extra.weight' is in the module, not in the artifact \(1 missing"):
        ticketpack.load(tmp_path / "c.tpk", model=bigger)


def test_without_transformers_everything_else_works_and_hf_paths_name_the_extra(tmp_path):
    import subprocess
    import sys

    model = ticketpack.supermask(hf_model("llama"), seed=1)
    ticketpack.save(model, tmp_path / "hf.tpk")
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import torch, ticketpack
from torch import nn
from ticketpack.errors import UsageError
net = ticketpack.supermask(nn.Sequential(nn.Conv2d(1, 4, 4), nn.Flatten(), nn.Linear(100, 4)), seed=3)
ticketpack.save(net, {str(tmp_path / 'c.tpk')!r})
skeleton = nn.Sequential(nn.Conv2d(1, 4, 4), nn.Flatten(), nn.Linear(100, 4))
ticketpack.load({str(tmp_path / 'c.tpk')!r}, model=skeleton)
try:
    ticketpack.load({str(tmp_path / 'hf.tpk')!r})
except UsageError as exc:
    print("refused:", exc)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "refused: transformers is not installed" in run.stdout and "ticketpack[hf]" in run.stdout
    cli = subprocess.run([sys.executable, "-c", script.split("import torch")[0] +
                          "from ticketpack.cli.entry import run\nsys.argv = ['ticketpack', 'verify', "
                          f"{str(tmp_path / 'hf.tpk')!r}]\nrun()"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and "ticketpack[hf]" in cli.stderr and len(cli.stderr.strip().splitlines()) == 1


def test_default_inits_follow_the_module_family_and_layouts_reach_the_artifact(tmp_path):
    from ticketpack import api

    gpt2 = ticketpack.supermask(hf_model("gpt2"), seed=1)
    c_fc = gpt2.transformer.h[0].mlp.c_fc
    assert (c_fc.init, c_fc.init_std, c_fc.layout) == ("normal_std", 0.02, "in_out")
    assert abs(c_fc.frozen.std().item() - 0.02) < 0.002  # the model's own initializer_range
    ticketpack.save(gpt2, tmp_path / "g.tpk")
    entries = {t["name"]: t for t in api.inspect(tmp_path / "g.tpk")["tensors"]}
    assert entries["transformer.h.0.mlp.c_fc.weight"]["layout"] == "in_out"
    assert entries["transformer.h.0.mlp.c_fc.weight"]["init_std"] == 0.02
    net = ticketpack.supermask(ConvNet(), seed=1)
    assert (net.conv1.init, net.conv1.layout, net.head.init, net.head.layout) == ("he_normal", "conv", "he_normal", "out_in")
    fan_in = 8 * 3 * 4  # torch's conv fan_in: in_channels x kernel
    assert abs(net.conv2.frozen.std().item() - (2 / fan_in) ** 0.5) < 0.02
    chosen = ticketpack.supermask(ConvNet(), seed=1, init="normal_std", init_std=0.1)
    assert chosen.conv3.init_std == 0.1
    with pytest.raises(ticketpack.errors.UsageError, match="init_std"):
        ticketpack.supermask(ConvNet(), seed=1, init="he_uniform", init_std=0.1)


def test_export_hf_carries_the_recorded_sentencepiece_model(tmp_path, sp):
    import hashlib

    from ticketpack.format.eval_context import make_eval_context

    cfg = transformers.AutoConfig.for_model("llama", **{**HF_MODELS["llama"], "vocab_size": 512})
    model = ticketpack.supermask(transformers.AutoModelForCausalLM.from_config(cfg), seed=1)
    ticketpack.save(model, tmp_path / "m.tpk", eval_context=make_eval_context(32, sp.identity()))
    info = ticketpack.export_hf(tmp_path / "m.tpk", tmp_path / "hf", tokenizer=sp.path)
    assert "tokenizer.model" in info["files"]
    digest = hashlib.sha256((tmp_path / "hf" / "tokenizer.model").read_bytes()).hexdigest()
    assert digest == sp.identity()["sha256"]
    ticketpack.save(model, tmp_path / "bytes.tpk", eval_context=make_eval_context(32, {"kind": "bytes"}))
    with pytest.raises(ticketpack.errors.UsageError, match="tokenizer"):
        ticketpack.export_hf(tmp_path / "bytes.tpk", tmp_path / "hf2", tokenizer=sp.path)
    assert not (tmp_path / "hf2").exists()
