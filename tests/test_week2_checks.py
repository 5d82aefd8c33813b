"""Checks of notebooks 03 and 04: correct answers pass, known-wrong answers get a message saying what is wrong."""
import numpy as np
import pytest
import torch
from check_helpers import assert_explained
from torch import nn

from utils.checks import ExerciseError
from utils.checks.lesson03 import check_dice_from_confusion, check_focal_loss
from utils.checks.lesson04 import (
    check_center_crop,
    check_transposed_output_size,
    check_up_step,
)

# ------------------------------------------------------------------------------------------- 03.1 Dice


def dice_right(cm):
    cm = np.asarray(cm, dtype=float)
    tp = np.diag(cm)
    denominator = cm.sum(0) + cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def test_dice_correct_numpy_and_torch():
    assert check_dice_from_confusion(dice_right, strict=True).passed
    assert check_dice_from_confusion(lambda cm: torch.from_numpy(dice_right(cm)), strict=True).passed


def test_dice_with_the_course_helper():
    from utils.metrics import dice_from_confusion

    assert check_dice_from_confusion(lambda cm: dice_from_confusion(torch.from_numpy(cm)), strict=True).passed


def test_dice_zero_instead_of_nan():
    fb = check_dice_from_confusion(lambda cm: np.nan_to_num(dice_right(cm)))
    assert not fb.passed and "return NaN there" in str(fb)


def test_dice_iou_instead():
    def iou(cm):
        cm = np.asarray(cm, float)
        tp = np.diag(cm)
        with np.errstate(invalid="ignore", divide="ignore"):
            return tp / (cm.sum(0) + cm.sum(1) - tp)

    fb = check_dice_from_confusion(iou)
    assert not fb.passed and "these are IoU values" in str(fb)


def test_dice_recall_instead():
    def recall(cm):
        cm = np.asarray(cm, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(cm) / cm.sum(1)

    fb = check_dice_from_confusion(recall)
    assert not fb.passed and "that is recall" in str(fb)


def test_dice_mean_instead_of_per_class():
    fb = check_dice_from_confusion(lambda cm: np.nanmean(dice_right(cm)))
    assert not fb.passed and "one value per class" in str(fb) and "not the mean" in str(fb)


def test_dice_strict_raises_on_a_wrong_answer():
    with pytest.raises(ExerciseError, match="half the right value"):
        check_dice_from_confusion(lambda cm: dice_right(cm) / 2, strict=True)


# ------------------------------------------------------------------------------------------ 03.2 focal


def focal_right(logits, target, gamma):
    valid = target != 255
    t = torch.where(valid, target, torch.zeros_like(target))
    log_pt = logits.log_softmax(1).gather(1, t.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_pt.exp()) ** gamma) * log_pt
    return (loss * valid).sum() / valid.sum()


def test_focal_correct():
    assert check_focal_loss(focal_right, strict=True).passed


def test_focal_with_the_course_helper():
    from utils.losses import focal_loss

    assert check_focal_loss(lambda lg, t, g: focal_loss(lg, t, gamma=g), strict=True).passed


def test_focal_missing_factor():
    fb = check_focal_loss(lambda lg, t, g: torch.nn.functional.cross_entropy(lg, t, ignore_index=255))
    assert not fb.passed and "factor (1 - p_t) ** gamma is missing" in str(fb)


def test_focal_flipped_sign():
    fb = check_focal_loss(lambda lg, t, g: -focal_right(lg, t, g))
    assert not fb.passed and "sign is flipped" in str(fb)


def test_focal_sum_instead_of_mean():
    def summed(lg, t, g):
        return focal_right(lg, t, g) * (t != 255).sum()

    fb = check_focal_loss(summed)
    assert not fb.passed and "sum over pixels" in str(fb)


def test_focal_divides_by_every_pixel():
    def all_pixels(lg, t, g):
        return focal_right(lg, t, g) * (t != 255).sum() / t.numel()

    fb = check_focal_loss(all_pixels)
    assert not fb.passed and "ignored ones included" in str(fb)


