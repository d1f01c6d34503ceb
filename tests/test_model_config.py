"""The model config's schema: every key typed and ranged, config bombs refused before anything
is built, the implied parameter count exact, the module torch-free."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from ticketpack.nn import frozen as rng
from ticketpack.errors import ConfigError, HeaderError
from ticketpack.models.gpt_model import GPT
from ticketpack.models.gpt_config import (CONFIG_SCHEMA, DEFAULT_MODEL_LIMITS, INIT_RULE_NAMES, SCHEMA,
                                          GPTConfig, ModelLimits, activations_per_token, config_from_dict,
                                          parameter_count, split_training_keys)

from tests.tiny import TINY_CONFIG

# (override, the key the message must name): each a config an attacker or a typo could send
BOMBS = [
    ({"num_layers": 2**40}, "num_layers"),
    ({"model_dim": 2**40}, "model_dim"),
    ({"vocab_size": 2**62}, "vocab_size"),
    ({"mlp_mult": 2**63}, "mlp_mult"),
    ({"num_heads": 10**4000}, "num_heads"),
    ({"logit_softcap": 1e300}, "logit_softcap"),
    ({"logit_softcap": float("inf")}, "logit_softcap"),
    ({"rope_base": 1e-300}, "rope_base"),
    ({"rope_base": float("nan")}, "rope_base"),
    ({"mask_density": 0.0}, "mask_density"),  # legacy keys are still type-checked
    ({"mask_density": float("nan")}, "mask_density"),
    ({"num_layers": True}, "num_layers"),
    ({"num_layers": 2.0}, "num_layers"),
    ({"num_layers": "4"}, "num_layers"),
    ({"tie_embeddings": 1}, "tie_embeddings"),
    ({"logit_softcap": "30"}, "logit_softcap"),
    ({"logit_softcap": 10**400}, "logit_softcap"),
    ({"init": "bogus"}, "init"),
    ({"mask": "multibit:999"}, "mask"),
    ({"mask": "signed:129"}, "mask"),
    ({"mask": "signed:1"}, "mask"),
    ({"init": "normal_std"}, "init"),  # its std is per tensor entry: no GPT config field holds it
    ({"mask_estimator": ["magic"]}, "mask_estimator"),
    ({"scale_mode": None}, "scale_mode"),
    ({"num_layers": 0}, "num_layers"),
    ({"num_layers_": 4}, "num_layers_"),
    ({"model_dim": 2**15, "num_layers": 1024}, "parameters"),
    ({"vocab_size": 2**23, "model_dim": 4}, "activations per token"),
]


@pytest.mark.parametrize("mask", ["signed:2", "signed:4", "signed:128"])
def test_signed_masks_are_a_config_choice(mask):
    config = config_from_dict({**TINY_CONFIG, "mask": mask, "init": "he_normal", "embed_init": "xavier_normal"})
    assert config.mask == mask and config.mask_spec().kind == "signed"


@pytest.mark.parametrize("override, key", BOMBS)
def test_config_bomb_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key) as info:
        config_from_dict({**TINY_CONFIG, **override})
    assert "\n" not in str(info.value) and len(str(info.value)) < 600


def test_the_caller_chooses_the_error_class():
    with pytest.raises(HeaderError, match="config: num_layers"):
        config_from_dict({"num_layers": 2**40}, error=HeaderError, where="config")
    assert config_from_dict({"note": "v1"}, ignore_unknown=True) == GPTConfig()
    for bad in (5, "5", None, [1]):
        with pytest.raises(ConfigError, match="expected a JSON object"):
            config_from_dict(bad)


def test_bound_is_raisable():
    big = {**TINY_CONFIG, "model_dim": 2**14, "num_heads": 8, "num_layers": 2}
    with pytest.raises(ConfigError, match="parameters"):
        config_from_dict(big, ModelLimits(max_parameters=10**8))
    config = config_from_dict(big, ModelLimits(max_parameters=10**10))
    assert parameter_count(config) > 10**8
    assert activations_per_token(config) <= DEFAULT_MODEL_LIMITS.max_activations_per_token


def test_schema_matches_the_dataclass():
    fields = dataclasses.fields(GPTConfig)
    assert [f.name for f in fields] == [f.name for f in CONFIG_SCHEMA]
    assert GPTConfig().to_dict() == {f.name: f.default for f in CONFIG_SCHEMA}
    assert INIT_RULE_NAMES == tuple(r for r, row in rng.INIT_RULES.items() if row.fan != "init_std")
    for f in CONFIG_SCHEMA:
        assert f.doc and f.type in ("int", "float", "bool", "str", "float-or-null")
        if f.type in ("int", "float"):
            assert f.low <= f.default <= f.high
    assert set(SCHEMA) == {f.name for f in CONFIG_SCHEMA}


@pytest.mark.parametrize("override", [{}, {"tie_embeddings": False, "rmsnorm_weight": True},
                                      {"block_scales": False, "head_scales": False, "pre_logit_scale": False,
                                       "embed_norm": False, "rmsnorm_weight": True},
                                      {"num_kv_heads": 1, "mlp_mult": 3, "num_layers": 3}])
def test_parameter_count_is_the_models(override):
    config = config_from_dict({**TINY_CONFIG, **override})
    with torch.device("meta"):
        model = GPT(config, masked=False)
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_json_numbers_become_floats_and_values_are_kept():
    config = config_from_dict({**TINY_CONFIG, "logit_softcap": 30})
    assert config.logit_softcap == 30.0 and isinstance(config.logit_softcap, float)
    assert config_from_dict(config.to_dict()) == config


def test_legacy_training_keys_are_read_and_dropped():
    """Configs written before the training settings left the config (FORMAT.md 2.2) still load;
    a config written now has no such key."""
    old = {**TINY_CONFIG, "mask": "multibit:4", "mask_estimator": "nested", "mask_density": 0.3}
    config = config_from_dict(old)
    assert config == config_from_dict({**TINY_CONFIG, "mask": "multibit:4"})
    assert not {"mask_estimator", "mask_density"} & set(config.to_dict())
    assert split_training_keys(old) == ({**TINY_CONFIG, "mask": "multibit:4"},
                                        {"mask_estimator": "nested", "mask_density": 0.3})


def test_module_imports_without_torch():
    code = ("import sys, ticketpack.models.gpt_config as m; m.config_from_dict({\"mask\": \"nm:2:4\"}); "
            "assert \"torch\" not in sys.modules, \"torch imported\"")
    subprocess.run([sys.executable, "-c", code], check=True)
