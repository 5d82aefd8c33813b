"""Segmentation metrics from one confusion matrix: pixel accuracy, IoU, Dice, and the boundary F-score.

Everything region-based is read off a single ``(C, C)`` confusion matrix, accumulated over a whole
loader with one ``torch.bincount`` per batch (on the CPU or the GPU, wherever the tensors live):

>>> cm = ConfusionMatrix(num_classes=4)
>>> for images, masks in loader:                                   # doctest: +SKIP
...     cm.update(model(images), masks)                            # logits or labels
>>> cm.compute()["miou"]                                           # doctest: +SKIP

Conventions
-----------
* ``pred``: either ``(B, H, W)`` integer class ids in ``[0, num_classes)``, or ``(B, C, H, W)`` floating
  point scores (logits or probabilities, ``C == num_classes``) that are turned into ids with ``argmax``
  over dimension 1. Any shape works for label maps as long as it equals ``target``'s.
* ``target``: ``(B, H, W)`` integer class ids in ``[0, num_classes)``, or ``ignore_index`` for pixels
  that carry no label (they are left out of every count).
* The confusion matrix: ``(C, C)`` ``int64``; rows are the true class, columns the predicted class,
  ``cm[i, j]`` = number of pixels of class ``i`` predicted as ``j``.
* **Undefined classes.** A class absent from both the prediction and the truth has no IoU or Dice
  (0 / 0): it is reported as ``NaN`` and left out of the means (``miou`` and ``mdice`` are NaN-means).
  A class present in only one of them scores 0, as it should.

IoU and Dice of one class are tied: ``Dice = 2 IoU / (1 + IoU)`` (and ``IoU = Dice / (2 - Dice)``), so
they rank the classes of one prediction in the same order; the means over classes need not agree.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .validation import check_int

__all__ = [
    "ConfusionMatrix",
    "boundary_f_score",
    "confusion_matrix",
    "dice_from_confusion",
    "inner_boundary",
    "iou_from_confusion",
    "pixel_accuracy_from_confusion",
    "recall_precision_from_confusion",
]


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"`{name}` must be a torch tensor or NumPy array, got {type(x).__name__}")


def _to_labels(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Turn ``pred`` into a label map shaped like ``target`` (argmax over dim 1 for scores)."""
    if pred.ndim == target.ndim + 1:
        if pred.shape[1] != num_classes:
            raise ValueError(f"`pred` holds scores for {pred.shape[1]} classes (shape {tuple(pred.shape)}) "
                             f"but `num_classes` is {num_classes}")
        pred = pred.argmax(dim=1)
    elif pred.is_floating_point():
        raise ValueError(f"`pred` is floating point with shape {tuple(pred.shape)}; pass integer class ids shaped "
                         f"like `target` {tuple(target.shape)}, or (B, C, H, W) scores")
    if pred.shape != target.shape:
        raise ValueError(f"`pred` (shape {tuple(pred.shape)}) and `target` (shape {tuple(target.shape)}) must "
                         "have the same shape (or `pred` one extra class dimension at dim 1)")
    return pred


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = 255) -> torch.Tensor:
    """The ``(C, C)`` confusion matrix of a batch, with one ``torch.bincount``.

    Parameters
    ----------
    pred : (B, H, W) integer tensor, or (B, C, H, W) float tensor
        Predicted class ids in ``[0, num_classes)``, or per-class scores (argmax over dim 1 is taken).
        NumPy arrays are accepted too.
    target : (B, H, W) integer tensor
        True class ids in ``[0, num_classes)``, or ``ignore_index``.
    num_classes : int
        ``C``, the number of classes.
    ignore_index : int or None
        Label of unlabelled pixels in ``target``; they are not counted. ``None``: every pixel counts.

    Returns
    -------
    (C, C) torch.LongTensor
        ``cm[i, j]`` = number of pixels whose true class is ``i`` and predicted class ``j``; on the
        device of ``target``.

    Raises
    ------
    ValueError
        If the shapes disagree, or a class id lies outside ``[0, num_classes)``.

    Examples
    --------
    >>> confusion_matrix(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]), num_classes=2)
    tensor([[1, 1],
            [0, 1]])
    """
    num_classes = check_int("num_classes", num_classes)
    pred, target = _as_tensor(pred, "pred"), _as_tensor(target, "target")
    if target.is_floating_point():
        raise ValueError(f"`target` must hold integer class ids, got dtype {target.dtype}")
    pred = _to_labels(pred, target, num_classes)
    if pred.device != target.device:
        pred = pred.to(target.device)
    C = num_classes
    # int32 halves the memory traffic of the element-wise steps whenever the pair index fits in it.
    top = max(C, (ignore_index or 0) + 1)
    dtype = torch.int32 if top * C < 2**31 else torch.int64
    t, p = target.reshape(-1).to(dtype), pred.reshape(-1).to(dtype)
    if t.numel() == 0:
        return torch.zeros(C, C, dtype=torch.int64, device=target.device)
    lo, hi = torch.aminmax(p)
    if lo < 0 or hi >= C:
        raise ValueError(f"`pred` holds class ids in [{int(lo)}, {int(hi)}], outside [0, {C})")
    lo, hi = torch.aminmax(t)
    if ignore_index is None or ignore_index >= C:
        # Fast path: an ignored pixel's pair index t * C + p lands past the C * C cells and is dropped.
        allowed_max = C - 1 if ignore_index is None else ignore_index
        if lo < 0 or hi > allowed_max:
            _raise_bad_target(t, C, ignore_index)
        counts = torch.bincount(t * C + p, minlength=C * C)
        cm = counts[: C * C]
        n_ignored = 0 if ignore_index is None else int((t == ignore_index).sum())
        if int(cm.sum()) + n_ignored != t.numel():  # some ids between C and ignore_index
            _raise_bad_target(t, C, ignore_index)
    else:
        # ignore_index inside [0, C) or negative (PyTorch's -100): route ignored pixels to one extra bin.
        valid = t != ignore_index
        t_valid = torch.where(valid, t, torch.zeros_like(t))
        lo, hi = torch.aminmax(t_valid)
        if lo < 0 or hi >= C:
            _raise_bad_target(t, C, ignore_index)
        index = torch.where(valid, t_valid * C + p, torch.full_like(t, C * C))
        cm = torch.bincount(index, minlength=C * C + 1)[: C * C]
    return cm.long().reshape(C, C)


