"""Fuzzing model configs and training checkpoints: what ``fuzz_artifact.py config`` runs.

Property: a config either fails validation with a ticketpack error, or it builds: the GPT
it describes is constructed (on torch's meta device: shapes, no storage) and holds exactly
``parameter_count(config)`` parameters, within the bound. A checkpoint, mutated in its
metadata or tensors, either loads, packs into a ticket and passes its resume checks, or ends
in a ticketpack error. Anything else (a foreign exception, a model whose size differs from
the bound's count) is a finding.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from pathlib import Path
from typing import Any

from ticketpack.models.gpt_config import CONFIG_SCHEMA, LEGACY_TRAINING_KEYS, ModelLimits

# small bounds: a passing config is built on the meta device, so keep that quick
FUZZ_LIMITS = ModelLimits(max_parameters=2**24, max_activations_per_token=2**18)
INTERESTING = [0, 1, 2, 3, 4, 7, 8, 16, 64, 256, 1024, 2**16, 2**24, 2**31, 2**32, 2**40, 2**62, 2**63,
               2**64, -1, -(2**63), 10**4000, 0.0, 0.5, 1.0, 1e-300, 1e300, -0.0, 30.0, 1e4, 1e12, 1e13,
               math.inf, -math.inf, math.nan, True, False, None, "", "4", "relu", "relu2", "binary",
               "multibit:4", "multibit:256", "multibit:257", "nm:2:4", "nm:4:2", "nm:0:4", "topk",
               "quant", "nested", "ste", "xavier_uniform", "signed_constant_he", "row", "tensor", "none",
               [], {}, [1], {"a": 1}, "\ud800", "x" * 5000]


def random_value(rng: random.Random) -> Any:
    if rng.random() < 0.7:
        return rng.choice(INTERESTING)
    return rng.choice([rng.randrange(-10, 5000), rng.uniform(-1e3, 1e3), rng.randbytes(4).hex()])


def random_config(rng: random.Random) -> Any:
    """A config near the valid ones: defaults or a small model, with a few keys changed."""
    if rng.random() < 0.03:
        return random_value(rng)
    base = {} if rng.random() < 0.3 else dict(vocab_size=rng.choice([16, 256, 1000]),
                                              num_layers=rng.randrange(1, 4),
                                              model_dim=rng.choice([8, 16, 32, 48]),
                                              num_heads=rng.choice([1, 2, 4]),
                                              num_kv_heads=rng.choice([1, 2]),
                                              mlp_mult=rng.randrange(1, 4))
    for _ in range(rng.randrange(4)):
        key = (rng.choice(CONFIG_SCHEMA + LEGACY_TRAINING_KEYS).name if rng.random() < 0.95
               else rng.choice(["layers", "", "x" * 80]))
        base[key] = random_value(rng)
    return base


def check_config(data: Any) -> str:
    """Validate ``data``; if it passes, build its model and compare the parameter count."""
    import torch

    from ticketpack.errors import TicketpackError
    from ticketpack.models.gpt_model import GPT
    from ticketpack.models.gpt_config import config_from_dict, parameter_count

    try:
        config = config_from_dict(data, FUZZ_LIMITS)
    except TicketpackError as exc:
        return type(exc).__name__
    with torch.device("meta"):  # shapes only: the bound keeps this quick
        dense = GPT(config, masked=False)
        GPT(config, masked=True)
    built = sum(p.numel() for p in dense.parameters())
    if built != parameter_count(config) or built > FUZZ_LIMITS.max_parameters:
        raise AssertionError(f"config {data!r}: the model has {built:,} parameters, "
                             f"parameter_count says {parameter_count(config):,}")
    return "built"


# ---------------------------------------------------------------- checkpoints

def _mutate_meta(rng: random.Random, meta: dict) -> None:
    key = rng.choice(list(meta) + ["extra_key"])
    action = rng.randrange(5)
    if action == 0 or key not in meta:
        meta[key] = rng.choice(["", "null", "5", "[]", "{}", "NaN", "1e400", '{"a":1,"a":2}', "-1",
                                "4294967296", "x" * 100])
        return
    try:
        value = json.loads(meta[key])
    except ValueError:
        meta[key] = meta[key][: rng.randrange(len(meta[key]) + 1)]
        return
    if isinstance(value, dict) and value:
        k = rng.choice(list(value))
        value[k] = random_value(rng) if action < 3 else random_config(rng)
        if rng.random() < 0.3 and isinstance(value.get("options"), dict) and value["options"]:
            value["options"][rng.choice(list(value["options"]))] = random_value(rng)
    elif isinstance(value, list) and value:
        entry = rng.choice(value)
        if isinstance(entry, dict) and entry:
            entry[rng.choice(list(entry))] = random_value(rng)
        elif rng.random() < 0.5:
            value.pop()
    else:
        value = random_value(rng)
    try:
        meta[key] = json.dumps(value)
    except (ValueError, TypeError):
        meta[key] = str(value)


def _mutate_tensors(rng: random.Random, tensors: dict) -> None:
    import torch

    key = rng.choice(list(tensors))
    t = tensors[key]
    choice = rng.randrange(5)
    if choice == 0:
        tensors[key] = t.to(rng.choice([torch.float16, torch.bfloat16, torch.uint8, torch.int64,
                                        torch.float8_e4m3fn, torch.float64]))
    elif choice == 1:
        values = [255, 3, 7] if t.dtype == torch.uint8 else [float("nan"), float("inf"), 1e6, -7, 3]
        tensors[key] = torch.full_like(t, rng.choice(values))
    elif choice == 2:
        tensors[key] = t.reshape(-1)[: rng.randrange(t.numel() + 1)].clone()
    elif choice == 3:
        del tensors[key]
    else:
        tensors[rng.choice(["other/x", "ticket/new", "model/zz", key + "/levels"])] = torch.zeros(
            rng.randrange(4), dtype=torch.uint8)


def check_checkpoint(path: Path, rng: random.Random, control: Path) -> str:
    """Mutate the control checkpoint into ``path``; load, pack and resume-check it."""
    import dataclasses

    from safetensors.torch import save as st_save

    from tests.hostile.hostile_checkpoints import read_parts
    from ticketpack.artifact import Limits
    from ticketpack.train.checkpoint import load_checkpoint, ticket_from_checkpoint
    from ticketpack.errors import TicketpackError
    from ticketpack.train.loop import TrainOptions, _merge_resumed

    tensors, meta = read_parts(control)
    for _ in range(1 + rng.randrange(3)):
        (_mutate_meta(rng, meta) if rng.random() < 0.6 else _mutate_tensors(rng, tensors))
    try:
        path.write_bytes(st_save(tensors, metadata=meta))
    except Exception:  # noqa: BLE001 - safetensors refuses to write some mutations: not a loader input
        return "unwritable"
    try:
        ckpt = load_checkpoint(path, Limits(max_total_elements=2**22), FUZZ_LIMITS)
        ticket_from_checkpoint(ckpt, FUZZ_LIMITS)
        opts = TrainOptions(data=["x.txt"], out=str(path))
        merged = _merge_resumed(opts, ckpt)
        assert dataclasses.asdict(merged)  # the merged options are plain data
    except TicketpackError as exc:
        return type(exc).__name__
    return "loaded"


def run(seconds: float, seed: int, *, max_inputs: int | None = None) -> dict:
    """Configs and checkpoints, alternately, for ``seconds`` (or ``max_inputs``); returns counts.

    Raises on the first finding (the caller reports it)."""
    import collections
    import time

    from tests.hostile.hostile_checkpoints import control_checkpoint

    rng = random.Random(seed)
    counts: collections.Counter = collections.Counter()
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        control = Path(tmp) / "control.safetensors"
        control_checkpoint(control)
        while time.time() - start < seconds and (max_inputs is None or counts["inputs"] < max_inputs):
            counts["inputs"] += 1
            if counts["inputs"] % 2:
                counts["config:" + check_config(random_config(rng))] += 1
            else:
                counts["checkpoint:" + check_checkpoint(Path(tmp) / "m.safetensors", rng, control)] += 1
    counts["seconds"] = int(time.time() - start)
    return dict(counts)
