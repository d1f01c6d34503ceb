"""Training checkpoints: one safetensors file holding both the ticket and the training state.

Tensor keys:
  ``ticket/<name>/levels`` (uint8; int8 for a signed mask) and ``ticket/<name>/scale`` (float32)
  per masked tensor,
  ``ticket/<name>`` (float32) per plain tensor: what ``pack`` needs, no model code involved;
  ``model/<key>``: the module's state dict (scores, scales) for ``--resume``;
  ``extra/<key>``: anything else the trainer keeps (optimizer moments).
Metadata (all strings): ``format``, ``version``, ``seed``, ``config`` (JSON), ``manifest``
(JSON list: name, kind, init, mask, scale), ``train_state`` and ``provenance`` (JSON), and
optionally ``eval`` (JSON: the evaluation context ``pack`` records, format/eval_context.py).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save
from torch import nn

from ..artifact import DEFAULT_LIMITS, Limits
from ..atomic import atomic_write_bytes
from ..errors import CheckpointError, LimitError, TicketpackError, UsageError
from ..format.eval_context import check_eval_context
from ..nn.masking import MaskSpec
from ..nn.mask_training import level_dtype, level_range
from ..format.constants import DEFAULT_LAYOUT, INIT_RULES, LAYOUTS, SCALE_MODES
from ..format.philox import check_init_std, check_layout
from ..models.gpt_config import DEFAULT_MODEL_LIMITS, ModelLimits, config_from_dict, split_training_keys
from ..models.fit import check_tensors_fit
from ..models.registry import check_config
from ..strict_json import loads_strict
from ..ticket import (Int8Tensor, MaskedTensor, PlainTensor, Ticket, adapter_tensor,
                      default_provenance, ticket_from_model)

CHECKPOINT_FORMAT = "ticketpack-checkpoint"
CHECKPOINT_VERSION = "1"
METADATA_KEYS = ("format", "version", "seed", "config", "manifest", "train_state", "provenance", "eval")
MANIFEST_KEYS = {"masked": ("name", "kind", "init", "mask", "scale"), "plain": ("name", "kind"),
                 "int8": ("name", "kind")}
NO_MASK_KEYS = MANIFEST_KEYS["masked"] + ("shape",)  # mask none: no levels tensor gives the shape
MASKED_OPTIONAL_KEYS = ("layout", "init_std")  # written when not out_in / for init normal_std
# safetensors dtype names each key family may hold (``ticket/<name>/levels``: U8, or I8 for
# a signed mask: checked against the manifest's mask when the ticket is read)
FLOATS = ("F32", "F16", "BF16")
LEVEL_DTYPES = {"uint8": "U8", "int8": "I8"}  # numpy level dtype -> safetensors name
TENSOR_DTYPES = {"ticket": FLOATS, "model": FLOATS, "extra": FLOATS + ("I64",)}
# a checkpoint holds the ticket, the module state (scores: one per connection) and Adam's two
# moments, so about four times the elements an artifact of the same model holds
CHECKPOINT_ELEMENTS_PER_CAP = 6


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
                    provenance: dict | None = None, eval_context: dict | None = None,
                    adapter_dtype: str = "f16") -> None:
    """Write ``model`` (any module with masked layers, seed-bound) as a checkpoint, atomically.

    ``eval_context``: the sequence length and tokenizer it was trained with (format/eval_context.py).
    ``adapter_dtype``: how ``pack`` stores the adapters (f16 plain, or int8 per row); the
    checkpoint keeps their float32 values either way.
    """
    ticket = ticket_from_model(model, seed, config, adapter_dtype=adapter_dtype)
    tensors: dict[str, torch.Tensor] = {}
    manifest = []
    for t in ticket.tensors:
        manifest.append(_manifest_entry(t))
        if isinstance(t, MaskedTensor) and t.levels is not None:
            tensors[f"ticket/{t.name}/levels"] = torch.from_numpy(t.levels.copy())
    for layer in _scale_owners(model):
        tensors[f"ticket/{layer.tensor_name}/scale"] = layer.scale.detach().float().cpu().reshape(-1)
    plain = {e["name"] for e in manifest if e["kind"] != "masked"}  # plain and int8 entries: the float parameter
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


def load_checkpoint(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                    model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> Checkpoint:
    """Read a ticketpack checkpoint as untrusted input (safetensors: no pickle on this path).

    Everything is checked before it is used: tensor dtypes and element counts (against
    ``limits.max_total_elements`` per family of keys) before any tensor is read, then the
    metadata against a strict schema (``CheckpointError``, exit 3, naming the field).
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"checkpoint: no such file {str(p)!r}")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
            _check_identity(meta, p)
            tensors = _read_tensors(fh, limits)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(p)!r}: not a readable safetensors file ({exc})") from None
    unknown = sorted(set(meta) - set(METADATA_KEYS))
    if unknown:
        raise CheckpointError(f"checkpoint metadata: unknown key {unknown[0][:80]!r}, "
                              f"expected {', '.join(METADATA_KEYS)}")
    config = _meta_json(meta, "config", dict)
    _check_config(config, model_limits)
    manifest = _meta_json(meta, "manifest", list)
    for i, entry in enumerate(manifest):
        _check_manifest_entry(entry, i)
    eval_context = _meta_json(meta, "eval", dict, "null", optional=True)
    if eval_context is not None:
        check_eval_context(eval_context, "checkpoint metadata eval", CheckpointError)
    return Checkpoint(seed=_meta_seed(meta), config=config, manifest=manifest, tensors=tensors,
                      train_state=_meta_json(meta, "train_state", dict, "{}"),
                      provenance=_meta_json(meta, "provenance", dict, "{}"), eval=eval_context)


