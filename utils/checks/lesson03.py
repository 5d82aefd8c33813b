"""Checks for notebook 03 (metrics and losses): Dice from a confusion matrix, the focal loss."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .core import Feedback, feedback, opening, run_cases


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


# ----------------------------------------------------------------------------------- Dice from a matrix


def _dice_cases() -> list[tuple[str, np.ndarray]]:
    """``(label, cm)`` confusion matrices (rows truth, columns prediction) the Dice check runs."""
    rng = np.random.default_rng(3)
    return [
        ("the 3-class matrix of section 1", np.array([[1, 1, 0], [0, 2, 0], [0, 1, 1]])),
        ("a 4-class matrix whose class 3 appears nowhere",
         np.array([[50, 3, 2, 0], [4, 20, 1, 0], [0, 5, 9, 0], [0, 0, 0, 0]])),
        ("a class predicted but never true", np.array([[8, 2], [0, 0]])),
        ("a random 6-class matrix", rng.integers(0, 40, size=(6, 6))),
    ]


def _dice_reference(cm: np.ndarray) -> np.ndarray:
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    denominator = cm.sum(0) + cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def check_dice_from_confusion(dice_per_class: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 03.1: ``dice_per_class(cm) -> (C,) array`` from a ``(C, C)`` confusion matrix.

    ``cm[i, j]`` counts pixels of true class ``i`` predicted as ``j`` (a NumPy int array). Dice of class
    ``c`` is ``2 TP / (2 TP + FP + FN)`` = ``2 cm[c, c] / (row sum + column sum)``; a class absent from
    both truth and prediction (row and column all zero) is undefined: ``NaN``.
    """
    name = "per-class Dice from a confusion matrix"
    hint = ("TP is the diagonal (np.diag), TP + FN the row sums (cm.sum(1)), TP + FP the column sums "
            "(cm.sum(0)); use np.where(denominator > 0, ..., np.nan) for the classes that never appear.")
    early = opening(name, dice_per_class, "a function cm -> per-class Dice", strict, hint)
    if early is not None:
        return early

    def judge(label, got, cm):
        try:
            values = _to_numpy(got)
        except (TypeError, ValueError):
            return f"{label}: returned {type(got).__name__}; return an array of one Dice per class"
        want = _dice_reference(cm)
        if values.shape != want.shape:
            return (f"{label}: returned shape {values.shape}, expected ({cm.shape[0]},): one value per "
                    "class" + (" (not the mean over classes)" if values.ndim == 0 else ""))
        if np.allclose(values, want, atol=1e-9, equal_nan=True):
            return None
        msg = f"{label}: got {np.round(values, 4).tolist()}, expected {np.round(want, 4).tolist()}"
        cmf = cm.astype(np.float64)
        tp = np.diag(cmf)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / (cmf.sum(0) + cmf.sum(1) - tp)
            recall = tp / cmf.sum(1)
            precision = tp / cmf.sum(0)
        defined = ~np.isnan(want)
        if np.allclose(values[defined], want[defined], atol=1e-9):
            msg += (" - right wherever the class appears; a class absent from both truth and prediction has "
                    "Dice 0/0, which is undefined: return NaN there (not 0 or 1)")
        elif np.allclose(values[defined], iou[defined], atol=1e-9):
            msg += " - these are IoU values, TP / (TP + FP + FN); Dice counts the intersection twice: 2 TP / (2 TP + FP + FN)"
        elif np.allclose(values[defined], np.nan_to_num(recall[defined], nan=-1), atol=1e-9):
            msg += " - that is recall, TP / row sum; Dice divides 2 TP by the row sum plus the column sum"
        elif np.allclose(values[defined], np.nan_to_num(precision[defined], nan=-1), atol=1e-9):
            msg += " - that is precision, TP / column sum; Dice divides 2 TP by the row sum plus the column sum"
        elif np.allclose(values[defined], want[defined] / 2, atol=1e-9):
            msg += " - half the right value: the numerator is 2 TP"
        return msg

    cases = ((label, (cm.copy(),), cm) for label, cm in _dice_cases())
    problems, unanswered = run_cases(dice_per_class, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"right on all {len(_dice_cases())} matrices, undefined classes included",
                    strict, hint)


