"""Dense baselines to compare tickets against at equal bytes, for users and the bake-off.

Three ways a normally trained dense GPT of the built-in family spends its bytes:

- int8 (``baselines.int8``): trained as is, then every 2-D weight int8 per row with fp16
  scales, the rest fp16, compressed whole with zlib-9 / zstd-19 (the parameter-golf
  baseline export): ``encode_int8_state`` / ``decode_int8_state`` / ``model_from_int8_state``.
- ternary QAT (``baselines.qat``, TriLM): ``make_ternary(model)``, train, then
  ``ternary_ticket`` -> a ticketpack artifact of ``TernaryTensor``s.
- binary QAT (``baselines.qat``): ``make_binary(model)`` (sign x per-row scale), likewise.

``baselines.dense`` holds the trainer they share (``build_dense``, ``train_dense``: the
ticket trainer's batches and schedule shape), ``baselines.sizing`` the packed bytes of a
shape before training (``estimate_dense_bytes``, analytic; ``worst_case_dense_bytes``, a
worst-case stand-in packed for real).

    model = build_dense(config, seed=1)
    train_dense(model, tokens, steps=400, batch_size=16, seq_len=128, seed=1, lr=1e-2)
    blob = encode_int8_state(model.state_dict(), config.to_dict())
"""

from .dense import build_dense, init_dense_, train_dense
from .int8 import (INT8_PREFIX, decode_int8_state, dequantize_rows_int8, encode_int8_state,
                   int8_roundtrip, model_from_int8_state)
from .qat import (Binarize, Ternarize, binarize, binary_signs, make_binary, make_ternary,
                  ternarize, ternary_gamma, ternary_modules, ternary_ticket, ternary_trits)
from .sizing import DENSE_FAMILIES, estimate_dense_bytes, worst_case_dense_bytes

__all__ = [
    "DENSE_FAMILIES", "INT8_PREFIX", "Binarize", "Ternarize", "binarize", "binary_signs", "build_dense",
    "decode_int8_state", "dequantize_rows_int8", "encode_int8_state", "estimate_dense_bytes", "init_dense_", "int8_roundtrip",
    "make_binary", "make_ternary", "model_from_int8_state", "ternarize", "ternary_gamma",
    "ternary_modules", "ternary_ticket", "ternary_trits", "train_dense", "worst_case_dense_bytes",
]
