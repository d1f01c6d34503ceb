"""Reliability III (issue 27): the red team's findings, each ending with its documented exit code
and one line on stderr (or the behaviour now documented), in bounded time and memory."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save as st_save

from ticketpack import api
from ticketpack.artifact import load_ticket, write_artifact
from ticketpack.cli.main import main
from ticketpack.text.corpus import XZ_FREE_BYTES, load_tokens, read_text_file
from ticketpack.errors import DataError
from ticketpack.eval.evaluate import _batches, eval_windows, windows_per_batch

from tests.hostile.make_hostile import repack, section_blobs, split
from tests.tiny import TEXT, make_checkpoint

HOSTILE = Path(__file__).parent / "hostile"
CONTROL = HOSTILE / "control.tpk"
LONG_NAME = "x" * 300 + ".out"  # past the 255-byte name limit of common file systems


def one_line(args: list, code: int, words: str, **kw) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], **kw)
    assert result.exit_code == code, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ticketpack: error: "), result.stderr
    assert words in lines[0], lines[0]
    return lines[0]


def cli(*args: str, stdout=subprocess.PIPE, timeout: float = 60) -> subprocess.CompletedProcess:
    """The installed entry point in a child process (what a shell runs)."""
    code = "import sys; from ticketpack.cli.entry import run; sys.argv[0] = 'ticketpack'; run()"
    return subprocess.run([sys.executable, "-c", code, *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A packed tiny model (byte tokenizer), its checkpoint and a text file."""
    folder = tmp_path_factory.mktemp("tiny")
    ckpt, artifact, text = folder / "m.safetensors", folder / "m.tpk", folder / "t.txt"
    make_checkpoint(ckpt)
    api.pack(ckpt, artifact)
    text.write_text(TEXT)
    return {"ckpt": ckpt, "artifact": artifact, "text": text, "dir": folder}


# ---------------------------------------------------------------- eval.tokenizer.kind = ["bytes"]

def _with_eval(eval_context: dict) -> bytes:
    parts = split(CONTROL.read_bytes())
    parts.header["eval"] = eval_context
    return repack(parts.header, section_blobs(parts))


@pytest.mark.parametrize("command", [["verify"], ["inspect"], ["size"],
                                     ["load-and-eval", "--data", "{text}", "--device", "cpu"]])
@pytest.mark.parametrize("kind", [["bytes"], {"kind": "bytes"}, 5])
def test_unhashable_tokenizer_kind_in_an_artifact_exit_3(command, kind, tiny, tmp_path):
    path = tmp_path / "kind.tpk"
    path.write_bytes(_with_eval({"seq_len": 16, "tokenizer": {"kind": kind}}))
    args = [a.format(text=tiny["text"]) for a in command]
    one_line([args[0], path, *args[1:]], 3, "tokenizer.kind")


# (the same value in a checkpoint's eval metadata: tests/hostile/hostile_checkpoints.py, pack and resume)


# ---------------------------------------------------------------- pack-ternary's input

def _ternary_file(path: Path, config: str | None = "{}", tensors: dict | None = None) -> Path:
    weights = {"w": torch.tensor([[0.5, -0.5, 0.0, 0.5]] * 4)} if tensors is None else tensors
    path.write_bytes(st_save(weights, metadata=None if config is None else {"config": config}))
    return path


def test_pack_ternary_control_packs_and_verifies(tmp_path):
    out = tmp_path / "t.tpk"
    assert CliRunner().invoke(main, ["pack-ternary", str(_ternary_file(tmp_path / "w.safetensors")),
                                     "-o", str(out)]).exit_code == 0
    assert api.verify(out)["ok"]  # no config in the metadata: an external record, tensors only


@pytest.mark.parametrize("config, words", [
    ('{"num_layers": 1' + "0" * 5000 + "}", "config"),  # 5,000 digits
    ("[" * 100_000 + "]" * 100_000, "config"),  # 100,000 deep
    ('{"logit_softcap": NaN}', "NaN"),
    ('{"logit_softcap": 1e400}', "1e400"),
    ('{"num_layers": 1099511627776}', "num_layers"),  # 2^40
    ('"a string"', "expected a JSON object"),
])
def test_pack_ternary_refuses_hostile_metadata_config(config, words, tmp_path):
    out = tmp_path / "t.tpk"
    one_line(["pack-ternary", _ternary_file(tmp_path / "w.safetensors", config), "-o", out], 3, words)
    assert not out.exists()


