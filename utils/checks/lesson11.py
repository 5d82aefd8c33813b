"""Checks for notebook 11 (panoptic segmentation): Panoptic Quality of one image written out, and PQ by hand.

The expected values come from :func:`utils.panoptic.panoptic_quality`, the course's Panoptic Quality (the rules of
COCO's ``panopticapi``), so a right answer is equal to what the lesson reports. The cases are small hand-made maps,
each built around one rule of the metric; ``_PQ_CASES`` also holds the values worked out by hand, and the tests check
that they agree with the reference.
"""
from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from ..panoptic import panoptic_quality
from .core import Feedback, feedback, is_unanswered, opening, run_cases

__all__ = ["check_panoptic_quality", "check_pq_by_hand"]

DIVISOR = 1000
THINGS = (1, 2)   # e.g. disc, square
STUFFS = (0, 3)   # e.g. background, sky

# ---------------------------------------------------------------------------------------------------------------
# Exercise 11.1: Panoptic Quality of one image


def _map(*segments, shape=(6, 8), fill=0):
    """A panoptic map of ``shape`` filled with ``fill``, then each ``(value, rows, cols)`` painted in order."""
    a = np.full(shape, fill, dtype=np.int64)
    for value, (r0, r1), (c0, c1) in segments:
        a[r0:r1, c0:c1] = value
    return a


def _pq_cases():
    """``(label, true, pred, (pq, sq, rq) worked out by hand)`` on 6 x 8 maps; things (1, 2), stuffs (0, 3)."""
    cases = []
    true = _map((1001, (1, 3), (1, 4)), (1002, (3, 5), (5, 8)), (2001, (4, 6), (0, 3)))
    cases.append(("a perfect prediction", true, true.copy(), (1.0, 1.0, 1.0)))

    # one 4 x 4 disc predicted as a 4 x 3 piece (IoU 12/16) and a 4 x 1 piece (a false positive)
    true = _map((1001, (1, 5), (1, 5)))
    pred = _map((1001, (1, 5), (1, 4)), (1002, (1, 5), (4, 5)))
    disc = (0.75 * 2 / 3, 0.75, 2 / 3)                      # TP 1, FP 1: SQ 0.75, RQ 1 / 1.5
    cases.append(("a thing split in two", true, pred, tuple((1 + d) / 2 for d in disc)))  # and the background: 1

    # the 3 x 3 disc is not predicted at all: its pixels are background in the prediction
    true = _map((1001, (1, 3), (1, 3)), (1002, (3, 6), (4, 7)))
    pred = _map((1001, (1, 3), (1, 3)))
    background = 35 / 44                                    # 35 true background pixels, 44 predicted
    cases.append(("a missing thing", true, pred,
                  ((2 / 3 + background) / 2, (1 + background) / 2, (2 / 3 + 1) / 2)))

    # the right pixels, the wrong class: class 1 has a false negative, class 2 a false positive
    true = _map((1001, (1, 4), (1, 4)))
    pred = _map((2001, (1, 4), (1, 4)))
    cases.append(("a thing given the wrong class", true, pred, (1 / 3, 1 / 3, 1 / 3)))

    # the top row predicted as sky (stuff class 3), which the truth does not have: class 3 has one false positive
    true = _map((1001, (2, 4), (2, 4)))
    pred = _map((3000, (0, 1), (0, 8)), (1001, (2, 4), (2, 4)))
    background = 36 / 44
    cases.append(("a stuff class only in the prediction", true, pred,
                  ((background + 1 + 0) / 3, (background + 1 + 0) / 3, (1 + 1 + 0) / 3)))

    # the second disc (2 x 4) predicted as its left half: IoU 4/8 = 0.5 exactly, not a match
    true = _map((1001, (1, 3), (1, 5)), (1002, (4, 6), (1, 5)))
    pred = _map((1001, (1, 3), (1, 5)), (1002, (4, 6), (1, 3)))
    background = 32 / 36
    cases.append(("IoU exactly 0.5", true, pred, ((0.5 + background) / 2, (1 + background) / 2, (0.5 + 1) / 2)))

    # the sky predicted with two instance numbers (3000 and 3001): stuff is one segment per class all the same
    true = _map((3000, (0, 2), (0, 8)), (1001, (3, 5), (2, 5)))
    pred = _map((3000, (0, 2), (0, 4)), (3001, (0, 2), (4, 8)), (1001, (3, 5), (2, 5)))
    cases.append(("stuff pixels carrying instance numbers", true, pred, (1.0, 1.0, 1.0)))
    return cases


