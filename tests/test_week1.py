"""Week 1 (notebooks 01 and 02): the classical helpers, and the exercise checks run on right and wrong answers.

Correct answers here are written independently of the code under test (brute force, scikit-learn,
scikit-image), so a check that agreed with a wrong reference would fail.
"""
from collections import deque

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402
from skimage import data, filters, measure, segmentation  # noqa: E402
from sklearn.metrics import f1_score, jaccard_score  # noqa: E402

from utils import classical  # noqa: E402
from utils.checks import ExerciseError, Feedback  # noqa: E402
from utils.checks.lesson01 import check_iou_dice, check_otsu_threshold, check_region_grower  # noqa: E402
from utils.checks.lesson02 import check_coin_labels, check_disc_markers, two_touching_discs  # noqa: E402
from utils.plotting import live_controls  # noqa: E402
from utils.scenes import make_scene  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------------------------ binary scores

SQ_A = np.zeros((4, 4), bool)
SQ_A[:2, :2] = True
SQ_B = np.zeros((4, 4), bool)
SQ_B[:2, 1:3] = True
SQ_BIG = np.zeros((4, 4), bool)
SQ_BIG[:3, :3] = True
EMPTY = np.zeros((4, 4), bool)


@pytest.mark.parametrize("pred, truth, iou, dice", [
    (SQ_A, SQ_B, 2 / 6, 4 / 8),          # overlap 2, union 6, sizes 4 + 4
    (SQ_A, SQ_BIG, 4 / 9, 8 / 13),       # inside: overlap 4, union 9, sizes 4 + 9
    (SQ_A, SQ_A, 1.0, 1.0),
    (EMPTY, SQ_A, 0.0, 0.0),
    (EMPTY, EMPTY, 1.0, 1.0),            # nothing to find and nothing found
    (SQ_A.astype(np.uint8), SQ_B.astype(np.int64), 2 / 6, 4 / 8),
])
def test_binary_scores_by_hand(pred, truth, iou, dice):
    assert classical.binary_iou(pred, truth) == pytest.approx(iou)
    assert classical.binary_dice(pred, truth) == pytest.approx(dice)


def test_binary_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    for _ in range(5):
        p, t = rng.random((20, 30)) < 0.4, rng.random((20, 30)) < 0.3
        assert classical.binary_iou(p, t) == pytest.approx(jaccard_score(t.ravel(), p.ravel()))
        assert classical.binary_dice(p, t) == pytest.approx(f1_score(t.ravel(), p.ravel()))
        iou = classical.binary_iou(p, t)
        assert classical.binary_dice(p, t) == pytest.approx(2 * iou / (1 + iou))


@pytest.mark.parametrize("pred, truth, match", [
    (np.zeros((4, 5), bool), np.zeros((4, 4), bool), r"`prediction` \(shape \(4, 5\)\) must have the same shape"),
    (np.zeros((2, 4, 4), bool), np.zeros((4, 4), bool), r"`prediction` must be a 2-D"),
    (np.zeros((4, 4), np.float32), np.zeros((4, 4), bool), r"`prediction` must be bool or integer"),
    (np.zeros((4, 4), bool), np.zeros(4, bool), r"`truth` must be a 2-D"),
])
def test_binary_scores_reject_bad_masks(pred, truth, match):
    with pytest.raises(ValueError, match=match):
        classical.binary_iou(pred, truth)
    with pytest.raises(ValueError, match=match):
        classical.binary_dice(pred, truth)


# ------------------------------------------------------------------------------------ Otsu


def otsu_brute_force(hist):
    """Otsu's threshold by trying every t and computing both classes from scratch (slow, obviously right)."""
    levels = np.arange(len(hist))
    best, best_t = -1.0, None
    for t in range(len(hist)):
        n0, n1 = hist[: t + 1].sum(), hist[t + 1:].sum()
        if n0 == 0 or n1 == 0:
            continue
        m0 = (hist[: t + 1] * levels[: t + 1]).sum() / n0
        m1 = (hist[t + 1:] * levels[t + 1:]).sum() / n1
        score = n0 * n1 * (m0 - m1) ** 2
        if score > best * (1 + 1e-12):
            best, best_t = score, t
    return best_t


