"""Training checkpoints: one safetensors file holding both the ticket and the training state.

Tensor keys:
  ``ticket/<name>/levels`` (uint8) and ``ticket/<name>/scale`` (float32) per masked tensor,
  ``ticket/<name>`` (float32) per plain tensor: what ``pack`` needs, no model code involved;
  ``model/<key>``: the module's state dict (scores, scales) for ``--resume``;
  ``extra/<key>``: anything else the trainer keeps (optimizer moments).
Metadata (all strings): ``format``, ``version``, ``seed``, ``config`` (JSON), ``manifest``
(JSON list: name, kind, init, mask, scale), ``train_state`` and ``provenance`` (JSON), and
optionally ``eval`` (JSON: the evaluation context ``pack`` records, eval_context.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save
from torch import nn

from .atomic import atomic_write_bytes
from .errors import CheckpointError, UsageError
from .eval_context import check_eval_context
from .masking import MaskSpec
from .ticket import MaskedTensor, PlainTensor, Ticket, default_provenance, ticket_from_model

CHECKPOINT_FORMAT = "ticketpack-checkpoint"
CHECKPOINT_VERSION = "1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the ticket's parts, the module state and the trainer's state."""

    seed: int
    config: dict
    manifest: list[dict]
    tensors: dict[str, torch.Tensor]
    train_state: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    eval: dict | None = None  # evaluation context (seq_len, tokenizer) for the artifact

    def model_state(self) -> dict[str, torch.Tensor]:
        return {k[len("model/"):]: v for k, v in self.tensors.items() if k.startswith("model/")}

    def extra(self) -> dict[str, torch.Tensor]:
        return {k[len("extra/"):]: v for k, v in self.tensors.items() if k.startswith("extra/")}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, seed: int, config: dict,
                    train_state: dict | None = None,
                    extra_tensors: dict[str, torch.Tensor] | None = None,
                    provenance: dict | None = None, eval_context: dict | None = None) -> None:
    """Write ``model`` (any module with masked layers, seed-bound) as a checkpoint, atomically.

    ``eval_context``: the sequence length and tokenizer it was trained with (eval_context.py).
    """
    ticket = ticket_from_model(model, seed, config)
    tensors: dict[str, torch.Tensor] = {}
    manifest = []
    for t in ticket.tensors:
        manifest.append(_manifest_entry(t))
        if isinstance(t, MaskedTensor):
            tensors[f"ticket/{t.name}/levels"] = torch.from_numpy(t.levels.copy())
    for layer in _scale_owners(model):
        tensors[f"ticket/{layer.tensor_name}/scale"] = layer.scale.detach().float().cpu().reshape(-1)
    plain = {e["name"] for e in manifest if e["kind"] == "plain"}
    for name, param in model.named_parameters():
        if name in plain:
            tensors[f"ticket/{name}"] = param.detach().float().cpu()
    for key, value in model.state_dict().items():
        tensors[f"model/{key}"] = value.detach().cpu()
    for key, value in (extra_tensors or {}).items():
        tensors[f"extra/{key}"] = value.detach().cpu()
    metadata = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "seed": str(seed),
        "config": json.dumps(config), "manifest": json.dumps(manifest),
        "train_state": json.dumps(train_state or {}),
        "provenance": json.dumps(provenance or default_provenance()),
        **({"eval": json.dumps(eval_context)} if eval_context is not None else {}),
    }
    tensors = {k: v.contiguous().clone() for k, v in tensors.items()}  # no shared storage
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a ticketpack checkpoint (safetensors: no pickle on this path)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"checkpoint: no such file {str(p)!r}")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(p)!r}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {str(p)!r}: metadata format {meta.get('format')!r}, "
                              f"expected {CHECKPOINT_FORMAT!r} (not written by ticketpack)")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint: version {meta.get('version')!r}, expected {CHECKPOINT_VERSION!r}")
    try:
        ckpt = Checkpoint(seed=int(meta["seed"]), config=json.loads(meta["config"]),
                          manifest=json.loads(meta["manifest"]), tensors=tensors,
                          train_state=json.loads(meta.get("train_state", "{}")),
                          provenance=json.loads(meta.get("provenance", "{}")),
                          eval=json.loads(meta["eval"]) if "eval" in meta else None)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint: metadata is malformed ({exc})") from None
    if ckpt.eval is not None:
        check_eval_context(ckpt.eval, "checkpoint metadata eval", CheckpointError)
    return ckpt


def ticket_from_checkpoint(ckpt: Checkpoint) -> Ticket:
    """The ticket a checkpoint holds: hard levels, fp16-rounded scales and plain tensors."""
    tensors = []
    for entry in ckpt.manifest:
        name = entry["name"]
        if entry["kind"] == "masked":
            levels = _get(ckpt, f"ticket/{name}/levels").numpy().astype(np.uint8)
            scale = None
            if entry["scale"] != "none":
                scale = _get(ckpt, f"ticket/{name}/scale").numpy().astype(np.float16)
                scale = scale.reshape(()) if entry["scale"] == "tensor" else scale
            tensors.append(MaskedTensor(name, tuple(levels.shape), entry["init"],
                                        MaskSpec.parse(entry["mask"]), levels, scale))
        elif entry["kind"] == "plain":
            tensors.append(PlainTensor(name, _get(ckpt, f"ticket/{name}").numpy().astype(np.float16)))
        else:
            raise CheckpointError(f"checkpoint manifest: {name!r} has kind {entry['kind']!r}, "
                                  f"expected masked or plain")
    trained = {k: ckpt.train_state[k] for k in ("step", "tokens", "val_bpb") if k in ckpt.train_state}
    return Ticket(seed=ckpt.seed, config=ckpt.config, tensors=tensors,
                  provenance=default_provenance({"train": trained} if trained else None),
                  eval=ckpt.eval)


def _get(ckpt: Checkpoint, key: str) -> torch.Tensor:
    if key not in ckpt.tensors:
        raise CheckpointError(f"checkpoint: tensor {key!r} listed in the manifest is missing")
    return ckpt.tensors[key].cpu()


def _manifest_entry(t) -> dict:
    if isinstance(t, MaskedTensor):
        return {"name": t.name, "kind": "masked", "init": t.init, "mask": str(t.mask),
                "scale": t.scale_mode}
    return {"name": t.name, "kind": "plain"}


def _scale_owners(model: nn.Module):
    from .layers import masked_layers

    return [layer for _, layer in masked_layers(model) if getattr(layer, "scale", None) is not None]
