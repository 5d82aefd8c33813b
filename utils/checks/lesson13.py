"""Checks for notebook 13 (interview preparation): one short quiz per topic, answered with a number or a letter.

A quiz is either a :class:`NumberQuiz` (the answer is a number, right within a tolerance) or a :class:`ChoiceQuiz`
(the answer is one letter). Each knows the answers a candidate is likely to give by mistake and what each of them
confuses, so a wrong answer is told *why* it is wrong, not only that it is. An unanswered quiz (``None``) says "not
answered yet" and nothing more. ``QUIZZES`` maps each quiz function's name to its specification (the tests walk
through every wrong answer listed there).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

from .core import Feedback, feedback, is_unanswered

__all__ = [
    "QUIZZES",
    "ChoiceQuiz",
    "NumberQuiz",
    "quiz_annotation_hours",
    "quiz_aspp_rates",
    "quiz_crf_use",
    "quiz_dice_from_iou",
    "quiz_dilated_field",
    "quiz_fcn_score_map",
    "quiz_focal_factor",
    "quiz_median_frequency_weight",
    "quiz_roialign",
    "quiz_segmentation_type",
    "quiz_transposed_size",
    "quiz_unet_channels",
    "quiz_unet_small_data",
]


@dataclass(frozen=True)
class NumberQuiz:
    """A question whose answer is one number.

    ``right`` is accepted within ``tol`` (absolute); each ``(value, explanation)`` of ``wrong`` is a likely mistake,
    recognised within the same tolerance; any other number gets ``hint``.
    """

    name: str
    right: float
    tol: float
    praise: str
    wrong: tuple[tuple[float, str], ...]
    hint: str


@dataclass(frozen=True)
class ChoiceQuiz:
    """A multiple-choice question: ``options`` maps each letter to the option's short text, ``right`` is the
    right letter and ``wrong`` maps every other letter to the explanation of why it is wrong."""

    name: str
    options: Mapping[str, str]
    right: str
    praise: str
    wrong: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        letters = set(self.options)
        if self.right not in letters or set(self.wrong) != letters - {self.right}:
            raise ValueError(f"quiz {self.name!r}: every option but the right one ({self.right!r}) needs an "
                             f"explanation; options {sorted(letters)}, explained {sorted(self.wrong)}")


def _as_number(answer):
    """``answer`` as a float, or ``(None, message)`` when it is not one finite number.

    Python and NumPy numbers, one-element arrays and tensors (``.item()``) and numeric text (``"0.67"``) count.
    """
    if hasattr(answer, "item") and not isinstance(answer, (str, bytes)):
        try:
            answer = answer.item()
        except (ValueError, RuntimeError):
            return None, f"expected one number, got {type(answer).__name__} of shape {tuple(answer.shape)}"
    if isinstance(answer, str):
        try:
            answer = float(answer.replace(",", "").strip())
        except ValueError:
            return None, f"expected a number, got the text {answer!r}"
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        return None, f"expected one number, got {type(answer).__name__} {answer!r}"
    value = float(answer)
    if not math.isfinite(value):
        return None, f"expected a finite number, got {value}"
    return value, None


def _as_letter(answer, options):
    """``answer`` as one lower-case option letter, or ``(None, message)``."""
    letters = ", ".join(sorted(options))
    if not isinstance(answer, str):
        return None, f"expected one letter ({letters}) as a string, e.g. \"a\"; got {type(answer).__name__} {answer!r}"
    letter = answer.strip().strip("()[].:'\" ").lower()
    if letter not in options:
        return None, f"expected one of the letters {letters}; got {answer!r}"
    return letter, None


def _ask(quiz, answer, strict: bool) -> Feedback:
    """The verdict on ``answer`` to ``quiz`` (a :class:`NumberQuiz` or a :class:`ChoiceQuiz`)."""
    if is_unanswered(answer):
        return feedback(quiz.name, [], "", strict, None, answer)
    if isinstance(quiz, ChoiceQuiz):
        letter, problem = _as_letter(answer, quiz.options)
        if problem:
            return feedback(quiz.name, [problem], "", strict)
        if letter == quiz.right:
            return feedback(quiz.name, [], f"({letter}) is right: {quiz.praise}", strict)
        return feedback(quiz.name, [f"({letter}) \"{quiz.options[letter]}\" is not it: {quiz.wrong[letter]}"], "",
                        strict)
    value, problem = _as_number(answer)
    if problem:
        return feedback(quiz.name, [problem], "", strict)
    if abs(value - quiz.right) <= quiz.tol:
        return feedback(quiz.name, [], f"{value:g} is right: {quiz.praise}", strict)
    for wrong, explanation in quiz.wrong:
        if abs(value - wrong) <= quiz.tol:
            return feedback(quiz.name, [f"{value:g} is not it: {explanation}"], "", strict)
    return feedback(quiz.name, [f"{value:g} is not it"], "", strict, quiz.hint)


# ----------------------------------------------------------------------------------------------------------------
# 1. semantic, instance, panoptic

SEGMENTATION_TYPE = ChoiceQuiz(
    name="which kind of segmentation",
    options={"a": "semantic segmentation", "b": "instance segmentation", "c": "panoptic segmentation",
             "d": "object detection (boxes)"},
    right="c",
    praise=("every pixel gets a class (so the road and pavement areas can be measured), and every countable thing "
            "(each car) also gets its own instance id (so the cars can be counted, touching or not)."),
    wrong={
        "a": ("a semantic map labels road, pavement and car pixels, so it measures the areas, but two cars parked "
              "bumper to bumper merge into one 'car' region: it cannot count them."),
        "b": ("instance masks separate and count the cars, but instance segmentation labels only countable things: "
              "road and pavement are 'stuff', with no instances, so their areas are not measured."),
        "d": ("boxes count the cars but say nothing about which pixels are road or pavement, and the boxes of "
              "neighbouring cars overlap: no pixel areas at all."),
    },
)


def quiz_segmentation_type(answer, strict: bool = False) -> Feedback:
    """Quiz 13.1: count the cars in aerial photos *and* measure road and pavement areas: which task (a-d)?"""
    return _ask(SEGMENTATION_TYPE, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 2. pixel accuracy, IoU and Dice

DICE_FROM_IOU = NumberQuiz(
    name="Dice of a prediction with IoU 0.5",
    right=2 / 3,
    tol=0.005,
    praise=("Dice = 2 IoU / (1 + IoU) = 1 / 1.5. Dice counts the intersection twice, so it is never below IoU, and "
            "the two rank the predictions of one class in the same order."),
    wrong=(
        (0.5, ("Dice equals IoU only at 0 and at 1; in between it is higher, because it counts the intersection "
              "twice: Dice = 2I / (|P| + |T|) and |P| + |T| = U + I.")),
        (1.0, ("that is 2 x IoU: the denominator of Dice is |P| + |T| = U + I, not U, so the factor 2 is divided "
              "by 1 + IoU.")),
        (1 / 3, ("that is IoU / (2 - IoU), the inverse formula: it turns a Dice into an IoU, and this question goes "
                "the other way.")),
        (0.75, ("(1 + IoU) / 2 is not a relation between the two; start from Dice = 2I / (|P| + |T|) and "
               "|P| + |T| = U + I.")),
    ),
    hint="|P| + |T| = U + I: write Dice = 2I / (|P| + |T|) with it, then divide top and bottom by U.",
)


def quiz_dice_from_iou(answer, strict: bool = False) -> Feedback:
    """Quiz 13.2: a prediction has IoU 0.5 with the truth; what is its Dice (a number)?"""
    return _ask(DICE_FROM_IOU, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 3. losses

FOCAL_FACTOR = NumberQuiz(
    name="focal loss against cross-entropy for a well-classified pixel",
    right=0.01,
    tol=5e-4,
    praise=("(1 - p_t)^gamma = 0.1^2: the pixel's cross-entropy is multiplied by 0.01, so a hundred such easy pixels "
            "weigh as much as one. A pixel with p_t = 0.1 keeps 0.81 of its loss: the hard pixels dominate."),
    wrong=(
        (0.1, "that is 1 - p_t without the exponent: with gamma = 2 the factor is squared."),
        (0.81, ("that is p_t^gamma; the modulating factor is (1 - p_t)^gamma, small when the pixel is already "
               "well classified (0.81 is what a *badly* classified pixel, p_t = 0.1, keeps).")),
        (100.0, ("that is how many times smaller the loss becomes; the question asks for the factor that multiplies "
                "the cross-entropy, which is below 1.")),
        (0.9, "that is p_t itself; the modulating factor is (1 - p_t)^gamma."),
        (0.19, "that is 1 - p_t^2; the exponent applies to (1 - p_t), not to p_t."),
    ),
    hint="FL = -(1 - p_t)^gamma log(p_t) and CE = -log(p_t): divide one by the other.",
)


def quiz_focal_factor(answer, strict: bool = False) -> Feedback:
    """Quiz 13.3: at gamma = 2, a pixel whose true class gets p_t = 0.9: focal loss = cross-entropy x what?"""
    return _ask(FOCAL_FACTOR, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 4. class imbalance

MEDIAN_FREQUENCY_WEIGHT = NumberQuiz(
    name="median-frequency weight of the rare class",
    right=5.0,
    tol=0.01,
    praise=("median(0.70, 0.25, 0.05) / 0.05 = 0.25 / 0.05 = 5 (Eigen and Fergus, 2015): the class at the median "
            "frequency weighs 1, rarer classes more, commoner ones less (background 0.36)."),
    wrong=(
        (20.0, ("that is the plain inverse frequency 1 / 0.05; median-frequency balancing multiplies it by the "
               "median frequency, so the middle class weighs exactly 1.")),
        (14.0, "0.70 / 0.05 divides the largest frequency, not the median one."),
        (0.2, ("that is f / median(f) upside down: rare classes must weigh *more*, so the rare frequency goes in "
              "the denominator.")),
        (1 / 0.05 ** 0.5, "that is 1 / sqrt(f), the gentler inverse-square-root weighting, another method."),
        (1.0, "the weight 1 goes to the class at the median frequency (0.25), not to the rare one."),
    ),
    hint="w_c = median(f) / f_c: find the median of the three frequencies first.",
)


def quiz_median_frequency_weight(answer, strict: bool = False) -> Feedback:
    """Quiz 13.4: pixel frequencies 0.70, 0.25, 0.05: the median-frequency weight of the rarest class?"""
    return _ask(MEDIAN_FREQUENCY_WEIGHT, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 5. FCN

FCN_SCORE_MAP = NumberQuiz(
    name="side of an FCN-32s score map",
    right=16.0,
    tol=0.01,
    praise=("512 / 32 = 16: the class scores live on a 16 x 16 grid, one cell per 32 x 32 block of pixels, which "
            "is why a single upsampling from it draws blobs and loses objects smaller than a block."),
    wrong=(
        (32.0, "32 is the output stride, the size of one cell in pixels; the grid has 512 / 32 cells per side."),
        (64.0, "64 is the side at output stride 8 (FCN-8s's finest skip, or DeepLab's output stride), not 32."),
        (7.0, "7 x 7 is what a 224 x 224 image gives; a fully convolutional network's map grows with its input."),
        (512.0, "512 is the side after the final upsampling; the question asks for the score map before it."),
        (1.0, ("1 x 1 is what global average pooling leaves in a classifier; an FCN removes that pooling and keeps "
              "the grid.")),
    ),
    hint="each of the five stride-2 stages halves the side: divide by the output stride.",
)


def quiz_fcn_score_map(answer, strict: bool = False) -> Feedback:
    """Quiz 13.5: an FCN of output stride 32 on a 512 x 512 image: the side of its score map before upsampling?"""
    return _ask(FCN_SCORE_MAP, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 6. transposed convolution

TRANSPOSED_SIZE = NumberQuiz(
    name="output side of a transposed convolution",
    right=31.0,
    tol=0.01,
    praise=("(16 - 1) x 2 - 2 x 1 + 3 + 0 = 31. That is why decoders that use kernel 3, stride 2, padding 1 add "
            "output_padding=1 to reach exactly 32, or use kernel 4 (or 2) with stride 2 instead."),
    wrong=(
        (32.0, ("32 needs output_padding=1: without it, (n - 1) s - 2p + k gives one pixel less, because several "
               "input sizes map to one output size in the forward convolution.")),
        (33.0, ("either the padding term (-2p) was left out, or n rather than n - 1 was multiplied by the stride: "
               "n_out = (n - 1) s - 2p + k + output_padding.")),
        (8.0, ("that is the ordinary convolution's formula, floor((n + 2p - k) / s) + 1, which shrinks; the "
              "transposed convolution runs it backwards.")),
        (30.0, "that is (n - 1) x s alone: the kernel still adds k and the padding takes 2p away."),
    ),
    hint="n_out = (n - 1) s - 2p + k + output_padding.",
)


def quiz_transposed_size(answer, strict: bool = False) -> Feedback:
    """Quiz 13.6: ``ConvTranspose2d(kernel_size=3, stride=2, padding=1)`` on a 16 x 16 map: the output side?"""
    return _ask(TRANSPOSED_SIZE, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 7. U-Net: shape, small data, medical images

UNET_SMALL_DATA = ChoiceQuiz(
    name="why U-Net learns from a few dozen images",
    options={"a": "it has few parameters, so it cannot overfit",
             "b": "every pixel is a labelled example, convolutions share weights, augmentation multiplies the data",
             "c": "it was pretrained on ImageNet",
             "d": "its pooling discards where objects are, so it needs fewer examples"},
    right="b",
    praise=("one annotated 512 x 512 image holds 262,144 pixel labels, and a convolution applies the same weights "
            "everywhere, so each image is many training examples; elastic deformation (the paper's key "
            "augmentation) adds realistic shapes, and the skips hand fine detail to the decoder instead of making "
            "it learn to rebuild it."),
    wrong={
        "a": ("the paper's U-Net has 31 million parameters, more than enough to memorise 30 images; what keeps it "
              "from doing so is the data it sees (every pixel, augmented), not its size."),
        "c": ("the paper trained from scratch on 30 electron-microscopy images; pretrained encoders came to "
              "U-Nets later, and help, but are not why the original worked."),
        "d": ("pooling alone throws position away, which is the *problem* for segmentation; U-Net's skip "
              "connections bring it back so the masks are precise."),
    },
)


def quiz_unet_small_data(answer, strict: bool = False) -> Feedback:
    """Quiz 13.7: why can a U-Net learn from a few dozen annotated images (a-d)?"""
    return _ask(UNET_SMALL_DATA, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 8. U-Net in code

UNET_CHANNELS = NumberQuiz(
    name="channels after the last concatenation of the written-out U-Net",
    right=32.0,
    tol=0.01,
    praise=("the last up-step's transposed convolution turns the 32 channels of level 1 into w = 16 at full "
            "resolution, and the skip from the stem brings 16 more: 16 + 16 = 32 go into its double_conv, which "
            "brings them back to 16."),
    wrong=(
        (16.0, ("16 is what the last double_conv *outputs*; its input is the concatenation of the upsampled "
               "features and the skip, both 16 channels.")),
        (48.0, ("that adds the skip (16) to the 32 channels *before* upsampling; the transposed convolution halves "
               "the channels first.")),
        (64.0, "64 is the width at a quarter of the resolution; at full resolution both parts have w channels."),
        (4.0, "4 is the number of classes, the output of the 1 x 1 head after the last double_conv."),
    ),
    hint="follow the tensor: what does the up-step's ConvTranspose2d output, and what does the skip at full "
         "resolution hold?",
)


def quiz_unet_channels(answer, strict: bool = False) -> Feedback:
    """Quiz 13.8: in the written-out U-Net (w = 16), how many channels enter the last double_conv?"""
    return _ask(UNET_CHANNELS, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 9. dilated convolution and DeepLab's scales

DILATED_FIELD = NumberQuiz(
    name="receptive field of 3 x 3 convolutions at rates 1, 2 and 5",
    right=17.0,
    tol=0.01,
    praise=("1 + 2 x (1 + 2 + 5) = 17: each stride-1 layer widens the field by (k - 1) x d. Rates 1, 2, 5 share no "
            "common factor, so unlike 2, 2, 2 they leave no holes (hybrid dilated convolution)."),
    wrong=(
        (7.0, "7 is three ordinary 3 x 3 convolutions: the rates are missing (each layer adds (k - 1) x d)."),
        (19.0, ("that adds the three spans 3 + 5 + 11, counting the centre pixel again for every layer: each layer "
               "adds its span minus one.")),
        (11.0, "11 is the span of the last layer alone (2 x 5 + 1); the earlier layers widen the field too."),
        (8.0, "8 is the sum of the rates; each layer adds (k - 1) x d = 2d, and the field starts at 1 pixel."),
    ),
    hint="for stride-1 layers, RF = 1 + sum of (k - 1) x d over the layers.",
)


def quiz_dilated_field(answer, strict: bool = False) -> Feedback:
    """Quiz 13.9a: three stride-1 3 x 3 convolutions at rates 1, 2 and 5: the receptive field in pixels?"""
    return _ask(DILATED_FIELD, answer, strict)


ASPP_RATES = ChoiceQuiz(
    name="ASPP rates at output stride 8",
    options={"a": "6, 12, 18 (unchanged)", "b": "12, 24, 36", "c": "3, 6, 9", "d": "1, 2, 4"},
    right="b",
    praise=("at output stride 8 the feature map is twice as fine, so a tap 12 cells away reaches as far in the image "
            "as 6 cells did at stride 16: doubling the rates keeps each branch looking at the same scale "
            "(DeepLabv3 does exactly this)."),
    wrong={
        "a": ("at stride 8 one cell is half as many pixels as at stride 16, so unchanged rates would look at "
              "regions half as large: every branch would shift to a smaller scale."),
        "c": ("halving goes the wrong way: the finer map needs *more* cells, not fewer, to span the same part of "
              "the image."),
        "d": ("(1, 2, 4) are DeepLabv3's multi-grid unit rates inside its last ResNet block, not ASPP's branch "
              "rates."),
    },
)


def quiz_aspp_rates(answer, strict: bool = False) -> Feedback:
    """Quiz 13.9b: ASPP uses rates 6, 12, 18 at output stride 16; which rates at output stride 8 (a-d)?"""
    return _ask(ASPP_RATES, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 10. Mask R-CNN

ROIALIGN = ChoiceQuiz(
    name="why RoIAlign instead of RoIPool",
    options={"a": "it lets the gradient reach the box coordinates",
             "b": "it samples the features at the box's exact positions instead of rounding to cells",
             "c": "it is faster",
             "d": "it averages instead of taking the maximum, which smooths the masks"},
    right="b",
    praise=("RoIPool rounds the box and its bins to whole feature cells, so the features it reads can be off by up "
            "to a cell (16 or 32 image pixels): harmless for a class label, costly for a mask that must follow the "
            "edge. RoIAlign rounds nothing and interpolates bilinearly; the Mask R-CNN paper measured about 3 points "
            "of mask AP from it on stride-16 features and about 7 on stride-32 ones, more at AP75."),
    wrong={
        "a": ("neither layer passes a gradient to the box coordinates in Mask R-CNN (torchvision detaches the "
              "proposals); both learn the same way. The difference is *where* the features are read."),
        "c": ("bilinear sampling at several points per bin costs more than a max over whole cells; RoIAlign is "
              "chosen for accuracy, not speed."),
        "d": ("the paper found max and average about equal inside RoIAlign; what matters is removing the rounding "
              "(the misalignment), not the kind of pooling."),
    },
)


def quiz_roialign(answer, strict: bool = False) -> Feedback:
    """Quiz 13.10: why does Mask R-CNN use RoIAlign rather than RoIPool (a-d)?"""
    return _ask(ROIALIGN, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 11. dense CRF

CRF_USE = ChoiceQuiz(
    name="when a dense CRF pays off",
    options={"a": "coarse stride-8 predictions on photos where objects differ in colour from their surroundings",
             "b": "a well-trained full-resolution U-Net whose boundaries are already within a pixel",
             "c": "to recover a small object that the network missed entirely",
             "d": "grey, low-contrast scans where two tissues meet without an intensity edge"},
    right="a",
    praise=("the appearance kernel pulls each label boundary onto the nearest colour edge, which is what a blobby "
            "stride-8 prediction lacks (DeepLab v1 and v2 used it for exactly this; lesson 08 measures what it "
            "gains in boundary F-score on held-out scenes)."),
    wrong={
        "b": ("boundaries already within a pixel leave little to gain, while the CRF costs inference time, needs "
              "its bandwidths tuned, and can erase thin or small uncertain structures."),
        "c": ("a CRF only redistributes the probability the network already gives: with none on the object, its "
              "neighbours vote it away, never into existence."),
        "d": ("the appearance kernel follows colour or intensity edges; where the boundary has none, it has nothing "
              "to snap to and only smooths."),
    },
)


def quiz_crf_use(answer, strict: bool = False) -> Feedback:
    """Quiz 13.11: in which case is a dense CRF most likely to pay off (a-d)?"""
    return _ask(CRF_USE, answer, strict)


# ----------------------------------------------------------------------------------------------------------------
# 12. annotation cost

ANNOTATION_HOURS = NumberQuiz(
    name="hours to outline a data set",
    right=2000 * 8 * 80 / 3600,
    tol=1.0,
    praise=("2,000 x 8 x 80 s = 1,280,000 s = about 356 hours, some nine working weeks of one person, before any "
            "quality control; that is why boxes, clicks with a promptable model, or labelling only what the model "
            "is unsure of are worth planning for."),
    wrong=(
        (2000 * 80 / 3600, "that counts one polygon per image; each image holds 8 objects."),
        (2000 * 8 * 80 / 60, "that is the time in minutes; the question asks for hours."),
        (2000 * 8 * 80, "that is the time in seconds; the question asks for hours."),
        (2000 * 8 / 3600, "the 80 seconds per polygon are missing: that divides the count of objects by 3,600."),
    ),
    hint="objects = images x objects per image; seconds = objects x seconds per object; hours = seconds / 3,600.",
)


def quiz_annotation_hours(answer, strict: bool = False) -> Feedback:
    """Quiz 13.12: 2,000 images, 8 objects each, 80 s per polygon: how many hours of outlining?"""
    return _ask(ANNOTATION_HOURS, answer, strict)


QUIZZES = {
    "quiz_segmentation_type": SEGMENTATION_TYPE,
    "quiz_dice_from_iou": DICE_FROM_IOU,
    "quiz_focal_factor": FOCAL_FACTOR,
    "quiz_median_frequency_weight": MEDIAN_FREQUENCY_WEIGHT,
    "quiz_fcn_score_map": FCN_SCORE_MAP,
    "quiz_transposed_size": TRANSPOSED_SIZE,
    "quiz_unet_small_data": UNET_SMALL_DATA,
    "quiz_unet_channels": UNET_CHANNELS,
    "quiz_dilated_field": DILATED_FIELD,
    "quiz_aspp_rates": ASPP_RATES,
    "quiz_roialign": ROIALIGN,
    "quiz_crf_use": CRF_USE,
    "quiz_annotation_hours": ANNOTATION_HOURS,
}
