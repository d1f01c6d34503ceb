"""Crafted training checkpoints: each a valid tiny checkpoint with one field made hostile.

Checkpoints are built at test time (not committed: a safetensors file of the tiny model is
~100 KB) by ``control_checkpoint`` and the edits in ``CASES``. Each case names the CLI exit
code ``pack`` must end with and a word its one-line message must contain. The fuzz harness
(tests/fuzz/fuzz_config.py) mutates the same control.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from ticketpack.train.checkpoint import save_checkpoint
from ticketpack.nn.layers import bind_seed, randomize_scores
from ticketpack.models.gpt_model import GPT, GPTConfig

CONTROL_CONFIG = dict(vocab_size=256, num_layers=1, model_dim=16, num_heads=2, num_kv_heads=1,
                      mlp_mult=2, mask="multibit:4", scale_mode="row")

Parts = tuple[dict[str, torch.Tensor], dict[str, str]]


def control_checkpoint(path) -> None:
    """A valid checkpoint of a one-block model with 4-level masks and row scales."""
    config = GPTConfig.from_dict(CONTROL_CONFIG)
    torch.manual_seed(0)
    model = GPT(config, masked=True)
    randomize_scores(model, 0)
    bind_seed(model, 3)
    options = {"seed": 3, "lr": 0.1, "adam_betas": [0.9, 0.95], "tokenizer": None, "preset": "tiny",
               "model": CONTROL_CONFIG, "seq_len": 8, "batch_size": 2}
    save_checkpoint(path, model, seed=3, config=config.to_dict(),
                    train_state={"step": 2, "tokens": 32, "train_seconds": 0.5, "options": options})


def read_parts(path) -> Parts:
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata())


def write_parts(path, parts: Parts) -> None:
    tensors, meta = parts
    path.write_bytes(st_save(tensors, metadata=meta))


def _meta_json(key: str, edit: Callable) -> Callable[[Parts], None]:
    def apply(parts: Parts) -> None:
        value = json.loads(parts[1][key])
        parts[1][key] = json.dumps(edit(value))
    return apply


def _set_meta(key: str, text: str) -> Callable[[Parts], None]:
    def apply(parts: Parts) -> None:
        parts[1][key] = text
    return apply


def _first_masked(manifest: list) -> dict:
    return next(e for e in manifest if e["kind"] == "masked")


def _edit_entry(edit: Callable[[dict], None]) -> Callable[[Parts], None]:
    def apply_manifest(manifest: list) -> list:
        edit(_first_masked(manifest))
        return manifest
    return _meta_json("manifest", apply_manifest)


def _tensor(suffix: str, edit: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[Parts], None]:
    def apply(parts: Parts) -> None:
        key = next(k for k in parts[0] if k.startswith("ticket/") and k.endswith(suffix))
        parts[0][key] = edit(parts[0][key])
    return apply


def _options(edit: dict) -> Callable[[Parts], None]:
    def apply(state: dict) -> dict:
        state["options"].update(edit)
        return state
    return _meta_json("train_state", apply)


def _first_plain(parts: Parts) -> None:
    manifest = json.loads(parts[1]["manifest"])
    name = next(e["name"] for e in manifest if e["kind"] == "plain")
    parts[0][f"ticket/{name}"] = torch.full_like(parts[0][f"ticket/{name}"], 1e6)


@dataclass(frozen=True)
class Case:
    name: str
    edit: Callable[[Parts], None]
    exit_code: int
    field: str  # a word the one-line message contains


CASES = [
    Case("entry_without_kind", _edit_entry(lambda e: e.pop("kind")), 3, "kind"),
    Case("train_state_null", _set_meta("train_state", "null"), 3, "train_state"),
    Case("float8_levels", _tensor("/levels", lambda t: t.to(torch.float8_e4m3fn)), 3, "dtype"),
    Case("float8_scale", _tensor("/scale", lambda t: t.to(torch.float8_e4m3fn)), 3, "dtype"),
    Case("config_not_object", _set_meta("config", '"5"'), 3, "config"),
    Case("config_bomb", _meta_json("config", lambda c: {**c, "num_layers": 2**40}), 3, "num_layers"),
    Case("config_infinite", _set_meta("config", '{"logit_softcap": 1e400}'), 3, "1e400"),
    Case("config_unknown_key", _meta_json("config", lambda c: {**c, "layers": 2}), 3, "layers"),
    Case("config_legacy_key_mistyped", _meta_json("config", lambda c: {**c, "mask_density": "half"}), 3,
         "mask_density"),
    Case("mask_training_not_object", _meta_json("train_state", lambda s: {**s, "mask_training": "topk"}), 3,
         "mask_training"),
    Case("mask_training_density_huge", _meta_json("train_state", lambda s: {
        **s, "mask_training": {"estimator": "topk", "density": 1e300}}), 3, "mask_training"),
    Case("config_misfits_tensors", _meta_json("config", lambda c: {**c, "vocab_size": 300}), 3, "tok_emb"),
    Case("empty_manifest", _set_meta("manifest", "[]"), 3, "no tensors"),
    Case("manifest_not_list", _set_meta("manifest", '{"a": 1}'), 3, "manifest"),
    Case("level_out_of_range", _tensor("/levels", lambda t: torch.full_like(t, 7)), 3, "level 7"),
    Case("seed_negative", _set_meta("seed", "-1"), 3, "seed"),
    Case("seed_huge", _set_meta("seed", "4294967296"), 3, "seed"),
    Case("init_bogus", _edit_entry(lambda e: e.update(init="bogus")), 3, "init"),
    Case("mask_bogus", _edit_entry(lambda e: e.update(mask="multibit:0")), 3, "mask"),
    Case("scale_mode_bogus", _edit_entry(lambda e: e.update(scale="col")), 3, "scale"),
    Case("nan_scale", _tensor("/scale", lambda t: torch.full_like(t, float("nan"))), 3, "nan"),
    Case("scale_overflows_fp16", _tensor("/scale", lambda t: torch.full_like(t, 1e5)), 3, "float16"),
    Case("plain_overflows_fp16", _first_plain, 3, "float16"),
    Case("missing_tensor", lambda p: p[0].pop(next(k for k in p[0] if k.endswith("/levels"))), 3,
         "missing"),
    Case("foreign_key", lambda p: p[0].update({"other/x": torch.zeros(1)}), 3, "other/x"),
    Case("unknown_metadata", _set_meta("comment", "hi"), 3, "comment"),
    Case("duplicate_json_key", _set_meta("provenance", '{"a": 1, "a": 2}'), 3, "duplicate"),
    Case("not_ticketpack", _set_meta("format", "other"), 3, "format"),
    Case("eval_tokenizer_kind_list", _set_meta("eval", '{"seq_len": 8, "tokenizer": {"kind": ["bytes"]}}'), 3,
         "tokenizer.kind"),
    Case("eval_tokenizer_kind_object", _set_meta("eval", '{"seq_len": 8, "tokenizer": {"kind": {}}}'), 3,
         "tokenizer.kind"),
]

# saved training options a resumed run must refuse: (name, edit, exit code, field)
RESUME_CASES = [
    Case("betas_scalar", _options({"adam_betas": 5}), 3, "adam_betas"),
    Case("lr_text", _options({"lr": "abc"}), 3, "lr"),
    Case("lr_nan", _options({"lr": float("nan")}), 3, "NaN"),  # json.dumps writes the NaN literal
    Case("lr_negative", _options({"lr": -1.0}), 3, "lr"),
    Case("seq_len_float", _options({"seq_len": 8.5}), 3, "seq_len"),
    Case("tokenizer_path", _options({"tokenizer": "/dev/zero"}), 2, "tokenizer"),
    Case("step_negative", _meta_json("train_state", lambda s: {**s, "step": -5}), 3, "step"),
    Case("eval_tokenizer_kind_list", _set_meta("eval", '{"seq_len": 8, "tokenizer": {"kind": ["bytes"]}}'), 3,
         "tokenizer.kind"),
    Case("batch_size_huge", _options({"batch_size": 2**30}), 3, "batch_size"),
    Case("lr_huge", _options({"lr": 1e300}), 3, "lr"),
    Case("seq_len_huge", _options({"seq_len": 2**40}), 3, "seq_len"),
]
