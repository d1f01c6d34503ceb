"""Your own model as a ticket: a small Hugging Face Llama made a supermask, trained a few steps
on the bundled Shakespeare in your own loop, saved, loaded, sampled and exported as a folder
transformers loads.

    python examples/own_model.py                    # 200 steps
    python examples/own_model.py --steps 5 --out-dir /tmp/own

Only the masks (and the norms) train: the Llama's weights are frozen draws from the seed,
``normal`` with its config's initializer_range, and never stored.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

import torch
from transformers import AutoConfig, AutoModelForCausalLM

import ticketpack
from ticketpack.text.corpus import bundled_corpus_path, read_text_file


def batches(data: torch.Tensor, batch: int, seq_len: int, gen: torch.Generator):
    while True:
        start = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
        yield torch.stack([data[s:s + seq_len] for s in start.tolist()])


def main() -> None:
    p = argparse.ArgumentParser(description="a Llama supermask: train, save, load, sample, export")
    p.add_argument("--out-dir", default="runs/own-model")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seq-len", type=int, default=64)
    args = p.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    torch.manual_seed(0)
    text = read_text_file(bundled_corpus_path(), max_bytes=200_000)  # bytes: token = byte value
    data = torch.tensor(list(text), dtype=torch.long)

    config = AutoConfig.for_model("llama", vocab_size=256, hidden_size=128, intermediate_size=256,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  tie_word_embeddings=True, bos_token_id=None, eos_token_id=None)
    model = AutoModelForCausalLM.from_config(config)
    ticketpack.supermask(model, "binary", seed=0)  # in place: every Linear / Embedding masked
    optimizer = torch.optim.Adam(ticketpack.param_groups(model))
    stream = batches(data, 16, args.seq_len, torch.Generator().manual_seed(0))
    for step in range(args.steps):
        ids = next(stream)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.3f}")

    path = os.path.join(args.out_dir, "model.tpk")
    saved = ticketpack.save(model, path)
    ticketpack.round_like_artifact(model)  # what the file stores: the norms in fp16
    loaded = ticketpack.load(path)
    prompt = torch.tensor([list(b"ROMEO:")])
    with torch.no_grad():
        same = torch.equal(model.eval()(input_ids=prompt).logits, loaded(input_ids=prompt).logits)
        out = _sample(loaded, prompt, 60)
    hf_dir = os.path.join(args.out_dir, "hf")
    shutil.rmtree(hf_dir, ignore_errors=True)  # export writes a new folder
    ticketpack.export_hf(path, hf_dir)
    again = AutoModelForCausalLM.from_pretrained(hf_dir)
    with torch.no_grad():
        exported_same = torch.equal(again.eval()(input_ids=prompt).logits, loaded(input_ids=prompt).logits)
    print(json.dumps({"bytes": saved["bytes"], "tensors": saved["tensors"], "arch": saved["arch"],
                      "loaded_equals_trained": same, "export_equals_loaded": exported_same,
                      "sample": bytes(out[0].tolist()).decode("utf-8", "replace")}))


def _sample(model, ids: torch.Tensor, tokens: int) -> torch.Tensor:
    """Seeded sampling at temperature 0.8 from the loaded model."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(tokens):
        logits = model(input_ids=ids[:, -64:]).logits[0, -1] / 0.8
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
        ids = torch.cat([ids, nxt[None]], dim=1)
    return ids


if __name__ == "__main__":
    main()