def test_focal_ignore_index_not_handled():
    def no_ignore(lg, t, g):
        log_pt = lg.log_softmax(1).gather(1, t.unsqueeze(1)).squeeze(1)
        return (-((1 - log_pt.exp()) ** g) * log_pt).mean()

    fb = check_focal_loss(no_ignore)
    assert not fb.passed and "pixels labelled 255 are not a class" in str(fb)


def test_focal_without_gradient():
    fb = check_focal_loss(lambda lg, t, g: torch.tensor(float(focal_right(lg, t, g).detach())))
    assert not fb.passed and "carries no gradient" in str(fb)


def test_focal_not_scalar():
    fb = check_focal_loss(lambda lg, t, g: focal_right(lg, t, g).expand(3))
    assert not fb.passed and "scalar tensor" in str(fb)


# ------------------------------------------------------------------------ 04.1 transposed output size


def transposed_right(n, k, s, p, op):
    return (n - 1) * s - 2 * p + k + op


def test_transposed_correct():
    assert check_transposed_output_size(transposed_right, strict=True).passed


def test_transposed_conv_formula():
    fb = check_transposed_output_size(lambda n, k, s, p, op: (n + 2 * p - k) // s + 1)
    assert not fb.passed and "ordinary convolution" in str(fb)


def test_transposed_missing_output_padding():
    fb = check_transposed_output_size(lambda n, k, s, p, op: (n - 1) * s - 2 * p + k)
    assert not fb.passed and "output_padding is missing" in str(fb)


def test_transposed_n_times_stride():
    fb = check_transposed_output_size(lambda n, k, s, p, op: n * s)
    assert not fb.passed and "n * stride is right only" in str(fb)


def test_transposed_padding_ignored():
    fb = check_transposed_output_size(lambda n, k, s, p, op: (n - 1) * s + k + op)
    assert not fb.passed and "padding is subtracted twice" in str(fb)


def test_transposed_off_by_one():
    fb = check_transposed_output_size(lambda n, k, s, p, op: n * s - 2 * p + k + op)
    assert not fb.passed and "off by one" in str(fb)


# ------------------------------------------------------------------------------------- 04.2 centre crop


def crop_right(x, size):
    h, w = size
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


def test_crop_correct():
    assert check_center_crop(crop_right, strict=True).passed


def test_crop_with_torchvision():
    from torchvision.transforms.functional import center_crop

    # torchvision rounds half to even on odd differences, so one window lands a pixel off: the check says so.
    fb = check_center_crop(lambda x, size: center_crop(x, list(size)))
    assert not fb.passed and "one pixel off" in str(fb) and "(H - h) // 2" in str(fb)


def test_crop_top_left():
    fb = check_center_crop(lambda x, size: x[..., : size[0], : size[1]])
    assert not fb.passed and "top-left corner" in str(fb)


def test_crop_wrong_dimensions():
    fb = check_center_crop(lambda x, size: x[: size[0], : size[1]])
    assert not fb.passed and "crop the last two dimensions" in str(fb)


def test_crop_drops_the_batch_dimension():
    fb = check_center_crop(lambda x, size: crop_right(x, size)[0])
    assert not fb.passed and "keep the batch and channel dimensions" in str(fb)


def test_crop_returns_numpy():
    fb = check_center_crop(lambda x, size: crop_right(x, size).numpy())
    assert not fb.passed and "return a tensor" in str(fb)


# ------------------------------------------------------------------------------------ 04.3 decoder step


def two_convs(c_in, c_out, bias=False, norm=True, last_relu=True):
    """Two 3x3 convolutions, each followed by BatchNorm (unless ``norm`` is False) and ReLU."""
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)] + ([nn.BatchNorm2d(c_out)] if norm else [])
    layers += [nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias)]
    layers += ([nn.BatchNorm2d(c_out)] if norm else []) + ([nn.ReLU(inplace=True)] if last_relu else [])
    return nn.Sequential(*layers)


