"""Checks for notebook 07 (augmentation): a joint horizontal flip of image, mask and boxes."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .core import Feedback, feedback, opening, run_cases


def _cases():
    rng = np.random.default_rng(7)
    out = []
    for label, (h, w), boxes in (
        ("one box on a 6 x 10 image", (6, 10), [[1, 2, 4, 5]]),
        ("two boxes, one touching the right edge", (8, 12), [[0, 0, 3, 3], [7, 4, 12, 8]]),
        ("no boxes", (5, 5), np.zeros((0, 4))),
    ):
        image = rng.integers(0, 255, (h, w, 3)).astype(np.uint8)
        mask = rng.integers(0, 3, (h, w)).astype(np.int64)
        out.append((label, image, mask, np.asarray(boxes, dtype=np.float32).reshape(-1, 4)))
    return out


def _reference(image, mask, boxes):
    w = image.shape[1]
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    return image[:, ::-1], mask[:, ::-1], flipped


def check_hflip_with_boxes(hflip: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 07.1: ``hflip(image, mask, boxes) -> (image, mask, boxes)``, a left-right flip of all three.

    ``boxes`` are ``(N, 4)`` ``xmin, ymin, xmax, ymax`` in pixel-edge coordinates (Pascal VOC, as
    Albumentations' ``"pascal_voc"``): a box from ``xmin`` to ``xmax`` on an image ``W`` wide goes to
    ``W - xmax`` .. ``W - xmin``.
    """
    name = "a joint flip of image, mask and boxes"
    hint = "flip the columns of image and mask; a box's new left edge is W minus its old right edge."
    early = opening(name, hflip, "a function (image, mask, boxes) -> (image, mask, boxes)", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        image, mask, boxes = case
        want_image, want_mask, want_boxes = _reference(image, mask, boxes)
        if not isinstance(got, tuple) or len(got) != 3:
            return f"{label}: return a tuple (image, mask, boxes), got {type(got).__name__}"
        g_image, g_mask, g_boxes = (np.asarray(x) for x in got)
        problems = []
        if g_image.shape != want_image.shape or not np.array_equal(g_image, want_image):
            problems.append("the image is not flipped left-right" + (
                " (it was flipped top-bottom)" if g_image.shape == image.shape and np.array_equal(g_image, image[::-1])
                else ""))
        if g_mask.shape != want_mask.shape or not np.array_equal(g_mask, want_mask):
            problems.append("the mask does not follow the image")
        if g_boxes.shape != want_boxes.shape or not np.allclose(g_boxes, want_boxes):
            w = image.shape[1]
            off_by_one = boxes.copy()
            off_by_one[:, 0], off_by_one[:, 2] = w - 1 - boxes[:, 2], w - 1 - boxes[:, 0]
            if g_boxes.shape == boxes.shape and np.allclose(g_boxes, off_by_one) and len(boxes):
                problems.append("boxes are one pixel off: with pixel-edge coordinates the mirror of x is W - x, "
                                "not W - 1 - x")
            elif g_boxes.shape == boxes.shape and len(boxes) and np.allclose(g_boxes[:, [0, 2]], w - boxes[:, [0, 2]]):
                problems.append("each box is mirrored but its xmin > xmax: swap them (new xmin = W - old xmax)")
            else:
                problems.append(f"boxes: got {g_boxes.tolist()}, expected {want_boxes.tolist()}")
        return f"{label}: " + "; ".join(problems) if problems else None

    cases = [(label, (image.copy(), mask.copy(), boxes.copy()), (image, mask, boxes))
             for label, image, mask, boxes in _cases()]
    problems, unanswered = run_cases(hflip, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "right on all three, the image without boxes included.", strict,
                    hint if problems else None)
