"""Tests of utils.losses: hand-computed values, identities between the losses, ignore index, gradients."""
import math

import pytest
import torch
import torch.nn.functional as F

from utils.losses import (
    DiceLoss,
    FocalLoss,
    TverskyLoss,
    WeightedSumLoss,
    class_frequencies,
    class_weights,
    dice_loss,
    focal_loss,
    soft_dice_score,
    tversky_index,
    tversky_loss,
    weighted_cross_entropy,
)


def _random(seed=0, b=2, c=4, h=8, w=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=g), torch.randint(0, c, (b, h, w), generator=g)


def _perfect_logits(target, num_classes, scale=30.0):
    return F.one_hot(target, num_classes).permute(0, 3, 1, 2).float() * scale


# --------------------------------------------------------------------------------------------------
# hand-computed values
# --------------------------------------------------------------------------------------------------

def test_soft_dice_by_hand():
    # one class, 4 pixels: p = [1, 1, 0, 0], g = [1, 0, 1, 0] -> 2*1 / (2 + 2) = 0.5
    p = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    g = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    assert soft_dice_score(p, g, smooth=0).item() == pytest.approx(0.5)
    # smoothing s = 1: (2 + 1) / (4 + 1)
    assert soft_dice_score(p, g, smooth=1).item() == pytest.approx(0.6)


def test_tversky_by_hand():
    # TP = 1, FP = 1, FN = 1: alpha = 0.2, beta = 0.8 -> 1 / (1 + 0.2 + 0.8) = 0.5; alpha = 1, beta = 0 -> 0.5
    p = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    g = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    assert tversky_index(p, g, 0.2, 0.8, smooth=0).item() == pytest.approx(0.5)
    # TP = 1, FP = 1, FN = 0 (g = [1, 0, 0, 0]): alpha = 0.3 -> 1 / 1.3
    g2 = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    assert tversky_index(p, g2, 0.3, 0.7, smooth=0).item() == pytest.approx(1 / 1.3)


def test_focal_by_hand():
    # two classes, one pixel, logits (0, 0): p_t = 0.5; gamma = 2: -(0.5 ** 2) * log(0.5)
    logits = torch.zeros(1, 2, 1, 1)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    assert focal_loss(logits, target, gamma=2).item() == pytest.approx(0.25 * math.log(2))
    assert focal_loss(logits, target, alpha=[0.25, 0.75], gamma=2).item() == pytest.approx(0.25 * 0.25 * math.log(2))


def test_class_frequencies_and_weights_by_hand():
    masks = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0, 0, 2]])  # 13 / 2 / 1 of 16
    f = class_frequencies(masks, 4)
    assert f.tolist() == pytest.approx([13 / 16, 2 / 16, 1 / 16, 0.0])
    w = class_weights(f, "median")  # median of present frequencies is 2/16
    assert w.tolist() == pytest.approx([2 / 13, 1.0, 2.0, 0.0])
    inv = class_weights(f, "inverse")
    assert (inv * f).sum().item() == pytest.approx(1.0)  # frequency-weighted mean weight is 1
    assert inv[2] / inv[1] == pytest.approx(2.0)


def test_class_frequencies_skips_ignore_index():
    masks = torch.tensor([[0, 1, 255, 255]])
    assert class_frequencies(masks, 2).tolist() == [0.5, 0.5]


# --------------------------------------------------------------------------------------------------
# identities and limits
# --------------------------------------------------------------------------------------------------

def test_focal_with_gamma_zero_is_cross_entropy():
    logits, target = _random()
    target[0, :2] = 255
    expected = F.cross_entropy(logits, target, ignore_index=255)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0), expected)


def test_focal_is_below_cross_entropy_for_gamma_above_zero():
    logits, target = _random(1)
    assert focal_loss(logits, target, gamma=2.0) < F.cross_entropy(logits, target)


@pytest.mark.parametrize("smooth", [0.0, 1.0, 5.0])
def test_tversky_half_half_is_dice(smooth):
    logits, target = _random(2)
    # Tversky(s) = (TP + s) / (TP + (FP + FN) / 2 + s) = (2 TP + 2 s) / (2 TP + FP + FN + 2 s) = Dice(2 s)
    torch.testing.assert_close(tversky_loss(logits, target, 0.5, 0.5, smooth=smooth),
                               dice_loss(logits, target, smooth=2 * smooth))
    if smooth == 0.0:
        torch.testing.assert_close(tversky_loss(logits, target, 0.5, 0.5, smooth=0.0),
                                   dice_loss(logits, target, smooth=0.0))


@pytest.mark.parametrize("loss", [
    lambda lg, t: dice_loss(lg, t),
    lambda lg, t: tversky_loss(lg, t, 0.3, 0.7),
    lambda lg, t: focal_loss(lg, t),
    lambda lg, t: F.cross_entropy(lg, t),
    lambda lg, t: weighted_cross_entropy(t, 4)(lg, t),
])
def test_near_zero_for_a_perfect_prediction(loss):
    _, target = _random(3)
    assert loss(_perfect_logits(target, 4), target).item() < 1e-3