@pytest.mark.parametrize("name", ["camera", "coins", "page", "moon"])
def test_between_class_variance_peaks_at_otsu(name):
    image = getattr(data, name)()
    curve = classical.between_class_variance(np.bincount(image.ravel(), minlength=256))
    assert curve.shape == (256,) and curve.min() >= 0
    assert int(np.argmax(curve)) == filters.threshold_otsu(image)
    assert int(np.argmax(curve)) == otsu_brute_force(np.bincount(image.ravel(), minlength=256))


@pytest.mark.parametrize("hist, match", [
    (np.zeros(256), "all zeros"),
    (np.ones((16, 16)), "1-D histogram"),
    (np.array([1.0, -2.0, 3.0]), "non-negative"),
    (np.array([5.0]), "at least 2 bins"),
])
def test_between_class_variance_rejects_bad_histograms(hist, match):
    with pytest.raises(ValueError, match=match):
        classical.between_class_variance(hist)


def test_otsu_check_accepts_a_brute_force_answer():
    fb = check_otsu_threshold(otsu_brute_force, strict=True)
    assert fb.passed and "right on all" in str(fb)


def test_otsu_check_unanswered_says_so_without_a_hint():
    fb = check_otsu_threshold(None)
    assert isinstance(fb, Feedback) and not fb.passed and "not answered yet" in str(fb) and "hint:" not in str(fb)
    fb = check_otsu_threshold(lambda hist: None)
    assert not fb.passed and "not answered yet" in str(fb)
    with pytest.raises(ExerciseError, match="not answered"):
        check_otsu_threshold(None, strict=True)


def test_otsu_check_explains_an_off_by_one():
    # class 0 taken as levels < t instead of <= t: every answer one too high
    fb = check_otsu_threshold(lambda hist: otsu_brute_force(hist) + 1)
    assert not fb.passed and "off by one" in str(fb)
    with pytest.raises(ExerciseError, match="off by one"):
        check_otsu_threshold(lambda hist: otsu_brute_force(hist) + 1, strict=True)


def test_otsu_check_explains_the_minimum_and_the_mean():
    def smallest(hist):
        curve = classical.between_class_variance(hist)
        valid = np.flatnonzero((np.cumsum(hist) > 0) & (np.cumsum(hist) < hist.sum()))
        return int(valid[np.argmin(curve[valid])])

    assert "*smallest*" in str(check_otsu_threshold(smallest))

    def mean_level(hist):
        return int(round((hist * np.arange(256)).sum() / hist.sum()))

    assert "mean grey level" in str(check_otsu_threshold(mean_level))


def test_otsu_check_explains_wrong_types():
    assert "not the whole curve" in str(check_otsu_threshold(classical.between_class_variance))
    assert "fraction of the range" in str(check_otsu_threshold(lambda hist: 0.4))
    assert "raised ZeroDivisionError" in str(check_otsu_threshold(lambda hist: 1 // 0))
    assert "expected a function" in str(check_otsu_threshold(102))


# ------------------------------------------------------------------------------------ IoU and Dice check


def iou_dice_sklearn(prediction, truth):
    p, t = np.ravel(prediction) != 0, np.ravel(truth) != 0
    if not p.any() and not t.any():
        return 1.0, 1.0
    return jaccard_score(t, p), f1_score(t, p)


def test_iou_dice_check_accepts_scikit_learn():
    assert check_iou_dice(iou_dice_sklearn, strict=True).passed


@pytest.mark.parametrize("wrong, message", [
    (lambda p, t: iou_dice_sklearn(p, t)[::-1], "swapped"),
    (lambda p, t: (np.sum((p != 0) & (t != 0)) / np.sum(p != 0), 0.0), "precision"),
    (lambda p, t: (np.sum((p != 0) & (t != 0)) / np.sum(t != 0), 0.0), "recall"),
    (lambda p, t: (iou_dice_sklearn(p, t)[0], iou_dice_sklearn(p, t)[1] / 2), "half the right value"),
    (lambda p, t: (np.sum(p & t) / np.sum(p | t), 2 * np.sum(p & t) / (np.sum(p) + np.sum(t))), "empty"),
    (lambda p, t: 0.5, "return a pair"),
])
def test_iou_dice_check_explains_mistakes(wrong, message):
    with np.errstate(divide="ignore", invalid="ignore"):
        fb = check_iou_dice(wrong)
    assert not fb.passed and message in str(fb)


# ------------------------------------------------------------------------------------ region growing check


def grow_mean_independent(image, seed, tolerance):
    """Running-mean region growing written with Python sets, wave by wave."""
    h, w = image.shape
    region = {tuple(seed)}
    frontier = {tuple(seed)}
    mean = float(image[seed])
    while frontier:
        candidates = {(r + dr, c + dc) for r, c in frontier for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))}
        candidates = {(r, c) for r, c in candidates if 0 <= r < h and 0 <= c < w and (r, c) not in region}
        frontier = {(r, c) for r, c in candidates if abs(float(image[r, c]) - mean) <= tolerance}
        region |= frontier
        mean = float(np.mean([image[p] for p in region]))
    out = np.zeros((h, w), bool)
    out[tuple(np.array(sorted(region)).T)] = True
    return out