@pytest.mark.parametrize("tensors, words", [
    ({"w": torch.ones(4, 4).to(torch.float8_e4m3fn)}, "F8"),
    ({"": torch.tensor([[0.5, -0.5]] * 2)}, "name of 0 B"),
    ({"n" * 2000: torch.tensor([[0.5, -0.5]] * 2)}, "name of 2000 B"),
    ({"w": torch.ones((1,) * 9)}, "rank"),
    ({"w": torch.tensor([[0.5, -0.5]] * 2), "b": torch.tensor([float("nan"), 1.0])}, "not finite"),
    ({"w": torch.tensor([[0.5, -0.5]] * 2), "b": torch.tensor([1e6, 1.0], dtype=torch.float64)}, "overflows"),
])
def test_pack_ternary_refuses_what_the_reader_refuses(tensors, words, tmp_path):
    out = tmp_path / "t.tpk"
    one_line(["pack-ternary", _ternary_file(tmp_path / "w.safetensors", tensors=tensors), "-o", out], 3, words)
    assert not out.exists()


def test_pack_ternary_element_cap(tmp_path):
    path = _ternary_file(tmp_path / "w.safetensors")
    one_line(["--max-elements", "15", "pack-ternary", path, "-o", tmp_path / "t.tpk"], 3, "elements")


# ---------------------------------------------------------------- exit 4 where 2 is documented

def test_sample_tiny_temperature_is_near_greedy(tiny):
    def run(temperature: str) -> str:
        result = CliRunner().invoke(main, ["sample", str(tiny["artifact"]), "--prompt", "To be", "--tokens", "12",
                                           "--temperature", temperature, "--device", "cpu", "-q"])
        assert result.exit_code == 0, result.output
        return result.stdout

    assert run("1e-300") == run("0")


def test_sample_prompt_not_utf8_exit_2(tiny):
    one_line(["sample", tiny["artifact"], "--prompt", "\udcff\udcfe", "--device", "cpu"], 2, "UTF-8")


@pytest.mark.parametrize("flag, value", [("--lr", "1e300"), ("--scale-lr", "1e300"), ("--adapter-lr", "1e7"),
                                         ("--batch-size", str(2**30)), ("--seq-len", str(2**25)),
                                         ("--temperature-start", "1e300"), ("--max-minutes", "1e300")])
def test_train_option_upper_bounds_exit_2(flag, value, tiny, tmp_path):
    out = tmp_path / "o.safetensors"
    one_line(["train", "--data", tiny["text"], "--out", out, "--device", "cpu", flag, value], 2,
             flag[2:].replace("-", "_"))
    assert not out.exists()


@pytest.mark.parametrize("command", ["pack", "export", "export-loader"])
def test_output_name_too_long_exit_2(command, tiny, tmp_path):
    source = {"pack": [tiny["ckpt"]], "export": [tiny["artifact"]], "export-loader": []}[command]
    one_line([command, *source, "-o", tmp_path / LONG_NAME], 2, "too long")


def test_output_name_of_255_bytes_is_written(tiny, tmp_path):
    out = tmp_path / ("é" * 126 + "x.tpk")[:127]  # 252 + 3 bytes: the temporary name must fit too
    assert len(os.fsencode(out.name)) <= 255
    assert CliRunner().invoke(main, ["pack", str(tiny["ckpt"]), "-o", str(out)]).exit_code == 0
    assert api.verify(out)["ok"]


@pytest.mark.parametrize("log", ["/dev/full", "/proc/ticketpack-no-such-folder/log.jsonl", "/proc/tp.jsonl"])
def test_train_log_that_cannot_be_written_exit_2(log, tiny, tmp_path):
    out = tmp_path / "o.safetensors"
    one_line(["train", "--data", tiny["text"], "--out", out, "--log", log, "--preset", "tiny", "--steps", "2",
              "--seq-len", "8", "--batch-size", "2", "--device", "cpu", "-q"], 2, "log")
    assert not out.exists()


def test_quickstart_unwritable_out_dir_exit_2():
    one_line(["quickstart", "--out-dir", "/proc/ticketpack-quickstart", "--minutes", "0.01"], 2, "out-dir")


