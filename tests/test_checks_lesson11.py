"""The checks of lesson 11's exercises: Panoptic Quality of one image, and PQ by hand; the hand-made cases against
the course's panoptic_quality."""
from collections import Counter

import numpy as np
import pytest
from check_helpers import assert_explained

from utils.checks import ExerciseError
from utils.checks.lesson11 import (
    _PQ_CASES,
    _PQ_MISTAKES,
    STUFFS,
    THINGS,
    _pq_variant,
    _reference_pq,
    check_panoptic_quality,
    check_pq_by_hand,
)
from utils.panoptic import VOID, panoptic_quality

# ----------------------------------------------------------------------------------------------------------------
# the cases: worked out by hand, and the same as the course's panoptic_quality


@pytest.mark.parametrize("label, true, pred, by_hand", _PQ_CASES, ids=[c[0] for c in _PQ_CASES])
def test_the_values_worked_out_by_hand_are_the_references(label, true, pred, by_hand):
    assert np.allclose(_reference_pq(true, pred), by_hand, rtol=0, atol=1e-12)
    assert np.allclose(_pq_variant(true, pred), by_hand, rtol=0, atol=1e-12)   # the variants' base is the metric
    r = panoptic_quality(true, pred, things=list(THINGS), stuffs=list(STUFFS))["all"]
    assert (r["pq"], r["sq"], r["rq"]) == pytest.approx(by_hand, abs=1e-12)
    assert true.shape == pred.shape and (true != VOID).all() and (pred != VOID).all()   # no void: not in the task


def test_every_rule_has_a_case_that_shows_it():
    for change, says in _PQ_MISTAKES:
        assert any(not np.allclose(_pq_variant(t, p, **change), _reference_pq(t, p), atol=1e-6)
                   for _, t, p, _ in _PQ_CASES), says


def test_the_iou_of_the_half_case_is_exactly_one_half():
    _, true, pred, _ = next(c for c in _PQ_CASES if c[0] == "IoU exactly 0.5")
    t, p = true == 1002, pred == 1002
    assert (t & p).sum() * 2 == (t | p).sum()


# ----------------------------------------------------------------------------------------------------------------
# the worked solution, as a learner would write it, and the mistakes the check names


