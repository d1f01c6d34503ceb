"""On a CUDA machine: load-and-eval the same artifact on CPU and GPU (fp32, bf16) and
check that regeneration on the GPU (torch Philox path) equals the CPU numpy path.

    python bench/gpu_smoke.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ticketpack import api
from ticketpack.nn import frozen as rng
from ticketpack.train.checkpoint import save_checkpoint
from ticketpack.text.corpus import bundled_corpus_path, read_corpus
from ticketpack.nn.layers import bind_seed, randomize_scores
from ticketpack.models.gpt_model import GPT, GPTConfig


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    shape = (4096, 4096)
    t = time.perf_counter()
    cpu = rng.frozen_weight(5, "w", shape, "xavier_uniform")
    t_cpu = time.perf_counter() - t
    rng.frozen_weight_torch(5, "w", (8, 8), "xavier_uniform", device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    gpu = rng.frozen_weight_torch(5, "w", shape, "xavier_uniform", device="cuda")
    torch.cuda.synchronize()
    t_gpu = time.perf_counter() - t
    same = np.array_equal(cpu.view(np.uint32), gpu.cpu().numpy().view(np.uint32))
    print(f"regen {shape}: numpy {t_cpu * 1e3:.1f} ms, torch CUDA {t_gpu * 1e3:.1f} ms, bit-identical: {same}")
    config = GPTConfig.from_dict({"num_layers": 4, "model_dim": 256, "num_heads": 4, "num_kv_heads": 2})
    model = GPT(config)
    randomize_scores(model, 0)
    bind_seed(model, 3)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, art, text = Path(tmp, "m.safetensors"), Path(tmp, "m.tpk"), Path(tmp, "v.txt")
        save_checkpoint(ckpt, model, seed=3, config=config.to_dict())
        api.pack(ckpt, art)
        text.write_bytes(read_corpus([bundled_corpus_path()])[-200_000:])
        rows = {}
        for device, precision in (("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "bf16")):
            rows[(device, precision)] = api.load_and_eval(art, [str(text)], device=device,
                                                          precision=precision, seq_len=256,
                                                          batch_size=32)
        for (device, precision), r in rows.items():
            print(json.dumps({"device": device, "precision": precision, "val_bpb": r["val_bpb"],
                              "tokens_per_second": round(r["tokens_per_second"]),
                              "load_seconds": r["load_seconds"]}))
        diff = abs(rows[("cuda", "fp32")]["val_bpb"] - rows[("cpu", "fp32")]["val_bpb"])
        print(f"|val_bpb cuda fp32 - cpu fp32| = {diff:.2e}")


if __name__ == "__main__":
    main()