def test_binary_dice_perfect_and_worst():
    target = torch.tensor([[[0, 1], [1, 0]]])
    perfect = (target.float() * 2 - 1) * 30  # (B, H, W) logits
    assert dice_loss(perfect, target, mode="binary").item() < 1e-3
    assert dice_loss(-perfect, target, mode="binary", smooth=0).item() > 0.99
    assert dice_loss(perfect.unsqueeze(1), target, mode="binary").item() < 1e-3


@pytest.mark.parametrize("loss", [
    lambda lg, t: dice_loss(lg, t),
    lambda lg, t: tversky_loss(lg, t, 0.3, 0.7),
    lambda lg, t: focal_loss(lg, t, alpha=[1, 2, 3, 4]),
    lambda lg, t: WeightedSumLoss([torch.nn.CrossEntropyLoss(ignore_index=255), DiceLoss()], [1.0, 0.5])(lg, t),
])
def test_finite_gradients(loss):
    logits, target = _random(4)
    target[1, 3:] = 255
    logits.requires_grad_(True)
    loss(logits, target).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", [
    lambda lg, t: dice_loss(lg, t),
    lambda lg, t: tversky_loss(lg, t, 0.3, 0.7),
    lambda lg, t: focal_loss(lg, t),
])
def test_ignore_index_is_really_ignored(loss):
    logits, target = _random(5)
    ignored = target.clone()
    ignored[:, :4] = 255
    # Whatever the logits say on ignored pixels, the loss does not change and gets no gradient there.
    other = logits.clone()
    other[:, :, :4] = torch.randn_like(other[:, :, :4]) * 10
    assert loss(logits, ignored).item() == pytest.approx(loss(other, ignored).item(), abs=1e-6)
    # ... and equals the loss computed on the labelled pixels alone.
    assert loss(logits, ignored).item() == pytest.approx(loss(logits[:, :, 4:], target[:, 4:]).item(), abs=1e-6)
    lg = logits.clone().requires_grad_(True)
    loss(lg, ignored).backward()
    assert lg.grad[:, :, :4].abs().max() == 0


def test_weighted_sum_adds_the_terms():
    logits, target = _random(6)
    combo = WeightedSumLoss({"ce": torch.nn.CrossEntropyLoss(), "dice": DiceLoss()}, [1.0, 2.0])
    value = combo(logits, target)
    expected = F.cross_entropy(logits, target) + 2 * dice_loss(logits, target)
    torch.testing.assert_close(value, expected)
    assert set(combo.last) == {"ce", "dice"}


def test_modules_match_functions():
    logits, target = _random(7)
    torch.testing.assert_close(FocalLoss(gamma=1.5)(logits, target), focal_loss(logits, target, gamma=1.5))
    torch.testing.assert_close(TverskyLoss(0.2, 0.8)(logits, target), tversky_loss(logits, target, 0.2, 0.8))
    torch.testing.assert_close(DiceLoss(smooth=0.5)(logits, target), dice_loss(logits, target, smooth=0.5))


def test_weighted_cross_entropy_weighs_rare_classes_more():
    masks = torch.zeros(1, 10, 10, dtype=torch.long)
    masks[0, 0, :2] = 1
    ce = weighted_cross_entropy(masks, 2)
    assert ce.weight[1] > ce.weight[0]


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

def test_error_shape_mismatch():
    with pytest.raises(ValueError, match=r"`logits` \(shape \(2, 4, 8, 8\)\) must be \(B, C, H, W\)"):
        dice_loss(torch.zeros(2, 4, 8, 8), torch.zeros(2, 6, 6, dtype=torch.long))


def test_error_target_out_of_range():
    with pytest.raises(ValueError, match=r"class ids in \[0, 9\], outside \[0, 4\)"):
        logits, target = _random()
        target[0, 0, 0] = 9
        dice_loss(logits, target)


def test_error_float_target():
    with pytest.raises(ValueError, match="`target` must be an integer tensor"):
        focal_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2))


def test_error_binary_target_values():
    with pytest.raises(ValueError, match="binary targets must hold 0 or 1"):
        dice_loss(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 2), mode="binary")


def test_error_negative_gamma():
    with pytest.raises(ValueError, match="`gamma` must be a non-negative number, got -1"):
        FocalLoss(gamma=-1)


def test_error_alpha_length():
    with pytest.raises(ValueError, match=r"`alpha` must be one non-negative number or one per class \(4\)"):
        focal_loss(*_random(), alpha=[1.0, 2.0])


def test_error_mode():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        DiceLoss(mode="multilabel")


def test_error_weights_method():
    with pytest.raises(ValueError, match="`method` must be"):
        class_weights([0.5, 0.5], "log")


def test_error_weighted_sum_lengths():
    with pytest.raises(ValueError, match="`weights` must be 2 non-negative numbers"):
        WeightedSumLoss([DiceLoss(), FocalLoss()], [1.0])
