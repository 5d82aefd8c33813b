"""The checks of lesson 12's exercises: a LabelMe polygon to a mask (against pycocotools, the course's rasteriser),
and a train/test split keeping each group whole (against utils.annotations.grouped_split)."""
import itertools
import random
import re
from collections import Counter

import numpy as np
import pytest
from check_helpers import assert_explained
from matplotlib.path import Path
from skimage.draw import polygon2mask

from utils.annotations import grouped_split, polygon_area_xy, polygon_to_mask
from utils.checks import Feedback
from utils.checks.lesson12 import (
    _CLIPPED,
    _POLYGON_CASES,
    _SPLIT_CASES,
    _expected_mask,
    _near,
    check_grouped_split,
    check_polygon_to_mask,
)

# ----------------------------------------------------------------------------------------------------------------
# the polygons: no pixel centre near an edge, so every correct rasteriser agrees


def _distance_to_edges(points_xy, height, width):
    """The smallest distance from a pixel centre to the polygon's outline."""
    p = np.asarray(points_xy, dtype=float)
    rows, cols = np.mgrid[0:height, 0:width]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    best = np.inf
    for a, b in zip(p, np.roll(p, -1, axis=0)):
        ab = b - a
        t = np.clip((centres - a) @ ab / (ab @ ab), 0, 1)
        best = min(best, np.linalg.norm(centres - (a + t[:, None] * ab), axis=1).min())
    return best


@pytest.mark.parametrize("label, points, height, width", _POLYGON_CASES, ids=[c[0] for c in _POLYGON_CASES])
def test_the_expected_masks_are_the_course_convention(label, points, height, width):
    want = _expected_mask(points, height, width)
    assert want.dtype == bool and want.shape == (height, width) and 0 < want.sum() < want.size
    assert _distance_to_edges(points, height, width) >= 0.08
    assert np.array_equal(want, polygon_to_mask(points, height, width))                  # pycocotools
    assert np.array_equal(want, polygon2mask((height, width), np.asarray(points)[:, ::-1] - 0.5))


def test_the_cases_cover_what_they_say():
    by_label = {label: np.asarray(points) for label, points, _, _ in _POLYGON_CASES}
    rectangle = _expected_mask(by_label["an axis-aligned rectangle on pixel edges"], 10, 12)
    assert rectangle.sum() == polygon_area_xy(by_label["an axis-aligned rectangle on pixel edges"]) == 25
    clipped = by_label[_CLIPPED]
    assert (clipped < 0).any() and (clipped[:, 1] > 10).any()
    forward, backward = by_label["a concave L-shape"], by_label["the L-shape with its vertices in the opposite order"]
    assert np.array_equal(forward[::-1], backward)

    def signed_area(p):
        return 0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1])

    assert signed_area(forward) * signed_area(backward) < 0


# ----------------------------------------------------------------------------------------------------------------
# polygon to mask: right answers, and the mistakes the check names


def polygon_mask(points_xy, height, width):
    rows, cols = np.mgrid[0:height, 0:width]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    return Path(np.asarray(points_xy, dtype=float)).contains_points(centres).reshape(height, width)


def even_odd(points_xy, height, width):
    """A centre is inside when a ray to its right crosses the outline an odd number of times."""
    p = np.asarray(points_xy, dtype=float)
    y, x = np.mgrid[0:height, 0:width] + 0.5
    inside = np.zeros((height, width), dtype=bool)
    for (x0, y0), (x1, y1) in zip(p, np.roll(p, -1, axis=0)):
        spans = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= spans & (x < crossing)
    return inside


@pytest.mark.parametrize("right", [
    polygon_mask,
    even_odd,
    polygon_to_mask,
    lambda p, h, w: polygon2mask((h, w), np.asarray(p)[:, ::-1] - 0.5),
])
def test_right_polygon_masks_pass_strictly(right):
    assert check_polygon_to_mask(right, strict=True).passed


def integer_centres(points_xy, height, width):
    rows, cols = np.mgrid[0:height, 0:width]
    centres = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(float)
    return Path(np.asarray(points_xy, dtype=float)).contains_points(centres).reshape(height, width)


def left_of_every_edge(points_xy, height, width):
    """Inside when the centre is on the left of every edge: right for convex, counter-clockwise polygons only."""
    p = np.asarray(points_xy, dtype=float)
    y, x = np.mgrid[0:height, 0:width] + 0.5
    inside = np.ones((height, width), dtype=bool)
    for (x0, y0), (x1, y1) in zip(p, np.roll(p, -1, axis=0)):
        inside &= (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0) > 0
    return inside


def bounding_box(points_xy, height, width):
    p = np.asarray(points_xy, dtype=float)
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    return ((cols > p[:, 0].min()) & (cols < p[:, 0].max()) & (rows > p[:, 1].min()) & (rows < p[:, 1].max()))


