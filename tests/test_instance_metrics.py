"""Tests of utils.instance_metrics: hand-computed label maps, pycocotools and brute-force cross-checks, errors."""
import itertools
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from skimage.draw import disk

from utils.instance_metrics import (
    DSB_THRESHOLDS,
    dsb_average_precision,
    label_iou,
    match_labels,
    score_label_maps,
)

# --------------------------------------------------------------------------------------------------
# Label maps worked out on paper
# --------------------------------------------------------------------------------------------------

# MIXED (6x6), non-consecutive ids on both sides.
#   true 1: rows 0-2 x cols 0-2 (9 px); true 4: rows 2-3 x cols 4-5 (4 px); true 7: rows 4-5 x cols 0-1 (4 px)
#   pred 2: true 1 less its corner (2, 2) (8 px, inside true 1)          -> IoU 8/9
#   pred 3: rows 2-4 x cols 4-5 (6 px), covers true 4                   -> IoU 4/6 = 2/3
#   pred 5: row 5 x cols 3-4 (2 px), touches nothing                    -> false positive; true 7 missed
# At 0.5: TP 2, FP 1, FN 1 -> precision 2/3, recall 2/3, F1 4/6 = 2/3, mean matched IoU (8/9 + 6/9)/2 = 7/9.
# DSB: t = 0.50, 0.55, 0.60, 0.65 (both hits, 2/3 > 0.65): 2 / (2+1+1) = 1/2
#      t = 0.70, 0.75, 0.80, 0.85 (only 8/9):              1 / (1+2+2) = 1/5
#      t = 0.90, 0.95 (none):                               0
#      AP = (4 * 1/2 + 4 * 1/5 + 0) / 10 = 2.8 / 10 = 0.28
MIXED_TRUE = np.array([[1, 1, 1, 0, 0, 0],
                       [1, 1, 1, 0, 0, 0],
                       [1, 1, 1, 0, 4, 4],
                       [0, 0, 0, 0, 4, 4],
                       [7, 7, 0, 0, 0, 0],
                       [7, 7, 0, 0, 0, 0]])
MIXED_PRED = np.array([[2, 2, 2, 0, 0, 0],
                       [2, 2, 2, 0, 0, 0],
                       [2, 2, 0, 0, 3, 3],
                       [0, 0, 0, 0, 3, 3],
                       [0, 0, 0, 0, 3, 3],
                       [0, 0, 0, 5, 5, 0]])

# MERGED (4x4): true 1 (6 px) and true 2 (2 px) predicted as one object 9 covering both (8 px).
#   IoU(1, 9) = 6/8 = 0.75, IoU(2, 9) = 2/8 = 0.25.
# At 0.5: TP 1, FP 0, FN 1 -> precision 1, recall 1/2, F1 2/3.
# DSB: t = 0.50 ... 0.70 (0.75 > t, 5 thresholds): 1 / (1+0+1) = 1/2
#      t = 0.75 (0.75 is not > 0.75), 0.80 ... 0.95 (5 thresholds): 0 / (0+1+2) = 0
#      AP = 5 * 1/2 / 10 = 0.25
MERGED_TRUE = np.array([[1, 1, 1, 2],
                        [1, 1, 1, 2],
                        [0, 0, 0, 0],
                        [0, 0, 0, 0]])
MERGED_PRED = np.array([[9, 9, 9, 9],
                        [9, 9, 9, 9],
                        [0, 0, 0, 0],
                        [0, 0, 0, 0]])

# SPLIT (4x4): true 1 (8 px) predicted as two halves 1 and 2 (4 px each): IoU 4/8 = 0.5 each.
# At 0.5 (strict >): TP 0, FP 2, FN 1 -> precision 0, recall 0, F1 0; AP 0 (no threshold reaches 0.5).
# At 0.4: one half matches: TP 1, FP 1, FN 0 -> precision 1/2, recall 1, F1 2/3.
SPLIT_TRUE = np.array([[1, 1, 1, 1],
                       [1, 1, 1, 1],
                       [0, 0, 0, 0],
                       [0, 0, 0, 0]])
SPLIT_PRED = np.array([[1, 1, 2, 2],
                       [1, 1, 2, 2],
                       [0, 0, 0, 0],
                       [0, 0, 0, 0]])