def _check_identity(meta: dict, p: Path) -> None:
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {str(p)!r}: metadata format {str(meta.get('format'))[:80]!r}, "
                              f"expected {CHECKPOINT_FORMAT!r} (not written by ticketpack)")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint: version {str(meta.get('version'))[:80]!r}, "
                              f"expected {CHECKPOINT_VERSION!r}")


def _read_tensors(fh, limits: Limits) -> dict[str, torch.Tensor]:
    """Every tensor, after checking its key, dtype and the element total from the header alone."""
    total = 0
    for key in fh.keys():
        family = key.split("/", 1)[0]
        if family not in TENSOR_DTYPES:
            raise CheckpointError(f"checkpoint tensor {key[:100]!r}: expected a key starting with "
                                  f"{', '.join(f + '/' for f in TENSOR_DTYPES)}")
        view = fh.get_slice(key)
        dtype = view.get_dtype()
        allowed = TENSOR_DTYPES[family] if not key.endswith("/levels") else tuple(LEVEL_DTYPES.values())
        if dtype not in allowed:
            raise CheckpointError(f"checkpoint tensor {key[:100]!r}: dtype {dtype}, expected "
                                  f"{' or '.join(allowed)}")
        total += math.prod(view.get_shape())
        if total > CHECKPOINT_ELEMENTS_PER_CAP * limits.max_total_elements:
            raise LimitError(f"checkpoint: {total:,} tensor elements in all (up to {key[:100]!r}), cap is "
                             f"{CHECKPOINT_ELEMENTS_PER_CAP} x {limits.max_total_elements:,} "
                             f"(raise it with --max-elements or TICKETPACK_MAX_ELEMENTS)")
    return {k: fh.get_tensor(k) for k in fh.keys()}


def _meta_json(meta: dict, key: str, typ: type, default: str | None = None, optional: bool = False):
    """Metadata field ``key`` as strict JSON of type ``typ`` (``default``: the text of a missing
    field; ``optional``: None when the field is absent)."""
    if key not in meta and default is None:
        raise CheckpointError(f"checkpoint metadata: missing field {key!r}")
    if optional and key not in meta:
        return None
    value = loads_strict(meta.get(key, default), f"checkpoint metadata {key}", CheckpointError)
    if not isinstance(value, typ):
        raise CheckpointError(f"checkpoint metadata {key}: {type(value).__name__}, "
                              f"expected a JSON {'object' if typ is dict else 'array'}")
    return value


