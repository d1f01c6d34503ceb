"""The fast version of the eval-context / checkpoint / pack-ternary / tokenizer fuzz engine
(tests/fuzz/fuzz_inputs.py; the long runs: SECURITY.md). Seeded, so the same inputs every run."""

from __future__ import annotations

from tests.fuzz import fuzz_inputs


def test_eval_checkpoint_ternary_and_tokenizer_fuzz_finds_nothing():
    counts = fuzz_inputs.run(seconds=120, seed=1, max_inputs=240)
    assert counts["inputs"] == 240
    # every target reaches both sides: inputs accepted all the way and inputs refused
    for target, accepted in (("eval", "accepted"), ("checkpoint", "loaded"), ("ternary", "packed"),
                             ("tokenizer", "loaded")):
        assert counts.get(f"{target}:{accepted}", 0) >= 2, counts
        refused = sum(v for k, v in counts.items() if k.startswith(f"{target}:") and k.endswith("Error"))
        assert refused >= 10, counts
