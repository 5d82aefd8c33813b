"""Checks for notebook 04b (U-Net on real nuclei): the Data Science Bowl score of one image."""
from __future__ import annotations

import math
from collections.abc import Callable

from .core import Feedback, feedback, opening, run_cases

# Ten (tp, fp, fn) triples each, one per IoU threshold 0.5, 0.55, ..., 0.95, and what the score must be.
_CASES = [
    ("a perfect image", [(5, 0, 0)] * 10, 1.0),
    ("an image with nothing to find and nothing predicted", [(0, 0, 0)] * 10, 1.0),
    ("nothing predicted on an image with 4 nuclei", [(0, 0, 4)] * 10, 0.0),
    ("hits that fade with the threshold", [(4, 1, 1)] * 4 + [(3, 2, 2)] * 3 + [(1, 4, 4)] * 3,
     (4 * 4 / 6 + 3 * 3 / 7 + 3 * 1 / 9) / 10),
    ("one false positive", [(3, 1, 0)] * 10, 0.75),
]


def _reference(triples) -> float:
    return sum(1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn) for tp, fp, fn in triples) / len(triples)


def check_dsb_score(dsb_score: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 04b.3: ``dsb_score(tp_fp_fn) -> float``, the Data Science Bowl score of one image.

    ``tp_fp_fn`` is a list of ten ``(tp, fp, fn)`` triples of ints, one per IoU threshold 0.5, 0.55, ...,
    0.95. The score is the mean over the thresholds of ``tp / (tp + fp + fn)``, and 1 at a threshold where
    there is nothing to find and nothing was predicted.
    """
    name = "the Data Science Bowl score of one image"
    hint = "at each threshold, compare the matched nuclei with everything that was either predicted or true."
    early = opening(name, dsb_score, "a function tp_fp_fn -> float", strict, hint)
    if early is not None:
        return early

    def judge(label, got, triples):
        want = _reference(triples)
        try:
            value = float(got)
        except (TypeError, ValueError):
            return f"{label}: returned {got!r}; return one number"
        if math.isfinite(value) and abs(value - want) < 1e-9:
            return None
        msg = f"{label}: got {value:.4f}, expected {want:.4f}"
        tp = sum(t for t, _, _ in triples)
        if triples[0] == (0, 0, 0) and not math.isfinite(value):
            msg += " - with nothing true and nothing predicted the ratio is 0/0; the competition counts it as 1"
        elif all(t + p + n for t, p, n in triples) and abs(value - sum(t / (t + p) for t, p, _ in triples if t + p) / 10) < 1e-9 and tp:
            msg += " - that is the mean precision; misses (fn) belong in the denominator too"
        elif abs(value - sum(t / (t + n) for t, _, n in triples if t + n) / 10) < 1e-9 and tp:
            msg += " - that is the mean recall; false positives (fp) belong in the denominator too"
        return msg

    problems, unanswered = run_cases(dsb_score, ((label, (list(t),), t) for label, t, _ in _CASES), judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "right on all five images, including the empty one.", strict,
                    "per threshold: tp / (tp + fp + fn); the mean over the ten thresholds." if problems else None)
