"""The evaluation context an artifact records: the training sequence length and tokenizer.

Header key ``eval`` (docs/FORMAT.md)::

    {"seq_len": int, "tokenizer": {"kind": "bytes"}}
    {"seq_len": int, "tokenizer": {"kind": "sentencepiece", "sha256": hex, "vocab_size": int}}

``load-and-eval`` and ``sample`` default their sequence length to it, and refuse a tokenizer
that is not the one recorded. Torch-free: the format core validates headers with it.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import HeaderError, TicketpackError, UsageError

DEFAULT_SEQ_LEN = 256  # what an artifact without ``eval`` is scored at
MAX_SEQ_LEN = 2**24
MAX_VOCAB = 2**24
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TOKENIZER_KEYS = {"bytes": ("kind",), "sentencepiece": ("kind", "sha256", "vocab_size")}


def check_eval_context(value: Any, where: str = "eval",
                       error: type[TicketpackError] = HeaderError) -> dict:
    """Validate an ``eval`` object strictly (types, ranges, no unknown keys); returns it."""
    _check_object(value, ("seq_len", "tokenizer"), where, error)
    seq_len = value["seq_len"]
    if type(seq_len) is not int or not 1 <= seq_len <= MAX_SEQ_LEN:
        raise error(f"{where}.seq_len: got {_show(seq_len)}, expected an integer 1..{MAX_SEQ_LEN}")
    tok = value["tokenizer"]
    kind = tok.get("kind") if isinstance(tok, dict) else None
    if not isinstance(kind, str) or kind not in _TOKENIZER_KEYS:  # a list or object is unhashable
        raise error(f"{where}.tokenizer.kind: got {_show(kind)}, expected 'bytes' or 'sentencepiece'")
    _check_object(tok, _TOKENIZER_KEYS[kind], f"{where}.tokenizer", error)
    if kind == "sentencepiece":
        if not isinstance(tok["sha256"], str) or not _SHA256_HEX.fullmatch(tok["sha256"]):
            raise error(f"{where}.tokenizer.sha256: got {_show(tok['sha256'])}, "
                        f"expected 64 lowercase hex digits")
        vocab = tok["vocab_size"]
        if type(vocab) is not int or not 1 <= vocab <= MAX_VOCAB:
            raise error(f"{where}.tokenizer.vocab_size: got {_show(vocab)}, expected 1..{MAX_VOCAB}")
    return value


def _show(value: Any) -> str:
    """A value from an untrusted file for a message: scalars cut short, containers by type (a
    deeply nested list would exhaust the recursion limit in ``repr``)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = repr(value)
        return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} chars)"
    return f"a JSON {'array' if isinstance(value, list) else 'object' if isinstance(value, dict) else type(value).__name__}"


def _check_object(value: Any, keys: tuple[str, ...], where: str,
                  error: type[TicketpackError]) -> None:
    if not isinstance(value, dict):
        raise error(f"{where}: got {type(value).__name__}, expected an object")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise error(f"{where}: unknown key {unknown[0][:100]!r}, expected {', '.join(keys)}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise error(f"{where}: missing key {missing[0]!r}")


def make_eval_context(seq_len: int, tokenizer_identity: dict) -> dict:
    """The ``eval`` object of a model trained at ``seq_len`` with this tokenizer."""
    return check_eval_context({"seq_len": seq_len, "tokenizer": dict(tokenizer_identity)},
                              error=UsageError)


def resolve_seq_len(given: int | None, context: dict | None) -> tuple[int, str]:
    """(sequence length, where it came from: "option", "artifact" or "default")."""
    if given is not None:
        return given, "option"
    if context is not None:
        return context["seq_len"], "artifact"
    return DEFAULT_SEQ_LEN, "default"


def describe_tokenizer(identity: dict) -> str:
    if identity["kind"] == "bytes":
        return "bytes"
    return f"sentencepiece sha256 {identity['sha256'][:16]}... (vocabulary {identity['vocab_size']})"


def check_tokenizer(identity: dict, context: dict | None, given: str | None) -> None:
    """Refuse a tokenizer other than the one the artifact records (naming both)."""
    if context is None:
        return
    recorded = context["tokenizer"]
    if recorded == identity:
        return
    if recorded["kind"] == "sentencepiece" and given is None:
        raise UsageError(f"tokenizer: the artifact was trained with {describe_tokenizer(recorded)}; "
                         f"pass that .model file with --tokenizer")
    raise UsageError(f"tokenizer: {given or 'bytes'} is {describe_tokenizer(identity)}, "
                     f"the artifact records {describe_tokenizer(recorded)}")
