"""Quantised dense baselines: int8 per-row serialisation and ternary (TriLM-style) training.

Two ways a normally trained dense model of the built-in family spends its bytes, so the
bake-off can compare tickets against them at equal bytes:

int8 per row   (the parameter-golf baseline export) every 2-D weight becomes int8 with one
               fp16 scale per row, ``scale = fp16(max|row| / 127)``, ``q = round(w / scale)``;
               every other tensor is stored as fp16. The serialisation below (a JSON header,
               then the raw little-endian tensors in header order) is compressed whole with
               zlib-9 or zstd-19, whichever is smaller, and its length is the model's size.
ternary        quantisation-aware training as in TriLM / Spectra: ``gamma = 1e-5 + mean|W|``
               (per tensor or per row), ``W~ = gamma * round(clip(W / gamma, -1, 1))``, and a
               straight-through gradient to the latent float weights. The trained model is
               packed as ``TernaryTensor``s (trits + fp16 gamma) in a ticketpack artifact, so
               it is sized by the same rules as a ticket.
binary         quantisation-aware training of 1-bit weights (XNOR-Net / BinaryConnect style):
               ``W~ = alpha * sign(W)`` with one scale per output row, ``alpha = mean|W_row|``
               (the scale that minimises ||W - alpha * sign(W)|| for that row; sign(0) = +1),
               straight-through to the latent float weights. Packed as ``TernaryTensor``s
               whose trits are all +-1 and whose gamma is the fp16 per-row alpha: the
               entropy coder then spends ~1 bit per weight (no zeros to code).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .format.compression import compress, decompress
from .format.constants import GAMMA_MODES
from .errors import ConfigError, DecodeError, HeaderError, TruncatedError
from .format.tensors import PlainTensor, TensorEntry, TernaryTensor, Ticket
from .provenance import default_provenance

INT8_MAGIC = b"TPI8"
INT8_PREFIX = struct.Struct("<4sBII")  # magic, codec id, stored JSON bytes, raw payload bytes
INT8_CODECS = {1: "zlib", 2: "zstd"}
INT8_MAX = 127
GAMMA_EPS = 1e-5  # TriLM: gamma = eps + mean|W|
# TriLM QAT computes gamma per tensor or per row; "shard" (imported ternary tickets) is never learned
QAT_GAMMA_MODES = tuple(mode for mode in GAMMA_MODES if mode != "shard")
BINARY_EPS = 1e-8  # alpha of an all-zero row stays positive


# ---------------------------------------------------------------- int8 per row

def quantize_rows_int8(weight: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D weight as (int8 values, fp16 per-row scales); dequantised = q * scale.

    The scale is rounded to fp16 (upwards where needed, so |q| <= 127 without clipping)
    before quantising, so q uses the very scale stored.
    """
    if weight.dim() != 2:
        raise ConfigError(f"int8 weight: {weight.dim()}-D tensor, expected 2-D (rows, cols)")
    w = weight.detach().to("cpu", torch.float32)
    amax = w.abs().amax(dim=1).numpy()  # (rows,)
    scale = (amax / INT8_MAX).astype(np.float16)
    # round the scale up where fp16 rounded it down, so no entry needs more than +-127
    low = scale.astype(np.float32) * INT8_MAX < amax
    scale[low] = np.nextafter(scale[low], np.float16(np.inf))
    scale[scale == 0] = np.finfo(np.float16).smallest_subnormal  # an all-zero row
    q = torch.round(w / torch.from_numpy(scale.astype(np.float32))[:, None]).clamp_(-INT8_MAX, INT8_MAX)
    return q.to(torch.int8).numpy(), scale


def dequantize_rows_int8(q: np.ndarray, scale: np.ndarray) -> torch.Tensor:
    """float32 q * scale, one scale per row."""
    return torch.from_numpy(q.astype(np.float32) * scale.astype(np.float32)[:, None])