def _meta_seed(meta: dict) -> int:
    text = meta.get("seed")
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 10 \
            or not 0 <= int(text) < 2**32:
        raise CheckpointError(f"checkpoint metadata seed: {str(text)[:40]!r}, expected an integer "
                              f"0..2^32-1 in decimal")
    return int(text)


def _check_manifest_entry(entry, i: int) -> None:
    """name (unique per checkpoint later), kind, and for masked entries init, mask and scale."""
    where = f"checkpoint manifest[{i}]"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: {type(entry).__name__}, expected a JSON object")
    kind = entry.get("kind")
    keys = MANIFEST_KEYS.get(kind) if isinstance(kind, str) else None
    if keys is None:
        raise CheckpointError(f"{where}: kind {str(kind)[:40]!r}, expected masked, plain or int8")
    if kind == "masked" and entry.get("mask") == "none":
        keys = NO_MASK_KEYS
        shape = entry.get("shape")
        if not (isinstance(shape, list) and 1 <= len(shape) <= 8
                and all(type(d) is int and 1 <= d <= 2**31 for d in shape)):
            raise CheckpointError(f"{where}.shape: {str(shape)[:40]}, expected a list of 1..8 positive integers")
    optional = MASKED_OPTIONAL_KEYS if kind == "masked" else ()
    if not set(keys) <= set(entry) <= set(keys) | set(optional):
        raise CheckpointError(f"{where}: fields {sorted(entry)}, a {kind} entry has {list(keys)}"
                              + (f" (and optionally {', '.join(optional)})" if optional else ""))
    if "layout" in entry and entry["layout"] not in LAYOUTS:
        raise CheckpointError(f"{where}.layout: {str(entry['layout'])[:40]!r}, expected one of {', '.join(LAYOUTS)}")
    for key in (k for k in keys if k != "shape"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise CheckpointError(f"{where}.{key}: {str(entry[key])[:40]!r}, expected a non-empty string")
    if kind == "masked":
        if entry["init"] not in INIT_RULES:
            raise CheckpointError(f"{where}.init: {entry['init'][:40]!r}, expected one of {', '.join(INIT_RULES)}")
        if entry["scale"] not in SCALE_MODES:
            raise CheckpointError(f"{where}.scale: {entry['scale'][:40]!r}, expected one of "
                                  f"{', '.join(SCALE_MODES)}")
        try:
            MaskSpec.parse(entry["mask"])
        except TicketpackError as exc:
            raise CheckpointError(f"{where}.mask: {exc}") from None


def ticket_from_checkpoint(ckpt: Checkpoint, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> Ticket:
    """The ticket a checkpoint holds: hard levels, fp16-rounded scales and plain tensors.

    Refuses (``CheckpointError``) a checkpoint with no tensors, levels outside the mask's
    range, scales or plain values that are not finite or overflow fp16, and tensors that
    do not fit the model its config describes.
    """
    if not ckpt.manifest:
        raise CheckpointError("checkpoint manifest: no tensors, expected the model's tensors")
    tensors = [_ticket_tensor(ckpt, entry) for entry in ckpt.manifest]
    config, legacy = split_training_keys(ckpt.config)  # how it trained goes to provenance
    try:
        ticket = Ticket(seed=ckpt.seed, config=config, tensors=tensors,
                        provenance=default_provenance(_trained(ckpt.train_state, legacy)), eval=ckpt.eval)
    except TicketpackError as exc:
        raise CheckpointError(f"checkpoint manifest: {exc}") from None
    _check_fits_config(ticket, model_limits)
    return ticket


def _ticket_tensor(ckpt: Checkpoint, entry: dict):
    name = entry["name"]
    if entry["kind"] == "plain":
        return PlainTensor(name, fp16_values(_get(ckpt, f"ticket/{name}"), name))
    if entry["kind"] == "int8":
        value = _get(ckpt, f"ticket/{name}")
        fp16_values(value, name)  # finite and in range
        if value.dim() != 2:
            raise CheckpointError(f"{name}: {value.dim()}-D int8 tensor, expected 2-D (rows, cols)")
        return adapter_tensor(name, value.float(), "int8")
    spec = MaskSpec.parse(entry["mask"])
    if not spec.stored:
        shape = tuple(entry["shape"])
        return _masked(entry, shape, spec, None, _scale(ckpt, entry, shape))
    levels = _levels(ckpt, name, spec)
    if spec.kind == "nm" and (levels.shape[-1] % spec.m or
                              np.any(levels.reshape(-1, spec.m).sum(axis=1) != spec.n)):
        raise CheckpointError(f"{name}: levels break the {spec} pattern ({spec.n} kept in every {spec.m})")
    return _masked(entry, tuple(levels.shape), spec, levels, _scale(ckpt, entry, tuple(levels.shape)))


def _masked(entry: dict, shape: tuple[int, ...], spec: MaskSpec, levels: np.ndarray | None,
            scale: np.ndarray | None) -> MaskedTensor:
    """A manifest entry's masked tensor; its layout and init_std checked against the shape and rule."""
    try:
        layout = check_layout(entry.get("layout", DEFAULT_LAYOUT), shape)
        init_std = check_init_std(entry["init"], entry.get("init_std"))
    except TicketpackError as exc:
        raise CheckpointError(f"{entry['name']}: {exc}") from None
    return MaskedTensor(entry["name"], shape, entry["init"], spec, levels, scale, layout=layout, init_std=init_std)


def _levels(ckpt: Checkpoint, name: str, spec: MaskSpec) -> np.ndarray:
    """A masked tensor's levels: non-empty, of its mask's dtype and within its level range."""
    levels = _get(ckpt, f"ticket/{name}/levels").numpy()
    if levels.ndim == 0 or levels.size == 0:
        raise CheckpointError(f"{name}: levels of shape {tuple(levels.shape)}, expected a non-empty tensor")
    dtype = level_dtype(spec)
    if levels.dtype != np.dtype(dtype):
        raise CheckpointError(f"{name}: levels of dtype {levels.dtype}, mask {spec} expects {dtype}")
    low, high = level_range(spec)
    if int(levels.min()) < low or int(levels.max()) > high:
        bad = int(levels.min()) if int(levels.min()) < low else int(levels.max())
        raise CheckpointError(f"{name}: mask level {bad}, mask {spec} allows {low}..{high}")
    return levels


def _scale(ckpt: Checkpoint, entry: dict, shape: tuple[int, ...]) -> np.ndarray | None:
    name = entry["name"]
    if entry["scale"] == "none":
        return None
    scale = fp16_values(_get(ckpt, f"ticket/{name}/scale"), f"{name} scale")
    want = 1 if entry["scale"] == "tensor" else shape[0]
    if scale.size != want:
        raise CheckpointError(f"{name}: {scale.size} scale values, a {entry['scale']} scale "
                              f"of shape {shape} has {want}")
    return scale.reshape(()) if entry["scale"] == "tensor" else scale.reshape(-1)


def fp16_values(tensor: torch.Tensor, what: str) -> np.ndarray:
    """float16 values of a float tensor; non-finite values and values past fp16's range
    (65504) are refused rather than stored as infinity (``CheckpointError`` naming ``what``)."""
    values = tensor.detach().to(torch.float32).numpy()
    bad = ~np.isfinite(values) | (np.abs(values) > np.finfo(np.float16).max)
    if bad.any():
        raise CheckpointError(f"{what}: value {float(values.reshape(-1)[np.flatnonzero(bad)[0]])!r} is not "
                              f"finite or overflows float16 (|x| <= 65504), expected a storable value")
    return values.astype(np.float16)


def _trained(train_state: dict, legacy: dict) -> dict | None:
    """The training facts an artifact's provenance records: step, tokens, val_bpb and how the
    masks trained (the trainer's ``mask_training``, or an older checkpoint's config keys)."""
    trained = {k: train_state[k] for k in ("step", "tokens", "val_bpb") if k in train_state}
    if "mask_training" in train_state:
        trained["mask_training"] = _mask_training_fact(train_state["mask_training"])
    elif legacy:
        trained["mask_training"] = {"estimator": legacy.get("mask_estimator", ""),
                                    "density": legacy.get("mask_density")}
    return {"train": trained} if trained else None


def _mask_training_fact(value: object) -> dict:
    """A checkpoint's ``train_state.mask_training``: {"estimator": str, "density": number or null}."""
    ok = (isinstance(value, dict) and set(value) == {"estimator", "density"}
          and isinstance(value["estimator"], str) and len(value["estimator"]) <= 40
          and (value["density"] is None or (not isinstance(value["density"], bool)
                                            and isinstance(value["density"], (int, float))
                                            and 0 < value["density"] <= 1)))
    if not ok:
        raise CheckpointError(f"checkpoint train_state.mask_training: {str(value)[:80]!r}, expected "
                              f"{{\"estimator\": a name, \"density\": a number in (0, 1] or null}}")
    return dict(value)


def _check_config(config: dict, model_limits: ModelLimits) -> None:
    """A checkpoint's config: the built-in GPT's, or another architecture record (models/registry.py)."""
    if "arch" not in config:
        config_from_dict(config, model_limits, error=CheckpointError, where="checkpoint config")
        return
    try:
        check_config(config, model_limits)
    except TicketpackError as exc:
        raise CheckpointError(f"checkpoint {exc}") from None


def _check_fits_config(ticket: Ticket, model_limits: ModelLimits) -> None:
    """The tensors' names and shapes against the config's model (models/fit.py: the check
    ``verify`` makes, transformers records on the meta device, their adapters folded)."""
    _check_config(ticket.config, model_limits)
    try:
        check_tensors_fit(ticket.config, {t.name: tuple(t.shape) for t in ticket.tensors}, model_limits)
    except TicketpackError as exc:
        raise CheckpointError(f"checkpoint: {exc}") from None


def _get(ckpt: Checkpoint, key: str) -> torch.Tensor:
    if key not in ckpt.tensors:
        raise CheckpointError(f"checkpoint: tensor {key!r} listed in the manifest is missing")
    return ckpt.tensors[key].cpu()


def _manifest_entry(t) -> dict:
    if isinstance(t, MaskedTensor):
        entry = {"name": t.name, "kind": "masked", "init": t.init, "mask": str(t.mask), "scale": t.scale_mode}
        if t.layout != DEFAULT_LAYOUT:
            entry["layout"] = t.layout
        if t.init_std is not None:
            entry["init_std"] = t.init_std
        return entry if t.mask.stored else {**entry, "shape": list(t.shape)}
    return {"name": t.name, "kind": "int8" if isinstance(t, Int8Tensor) else "plain"}


def _scale_owners(model: nn.Module):
    from ..nn.layers import masked_layers

    return [layer for _, layer in masked_layers(model) if getattr(layer, "scale", None) is not None]


def checkpoint_ticket(checkpoint: str | os.PathLike, codec: str = "auto", level: int | None = None,
                      limits: Limits = DEFAULT_LIMITS,
                      model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> tuple[Ticket, dict]:
    """The ticket ``pack`` writes for a checkpoint and the provenance ``creation`` it records."""
    ticket = ticket_from_checkpoint(load_checkpoint(checkpoint, limits, model_limits), model_limits)
    return ticket, {"checkpoint": os.path.basename(os.fspath(checkpoint)), "codec": codec, "level": level}


def packed_size(checkpoint: str | os.PathLike, codec: str = "auto", level: int | None = None,
                model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> int:
    """The bytes ``pack`` would write for a checkpoint, writing nothing."""
    from ..artifact import encode_artifact

    ticket, creation = checkpoint_ticket(checkpoint, codec, level, DEFAULT_LIMITS, model_limits)
    return len(encode_artifact(ticket, codec, level, creation))
