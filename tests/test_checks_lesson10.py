"""The checks of lesson 10's exercises: the cost of efficient self-attention, the token grid of an overlapping patch
embedding, Hungarian matching; their references against the course's SegFormer, torch and SciPy."""
import itertools
import math

import numpy as np
import pytest
import torch
from check_helpers import assert_explained
from scipy.optimize import linear_sum_assignment

from utils.checks.lesson10 import (
    _ATTENTION_CASES,
    _MATCH_CASES,
    _PATCH_CASES,
    _attention_cost,
    _conv_out,
    _greedy_assignment,
    _optimal_assignment,
    _total,
    check_attention_cost,
    check_hungarian_match,
    check_patch_grid,
)
from utils.models.segformer import EfficientSelfAttention, OverlapPatchEmbed

CHECKS = (check_attention_cost, check_patch_grid, check_hungarian_match)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------------------------
# the references agree with what they describe


@pytest.mark.parametrize("height, width, sr", _ATTENTION_CASES)
def test_attention_reference_is_what_the_model_computes(height, width, sr):
    torch.manual_seed(0)
    attention = EfficientSelfAttention(8, num_heads=1, sr_ratio=sr)
    with torch.no_grad():
        _, weights = attention(torch.randn(1, height * width, 8), height, width, return_attention=True)
    m, pairs = _attention_cost(height, width, sr)
    assert weights.shape == (1, 1, height * width, m)
    assert weights[0, 0].numel() == pairs


@pytest.mark.parametrize("n, kernel, stride, padding", _PATCH_CASES)
def test_patch_reference_is_what_torch_computes(n, kernel, stride, padding):
    conv = torch.nn.Conv2d(1, 1, kernel, stride, padding)
    assert conv(torch.zeros(1, 1, n, n)).shape[-1] == _conv_out(n, kernel, stride, padding)
    if padding == kernel // 2 and kernel % 2:
        embed = OverlapPatchEmbed(3, 4, kernel, stride)
        _, h, w = embed(torch.zeros(1, 3, n, n))
        assert h == w == _conv_out(n, kernel, stride, padding) == math.ceil(n / stride)


def test_match_cases_have_one_optimum_and_greedy_fails_on_most():
    greedy_wrong = 0
    for cost in _MATCH_CASES:
        totals = sorted(_total(cost, p) for p in itertools.permutations(range(3)))
        assert totals[1] - totals[0] > 0.05                       # a single optimum, clearly
        rows, cols = linear_sum_assignment(cost)
        assert _optimal_assignment(cost) == cols[np.argsort(rows)].tolist()
        greedy_wrong += _greedy_assignment(cost) != _optimal_assignment(cost)
    assert greedy_wrong >= 3
    assert any(sorted(_optimal_assignment(c)) != _optimal_assignment(c)
               and [_optimal_assignment(c).index(i) for i in range(3)] != _optimal_assignment(c)
               for c in _MATCH_CASES)                             # a 3-cycle, so the inverse differs


# ----------------------------------------------------------------------------------------------------------------
# the contract of every check (tests/test_check_contract.py, for these three)


# ----------------------------------------------------------------------------------------------------------------
# right answers pass; typical mistakes are explained


def test_right_answers_pass_strictly():
    assert check_attention_cost(lambda h, w, sr: ((h // sr) * (w // sr), h * w * (h // sr) * (w // sr)),
                                strict=True).passed
    assert check_attention_cost(lambda h, w, sr: np.array([(h // sr) * (w // sr), h * w * (h // sr) * (w // sr)]),
                                strict=True).passed                      # any pair of whole numbers
    assert check_patch_grid(lambda n, k, s, p: (n + 2 * p - k) // s + 1, strict=True).passed
    assert check_patch_grid(lambda n, k, s, p: float((n + 2 * p - k) // s + 1), strict=True).passed

    def brute_force(cost):
        return list(min(itertools.permutations(range(3)), key=lambda p: sum(cost[i, j] for i, j in enumerate(p))))

    def scipy_cols(cost):
        return linear_sum_assignment(cost)[1]                # rows come back as 0, 1, 2

    assert check_hungarian_match(brute_force, strict=True).passed
    assert check_hungarian_match(scipy_cols, strict=True).passed
    assert "all 4 matrices" in str(check_hungarian_match(brute_force))


@pytest.mark.parametrize("wrong, says", [
    (lambda h, w, sr: (h * w, h * w * h * w), "that is global attention"),
    (lambda h, w, sr: (h * w // sr, h * w * (h * w // sr)), "per side"),
    (lambda h, w, sr: (h * w // sr ** 4, h * w * (h * w // sr ** 4)), "do not square it twice"),
    (lambda h, w, sr: (math.ceil(h / sr) * math.ceil(w / sr), h * w * math.ceil(h / sr) * math.ceil(w / sr)),
     "round each side down"),
    (lambda h, w, sr: (h * w // sr ** 2, h * w * (h * w // sr ** 2)), "divide each side first"),
    (lambda h, w, sr: ((h // sr) * (w // sr), (h * w) ** 2), "global N x N matrix"),
    (lambda h, w, sr: ((h // sr) * (w // sr), ((h // sr) * (w // sr)) ** 2), "the queries are not reduced"),
    (lambda h, w, sr: (h // sr) * (w // sr), "return two whole numbers"),
    (lambda h, w, sr: (h / sr * w / sr, 1.0), "return two whole numbers"),
])
def test_wrong_attention_costs_are_explained(wrong, says):
    assert_explained(check_attention_cost, wrong, says)


@pytest.mark.parametrize("wrong, says", [
    (lambda n, k, s, p: n // s, "right only when the stride divides n"),
    (lambda n, k, s, p: (n + 2 * p - k) // s, "count the first position too"),
    (lambda n, k, s, p: (n - k) // s + 1, "the input is n + 2 * padding wide"),
    (lambda n, k, s, p: (n + p - k) // s + 1, "padding on both sides"),
    (lambda n, k, s, p: (n + 2 * p - k) / s + 1, "round down (//)"),
    (lambda n, k, s, p: math.ceil((n + 2 * p - k) / s) + 1, "round down, not up"),
    (lambda n, k, s, p: "24", "return the side as a whole number"),
])
def test_wrong_patch_grids_are_explained(wrong, says):
    assert_explained(check_patch_grid, wrong, says)


def _worst(cost):
    return list(max(itertools.permutations(range(3)), key=lambda p: sum(cost[i, j] for i, j in enumerate(p))))


def _inverse(cost):
    want = _optimal_assignment(cost)
    return [want.index(i) for i in range(3)]


@pytest.mark.parametrize("wrong, says", [
    (lambda cost: [int(j) for j in cost.argmin(axis=1)], "each true mask is matched once"),
    (_greedy_assignment, "that is the greedy choice"),
    (_worst, "the matching minimises the cost"),
    (_inverse, "that is the inverse"),
    (linear_sum_assignment, "like linear_sum_assignment's (rows, cols)"),
    (lambda cost: [0, 1, 5], "out of range"),
    (lambda cost: [0.0, 1.0, 2.0], "integer indices"),
    (lambda cost: 3, "return a list of 3 indices"),
])
def test_wrong_matches_are_explained(wrong, says):
    assert_explained(check_hungarian_match, wrong, says)


def test_greedy_message_gives_both_totals():
    text = str(check_hungarian_match(_greedy_assignment))
    assert "total cost 1.20 against 0.65" in text
    assert "[0.1, 0.7, 0.8]" not in text               # the matrix greedy gets right is not reported
