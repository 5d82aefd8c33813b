"""Panoptic segmentation: Panoptic Quality written out, and Panoptic FPN's merge of two outputs.

A *panoptic map* gives every pixel one class and, for the classes that are counted ("things"), the
object it belongs to. The course stores it as one integer per pixel, as :mod:`utils.scenes` does:

* ``class_id * divisor + instance_number`` (``divisor`` is ``PANOPTIC_DIVISOR = 1000``);
* a *segment* is the set of pixels sharing one value. A *stuff* class (sky, water, the background)
  has no instances: all its pixels in an image are one segment, whatever their instance numbers
  (these are read as 0, as COCO's ``panopticapi`` and ``torchmetrics`` do);
* ``VOID = -1`` marks pixels with no label: in the truth, pixels the annotator left unlabelled; in a
  prediction, pixels the model left unassigned (:func:`merge_semantic_and_instances` leaves some).

Panoptic Quality (Kirillov et al., *Panoptic Segmentation*, CVPR 2019), per class::

          sum of IoU over matched pairs         sum IoU / |TP|           |TP|
    PQ = ------------------------------  =  ------------------  x  ----------------------
         |TP| + |FP| / 2 + |FN| / 2          SQ (segmentation)      |TP| + |FP|/2 + |FN|/2
                                                                      RQ (recognition)

A true and a predicted segment of the same class are a *match* (a true positive, TP) when their IoU
is greater than 0.5; an unmatched predicted segment is a false positive (FP) and an unmatched true
segment a false negative (FN). PQ, SQ and RQ of a data set come from TP, FP, FN and the IoU sum
*summed over all its images* per class (not from per-image scores averaged), and the reported PQ is
the mean over the classes that occur (TP + FP + FN > 0) of the per-class values; "things" and
"stuff" average over their own classes.

The rules follow the reference implementation, ``pq_compute_single_core`` in COCO's
``panopticapi/evaluation.py``:

* **Matching is unique without any search.** IoU > 0.5 means the intersection is larger than half
  the union, and the union contains each of the two segments (with void in the truth, the
  predicted segment's labelled pixels; see below), so a match covers more than half of the true
  segment *and* more than half of the predicted one. The predicted segments of one image are
  disjoint, so two of them cannot both cover more than half of one true segment; likewise two true
  segments cannot both cover more than half of one predicted segment. Every pair with IoU > 0.5 is
  therefore a match, and no segment is in two.
* **Void in the truth.** A predicted segment's pixels that fall on true void are removed from its
  area when its IoU is computed: ``union = |pred| + |true| - |intersection| - |pred on void|``.
  An unmatched predicted segment lying mostly on void (more than half of its pixels) is not a
  false positive; it is not counted at all.
* **Void in the prediction** means "no segment here": those pixels simply belong to no predicted
  segment, and a true segment they leave unmatched is a false negative.
* Crowd regions (COCO's ``iscrowd``) are not supported; there are none in the course's data.

Compared with ``torchmetrics.detection.PanopticQuality``: without void pixels in the prediction the
two count the same TP, FP and FN and give the same scores, up to torchmetrics' float32 IoU
(``tests/test_panoptic.py`` checks it on hundreds of random maps). torchmetrics has no void of its
own in a prediction: with ``allow_unknown_preds_category=True`` it turns unknown predicted
classes into the same "void" as the truth's, removes those pixels from the *true* segment's area as
well and forgives a true segment lying mostly on them, so that a model predicting void everywhere
would have no false negative. Here, as in ``panopticapi``, leaving pixels void costs recall. And
a class in neither ``things`` nor ``stuffs`` is an error here, where torchmetrics quietly makes it
void in the truth: mark void pixels ``VOID`` explicitly.

>>> true = np.array([[1001, 1001, 0, 0],
...                  [1001, 1001, 0, 0]])
>>> pred = np.array([[1001, 1001, 1001, 0],
...                  [1001, 1001, 0,    0]])
>>> r = panoptic_quality(true, pred, things=[1], stuffs=[0])
>>> r["per_class"][1]["pq"], r["per_class"][0]["pq"], r["all"]["pq"]
(0.8, 0.75, 0.775)

(The disc matches with IoU 4/5, the background with IoU 3/4; no FP or FN, so RQ = 1 for both.)
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from .validation import check_int

__all__ = [
    "VOID",
    "PQStats",
    "from_category_instance",
    "match_segments",
    "merge_semantic_and_instances",
    "panoptic_quality",
    "pq_from_stats",
    "pq_stats",
    "to_category_instance",
]

#: The value of an unlabelled (truth) or unassigned (prediction) pixel in a panoptic map.
VOID = -1


# --------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------

def _check_classes(things, stuffs) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``things`` and ``stuffs`` as sorted tuples of distinct class ids >= 0, or a ``ValueError``."""
    parsed = []
    for name, values in (("things", things), ("stuffs", stuffs)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"`{name}` must be a collection of class ids (ints >= 0), got {values!r}")
        values = list(values)
        if not all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 0 for v in values):
            raise ValueError(f"`{name}` must hold class ids (ints >= 0), got {values!r}")
        parsed.append(tuple(sorted({int(v) for v in values})))
    things_t, stuffs_t = parsed
    both = sorted(set(things_t) & set(stuffs_t))
    if both:
        raise ValueError(f"a class cannot be both a thing and stuff: {both} are in `things` and `stuffs`")
    if not things_t and not stuffs_t:
        raise ValueError("`things` and `stuffs` are both empty; name at least one class")
    return things_t, stuffs_t