def _raise_bad_target(t: torch.Tensor, num_classes: int, ignore_index) -> None:
    bad = (t < 0) | (t >= num_classes)
    if ignore_index is not None:
        bad &= t != ignore_index
    values = torch.unique(t[bad])[:8].tolist()
    raise ValueError(f"`target` holds class ids {values}, outside [0, {num_classes})"
                     + ("" if ignore_index is None else f" and not the ignore_index {ignore_index}"))


def _check_cm(cm) -> torch.Tensor:
    cm = _as_tensor(cm, "cm")
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"`cm` must be a square (C, C) confusion matrix, got shape {tuple(cm.shape)}")
    return cm.double()


def iou_from_confusion(cm) -> torch.Tensor:
    """Per-class intersection over union, ``TP / (TP + FP + FN)``.

    Parameters
    ----------
    cm : (C, C) tensor
        Confusion matrix, rows = truth, columns = prediction.

    Returns
    -------
    (C,) float64 tensor
        IoU of each class in [0, 1]; ``NaN`` for a class absent from both truth and prediction.
    """
    cm = _check_cm(cm)
    tp = cm.diagonal()
    denominator = cm.sum(0) + cm.sum(1) - tp
    return torch.where(denominator > 0, tp / denominator.clamp(min=1), torch.full_like(tp, math.nan))


def dice_from_confusion(cm) -> torch.Tensor:
    """Per-class Dice coefficient (F1 score), ``2 TP / (2 TP + FP + FN)``.

    Parameters
    ----------
    cm : (C, C) tensor
        Confusion matrix, rows = truth, columns = prediction.

    Returns
    -------
    (C,) float64 tensor
        Dice of each class in [0, 1]; ``NaN`` for a class absent from both truth and prediction.
    """
    cm = _check_cm(cm)
    tp = cm.diagonal()
    denominator = cm.sum(0) + cm.sum(1)
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.full_like(tp, math.nan))


def pixel_accuracy_from_confusion(cm) -> float:
    """Fraction of counted pixels whose predicted class is right, ``trace(cm) / sum(cm)``.

    Returns a float in [0, 1], or ``NaN`` when the matrix counts no pixel.
    """
    cm = _check_cm(cm)
    total = cm.sum()
    return float(cm.trace() / total) if total > 0 else math.nan


