"""Checks of notebook 00: correct answers pass, known-wrong answers get a message that says what is wrong."""
import numpy as np
import pytest

from utils.checks import ExerciseError, Feedback
from utils.checks.lesson00 import (
    check_instance_counts,
    check_panoptic_decoder,
    check_semantic_from_instances,
)
from utils.scenes import make_scene

S7 = make_scene(7, 128)
COUNTS = {name: int((S7.labels == k).sum()) for k, name in ((1, "disc"), (2, "square"), (3, "triangle"))}


def test_unanswered_says_so_without_a_hint_and_never_raises():
    for check in (check_instance_counts, check_panoptic_decoder, check_semantic_from_instances):
        fb = check(None)
        assert isinstance(fb, Feedback) and not fb.passed and "not answered yet" in str(fb) and "hint:" not in str(fb)


def test_strict_raises_on_unanswered():
    with pytest.raises(ExerciseError, match="not answered"):
        check_instance_counts(None, strict=True)


def test_instance_counts():
    assert check_instance_counts(COUNTS, strict=True).passed
    wrong = dict(COUNTS, disc=COUNTS["disc"] + 1)
    fb = check_instance_counts(wrong)
    assert not fb.passed and "disc: you said" in str(fb) and "fewer" in str(fb)
    fb = check_instance_counts({"background": 1, **COUNTS})
    assert "'background' is stuff" in str(fb)
    fb = check_instance_counts([1, 2])
    assert "expected a dict" in str(fb)


def test_instance_counts_right_total_wrong_classes():
    classes = [c for c in COUNTS if COUNTS[c] > 0]
    swapped = dict(COUNTS)
    a = classes[0]
    b = next(c for c in COUNTS if c != a)
    swapped[a] -= 1
    swapped[b] += 1
    assert "some instances went to the wrong class" in str(check_instance_counts(swapped))


def test_panoptic_decoder():
    names = ("background", "disc", "square", "triangle")
    assert check_panoptic_decoder(lambda i: (names[i // 1000], i % 1000), strict=True).passed
    fb = check_panoptic_decoder(lambda i: (i // 1000, i % 1000))
    assert "should be its name" in str(fb)
    fb = check_panoptic_decoder(lambda i: (names[i // 1000], i // 1000))
    assert "instance number wrong" in str(fb)
    fb = check_panoptic_decoder(lambda i: names[i])
    assert "raised IndexError" in str(fb)
    with pytest.raises(ExerciseError):
        check_panoptic_decoder(lambda i: (names[i // 1000], 0), strict=True)


def test_semantic_from_instances():
    sem = np.zeros((128, 128), np.int64)
    for m, k in zip(S7.instance_masks, S7.labels):
        sem[m] = k
    assert check_semantic_from_instances(sem, strict=True).passed
    numbered = np.zeros((128, 128), np.int64)
    for j, m in enumerate(S7.instance_masks):
        numbered[m] = j + 1
    fb = check_semantic_from_instances(numbered)
    assert not fb.passed and "differ" in str(fb)
    assert "shape" in str(check_semantic_from_instances(np.zeros((64, 64), int)))
    assert "integer" in str(check_semantic_from_instances(sem.astype(float)))
    flooded = np.ones((128, 128), np.int64)
    assert "background must stay 0" in str(check_semantic_from_instances(flooded))


def test_call_answer_reports_a_raising_answer():
    from utils.checks import call_answer

    assert call_answer(lambda a, b: a + b, 1, 2) == (3, None)
    assert call_answer(lambda: {}["k"]) == (None, "KeyError: 'k'")
