"""The high-level operations behind the CLI commands, usable from Python.

Each function takes paths and plain options, raises ``TicketpackError`` subclasses,
and returns plain data (dicts, dataclasses) that the CLI prints.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .errors import ArtifactError, HeaderError, TicketpackError, UsageError, VerificationError
from .format.eval_context import check_tokenizer, resolve_seq_len
from .format.constants import DEFAULT_LIMITS, PG_RNG_PREFIX, Limits
from .format.container import (ArtifactInfo, Progress, check_digests, decode_artifact, parse_artifact,
                               read_artifact_bytes)
from .format.tensors import Ticket
from .models.gpt_config import DEFAULT_MODEL_LIMITS, ModelLimits, config_from_dict
from .models.fit import check_tensors_fit
from .sizing import SizeReport, code_size, size_report  # noqa: F401 - code_size is API (--code)
from .train.options import TrainOptions

# Torch and the model code load with the operations that need them: inspect, size, verify,
# export and export_loader run on the format core and numpy alone (tests/test_fast_paths.py).
if TYPE_CHECKING:
    import torch

    from .train.loop import Callback, TrainResult


def pack(checkpoint: str | os.PathLike, out: str | os.PathLike, codec: str = "auto",
         level: int | None = None, budget: int | None = None, code_bytes: int = 0,
         limits: Limits = DEFAULT_LIMITS, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
         progress: Progress | None = None) -> int:
    """Pack a ticketpack checkpoint into an artifact; returns the artifact's bytes.

    ``progress`` receives an event after each tensor (artifact.encode_artifact)."""
    from .train.checkpoint import checkpoint_ticket
    from .format.container import write_artifact

    check_writer(out, codec, level, {"checkpoint": checkpoint})
    ticket, creation = checkpoint_ticket(checkpoint, codec, level, limits, model_limits)
    return write_artifact(ticket, out, codec=codec, level=level, budget=budget,
                          code_bytes=code_bytes, creation=creation, progress=progress)


def train(options: TrainOptions, progress: Callback | None = None, limits: Limits = DEFAULT_LIMITS,
          model_limits: ModelLimits = DEFAULT_MODEL_LIMITS, given: Iterable[str] | None = None) -> TrainResult:
    """Train a supermask GPT (ticketpack.train.loop); write the checkpoint and log; return the figures.

    ``progress`` receives every training event (start / step / eval / final) on rank 0;
    ``limits`` caps a resumed checkpoint's tensors, ``model_limits`` the model config;
    ``given``: the options set explicitly (a resume refuses one its checkpoint saved otherwise)."""
    from .train.loop import train as run_training

    return run_training(options, progress, limits=limits, model_limits=model_limits, given=given)


def pack_ternary(weights: str | os.PathLike, out: str | os.PathLike, codec: str = "auto",
                 level: int | None = None, budget: int | None = None, code_bytes: int = 0,
                 limits: Limits = DEFAULT_LIMITS, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
                 round_gamma: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Pack externally trained ternary weights (a safetensors file) into an artifact; returns a
    summary (bytes, ternary and plain tensor counts, the largest relative change of a gamma
    that ``round_gamma`` stored as the nearest fp16). ``progress`` receives an event per tensor.

    The file is checked with the artifact reader's rules before anything is read or written
    (``interop.ternary.read_safetensors``): what is written, ``verify`` accepts."""
    from .format.container import write_artifact
    from .format.tensors import TernaryTensor
    from .interop.ternary import read_safetensors, ticket_from_ternary

    check_writer(out, codec, level, {"weights": weights})
    state, config = read_safetensors(weights, limits, model_limits)
    ticket = ticket_from_ternary(state, config, os.path.basename(os.fspath(weights)), round_gamma)
    written = write_artifact(ticket, out, codec=codec, level=level, budget=budget, code_bytes=code_bytes,
                             creation={"ternary": os.path.basename(os.fspath(weights)), "codec": codec},
                             progress=progress)
    ternary = sum(isinstance(t, TernaryTensor) for t in ticket.tensors)
    return {"out": os.fspath(out), "bytes": written, "code_bytes": code_bytes, "ternary": ternary,
            "plain": len(ticket.tensors) - ternary, **ticket.provenance["ternary"]}


