"""Checks for notebook 03b (a fair loss experiment): when do seeds settle a comparison?"""
from __future__ import annotations

from collections.abc import Callable

from .core import Feedback, feedback, is_unanswered, opening, run_cases

ANSWERS = ("A", "B", "not settled")
# (label, scores of A, scores of B, the verdict): test mIoU or IoU of one model per seed
_CASES = [
    ("U-Net against DeepLabV3+ in lesson 05", [0.594, 0.585, 0.495], [0.430, 0.447, 0.437], "A"),
    ("Dice against weighted CE in this notebook", [0.566, 0.221, 0.540], [0.275, 0.385, 0.324], "not settled"),
    ("B ahead in every seed", [0.41, 0.43], [0.52, 0.55, 0.50], "B"),
    ("ranges that touch (A's lowest equals B's highest)", [0.60, 0.70], [0.50, 0.60], "not settled"),
    ("one seed each", [0.90], [0.80], "not settled"),
    ("a big gap in the means with overlapping ranges", [0.95, 0.94, 0.40], [0.45, 0.50, 0.55], "not settled"),
]


def _reference(a, b) -> str:
    if len(a) < 2 or len(b) < 2:
        return "not settled"
    if min(a) > max(b):
        return "A"
    if min(b) > max(a):
        return "B"
    return "not settled"


def check_seed_verdict(verdict: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 03b.1: ``verdict(a, b) -> "A" | "B" | "not settled"`` for two lists of per-seed scores.

    The rule of this notebook: a model is ahead only when its lowest score is above the other's highest (the
    ranges do not overlap, touching counts as overlap), and fewer than two seeds on either side settle nothing.
    """
    name = "whether the seeds settle a comparison"
    hint = "compare the lowest score of one model with the highest of the other, both ways; and count the seeds."
    early = opening(name, verdict, "a function (a, b) -> 'A', 'B' or 'not settled'", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        a, b, want = case
        if got not in ANSWERS:
            return f"{label}: returned {got!r}; return one of {', '.join(repr(x) for x in ANSWERS)}"
        if got == want:
            return None
        msg = f"{label}: got {got!r}, expected {want!r}"
        mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
        if want == "not settled" and len(a) > 1 and len(b) > 1 and got == ("A" if mean_a > mean_b else "B"):
            msg += " - that follows the means; a seed-to-seed spread wider than the gap leaves it open"
        elif want == "not settled" and (len(a) < 2 or len(b) < 2):
            msg += " - one seed gives no spread to compare the gap with"
        elif want == "not settled" and (min(a) == max(b) or min(b) == max(a)):
            msg += " - ranges that touch overlap: use a strict comparison"
        return msg

    problems, unanswered = run_cases(verdict, ((label, (list(a), list(b)), (a, b, want))
                                               for label, a, b, want in _CASES), judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "right on all six comparisons, including the one-seed one.", strict,
                    hint if problems else None)
