"""Fuzzing the evaluation context, the tokenizer and the config paths: what
``fuzz_artifact.py inputs`` runs (Reliability III).

Four targets, in turn:

- ``eval``: a valid artifact re-sealed with its header's ``eval`` (and sometimes ``config``)
  replaced by a mutated value; parsed, decoded and verified, then read the way load-and-eval
  and sample read it (``resolve_seq_len``, ``check_tokenizer`` against the byte tokenizer,
  ``check_config``).
- ``checkpoint``: a valid training checkpoint with its ``eval`` metadata or its saved
  training options mutated; loaded, packed into a ticket, merged for ``--resume`` (with a
  random set of options given on the command line), and the ticket encoded and read back.
- ``ternary``: a safetensors file for ``pack-ternary`` with random tensor names, ranks, dtypes
  and values, and a mutated ``config`` metadata string; read and packed, and whatever it
  packs must parse, pass the config check and verify (a writer never writes what the reader
  refuses).
- ``tokenizer``: a small SentencePiece model with bytes flipped, cut or appended; loaded,
  then text encoded, counted and decoded.

Property: each input ends in a result or a ``TicketpackError``; any other exception (or a
written artifact the reader refuses) is a finding and is raised.
"""

from __future__ import annotations

import collections
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fuzz.fuzz_config import FUZZ_LIMITS as MODEL_LIMITS, random_config, random_value

def _limits():
    """Small artifact caps: every input stays tiny; the caps themselves are under test."""
    from ticketpack.artifact import Limits

    return Limits(max_file_bytes=1 << 22, max_header_bytes=1 << 20, max_tensors=64, max_total_elements=1 << 16)


# ---------------------------------------------------------------- values

def random_eval(rng: random.Random) -> Any:
    """An ``eval`` object near the valid ones, or a hostile value in its place."""
    if rng.random() < 0.1:
        return random_value(rng) if rng.random() < 0.7 else _deep(rng)
    tok: Any = ({"kind": "bytes"} if rng.random() < 0.5 else
                {"kind": "sentencepiece", "sha256": "ab" * 32, "vocab_size": rng.choice([256, 1024, 300])})
    value: dict[str, Any] = {"seq_len": rng.choice([1, 2, 8, 256, 2**24, 2**24 + 1]), "tokenizer": tok}
    for _ in range(rng.randrange(3)):
        target = value if rng.random() < 0.4 else tok
        key = rng.choice(list(target) + ["kind", "sha256", "vocab_size", "extra"])
        choice = rng.random()
        if choice < 0.15:
            target.pop(key, None)
        elif choice < 0.3:
            target[key] = _deep(rng)
        elif choice < 0.45:
            target[key] = rng.choice([["bytes"], {"kind": "bytes"}, ["sentencepiece"], "", "BYTES"])
        else:
            target[key] = random_value(rng)
    if rng.random() < 0.1:
        value["tokenizer"] = random_value(rng)
    return value


def _deep(rng: random.Random) -> Any:
    depth = rng.choice([2, 50, 500, 900])
    value: Any = rng.choice([[], {}, "bytes", 1])
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"kind": value}
    return value


def _json(value: Any) -> str | None:
    try:
        return json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        return None


# ---------------------------------------------------------------- eval: artifacts

def check_artifact_eval(rng: random.Random, control: bytes) -> str:
    from tests.hostile.make_hostile import repack, section_blobs, split
    from ticketpack.api import check_config
    from ticketpack.artifact import decode_artifact, parse_artifact, verify_info
    from ticketpack.errors import TicketpackError
    from ticketpack.format.eval_context import check_tokenizer, resolve_seq_len
    from ticketpack.format.container import model_digest
    from ticketpack.text.tokenizer import ByteTokenizer

    parts = split(control)
    parts.header["eval"] = random_eval(rng)
    if rng.random() < 0.3:
        parts.header["config"] = random_config(rng)
    try:
        if rng.random() < 0.8:  # re-sealed as a writer would: the model digest covers eval and config
            parts.header["model_sha256"] = model_digest(parts.header["weights_sha256"], parts.header["config"],
                                                        parts.header["eval"])
        data = repack(parts.header, section_blobs(parts))
    except (ValueError, TypeError, RecursionError, TicketpackError):  # not JSON-writable: not an input
        return "unwritable"
    try:
        info = parse_artifact(data, _limits())
        check_config(info.header["config"], MODEL_LIMITS)
        ticket = decode_artifact(info)
        verify_info(info, ticket)
        resolve_seq_len(None, ticket.eval)
        check_tokenizer(ByteTokenizer().identity(), ticket.eval, None)
    except TicketpackError as exc:
        return type(exc).__name__
    return "accepted"


