"""Tests of utils.metrics: hand-computed cases, scikit-learn cross-checks, and every error path."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score

from utils.metrics import (
    ConfusionMatrix,
    boundary_f_score,
    confusion_matrix,
    dice_from_confusion,
    inner_boundary,
    iou_from_confusion,
    pixel_accuracy_from_confusion,
)

# A 2x3 example worked out on paper:
#   truth  0 0 1      prediction  0 1 1
#          2 2 1                  2 1 1
# class 0: TP 1, FN 1 (a 0 predicted as 1), FP 0            -> IoU 1/2, Dice 2/3
# class 1: TP 2, FP 2 (a 0 and a 2 predicted as 1), FN 0    -> IoU 2/4, Dice 4/6
# class 2: TP 1, FN 1, FP 0                                 -> IoU 1/2, Dice 2/3
TRUTH = torch.tensor([[[0, 0, 1], [2, 2, 1]]])
PRED = torch.tensor([[[0, 1, 1], [2, 1, 1]]])
CM = [[1, 1, 0], [0, 2, 0], [0, 1, 1]]


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(PRED, TRUTH, 3)
    assert cm.dtype == torch.int64
    assert cm.tolist() == CM


@pytest.mark.parametrize(
    "fn, expected",
    [(iou_from_confusion, [0.5, 0.5, 0.5]), (dice_from_confusion, [2 / 3, 2 / 3, 2 / 3])],
)
def test_scores_by_hand(fn, expected):
    assert fn(torch.tensor(CM)).tolist() == pytest.approx(expected)


def test_pixel_accuracy_by_hand():
    assert pixel_accuracy_from_confusion(torch.tensor(CM)) == pytest.approx(4 / 6)


def test_logits_give_the_same_matrix_as_labels():
    logits = torch.nn.functional.one_hot(PRED, 3).permute(0, 3, 1, 2).float() * 5 - 1
    assert confusion_matrix(logits, TRUTH, 3).tolist() == CM


def test_ignore_index_is_not_counted():
    truth = TRUTH.clone()
    truth[0, 0, 1] = 255  # the pixel where a 0 was predicted as 1
    cm = confusion_matrix(PRED, truth, 3)
    assert cm.sum() == 5
    assert cm[0].tolist() == [1, 0, 0]
    assert confusion_matrix(PRED, truth.masked_fill(truth == 255, 100), 3, ignore_index=100).tolist() == cm.tolist()


def test_ignore_index_none_counts_everything():
    assert confusion_matrix(PRED, TRUTH, 3, ignore_index=None).sum() == 6


def test_absent_class_is_nan_and_left_out_of_means():
    cm = ConfusionMatrix(4)  # class 3 appears nowhere
    cm.update(PRED, TRUTH)
    out = cm.compute()
    assert math.isnan(out["iou"][3]) and math.isnan(out["dice"][3])
    assert out["miou"] == pytest.approx(0.5)
    assert out["mdice"] == pytest.approx(2 / 3)
    assert out["pixel_accuracy"] == pytest.approx(4 / 6)


def test_class_in_only_one_map_scores_zero():
    cm = confusion_matrix(torch.tensor([[1, 1]]), torch.tensor([[0, 1]]), 2)
    assert iou_from_confusion(cm).tolist() == [0.0, 0.5]


def test_accumulates_over_batches_like_one_big_batch():
    g = torch.Generator().manual_seed(0)
    pred, truth = torch.randint(0, 5, (6, 16, 16), generator=g), torch.randint(0, 5, (6, 16, 16), generator=g)
    cm = ConfusionMatrix(5)
    for i in range(0, 6, 2):
        cm.update(pred[i:i + 2], truth[i:i + 2])
    assert torch.equal(cm.matrix, confusion_matrix(pred, truth, 5))
    cm.reset()
    assert cm.matrix.sum() == 0


@pytest.mark.parametrize("seed, num_classes", [(0, 2), (1, 5), (2, 21)])
def test_matches_scikit_learn(seed, num_classes):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, size=(3, 20, 24))
    pred = np.where(rng.random(truth.shape) < 0.6, truth, rng.integers(0, num_classes, size=truth.shape))
    truth[0, :3] = 255  # some ignored pixels
    out = ConfusionMatrix(num_classes)
    out.update(torch.from_numpy(pred), torch.from_numpy(truth))
    res = out.compute()
    keep = truth.ravel() != 255
    t, p = truth.ravel()[keep], pred.ravel()[keep]
    labels = list(range(num_classes))
    np.testing.assert_allclose(res["iou"].numpy(), jaccard_score(t, p, labels=labels, average=None), atol=1e-12)
    np.testing.assert_allclose(res["dice"].numpy(), f1_score(t, p, labels=labels, average=None), atol=1e-12)
    assert res["pixel_accuracy"] == pytest.approx(np.mean(t == p))
    assert res["miou"] == pytest.approx(jaccard_score(t, p, labels=labels, average="macro"))


def test_dice_iou_identity_per_class():
    rng = np.random.default_rng(3)
    truth = torch.from_numpy(rng.integers(0, 6, size=(2, 32, 32)))
    pred = torch.from_numpy(rng.integers(0, 6, size=(2, 32, 32)))
    cm = confusion_matrix(pred, truth, 6)
    iou, dice = iou_from_confusion(cm), dice_from_confusion(cm)
    torch.testing.assert_close(dice, 2 * iou / (1 + iou))


def test_numpy_input_and_uint8_target():
    cm = confusion_matrix(PRED.numpy(), TRUTH.numpy().astype(np.uint8), 3)
    assert cm.tolist() == CM


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_the_gpu():
    cm = confusion_matrix(PRED.cuda(), TRUTH.cuda(), 3)
    assert cm.device.type == "cuda" and cm.cpu().tolist() == CM


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

def test_error_shape_mismatch():
    with pytest.raises(ValueError, match=r"`pred` \(shape \(1, 2, 2\)\) and `target`"):
        confusion_matrix(torch.zeros(1, 2, 2, dtype=torch.long), TRUTH, 3)


def test_error_target_out_of_range():
    with pytest.raises(ValueError, match=r"`target` holds class ids \[7\], outside \[0, 3\) and not the ignore_index 255"):
        confusion_matrix(PRED, torch.tensor([[[0, 0, 1], [2, 2, 7]]]), 3)


@pytest.mark.parametrize("bad", [-1, 100, 300])
def test_error_target_out_of_range_around_the_ignore_index(bad):
    target = torch.tensor([[[0, 255, 1], [2, 2, bad]]])
    with pytest.raises(ValueError, match=rf"`target` holds class ids \[{bad}\]"):
        confusion_matrix(PRED, target, 3)


@pytest.mark.parametrize("ignore_index", [-100, 0])
def test_ignore_index_below_num_classes(ignore_index):
    # PyTorch's cross-entropy ignores -100 by default; an ignore_index can also be a class id (here 0).
    truth = TRUTH.clone()
    truth[0, 0, 1] = ignore_index
    cm = confusion_matrix(PRED, truth, 3, ignore_index=ignore_index)
    keep = truth != ignore_index
    expected = confusion_matrix(PRED[keep][None], truth[keep][None], 3, ignore_index=None)
    assert torch.equal(cm, expected) and cm.sum() == int(keep.sum())


def test_empty_batch_gives_zeros():
    cm = confusion_matrix(torch.zeros(0, 4, 4, dtype=torch.long), torch.zeros(0, 4, 4, dtype=torch.long), 3)
    assert cm.shape == (3, 3) and cm.sum() == 0


def test_error_pred_out_of_range():
    with pytest.raises(ValueError, match=r"`pred` holds class ids in \[-1, 1\]"):
        confusion_matrix(torch.tensor([[[0, 1, 1], [-1, 1, 1]]]), TRUTH, 3)


def test_error_logits_wrong_number_of_classes():
    with pytest.raises(ValueError, match="scores for 4 classes"):
        confusion_matrix(torch.zeros(1, 4, 2, 3), TRUTH, 3)


def test_error_float_target():
    with pytest.raises(ValueError, match="`target` must hold integer class ids"):
        confusion_matrix(PRED, TRUTH.float(), 3)


def test_error_float_pred_shaped_like_target():
    with pytest.raises(ValueError, match="`pred` is floating point"):
        confusion_matrix(PRED.float(), TRUTH, 3)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_error_num_classes(bad):
    with pytest.raises(ValueError, match="`num_classes` must be an int >= 1"):
        confusion_matrix(PRED, TRUTH, bad)


def test_error_not_a_tensor():
    with pytest.raises(ValueError, match="`pred` must be a torch tensor or NumPy array, got list"):
        confusion_matrix([[0, 1]], TRUTH, 3)


def test_error_compute_before_update():
    with pytest.raises(RuntimeError, match=r"call \.update\(pred, target\)"):
        ConfusionMatrix(3).compute()


def test_error_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        iou_from_confusion(torch.zeros(2, 3))


def test_empty_matrix_gives_nan():
    cm = torch.zeros(3, 3, dtype=torch.long)
    assert math.isnan(pixel_accuracy_from_confusion(cm))
    assert torch.isnan(iou_from_confusion(cm)).all()


# --------------------------------------------------------------------------------------------------
# boundary F-score
# --------------------------------------------------------------------------------------------------

def _square(size=20, top=5, left=5, side=8):
    m = torch.zeros(size, size, dtype=torch.long)
    m[top:top + side, left:left + side] = 1
    return m


def test_boundary_f_score_perfect():
    assert boundary_f_score(_square(), _square()) == pytest.approx(1.0)


def test_boundary_f_score_one_pixel_shift_within_and_beyond_tolerance():
    truth, shifted = _square(), _square(left=6)
    assert boundary_f_score(shifted, truth, tolerance=1) == pytest.approx(1.0)
    # With no tolerance only the top and bottom edges overlap (minus their corners): well below 1.
    strict = boundary_f_score(shifted, truth, tolerance=0)
    assert 0.3 < strict < 0.9


def test_boundary_f_score_by_hand_square():
    # A 3x3 square's boundary is its 8 outer pixels; predicting only its centre pixel gives a boundary
    # of 1 pixel that is 1 pixel away from the true boundary.
    truth = _square(size=7, top=2, left=2, side=3)
    pred = torch.zeros(7, 7, dtype=torch.long)
    pred[3, 3] = 1
    per_class = boundary_f_score(pred, truth, tolerance=1, per_class=True)
    # class 1, tolerance 1: P = 1/1; R = 4/8, as the 4 corners are sqrt(2) > 1 from the centre
    # -> F = 2 * 1 * 0.5 / 1.5 = 2/3
    assert per_class[1] == pytest.approx(2 / 3)
    assert boundary_f_score(pred, truth, tolerance=2, per_class=True)[1] == pytest.approx(1.0)
    per_class0 = boundary_f_score(pred, truth, tolerance=0, per_class=True)
    # class 1, no tolerance: P = 0 (the centre is not on the true boundary), R = 0 -> F = 0
    assert per_class0[1] == 0.0


def test_boundary_f_score_absent_class_is_nan():
    scores = boundary_f_score(_square(), _square(), num_classes=3, per_class=True)
    assert math.isnan(scores[2]) and scores[1] == pytest.approx(1.0)


def test_boundary_f_score_error_tolerance():
    with pytest.raises(ValueError, match="`tolerance` must be a non-negative int"):
        boundary_f_score(_square(), _square(), tolerance=-1)


def test_inner_boundary_of_a_square_by_hand():
    # A 4x4 square: its 12 outer pixels are boundary, its 2x2 centre is not; nothing outside it is.
    mask = _square(size=8, top=2, left=2, side=4).bool()[None]
    edge = inner_boundary(mask)[0]
    assert int(edge.sum()) == 12
    assert not edge[3:5, 3:5].any() and not (edge & ~mask[0]).any()


def test_inner_boundary_ignores_the_image_border():
    full = torch.ones(1, 5, 5, dtype=torch.bool)
    assert not inner_boundary(full).any()


def test_inner_boundary_error():
    with pytest.raises(ValueError, match=r"`masks` must be an \(N, H, W\) bool tensor, got shape \(5, 5\)"):
        inner_boundary(torch.ones(5, 5, dtype=torch.bool))


def _banded(size=12, band=(4, 8)):
    """A trimap-like target: class 1 on the left, class 0 on the right, an ignored band of columns between."""
    truth = torch.zeros(1, size, size, dtype=torch.int64)
    truth[..., :band[0]] = 1
    truth[..., band[0]:band[1]] = 255
    return truth


def test_boundary_f_score_perfect_prediction_with_an_ignore_band_scores_one():
    truth = _banded()                       # columns 0-3 class 1, 4-7 ignored, 8-11 class 0
    perfect = truth.clone()
    perfect[..., 4:6] = 1                   # the band filled from its nearest labelled side: edge in the middle
    perfect[..., 6:8] = 0
    assert boundary_f_score(perfect, truth, tolerance=0) == pytest.approx(1.0)
    # any prediction that agrees on the labelled pixels puts its edge somewhere in the 4-px band: within 2 px
    for edge in range(4, 9):
        pred = torch.zeros_like(truth)
        pred[..., :edge] = 1
        assert boundary_f_score(pred, truth, tolerance=2) == pytest.approx(1.0), edge
    wrong = torch.zeros_like(truth)         # everything background: class 1's boundary is missed
    wrong[..., :1] = 1
    assert boundary_f_score(wrong, truth, tolerance=2) < 0.5


def test_boundary_f_score_band_does_not_favour_worse_predictions():
    truth = _banded()
    good = truth.masked_fill(truth == 255, 0)
    good[..., 4:6] = 1
    bad = torch.zeros_like(truth)
    bad[..., :2] = 1                        # the edge 4 px inside the true object
    assert boundary_f_score(good, truth, tolerance=1) > boundary_f_score(bad, truth, tolerance=1)


def test_recall_precision_from_confusion_by_hand_and_against_sklearn():
    from sklearn.metrics import precision_score, recall_score

    from utils.metrics import recall_precision_from_confusion

    truth = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])
    pred = torch.tensor([0, 1, 0, 1, 2, 2, 2, 0, 0])
    cm = confusion_matrix(pred, truth, num_classes=4, ignore_index=None)
    recall, precision = recall_precision_from_confusion(cm)
    assert recall.tolist() == pytest.approx([2 / 3, 1 / 2, 2 / 3, 0.0])      # class 3 true once, never found
    assert precision.tolist() == pytest.approx([2 / 4, 1 / 2, 2 / 3, 0.0])   # class 3 never predicted: 0
    labels = [0, 1, 2, 3]
    assert recall.tolist() == pytest.approx(recall_score(truth, pred, labels=labels, average=None, zero_division=0))
    assert precision.tolist() == pytest.approx(precision_score(truth, pred, labels=labels, average=None,
                                                               zero_division=0))
    _, nan_precision = recall_precision_from_confusion(cm, zero_division=float("nan"))
    assert math.isnan(float(nan_precision[3]))