def recall_precision_from_confusion(cm, zero_division: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class recall ``TP / (TP + FN)`` (found / true) and precision ``TP / (TP + FP)`` (right / predicted).

    What a loss or a class weight trades for a rare class: finding more of it (recall) against calling other
    pixels by its name (precision). A class never true has no recall and a class never predicted has no
    precision; both get ``zero_division`` (0, as scikit-learn's ``precision_score`` and ``recall_score`` do
    after their warning; pass ``float("nan")`` to leave them out of means).

    Returns
    -------
    (recall, precision)
        Two ``(C,)`` float64 tensors.
    """
    cm = _check_cm(cm).double()
    tp, true, predicted = cm.diagonal(), cm.sum(1), cm.sum(0)
    fill = torch.full_like(tp, float(zero_division))
    recall = torch.where(true > 0, tp / true.clamp(min=1), fill)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), fill)
    return recall, precision


def _nanmean(values: torch.Tensor) -> float:
    keep = ~torch.isnan(values)
    return float(values[keep].mean()) if keep.any() else math.nan


class ConfusionMatrix:
    """Accumulate a confusion matrix over batches and read every region metric off it.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C``.
    ignore_index : int or None
        Label of unlabelled pixels in the targets (not counted).

    Examples
    --------
    >>> cm = ConfusionMatrix(2)
    >>> cm.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]))
    >>> round(cm.compute()["miou"], 3)
    0.5
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255):
        self.num_classes = check_int("num_classes", num_classes)
        self.ignore_index = ignore_index
        self._matrix: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget everything counted so far."""
        self._matrix = None

    @torch.no_grad()
    def update(self, pred, target) -> None:
        """Add one batch: ``pred`` (B, H, W) labels or (B, C, H, W) scores, ``target`` (B, H, W) labels."""
        batch = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self._matrix = batch if self._matrix is None else self._matrix + batch.to(self._matrix.device)

    @property
    def matrix(self) -> torch.Tensor:
        """The ``(C, C)`` int64 matrix counted so far (zeros before the first update)."""
        if self._matrix is None:
            return torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        return self._matrix

    def compute(self) -> dict:
        """Metrics of everything counted so far.

        Returns
        -------
        dict
            ``"pixel_accuracy"`` float in [0, 1]; ``"iou"`` and ``"dice"`` ``(C,)`` float64 CPU tensors
            (NaN for classes absent from truth and prediction); ``"miou"`` and ``"mdice"`` floats, the
            means over the defined classes.

        Raises
        ------
        RuntimeError
            If no batch was added yet.
        """
        if self._matrix is None:
            raise RuntimeError("nothing counted yet: call .update(pred, target) with at least one batch "
                               "before .compute()")
        cm = self._matrix.cpu()
        iou, dice = iou_from_confusion(cm), dice_from_confusion(cm)
        return {"pixel_accuracy": pixel_accuracy_from_confusion(cm), "iou": iou, "miou": _nanmean(iou),
                "dice": dice, "mdice": _nanmean(dice)}

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index})"


# --------------------------------------------------------------------------------------------------
# Boundary F-score
# --------------------------------------------------------------------------------------------------

def inner_boundary(masks: torch.Tensor) -> torch.Tensor:
    """Inner boundary of binary masks: the pixels of a mask that have a 4-neighbour outside it.

    Parameters
    ----------
    masks : (N, H, W) bool tensor

    Returns
    -------
    (N, H, W) bool tensor
        True on boundary pixels. The image border does not count as a boundary (nothing is known
        outside the image).
    """
    if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool or masks.ndim != 3:
        raise ValueError("`masks` must be an (N, H, W) bool tensor, got "
                         + (f"shape {tuple(masks.shape)} and dtype {masks.dtype}" if isinstance(masks, torch.Tensor)
                            else type(masks).__name__))
    import torch.nn.functional as F

    x = masks.float().unsqueeze(1)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], device=x.device).view(1, 1, 3, 3)
    # Replicate-pad so that pixels on the image border keep their neighbours' value.
    inside = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel) > 4.5
    return masks & ~inside.squeeze(1)


def _dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of ``(N, H, W)`` bool masks by a disc of ``radius`` pixels (Euclidean)."""
    import torch.nn.functional as F

    if radius == 0:
        return masks
    r = torch.arange(-radius, radius + 1, device=masks.device, dtype=torch.float32)
    disc = ((r.view(-1, 1) ** 2 + r.view(1, -1) ** 2) <= radius * radius + 1e-6).float()
    hit = F.conv2d(masks.float().unsqueeze(1), disc.view(1, 1, *disc.shape), padding=radius)
    return hit.squeeze(1) > 0.5


