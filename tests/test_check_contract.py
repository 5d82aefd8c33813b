"""The contract every check of a learner-written function keeps (lessons 01, 03-12, 03b, 04b, 05b and 10b).

Unanswered: "not answered yet" and no hint, never an exception (unless ``strict``). Not a function: a message saying so. An answer
that raises: reported as feedback, never raised into the learner's cell.
"""
import pytest

from utils.checks import ExerciseError, Feedback, opening, run_cases
from utils.checks.lesson01 import check_iou_dice, check_otsu_threshold, check_region_grower
from utils.checks.lesson03 import check_dice_from_confusion, check_focal_loss
from utils.checks.lesson03b import check_seed_verdict
from utils.checks.lesson04 import check_center_crop, check_transposed_output_size, check_up_step
from utils.checks.lesson04b import check_dsb_score
from utils.checks.lesson05 import check_aspp_branch, check_receptive_field, check_same_padding
from utils.checks.lesson05b import check_training_steps
from utils.checks.lesson06 import check_bilinear_sample, check_greedy_match
from utils.checks.lesson07 import check_hflip_with_boxes
from utils.checks.lesson08 import check_mean_field_update, check_median_frequency_weights
from utils.checks.lesson09 import check_corrective_click, check_point_encoding, check_stability_score
from utils.checks.lesson10 import check_attention_cost, check_hungarian_match, check_patch_grid
from utils.checks.lesson10b import check_pair_cost, check_semantic_inference
from utils.checks.lesson11 import check_panoptic_quality
from utils.checks.lesson12 import check_grouped_split, check_polygon_to_mask

FUNCTION_CHECKS = (check_otsu_threshold, check_iou_dice, check_region_grower, check_dice_from_confusion,
                   check_focal_loss, check_transposed_output_size, check_center_crop, check_up_step,
                   check_receptive_field, check_same_padding, check_aspp_branch, check_bilinear_sample,
                   check_greedy_match, check_dsb_score, check_seed_verdict, check_training_steps,
                   check_hflip_with_boxes, check_median_frequency_weights, check_mean_field_update,
                   check_point_encoding, check_corrective_click, check_stability_score, check_attention_cost,
                   check_patch_grid,
                   check_hungarian_match, check_pair_cost, check_semantic_inference,
                   check_panoptic_quality, check_polygon_to_mask, check_grouped_split)
ids = [c.__name__ for c in FUNCTION_CHECKS]


@pytest.mark.parametrize("check", FUNCTION_CHECKS, ids=ids)
def test_unanswered_says_so_without_a_hint_and_never_raises(check):
    fb = check(None)
    assert isinstance(fb, Feedback) and not fb.passed
    assert "not answered yet" in str(fb) and "hint:" not in str(fb)  # no hint, so no answer, before a first try
    placeholder = check(lambda *args: None)  # a placeholder function that returns None
    assert not placeholder.passed and "not answered yet" in str(placeholder) and "hint:" not in str(placeholder)


@pytest.mark.parametrize("check", FUNCTION_CHECKS, ids=ids)
def test_strict_raises_on_unanswered_and_on_non_functions(check):
    with pytest.raises(ExerciseError, match="not answered"):
        check(None, strict=True)
    with pytest.raises(ExerciseError, match="expected a function"):
        check(42, strict=True)


@pytest.mark.parametrize("check", FUNCTION_CHECKS, ids=ids)
def test_a_raising_answer_is_reported_not_raised(check):
    def broken(*args):
        raise KeyError("oops")

    fb = check(broken)
    assert not fb.passed and "raised KeyError" in str(fb)


def test_opening_answers_placeholders_and_non_functions_and_lets_functions_through():
    assert opening("ex", len, "a function x -> y") is None
    unanswered = opening("ex", ..., "a function x -> y", hint="use len")
    assert not unanswered.passed and "not answered yet" in str(unanswered) and "use len" not in str(unanswered)
    wrong = opening("ex", [1, 2], "a function x -> y", hint="use len")
    assert not wrong.passed and wrong.messages == ["expected a function x -> y, got list", "hint: use len"]
    with pytest.raises(ExerciseError, match="expected a function x -> y, got int"):
        opening("ex", 3, "a function x -> y", strict=True)


def test_run_cases_reports_raised_unanswered_right_and_wrong_answers():
    cases = [(f"n={n}", (n,), 2 * n) for n in (1, 2, 3)]  # (label, args, context): context is the right answer

    def judge(label, got, want):
        return None if got == want else f"{label}: got {got}, expected {want}"

    def fails_on_one(n):
        return 2 * n // (n - 1) * (n - 1)

    assert run_cases(lambda n: 2 * n, cases, judge) == ([], False)
    assert run_cases(lambda n: 5 if n == 2 else 2 * n, cases, judge) == (["n=2: got 5, expected 4"], False)
    raised = "ZeroDivisionError: integer division or modulo by zero"
    assert run_cases(fails_on_one, cases, judge) == ([f"n=1: your function raised {raised}"], False)
    problems, unanswered = run_cases(fails_on_one, cases, judge, lambda label, error, want: f"{label}, {want}: {error}")
    assert problems == [f"n=1, 2: {raised}"] and not unanswered
    calls = []
    assert run_cases(lambda n: calls.append(n), cases, judge) == ([], True)  # returns None: a placeholder
    assert calls == [1]  # the cases after a None are not run
    # None on a later case is an answer: it does not hide what was already found wrong
    assert run_cases(lambda n: {1: 5, 2: None, 3: 6}[n], cases, judge) == (
        ["n=1: got 5, expected 2", "n=2: your function returned None"], False)
    assert run_cases(lambda n: None if n == 3 else 2 * n, cases, judge) == (["n=3: your function returned None"], False)


def test_non_finite_or_out_of_range_answers_are_reported_not_raised():
    from utils.checks.lesson01 import check_otsu_threshold
    from utils.checks.lesson05 import check_receptive_field, check_same_padding
    from utils.checks.lesson06 import check_greedy_match

    for bad in (float("nan"), float("inf")):
        for check in (check_otsu_threshold, check_same_padding, check_receptive_field):
            fb = check(lambda *args, bad=bad: bad)
            assert not fb.passed and "returned" in str(fb), (check.__name__, bad)
    fb = check_greedy_match(lambda iou, t: [(0, 0)] if iou.size == 0 else [(99, 99)])
    assert not fb.passed
    assert "nothing to match" in str(fb) and "out of range" in str(fb)