def int8_roundtrip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 weights an int8 serialisation of ``state`` gives back (2-D int8, rest fp16)."""
    out = {}
    for name, t in state.items():
        if t.dim() == 2:
            out[name] = dequantize_rows_int8(*quantize_rows_int8(t))
        else:
            out[name] = t.detach().to("cpu", torch.float16).float()
    return out


def encode_int8_state(state: dict[str, torch.Tensor], config: dict, codec: str = "auto") -> bytes:
    """Serialise a state dict as int8 per row (2-D) + fp16 (rest), compressed whole.

    ``codec``: zlib (level 9), zstd (level 19) or auto (the smaller). The JSON header
    holds the model config and each tensor's name, shape and kind, so the bytes alone
    rebuild the model, as a ticket artifact's do.
    """
    if codec not in ("auto", "zlib", "zstd"):
        raise ConfigError(f"codec: {codec!r}, expected auto, zlib or zstd")
    entries, chunks = [], []
    for name, t in state.items():
        if t.dim() == 2:
            q, scale = quantize_rows_int8(t)
            entries.append({"name": name, "shape": list(q.shape), "kind": "int8"})
            chunks += [q.tobytes(), scale.astype("<f2").tobytes()]
        else:
            data = t.detach().to("cpu", torch.float16).numpy().astype("<f2")
            entries.append({"name": name, "shape": list(data.shape), "kind": "f16"})
            chunks.append(data.tobytes())
    header = json.dumps({"config": config, "tensors": entries}, separators=(",", ":")).encode()
    raw = struct.pack("<I", len(header)) + header + b"".join(chunks)
    names = ("zlib", "zstd") if codec == "auto" else (codec,)
    stored, name = min(((compress(raw, c), c) for c in names), key=lambda o: len(o[0]))
    code = {v: k for k, v in INT8_CODECS.items()}[name]
    return INT8_PREFIX.pack(INT8_MAGIC, code, len(stored), len(raw)) + stored


def decode_int8_state(data: bytes, max_raw: int = 2**31) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, float32 state dict) from ``encode_int8_state`` bytes."""
    if len(data) < INT8_PREFIX.size:
        raise TruncatedError(f"int8 state: {len(data)} B, expected at least {INT8_PREFIX.size} B")
    magic, code, stored, raw_len = INT8_PREFIX.unpack_from(data)
    if magic != INT8_MAGIC:
        raise HeaderError(f"int8 state magic: {magic!r}, expected {INT8_MAGIC!r}")
    if code not in INT8_CODECS:
        raise HeaderError(f"int8 state codec: {code}, expected one of {sorted(INT8_CODECS)}")
    if stored != len(data) - INT8_PREFIX.size or raw_len > max_raw:
        raise TruncatedError(f"int8 state: {len(data) - INT8_PREFIX.size} B stored, header "
                             f"declares {stored} B (raw {raw_len} B, cap {max_raw} B)")
    raw = decompress(data[INT8_PREFIX.size:], INT8_CODECS[code], raw_len, "int8 state")
    (hlen,) = struct.unpack_from("<I", raw) if len(raw) >= 4 else (len(raw),)
    if hlen > len(raw) - 4:
        raise TruncatedError(f"int8 state header: {hlen} B declared, {max(0, len(raw) - 4)} B present")
    try:
        header = json.loads(raw[4:4 + hlen])
        config, entries = header["config"], header["tensors"]
        return config, _int8_tensors(entries, memoryview(raw)[4 + hlen:])
    except (ValueError, KeyError, TypeError) as exc:
        raise HeaderError(f"int8 state header: {type(exc).__name__} ({exc}), expected the JSON "
                          f"that encode_int8_state writes") from None


def _int8_tensors(entries: list[dict], body: memoryview) -> dict[str, torch.Tensor]:
    out, pos = {}, 0
    for e in entries:
        shape = tuple(int(d) for d in e["shape"])
        n = int(np.prod(shape))
        need = n + 2 * shape[0] if e["kind"] == "int8" else 2 * n
        if pos + need > len(body):
            raise DecodeError(f"int8 state payload: {len(body)} B, tensor {e['name']!r} needs "
                              f"bytes up to {pos + need}")
        if e["kind"] == "int8":
            q = np.frombuffer(body, np.int8, n, pos).reshape(shape)
            scale = np.frombuffer(body, "<f2", shape[0], pos + n)
            out[e["name"]], pos = dequantize_rows_int8(q, scale), pos + n + 2 * shape[0]
        else:
            vals = np.frombuffer(body, "<f2", n, pos).reshape(shape)
            out[e["name"]], pos = torch.from_numpy(vals.astype(np.float32)), pos + 2 * n
    if pos != len(body):
        raise DecodeError(f"int8 state payload: {len(body)} B, tensors use {pos} B")
    return out


# ---------------------------------------------------------------- ternary (TriLM)

def ternary_gamma(weight: torch.Tensor, mode: str = "tensor") -> torch.Tensor:
    """gamma = 1e-5 + mean|W|: shape () per tensor, (rows, 1) per row."""
    if mode not in QAT_GAMMA_MODES:
        raise ConfigError(f"gamma mode: {mode!r}, expected one of {', '.join(QAT_GAMMA_MODES)}")
    if mode == "tensor":
        return GAMMA_EPS + weight.abs().mean()
    return GAMMA_EPS + weight.abs().mean(dim=1, keepdim=True)


def ternary_trits(weight: torch.Tensor, mode: str = "tensor") -> tuple[torch.Tensor, torch.Tensor]:
    """(trits in {-1, 0, 1} as float, gamma) of a weight; no gradient."""
    with torch.no_grad():
        gamma = ternary_gamma(weight, mode)
        return torch.round(torch.clamp(weight / gamma, -1.0, 1.0)), gamma