def convex_hull(points_xy, height, width):
    from scipy.spatial import ConvexHull

    p = np.asarray(points_xy, dtype=float)
    return polygon_mask(p[ConvexHull(p).vertices], height, width)


def unclipped_box(points_xy, height, width):
    """Rasterises the polygon's bounding box and pastes it without clipping it to the image."""
    p = np.asarray(points_xy, dtype=float)
    left, top = int(np.floor(p[:, 0].min())), int(np.floor(p[:, 1].min()))
    right, bottom = int(np.ceil(p[:, 0].max())), int(np.ceil(p[:, 1].max()))
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = polygon_mask(p - [left, top], bottom - top, right - left)
    return mask


@pytest.mark.parametrize("wrong, says", [
    (integer_centres, "did you treat pixel centres as integer coordinates? Here pixel (r, c) has its centre at "
                      "(c + 0.5, r + 0.5)"),
    (lambda p, h, w: polygon2mask((h, w), np.asarray(p)[:, ::-1]), "did you treat pixel centres as integer"),
    (lambda p, h, w: polygon_mask(np.asarray(p)[:, ::-1], h, w), "x and y are swapped"),
    (lambda p, h, w: polygon2mask((h, w), np.asarray(p)), "x and y are swapped"),
    (lambda p, h, w: polygon_mask(p, w, h), "shape (12, 10), expected (10, 12) = (height, width)"),
    (lambda p, h, w: polygon_mask(p, h, w).astype(np.uint8), "dtype uint8; return a bool mask"),
    (lambda p, h, w: polygon_mask(p, h, w).tolist(), "return an (H, W) NumPy array of bool"),
    (left_of_every_edge, "whichever way the vertices go round - here they go the other way"),
    (convex_hull, "not its convex hull"),
    (bounding_box, "the mask is too large"),
    (unclipped_box, "your function raised ValueError"),
    (lambda p, h, w: ~polygon_mask(p, h, w), "pixel(s) differ"),
])
def test_wrong_polygon_masks_are_explained(wrong, says):
    assert_explained(check_polygon_to_mask, wrong, says)


def test_the_integer_centre_mistake_says_where_the_mask_is_too_large():
    fb = str(check_polygon_to_mask(lambda p, h, w: polygon2mask((h, w), np.asarray(p)[:, ::-1])))  # no -0.5
    assert ("an axis-aligned rectangle on pixel edges: 11 pixel(s) differ from the expected 25-pixel mask: 11 extra "
            "along the right and the bottom edges") in fb
    assert "7 extra along the bottom edge; 3 missing along the left edge" in fb   # the rectangle off the grid
    assert "did you treat pixel centres as integer coordinates?" in fb


def test_a_right_dtype_mistake_says_the_pixels_are_right():
    fb = str(check_polygon_to_mask(lambda p, h, w: polygon_mask(p, h, w).astype(np.uint8)))
    assert "its pixels are right, only the dtype is not" in fb


def test_the_clipped_case_alone_is_named_for_an_unclipped_fill():
    fb = str(check_polygon_to_mask(unclipped_box))
    assert fb.count("your function raised") == 1 and "vertices may lie outside the image" in fb


def test_an_answer_that_changes_its_points_does_not_change_the_cases():
    def mutating(points_xy, height, width):
        mask = polygon_mask(points_xy, height, width)
        points_xy.reverse()
        points_xy[0][0] = 99.0
        return mask

    assert check_polygon_to_mask(mutating, strict=True).passed
    assert check_polygon_to_mask(mutating, strict=True).passed


# ----------------------------------------------------------------------------------------------------------------
# the split cases: a split within the tolerance exists


@pytest.mark.parametrize("label, ids, groups, fraction, seed", _SPLIT_CASES, ids=[c[0] for c in _SPLIT_CASES])
def test_every_split_case_can_be_met(label, ids, groups, fraction, seed):
    assert len(ids) == len(groups) == len(set(ids))
    size = Counter(groups)
    shares = {sum(size[g] for g in chosen) / len(ids) for k in range(1, len(size))
              for chosen in itertools.combinations(size, k)}
    assert any(_near(s, fraction) for s in shares)
    assert not all(_near(s, fraction) for s in shares)   # and a careless one can miss it


def test_the_first_case_is_the_one_described():
    _, ids, groups, fraction, _ = _SPLIT_CASES[0]
    assert len(ids) == 20 and fraction == 0.25
    assert sorted(Counter(groups).values()) == [1, 1, 2, 2, 3, 3, 4, 4] and "patient 3" in groups
    assert groups != sorted(groups)   # the images of a patient are not next to each other


# ----------------------------------------------------------------------------------------------------------------
# grouped split: right answers, and the mistakes the check names


