import hashlib
import zlib
from pathlib import Path

import numpy as np
import pytest

from ticketpack import artifact
from ticketpack.artifact import (MAGIC, PREFIX, decode_artifact, encode_artifact, load_ticket,
                                 parse_artifact, write_artifact)
from ticketpack.errors import (BadMagicError, BudgetExceededError, ChecksumError, TruncatedError,
                               UnsupportedVersionError, VerificationError)
from ticketpack.format.constants import RNG_ID
from ticketpack.format.digest import weights_sha256_v1
from ticketpack.ticket import MaskedTensor, Ticket, weights_sha256

from tests.tiny import make_ticket


def _same_tickets(a: Ticket, b: Ticket) -> None:
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    sa, sb = a.effective_state_dict(), b.effective_state_dict()
    for name in sa:
        assert sa[name].numpy().tobytes() == sb[name].numpy().tobytes(), name


@pytest.mark.parametrize("codec", ["auto", "zstd", "zlib"])
def test_round_trip_bit_identical(ticket, codec, tmp_path):
    path = tmp_path / "t.tpk"
    n = write_artifact(ticket, path, codec=codec)
    assert n == path.stat().st_size
    back = load_ticket(path)
    _same_tickets(ticket, back)
    for a, b in zip(ticket.tensors, back.tensors):
        if isinstance(a, MaskedTensor):
            assert np.array_equal(a.levels, b.levels) and str(a.mask) == str(b.mask)
    assert back.seed == ticket.seed


def test_header_records_hash_and_provenance(ticket):
    info = parse_artifact(encode_artifact(ticket))
    assert info.header["weights_sha256"] == weights_sha256(ticket.effective_state_dict())
    assert info.header["rng"] == RNG_ID
    assert info.header["provenance"]["ticketpack"] == "test"


def test_fixed_overhead_under_1kib():
    t = make_ticket()
    t.provenance = {"ticketpack": "0.1.0", "torch": "2.13.0+cpu", "numpy": "2.4.6"}
    data = encode_artifact(t)
    info = parse_artifact(data)
    names = sum(len(x.name) for x in t.tensors)
    payload = sum(s["length"] for e in info.tensors for s in e["sections"])
    assert len(data) - payload - names < 1024


GOLDEN_DIR = Path(__file__).parent / "golden"


def golden_ticket() -> Ticket:
    t = make_ticket(seed=3)
    t.provenance = {"ticketpack": "golden"}
    return t


def test_golden_bytes():
    """Format stability: with no compression the bytes are ours alone and must not change in v3."""
    data = encode_artifact(golden_ticket(), codec="none")
    assert data[:8] == MAGIC and data[8:10] == (3).to_bytes(2, "little")
    assert hashlib.sha256(data).hexdigest() == GOLDEN_V3_NONE_SHA256


def test_golden_v2_bytes_differ_only_by_the_version():
    """A ticket that v2 could express is written as v2 wrote it, but for the version field (and
    so the CRC): the v2 golden bytes, rebuilt from the v3 writer's."""
    body = bytearray(encode_artifact(golden_ticket(), codec="none")[:-4])
    body[8:10] = (2).to_bytes(2, "little")
    v2 = bytes(body) + zlib.crc32(body).to_bytes(4, "little")
    assert hashlib.sha256(v2).hexdigest() == GOLDEN_V2_NONE_SHA256
    assert parse_artifact(v2).version == 2 and load_ticket_bytes(v2)


def test_golden_v1_file_still_loads():
    """A committed v1 artifact (auto codecs: constriction ANS) must load to the same weights forever."""
    info = parse_artifact((GOLDEN_DIR / "small-v1.tpk").read_bytes())
    assert info.version == 1
    ticket = load_ticket(GOLDEN_DIR / "small-v1.tpk")  # checks the v1 weights_sha256
    assert weights_sha256_v1((n, w.numpy()) for n, w in ticket.effective_state_dict().items()) \
        == GOLDEN_V1_WEIGHTS_SHA256 == info.header["weights_sha256"]
    _same_tickets(ticket, golden_ticket())
    assert artifact.check_digests(ticket, info.header, 1)[1]["model_sha256"]  # computed, not stored


