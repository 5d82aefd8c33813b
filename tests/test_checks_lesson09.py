"""The checks of lesson 09's exercises: the points' positional encoding, a corrective click, the stability score."""
import math

import numpy as np
import pytest
import torch
from check_helpers import assert_explained
from scipy.ndimage import distance_transform_edt
from scipy.ndimage import label as components

from utils.checks import ExerciseError, Feedback
from utils.checks.lesson09 import (
    _click_cases,
    _encoding_cases,
    _sam_encoding,
    check_corrective_click,
    check_point_encoding,
    check_stability_score,
)
from utils.prompting import corrective_click

CHECKS = (check_point_encoding, check_corrective_click, check_stability_score)


# the worked solutions, as a learner would write them ------------------------------------------------------------

def encode(points_xy, image_size, gaussian):
    h, w = image_size
    c = (points_xy + 0.5) / torch.tensor([w, h], dtype=points_xy.dtype)
    c = (2 * c - 1) @ gaussian
    c = 2 * math.pi * c
    return torch.cat([torch.sin(c), torch.cos(c)], dim=-1)


def click(pred, truth):
    error = pred ^ truth
    if not error.any():
        return None
    distance = distance_transform_edt(np.pad(error, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(distance), distance.shape)
    return (int(x), int(y)), int(truth[y, x])


def score(logits, threshold, offset):
    high = (logits > threshold + offset).sum()
    low = (logits > threshold - offset).sum()
    return (high / low).item() if low > 0 else 0.0


# the contract ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_unanswered_says_so_without_a_hint_and_never_raises(check):
    for placeholder in (None, ..., lambda *args: None):
        fb = check(placeholder)
        assert isinstance(fb, Feedback) and not fb.passed
        assert "not answered yet" in str(fb) and "hint:" not in str(fb)
    with pytest.raises(ExerciseError, match="not answered"):
        check(None, strict=True)
    with pytest.raises(ExerciseError, match="expected a function"):
        check(42, strict=True)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_a_raising_answer_is_reported_not_raised(check):
    def broken(*args):
        raise KeyError("oops")

    fb = check(broken)
    assert not fb.passed and "raised KeyError" in str(fb) and "hint:" in str(fb)


def test_right_answers_pass_strictly():
    from segment_anything.utils.amg import calculate_stability_score

    assert check_point_encoding(encode, strict=True).passed
    assert check_point_encoding(_sam_encoding, strict=True).passed
    assert check_corrective_click(click, strict=True).passed
    assert check_corrective_click(corrective_click, strict=True).passed
    assert check_stability_score(score, strict=True).passed
    # the package itself, on a batch of one (its nan on the empty mask is accepted), and a 0-d tensor
    assert check_stability_score(lambda m, t, o: calculate_stability_score(m[None], t, o)[0], strict=True).passed


def test_the_reference_encoding_is_the_formula():
    for label, points, (h, w), gaussian in _encoding_cases():
        want = _sam_encoding(points, (h, w), gaussian)
        assert torch.allclose(want, encode(points, (h, w), gaussian), atol=1e-5), label


def test_answers_that_do_not_touch_their_inputs_get_copies():
    def mutating(points_xy, image_size, gaussian):
        points_xy += 0.5  # in place: harmless, the check keeps its own copy
        h, w = image_size
        c = 2 * (points_xy / torch.tensor([w, h])) - 1
        return torch.cat([torch.sin(2 * math.pi * c @ gaussian), torch.cos(2 * math.pi * c @ gaussian)], -1)

    assert check_point_encoding(mutating, strict=True).passed
    assert check_point_encoding(mutating, strict=True).passed


# 09.1 -------------------------------------------------------------------------------------------------------------

def _encode_with(half=0.5, centre=True, swap=False, sin_first=True, two_pi=2 * math.pi):
    def wrong(points_xy, image_size, gaussian):
        h, w = image_size
        if swap:
            h, w = w, h
        c = (points_xy + half) / torch.tensor([w, h])
        c = (2 * c - 1 if centre else c) @ gaussian * two_pi
        parts = [torch.sin(c), torch.cos(c)]
        return torch.cat(parts if sin_first else parts[::-1], -1)
    return wrong


@pytest.mark.parametrize("wrong, says", [
    (_encode_with(half=0.0), "the +0.5 is missing"),
    (_encode_with(centre=False), "map them to [-1, 1]"),
    (_encode_with(swap=True), "normalised by the wrong sides"),
    (_encode_with(sin_first=False), "cos comes before sin"),
    (_encode_with(two_pi=1.0), "the factor 2 pi is missing"),
    (lambda p, s, g: torch.sin(2 * math.pi * (2 * (p + 0.5) / torch.tensor([s[1], s[0]]) - 1) @ g),
     "concatenate sin and cos"),
    (lambda p, s, g: encode(p, s, g).numpy(), "return a (N, 2F) tensor"),
    (lambda p, s, g: encode(p, s, g) + 0.01, "differ from SAM's"),
])
def test_wrong_encodings_are_explained(wrong, says):
    assert_explained(check_point_encoding, wrong, says)


def test_the_swap_is_named_on_the_non_square_images_only():
    fb = str(check_point_encoding(_encode_with(swap=True)))
    assert "48 x 80" in fb and "64 x 40" in fb and "32 x 32" not in fb


# 09.2 -------------------------------------------------------------------------------------------------------------

def _click_with(transform):
    """``click`` whose answer (on an imperfect prediction) goes through ``transform((x, y), label, pred, truth)``."""
    def wrong(pred, truth):
        got = click(pred, truth)
        return None if got is None else transform(*got, pred, truth)
    return wrong


def _unpadded(pred, truth):
    error = pred ^ truth
    if not error.any():
        return None
    distance = distance_transform_edt(error)
    y, x = np.unravel_index(np.argmax(distance), distance.shape)
    return (int(x), int(y)), int(truth[y, x])


def _in_smallest_region(pred, truth):
    error = pred ^ truth
    if not error.any():
        return None
    regions, n = components(error)
    smallest = min(range(1, n + 1), key=lambda i: (regions == i).sum())
    distance = distance_transform_edt(np.pad(regions == smallest, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(distance), distance.shape)
    return (int(x), int(y)), int(truth[y, x])


def _not_on_the_perfect_one(pred, truth):
    got = click(pred, truth)
    if got is None:
        raise ValueError("no error region")
    return got


@pytest.mark.parametrize("wrong, says", [
    (_click_with(lambda xy, lab, p, t: (xy, 1 - lab)), "the label is inverted"),
    (_click_with(lambda xy, lab, p, t: (xy, int(p[xy[1], xy[0]]))), "the label is inverted"),  # read from pred
    (_click_with(lambda xy, lab, p, t: (xy[::-1], lab)), "return (x, y), x the column"),
    (_click_with(lambda xy, lab, p, t: ((0, 23), lab)), "not in the error region"),
    (_click_with(lambda xy, lab, p, t: ((xy[0] + 40, xy[1]), lab)), "outside the 24 x 32 image"),
    (_unpadded, "the border counts as boundary"),
    (_in_smallest_region, "a thinner error region"),
    (_click_with(lambda xy, lab, p, t: ((xy[0] + 1, xy[1] + 1), lab)), "the farthest is"),
    (lambda p, t: click(p, t) or ((0, 0), 1), "there is nothing to correct: return None"),
    (_not_on_the_perfect_one, "a perfect prediction needs no click: return None"),
    (_click_with(lambda xy, lab, p, t: xy), "return ((x, y), label)"),
    (lambda p, t: None if (p ^ t)[0].any() else click(p, t), "your function returned None"),  # on the border case
])
def test_wrong_clicks_are_explained(wrong, says):
    assert_explained(check_corrective_click, wrong, says)


def test_the_border_mistake_is_named_on_the_border_case_only():
    fb = str(check_corrective_click(_unpadded))
    assert fb.count("the border counts as boundary") == 1 and "top border" in fb


def test_any_point_as_far_as_the_farthest_is_right():
    def last_argmax(pred, truth):
        error = pred ^ truth
        if not error.any():
            return None
        distance = distance_transform_edt(np.pad(error, 1))[1:-1, 1:-1][::-1, ::-1]
        y, x = np.unravel_index(np.argmax(distance), distance.shape)
        y, x = error.shape[0] - 1 - y, error.shape[1] - 1 - x
        return (np.int64(x), np.int64(y)), np.bool_(truth[y, x])  # NumPy types are fine too

    assert any(click(p, t) != last_argmax(p, t) for _, p, t in _click_cases())  # the cases have ties
    assert check_corrective_click(last_argmax, strict=True).passed


# 09.3 -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, says", [
    (lambda m, t, o: ((m > t - o).sum() / (m > t + o).sum()).item(), "the offsets are swapped"),
    (lambda m, t, o: ((m > t + o).sum() / (m > t).sum()).item(), "one side used the threshold itself"),
    (lambda m, t, o: ((m > t).sum() / (m > t - o).sum()).item(), "one side used the threshold itself"),
    (lambda m, t, o: ((m > t + o).sum() / (m > t - o).sum())[None], "take the score out"),
    (lambda m, t, o: (m > t + o).float() / max((m > t - o).sum(), 1), "return one number"),
    (lambda m, t, o: int((m > t + o).sum()) // max(int((m > t - o).sum()), 1), "rounded down to 0"),
    (lambda m, t, o: score(m, t, o) if (m > t - o).any() else 1.0, "there is no mask to keep"),
    (lambda m, t, o: score(m, t, o) + 0.01, "expected"),
])
def test_wrong_scores_are_explained(wrong, says):
    assert_explained(check_stability_score, wrong, says)


def test_an_empty_mask_may_score_nan_or_zero_and_a_python_division_by_zero_is_reported():
    def nan_on_empty(m, t, o):
        return ((m > t + o).sum() / (m > t - o).sum()).item()

    assert check_stability_score(nan_on_empty, strict=True).passed
    fb = check_stability_score(lambda m, t, o: int((m > t + o).sum()) / int((m > t - o).sum()))
    assert not fb.passed and "raised ZeroDivisionError" in str(fb) and "empty mask" in str(fb)
