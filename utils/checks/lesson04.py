"""Checks for notebook 04 (FCN and U-Net): the output size of a transposed convolution, cropping a skip."""
from __future__ import annotations

from collections.abc import Callable

from .core import Feedback, feedback, is_unanswered, run_cases


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
    if is_unanswered(output_size):
        return feedback(name, [], "", strict, hint, output_size)
    if not callable(output_size):
        return feedback(name, [f"expected a function (n, kernel_size, stride, padding, output_padding) -> int, "
                               f"got {type(output_size).__name__}"], "", strict, hint)

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
    if is_unanswered(center_crop):
        return feedback(name, [], "", strict, hint, center_crop)
    if not callable(center_crop):
        return feedback(name, [f"expected a function (features, (h, w)) -> tensor, got {type(center_crop).__name__}"],
                        "", strict, hint)

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
