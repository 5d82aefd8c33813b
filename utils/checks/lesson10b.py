"""Checks for notebook 10b (Mask2Former): the matching cost of one query and one true segment, and MaskFormer's
semantic inference from a set of (class, mask) pairs.

The references are written out here with NumPy and agree with :func:`utils.models.mask2former.matching_cost` and
:func:`utils.models.mask2former.semantic_from_logits` (``tests/test_checks_lesson10b.py`` checks both), so a right
answer computes what the lesson's model does.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .core import Feedback, feedback, opening, run_cases

__all__ = ["check_pair_cost", "check_semantic_inference"]

# Mask2Former's weights of the three cost terms (Cheng et al., 2022), as build_mask2former sets them
CLASS_WEIGHT, MASK_WEIGHT, DICE_WEIGHT = 2.0, 5.0, 5.0


# ----------------------------------------------------------------------------------------------------------------
# exercise 1: the matching cost of one query and one true segment

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bce(logits, target):
    """Mean binary cross-entropy of mask logits against a {0, 1} mask, written stably."""
    return float(np.mean(np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))))


def _dice_cost(probs, target, smooth=1.0):
    return float(1 - (2 * (probs * target).sum() + smooth) / (probs.sum() + target.sum() + smooth))


def _pair_cost(class_probs, mask_logits, true_class, true_mask):
    """``-2 p(c) + 5 BCE + 5 Dice``: the cost of matching one query to one true segment."""
    return (CLASS_WEIGHT * -float(class_probs[true_class]) + MASK_WEIGHT * _bce(mask_logits, true_mask)
            + DICE_WEIGHT * _dice_cost(_sigmoid(mask_logits), true_mask))


def _pair_cost_cases():
    """``(label, class_probs (C + 1,), mask_logits (H, W), true_class, true_mask (H, W))``: four classes and "no
    object", 8 x 8 masks; a good match, a wrong class, a poor mask, an unsure query."""
    rng = np.random.default_rng(10)
    square = np.zeros((8, 8), np.float64)
    square[2:6, 1:5] = 1
    disc = ((np.mgrid[0:8, 0:8] - 3.5) ** 2).sum(0) < 7
    cases = []

    def probs(logits):
        e = np.exp(logits - np.max(logits))
        return e / e.sum()

    logits = np.where(square > 0, 3.0, -3.0) + rng.normal(0, 0.8, (8, 8))
    cases.append(("a query that found the square (class 2)", probs(np.array([0.1, -1.0, 3.0, 0.2, -0.5])), logits,
                  2, square))
    cases.append(("the same query against the disc (class 1)", probs(np.array([0.1, -1.0, 3.0, 0.2, -0.5])), logits,
                  1, disc.astype(np.float64)))
    shifted = np.where(np.roll(square, 2, axis=1) > 0, 2.0, -2.0) + rng.normal(0, 0.5, (8, 8))
    cases.append(("a mask shifted by two pixels", probs(np.array([-0.3, 0.4, 1.2, 0.0, 0.9])), shifted, 2, square))
    unsure = rng.normal(0, 1.0, (8, 8))
    cases.append(("an unsure query, mostly 'no object'", probs(np.array([0.2, 0.0, -0.4, 0.3, 2.5])), unsure, 3,
                  disc.astype(np.float64)))
    return cases


_PAIR_CASES = _pair_cost_cases()


def _pair_cost_variants(class_probs, mask_logits, true_class, true_mask):
    """Typical wrong costs, each with the message that explains it (first match wins)."""
    p = float(class_probs[true_class])
    s = _sigmoid(mask_logits)
    bce, dice = _bce(mask_logits, true_mask), _dice_cost(s, true_mask)
    right_class, right_mask = CLASS_WEIGHT * -p, MASK_WEIGHT * bce + DICE_WEIGHT * dice
    clipped = np.clip(mask_logits, 1e-6, 1 - 1e-6)
    bce_of_logits_as_probs = float(np.mean(-(true_mask * np.log(clipped) + (1 - true_mask) * np.log(1 - clipped))))
    return [
        (CLASS_WEIGHT * p + right_mask,
         "the class term has the wrong sign: a likely class must make the pair cheaper, so it is -p(c)"),
        (CLASS_WEIGHT * -np.log(p) + right_mask,
         "-log p(c) is the training loss's cross-entropy; the matching cost uses -p(c) itself (bounded, as in DETR)"),
        (CLASS_WEIGHT * (1 - p) + right_mask,
         "1 - p(c) differs from -p(c) only by a constant, so the matching is the same, but the cost here is -p(c)"),
        (-p + bce + dice, "the three terms are weighted: 2 for the class, 5 for the BCE, 5 for the Dice"),
        (right_class + MASK_WEIGHT * bce * true_mask.size + DICE_WEIGHT * dice,
         "the BCE is the mean over the pixels, not the sum"),
        (right_class + MASK_WEIGHT * bce + DICE_WEIGHT * (1 - dice),
         "Dice here is a cost, 1 - Dice coefficient: a perfect mask costs 0"),
        (right_class + MASK_WEIGHT * bce + DICE_WEIGHT * _dice_cost(mask_logits, true_mask),
         "the Dice term takes the mask probabilities, sigmoid(logits), not the logits"),
        (right_class + MASK_WEIGHT * bce + DICE_WEIGHT * _dice_cost(s, true_mask, 0.0),
         "the Dice of the matcher adds 1 to its numerator and denominator: (2 sum(s m) + 1) / (sum(s) + sum(m) + 1)"),
        (right_class + MASK_WEIGHT * _bce(mask_logits, 1 - true_mask) + DICE_WEIGHT * dice,
         "the BCE target is the true mask (1 inside the segment), not its complement"),
        (right_class + MASK_WEIGHT * bce_of_logits_as_probs + DICE_WEIGHT * dice,
         "the BCE is taken on the logits (binary_cross_entropy_with_logits), or on sigmoid(logits); not on raw logits "
         "as if they were probabilities"),
    ]