# PERFECT (5x5): the same objects under other ids: IoU 1 each, TP 3, F1 1, AP 1.
PERFECT_TRUE = np.array([[1, 1, 0, 0, 2],
                         [1, 1, 0, 0, 2],
                         [0, 0, 0, 0, 0],
                         [3, 3, 3, 0, 0],
                         [0, 0, 0, 0, 0]])
PERFECT_PRED = np.array([[8, 8, 0, 0, 5],
                         [8, 8, 0, 0, 5],
                         [0, 0, 0, 0, 0],
                         [6, 6, 6, 0, 0],
                         [0, 0, 0, 0, 0]])

EMPTY = np.zeros((4, 4), np.int64)
NAN = math.nan

# name: true, pred, iou (rows true ids, cols pred ids), true ids, pred ids,
#       at 0.5: (tp, fp, fn), precision, recall, f1, mean matched IoU, DSB AP
CASES = {
    "mixed": (MIXED_TRUE, MIXED_PRED, [[8 / 9, 0, 0], [0, 2 / 3, 0], [0, 0, 0]], [1, 4, 7], [2, 3, 5],
              (2, 1, 1), 2 / 3, 2 / 3, 2 / 3, 7 / 9, 0.28),
    "merged": (MERGED_TRUE, MERGED_PRED, [[0.75], [0.25]], [1, 2], [9],
               (1, 0, 1), 1.0, 0.5, 2 / 3, 0.75, 0.25),
    "split": (SPLIT_TRUE, SPLIT_PRED, [[0.5, 0.5]], [1], [1, 2],
              (0, 2, 1), 0.0, 0.0, 0.0, NAN, 0.0),
    # true 1 = pred 8, true 2 = pred 5, true 3 = pred 6; columns in ascending pred id 5, 6, 8
    "perfect": (PERFECT_TRUE, PERFECT_PRED, [[0, 0, 1], [1, 0, 0], [0, 1, 0]], [1, 2, 3], [5, 6, 8],
                (3, 0, 0), 1.0, 1.0, 1.0, 1.0, 1.0),
    # Nothing predicted on an image with objects: TP 0, FP 0, FN 3; zero denominators give 0.
    "empty_pred": (PERFECT_TRUE, np.zeros((5, 5), int), np.zeros((3, 0)), [1, 2, 3], [],
                   (0, 0, 3), 0.0, 0.0, 0.0, NAN, 0.0),
    # Objects predicted on an empty image: TP 0, FP 3, FN 0.
    "empty_true": (np.zeros((5, 5), int), PERFECT_PRED, np.zeros((0, 3)), [], [5, 6, 8],
                   (0, 3, 0), 0.0, 0.0, 0.0, NAN, 0.0),
    # Neither map holds an object: nothing to find, nothing wrongly found -> 1.
    "both_empty": (EMPTY, EMPTY, np.zeros((0, 0)), [], [],
                   (0, 0, 0), 1.0, 1.0, 1.0, NAN, 1.0),
}


@pytest.mark.parametrize("name", CASES)
def test_label_iou_by_hand(name):
    true, pred, iou, true_ids, pred_ids = CASES[name][:5]
    got, t_ids, p_ids = label_iou(true, pred)
    assert got.dtype == np.float64 and t_ids.dtype == np.int64 and p_ids.dtype == np.int64
    assert got.shape == (len(true_ids), len(pred_ids))
    np.testing.assert_allclose(got, np.asarray(iou, float).reshape(got.shape), rtol=0, atol=1e-15)
    assert t_ids.tolist() == true_ids and p_ids.tolist() == pred_ids


@pytest.mark.parametrize("name", CASES)
def test_match_labels_by_hand(name):
    true, pred, iou, true_ids, pred_ids, counts, precision, recall, f1, mean_iou, _ = CASES[name]
    out = match_labels(true, pred)
    assert (out["tp"], out["fp"], out["fn"]) == counts
    assert all(type(out[k]) is int for k in ("tp", "fp", "fn"))
    assert out["precision"] == pytest.approx(precision)
    assert out["recall"] == pytest.approx(recall)
    assert out["f1"] == pytest.approx(f1)
    if math.isnan(mean_iou):
        assert math.isnan(out["mean_matched_iou"])
    else:
        assert out["mean_matched_iou"] == pytest.approx(mean_iou)
    # every match is a (true_id, pred_id, iou) triple above the threshold, each id used once
    iou = np.asarray(iou, float)
    for t_id, p_id, v in out["matches"]:
        assert v > 0.5 and v == pytest.approx(iou[true_ids.index(t_id), pred_ids.index(p_id)])
    assert len({m[0] for m in out["matches"]}) == len({m[1] for m in out["matches"]}) == out["tp"]


