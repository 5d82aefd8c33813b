"""The checks of lesson 08's exercises: median-frequency weights and one mean-field update."""
import numpy as np
import pytest
import torch
from check_helpers import assert_explained

from utils.checks.lesson08 import (
    _FREQUENCIES,
    _median_weights,
    check_mean_field_update,
    check_median_frequency_weights,
)
from utils.losses import class_weights


def test_reference_weights_equal_the_library():
    for label, f in _FREQUENCIES:
        assert np.allclose(_median_weights(f), class_weights(f, "median").numpy(), atol=1e-6), label


def test_right_answers_pass_strictly():
    assert check_median_frequency_weights(lambda f: class_weights(f, "median").numpy(), strict=True).passed
    assert check_mean_field_update(lambda u, m: torch.softmax(-u - (m.sum(0) - m), 0), strict=True).passed


@pytest.mark.parametrize("wrong, says", [
    (lambda f: np.median(f) / np.asarray(f, float), "give it 0"),
    (lambda f: np.where(np.asarray(f) > 0, np.median(f) / np.maximum(np.asarray(f, float), 1e-12), 0), "occur only"),
    (lambda f: np.where(np.asarray(f) > 0, 1 / np.maximum(np.asarray(f, float), 1e-12), 0), "inverse frequency"),
    (lambda f: [1.0], "weights for"),
])
def test_wrong_weights_are_explained(wrong, says):
    with np.errstate(divide="ignore"):
        assert_explained(check_median_frequency_weights, wrong, says)


@pytest.mark.parametrize("wrong, says", [
    (lambda u, m: torch.softmax(-u - m, 0), "its own messages"),
    (lambda u, m: -u - (m.sum(0) - m), "softmax over dim 0"),
    (lambda u, m: torch.softmax(u + m.sum(0) - m, 0), "signs are flipped"),
    (lambda u, m: np.zeros(3), "return a (C, H, W) tensor"),
])
def test_wrong_updates_are_explained(wrong, says):
    assert_explained(check_mean_field_update, wrong, says)
