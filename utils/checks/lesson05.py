"""Checks for notebook 05 (DeepLab, ASPP, PSPNet): the receptive field of stacked dilated convolutions,
the padding that keeps a dilated convolution's output the size of its input, and one ASPP branch."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

from .core import Feedback, call_answer, feedback, opening, run_cases
from .modules import layers_of, run_with_reference_weights


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
    early = opening(name, receptive_field, "a function (dilations, kernel_size=3) -> int", strict, hint)
    if early is not None:
        return early

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
    early = opening(name, padding, "a function (kernel_size, dilation) -> int", strict, hint)
    if early is not None:
        return early

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


# ------------------------------------------------------------------------------------ one ASPP branch

# (in_channels, out_channels, rate): DeepLabV3's rates at output stride 16 on its 33 x 33 maps, and a
# small one with more output than input channels
_BRANCH_CASES = [(8, 4, 1), (8, 4, 6), (8, 4, 12), (8, 4, 18), (3, 5, 2)]
_BRANCH_SIZE = 33  # a 513-pixel crop at output stride 16


def _branch_structure(module, cin: int, cout: int, rate: int) -> str | None:
    """What is wrong in the layers of an ASPP branch (judged from its sub-modules), or None if nothing shows."""
    from torch import nn

    convs = layers_of(module, nn.Conv2d)
    if not convs:
        return "there is no nn.Conv2d: the branch is nn.Conv2d(in_channels, out_channels, 3, ...), BatchNorm, ReLU"
    if len(convs) > 1:
        return f"found {len(convs)} nn.Conv2d layers; one branch has a single 3x3 convolution"
    conv = convs[0]
    if conv.in_channels != cin or conv.out_channels != cout:
        return (f"the convolution maps {conv.in_channels} -> {conv.out_channels} channels; it should map "
                f"in_channels={cin} -> out_channels={cout}")
    if conv.kernel_size != (3, 3):
        return (f"kernel_size={conv.kernel_size[0]}: the branch is a 3x3 convolution whose 9 taps are spread `rate` "
                "pixels apart by dilation, not a larger kernel")
    (d, _), (p, _), size = conv.dilation, conv.padding, _BRANCH_SIZE
    if conv.stride != (1, 1):
        return f"stride={conv.stride[0]}: the branch keeps the map's resolution, so stride 1"
    if d != rate:
        if d == 1 and p == rate:
            return (f"padding={p} but no dilation: padding only adds zeros around the map, which grows by "
                    f"2 * (rate - 1) = {2 * (rate - 1)} pixels; dilation=rate spreads the taps")
        if d == 1:
            return f"the dilation is missing: nn.Conv2d(..., dilation=rate) spreads the 3x3 taps {rate} pixels apart"
        return f"dilation={d}; it is the rate, {rate}"
    if p != rate:
        out = size + 2 * p - 2 * rate
        if p == 1:
            msg = (f"padding 1 with dilation {rate}: the dilated 3x3 kernel spans 2 * {rate} + 1 = {2 * rate + 1} "
                   f"pixels, so padding 1 loses 2 * ({rate} - 1) = {2 * (rate - 1)} pixels")
            msg += (f": {size} x {size} -> {out} x {out}" if out > 0 else
                    f"; here the padded map ({size + 2} pixels) is narrower than the kernel's span "
                    f"({2 * rate + 1}), so PyTorch refuses")
            return msg + ". Padding 1 is right only for rate 1; the padding must equal the rate"
        return (f"padding {p} with dilation {rate}: the output is {size} + 2 * {p} - 2 * {rate} = {out} pixels wide; "
                "padding = rate keeps the size")
    if conv.bias is not None:
        return (f"the convolution has a bias: pass bias=False, as BatchNorm right after it subtracts the mean and "
                f"adds its own bias ({cout} redundant parameters)")
    bns = layers_of(module, nn.BatchNorm2d)
    if len(bns) != 1:
        return (f"found {len(bns)} nn.BatchNorm2d layer(s); the convolution is followed by one "
                f"BatchNorm2d(out_channels) ({2 * cout} parameters: a weight and a bias per channel) and a ReLU")
    if bns[0].num_features != cout:
        return f"BatchNorm2d has {bns[0].num_features} features; it normalises the {cout} output channels"
    return None


def _taps_along_axes(module, cin: int, rate: int):
    """Offsets (along rows, along columns) of the input pixels the centre output depends on, by back-propagation.

    The module's parameters are first set to positive constants (BatchNorm left at its initial statistics,
    eval mode) and the input is positive, so no ReLU hides a dependence. Returns ``(None, message)`` if the
    module fails.
    """
    import torch

    with torch.no_grad():
        for pname, param in module.named_parameters():
            if param.ndim >= 2:
                param.fill_(1.0 / param[0].numel())
            elif pname.endswith("bias"):
                param.zero_()
            else:
                param.fill_(1.0)
    module.eval()
    size = 2 * rate + 11
    c = size // 2
    x = (torch.rand(1, cin, size, size, generator=torch.Generator().manual_seed(3)) + 0.1).requires_grad_(True)
    out, error = call_answer(module, x)
    if error:
        return None, f"raised {error}"
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return None, "no gradient reaches the input: does forward use torch.no_grad() or .detach()?"
    out[0, :, c, c].sum().backward()
    if x.grad is None:
        return None, "no gradient reaches the input: does forward use torch.no_grad() or .detach()?"
    grad = x.grad[0].abs().sum(0)
    rows = [int(i) - c for i in (grad[:, c] > 0).nonzero().flatten()]
    cols = [int(i) - c for i in (grad[c, :] > 0).nonzero().flatten()]
    return (rows, cols), None


def check_aspp_branch(aspp_branch: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 05.3: ``aspp_branch(in_channels, out_channels, rate) -> nn.Module``, one atrous branch of ASPP.

    The module maps ``(B, in_channels, h, w)`` float32 to ``(B, out_channels, h, w)``: a 3x3 convolution with
    dilation ``rate`` and padding ``rate`` (no bias), BatchNorm and ReLU, as the branches of
    :class:`utils.models.ASPP`.

    For each case the check runs the module in eval mode on a 33 x 33 map (the size must be kept), measures by
    back-propagation which input pixels the centre output sees (one exactly ``rate`` pixels away along each
    axis, none at ``rate + 1``), counts the parameters, then copies the weights (and BatchNorm statistics)
    of the course's branch into it and compares the outputs to 1e-5.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    from ..models.deeplab import _conv_bn_relu

    name = "one ASPP branch"
    hint = ("a 3x3 kernel with dilation d spans 2 d + 1 pixels, so padding d on each side keeps the map's size; "
            "the convolution has no bias (BatchNorm follows it), and ReLU comes after BatchNorm.")
    early = opening(name, aspp_branch, "a function (in_channels, out_channels, rate) -> nn.Module", strict, hint)
    if early is not None:
        return early
    if isinstance(aspp_branch, nn.Module):
        return feedback(name, ["got a module: pass the function that builds one, aspp_branch, not aspp_branch(...); "
                               "the check builds it for several rates"], "", strict, hint)
    size = _BRANCH_SIZE

    def feature_map(cin, seed=0):
        return torch.randn(2, cin, size, size, generator=torch.Generator().manual_seed(seed))

    def attempt(cin, cout, rate, state):
        module = aspp_branch(cin, cout, rate)
        if module is None:
            return None
        state["module"] = module
        if not isinstance(module, nn.Module):
            return module
        module.eval()
        with torch.no_grad():
            return module(feature_map(cin))

    def raised(label, error, state):
        if state["module"] is None:
            return f"{label}: your function raised {error}"
        msg = f"{label}: the module raised {error} on a (2, {state['cin']}, {size}, {size}) map"
        problem = _branch_structure(state["module"], state["cin"], state["cout"], state["rate"])
        return msg + (f" - {problem}" if problem else "")

    def judge(label, out, state):
        module, cin, cout, rate = state["module"], state["cin"], state["cout"], state["rate"]
        if not isinstance(module, nn.Module):
            return f"{label}: returned {type(module).__name__}; return an nn.Module (for example an nn.Sequential)"
        if not isinstance(out, torch.Tensor):
            return f"{label}: the module returned {type(out).__name__}; it should return a tensor"
        want_shape = (2, cout, size, size)
        if tuple(out.shape) != want_shape:
            msg = f"{label}: a (2, {cin}, {size}, {size}) map gave {tuple(out.shape)}, expected {want_shape}"
            problem = _branch_structure(module, cin, cout, rate)
            return msg + (f" - {problem}" if problem else "")
        taps, error = _taps_along_axes(module, cin, rate)
        if error:
            return f"{label}: measuring its receptive field, the module {error}"
        for axis, offsets in zip(("vertical", "horizontal"), taps):
            if rate in offsets and rate + 1 not in offsets:
                continue
            shown = offsets if len(offsets) <= 9 else offsets[:4] + ["..."] + offsets[-4:]
            msg = (f"{label}: the centre output depends on the input pixels at {axis} offsets {shown}; a rate-{rate} "
                   f"branch depends on [{-rate}, 0, {rate}], its taps exactly `rate` pixels apart")
            if offsets and offsets == list(range(offsets[0], offsets[-1] + 1)) and len(offsets) > 3:
                msg += (" - every pixel in between counts too: that is a larger kernel, not a 3x3 one whose taps "
                        "dilation spreads apart")
            elif offsets == [-1, 0, 1]:
                msg += (" - the taps are 1 pixel apart: the dilation is missing (padding alone only adds zeros "
                        "around the map)")
            else:
                problem = _branch_structure(module, cin, cout, rate)
                msg += f" - {problem}" if problem else ""
            return msg
        reference = _conv_bn_relu(cin, cout, 3, rate)
        n_mine = sum(p.numel() for p in module.parameters())
        n_ref = sum(p.numel() for p in reference.parameters())
        if n_mine != n_ref:
            msg = f"{label}: {n_mine:,} parameters, the course's branch has {n_ref:,} ({n_mine - n_ref:+,})"
            problem = _branch_structure(module, cin, cout, rate)
            return msg + (f" - {problem}" if problem else "")
        x = feature_map(cin, seed=1)
        got, want, problem = run_with_reference_weights(
            module, reference, (x,), "the course's", "one nn.Conv2d and one nn.BatchNorm2d", "the module")
        if problem:
            return f"{label}: {problem}"
        if torch.allclose(got, want, atol=1e-5, rtol=0):
            return None
        msg = (f"{label}: right shape, receptive field and parameter count, but with the course's weights the outputs "
               f"differ (largest difference {(got - want).abs().max().item():.2g})")
        conv, bn = reference[0], reference[1]
        with torch.no_grad():
            no_relu = bn(conv(x))
            relu_first = bn(F.relu(conv(x)))
        if torch.allclose(got, no_relu, atol=1e-5, rtol=0):
            msg += " - the output has negative values: the ReLU after BatchNorm is missing"
        elif torch.allclose(got, relu_first, atol=1e-5, rtol=0):
            msg += " - ReLU comes before BatchNorm; the order is convolution, BatchNorm, ReLU"
        else:
            msg += " - check the order: convolution, BatchNorm, ReLU, each used once"
        return msg

    def cases():
        for cin, cout, rate in _BRANCH_CASES:
            state = {"cin": cin, "cout": cout, "rate": rate, "module": None}
            yield f"aspp_branch({cin}, {cout}, rate={rate})", (cin, cout, rate, state), state

    with torch.random.fork_rng(devices=[]):  # building the modules draws random weights: leave the caller's RNG alone
        torch.manual_seed(0)
        problems, unanswered = run_cases(attempt, cases(), judge, raised)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    rates = ", ".join(str(r) for r in sorted({r for _, _, r in _BRANCH_CASES}))
    return feedback(name, problems, f"keeps the {size} x {size} size at rates {rates}, sees exactly `rate` pixels "
                    "away, and computes the same as the course's ASPP branch with its weights", strict, hint)