def grouped_train_test(ids, groups, test_fraction, seed):
    size = Counter(groups)
    names = sorted(size, key=str)
    order = np.random.default_rng(seed).permutation(len(names))
    target = test_fraction * len(ids)
    test_groups, n_test = set(), 0
    for k in order:
        g = names[k]
        if n_test + size[g] <= target:       # whole groups, while their images still fit
            test_groups.add(g)
            n_test += size[g]
    train = [i for i, g in zip(ids, groups) if g not in test_groups]
    test = [i for i, g in zip(ids, groups) if g in test_groups]
    return train, test


def test_the_worked_split_is_right_whatever_the_seed():
    for label, ids, groups, fraction, _ in _SPLIT_CASES:
        for seed in range(50):
            train, test = grouped_train_test(ids, groups, fraction, seed)
            assert _near(len(test) / len(ids), fraction), (label, seed)


@pytest.mark.parametrize("right", [
    grouped_train_test,
    lambda ids, groups, f, seed: grouped_split(ids, groups, (1 - f, f), seed),
    lambda ids, groups, f, seed: tuple(np.array(part) for part in grouped_train_test(ids, groups, f, seed)),
    lambda ids, groups, f, seed: [list(reversed(part)) for part in grouped_train_test(ids, groups, f, seed)],
])
def test_right_splits_pass_strictly(right):
    assert check_grouped_split(right, strict=True).passed


def ignoring_groups(ids, groups, test_fraction, seed):
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = round(test_fraction * len(ids))
    return [ids[k] for k in order[n_test:]], [ids[k] for k in order[:n_test]]


def by_group_count(ids, groups, test_fraction, seed):
    """test_fraction of the *groups*, the largest first: the share of images is far off."""
    size = Counter(groups)
    chosen = set(sorted(size, key=lambda g: -size[g])[:round(test_fraction * len(size))])
    return [i for i, g in zip(ids, groups) if g not in chosen], [i for i, g in zip(ids, groups) if g in chosen]


def dropping_a_group(ids, groups, test_fraction, seed):
    train, test = grouped_train_test(ids, groups, test_fraction, seed)
    last = groups[-1]
    return [i for i, g in zip(ids, groups) if i in train and g != last], test


def repeating_train(ids, groups, test_fraction, seed):
    train, test = grouped_train_test(ids, groups, test_fraction, seed)
    return train + test[:1], test


def seed_ignored():
    calls = iter(range(100, 1000))

    def split(ids, groups, test_fraction, seed):
        return grouped_train_test(ids, groups, test_fraction, next(calls))   # a fresh seed at each call
    return split


@pytest.mark.parametrize("wrong, says", [
    (ignoring_groups, re.compile(r"group '(patient|field|video) \w+' has images in both splits \(\d+ in train, "
                                 r"\d+ in test\), and so do \d other groups: all images of a group go")),
    (by_group_count, "test holds 60% of the images, asked 30%: you took 2 of the 6 groups, but the fraction is of "
                     "the images"),
    (dropping_a_group, "ids missing: "),
    (repeating_train, "ids duplicated: 1 id(s) appear more than once"),
    (lambda *a: grouped_train_test(*a)[::-1], "test holds 75% of the images, asked 25%: are the two swapped? "
                                              "Return (train_ids, test_ids)"),
    (lambda ids, groups, f, seed: (ids, []), "the test split is empty"),
    (lambda ids, groups, f, seed: (list(range(len(ids) - 3)), list(range(len(ids) - 3, len(ids)))),
     "not among the images"),
    (lambda *a: grouped_train_test(*a)[1], "return two lists, (train_ids, test_ids)"),
    (seed_ignored(), "two calls with seed 0 gave different splits"),
])
def test_wrong_splits_are_explained(wrong, says):
    assert_explained(check_grouped_split, wrong, says)


def test_a_split_group_is_named_as_in_the_data():
    def splits_patient_3(ids, groups, test_fraction, seed):
        train, test = grouped_train_test(ids, groups, test_fraction, seed)
        moved = next((i for i, g in zip(ids, groups) if g == "patient 3"), None)
        if moved is None:
            return train, test
        if moved in train:
            return [i for i in train if i != moved], test + [moved]
        return train + [moved], [i for i in test if i != moved]

    fb = str(check_grouped_split(splits_patient_3))
    assert "group 'patient 3' has images in both splits" in fb


def test_python_random_without_the_seed_is_caught_or_lucky_but_never_crashes():
    def unseeded(ids, groups, test_fraction, seed):
        names = sorted(set(groups))
        random.shuffle(names)
        return grouped_train_test(ids, [names.index(g) for g in groups], test_fraction, 0)

    assert isinstance(check_grouped_split(unseeded), Feedback)