def grow_seed_rule(image, seed, tolerance):
    return segmentation.flood(image, tuple(seed), tolerance=tolerance, connectivity=1)


def grow_mean_8_neighbours(image, seed, tolerance):
    region = np.zeros(image.shape, bool)
    region[seed] = True
    while True:
        ring = ndi.binary_dilation(region, np.ones((3, 3), bool)) & ~region
        new = ring & (np.abs(image - image[region].mean()) <= tolerance)
        if not new.any():
            return region
        region |= new


def grow_mean_strict(image, seed, tolerance):
    return grow_mean_independent(image, seed, tolerance - 1e-9)


def grow_mean_per_pixel(image, seed, tolerance):
    """A queue that updates the mean after every single pixel (not the exercise's rule)."""
    h, w = image.shape
    region = np.zeros((h, w), bool)
    region[seed] = True
    total, count = float(image[seed]), 1
    queue = deque([tuple(seed)])
    while queue:
        r, c = queue.popleft()
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= rr < h and 0 <= cc < w and not region[rr, cc] and abs(image[rr, cc] - total / count) <= tolerance:
                region[rr, cc] = True
                total, count = total + image[rr, cc], count + 1
                queue.append((rr, cc))
    return region


def test_region_grower_check_accepts_an_independent_answer():
    assert check_region_grower(grow_mean_independent, strict=True).passed


@pytest.mark.parametrize("wrong, message", [
    (grow_seed_rule, "fixed rule"),
    (grow_mean_8_neighbours, "only at a corner"),
    (grow_mean_strict, "<=, not <"),
    (lambda image, seed, tol: np.abs(image - image[seed]) <= tol, "threshold of the whole image"),
    (lambda image, seed, tol: np.zeros(image.shape, bool), "the seed itself"),
    (lambda image, seed, tol: np.zeros((3, 3), bool), "return a mask shaped like the image"),
    (lambda image, seed, tol: image * 2, "return a bool mask"),
])
def test_region_grower_check_explains_mistakes(wrong, message):
    fb = check_region_grower(wrong)
    assert not fb.passed and message in str(fb)


def test_region_grower_check_rejects_a_per_pixel_mean_and_says_where():
    fb = check_region_grower(grow_mean_per_pixel)
    assert not fb.passed and "too many" in str(fb) and "missing" in str(fb)


# ------------------------------------------------------------------------------------ coin labels check


def coins_by_marker_watershed():
    """scikit-image's gallery pipeline: sure markers from grey levels, watershed on the Sobel relief."""
    coins = data.coins()
    markers = np.zeros(coins.shape, np.int32)
    markers[coins < 30], markers[coins > 150] = 1, 2
    fg = ndi.binary_fill_holes(segmentation.watershed(filters.sobel(coins), markers) == 2)
    labels = measure.label(fg)
    areas = np.bincount(labels.ravel())
    keep = areas >= 100
    keep[0] = False
    return measure.label(keep[labels])


def test_coin_check_accepts_the_gallery_pipeline():
    labels = coins_by_marker_watershed()
    assert labels.max() == 24
    assert check_coin_labels(labels, strict=True).passed


