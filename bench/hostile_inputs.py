"""The red team's Reliability III inputs (issue 27), each run through the real CLI in a fresh
process: exit code, wall time, peak RSS and the first stderr line.

    python bench/hostile_inputs.py                  # every case
    python bench/hostile_inputs.py -k xz -k pack    # the cases whose name holds a word
    python bench/hostile_inputs.py --sigint 26      # Ctrl-C at 26 moments of a pack

The target for every case: a one-line error with its documented exit code (or exit 0 where
the behaviour is now defined), in under 10 s and 1.5 GB. The baselines, measured in the same
run: ``verify`` of a valid tiny artifact (start-up and imports alone) and ``load-and-eval`` of
it on a short text (what scoring costs at all). The inputs are
built in a temporary folder: an 8 GiB xz bomb (one 64 MiB stream of zeros repeated; xz
readers decode concatenated streams), a 60 MB one-line text, a 4 GiB sparse ARCH.json, a
tampered checkpoint, hostile safetensors for pack-ternary, an artifact whose ``eval`` holds
``tokenizer.kind = ["bytes"]`` and one declaring ``seq_len`` 1.
"""

from __future__ import annotations

import argparse
import lzma
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from ticketpack import api
from ticketpack.artifact import load_ticket, parse_artifact, write_artifact
from ticketpack.train.checkpoint import save_checkpoint
from ticketpack.format.container import assemble
from ticketpack.nn.layers import bind_seed, randomize_scores
from ticketpack.models.gpt_model import GPT, GPTConfig

ENTRY = [sys.executable, "-c", "import sys; from ticketpack.cli.entry import run; sys.argv[0] = 'ticketpack'; run()"]
TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 40


def run(args: list[str], stdout=None, timeout: float = 120) -> tuple[int, float, float, str]:
    """(exit code, seconds, peak RSS in MiB, first stderr line) of ``ticketpack ARGS``, under
    ``/usr/bin/time`` (a process forked from this one would report this one's peak)."""
    with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *ENTRY, *args],
                              stdout=stdout or subprocess.DEVNULL, stderr=err, timeout=timeout)
        seconds = time.perf_counter() - start
        err.seek(0)
        lines = err.read().decode("utf-8", "replace").strip().splitlines()
        kib = int(Path(rss.name).read_text().split()[-1])
    return done.returncode, seconds, kib / 1024, lines[0] if lines else ""


def xz_bomb(path: Path, gib: int = 8) -> Path:
    """``gib`` GiB of zeros as repeated 64 MiB xz streams (about 1.3 MB in all)."""
    stream = lzma.compress(bytes(64 << 20), preset=9)
    path.write_bytes(stream * (gib * 16))
    return path


def ternary_file(path: Path, config: str = "{}", tensors: dict | None = None) -> str:
    tensors = tensors or {"w": torch.tensor([[0.5, -0.5, 0.0, 0.5]] * 4)}
    path.write_bytes(st_save(tensors, metadata={"config": config}))
    return str(path)


def checkpoint(path: Path, batch_size: int = 2, eval_text: str | None = None) -> None:
    """A tiny trained-looking checkpoint whose saved options say ``batch_size`` (and whose
    ``eval`` metadata is ``eval_text``, verbatim, when given)."""
    from safetensors import safe_open

    config = GPTConfig.from_dict(dict(vocab_size=256, num_layers=1, model_dim=32, num_heads=2, num_kv_heads=1,
                                      mlp_mult=2))
    model = GPT(config, masked=True)
    randomize_scores(model, 0)
    bind_seed(model, 3)
    options = {"seed": 3, "preset": "small", "model": config.to_dict(), "seq_len": 8, "batch_size": batch_size,
               "tokenizer": None}
    save_checkpoint(path, model, seed=3, config=config.to_dict(),
                    train_state={"step": 2, "tokens": 32, "train_seconds": 0.5, "options": options})
    if eval_text is not None:
        with safe_open(str(path), framework="pt") as fh:
            tensors, meta = {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata())
        path.write_bytes(st_save(tensors, metadata={**meta, "eval": eval_text}))


def with_eval(artifact: Path, value: object) -> bytes:
    """``artifact`` re-sealed with its header's ``eval`` replaced by ``value`` (digests left)."""
    info = parse_artifact(artifact.read_bytes())
    return assemble({**info.header, "eval": value}, info.payload, "zstd")