@pytest.mark.parametrize("minutes", ["-1", "0", "nan", "1e300"])
def test_quickstart_minutes_refused_before_any_work(minutes, tmp_path):
    out = tmp_path / "qs"
    result = CliRunner().invoke(main, ["quickstart", "--out-dir", str(out), "--minutes", minutes])
    assert result.exit_code == 2 and "minutes" in result.stderr, result.output
    assert not out.exists()  # nothing was split, trained or written


@pytest.mark.parametrize("args", [["--seq-len", "0"], ["--batch-size", "0"], ["--stride", "0"],
                                  ["--max-bytes", "0"], ["--device", "tpu"]])
def test_load_and_eval_option_values_before_any_work(args, tiny):
    result = CliRunner().invoke(main, ["load-and-eval", str(tiny["artifact"]), "--data", "/no/such/file", *args])
    assert result.exit_code == 2 and "no/such" not in result.stderr, result.output  # refused before reading


@pytest.mark.parametrize("args", [["--help"], ["verify", "--json", "--format-only", str(CONTROL)], ["inspect", str(CONTROL)],
                                  ["--version"]])
def test_stdout_that_cannot_be_written_is_one_line_exit_2(args):
    with open("/dev/full", "w") as full:
        done = cli(*args, stdout=full)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ticketpack: error: standard output"), done.stderr


