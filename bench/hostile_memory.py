"""Peak memory of the worst tiny hostile artifact at the CLI's default element cap.

    python bench/hostile_memory.py                 # at the default cap (2^28 elements)
    python bench/hostile_memory.py --elements 2**24 --command load-and-eval

The file: a single masked tensor of shape (elements / 64, 64) whose all-zero mask is a few
bytes of ``rans0`` (one count, and a single present level needs no stream), so a ~350-byte
artifact asks for the most work the caps allow. With ``--command load-and-eval`` the file instead holds a
complete GPT (all masks zero, its weights hash true) whose parameters come as close to
``--elements`` as whole layers allow, so the model is built and evaluated too. ``weights_sha256`` is left wrong: ``verify`` regenerates every
weight before comparing, so the peak is an honest file's. Each command runs in a fresh
process under ``/usr/bin/time -v``; the baseline, measured in the same run, is ``verify`` of
a valid one-row artifact of the same tensor (the imports alone).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ticketpack.format.container import append_sections, assemble, encode_artifact, model_digest, parse_artifact
from ticketpack.format.maskspec import MaskSpec
from ticketpack.format.tensors import MaskedTensor, Ticket
from ticketpack.format.varint import put_varint

DEFAULT_CAP = 2**28
WIDTH = 64


def control_bytes() -> bytes:
    """A valid artifact of one all-zero binary-masked row: its mask is ``rans0``, one count."""
    row = MaskedTensor("a.weight", (1, WIDTH), "xavier_uniform", MaskSpec.parse("binary"),
                       np.zeros((1, WIDTH), np.uint8))
    return encode_artifact(Ticket(seed=1, config={"note": "hostile-memory control"}, tensors=[row]))


def single_tensor_bomb(elements: int) -> tuple[bytes, int]:
    """The control with ``elements // 64`` rows declared and the mask's count to match."""
    header = parse_artifact(control_bytes()).header
    count = elements // WIDTH * WIDTH
    tensor = header["tensors"][0]
    tensor["shape"] = [count // WIDTH, WIDTH]
    blob = put_varint(count)  # rans0: the count of level 0, the only level present
    payload = bytearray()
    tensor["sections"] = append_sections(payload, [("mask", "rans0", "none", blob, len(blob))])
    weights = "0" * 64  # wrong on purpose: verify regenerates every weight before it compares
    header.update(weights_sha256=weights, model_sha256=model_digest(weights, header["config"], None))
    return assemble(header, bytes(payload), "zstd"), count


def gpt_bomb(elements: int) -> tuple[bytes, int]:
    """A GPT (width 1024, or less for small caps) with as many layers as fit in ``elements``
    parameters, every masked tensor all zero (a few bytes each), with its true weights hash."""
    import numpy as np
    import torch

    from ticketpack.artifact import encode_artifact
    from ticketpack.nn.masking import MaskSpec
    from ticketpack.models.gpt_model import GPT
    from ticketpack.models.gpt_config import GPTConfig, parameter_count
    from ticketpack.ticket import MaskedTensor, PlainTensor, Ticket

    dim = 1024
    while parameter_count(GPTConfig(model_dim=dim, num_layers=1)) > elements:
        dim //= 2
    layers = 1
    while layers < 1024 and parameter_count(GPTConfig(model_dim=dim, num_layers=layers + 1)) <= elements:
        layers += 1
    config = GPTConfig(model_dim=dim, num_layers=layers)
    with torch.device("meta"):
        model = GPT(config, masked=False)
    tensors = []
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if len(shape) == 2:
            tensors.append(MaskedTensor(name, shape, "xavier_uniform", MaskSpec.parse("binary"),
                                        np.zeros(shape, np.uint8)))
        else:
            tensors.append(PlainTensor(name, np.ones(shape, np.float16)))
    ticket = Ticket(seed=1, config=config.to_dict(), tensors=tensors)
    return encode_artifact(ticket, codec="zstd"), parameter_count(config)


def measure(args: list[str]) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-c", "from ticketpack.cli.entry import run; run()"] + args
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    last = [line for line in done.stderr.splitlines() if line.startswith("ticketpack:")]
    return {"exit": done.returncode, "seconds": wall, "peak_rss_mib": rss / 1024,
            "message": last[-1][:100] if last else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--elements", type=lambda s: int(eval(s, {})), default=DEFAULT_CAP)
    ap.add_argument("--command", choices=["verify", "load-and-eval"], default="verify")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bomb.tpk"
        bomb, count = single_tensor_bomb(a.elements) if a.command == "verify" else gpt_bomb(a.elements)
        path.write_bytes(bomb)
        control = Path(tmp) / "control.tpk"
        control.write_bytes(control_bytes())
        text = Path(tmp) / "t.txt"
        text.write_text("hello world " * 200)
        extra = ["--data", str(text), "--device", "cpu", "--seq-len", "64"] if a.command == "load-and-eval" else []
        cap = ["--max-elements", str(max(a.elements, DEFAULT_CAP))]
        base = measure(cap + ["verify", str(control)])
        bomb_run = measure(cap + [a.command, str(path)] + extra)
    print(f"{a.command} of a {len(bomb):,}-byte file declaring {count:,} elements "
          f"(cap {max(a.elements, DEFAULT_CAP):,}):")
    print(f"  baseline (verify of the control): {base['peak_rss_mib']:,.0f} MiB peak RSS, "
          f"{base['seconds']:.1f} s, exit {base['exit']}")
    print(f"  hostile file: {bomb_run['peak_rss_mib']:,.0f} MiB peak RSS, {bomb_run['seconds']:.1f} s, "
          f"exit {bomb_run['exit']} ({bomb_run['message']})")
    print(f"  over the imports: {bomb_run['peak_rss_mib'] - base['peak_rss_mib']:,.0f} MiB = "
          f"{(bomb_run['peak_rss_mib'] - base['peak_rss_mib']) * 2**20 / count:.1f} B per element")


if __name__ == "__main__":
    main()