def test_coin_check_explains_mistakes():
    coins = data.coins()
    good = coins_by_marker_watershed()
    assert "not a label image" in str(check_coin_labels(good > 0))
    assert "shaped like the photo" in str(check_coin_labels(good[:100]))
    assert "no object" in str(check_coin_labels(np.zeros_like(good)))
    otsu = measure.label(coins > filters.threshold_otsu(coins))       # noisy, holed, band merged
    fb = check_coin_labels(otsu)
    assert not fb.passed and "too many" in str(fb) and "too small for a coin" in str(fb)
    merged = good.copy()
    merged[merged == 2] = 1                                            # two coins share one id
    assert "several separate pieces" in str(check_coin_labels(merged))
    holed = good.copy()
    holed[(good > 0) & (coins < 110)] = 0                              # dark details cut out of the coins
    assert "have holes" in str(check_coin_labels(measure.label(holed > 0)))
    band = measure.label(ndi.binary_fill_holes(coins > 100))           # the bright top band joins in
    assert "larger than any coin" in str(check_coin_labels(band))
    edge = good.copy()
    edge[:25, 150:200] = good.max() + 1                                # a patch of background at the top edge
    fb = check_coin_labels(edge)
    assert "25 objects" in str(fb) and "touch the image border" in str(fb) and "clear_border" in str(fb)
    assert "not answered yet" in str(check_coin_labels(None))


# ------------------------------------------------------------------------------------ disc markers check


def test_touching_discs_form_one_blob():
    blob, left, right = two_touching_discs()
    assert ndi.label(blob)[1] == 1 and (left & right).any() and np.array_equal(blob, left | right)


def test_disc_check_accepts_the_two_centres():
    blob, _, _ = two_touching_discs()
    markers = np.zeros(blob.shape, np.int32)
    markers[55, 48], markers[62, 100] = 1, 2                            # the centres, from the definition
    assert check_disc_markers(markers, strict=True).passed


@pytest.mark.parametrize("place, message", [
    ({(55, 48): 1}, "only one marker id"),
    ({(55, 48): 1, (62, 100): 1}, "only one marker id"),
    ({(55, 48): 1, (62, 100): 2, (30, 60): 3}, "over-segmentation"),
    ({(55, 40): 1, (55, 56): 2}, "same disc"),
    ({(55, 48): 1, (62, 100): 2, (2, 2): 3}, "outside the blob"),
    ({(55, 16): 1, (62, 124): 2}, "want >= 0.9"),
])
def test_disc_check_explains_mistakes(place, message):
    blob, _, _ = two_touching_discs()
    markers = np.zeros(blob.shape, np.int32)
    for (r, c), k in place.items():
        markers[r, c] = k
    fb = check_disc_markers(markers)
    assert not fb.passed and message in str(fb)


def test_disc_check_explains_types():
    blob, _, _ = two_touching_discs()
    assert "True/False" in str(check_disc_markers(blob))
    assert "shaped like the blob" in str(check_disc_markers(np.zeros((5, 5), int)))
    assert "not answered yet" in str(check_disc_markers(None))
    as_float = np.zeros(blob.shape)                                     # np.zeros gives float64: still fine
    as_float[55, 48], as_float[62, 100] = 1, 2
    assert check_disc_markers(as_float).passed
    as_float[0, 0] = 0.5
    assert "whole numbers >= 0" in str(check_disc_markers(as_float))
    assert "whole numbers >= 0" in str(check_disc_markers(-blob.astype(int)))


# ------------------------------------------------------------------------------------ other helpers


def test_click_inside_lands_at_the_centre_of_a_disc():
    yy, xx = np.mgrid[:40, :50]
    disc = (yy - 20) ** 2 + (xx - 30) ** 2 <= 10 ** 2
    assert classical.click_inside(disc) == (20, 30)
    square = np.zeros((10, 10), bool)
    square[:, :] = True                                                 # the border counts as an edge
    assert classical.click_inside(square) in {(4, 4), (4, 5), (5, 4), (5, 5)}
    with pytest.raises(ValueError, match="empty"):
        classical.click_inside(np.zeros((5, 5), bool))


def test_distance_to_edge_counts_the_border_as_an_edge():
    import doctest

    bar = np.zeros((5, 9), bool)
    bar[1:4, 2:9] = True                                   # touches the right border
    dist = classical.distance_to_edge(bar)
    assert (dist[~bar] == 0).all() and dist[2, 4] == 2 and dist[2, 8] == 1 and dist[1, 5] == 1
    np.testing.assert_array_equal(dist, ndi.distance_transform_edt(np.pad(bar, 1))[1:-1, 1:-1])
    examples = doctest.testmod(classical, extraglobs={"np": np})
    assert examples.attempted >= 1 and examples.failed == 0
    with pytest.raises(ValueError, match="`mask`"):
        classical.distance_to_edge(np.ones((2, 2, 2), bool))


def test_pick_foreground_keeps_the_side_off_the_border():
    inner = np.zeros((20, 20), bool)
    inner[5:15, 5:15] = True
    assert np.array_equal(classical.pick_foreground(inner), inner)
    assert np.array_equal(classical.pick_foreground(~inner), inner)


