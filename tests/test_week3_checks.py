"""Checks of notebooks 05 and 06: correct answers pass, known-wrong answers get a message saying what is wrong."""
import numpy as np
import pytest
import torch
from check_helpers import assert_explained
from torch import nn

from utils.checks.lesson05 import (
    check_aspp_branch,
    check_receptive_field,
    check_same_padding,
)
from utils.checks.lesson06 import (
    check_bilinear_sample,
    check_greedy_match,
    roi_align_point,
)

# ----------------------------------------------------------------------------- 05.1 receptive field

def rf_right(dilations, kernel_size=3):
    return 1 + sum((kernel_size - 1) * d for d in dilations)


def test_receptive_field_correct():
    fb = check_receptive_field(rf_right, strict=True)
    assert fb.passed and "measured field" in str(fb)


@pytest.mark.parametrize("wrong, message", [
    (lambda d, k=3: rf_right(d, k) - 1, "off by one"),
    (lambda d, k=3: 1 + len(d) * (k - 1), "the dilations are ignored"),
    (lambda d, k=3: sum(x * (k - 1) + 1 for x in d), "kernel spans are added whole"),
    (lambda d, k=3: (k - 1) * max(d) + 1, "the last layer alone"),
    (lambda d, k=3: 2 * rf_right(d, k) - 1, "counts both sides twice"),
])
def test_receptive_field_wrong_answers_are_explained(wrong, message):
    assert_explained(check_receptive_field, wrong, message, strict_match=message)


def test_receptive_field_non_number():
    fb = check_receptive_field(lambda d, k=3: "fifteen")
    assert not fb.passed and "return one int" in str(fb)


# ----------------------------------------------------------------------------- 05.2 same padding

