"""Checks for notebook 06 (Mask R-CNN): bilinear sampling as RoIAlign does it, and greedy IoU matching of
predicted to true instances as COCO evaluation does it."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .core import Feedback, feedback, opening, run_cases


# ------------------------------------------------------------------------------ bilinear sampling

_FEATURE = np.array([[0.0, 1.0, 4.0, 9.0, 2.0],
                     [3.0, 8.0, 5.0, 1.0, 7.0],
                     [6.0, 2.0, 0.0, 4.0, 3.0],
                     [1.0, 9.0, 6.0, 8.0, 5.0]])
# (y, x) points inside the map, none on a pixel centre in both coordinates
_POINTS = [(0.5, 0.5), (1.25, 2.75), (2.6, 0.3), (0.1, 3.9), (2.0, 1.5), (1.7, 3.0), (2.95, 2.05)]


def roi_align_point(feature: np.ndarray, y: float, x: float) -> float:
    """The value torchvision's ``roi_align`` samples at ``(y, x)`` (pixel-centre coordinates).

    A box of zero size at ``(x + 0.5, y + 0.5)`` with ``aligned=True`` (which shifts boxes by half a
    pixel), one output bin and one sample per bin makes RoIAlign sample exactly that one point.
    """
    import torch
    from torchvision.ops import roi_align

    f = torch.as_tensor(np.asarray(feature, dtype=np.float32))[None, None]
    box = torch.tensor([[0.0, x + 0.5, y + 0.5, x + 0.5, y + 0.5]])
    return float(roi_align(f, box, output_size=1, spatial_scale=1.0, sampling_ratio=1, aligned=True))


def _wrong_variants(f, y, x):
    """Values of the usual mistakes at (y, x), to name the one a learner made."""
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, f.shape[0] - 1), min(x0 + 1, f.shape[1] - 1)
    dy, dx = y - y0, x - x0

    def bil(dy_, dx_):
        return ((1 - dy_) * (1 - dx_) * f[y0, x0] + (1 - dy_) * dx_ * f[y0, x1]
                + dy_ * (1 - dx_) * f[y1, x0] + dy_ * dx_ * f[y1, x1])

    out = {
        "nearest": f[min(int(round(y)), f.shape[0] - 1), min(int(round(x)), f.shape[1] - 1)],
        "floor": f[y0, x0],
        "reversed": bil(1 - dy, 1 - dx),
    }
    if x <= f.shape[0] - 1 and y <= f.shape[1] - 1:  # reading feature[x, y]: only possible inside the map
        out["swapped"] = roi_align_point(f, x, y)
    return out


def check_bilinear_sample(bilinear_sample: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 06.1: ``bilinear_sample(feature, y, x) -> float``, the value RoIAlign reads between pixels.

    ``feature`` is a ``(H, W)`` float array whose values sit at integer coordinates (row ``y``, column
    ``x``); the answer at a point inside the map is the bilinear interpolation of its four neighbours.
    Compared with ``torchvision.ops.roi_align`` made to sample that single point.
    """
    name = "bilinear sampling as RoIAlign does it"
    hint = ("take the four neighbours y0 = floor(y), x0 = floor(x), y0 + 1, x0 + 1; with ly = y - y0 and "
            "lx = x - x0 the weights are (1 - ly)(1 - lx), (1 - ly) lx, ly (1 - lx) and ly lx.")
    early = opening(name, bilinear_sample, "a function (feature, y, x) -> float", strict, hint)
    if early is not None:
        return early

    def judge(label, got, point):
        y, x = point
        try:
            value = float(got)
        except (TypeError, ValueError):
            return f"{label}: returned {got!r}; return one number"
        want = roi_align_point(_FEATURE, y, x)
        if abs(value - want) <= 1e-4:
            return None
        msg = f"{label}: got {value:.4g}, RoIAlign samples {want:.4g}"
        variants = _wrong_variants(_FEATURE, y, x)
        if abs(value - variants["nearest"]) <= 1e-4 or abs(value - variants["floor"]) <= 1e-4:
            msg += (" - that is one pixel's value: rounding the coordinate is RoIPool's quantisation; "
                    "interpolate between the four neighbours instead")
        elif abs(value - variants["reversed"]) <= 1e-4:
            msg += " - the weights are reversed: the nearer neighbour must get the larger weight"
        elif variants.get("swapped") is not None and abs(value - variants["swapped"]) <= 1e-4:
            msg += " - x and y are swapped: y is the row (first index), x the column"
        return msg

    cases = ((f"(y={y}, x={x})", (_FEATURE.copy(), y, x), (y, x)) for y, x in _POINTS)
    problems, unanswered = run_cases(bilinear_sample, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"matches torchvision's roi_align at all {len(_POINTS)} points", strict, hint)