def import_pg(artifact: str | os.PathLike, out: str | os.PathLike, config: str | os.PathLike | None = None,
              codec: str = "auto", level: int | None = None, budget: int | None = None, code_bytes: int = 0,
              limits: Limits = DEFAULT_LIMITS, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
              progress: Progress | None = None) -> dict[str, Any]:
    """Convert a parameter-golf lottery-ticket artifact (``config``: its ARCH.json) into a .tpk
    with the same weights; returns a summary (bytes, seed, rng, masks, connections, density).
    ``progress`` receives an event after each tensor written."""
    import dataclasses

    from .interop import pg_import
    from .format.container import write_artifact
    from .format.tensors import MaskedTensor, nonzero_share

    check_writer(out, codec, level, {"artifact": artifact, "config": config})
    arch = pg_import.load_arch(config) if config is not None else None
    pg_limits = dataclasses.replace(pg_import.DEFAULT_PG_LIMITS, max_total_elements=limits.max_total_elements)
    ticket = pg_import.import_pg(artifact, arch, pg_limits, model_limits)
    written = write_artifact(ticket, out, codec=codec, level=level, budget=budget, code_bytes=code_bytes,
                             creation={"command": "import-pg", "codec": codec, "level": level},
                             progress=progress)
    masked = [t for t in ticket.tensors if isinstance(t, MaskedTensor)]
    density, total = nonzero_share(t.levels for t in masked)
    return {"out": os.fspath(out), "bytes": written, "code_bytes": code_bytes, "seed": ticket.seed,
            "rng": ticket.rng, "masks": len(masked), "connections": total, "density": density,
            "scales": len(ticket.tensors) - len(masked),
            "tokenizer": "byte-level" if ticket.config["vocab_size"] == 256 else "sentencepiece"}


def check_writer(out: str | os.PathLike, codec: str, level: int | None,
                 inputs: dict[str, str | os.PathLike | None]) -> None:
    """What a writing command checks before any work: the output path is writable and none of
    its inputs, the codec and level valid (UsageError)."""
    from .atomic import check_output_path, refuse_input_overwrite
    from .format.constants import WRITE_CODECS
    from .format.sections import check_write_codec

    check_output_path(out)
    refuse_input_overwrite({"output": out}, dict(inputs))
    check_write_codec(codec, level, WRITE_CODECS)


def size(artifact: str | os.PathLike, budget: int | None = None, code_bytes: int = 0,
         limits: Limits = DEFAULT_LIMITS) -> SizeReport:
    """The size breakdown of an artifact against an optional budget."""
    return size_report(parse_artifact(read_artifact_bytes(artifact, limits), limits), budget,
                       code_bytes)


