"""Mask specs, how masks train (MaskTraining) and the straight-through estimators: parsing,
hard rules, gradients."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from ticketpack.errors import ConfigError
from ticketpack.nn.masking import (MaskSpec, MaskTraining, hard_levels, init_scores, mask_levels,
                                   quant_log_step_init)


def state(temperature=1.0, density=None, log_step=None):
    return SimpleNamespace(temperature=temperature, target_density=density, mask_log_step=log_step)


def tr(spec, estimator="", density=None):
    return MaskTraining.for_mask(spec, estimator, density)


BINARY, TOPK = MaskSpec.parse("binary"), MaskTraining("topk", 0.3)


def quant_state(temperature=1.0):
    return state(temperature, log_step=torch.nn.Parameter(torch.tensor(quant_log_step_init())))


# ---------------------------------------------------------------- specs

@pytest.mark.parametrize("text,kind,levels,n,m", [
    ("binary", "binary", 2, None, None),
    ("multibit:4", "multibit", 4, None, None),
    ("multibit:2", "multibit", 2, None, None),
    ("multibit:256", "multibit", 256, None, None),
    ("nm:2:4", "nm", 2, 2, 4),
    ("nm:1:8", "nm", 2, 1, 8),
])
def test_parse_and_str_round_trip(text, kind, levels, n, m):
    spec = MaskSpec.parse(text)
    assert (spec.kind, spec.levels, spec.n, spec.m) == (kind, levels, n, m)
    assert str(spec) == text
    assert MaskSpec.parse(str(spec)) == spec
    assert MaskSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_default_estimators_and_keywords():
    assert tr(MaskSpec.parse("binary")) == MaskTraining("ste", None)
    assert tr(MaskSpec.parse("multibit:4")).estimator == "quant"
    assert tr(MaskSpec.parse("nm:2:4")).estimator == "topk"
    assert tr(MaskSpec.parse("none")).estimator == "none"
    assert tr(BINARY, "topk", 1) == MaskTraining("topk", 1.0)
    assert tr(BINARY, "topk", 0.3).to_dict() == {"estimator": "topk", "density": 0.3}


def test_the_mask_spec_holds_only_what_a_loader_needs():
    """How a mask trains is no part of it: equal specs whatever the training, and the round
    trip through the header string loses nothing."""
    assert set(MaskSpec.__dataclass_fields__) == {"kind", "levels", "n", "m"}
    spec = MaskSpec.parse("binary")
    assert MaskSpec.parse(str(spec)) == spec and MaskSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(TypeError):
        MaskSpec.parse("binary", estimator="topk", density=0.25)


@pytest.mark.parametrize("text", ["", "Binary", "binary:2", "multibit", "multibit:1", "multibit:257",
                                  "multibit:x", "nm:2", "nm:4:4", "nm:0:4", "nm:5:4", "ternary",
                                  "nm:2:4:1", " multibit:4x"])
def test_bad_spec_strings(text):
    with pytest.raises(ConfigError, match="mask"):
        MaskSpec.parse(text)


@pytest.mark.parametrize("kwargs", [
    dict(estimator="quant"),  # not a binary estimator
    dict(estimator="topk"),  # topk without density
    dict(density=0.0), dict(density=1.5), dict(density="half"), dict(density=True),
])
def test_bad_estimator_and_density(kwargs):
    with pytest.raises(ConfigError):
        MaskTraining.for_mask(BINARY, **kwargs)


def test_bad_dicts():
    with pytest.raises(ConfigError, match="unknown key 'bits'"):
        MaskSpec.from_dict({"kind": "binary", "bits": 1})
    with pytest.raises(ConfigError, match="levels"):
        MaskSpec.from_dict({"kind": "binary", "levels": 3})
    with pytest.raises(ConfigError, match="unknown key 'estimator'"):
        MaskSpec.from_dict({"kind": "multibit", "levels": 4, "estimator": "nested"})
    with pytest.raises(ConfigError, match="nested"):
        MaskTraining.for_mask(MaskSpec.parse("nm:2:4"), "nested", 0.5)


# ---------------------------------------------------------------- binary STE

def test_ste_forward_and_surrogate_gradient():
    torch.manual_seed(0)
    scores = torch.randn(6, 10, requires_grad=True)
    upstream = torch.randn(6, 10)
    T = 0.5
    levels = mask_levels(scores, BINARY, tr(BINARY), state(T))
    assert torch.equal(levels, (scores >= 0).float())
    (levels * upstream).sum().backward()
    sig = torch.sigmoid(scores.detach() / T)
    assert torch.allclose(scores.grad, upstream * sig * (1 - sig) / T, rtol=1e-6, atol=0)
    assert (scores.grad != 0).all()


def test_ste_temperature_sharpens_gradient():
    scores = torch.tensor([0.0, 2.0], requires_grad=True)
    grads = []
    for T in (1.0, 0.1):
        scores.grad = None
        mask_levels(scores, BINARY, tr(BINARY), state(T)).sum().backward()
        grads.append(scores.grad.clone())
    assert grads[1][0] > grads[0][0]  # at the threshold: 1/(4T) grows as T falls
    assert grads[1][1] < grads[0][1]  # far from it: vanishes


SPECS = [
    (BINARY, tr(BINARY)),
    (BINARY, TOPK),
    (MaskSpec.parse("nm:2:4"), tr(MaskSpec.parse("nm:2:4"))),
    (MaskSpec.parse("multibit:4"), tr(MaskSpec.parse("multibit:4"))),
    (MaskSpec.parse("multibit:4"), MaskTraining("nested", 0.4)),
]


@pytest.mark.parametrize("spec,training", SPECS, ids=lambda s: str(getattr(s, "estimator", s)))
def test_hard_levels_equal_forward_and_gradients_flow(spec, training):
    torch.manual_seed(1)
    scores = torch.nn.Parameter(init_scores((12, 16), spec, training) + 0.01 * torch.randn(12, 16))
    st = quant_state() if training.estimator == "quant" else state()
    forward = mask_levels(scores, spec, training, st)
    hard = hard_levels(scores, spec, training, st)
    assert hard.dtype == torch.uint8 and hard.shape == scores.shape
    assert torch.equal(forward, hard.float())
    assert int(hard.max()) <= spec.levels - 1
    (forward * torch.randn(12, 16)).sum().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_topk_density_is_exact():
    scores = torch.randn(37, 11)  # 407 elements
    for d in (0.01, 0.3, 0.5, 0.999, 1.0):
        levels = hard_levels(scores, BINARY, tr(BINARY, "topk", d), state())
        assert int(levels.sum()) == round(d * scores.numel())
        kept_min = scores[levels.bool()].min()
        assert (scores[~levels.bool()] <= kept_min).all()  # the largest scores are kept


def test_topk_uses_the_layer_density_over_the_training_setting():
    levels = hard_levels(torch.randn(100), BINARY, MaskTraining("topk", 0.5), state(density=0.2))
    assert int(levels.sum()) == 20


def test_nm_pattern_exact():
    torch.manual_seed(2)
    scores = torch.randn(5, 24)
    for n, m in ((2, 4), (1, 8), (3, 6)):
        spec = MaskSpec.parse(f"nm:{n}:{m}")
        levels = hard_levels(scores, spec, tr(spec), state())
        groups = levels.view(5, 24 // m, m)
        assert (groups.sum(-1) == n).all()
        ranked = scores.view(5, 24 // m, m).argsort(-1, descending=True)[..., :n]
        assert (groups.gather(-1, ranked) == 1).all()  # the kept ones are the top N


def test_nm_rejects_ragged_input():
    with pytest.raises(ConfigError, match="multiple of M=4"):
        hard_levels(torch.randn(3, 10), MaskSpec.parse("nm:2:4"), MaskTraining("topk"), state())


# ---------------------------------------------------------------- multibit

def test_quant_levels_follow_the_thresholds():
    spec = MaskSpec.parse("multibit:4")
    st = quant_state()
    delta = float(st.mask_log_step.detach().exp())
    scores = torch.linspace(-0.2, 0.3, 1001)
    levels = hard_levels(scores, spec, tr(spec), st)
    assert set(levels.unique().tolist()) == {0, 1, 2, 3}
    assert torch.equal(levels == 0, scores < 0)
    assert torch.equal(levels == 3, scores >= 2 * delta)
    assert (levels[1:].int() - levels[:-1].int() >= 0).all()  # monotone in the score


def test_quant_backward_is_the_soft_staircase_gradient():
    torch.manual_seed(3)
    K, T = 4, 0.03
    scores = torch.nn.Parameter(torch.randn(40) * 0.1)
    st = quant_state(T)
    upstream = torch.randn(40)
    spec = MaskSpec.parse(f"multibit:{K}")
    (mask_levels(scores, spec, tr(spec), st) * upstream).sum().backward()
    s2 = scores.detach().clone().requires_grad_(True)
    log_step = st.mask_log_step.detach().clone().requires_grad_(True)
    soft = sum(torch.sigmoid((s2 - j * log_step.exp()) / T) for j in range(K - 1))
    (soft * upstream).sum().backward()
    assert torch.allclose(scores.grad, s2.grad, rtol=1e-5, atol=1e-6)
    assert torch.allclose(st.mask_log_step.grad, log_step.grad, rtol=1e-4, atol=1e-6)
    assert st.mask_log_step.grad != 0


def test_quant_thresholds_adapt_to_a_target():
    """Fitting levels to a target moves the learned step: the thresholds adapt, no sort."""
    torch.manual_seed(4)
    spec = MaskSpec.parse("multibit:4")
    quant = tr(spec)
    st = quant_state(temperature=0.05)
    scores = torch.nn.Parameter(init_scores((256,), spec, quant))
    target = torch.randint(0, 4, (256,)).float()
    opt = torch.optim.Adam([scores, st.mask_log_step], lr=0.01)
    start_step = float(st.mask_log_step.detach())
    start_err = float((hard_levels(scores, spec, quant, st).float() - target).abs().mean())
    for _ in range(60):
        opt.zero_grad()
        ((mask_levels(scores, spec, quant, st) - target) ** 2).mean().backward()
        opt.step()
    assert float(st.mask_log_step.detach()) != start_step
    assert float((hard_levels(scores, spec, quant, st).float() - target).abs().mean()) < 0.5 * start_err


def test_nested_levels_are_nested_top_sets():
    scores = torch.randn(1000)
    d = 0.3
    levels = hard_levels(scores, MaskSpec.parse("multibit:4"), MaskTraining("nested", d), state())
    for j in (1, 2, 3):
        at_least = levels >= j
        assert int(at_least.sum()) == round(d ** j * 1000)
        if j > 1:
            assert (scores[at_least].min() >= scores[(levels == j - 1)].max())


def test_init_scores_give_sensible_starting_densities():
    torch.manual_seed(5)
    ste = hard_levels(init_scores((200, 200), BINARY, tr(BINARY)), BINARY, tr(BINARY), state())
    assert 0.7 < float(ste.float().mean()) < 0.8
    spec = MaskSpec.parse("multibit:4")
    q = hard_levels(init_scores((200, 200), spec, tr(spec)), spec, tr(spec), quant_state())
    shares = torch.bincount(q.reshape(-1).long(), minlength=4).float() / q.numel()
    assert torch.allclose(shares, torch.full((4,), 0.25), atol=0.02)
