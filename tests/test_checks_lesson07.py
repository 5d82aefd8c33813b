"""The check of lesson 07's exercise: a joint left-right flip of image, mask and boxes."""
import albumentations as A
import numpy as np
import pytest
from check_helpers import assert_explained

from utils.checks.lesson07 import _cases, _reference, check_hflip_with_boxes


def right(image, mask, boxes):
    w = image.shape[1]
    out = boxes.copy()
    out[:, 0], out[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    return image[:, ::-1], mask[:, ::-1], out


def test_reference_agrees_with_albumentations():
    for label, image, mask, boxes in _cases():
        if not len(boxes):
            continue
        aug = A.Compose([A.HorizontalFlip(p=1.0)], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["ids"]))
        out = aug(image=image, mask=mask, bboxes=boxes, ids=list(range(len(boxes))))
        want_image, want_mask, want_boxes = _reference(image, mask, boxes)
        assert np.array_equal(out["image"], want_image) and np.array_equal(out["mask"], want_mask), label
        assert np.allclose(out["bboxes"], want_boxes), label


def test_right_answer_passes_strictly():
    assert check_hflip_with_boxes(right, strict=True).passed


def _off_by_one(image, mask, boxes):
    w = image.shape[1]
    out = boxes.copy()
    out[:, 0], out[:, 2] = w - 1 - boxes[:, 2], w - 1 - boxes[:, 0]
    return image[:, ::-1], mask[:, ::-1], out


def _unswapped(image, mask, boxes):
    out = boxes.copy()
    out[:, [0, 2]] = image.shape[1] - boxes[:, [0, 2]]
    return image[:, ::-1], mask[:, ::-1], out


@pytest.mark.parametrize("wrong, says", [
    (_off_by_one, "one pixel off"),
    (_unswapped, "swap them"),
    (lambda image, mask, boxes: (image[::-1], mask[::-1], boxes), "flipped top-bottom"),
    (lambda image, mask, boxes: (image[:, ::-1], mask, right(image, mask, boxes)[2]), "mask does not follow"),
    (lambda image, mask, boxes: image[:, ::-1], "return a tuple"),
])
def test_wrong_answers_are_explained(wrong, says):
    assert_explained(check_hflip_with_boxes, wrong, says)