def test_same_padding_correct():
    assert check_same_padding(lambda k, d: d * (k - 1) // 2, strict=True).passed


@pytest.mark.parametrize("wrong, message", [
    (lambda k, d: d, "right for 3 x 3 kernels only"),
    (lambda k, d: (k - 1) // 2, "padding of an undilated kernel"),
    (lambda k, d: d * (k - 1), "half of it goes on each side"),
    (lambda k, d: d * (k - 1) // 2 + 1, "off by one"),
    (lambda k, d: -1, "non-negative int"),
])
def test_same_padding_wrong_answers_are_explained(wrong, message):
    fb = check_same_padding(wrong)
    assert not fb.passed and message in str(fb)


# ----------------------------------------------------------------------------- 05.3 one ASPP branch

def branch(padding=lambda r: r, dilation=lambda r: r, kernel_size=3, bias=False, norm=True, relu=True,
           relu_first=False):
    """An ASPP branch builder with one thing changed; ``padding`` and ``dilation`` map the rate to the layer's."""

    def build(in_channels, out_channels, rate):
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding(rate), dilation=dilation(rate),
                         bias=bias)
        after = [nn.BatchNorm2d(out_channels)] if norm else []
        after = [nn.ReLU()] + after if relu_first else after + ([nn.ReLU()] if relu else [])
        return nn.Sequential(conv, *after)

    return build


class BranchRegisteredOutOfOrder(nn.Module):
    def __init__(self, in_channels, out_channels, rate):
        super().__init__()
        self.bn = nn.BatchNorm2d(out_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate, bias=False)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


def test_aspp_branch_correct():
    fb = check_aspp_branch(branch(), strict=True)
    assert fb.passed and "rates 1, 2, 6, 12, 18" in str(fb)
    assert check_aspp_branch(BranchRegisteredOutOfOrder, strict=True).passed


def test_aspp_branch_torchvision_agrees():
    """torchvision's own ASPP branch, an independent implementation, passes the check."""
    from torchvision.models.segmentation.deeplabv3 import ASPPConv

    assert check_aspp_branch(lambda i, o, r: ASPPConv(i, o, r), strict=True).passed


@pytest.mark.parametrize("wrong, message", [
    (branch(padding=lambda r: 1), "padding 1 with dilation 6: the dilated 3x3 kernel spans 2 * 6 + 1 = 13 pixels, "
                                  "so padding 1 loses 2 * (6 - 1) = 10 pixels: 33 x 33 -> 23 x 23"),
    (branch(padding=lambda r: 1), "rate=18): the module raised RuntimeError"),
    (branch(padding=lambda r: 1), "narrower than the kernel's span (37), so PyTorch refuses"),
    (branch(dilation=lambda r: 1), "padding=6 but no dilation"),
    (branch(padding=lambda r: 2 * r), "padding 12 with dilation 6: the output is 33 + 2 * 12 - 2 * 6 = 45"),
    (branch(padding=lambda r: 1, dilation=lambda r: 1), "offsets [-1, 0, 1]; a rate-6 branch depends on [-6, 0, 6]"),
    (branch(padding=lambda r: 1, dilation=lambda r: 1), "the dilation is missing"),
    (branch(padding=lambda r: r + 1, dilation=lambda r: r + 1), "offsets [-7, 0, 7]; a rate-6 branch"),
    (lambda i, o, r: branch(kernel_size=2 * r + 1)(i, o, r), "not a larger kernel"),
    (branch(bias=True), "(+4) - the convolution has a bias: pass bias=False"),
    (branch(norm=False), "found 0 nn.BatchNorm2d layer(s)"),
    (branch(relu=False), "the ReLU after BatchNorm is missing"),
    (branch(relu_first=True), "ReLU comes before BatchNorm"),
    (lambda i, o, r: branch()(i, i, r), "it should map in_channels=8 -> out_channels=4"),
    (lambda i, o, r: torch.zeros(1), "return an nn.Module"),
    (branch()(8, 4, 6), "pass the function that builds one"),
])
def test_aspp_branch_wrong_answers_are_explained(wrong, message):
    assert_explained(check_aspp_branch, wrong, message, strict_match="one ASPP branch")


def test_aspp_branch_unanswered():
    for placeholder in (None, lambda in_channels, out_channels, rate: None):
        fb = check_aspp_branch(placeholder)
        assert not fb.passed and "not answered yet" in str(fb) and "hint:" not in str(fb)


# ----------------------------------------------------------------------------- 06.1 bilinear sampling

def bilinear_right(feature, y, x):
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, feature.shape[0] - 1), min(x0 + 1, feature.shape[1] - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * feature[y0, x0] + (1 - ly) * lx * feature[y0, x1]
            + ly * (1 - lx) * feature[y1, x0] + ly * lx * feature[y1, x1])


def test_roi_align_point_samples_a_linear_ramp_exactly():
    """Bilinear interpolation reproduces a linear function: the cross-check of the reference itself."""
    ramp = np.add.outer(10 * np.arange(4.0), np.arange(5.0))  # value = 10 y + x
    assert roi_align_point(ramp, 1.25, 2.5) == pytest.approx(15.0, abs=1e-5)


def test_bilinear_correct():
    assert check_bilinear_sample(bilinear_right, strict=True).passed


@pytest.mark.parametrize("wrong, message", [
    (lambda f, y, x: f[int(round(y)), int(round(x))], "RoIPool's quantisation"),
    (lambda f, y, x: f[int(y), int(x)], "RoIPool's quantisation"),
    (lambda f, y, x: bilinear_right(f, np.floor(y) + 1 - (y - np.floor(y)), np.floor(x) + 1 - (x - np.floor(x))),
     "weights are reversed"),
    (lambda f, y, x: bilinear_right(f, x, y), "x and y are swapped"),
])
def test_bilinear_wrong_answers_are_explained(wrong, message):
    fb = check_bilinear_sample(wrong)
    assert not fb.passed and message in str(fb)


# ----------------------------------------------------------------------------- 06.2 greedy matching

def greedy_right(iou, threshold):
    taken, pairs = set(), []
    for i in range(iou.shape[0]):
        free = [j for j in range(iou.shape[1]) if j not in taken]
        if not free:
            continue
        j = max(free, key=lambda c: iou[i, c])
        if iou[i, j] >= threshold:
            taken.add(j)
            pairs.append((i, j))
    return pairs


def test_greedy_correct():
    assert check_greedy_match(greedy_right, strict=True).passed
    assert check_greedy_match(lambda iou, t: [tuple(p) for p in np.array(greedy_right(iou, t))[::-1]]).passed


def test_greedy_duplicates_are_explained():
    def no_bookkeeping(iou, t):
        return [(i, int(np.argmax(iou[i]))) for i in range(iou.shape[0]) if iou.shape[1] and iou[i].max() >= t]

    fb = check_greedy_match(no_bookkeeping)
    assert not fb.passed and "matched twice" in str(fb)


def test_greedy_hungarian_is_explained():
    from scipy.optimize import linear_sum_assignment

    def hungarian(iou, t):
        if iou.size == 0:
            return []
        rows, cols = linear_sum_assignment(-iou)
        return [(i, j) for i, j in zip(rows, cols) if iou[i, j] >= t]

    fb = check_greedy_match(hungarian)
    assert not fb.passed and "Hungarian" in str(fb)


def test_greedy_strict_threshold_is_explained():
    fb = check_greedy_match(lambda iou, t: [p for p in greedy_right(iou, t) if iou[p] > t])
    assert not fb.passed and "equal to the threshold counts" in str(fb)


def test_greedy_below_threshold_is_explained():
    fb = check_greedy_match(lambda iou, t: greedy_right(iou, 0.3))
    assert not fb.passed and "below the threshold" in str(fb)


def test_greedy_bad_return_type():
    fb = check_greedy_match(lambda iou, t: 3)
    assert not fb.passed and "list of (pred_index, true_index) pairs" in str(fb)
