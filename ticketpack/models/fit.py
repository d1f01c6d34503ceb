"""Which tensors a model config implies, torch-free: the names and shapes the built-in GPT's
dense twin holds (``models.gpt_model.GPT(config, masked=False)``), so ``verify`` can promise that
load-and-eval accepts an artifact's tensors without building the model.

``gpt_tensor_shapes`` mirrors the modules of models/gpt_model.py and nn/layers.py (tests/test_model_fit.py
compares it with the torch model's parameters over many configs). A config whose ``arch`` is
``transformers`` (docs/FORMAT.md section 2.2) is a transformers model: its names and shapes come
from the model that config builds, on torch's meta device (imported only then), with each
layer's adapters folded into its weight as loading folds them. An ``external`` record's tensors
fill a module of the user's own: there is no model to check them against.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import HeaderError
from .gpt_config import DEFAULT_MODEL_LIMITS, GPTConfig, ModelLimits, config_from_dict, gpt_keys

Shape = tuple[int, ...]
GPT_ARCH = "gpt"  # the built-in model: ``arch`` absent or this
EXTERNAL_ARCH = "external"  # tensors only: no model to check them against
TRANSFORMERS_ARCH = "transformers"  # a Hugging Face built-in causal LM


def gpt_tensor_shapes(c: GPTConfig) -> dict[str, Shape]:
    """Name -> shape of every parameter of the built-in GPT's dense twin (effective weights,
    adapters, norms and scales), as its state dict names them."""
    C, V, kv, hidden = c.model_dim, c.vocab_size, c.kv_dim, c.mlp_hidden
    shapes: dict[str, Shape] = {}

    def weight(path: str, out_f: int, in_f: int) -> None:  # a linear or embedding table
        shapes[f"{path}.weight"] = (out_f, in_f)
        if c.adapter_rank:
            shapes[f"{path}.adapter_a"] = (c.adapter_rank, in_f)
            shapes[f"{path}.adapter_b"] = (out_f, c.adapter_rank)

    def vector(name: str, n: int, present: bool) -> None:
        if present:
            shapes[name] = (n,)

    weight("tok_emb", V, C)
    vector("emb_norm.weight", C, c.embed_norm and c.rmsnorm_weight)
    for i in range(c.num_layers):
        b = f"blocks.{i}"
        vector(f"{b}.attn_norm.weight", C, c.rmsnorm_weight)
        for name, out_f in (("c_q", C), ("c_k", kv), ("c_v", kv), ("proj", C)):
            weight(f"{b}.attn.{name}", out_f, C)
        vector(f"{b}.attn.head_scale", c.num_heads, c.head_scales)
        vector(f"{b}.mlp_norm.weight", C, c.rmsnorm_weight)
        weight(f"{b}.mlp.fc", hidden, C)
        weight(f"{b}.mlp.proj", C, hidden)
        vector(f"{b}.attn_scale", C, c.block_scales)
        vector(f"{b}.mlp_scale", C, c.block_scales)
    vector("final_norm.weight", C, c.rmsnorm_weight)
    vector("pre_logit_scale", C, c.pre_logit_scale)
    if not c.tie_embeddings:
        weight("lm_head", V, C)
    return shapes


def check_shapes_fit(expected: Mapping[str, Shape], found: Mapping[str, Shape]) -> None:
    """Every expected tensor and nothing else, each with its expected shape (HeaderError: the
    artifact's config and tensors are its content). The message names what differs."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise HeaderError(f"config: the artifact's tensors do not fit the model its config describes "
                          f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for name, shape in found.items():
        if tuple(expected[name]) != tuple(shape):
            raise HeaderError(f"{name}: shape {tuple(shape)} in the artifact, "
                              f"its config's model expects {tuple(expected[name])}")


def model_arch(config: Any) -> str:
    """The architecture a config records: ``arch`` (a string), ``gpt`` when absent."""
    arch = config.get("arch", GPT_ARCH) if isinstance(config, dict) else GPT_ARCH
    if not isinstance(arch, str):
        raise HeaderError(f"config: arch {arch!r}, expected a string")
    return arch


def expected_shapes(config: dict, model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> dict[str, Shape] | None:
    """The tensors (name -> shape) the model ``config`` describes must hold, checked as the
    loader checks the config (HeaderError naming the key); None for an ``external`` record,
    whose tensors fill a module of the user's own (any names and shapes). A transformers
    record's tensors are its model's parameters (tied ones once, under their first name)."""
    arch = model_arch(config)
    if arch == GPT_ARCH:
        # exactly as the loader reads it (models/gpt.py), so both accept the same configs
        gpt = config_from_dict(gpt_keys(config), model_limits, error=HeaderError, where="config")
        return gpt_tensor_shapes(gpt)
    if arch == EXTERNAL_ARCH:
        return None
    if arch == TRANSFORMERS_ARCH:
        from .registry import meta_model  # torch and transformers load only here

        return {name: tuple(p.shape) for name, p in meta_model(config, model_limits).named_parameters()}
    raise HeaderError(f"config: arch {arch[:60]!r}, expected one of {GPT_ARCH}, {TRANSFORMERS_ARCH}, "
                      f"{EXTERNAL_ARCH}")


def fold_adapter_shapes(shapes: Mapping[str, Shape]) -> dict[str, Shape]:
    """``shapes`` with each layer's adapters folded into its weight (``W + B @ A``, as loading
    a non-GPT architecture folds them): the pair must fit the weight (A: r x in, B: out x r)."""
    out = dict(shapes)
    for name in [n for n in shapes if n.endswith(".adapter_a")]:
        layer = name[: -len(".adapter_a")]
        a, b, w = tuple(out.pop(name)), out.pop(f"{layer}.adapter_b", None), out.get(f"{layer}.weight")
        if b is None or w is None or len(a) != 2 or len(tuple(b)) != 2 or len(tuple(w)) != 2 \
                or b[1] != a[0] or (b[0], a[1]) != tuple(w):
            raise HeaderError(f"{layer}: adapters {a} and {None if b is None else tuple(b)} do not fit "
                              f"its weight {None if w is None else tuple(w)}")
    return out


def check_tensors_fit(config: dict, shapes: Mapping[str, Shape],
                      model_limits: ModelLimits = DEFAULT_MODEL_LIMITS) -> None:
    """Refuse (HeaderError) tensors that the model ``config`` describes would not load."""
    expected = expected_shapes(config, model_limits)
    if expected is None:
        return
    check_shapes_fit(expected, fold_adapter_shapes(shapes) if model_arch(config) != GPT_ARCH else shapes)
