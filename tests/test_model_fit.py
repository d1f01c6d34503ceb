"""model_fit: the tensors a config implies, torch-free, agree with the torch model's parameters;
verify refuses what load-and-eval refuses."""

from __future__ import annotations

import random

import pytest
from click.testing import CliRunner

from ticketpack import api
from ticketpack.cli.main import main
from ticketpack.errors import HeaderError
from ticketpack.models.gpt_model import dense_gpt_on_meta
from ticketpack.models.gpt_config import ModelLimits, config_from_dict
from ticketpack.models.fit import check_tensors_fit, expected_shapes, gpt_tensor_shapes

from tests.hostile.make_hostile import repack, section_blobs, split
from tests.tiny import TEXT, make_checkpoint


def _random_config(rng: random.Random) -> dict:
    heads = rng.choice([1, 2, 4])
    return {"vocab_size": rng.choice([7, 256]), "num_layers": rng.randint(1, 3),
            "model_dim": heads * 2 * rng.randint(1, 4), "num_heads": heads,
            "num_kv_heads": rng.choice([h for h in (1, 2, 4) if heads % h == 0]),
            "mlp_mult": rng.randint(1, 3), "tie_embeddings": rng.random() < 0.5,
            "rmsnorm_weight": rng.random() < 0.5, "embed_norm": rng.random() < 0.5,
            "block_scales": rng.random() < 0.5, "head_scales": rng.random() < 0.5,
            "pre_logit_scale": rng.random() < 0.5, "adapter_rank": rng.choice([0, 0, 1, 3])}


@pytest.mark.parametrize("seed", range(40))
def test_gpt_shapes_match_the_torch_model(seed):
    config = config_from_dict(_random_config(random.Random(seed)))
    model = dense_gpt_on_meta(config)
    want = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert gpt_tensor_shapes(config) == want


def test_fit_check_names_what_differs():
    shapes = expected_shapes({"num_layers": 1, "model_dim": 8, "num_heads": 2, "num_kv_heads": 2})
    check_tensors_fit({"num_layers": 1, "model_dim": 8, "num_heads": 2, "num_kv_heads": 2}, shapes)
    config = {"num_layers": 1, "model_dim": 8, "num_heads": 2, "num_kv_heads": 2}
    with pytest.raises(HeaderError, match="missing.*tok_emb.weight"):
        check_tensors_fit(config, {k: v for k, v in shapes.items() if k != "tok_emb.weight"})
    with pytest.raises(HeaderError, match="unexpected.*stray"):
        check_tensors_fit(config, {**shapes, "stray": (1,)})
    with pytest.raises(HeaderError, match=r"blocks.0.mlp.fc.weight: shape \(3, 8\)"):
        check_tensors_fit(config, {**shapes, "blocks.0.mlp.fc.weight": (3, 8)})
    with pytest.raises(HeaderError, match="unknown key 'note'"):  # load-and-eval refuses unknown keys too
        check_tensors_fit({"note": "x"}, {})
    with pytest.raises(HeaderError, match="arch 'mystery'"):
        check_tensors_fit({"arch": "mystery"}, {})


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit")
    make_checkpoint(tmp / "m.safetensors")
    api.pack(tmp / "m.safetensors", tmp / "m.tpk")
    (tmp / "val.txt").write_text(TEXT * 4)
    return tmp / "m.tpk"


def _resealed(artifact, tmp_path, edit) -> str:
    """``artifact`` with its header edited and every digest recomputed (a careful forger)."""
    from ticketpack.format.digest import model_sha256

    parts = split(artifact.read_bytes())
    edit(parts.header)
    h = parts.header
    h["model_sha256"] = model_sha256(h["weights_sha256"], h["config"], h.get("eval"))
    out = tmp_path / "forged.tpk"
    out.write_bytes(repack(h, section_blobs(parts)))
    return str(out)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h["config"].update(num_layers=h["config"]["num_layers"] + 1), "missing"),
    (lambda h: h["config"].update(tie_embeddings=False), "lm_head"),
    (lambda h: h["config"].update(mlp_mult=h["config"]["mlp_mult"] + 1), "mlp"),
    (lambda h: h["config"].update(extra_key=1), "extra_key"),
])
def test_verify_refuses_what_load_and_eval_refuses(artifact, tmp_path, edit, match):
    forged = _resealed(artifact, tmp_path, edit)
    assert api.verify(forged, model=False)["ok"]  # a sound file on its own
    with pytest.raises(HeaderError, match=match):
        api.verify(forged)
    with pytest.raises(HeaderError):
        api.load_and_eval(forged, [str(artifact.with_name("val.txt"))], device="cpu", seq_len=16)
    result = CliRunner().invoke(main, ["verify", forged])
    assert result.exit_code == 3 and result.stderr.count("\n") == 1
    assert CliRunner().invoke(main, ["verify", "--format-only", forged]).exit_code == 0


def test_verified_artifact_loads(artifact):
    assert api.verify(artifact)["model_checked"]
    out = api.load_and_eval(artifact, [str(artifact.with_name("val.txt"))], device="cpu", seq_len=16)
    assert out["tokens"] > 0


def test_transformers_config_is_checked_on_the_meta_device():
    """A transformers record's tensors are read off its model built on the meta device."""
    transformers = pytest.importorskip("transformers")
    hf = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
          "num_attention_heads": 2, "num_key_value_heads": 1, "tie_word_embeddings": True}
    config = {"arch": "transformers", "model_type": "llama", "hf_config": hf}
    shapes = expected_shapes(config)
    model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("llama", **hf))
    assert shapes == {n: tuple(p.shape) for n, p in model.named_parameters()}
    check_tensors_fit(config, shapes)
    with pytest.raises(HeaderError, match="shape"):
        check_tensors_fit(config, {**shapes, "model.embed_tokens.weight": (65, 16)})
    with pytest.raises(HeaderError, match="parameters"):
        expected_shapes(config, ModelLimits(max_parameters=100))
    # adapters fold into their weight, as loading folds them; a pair that cannot is refused
    layer = "model.layers.0.mlp.down_proj"
    check_tensors_fit(config, {**shapes, f"{layer}.adapter_a": (2, 32), f"{layer}.adapter_b": (16, 2)})
    with pytest.raises(HeaderError, match="adapters"):
        check_tensors_fit(config, {**shapes, f"{layer}.adapter_a": (2, 16), f"{layer}.adapter_b": (16, 2)})
    with pytest.raises(HeaderError, match="adapters"):
        check_tensors_fit(config, {**shapes, f"{layer}.adapter_a": (2, 32)})


def test_explicit_gpt_record_fits_as_the_absent_one():
    config = {"num_layers": 1, "model_dim": 8, "num_heads": 2, "num_kv_heads": 2}
    assert expected_shapes({"arch": "gpt", **config}) == expected_shapes(config)


def test_external_record_has_no_model_to_fit():
    assert expected_shapes({"arch": "external"}) is None
    check_tensors_fit({"arch": "external", "info": {"class": "Net"}}, {"any": (3, 4)})
