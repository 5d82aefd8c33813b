"""The contract every check of a learner-written function keeps (lessons 01 and 03-06).

Unanswered: a hint, never an exception (unless ``strict``). Not a function: a message saying so. An answer
that raises: reported as feedback, never raised into the learner's cell.
"""
import pytest

from utils.checks import ExerciseError, Feedback
from utils.checks.lesson01 import check_iou_dice, check_otsu_threshold, check_region_grower
from utils.checks.lesson03 import check_dice_from_confusion, check_focal_loss
from utils.checks.lesson04 import check_center_crop, check_transposed_output_size
from utils.checks.lesson05 import check_receptive_field, check_same_padding
from utils.checks.lesson06 import check_bilinear_sample, check_greedy_match

FUNCTION_CHECKS = (check_otsu_threshold, check_iou_dice, check_region_grower, check_dice_from_confusion,
                   check_focal_loss, check_transposed_output_size, check_center_crop, check_receptive_field,
                   check_same_padding, check_bilinear_sample, check_greedy_match)
ids = [c.__name__ for c in FUNCTION_CHECKS]


@pytest.mark.parametrize("check", FUNCTION_CHECKS, ids=ids)
def test_unanswered_gives_a_hint_and_never_raises(check):
    fb = check(None)
    assert isinstance(fb, Feedback) and not fb.passed
    assert "not answered yet" in str(fb) and "hint" in str(fb)
    assert not check(lambda *args: None).passed  # a placeholder function that returns None


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
