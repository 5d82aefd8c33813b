"""Checks for notebook 08 (imbalance, dense CRF): median-frequency weights and one mean-field update."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .core import Feedback, feedback, opening, run_cases

_FREQUENCIES = [
    ("three classes, one rare", [0.8, 0.15, 0.05]),
    ("a class that never occurs", [0.7, 0.2, 0.1, 0.0]),
    ("five classes", [0.5, 0.2, 0.2, 0.05, 0.05]),
]


def _median_weights(f):
    f = np.asarray(f, dtype=np.float64)
    w = np.zeros_like(f)
    present = f > 0
    w[present] = np.median(f[present]) / f[present]
    return w


def check_median_frequency_weights(weights: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 08.1: ``weights(frequencies) -> (C,) array``: ``median(f) / f_c``, 0 for a class that never occurs.

    The median is taken over the classes that occur (Eigen and Fergus, 2015), so an absent class neither gets an
    infinite weight nor pulls the median down.
    """
    name = "median-frequency class weights"
    hint = "w_c = median of the frequencies of the classes present / f_c; a class with f_c = 0 gets 0."
    early = opening(name, weights, "a function frequencies -> weights", strict, hint)
    if early is not None:
        return early

    def judge(label, got, f):
        want = _median_weights(f)
        try:
            got = np.asarray(got, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            return f"{label}: returned {got!r}; return one weight per class"
        if got.shape != want.shape:
            return f"{label}: {got.size} weights for {want.size} classes"
        if np.allclose(got, want, atol=1e-6):
            return None
        msg = f"{label}: got {np.round(got, 3).tolist()}, expected {np.round(want, 3).tolist()}"
        fa = np.asarray(f, dtype=np.float64)
        if not np.all(np.isfinite(got)):
            msg += " - a class that never occurs has no pixel to weigh: give it 0, not 1/0"
        elif (fa == 0).any() and np.allclose(got[fa > 0], np.median(fa) / fa[fa > 0], atol=1e-6):
            msg += " - take the median over the classes that occur only"
        elif np.allclose(got[fa > 0], 1 / fa[fa > 0], atol=1e-6):
            msg += " - that is the inverse frequency; divide the median frequency by each frequency"
        return msg

    problems, unanswered = run_cases(weights, ((label, (list(f),), f) for label, f in _FREQUENCIES), judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "right on all three, the absent class included.", strict,
                    hint if problems else None)


def _update_cases():
    g = torch.Generator().manual_seed(8)
    cases = []
    for label, (c, h, w) in (("2 classes on a 3 x 3 image", (2, 3, 3)), ("4 classes on a 2 x 5 image", (4, 2, 5))):
        unary = torch.rand(c, h, w, generator=g) * 3
        messages = torch.rand(c, h, w, generator=g) * 2
        cases.append((label, unary, messages))
    return cases


def check_mean_field_update(update: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 08.2: ``update(unary, messages) -> q``, one mean-field update of the dense CRF with Potts costs.

    ``q_i(l) = softmax_l(-unary_i(l) - sum_{l' != l} messages_i(l'))``: a label pays for the kernel-weighted
    probability that the neighbours take *another* label. ``unary`` and ``messages`` are ``(C, H, W)`` tensors.
    """
    from ..crf import mean_field_update

    name = "one mean-field update"
    hint = ("with Potts costs a label pays the messages of every other label: sum over all labels minus its own; "
            "then a softmax over the class dimension of minus (unary + that).")
    early = opening(name, update, "a function (unary, messages) -> q", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        unary, messages = case
        want = mean_field_update(unary, messages)
        if not isinstance(got, torch.Tensor):
            return f"{label}: returned {type(got).__name__}; return a (C, H, W) tensor"
        if got.shape != want.shape:
            return f"{label}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        if torch.allclose(got.float(), want, atol=1e-5):
            return None
        msg = f"{label}: the probabilities differ from the reference by up to {float((got - want).abs().max()):.3f}"
        if torch.allclose(got.float(), torch.softmax(-unary - messages, 0), atol=1e-5):
            msg += " - a label paid its own messages; with Potts costs it pays the other labels'"
        elif not torch.allclose(got.float().sum(0), torch.ones_like(got[0]), atol=1e-4):
            msg += " - the result is not a distribution over classes: softmax over dim 0"
        elif torch.allclose(got.float(), torch.softmax(unary + messages.sum(0) - messages, 0), atol=1e-5):
            msg += " - the signs are flipped: energies enter the softmax with a minus"
        return msg

    problems, unanswered = run_cases(update, ((label, (u.clone(), m.clone()), (u, m))
                                              for label, u, m in _update_cases()), judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "right on both images.", strict, hint if problems else None)
