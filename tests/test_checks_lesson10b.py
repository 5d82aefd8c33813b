"""The checks of lesson 10b's exercises: the matching cost of one query/segment pair and MaskFormer's semantic
inference; their references against the course's Mask2Former helpers (which are tested against transformers)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from check_helpers import assert_explained

from utils.checks.lesson10b import (
    _PAIR_CASES,
    _SEMANTIC_CASES,
    _SEMANTIC_SHORTCUTS,
    _pair_cost,
    _pair_cost_variants,
    _semantic,
    check_pair_cost,
    check_semantic_inference,
)
from utils.models.mask2former import matching_cost, semantic_from_logits

CHECKS = (check_pair_cost, check_semantic_inference)


# ----------------------------------------------------------------------------------------------------------------
# the references agree with what the lesson's model computes


@pytest.mark.parametrize("case", _PAIR_CASES, ids=[c[0] for c in _PAIR_CASES])
def test_pair_cost_reference_is_the_matchers_cost(case):
    _, probs, logits, true_class, mask = case
    cost = matching_cost(torch.log(torch.tensor(probs))[None].float(), torch.tensor(logits)[None].float(),
                         torch.tensor(mask)[None].float(), torch.tensor([true_class]))     # weights 2, 5, 5
    assert _pair_cost(probs, logits, true_class, mask) == pytest.approx(float(cost["total"][0, 0]), abs=1e-4)


def test_pair_cost_variants_are_all_different_from_the_answer():
    for _, *args in _PAIR_CASES:
        right = _pair_cost(*args)
        assert all(abs(wrong - right) > 1e-3 for wrong, _ in _pair_cost_variants(*args))


@pytest.mark.parametrize("case", _SEMANTIC_CASES, ids=[c[0] for c in _SEMANTIC_CASES])
def test_semantic_reference_is_the_models_semantic_inference(case):
    _, probs, masks = case
    ours = semantic_from_logits(torch.log(torch.tensor(probs)).float(), torch.logit(torch.tensor(masks)).float(),
                                include_background=True)
    np.testing.assert_array_equal(_semantic(probs, masks), ours)


def test_every_shortcut_gives_a_different_map_in_some_case():
    for shortcut, _ in _SEMANTIC_SHORTCUTS:
        assert any(not np.array_equal(shortcut(p, m), _semantic(p, m)) for _, p, m in _SEMANTIC_CASES), shortcut


# ----------------------------------------------------------------------------------------------------------------
# the contract of every check (tests/test_check_contract.py, for these two)


# ----------------------------------------------------------------------------------------------------------------
# right answers pass; typical mistakes are explained


def _pair_cost_numpy(class_probs, mask_logits, true_class, true_mask):
    s = 1 / (1 + np.exp(-mask_logits))
    bce = -np.mean(true_mask * np.log(s) + (1 - true_mask) * np.log(1 - s))
    dice = 1 - (2 * (s * true_mask).sum() + 1) / (s.sum() + true_mask.sum() + 1)
    return -2 * class_probs[true_class] + 5 * bce + 5 * dice


def _pair_cost_torch(class_probs, mask_logits, true_class, true_mask):
    logits, mask = torch.tensor(mask_logits), torch.tensor(true_mask)
    s = logits.sigmoid()
    dice = 1 - (2 * (s * mask).sum() + 1) / (s.sum() + mask.sum() + 1)
    return -2 * torch.tensor(class_probs[true_class]) + 5 * F.binary_cross_entropy_with_logits(logits, mask) + 5 * dice


def test_right_pair_costs_pass_strictly():
    assert check_pair_cost(_pair_cost_numpy, strict=True).passed
    assert check_pair_cost(_pair_cost_torch, strict=True).passed                 # a 0-d tensor is one number
    assert "all 4 pairs" in str(check_pair_cost(_pair_cost_numpy))


def _with(class_term=None, bce=None, dice=None, weights=(2, 5, 5)):
    """A pair cost with one part replaced."""
    def cost(class_probs, mask_logits, true_class, true_mask):
        p = class_probs[true_class]
        s = 1 / (1 + np.exp(-mask_logits))
        b = (bce or (lambda x, m: F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(m)).item()))(
            mask_logits, true_mask)
        d = (dice or (lambda s, m: 1 - (2 * (s * m).sum() + 1) / (s.sum() + m.sum() + 1)))(s, true_mask)
        c = (class_term or (lambda p: -p))(p)
        return weights[0] * c + weights[1] * b + weights[2] * d
    return cost


@pytest.mark.parametrize("wrong, says", [
    (_with(class_term=lambda p: p), "the class term has the wrong sign"),
    (_with(class_term=lambda p: -np.log(p)), "training loss's cross-entropy"),
    (_with(class_term=lambda p: 1 - p), "1 - p(c) differs from -p(c) only by a constant"),
    (_with(weights=(1, 1, 1)), "the three terms are weighted"),
    (_with(bce=lambda x, m: F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(m),
                                                               reduction="sum").item()), "not the sum"),
    (_with(dice=lambda s, m: (2 * (s * m).sum() + 1) / (s.sum() + m.sum() + 1)), "1 - Dice coefficient"),
    (_with(dice=lambda s, m: 1 - 2 * (s * m).sum() / (s.sum() + m.sum())), "adds 1 to its numerator"),
    (_with(bce=lambda x, m: F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(1 - m)).item()),
     "not its complement"),
    (lambda *args: "cheap", "return the cost as one number"),
    (lambda *args: [1.0, 2.0], "return the cost as one number"),
    (lambda *args: float("nan"), "finite number"),
])
def test_wrong_pair_costs_are_explained(wrong, says):
    assert_explained(check_pair_cost, wrong, says)


def test_the_check_does_not_let_the_answer_change_its_cases():
    def scribbles(class_probs, mask_logits, true_class, true_mask):
        value = _pair_cost_numpy(class_probs, mask_logits, true_class, true_mask)
        class_probs[:] = 0
        true_mask[:] = 1
        return value

    assert check_pair_cost(scribbles).passed
    assert check_pair_cost(_pair_cost_numpy).passed


def test_right_semantic_maps_pass_strictly():
    def numpy_answer(class_probs, mask_probs):
        return np.einsum("qc,qhw->chw", class_probs[:, :-1], mask_probs).argmax(0)

    def loop_answer(class_probs, mask_probs):
        scores = np.zeros((class_probs.shape[1] - 1, *mask_probs.shape[1:]))
        for q in range(len(class_probs)):
            for c in range(class_probs.shape[1] - 1):
                scores[c] += class_probs[q, c] * mask_probs[q]
        return scores.argmax(0).astype(float)                  # whole numbers as floats are accepted

    def torch_answer(class_probs, mask_probs):
        p, m = torch.tensor(class_probs), torch.tensor(mask_probs)
        return torch.einsum("qc,qhw->chw", p[:, :-1], m).argmax(0)

    for answer in (numpy_answer, loop_answer, torch_answer):
        assert check_semantic_inference(answer, strict=True).passed
    assert "all 4 cases" in str(check_semantic_inference(numpy_answer))


@pytest.mark.parametrize("wrong, says", [
    (lambda p, m: np.einsum("qc,qhw->chw", p, m).argmax(0), "leave it out of the sum"),
    (lambda p, m: p[:, :-1].argmax(1)[(p[:, :-1].max(1)[:, None, None] * m).argmax(0)], "single best query"),
    (lambda p, m: np.einsum("qc,qhw->chw", np.eye(p.shape[1] - 1)[p[:, :-1].argmax(1)], m).argmax(0),
     "not only for its most likely class"),
    (lambda p, m: p[:, :-1].argmax(1)[m.argmax(0)], "weigh each query's mask"),
    (lambda p, m: np.einsum("qc,qhw->chw", p[:, :-1], m), "the per-class scores"),
    (lambda p, m: np.einsum("qc,qhw->chw", p[:, :-1], m).argmax(0).T, "expected"),
    (lambda p, m: np.einsum("qc,qhw->chw", p[:, :-1], m).max(0), "not class ids"),
    (lambda p, m: np.einsum("qc,qhw->chw", p[:, :-1], m).argmin(0), "pixels differ"),
])
def test_wrong_semantic_maps_are_explained(wrong, says):
    assert_explained(check_semantic_inference, wrong, says)
