"""Untrusted artifacts: the hostile-file folder, caps at their boundaries, decompression bombs,
no pickle on any load path, and the CLI's exit codes and one-line errors (see SECURITY.md)."""

from __future__ import annotations

import io
import json
import math
import pickle
import sys
import tracemalloc
from pathlib import Path

import _pickle
import pytest
import torch
import zstandard
from click.testing import CliRunner

from ticketpack import api
from ticketpack.artifact import (DEFAULT_LIMITS, SYMBOL_RAW_PER_ELEMENT, SYMBOL_RAW_SLACK, Limits,
                                 load_ticket, parse_artifact, read_artifact_bytes)
from ticketpack.train.checkpoint import load_checkpoint, ticket_from_checkpoint
from ticketpack.cli.main import main
from ticketpack.format.compression import compress, decompress
from ticketpack.errors import (ArtifactError, ConfigError, DecodeError, HeaderError, LimitError, VerificationError,
                               TicketpackError, UsageError)
from ticketpack.format.digest import model_sha256
from ticketpack.ticket import weights_sha256

from tests.tiny import make_checkpoint
from tests.hostile.make_hostile import CASES, base_ticket, control_bytes, repack, section_blobs, split

HOSTILE = Path(__file__).parent / "hostile"
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())
CONTROL = HOSTILE / "control.tpk"
REGENERATE = "run `python -m tests.hostile.make_hostile` and commit tests/hostile/"


# ---------------------------------------------------------------- the hostile folder

def test_control_loads_as_the_script_ticket():
    ticket = load_ticket(CONTROL)
    want = weights_sha256(base_ticket().effective_state_dict())
    assert weights_sha256(ticket.effective_state_dict()) == want


def test_hostile_files_are_what_the_script_makes():
    assert CONTROL.read_bytes() == control_bytes(), REGENERATE
    assert set(EXPECTED) == {c.name for c in CASES}, REGENERATE
    for case in CASES:
        assert (HOSTILE / f"{case.name}.tpk").read_bytes() == case.build(), f"{case.name}: {REGENERATE}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_file_raises_its_error(name):
    want = EXPECTED[name]
    api.verify(CONTROL, model=False)  # the success control, beside every case (tensors of no model)
    with pytest.raises(TicketpackError) as info:  # verify: the loader plus the config check
        api.verify(HOSTILE / f"{name}.tpk")
    err = info.value
    assert type(err).__name__ == want["error"], str(err)
    assert want["field"] in str(err) and "\n" not in str(err)
    assert err.exit_code == want["exit_code"]
    assert isinstance(err, ArtifactError) == (want["exit_code"] == 3)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_hostile_file_exit_code_and_one_line(name):
    want = EXPECTED[name]
    result = CliRunner().invoke(main, ["verify", str(HOSTILE / f"{name}.tpk")])
    assert result.exit_code == want["exit_code"], result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ticketpack: error: "), result.stderr
    assert want["field"] in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert isinstance(result.exception, SystemExit)


def test_cli_control_verifies_and_inspect_rejects_hostile_header():
    ok = CliRunner().invoke(main, ["verify", "--format-only", str(CONTROL)])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok:")
    bad = CliRunner().invoke(main, ["inspect", str(HOSTILE / "huge_dims.tpk")])
    assert bad.exit_code == 3 and bad.stderr.count("\n") == 1 and "dimension" in bad.stderr


def test_cli_missing_file_is_usage_error():
    result = CliRunner().invoke(main, ["verify", str(HOSTILE / "no-such-file.tpk")])
    assert result.exit_code == 2 and "no such file" in result.stderr


# ---------------------------------------------------------------- decompression bombs

@pytest.mark.parametrize("name", ["zstd_bomb", "zstd_bomb_lying_size", "zlib_bomb", "header_bomb"])
def test_bombs_refused_before_memory_is_spent(name):
    data = (HOSTILE / f"{name}.tpk").read_bytes()
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            load_ticket(HOSTILE / f"{name}.tpk")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20 + 4 * len(data)  # the bombs expand to 16-64 MiB