# ---------------------------------------------------------------- checkpoints: eval and options

OPTION_KEYS = ("batch_size", "seq_len", "lr", "scale_lr", "adam_betas", "seed", "temperature_start",
               "warmup", "warmdown", "val_fraction", "model", "mask", "estimator", "density", "grad_clip")


def check_checkpoint_inputs(rng: random.Random, control: Path, path: Path) -> str:
    import dataclasses

    from tests.hostile.hostile_checkpoints import read_parts, write_parts
    from ticketpack.artifact import encode_artifact, parse_artifact
    from ticketpack.train.checkpoint import load_checkpoint, ticket_from_checkpoint
    from ticketpack.errors import TicketpackError
    from ticketpack.train.loop import TrainOptions, _merge_resumed

    tensors, meta = read_parts(control)
    if rng.random() < 0.5:
        text = _json(random_eval(rng))
        meta["eval"] = text if text is not None and rng.random() < 0.9 else rng.choice(["", "[", "null", "{}"])
    else:
        state = json.loads(meta["train_state"])
        for _ in range(1 + rng.randrange(3)):
            state["options"][rng.choice(OPTION_KEYS)] = (random_value(rng) if rng.random() < 0.8
                                                         else random_config(rng))
        text = _json(state)
        if text is None:
            return "unwritable"
        meta["train_state"] = text
    write_parts(path, (tensors, meta))
    given = rng.sample(OPTION_KEYS, rng.randrange(3))
    try:
        ckpt = load_checkpoint(path, _limits_ckpt(), MODEL_LIMITS)
        ticket = ticket_from_checkpoint(ckpt, MODEL_LIMITS)
        opts = TrainOptions(data=["x.txt"], out=str(path.with_suffix(".out")))
        merged = _merge_resumed(opts, ckpt, given)
        assert dataclasses.asdict(merged)
        parse_artifact(encode_artifact(ticket))  # what pack writes, read back
    except TicketpackError as exc:
        return type(exc).__name__
    return "loaded"


def _limits_ckpt():
    from ticketpack.artifact import Limits

    return Limits(max_total_elements=1 << 22)


# ---------------------------------------------------------------- pack-ternary's safetensors

NAMES = ["w", "a.weight", "", "n" * 1024, "n" * 1025, "é" * 600, "\x00", "..", "x/y", "\u202e"]


def _random_tensor(rng: random.Random):
    import torch

    rank = rng.choice([0, 1, 2, 2, 2, 2, 2, 3, 8, 9])
    shape = [rng.choice([1, 2, 3, 4]) for _ in range(rank)]
    if rank == 9:
        shape = [1] * 9
    gamma = rng.choice([0.5, 1.0, 2.0 ** -20, 1e5, 0.1])
    trits = torch.randint(-1, 2, shape).float()
    value = trits * gamma if rng.random() < 0.6 else torch.randn(shape)
    if rng.random() < 0.1 and value.numel():
        value.view(-1)[0] = rng.choice([float("nan"), float("inf"), 1e6, 70000.0])
    if rng.random() < 0.6:
        return value
    dtype = rng.choice([torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int64, torch.uint8,
                        torch.bool, torch.float8_e4m3fn])
    try:
        return value.to(dtype)
    except (RuntimeError, TypeError):
        return value


