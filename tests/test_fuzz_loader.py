"""The fast version of the differential fuzz target (the standalone loader against the library
on mutated artifacts; the 10-minute runs: SECURITY.md)."""

from tests.fuzz import fuzz_loader


def test_loader_and_library_agree_on_mutated_artifacts():
    out = fuzz_loader.run(seconds=60, seed=1, max_inputs=250)
    counts = out["counts"]
    assert out["findings"] == []
    assert counts["inputs"] >= 100
    # the mutations reach both verdicts: files both accept and files both refuse
    assert counts.get("library ok / loader ok", 0) > 0
    assert sum(v for k, v in counts.items() if k.startswith("library ") and k.endswith("loader refused")) > 0