_PQ_CASES = _pq_cases()


def _reference_pq(true, pred, things=THINGS, stuffs=STUFFS):
    r = panoptic_quality(true, pred, things=list(things), stuffs=list(stuffs))["all"]
    return r["pq"], r["sq"], r["rq"]


def _pq_variant(true, pred, things=THINGS, stuffs=STUFFS, at_least=False, merge_stuff=True, same_class=True,
                classes="occur", halves=True, product_of_means=False):
    """``(pq, sq, rq)`` of one image with one rule changed: the mistakes :func:`check_panoptic_quality` recognises.

    With the defaults it is the metric itself (the tests check it against :func:`utils.panoptic.panoptic_quality`).
    ``classes``: ``"occur"`` (TP + FP + FN > 0), ``"truth"`` (classes present in the truth) or ``"all"`` (every
    class of ``things`` and ``stuffs``).
    """
    def segments(a):
        if not merge_stuff:
            return a
        category = a // DIVISOR
        return np.where(np.isin(category, stuffs), category * DIVISOR, a)

    t, p = segments(true), segments(pred)
    true_ids, pred_ids = np.unique(t).tolist(), np.unique(p).tolist()
    stats = {c: [0, 0, 0, 0.0] for c in (*things, *stuffs)}   # tp, fp, fn, iou sum
    matched_true, matched_pred = set(), set()
    for tid in true_ids:
        for pid in pred_ids:
            if same_class and tid // DIVISOR != pid // DIVISOR:
                continue
            inter = np.count_nonzero((t == tid) & (p == pid))
            iou = inter / np.count_nonzero((t == tid) | (p == pid))
            if iou > 0.5 or (at_least and iou == 0.5):
                stats[tid // DIVISOR][0] += 1
                stats[tid // DIVISOR][3] += iou
                matched_true.add(tid)
                matched_pred.add(pid)
    for tid in set(true_ids) - matched_true:
        stats[tid // DIVISOR][2] += 1
    for pid in set(pred_ids) - matched_pred:
        stats[pid // DIVISOR][1] += 1
    in_truth = {tid // DIVISOR for tid in true_ids}
    rows = []
    for c, (tp, fp, fn, iou_sum) in stats.items():
        if classes == "occur" and tp + fp + fn == 0 or classes == "truth" and c not in in_truth:
            continue
        sq = iou_sum / tp if tp else 0.0
        denominator = tp + (0.5 * (fp + fn) if halves else fp + fn)
        rq = tp / denominator if denominator else 0.0
        rows.append((sq * rq, sq, rq))
    pq, sq, rq = (float(np.mean(column)) for column in zip(*rows))
    return (sq * rq if product_of_means else pq), sq, rq


_PQ_MISTAKES = (
    (dict(at_least=True), "a pair matches only when IoU > 0.5, strictly"),
    (dict(merge_stuff=False), ("all pixels of a stuff class are one segment, whatever their instance numbers: "
                               "read a stuff pixel as class_id * 1000 before finding the segments")),
    (dict(same_class=False), ("a predicted segment can match only a true segment of the same class: here it is "
                              "a false positive of its class and the true segment a false negative of its own")),
    (dict(classes="truth"), ("average over every class that occurs in the truth or in the prediction "
                             "(TP + FP + FN > 0): a class found only in the prediction counts, with PQ 0")),
    (dict(classes="all"), ("a class with no segment in either map (TP + FP + FN = 0) is left out of the averages, "
                           "not counted as 0")),
    (dict(halves=False), "RQ = TP / (TP + FP/2 + FN/2): each false positive and false negative counts half"),
    (dict(product_of_means=True), ("PQ is the mean over the classes of each class's SQ x RQ, not the product of "
                                   "the mean SQ and the mean RQ")),
)


def _numbers(got, n):
    """``got`` as a tuple of ``n`` floats (Python or NumPy numbers, 0-d arrays or tensors), or ``None``."""
    if isinstance(got, (str, bytes, dict)) or not hasattr(got, "__len__"):
        return None
    try:
        if len(got) != n:
            return None
        values = [v.item() if hasattr(v, "item") else v for v in got]
    except (TypeError, ValueError, RuntimeError):
        return None
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        return None
    return tuple(float(v) for v in values)


def _close(a, b, tol):
    return all(math.isclose(x, y, rel_tol=0, abs_tol=tol) for x, y in zip(a, b))


def check_panoptic_quality(pq_fn: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 11.1: ``pq_fn(true_panoptic, pred_panoptic, things, stuffs) -> (pq, sq, rq)`` for one image.

    The maps are ``(H, W)`` int64 arrays in the course's format, ``class_id * 1000 + instance_number``, with no void
    pixel; ``things`` and ``stuffs`` are lists of class ids. A segment is the set of pixels sharing one value, except
    that all pixels of a stuff class form one segment whatever their instance numbers. A true and a predicted segment
    of the same class match when their IoU is greater than 0.5 (strictly). Per class, ``SQ = sum of the matches' IoU
    / TP`` (0 when TP = 0), ``RQ = TP / (TP + FP/2 + FN/2)``, ``PQ = SQ x RQ``; the answer is the mean of each over
    the classes that occur (TP + FP + FN > 0). Checked on seven 6 x 8 maps against
    :func:`utils.panoptic.panoptic_quality`, to within 1e-6.
    """
    name = "Panoptic Quality of one image"
    hint = ("find the segments with np.unique after setting stuff pixels to class_id * 1000; for each true segment and "
            "each predicted segment of the same class, IoU = |both| / |either|, a match when IoU > 0.5; per class "
            "count TP, FP (unmatched predicted segments) and FN (unmatched true segments), SQ = IoU sum / TP (0 "
            "without a match), RQ = TP / (TP + FP/2 + FN/2), PQ = SQ x RQ; average each over the classes with "
            "TP + FP + FN > 0.")
    early = opening(name, pq_fn, "a function (true_panoptic, pred_panoptic, things, stuffs) -> (pq, sq, rq)",
                    strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        true, pred = case
        values = _numbers(got, 3)
        if values is None:
            return f"{label}: returned {type(got).__name__} {str(got)[:60]}; return three numbers, (pq, sq, rq)"
        want = _reference_pq(true, pred)
        if _close(values, want, 1e-6):
            return None
        names = ("pq", "sq", "rq")
        wrong = [i for i in range(3) if not math.isclose(values[i], want[i], abs_tol=1e-6)]
        msg = (f"{label}: got {', '.join(f'{names[i]} {values[i]:.3f}' for i in wrong)}, expected "
               f"{', '.join(f'{names[i]} {want[i]:.3f}' for i in wrong)}")
        if any(math.isnan(v) for v in values):
            return msg + (": a class without a match (TP = 0) has SQ 0, not 0 / 0, and a class with no segment at "
                          "all is left out of the averages")
        for change, says in _PQ_MISTAKES:
            variant = _pq_variant(true, pred, **change)
            if not _close(variant, want, 1e-6) and _close(values, variant, 1e-6):
                return f"{msg}: {says}"
        for order in ((1, 2, 0), (2, 0, 1), (0, 2, 1), (1, 0, 2), (2, 1, 0)):
            if _close(values, [want[i] for i in order], 1e-6):
                return f"{msg}: the right numbers in the wrong order; return (pq, sq, rq)"
        return msg

    cases = ((f"case {label!r}", (true.copy(), pred.copy(), list(THINGS), list(STUFFS)), (true, pred))
             for label, true, pred, _ in _PQ_CASES)
    problems, unanswered = run_cases(pq_fn, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "equal to the course's panoptic_quality on all seven maps: strict IoU > 0.5, "
                    "stuff as one segment per class, the averages over the classes that occur.", strict,
                    hint if problems else None)


# ---------------------------------------------------------------------------------------------------------------
# Exercise 11.2: PQ by hand

# one class; true objects A, B, C; predictions a (IoU 0.9 with A), b (IoU 0.6 with B), c (IoU 0.4 with C)
_BY_HAND = (0.5, 0.75, 2 / 3)   # TP 2, FP 1, FN 1: SQ (0.9 + 0.6) / 2, RQ 2 / (2 + 1/2 + 1/2), PQ = SQ x RQ
_BY_HAND_TOL = 0.005            # 0.667 for 2/3 is right

_SQ_MISTAKES = (
    (1.9 / 3, "SQ averages the IoU of the matches only; the 0.4 pair is no match (a match needs IoU > 0.5), "
              "so SQ = (0.9 + 0.6) / 2"),
    (1.9 / 2, "the 0.4 pair is no match: leave its IoU out of the sum, SQ = (0.9 + 0.6) / 2"),
    (1.5 / 3, "SQ divides the IoU sum of the matches by the number of matches (TP = 2), not by 3"),
    (1.5 / 4, "SQ divides the IoU sum of the matches by the number of matches (TP = 2), not by 4"),
)
_RQ_MISTAKES = (
    (1.0, "the 0.4 pair is no match (a match needs IoU > 0.5): the third prediction is a false positive and the "
          "third object a false negative, so RQ < 1"),
    (0.5, "RQ = TP / (TP + FP/2 + FN/2): the false positive and the false negative count half each, not whole"),
    (0.8, "there is one false positive (the third prediction) and one false negative (the third object), each "
          "counting half: RQ = 2 / (2 + 1/2 + 1/2)"),
    (2 / 3.5, "the unmatched pair gives one false positive and one false negative, not more: RQ = 2 / (2 + 1/2 + 1/2)"),
)


def _as_number(value):
    """``value`` as a float: a Python or NumPy number, or a numeric text such as ``"0.75"`` or ``"2/3"``."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return None
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        return None
    return float(value)


def check_pq_by_hand(answer, strict: bool = False) -> Feedback:
    """Exercise 11.2: ``answer = (pq, sq, rq)`` for the notebook's hand-made pair.

    One class; three true objects and three predictions; two predictions overlap their objects with IoU 0.9 and
    0.6, the third overlaps the remaining object with IoU 0.4. Right: TP = 2, FP = 1, FN = 1, so SQ = 0.75,
    RQ = 2/3, PQ = 0.5 (each within 0.005; numbers or texts such as ``"2/3"``).
    """
    name = "PQ, SQ and RQ by hand"
    hint = ("first decide which pairs are matches (IoU > 0.5); SQ is the mean IoU of the matches, RQ = TP / (TP + "
            "FP/2 + FN/2), where an unmatched prediction is a false positive and an unmatched true object a false "
            "negative; PQ = SQ x RQ.")
    if is_unanswered(answer):
        return feedback(name, [], "", strict, hint, answer)
    parts = None
    if isinstance(answer, (tuple, list, np.ndarray)) and len(answer) == 3:
        parts = [_as_number(v) for v in answer]
    if parts is None or None in parts:
        return feedback(name, [f"expected three numbers (pq, sq, rq), e.g. (0.1, 0.2, 0.3); got "
                               f"{type(answer).__name__} {str(answer)[:60]}"], "", strict, hint)
    pq, sq, rq = parts
    right_pq, right_sq, right_rq = _BY_HAND

    def near(a, b):
        return abs(a - b) <= _BY_HAND_TOL

    praise = ("right: the 0.9 and 0.6 pairs are matches (TP = 2), the 0.4 pair is not (one FP, one FN); SQ = "
              "(0.9 + 0.6) / 2 = 0.75, RQ = 2 / (2 + 1/2 + 1/2) = 2/3, PQ = 0.75 x 2/3 = 0.5.")
    if near(pq, right_pq) and near(sq, right_sq) and near(rq, right_rq):
        return feedback(name, [], praise, strict)
    if any(all(near(a, b) for a, b in zip(parts, order)) for order in itertools.permutations(_BY_HAND)):
        return feedback(name, ["the right three numbers in the wrong order: give (pq, sq, rq)"], "", strict)
    problems = []
    if near(sq, 1.9 / 3) and near(rq, 1.0):
        problems.append(f"sq {sq:.3f}, rq {rq:.3f}: you counted the 0.4 pair as a match; a match needs IoU > 0.5, so "
                        "the third prediction is a false positive and the third object a false negative")
    else:
        if not near(sq, right_sq):
            why = next((w for v, w in _SQ_MISTAKES if near(sq, v)), None)
            problems.append(f"sq {sq:.3f} is not it" + (f": {why}" if why else ""))
        if not near(rq, right_rq):
            why = next((w for v, w in _RQ_MISTAKES if near(rq, v)), None)
            problems.append(f"rq {rq:.3f} is not it" + (f": {why}" if why else ""))
    if not near(pq, right_pq) and not near(pq, sq * rq):
        problems.append(f"pq {pq:.3f} is not your sq x rq = {sq * rq:.3f}: PQ = SQ x RQ")
    elif not near(pq, right_pq) and not problems:
        problems.append(f"pq {pq:.3f} is not it")
    return feedback(name, problems, praise, strict, hint)