@pytest.mark.parametrize("codec", ["zstd", "zlib"])
def test_bomb_with_small_declared_size_stops_at_the_limit(codec):
    bomb = compress(bytes(32 << 20), codec)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="exceeds|declares"):
            decompress(bomb, codec, 1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_lying_zstd_content_size_is_refused_by_libzstd():
    # the bomb frame claims 192 content bytes (the declared raw size) and holds 64 MiB
    frame = section_blobs(split((HOSTILE / "zstd_bomb_lying_size.tpk").read_bytes()))[0]
    assert zstandard.frame_content_size(frame) == 192
    with pytest.raises(DecodeError, match="corrupt"):
        decompress(frame, "zstd", 192)


def _mask_section(parts) -> dict:
    return parts.header["tensors"][0]["sections"][0]


@pytest.mark.parametrize("codec", ["zstd", "zlib", "none"])
def test_decompress_exact_size_boundaries(codec):
    raw = bytes(range(256)) * 40
    stored = compress(raw, codec)
    assert decompress(stored, codec, len(raw)) == raw
    for wrong in (len(raw) - 1, len(raw) + 1, 0, 2**62, 2**70):
        with pytest.raises(DecodeError):
            decompress(stored, codec, wrong)
    for bad in (-1, 1.5, True, None):
        with pytest.raises(DecodeError):
            decompress(stored, codec, bad)
    if codec != "none":
        for cut in (0, 1, len(stored) // 2, len(stored) - 1):
            with pytest.raises(DecodeError):
                decompress(stored[:cut], codec, len(raw))
        with pytest.raises(DecodeError, match="trailing"):
            decompress(stored + b"\x00", codec, len(raw))


def test_declared_raw_size_is_bounded_by_the_shape():
    parts = split(control_bytes())
    s = _mask_section(parts)
    bound = SYMBOL_RAW_PER_ELEMENT * math.prod(parts.header["tensors"][0]["shape"]) + SYMBOL_RAW_SLACK
    s["raw"] = bound  # allowed by the header check, refused by decompression (192 B real)
    with pytest.raises(DecodeError):
        load_ticket_bytes(repack(parts.header, section_blobs(parts)))
    s["raw"] = bound + 1
    with pytest.raises(LimitError, match="raw"):
        parse_artifact(repack(parts.header, section_blobs(parts)))


def load_ticket_bytes(data: bytes):
    from ticketpack.artifact import decode_artifact

    return decode_artifact(parse_artifact(data))


# ---------------------------------------------------------------- caps

def test_default_limits_are_the_documented_ones():
    assert DEFAULT_LIMITS == Limits(max_file_bytes=4 * 2**30, max_header_bytes=16 * 2**20,
                                    max_tensors=100_000, max_rank=8, max_dim=2**31,
                                    max_total_elements=2**28, max_name_bytes=1024)
    text = (Path(__file__).parents[1] / "SECURITY.md").read_text()
    assert "2^28" in text and "16 MiB" in text and "100,000" in text


def test_every_cap_holds_at_its_boundary_and_can_be_raised(tmp_path):
    data = control_bytes()
    header = parse_artifact(data).header
    tensors = header["tensors"]
    exact = {
        "max_total_elements": sum(math.prod(t["shape"]) for t in tensors),
        "max_tensors": len(tensors),
        "max_rank": max(len(t["shape"]) for t in tensors),
        "max_dim": max(max(t["shape"]) for t in tensors),
        "max_name_bytes": max(len(t["name"].encode()) for t in tensors),
        "max_header_bytes": len(json.dumps(header, separators=(",", ":")).encode()),
    }
    for field, value in exact.items():
        parse_artifact(data, Limits(**{field: value}))
        with pytest.raises(LimitError):
            parse_artifact(data, Limits(**{field: value - 1}))
    path = tmp_path / "a.tpk"
    path.write_bytes(data)
    assert read_artifact_bytes(path, Limits(max_file_bytes=len(data))) == data
    with pytest.raises(LimitError, match="file"):
        read_artifact_bytes(path, Limits(max_file_bytes=len(data) - 1))


def test_too_many_elements_loads_once_the_cap_is_raised():
    # the same over-cap header passes the element check under a raised cap (then the
    # section sizes, which no longer fit the declared shape, are refused)
    data = (HOSTILE / "too_many_elements.tpk").read_bytes()
    with pytest.raises(LimitError, match="elements"):
        parse_artifact(data)
    with pytest.raises(ArtifactError) as info:
        parse_artifact(data, Limits(max_total_elements=2**40))
    assert "elements in all" not in str(info.value)


def test_unreadable_path_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_artifact_bytes(tmp_path / "missing.tpk")
    with pytest.raises(UsageError):
        read_artifact_bytes(tmp_path)  # a folder


# ---------------------------------------------------------------- no pickle on any load path

class PickleReached(AssertionError):
    pass


_ARMED = {"on": False}


# numba reads its own compile cache (``__pycache__/*.nbi``, written by numba on this machine
# when ticketpack's kernels were first compiled) with pickle: installation files, not artifact
# data, as trusted as the code beside them. Only that caller is let through.
NUMBA_CACHE = str(Path("numba", "core", "caching.py"))


def _from_numba_cache() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.endswith(NUMBA_CACHE):
            return True
        frame = frame.f_back
    return False


def _audit(event: str, args: tuple) -> None:
    if _ARMED["on"] and event == "pickle.find_class" and not _from_numba_cache():
        raise PickleReached(f"unpickling resolved {args!r} on a load path")


def _install_audit_hook() -> None:
    """Once per process, on first use (hooks cannot be removed; this one only acts while armed)."""
    if not _ARMED.get("installed"):
        sys.addaudithook(_audit)
        _ARMED["installed"] = True


def _allowed() -> bool:
    return not _ARMED["on"] or _from_numba_cache()


def _guard(real):
    def guarded(*args, **kwargs):
        if real is not None and _allowed():
            return real(*args, **kwargs)
        raise PickleReached("pickle or torch.load reached on a load path")
    return guarded


def _guard_class(real: type) -> type:
    # a class, not a function: modules imported while armed may subclass Unpickler
    class Guarded(real):
        def load(self):
            if _allowed():
                return super().load()
            raise PickleReached("pickle.Unpickler.load reached on a load path")
    return Guarded


@pytest.fixture
def no_pickle(monkeypatch):
    """Make every way into pickle (and torch.load) raise while the test body runs."""
    _install_audit_hook()
    for module in (pickle, _pickle):
        monkeypatch.setattr(module, "load", _guard(module.load))
        monkeypatch.setattr(module, "loads", _guard(module.loads))
        monkeypatch.setattr(module, "Unpickler", _guard_class(module.Unpickler))
    monkeypatch.setattr(torch, "load", _guard(None))
    monkeypatch.setattr(torch.serialization, "load", _guard(None))
    _ARMED["on"] = True
    yield
    _ARMED["on"] = False


@pytest.fixture
def gpt_files(tmp_path):
    ckpt, art, text = tmp_path / "m.safetensors", tmp_path / "m.tpk", tmp_path / "val.txt"
    make_checkpoint(ckpt, seed=5)
    api.pack(ckpt, art)
    text.write_text("To be, or not to be, that is the question.\n" * 4)
    return ckpt, art, text


def test_trap_catches_pickle_and_torch_load(no_pickle):
    buf = io.BytesIO()
    torch.save(torch.zeros(2), buf)
    with pytest.raises(PickleReached):
        torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    with pytest.raises(PickleReached):
        pickle.loads(b"\x80\x04K\x01.")
    with pytest.raises(PickleReached):
        pickle.Unpickler(io.BytesIO(pickle.dumps(1))).load()
    with pytest.raises(PickleReached):  # even an unpickler fetched before the patch
        _UNPATCHED_LOADS(pickle.dumps(Path("x")))


_UNPATCHED_LOADS = pickle.loads


def test_load_paths_never_reach_pickle(gpt_files, no_pickle, tmp_path):
    ckpt, art, text = gpt_files
    want = weights_sha256(base_ticket().effective_state_dict())
    assert weights_sha256(load_ticket(CONTROL).effective_state_dict()) == want
    assert api.verify(CONTROL, model=False)["ok"] and api.verify(art)["ok"]
    assert api.inspect(art)["file_bytes"] == art.stat().st_size
    assert api.size(art).total_bytes == art.stat().st_size
    packed = load_ticket(art)
    assert ticket_from_checkpoint(load_checkpoint(ckpt)).effective_state_dict().keys() \
        == packed.effective_state_dict().keys()
    assert api.pack(ckpt, tmp_path / "again.tpk") == art.stat().st_size
    assert (tmp_path / "again.tpk").read_bytes() == art.read_bytes()
    out = api.load_and_eval(art, [str(text)], device="cpu", seq_len=16, batch_size=2)
    assert out["tokens"] > 0 and math.isfinite(out["val_bpb"])
    api.export(art, tmp_path / "dense.safetensors")
    assert isinstance(api.sample(art, "To be", tokens=4, device="cpu")["text"], str)


def test_hostile_pickle_file_is_refused_without_unpickling(no_pickle):
    with pytest.raises(ArtifactError, match="magic"):
        load_ticket(HOSTILE / "bad_magic_pickle.tpk")
    with pytest.raises(ArtifactError):
        load_checkpoint(HOSTILE / "bad_magic_pickle.tpk")


def test_config_bomb_is_refused_before_the_model_is_allocated(gpt_files):
    """A config asking for a 2^40-row embedding while the tensors hold 256 rows: refused by
    the config schema before anything is regenerated or built (eagerly it needs 128 TiB)."""
    _, art, text = gpt_files
    parts = split(art.read_bytes())
    parts.header["config"]["vocab_size"] = 2**40
    bomb = art.with_name("config_bomb.tpk")
    bomb.write_bytes(repack(parts.header, section_blobs(parts)))
    with pytest.raises(HeaderError, match="vocab_size"):
        api.verify(bomb)
    with pytest.raises(HeaderError, match="vocab_size"):
        api.load_and_eval(bomb, [str(text)], device="cpu", seq_len=16)


def test_config_that_misfits_the_tensors_is_malformed_content(gpt_files):
    _, art, text = gpt_files
    parts = split(art.read_bytes())
    parts.header["config"]["vocab_size"] = 300  # valid alone; the embedding holds 256 rows
    bad = art.with_name("misfit.tpk")
    bad.write_bytes(repack(parts.header, section_blobs(parts)))
    with pytest.raises(VerificationError, match="model_sha256"):  # the model digest covers config
        api.verify(bad)
    h = parts.header  # re-sealed by someone who also recomputes the model digest
    h["model_sha256"] = model_sha256(h["weights_sha256"], h["config"], h.get("eval"))
    bad.write_bytes(repack(h, section_blobs(parts)))
    assert api.verify(bad, model=False)["ok"]  # a valid config and valid weights, each on its own
    with pytest.raises(HeaderError, match="tok_emb"):  # verify refuses what load-and-eval refuses
        api.verify(bad)
    with pytest.raises(HeaderError, match="tok_emb"):
        api.load_and_eval(bad, [str(text)], device="cpu", seq_len=16)