def check_pair_cost(pair_cost: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 10b.1: ``pair_cost(class_probs, mask_logits, true_class, true_mask) -> float``.

    ``class_probs`` ``(C + 1,)`` one query's softmax (the last entry "no object"); ``mask_logits`` ``(H, W)`` its
    mask logits at the mask's resolution; ``true_class`` an int; ``true_mask`` ``(H, W)`` float in {0, 1}. The cost is
    Mask2Former's, with its weights: ``2 * -p(c) + 5 * mean BCE(logits, mask) + 5 * Dice``, with
    ``Dice = 1 - (2 sum(s m) + 1) / (sum(s) + sum(m) + 1)`` and ``s = sigmoid(logits)``. Checked on four pairs.
    """
    name = "the matching cost of one query and one true segment"
    hint = ("three terms, weighted 2, 5 and 5: minus the query's probability of the segment's class; the mean binary "
            "cross-entropy of the mask logits against the mask; and 1 - (2 sum(s m) + 1) / (sum(s) + sum(m) + 1) "
            "with s = sigmoid(logits).")
    early = opening(name, pair_cost, "a function (class_probs, mask_logits, true_class, true_mask) -> cost",
                    strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        value = got
        if hasattr(got, "item"):
            try:
                value = got.item()                              # a NumPy scalar or a one-element array or tensor
            except (ValueError, RuntimeError):
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return f"{label}: returned {got!r}; return the cost as one number"
        if not np.isfinite(value):
            return f"{label}: returned {value}; the cost is a finite number"
        want = _pair_cost(*case)
        if abs(float(value) - want) <= 1e-4 * max(1.0, abs(want)):
            return None
        msg = f"{label}: got {float(value):.4f}, expected {want:.4f}"
        for wrong, says in _pair_cost_variants(*case):
            if abs(float(value) - wrong) <= 1e-4 * max(1.0, abs(wrong)):
                return f"{msg} - {says}"
        return msg

    cases = ((label, tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args), args)
             for label, *args in _PAIR_CASES)
    problems, unanswered = run_cases(pair_cost, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"the matcher's cost on all {len(_PAIR_CASES)} pairs, term for term.",
                    strict, hint if problems else None)


# ----------------------------------------------------------------------------------------------------------------
# exercise 2: MaskFormer's semantic inference

def _semantic(class_probs, mask_probs):
    """``argmax_c sum_q p_q(c) m_q(x)`` over the real classes ("no object", the last column, left out)."""
    return np.einsum("qc,qhw->chw", class_probs[:, :-1], mask_probs).argmax(0)


def _hard_query(class_probs, mask_probs):
    """Each pixel to its single best query (max over classes of p_q(c) m_q(x)), then that query's class."""
    best = class_probs[:, :-1].max(1)
    q = (best[:, None, None] * mask_probs).argmax(0)
    return class_probs[:, :-1].argmax(1)[q]


def _hard_classes(class_probs, mask_probs):
    """Each query votes only for its most likely class: sum_q [c = argmax p_q] m_q(x)."""
    c = class_probs[:, :-1].argmax(1)
    onehot = np.eye(class_probs.shape[1] - 1)[c]
    return np.einsum("qc,qhw->chw", onehot, mask_probs).argmax(0)


def _with_no_object(class_probs, mask_probs):
    return np.einsum("qc,qhw->chw", class_probs, mask_probs).argmax(0)


def _masks_only(class_probs, mask_probs):
    """The class of the query with the largest mask probability, class probabilities ignored for the choice."""
    return class_probs[:, :-1].argmax(1)[mask_probs.argmax(0)]


def _semantic_cases():
    """``(label, class_probs (Q, C + 1), mask_probs (Q, H, W))``: C = 4 (class 0 the background), the last column
    "no object". Each case is built so that one of the usual shortcuts gives a different map."""
    rng = np.random.default_rng(11)
    cases = []

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    # two unsure queries for class 1 on the left together outweigh one surer query for class 2
    probs = np.array([[0.05, 0.55, 0.05, 0.05, 0.30],
                      [0.05, 0.55, 0.05, 0.05, 0.30],
                      [0.05, 0.05, 0.80, 0.05, 0.05],
                      [0.90, 0.02, 0.02, 0.02, 0.04]])
    masks = np.zeros((4, 6, 8))
    masks[0, :, :5] = 0.9
    masks[1, :, :5] = 0.9
    masks[2, :, 2:] = 0.9
    masks[3] = 0.3
    cases.append(("two unsure queries against one sure query", probs, masks))

    # a 'no object' query with a large mask everywhere: it must not win pixels
    probs = np.array([[0.02, 0.02, 0.02, 0.02, 0.92],
                      [0.70, 0.10, 0.10, 0.05, 0.05],
                      [0.05, 0.05, 0.05, 0.80, 0.05]])
    masks = np.zeros((3, 6, 8))
    masks[0] = 0.95
    masks[1] = 0.6
    masks[2, 1:4, 2:6] = 0.9
    cases.append(("a 'no object' query covering the image", probs, masks))

    # random queries and soft masks, as a model gives them
    for q, shape in ((6, (7, 9)), (10, (8, 8))):
        probs = softmax(rng.normal(0, 2.0, (q, 5)))
        masks = 1 / (1 + np.exp(-rng.normal(0, 3.0, (q, *shape))))
        cases.append((f"{q} random queries on a {shape[0]} x {shape[1]} image", probs, masks))
    return cases


_SEMANTIC_CASES = _semantic_cases()

_SEMANTIC_SHORTCUTS = [
    (_with_no_object, "the last column is 'no object', not a class: leave it out of the sum (class_probs[:, :-1])"),
    (_hard_query, "that gives each pixel to its single best query; semantic inference sums the votes of all queries, "
                  "so several unsure queries can outweigh one sure one"),
    (_hard_classes, "each query votes with all its class probabilities p_q(c), not only for its most likely class"),
    (_masks_only, "the class probabilities weigh each query's mask: scores[c] = sum_q p_q(c) m_q"),
]


def check_semantic_inference(semantic_map: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 10b.2: ``semantic_map(class_probs, mask_probs) -> (H, W) int`` class map.

    ``class_probs`` ``(Q, C + 1)`` the queries' softmax over ``C`` classes and "no object" (last column);
    ``mask_probs`` ``(Q, H, W)`` in [0, 1]. MaskFormer's semantic inference: ``argmax_c sum_q p_q(c) m_q(x)``, "no
    object" left out. Checked on four cases, two built so that the usual shortcuts give other maps.
    """
    name = "semantic inference from (class, mask) pairs"
    hint = ("drop the 'no object' column, then scores[c, y, x] = sum over q of class_probs[q, c] * mask_probs[q, y, x] "
            "(one np.einsum('qc,qhw->chw', ...)) and take the argmax over c.")
    early = opening(name, semantic_map, "a function (class_probs, mask_probs) -> class map", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        probs, masks = case
        want = _semantic(probs, masks)
        try:
            got = np.asarray(got.detach().cpu() if hasattr(got, "detach") else got)
        except Exception:  # an object NumPy cannot read
            return f"{label}: returned {type(got).__name__}; return an (H, W) array of class ids"
        if got.shape == (probs.shape[1] - 1, *want.shape) or got.shape == (probs.shape[1], *want.shape):
            return (f"{label}: returned an array of shape {got.shape}, the per-class scores; return their argmax "
                    f"over the classes, shape {want.shape}")
        if got.shape != want.shape:
            return f"{label}: returned shape {got.shape}, expected {want.shape} (one class id per pixel)"
        if not (np.issubdtype(got.dtype, np.integer) or (np.issubdtype(got.dtype, np.floating)
                                                         and np.all(np.mod(got, 1) == 0))):
            return f"{label}: returned {got.dtype} values that are not class ids; return integers"
        wrong = int((got != want).sum())
        if wrong == 0:
            return None
        msg = f"{label}: {wrong} of {want.size} pixels differ"
        for shortcut, says in _SEMANTIC_SHORTCUTS:
            if np.array_equal(got, shortcut(probs, masks)):
                return f"{msg} - {says}"
        return msg

    cases = ((label, (probs.copy(), masks.copy()), (probs, masks)) for label, probs, masks in _SEMANTIC_CASES)
    problems, unanswered = run_cases(semantic_map, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"the semantic map of all {len(_SEMANTIC_CASES)} cases, including those where one "
                                    "sure query is outvoted and where a 'no object' query covers the image.",
                    strict, hint if problems else None)
