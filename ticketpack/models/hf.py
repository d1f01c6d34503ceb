"""Architecture ``transformers``: a Hugging Face built-in causal LM, rebuilt from its config.

Record: ``{"arch": "transformers", "model_type": <MODEL_TYPES>, "hf_config": {<the config dict>}}``.
Only transformers' own classes are ever built (``AutoConfig.for_model`` +
``AutoModelForCausalLM.from_config``, remote code off); keys that make transformers fetch or
run code (``auto_map``, quantization back ends, attention kernels from the Hub) are refused.
The parameter and activation bounds are checked on the model built on the meta device, after
the layer count is bounded (layers are built one by one, even on meta), before anything is
allocated. transformers is an optional dependency: ``pip install 'ticketpack[hf]'``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import HeaderError, OutputWriteError, TicketpackError, UsageError
from .gpt_config import HF_MODEL_TYPES, ModelLimits

NAME = "transformers"
MODEL_TYPES = HF_MODEL_TYPES  # built-in causal LMs whose layers supermask covers
RECORD_KEYS = ("arch", "model_type", "hf_config")
# Keys that would make transformers import, download or run code beyond the built-in model.
CODE_KEYS = ("auto_map", "trust_remote_code", "custom_pipelines", "quantization_config",
             "attn_implementation", "_attn_implementation", "experts_implementation", "use_kernels",
             "kernel_config", "_name_or_path")
LAYER_KEYS = ("num_hidden_layers", "n_layer")
MAX_LAYERS = 1024  # the built-in GPT's bound
MAX_INT = 2**31  # any integer of a config: bounds what the meta model may imply
MAX_KEYS = 1024
MAX_DEPTH = 4
# what a record drops from transformers' config dict: where it came from, not what it is
DROPPED_KEYS = ("_name_or_path", "transformers_version", "dtype", "torch_dtype")
EXTRA = "hf"  # pip install 'ticketpack[hf]'
TOKENIZER_FILE = "tokenizer.model"  # the SentencePiece model in an exported folder


def require_transformers():
    """The transformers module, or a one-line UsageError naming the extra to install."""
    try:
        import transformers
    except ImportError:
        raise UsageError(f"transformers is not installed: this needs pip install 'ticketpack[{EXTRA}]'") from None
    return transformers


@contextlib.contextmanager
def _quiet(transformers) -> Iterator[None]:
    """transformers' warnings off while it builds (the library never prints)."""
    logging = transformers.utils.logging
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:200] + "..."


# ---------------------------------------------------------------- the record

def _walk(value: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise HeaderError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if len(value) > MAX_KEYS:
            raise HeaderError(f"{where}: {len(value):,} keys, the bound is {MAX_KEYS}")
        for key, item in value.items():
            if key in CODE_KEYS:
                raise HeaderError(f"{where}.{key}: refused (it would let the config load or run code)")
            _walk(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_KEYS:
            raise HeaderError(f"{where}: a list of {len(value):,} items, the bound is {MAX_KEYS}")
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise HeaderError(f"{where}: {value}, expected at most {MAX_INT:,} in magnitude")


def check_record(config: dict) -> tuple[str, dict]:
    """(model_type, hf_config) of a record, checked without transformers (HeaderError)."""
    extra = sorted(set(config) - set(RECORD_KEYS), key=str)
    if extra:
        raise HeaderError(f"config: unknown key {str(extra[0])[:60]!r}, expected {', '.join(RECORD_KEYS)}")
    model_type, hf_config = config.get("model_type"), config.get("hf_config")
    if model_type not in MODEL_TYPES:
        raise HeaderError(f"config.model_type: {str(model_type)[:60]!r}, expected one of {', '.join(MODEL_TYPES)}")
    if not isinstance(hf_config, dict):
        raise HeaderError("config.hf_config: missing or not a JSON object")
    _walk(hf_config, "config.hf_config")
    if hf_config.get("model_type", model_type) != model_type:
        raise HeaderError(f"config.hf_config.model_type: {str(hf_config['model_type'])[:60]!r}, "
                          f"the record says {model_type!r}")
    for key in LAYER_KEYS:
        layers = hf_config.get(key)
        if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int)
                                   or not 1 <= layers <= MAX_LAYERS):
            raise HeaderError(f"config.hf_config.{key}: {str(layers)[:40]}, expected an integer in 1..{MAX_LAYERS}")
    return model_type, {k: v for k, v in hf_config.items() if k != "model_type"}


def hf_config_object(config: dict):
    """The transformers config object of a checked record (HeaderError if transformers refuses it)."""
    transformers = require_transformers()
    model_type, kwargs = check_record(config)
    try:
        with _quiet(transformers):
            return transformers.AutoConfig.for_model(model_type, **kwargs)
    except Exception as exc:  # transformers' validation errors have many classes
        raise HeaderError(f"config.hf_config: transformers refuses it ({_one_line(exc)})") from None


def _from_config(hf_cfg) -> nn.Module:
    transformers = require_transformers()
    try:
        with _quiet(transformers):
            return transformers.AutoModelForCausalLM.from_config(hf_cfg, trust_remote_code=False)
    except TicketpackError:
        raise
    except Exception as exc:  # transformers' own validation, whatever its class
        raise HeaderError(f"config.hf_config: transformers cannot build it ({_one_line(exc)})") from None