def inspect(artifact: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> dict:
    """The artifact's header (validated, checksum checked), as a dict."""
    info = parse_artifact(read_artifact_bytes(artifact, limits), limits)
    return {"file_bytes": info.file_bytes, **info.header}


def verify(artifact: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
           model_limits: ModelLimits = DEFAULT_MODEL_LIMITS, progress: Progress | None = None,
           model: bool = True) -> dict:
    """Check format, checksums, config and the regenerated-weight and model digests, and (with
    ``model``) that the tensors are those the config's model holds, so that load-and-eval
    accepts them; raises on any failure. ``model=False`` checks the file alone (an artifact of
    tensors that no config describes: conformance files, tensors for a skeleton of one's own).
    Runs on the format core and numpy: torch loads only for an rng or arch that needs it."""
    start = time.perf_counter()
    ticket, weights, digests, version = checked_arrays(artifact, limits, model_limits, progress)
    if model:
        try:
            check_tensors_fit(ticket.config, {k: v.shape for k, v in weights.items()}, model_limits)
        except HeaderError as exc:  # the file itself is sound: say so, and how to check only that
            raise HeaderError(f"{exc} (the file itself is sound; verify --format-only checks only "
                              f"the file)") from None
    return {"ok": True, "format_version": version, "tensors": len(ticket.tensors),
            "connections": ticket.connections(), "model_checked": model, **digests,
            "seconds": round(time.perf_counter() - start, 3)}


def check_config(config: dict, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> None:
    """An artifact's config: its architecture record valid and the model it implies within
    bounds (HeaderError; models/records.py, torch-free but for a transformers record). For the
    built-in GPT, keys outside the schema are left to the model builder: format-1 artifacts made
    by hand or by pack-ternary hold free-form configs."""
    from .models.records import check_config as check_record

    check_record(config, model_limits)


def load_verified(artifact: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                  model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
                  progress: Progress | None = None) -> tuple[Ticket, dict, str]:
    """Load an artifact and regenerate its weights on the CPU in float32, verified by hash.

    The config is checked first (``check_config``). Returns the ticket, its effective state
    dict and the verified weights hash. ``progress`` receives an event after each decoded tensor.
    """
    ticket, state, digests, _ = load_checked(artifact, limits, model_limits, progress)
    return ticket, state, digests["weights_sha256"]


def load_checked(artifact: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                 model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
                 progress: Progress | None = None) -> tuple[Ticket, dict, dict, int]:
    """``load_verified`` with both digests: (ticket, torch state dict, {"weights_sha256",
    "model_sha256"} as recomputed and checked, format version)."""
    from .artifact import as_state_dict

    ticket, weights, digests, version = checked_arrays(artifact, limits, model_limits, progress)
    return ticket, as_state_dict(weights), digests, version


def checked_arrays(artifact: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                   model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
                   progress: Progress | None = None) -> tuple[Ticket, dict[str, np.ndarray], dict, int]:
    """Parse, check the config, decode and check both digests: (ticket, effective float32
    numpy arrays, digests, format version)."""
    info = parse_artifact(read_artifact_bytes(artifact, limits), limits)
    check_config(info.header["config"], model_limits)
    _load_stream(info)
    ticket = decode_artifact(info, progress)
    weights, digests = check_digests(ticket, info.header, info.version)
    return ticket, weights, digests, info.version


def _load_stream(info: ArtifactInfo) -> None:
    """Imported parameter-golf tickets draw their frozen weights from torch's MT19937: load
    the module that registers that stream (and torch) only for them."""
    if str(info.header.get("rng", "")).startswith(PG_RNG_PREFIX):
        from .interop import pg_import  # noqa: F401 - registers the stream


def build_model(ticket: Ticket, state: dict[str, torch.Tensor], device: str,
                model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> torch.nn.Module:
    """The dense model the artifact records, holding the verified effective weights, as a module
    whose forward maps token ids to float32 logits (models.registry.rebuilt_model)."""
    from .models.registry import rebuilt_model
    from .ticket import model_from_ticket

    dev = resolve_device(device)
    if "arch" not in ticket.config:  # the built-in GPT
        return model_from_ticket(ticket, dev, state, model_limits)
    return rebuilt_model(ticket.config, state, model_limits).to(dev)


def resolve_device(device: str) -> str:
    """auto -> cuda when available, else cpu; cuda without a GPU is a usage error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device: cuda requested but no CUDA device is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise UsageError(f"device: got {device!r}, expected auto, cpu or cuda")
    return device


def load_and_eval(artifact: str | os.PathLike, data: list[str], *, device: str = "auto",
                  seq_len: int | None = None, batch_size: int = 8, stride: int | None = None,
                  max_bytes: int | None = None, tokenizer: str | None = None,
                  split: str = "all", precision: str = "auto", sparse_kernels: str = "auto",
                  limits: Limits = DEFAULT_LIMITS, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Rebuild the model from the artifact alone and score it on text or token shards.

    ``seq_len`` None: the artifact's recorded evaluation context, else 256; the result says
    which (``seq_len_source``: option, artifact or default).
    """
    from .text.corpus import check_data_paths, load_tokens, split_train_val
    from .eval.evaluate import evaluate
    from .text.tokenizer import load_tokenizer

    check_eval_options(seq_len=seq_len, batch_size=batch_size, stride=stride, max_bytes=max_bytes,
                       split=split, precision=precision, sparse_kernels=sparse_kernels)
    dev = resolve_device(device)
    check_data_paths(data)  # a wrong path or tokenizer is refused before the artifact is loaded
    tok = load_tokenizer(tokenizer)
    t0 = time.perf_counter()
    ticket, state, digests, _ = load_checked(artifact, limits, model_limits, progress)
    model = build_model(ticket, state, dev, model_limits)
    sparse_layers = _maybe_sparsify(model, ticket, dev, sparse_kernels)
    load_seconds = time.perf_counter() - t0
    seq_len, seq_len_source = resolve_seq_len(seq_len, ticket.eval)
    checked_tokenizer(ticket, tok, tokenizer)
    if split == "all":  # max_bytes bounds what is read, decompressed and tokenised
        stream = load_tokens(data, tok, max_bytes=max_bytes)
    else:  # the held-out split is the tail of the whole data: read it all, then cut
        stream = split_train_val(load_tokens(data, tok))[1]
        if max_bytes is not None:
            stream = truncate_bytes(stream, max_bytes)
    if len(stream) < 2:
        raise UsageError("data: fewer than 2 tokens to score")
    bf16 = {"auto": dev.startswith("cuda"), "bf16": True, "fp32": False}[precision]
    if sparse_layers and not bf16:
        raise UsageError("precision: 2:4 sparse kernels run in bf16; use --precision bf16 or auto")
    result = evaluate(model, stream, seq_len=seq_len, batch_size=batch_size, device=dev,
                      stride=stride, autocast_bf16=bf16)
    out = result.to_dict()
    if not math.isfinite(out["val_loss"]):  # finite weights can still overflow in the forward pass
        raise ArtifactError(f"load-and-eval: the model's loss is {out['val_loss']}, expected a finite "
                            f"number (the artifact's weights or config make its outputs overflow)")
    if stride is not None:  # sliding-window scores are not comparable with window scores
        out["val_bpb_sliding"] = out["val_bpb"]
    out.update({"precision": "bf16" if bf16 else "fp32", "load_seconds": round(load_seconds, 4),
                "sparse_2to4_layers": len(sparse_layers), "seq_len_source": seq_len_source,
                **digests})
    return out


def check_eval_options(*, seq_len: int | None, batch_size: int, stride: int | None, max_bytes: int | None,
                       split: str, precision: str, sparse_kernels: str) -> None:
    """load-and-eval's options, refused (UsageError) before the artifact or data is read."""
    from .format.eval_context import MAX_SEQ_LEN
    from .train.options import MAX_BATCH

    for name, value, low, high in (("seq-len", seq_len, 1, MAX_SEQ_LEN), ("batch-size", batch_size, 1, MAX_BATCH),
                                   ("stride", stride, 1, MAX_SEQ_LEN), ("max-bytes", max_bytes, 1, 2**62)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise UsageError(f"{name}: got {str(value)[:40]}, expected an integer {low}..{high}")
    if stride is not None and seq_len is not None and stride > seq_len:
        raise UsageError(f"stride: got {stride}, expected at most --seq-len ({seq_len})")
    for name, value, allowed in (("split", split, ("all", "val")), ("precision", precision, ("auto", "fp32", "bf16")),
                                 ("sparse-kernels", sparse_kernels, ("auto", "on", "off"))):
        if value not in allowed:
            raise UsageError(f"{name}: got {value!r}, expected {', '.join(allowed)}")


def checked_tokenizer(ticket: Ticket, tok, tokenizer: str | None):
    """``tok`` (loaded from ``tokenizer``), checked against the artifact's record and vocabulary."""
    check_tokenizer(tok.identity(), ticket.eval, tokenizer)
    vocab = config_vocab_size(ticket.config)
    if vocab is not None and tok.vocab_size > vocab:
        raise UsageError(f"tokenizer: vocabulary {tok.vocab_size} exceeds the model's {vocab}")
    return tok


def config_vocab_size(config: dict) -> int | None:
    """The vocabulary an artifact's model has (None when its record does not say)."""
    from .models.registry import architecture

    return architecture(config).vocab_size(config)


def _maybe_sparsify(model, ticket: Ticket, dev: str, mode: str) -> list[str]:
    """auto: 2:4 kernels for 2:4 layers on CUDA; on: required; off: dense everywhere."""
    from .models.gpt_model import GPT as GPTModule
    from .nn.sparse import sparsify_two_four, two_four_names

    if mode not in ("auto", "on", "off"):
        raise UsageError(f"sparse-kernels: got {mode!r}, expected auto, on or off")
    names = two_four_names(ticket)
    if names and not isinstance(model, GPTModule):  # the kernels swap the built-in GPT's layers
        if mode == "on":
            raise UsageError("sparse-kernels: on is for the built-in GPT; this artifact records another architecture")
        return []
    if mode == "off" or not names or (mode == "auto" and not dev.startswith("cuda")):
        return []
    return sparsify_two_four(model, names)


def truncate_bytes(stream, max_bytes: int):
    """The longest prefix of a token stream whose tokens account for at most ``max_bytes``."""
    if max_bytes < 1:
        raise UsageError(f"max-bytes: got {max_bytes}, expected a positive byte count")
    return stream[:int(np.searchsorted(np.cumsum(stream.byte_counts), max_bytes, side="right"))]


def sample(artifact: str | os.PathLike, prompt: str, *, tokens: int = 200,
           temperature: float = 0.8, top_k: int | None = None, seed: int = 0,
           device: str = "auto", tokenizer: str | None = None,
           context: int | None = None, limits: Limits = DEFAULT_LIMITS,
           model_limits: ModelLimits = DEFAULT_MODEL_LIMITS,
           progress: Progress | None = None) -> dict[str, Any]:
    """Text the packed model writes after ``prompt``: ``{"text", "tokens" (generated),
    "prompt_tokens", "context", "context_source"}``.

    ``context`` None: the artifact's recorded sequence length, else 256 (``context_source``
    says which: option, artifact or default).
    """
    from .eval.generate import check_prompt, check_sampling, generate
    from .text.tokenizer import load_tokenizer

    check_sampling(tokens=tokens, temperature=temperature, top_k=top_k, seed=seed,
                   context=1 if context is None else context)
    check_prompt(prompt)
    device = resolve_device(device)
    tok = load_tokenizer(tokenizer)
    ticket, state, _ = load_verified(artifact, limits, model_limits, progress)
    context, source = resolve_seq_len(context, ticket.eval)
    checked_tokenizer(ticket, tok, tokenizer)
    model = build_model(ticket, state, device, model_limits)
    ids = tok.encode(prompt)
    out = generate(model, ids, tokens=tokens, temperature=temperature, top_k=top_k,
                   seed=seed, context=context)
    return {"text": tok.decode(out), "tokens": len(out), "prompt_tokens": len(ids), "context": context,
            "context_source": source}


SAFETENSORS_RESERVED = "__metadata__"  # the header key of a safetensors file's metadata


def export(artifact: str | os.PathLike, out: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
           model_limits: ModelLimits = DEFAULT_MODEL_LIMITS, progress: Progress | None = None) -> dict:
    """Write the regenerated effective dense weights (+ config in metadata) as safetensors."""
    from safetensors.numpy import save as st_save

    from .atomic import atomic_write_bytes, check_output_path, refuse_input_overwrite

    check_output_path(out)
    refuse_input_overwrite({"output": out}, {"artifact": artifact})
    ticket, weights, digests, _ = checked_arrays(artifact, limits, model_limits, progress)
    if SAFETENSORS_RESERVED in weights:  # it would collide with the file's metadata entry
        raise UsageError(f"export: tensor name {SAFETENSORS_RESERVED!r} is reserved by the safetensors "
                         f"format; this artifact cannot be exported; nothing written")
    sha = digests["weights_sha256"]
    metadata = {"format": "ticketpack-export", "config": json.dumps(ticket.config),
                "seed": str(ticket.seed), "rng": ticket.rng, "weights_sha256": sha}
    data = st_save({k: np.ascontiguousarray(v) for k, v in weights.items()}, metadata=metadata)
    atomic_write_bytes(out, canonical_safetensors(data))
    return {"tensors": len(weights), "parameters": int(sum(v.size for v in weights.values())),
            "weights_sha256": sha}


def export_hf(artifact: str | os.PathLike, out_dir: str | os.PathLike, *, tokenizer: str | None = None,
              limits: Limits = DEFAULT_LIMITS, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> dict:
    """Write a folder transformers' ``AutoModelForCausalLM.from_pretrained`` loads, for an artifact
    of arch transformers: config.json, model.safetensors (the verified effective weights,
    adapters folded in), generation_config.json, and with ``tokenizer`` (the SentencePiece
    .model the artifact records, checked against it) as tokenizer.model. The folder appears
    whole or not at all."""
    from .models import hf
    from .models.registry import architecture, fold_adapters
    from .text.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer) if tokenizer is not None else None  # a wrong path: before loading
    ticket, state, sha = load_verified(artifact, limits, model_limits)
    if architecture(ticket.config) is not hf:
        raise UsageError(f"export --hf: the artifact records arch {ticket.config.get('arch', 'gpt')!r}, "
                         f"expected 'transformers'")
    if tok is not None:
        checked_tokenizer(ticket, tok, tokenizer)  # the one the artifact was trained with
    files = hf.write_folder(ticket.config, fold_adapters(state), out_dir, sha, tokenizer, model_limits)
    return {"out": os.fspath(out_dir), "tensors": len(state), "weights_sha256": sha, "files": files}


def canonical_safetensors(data: bytes) -> bytes:
    """``data`` (a safetensors file) with its header's keys sorted, so the same tensors and
    metadata give the same bytes on every run (the writer emits its metadata map in hash order).
    The tensor bytes and their offsets are unchanged; the header is padded with spaces to a
    multiple of 8 bytes, as the format asks."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


LOADER_FILE = "loader/tpk_loader.py"  # package data, never imported by ticketpack itself
LOADER_INITS_LINE = re.compile(r"^INITS = .*$", re.M)  # the one line export fills in
# the compact form's raw LZMA2 filter chain, written into that file too (lzma.FILTER_LZMA2,
# PRESET 9 | PRESET_EXTREME; numbers, so importing api needs no lzma)
LOADER_LZMA = [{"id": 33, "preset": 9 | 0x80000000}]


def loader_init_table() -> dict[str, tuple[str, float, int, int]]:
    """The format's init rules as the standalone loader reads them: rule -> (family, numerator,
    a, b), values of ``family`` under the bound sqrt(numerator / (a * fan_in + b * fan_out));
    (a, b) = (0, 0) for a rule whose std is the tensor entry's ``init_std``."""
    from .format.constants import FAN_RULES, INIT_FAMILIES, INIT_RULES

    return {rule: (row.family, INIT_FAMILIES[row.family], *FAN_RULES.get(row.fan, (0, 0)))
            for rule, row in INIT_RULES.items()}


def loader_source(compact: bool = False) -> bytes:
    """The standalone loader (one Python file, numpy + zstandard) that reads format 1-3
    artifacts: the packaged file with its ``INITS`` line written from the format's init rules,
    so a new rule needs no edit of the loader. ``compact``: the same source LZMA-compressed in a
    two-line file that runs it (what a byte budget counts, as parameter-golf entrants ship code)."""
    from importlib import resources

    template = resources.files("ticketpack").joinpath(LOADER_FILE).read_text(encoding="utf-8")
    table = json.dumps(loader_init_table(), separators=(",", ":"))  # also a Python literal
    source, count = LOADER_INITS_LINE.subn(f"INITS = {table}", template)
    if count != 1:
        raise TicketpackError(f"export-loader: {LOADER_FILE} has {count} INITS lines, expected one")
    return compact_source(source.encode("utf-8")) if compact else source.encode("utf-8")


def compact_source(source: bytes) -> bytes:
    """``source`` as a self-extracting Python file: raw LZMA2 (preset 9e, deterministic for a
    given liblzma) in base85, whose alphabet needs no escaping inside a bytes literal. The code
    runs in the file's own globals, so ``import`` and ``python file.py`` behave as the source does."""
    import base64
    import lzma

    packed = lzma.compress(source, format=lzma.FORMAT_RAW, filters=LOADER_LZMA)
    return (b'"""ticketpack standalone loader (compact form of export-loader): import it or run it."""\n'
            b"import base64,lzma;exec(lzma.decompress(base64.b85decode(b'" + base64.b85encode(packed)
            + b"'),lzma.FORMAT_RAW,filters=" + repr(LOADER_LZMA).encode() + b"))\n")



def export_loader(out: str | os.PathLike, compact: bool = False) -> dict:
    """Write the standalone loader (``compact``: its self-extracting form) to ``out`` atomically;
    returns its bytes and SHA-256."""
    import hashlib

    from .atomic import atomic_write_bytes

    source = loader_source(compact)
    atomic_write_bytes(out, source)
    return {"path": os.fspath(out), "bytes": len(source),
            "sha256": hashlib.sha256(source).hexdigest()}


def _writable_folder(folder: str | os.PathLike) -> None:
    """Create ``folder`` if needed and check this process may write in it (OutputWriteError)."""
    from .errors import OutputWriteError

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"out-dir {os.fspath(folder)!r}: cannot create ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputWriteError(f"out-dir {os.fspath(folder)!r}: cannot write (permission denied)")


def quickstart(out_dir: str | os.PathLike = "runs/quickstart", minutes: float | None = None,
               say: Any = None, progress: Any = None) -> dict[str, Any]:
    """README's main job: cut the bundled corpus into training and held-out text, train a BPE
    tokenizer and a ticket on the training text, pack, size and load-and-eval on the held-out text.

    ``say(line)`` receives one human-readable line per stage; ``progress`` is the trainer
    callback (e.g. a progress display), also given pack's and load's events. Returns the
    figures as a dict.
    """
    from .text.quickstart import prepare_quickstart_data
    from .train.options import QUICKSTART_MINUTES, quickstart_options

    from .train.options import MAX_MINUTES, check_number

    say = say or (lambda line: None)
    minutes = QUICKSTART_MINUTES if minutes is None else minutes
    check_number("minutes", minutes, float, low=0, open_low=True, high=MAX_MINUTES)  # before any work
    _writable_folder(out_dir)
    ckpt, artifact = os.path.join(out_dir, "model.safetensors"), os.path.join(out_dir, "model.tpk")
    start = time.perf_counter()
    data = prepare_quickstart_data(out_dir)
    say(f"data: the bundled Shakespeare cut into {data.train} ({data.train_bytes:,} bytes) and the "
        f"held-out {data.val} ({data.val_bytes:,} bytes); {data.tokenizer}: a {data.vocab_size:,}-piece "
        f"BPE trained on the training text")
    opts = quickstart_options(ckpt, data, log=os.path.join(out_dir, "train.jsonl"), max_minutes=minutes)
    say(f"training for {minutes:g} minutes (log: {opts.log}) ...")
    result = train(opts, progress)
    say(f"trained {result.steps} steps, {result.tokens:,} tokens in {result.seconds:.0f} s: "
        f"density {result.density:.3f}, {result.connections:,} connections")
    nbytes = pack(ckpt, artifact, progress=progress)
    say(f"packed {artifact}: {nbytes:,} bytes ({8 * nbytes / result.connections:.3f} bits per connection)")
    # scored at the sequence length the artifact records (the training one)
    ev = load_and_eval(artifact, [data.val], device="cpu", tokenizer=data.tokenizer,
                       batch_size=opts.eval_batch_size, progress=progress)
    # The trained model in memory against the weights regenerated from the artifact's bytes.
    from .ticket import ticket_from_model, weights_sha256

    trained_sha = weights_sha256(ticket_from_model(result.model, opts.seed, result.config)
                                 .effective_state_dict())
    if trained_sha != ev["weights_sha256"]:
        raise VerificationError(f"weights_sha256: the artifact regenerates {ev['weights_sha256'][:16]}..., "
                                f"the trained model has {trained_sha[:16]}...")
    say(f"load-and-eval: val_bpb {ev['val_bpb']:.4f} on {ev['bytes']:,} held-out bytes (xz -9 needs 2.48); "
        f"the artifact regenerates the trained weights bit-exactly (SHA-256 {trained_sha[:16]}...)")
    return {"val_bpb": ev["val_bpb"], "seq_len": ev["seq_len"], "weights_sha256": trained_sha,
            "artifact": artifact, "tokenizer": data.tokenizer, "val_data": data.val, "val_bytes": ev["bytes"],
            "artifact_bytes": nbytes, "connections": result.connections, "steps": result.steps,
            "train_seconds": round(result.seconds, 1),
            "total_seconds": round(time.perf_counter() - start, 1)}
