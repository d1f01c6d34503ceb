"""The conformance files (tests/conformance/, docs/FORMAT.md section 9) are what the core reads
and what the generator script writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ticketpack.format import constants as c
from ticketpack.format.container import check_digests, decode_artifact, parse_artifact
from ticketpack.format.digest import tensor_sha256
from ticketpack.format.sections import section_bytes
from ticketpack.format.tensors import effective_weights

from tests.conformance.make_conformance import build, cases

FOLDER = Path(__file__).parent / "conformance"
CASES = cases()


def test_every_case_has_its_files_and_nothing_else():
    on_disk = {p.stem for p in FOLDER.glob("*.tpk")}
    assert on_disk == set(CASES) == {p.stem for p in FOLDER.glob("*.json")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_core_reproduces_the_expected_digests(name):
    data = (FOLDER / f"{name}.tpk").read_bytes()
    want = json.loads((FOLDER / f"{name}.json").read_text(encoding="utf-8"))
    assert hashlib.sha256(data).hexdigest() == want["file_sha256"]
    info = parse_artifact(data)
    assert info.version == want["format_version"] and info.header["rng"] == want["rng"]
    ticket = decode_artifact(info)
    weights, digests = check_digests(ticket, info.header, info.version)
    assert digests == {"weights_sha256": want["weights_sha256"], "model_sha256": want["model_sha256"]}
    assert {n: tensor_sha256(n, w).hex() for n, w in weights.items()} == want["tensors"]
    assert list(weights) == list(want["tensors"])  # header order


@pytest.mark.parametrize("name", sorted(CASES))
def test_generator_rebuilds_the_same_content(name):
    """Header and decoded section bytes as committed (compressed bytes may differ across zstd
    and zlib releases, so those are not compared)."""
    make, forced, _ = CASES[name]
    committed, rebuilt = (parse_artifact(d) for d in ((FOLDER / f"{name}.tpk").read_bytes(),
                                                      build(make, forced)))
    for a, b in zip(committed.tensors, rebuilt.tensors):
        assert [section_bytes(s, committed.payload, a["name"]) for s in a["sections"]] == \
            [section_bytes(s, rebuilt.payload, b["name"]) for s in b["sections"]]
    strip = lambda h: {**h, "tensors": [{**t, "sections": [{k: v for k, v in s.items()  # noqa: E731
                                                            if k not in ("offset", "length", "crc")}
                                                           for s in t["sections"]]} for t in h["tensors"]]}
    assert strip(committed.header) == strip(rebuilt.header)


def test_conformance_covers_every_kind_encoding_compression_and_stream():
    """Every name of the format's vocabulary (format/constants.py) appears in some case, so a new
    kind, encoding, mode or init rule needs its conformance case."""
    seen = {"kind": set(), "enc": set(), "codec": set(), "mask": set(), "scale": set(), "gamma": set(),
            "init": set(), "rng": set()}
    for name in CASES:
        info = parse_artifact((FOLDER / f"{name}.tpk").read_bytes())
        seen["rng"].add(info.header["rng"] if info.header["rng"] == c.RNG_ID else c.PG_RNG_PREFIX)
        for t in info.tensors:
            seen["kind"].add(t["kind"])
            for key in ("mask", "scale", "gamma", "init"):
                if key in t:
                    seen[key].add(t[key].split(":")[0])
            for s in t["sections"]:
                seen["enc"].add(s["enc"])
                seen["codec"].add(s["codec"])
    assert seen == {"kind": set(c.TENSOR_KINDS), "codec": set(c.SECTION_CODECS),
                    "enc": set(c.SYMBOL_ENCODINGS_BY_VERSION[2] + c.VALUE_ENCODINGS + (c.INT8_ENCODING,)),
                    "mask": set(c.MASK_KINDS), "scale": set(c.SCALE_MODES), "gamma": set(c.GAMMA_MODES),
                    "init": set(c.INIT_RULES), "rng": {c.RNG_ID, c.PG_RNG_PREFIX}}


def test_effective_weights_do_not_depend_on_threads():
    make, _, _ = CASES["several-tensors"]
    ticket = make()
    one, two = (effective_weights(ticket, threads, digests=True)[1] for threads in (1, 4))
    assert one == two


@pytest.mark.parametrize("name", ["masknone-noscale", "masknone-rowscale", "int8-zstd", "several-tensors"])
def test_size_report_covers_the_v2_kinds(name):
    from ticketpack import api

    report = api.size(FOLDER / f"{name}.tpk")
    assert report.total_bytes == (FOLDER / f"{name}.tpk").stat().st_size
    assert sum(r.bytes for r in report.tensors) + report.header_bytes == report.total_bytes