@pytest.mark.parametrize("name", CASES)
def test_dsb_average_precision_by_hand(name):
    true, pred, *_, ap = CASES[name]
    assert dsb_average_precision(true, pred) == pytest.approx(ap)
    # the same with the brief's np.arange thresholds, whose float error (0.7500000000000002) must not matter
    assert dsb_average_precision(true, pred, np.arange(0.5, 1.0, 0.05)) == pytest.approx(ap)


def test_matches_of_the_mixed_case():
    assert match_labels(MIXED_TRUE, MIXED_PRED)["matches"] == [(1, 2, pytest.approx(8 / 9)),
                                                              (4, 3, pytest.approx(2 / 3))]


@pytest.mark.parametrize(
    "true, pred, threshold, counts",
    [
        (MIXED_TRUE, MIXED_PRED, 0.65, (2, 1, 1)),   # 2/3 > 0.65
        (MIXED_TRUE, MIXED_PRED, 0.7, (1, 2, 2)),    # only 8/9 left
        (MIXED_TRUE, MIXED_PRED, 0.9, (0, 3, 3)),
        (MERGED_TRUE, MERGED_PRED, 0.75, (0, 1, 2)),  # IoU exactly 0.75 is not > 0.75
        (MERGED_TRUE, MERGED_PRED, 0.74, (1, 0, 1)),
        (MERGED_TRUE, MERGED_PRED, 0.2, (1, 0, 1)),  # below 0.5: still one object 9 for two true objects
        (SPLIT_TRUE, SPLIT_PRED, 0.4, (1, 1, 0)),    # below 0.5 one half may match
        (SPLIT_TRUE, SPLIT_PRED, 0.49, (1, 1, 0)),
    ],
)
def test_threshold_boundaries(true, pred, threshold, counts):
    out = match_labels(true, pred, iou_threshold=threshold)
    assert (out["tp"], out["fp"], out["fn"]) == counts


def test_split_object_below_one_half_by_hand():
    # At 0.4: TP 1, FP 1, FN 0 -> precision 1/2, recall 1, F1 2 / (2 + 1) = 2/3; the tie goes to one half.
    out = match_labels(SPLIT_TRUE, SPLIT_PRED, iou_threshold=0.4)
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert len(out["matches"]) == 1 and out["matches"][0][2] == 0.5


def test_optimal_assignment_below_one_half_beats_greedy():
    # A 1x20 strip.  true A = cols 0-9 (10 px), true B = cols 10-19 (10 px);
    # pred X = cols 2-13 (12 px), pred Y = cols 0-1 (2 px).
    #   IoU(A, X) = 8 / 14 = 0.571, IoU(B, X) = 4 / 18 = 0.222, IoU(A, Y) = 2 / 10 = 0.2, IoU(B, Y) = 0.
    # At 0.15, greedy by IoU pairs A-X and leaves Y and B alone (TP 1); the optimal assignment
    # pairs A-Y and B-X: TP 2, FP 0, FN 0.
    true = np.array([[1] * 10 + [2] * 10])
    pred = np.array([[6] * 2 + [5] * 12 + [0] * 6])
    out = match_labels(true, pred, iou_threshold=0.15)
    assert (out["tp"], out["fp"], out["fn"]) == (2, 0, 0)
    assert out["matches"] == [(1, 6, pytest.approx(0.2)), (2, 5, pytest.approx(4 / 18))]
    # at 0.5 only A-X counts
    assert match_labels(true, pred)["matches"] == [(1, 5, pytest.approx(8 / 14))]


def test_optimal_assignment_breaks_ties_by_summed_iou():
    # 1x12 strip: true A = cols 0-5 (6 px); pred P = cols 0-3 (4 px, IoU 4/6), Q = cols 4-5 (2 px, IoU 2/6).
    # At 0.3 both are eligible; only one pair can be made, and the larger IoU wins: A-P.
    true = np.array([[1] * 6 + [0] * 6])
    pred = np.array([[2] * 4 + [3] * 2 + [0] * 6])
    assert match_labels(true, pred, iou_threshold=0.3)["matches"] == [(1, 2, pytest.approx(4 / 6))]


