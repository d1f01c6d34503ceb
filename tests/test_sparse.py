"""2:4 tickets: detection on any machine; sparse kernels == dense on CUDA (skipped without)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ticketpack import api
from ticketpack.train.checkpoint import save_checkpoint
from ticketpack.errors import UsageError
from ticketpack.nn.layers import bind_seed, randomize_scores
from ticketpack.models.gpt_model import GPT, GPTConfig
from ticketpack.nn.sparse import two_four_names
from ticketpack.ticket import MaskedTensor

CUDA = torch.cuda.is_available()


def nm_artifact(tmp_path, dim=128):
    config = GPTConfig.from_dict({"num_layers": 2, "model_dim": dim, "num_heads": 2, "num_kv_heads": 2,
                                  "mask": "nm:2:4"})
    model = GPT(config)
    randomize_scores(model, 0)
    bind_seed(model, 9)
    ckpt, art = tmp_path / "nm.safetensors", tmp_path / "nm.tpk"
    save_checkpoint(ckpt, model, seed=9, config=config.to_dict())
    api.pack(ckpt, art)
    text = tmp_path / "t.txt"
    text.write_text("Now is the winter of our discontent\nMade glorious summer by this sun of York;\n" * 40)
    return art, text


def test_two_four_layers_found_and_packed_at_their_entropy(tmp_path):
    art, _ = nm_artifact(tmp_path)
    ticket, _, _ = api.load_verified(art)
    names = two_four_names(ticket)
    linear = [t for t in ticket.tensors if isinstance(t, MaskedTensor) and t.mask.kind == "nm"]
    assert names and len(names) == len([t for t in linear if len(t.shape) == 2])
    for t in linear:
        groups = t.levels.reshape(t.shape[0], -1, 4).sum(-1)
        assert np.all(groups == 2)
    report = api.size(art)
    for row in report.tensors:
        if row.name in names:
            assert row.codec == "ransnm" and row.bits_per_connection <= 0.65 + 8 * 64 / row.connections


def test_sparse_kernels_on_without_cuda_is_a_usage_error(tmp_path):
    if CUDA:
        pytest.skip("this machine has CUDA")
    art, text = nm_artifact(tmp_path)
    with pytest.raises(UsageError, match="CUDA"):
        api.load_and_eval(art, [str(text)], device="cpu", sparse_kernels="on", seq_len=64)


@pytest.mark.skipif(not CUDA, reason="2:4 semi-structured kernels need CUDA")
def test_sparse_kernels_agree_with_dense_on_cuda(tmp_path):
    art, text = nm_artifact(tmp_path, dim=256)
    dense = api.load_and_eval(art, [str(text)], device="cuda", precision="bf16", sparse_kernels="off",
                              seq_len=128)
    sparse = api.load_and_eval(art, [str(text)], device="cuda", precision="bf16", sparse_kernels="on",
                               seq_len=128)
    assert sparse["sparse_2to4_layers"] > 0 and dense["sparse_2to4_layers"] == 0
    assert abs(sparse["val_bpb"] - dense["val_bpb"]) / dense["val_bpb"] < 2e-2
