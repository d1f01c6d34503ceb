"""The built-in GPT against a Hugging Face Llama ticket at equal bytes and equal steps
(issue 24 item 8), on the quickstart's recipe, each scored from its packed artifact.

Both runs use the quickstart's data (the bundled Shakespeare cut into its first 90% and the
held-out last 10%, a 1,024-piece BPE trained on the training text), mask (multibit:4), row
scales, signed-constant frozen init, seq_len 128, batch 16 and the trainer's default lrs,
for the same fixed number of steps. The GPT is the quickstart's 4 x 192, MLP 3x (relu^2, two
matrices); the Llama (``train --arch llama``) keeps 4 layers, width 192, 4 heads (4 KV heads)
and tied embeddings, and its SwiGLU MLP (three matrices) gets the intermediate size that
brings its packed artifact within a few percent of the GPT's bytes (``--llama-intermediate``).
At 384 (2/3 of 576: the same 1,671,168 connections) the trained Llama's masks entropy-code to
1.77 bits per connection against the GPT's 1.86, so its artifact came out 4.7% smaller after
800 steps; 420 (the default) evens the bytes. Each is trained with ``ticketpack train``,
packed, sized (``ticketpack size --json``) and load-and-evaluated on every held-out byte
(``ticketpack load-and-eval --json``).

    python bench/gpt_vs_llama.py --steps 800 --threads 1 --jobs 2 --llama-intermediate 420 \\
        --out-dir runs/gpt_vs_llama --results bench/results/gpt_vs_llama

Every command runs under ``nice -n 10`` with OMP/MKL/NUMBA threads set to ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ticketpack.text.quickstart import prepare_quickstart_data

QUICKSTART_GPT = dict(model_dim=192, num_layers=4, num_heads=4, num_kv_heads=4, mlp_mult=3,
                      logit_softcap=30.0)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="GPT vs Llama ticket at equal bytes and steps")
    p.add_argument("--steps", type=int, default=800, help="training steps of each model")
    p.add_argument("--threads", type=int, default=1, help="torch / OMP threads of each command")
    p.add_argument("--jobs", type=int, default=1, choices=(1, 2),
                   help="models trained at once (2: side by side, each with --threads)")
    p.add_argument("--out-dir", default="runs/gpt_vs_llama", help="data, checkpoints, artifacts")
    p.add_argument("--results", default=None, help="folder for gpt_vs_llama.txt / .json")
    p.add_argument("--llama-hidden", type=int, default=192, help="Llama hidden_size")
    p.add_argument("--llama-intermediate", type=int, default=420, help="Llama intermediate_size")
    p.add_argument("--eval-max-bytes", type=int, default=None, help="score only the first N held-out bytes")
    p.add_argument("--nice", type=int, default=10)
    return p.parse_args()


def cli() -> list[str]:
    exe = shutil.which("ticketpack", path=os.path.dirname(sys.executable)) or shutil.which("ticketpack")
    if exe is None:
        raise SystemExit("ticketpack CLI not found")
    return [exe]


def run(cmd: list[str], args: argparse.Namespace, log_path: str) -> tuple[dict, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               NUMBA_NUM_THREADS=str(args.threads))
    full = ["nice", "-n", str(args.nice), *cmd]
    t0 = time.perf_counter()
    with open(log_path, "a") as err:
        err.write("$ " + " ".join(full) + "\n")
        err.flush()
        res = subprocess.run(full, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"exit {res.returncode}: {' '.join(full)} (see {log_path})")
    return json.loads(res.stdout), seconds


def model_runs(args: argparse.Namespace, data) -> list[dict]:
    vocab = data.vocab_size
    gpt_model = {**QUICKSTART_GPT, "vocab_size": vocab}
    llama_model = dict(hidden_size=args.llama_hidden, num_hidden_layers=QUICKSTART_GPT["num_layers"],
                       num_attention_heads=QUICKSTART_GPT["num_heads"],
                       num_key_value_heads=QUICKSTART_GPT["num_kv_heads"],
                       intermediate_size=args.llama_intermediate, vocab_size=vocab,
                       tie_word_embeddings=True)
    return [
        dict(name="gpt", arch="gpt", model=gpt_model,
             shape="4x192 MLP 3x relu2 (576), softcap 30"),
        dict(name="llama", arch="llama", model=llama_model,
             shape=f"4x{args.llama_hidden} SwiGLU {args.llama_intermediate}"),
    ]


def one_model(m: dict, args: argparse.Namespace, data) -> dict:
    base = os.path.join(args.out_dir, m["name"])
    log = base + ".log"
    if os.path.exists(log):
        os.remove(log)
    train_cmd = cli() + [
        "train", "--data", data.train, "--val-data", data.val, "--tokenizer", data.tokenizer,
        "--out", base + ".safetensors", "--arch", m["arch"], "--preset", "small",
        "--model", json.dumps(m["model"]), "--mask", "multibit:4", "--scale-mode", "row",
        "--init", "signed-constant", "--seq-len", "128", "--batch-size", "16",
        "--steps", str(args.steps), "--eval-every", "0", "--no-final-eval",
        "--checkpoint-every", "0", "--log", base + ".jsonl", "--device", "cpu", "--json", "--quiet"]
    train_out, train_s = run(train_cmd, args, log)
    pack_cmd = cli() + ["pack", base + ".safetensors", "-o", base + ".tpk", "--json", "--quiet"]
    pack_out, _ = run(pack_cmd, args, log)
    size_out, _ = run(cli() + ["size", base + ".tpk", "--json"], args, log)
    eval_cmd = cli() + ["load-and-eval", base + ".tpk", "--data", data.val, "--tokenizer", data.tokenizer,
                        "--device", "cpu", "--json", "--quiet"]
    if args.eval_max_bytes:
        eval_cmd += ["--max-bytes", str(args.eval_max_bytes)]
    eval_out, eval_s = run(eval_cmd, args, log)
    return dict(model=m["name"], arch=m["arch"], shape=m["shape"], model_config=m["model"],
                train_seconds=round(train_s, 1), eval_seconds=round(eval_s, 1),
                train=train_out, pack=pack_out, size=size_out, eval=eval_out)


def find(d, *keys):
    """The first of ``keys`` found anywhere in nested dict ``d``."""
    if isinstance(d, dict):
        for k in keys:
            if k in d and not isinstance(d[k], (dict, list)):
                return d[k]
        for v in d.values():
            r = find(v, *keys)
            if r is not None:
                return r
    return None


def table(rows: list[dict], args: argparse.Namespace) -> str:
    head = ["model", "shape", "connections", "bytes", "steps", "val_bpb", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        conns = find(r["size"], "connections", "num_connections", "masked_elements")
        nbytes = find(r["size"], "total_bytes", "bytes", "artifact_bytes")
        steps = find(r["train"], "steps", "step")
        bpb = find(r["eval"], "val_bpb")
        secs = find(r["train"], "train_seconds") or r["train_seconds"]
        lines.append(f"| {r['model']} | {r['shape']} | {conns:,} | {nbytes:,} | {steps} | {bpb:.4f} | "
                     f"{secs:.0f} |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    data = prepare_quickstart_data(os.path.join(args.out_dir, "data"))
    models = model_runs(args, data)
    t0 = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda m: one_model(m, args, data), models))
    text = table(rows, args)
    cmd = "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:])
    note = (f"{cmd}\n{args.steps} steps each, seq_len 128 x batch 16, multibit:4, row scales, "
            f"signed-constant init, 1,024-piece BPE; threads {args.threads} per run, jobs {args.jobs}; "
            f"val_bpb from the packed artifact on "
            f"{'all held-out bytes' if not args.eval_max_bytes else f'the first {args.eval_max_bytes} held-out bytes'}"
            f" ({data.val_bytes:,} held out); seconds = the trainer's training time (train_seconds); total {time.time() - t0:.0f} s")
    print(text)
    print(note)
    if args.results:
        os.makedirs(args.results, exist_ok=True)
        with open(os.path.join(args.results, "gpt_vs_llama.txt"), "w") as f:
            f.write(text + "\n\n" + note + "\n")
        with open(os.path.join(args.results, "gpt_vs_llama.json"), "w") as f:
            json.dump(dict(command=cmd, args=vars(args), rows=rows), f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