def activations_per_token(model: nn.Module) -> int:
    """Floats per token a training step keeps, estimated as for the built-in GPT: the output of
    every weight layer, and the logits with their gradient (3 x vocabulary)."""
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            total += m.out_features
        elif isinstance(m, nn.Embedding):
            total += m.embedding_dim
        elif hasattr(m, "nf") and hasattr(m, "nx"):  # transformers' Conv1D
            total += m.nf
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    vocab = getattr(out, "out_features", 0) if out is not None else 0
    return total + 2 * vocab


def check(config: dict, limits: ModelLimits) -> None:
    meta_model(config, limits)


def _sizes(model: nn.Module) -> tuple[int, int]:
    """(parameters and buffers, activations per token) of a model."""
    params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return params, activations_per_token(model)


def _extrapolated_sizes(config: dict) -> tuple[int, int] | None:
    """The sizes of the record's model from the same model with 1 and 2 layers (each layer is
    the same), so a deep hostile record is refused without building its layers, even on meta."""
    hf_config = config["hf_config"]
    key = next((k for k in LAYER_KEYS if k in hf_config), None)
    if key is None:
        return None
    probes = []
    for layers in (1, 2):
        probe = {k: v for k, v in hf_config.items() if k != "layer_types"}  # per-layer lists follow the count
        probe[key] = layers
        with torch.device("meta"):
            probes.append(_sizes(_from_config(hf_config_object({**config, "hf_config": probe}))))
    (p1, a1), (p2, a2) = probes
    extra = hf_config[key] - 1
    return p1 + extra * (p2 - p1), a1 + extra * (a2 - a1)


def _check_sizes(params: int, acts: int, limits: ModelLimits) -> None:
    if params > limits.max_parameters:
        raise HeaderError(f"config: {params:,} parameters, the bound is {limits.max_parameters:,} "
                          f"(raise it with --max-elements or TICKETPACK_MAX_ELEMENTS)")
    if acts > limits.max_activations_per_token:
        raise HeaderError(f"config: {acts:,} activations per token, the bound is "
                          f"{limits.max_activations_per_token:,}")


def meta_model(config: dict, limits: ModelLimits) -> nn.Module:
    """The record's model on the meta device (nothing allocated), within ``limits``."""
    hf_cfg = hf_config_object(config)
    estimate = _extrapolated_sizes(config)
    if estimate is not None:
        _check_sizes(*estimate, limits)
    with torch.device("meta"):
        model = _from_config(hf_cfg)
    _check_sizes(*_sizes(model), limits)
    return model


def new_model(config: dict) -> nn.Module:
    """The record's model, built and initialised by transformers on the default device."""
    return _from_config(hf_config_object(config))


def build(config: dict, state: dict[str, torch.Tensor], limits: ModelLimits) -> nn.Module:
    """The record's model on the CPU in float32, holding ``state``, in eval mode."""
    from ..ticket import check_fits, load_effective

    check_fits(meta_model(config, limits), state)  # names and shapes, before allocating
    model = _from_config(hf_config_object(config)).float()
    load_effective(model, state)
    return model.eval()


def record(model: nn.Module) -> dict[str, Any] | None:
    """The record of a live transformers model of an allowed type (None otherwise)."""
    cfg = getattr(model, "config", None)
    cls = type(model)
    if cfg is None or not cls.__module__.startswith("transformers.models."):
        return None
    if getattr(cfg, "model_type", None) not in MODEL_TYPES or not hasattr(cfg, "to_dict"):
        return None
    return record_of_config(cfg)


def record_of_config(cfg) -> dict[str, Any]:
    """The record of a transformers config object of an allowed type."""
    hf_config = {k: v for k, v in cfg.to_dict().items() if k not in DROPPED_KEYS}
    hf_config = json.loads(json.dumps(hf_config, allow_nan=False))  # plain JSON values only
    out = {"arch": NAME, "model_type": cfg.model_type, "hf_config": hf_config}
    check_record(out)
    return out


def logits(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    return model(input_ids=idx).logits.float()


def vocab_size(config: dict) -> int | None:
    value = config.get("hf_config", {}).get("vocab_size")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# ---------------------------------------------------------------- a transformers folder

def write_folder(config: dict, state: dict[str, torch.Tensor], out_dir: str | os.PathLike, sha: str,
                 tokenizer: str | None, limits: ModelLimits) -> list[str]:
    """config.json, generation_config.json, model.safetensors (``state``; a tied weight once,
    as transformers ties it on loading) and, with ``tokenizer``, the SentencePiece model as
    tokenizer.model; written in a folder beside ``out_dir``, then renamed."""
    from safetensors.torch import save_file

    transformers = require_transformers()
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir):
        raise UsageError(f"export --hf: {out_dir} exists; name a new folder")
    hf_cfg = hf_config_object(config)
    hf_cfg.architectures = [type(meta_model(config, limits)).__name__]
    parent = os.path.dirname(os.path.abspath(out_dir))
    try:
        tmp = tempfile.mkdtemp(prefix=".tpk-export-", dir=parent)
    except OSError as exc:
        raise OutputWriteError(f"export --hf: cannot write in {parent}: {exc.strerror}") from None
    try:
        with _quiet(transformers):
            hf_cfg.save_pretrained(tmp)
            transformers.GenerationConfig.from_model_config(hf_cfg).save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(tmp, "model.safetensors"),
                  metadata={"format": "pt", "weights_sha256": sha})
        if tokenizer is not None:  # the SentencePiece model itself (sentencepiece reads it)
            shutil.copyfile(tokenizer, os.path.join(tmp, TOKENIZER_FILE))
        os.replace(tmp, out_dir)
    except OSError as exc:
        raise OutputWriteError(f"export --hf: cannot write {out_dir}: {exc.strerror}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(os.listdir(out_dir))
