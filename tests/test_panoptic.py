"""Panoptic Quality written out (checked on paper and against torchmetrics), Panoptic FPN's merge, panoptic scenes."""
import doctest

import numpy as np
import pytest

import utils.panoptic
from utils.panoptic import (VOID, PQStats, from_category_instance, match_segments, merge_semantic_and_instances,
                            panoptic_quality, pq_from_stats, pq_stats, to_category_instance)
from utils.scenes import (PANOPTIC_CLASS_NAMES, PANOPTIC_DIVISOR, PANOPTIC_STUFF, PANOPTIC_THINGS, make_panoptic_scene,
                          make_panoptic_scenes, make_scene, panoptic_decode, split_seed)

THINGS, STUFFS = (1, 2), (0, 4)
# Letters of the hand-made maps: "." and "g" are stuff (classes 0 and 4), "a", "b" discs (class 1, instances
# 1 and 2), "s" a square (class 2), "x" void.
LEGEND = {".": 0, "g": 4000, "a": 1001, "b": 1002, "s": 2001, "x": VOID}


def grid(text: str) -> np.ndarray:
    """A panoptic map drawn in letters, one row per line."""
    return np.array([[LEGEND[c] for c in row.split()] for row in text.strip().splitlines()], np.int64)


def test_docstring_examples():
    assert doctest.testmod(utils.panoptic).failed == 0


# --------------------------------------------------------------------------------------------------
# Hand-made cases, worked out on paper
# --------------------------------------------------------------------------------------------------

CASES = [
    # id, true, pred, per-class PQ {class: pq} of the classes that occur, PQ over all of them
    ("perfect",
     "a a . .\na a . .\n. . s s\n. . s s", "a a . .\na a . .\n. . s s\n. . s s", {0: 1.0, 1: 1.0, 2: 1.0}, 1.0),
    # disc: 3 of its 4 pixels predicted -> IoU 3/4; stuff: 13 predicted pixels cover its 12 -> IoU 12/13
    ("three quarters",
     "a a . .\na a . .\n. . . .\n. . . .", "a a . .\na . . .\n. . . .\n. . . .", {0: 12 / 13, 1: 3 / 4},
     (12 / 13 + 3 / 4) / 2),
    # disc: 2 of 4 pixels -> IoU exactly 1/2, not > 1/2: one FP and one FN, RQ = 0 / (0 + 1/2 + 1/2) = 0;
    # stuff: 14 predicted pixels cover its 12 -> 6/7
    ("IoU one half is no match",
     "a a . .\na a . .\n. . . .\n. . . .", "a a . .\n. . . .\n. . . .\n. . . .", {0: 6 / 7, 1: 0.0}, 3 / 7),
    # one true disc of 8 pixels predicted as two discs of 4 (IoU 1/2 each): 2 FP, 1 FN, PQ 0
    ("split in two",
     "a a a a\na a a a\n. . . .\n. . . .", "a a b b\na a b b\n. . . .\n. . . .", {0: 1.0, 1: 0.0}, 1 / 2),
    # the right pixels, the wrong class: disc FN, square FP; stuff perfect
    ("wrong class",
     "a a . .\na a . .\n. . . .\n. . . .", "s s . .\ns s . .\n. . . .\n. . . .", {0: 1.0, 1: 0.0, 2: 0.0}, 1 / 3),
    # the disc's instance number does not matter, only its pixels (pred id 1002 matches true id 1001)
    ("instance numbers are names",
     "a a . .\na a . .\n. . . .\n. . . .", "b b . .\nb b . .\n. . . .\n. . . .", {0: 1.0, 1: 1.0}, 1.0),
    # disc on 4 pixels, predicted on those and on 2 void pixels: IoU 4 / (6 + 4 - 4 - 2) = 1;
    # stuff (the 10 labelled pixels) perfect
    ("pred pixels on void do not count",
     "a a x .\na a x .\n. . . .\n. . . .", "a a a .\na a a .\n. . . .\n. . . .", {0: 1.0, 1: 1.0}, 1.0),
    # a predicted square lying wholly on void is ignored, not a FP: the square class does not occur
    ("segment on void ignored",
     "a a x x\na a . .\n. . . .\n. . . .", "a a s s\na a . .\n. . . .\n. . . .", {0: 1.0, 1: 1.0}, 1.0),
    # a square half on void (2 of 4 pixels, not more than half): a FP
    ("half on void is a false positive",
     "a a x x\na a . .\n. . . .\n. . . .", "a a s s\na a s s\n. . . .\n. . . .",
     {0: 8 / 10, 1: 1.0, 2: 0.0}, (0.8 + 1 + 0) / 3),
    # void in the prediction: the disc is not found (FN) and costs recall
    ("void prediction is a miss",
     "a a . .\na a . .\n. . . .\n. . . .", "x x . .\nx x . .\n. . . .\n. . . .", {0: 1.0, 1: 0.0}, 1 / 2),
    # two stuff classes; ground's instance numbers are ignored (one segment per class and image)
    ("stuff is one segment",
     "g g g g\ng g g g\n. . . .\n. . . .", "g g g g\ng g g g\n. . . .\n. . . .", {0: 1.0, 4: 1.0}, 1.0),
]