def build(folder: Path) -> dict[str, list[str] | tuple[list[str], str]]:
    """Every case: name -> CLI arguments (or (arguments, a file for stdout))."""
    ckpt, art, text = folder / "m.safetensors", folder / "m.tpk", folder / "t.txt"
    checkpoint(ckpt)
    api.pack(ckpt, art)
    text.write_text(TEXT)
    kind = folder / "kind.tpk"
    kind.write_bytes(with_eval(art, {"seq_len": 16, "tokenizer": {"kind": ["bytes"]}}))
    seq1 = load_ticket(art)
    seq1.eval = {"seq_len": 1, "tokenizer": {"kind": "bytes"}}
    write_artifact(seq1, folder / "seq1.tpk")
    (folder / "2000.txt").write_text(TEXT[:2000])
    (folder / "2.txt").write_text("ab")
    tampered = folder / "tampered.safetensors"
    checkpoint(tampered, batch_size=2**30)
    checkpoint(folder / "c.safetensors")
    checkpoint(folder / "kind.safetensors", eval_text='{"seq_len": 8, "tokenizer": {"kind": ["bytes"]}}')
    bomb = xz_bomb(folder / "bomb.txt.xz")
    with open(folder / "one-line.txt", "wb") as fh:
        for _ in range(60):
            fh.write(b"a" * 1_000_000)
    with open(folder / "arch.json", "wb") as fh:
        fh.truncate(4 << 30)
    long_name = str(folder / ("x" * 300 + ".tpk"))
    out = str(folder / "out.tpk")
    train = ["train", "--data", str(text), "--out", str(folder / "o.safetensors"), "--device", "cpu", "-q",
             "--preset", "tiny", "--steps", "2", "--seq-len", "8", "--batch-size", "2"]
    deep = "[" * 100_000 + "]" * 100_000
    full = "/dev/full"
    return {
        "eval kind list: verify": ["verify", str(kind)],
        "eval kind list: inspect": ["inspect", str(kind)],
        "eval kind list: size": ["size", str(kind)],
        "eval kind list: load-and-eval": ["load-and-eval", str(kind), "--data", str(text)],
        "eval kind list: pack (checkpoint)": ["pack", str(folder / "kind.safetensors"), "-o", out],
        "eval kind list: train --resume": [*train, "--resume", str(folder / "kind.safetensors")],
        "pack-ternary: 5,000-digit integer": ["pack-ternary", ternary_file(folder / "t1.st", '{"num_layers": 1'
                                                                           + "0" * 5000 + "}"), "-o", out],
        "pack-ternary: 100,000-deep config": ["pack-ternary", ternary_file(folder / "t2.st", deep), "-o", out],
        "pack-ternary: float8 tensor": ["pack-ternary", ternary_file(folder / "t3.st", tensors={
            "w": torch.ones(4, 4).to(torch.float8_e4m3fn)}), "-o", out],
        "pack-ternary: NaN config": ["pack-ternary", ternary_file(folder / "t4.st", '{"logit_softcap": NaN}'),
                                     "-o", out],
        "pack-ternary: 1e400 config": ["pack-ternary", ternary_file(folder / "t5.st", '{"rope_base": 1e400}'),
                                       "-o", out],
        "pack-ternary: num_layers 2^40": ["pack-ternary", ternary_file(folder / "t6.st",
                                                                       '{"num_layers": 1099511627776}'), "-o", out],
        "pack-ternary: tensor named ''": ["pack-ternary", ternary_file(folder / "t7.st", tensors={
            "": torch.tensor([[0.5, -0.5]] * 2)}), "-o", out],
        "pack-ternary: 2,000-byte name": ["pack-ternary", ternary_file(folder / "t8.st", tensors={
            "n" * 2000: torch.tensor([[0.5, -0.5]] * 2)}), "-o", out],
        "pack-ternary: rank 9": ["pack-ternary", ternary_file(folder / "t9.st", tensors={
            "w": torch.ones((1,) * 9)}), "-o", out],
        "sample --temperature 1e-300 (now near-greedy, exit 0)": ["sample", str(art), "--prompt", "To be",
                                                                   "--tokens", "8", "--temperature", "1e-300"],
        "sample --prompt $'\\xff\\xfe'": ["sample", str(art), "--prompt", os.fsdecode(b"\xff\xfe")],
        "train --lr 1e300": [*train, "--lr", "1e300"],
        "pack -o <300-byte name>": ["pack", str(ckpt), "-o", long_name],
        "export -o <300-byte name>": ["export", str(art), "-o", long_name],
        "export-loader -o <300-byte name>": ["export-loader", "-o", long_name],
        "train --log /dev/full": [*train, "--log", full],
        "train --log in an unwritable folder (/proc)": [*train, "--log", "/proc/tp.jsonl"],
        "quickstart --out-dir unwritable (/proc)": ["quickstart", "--out-dir", "/proc/tp-quickstart"],
        "quickstart --minutes -1": ["quickstart", "--out-dir", str(folder / "qs"), "--minutes", "-1"],
        "verify --json > /dev/full": (["verify", "--json", str(art)], full),
        "inspect > /dev/full": (["inspect", str(art)], full),
        "--help > /dev/full": (["--help"], full),
        "train --resume, saved batch_size 2^30": [*train, "--resume", str(tampered)],
        "train --resume --batch-size 4 (saved 2)": ["train", "--data", str(text), "--out", out, "--device", "cpu",
                                                    "--batch-size", "4", "--resume", str(folder / "c.safetensors")],
        "pack X -o X": ["pack", str(ckpt), "-o", str(ckpt)],
        "export A -o A": ["export", str(art), "-o", str(art)],
        "train --data F --out F": ["train", "--data", str(text), "--out", str(text)],
        "train --log = --out": ["train", "--data", str(text), "--out", out, "--log", out],
        "8 GiB xz: load-and-eval --max-bytes 5000 (exit 0)": ["load-and-eval", str(art), "--data", str(bomb),
                                                             "--max-bytes", "5000"],
        "8 GiB xz: train": ["train", "--data", str(bomb), "--out", str(folder / "o.safetensors"), "--device", "cpu",
                            "-q"],
        "60 MB one line: load-and-eval --max-bytes 5000 (exit 0)": ["load-and-eval", str(art), "--data",
                                                                   str(folder / "one-line.txt"), "--max-bytes",
                                                                   "5000"],
        "import-pg --config <4 GiB>": ["import-pg", str(art), "--config", str(folder / "arch.json"), "-o", out],
        "eval.seq_len 1: load-and-eval of 2,000 bytes (exit 0)": ["load-and-eval", str(folder / "seq1.tpk"),
                                                                 "--data", str(folder / "2000.txt")],
        "2-byte data: load-and-eval --split val": ["load-and-eval", str(art), "--data", str(folder / "2.txt"),
                                                   "--split", "val"],
    }


