"""Segmentation losses: weighted cross-entropy, Dice, focal, Tversky, and a weighted sum of losses.

The maths lives in small functions (``soft_dice_score``, ``tversky_index``, ``focal_loss``, ...); the
``nn.Module`` classes are thin wrappers that store the settings, so a lesson can show each formula next to
the code that computes it.

Conventions
-----------
* ``logits``: ``(B, C, H, W)`` float, unnormalised class scores (``softmax`` over dim 1 gives
  probabilities). For a binary loss (``mode="binary"``) also ``(B, 1, H, W)`` or ``(B, H, W)``, passed
  through a sigmoid.
* ``target``: ``(B, H, W)`` int64 class ids in ``[0, C)``, or ``ignore_index`` for pixels that carry no
  label; those pixels add nothing to any loss or gradient. Binary targets hold 0 or 1.
* Every loss returns a scalar tensor (mean over the counted pixels, or ``1 - score`` for the overlap
  losses) unless ``reduction="none"`` is asked where offered.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .validation import check_int

__all__ = [
    "DiceLoss",
    "FocalLoss",
    "TverskyLoss",
    "WeightedSumLoss",
    "class_frequencies",
    "class_weights",
    "dice_loss",
    "focal_loss",
    "soft_dice_score",
    "tversky_index",
    "tversky_loss",
    "weighted_cross_entropy",
]

MODES = ("multiclass", "binary")


# --------------------------------------------------------------------------------------------------
# Input checks and the shared preparation of probabilities and one-hot targets
# --------------------------------------------------------------------------------------------------

def _check_logits_target(logits, target, mode: str = "multiclass"):
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError(f"`logits` must be a floating point tensor, got "
                         f"{type(logits).__name__ if not isinstance(logits, torch.Tensor) else logits.dtype}")
    if not isinstance(target, torch.Tensor) or target.is_floating_point():
        raise ValueError("`target` must be an integer tensor of class ids, got "
                         f"{type(target).__name__ if not isinstance(target, torch.Tensor) else target.dtype}")
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
    if mode == "binary" and logits.ndim == target.ndim:
        logits = logits.unsqueeze(1)
    if logits.ndim != target.ndim + 1 or logits.shape[2:] != target.shape[1:] or logits.shape[0] != target.shape[0]:
        raise ValueError(f"`logits` (shape {tuple(logits.shape)}) must be (B, C, H, W) for a `target` of shape "
                         f"(B, H, W), got `target` shape {tuple(target.shape)}")
    if mode == "binary" and logits.shape[1] != 1:
        raise ValueError(f"binary mode takes one logit channel, (B, 1, H, W) or (B, H, W); got {tuple(logits.shape)}")
    return logits, target.long()


def _valid_and_clean(target: torch.Tensor, ignore_index: int | None):
    """``valid`` (B, H, W) bool and ``target`` with ignored pixels replaced by class 0."""
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool), target
    valid = target != ignore_index
    return valid, torch.where(valid, target, torch.zeros_like(target))


def _probs_and_onehot(logits, target, mode: str, ignore_index: int | None):
    """Probabilities and one-hot targets ``(B, C, H, W)`` float, both zero on ignored pixels.

    In binary mode ``C == 1`` (the foreground probability and the foreground indicator).
    """
    logits, target = _check_logits_target(logits, target, mode)
    valid, target = _valid_and_clean(target, ignore_index)
    num_classes = logits.shape[1]
    if mode == "binary":
        if target.numel() and (int(target.max()) > 1 or int(target.min()) < 0):
            raise ValueError(f"binary targets must hold 0 or 1 (or the ignore_index), got values in "
                             f"[{int(target.min())}, {int(target.max())}]")
        probs = torch.sigmoid(logits.float())
        onehot = target.unsqueeze(1).float()
    else:
        if target.numel() and (int(target.max()) >= num_classes or int(target.min()) < 0):
            raise ValueError(f"`target` holds class ids in [{int(target.min())}, {int(target.max())}], outside "
                             f"[0, {num_classes}) given by `logits`' {num_classes} channels")
        probs = logits.float().softmax(dim=1)
        onehot = F.one_hot(target, num_classes).permute(0, 3, 1, 2).float()
    mask = valid.unsqueeze(1).float()
    return probs * mask, onehot * mask


# --------------------------------------------------------------------------------------------------
# Class weights for cross-entropy
# --------------------------------------------------------------------------------------------------

def class_frequencies(masks, num_classes: int, ignore_index: int | None = 255) -> torch.Tensor:
    """Fraction of labelled pixels of each class.

    Parameters
    ----------
    masks : tensor or ndarray of integer class ids, any shape (e.g. (N, H, W))
        Labels in ``[0, num_classes)`` or ``ignore_index``.
    num_classes : int
        Number of classes ``C``.

    Returns
    -------
    (C,) float64 tensor
        Frequencies in [0, 1] summing to 1 (all zeros if no pixel is labelled).
    """
    check_int("num_classes", num_classes)
    masks = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
    if masks.is_floating_point():
        raise ValueError(f"`masks` must hold integer class ids, got dtype {masks.dtype}")
    labels = masks.reshape(-1).long()
    if ignore_index is not None:
        labels = labels[labels != ignore_index]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"`masks` hold class ids in [{int(labels.min())}, {int(labels.max())}], outside "
                         f"[0, {num_classes})")
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()
    return counts / counts.sum() if counts.sum() > 0 else counts


def class_weights(frequencies, method: str = "median") -> torch.Tensor:
    """Per-class weights for cross-entropy from class frequencies: rare classes weigh more.

    Parameters
    ----------
    frequencies : (C,) tensor or sequence of floats
        Class frequencies (as :func:`class_frequencies` returns), non-negative.
    method : {"median", "inverse", "inverse_sqrt"}
        ``"median"``: median frequency balancing, ``w_c = median(f) / f_c`` (Eigen & Fergus, 2015);
        ``"inverse"``: ``w_c = 1 / f_c``; ``"inverse_sqrt"``: ``w_c = 1 / sqrt(f_c)`` (gentler).
        The last two are scaled so that the frequency-weighted mean weight is 1 (the loss keeps its scale).

    Returns
    -------
    (C,) float32 tensor
        Non-negative weights; a class that never occurs gets weight 0 (it has no pixel to weigh).
    """
    f = torch.as_tensor(frequencies, dtype=torch.float64).flatten()
    if f.numel() == 0 or bool((f < 0).any()) or not bool(torch.isfinite(f).all()):
        raise ValueError(f"`frequencies` must be non-negative finite numbers, got {f.tolist()}")
    present = f > 0
    if not present.any():
        raise ValueError("`frequencies` are all zero: no labelled pixel to compute weights from")
    w = torch.zeros_like(f)
    if method == "median":
        w[present] = f[present].median() / f[present]
    elif method in ("inverse", "inverse_sqrt"):
        w[present] = 1 / f[present] if method == "inverse" else 1 / f[present].sqrt()
        w = w / (w * f).sum() * f.sum()
    else:
        raise ValueError(f"`method` must be 'median', 'inverse' or 'inverse_sqrt', got {method!r}")
    return w.float()


def weighted_cross_entropy(masks, num_classes: int, method: str = "median",
                           ignore_index: int = 255) -> nn.CrossEntropyLoss:
    """``nn.CrossEntropyLoss`` weighted by :func:`class_weights` of the label frequencies in ``masks``.

    Note that PyTorch divides a weighted cross-entropy by the sum of the weights of the counted pixels,
    so the loss value stays comparable to the unweighted one.
    """
    weight = class_weights(class_frequencies(masks, num_classes, ignore_index), method)
    return nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)


# --------------------------------------------------------------------------------------------------
# Overlap losses: Dice and Tversky
# --------------------------------------------------------------------------------------------------

def soft_dice_score(probs: torch.Tensor, onehot: torch.Tensor, smooth: float = 1.0, dims=(0, 2, 3)) -> torch.Tensor:
    """Soft Dice per class: ``(2 sum(p g) + s) / (sum(p) + sum(g) + s)``.

    Parameters
    ----------
    probs, onehot : (B, C, H, W) float tensors
        Probabilities in [0, 1] and one-hot targets in {0, 1} (zero on ignored pixels).
    smooth : float
        ``s`` >= 0: keeps the score defined for empty classes and the gradient gentle.
    dims : tuple of int
        Dimensions summed over; the default pools the batch, one score per class.

    Returns
    -------
    (C,) float tensor
        Scores in [0, 1]; with hard predictions and ``smooth=0`` the Dice coefficient.
    """
    intersection = (probs * onehot).sum(dims)
    cardinality = probs.sum(dims) + onehot.sum(dims)
    return (2 * intersection + smooth) / (cardinality + smooth).clamp_min(1e-7)


def tversky_index(probs: torch.Tensor, onehot: torch.Tensor, alpha: float = 0.5, beta: float = 0.5,
                  smooth: float = 1.0, dims=(0, 2, 3)) -> torch.Tensor:
    """Soft Tversky index per class: ``(TP + s) / (TP + alpha FP + beta FN + s)`` (Salehi et al., 2017).

    With soft counts ``TP = sum(p g)``, ``FP = sum(p (1 - g))``, ``FN = sum((1 - p) g)``. ``alpha``
    weighs false positives and ``beta`` false negatives: ``beta > alpha`` favours recall, useful for
    small structures. ``alpha = beta = 0.5`` gives Dice (exactly :func:`soft_dice_score` with
    ``smooth = 2 s``).

    Parameters
    ----------
    probs, onehot : (B, C, H, W) float tensors
        Probabilities in [0, 1] and one-hot targets (zero on ignored pixels).

    Returns
    -------
    (C,) float tensor in [0, 1].
    """
    tp = (probs * onehot).sum(dims)
    fp = (probs * (1 - onehot)).sum(dims)
    fn = ((1 - probs) * onehot).sum(dims)
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(1e-7)


def _check_nonneg(name: str, value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number, got {value!r}")
    return float(value)


def dice_loss(logits, target, mode: str = "multiclass", smooth: float = 1.0,
              ignore_index: int | None = 255) -> torch.Tensor:
    """Dice loss, ``1 - mean over classes of soft_dice_score``.

    Parameters
    ----------
    logits : (B, C, H, W) float tensor; in binary mode (B, 1, H, W) or (B, H, W)
        Unnormalised scores (softmax over classes, or sigmoid in binary mode).
    target : (B, H, W) int tensor
        Class ids (0/1 in binary mode), ``ignore_index`` where unlabelled.
    mode : {"multiclass", "binary"}
    smooth : float
        Smoothing ``s`` >= 0 of :func:`soft_dice_score`.
    ignore_index : int or None

    Returns
    -------
    Scalar tensor in [0, 1]; near 0 for a confident, correct prediction.
    """
    smooth = _check_nonneg("smooth", smooth)
    probs, onehot = _probs_and_onehot(logits, target, mode, ignore_index)
    return 1 - soft_dice_score(probs, onehot, smooth).mean()


def tversky_loss(logits, target, alpha: float = 0.5, beta: float = 0.5, mode: str = "multiclass",
                 smooth: float = 1.0, ignore_index: int | None = 255) -> torch.Tensor:
    """Tversky loss, ``1 - mean over classes of tversky_index`` (arguments as :func:`dice_loss`)."""
    alpha, beta, smooth = _check_nonneg("alpha", alpha), _check_nonneg("beta", beta), _check_nonneg("smooth", smooth)
    probs, onehot = _probs_and_onehot(logits, target, mode, ignore_index)
    return 1 - tversky_index(probs, onehot, alpha, beta, smooth).mean()


# --------------------------------------------------------------------------------------------------
# Focal loss
# --------------------------------------------------------------------------------------------------

def focal_loss(logits, target, alpha=None, gamma: float = 2.0, ignore_index: int | None = 255,
               reduction: str = "mean") -> torch.Tensor:
    """Multi-class focal loss (Lin et al., 2017): ``FL = -alpha_t (1 - p_t) ** gamma * log(p_t)``.

    ``p_t`` is the predicted probability of the true class. The factor ``(1 - p_t) ** gamma`` shrinks the
    loss of pixels the model already gets right, so the many easy (often background) pixels stop
    dominating. With ``gamma = 0`` and no ``alpha`` it is exactly the cross-entropy.

    Parameters
    ----------
    logits : (B, C, H, W) float tensor
        Unnormalised class scores.
    target : (B, H, W) int tensor
        Class ids in ``[0, C)`` or ``ignore_index``.
    alpha : None, float, or sequence / (C,) tensor of floats
        Class weights ``alpha_t``: ``None`` (all 1), one number for every class, or one per class.
    gamma : float
        Focusing parameter >= 0.
    reduction : {"mean", "sum", "none"}
        Mean over the labelled pixels (not weighted by alpha), their sum, or the ``(B, H, W)`` map
        (0 on ignored pixels).

    Returns
    -------
    Scalar tensor (or (B, H, W) for ``reduction="none"``), >= 0.
    """
    gamma = _check_nonneg("gamma", gamma)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none', got {reduction!r}")
    logits, target = _check_logits_target(logits, target)
    valid, clean = _valid_and_clean(target, ignore_index)
    num_classes = logits.shape[1]
    if clean.numel() and (int(clean.max()) >= num_classes or int(clean.min()) < 0):
        raise ValueError(f"`target` holds class ids in [{int(clean.min())}, {int(clean.max())}], outside "
                         f"[0, {num_classes})")
    log_pt = logits.float().log_softmax(dim=1).gather(1, clean.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_pt.exp()) ** gamma) * log_pt if gamma > 0 else -log_pt
    if alpha is not None:
        a = torch.as_tensor(alpha, dtype=loss.dtype, device=loss.device).flatten()
        if a.numel() == 1:
            a = a.expand(num_classes)
        if a.numel() != num_classes or bool((a < 0).any()):
            raise ValueError(f"`alpha` must be one non-negative number or one per class ({num_classes}), "
                             f"got {torch.as_tensor(alpha).tolist()}")
        loss = a[clean] * loss
    loss = loss * valid
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum().clamp_min(1)


# --------------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------------

class DiceLoss(nn.Module):
    """Module form of :func:`dice_loss`: ``DiceLoss(mode="multiclass", smooth=1.0, ignore_index=255)``."""

    def __init__(self, mode: str = "multiclass", smooth: float = 1.0, ignore_index: int | None = 255):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
        self.mode, self.smooth, self.ignore_index = mode, _check_nonneg("smooth", smooth), ignore_index

    def forward(self, logits, target):
        return dice_loss(logits, target, self.mode, self.smooth, self.ignore_index)


class TverskyLoss(nn.Module):
    """Module form of :func:`tversky_loss`: ``alpha`` weighs false positives, ``beta`` false negatives."""

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, mode: str = "multiclass", smooth: float = 1.0,
                 ignore_index: int | None = 255):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
        self.alpha, self.beta = _check_nonneg("alpha", alpha), _check_nonneg("beta", beta)
        self.mode, self.smooth, self.ignore_index = mode, _check_nonneg("smooth", smooth), ignore_index

    def forward(self, logits, target):
        return tversky_loss(logits, target, self.alpha, self.beta, self.mode, self.smooth, self.ignore_index)


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`: ``FocalLoss(alpha=None, gamma=2.0, ignore_index=255)``."""

    def __init__(self, alpha=None, gamma: float = 2.0, ignore_index: int | None = 255, reduction: str = "mean"):
        super().__init__()
        self.gamma, self.ignore_index, self.reduction = _check_nonneg("gamma", gamma), ignore_index, reduction
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits, target):
        return focal_loss(logits, target, self.alpha, self.gamma, self.ignore_index, self.reduction)