def _check_panoptic(panoptic, name: str, classes: tuple[int, ...], divisor: int) -> np.ndarray:
    """``panoptic`` as a 2-D int64 array of known classes (or ``VOID``), or a ``ValueError`` naming ``name``."""
    a = np.asarray(panoptic)
    if a.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D (H, W) panoptic map, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"`{name}` must hold integers (class_id * divisor + instance), got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and a.min() < VOID:
        bad = np.unique(a[a < VOID])[:5].tolist()
        raise ValueError(f"`{name}` holds {bad}; values must be >= 0, or {VOID} for void pixels")
    present = np.unique(a[a != VOID] // divisor)
    unknown = np.setdiff1d(present, np.asarray(classes, np.int64))
    if unknown.size:
        raise ValueError(f"`{name}` holds classes {unknown[:10].tolist()} that are in neither `things` nor "
                         f"`stuffs` {classes}; mark unlabelled pixels {VOID} (void) instead")
    return a


def _check_pair(true_panoptic, pred_panoptic, things, stuffs, divisor):
    things, stuffs = _check_classes(things, stuffs)
    divisor = check_int("divisor", divisor, 2)
    classes = tuple(sorted(things + stuffs))
    t = _check_panoptic(true_panoptic, "true_panoptic", classes, divisor)
    p = _check_panoptic(pred_panoptic, "pred_panoptic", classes, divisor)
    if t.shape != p.shape:
        raise ValueError(f"`true_panoptic` (shape {t.shape}) and `pred_panoptic` (shape {p.shape}) "
                         "must have the same shape")
    return t, p, things, stuffs, divisor


# --------------------------------------------------------------------------------------------------
# The course's format and torchmetrics' (category, instance) pairs
# --------------------------------------------------------------------------------------------------

def to_category_instance(panoptic, divisor: int = 1000, void_category: int = -1) -> np.ndarray:
    """Split a panoptic map into the ``(..., 2)`` (category, instance) pairs ``torchmetrics`` takes.

    Parameters
    ----------
    panoptic : (H, W) or (N, H, W) integer array
        ``class_id * divisor + instance_number``, values >= 0, or ``VOID`` (-1) for void pixels.
    divisor : int
        The multiplier of the class id (``utils.scenes.PANOPTIC_DIVISOR`` = 1000).
    void_category : int
        The category given to void pixels (their instance is 0). ``torchmetrics.detection.
        PanopticQuality`` treats a category in neither ``things`` nor ``stuffs`` as void in the
        target; in ``preds`` it needs ``allow_unknown_preds_category=True``.

    Returns
    -------
    (..., 2) int64 array
        ``[..., 0]`` the class id, ``[..., 1]`` the instance number in ``[0, divisor)``; as a torch
        tensor (``torch.from_numpy``) with a batch axis in front it is what ``PanopticQuality.update``
        expects.

    Examples
    --------
    >>> to_category_instance(np.array([[0, 2003, -1]])).tolist()
    [[[0, 0], [2, 3], [-1, 0]]]
    """
    divisor = check_int("divisor", divisor, 2)
    a = np.asarray(panoptic)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"`panoptic` must hold integers (class_id * divisor + instance), got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and a.min() < VOID:
        raise ValueError(f"`panoptic` holds {np.unique(a[a < VOID])[:5].tolist()}; values must be >= 0 "
                         f"or {VOID} (void)")
    void = a == VOID
    category = np.where(void, void_category, a // divisor)
    instance = np.where(void, 0, a % divisor)
    return np.stack([category, instance], axis=-1)


def from_category_instance(category_instance, divisor: int = 1000, void_category: int = -1) -> np.ndarray:
    """The inverse of :func:`to_category_instance`: ``(..., 2)`` pairs back to one int64 panoptic map.

    Parameters
    ----------
    category_instance : (..., 2) integer array
        Class id and instance number per pixel; instance numbers in ``[0, divisor)``.
    divisor : int
        The multiplier of the class id.
    void_category : int
        Pixels of this category become ``VOID`` (-1).

    Returns
    -------
    (...) int64 array
        ``class_id * divisor + instance_number``, ``VOID`` where the category is ``void_category``.
    """
    divisor = check_int("divisor", divisor, 2)
    a = np.asarray(category_instance)
    if a.ndim < 1 or a.shape[-1] != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError("`category_instance` must be an integer array of shape (..., 2), got "
                         f"shape {a.shape} and dtype {a.dtype}")
    a = a.astype(np.int64)
    category, instance = a[..., 0], a[..., 1]
    void = category == void_category
    if np.any(~void & ((category < 0) | (instance < 0) | (instance >= divisor))):
        raise ValueError(f"`category_instance` needs categories >= 0 and instances in [0, {divisor}) "
                         "outside void pixels")
    return np.where(void, VOID, category * divisor + instance)


# --------------------------------------------------------------------------------------------------
# One image: segments, matching, TP / FP / FN
# --------------------------------------------------------------------------------------------------

def _segments(a: np.ndarray, stuffs: tuple[int, ...], divisor: int) -> np.ndarray:
    """The segment id of every pixel: stuff pixels lose their instance number (one segment per class)."""
    category = np.where(a == VOID, VOID, a // divisor)
    is_stuff = np.isin(category, stuffs)
    return np.where(is_stuff, category * divisor, a)


def _areas(segments: np.ndarray) -> dict[int, int]:
    ids, counts = np.unique(segments, return_counts=True)
    return {int(i): int(n) for i, n in zip(ids, counts)}


def match_segments(true_panoptic, pred_panoptic, things, stuffs, divisor: int = 1000) -> dict:
    """Match the segments of one image as Panoptic Quality does, and say what became of each.

    Parameters
    ----------
    true_panoptic, pred_panoptic : (H, W) integer arrays
        Panoptic maps of the same shape: ``class_id * divisor + instance_number`` (values >= 0) or
        ``VOID`` (-1). Every class must be in ``things`` or ``stuffs``.
    things, stuffs : collections of int
        The class ids counted per instance, and those with one segment per image; disjoint.
    divisor : int
        The multiplier of the class id (1000 in the course).

    Returns
    -------
    dict
        Segment ids are panoptic values, a stuff segment's being ``class_id * divisor``.

        * ``"matches"``: list of ``(true_id, pred_id, iou)``, IoU in (0.5, 1], sorted by ``true_id``;
        * ``"false_negatives"``: ids of the unmatched true segments, ascending;
        * ``"false_positives"``: ids of the unmatched predicted segments, ascending;
        * ``"ignored"``: ids of unmatched predicted segments that lie mostly (> 1/2) on true void,
          which count neither as false positives nor otherwise;
        * ``"true_areas"`` and ``"pred_areas"``: ``{segment_id: pixel count}``.

    Examples
    --------
    >>> m = match_segments([[1001, 1002]], [[1005, 1005]], things=[1], stuffs=[])
    >>> m["matches"], m["false_negatives"], m["false_positives"]
    ([], [1001, 1002], [1005])
    """
    t, p, things, stuffs, divisor = _check_pair(true_panoptic, pred_panoptic, things, stuffs, divisor)
    t, p = _segments(t, stuffs, divisor), _segments(p, stuffs, divisor)

    # Pixel counts of every segment, and of every (true segment, predicted segment) overlap. A pair
    # is coded as one integer, (true + 1) * base + (pred + 1), so one np.unique counts them all.
    true_areas, pred_areas = _areas(t), _areas(p)
    true_areas.pop(VOID, None)
    pred_areas.pop(VOID, None)
    base = int(p.max(initial=0)) + 2
    codes, counts = np.unique((t.ravel() + 1) * base + (p.ravel() + 1), return_counts=True)
    overlaps = {(int(c) // base - 1, int(c) % base - 1): int(n) for c, n in zip(codes, counts)}

    matches, matched_true, matched_pred = [], set(), set()
    for (tid, pid), inter in overlaps.items():
        if tid == VOID or pid == VOID or tid // divisor != pid // divisor:
            continue  # only two real segments of the same class can match
        on_void = overlaps.get((VOID, pid), 0)  # predicted pixels on unlabelled truth do not count
        union = pred_areas[pid] + true_areas[tid] - inter - on_void
        iou = inter / union
        if iou > 0.5:
            matches.append((tid, pid, iou))
            matched_true.add(tid)
            matched_pred.add(pid)

    false_negatives = sorted(set(true_areas) - matched_true)
    false_positives, ignored = [], []
    for pid in sorted(set(pred_areas) - matched_pred):
        if overlaps.get((VOID, pid), 0) / pred_areas[pid] > 0.5:
            ignored.append(pid)
        else:
            false_positives.append(pid)
    return {"matches": sorted(matches), "false_negatives": false_negatives, "false_positives": false_positives,
            "ignored": ignored, "true_areas": true_areas, "pred_areas": pred_areas}


@dataclass
class PQStats:
    """Per-class counts of Panoptic Quality; add the stats of images (``+`` or ``sum``) to get a data set's.

    Attributes
    ----------
    things, stuffs : tuple of int
        The class ids, sorted.
    classes : tuple of int
        ``things + stuffs`` sorted: the order of the arrays below.
    tp, fp, fn : (C,) int64 arrays
        True positives (matched pairs), false positives and false negatives of each class.
    iou_sum : (C,) float64 array
        The sum of the IoU of the matched pairs of each class.
    """

    things: tuple
    stuffs: tuple
    classes: tuple
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    iou_sum: np.ndarray

    @classmethod
    def zeros(cls, things, stuffs) -> PQStats:
        """Empty counts for these classes (the start of a sum over images)."""
        things, stuffs = _check_classes(things, stuffs)
        n = len(things) + len(stuffs)
        return cls(things, stuffs, tuple(sorted(things + stuffs)), np.zeros(n, np.int64), np.zeros(n, np.int64),
                   np.zeros(n, np.int64), np.zeros(n, np.float64))

    def __add__(self, other):
        if isinstance(other, Integral) and other == 0:  # so that sum(...) works
            return self
        if not isinstance(other, PQStats):
            return NotImplemented
        if (other.things, other.stuffs) != (self.things, self.stuffs):
            raise ValueError(f"cannot add PQStats of different classes: things {self.things}, stuffs "
                             f"{self.stuffs} and things {other.things}, stuffs {other.stuffs}")
        return PQStats(self.things, self.stuffs, self.classes, self.tp + other.tp, self.fp + other.fp,
                       self.fn + other.fn, self.iou_sum + other.iou_sum)

    __radd__ = __add__


def pq_stats(true_panoptic, pred_panoptic, things, stuffs, divisor: int = 1000) -> PQStats:
    """TP, FP, FN and the IoU sum of each class in one image (the matching of :func:`match_segments`).

    Parameters
    ----------
    true_panoptic, pred_panoptic : (H, W) integer arrays
        Panoptic maps of the same shape: ``class_id * divisor + instance_number`` or ``VOID`` (-1).
    things, stuffs : collections of int
        Thing and stuff class ids, disjoint; every class in the maps must be in one of them.
    divisor : int
        The multiplier of the class id.

    Returns
    -------
    PQStats
        Counts in the order of ``PQStats.classes``; add the stats of many images before
        :func:`pq_from_stats`.
    """
    m = match_segments(true_panoptic, pred_panoptic, things, stuffs, divisor)
    stats = PQStats.zeros(things, stuffs)
    divisor = int(divisor)
    index = {c: i for i, c in enumerate(stats.classes)}
    for tid, _pid, iou in m["matches"]:
        stats.tp[index[tid // divisor]] += 1
        stats.iou_sum[index[tid // divisor]] += iou
    for tid in m["false_negatives"]:
        stats.fn[index[tid // divisor]] += 1
    for pid in m["false_positives"]:
        stats.fp[index[pid // divisor]] += 1
    return stats


# --------------------------------------------------------------------------------------------------
# A data set: PQ, SQ and RQ from the summed counts
# --------------------------------------------------------------------------------------------------

def _average(per_class: dict, classes) -> dict:
    counted = [per_class[c] for c in classes if per_class[c]["tp"] + per_class[c]["fp"] + per_class[c]["fn"] > 0]
    if not counted:
        return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "n_classes": 0}
    return {key: float(np.mean([r[key] for r in counted])) for key in ("pq", "sq", "rq")} | {"n_classes": len(counted)}


def pq_from_stats(stats: PQStats) -> dict:
    """PQ, SQ and RQ per class and averaged, from counts summed over a data set.

    Per class: ``SQ = iou_sum / TP`` (0 when TP = 0), ``RQ = TP / (TP + FP/2 + FN/2)``, ``PQ = SQ * RQ``.
    A class with no segment at all (TP + FP + FN = 0) gets 0 for all three, as in ``panopticapi`` and
    ``torchmetrics``, and is left out of the averages.

    Parameters
    ----------
    stats : PQStats
        From :func:`pq_stats`, summed over images.

    Returns
    -------
    dict
        ``"all"``, ``"things"`` and ``"stuff"``: ``{"pq", "sq", "rq"}`` floats in [0, 1], the means
        over the classes of the group that occur, and ``"n_classes"``, how many occur (``NaN``
        values when none does); ``"per_class"``: ``{class_id: {"pq", "sq", "rq", "tp", "fp", "fn",
        "iou_sum"}}``.
    """
    if not isinstance(stats, PQStats):
        raise ValueError(f"`stats` must be a PQStats (from pq_stats), got {type(stats).__name__}")
    per_class = {}
    for i, c in enumerate(stats.classes):
        tp, fp, fn, iou_sum = int(stats.tp[i]), int(stats.fp[i]), int(stats.fn[i]), float(stats.iou_sum[i])
        sq = iou_sum / tp if tp > 0 else 0.0
        denominator = tp + 0.5 * fp + 0.5 * fn
        rq = tp / denominator if denominator > 0 else 0.0
        per_class[c] = {"pq": sq * rq, "sq": sq, "rq": rq, "tp": tp, "fp": fp, "fn": fn, "iou_sum": iou_sum}
    return {"all": _average(per_class, stats.classes), "things": _average(per_class, stats.things),
            "stuff": _average(per_class, stats.stuffs), "per_class": per_class}


def _as_map_list(maps, name: str) -> list:
    if isinstance(maps, np.ndarray) and maps.ndim == 2:
        return [maps]
    if isinstance(maps, np.ndarray) and maps.ndim == 3:
        return list(maps)
    if isinstance(maps, (list, tuple)) and maps and all(np.ndim(m) == 2 for m in maps):
        return list(maps)
    if isinstance(maps, (list, tuple)) and maps and np.ndim(maps) == 2:  # a single map as nested lists
        return [np.asarray(maps)]
    raise ValueError(f"`{name}` must be one (H, W) panoptic map, an (N, H, W) array or a non-empty list of "
                     f"(H, W) maps, got {type(maps).__name__} of shape {np.shape(maps) if maps is not None else None}")


def panoptic_quality(trues, preds, things, stuffs, divisor: int = 1000) -> dict:
    """Panoptic Quality of a data set: per-image matching, counts summed over images, then PQ per class.

    Parameters
    ----------
    trues, preds : (H, W) integer array, (N, H, W) integer array, or list of (H, W) integer arrays
        The true and predicted panoptic maps, image by image (sizes may differ between images, not
        between an image's two maps): ``class_id * divisor + instance_number`` or ``VOID`` (-1).
    things, stuffs : collections of int
        Thing and stuff class ids, disjoint (the scenes: ``THING_CLASSES``, ``STUFF_CLASSES``).
    divisor : int
        The multiplier of the class id.

    Returns
    -------
    dict
        As :func:`pq_from_stats`: ``result["all"]["pq"]`` is the PQ of the data set.
    """
    true_list, pred_list = _as_map_list(trues, "trues"), _as_map_list(preds, "preds")
    if len(true_list) != len(pred_list):
        raise ValueError(f"`trues` and `preds` must hold as many maps, got {len(true_list)} and {len(pred_list)}")
    stats = PQStats.zeros(things, stuffs)
    for t, p in zip(true_list, pred_list):
        stats = stats + pq_stats(t, p, things, stuffs, divisor)
    return pq_from_stats(stats)


# --------------------------------------------------------------------------------------------------
# Route 1: a semantic map and instance masks merged into one panoptic map (Panoptic FPN)
# --------------------------------------------------------------------------------------------------

def _check_fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}")
    return float(value)


def merge_semantic_and_instances(semantic, instance_masks, instance_labels, instance_scores, things, stuffs,
                                 overlap_threshold: float = 0.5, score_threshold: float = 0.5,
                                 stuff_area_limit: int = 64, divisor: int = 1000) -> np.ndarray:
    """Merge a semantic map and scored instance masks into one panoptic map, as Panoptic FPN does.

    The heuristic of Panoptic FPN (Kirillov et al., 2019), with the rules of detectron2's
    ``combine_semantic_and_instance_outputs`` (``detectron2/modeling/meta_arch/panoptic_fpn.py``,
    itself following ``combine_semantic_and_instance_predictions.py`` in COCO's ``panopticapi``):

    1. Instances are taken in order of decreasing score (ties in their given order); the first with
       a score below ``score_threshold`` ends the pass.
    2. An instance with an empty mask is skipped. Of its pixels, those already taken by a
       higher-scoring instance are the *taken fraction*; if it is greater than
       ``overlap_threshold`` the instance is dropped, otherwise it keeps its free pixels only.
    3. Stuff is filled in from the semantic map, class by class, on pixels no instance took: a stuff
       class keeps those pixels unless there are fewer than ``stuff_area_limit`` of them, in which case
       they stay void. Pixels the semantic map gives to a thing class but no instance took stay void.

    Parameters
    ----------
    semantic : (H, W) integer array
        Class id per pixel (e.g. the argmax of a semantic head); every id in ``things`` or ``stuffs``.
    instance_masks : (N, H, W) bool array
        One mask per predicted instance (N may be 0); masks may overlap.
    instance_labels : (N,) integer array
        Class id of each instance, each in ``things``.
    instance_scores : (N,) float array
        Confidence of each instance, any real numbers (typically in [0, 1]).
    things, stuffs : collections of int
        Thing and stuff class ids, disjoint.
    overlap_threshold : float in [0, 1]
        Drop an instance when more than this fraction of its mask is already taken (detectron2: 0.5).
    score_threshold : float
        Instances scoring below this are not used (detectron2: 0.5).
    stuff_area_limit : int >= 0
        The fewest free pixels a stuff class needs to become a segment. detectron2 uses 4096 pixels on
        COCO images of about 800 x 1333 (0.4 % of the image); 64 is about 0.4 % of a 128 x 128 scene.
    divisor : int
        The multiplier of the class id.

    Returns
    -------
    (H, W) int32 array
        The panoptic map: ``class_id * divisor + k`` for the k-th kept instance (``k = 1, 2, ...`` in
        order of decreasing score), ``class_id * divisor`` for stuff, ``VOID`` (-1) for pixels left
        unassigned.

    Examples
    --------
    >>> semantic = np.array([[0, 0, 1, 1]])
    >>> masks = np.array([[[False, True, True, True]]])
    >>> merge_semantic_and_instances(semantic, masks, [1], [0.9], things=[1], stuffs=[0],
    ...                              stuff_area_limit=1).tolist()
    [[0, 1001, 1001, 1001]]
    """
    things, stuffs = _check_classes(things, stuffs)
    divisor = check_int("divisor", divisor, 2)
    overlap_threshold = _check_fraction(overlap_threshold, "overlap_threshold")
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, Real) or np.isnan(score_threshold):
        raise ValueError(f"`score_threshold` must be a number, got {score_threshold!r}")
    stuff_area_limit = check_int("stuff_area_limit", stuff_area_limit, 0)

    sem = np.asarray(semantic)
    if sem.ndim != 2 or not np.issubdtype(sem.dtype, np.integer):
        raise ValueError(f"`semantic` must be an (H, W) integer class map, got shape {sem.shape} and dtype {sem.dtype}")
    unknown = np.setdiff1d(np.unique(sem), np.asarray(things + stuffs, np.int64))
    if unknown.size:
        raise ValueError(f"`semantic` holds classes {unknown[:10].tolist()} that are in neither `things` "
                         f"{things} nor `stuffs` {stuffs}")
    masks = np.asarray(instance_masks)
    if masks.dtype != bool or masks.ndim != 3 or masks.shape[1:] != sem.shape:
        raise ValueError(f"`instance_masks` must be an (N, H, W) bool array with (H, W) = {sem.shape} as "
                         f"`semantic`, got shape {masks.shape} and dtype {masks.dtype}")
    n = masks.shape[0]
    labels = np.asarray(instance_labels)
    if labels.shape != (n,) or (n and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"`instance_labels` must be ({n},) integer class ids, one per mask, got shape "
                         f"{labels.shape} and dtype {labels.dtype}")
    not_things = sorted(set(labels.tolist()) - set(things))
    if not_things:
        raise ValueError(f"`instance_labels` holds {not_things}, which are not in `things` {things}")
    try:
        scores = np.asarray(instance_scores, dtype=np.float64)
    except (TypeError, ValueError):
        scores = None
    if scores is None or scores.shape != (n,) or np.isnan(scores).any():
        raise ValueError(f"`instance_scores` must be ({n},) numbers, one per mask, got {instance_scores!r}")
    if n >= divisor:
        raise ValueError(f"{n} instances cannot be numbered below `divisor` {divisor}")

    panoptic = np.full(sem.shape, VOID, np.int32)
    taken = np.zeros(sem.shape, bool)
    k = 0
    for i in np.argsort(-scores, kind="stable"):  # highest score first
        if scores[i] < score_threshold:
            break  # sorted, so every later instance scores lower still
        mask = masks[i]
        area = int(mask.sum())
        if area == 0:
            continue
        if (mask & taken).sum() / area > overlap_threshold:
            continue  # mostly hidden by better instances: drop it
        free = mask & ~taken
        k += 1
        panoptic[free] = int(labels[i]) * divisor + k
        taken |= free

    for c in stuffs:  # stuff only where no instance is
        free = (sem == c) & ~taken
        if free.sum() >= stuff_area_limit and free.any():
            panoptic[free] = c * divisor
    return panoptic
