"""Training to a byte budget: the widest shape of a recipe whose packed artifact fits.

A recipe is a model config (preset + overrides: mask, scales, MLP ratio, head width, ...).
Its *shapes* keep everything but the width ``model_dim`` and depth ``num_layers``: the head
width stays (``num_heads`` = width / head width), as does the query-to-key/value head ratio,
and the width / depth ratio stays within a factor 2 of the recipe's own.

``solve`` ranks the shapes by an analytic byte estimate, then checks the best ones for real:
a *worst-case stand-in* of the shape (every mask level drawn uniformly over the levels the
estimator can produce, or at exactly the target density of its ``MaskTraining``; every fp16
value a random bit pattern, which no coder compresses) is packed with ``encode_artifact``. A
trained mask never codes larger than a uniform one (its empirical entropy is at most log2 K),
so the trained artifact fits whenever the stand-in does. Among the shapes whose connections are within 10% of the most
that fit, the one nearest the recipe's width / depth wins.

``fill`` then closes the gap the head-width steps leave (a shape one head wider can cost a
quarter more): a measured search over finer knobs around ``solve``'s shape, packing each
candidate's stand-in until one fits and fills at least ``FILL`` of the budget. Shapes that
keep the recipe come first -- head width in steps of 2, one head more or fewer, one block
more or fewer -- then those that also change it: the MLP ratio one up, the adapter rank one
up where the recipe has adapters; within each, the largest estimate first. When none fills
within ``FILL_CHECKS`` packs, the candidate with the most connections among those that fit
wins.

Nothing here imports torch directly; the artifact writer it calls does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import BudgetExceededError, ConfigError, UsageError
from ..format.maskspec import MaskSpec
from ..nn.mask_training import MaskTraining, level_dtype
from ..models.gpt_config import config_from_dict

POOL = 0.9  # shapes within this share of the most connections compete on width / depth
ASPECT_SPAN = 2.0  # width / depth within this factor of the recipe's
RESERVE = 64  # bytes kept free for header fields the stand-in cannot know (names, numbers)
FILL = 0.95  # ``fill``: a shape fills the budget when its packed bytes reach this share
FILL_CHECKS = 48  # ``fill``: at most this many finer candidates are packed
ShapeFn = Callable[[dict], float]


@dataclass(frozen=True)
class StoredTensor:
    """One tensor an artifact of the built-in GPT stores: ``masked`` (frozen x mask), ``plain``
    (fp16 vector) or ``adapter`` (a low-rank factor: fp16 or int8 per row)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    init: str = ""  # masked: frozen init rule
    layout: str | None = None  # masked: how the shape maps to fans (None: the format's default)
    init_std: float | None = None  # masked: the std of init rule normal_std


@dataclass
class ShapeChoice:
    """The chosen shape, its worst-case packed bytes and the runner-up that did not fit."""

    config: dict
    budget: int
    bytes: int  # packed bytes of the worst-case stand-in (+ RESERVE must fit)
    connections: int
    estimate: float
    wider: tuple[int, int, int] | None = None  # (num_layers, model_dim, bytes) of the next wider shape
    checked: int = 0  # stand-ins packed
    alternatives: list[tuple[int, int]] = field(default_factory=list)
    refined: str = ""  # ``fill``: the finer knobs it moved from ``solve``'s shape, e.g. "MLP 3x"

    @property
    def model_dim(self) -> int:
        return int(self.config["model_dim"])

    @property
    def num_layers(self) -> int:
        return int(self.config["num_layers"])

    def reason(self) -> str:
        """One line: which shape and why."""
        heads = int(self.config["num_heads"])
        line = (f"budget {self.budget:,} B: {self.num_layers} x {self.model_dim} ({heads} heads of "
                f"{self.model_dim // heads}), {self.connections:,} connections, worst case "
                f"{self.bytes:,} B packed")
        if self.refined:
            line += f" ({self.bytes / self.budget:.1%} of the budget; filled by {self.refined})"
        if self.wider is not None:
            line += f"; the next wider shape, {self.wider[0]} x {self.wider[1]}, needs {self.wider[2]:,} B"
        return line


# ---------------------------------------------------------------- the tensors of a config