class WeightedSumLoss(nn.Module):
    """A weighted sum of losses, ``sum_i w_i L_i(logits, target)``, e.g. cross-entropy plus Dice.

    Parameters
    ----------
    losses : sequence of callables, or dict name -> callable
        Each called as ``loss(logits, target)`` and returning a scalar tensor.
    weights : sequence of floats, optional
        One non-negative weight per loss (default: all 1).

    After each call, ``last`` holds the value of each term (floats, by name), for logging.
    """

    def __init__(self, losses, weights: Sequence[float] | None = None):
        super().__init__()
        if isinstance(losses, dict):
            names, fns = list(losses), list(losses.values())
        elif isinstance(losses, Sequence) and not isinstance(losses, str):
            fns = list(losses)
            names = [getattr(f, "__name__", type(f).__name__) for f in fns]
        else:
            raise ValueError(f"`losses` must be a list or dict of loss callables, got {type(losses).__name__}")
        if not fns or not all(callable(f) for f in fns):
            raise ValueError(f"`losses` must hold at least one callable loss, got {fns!r}")
        weights = [1.0] * len(fns) if weights is None else [float(w) for w in weights]
        if len(weights) != len(fns) or any(w < 0 for w in weights):
            raise ValueError(f"`weights` must be {len(fns)} non-negative numbers (one per loss), got {weights}")
        self.names, self.weights = names, weights
        self.terms = nn.ModuleList(f if isinstance(f, nn.Module) else _FunctionLoss(f) for f in fns)
        self.last: dict[str, float] = {}

    def forward(self, logits, target):
        total, self.last = 0.0, {}
        for name, w, fn in zip(self.names, self.weights, self.terms):
            value = fn(logits, target)
            self.last[name] = float(value.detach())
            total = total + w * value
        return total


class _FunctionLoss(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, logits, target):
        return self.fn(logits, target)
