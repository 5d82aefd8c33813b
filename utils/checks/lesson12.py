"""Checks for notebook 12 (labelling one's own data): a polygon rasterised with the course's pixel convention, and a
train/test split that keeps each group whole.

The convention is the one of :mod:`utils.annotations` (and of COCO and pycocotools): points are ``(x, y)`` pixels,
``x`` to the right and ``y`` down, with **pixel edges at integer coordinates**, so pixel ``(row r, column c)`` is the
square ``[c, c + 1) x [r, r + 1)`` and its centre is ``(c + 0.5, r + 0.5)``; a pixel belongs to a polygon when its
centre lies inside. The expected masks are computed by an exact centre-in-polygon test (``matplotlib.path.Path.
contains_points`` on the pixel centres), on polygons chosen so that no pixel centre lies on, or within 0.08 px of, an
edge: there, every correct rasteriser agrees (the tests check that :func:`utils.annotations.polygon_to_mask`, which is
pycocotools, does).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from .core import Feedback, call_answer, feedback, opening, run_cases

__all__ = ["check_grouped_split", "check_polygon_to_mask"]

# ---------------------------------------------------------------------------------------------------------------
# Exercise 12.1: a LabelMe polygon to a mask

_L_SHAPE = [[1.3, 1.3], [4.7, 1.3], [4.7, 5.2], [10.6, 5.2], [10.6, 8.7], [1.3, 8.7]]

# (label, points_xy, height, width): images 10 x 12 (H x W), not square, so that x and y swapped shows
_POLYGON_CASES = (
    ("an axis-aligned rectangle on pixel edges", [[2, 3], [7, 3], [7, 8], [2, 8]], 10, 12),
    ("a rectangle off the grid (edges at .3 and .7)", [[1.3, 2.7], [8.7, 2.7], [8.7, 6.3], [1.3, 6.3]], 10, 12),
    ("a triangle", [[1.5, 0.8], [10.4, 3.5], [4.2, 9.0]], 10, 12),
    ("a concave L-shape", _L_SHAPE, 10, 12),
    ("a polygon partly outside the image", [[-4.7, 4.1], [8.4, 5.5], [2.6, 13.8]], 10, 12),
    ("the L-shape with its vertices in the opposite order", _L_SHAPE[::-1], 10, 12),
)
_CLIPPED = "a polygon partly outside the image"


def _inside(points_xy, x, y) -> np.ndarray:
    """Whether each point ``(x, y)`` lies inside the polygon: matplotlib's crossing test, exact away from the edges
    (the polygons are simple, so the even-odd and non-zero rules agree)."""
    from matplotlib.path import Path

    xy = np.stack([np.ravel(x), np.ravel(y)], axis=1).astype(np.float64)
    return Path(np.asarray(points_xy, dtype=np.float64)).contains_points(xy).reshape(np.shape(x))


def _centre_mask(points_xy, height, width, offset=0.5, swap=False) -> np.ndarray:
    """``(H, W)`` bool: pixel ``(r, c)`` is in when ``(c + offset, r + offset)`` is inside (``swap``: ``(r, c)``)."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = cols + offset, rows + offset
    return _inside(points_xy, y, x) if swap else _inside(points_xy, x, y)


def _expected_mask(points_xy, height, width) -> np.ndarray:
    return _centre_mask(points_xy, height, width)


def _integer_centre_masks(points_xy, height, width, swap=False):
    """The masks of the integer-centre mistake (pixel (r, c) at (c, r); ``swap``: at (r, c)): ``(strict, inclusive)``.

    Integer centres fall on a polygon's integer edges, where rasterisers differ; a point counts as on the inside
    (inclusive) when any of eight nudges by 1e-6 puts it inside, and strictly inside when all of them do.
    """
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = (rows, cols) if swap else (cols, rows)
    nudged = [_inside(points_xy, x + dx, y + dy)
              for dx in (-1e-6, 0, 1e-6) for dy in (-1e-6, 0, 1e-6) if dx or dy]
    return np.logical_and.reduce(nudged), np.logical_or.reduce(nudged)


def _between(got, masks):
    low, high = masks
    return not (low & ~got).any() and not (got & ~high).any()


_SIDES = (("the right", (0, -1)), ("the left", (0, 1)), ("the bottom", (-1, 0)), ("the top", (1, 0)))


