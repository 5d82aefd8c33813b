"""Instance scores of label maps: object IoU, one-to-one matching, F1 and the Data Science Bowl score.

A *label map* is a 2-D integer array in which ``0`` is the background and every positive id marks
the pixels of one object (one nucleus in the 2018 Data Science Bowl). Ids need not be consecutive
(``{0, 3, 17}`` is fine) and an object need not be connected: all pixels sharing an id are one
object. Everything is read off one contingency table of the two maps, so an image with hundreds of
nuclei costs about as much as a few passes over its pixels:

>>> true = np.array([[1, 1, 0], [0, 2, 2]])
>>> pred = np.array([[5, 5, 0], [0, 0, 7]])
>>> iou, true_ids, pred_ids = label_iou(true, pred)
>>> iou.tolist(), true_ids.tolist(), pred_ids.tolist()
([[1.0, 0.0], [0.0, 0.5]], [1, 2], [5, 7])
>>> match_labels(true, pred)["f1"]      # object 2 is matched with IoU 0.5 exactly: not > 0.5
0.5

Conventions
-----------
* ``true_labels`` and ``pred_labels``: ``(H, W)`` arrays of any integer dtype (not bool), ids >= 0,
  both of the same shape. Lists of lists are accepted too.
* **A hit is IoU > t**, strictly, as in the Data Science Bowl ("a hit if IoU is greater than t").
  One true object predicted as two halves of IoU 0.5 each is therefore not found at ``t = 0.5``.
* **Matching.** For ``t >= 0.5`` the one-to-one matching is unique and needs no search: two objects
  of one label map are disjoint, so they cannot both overlap an object of the other map with
  IoU > 0.5 (each would have to cover more than half of it). Every pair with IoU > t is a match.
  For ``t < 0.5`` an object may overlap several, and the matching is an optimal assignment
  (:func:`scipy.optimize.linear_sum_assignment`): the most matched pairs possible, ties broken by
  the largest summed IoU. (COCO's greedy matching, ``utils.instance.greedy_match``, can find fewer.)
* **Thresholds** must lie in the open interval (0, 1). They are rounded to 10 decimal places first,
  so ``0.7000000000000002`` from ``np.arange(0.5, 1.0, 0.05)`` acts as 0.7: an IoU of exactly 7/10
  is then not a hit at 0.7, as the comparison of the exact fractions says.
* **Empty images.** The per-image convention: when neither map holds an object, precision, recall,
  F1 and the DSB score are 1.0 (nothing to find, nothing wrongly found). Otherwise a ratio whose
  denominator is 0 is 0.0: a prediction with no objects on an image with nuclei has precision 0,
  recall 0 and F1 0, and one with objects on an empty image the same. These per-image values are
  what :func:`score_label_maps` averages in ``mean_image_f1`` and ``mean_image_ap``; the alternative
  that does not depend on this choice, precision, recall and F1 from TP, FP and FN summed over the
  data set, is reported there too (and empty images simply add nothing to it).
* ``mean_matched_iou`` is the mean IoU of the matched pairs, ``NaN`` when there is none.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = [
    "DSB_THRESHOLDS",
    "dsb_average_precision",
    "label_iou",
    "match_labels",
    "score_label_maps",
]

#: The ten IoU thresholds of the 2018 Data Science Bowl, 0.5, 0.55, ..., 0.95.
DSB_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))


# --------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------

def _check_label_map(labels, name: str) -> np.ndarray:
    """``labels`` as a 2-D NumPy integer array with ids >= 0, or a ``ValueError`` naming ``name``."""
    a = np.asarray(labels)
    if a.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D (H, W) label map, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        hint = " (a bool mask is one object: pass mask.astype(int))" if a.dtype == bool else ""
        raise ValueError(f"`{name}` must hold integer object ids, got dtype {a.dtype}{hint}")
    if a.size and np.issubdtype(a.dtype, np.signedinteger) and a.min() < 0:
        bad = np.unique(a[a < 0])[:5].tolist()
        raise ValueError(f"`{name}` holds negative ids {bad}; ids must be >= 0 (0 = background)")
    return a


def _check_pair(true_labels, pred_labels, true_name: str = "true_labels",
                pred_name: str = "pred_labels") -> tuple[np.ndarray, np.ndarray]:
    t = _check_label_map(true_labels, true_name)
    p = _check_label_map(pred_labels, pred_name)
    if t.shape != p.shape:
        raise ValueError(f"`{true_name}` (shape {t.shape}) and `{pred_name}` (shape {p.shape}) "
                         "must have the same shape")
    return t, p


def _check_threshold(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"`{name}` must be a number in (0, 1), got {value!r}")
    t = round(float(value), 10)
    if not 0.0 < t < 1.0:  # also rejects NaN
        raise ValueError(f"`{name}` must lie in the open interval (0, 1), got {value!r}")
    return t


def _check_thresholds(values, name: str = "thresholds") -> np.ndarray:
    try:
        t = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a 1-D sequence of numbers in (0, 1), got {values!r}") from None
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D sequence of numbers in (0, 1), got shape {t.shape}")
    t = np.round(t, 10)
    bad = t[~((t > 0.0) & (t < 1.0))]
    if bad.size:
        raise ValueError(f"`{name}` must lie in the open interval (0, 1), got {bad[:5].tolist()}")
    return t


# --------------------------------------------------------------------------------------------------
# IoU of every pair of objects, from one contingency table
# --------------------------------------------------------------------------------------------------

def _relabel(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map ids to ``0..K`` (0 stays the background): ``(index per pixel, the K object ids sorted)``."""
    if flat.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.int64)
    top = int(flat.max())
    if top <= 4 * flat.size + 1024:
        # Ids small next to the pixel count (the usual case): a lookup table, no sort needed.
        flat = flat.astype(np.intp, copy=False)
        present = np.bincount(flat, minlength=top + 1) > 0
        present[0] = True
        lut = np.cumsum(present) - 1  # background -> 0, the k-th present object id -> k
        return lut[flat], np.flatnonzero(present)[1:].astype(np.int64)
    ids, index = np.unique(flat, return_inverse=True)
    index = index.reshape(-1)
    if ids[0] == 0:
        return index, ids[1:].astype(np.int64)
    return index + 1, ids.astype(np.int64)


