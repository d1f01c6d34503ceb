"""The conformance files (tests/conformance/, docs/FORMAT.md section 9) are what the core reads
and what the generator script writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import math

import numpy as np

from ticketpack.errors import DecodeError
from ticketpack.format import constants as c
from ticketpack.format import rans
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
    make, forced, _, version = CASES[name]
    committed, rebuilt = (parse_artifact(d) for d in ((FOLDER / f"{name}.tpk").read_bytes(),
                                                      build(make, forced, version)))
    assert committed.version == rebuilt.version == version
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
            "init": set(), "rng": set(), "layout": set(), "version": set()}
    for name in CASES:
        info = parse_artifact((FOLDER / f"{name}.tpk").read_bytes())
        seen["rng"].add(info.header["rng"] if info.header["rng"] == c.RNG_ID else c.PG_RNG_PREFIX)
        seen["version"].add(info.version)
        for t in info.tensors:
            seen["kind"].add(t["kind"])
            if t["kind"] == "masked":
                seen["layout"].add(t.get("layout", c.DEFAULT_LAYOUT))
            for key in ("mask", "scale", "gamma", "init"):
                if key in t:
                    seen[key].add(t[key].split(":")[0])
            for s in t["sections"]:
                seen["enc"].add(s["enc"])
                seen["codec"].add(s["codec"])
    assert seen == {"kind": set(c.TENSOR_KINDS), "codec": set(c.SECTION_CODECS),
                    "enc": set(c.SYMBOL_ENCODINGS_BY_VERSION[2] + c.VALUE_ENCODINGS + (c.INT8_ENCODING,)),
                    "mask": set(c.MASK_KINDS), "scale": set(c.SCALE_MODES), "gamma": set(c.GAMMA_MODES),
                    "init": set(c.INIT_RULES), "rng": {c.RNG_ID, c.PG_RNG_PREFIX},
                    "layout": set(c.LAYOUTS), "version": {2, c.FORMAT_VERSION}}


def test_v2_files_stay_v2_and_v3_additions_are_v3():
    """The v2 files are the v2 reference (never rewritten as v3); every file using a v3 addition
    is a v3 file, and each v3 file uses one."""
    for name, (_, _, _, version) in CASES.items():
        info = parse_artifact((FOLDER / f"{name}.tpk").read_bytes())
        uses_v3 = any(t["kind"] == "masked" and (t["init"] not in c.INIT_RULES_BY_VERSION[2]
                                                 or t["mask"].split(":")[0] not in c.MASK_KINDS_BY_VERSION[2]
                                                 or set(t) & set(c.ENTRY_KEYS_FROM_VERSION))
                      for t in info.tensors)
        assert info.version == version == (3 if uses_v3 or name.startswith("lanes-") else 2), name


def test_the_lane_case_needs_several_lanes():
    info = parse_artifact((FOLDER / "lanes-rans0-lmin8.tpk").read_bytes())
    raw = section_bytes(info.tensors[0]["sections"][0], info.payload, "w")
    n = math.prod(info.tensors[0]["shape"])
    levels = decode_artifact(info).tensors[0].levels
    counts_len = len(rans.put_varint(n - int(np.count_nonzero(levels))))  # K = 2: one count, B, e
    per, e = raw[counts_len], raw[counts_len + 1]
    assert c.min_lanes(-(-n // per)) == 1 << e == 8
    fewer = rans.encode_rans0(levels, 2, lanes_log2=e - 1)
    with pytest.raises(DecodeError, match="needs at least 8"):  # one lane fewer: refused in v3
        rans.decode_rans0(fewer, n, 2)
    assert np.array_equal(rans.decode_rans0(fewer, n, 2, version=2), levels.reshape(-1))


def test_effective_weights_do_not_depend_on_threads():
    make, _, _, _ = CASES["several-tensors"]
    ticket = make()
    one, two = (effective_weights(ticket, threads, digests=True)[1] for threads in (1, 4))
    assert one == two


@pytest.mark.parametrize("name", ["masknone-noscale", "masknone-rowscale", "int8-zstd", "several-tensors"])
def test_size_report_covers_the_v2_kinds(name):
    from ticketpack import api

    report = api.size(FOLDER / f"{name}.tpk")
    assert report.total_bytes == (FOLDER / f"{name}.tpk").stat().st_size
    assert sum(r.bytes for r in report.tensors) + report.header_bytes == report.total_bytes