def _neighbour(mask, dr, dc):
    """``out[r, c] = mask[r + dr, c + dc]`` (False beyond the border)."""
    padded = np.pad(mask, 1)
    h, w = mask.shape
    return padded[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]


def _sides(pixels, region, outward: bool) -> list:
    """Names of the edges of ``region`` where ``pixels`` lie: extra pixels just outside it (``outward``), or missing
    pixels on its rim. A pixel at a corner touches two edges; an edge is named when some pixel touches it alone (or,
    failing that, any pixel touches it)."""
    hits = []
    for _, (dr, dc) in _SIDES:
        if outward:  # an extra pixel right of the region has the region on its left
            hits.append(pixels & _neighbour(region, dr, dc))
        else:        # a missing pixel on the region's right rim has no region pixel on its right
            hits.append(pixels & ~_neighbour(region, -dr, -dc))
    alone = np.sum(hits, axis=0) == 1
    names = [name for (name, _), hit in zip(_SIDES, hits) if (hit & alone).any()]
    return names or [name for (name, _), hit in zip(_SIDES, hits) if hit.any()]


def _and(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _describe(got, want) -> str:
    """Where ``got`` differs from ``want``: how many pixels are extra and missing, and along which edges."""
    extra, missing = got & ~want, want & ~got
    parts = []
    for what, pixels, outward in (("extra", extra, True), ("missing", missing, False)):
        n = int(pixels.sum())
        if not n:
            continue
        sides = _sides(pixels, want, outward)
        text = f"{n} {what}"
        if sides and len(sides) < 4:
            text += f" along {_and(sides)} edge{'s' if len(sides) > 1 else ''}"
        else:
            rows, cols = np.nonzero(pixels)
            text += f", e.g. pixel (r, c) = {(int(rows[0]), int(cols[0]))}"
        parts.append(text)
    return f"{int((extra | missing).sum())} pixel(s) differ from the expected {int(want.sum())}-pixel mask: " + \
        "; ".join(parts)


def _convex_hull_mask(points_xy, height, width):
    from scipy.spatial import ConvexHull

    p = np.asarray(points_xy, dtype=np.float64)
    return _expected_mask(p[ConvexHull(p).vertices], height, width)


def check_polygon_to_mask(polygon_fn: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 12.1: ``polygon_fn(points_xy, height, width) -> (height, width) bool`` for one LabelMe polygon.

    ``points_xy`` is a list of ``[x, y]`` float pixel coordinates, in order (either direction), not repeating the
    first; pixel edges are at integers, so pixel ``(r, c)`` has its centre at ``(c + 0.5, r + 0.5)``, and a pixel
    belongs to the mask when its centre is inside the polygon. Vertices may lie outside the image: the mask holds the
    part inside. Checked on six polygons on a 10 x 12 (H x W) image: rectangles on and off the pixel grid, a triangle,
    a concave L-shape (both directions) and a polygon partly outside the image.
    """
    name = "a LabelMe polygon to a mask"
    hint = ("build the pixel centres, x = column + 0.5 and y = row + 0.5 (np.mgrid or np.meshgrid), and test each for "
            "being inside the polygon: matplotlib.path.Path(points_xy).contains_points(centres), or an even-odd "
            "ray-crossing test of your own; reshape the result to (height, width).")
    early = opening(name, polygon_fn, "a function (points_xy, height, width) -> mask", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        case_name, points, height, width = case
        want = _expected_mask(points, height, width)
        if not isinstance(got, np.ndarray):
            return f"{label}: returned {type(got).__name__}; return an (H, W) NumPy array of bool"
        if got.shape != want.shape:
            msg = f"{label}: shape {got.shape}, expected {want.shape} = (height, width)"
            if got.shape == want.shape[::-1]:
                msg += ": rows come first, so the mask is (height, width), not (width, height)"
            return msg
        if got.dtype != bool:
            msg = f"{label}: dtype {got.dtype}; return a bool mask (True inside), e.g. mask.astype(bool)"
            if np.isin(got, (0, 1)).all() and np.array_equal(got.astype(bool), want):
                msg += " - its pixels are right, only the dtype is not"
            return msg
        if np.array_equal(got, want):
            return None
        msg = f"{label}: {_describe(got, want)}"
        if not got.any():
            return msg + (": the mask is empty. A pixel is in when its centre is inside, whichever way the vertices "
                          "go round" + (" - here they go the other way" if "opposite order" in case_name else ""))
        if _between(got, _integer_centre_masks(points, height, width)):
            return msg + (": did you treat pixel centres as integer coordinates? Here pixel (r, c) has its centre at "
                          "(c + 0.5, r + 0.5)")
        if np.array_equal(got, _centre_mask(points, height, width, swap=True)):
            return msg + (": x and y are swapped: x is the column and y the row, so pixel (r, c) has its centre at "
                          "(x, y) = (c + 0.5, r + 0.5)")
        if _between(got, _integer_centre_masks(points, height, width, swap=True)):
            return msg + (": x and y are swapped (x is the column, y the row) and the pixel centres are at integer "
                          "coordinates; here pixel (r, c) has its centre at (x, y) = (c + 0.5, r + 0.5)")
        if np.array_equal(got, _convex_hull_mask(points, height, width)):
            return msg + ": the extra pixels fill the notch of a concave polygon: test each centre against the " \
                         "polygon itself, not its convex hull or its bounding box"
        if not (want & ~got).any():
            return msg + (": the mask is too large; a pixel belongs only when its centre is inside the polygon, not "
                          "when the polygon merely touches it or its box covers it")
        return msg

    def raised(label, error, case):
        msg = f"{label}: your function raised {error}"
        if case[0] == _CLIPPED:
            msg += (" - vertices may lie outside the image (here x from -4.7 and y up to 13.8): keep only the "
                    "pixels inside it")
        return msg

    cases = ((label, ([list(p) for p in points], h, w), (label, points, h, w)) for label, points, h, w in
             _POLYGON_CASES)
    problems, unanswered = run_cases(polygon_fn, cases, judge, raised)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "every pixel whose centre (c + 0.5, r + 0.5) is inside, on all six polygons: "
                    "off the grid, concave, clipped and in either direction.", strict, hint if problems else None)


# ---------------------------------------------------------------------------------------------------------------
# Exercise 12.2: a train/test split that keeps each group whole

_SHARE_TOLERANCE = 0.15


def _near(share, fraction):
    """Whether a test share is close enough to the one asked (0.15 either way; 0.15 itself counts as close)."""
    return abs(share - fraction) <= _SHARE_TOLERANCE + 1e-9


def _split_cases():
    """``(label, ids, groups, test_fraction, seed)``; in every case some choice of whole groups puts the test share
    within ``_SHARE_TOLERANCE`` of ``test_fraction`` (the tests check it)."""
    rng = np.random.default_rng(12)
    cases = []
    sizes = (1, 1, 2, 2, 3, 3, 4, 4)      # 20 images of 8 patients, in shuffled order
    groups = [f"patient {g + 1}" for g, n in enumerate(sizes) for _ in range(n)]
    order = rng.permutation(len(groups))
    ids = [f"img_{i:02d}.png" for i in range(len(groups))]
    shuffled = [groups[k] for k in order]
    cases.append(("20 images of 8 patients, 25% for test", ids, shuffled, 0.25, 0))
    cases.append(("the same images, 50% for test", ids, shuffled, 0.5, 3))
    fields = [f"field {g}" for g, n in zip("ABCDEF", (9, 7, 5, 4, 3, 2)) for _ in range(n)]
    cases.append(("30 photos of 6 fields (9 to 2 each), 20% for test", [f"photo{i}.jpg" for i in range(30)], fields,
                  0.2, 1))
    big = ["video 0"] * 10 + [f"video {g}" for g in range(1, 6) for _ in range(2)]
    big_order = rng.permutation(len(big))
    cases.append(("20 frames, half of them from one video, 30% for test", list(range(100, 120)),
                  [big[k] for k in big_order], 0.3, 7))
    return cases


_SPLIT_CASES = _split_cases()


def _plain(value):
    """NumPy scalars as Python ones, so that ids compare and print plainly."""
    return value.item() if isinstance(value, np.generic) else value


def _judge_split(label, got, ids, groups, fraction):
    """What is wrong with ``got`` as ``(train_ids, test_ids)``, or ``None``."""
    try:
        train, test = got
        train, test = [_plain(i) for i in train], [_plain(i) for i in test]
    except (TypeError, ValueError):
        return f"{label}: returned {type(got).__name__} {str(got)[:60]}; return two lists, (train_ids, test_ids)"
    known = set(ids)
    counts = Counter(train) + Counter(test)
    unknown = [i for i in counts if i not in known]
    if unknown:
        return (f"{label}: {len(unknown)} id(s) that are not among the images, e.g. {unknown[0]!r}: return the ids "
                f"themselves, not positions or groups")
    problems = []
    missing = [i for i in ids if i not in counts]
    if missing:
        problems.append(f"ids missing: {len(missing)} of the {len(ids)} ids are in neither split, e.g. {missing[0]!r}")
    twice = [i for i in ids if counts[i] > 1]
    if twice:
        both = [i for i in twice if i in set(train) and i in set(test)]
        problems.append(f"ids duplicated: {len(twice)} id(s) appear more than once, e.g. {twice[0]!r}"
                        + (" (in both splits)" if both else ""))
    group_of = dict(zip(ids, groups))
    in_train, in_test = Counter(group_of[i] for i in train), Counter(group_of[i] for i in test)
    split_groups = [g for g in dict.fromkeys(groups) if in_train[g] and in_test[g]]
    if split_groups:
        g = split_groups[0]
        others = len(split_groups) - 1
        more = f", and so {'do' if others > 1 else 'does'} {others} other group{'s' if others > 1 else ''}" \
            if others else ""
        problems.append(f"group {g!r} has images in both splits ({in_train[g]} in train, {in_test[g]} in test){more}: "
                        "all images of a group go to the same split")
    if problems:
        return f"{label}: " + "; ".join(problems)
    share = len(test) / len(ids)
    if not test:
        return f"{label}: the test split is empty, asked {fraction:.0%} of the images"
    if _near(share, fraction):
        return None
    msg = f"{label}: test holds {share:.0%} of the images, asked {fraction:.0%}"
    n_groups, test_groups = len(set(groups)), len(in_test)
    if test_groups == round(fraction * n_groups):
        return msg + (f": you took {test_groups} of the {n_groups} groups, but the fraction is of the images, and "
                      "groups differ in size; count the images as you add groups")
    if _near(1 - share, fraction):
        return msg + ": are the two swapped? Return (train_ids, test_ids)"
    low, high = max(fraction - _SHARE_TOLERANCE, 0), min(fraction + _SHARE_TOLERANCE, 1)
    return msg + f" (anything from {low:.0%} to {high:.0%} is fine)"
    return None


def check_grouped_split(split_fn: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 12.2: ``split_fn(ids, groups, test_fraction, seed) -> (train_ids, test_ids)``.

    ``ids`` is a list of distinct image ids, ``groups[i]`` the group of ``ids[i]`` (a patient, a field, a video);
    ``test_fraction`` the share of the *images* wanted in the test split and ``seed`` the seed of any random choice.
    Every group must go whole to one split, every id must be used exactly once, the test split must hold a share of
    the images within 0.15 of ``test_fraction``, and the same seed must give the same split. Checked on four data
    sets whose groups differ in size; the order of the ids in each split does not matter.
    """
    name = "a train/test split that keeps each group whole"
    hint = ("count the images of each group (collections.Counter(groups)), shuffle the distinct groups with "
            "np.random.default_rng(seed), and move each whole group to test if its images still fit under "
            "test_fraction * len(ids); then put each id in the split of its group.")
    early = opening(name, split_fn, "a function (ids, groups, test_fraction, seed) -> (train_ids, test_ids)",
                    strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        ids, groups, fraction, seed, repeat = case
        problem = _judge_split(label, got, ids, groups, fraction)
        if problem or not repeat:
            return problem
        again, error = call_answer(split_fn, list(ids), list(groups), fraction, seed)
        if error:
            return f"{label}: called a second time, your function raised {error}"
        try:
            same = all(sorted(map(str, a)) == sorted(map(str, b)) for a, b in zip(got, again))
        except TypeError:
            same = False
        if not same:
            return (f"{label}: two calls with seed {seed} gave different splits: draw every random choice from the "
                    "seed (np.random.default_rng(seed)), so that the split can be made again")
        return None

    cases = ((label, (list(ids), list(groups), fraction, seed), (ids, groups, fraction, seed, k == 0))
             for k, (label, ids, groups, fraction, seed) in enumerate(_SPLIT_CASES))
    problems, unanswered = run_cases(split_fn, cases, judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "every group whole in one split, every id once, and the test share close to "
                    "the one asked, on all four data sets.", strict, hint if problems else None)