class UpRight(nn.Module):
    """The decoder step of section 5, written again."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = two_convs(2 * out_channels, out_channels)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UpLayersRegisteredOutOfOrder(nn.Module):
    """Right, but the layers are registered in another order than they are used: compared layer type by type."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(out_channels), nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(2 * out_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)

    def forward(self, x, skip):
        x = torch.cat([skip, self.up(x)], dim=1)
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def up_variant(up_channels=None, first_in=None, up_kernel=2, up_bias=True, up_first=False, cat_dim=1,
               ignore_skip=False, **conv_options):
    """A decoder step with one thing changed; ``up_channels`` and ``first_in`` map (in, out) to channel counts."""

    class Variant(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            up_out = up_channels(in_channels, out_channels) if up_channels else out_channels
            self.up = nn.ConvTranspose2d(in_channels, up_out, up_kernel, stride=2, bias=up_bias)
            c_in = first_in(in_channels, out_channels) if first_in else 2 * out_channels
            self.conv = two_convs(c_in, out_channels, **conv_options)

        def forward(self, x, skip):
            up = self.up(x)
            parts = [up, up if ignore_skip else skip]
            return self.conv(torch.cat(parts if up_first else parts[::-1], dim=cat_dim))

    return Variant


class UpPlaceholder(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()

    def forward(self, x, skip):
        return None


class UpWithoutSuper(nn.Module):
    def __init__(self, in_channels, out_channels):
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)


def test_up_step_correct():
    fb = check_up_step(UpRight, strict=True)
    assert fb.passed and "same function" in str(fb)


def test_up_step_course_module_and_layers_registered_out_of_order():
    from utils.models.unet import _Up

    assert check_up_step(lambda i, o: _Up(i, o, norm="batch", upsample="transpose", skip=True), strict=True).passed
    assert check_up_step(UpLayersRegisteredOutOfOrder, strict=True).passed


def test_up_step_leaves_the_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_up_step(UpRight)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("wrong, message", [
    (up_variant(up_first=True), "concatenated in the other order"),
    (up_variant(up_channels=lambda i, o: i, first_in=lambda i, o: i + o), "the transposed convolution maps 16 -> 16"),
    (up_variant(up_channels=lambda i, o: i), "so that with the skip's 8 the concatenation has 2 * out_channels = 16"),
    (up_variant(first_in=lambda i, o: i), "equal only when in_channels = 2 * out_channels"),
    (up_variant(up_kernel=4), "kernel_size=2, stride=2 (no padding) doubles h and w"),
    (up_variant(up_bias=False), "keep nn.ConvTranspose2d's default bias=True"),
    (up_variant(bias=True), "pass bias=False"),
    (up_variant(norm=False), "found 0 nn.BatchNorm2d layer(s)"),
    (up_variant(last_relu=False), "the ReLU after the last BatchNorm is missing"),
    (up_variant(cat_dim=0), "concatenate on the channel axis"),
    (up_variant(ignore_skip=True), "the output does not depend on `skip`"),
    (UpWithoutSuper, "call super().__init__() first"),
    (UpRight(16, 8), "pass the class itself"),
])
def test_up_step_wrong_answers_are_explained(wrong, message):
    assert_explained(check_up_step, wrong, message, strict_match="U-Net's decoder step")


def test_up_step_missing_batch_norm_counts_the_parameters():
    fb = str(check_up_step(up_variant(norm=False)))
    assert "Variant(16, 8): 2,248 parameters, the reference has 2,280 (-32)" in fb  # 4 * out_channels
    assert "4 * out_channels = 32 parameters" in fb


def test_up_step_placeholder_class_is_unanswered():
    fb = check_up_step(UpPlaceholder)
    assert not fb.passed and "not answered yet" in str(fb) and "hint:" not in str(fb)
    with pytest.raises(ExerciseError, match="not answered"):
        check_up_step(UpPlaceholder, strict=True)