def pq_one_image(true_panoptic, pred_panoptic, things, stuffs, at_least=False, merge_stuff=True, same_class=True,
                 classes="occur", halves=True, product=False, nan_sq=False):
    def segments(panoptic):
        if not merge_stuff:
            return panoptic
        category = panoptic // 1000
        return np.where(np.isin(category, stuffs), category * 1000, panoptic)

    t, p = segments(true_panoptic), segments(pred_panoptic)
    tp, fp, fn, iou_sum = Counter(), Counter(), Counter(), Counter()
    matched_true, matched_pred = set(), set()
    for tid in np.unique(t):
        for pid in np.unique(p[t == tid]):
            if same_class and tid // 1000 != pid // 1000:
                continue
            iou = np.sum((t == tid) & (p == pid)) / np.sum((t == tid) | (p == pid))
            if iou > 0.5 or (at_least and iou >= 0.5):
                tp[tid // 1000] += 1
                iou_sum[tid // 1000] += iou
                matched_true.add(tid)
                matched_pred.add(pid)
    for tid in set(np.unique(t)) - matched_true:
        fn[tid // 1000] += 1
    for pid in set(np.unique(p)) - matched_pred:
        fp[pid // 1000] += 1
    present = set(np.unique(t) // 1000)
    pqs, sqs, rqs = [], [], []
    for c in list(things) + list(stuffs):
        if classes == "occur" and tp[c] + fp[c] + fn[c] == 0 or classes == "truth" and c not in present:
            continue
        sq = iou_sum[c] / tp[c] if tp[c] else (float("nan") if nan_sq else 0.0)
        rq = tp[c] / (tp[c] + (fp[c] + fn[c]) / (2 if halves else 1)) if tp[c] + fp[c] + fn[c] else 0.0
        pqs.append(sq * rq)
        sqs.append(sq)
        rqs.append(rq)
    pq, sq, rq = float(np.mean(pqs)), float(np.mean(sqs)), float(np.mean(rqs))
    return (sq * rq if product else pq), sq, rq


def with_(**change):
    return lambda t, p, things, stuffs: pq_one_image(t, p, things, stuffs, **change)


def test_right_answers_pass_strictly():
    assert check_panoptic_quality(pq_one_image, strict=True).passed

    def with_the_course(true, pred, things, stuffs):
        r = panoptic_quality(true, pred, things, stuffs)["all"]
        return np.float64(r["pq"]), r["sq"], r["rq"]   # NumPy numbers, a list or a tuple: all fine

    assert check_panoptic_quality(with_the_course, strict=True).passed
    assert check_panoptic_quality(lambda *a: list(pq_one_image(*a)), strict=True).passed
    assert check_panoptic_quality(lambda *a: np.array(pq_one_image(*a)), strict=True).passed


def test_the_message_names_the_case_and_the_numbers():
    fb = str(check_panoptic_quality(with_(at_least=True)))
    assert ("case 'IoU exactly 0.5': got pq 0.819, sq 0.819, rq 1.000, expected pq 0.694, sq 0.944, rq 0.750: "
            "a pair matches only when IoU > 0.5, strictly") in fb
    assert fb.count("case '") == 1   # the other cases are right


@pytest.mark.parametrize("wrong, says", [
    (with_(at_least=True), "a pair matches only when IoU > 0.5, strictly"),
    (with_(merge_stuff=False), "whatever their instance numbers"),
    (with_(same_class=False), "only a true segment of the same class"),
    (with_(classes="truth"), "a class found only in the prediction counts, with PQ 0"),
    (with_(classes="all"), "is left out of the averages, not counted as 0"),
    (with_(halves=False), "each false positive and false negative counts half"),
    (with_(product=True), "not the product of the mean SQ and the mean RQ"),
    (with_(nan_sq=True), "has SQ 0, not 0 / 0"),
    (lambda *a: pq_one_image(*a)[::-1], "the right numbers in the wrong order; return (pq, sq, rq)"),
    (lambda *a: dict(zip(("pq", "sq", "rq"), pq_one_image(*a))), "return three numbers, (pq, sq, rq)"),
    (lambda *a: pq_one_image(*a)[0], "return three numbers, (pq, sq, rq)"),
    (lambda *a: tuple(v * 0.99 for v in pq_one_image(*a)), "expected pq"),
])
def test_wrong_answers_are_explained(wrong, says):
    assert_explained(check_panoptic_quality, wrong, says)


def test_each_mistake_is_named_on_the_cases_that_show_it_only():
    fb = str(check_panoptic_quality(with_(same_class=False)))
    assert "case 'a thing given the wrong class'" in fb and fb.count("case '") == 1
    fb = str(check_panoptic_quality(with_(merge_stuff=False)))
    assert "case 'stuff pixels carrying instance numbers'" in fb and fb.count("case '") == 1


def test_answers_that_change_their_inputs_do_not_change_the_expected_values():
    def mutating(true, pred, things, stuffs):
        result = pq_one_image(true, pred, things, stuffs)
        true[:] = 0
        pred[:] = 1001
        stuffs.clear()
        return result

    assert check_panoptic_quality(mutating, strict=True).passed
    assert check_panoptic_quality(pq_one_image, strict=True).passed


# ----------------------------------------------------------------------------------------------------------------
# PQ by hand


@pytest.mark.parametrize("answer", [(0.5, 0.75, 2 / 3), (0.5, 0.75, 0.667), ("1/2", "3/4", "2/3"), [0.5, 0.75, 0.6667],
                                    np.array([0.5, 0.75, 2 / 3])])
def test_the_right_pq_by_hand_passes(answer):
    fb = check_pq_by_hand(answer, strict=True)
    assert fb.passed and "TP = 2" in str(fb)


@pytest.mark.parametrize("answer, says", [
    ((0.633, 0.633, 1.0), "you counted the 0.4 pair as a match"),
    ((0.422, 0.633, 0.667), "SQ averages the IoU of the matches only"),
    ((0.5, 0.5, 1.0), "SQ divides the IoU sum of the matches by the number of matches"),
    ((0.375, 0.75, 0.5), "count half each, not whole"),
    ((0.6, 0.75, 0.8), "one false positive (the third prediction) and one false negative"),
    ((0.4, 0.75, 2 / 3), "pq 0.400 is not your sq x rq = 0.500: PQ = SQ x RQ"),
    ((0.75, 0.5, 2 / 3), "the right three numbers in the wrong order"),
    ((0.5, 2 / 3, 0.75), "the right three numbers in the wrong order"),
    ((0.3, 0.3, 0.3), "sq 0.300 is not it"),
    (0.5, "expected three numbers (pq, sq, rq)"),
    ((0.5, 0.75), "expected three numbers (pq, sq, rq)"),
    (("half", 0.75, 0.667), "expected three numbers (pq, sq, rq)"),
])
def test_wrong_pq_by_hand_is_explained(answer, says):
    fb = check_pq_by_hand(answer)
    assert not fb.passed and says in str(fb)
    with pytest.raises(ExerciseError):
        check_pq_by_hand(answer, strict=True)


def test_pq_by_hand_unanswered_says_so_without_a_hint():
    for placeholder in (None, ...):
        fb = check_pq_by_hand(placeholder)
        assert not fb.passed and "not answered yet" in str(fb) and "hint:" not in str(fb)
    with pytest.raises(ExerciseError, match="not answered"):
        check_pq_by_hand(None, strict=True)
    assert "hint:" in str(check_pq_by_hand((0.3, 0.3, 0.3)))


def test_the_by_hand_numbers_are_the_metric():
    # one class; A, B, C true; a, b, c predicted with IoU 0.9, 0.6 and 0.4: built as 1-pixel-high strips
    true = np.zeros((3, 20), np.int64)
    pred = np.zeros((3, 20), np.int64)
    true[0, :10], pred[0, :9] = 1001, 1001          # IoU 9/10
    true[1, :6], pred[1, :10] = 1002, 1002          # IoU 6/10
    true[2, :4], pred[2, :10] = 1003, 1003          # IoU 4/10
    r = panoptic_quality(true, pred, things=[1], stuffs=[0])["per_class"][1]
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 1)
    assert (r["pq"], r["sq"], r["rq"]) == pytest.approx((0.5, 0.75, 2 / 3))