# ---------------------------------------------------------------------------------------------- focal


def _focal_cases():
    """``(label, logits, target, gamma)``: logits (B, C, H, W) float32, target (B, H, W) int64."""
    import torch

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g) * 2
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    ignored = target.clone()
    ignored[0, :2] = 255
    return [
        ("gamma = 2 on random logits", logits, target, 2.0),
        ("gamma = 0 (must equal the cross-entropy)", logits, target, 0.0),
        ("gamma = 1 with pixels labelled 255 (ignored)", logits, ignored, 1.0),
    ]


def check_focal_loss(focal: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 03.2: ``focal(logits, target, gamma) -> scalar tensor``, the multi-class focal loss.

    ``logits`` ``(B, C, H, W)`` float, ``target`` ``(B, H, W)`` int64 with 255 on ignored pixels;
    ``FL = -(1 - p_t) ** gamma * log(p_t)`` averaged over the labelled pixels, where ``p_t`` is the softmax
    probability of the true class. The result must be differentiable with respect to ``logits``.
    """
    import torch

    from ..losses import focal_loss

    name = "focal loss"
    hint = ("log_p = logits.log_softmax(1); pick the true class with log_p.gather(1, t.unsqueeze(1)) after "
            "replacing 255 by 0 in a copy of the target, then multiply by (1 - log_pt.exp()) ** gamma, negate, "
            "and average over the pixels where target != 255.")
    early = opening(name, focal, "a function (logits, target, gamma) -> loss", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        logits, target, gamma = case
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            return f"{label}: returned {shape}; return one number, a scalar tensor (the mean over pixels)"
        value = float(got.detach())
        want = float(focal_loss(logits, target, gamma=gamma, ignore_index=255))
        if not got.requires_grad:
            return (f"{label}: the loss carries no gradient; compute it with torch operations on the "
                    "logits (no .numpy(), .item() or torch.tensor(...) on the way)")
        if math.isclose(value, want, rel_tol=1e-4, abs_tol=1e-6):
            return None
        msg = f"{label}: got {value:.5f}, expected {want:.5f}"
        valid = target != 255
        n_valid, n_all = int(valid.sum()), target.numel()
        ce = float(focal_loss(logits, target, gamma=0.0))
        if math.isclose(value, -want, rel_tol=1e-4):
            msg += " - the sign is flipped: log p_t is negative, so the loss is -(1 - p_t)^gamma log p_t"
        elif gamma > 0 and math.isclose(value, ce, rel_tol=1e-4):
            msg += " - that is the plain cross-entropy: the factor (1 - p_t) ** gamma is missing"
        elif math.isclose(value, want * n_valid, rel_tol=1e-4):
            msg += " - that is the sum over pixels; average over the labelled pixels instead"
        elif n_valid != n_all and math.isclose(value, want * n_valid / n_all, rel_tol=1e-4):
            msg += (" - you divided by every pixel, ignored ones included; divide by the number of pixels "
                    "whose label is not 255")
        return msg

    def raised(label, error, case):
        _, target, _ = case
        if (target == 255).any() and ("out of bounds" in error or "index" in error.lower()):
            error += " - pixels labelled 255 are not a class: leave them out (replace by 0 before gather, then mask)"
        return f"{label}: your function raised {error}"

    cases = ((label, (logits.clone().requires_grad_(True), target.clone(), gamma), (logits, target, gamma))
             for label, logits, target, gamma in _focal_cases())
    problems, unanswered = run_cases(focal, cases, judge, raised)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "matches the reference for gamma 0, 1 and 2, ignored pixels left out",
                    strict, hint)