# ------------------------------------------------------------------------------ greedy matching

# (IoU matrix with rows sorted by decreasing score, threshold)
_MATCH_CASES = [
    (np.array([[0.9, 0.1], [0.2, 0.7]]), 0.5),                      # the easy case: a diagonal
    (np.array([[0.8, 0.0], [0.6, 0.0]]), 0.5),                      # a duplicate: the second is a false positive
    (np.array([[0.6, 0.9], [0.0, 0.55]]), 0.5),                     # take the best unmatched, not the first above
    (np.array([[0.6, 0.0], [0.9, 0.0], [0.0, 0.4]]), 0.5),          # score order wins over IoU; 0.4 < 0.5
    (np.array([[0.5, 0.2, 0.0], [0.3, 0.0, 0.75], [0.0, 0.45, 0.0]]), 0.5),  # IoU equal to the threshold counts
    (np.array([[0.7, 0.65], [0.68, 0.0]]), 0.5),                     # greedy is not the best assignment
    (np.array([[0.7, 0.65], [0.68, 0.0]]), 0.75),                    # a strict threshold: nothing matches
    (np.zeros((2, 0)), 0.5),                                        # an image with no true instance
]


def _reference_pairs(iou, threshold):
    from ..instance import greedy_match

    return [(i, j) for i, j, _ in greedy_match(iou, threshold)]


def _hungarian_pairs(iou, threshold):
    from scipy.optimize import linear_sum_assignment

    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if iou[i, j] >= threshold)


def check_greedy_match(match: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 06.2: ``match(iou, iou_threshold) -> list of (pred_index, true_index)``.

    ``iou`` is a ``(K, N)`` matrix whose rows (predictions) are sorted by decreasing score. Going
    down the rows, each prediction takes the still unmatched true instance with the highest IoU if
    that IoU is at least ``iou_threshold``. Checked against :func:`utils.instance.greedy_match` on
    eight matrices; the order of the pairs does not matter.
    """
    name = "greedy IoU matching of predicted and true instances"
    hint = ("keep a set of true instances already taken; for each row i in order, look at the columns not "
            "taken yet, pick the one with the largest IoU, and match it if IoU >= iou_threshold.")
    early = opening(name, match, "a function (iou, iou_threshold) -> list of pairs", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        iou, threshold = case
        try:
            pairs = sorted((int(p[0]), int(p[1])) for p in got)
        except (TypeError, ValueError, IndexError):
            return f"{label}: returned {got!r}; return a list of (pred_index, true_index) pairs"
        want = sorted(_reference_pairs(iou, threshold))
        if pairs == want:
            return None
        msg = f"{label}: got {pairs}, expected {want}"
        k, n = iou.shape
        if any(not (0 <= i < k and 0 <= j < n) for i, j in pairs):
            if k == 0 or n == 0:
                return msg + " - with no predictions or no true instances there is nothing to match"
            return msg + f" - a pair is out of range: pred_index must be in 0..{k - 1} and true_index in 0..{n - 1}"
        trues = [j for _, j in pairs]
        preds = [i for i, _ in pairs]
        if len(set(trues)) < len(trues):
            msg += " - a true instance was matched twice; once taken it is gone (a duplicate is a false positive)"
        elif len(set(preds)) < len(preds):
            msg += " - a prediction was matched twice; each prediction takes at most one true instance"
        elif any(iou[i, j] < threshold for i, j in pairs):
            msg += " - a pair below the threshold was matched; such a prediction stays unmatched"
        elif pairs == _hungarian_pairs(iou, threshold) and pairs != want:
            msg += (" - that is the best overall assignment (Hungarian); COCO matches greedily, "
                    "in score order, and never revisits a match")
        elif any(iou[i, j] == threshold for i, j in want) and len(pairs) < len(want):
            msg += " - an IoU equal to the threshold counts as a match (>=)"
        return msg

    cases = ((f"iou={np.round(iou, 2).tolist()}, threshold {threshold}", (iou.copy(), threshold), (iou, threshold))
             for iou, threshold in _MATCH_CASES)
    problems, unanswered = run_cases(match, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"same matches as COCO's greedy rule on all {len(_MATCH_CASES)} matrices",
                    strict, hint)