def test_golden_v2_file_still_loads():
    """A committed v2 artifact (auto codecs) must load to the same weights and model forever."""
    info = parse_artifact((GOLDEN_DIR / "small-v2.tpk").read_bytes())
    ticket = load_ticket(GOLDEN_DIR / "small-v2.tpk")
    assert weights_sha256(ticket.effective_state_dict()) == GOLDEN_V2_WEIGHTS_SHA256
    assert info.version == 2 and info.header["model_sha256"] == GOLDEN_V2_MODEL_SHA256
    _same_tickets(ticket, golden_ticket())


def test_golden_v3_file_still_loads():
    """A committed v3 artifact (auto codecs) must load to the same weights and model forever."""
    info = parse_artifact((GOLDEN_DIR / "small-v3.tpk").read_bytes())
    ticket = load_ticket(GOLDEN_DIR / "small-v3.tpk")
    assert weights_sha256(ticket.effective_state_dict()) == GOLDEN_V2_WEIGHTS_SHA256  # same weights
    assert info.version == 3 and info.header["model_sha256"] == GOLDEN_V2_MODEL_SHA256
    _same_tickets(ticket, golden_ticket())


def load_ticket_bytes(data: bytes) -> Ticket:
    ticket = decode_artifact(parse_artifact(data))
    artifact.check_digests(ticket, parse_artifact(data).header, parse_artifact(data).version)
    return ticket


GOLDEN_V3_NONE_SHA256 = "cf50380a3ce8e9fdd2a81170ab98bf4564402b95d9f52895957bd9c85a95a8ec"
GOLDEN_V2_NONE_SHA256 = "627bfe572288d432bb632b9b0383e509d4de0273569d0160d097676ca6962583"
GOLDEN_V1_WEIGHTS_SHA256 = "4eb714ac76c1a410b05f1dc7d60ee64b4c865f6ef89c33c7564b0e7018890823"
GOLDEN_V2_WEIGHTS_SHA256 = "a8b005e60a4c0f028dc0c81b06a8c3b026a668e11f4ff7a86ba3e20027b4e870"
GOLDEN_V2_MODEL_SHA256 = "ed913613ae14050d274ebe4de4206bfe2f643ee57ea587648f59060c8285edf4"


def test_budget_overrun_writes_nothing(ticket, tmp_path):
    path = tmp_path / "over.tpk"
    size = len(encode_artifact(ticket))
    with pytest.raises(BudgetExceededError, match=f"by {1:,} B"):
        write_artifact(ticket, path, budget=size - 1)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    write_artifact(ticket, path, budget=size)
    assert path.stat().st_size == size


def test_budget_overrun_keeps_previous_file(ticket, tmp_path):
    path = tmp_path / "keep.tpk"
    path.write_bytes(b"previous")
    with pytest.raises(BudgetExceededError):
        write_artifact(ticket, path, budget=10)
    assert path.read_bytes() == b"previous"


def test_truncated_file(ticket):
    data = encode_artifact(ticket)
    for cut in (0, 4, 20, len(data) // 2, len(data) - 1):
        with pytest.raises(TruncatedError, match=f"{cut} B"):
            parse_artifact(data[:cut])


def test_bit_flip_is_caught(ticket):
    data = bytearray(encode_artifact(ticket))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(ChecksumError, match="crc32"):
        parse_artifact(bytes(data))


def test_wrong_magic(ticket):
    data = b"PK\x03\x04" + encode_artifact(ticket)[4:]
    with pytest.raises(BadMagicError, match="magic"):
        parse_artifact(data)


def test_future_version(ticket):
    data = bytearray(encode_artifact(ticket))
    data[8:10] = (4).to_bytes(2, "little")
    body = bytes(data[:-4])
    data[-4:] = zlib.crc32(body).to_bytes(4, "little")
    with pytest.raises(UnsupportedVersionError, match="version: got 4"):
        parse_artifact(bytes(data))


def test_wrong_weights_hash_refused(ticket, tmp_path):
    data = encode_artifact(ticket)
    info = parse_artifact(data)
    other = decode_artifact(info)
    other.seed ^= 1  # same masks, different frozen weights
    with pytest.raises(VerificationError, match="weights_sha256"):
        artifact.verify_ticket(other, info.header["weights_sha256"])