def test_border_helpers():
    img = np.zeros((10, 12, 3), np.uint8)
    img[...] = (10, 20, 30)
    img[4:6, 4:6] = (13, 24, 30)
    assert classical.border_pixels(img, 2).shape == (10 * 12 - 6 * 8, 3)
    dist = classical.border_colour_distance(img)
    assert dist.dtype == np.float32 and dist[0, 0] == 0 and dist[5, 5] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="`width`"):
        classical.border_pixels(img, 6)
    with pytest.raises(ValueError, match=r"`image` must be \(H, W, 3\) uint8"):
        classical.border_colour_distance(img.astype(np.float32))


def test_error_overlay_colours_hits_false_alarms_and_misses():
    truth = np.array([[1, 1], [0, 0]], bool)
    pred = np.array([[1, 0], [1, 0]], bool)
    out = classical.binary_error_overlay(np.zeros((2, 2), np.uint8), pred, truth, alpha=1.0)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    assert np.allclose(out[0, 0], classical.ERROR_COLOURS["true positive"])
    assert np.allclose(out[1, 0], classical.ERROR_COLOURS["false positive"])
    assert np.allclose(out[0, 1], classical.ERROR_COLOURS["false negative"])
    assert np.allclose(out[1, 1], 0.25)                                 # true negative: the dimmed image
    with pytest.raises(ValueError, match="`image`"):
        classical.binary_error_overlay(np.zeros((3, 3)), pred, truth)
    with pytest.raises(ValueError, match="`alpha`"):
        classical.binary_error_overlay(np.zeros((2, 2)), pred, truth, alpha=2)
    fig, ax = plt.subplots()
    classical.error_legend(ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(classical.ERROR_COLOURS)


def test_score_on_scenes_scores_the_truth_perfectly_and_times_it():
    scenes = [make_scene(s, 64) for s in (1, 2)]
    perfect = classical.score_on_scenes(lambda s: s.semantic > 0, scenes)
    assert perfect["iou"] == 1.0 and perfect["dice"] == 1.0 and perfect["ms"] >= 0
    assert perfect["per_scene_iou"].shape == (2,)
    empty = classical.score_on_scenes(lambda s: np.zeros(s.semantic.shape, bool), scenes)
    assert empty["iou"] == 0.0


def test_score_on_scenes_rejects_bad_input():
    scenes = [make_scene(1, 64)]
    with pytest.raises(ValueError, match="returned shape"):
        classical.score_on_scenes(lambda s: np.zeros((3, 3), bool), scenes)
    with pytest.raises(ValueError, match="`scenes` is empty"):
        classical.score_on_scenes(lambda s: s.semantic > 0, [])
    with pytest.raises(ValueError, match="`segment` must be a function"):
        classical.score_on_scenes("otsu", scenes)


def test_live_controls_outside_a_kernel_does_nothing():
    calls = []
    assert live_controls(lambda t=1: calls.append(t), t=(0, 5, 1)) is None
    assert calls == []                                                   # no widget, so no redraw
    with pytest.raises(ValueError, match="at least one control"):
        live_controls(lambda t=1: None)
    with pytest.raises(ValueError, match="`draw` must be a function"):
        live_controls("show", t=(0, 5, 1))


def test_coin_check_compares_positions_not_only_a_count_of_round_blobs():
    """24 round, coin-sized discs away from the border pass every shape test but lie where no coin is."""
    from skimage import data, draw

    from utils.checks.lesson02 import _reference_coins

    reference = _reference_coins()
    assert reference.max() == 24
    assert check_coin_labels(reference, strict=True).passed
    fake = np.zeros(data.coins().shape, np.int32)
    for k in range(24):
        rr, cc = draw.disk((40 + 45 * (k // 8), 30 + 45 * (k % 8)), 18, shape=fake.shape)
        fake[rr, cc] = k + 1
    fb = check_coin_labels(fake)
    assert not fb.passed
    problems = [m for m in fb.messages if not m.startswith("hint:")]
    assert len(problems) == 2, problems                                 # only the two position messages
    assert "not covered by any one of your objects" in problems[0] and "do not sit on a coin" in problems[1]
    shifted = np.roll(reference, 30, axis=1)                            # right shapes, 30 px off
    assert "not covered" in str(check_coin_labels(shifted))