def _contingency(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N_true + 1, N_pred + 1)`` int64 pixel counts (row/column 0 = background), true ids, pred ids."""
    ti, true_ids = _relabel(t.reshape(-1))
    pi, pred_ids = _relabel(p.reshape(-1))
    rows, cols = len(true_ids) + 1, len(pred_ids) + 1
    counts = np.bincount(ti * cols + pi, minlength=rows * cols).astype(np.int64, copy=False)
    return counts.reshape(rows, cols), true_ids, pred_ids


def _iou_from_contingency(counts: np.ndarray) -> np.ndarray:
    inter = counts[1:, 1:]
    union = counts[1:, :].sum(1)[:, None] + counts[:, 1:].sum(0)[None, :] - inter
    return inter / union  # every object has at least one pixel, so union >= 1


def label_iou(true_labels, pred_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every true object with every predicted object of two label maps.

    Both maps are relabelled to ``0..K`` and counted jointly with one ``np.bincount`` (a contingency
    table of true object x predicted object), from which every intersection and union is read.

    Parameters
    ----------
    true_labels : (H, W) integer array
        True label map: 0 = background, each positive id one object; ids need not be consecutive.
    pred_labels : (H, W) integer array
        Predicted label map, same conventions and shape.

    Returns
    -------
    iou : (N_true, N_pred) float64 array
        ``iou[i, j]`` in [0, 1] = |true object i ∩ predicted object j| / |union|.
    true_ids : (N_true,) int64 array
        The ids of the true objects, ascending: row ``i`` of ``iou`` is object ``true_ids[i]``.
    pred_ids : (N_pred,) int64 array
        The ids of the predicted objects, ascending (columns of ``iou``).

    Raises
    ------
    ValueError
        If a map is not 2-D, not of an integer dtype or holds negative ids, or the shapes differ.

    Examples
    --------
    >>> iou, t, p = label_iou([[1, 1, 0, 4]], [[0, 2, 2, 0]])
    >>> iou.tolist(), t.tolist(), p.tolist()
    ([[0.3333333333333333], [0.0]], [1, 4], [2])
    """
    t, p = _check_pair(true_labels, pred_labels)
    counts, true_ids, pred_ids = _contingency(t, p)
    return _iou_from_contingency(counts), true_ids, pred_ids


