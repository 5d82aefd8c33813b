"""The check of lesson 04b's exercise: the Data Science Bowl score of one image."""
import numpy as np
import pytest
from check_helpers import assert_explained

from utils.checks.lesson04b import _CASES, _reference, check_dsb_score
from utils.instance_metrics import dsb_average_precision


def right(triples):
    return float(np.mean([1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn) for tp, fp, fn in triples]))


def test_expected_values_are_the_reference():
    for label, triples, want in _CASES:
        assert _reference(triples) == pytest.approx(want, abs=1e-12), label


def test_reference_agrees_with_the_library_on_label_maps():
    # a 2x6 map: true nuclei 1 (cols 0-2) and 2 (cols 3-5); prediction covers nucleus 1 exactly and half of 2
    true = np.array([[1, 1, 1, 2, 2, 2]] * 2)
    pred = np.array([[1, 1, 1, 0, 0, 5]] * 2)
    # nucleus 2 vs pred 5: IoU 2/6 -> never a hit; so TP 1, FP 1, FN 1 at every threshold
    assert dsb_average_precision(true, pred) == pytest.approx(_reference([(1, 1, 1)] * 10))


def test_right_answer_passes_strictly():
    assert check_dsb_score(right, strict=True).passed


@pytest.mark.parametrize("wrong, says", [
    (lambda t: float(np.mean([tp / (tp + fp) if tp + fp else 1.0 for tp, fp, fn in t])), "mean precision"),
    (lambda t: float(np.mean([tp / (tp + fn) if tp + fn else 1.0 for tp, fp, fn in t])), "mean recall"),
    (lambda t: float(np.mean([tp / (tp + fp + fn) if tp + fp + fn else float("nan") for tp, fp, fn in t])), "0/0"),
    (lambda t: "0.5", "expected"),
])
def test_wrong_answers_are_explained(wrong, says):
    assert_explained(check_dsb_score, wrong, says)


def test_unanswered_hint_does_not_give_the_formula():
    text = str(check_dsb_score(None))
    assert "not answered" in text and "tp / (tp + fp + fn)" not in text