def stored_tensors(config: dict) -> list[StoredTensor]:
    """The tensors (names, shapes, kinds) a ticket of the built-in GPT holds, in its order:
    the masked weights in module order, then the plain vectors in parameter order (a
    module's own parameters before its children's)."""
    c = _validated(config)
    C, V, kv = c["model_dim"], c["vocab_size"], c["num_kv_heads"] * (c["model_dim"] // c["num_heads"])
    hidden, gains = c["mlp_mult"] * C, c["rmsnorm_weight"]
    masked = [StoredTensor("tok_emb.weight", "masked", (V, C), c["embed_init"])]
    plain = [StoredTensor("pre_logit_scale", "plain", (C,))] if c["pre_logit_scale"] else []
    if c["embed_norm"] and gains:
        plain.append(StoredTensor("emb_norm.weight", "plain", (C,)))
    for i in range(c["num_layers"]):
        b = f"blocks.{i}"
        masked += [StoredTensor(f"{b}.attn.c_q.weight", "masked", (C, C), c["init"]),
                   StoredTensor(f"{b}.attn.c_k.weight", "masked", (kv, C), c["init"]),
                   StoredTensor(f"{b}.attn.c_v.weight", "masked", (kv, C), c["init"]),
                   StoredTensor(f"{b}.attn.proj.weight", "masked", (C, C), c["init"]),
                   StoredTensor(f"{b}.mlp.fc.weight", "masked", (hidden, C), c["mlp_fc_init"]),
                   StoredTensor(f"{b}.mlp.proj.weight", "masked", (C, hidden), c["init"])]
        vectors = [(f"{b}.attn_scale", C, c["block_scales"]), (f"{b}.mlp_scale", C, c["block_scales"]),
                   (f"{b}.attn_norm.weight", C, gains), (f"{b}.attn.head_scale", c["num_heads"], c["head_scales"]),
                   (f"{b}.mlp_norm.weight", C, gains)]
        plain += [StoredTensor(name, "plain", (n,)) for name, n, kept in vectors if kept]
    if gains:
        plain.append(StoredTensor("final_norm.weight", "plain", (C,)))
    if not c["tie_embeddings"]:
        masked.append(StoredTensor("lm_head.weight", "masked", (V, C), c["init"]))
    return _with_adapters(masked, c["adapter_rank"]) + plain


def _with_adapters(masked: list[StoredTensor], rank: int) -> list[StoredTensor]:
    """Each masked weight followed by its adapters A (r x in) and B (out x r), as tickets order them."""
    if not rank:
        return masked
    out = []
    for t in masked:
        path = t.name[:-len(".weight")]
        out += [t, StoredTensor(f"{path}.adapter_a", "adapter", (rank, t.shape[1])),
                StoredTensor(f"{path}.adapter_b", "adapter", (t.shape[0], rank))]
    return out


def connections(config: dict) -> int:
    """Frozen connections (elements of every masked tensor) of a config."""
    return sum(math.prod(t.shape) for t in stored_tensors(config) if t.kind == "masked")


def mask_bits(config: dict, training: MaskTraining | None = None) -> float:
    """Worst-case coded bits per connection of the config's mask trained with ``training``
    (None: the kind's default estimator), an order-0 entropy bound."""
    spec, training = _validated_spec(config, training)
    if not spec.stored:
        return 0.0
    if spec.kind == "nm":
        return math.log2(math.comb(spec.m, spec.n)) / spec.m
    if training.estimator == "topk":
        return entropy(_signed_probs([1 - training.density, training.density], spec))
    if training.estimator == "nested":
        return entropy(_signed_probs(_nested_probs(training.density, spec.levels), spec))
    return math.log2(spec.alphabet)  # every stored symbol equally likely (signed:K: 2K - 1)


def estimate_bytes(config: dict, adapter_dtype: str = "f16", training: MaskTraining | None = None) -> float:
    """Analytic bytes: masks at their worst-case bits (+1%), fp16 vectors, scales and adapters
    (int8 adapters: 1 byte per value + a 2-byte scale per row), header."""
    return tensors_bytes(stored_tensors(config), mask_bits(config, training), _validated(config)["scale_mode"],
                         adapter_dtype)


def tensors_bytes(tensors: list[StoredTensor], bits: float, scale_mode: str, adapter_dtype: str = "f16") -> float:
    """``estimate_bytes`` of any list of stored tensors whose masks code at ``bits`` per connection."""
    bits *= 1.01
    total = 400.0 + 45 * len(tensors)
    for t in tensors:
        n = math.prod(t.shape)
        if t.kind == "plain":
            total += 2 * n
        elif t.kind == "adapter":
            total += n + 2 * t.shape[0] if adapter_dtype == "int8" else 2 * n
        else:
            total += n * bits / 8 + {"none": 0, "tensor": 2, "row": 2 * t.shape[0]}[scale_mode]
    return total


# ---------------------------------------------------------------- worst-case stand-ins

def worst_case_ticket(config: dict, seed: int = 0, provenance: dict | None = None, adapter_dtype: str = "f16",
                      training: MaskTraining | None = None):
    """A ticket of ``config`` whose tensors cost what training (with ``training``) can make them
    cost at most."""
    spec, training = _validated_spec(config, training)
    return stand_in(stored_tensors(config), config, spec, training, _validated(config)["scale_mode"], seed,
                    provenance, adapter_dtype)


def stand_in(tensors: list[StoredTensor], config: dict, spec: MaskSpec, training: MaskTraining, scale_mode: str,
             seed: int = 0, provenance: dict | None = None, adapter_dtype: str = "f16"):
    """The worst-case ticket of any model storing ``tensors`` (masks ``spec`` trained with
    ``training``), with ``config`` as its recorded config."""
    from ..ticket import Int8Tensor, MaskedTensor, PlainTensor, Ticket, default_provenance

    gen = np.random.default_rng(seed)
    out = []
    for t in tensors:
        if t.kind == "plain" or (t.kind == "adapter" and adapter_dtype == "f16"):
            out.append(PlainTensor(t.name, _random_f16(gen, t.shape)))
            continue
        if t.kind == "adapter":  # int8 uniform over -127..127: nothing to compress
            q = gen.integers(-127, 128, size=t.shape).astype(np.int8)
            out.append(Int8Tensor(t.name, q, _random_f16(gen, t.shape[:1])))
            continue
        levels = _worst_levels(gen, spec, training, t.shape) if spec.stored else None
        scale = None if scale_mode == "none" else _random_f16(gen, () if scale_mode == "tensor" else t.shape[:1])
        where = {"layout": t.layout} if t.layout else {}
        out.append(MaskedTensor(t.name, t.shape, t.init, spec, levels, scale, init_std=t.init_std, **where))
    return Ticket(seed=seed, config=dict(config), tensors=out, eval=_EVAL,
                  provenance=provenance if provenance is not None else default_provenance(_TRAIN_FACTS))


# what `pack` records about training and evaluation, at its longest plausible length
_TRAIN_FACTS = {"train": {"step": 10**9, "tokens": 10**13, "val_bpb": 1.2345678901234567,
                          "mask_training": {"estimator": "nested", "density": 0.12345678901234568}}}
_EVAL = {"seq_len": 10**6, "tokenizer": {"kind": "sentencepiece", "vocab_size": 10**6,
                                         "sha256": hashlib.sha256(b"a tokenizer").hexdigest()}}


def worst_case_bytes(config: dict, seed: int = 0, creation: dict | None = None, adapter_dtype: str = "f16",
                     training: MaskTraining | None = None) -> int:
    """Packed bytes (``codec="auto"``) of ``worst_case_ticket(config)``."""
    return packed_bytes(worst_case_ticket(config, seed, adapter_dtype=adapter_dtype, training=training), creation)


def packed_bytes(ticket, creation: dict | None = None) -> int:
    """Bytes ``encode_artifact`` gives a (stand-in) ticket, with the longest creation facts ``pack`` records."""
    from ..artifact import encode_artifact

    creation = creation if creation is not None else {"checkpoint": "x" * 40, "codec": "auto", "level": None}
    return len(encode_artifact(ticket, creation=creation))


def _worst_levels(gen: np.random.Generator, spec, training: MaskTraining, shape: tuple[int, ...]) -> np.ndarray:
    n = math.prod(shape)
    if spec.kind == "nm":  # N random positions of every M
        groups = np.argsort(gen.random((n // spec.m, spec.m)), axis=1) < spec.n
        return groups.astype(np.uint8).reshape(shape)
    if training.estimator == "topk":  # exactly the target density, signs (if signed) at random
        levels = np.zeros(n, level_dtype(spec))
        kept = gen.permutation(n)[:int(round(training.density * n))]
        levels[kept] = gen.choice([-1, 1], size=kept.size) if spec.kind == "signed" else 1
        return levels.reshape(shape)
    values = _level_values(spec)
    probs = None
    if training.estimator == "nested":
        probs = _signed_probs(_nested_probs(training.density, spec.levels), spec)
    return gen.choice(values, size=shape, p=probs).astype(level_dtype(spec))


def _level_values(spec: MaskSpec) -> np.ndarray:
    """A mask's levels in the order ``_signed_probs`` gives their shares: 0, 1, ..., K-1, or
    for signed masks 0, 1, -1, 2, -2, ..."""
    if spec.kind != "signed":
        return np.arange(spec.levels)
    return np.array([0] + [v for j in range(1, spec.levels) for v in (j, -j)])


def _signed_probs(probs: list[float], spec: MaskSpec) -> list[float]:
    """Shares of the levels of ``spec`` from the shares of their magnitudes 0..K-1: a signed
    mask splits each nonzero magnitude's share evenly between +j and -j (the costliest split)."""
    if spec.kind != "signed":
        return list(probs)
    return [probs[0]] + [p / 2 for p in probs[1:] for _ in range(2)]


def _random_f16(gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniformly random finite fp16 bit patterns: no coder can store them in under 2 bytes,
    whatever values training leaves (trained adapters span many exponents)."""
    bits = gen.integers(0, 0x7C00, size=shape, dtype=np.uint16)  # exponent < 31: finite
    bits |= (gen.integers(0, 2, size=shape, dtype=np.uint16) << 15)
    return bits.view(np.float16)


def _nested_probs(d: float, levels: int) -> list[float]:
    """Level shares of a nested top-k mask: level >= j holds a share d**j."""
    at_least = [d ** j for j in range(levels)] + [0.0]
    return [at_least[j] - at_least[j + 1] for j in range(levels)]


def entropy(probs: list[float]) -> float:
    """Shannon entropy in bits of a discrete distribution (zero shares ignored)."""
    return -sum(p * math.log2(p) for p in probs if p > 0)


# ---------------------------------------------------------------- the search

def shapes(template: dict, budget: int, estimate: ShapeFn, max_dim: int = 8192,
           count: ShapeFn = connections, depth: int | None = None) -> list[dict]:
    """Configs of the recipe's shapes whose estimate is within 5% of the budget, most
    connections first (ties: deeper first). ``depth``: only that many blocks (the width /
    depth span then does not apply: the depth was asked for)."""
    t = _validated(template)
    head_dim, group = t["model_dim"] // t["num_heads"], t["num_heads"] // t["num_kv_heads"]
    ratio = t["model_dim"] / t["num_layers"]
    found = []
    for C in range(head_dim, max_dim + 1, head_dim):
        heads = C // head_dim
        if heads % group:
            continue
        lo, hi = max(1, math.ceil(C / (ratio * ASPECT_SPAN))), math.floor(C * ASPECT_SPAN / ratio)
        if depth is not None:
            lo = hi = depth
        fitting = 0
        for L in range(lo, hi + 1):
            cfg = {**template, "model_dim": C, "num_layers": L, "num_heads": heads, "num_kv_heads": heads // group}
            try:
                est = estimate(cfg)
            except ConfigError:  # e.g. an N:M group that does not divide this width
                continue
            if est <= budget * 1.05:
                found.append((count(cfg), L, est, cfg))
                fitting += 1
        if not fitting and lo <= hi and _min_estimate(template, C, heads, group, lo, estimate) > budget * 1.05:
            break  # wider only costs more
    found.sort(key=lambda f: (-f[0], -f[1]))
    return [dict(f[3], _estimate=f[2]) for f in found]


def _min_estimate(template: dict, C: int, heads: int, group: int, L: int, estimate: ShapeFn) -> float:
    try:
        return estimate({**template, "model_dim": C, "num_layers": L, "num_heads": heads,
                         "num_kv_heads": heads // group})
    except ConfigError:
        return 0.0


def solve(template: dict, budget: int, *, measure: ShapeFn | None = None,
          estimate: ShapeFn | None = None, reserve: int = RESERVE, adapter_dtype: str = "f16",
          training: MaskTraining | None = None, count: ShapeFn = connections,
          depth: int | None = None) -> ShapeChoice:
    """The shape of ``template`` a byte budget buys (see the module docstring).

    ``measure(config)`` gives the real worst-case bytes (default: pack the stand-in ticket),
    ``estimate(config)`` the analytic ranking (default: ``estimate_bytes``); ``adapter_dtype``
    how the defaults size adapters (f16 | int8), ``training`` how the masks train (their worst
    case: a topk / nested target density codes smaller than uniform levels); a shape fits
    when ``measure + reserve <= budget``; ``count(config)`` its connections (default: the
    built-in GPT's; another model's shapes bring their own); ``depth``: pin the number of blocks
    (the width alone is searched). Raises BudgetExceededError when none does.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise UsageError(f"budget: {budget!r}, expected a positive number of bytes")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise UsageError(f"depth: {depth!r}, expected a positive number of blocks")
    measure = measure or (lambda cfg: worst_case_bytes(cfg, adapter_dtype=adapter_dtype, training=training))
    estimate = estimate or (lambda cfg: estimate_bytes(cfg, adapter_dtype, training))
    sized: dict[tuple[int, int], int] = {}

    def cost(cfg: dict) -> int:
        key = (cfg["num_layers"], cfg["model_dim"])
        if key not in sized:
            sized[key] = int(measure(_public(cfg)))
        return sized[key]

    candidates = shapes(template, budget, estimate, count=count, depth=depth)
    best = next((c for c in candidates if cost(c) + reserve <= budget), None)
    if best is None:
        small = _smallest(template, depth or 1)
        raise BudgetExceededError(f"budget: {budget:,} B, no shape of this recipe fits: the smallest, "
                                  f"{small['num_layers']} x {small['model_dim']}, needs "
                                  f"{cost(small) + reserve:,} B (raise the budget or choose a cheaper mask)")
    most = count(best)
    ratio = template["model_dim"] / template["num_layers"]
    pool = [c for c in candidates if POOL * most <= count(c) <= most]
    pool.sort(key=lambda c: (abs(math.log2(c["model_dim"] / c["num_layers"] / ratio)), -count(c)))
    chosen = next(c for c in pool if cost(c) + reserve <= budget)
    wider = _next_wider(chosen, cost)
    return ShapeChoice(config=_public(chosen), budget=budget, bytes=cost(chosen),
                       connections=int(count(chosen)), estimate=chosen["_estimate"], wider=wider,
                       checked=len(sized))


def fill(template: dict, budget: int, *, measure: ShapeFn | None = None, estimate: ShapeFn | None = None,
         reserve: int = RESERVE, adapter_dtype: str = "f16", training: MaskTraining | None = None,
         share: float = FILL, max_checks: int = FILL_CHECKS, count: ShapeFn = connections,
         depth: int | None = None) -> ShapeChoice:
    """``solve``'s shape, refined by a measured search until its stand-in packs to at least
    ``share`` of the budget (see the module docstring). Same arguments as ``solve`` (a pinned
    ``depth`` holds for the finer candidates too); when no
    finer candidate fits and fills, the fullest that fits is returned (``ShapeChoice.bytes``
    says how full)."""
    if not 0 < share <= 1:
        raise UsageError(f"fill share: {share!r}, expected a number in (0, 1]")
    measure = measure or (lambda cfg: worst_case_bytes(cfg, adapter_dtype=adapter_dtype, training=training))
    estimate = estimate or (lambda cfg: estimate_bytes(cfg, adapter_dtype, training))
    base = solve(template, budget, measure=measure, estimate=estimate, reserve=reserve, count=count, depth=depth)
    if base.bytes + reserve >= share * budget:
        return base
    fits = [(base.bytes, base.config)]
    checked = 0
    for cfg, _ in _finer(base.config, template, budget, estimate, base.estimate, depth is None):
        if checked >= max_checks:
            break
        used = int(measure(cfg))
        checked += 1
        if used + reserve <= budget:
            fits.append((used, cfg))
            if used + reserve >= share * budget:
                break  # the first that fills: the fullest of the first tier that has one
    used, chosen = max(fits, key=lambda f: (f[0] + reserve >= share * budget, count(f[1]), f[0]))
    if chosen is base.config:
        return dataclasses.replace(base, checked=base.checked + checked)
    return ShapeChoice(config=chosen, budget=budget, bytes=used, connections=int(count(chosen)),
                       estimate=estimate(chosen), checked=base.checked + checked,
                       refined=_moved(base.config, chosen))


def _finer(base: dict, template: dict, budget: int, estimate: ShapeFn, floor: float, move_depth: bool = True
           ) -> list[tuple[dict, float]]:
    """Configs near ``base`` (head width in steps of 2 within a factor 2 of the recipe's, one
    head and one block either way unless ``move_depth`` is false, MLP ratio and adapter rank
    one up) whose estimate lies
    above ``floor`` and within 5% over the budget: those with the recipe's MLP ratio and
    adapter rank first, then the others; largest estimate first within each."""
    t = _validated(template)
    head0, group = t["model_dim"] // t["num_heads"], t["num_heads"] // t["num_kv_heads"]
    ratio = t["model_dim"] / t["num_layers"]
    heads0, layers0 = base["num_heads"], base["num_layers"]
    knobs = itertools.product(
        range(max(1, layers0 - 1), layers0 + 2) if move_depth else [layers0],  # blocks
        range(max(group, heads0 - group), heads0 + 2 * group, group),  # heads
        range(max(2, head0 // 2 + head0 // 2 % 2), 2 * head0 + 1, 2),  # head width, even
        {base["mlp_mult"], base["mlp_mult"] + 1},
        {base["adapter_rank"]} | ({base["adapter_rank"] + 1} if base["adapter_rank"] else set()))
    found = []
    for L, heads, head, mult, rank in knobs:
        C = heads * head
        if move_depth and not 1 / ASPECT_SPAN <= C / L / ratio <= ASPECT_SPAN:
            continue
        cfg = {**base, "num_layers": L, "model_dim": C, "num_heads": heads, "num_kv_heads": heads // group,
               "mlp_mult": mult, "adapter_rank": rank}
        try:
            est = estimate(cfg)
        except ConfigError:  # e.g. an N:M group that does not divide this width
            continue
        if floor < est <= budget * 1.05:
            found.append((cfg, est))
    recipe = (base["mlp_mult"], base["adapter_rank"])
    found.sort(key=lambda f: ((f[0]["mlp_mult"], f[0]["adapter_rank"]) != recipe, -f[1]))
    return found


def _moved(base: dict, chosen: dict) -> str:
    """Which knobs ``fill`` moved, in words."""
    words = []
    if chosen["model_dim"] // chosen["num_heads"] != base["model_dim"] // base["num_heads"] \
            or chosen["num_heads"] != base["num_heads"]:
        words.append(f"heads {chosen['num_heads']} of {chosen['model_dim'] // chosen['num_heads']}")
    if chosen["num_layers"] != base["num_layers"]:
        words.append(f"{chosen['num_layers']} blocks")
    if chosen["mlp_mult"] != base["mlp_mult"]:
        words.append(f"MLP {chosen['mlp_mult']}x")
    if chosen["adapter_rank"] != base["adapter_rank"]:
        words.append(f"adapter rank {chosen['adapter_rank']}")
    return ", ".join(words) or "no change"


def _smallest(template: dict, depth: int = 1) -> dict:
    """``depth`` blocks (default one), one group of heads: the cheapest shape of the recipe at that depth."""
    head_dim, group = template["model_dim"] // template["num_heads"], template["num_heads"] // template["num_kv_heads"]
    return {**template, "model_dim": head_dim * group, "num_layers": depth, "num_heads": group, "num_kv_heads": 1}


def _next_wider(chosen: dict, cost: Callable[[dict], int]) -> tuple[int, int, int] | None:
    """(depth, width, worst-case bytes) of the same depth one step of heads wider."""
    head_dim, group = chosen["model_dim"] // chosen["num_heads"], chosen["num_heads"] // chosen["num_kv_heads"]
    heads = chosen["num_heads"] + group
    cfg = {**chosen, "model_dim": heads * head_dim, "num_heads": heads, "num_kv_heads": heads // group}
    try:
        return cfg["num_layers"], cfg["model_dim"], cost(cfg)
    except ConfigError:
        return None


def _public(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def _validated(config: dict) -> dict:
    return config_from_dict(_public(config)).to_dict()


def _validated_spec(config: dict, training: MaskTraining | None) -> tuple[MaskSpec, MaskTraining]:
    """The config's mask and how it trains (checked against each other; None: the default)."""
    spec = config_from_dict(_public(config)).mask_spec()
    if training is None:
        return spec, MaskTraining.for_mask(spec)
    return spec, MaskTraining.for_mask(spec, training.estimator, training.density)
