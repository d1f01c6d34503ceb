"""Every command end to end through click, on a tiny random-score checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from ticketpack.cli.main import main
from ticketpack.format.constants import RNG_ID

from tests.tiny import TEXT, TINY_CONFIG, make_checkpoint

@pytest.fixture
def files(tmp_path):
    ckpt = tmp_path / "m.safetensors"
    make_checkpoint(ckpt)
    text = tmp_path / "val.txt"
    text.write_text(TEXT)
    return tmp_path, ckpt, text


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_pack_size_verify_inspect_eval(files):
    tmp, ckpt, text = files
    out = tmp / "m.tpk"
    code, stdout, _ = run("pack", ckpt, "-o", out)
    assert code == 0 and out.exists() and f"{out.stat().st_size:,} bytes" in stdout

    code, stdout, _ = run("size", out, "--json", "--budget", "1MB", "--code", text)
    report = json.loads(stdout)
    assert code == 0 and report["budget"] == 1_000_000 and report["over_budget"] is False
    assert report["total_bytes"] == out.stat().st_size + text.stat().st_size
    assert report["code_bytes"] == text.stat().st_size
    masked = [t for t in report["tensors"] if t["kind"] == "masked"]
    assert masked and all(0 < t["density"] < 1 and t["entropy_bits_per_connection"] > 0 for t in masked)
    for key in ("name", "kind", "codec", "connections", "bytes", "bits_per_connection"):
        assert all(key in t for t in report["tensors"])

    code, stdout, _ = run("size", out, "--budget", "100")
    assert code == 1 and "OVER by" in stdout

    code, stdout, _ = run("verify", out)
    assert code == 0 and stdout.startswith("ok:")

    code, stdout, _ = run("inspect", out)
    header = json.loads(stdout)
    assert code == 0 and header["seed"] == 11 and header["rng"] == RNG_ID

    code, stdout, _ = run("load-and-eval", out, "--data", text, "--device", "cpu", "--seq-len", "32",
                          "--json")
    res = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0
    for key in ("val_loss", "val_bpb", "tokens", "bytes", "seconds", "tokens_per_second", "device"):
        assert key in res
    assert res["device"] == "cpu" and res["bytes"] == len(TEXT.encode()) - 1  # bytes of scored targets
    assert res["tokens"] == len(TEXT.encode()) - 1  # every token after the first is scored once


def test_eval_is_deterministic_and_matches_library(files):
    tmp, ckpt, text = files
    out = tmp / "m.tpk"
    run("pack", ckpt, "-o", out, "--codec", "zlib")
    a = json.loads(run("load-and-eval", out, "--data", text, "--device", "cpu", "--json")[1])
    b = json.loads(run("load-and-eval", out, "--data", text, "--device", "cpu", "--json")[1])
    assert a["val_bpb"] == b["val_bpb"] and a["val_loss"] == b["val_loss"]


def test_pack_over_budget_exit_1_no_file(files):
    tmp, ckpt, _ = files
    out = tmp / "big.tpk"
    code, _, stderr = run("pack", ckpt, "-o", out, "--budget", "1kB")
    assert code == 1 and not out.exists()
    assert stderr.count("\n") == 1 and "exceeds 1,000 B by" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("damage, code_expected, words", [
    (lambda b: b[:-10], 3, "truncated"),
    (lambda b: b"NOTATPK!" + b[8:], 3, "magic"),
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], 3, "checksum"),
])
def test_bad_artifacts_exit_3_one_line(files, damage, code_expected, words):
    tmp, ckpt, text = files
    out = tmp / "m.tpk"
    run("pack", ckpt, "-o", out)
    bad = tmp / "bad.tpk"
    bad.write_bytes(damage(out.read_bytes()))
    for cmd in (["verify", bad], ["size", bad], ["inspect", bad],
                ["load-and-eval", bad, "--data", text]):
        code, stdout, stderr = run(*cmd)
        assert code == code_expected, (cmd, stderr)
        assert words in stderr and stderr.count("\n") == 1 and "Traceback" not in stderr


def test_usage_errors_exit_2(files):
    tmp, _, text = files
    code, _, stderr = run("verify", tmp / "missing.tpk")
    assert code == 2 and "no such file" in stderr
    code, _, stderr = run("pack", tmp / "missing.safetensors", "-o", tmp / "x.tpk")
    assert code == 2 and "no such file" in stderr
    code, _, stderr = run("size", tmp / "missing.tpk", "--budget", "lots")
    assert code == 2 and "budget" in stderr


def test_pack_rejects_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    code, _, stderr = run("pack", path, "-o", tmp_path / "x.tpk")
    assert code == 3 and "not written by ticketpack" in stderr


def test_sample_is_seeded_and_export_round_trips(files):
    from safetensors.torch import load_file
    from ticketpack.api import load_verified

    tmp, ckpt, _ = files
    out = tmp / "m.tpk"
    run("pack", ckpt, "-o", out)
    args = ("sample", out, "--prompt", "To be", "--tokens", "20", "--seed", "3", "--device", "cpu")
    code, first, _ = run(*args)
    assert code == 0 and first.startswith("To be") and len(first.encode()) >= len("To be")
    assert run(*args)[1] == first
    code, greedy, _ = run("sample", out, "--prompt", "To be", "--tokens", "5", "--temperature", "0")
    assert code == 0

    dense = tmp / "dense.safetensors"
    code, stdout, _ = run("export", out, "-o", dense)
    assert code == 0 and "weights sha256" in stdout
    exported = load_file(str(dense))
    _, state, _ = load_verified(out)
    assert exported.keys() == state.keys()
    assert all(torch.equal(exported[k], state[k]) for k in state)
