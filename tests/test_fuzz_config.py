"""The fast version of the config / checkpoint fuzz engine (the long runs: SECURITY.md)."""

from __future__ import annotations

from tests.fuzz import fuzz_config


def test_config_and_checkpoint_fuzz_finds_nothing():
    counts = fuzz_config.run(seconds=60, seed=1, max_inputs=150)
    assert counts["inputs"] == 150
    # both sides of the property are reached: configs that build and ones refused, checkpoints
    # that load and ones refused
    assert counts.get("config:built", 0) > 5 and counts.get("config:ConfigError", 0) > 10
    assert counts.get("checkpoint:loaded", 0) > 2 and counts.get("checkpoint:CheckpointError", 0) > 10
