"""Writers check what they write with the reader's own rules (nothing a writer emits fails a
reader), and every read path refuses non-finite effective weights, naming the tensor."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from ticketpack import api
from ticketpack.errors import DecodeError, UsageError
from ticketpack.format.container import (assemble, encode_artifact, load_artifact, parse_artifact,
                                         write_artifact)
from ticketpack.format.maskspec import MaskSpec
from ticketpack.format.tensors import MaskedTensor, PlainTensor, TernaryTensor, Ticket


def _masked(name: str = "w", shape=(2, 3), scale=None) -> MaskedTensor:
    return MaskedTensor(name, shape, "he_uniform", MaskSpec.parse("none"), None, scale)


@pytest.mark.parametrize("ticket, match", [
    (Ticket(1, {}, [_masked("x" * 2000)]), "2000 B"),
    (Ticket(1, {}, [_masked(shape=(1,) * 9)]), "rank 9"),
    (Ticket(1, {"lr": float("nan")}, [_masked()]), "NaN"),
    (Ticket(1, {}, [_masked(scale=np.float32(3e38))]), "w: effective weight .* -?inf"),
    (Ticket(1, {}, [PlainTensor("p", np.ones(3, np.float16)), _masked("w" * 600 + "é" * 300)]), "B, expected 1..1024"),
])
def test_writer_refuses_what_a_reader_would_refuse(ticket, match, tmp_path):
    out = tmp_path / "t.tpk"
    with pytest.raises(UsageError, match=match) as info:
        write_artifact(ticket, out)
    assert "nothing written" in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_writer_output_passes_the_reader():
    ticket = Ticket(1, {}, [_masked(scale=np.float16(2.0)), TernaryTensor("t", np.array(1, np.int8),
                                                                          np.float16(0.5))])
    assert parse_artifact(encode_artifact(ticket)).version == 3


def _overflowing_file(tmp_path) -> str:
    """A file whose f32 scale 3e38 times a frozen weight overflows float32 (every other check
    passes: the CRCs are right, the scale itself is finite)."""
    ticket = Ticket(1, {}, [_masked(scale=np.float32(1.0))])
    info = parse_artifact(encode_artifact(ticket, codec="none"))
    section = info.tensors[0]["sections"][0]
    payload = bytearray(info.payload)
    payload[section["offset"]:section["offset"] + 4] = struct.pack("<f", 3e38)
    section["crc"] = zlib.crc32(payload[section["offset"]:section["offset"] + 4])
    path = tmp_path / "overflow.tpk"
    path.write_bytes(assemble(info.header, bytes(payload), "zstd", info.version))
    return str(path)


def test_every_read_path_refuses_non_finite_effective_weights(tmp_path):
    path = _overflowing_file(tmp_path)
    for read in (lambda: load_artifact(path), lambda: api.verify(path),
                 lambda: api.export(path, tmp_path / "out.safetensors")):
        with pytest.raises(DecodeError, match=r"^w: effective weight \d+ is -?inf") as info:
            read()
        assert "\n" not in str(info.value)
    assert not (tmp_path / "out.safetensors").exists()


def test_cli_names_the_tensor_and_exits_3(tmp_path):
    from click.testing import CliRunner

    from ticketpack.cli.main import main

    result = CliRunner().invoke(main, ["verify", _overflowing_file(tmp_path)])
    assert result.exit_code == 3 and "w: effective weight" in result.output


def test_rank0_ternary_verifies_sizes_and_exports(tmp_path):
    path = tmp_path / "r0.tpk"
    write_artifact(Ticket(1, {}, [TernaryTensor("t", np.array(-1, np.int8), np.float16(0.5))]), path)
    ticket, weights = load_artifact(path)
    assert weights["t"].shape == () and weights["t"] == np.float32(-0.5)
    assert isinstance(ticket.tensors[0].trits, np.ndarray)
    assert api.verify(path)["ok"]
    assert api.size(path).total_bytes == path.stat().st_size
    assert api.export(path, tmp_path / "r0.safetensors")["parameters"] == 1