def ternarize(weight: torch.Tensor, mode: str = "tensor") -> torch.Tensor:
    """gamma * round(clip(W / gamma, -1, 1)) forward; identity gradient to W (straight-through)."""
    trits, gamma = ternary_trits(weight, mode)
    return weight + (gamma * trits - weight).detach()


class Ternarize(nn.Module):
    """A parametrization: the module's weight is used ternarised, learned in float."""

    def __init__(self, mode: str = "tensor") -> None:
        super().__init__()
        ternary_gamma(torch.ones(1, 1), mode)  # validates the mode
        self.mode = mode

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return ternarize(weight, self.mode)

    def codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(trits, gamma) the packed tensor stores."""
        return ternary_trits(weight, self.mode)


# ---------------------------------------------------------------- binary (1 bit + row scale)

def binary_signs(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(signs in {-1, +1} as float, per-row alpha (rows, 1) = mean|W_row|); no gradient."""
    if weight.dim() != 2:
        raise ConfigError(f"binary weight: {weight.dim()}-D tensor, expected 2-D (rows, cols)")
    with torch.no_grad():
        signs = torch.where(weight < 0, -1.0, 1.0).to(weight.dtype)
        return signs, weight.abs().mean(dim=1, keepdim=True).clamp_min(BINARY_EPS)


def binarize(weight: torch.Tensor) -> torch.Tensor:
    """alpha_row * sign(W) forward; identity gradient to W (straight-through)."""
    signs, alpha = binary_signs(weight)
    return weight + (alpha * signs - weight).detach()


class Binarize(nn.Module):
    """A parametrization: the module's weight is used as sign * per-row scale, learned in float."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return binarize(weight)

    def codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(+-1 trits, per-row alpha) the packed tensor stores."""
        return binary_signs(weight)


def ternary_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of every nn.Linear and nn.Embedding: the weights that become ternary."""
    return [(p, m) for p, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]


def make_ternary(model: nn.Module, mode: str = "tensor", embed_mode: str = "row") -> nn.Module:
    """Register the ternary parametrization on every linear / embedding weight, in place.

    ``embed_mode`` sets the embedding's gamma separately: a token's row is its own vector,
    so one gamma per row costs 2 bytes per token and keeps rare tokens' rows in scale.
    """
    for _, module in _bias_free(ternary_modules(model)):
        m = embed_mode if isinstance(module, nn.Embedding) else mode
        parametrize.register_parametrization(module, "weight", Ternarize(m))
    return model


def make_binary(model: nn.Module) -> nn.Module:
    """Register the binary parametrization (sign * per-row alpha) on every linear / embedding
    weight, in place. The embedding's rows are tokens, so its scales are per token."""
    for _, module in _bias_free(ternary_modules(model)):
        parametrize.register_parametrization(module, "weight", Binarize())
    return model


def _bias_free(modules: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    for _, module in modules:
        if getattr(module, "bias", None) is not None:
            raise ConfigError("quantised model: linear layer with a bias, expected bias-free layers")
    return modules


def ternary_ticket(model: nn.Module, seed: int, config: dict, provenance: dict | None = None) -> Ticket:
    """A ternary- or binary-trained model as a Ticket: TernaryTensor per parametrized weight
    (binary: trits all +-1, per-row gamma), fp16 for the rest.

    Tensors are named as the plain model's state dict names them (``X.weight``), so
    ``model_from_ticket`` loads the result into ``GPT(config, masked=False)``.
    """
    tensors: list[TensorEntry] = []
    owned, kinds = set(), set()
    for path, module in ternary_modules(model):
        if not parametrize.is_parametrized(module, "weight"):
            raise ConfigError(f"{path}.weight: not quantised; call make_ternary(model) or "
                              f"make_binary(model) first")
        quantizer = module.parametrizations.weight[0]
        kinds.add("binary-qat" if isinstance(quantizer, Binarize) else "ternary-qat")
        trits, gamma = quantizer.codes(module.parametrizations.weight.original)
        gamma16 = gamma.reshape(-1).to(torch.float16).numpy()
        tensors.append(TernaryTensor(f"{path}.weight", trits.to(torch.int8).numpy(),
                                     gamma16.reshape(()) if gamma.dim() == 0 else gamma16))
        owned.add(f"{path}.parametrizations.weight.original")
    for name, param in model.named_parameters():
        if name not in owned:
            tensors.append(PlainTensor(name, param.detach().cpu().to(torch.float16).numpy()))
    method = "+".join(sorted(kinds)) or "ternary-qat"
    return Ticket(seed=seed, config=dict(config), tensors=tensors,
                  provenance=provenance or default_provenance({"method": method}))