def check_ternary(rng: random.Random, path: Path) -> str:
    from safetensors.torch import save as st_save

    from ticketpack.api import check_config
    from ticketpack.artifact import decode_artifact, encode_artifact, parse_artifact, verify_info
    from ticketpack.errors import TicketpackError
    from ticketpack.interop.ternary import read_safetensors, ticket_from_ternary

    tensors = {}
    for _ in range(1 + rng.randrange(3)):
        name = rng.choice(NAMES) if rng.random() < 0.15 else f"t{len(tensors)}"
        tensors[name] = _random_tensor(rng)
    choice = rng.random()
    config = (_json(random_config(rng)) if choice < 0.4 else "{}" if choice < 0.6 else
              rng.choice(["{", '{"a":1,"a":2}', "NaN", '{"num_layers": 1e400}', "[" * 5000 + "]" * 5000,
                          '{"vocab_size": ' + "9" * 5000 + "}", "null", '"x"']) if choice < 0.85 else None)
    try:
        path.write_bytes(st_save(tensors, metadata=None if config is None else {"config": config}))
    except Exception:  # noqa: BLE001 - safetensors refuses to write some inputs: not an input
        return "unwritable"
    limits = _limits()
    try:
        state, cfg = read_safetensors(path, limits, MODEL_LIMITS)
        ticket = ticket_from_ternary(state, cfg, path.name)
    except TicketpackError as exc:
        return type(exc).__name__
    data = encode_artifact(ticket)  # accepted: the reader must take what is written
    info = parse_artifact(data, limits)
    check_config(info.header["config"], MODEL_LIMITS)
    verify_info(info, decode_artifact(info))
    return "packed"


# ---------------------------------------------------------------- SentencePiece models

def check_tokenizer_file(rng: random.Random, model: bytes, path: Path) -> str:
    from ticketpack.errors import TicketpackError
    from ticketpack.text.tokenizer import load_tokenizer

    data = bytearray(model)
    for _ in range(1 + int(rng.random() < 0.3) * rng.randrange(4)):
        action = rng.random()
        if action < 0.6 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif action < 0.8:
            del data[rng.randrange(len(data) + 1):]
        else:
            data += rng.randbytes(rng.randrange(16))
    path.write_bytes(bytes(data))
    try:
        tok = load_tokenizer(str(path))
        ids = tok.encode("To be, or not to be: é ∑ \x00 ok")
        tok.byte_counts(ids)
        tok.decode(ids)
        tok.identity()
    except TicketpackError as exc:
        return type(exc).__name__
    return "loaded"


def _small_model(folder: Path) -> bytes:
    from ticketpack.text.tokenizer import train_sentencepiece

    text = folder / "t.txt"
    text.write_text(("the quick brown fox jumps over the lazy dog\n" * 40) + "To be, or not to be\n" * 40)
    return Path(train_sentencepiece(text, folder / "sp", 320)).read_bytes()


# ---------------------------------------------------------------- the run

TARGETS = ("eval", "checkpoint", "ternary", "tokenizer")


def run(seconds: float, seed: int, *, max_inputs: int | None = None, targets: tuple[str, ...] = TARGETS) -> dict:
    """The targets in turn for ``seconds`` (or ``max_inputs``); returns counts of outcomes.

    Raises on the first finding (the seeded PRNG replays it)."""
    from tests.hostile.hostile_checkpoints import control_checkpoint
    from tests.hostile.make_hostile import control_bytes

    rng = random.Random(seed)
    counts: collections.Counter = collections.Counter()
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        control_ckpt = folder / "control.safetensors"
        control_checkpoint(control_ckpt)
        control = control_bytes()
        model = _small_model(folder) if "tokenizer" in targets else b""
        while time.time() - start < seconds and (max_inputs is None or counts["inputs"] < max_inputs):
            target = targets[counts["inputs"] % len(targets)]
            counts["inputs"] += 1
            if target == "eval":
                outcome = check_artifact_eval(rng, control)
            elif target == "checkpoint":
                outcome = check_checkpoint_inputs(rng, control_ckpt, folder / "m.safetensors")
            elif target == "ternary":
                outcome = check_ternary(rng, folder / "w.safetensors")
            else:
                outcome = check_tokenizer_file(rng, model, folder / "m.model")
            counts[f"{target}:{outcome}"] += 1
    counts["seconds"] = int(time.time() - start)
    return dict(counts)

