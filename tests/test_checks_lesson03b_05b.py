"""The checks of lessons 03b (do the seeds settle a comparison?) and 05b (the optimiser steps of a training)."""
import pytest
import torch
from check_helpers import assert_explained
from torch.utils.data import DataLoader, TensorDataset

from utils.checks.lesson03b import _CASES as VERDICT_CASES
from utils.checks.lesson03b import _reference, check_seed_verdict
from utils.checks.lesson05b import _CASES as STEP_CASES
from utils.checks.lesson05b import check_training_steps


def verdict(a, b):
    if len(a) < 2 or len(b) < 2:
        return "not settled"
    return "A" if min(a) > max(b) else "B" if min(b) > max(a) else "not settled"


def test_verdict_cases_follow_the_rule():
    for label, a, b, want in VERDICT_CASES:
        assert _reference(a, b) == want, label
    assert {want for *_, want in VERDICT_CASES} == {"A", "B", "not settled"}


def test_right_verdict_passes_strictly_and_placeholder_is_not_judged():
    assert check_seed_verdict(verdict, strict=True).passed
    fb = check_seed_verdict(None)
    assert not fb.passed and "not answered yet" in str(fb) and "hint:" not in str(fb)


@pytest.mark.parametrize("wrong, says", [
    (lambda a, b: "A" if sum(a) / len(a) > sum(b) / len(b) else "B", "follows the means"),
    (lambda a, b: "A" if min(a) > max(b) else "B" if min(b) > max(a) else "not settled", "one seed"),
    (lambda a, b: ("not settled" if len(a) < 2 or len(b) < 2 else "A" if min(a) >= max(b)
                   else "B" if min(b) >= max(a) else "not settled"), "touch"),
    (lambda a, b: 1, "return one of"),
])
def test_wrong_verdicts_are_explained(wrong, says):
    assert_explained(check_seed_verdict, wrong, says)


def test_step_cases_match_a_real_dataloader():
    for label, n, batch, epochs, want in STEP_CASES:
        loader = DataLoader(TensorDataset(torch.zeros(n)), batch_size=batch, shuffle=True, drop_last=True)
        assert epochs * len(loader) == want, label


def test_right_steps_pass_strictly():
    assert check_training_steps(lambda n, b, e: e * (n // b), strict=True).passed


@pytest.mark.parametrize("wrong, says", [
    (lambda n, b, e: e * n / b, "integer division"),
    (lambda n, b, e: e * -(-n // b), "drop_last=True"),
    (lambda n, b, e: n // b, "one epoch"),
    (lambda n, b, e: float(e * (n // b)), "return an int"),
    (lambda n, b, e: "843", "return an int"),
])
def test_wrong_steps_are_explained(wrong, says):
    assert_explained(check_training_steps, wrong, says)