def test_dsb_per_threshold_values():
    # MIXED: 1/2 at the first four thresholds, 1/5 at the next four, 0 at the last two (see above).
    ap, per = dsb_average_precision(MIXED_TRUE, MIXED_PRED, return_per_threshold=True)
    assert isinstance(ap, float) and per.dtype == np.float64 and per.shape == (10,)
    np.testing.assert_allclose(per, [0.5] * 4 + [0.2] * 4 + [0.0] * 2)
    assert ap == pytest.approx(0.28)
    assert DSB_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    # custom thresholds keep their order; below 0.5 the optimal matching is used (SPLIT: 1/(1+1+0))
    _, per = dsb_average_precision(SPLIT_TRUE, SPLIT_PRED, [0.9, 0.3], return_per_threshold=True)
    assert per.tolist() == [0.0, 0.5]


def test_non_consecutive_ids_and_dtypes_do_not_matter():
    # The MIXED maps with ids renamed (0 kept): true {1, 4, 7} -> {3, 17, 1_000_000_007},
    # pred {2, 3, 5} -> {40000, 9, 65535}
    true = np.select([MIXED_TRUE == 1, MIXED_TRUE == 4, MIXED_TRUE == 7], [3, 17, 1_000_000_007], 0)
    pred = np.select([MIXED_PRED == 2, MIXED_PRED == 3, MIXED_PRED == 5], [40000, 9, 65535], 0)
    iou, t_ids, p_ids = label_iou(true, pred)  # a huge id takes the sorting path of the relabelling
    assert t_ids.tolist() == [3, 17, 1_000_000_007] and p_ids.tolist() == [9, 40000, 65535]
    # columns in ascending pred id: 9 (was 3), 40000 (was 2), 65535 (was 5)
    np.testing.assert_allclose(iou, [[0, 8 / 9, 0], [2 / 3, 0, 0], [0, 0, 0]], atol=1e-15)
    assert match_labels(true, pred)["matches"] == [(3, 40000, pytest.approx(8 / 9)), (17, 9, pytest.approx(2 / 3))]
    assert dsb_average_precision(true, pred) == pytest.approx(0.28)
    for dtype in (np.uint8, np.uint16, np.int32, np.uint64):
        assert dsb_average_precision(MIXED_TRUE.astype(dtype), MIXED_PRED.astype(dtype)) == pytest.approx(0.28)
    # no background pixel at all, with small ids (lookup-table path) and huge ids (sorting path):
    # true 5 (top row) and 9 (bottom row) against one object covering all 4 px -> IoU 2/4 each
    for big in (0, 10**12):
        iou, t_ids, p_ids = label_iou(np.array([[5, 5], [9, 9]]) + big, np.full((2, 2), 3 + big))
        assert t_ids.tolist() == [5 + big, 9 + big] and p_ids.tolist() == [3 + big]
        assert iou.tolist() == [[0.5], [0.5]]
    # nested lists are label maps too
    assert match_labels(MERGED_TRUE.tolist(), MERGED_PRED.tolist())["tp"] == 1


# --------------------------------------------------------------------------------------------------
# A data set of images
# --------------------------------------------------------------------------------------------------

