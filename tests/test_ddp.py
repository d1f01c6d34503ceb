"""DistributedDataParallel on gloo: two CPU processes end with identical masks and scales."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.tiny import corpus_slice


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, corpus: str, out: str, digests: str) -> None:
    # what torchrun sets for each process
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from ticketpack.train.loop import TrainOptions, train

    result = train(TrainOptions(data=[corpus], out=out, preset="tiny", mask="multibit:4",
                                model={"scale_mode": "row"}, steps=8, seq_len=32, batch_size=8,
                                eval_every=0, log_every=2, device="cpu"))
    digest = hashlib.sha256()
    for key, value in sorted(result.model.state_dict().items()):
        digest.update(key.encode() + value.detach().cpu().numpy().tobytes())
    with open(f"{digests}.{rank}", "w") as fh:
        fh.write(f"{digest.hexdigest()} {result.steps} {result.val_bpb}")


def test_two_gloo_ranks_end_with_identical_masks_and_scales(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus_slice(corpus, 20_000)
    out = tmp_path / "ddp.safetensors"
    digests = str(tmp_path / "digest")
    mp.spawn(_worker, args=(2, _free_port(), str(corpus), str(out), digests), nprocs=2, join=True)
    (d0, steps0, bpb0), (d1, steps1, bpb1) = (open(f"{digests}.{r}").read().split() for r in (0, 1))
    assert d0 == d1  # every score, scale and step size identical on both ranks
    assert steps0 == steps1 == "8"
    assert bpb0 != "None" and bpb1 == "None"  # only rank 0 evaluates ...
    assert out.exists() and [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []  # ... and writes