@pytest.mark.parametrize("name, true, pred, per_class, pq_all", CASES, ids=[c[0] for c in CASES])
def test_hand_made_cases(name, true, pred, per_class, pq_all):
    r = panoptic_quality(grid(true), grid(pred), THINGS, STUFFS)
    counted = {c: v["pq"] for c, v in r["per_class"].items() if v["tp"] + v["fp"] + v["fn"] > 0}
    assert counted.keys() == per_class.keys()
    for c, pq in per_class.items():
        assert counted[c] == pytest.approx(pq, abs=1e-12), f"class {c}"
    assert r["all"]["pq"] == pytest.approx(pq_all, abs=1e-12)


def test_stuff_instance_numbers_are_ignored():
    true = grid("g g g g\ng g g g\n. . . .\n. . . .")
    pred = true.copy()
    pred[0] = 4007  # ground pixels with another instance number: still the one ground segment
    assert panoptic_quality(true, pred, THINGS, STUFFS)["per_class"][4]["pq"] == 1.0


def test_counts_summed_over_images_not_scores_averaged():
    # image 1: the disc found exactly (PQ 1); image 2: the disc missed (PQ 0). Summed: TP 1, FN 1,
    # SQ 1, RQ 1 / (1 + 1/2) = 2/3 -> PQ 2/3, not the mean of the per-image scores (1/2).
    t = grid("a a . .\na a . .\n. . . .\n. . . .")
    missed = grid(". . . .\n. . . .\n. . . .\n. . . .")
    r = panoptic_quality([t, t], [t, missed], THINGS, STUFFS)
    disc = r["per_class"][1]
    assert (disc["tp"], disc["fp"], disc["fn"]) == (1, 0, 1)
    assert disc["pq"] == pytest.approx(2 / 3)
    assert disc["sq"] == 1.0 and disc["rq"] == pytest.approx(2 / 3)
    # stuff: IoU 1 and IoU 12/16 summed, 2 TP -> SQ = PQ = (1 + 3/4) / 2
    assert r["per_class"][0]["pq"] == pytest.approx(0.875)
    assert r["things"]["pq"] == pytest.approx(2 / 3) and r["stuff"]["pq"] == pytest.approx(0.875)
    assert r["things"]["n_classes"] == 1 and r["all"]["n_classes"] == 2


def test_match_segments_says_what_became_of_each_segment():
    true = grid("a a x x\na a . .\nb b . .\nb b . .")
    pred = grid("a a s s\na a . .\n. . . .\n. . . .")
    m = match_segments(true, pred, THINGS, STUFFS)
    assert m["matches"] == [(0, 0, 0.6), (1001, 1001, 1.0)]  # stuff: 6 true pixels in 10 predicted
    assert m["false_negatives"] == [1002]  # disc b: its pixels predicted as stuff
    assert m["false_positives"] == [] and m["ignored"] == [2001]  # the square lies on void
    assert m["true_areas"] == {0: 6, 1001: 4, 1002: 4} and m["pred_areas"] == {0: 10, 1001: 4, 2001: 2}


def test_match_is_unique_above_one_half():
    # every true segment is in at most one match, every predicted one too (random maps)
    rng = np.random.default_rng(0)
    for _ in range(50):
        t, p = random_pair(rng)
        m = match_segments(t, p, RANDOM_THINGS, RANDOM_STUFFS)
        trues, preds = [x[0] for x in m["matches"]], [x[1] for x in m["matches"]]
        assert len(set(trues)) == len(trues) and len(set(preds)) == len(preds)
        assert all(0.5 < iou <= 1 for *_, iou in m["matches"])