def sigint_stress(folder: Path, count: int) -> None:
    """``count`` runs of ``pack`` over an existing file, each sent SIGINT at a delay spread from
    30% to 120% of a whole run (so many land just after the write, in the exit): each must end
    with exit 0 (finished first) or 130 and exactly one line, and leave the old file or the new
    one, whole."""
    import collections
    import signal

    ckpt, out = folder / "s.safetensors", folder / "s.tpk"
    checkpoint(ckpt)
    start = time.perf_counter()
    subprocess.run(ENTRY + ["pack", str(ckpt), "-o", str(out)], check=True, capture_output=True)
    whole = time.perf_counter() - start
    outcomes: collections.Counter = collections.Counter()
    for i in range(count):
        out.write_bytes(b"old")
        proc = subprocess.Popen(ENTRY + ["pack", str(ckpt), "-o", str(out)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(whole * (0.3 + 0.9 * i / max(count - 1, 1)))
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
        ending = ("exit 0" if proc.returncode == 0 else
                  "exit 130, one line" if proc.returncode == 130 and err == "ticketpack: error: interrupted\n" else
                  "killed by the signal, no message" if proc.returncode == -signal.SIGINT else
                  f"exit {proc.returncode}: {err.strip()[:60]!r}")
        try:
            left = "old file" if out.read_bytes() == b"old" else "new file, verifies" if api.verify(out)["ok"] else "?"
        except Exception as exc:  # noqa: BLE001 - a half-written file is what this counts
            left = f"broken file ({type(exc).__name__})"
        outcomes[f"{ending}; {left}"] += 1
    print(f"SIGINT during pack ({count} runs, delays {0.3 * whole:.1f}..{1.2 * whole:.1f} s of a {whole:.1f} s run):")
    for outcome, n in outcomes.most_common():
        print(f"  {n:>3}  {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", action="append", default=[], help="run only cases whose name holds this")
    parser.add_argument("--sigint", type=int, default=0, metavar="N",
                        help="instead: N runs of pack interrupted at spread delays")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.sigint:
            sigint_stress(folder, args.sigint)
            return
        cases = build(folder)
        print(f"{'case':<58} {'exit':>4} {'s':>6} {'MiB':>6}  first stderr line")
        for name, argv in (("baseline: verify of a valid tiny artifact", ["verify", str(folder / "m.tpk")]),
                           ("baseline: load-and-eval of it on 3.5 KB of text",
                            ["load-and-eval", str(folder / "m.tpk"), "--data", str(folder / "t.txt")])):
            base = run(argv)
            print(f"{name:<58} {base[0]:>4} {base[1]:>6.2f} {base[2]:>6.0f}")
        for name, spec in cases.items():
            if args.k and not any(word in name for word in args.k):
                continue
            argv, sink = spec if isinstance(spec, tuple) else (spec, None)
            if sink is not None:
                with open(sink, "w") as fh:
                    code, seconds, rss, line = run(argv, stdout=fh)
            else:
                code, seconds, rss, line = run(argv)
            print(f"{name[:58]:<58} {code:>4} {seconds:>6.2f} {rss:>6.0f}  {line[:100]}", flush=True)


if __name__ == "__main__":
    main()
