"""Checks for notebook 10 (SegFormer): the cost of efficient self-attention, the output size of an overlapping
patch embedding, and Hungarian matching of predicted and true masks."""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from .core import Feedback, feedback, opening, run_cases

# ----------------------------------------------------------------------------------------------------------------
# exercise 1: keys/values and query-key pairs of efficient self-attention

# (feature-map height, width, sr_ratio): square and rectangular maps, sides that sr does not divide, sr = 1
_ATTENTION_CASES = [
    (128, 128, 8),   # stage 1 of MiT-b0 on a 512 x 512 image
    (64, 64, 4),     # its stage 2
    (24, 24, 8),     # stage 1 of a 96 x 96 image
    (30, 20, 4),     # 30 / 4 and 20 / 4 are not both whole: windows that do not fit are dropped
    (16, 16, 1),     # sr_ratio 1: plain self-attention
    (13, 9, 2),
]


def _attention_cost(height, width, sr_ratio):
    """``(M, N * M)``: key/value tokens after the reduction (a convolution with kernel = stride = sr, no padding),
    and query-key pairs of one head."""
    m = (height // sr_ratio) * (width // sr_ratio)
    return m, height * width * m


def _two_ints(got):
    """``got`` as two Python ints, or ``None`` if it is not a pair of whole numbers."""
    try:
        values = [v.item() if hasattr(v, "item") else v for v in got]
    except TypeError:
        return None
    if len(values) != 2 or not all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return None
    if not all(float(v).is_integer() for v in values):
        return None
    return int(values[0]), int(values[1])


def check_attention_cost(cost: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 10.1: ``cost(height, width, sr_ratio) -> (kv_tokens, pairs)`` for one ``height x width`` feature map.

    The queries are all ``N = height * width`` tokens; the keys and values come from the map reduced by a
    convolution with kernel = stride = ``sr_ratio`` (no padding), ``M = (height // sr) * (width // sr)`` tokens;
    the attention matrix of one head has ``N * M`` entries (query-key pairs). Checked on six maps.
    """
    name = "keys/values and query-key pairs of efficient self-attention"
    hint = ("each side shrinks by sr_ratio (a window that does not fit is dropped): M = (height // sr) * "
            "(width // sr); every one of the N = height * width tokens is a query, so the pairs are N * M.")
    early = opening(name, cost, "a function (height, width, sr_ratio) -> (kv_tokens, pairs)", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        height, width, sr = case
        want_m, want_pairs = _attention_cost(height, width, sr)
        pair = _two_ints(got)
        if pair is None:
            return f"{label}: returned {got!r}; return two whole numbers, (kv_tokens, pairs)"
        m, pairs = pair
        if (m, pairs) == (want_m, want_pairs):
            return None
        n = height * width
        msg = f"{label}: got ({m}, {pairs}), expected ({want_m}, {want_pairs})"
        if m != want_m:
            if m == n and sr > 1:
                return msg + " - that is global attention: the keys and values come from the reduced map"
            if sr > 1 and m in (n // sr, math.ceil(n / sr)):
                return msg + (" - the reduction is per side: sr_ratio along the height and again along the width, "
                              "so the token count shrinks by sr_ratio squared")
            if sr > 1 and m in (n // sr ** 4, math.ceil(n / sr ** 4)):
                return msg + (" - sr_ratio is already per side; squaring it gives the paper's R, which counts tokens: "
                              "do not square it twice")
            if m == math.ceil(height / sr) * math.ceil(width / sr):
                return msg + (" - the reducing convolution has no padding: a window that does not fit is dropped, "
                              "so round each side down")
            if m in (n // sr ** 2, math.ceil(n / sr ** 2), round(n / sr ** 2)):
                return msg + (" - divide each side first, then multiply: (height // sr) * (width // sr); dividing "
                              "the token count rounds differently when a side is not a multiple of sr_ratio")
            return msg + " - the key/value tokens are wrong"
        if pairs == n * n:
            return msg + " - that is the global N x N matrix: every query meets only the M reduced keys, N * M"
        if pairs == m * m:
            return msg + " - the queries are not reduced: all N = height * width tokens query, N * M pairs"
        return msg + " - the key/value tokens are right; the pairs are N * M"

    cases = ((f"{h} x {w} map, sr_ratio {sr}", (h, w, sr), (h, w, sr)) for h, w, sr in _ATTENTION_CASES)
    problems, unanswered = run_cases(cost, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"right on all {len(_ATTENTION_CASES)} maps, the uneven ones and sr_ratio 1 "
                                    "included.", strict, hint if problems else None)


# ----------------------------------------------------------------------------------------------------------------
# exercise 2: the output side of an overlapping patch embedding

# (input side, kernel, stride, padding): SegFormer's stage-1 embedding (7, 4, 3) and later ones (3, 2, 1)
_PATCH_CASES = [
    (96, 7, 4, 3),
    (97, 7, 4, 3),
    (100, 7, 4, 3),
    (33, 7, 4, 3),
    (512, 7, 4, 3),
    (25, 3, 2, 1),
    (7, 3, 2, 1),
    (64, 16, 16, 0),   # ViT's patches: kernel = stride, no overlap
]


def _conv_out(n, kernel, stride, padding):
    return (n + 2 * padding - kernel) // stride + 1


def check_patch_grid(grid: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 10.2: ``grid(n, kernel, stride, padding) -> side`` of the token grid of a patch embedding.

    A convolution's output side, ``floor((n + 2 * padding - kernel) / stride) + 1``; for SegFormer's odd kernels
    with ``padding = kernel // 2`` this is ``ceil(n / stride)``. Checked on eight inputs, sides that the stride
    does not divide and ViT's non-overlapping patches among them.
    """
    name = "the token grid of an overlapping patch embedding"
    hint = ("slide the kernel over the padded input, n + 2 * padding pixels wide: it fits at "
            "floor((n + 2 * padding - kernel) / stride) + 1 positions.")
    early = opening(name, grid, "a function (n, kernel, stride, padding) -> side", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        n, k, s, p = case
        want = _conv_out(n, k, s, p)
        value = got.item() if hasattr(got, "item") else got
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return f"{label}: returned {got!r}; return the side as a whole number"
        if float(value) == want:
            return None
        msg = f"{label}: got {value}, expected {want}"
        if not float(value).is_integer():
            return msg + " - a side is a whole number of positions: round down (//)"
        value = int(value)
        if value == n // s:
            return msg + (" - n // stride (what padding on one side only also gives here) is right only when the "
                          "stride divides n; with padding on both sides the kernel fits once more: count the "
                          "positions with the convolution formula")
        if value == _conv_out(n, k, s, p) - 1:
            return msg + " - count the first position too: ... // stride + 1"
        if value == _conv_out(n, k, s, 0):
            return msg + " - the padding adds padding pixels on each side: the input is n + 2 * padding wide"
        if value == math.ceil((n + 2 * p - k) / s) + 1:
            return msg + " - a window that would run past the padded border is not used: round down, not up"
        return msg

    cases = ((f"n={n}, kernel {k}, stride {s}, padding {p}", (n, k, s, p), (n, k, s, p))
             for n, k, s, p in _PATCH_CASES)
    problems, unanswered = run_cases(grid, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"right on all {len(_PATCH_CASES)} inputs, as torch.nn.Conv2d computes them.",
                    strict, hint if problems else None)


# ----------------------------------------------------------------------------------------------------------------
# exercise 3: Hungarian matching of three predicted and three true masks

# cost[i, j]: the cost of matching prediction i with true mask j (e.g. 1 - mask IoU plus a class cost). Each has
# one optimal assignment; in the first, third and fourth, taking the cheapest free column row by row is worse.
_MATCH_CASES = [
    np.array([[0.10, 0.20, 0.90],
              [0.15, 0.80, 0.90],
              [0.90, 0.90, 0.30]]),
    np.array([[0.10, 0.70, 0.80],
              [0.60, 0.20, 0.90],
              [0.70, 0.80, 0.30]]),
    np.array([[0.30, 0.35, 0.90],
              [0.40, 0.95, 0.95],
              [0.95, 0.50, 0.60]]),
    np.array([[0.20, 0.30, 0.25],
              [0.10, 0.90, 0.80],
              [0.90, 0.15, 0.85]]),
]


def _optimal_assignment(cost):
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    return [int(c) for _, c in sorted(zip(rows, cols))]


def _greedy_assignment(cost):
    """Row by row, each prediction takes the cheapest true mask still free."""
    taken, out = set(), []
    for row in cost:
        j = min((j for j in range(len(row)) if j not in taken), key=lambda j: row[j])
        taken.add(j)
        out.append(j)
    return out


def _total(cost, assignment):
    return float(sum(cost[i, j] for i, j in enumerate(assignment)))


def _as_assignment(got, n):
    """``got`` as a list of ``n`` ints, or a message saying why it is not one."""
    if isinstance(got, tuple) and len(got) == 2 and all(hasattr(g, "__len__") for g in got):
        return None, ("returned a pair of sequences, like linear_sum_assignment's (rows, cols); return only the "
                      "true mask of each prediction, cols in the order of the rows")
    try:
        values = [v.item() if hasattr(v, "item") else v for v in got]
    except TypeError:
        return None, f"returned {got!r}; return a list of {n} indices, assignment[i] = the true mask of prediction i"
    if len(values) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return None, f"returned {got!r}; return a list of {n} integer indices, assignment[i] = the true mask of prediction i"
    return [int(v) for v in values], None


def check_hungarian_match(match: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 10.3: ``match(cost) -> assignment``, ``assignment[i]`` the true mask matched to prediction ``i``.

    ``cost`` is a ``(3, 3)`` NumPy array; the assignment must be a permutation with the lowest total cost
    (checked against :func:`scipy.optimize.linear_sum_assignment` on four matrices, each with a single optimum).
    """
    name = "Hungarian matching of three predicted and three true masks"
    hint = ("an assignment is a permutation of the true masks; with 3 x 3 there are only 3! = 6 of them: add up "
            "cost[i, assignment[i]] for each and keep the cheapest (itertools.permutations).")
    early = opening(name, match, "a function cost -> assignment", strict, hint)
    if early is not None:
        return early

    def judge(label, got, cost):
        n = len(cost)
        assignment, problem = _as_assignment(got, n)
        if problem:
            return f"{label}: {problem}"
        want = _optimal_assignment(cost)
        if assignment == want:
            return None
        msg = f"{label}: got {assignment}, expected {want}"
        if sorted(assignment) != list(range(n)):
            if all(0 <= j < n for j in assignment):
                return msg + (" - a true mask was given to two predictions: each true mask is matched once, so the "
                              "assignment is a permutation (taking each row's cheapest column is not enough)")
            return msg + f" - an index is out of range: true masks are numbered 0..{n - 1}"
        total, best = _total(cost, assignment), _total(cost, want)
        msg += f" (total cost {total:.2f} against {best:.2f})"
        if assignment == _greedy_assignment(cost):
            return msg + (" - that is the greedy choice, row by row the cheapest free true mask: each step looks "
                          "best, but an early choice can take the mask a later prediction needs more; compare "
                          "the totals of all assignments")
        worst = max(itertools.permutations(range(n)), key=lambda p: _total(cost, p))
        if assignment == list(worst):
            return msg + " - that assignment has the highest total cost: the matching minimises the cost"
        inverse = [0] * n
        for i, j in enumerate(assignment):
            inverse[j] = i
        if inverse == want:
            return msg + (" - that is the inverse: assignment[i] is the true mask of prediction i (rows are "
                          "predictions), not the prediction of true mask i")
        return msg + " - a permutation, but not the cheapest one"

    cases = ((f"cost {np.round(c, 2).tolist()}", (c.copy(),), c) for c in _MATCH_CASES)
    problems, unanswered = run_cases(match, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"the optimal assignment on all {len(_MATCH_CASES)} matrices, as "
                                    "scipy.optimize.linear_sum_assignment finds it.", strict,
                    hint if problems else None)