def test_stats_add_up():
    t = grid("a a . .\na a . .\n. . . .\n. . . .")
    one = pq_stats(t, t, THINGS, STUFFS)
    total = sum([one, one, one])
    assert total.tp.tolist() == [3, 3, 0, 0] and total.classes == (0, 1, 2, 4)
    assert pq_from_stats(total)["all"]["pq"] == 1.0


def test_no_class_occurs_gives_nan_averages():
    r = pq_from_stats(PQStats.zeros(THINGS, STUFFS))
    assert np.isnan(r["all"]["pq"]) and r["all"]["n_classes"] == 0
    assert r["per_class"][1] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0}


# --------------------------------------------------------------------------------------------------
# The same numbers as torchmetrics.detection.PanopticQuality
# --------------------------------------------------------------------------------------------------

RANDOM_THINGS, RANDOM_STUFFS = (1, 2, 3, 7), (0, 4, 5)  # class 7 never occurs in the truth (only in pred)


def random_pair(rng, h=20, w=24, true_void=True, pred_void=False):
    """A true panoptic map of stuff regions and overlapping blobs, and a prediction made by moving,
    relabelling, dropping and adding blobs. Class 3 only ever occurs in the truth, class 7 only in the
    prediction."""
    yy, xx = np.mgrid[:h, :w]

    def blob():
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.5, 6)
        if rng.random() < 0.5:
            return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= rng.uniform(1, 6))

    a, b = rng.normal(size=2)
    s1, s2 = rng.choice(RANDOM_STUFFS, 2)
    true = np.where(a * (yy - h / 2) + b * (xx - w / 2) > rng.normal(0, 3), s1, s2) * 1000
    blobs = []
    for _ in range(rng.integers(0, 7)):
        m, c, k = blob(), int(rng.choice((1, 2, 3))), int(rng.integers(1, 5))  # ids may repeat: one segment
        true[m] = c * 1000 + k
        blobs.append((m, c, k))
    pred = np.where(np.isin(true // 1000, RANDOM_THINGS), rng.choice(RANDOM_STUFFS) * 1000, true)  # things redrawn
    if rng.random() < 0.3:
        pred = np.where(np.isin(pred // 1000, RANDOM_STUFFS), rng.choice(RANDOM_STUFFS) * 1000, pred)  # wrong stuff
    if rng.random() < 0.3:
        pred[np.isin(pred // 1000, RANDOM_STUFFS) & (rng.random((h, w)) < 0.5)] += 7  # stuff instance numbers
    for m, c, k in blobs:
        if rng.random() < 0.15:
            continue  # missed
        if rng.random() < 0.6:
            m = np.roll(m, (rng.integers(-2, 3), rng.integers(-2, 3)), (0, 1))  # moved
        if c == 3 or rng.random() < 0.15:
            c = int(rng.choice((1, 2, 7)))  # wrong class
        pred[m & (rng.random((h, w)) > 0.1)] = c * 1000 + k + int(rng.integers(0, 2)) * 10  # ragged
    for _ in range(rng.integers(0, 3)):
        pred[blob()] = int(rng.choice((1, 2, 7))) * 1000 + int(rng.integers(50, 60))  # extra
    if true_void and rng.random() < 0.6:
        true[blob()] = VOID
    if pred_void and rng.random() < 0.8:
        pred[blob()] = VOID
    return true, pred


def torchmetrics_panoptic(trues, preds, things, stuffs, **kwargs):
    """torchmetrics' PanopticQuality fed the course's maps; returns the metric (states and compute())."""
    torch = pytest.importorskip("torch")
    from torchmetrics.detection import PanopticQuality

    metric = PanopticQuality(things=set(things), stuffs=set(stuffs), return_per_class=True,
                             return_sq_and_rq=True, **kwargs)
    for t, p in zip(trues, preds):
        metric.update(torch.from_numpy(to_category_instance(p)[None]), torch.from_numpy(to_category_instance(t)[None]))
    return metric


def tm_order(things, stuffs):
    """torchmetrics stores things (sorted) first, then stuffs (sorted)."""
    return sorted(things) + sorted(stuffs)


# torchmetrics divides integer pixel counts into a float32 IoU (then sums in float64): equal to within
# float32 precision, about 1e-7 per matched pair.
TOL = 1e-6


def assert_same_as_torchmetrics(r, stats, metric, classes, things, stuffs):
    order = tm_order(things, stuffs)
    per_class = metric.compute().numpy()  # (C, 3): PQ, SQ, RQ in tm_order
    for i, c in enumerate(order):
        if c not in classes:
            continue
        j = stats.classes.index(c)
        assert stats.tp[j] == int(metric.true_positives[i]), f"TP of class {c}"
        assert stats.fp[j] == int(metric.false_positives[i]), f"FP of class {c}"
        assert stats.fn[j] == int(metric.false_negatives[i]), f"FN of class {c}"
        assert stats.iou_sum[j] == pytest.approx(float(metric.iou_sum[i]), rel=TOL)
        got = [r["per_class"][c][k] for k in ("pq", "sq", "rq")]
        np.testing.assert_allclose(got, per_class[i], atol=TOL, err_msg=f"class {c}")


@pytest.mark.parametrize("seed", range(4))
def test_equals_torchmetrics_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    trues, preds = zip(*[random_pair(rng) for _ in range(60)])
    r = panoptic_quality(list(trues), list(preds), RANDOM_THINGS, RANDOM_STUFFS)
    stats = sum(pq_stats(t, p, RANDOM_THINGS, RANDOM_STUFFS) for t, p in zip(trues, preds))
    metric = torchmetrics_panoptic(trues, preds, RANDOM_THINGS, RANDOM_STUFFS)
    assert_same_as_torchmetrics(r, stats, metric, stats.classes, RANDOM_THINGS, RANDOM_STUFFS)
    # the average over the classes that occur, as torchmetrics' own (return_per_class=False)
    import torch
    from torchmetrics.detection import PanopticQuality

    avg = PanopticQuality(things=set(RANDOM_THINGS), stuffs=set(RANDOM_STUFFS), return_sq_and_rq=True)
    for t, p in zip(trues, preds):
        avg.update(torch.from_numpy(to_category_instance(p)[None]), torch.from_numpy(to_category_instance(t)[None]))
    np.testing.assert_allclose([r["all"][k] for k in ("pq", "sq", "rq")], avg.compute().numpy(), atol=TOL)
    # the cases exercise what they should: void, FP, FN, a class only in the prediction
    assert stats.fp.sum() > 0 and stats.fn.sum() > 0 and stats.tp.sum() > 0
    assert stats.fp[stats.classes.index(7)] > 0 and stats.tp[stats.classes.index(3)] == 0
    assert any((t == VOID).any() for t in trues)


def test_thing_and_stuff_averages_from_torchmetrics_per_class_values():
    rng = np.random.default_rng(10)
    trues, preds = zip(*[random_pair(rng) for _ in range(40)])
    r = panoptic_quality(list(trues), list(preds), RANDOM_THINGS, RANDOM_STUFFS)
    metric = torchmetrics_panoptic(trues, preds, RANDOM_THINGS, RANDOM_STUFFS)
    per_class = metric.compute().numpy()
    occurs = (metric.true_positives + metric.false_positives + metric.false_negatives).numpy() > 0
    order = np.array(tm_order(RANDOM_THINGS, RANDOM_STUFFS))
    for group, classes in (("things", RANDOM_THINGS), ("stuff", RANDOM_STUFFS)):
        rows = np.isin(order, classes) & occurs
        np.testing.assert_allclose([r[group][k] for k in ("pq", "sq", "rq")], per_class[rows].mean(0), atol=TOL)
        assert r[group]["n_classes"] == rows.sum()


def test_void_in_prediction_equals_torchmetrics_with_void_as_an_extra_class():
    # A predicted void pixel belongs to no segment. torchmetrics has no such pixel, but a class of its
    # own that never occurs in the truth is the same for every other class: its one segment can match
    # nothing, and it neither shrinks a true segment nor hides one. Only that class's own FP differ.
    rng = np.random.default_rng(20)
    trues, preds = zip(*[random_pair(rng, pred_void=True) for _ in range(60)])
    assert sum((p == VOID).sum() for p in preds) > 0
    extra = 9
    tm_preds = [np.where(p == VOID, extra * 1000, p) for p in preds]
    r = panoptic_quality(list(trues), list(preds), RANDOM_THINGS, RANDOM_STUFFS)
    stats = sum(pq_stats(t, p, RANDOM_THINGS, RANDOM_STUFFS) for t, p in zip(trues, preds))
    metric = torchmetrics_panoptic(trues, tm_preds, RANDOM_THINGS, RANDOM_STUFFS + (extra,))
    assert_same_as_torchmetrics(r, stats, metric, stats.classes, RANDOM_THINGS, RANDOM_STUFFS + (extra,))


def test_torchmetrics_unknown_prediction_is_forgiven_here_it_is_a_miss():
    # The documented difference: torchmetrics' allow_unknown_preds_category makes an all-void
    # prediction cost nothing (no class occurs); here every true segment is a false negative.
    true = grid("a a . .\na a . .\n. . . .\n. . . .")
    pred = np.full_like(true, VOID)
    r = panoptic_quality(true, pred, THINGS, STUFFS)
    assert r["all"]["pq"] == 0.0 and r["per_class"][1]["fn"] == 1 and r["per_class"][0]["fn"] == 1
    metric = torchmetrics_panoptic([true], [pred], THINGS, STUFFS, allow_unknown_preds_category=True)
    assert int(metric.false_negatives.sum()) == 0


def test_generated_scenes_score_one_against_themselves_and_less_when_shifted():
    scenes = make_panoptic_scenes(4, 64, "val")
    trues = [s.panoptic for s in scenes]
    perfect = panoptic_quality(trues, trues, PANOPTIC_THINGS, PANOPTIC_STUFF)
    assert perfect["all"]["pq"] == 1.0
    shifted = [np.roll(t, 3, axis=1) for t in trues]
    r = panoptic_quality(trues, shifted, PANOPTIC_THINGS, PANOPTIC_STUFF)
    metric = torchmetrics_panoptic(trues, shifted, PANOPTIC_THINGS, PANOPTIC_STUFF)
    stats = sum(pq_stats(t, p, PANOPTIC_THINGS, PANOPTIC_STUFF) for t, p in zip(trues, shifted))
    assert_same_as_torchmetrics(r, stats, metric, stats.classes, PANOPTIC_THINGS, PANOPTIC_STUFF)
    assert 0 < r["all"]["pq"] < 1


def test_category_instance_round_trip():
    pan = np.array([[0, 1003, 2001], [VOID, 4000, 5000]])
    ci = to_category_instance(pan)
    assert ci.shape == (2, 3, 2) and ci.dtype == np.int64
    assert ci[1, 0].tolist() == [-1, 0] and ci[0, 1].tolist() == [1, 3]
    assert np.array_equal(from_category_instance(ci), pan)
    batch = np.stack([pan, pan])
    assert to_category_instance(batch).shape == (2, 2, 3, 2)


# --------------------------------------------------------------------------------------------------
# Bad input: one pytest.raises per error path
# --------------------------------------------------------------------------------------------------

OK = np.zeros((4, 4), np.int64)


@pytest.mark.parametrize("kwargs, message", [
    (dict(things=(1, 2), stuffs=(0, 2)), "both a thing and stuff"),
    (dict(things=(), stuffs=()), "both empty"),
    (dict(things=(1.5,), stuffs=(0,)), "`things`"),
    (dict(things=1, stuffs=(0,)), "`things`"),
    (dict(things=(1,), stuffs=(-1,)), "`stuffs`"),
    (dict(true_panoptic=np.zeros((2, 4, 4), np.int64)), "`true_panoptic`.*2-D"),
    (dict(pred_panoptic=np.zeros((4, 4), np.float32)), "`pred_panoptic`.*integers"),
    (dict(true_panoptic=np.full((4, 4), -2)), "`true_panoptic` holds \\[-2\\]"),
    (dict(pred_panoptic=np.full((4, 4), 3001)), "`pred_panoptic` holds classes \\[3\\]"),
    (dict(pred_panoptic=np.zeros((4, 5), np.int64)), "same shape"),
    (dict(divisor=1), "`divisor`"),
])
def test_bad_arguments_of_matching(kwargs, message):
    args = dict(true_panoptic=OK, pred_panoptic=OK, things=THINGS, stuffs=STUFFS) | kwargs
    with pytest.raises(ValueError, match=message):
        pq_stats(**args)


def test_bad_lists_of_maps():
    with pytest.raises(ValueError, match="as many maps"):
        panoptic_quality([OK, OK], [OK], THINGS, STUFFS)
    with pytest.raises(ValueError, match="`trues`"):
        panoptic_quality([], [], THINGS, STUFFS)
    with pytest.raises(ValueError, match="`preds`"):
        panoptic_quality(OK, np.zeros((1, 1, 4, 4), np.int64), THINGS, STUFFS)


def test_bad_stats():
    with pytest.raises(ValueError, match="different classes"):
        PQStats.zeros(THINGS, STUFFS) + PQStats.zeros((1,), STUFFS)
    with pytest.raises(ValueError, match="`stats`"):
        pq_from_stats({"tp": 1})


def test_bad_conversions():
    with pytest.raises(ValueError, match="`panoptic`.*integers"):
        to_category_instance(np.zeros((2, 2), np.float64))
    with pytest.raises(ValueError, match="`panoptic` holds"):
        to_category_instance(np.full((2, 2), -5))
    with pytest.raises(ValueError, match="shape \\(\\.\\.\\., 2\\)"):
        from_category_instance(np.zeros((2, 2, 3), np.int64))
    with pytest.raises(ValueError, match="instances in \\[0, 1000\\)"):
        from_category_instance(np.array([[1, 1000]]))


# --------------------------------------------------------------------------------------------------
# Route 1: Panoptic FPN's merge of a semantic map and instances
# --------------------------------------------------------------------------------------------------

def masks(*texts):
    """Boolean masks drawn with "#" (in) and "." (out)."""
    return np.array([[[c == "#" for c in row.split()] for row in t.strip().splitlines()] for t in texts], bool)


SEM = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [4, 4, 4, 4], [4, 4, 1, 1]])  # class 1 = a thing the semantic head saw

MERGE_CASES = [
    # id, masks, labels, scores, keyword arguments, expected panoptic map
    ("higher score takes the overlap; the other keeps its free pixels (taken 2/4 is not > 1/2)",
     masks("# # . .\n# # . .\n. . . .\n. . . .", ". # # .\n. # # .\n. . . .\n. . . ."), [1, 2], [0.9, 0.8], {},
     [[1001, 1001, 2002, 0], [1001, 1001, 2002, 0], [4000] * 4, [4000, 4000, -1, -1]]),
    ("order is by score, not by position in the list",
     masks("# # . .\n# # . .\n. . . .\n. . . .", ". # # .\n. # # .\n. . . .\n. . . ."), [1, 2], [0.6, 0.8], {},
     [[1002, 2001, 2001, 0], [1002, 2001, 2001, 0], [4000] * 4, [4000, 4000, -1, -1]]),
    ("more than the overlap threshold already taken: dropped",
     masks("# # # .\n# # # .\n. . . .\n. . . .", ". # # .\n. # # .\n. . . .\n. . . ."), [1, 2], [0.9, 0.8], {},
     [[1001, 1001, 1001, 0], [1001, 1001, 1001, 0], [4000] * 4, [4000, 4000, -1, -1]]),
    ("a stricter overlap threshold drops what the default keeps",
     masks("# # . .\n# # . .\n. . . .\n. . . .", ". # # .\n. # # .\n. . . .\n. . . ."), [1, 2], [0.9, 0.8],
     {"overlap_threshold": 0.4},
     [[1001, 1001, 0, 0], [1001, 1001, 0, 0], [4000] * 4, [4000, 4000, -1, -1]]),
    ("below the score threshold: not used",
     masks("# # . .\n# # . .\n. . . .\n. . . .", ". . . .\n. . . .\n. . . .\n. . # #"), [1, 1], [0.9, 0.3], {},
     [[1001, 1001, 0, 0], [1001, 1001, 0, 0], [4000] * 4, [4000, 4000, -1, -1]]),
    ("an instance where the semantic map says thing fills it; an empty mask takes no number",
     masks(". . . .\n. . . .\n. . . .\n. . . .", ". . . .\n. . . .\n. . . .\n. . # #"), [2, 1], [0.95, 0.7], {},
     [[0] * 4, [0] * 4, [4000] * 4, [4000, 4000, 1001, 1001]]),
    ("stuff with fewer free pixels than the limit stays void",
     masks("# # # #\n# # # #\n. . . .\n. . . .", ". . . .\n. . . .\n# # . .\n# # . ."), [1, 2], [0.9, 0.8],
     {"stuff_area_limit": 3},
     [[1001] * 4, [1001] * 4, [2002, 2002, -1, -1], [2002, 2002, -1, -1]]),
    ("the limit is inclusive: exactly that many pixels is enough",
     masks("# # # #\n# # # #\n. . . .\n. . . .", ". . . .\n. . . .\n# # . .\n# # . ."), [1, 2], [0.9, 0.8],
     {"stuff_area_limit": 2},
     [[1001] * 4, [1001] * 4, [2002, 2002, 4000, 4000], [2002, 2002, -1, -1]]),
    ("no instances: stuff and void only",
     np.zeros((0, 4, 4), bool), np.zeros(0, np.int64), np.zeros(0), {},
     [[0] * 4, [0] * 4, [4000] * 4, [4000, 4000, -1, -1]]),
    ("equal scores: the earlier instance first",
     masks(". # # .\n. # # .\n. . . .\n. . . .", "# # . .\n# # . .\n. . . .\n. . . ."), [2, 1], [0.7, 0.7], {},
     [[1002, 2001, 2001, 0], [1002, 2001, 2001, 0], [4000] * 4, [4000, 4000, -1, -1]]),
]


@pytest.mark.parametrize("m, labels, scores, kwargs, expected", [c[1:] for c in MERGE_CASES],
                         ids=[c[0] for c in MERGE_CASES])
def test_merge_hand_made(m, labels, scores, kwargs, expected):
    out = merge_semantic_and_instances(SEM, m, labels, scores, THINGS, STUFFS, **({"stuff_area_limit": 1} | kwargs))
    assert out.dtype == np.int32 and out.shape == SEM.shape
    assert out.tolist() == expected


def test_merge_of_true_parts_gives_the_truth():
    # the semantic map and instance masks of a scene, merged, are the scene's panoptic map
    for s in make_panoptic_scenes(5, 64):
        out = merge_semantic_and_instances(s.semantic, s.instance_masks, s.labels, np.ones(s.num_instances),
                                           PANOPTIC_THINGS, PANOPTIC_STUFF, stuff_area_limit=0)
        assert np.array_equal(out, s.panoptic)


@pytest.mark.parametrize("kwargs, message", [
    (dict(semantic=np.zeros((1, 4, 4), np.int64)), "`semantic`"),
    (dict(semantic=np.full((4, 4), 3)), "`semantic` holds classes \\[3\\]"),
    (dict(instance_masks=np.zeros((1, 4, 4), np.uint8)), "`instance_masks`"),
    (dict(instance_masks=np.zeros((1, 4, 5), bool)), "`instance_masks`"),
    (dict(instance_labels=[1, 1]), "`instance_labels` must be"),
    (dict(instance_labels=[4]), "`instance_labels` holds \\[4\\]"),
    (dict(instance_scores=[0.5, 0.5]), "`instance_scores`"),
    (dict(overlap_threshold=1.5), "`overlap_threshold`"),
    (dict(score_threshold="high"), "`score_threshold`"),
    (dict(stuff_area_limit=-1), "`stuff_area_limit`"),
    (dict(things=(1, 4)), "both a thing and stuff"),
    (dict(divisor=0), "`divisor`"),
])
def test_bad_arguments_of_merge(kwargs, message):
    args = dict(semantic=OK, instance_masks=np.ones((1, 4, 4), bool), instance_labels=[1], instance_scores=[0.9],
                things=THINGS, stuffs=STUFFS) | kwargs
    with pytest.raises(ValueError, match=message):
        merge_semantic_and_instances(**args)


# --------------------------------------------------------------------------------------------------
# Panoptic scenes: several stuff classes
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pscenes():
    return [make_panoptic_scene(s, 96) for s in range(30)] + [make_panoptic_scene(s, (64, 112)) for s in range(5)]


def test_panoptic_scene_contracts(pscenes):
    assert PANOPTIC_CLASS_NAMES[0] == "sky" and PANOPTIC_THINGS == (1, 2, 3) and PANOPTIC_STUFF == (0, 4, 5)
    for s in pscenes:
        h, w = s.semantic.shape
        assert s.image.shape == (h, w, 3) and s.image.dtype == np.uint8
        assert s.semantic.dtype == np.uint8 and s.semantic.max() < len(PANOPTIC_CLASS_NAMES)
        assert s.instance_masks.shape == (s.num_instances, h, w) and s.instance_masks.dtype == bool
        assert s.boxes_xyxy.shape == (s.num_instances, 4) and s.boxes_xyxy.dtype == np.float32
        assert s.labels.dtype == np.int64 and set(s.labels.tolist()) <= set(PANOPTIC_THINGS)
        assert s.panoptic.shape == (h, w) and s.panoptic.dtype == np.int32


def test_panoptic_scene_masks_disjoint_and_union_is_things(pscenes):
    for s in pscenes:
        assert s.instance_masks.sum(0).max(initial=0) <= 1
        assert np.array_equal(s.instance_masks.any(0), np.isin(s.semantic, PANOPTIC_THINGS))
        for m, k in zip(s.instance_masks, s.labels):
            assert m.any() and np.all(s.semantic[m] == k)


def test_panoptic_scene_decodes_to_semantic(pscenes):
    for s in pscenes:
        classes, numbers = panoptic_decode(s.panoptic)
        assert np.array_equal(classes, s.semantic)
        assert np.all(numbers[np.isin(s.semantic, PANOPTIC_STUFF)] == 0)
        for j, m in enumerate(s.instance_masks):
            assert np.all(numbers[m] == j + 1)


def test_panoptic_scene_stuff_present(pscenes):
    seen = set()
    for s in pscenes:
        present = set(np.unique(s.semantic).tolist())
        assert 0 in present and present & {4, 5}, "sky above, ground or water below"
        seen |= present
    assert seen == set(range(len(PANOPTIC_CLASS_NAMES)))
    assert sum(s.num_instances for s in pscenes) >= 2 * len(pscenes)


def test_stuff_colours_overlap_but_textures_differ(pscenes):
    colours = {k: [] for k in PANOPTIC_STUFF}
    rough = {k: [] for k in PANOPTIC_STUFF}  # mean |difference| to the next pixel across rows / along rows
    for s in pscenes:
        img = s.image.astype(np.float32).mean(2)
        inner = s.semantic.copy()
        for k in PANOPTIC_STUFF:
            region = (inner[1:-1, 1:-1] == k) & (inner[2:, 1:-1] == k) & (inner[1:-1, 2:] == k)
            if region.sum() < 200:
                continue
            colours[k].append(s.image[1:-1, 1:-1][region].mean(0))
            dy = np.abs(img[2:, 1:-1] - img[1:-1, 1:-1])[region].mean()
            dx = np.abs(img[1:-1, 2:] - img[1:-1, 1:-1])[region].mean()
            rough[k].append((dy, dx))
    lo = {k: np.min(colours[k], 0) for k in colours}
    hi = {k: np.max(colours[k], 0) for k in colours}
    for a in PANOPTIC_STUFF:
        for b in PANOPTIC_STUFF:
            assert np.all(lo[a] < hi[b]), f"colour ranges of {a} and {b} do not overlap"
    sky, ground, water = (np.median(rough[k], 0) for k in PANOPTIC_STUFF)
    assert sky.max() < 0.5 * ground.min() and sky.max() < 0.5 * water[0]  # sky smooth
    assert water[0] > 1.5 * water[1]  # water: ripples across rows
    assert ground[1] > 1.5 * water[1]  # ground: grain in every direction


def test_panoptic_scene_deterministic_and_split():
    a, b = make_panoptic_scene(5, 64), make_panoptic_scene(5, 64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.panoptic, b.panoptic)
    assert not np.array_equal(a.image, make_panoptic_scene(6, 64).image)
    assert not np.array_equal(a.image, make_scene(5, 64).image)
    scenes = make_panoptic_scenes(2, 64, "test")
    assert scenes[1].seed == split_seed("test", 1)
    assert np.array_equal(scenes[1].image, make_panoptic_scene(split_seed("test", 1), 64).image)
    stuff_only = make_panoptic_scene(0, 64, min_objects=0, max_objects=0)
    assert stuff_only.num_instances == 0 and np.all(stuff_only.panoptic % PANOPTIC_DIVISOR == 0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=-1), "`seed`"),
    (dict(seed=1.5), "`seed`"),
    (dict(seed=0, size=16), "`size`"),
    (dict(seed=0, size=(64,)), "`size`"),
    (dict(seed=0, min_objects=-1), "`min_objects`"),
    (dict(seed=0, max_objects=2.0), "`max_objects`"),
    (dict(seed=0, min_objects=4, max_objects=2), "`min_objects` <= `max_objects`"),
])
def test_panoptic_scene_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_panoptic_scene(**kwargs)


def test_panoptic_scenes_bad_n_and_split():
    with pytest.raises(ValueError, match="`n`"):
        make_panoptic_scenes(0)
    with pytest.raises(ValueError, match="`split`"):
        make_panoptic_scenes(1, 64, "holdout")
