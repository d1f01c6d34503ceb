"""Every corruption is caught: each single-bit flip and each truncation of a small artifact,
edits re-sealed with valid checksums, and random structured mutations (hypothesis)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketpack.artifact import decode_artifact, parse_artifact, verify_info
from ticketpack.errors import ArtifactError, TicketpackError
from ticketpack.ticket import weights_sha256

from tests.fuzz.mutate import DrawChooser, load_untrusted, mutate, seed_corpus
from tests.hostile.make_hostile import base_ticket, control_bytes, repack, seal, section_blobs, split

from tests.tiny import HAVE_V1_EXTRA

CODECS = ["zstd", "auto"]


@pytest.fixture(scope="module")
def want_sha() -> str:
    return weights_sha256(base_ticket().effective_state_dict())


def _load(data: bytes) -> dict:
    """Parse, decode and verify both digests; the verified effective weights."""
    info = parse_artifact(data)
    with np.errstate(all="ignore"):  # corrupt fp16 scales may be NaN or inf
        return verify_info(info, decode_artifact(info))[0]


@pytest.mark.parametrize("codec", CODECS)
def test_every_single_bit_flip_is_rejected(codec):
    data = control_bytes(codec)
    assert 800 < len(data) < 2048
    parse_artifact(data)  # the control parses
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ArtifactError):
            parse_artifact(bytes(flipped))


@pytest.mark.parametrize("codec", CODECS)
def test_every_truncation_is_rejected(codec):
    data = control_bytes(codec)
    for length in range(len(data)):
        with pytest.raises(ArtifactError):
            parse_artifact(data[:length])
    with pytest.raises(ArtifactError, match="trailing"):
        parse_artifact(data + b"\x00")


def test_resealed_payload_flips_never_load(want_sha):
    """A payload bit flipped with every CRC recomputed: the decoders or the weights hash
    refuse it, so no flip yields a different model (only the original hash verifies)."""
    parts = split(control_bytes("auto"))
    blobs, text = section_blobs(parts), json.dumps(parts.header)
    for i, blob in enumerate(blobs):
        for bit in range(len(blob) * 8):
            changed = bytearray(blob)
            changed[bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(TicketpackError):
                _load(repack(json.loads(text), blobs[:i] + [bytes(changed)] + blobs[i + 1:], hcodec=0))


def _resealed_header_flips(want_sha: str, stride: int) -> int:
    """Flip header bits and re-seal: each result is refused, or loads with the very same
    weights and differs only inside provenance (the model digest covers config and eval)."""
    parts = split(control_bytes("auto"))
    raw = json.dumps(parts.header, separators=(",", ":")).encode()
    unhashed = [_span(raw, key) for key in ("provenance",)]
    loaded = 0
    for bit in range(0, len(raw) * 8, stride):
        changed = bytearray(raw)
        changed[bit // 8] ^= 1 << (bit % 8)
        try:
            state = _load(seal(bytes(changed), parts.payload, hcodec=0))
        except TicketpackError:
            continue
        loaded += 1
        assert weights_sha256(state) == want_sha
        assert any(lo <= bit // 8 < hi for lo, hi in unhashed), raw[bit // 8 - 20:bit // 8 + 5]
    return loaded


def _span(raw: bytes, key: str) -> tuple[int, int]:
    start = raw.index(f'"{key}":'.encode())
    end = raw.index(b"}", start) + 1  # both are flat objects here
    return start, end


def test_resealed_header_flips_keep_the_weights(want_sha):
    assert _resealed_header_flips(want_sha, stride=3) > 0  # provenance edits do load


@pytest.mark.slow
def test_resealed_header_flips_keep_the_weights_every_bit(want_sha):
    assert _resealed_header_flips(want_sha, stride=1) > 0


SEEDS = seed_corpus()


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutations_raise_only_ticketpack_errors(data):
    seed = SEEDS[data.draw(st.integers(0, len(SEEDS) - 1))]
    mutated = mutate(seed, DrawChooser(data.draw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN scales in corrupt fp16 data
        outcome = load_untrusted(mutated)  # anything but a TicketpackError propagates
    assert outcome in OUTCOMES


# what load_untrusted may answer: a load that got through, or the name of a ticketpack error
def _error_names(cls: type) -> set[str]:
    return {cls.__name__}.union(*(_error_names(sub) for sub in cls.__subclasses__()))


OUTCOMES = {"verified", "decoded"} | _error_names(TicketpackError)


def test_outcomes_name_the_loads_and_the_errors():
    assert load_untrusted(SEEDS[0]) == "verified"
    assert load_untrusted(SEEDS[0][:10]) == "TruncatedError" and "TruncatedError" in OUTCOMES
    assert "ValueError" not in OUTCOMES and "str" not in OUTCOMES


def test_seed_corpus_covers_every_encoding_and_codec():
    seen_enc, seen_codec, seen_hcodec = set(), set(), set()
    for data in SEEDS:
        info = parse_artifact(data)
        assert load_untrusted(data) == "verified"
        seen_hcodec.add(data[10])
        for t in info.tensors:
            for s in t["sections"]:
                seen_enc.add(s["enc"])
                seen_codec.add(s["codec"])
    v1_entropy = {"ans0", "ansrow", "nm"} if HAVE_V1_EXTRA else set()  # written only with the v1 extra
    assert seen_enc >= {"bits", "planes", "trits5", "f16", "rans0", "ransrow", "ransnm"} | v1_entropy
    assert seen_codec == {"none", "zstd", "zlib"} and seen_hcodec == {0, 1, 2}