def test_an_os_error_the_library_lets_through_is_still_exit_4(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")  # not stdout's: a bug, reported as one

    monkeypatch.setattr(api, "verify", broken)
    one_line(["verify", CONTROL], 4, "internal error")


def test_the_entry_point_skips_the_interpreter_shutdown(tiny, tmp_path):
    # The shutdown resets SIGINT to its default before tearing torch down: a Ctrl-C there killed
    # the process with no message (2 of 26 interrupts of pack). The entry point ends with
    # os._exit once its output is flushed, so no atexit hook (and no shutdown) runs.
    code = ("import atexit, os, sys; atexit.register(lambda: os.write(2, b'SHUTDOWN\\n'));"
            "from ticketpack.cli.entry import run; sys.argv[0] = 'ticketpack'; run()")
    out = tmp_path / "m.tpk"
    done = subprocess.run([sys.executable, "-c", code, "pack", str(tiny["ckpt"]), "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "SHUTDOWN" not in done.stderr, done.stderr
    assert done.stdout.startswith("wrote ") and api.verify(out)["ok"]


def test_ctrl_c_just_after_the_write_is_one_line_130_and_a_whole_file(tiny, tmp_path):
    out = tmp_path / "m.tpk"
    out.write_bytes(b"old")
    code = ("import os, signal, sys\n"
            "real = os.replace\n"
            "def replace(a, b):\n"
            "    real(a, b); os.kill(os.getpid(), signal.SIGINT)\n"
            "os.replace = replace\n"
            "from ticketpack.cli.entry import run; sys.argv[0] = 'ticketpack'; run()")
    done = subprocess.run([sys.executable, "-c", code, "pack", str(tiny["ckpt"]), "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and done.stderr == "ticketpack: error: interrupted\n", done.stderr
    assert api.verify(out)["ok"]  # the rename happened: the new file, whole
    assert not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------- train --resume

def test_resume_refuses_a_flag_its_checkpoint_saved_otherwise(tmp_path):
    from tests.hostile.hostile_checkpoints import control_checkpoint

    ckpt, text = tmp_path / "c.safetensors", tmp_path / "t.txt"
    control_checkpoint(ckpt)  # saved batch_size 2, lr 0.1
    text.write_text(TEXT)
    base = ["train", "--data", text, "--out", tmp_path / "o.safetensors", "--resume", ckpt, "--steps", "3",
            "--device", "cpu", "-q"]
    one_line([*base, "--batch-size", "4"], 2, "--batch-size 4 conflicts with the checkpoint's saved batch_size 2")
    one_line([*base, "--lr", "0.5"], 2, "--lr")
    assert not (tmp_path / "o.safetensors").exists()
    # the same value as saved is no conflict: the run resumes
    result = CliRunner().invoke(main, [str(a) for a in base + ["--batch-size", "2", "--seq-len", "8"]])
    assert result.exit_code == 0, result.output


def test_resume_given_fields_from_the_python_api(tmp_path):
    from tests.hostile.hostile_checkpoints import control_checkpoint
    from ticketpack.train.checkpoint import load_checkpoint
    from ticketpack.errors import UsageError
    from ticketpack.train.loop import TrainOptions, _merge_resumed

    ckpt = tmp_path / "c.safetensors"
    control_checkpoint(ckpt)
    loaded = load_checkpoint(ckpt)
    opts = TrainOptions(data=["x.txt"], out=str(tmp_path / "o.safetensors"), batch_size=4)
    with pytest.raises(UsageError, match="batch_size"):
        _merge_resumed(opts, loaded, given=["batch_size"])
    assert _merge_resumed(opts, loaded, given=["lr"]).batch_size == 2  # not given: the saved value
    assert _merge_resumed(opts, loaded).batch_size == 2  # None: the saved values win, unchecked


# ---------------------------------------------------------------- outputs that are inputs

def test_pack_onto_its_own_checkpoint_exit_2(tiny, tmp_path):
    ckpt = tmp_path / "c.safetensors"
    ckpt.write_bytes(tiny["ckpt"].read_bytes())
    before = ckpt.read_bytes()
    one_line(["pack", ckpt, "-o", ckpt], 2, "replace an input")
    link = tmp_path / "hard.tpk"
    os.link(ckpt, link)  # the same inode under another name
    one_line(["pack", ckpt, "-o", link], 2, "replace an input")
    sym = tmp_path / "sym.tpk"
    sym.symlink_to(ckpt)
    one_line(["pack", ckpt, "-o", sym], 2, "replace an input")
    assert ckpt.read_bytes() == before


def test_export_and_pack_ternary_onto_their_input_exit_2(tiny, tmp_path):
    art = tmp_path / "a.tpk"
    art.write_bytes(tiny["artifact"].read_bytes())
    one_line(["export", art, "-o", art], 2, "replace an input")
    assert art.read_bytes() == tiny["artifact"].read_bytes()
    weights = _ternary_file(tmp_path / "w.safetensors")
    before = weights.read_bytes()
    one_line(["pack-ternary", weights, "-o", weights], 2, "replace an input")
    assert weights.read_bytes() == before


@pytest.mark.parametrize("which", ["data", "log-is-out", "log-is-data", "glob"])
def test_train_outputs_that_are_inputs_exit_2(which, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    out = tmp_path / "o.safetensors"
    args = {"data": ["--data", text, "--out", text],
            "log-is-out": ["--data", text, "--out", out, "--log", out],
            "log-is-data": ["--data", text, "--out", out, "--log", text],
            "glob": ["--data", tmp_path / "*.txt", "--out", text]}[which]
    one_line(["train", *args, "--device", "cpu"], 2, "replace an input" if which != "log-is-out" else "is also")
    assert text.read_text() == TEXT and not out.exists()


# ---------------------------------------------------------------- data reading

def _xz_bomb(path: Path, size: int) -> Path:
    comp = lzma.LZMACompressor(preset=1)
    chunk, parts = bytes(1 << 20), []
    for _ in range(size >> 20):
        parts.append(comp.compress(chunk))
    path.write_bytes(b"".join(parts) + comp.flush())
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    # past the free 64 MiB and 100x its size; the red team's was 8 GiB in 1.2 MB
    return _xz_bomb(tmp_path_factory.mktemp("bomb") / "bomb.txt.xz", XZ_FREE_BYTES + (16 << 20))


def test_xz_bomb_is_refused_and_max_bytes_bounds_decompression(bomb):
    assert bomb.stat().st_size * 100 < XZ_FREE_BYTES
    with pytest.raises(DataError, match="decompression bomb"):
        read_text_file(bomb)
    tracemalloc.start()
    try:
        assert len(load_tokens([str(bomb)], max_bytes=5000)) == 5000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_xz_bomb_in_train_exit_2_and_load_and_eval_with_max_bytes(bomb, tiny, tmp_path):
    one_line(["train", "--data", bomb, "--out", tmp_path / "o.safetensors", "--device", "cpu", "-q"], 2,
             "decompression bomb")
    result = CliRunner().invoke(main, ["load-and-eval", str(tiny["artifact"]), "--data", str(bomb), "--max-bytes",
                                       "5000", "--device", "cpu", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes"] <= 5000


def test_max_bytes_reads_no_further_than_it_needs(tiny, tmp_path):
    big = tmp_path / "one-line.txt"
    with open(big, "wb") as fh:  # 60 MB, one line
        for _ in range(60):
            fh.write(b"a" * 1_000_000)
    tracemalloc.start()
    try:
        out = api.load_and_eval(tiny["artifact"], [str(big)], device="cpu", max_bytes=5000, seq_len=64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out["bytes"] <= 5000
    assert peak < 32 << 20  # the whole file as tokens would be 480 MB


def test_import_pg_config_file_is_size_capped(tmp_path):
    config = tmp_path / "arch.json"
    with open(config, "wb") as fh:
        fh.truncate(4 << 30)  # 4 GiB, sparse
    one_line(["import-pg", tmp_path / "none.ptz", "--config", config, "-o", tmp_path / "o.tpk"], 2, "bytes")


@pytest.mark.parametrize("text", [b"ab", b"abc"])
def test_tiny_data_gets_a_clear_message(text, tiny, tmp_path):
    data = tmp_path / "tiny.txt"
    data.write_bytes(text)
    line = one_line(["load-and-eval", tiny["artifact"], "--data", data, "--split", "val", "--device", "cpu"], 2,
                    "at least 4")
    assert "2..0" not in line and "2..1" not in line


# ---------------------------------------------------------------- evaluation at seq_len 1

def test_short_windows_are_batched_by_tokens():
    assert windows_per_batch(256, 8) == 8 and windows_per_batch(128, 8) == 8  # unchanged
    assert windows_per_batch(1, 8) == 1024 and windows_per_batch(16, 8) == 64
    assert len(list(_batches(eval_windows(2000, 1), windows_per_batch(1, 8)))) == 2  # not 250


def test_artifact_declaring_seq_len_1_evaluates_every_token(tiny, tmp_path):
    ticket = load_ticket(tiny["artifact"])
    ticket.eval = {"seq_len": 1, "tokenizer": {"kind": "bytes"}}
    path = tmp_path / "seq1.tpk"
    write_artifact(ticket, path)
    data = tmp_path / "d.txt"
    data.write_bytes((TEXT * 3).encode()[:2000])
    out = api.load_and_eval(path, [str(data)], device="cpu")
    assert out["seq_len"] == 1 and out["seq_len_source"] == "artifact"
    assert out["tokens"] == 1999 and np.isfinite(out["val_bpb"])


# ---------------------------------------------------------------- export is deterministic

def test_export_writes_the_same_bytes_every_time(tiny, tmp_path):
    outs = [tmp_path / f"e{i}.safetensors" for i in range(4)]
    for out in outs:
        api.export(tiny["artifact"], out)
    assert len({o.read_bytes() for o in outs}) == 1
    # and in another process (another hash seed)
    done = cli("export", str(tiny["artifact"]), "-o", str(tmp_path / "child.safetensors"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "child.safetensors").read_bytes() == outs[0].read_bytes()
    from safetensors import safe_open

    with safe_open(str(outs[0]), framework="pt") as fh:
        meta = fh.metadata()
        assert json.loads(meta["config"]) == load_ticket(tiny["artifact"]).config
        assert set(fh.keys()) == set(load_ticket(tiny["artifact"]).effective_state_dict())


def test_load_and_eval_checks_data_and_tokenizer_before_loading(tmp_path):
    # config_layers_bomb.tpk would be refused once read (exit 3): the user's own mistakes come first
    bomb = HOSTILE / "config_layers_bomb.tpk"
    one_line(["load-and-eval", bomb, "--data", tmp_path / "missing.txt"], 2, "does not exist")
    (tmp_path / "t.txt").write_text(TEXT)
    (tmp_path / "empty.model").write_bytes(b"")
    one_line(["load-and-eval", bomb, "--data", tmp_path / "t.txt", "--tokenizer", tmp_path / "empty.model"], 2,
             "empty")
    one_line(["sample", bomb, "--prompt", "hi", "--tokenizer", tmp_path / "empty.model"], 2, "empty")


def test_import_pg_onto_its_own_input_exit_2(tmp_path):
    art = tmp_path / "pg.ptz"
    art.write_bytes(b"not really a parameter-golf artifact")
    one_line(["import-pg", art, "-o", art], 2, "replace an input")
    assert art.read_bytes() == b"not really a parameter-golf artifact"


def test_train_log_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    (tmp_path / "t.txt").write_text(TEXT)
    one_line(["train", "--data", tmp_path / "t.txt", "--out", tmp_path / "o.safetensors", "--log", fifo,
              "--device", "cpu"], 2, "FIFO")
