"""Checks for notebook 09 (Segment Anything): the points' positional encoding, a corrective click and the
stability score.

The expected answers come from the ``segment-anything`` package itself (its ``PositionEmbeddingRandom`` and
``calculate_stability_score``) and from :func:`utils.prompting.corrective_click`, so a right answer is equal to
what SAM computes.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np
import torch

from .core import Feedback, feedback, opening, run_cases

# ---------------------------------------------------------------------------------------------------------------
# Exercise 09.1: the positional encoding of point prompts


def _encoding_cases():
    g = torch.Generator().manual_seed(9)
    cases = []
    for label, (h, w), n, f in (("4 points on a 48 x 80 (H x W) image", (48, 80), 4, 3),
                                ("6 points on a 64 x 40 image", (64, 40), 6, 8)):
        points = torch.stack([torch.randint(0, w, (n,), generator=g), torch.randint(0, h, (n,), generator=g)],
                             dim=1).float()
        cases.append((label, points, (h, w), torch.randn(2, f, generator=g)))
    corners = torch.tensor([[0.0, 0.0], [31.0, 0.0], [0.0, 31.0], [31.0, 31.0]])
    cases.append(("the four corner pixels of a 32 x 32 image", corners, (32, 32), torch.randn(2, 4, generator=g)))
    return cases


def _sam_encoding(points, image_size, gaussian):
    """What SAM's prompt encoder computes for ``points`` (N, 2): ``PositionEmbeddingRandom`` with this matrix.

    ``PromptEncoder._embed_points`` adds 0.5 (the pixel centre) before ``forward_with_coords``.
    """
    from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom

    pe = PositionEmbeddingRandom(num_pos_feats=gaussian.shape[1])
    pe.positional_encoding_gaussian_matrix.copy_(gaussian)
    with torch.no_grad():
        return pe.forward_with_coords(points[None] + 0.5, image_size)[0]


def _encoding_variant(points, image_size, gaussian, half=True, centre=True, swap=False, sin_first=True,
                      two_pi=True):
    """The encoding with one step changed: the mistakes the check recognises."""
    h, w = image_size
    if swap:
        h, w = w, h
    c = points + 0.5 if half else points.clone()
    c = torch.stack([c[:, 0] / w, c[:, 1] / h], dim=1)
    if centre:
        c = 2 * c - 1
    c = c @ gaussian
    if two_pi:
        c = 2 * math.pi * c
    parts = [torch.sin(c), torch.cos(c)]
    return torch.cat(parts if sin_first else parts[::-1], dim=-1)


_ENCODING_MISTAKES = (
    (dict(half=False), "the +0.5 is missing: a pixel's coordinate is its centre, so add 0.5 before normalising"),
    (dict(centre=False), "the coordinates stayed in [0, 1]: map them to [-1, 1] with 2c - 1 before the matrix"),
    (dict(swap=True), ("x and y are normalised by the wrong sides: x (a column) is divided by the width W, "
                       "y (a row) by the height H, and image_size is (H, W)")),
    (dict(sin_first=False), "cos comes before sin: SAM concatenates [sin, cos]"),
    (dict(two_pi=False), "the factor 2 pi is missing: the projections are multiplied by 2 pi before sin and cos"),
)


def check_point_encoding(encode: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 09.1: ``encode(points_xy, image_size, gaussian) -> (N, 2F)``, the prompt encoder's point encoding.

    Random Fourier features (Tancik et al., 2020), as SAM's ``PositionEmbeddingRandom``: ``points_xy`` is an
    ``(N, 2)`` float tensor of pixel coordinates ``(x, y)``, ``image_size`` is ``(H, W)`` and ``gaussian`` the
    ``(2, F)`` random matrix. Add 0.5 (the pixel centre), divide x by W and y by H, map to [-1, 1] with
    ``2c - 1``, multiply by ``gaussian`` and by ``2 pi``, and concatenate ``[sin, cos]``.
    """
    name = "the positional encoding of points"
    hint = ("(points + 0.5) / (W, H) puts a pixel's centre in [0, 1]; 2c - 1 maps it to [-1, 1]; then "
            "c @ gaussian, times 2 pi, and torch.cat([sin, cos], dim=-1).")
    early = opening(name, encode, "a function (points_xy, image_size, gaussian) -> features", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        points, size, gaussian = case
        want = _sam_encoding(points, size, gaussian)
        if not isinstance(got, torch.Tensor):
            return f"{label}: returned {type(got).__name__}; return a (N, 2F) tensor"
        if got.shape != want.shape:
            msg = f"{label}: shape {tuple(got.shape)}, expected {tuple(want.shape)} (N points, 2F features)"
            if got.shape == (want.shape[0], want.shape[1] // 2):
                msg += " - concatenate sin and cos along the last dimension"
            return msg
        got = got.detach().float()
        if torch.allclose(got, want, atol=1e-4):
            return None
        msg = f"{label}: the features differ from SAM's by up to {float((got - want).abs().max()):.3f}"
        for change, says in _ENCODING_MISTAKES:
            if torch.allclose(got, _encoding_variant(points, size, gaussian, **change), atol=1e-4):
                return f"{msg} - {says}"
        return msg

    cases = ((label, (p.clone(), size, g.clone()), (p, size, g)) for label, p, size, g in _encoding_cases())
    problems, unanswered = run_cases(encode, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "equal to SAM's prompt encoder on all three, non-square images included.",
                    strict, hint if problems else None)


# ---------------------------------------------------------------------------------------------------------------
# Exercise 09.2: the next click of the evaluation protocol

_NO_CLICK = object()  # stands for a None returned where None is the right answer (a perfect prediction)


def _box(shape, rows, cols):
    mask = np.zeros(shape, dtype=bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


def _click_cases():
    """``(label, pred, truth)`` on 24 x 32 images: not square, so that (y, x) for (x, y) shows."""
    s = (24, 32)
    cases = []
    truth = _box(s, (2, 16), (12, 30))
    cases.append(("a missed hole inside an object", truth & ~_box(s, (6, 11), (18, 23)), truth))
    truth = _box(s, (12, 22), (2, 12))
    cases.append(("a false-positive blob", truth | _box(s, (3, 10), (20, 27)), truth))
    truth = _box(s, (4, 20), (3, 15))
    cases.append(("two error regions of different sizes (a 3 x 3 missed hole, a 7 x 9 false positive)",
                  (truth & ~_box(s, (10, 13), (7, 10))) | _box(s, (8, 15), (20, 29)), truth))
    truth = _box(s, (0, 16), (4, 28))
    cases.append(("a missed strip along the top border of the image", _box(s, (6, 16), (4, 28)), truth))
    cases.append(("a perfect prediction", truth.copy(), truth))
    return cases


def _edge_distance(region, pad=True):
    from scipy.ndimage import distance_transform_edt

    if not pad:
        return distance_transform_edt(region)
    return distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def _as_click(got):
    """``((x, y), label)`` as ints, or ``None`` when ``got`` does not have that form."""
    try:
        (x, y), label = got
        x, y, label = (float(v) for v in (x, y, label))
        if not all(v == int(v) for v in (x, y, label)):
            return None
    except (TypeError, ValueError, OverflowError):
        return None
    return (int(x), int(y)), int(label)


def check_corrective_click(click: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 09.2: ``click(pred, truth) -> ((x, y), label)``, the next simulated click, or ``None`` if none is due.

    ``pred`` and ``truth`` are ``(H, W)`` bool masks. The click goes to the point of the error region
    (``pred XOR truth``) farthest from the region's boundary, the image border counting as boundary (the distance
    transform of the error mask padded with zeros), with label 1 if that point lies in the object, 0 if it does
    not; a prediction equal to the truth needs no click: ``None``. Where several points are equally far from the
    boundary, any of them is right. The reference is :func:`utils.prompting.corrective_click`.
    """
    name = "the next corrective click"
    hint = ("error = pred ^ truth; scipy.ndimage.distance_transform_edt of np.pad(error, 1), cropped back, gives each "
            "error pixel its distance to the boundary; take the argmax (np.unravel_index gives row y, column x) and "
            "read the label from truth.")
    early = opening(name, click, "a function (pred, truth) -> ((x, y), label)", strict, hint)
    if early is not None:
        return early

    def answer(pred, truth):
        perfect = np.array_equal(pred, truth)
        got = click(pred, truth)
        return _NO_CLICK if got is None and perfect else got

    def judge(label, got, case):
        pred, truth = case
        error = pred ^ truth
        if not error.any():
            if got is _NO_CLICK:
                return None
            return f"{label}: returned {got!r}; with no error left there is nothing to correct: return None"
        parsed = _as_click(got)
        if parsed is None:
            return f"{label}: returned {got!r}; return ((x, y), label) with integer pixel coordinates and label 1 or 0"
        (x, y), lab = parsed
        h, w = error.shape
        distance = _edge_distance(error)
        farthest = distance.max()
        inside = 0 <= x < w and 0 <= y < h
        if inside and np.isclose(distance[y, x], farthest):
            if lab == int(truth[y, x]):
                return None
            if lab == 1 - int(truth[y, x]):
                return (f"{label}: the point ({x}, {y}) is right but the label is inverted - 1 when the point lies in "
                        f"the object (the truth), 0 when it does not; the prediction there is always the opposite")
            return f"{label}: the point ({x}, {y}) is right but the label {lab} is neither 1 nor 0"
        msg = f"{label}: ({x}, {y}) is not the point of the error region farthest from its boundary"
        if 0 <= y < w and 0 <= x < h and np.isclose(distance[x, y], farthest):
            return f"{msg} - it is that point as (y, x): return (x, y), x the column and y the row"
        if not inside:
            return f"{msg} - it lies outside the {h} x {w} image (x must be below W = {w}, y below H = {h})"
        if not error[y, x]:
            return f"{msg} - it is not in the error region (pred XOR truth): the prediction is right there"
        unpadded = _edge_distance(error, pad=False)
        if np.isclose(unpadded[y, x], unpadded.max()):
            return (f"{msg} - it would be, were the image border not a boundary; but the border counts as boundary, "
                    f"so pad the error mask with zeros before the distance transform")
        from scipy.ndimage import label as components

        regions, _ = components(error)
        if not np.isclose(distance[regions == regions[y, x]].max(), farthest):
            return (f"{msg} - it lies in a thinner error region: the farthest point over the whole error mask "
                    f"decides which mistake is corrected first")
        return (f"{msg} - it is {distance[y, x]:.2f} pixel(s) from the boundary, the farthest is {farthest:.2f} "
                f"pixel(s) away")

    def raised(label, error, case):
        pred, truth = case
        msg = f"{label}: your function raised {error}"
        if np.array_equal(pred, truth):
            msg += " - a perfect prediction needs no click: return None"
        return msg

    cases = ((label, (pred.copy(), truth.copy()), (pred, truth)) for label, pred, truth in _click_cases())
    problems, unanswered = run_cases(answer, cases, judge, raised)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "right on all five, the border and the perfect prediction included.", strict,
                    hint if problems else None)


# ---------------------------------------------------------------------------------------------------------------
# Exercise 09.3: the stability score of the automatic mask generator


def _stability_cases():
    g = torch.Generator().manual_seed(9)
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(32.0), indexing="ij")
    disk = (8 - torch.sqrt((yy - 12) ** 2 + (xx - 16) ** 2)) * 0.5
    return [
        ("a soft disk (logits falling off from the centre), threshold 0, offset 1", disk, 0.0, 1.0),
        ("random logits on a 20 x 30 image, threshold 0.5, offset 0.25", torch.randn(20, 30, generator=g) * 2,
         0.5, 0.25),
        ("logits all below threshold - offset (an empty mask), threshold 0, offset 1",
         -5 - torch.rand(16, 16, generator=g), 0.0, 1.0),
    ]


def _sam_stability(logits, threshold, offset) -> float:
    """The package's score for one ``(H, W)`` logit map (it works on a batch ``(..., H, W)``)."""
    from segment_anything.utils.amg import calculate_stability_score

    return float(calculate_stability_score(logits[None], threshold, offset)[0])


def _as_number(got):
    """``got`` as a float when it is one number (a Python or NumPy number, a 0-d tensor or array), else ``None``."""
    if isinstance(got, bool):
        return None
    if isinstance(got, numbers.Real):
        return float(got)
    if isinstance(got, (torch.Tensor, np.ndarray)) and got.ndim == 0:
        return float(got)
    return None


def check_stability_score(score: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 09.3: ``score(logits, threshold, offset) -> float``, the stability score of one mask.

    ``logits`` is an ``(H, W)`` float tensor. The score is the IoU of the mask ``logits > threshold + offset``
    and the mask ``logits > threshold - offset``; the first lies inside the second, so the IoU is
    ``area(high) / area(low)``. A Python float or a 0-d tensor is accepted. The package's
    ``segment_anything.utils.amg.calculate_stability_score`` takes a batch ``(..., H, W)`` and returns one score per
    mask. When even the low mask is empty there is no mask at all: the package's 0 / 0 gives nan, which the
    automatic mask generator drops (``nan >= stability_score_thresh`` is False); 0.0 has the same effect, so
    either nan or 0 is accepted there.
    """
    name = "the stability score"
    hint = ("area of (logits > threshold + offset) divided by area of (logits > threshold - offset): the high mask "
            "lies inside the low one, so that ratio is their IoU.")
    early = opening(name, score, "a function (logits, threshold, offset) -> score", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        logits, t, o = case
        value = _as_number(got)
        if value is None:
            shape = f" of shape {tuple(got.shape)}" if isinstance(got, (torch.Tensor, np.ndarray)) else ""
            msg = f"{label}: returned a {type(got).__name__}{shape}; return one number (a Python float or a 0-d tensor)"
            if isinstance(got, (torch.Tensor, np.ndarray)) and got.ndim == 1 and len(got) == 1:
                msg += (" - the package works on a batch of masks and returns one score per mask: take the score out "
                        "(.item() or [0])")
            return msg
        want = _sam_stability(logits, t, o)
        if math.isnan(want):  # the low mask is empty
            if math.isnan(value) or value == 0:
                return None
            return (f"{label}: got {value:.3f} - no pixel is above threshold - offset, so there is no mask to keep: "
                    f"return 0.0 (or nan, as the package's 0 / 0 does)")
        if math.isclose(value, want, abs_tol=1e-6):
            return None
        msg = f"{label}: got {value:.4f}, expected {want:.4f}"
        high, mid, low = ((logits > t + o).sum().item(), (logits > t).sum().item(), (logits > t - o).sum().item())
        def ratio(a, b):
            return a / b if b else math.nan

        if value > 1 + 1e-6:
            if math.isclose(value, ratio(low, high), abs_tol=1e-6):
                msg += " - the offsets are swapped"
            return msg + (": an IoU is at most 1; the mask at threshold + offset is the smaller one and goes on top")
        if any(math.isclose(value, v, abs_tol=1e-6) for v in (ratio(high, mid), ratio(mid, low))):
            return msg + (" - one side used the threshold itself: compare the mask at threshold + offset with the "
                          "mask at threshold - offset")
        if value == 0:
            return msg + " - a ratio of two counts rounded down to 0: divide as floats, not with //"
        return msg

    cases = ((label, (logits.clone(), t, o), (logits, t, o)) for label, logits, t, o in _stability_cases())
    problems, unanswered = run_cases(score, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "equal to SAM's calculate_stability_score, the empty mask included.", strict,
                    hint if problems else None)