def test_score_label_maps_by_hand():
    # MIXED (6x6) + MERGED (4x4) + both empty (3x5): images of different sizes.
    #   summed counts: TP 2+1+0 = 3, FP 1+0+0 = 1, FN 1+1+0 = 2
    #   -> precision 3/4, recall 3/5, F1 6 / (6 + 1 + 2) = 2/3
    #   per-image F1 2/3, 2/3, 1 -> mean 7/9; per-image AP 0.28, 0.25, 1 -> mean 0.51
    #   matched IoUs 8/9, 2/3, 3/4 -> mean (32 + 24 + 27) / 36 / 3 = 83/108
    #   foreground: MIXED true 17 px, pred 16 px, both 8 + 4 = 12 -> union 21; MERGED 8 = 8, union 8;
    #   empty 0 -> IoU (12 + 8) / (21 + 8) = 20/29
    trues = [MIXED_TRUE, MERGED_TRUE, np.zeros((3, 5), np.uint16)]
    preds = [MIXED_PRED, MERGED_PRED, np.zeros((3, 5), np.int32)]
    out = score_label_maps(trues, preds)
    assert out["n_images"] == 3
    assert (out["tp"], out["fp"], out["fn"]) == (3, 1, 2)
    assert out["precision"] == pytest.approx(3 / 4)
    assert out["recall"] == pytest.approx(3 / 5)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["mean_image_f1"] == pytest.approx(7 / 9)
    assert out["mean_image_ap"] == pytest.approx(0.51)
    np.testing.assert_allclose(out["image_f1"], [2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(out["image_ap"], [0.28, 0.25, 1.0])
    assert out["mean_matched_iou"] == pytest.approx(83 / 108)
    assert out["foreground_iou"] == pytest.approx(20 / 29)


def test_score_label_maps_matches_the_single_image_functions():
    out = score_label_maps([SPLIT_TRUE], [SPLIT_PRED], iou_threshold=0.4, thresholds=[0.3, 0.9])
    single = match_labels(SPLIT_TRUE, SPLIT_PRED, iou_threshold=0.4)
    assert (out["tp"], out["fp"], out["fn"]) == (single["tp"], single["fp"], single["fn"])
    assert out["f1"] == out["mean_image_f1"] == pytest.approx(single["f1"])
    assert out["mean_image_ap"] == pytest.approx(dsb_average_precision(SPLIT_TRUE, SPLIT_PRED, [0.3, 0.9]))
    # a (B, H, W) array is B label maps
    stacked = score_label_maps(np.stack([MIXED_TRUE, MIXED_TRUE]), np.stack([MIXED_PRED, MIXED_PRED]))
    assert (stacked["tp"], stacked["fp"], stacked["fn"]) == (4, 2, 2)


def test_score_label_maps_empty_conventions():
    # only empty images: every count 0, every score 1, no matched IoU
    out = score_label_maps([EMPTY, np.zeros((2, 3), int)], [EMPTY, np.zeros((2, 3), int)])
    assert (out["precision"], out["recall"], out["f1"], out["foreground_iou"]) == (1.0, 1.0, 1.0, 1.0)
    assert out["mean_image_f1"] == out["mean_image_ap"] == 1.0
    assert math.isnan(out["mean_matched_iou"])
    # an empty image next to a missed one: per image 1 and 0, pooled precision 0 (nothing predicted), recall 0
    out = score_label_maps([EMPTY, PERFECT_TRUE], [EMPTY, np.zeros((5, 5), int)])
    assert (out["tp"], out["fp"], out["fn"]) == (0, 0, 3)
    assert (out["precision"], out["recall"], out["f1"]) == (0.0, 0.0, 0.0)
    assert out["mean_image_f1"] == out["mean_image_ap"] == 0.5
    assert out["foreground_iou"] == 0.0


# --------------------------------------------------------------------------------------------------
# Cross-checks on random label maps: pycocotools for the IoU, brute-force loops for the matching
# --------------------------------------------------------------------------------------------------

def random_disc_labels(rng, size, n, max_radius, centres=None, radii=None):
    """Label map of ``n`` discs drawn in turn (later ones cover earlier ones), with random sparse ids."""
    if centres is None:
        centres = rng.uniform(0, size, (n, 2))
        radii = rng.uniform(1.5, max_radius, n)
    ids = rng.choice(np.arange(1, 50 * n), n, replace=False)
    labels = np.zeros((size, size), np.int32)
    for (r, c), rad, i in zip(centres, radii, ids):
        labels[disk((r, c), rad, shape=labels.shape)] = i
    return labels, centres, radii


def random_pair(seed, size=48, n=25, max_radius=8.0):
    """A true map and a prediction made of the same discs moved, resized, some dropped, some added."""
    rng = np.random.default_rng(seed)
    true, centres, radii = random_disc_labels(rng, size, n, max_radius)
    keep = rng.random(n) > 0.15
    moved = centres[keep] + rng.normal(0, 0.6, (keep.sum(), 2))
    resized = radii[keep] * rng.uniform(0.85, 1.15, keep.sum())
    extra = rng.uniform(0, size, (4, 2))
    pred, _, _ = random_disc_labels(rng, size, int(keep.sum()) + 4, max_radius,
                                    np.concatenate([moved, extra]),
                                    np.concatenate([resized, rng.uniform(1.5, max_radius, 4)]))
    return true, pred


def object_masks(labels, ids):
    return [labels == i for i in ids]


def coco_iou(true, pred, true_ids, pred_ids):
    """(N_true, N_pred) IoU from pycocotools' run-length encodings."""
    def rles(labels, ids):
        stack = np.stack(object_masks(labels, ids), axis=-1).astype(np.uint8)
        return mask_utils.encode(np.asfortranarray(stack))

    dt, gt = rles(pred, pred_ids), rles(true, true_ids)
    return np.asarray(mask_utils.iou(dt, gt, [0] * len(gt))).T  # pycocotools: (n_dt, n_gt)


def brute_force_iou(true, pred):
    t_ids = [i for i in np.unique(true) if i > 0]
    p_ids = [j for j in np.unique(pred) if j > 0]
    out = np.zeros((len(t_ids), len(p_ids)))
    for a, tm in enumerate(object_masks(true, t_ids)):
        for b, pm in enumerate(object_masks(pred, p_ids)):
            out[a, b] = (tm & pm).sum() / (tm | pm).sum()
    return out, t_ids, p_ids


@pytest.mark.parametrize("seed", range(6))
def test_label_iou_equals_pycocotools(seed):
    true, pred = random_pair(seed)
    iou, t_ids, p_ids = label_iou(true, pred)
    assert len(t_ids) > 5 and len(p_ids) > 5
    np.testing.assert_allclose(iou, coco_iou(true, pred, t_ids, p_ids), rtol=0, atol=1e-12)
    assert 0.0 < iou.max() <= 1.0  # the pairs really overlap


def test_label_iou_equals_pycocotools_with_hundreds_of_objects():
    # a 256x256 Voronoi tiling with 300 cells, 1 px of background between cells on every other row,
    # against the same tiling from shifted seeds
    rng = np.random.default_rng(42)
    rows, cols = np.mgrid[:256, :256]

    def voronoi(seeds, ids):
        d = (rows[..., None] - seeds[:, 0]) ** 2 + (cols[..., None] - seeds[:, 1]) ** 2
        labels = ids[np.argmin(d, axis=-1)].astype(np.int64)
        labels[::2] *= (rng.random((128, 256)) > 0.1)
        return labels

    seeds = rng.uniform(0, 256, (300, 2))
    true = voronoi(seeds, rng.permutation(np.arange(1, 1001))[:300])
    pred = voronoi(seeds + rng.normal(0, 2.0, seeds.shape), rng.permutation(np.arange(1, 1001))[:300])
    iou, t_ids, p_ids = label_iou(true, pred)
    assert iou.shape == (300, 300)
    np.testing.assert_allclose(iou, coco_iou(true, pred, t_ids, p_ids), rtol=0, atol=1e-12)
    out = match_labels(true, pred)
    assert out["tp"] == int((iou > 0.5).sum()) > 200


@pytest.mark.parametrize("seed", range(6))
def test_match_counts_equal_brute_force(seed):
    true, pred = random_pair(seed + 100)
    iou, t_ids, p_ids = brute_force_iou(true, pred)
    ap_terms = []
    for t in DSB_THRESHOLDS:
        # brute force: every pair above t, and check by hand that no object is used twice
        pairs = [(t_ids[a], p_ids[b]) for a in range(len(t_ids)) for b in range(len(p_ids)) if iou[a, b] > t]
        assert len({p[0] for p in pairs}) == len({p[1] for p in pairs}) == len(pairs)
        out = match_labels(true, pred, iou_threshold=t)
        assert [(m[0], m[1]) for m in out["matches"]] == [(int(a), int(b)) for a, b in pairs]
        tp = len(pairs)
        assert (out["tp"], out["fp"], out["fn"]) == (tp, len(p_ids) - tp, len(t_ids) - tp)
        ap_terms.append(tp / (len(t_ids) + len(p_ids) - tp))
    assert dsb_average_precision(true, pred) == pytest.approx(np.mean(ap_terms))


def max_matching_brute_force(iou, t):
    """Largest number of pairs with IoU > t, then the largest summed IoU, over every one-to-one matching."""
    n_true, n_pred = iou.shape
    best = (0, 0.0)
    for k in range(1, min(n_true, n_pred) + 1):
        for rows in itertools.combinations(range(n_true), k):
            for cols in itertools.permutations(range(n_pred), k):
                values = [iou[r, c] for r, c in zip(rows, cols)]
                if all(v > t for v in values):
                    best = max(best, (k, sum(values)))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_optimal_assignment_below_one_half_equals_brute_force(seed):
    # small fragmented maps (ids 0-4 scattered in 3x3 blocks) where objects overlap several others
    rng = np.random.default_rng(seed)
    true = np.kron(rng.integers(0, 5, (3, 3)), np.ones((2, 2), int))
    pred = rng.integers(0, 5, (6, 6))
    iou, _, _ = label_iou(true, pred)
    for t in (0.1, 0.2, 0.3):
        out = match_labels(true, pred, iou_threshold=t)
        k, total = max_matching_brute_force(iou, t)
        assert out["tp"] == k
        assert sum(m[2] for m in out["matches"]) == pytest.approx(total)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------

GOOD = MERGED_TRUE


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: label_iou(np.zeros((2, 3, 4), int), np.zeros((2, 3, 4), int)), r"`true_labels` must be a 2-D"),
        (lambda: label_iou(GOOD, GOOD[0]), r"`pred_labels` must be a 2-D"),
        (lambda: label_iou(GOOD.astype(float), GOOD), r"`true_labels` must hold integer.*float64"),
        (lambda: label_iou(GOOD, GOOD > 0), r"`pred_labels` must hold integer.*bool.*astype\(int\)"),
        (lambda: label_iou(GOOD - 1, GOOD), r"`true_labels` holds negative ids \[-1\]"),
        (lambda: label_iou(GOOD, GOOD[:, :3]),
         r"`true_labels` \(shape \(4, 4\)\) and `pred_labels` \(shape \(4, 3\)\)"),
        (lambda: match_labels(GOOD, -GOOD), r"`pred_labels` holds negative ids \[-2, -1\]"),
        (lambda: match_labels(GOOD, GOOD.T[:3]), r"must have the same shape"),
        (lambda: match_labels(GOOD, GOOD, iou_threshold=0.0), r"`iou_threshold` must lie in the open interval"),
        (lambda: match_labels(GOOD, GOOD, iou_threshold=1.0), r"`iou_threshold` must lie in the open interval"),
        (lambda: match_labels(GOOD, GOOD, iou_threshold=math.nan), r"`iou_threshold` must lie"),
        (lambda: match_labels(GOOD, GOOD, iou_threshold="0.5"), r"`iou_threshold` must be a number"),
        (lambda: match_labels(GOOD, GOOD, iou_threshold=True), r"`iou_threshold` must be a number"),
        (lambda: dsb_average_precision(GOOD, GOOD, [0.5, 1.0]), r"`thresholds` must lie in the open interval.*1\.0"),
        (lambda: dsb_average_precision(GOOD, GOOD, [-0.1, 0.5]), r"`thresholds` must lie in the open interval"),
        (lambda: dsb_average_precision(GOOD, GOOD, []), r"`thresholds` must be a non-empty 1-D"),
        (lambda: dsb_average_precision(GOOD, GOOD, [[0.5]]), r"`thresholds` must be a non-empty 1-D"),
        (lambda: dsb_average_precision(GOOD, GOOD, ["a"]), r"`thresholds` must be a 1-D sequence of numbers"),
        (lambda: dsb_average_precision(GOOD[None], GOOD), r"`true_labels` must be a 2-D"),
        (lambda: dsb_average_precision(GOOD, GOOD.astype(np.float32)), r"`pred_labels` must hold integer"),
        (lambda: dsb_average_precision(GOOD, GOOD[:3]), r"must have the same shape"),
        (lambda: score_label_maps([GOOD, GOOD], [GOOD]), r"`trues` \(2 maps\) and `preds` \(1 maps\)"),
        (lambda: score_label_maps([], []), r"`trues` and `preds` are empty"),
        (lambda: score_label_maps(GOOD, GOOD), r"`trues` must be a sequence of 2-D label maps"),
        (lambda: score_label_maps([GOOD, GOOD[0]], [GOOD, GOOD[0]]), r"`trues\[1\]` must be a 2-D"),
        (lambda: score_label_maps([GOOD], [GOOD * 0.5]), r"`preds\[0\]` must hold integer"),
        (lambda: score_label_maps([GOOD, -GOOD], [GOOD, GOOD]), r"`trues\[1\]` holds negative ids"),
        (lambda: score_label_maps([GOOD], [GOOD[:2]]), r"`trues\[0\]` \(shape \(4, 4\)\) and `preds\[0\]`"),
        (lambda: score_label_maps([GOOD], [GOOD], iou_threshold=1.5), r"`iou_threshold` must lie"),
        (lambda: score_label_maps([GOOD], [GOOD], thresholds=[0.5, 0.0]), r"`thresholds` must lie"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
