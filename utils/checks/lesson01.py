"""Checks for notebook 01 (thresholds, edges, regions): Otsu's threshold, IoU and Dice, region growing."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..classical import between_class_variance
from .core import Feedback, feedback, opening, run_cases


# --------------------------------------------------------------------------------------------- Otsu


def _otsu_cases() -> list[tuple[str, np.ndarray]]:
    """Histograms ``(256,)`` int64 the Otsu check runs: two photos, a gap, two levels, a narrow range."""
    from skimage import data

    gap = np.zeros(256, np.int64)
    gap[20:60] = 5
    gap[180:240] = 3                     # every t in 59..179 splits the same way
    two = np.zeros(256, np.int64)
    two[[40, 200]] = (700, 300)
    rng = np.random.default_rng(1)
    narrow = np.bincount(np.clip(np.concatenate([rng.normal(100, 6, 4000), rng.normal(135, 9, 2500)]), 0, 255)
                         .astype(np.int64), minlength=256)
    return [("camera", np.bincount(data.camera().ravel(), minlength=256)),
            ("coins", np.bincount(data.coins().ravel(), minlength=256)),
            ("two modes with a gap between them", gap),
            ("only two grey levels, 40 and 200", two),
            ("two close modes at 100 and 135", narrow)]


def check_otsu_threshold(otsu: Callable[[np.ndarray], int] | None, strict: bool = False) -> Feedback:
    """Exercise 01.1: ``otsu(hist) -> t``, Otsu's threshold from a 256-bin grey-level histogram.

    ``hist[k]`` counts the pixels of grey level ``k``. Class 0 is the levels ``0 .. t`` and class 1 the
    levels ``t+1 .. 255`` (``image > t`` is the foreground), and ``t`` maximises the between-class variance
    ``w0 w1 (m0 - m1)^2``. Where several thresholds give the same maximum (a gap in the histogram), any
    of them is accepted.
    """
    name = "Otsu's threshold from a histogram"
    hint = ("for every t, w0 = fraction of pixels at levels <= t, m0 and m1 = mean level of each class; "
            "return the t with the largest w0 * w1 * (m0 - m1)**2 (np.cumsum gives all of them at once).")
    early = opening(name, otsu, "a function hist -> threshold", strict, hint)
    if early is not None:
        return early

    def judge(label, got, hist):
        if isinstance(got, (np.ndarray, list, tuple)):
            return (f"on the {label} histogram it returned a {type(got).__name__}; return one grey "
                    "level (an int), not the whole curve")
        try:
            value = float(got)
        except (TypeError, ValueError):
            return f"on the {label} histogram it returned {got!r}; return an int grey level"
        if not math.isfinite(value):
            return f"on the {label} histogram it returned {got!r}; return an int grey level in 0..255"
        sigma = between_class_variance(hist)
        best = sigma.max()
        winners = np.flatnonzero(sigma >= best * (1 - 1e-9))
        if value != round(value) or not 0 <= value <= 255:
            extra = (" (it looks like a fraction of the range; return a grey level 0..255)"
                     if 0 < value < 1 else "")
            return (f"on the {label} histogram it returned {got!r}; a threshold is an integer grey level "
                    f"in 0..255{extra}")
        t = int(round(value))
        if t in winners:
            return None
        levels = np.arange(256)
        mean_level = (hist * levels).sum() / hist.sum()
        span = f"{winners[0]}" if len(winners) == 1 else f"any of {winners[0]}..{winners[-1]}"
        msg = f"on the {label} histogram you answered {t}, Otsu's threshold is {span}"
        valid = (np.cumsum(hist) > 0) & (np.cumsum(hist) < hist.sum())
        if t + 1 in winners or t - 1 in winners:
            msg += (" - off by one: class 0 must hold the levels 0..t *including* t, so that `image > t` is the "
                    "foreground (check where your cumulative sums start and whether you compare with < or <=)")
        elif valid.any() and t == int(np.flatnonzero(valid)[np.argmin(sigma[valid])]):
            msg += " - that is where the between-class variance is *smallest*; Otsu takes the largest"
        elif abs(t - mean_level) < 1.0 and abs(t - winners[0]) > 1:
            msg += " - that is the mean grey level, not the maximum of the between-class variance"
        return msg

    def raised(label, error, hist):
        return f"on the {label} histogram your function raised {error}"

    cases = ((label, (hist.copy(),), hist) for label, hist in _otsu_cases())
    problems, unanswered = run_cases(otsu, cases, judge, raised)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"right on all {len(_otsu_cases())} histograms, ties and gaps included",
                    strict, hint)


# ------------------------------------------------------------------------------------------ IoU / Dice


def _iou_dice_cases() -> list[tuple[str, np.ndarray, np.ndarray, float, float]]:
    """``(label, prediction, truth, iou, dice)`` worked out on paper."""
    a = np.array([[1, 1, 0, 0],
                  [1, 1, 0, 0],
                  [0, 0, 0, 0],
                  [0, 0, 0, 0]], bool)
    b = np.array([[0, 1, 1, 0],
                  [0, 1, 1, 0],
                  [0, 0, 0, 0],
                  [0, 0, 0, 0]], bool)
    big = np.zeros((4, 4), bool)
    big[:3, :3] = True
    empty = np.zeros((4, 4), bool)
    return [
        ("two 2x2 squares sharing one column", a, b, 2 / 6, 4 / 8),
        ("a 2x2 square inside a 3x3 truth", a, big, 4 / 9, 8 / 13),
        ("a 3x3 prediction around a 2x2 truth", big, a, 4 / 9, 8 / 13),
        ("identical masks", b, b.copy(), 1.0, 1.0),
        ("an empty prediction of a non-empty truth", empty, a, 0.0, 0.0),
        ("both masks empty", empty, empty.copy(), 1.0, 1.0),
        ("0/1 uint8 masks (not bool)", a.astype(np.uint8), b.astype(np.uint8), 2 / 6, 4 / 8),
    ]


def check_iou_dice(iou_dice: Callable[[np.ndarray, np.ndarray], tuple[float, float]] | None,
                   strict: bool = False) -> Feedback:
    """Exercise 01.2: ``iou_dice(prediction, truth) -> (iou, dice)`` for two ``(H, W)`` binary masks.

    IoU = ``|P & T| / |P | T|``, Dice = ``2 |P & T| / (|P| + |T|)``; both are 1.0 when both masks are empty.
    Masks may be bool or 0/1 integers.
    """
    name = "IoU and Dice of two masks"
    hint = ("make both masks bool (mask != 0), count the intersection (p & t) and the union (p | t) with "
            "np.count_nonzero, and handle the empty case before dividing.")
    early = opening(name, iou_dice, "a function (prediction, truth) -> (iou, dice)", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        pred, truth, iou, dice = case
        try:
            g_iou, g_dice = (float(v) for v in got)
        except (TypeError, ValueError):
            return f"{label}: returned {got!r}; return a pair of numbers (iou, dice)"
        if np.isclose(g_iou, iou, atol=1e-6) and np.isclose(g_dice, dice, atol=1e-6):
            return None
        msg = f"{label}: got ({g_iou:.4g}, {g_dice:.4g}), expected ({iou:.4g}, {dice:.4g})"
        p, t = pred != 0, truth != 0
        inter = np.count_nonzero(p & t)
        if np.isnan(g_iou) or np.isnan(g_dice):
            msg += " - NaN comes from 0/0: two empty masks agree perfectly, so the score is 1.0"
        elif np.isclose(g_iou, dice, atol=1e-6) and np.isclose(g_dice, iou, atol=1e-6) and iou != dice:
            msg += " - the two numbers are swapped: return (iou, dice)"
        elif p.any() and np.isclose(g_iou, inter / np.count_nonzero(p), atol=1e-6) and not np.isclose(g_iou, iou):
            msg += " - your IoU divides by the prediction's area (that is precision); divide by the union"
        elif t.any() and np.isclose(g_iou, inter / np.count_nonzero(t), atol=1e-6) and not np.isclose(g_iou, iou):
            msg += " - your IoU divides by the truth's area (that is recall); divide by the union"
        elif np.isclose(g_dice, dice / 2, atol=1e-6) and dice > 0:
            msg += " - your Dice is half the right value: the intersection counts twice, 2|P&T| / (|P|+|T|)"
        elif pred.dtype != bool and not np.isclose(g_iou, iou):
            msg += " - with 0/1 integer masks, `p | t` and `p & t` need bool arrays: convert with `mask != 0` first"
        return msg

    def raised(label, error, case):
        if label == "both masks empty":
            error += " - two empty masks agree perfectly: return (1.0, 1.0) instead of dividing by zero"
        return f"{label}: your function raised {error}"

    cases = ((label, (pred.copy(), truth.copy()), (pred, truth, iou, dice))
             for label, pred, truth, iou, dice in _iou_dice_cases())
    problems, unanswered = run_cases(iou_dice, cases, judge, raised)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"right on all {len(_iou_dice_cases())} hand-made cases, empty masks included",
                    strict, hint)


# ---------------------------------------------------------------------------------------- region growing


_OFFSETS = {4: ((-1, 0), (1, 0), (0, -1), (0, 1)),
            8: ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))}


def _grow_waves(image: np.ndarray, seed: tuple[int, int], tolerance: float, rule: str = "mean",
                connectivity: int = 4, inclusive: bool = True) -> np.ndarray:
    """Reference grower, wave by wave: ``(H, W)`` float image -> ``(H, W)`` bool region.

    Each wave takes every pixel next to the region (``connectivity`` 4 or 8) that is not in it and whose
    value is within ``tolerance`` of the reference: the seed's value (``rule="seed"``) or the region's mean
    before the wave (``rule="mean"``). The mean is updated once per wave.
    """
    h, w = image.shape
    region = np.zeros((h, w), bool)
    region[seed] = True
    front = [seed]
    total, count = float(image[seed]), 1
    ref = total
    while front:
        candidates = set()
        for r, c in front:
            for dr, dc in _OFFSETS[connectivity]:
                rr, cc = r + dr, c + dc
                if 0 <= rr < h and 0 <= cc < w and not region[rr, cc]:
                    candidates.add((rr, cc))
        front = []
        for rr, cc in sorted(candidates):
            d = abs(float(image[rr, cc]) - ref)
            if d <= tolerance if inclusive else d < tolerance:
                front.append((rr, cc))
        for rr, cc in front:
            region[rr, cc] = True
            total += float(image[rr, cc])
        count += len(front)
        if rule == "mean":
            ref = total / count
    return region


def _grow_cases() -> list[tuple[str, np.ndarray, tuple[int, int], float]]:
    """``(label, image, seed, tolerance)``: a ramp, a diagonal-only touch, a plateau, and a photo crop."""
    from skimage import data

    ramp = np.tile(np.arange(32, dtype=np.float64), (8, 1))            # grey level = column
    diag = np.full((6, 6), 200.0)
    diag[:3, :3] = 50.0
    diag[3:, 3:] = 50.0                                                 # two dark blocks touching at a corner
    plateau = np.full((10, 12), 100.0)
    plateau[2:8, 3:9] = 130.0
    plateau[4, 5] = 160.0                                               # one outlier inside the plateau
    camera = data.camera()[40:140, 200:300].astype(np.float64)
    return [("a ramp whose grey level rises by 1 per column", ramp, (4, 0), 3.5),
            ("two dark blocks that touch only at a corner", diag, (0, 0), 10.0),
            ("a bright plateau with one outlier", plateau, (5, 6), 20.0),
            ("a 100x100 crop of `camera`", camera, (50, 50), 12.3)]


def check_region_grower(grow: Callable[[np.ndarray, tuple[int, int], float], np.ndarray] | None,
                        strict: bool = False) -> Feedback:
    """Exercise 01.3: ``grow(image, seed, tolerance) -> region`` with the running-mean rule.

    ``image`` is ``(H, W)`` float64, ``seed`` a ``(row, col)`` pair, ``tolerance`` a float. The region starts
    as the seed alone, with mean ``m`` = the seed's value. Each wave adds every pixel that is a 4-neighbour
    of the region, not yet in it, and within ``tolerance`` of ``m`` (``|I - m| <= tolerance``); then ``m``
    becomes the mean of the whole region. Growing stops when a wave adds nothing. The answer is an
    ``(H, W)`` bool mask.
    """
    name = "region growing with a running mean"
    hint = ("start from the seed-rule grower of section 6; after each wave (all pixels that joined in one "
            "pass), set the reference to image[region].mean() instead of keeping the seed's value.")
    early = opening(name, grow, "a function (image, seed, tolerance) -> mask", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        image, seed, tol = case
        got = np.asarray(got)
        if got.shape != image.shape:
            return f"on {label} it returned shape {got.shape}; return a mask shaped like the image {image.shape}"
        if got.dtype != bool:
            if not np.isin(got, (0, 1)).all():
                return f"on {label} it returned {got.dtype} values other than 0/1; return a bool mask"
            got = got.astype(bool)
        want = _grow_waves(image, seed, tol)
        if np.array_equal(got, want):
            return None
        extra, missing = int(np.count_nonzero(got & ~want)), int(np.count_nonzero(want & ~got))
        msg = f"on {label}: {extra} pixel(s) too many and {missing} missing out of {int(want.sum())}"
        if not got[seed]:
            msg += " - the seed itself must be in the region"
        elif np.array_equal(got, _grow_waves(image, seed, tol, rule="seed")):
            msg += (" - this is the fixed rule (compare with the seed's value); here the reference is the mean of "
                    "the region grown so far, updated after each wave")
        elif np.array_equal(got, _grow_waves(image, seed, tol, connectivity=8)):
            msg += " - pixels that touch the region only at a corner joined: use the 4 neighbours up, down, left, right"
        elif np.array_equal(got, _grow_waves(image, seed, tol, inclusive=False)):
            msg += " - a pixel exactly `tolerance` away from the mean must join: compare with <=, not <"
        elif extra and np.array_equal(got, np.abs(image - image[seed]) <= tol):
            msg += (" - that is a threshold of the whole image, not a region: only pixels connected to the seed "
                    "through the region may join")
        elif extra + missing <= max(3, 0.02 * want.sum()):
            msg += (" - close: update the mean once per wave, after all the pixels of that wave have been "
                    "decided against the previous mean, not after every single pixel")
        return msg

    def raised(label, error, case):
        return f"on {label} your function raised {error}"

    cases = ((label, (image.copy(), seed, tol), (image, seed, tol)) for label, image, seed, tol in _grow_cases())
    problems, unanswered = run_cases(grow, cases, judge, raised)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"matches the reference on all {len(_grow_cases())} images", strict, hint)
