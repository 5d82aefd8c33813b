"""Checks for notebook 05 (DeepLab, ASPP, PSPNet): the receptive field of stacked dilated convolutions,
and the padding that keeps a dilated convolution's output the size of its input."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

from .core import Feedback, feedback, is_unanswered, run_cases


def _as_number(value):
    """``float(value)``, or ``None`` when it is not a finite number (so NaN and inf are reported, not raised)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ------------------------------------------------------------------------------------ receptive field

# (dilations, kernel_size)
_RF_CASES = [
    ((1,), 3),
    ((1, 1, 1), 3),
    ((1, 2, 4), 3),        # exponentially growing rates: 15 pixels with three layers
    ((2, 2, 2), 3),        # the gridding stack of the lesson
    ((1, 2, 4, 8), 3),
    ((1, 2), 5),           # a 5x5 kernel spans 4 d + 1 pixels
    ((3,), 3),
]


@lru_cache(maxsize=None)
def _measured_receptive_field(dilations: tuple, kernel_size: int) -> int:
    """The receptive field of a stack of stride-1 convolutions, measured by back-propagation (not a formula)."""
    import torch

    from ..segmodels import effective_receptive_field

    layers = [torch.nn.Conv2d(1, 1, kernel_size, padding=d * (kernel_size - 1) // 2, dilation=d, bias=False)
              for d in dilations]
    for conv in layers:
        torch.nn.init.constant_(conv.weight, 1.0)
    size = 2 * sum((kernel_size - 1) * d for d in dilations) + 9
    erf = effective_receptive_field(torch.nn.Sequential(*layers), (1, 1, size, size))
    cols = (erf > 0).any(0).nonzero()[0]
    return int(cols.max() - cols.min() + 1)


def check_receptive_field(receptive_field: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 05.1: ``receptive_field(dilations, kernel_size=3) -> int``.

    The receptive field (in pixels, along one axis) of a stack of stride-1 ``kernel_size`` x
    ``kernel_size`` convolutions with the given dilations, input side first. The answer is compared
    with the field measured by back-propagating through real ``nn.Conv2d`` layers.
    """
    name = "receptive field of stacked dilated convolutions"
    hint = ("one pixel sees itself (1); each layer adds the span of its kernel minus one, and a dilated "
            "k x k kernel spans d * (k - 1) + 1 pixels, so it adds d * (k - 1).")
    if is_unanswered(receptive_field):
        return feedback(name, [], "", strict, hint, receptive_field)
    if not callable(receptive_field):
        return feedback(name, [f"expected a function (dilations, kernel_size=3) -> int, got "
                               f"{type(receptive_field).__name__}"], "", strict, hint)

    def judge(label, got, case):
        dilations, k = case
        value = _as_number(got)
        if value is None:
            return f"{label}: returned {got!r}; return one int"
        want = _measured_receptive_field(dilations, k)
        if value == want:
            return None
        msg = f"{label}: got {got!r}, the measured field is {want} pixels"
        if value == want - 1:
            msg += " - off by one: start from 1, the output pixel's own input pixel"
        elif value == 1 + len(dilations) * (k - 1):
            msg += " - the dilations are ignored: a rate d spreads the taps d pixels apart"
        elif value == sum(d * (k - 1) + 1 for d in dilations):
            msg += (" - the kernel spans are added whole; consecutive layers share one pixel each, "
                    "so add d * (k - 1) per layer to 1")
        elif value == (k - 1) * max(dilations) + 1:
            msg += " - that is the last layer alone; the layers below widen the field too"
        elif value == 2 * want - 1 or value == 2 * (want - 1):
            msg += " - that counts both sides twice: (k - 1) * d is the whole widening, half on each side"
        return msg

    cases = ((f"dilations={list(dilations)}, kernel_size={k}", (list(dilations), k), (dilations, k))
             for dilations, k in _RF_CASES)
    problems, unanswered = run_cases(receptive_field, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"right on all {len(_RF_CASES)} stacks (checked against the measured field)",
                    strict, hint)


# ------------------------------------------------------------------------------------ padding

# (kernel_size, dilation)
_PAD_CASES = [(3, 1), (3, 2), (3, 6), (5, 1), (5, 3), (7, 2), (1, 4)]


def check_same_padding(padding: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 05.2: ``padding(kernel_size, dilation) -> int`` that keeps the size of a stride-1 convolution.

    Checked by running ``nn.Conv2d(kernel_size, dilation=dilation, padding=padding(...))`` on a 17 x 17
    input for odd kernel sizes, as ASPP's branches need (their outputs are concatenated, so every
    branch must keep the feature map's size).
    """
    import torch

    name = "padding that keeps the size of a dilated convolution"
    hint = ("a dilated k x k kernel spans d * (k - 1) + 1 pixels; to keep the size, pad half the extra "
            "span on each side: d * (k - 1) // 2.")
    if is_unanswered(padding):
        return feedback(name, [], "", strict, hint, padding)
    if not callable(padding):
        return feedback(name, [f"expected a function (kernel_size, dilation) -> int, got {type(padding).__name__}"],
                        "", strict, hint)

    def judge(label, got, case):
        k, d = case
        value = _as_number(got)
        if value is None or value != int(value) or value < 0:
            return f"{label}: returned {got!r}; return a non-negative int"
        conv = torch.nn.Conv2d(1, 1, k, padding=int(value), dilation=d)
        with torch.no_grad():
            size = conv(torch.zeros(1, 1, 17, 17)).shape[-1]
        if size == 17:
            return None
        msg = f"{label}: padding {int(value)} turns a 17 x 17 map into {size} x {size}"
        want = d * (k - 1) // 2
        if value == d and k != 3:
            msg += " - padding = dilation is right for 3 x 3 kernels only; a k x k kernel needs d * (k - 1) // 2"
        elif value == (k - 1) // 2 and d > 1:
            msg += " - that is the padding of an undilated kernel; the dilation widens the kernel's span"
        elif value == d * (k - 1):
            msg += " - that pads the whole extra span on each side; half of it goes on each side"
        elif value == want + 1 or value == want - 1:
            msg += " - off by one"
        return msg

    cases = ((f"kernel_size={k}, dilation={d}", (k, d), (k, d)) for k, d in _PAD_CASES)
    problems, unanswered = run_cases(padding, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"keeps the size in all {len(_PAD_CASES)} configurations", strict, hint)
