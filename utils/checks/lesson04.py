"""Checks for notebook 04 (FCN and U-Net): the output size of a transposed convolution, cropping a skip,
and U-Net's decoder step."""
from __future__ import annotations

from collections.abc import Callable

from .core import Feedback, call_answer, feedback, opening, run_cases
from .modules import layers_of, run_with_reference_weights


# ------------------------------------------------------------------------------ transposed convolution

# (size, kernel_size, stride, padding, output_padding)
_TRANSPOSED_CASES = [
    (8, 2, 2, 0, 0),    # U-Net's up-convolution: doubles the size
    (7, 3, 2, 1, 1),    # the usual "same"-style x2 upsampling
    (16, 4, 2, 1, 0),   # DCGAN's x2 upsampling
    (5, 3, 1, 1, 0),    # stride 1: keeps the size
    (10, 5, 3, 2, 2),
    (1, 7, 1, 0, 0),    # one pixel spreads into a kernel-sized patch
]


def _torch_transposed_size(n, k, s, p, op) -> int:
    """The size PyTorch's ``ConvTranspose2d`` really produces (the layer is run, not a formula)."""
    import torch

    layer = torch.nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op)
    with torch.no_grad():
        return int(layer(torch.zeros(1, 1, n, n)).shape[-1])


def check_transposed_output_size(output_size: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 04.1: ``output_size(n, kernel_size, stride, padding, output_padding) -> int``.

    The height (or width) of the output of ``nn.ConvTranspose2d`` for an input of size ``n``. The answer
    is compared with what PyTorch's layer really produces on six configurations.
    """
    name = "output size of a transposed convolution"
    hint = ("a transposed convolution undoes the size arithmetic of a convolution: the input pixels are "
            "spread `stride` apart, (n - 1) * stride + 1, each becomes a kernel-sized patch (+ kernel - 1), "
            "then `padding` is cropped from both sides and `output_padding` added on one side.")
    early = opening(name, output_size, "a function (n, kernel_size, stride, padding, output_padding) -> int",
                    strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        n, k, s, p, op = case
        want = _torch_transposed_size(n, k, s, p, op)
        try:
            value = float(got)
        except (TypeError, ValueError):
            return f"{label}: returned {got!r}; return one int"
        if value == want:
            return None
        msg = f"{label}: got {got!r}, PyTorch gives {want}"
        if value == (n + 2 * p - k) / s + 1 or value == (n + 2 * p - k) // s + 1:
            msg += " - that is the formula of an ordinary convolution, which shrinks; the transposed one runs it backwards"
        elif value == want - op and op:
            msg += " - output_padding is missing: it adds that many rows on one side"
        elif value == n * s:
            msg += " - n * stride is right only for kernel_size == stride and no padding; work it out in general"
        elif value == want + 2 * p and p:
            msg += " - padding is subtracted twice (once per side) in a transposed convolution, not ignored"
        elif value == want + p and p:
            msg += " - padding crops both sides: subtract 2 * padding"
        elif value in (want - 1, want + 1):
            msg += " - off by one: (n - 1) * stride counts the gaps between input pixels, then add kernel_size"
        return msg

    def cases():
        for n, k, s, p, op in _TRANSPOSED_CASES:
            label = f"n={n}, kernel_size={k}, stride={s}, padding={p}, output_padding={op}"
            yield label, (n, k, s, p, op), (n, k, s, p, op)

    problems, unanswered = run_cases(output_size, cases(), judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"right on all {len(_TRANSPOSED_CASES)} configurations (checked against "
                    "PyTorch's layer)", strict, hint)


# ---------------------------------------------------------------------------------------- center crop

# (feature shape (B, C, H, W), target (h, w))
_CROP_CASES = [
    ((1, 2, 8, 8), (4, 4)),
    ((2, 3, 64, 64), (56, 56)),   # the paper: encoder 64x64 features cropped to the decoder's 56x56
    ((1, 1, 9, 7), (4, 4)),       # odd differences: one more row or column goes on one side
    ((1, 4, 6, 6), (6, 6)),       # nothing to crop
]


def _reference_crop(x, h, w):
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


def check_center_crop(center_crop: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 04.2: ``center_crop(features, (h, w)) -> tensor``, the crop of the paper's skip connections.

    ``features`` ``(B, C, H, W)``; the result is ``(B, C, h, w)``, the central window, with
    ``top = (H - h) // 2`` and ``left = (W - w) // 2`` (when ``H - h`` is odd the extra row is at the bottom).
    """
    import torch

    name = "centre-cropping a skip connection"
    hint = "top = (H - h) // 2 and left = (W - w) // 2, then features[..., top:top + h, left:left + w]."
    early = opening(name, center_crop, "a function (features, (h, w)) -> tensor", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        x, h, w = case
        if not isinstance(got, torch.Tensor):
            return f"{label}: returned {type(got).__name__}; return a tensor"
        want = _reference_crop(x, h, w)
        if got.shape != want.shape:
            msg = f"{label}: returned shape {tuple(got.shape)}, expected {tuple(want.shape)}"
            if tuple(got.shape[-2:]) != (h, w):
                msg += (" - the height and width must become (h, w): crop the last two dimensions, "
                        "features[..., top:top + h, left:left + w]")
            else:
                msg += " - keep the batch and channel dimensions as they are; crop only height and width"
            return msg
        if torch.equal(got, want):
            return None
        msg = f"{label}: right shape, wrong window"
        if torch.equal(got, x[..., :h, :w]):
            msg += " - that is the top-left corner; the paper crops the centre"
        elif torch.equal(got, x[..., x.shape[-2] - h:, x.shape[-1] - w:]):
            msg += " - that is the bottom-right corner; the paper crops the centre"
        else:
            top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
            for dt, dl in ((1, 0), (0, 1), (1, 1)):
                if torch.equal(got, x[..., top + dt:top + dt + h, left + dl:left + dl + w]):
                    msg += (" - one pixel off: with an odd difference the extra row/column goes at the "
                            "bottom/right, so use (H - h) // 2 (rounding down)")
                    break
        return msg

    def cases():
        for shape, (h, w) in _CROP_CASES:
            x = torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape)
            yield f"features {tuple(shape)} cropped to {(h, w)}", (x.clone(), (h, w)), (x, h, w)

    problems, unanswered = run_cases(center_crop, cases(), judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"right on all {len(_CROP_CASES)} cases, odd differences included", strict, hint)


# ------------------------------------------------------------------------------------ decoder step

# (in_channels, out_channels): U-Net's halving first, then a pair where in_channels != 2 * out_channels, so
# that the first 3x3 convolution must be sized from the concatenation, not from in_channels.
_UP_PAIRS = [(16, 8), (8, 4), (12, 5)]
# (h, w) of the deeper features x; the skip and the output are (2h, 2w)
_UP_SIZES = [(4, 4), (6, 8)]


def _up_step_structure(module, cin: int, cout: int) -> str | None:
    """What is wrong in the layers of a decoder step (judged from its sub-modules), or None if nothing shows."""
    from torch import nn

    ups = layers_of(module, nn.ConvTranspose2d)
    if not ups:
        return ("there is no nn.ConvTranspose2d: upsample with nn.ConvTranspose2d(in_channels, out_channels, "
                "kernel_size=2, stride=2)")
    up = ups[0]
    if up.in_channels != cin or up.out_channels != cout:
        return (f"the transposed convolution maps {up.in_channels} -> {up.out_channels} channels; it takes "
                f"in_channels={cin} to out_channels={cout}, so that with the skip's {cout} the concatenation "
                f"has 2 * out_channels = {2 * cout}")
    if up.kernel_size != (2, 2) or up.stride != (2, 2) or up.padding != (0, 0):
        return (f"the transposed convolution has kernel_size={up.kernel_size[0]}, stride={up.stride[0]}, "
                f"padding={up.padding[0]}; kernel_size=2, stride=2 (no padding) doubles h and w exactly")
    if up.bias is None:
        return ("the transposed convolution has no bias: keep nn.ConvTranspose2d's default bias=True "
                f"({cout} parameters; no BatchNorm follows it directly)")
    convs = layers_of(module, nn.Conv2d)
    if len(convs) != 2:
        return f"found {len(convs)} nn.Conv2d layer(s); the step has two 3x3 convolutions after the concatenation"
    first, second = convs
    if first.in_channels != 2 * cout:
        if first.in_channels == cin:
            return (f"the first 3x3 convolution takes in_channels={cin} channels, but the concatenation of skip "
                    f"({cout}) and upsampled ({cout}) has 2 * out_channels = {2 * cout}; the two are equal only "
                    f"when in_channels = 2 * out_channels")
        return (f"the first 3x3 convolution takes {first.in_channels} channels; the concatenation of skip "
                f"({cout}) and upsampled ({cout}) has 2 * out_channels = {2 * cout}")
    if first.out_channels != cout or second.in_channels != cout or second.out_channels != cout:
        return (f"the 3x3 convolutions map {first.in_channels} -> {first.out_channels} and {second.in_channels} -> "
                f"{second.out_channels} channels; they should map {2 * cout} -> {cout} and {cout} -> {cout}")
    for conv in convs:
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.dilation != (1, 1):
            return (f"a convolution has kernel_size={conv.kernel_size[0]}, padding={conv.padding[0]}, "
                    f"stride={conv.stride[0]}, dilation={conv.dilation[0]}; both are 3x3 with padding 1 (stride 1), "
                    "which keeps the size")
    if any(conv.bias is not None for conv in convs):
        return ("the 3x3 convolutions have a bias: pass bias=False, as a bias right before BatchNorm is redundant "
                f"(BatchNorm subtracts the mean and adds its own bias), {cout} parameters each")
    bns = layers_of(module, nn.BatchNorm2d)
    if len(bns) != 2:
        return (f"found {len(bns)} nn.BatchNorm2d layer(s); each of the two 3x3 convolutions is followed by "
                f"BatchNorm2d(out_channels) and ReLU (two BatchNorms are 4 * out_channels = {4 * cout} "
                "parameters: a weight and a bias per channel each)")
    if any(bn.num_features != cout for bn in bns):
        return f"the BatchNorm2d layers have {[bn.num_features for bn in bns]} features; each normalises {cout}"
    return None


def check_up_step(up_step_class: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 04.3: ``MyUpStep(in_channels, out_channels)``, U-Net's decoder step, as an ``nn.Module`` class.

    ``forward(x, skip)`` takes ``x`` ``(B, in_channels, h, w)`` and ``skip`` ``(B, out_channels, 2h, 2w)``
    (float32) and returns ``(B, out_channels, 2h, 2w)``: a 2x2 transposed convolution with stride 2 from
    ``in_channels`` to ``out_channels``, ``torch.cat([skip, upsampled], dim=1)``, then two 3x3 convolutions
    (padding 1, no bias), each followed by BatchNorm and ReLU: ``utils.models.unet._Up(in_channels, out_channels,
    norm="batch", upsample="transpose", skip=True)``.

    For three channel pairs the check builds the class, runs it in eval mode on inputs of two sizes,
    compares the shapes and the parameter count with the reference, then copies the reference's weights
    (and BatchNorm statistics) into it and compares the outputs on a fixed random input to 1e-5.
    """
    import torch
    from torch import nn

    from ..models.unet import _Up

    name = "U-Net's decoder step"
    hint = ("the transposed convolution already brings in_channels down to out_channels, so "
            "torch.cat([skip, upsampled], dim=1) has 2 * out_channels channels: that is what the first 3x3 "
            "convolution takes, whatever in_channels is. Each 3x3 convolution has bias=False and is followed by "
            "BatchNorm2d(out_channels) and ReLU.")
    early = opening(name, up_step_class,
                    "a function or class MyUpStep(in_channels, out_channels) that builds an nn.Module", strict, hint)
    if early is not None:
        return early
    if isinstance(up_step_class, nn.Module):
        return feedback(name, [f"got a module, an instance of {type(up_step_class).__name__}: pass the class "
                               "itself (MyUpStep, not MyUpStep(...)), the check builds it for several channel "
                               "counts"], "", strict, hint)
    label_of = getattr(up_step_class, "__name__", "MyUpStep")

    def inputs(cin, cout, h, w, seed=0):
        g = torch.Generator().manual_seed(seed)
        return torch.randn(2, cin, h, w, generator=g), torch.randn(2, cout, 2 * h, 2 * w, generator=g)

    def attempt(cin, cout, state):
        module = up_step_class(cin, cout)
        if module is None:
            return None
        state["module"] = module
        if not isinstance(module, nn.Module):
            return module
        module.eval()
        outputs = []
        for h, w in _UP_SIZES:
            x, skip = inputs(cin, cout, h, w)
            state["stage"] = f"forward(x {tuple(x.shape)}, skip {tuple(skip.shape)})"
            with torch.no_grad():
                out = module(x, skip)
            if out is None:
                return None
            outputs.append(out)
        return outputs

    def raised(label, error, state):
        if state["module"] is None:
            msg = f"{label}: building it raised {error}"
            if "Module.__init__() call" in error:
                msg += " - call super().__init__() first thing in __init__, before creating the layers"
            return msg
        msg = f"{label}: {state['stage']} raised {error}"
        problem = _up_step_structure(state["module"], state["cin"], state["cout"])
        if problem:
            msg += f" - {problem}"
        elif "Sizes of tensors must match" in error or "channels" in error:
            msg += " - concatenate on the channel axis: torch.cat([skip, upsampled], dim=1)"
        return msg

    def judge(label, outputs, state):
        module, cin, cout = state["module"], state["cin"], state["cout"]
        if not isinstance(module, nn.Module):
            return (f"{label}: built a {type(module).__name__}, not an nn.Module: write class MyUpStep(nn.Module) "
                    "and call super().__init__() first")
        for (h, w), out in zip(_UP_SIZES, outputs):
            if not isinstance(out, torch.Tensor):
                return f"{label}: forward returned {type(out).__name__}; return a tensor"
            want = (2, cout, 2 * h, 2 * w)
            if tuple(out.shape) != want:
                msg = (f"{label}: x {(2, cin, h, w)} and skip {(2, cout, 2 * h, 2 * w)} gave {tuple(out.shape)}, "
                       f"expected {want}")
                problem = _up_step_structure(module, cin, cout)
                return msg + (f" - {problem}" if problem else "")
        reference = _Up(cin, cout, norm="batch", upsample="transpose", skip=True)
        n_mine = sum(p.numel() for p in module.parameters())
        n_ref = sum(p.numel() for p in reference.parameters())
        if n_mine != n_ref:
            msg = f"{label}: {n_mine:,} parameters, the reference has {n_ref:,} ({n_mine - n_ref:+,})"
            problem = _up_step_structure(module, cin, cout)
            return msg + (f" - {problem}" if problem else "")
        x, skip = inputs(cin, cout, 4, 6, seed=1)
        got, want, problem = run_with_reference_weights(
            module, reference, (x, skip), "the reference's",
            "one nn.ConvTranspose2d, two nn.Conv2d and two nn.BatchNorm2d", "forward")
        if problem:
            return f"{label}: {problem}"
        if torch.allclose(got, want, atol=1e-5, rtol=0):
            return None
        msg = (f"{label}: right shapes and parameter count, but with the reference's weights the outputs differ "
               f"(largest difference {(got - want).abs().max().item():.2g})")
        with torch.no_grad():  # the usual slips, computed with the reference's layers
            up = reference.up(x)
            swapped = reference.conv(torch.cat([up, skip], dim=1))
            no_last_relu = nn.Sequential(*list(reference.conv)[:-1])(torch.cat([skip, up], dim=1))
            other_skip, _ = call_answer(module, x, torch.randn(skip.shape, generator=torch.Generator().manual_seed(2)))
        if torch.allclose(got, swapped, atol=1e-5, rtol=0):
            msg += (" - skip and upsampled are concatenated in the other order: the shapes match either way, but "
                    "the first convolution's weights then meet the wrong halves; put the skip first, "
                    "torch.cat([skip, upsampled], dim=1), as utils.models.unet._Up does")
        elif torch.allclose(got, no_last_relu, atol=1e-5, rtol=0):
            msg += " - the output has negative values: the ReLU after the last BatchNorm is missing"
        elif isinstance(other_skip, torch.Tensor) and torch.equal(got, other_skip):
            msg += " - the output does not depend on `skip`: concatenate it with the upsampled x"
        else:
            msg += " - check the order transposed conv -> concatenation -> conv, BatchNorm, ReLU (twice)"
        return msg

    def cases():
        for cin, cout in _UP_PAIRS:
            state = {"cin": cin, "cout": cout, "module": None, "stage": "building it"}
            yield f"{label_of}({cin}, {cout})", (cin, cout, state), state

    with torch.random.fork_rng(devices=[]):  # building the modules draws random weights: leave the caller's RNG alone
        torch.manual_seed(0)
        problems, unanswered = run_cases(attempt, cases(), judge, raised)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, f"right shapes, parameter count and outputs (with the reference's weights) for "
                    f"all {len(_UP_PAIRS)} channel pairs: the same function as utils.models' decoder step",
                    strict, hint)