def _fill_ignored_from_nearest(target: torch.Tensor, ignore_index) -> torch.Tensor:
    """``(B, H, W)`` labels with every ``ignore_index`` pixel given the class of its nearest labelled pixel.

    An ignored band between two classes (Oxford-IIIT Pet's trimap border, VOC's object outlines) would
    otherwise hold no boundary at all, since a boundary is where one class meets another: filling it from
    both sides puts the true boundary in the middle of the band, where a perfect prediction puts its own.
    An image with no labelled pixel is left as it is (it then has no boundary).
    """
    if ignore_index is None or not bool((target == ignore_index).any()):
        return target
    from scipy import ndimage as ndi

    filled = target.cpu().numpy().copy()
    for image in filled:
        ignored = image == ignore_index
        if ignored.all() or not ignored.any():
            continue
        _, (rows, cols) = ndi.distance_transform_edt(ignored, return_indices=True)
        image[ignored] = image[rows[ignored], cols[ignored]]
    return torch.from_numpy(filled).to(target.device)


def boundary_f_score(pred, target, tolerance: int = 2, *, num_classes: int | None = None,
                     ignore_index: int | None = 255, per_class: bool = False):
    """Boundary F-score (BF score, Csurka et al. 2013): how well the predicted contours follow the true ones.

    For each class, the boundary pixels of the predicted and of the true mask are found. A predicted
    boundary pixel is *matched* when a true boundary pixel lies within ``tolerance`` pixels (Euclidean
    distance), and the other way round. ``precision`` = matched predicted boundary / predicted
    boundary, ``recall`` = matched true boundary / true boundary, ``F = 2 P R / (P + R)``. Counts are
    pooled over the batch. Region metrics (IoU) barely move when an outline is a pixel off; the BF
    score does, which is why it is reported for boundary-sensitive work.

    Parameters
    ----------
    pred : (B, H, W) or (H, W) integer tensor, or (B, C, H, W) float tensor
        Predicted class ids, or per-class scores (argmax over dim 1).
    target : (B, H, W) or (H, W) integer tensor
        True class ids, ``ignore_index`` for unlabelled pixels. Ignored pixels first take the class of the
        nearest labelled pixel, so that an ignored band between two classes (a trimap's border) still
        holds the true boundary, in its middle, instead of erasing it.
    tolerance : int
        Distance in pixels (>= 0) within which a boundary pixel counts as matched.
    num_classes : int, optional
        ``C``; by default the largest class id in ``pred`` or ``target`` plus one.
    ignore_index : int or None
        Label of unlabelled pixels.
    per_class : bool
        Return the ``(C,)`` per-class scores instead of their mean.

    Returns
    -------
    float, or (C,) float64 tensor if ``per_class``
        F-score in [0, 1]. A class with no boundary pixel in either map (absent, or filling every
        image) is undefined: ``NaN``, left out of the mean. A class with boundary pixels in only one of
        the two maps scores 0.
    """
    if not isinstance(tolerance, (int, np.integer)) or isinstance(tolerance, bool) or tolerance < 0:
        raise ValueError(f"`tolerance` must be a non-negative int (pixels), got {tolerance!r}")
    pred, target = _as_tensor(pred, "pred"), _as_tensor(target, "target")
    if target.is_floating_point():
        raise ValueError(f"`target` must hold integer class ids, got dtype {target.dtype}")
    if target.ndim == 2:
        target = target.unsqueeze(0)
        pred = pred.unsqueeze(0)
    if target.ndim != 3:
        raise ValueError(f"`target` must be (B, H, W) or (H, W), got shape {tuple(target.shape)}")
    if num_classes is None:
        if pred.ndim == 4:
            num_classes = pred.shape[1]
        else:
            valid_t = target[target != ignore_index] if ignore_index is not None else target
            num_classes = int(max(int(pred.max()) if pred.numel() else 0,
                                  int(valid_t.max()) if valid_t.numel() else 0)) + 1
    num_classes = check_int("num_classes", num_classes)
    pred = _to_labels(pred, target, num_classes).to(target.device)
    target = _fill_ignored_from_nearest(target, ignore_index)
    scores = torch.full((num_classes,), math.nan, dtype=torch.float64)
    for k in range(num_classes):
        pred_edge = inner_boundary(pred == k)
        true_edge = inner_boundary(target == k)
        n_pred, n_true = int(pred_edge.sum()), int(true_edge.sum())
        if n_pred == 0 and n_true == 0:
            continue
        if n_pred == 0 or n_true == 0:
            scores[k] = 0.0
            continue
        precision = int((pred_edge & _dilate(true_edge, tolerance)).sum()) / n_pred
        recall = int((true_edge & _dilate(pred_edge, tolerance)).sum()) / n_true
        scores[k] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return scores if per_class else _nanmean(scores)