# --------------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------------

def _match_iou(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the matched pairs (IoU > threshold), sorted by row."""
    hits = iou > threshold
    if threshold >= 0.5:
        return np.nonzero(hits)  # at most one hit per row and per column: the matching itself
    if not hits.any():
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    from scipy.optimize import linear_sum_assignment

    rows, cols = np.flatnonzero(hits.any(1)), np.flatnonzero(hits.any(0))
    sub = iou[np.ix_(rows, cols)]
    ok = sub > threshold
    # A matched pair is worth more than all the IoU the assignment could add, so the number of
    # matches comes first and the summed IoU only breaks ties.
    bonus = min(len(rows), len(cols)) + 1.0
    r, c = linear_sum_assignment(np.where(ok, bonus + sub, 0.0), maximize=True)
    keep = ok[r, c]
    return rows[r[keep]], cols[c[keep]]


def _ratio(numerator: int, denominator: int, nothing_anywhere: bool) -> float:
    if denominator > 0:
        return numerator / denominator
    return 1.0 if nothing_anywhere else 0.0


def _scores(tp: int, fp: int, fn: int) -> dict:
    empty = tp + fp + fn == 0
    return {"precision": _ratio(tp, tp + fp, empty), "recall": _ratio(tp, tp + fn, empty),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn, empty)}


def _match_from_iou(iou, true_ids, pred_ids, threshold: float) -> dict:
    r, c = _match_iou(iou, threshold)
    tp = len(r)
    fp, fn = len(pred_ids) - tp, len(true_ids) - tp
    matched = iou[r, c]
    return {"tp": tp, "fp": fp, "fn": fn,
            "matches": [(int(true_ids[i]), int(pred_ids[j]), float(v)) for i, j, v in zip(r, c, matched)],
            **_scores(tp, fp, fn),
            "mean_matched_iou": float(matched.mean()) if tp else math.nan}


def match_labels(true_labels, pred_labels, iou_threshold: float = 0.5) -> dict:
    """Match the objects of two label maps one to one and count hits, misses and false alarms.

    A true and a predicted object match when their IoU is **greater than** ``iou_threshold``. For
    thresholds >= 0.5 the one-to-one matching is unique: two objects of one label map are disjoint,
    so they cannot both overlap an object of the other map with IoU > 0.5, and every pair above the
    threshold is a match. For thresholds below 0.5 an object can overlap several; the matching is
    then an optimal assignment (``scipy.optimize.linear_sum_assignment``) that makes as many pairs
    as possible, ties broken by the largest summed IoU.

    Parameters
    ----------
    true_labels : (H, W) integer array
        True label map: 0 = background, each positive id one object.
    pred_labels : (H, W) integer array
        Predicted label map of the same shape.
    iou_threshold : float in (0, 1)
        A pair is a hit when its IoU is strictly greater (rounded to 10 decimals first).

    Returns
    -------
    dict
        ``"tp"``, ``"fp"``, ``"fn"``: ints, matched pairs, unmatched predicted and unmatched true
        objects. ``"matches"``: list of ``(true_id, pred_id, iou)`` (ints and a float), sorted by
        ``true_id``. ``"precision"`` = TP / (TP + FP), ``"recall"`` = TP / (TP + FN), ``"f1"`` =
        2 TP / (2 TP + FP + FN): floats in [0, 1]; all three are 1.0 when neither map holds an object
        (the per-image convention; for a data set, sum the counts instead, see
        :func:`score_label_maps`), and a ratio with a zero denominator is 0.0 otherwise.
        ``"mean_matched_iou"``: mean IoU of the matched pairs in (``iou_threshold``, 1], ``NaN``
        when nothing matched.

    Raises
    ------
    ValueError
        For a map that is not 2-D, not integer or holds negative ids, shapes that differ, or an
        ``iou_threshold`` outside (0, 1).

    Examples
    --------
    >>> out = match_labels([[1, 1, 0, 2]], [[3, 3, 0, 0]])
    >>> out["tp"], out["fp"], out["fn"], out["matches"], out["recall"]
    (1, 0, 1, [(1, 3, 1.0)], 0.5)
    """
    t, p = _check_pair(true_labels, pred_labels)
    threshold = _check_threshold(iou_threshold, "iou_threshold")
    counts, true_ids, pred_ids = _contingency(t, p)
    return _match_from_iou(_iou_from_contingency(counts), true_ids, pred_ids, threshold)


# --------------------------------------------------------------------------------------------------
# The Data Science Bowl score
# --------------------------------------------------------------------------------------------------

def _dsb_from_iou(iou: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    n_true, n_pred = iou.shape
    out = np.empty(len(thresholds), np.float64)
    for k, t in enumerate(thresholds):
        tp = len(_match_iou(iou, float(t))[0])
        denominator = n_true + n_pred - tp  # TP + FP + FN
        out[k] = tp / denominator if denominator else 1.0
    return out


def dsb_average_precision(true_labels, pred_labels, thresholds=DSB_THRESHOLDS, *,
                          return_per_threshold: bool = False):
    """The 2018 Data Science Bowl score of one image: mean over thresholds of TP / (TP + FP + FN).

    At each threshold ``t`` the objects are matched as in :func:`match_labels` (a hit is IoU > t)
    and the image scores ``TP(t) / (TP(t) + FP(t) + FN(t))``; the score is the mean over ``t``. The
    competition called it "average precision", but it is not COCO's AP: no confidence ranking is
    involved and false negatives count in the denominator. When neither map holds an object every
    ``t`` scores 1.0.

    Parameters
    ----------
    true_labels : (H, W) integer array
        True label map: 0 = background, each positive id one object.
    pred_labels : (H, W) integer array
        Predicted label map of the same shape.
    thresholds : 1-D sequence of float in (0, 1)
        IoU thresholds; default the competition's ``0.5, 0.55, ..., 0.95`` (:data:`DSB_THRESHOLDS`).
        Values below 0.5 use the optimal assignment of :func:`match_labels`.
    return_per_threshold : bool
        Also return the score at each threshold.

    Returns
    -------
    float
        The score in [0, 1].
    (T,) float64 array
        Only with ``return_per_threshold=True``: the score at each threshold, in their order.

    Raises
    ------
    ValueError
        For a map that is not 2-D, not integer or holds negative ids, shapes that differ, or a
        threshold outside (0, 1).

    Examples
    --------
    >>> dsb_average_precision([[1, 1, 1, 0]], [[2, 2, 2, 2]])   # IoU 0.75: a hit for t < 0.75
    0.5
    """
    t, p = _check_pair(true_labels, pred_labels)
    ts = _check_thresholds(thresholds)
    counts, _, _ = _contingency(t, p)
    per_threshold = _dsb_from_iou(_iou_from_contingency(counts), ts)
    score = float(per_threshold.mean())
    return (score, per_threshold) if return_per_threshold else score


# --------------------------------------------------------------------------------------------------
# A data set of images
# --------------------------------------------------------------------------------------------------

def score_label_maps(trues, preds, iou_threshold: float = 0.5, *, thresholds=DSB_THRESHOLDS) -> dict:
    """Instance scores of a data set of label-map pairs, pooled over the images and averaged per image.

    Parameters
    ----------
    trues : sequence of (H_i, W_i) integer arrays
        True label maps (0 = background, each positive id one object). Images may differ in size;
        a ``(B, H, W)`` array is read as ``B`` maps.
    preds : sequence of (H_i, W_i) integer arrays
        Predicted label maps, one per true map and of the same shape as it.
    iou_threshold : float in (0, 1)
        Matching threshold of the counts and F1 (a hit is IoU > ``iou_threshold``).
    thresholds : 1-D sequence of float in (0, 1)
        Thresholds of the per-image DSB score (default the competition's ten).

    Returns
    -------
    dict
        ``"n_images"`` int. ``"tp"``, ``"fp"``, ``"fn"``: ints summed over the images, and
        ``"precision"``, ``"recall"``, ``"f1"`` computed from these sums (the data-set convention;
        1.0 only if no image holds an object). ``"mean_image_f1"`` and ``"mean_image_ap"``: means of
        the per-image F1 (:func:`match_labels`) and DSB score (:func:`dsb_average_precision`), an
        image without objects in either map counting 1.0; ``"image_f1"`` and ``"image_ap"``: these
        per-image values as ``(n_images,)`` float64 arrays. ``"mean_matched_iou"``: mean IoU of all
        matched pairs (``NaN`` if none). ``"foreground_iou"``: IoU of the foreground (label > 0) of
        the true and predicted maps, pixels pooled over all images (1.0 if neither has any).
        Floats lie in [0, 1].

    Raises
    ------
    ValueError
        If ``trues`` and ``preds`` differ in length or are empty, for a map that is not 2-D, not
        integer or holds negative ids (named ``trues[i]`` / ``preds[i]``), a pair whose shapes
        differ, or a threshold outside (0, 1).
    """
    for name, maps in (("trues", trues), ("preds", preds)):
        if isinstance(maps, np.ndarray) and maps.ndim != 3:
            raise ValueError(f"`{name}` must be a sequence of 2-D label maps (or a (B, H, W) array), "
                             f"got an array of shape {maps.shape}")
    if len(trues) != len(preds):
        raise ValueError(f"`trues` ({len(trues)} maps) and `preds` ({len(preds)} maps) must have the same length")
    if len(trues) == 0:
        raise ValueError("`trues` and `preds` are empty; pass at least one pair of label maps")
    threshold = _check_threshold(iou_threshold, "iou_threshold")
    ts = _check_thresholds(thresholds)
    tp = fp = fn = 0
    fg_inter = fg_union = 0
    matched_iou_sum = 0.0
    image_f1, image_ap = [], []
    for i, (true_labels, pred_labels) in enumerate(zip(trues, preds)):
        t, p = _check_pair(true_labels, pred_labels, f"trues[{i}]", f"preds[{i}]")
        counts, true_ids, pred_ids = _contingency(t, p)
        iou = _iou_from_contingency(counts)
        m = _match_from_iou(iou, true_ids, pred_ids, threshold)
        tp, fp, fn = tp + m["tp"], fp + m["fp"], fn + m["fn"]
        matched_iou_sum += sum(v for _, _, v in m["matches"])
        image_f1.append(m["f1"])
        image_ap.append(float(_dsb_from_iou(iou, ts).mean()))
        inter = int(counts[1:, 1:].sum())
        fg_inter += inter
        fg_union += int(counts[1:, :].sum()) + int(counts[:, 1:].sum()) - inter
    image_f1, image_ap = np.array(image_f1, np.float64), np.array(image_ap, np.float64)
    return {"n_images": len(image_f1), "tp": tp, "fp": fp, "fn": fn, **_scores(tp, fp, fn),
            "mean_image_f1": float(image_f1.mean()), "mean_image_ap": float(image_ap.mean()),
            "image_f1": image_f1, "image_ap": image_ap,
            "mean_matched_iou": matched_iou_sum / tp if tp else math.nan,
            "foreground_iou": fg_inter / fg_union if fg_union else 1.0}
