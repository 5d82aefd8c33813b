"""utils.models.maskrcnn (the CPU and the full Mask R-CNN) and utils.instance (the training loop, COCO evaluation
through pycocotools, matching)."""
import numpy as np
import pytest
import torch

from utils.datasets import SceneInstanceDataset, detection_collate
from utils.instance import (
    box_xyxy_to_xywh,
    coco_evaluate,
    coco_ground_truth,
    evaluate_instances,
    greedy_match,
    mask_iou,
    masks_to_rle,
    match_instances,
    predict_instances,
    predictions_to_coco,
    train_detection,
)
from utils.models import CPU_CONFIG, build_maskrcnn_cpu
from utils.scenes import CLASS_NAMES

SIZE = 64


@pytest.fixture(scope="module")
def scenes():
    return SceneInstanceDataset(4, SIZE, "val")


def _perfect_predictions(dataset, scores=None):
    """The ground truth itself, as predict_instances would return it."""
    preds = []
    for i in range(len(dataset)):
        _, t = dataset[i]
        n = len(t["labels"])
        preds.append({"boxes_xyxy": t["boxes"].numpy().astype(np.float32), "labels": t["labels"].numpy(),
                      "scores": np.ones(n, np.float32) if scores is None else scores[i],
                      "masks": t["masks"].numpy().astype(bool)})
    return preds


# ------------------------------------------------------------------------------------------- builder

def test_cpu_model_trains_and_predicts_in_torchvision_formats(scenes):
    torch.manual_seed(0)
    model = build_maskrcnn_cpu(len(CLASS_NAMES), image_size=SIZE)
    images, targets = detection_collate([scenes[0], scenes[1]])
    model.train()
    losses = model(list(images), list(targets))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model(list(images))
    assert len(out) == 2 and out[0]["masks"].shape[1:] == (1, SIZE, SIZE)
    assert len(out[0]["boxes"]) <= CPU_CONFIG["box_detections_per_img"]
    # the transform keeps the image size: no upscaling to 800 pixels
    assert model.transform.min_size == (SIZE,) and model.transform.max_size == SIZE


def test_cpu_model_overrides_and_bad_arguments():
    model = build_maskrcnn_cpu(3, image_size=SIZE, fpn_channels=32, rpn_post_nms_top_n_test=10)
    assert model.backbone.out_channels == 32
    assert model.rpn._post_nms_top_n["testing"] == 10
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    with pytest.raises(ValueError, match="num_classes"):
        build_maskrcnn_cpu(1)
    with pytest.raises(ValueError, match="unknown configuration keys"):
        build_maskrcnn_cpu(4, anchor_size=(8, 16, 32))
    with pytest.raises(ValueError, match="image_size"):
        build_maskrcnn_cpu(4, image_size=16)
    with pytest.raises(ValueError, match="anchor_sizes"):
        build_maskrcnn_cpu(4, anchor_sizes=(16, 32))


def test_train_detection_history_and_errors(scenes):
    model = build_maskrcnn_cpu(len(CLASS_NAMES), image_size=SIZE)
    loader = torch.utils.data.DataLoader(scenes, batch_size=2, collate_fn=detection_collate)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    history = train_detection(model, loader, optimizer, 1, device="cpu", progress=False, seed=0,
                              eval_fn=lambda m: {"marker": 1.0})
    assert len(history) == 1
    row = history[0]
    assert {"epoch", "loss", "loss_mask", "lr", "seconds", "elapsed_s", "marker"} <= set(row)
    assert row["loss"] == pytest.approx(sum(v for k, v in row.items() if k.startswith("loss_")), rel=1e-6)
    assert not model.training
    with pytest.raises(ValueError, match="epochs"):
        train_detection(model, loader, optimizer, 0, device="cpu", progress=False)
    bad = [(scenes[0][0], {**scenes[0][1], "boxes": torch.tensor([[10.0, 10.0, 5.0, 20.0]])})]
    with pytest.raises(ValueError, match="xyxy"):
        train_detection(model, [detection_collate(bad)], optimizer, 1, device="cpu", progress=False)


def test_predict_instances_contract(scenes):
    torch.manual_seed(0)
    model = build_maskrcnn_cpu(len(CLASS_NAMES), image_size=SIZE)
    image = scenes[0][0]
    preds = predict_instances(model, [image, (image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)], device="cpu")
    for p in preds:
        k = len(p["scores"])
        assert p["boxes_xyxy"].shape == (k, 4) and p["masks"].shape == (k, SIZE, SIZE) and p["masks"].dtype == bool
        assert np.all(np.diff(p["scores"]) <= 0)
    assert all("mask_probs" not in p for p in preds)            # compact by default: bool masks only
    full = predict_instances(model, [image], device="cpu", keep_probs=True)[0]
    assert full["mask_probs"].dtype == np.float32 and full["mask_probs"].shape == full["masks"].shape
    np.testing.assert_array_equal(full["masks"], full["mask_probs"] >= 0.5)
    np.testing.assert_array_equal(full["masks"], preds[0]["masks"])
    with pytest.raises(ValueError, match="`keep_probs`"):
        predict_instances(model, [image], device="cpu", keep_probs=1)
    with pytest.raises(ValueError, match="wrap it in a list"):
        predict_instances(model, image, device="cpu")
    with pytest.raises(ValueError, match="score_threshold"):
        predict_instances(model, [image], score_threshold=2.0, device="cpu")


# ------------------------------------------------------------------------------- COCO conversion

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under NumPy 2
def test_rle_round_trip_and_box_conversion():
    from pycocotools import mask as mask_utils

    masks = np.zeros((2, 5, 6), bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 4, 0] = True
    rles = masks_to_rle(masks)
    assert [r["size"] for r in rles] == [[5, 6], [5, 6]] and isinstance(rles[0]["counts"], str)
    back = mask_utils.decode([{"size": r["size"], "counts": r["counts"].encode()} for r in rles])
    assert np.array_equal(back.transpose(2, 0, 1).astype(bool), masks)
    assert mask_utils.area([{"size": r["size"], "counts": r["counts"].encode()} for r in rles]).tolist() == [6, 1]
    assert box_xyxy_to_xywh([[2, 1, 5, 3]]).tolist() == [[2, 1, 3, 2]]
    with pytest.raises(ValueError, match="binary"):
        masks_to_rle(np.full((1, 2, 2), 0.7))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        masks_to_rle(np.zeros((4, 4), bool))


def test_ground_truth_ids_start_at_one(scenes):
    gt = coco_ground_truth(scenes, CLASS_NAMES)
    assert sorted(gt.getImgIds()) == [1, 2, 3, 4]
    ann_ids = sorted(gt.getAnnIds())
    assert ann_ids[0] == 1 and len(ann_ids) == sum(len(scenes[i][1]["labels"]) for i in range(4))
    assert [c["name"] for c in gt.loadCats(gt.getCatIds())] == list(CLASS_NAMES[1:])


def test_perfect_predictions_score_one_and_none_score_zero(scenes):
    gt = coco_ground_truth(scenes, CLASS_NAMES)
    perfect = coco_evaluate(gt, _perfect_predictions(scenes))
    for key in ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50"):
        assert perfect[key] == pytest.approx(1.0), key
    assert "Average Precision" in perfect["segm_summary"]
    empty = [{"boxes_xyxy": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
              "scores": np.zeros(0, np.float32), "masks": np.zeros((0, SIZE, SIZE), bool)} for _ in range(4)]
    nothing = coco_evaluate(gt, empty)
    assert nothing["segm_AP"] == 0.0 and nothing["bbox_AP50"] == 0.0
    with pytest.raises(ValueError, match="ground truth has 4 images"):
        coco_evaluate(gt, empty[:3])


def test_a_false_positive_ranked_first_costs_what_the_pr_envelope_says():
    """One class, N true objects found, plus one confident false positive: AP = N / (N + 1) by hand.

    The k-th true positive comes at precision k / (k + 1); the interpolated precision (the best at any
    higher recall) is N / (N + 1) at every recall level, so the 101-point average is N / (N + 1).
    """
    h = w = 40
    masks = np.zeros((3, h, w), np.uint8)
    masks[0, 2:10, 2:10] = masks[1, 20:30, 5:15] = masks[2, 5:15, 25:35] = 1
    boxes = torch.tensor([[2, 2, 9, 9], [5, 20, 14, 29], [25, 5, 34, 14]], dtype=torch.float32)
    target = {"boxes": boxes, "labels": torch.ones(3, dtype=torch.int64), "masks": torch.from_numpy(masks)}
    dataset = [(torch.zeros(3, h, w), target)]
    gt = coco_ground_truth(dataset, ("background", "thing"))
    fp = np.zeros((1, h, w), bool)
    fp[0, 32:38, 32:38] = True
    pred = {"boxes_xyxy": np.vstack([[32, 32, 37, 37], boxes.numpy()]).astype(np.float32),
            "labels": np.ones(4, np.int64), "scores": np.array([0.99, 0.9, 0.8, 0.7], np.float32),
            "masks": np.concatenate([fp, masks.astype(bool)])}
    result = coco_evaluate(gt, [pred])
    assert result["segm_AP50"] == pytest.approx(3 / 4, abs=1e-6)
    assert result["segm_AP"] == pytest.approx(3 / 4, abs=1e-6)
    # ranked last, the same false positive costs nothing
    last = {k: (np.concatenate([v[1:], v[:1]]) if k != "scores" else np.array([0.9, 0.8, 0.7, 0.6], np.float32))
            for k, v in pred.items()}
    assert coco_evaluate(gt, [last])["segm_AP50"] == pytest.approx(1.0)


def test_predictions_to_coco_formats():
    pred = {"boxes_xyxy": np.array([[1, 2, 4, 6]], np.float32), "labels": np.array([2]),
            "scores": np.array([0.5], np.float32), "masks": np.ones((1, 8, 8), bool)}
    segm, bbox = predictions_to_coco([pred], image_ids=[7])
    assert bbox == [{"image_id": 7, "category_id": 2, "score": 0.5, "bbox": [1.0, 2.0, 3.0, 4.0]}]
    assert segm[0]["segmentation"]["size"] == [8, 8] and segm[0]["category_id"] == 2
    with pytest.raises(ValueError, match="differ in length"):
        predictions_to_coco([pred], image_ids=[1, 2])


def test_evaluate_instances_runs_end_to_end(scenes):
    torch.manual_seed(0)
    metrics, preds = evaluate_instances(build_maskrcnn_cpu(4, image_size=SIZE), scenes, CLASS_NAMES, device="cpu")
    assert len(preds) == len(scenes)
    assert 0.0 <= metrics["segm_AP50"] <= 1.0 and "bbox_AP" in metrics


# ------------------------------------------------------------------------------------------ matching

@pytest.mark.parametrize("iou, threshold, expected", [
    ([[0.9, 0.1], [0.2, 0.7]], 0.5, [(0, 0), (1, 1)]),
    ([[0.8, 0.0], [0.6, 0.0]], 0.5, [(0, 0)]),                  # a duplicate is a false positive
    ([[0.6, 0.9], [0.0, 0.55]], 0.5, [(0, 1)]),                 # the best unmatched, not the first
    ([[0.7, 0.65], [0.68, 0.0]], 0.5, [(0, 0)]),                # greedy, not the best assignment
    ([[0.5]], 0.5, [(0, 0)]),                                   # equal to the threshold counts
    ([[0.49]], 0.5, []),
])
def test_greedy_match_by_hand(iou, threshold, expected):
    assert [(i, j) for i, j, _ in greedy_match(np.array(iou), threshold)] == expected


def test_greedy_match_follows_scores_and_checks_input():
    iou = np.array([[0.6, 0.0], [0.9, 0.0]])
    assert [(i, j) for i, j, _ in greedy_match(iou, 0.5, scores=[0.2, 0.8])] == [(1, 0)]
    with pytest.raises(ValueError, match="iou_threshold"):
        greedy_match(iou, 0.0)
    with pytest.raises(ValueError, match="scores"):
        greedy_match(iou, 0.5, scores=[1.0])
    with pytest.raises(ValueError, match=r"\(K, N\)"):
        greedy_match(np.zeros(3), 0.5)


def test_mask_iou_and_match_instances_by_hand():
    a = np.zeros((2, 4, 4), bool)
    a[0, :2, :2] = True            # 4 pixels
    a[1, 2:, :] = True             # 8 pixels
    b = np.zeros((2, 4, 4), bool)
    b[0, :2, :1] = True            # 2 pixels inside a[0]
    b[1, 3:, :] = True             # 4 pixels inside a[1]
    assert mask_iou(a, b).tolist() == [[0.5, 0.0], [0.0, 0.5]]
    assert mask_iou(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4), bool)).tolist() == [[0.0]]
    result = match_instances(a, b[:1], scores=[0.1, 0.9], iou_threshold=0.5)
    assert [(i, j) for i, j, _ in result["matches"]] == [(0, 0)]
    assert result["false_positives"] == [1] and result["false_negatives"] == []
    with pytest.raises(ValueError, match="same height and width"):
        mask_iou(a, np.zeros((1, 3, 3), bool))
    nothing = match_instances(np.zeros((0, 4, 4), bool), b)  # no detection: every object is missed
    assert nothing["iou"].shape == (0, 2) and nothing["false_negatives"] == [0, 1] and nothing["matches"] == []


# ------------------------------------------------------------------------------- full configuration

def test_full_model_loads_coco_weights_safely_and_gets_new_predictors(monkeypatch, tmp_path):
    from torchvision.ops.misc import FrozenBatchNorm2d

    from utils.models import build_maskrcnn_full

    coco_shaped = build_maskrcnn_full(None)  # the 91-class COCO layout, random weights
    state = {k: v.clone() for k, v in coco_shaped.state_dict().items() if "num_batches_tracked" not in k}
    calls = []

    def fake_load(path, **kwargs):  # stands in for the 170 MB download
        calls.append((path, kwargs))
        return state

    monkeypatch.setattr(torch, "load", fake_load)
    model = build_maskrcnn_full(2, weights_path=tmp_path / "coco.pth")
    assert calls and calls[0][1].get("weights_only") is True
    assert model.roi_heads.box_predictor.cls_score.out_features == 2
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 2
    frozen = [m for m in model.backbone.body.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and all(m.eps == 0.0 for m in frozen)
    # the backbone weights are the loaded ones; the first stages are frozen (trainable_backbone_layers=3)
    assert torch.equal(model.backbone.body.layer4[0].conv1.weight, state["backbone.body.layer4.0.conv1.weight"])
    assert not model.backbone.body.conv1.weight.requires_grad and model.backbone.body.layer4[0].conv1.weight.requires_grad
    coco = build_maskrcnn_full(None, weights_path=tmp_path / "coco.pth")
    assert coco.roi_heads.box_predictor.cls_score.out_features == 91
    with pytest.raises(ValueError, match="trainable_backbone_layers"):
        build_maskrcnn_full(2, trainable_backbone_layers=7)


def test_random_horizontal_flip_moves_boxes_with_masks(scenes):
    from torchvision.ops import masks_to_boxes

    from utils.instance import RandomHorizontalFlip, TransformedDataset

    image, target = scenes[0]
    flipped_image, flipped = RandomHorizontalFlip(p=1.0)(image, target)
    assert torch.equal(flipped_image, image.flip(-1))
    # boxes recomputed from the flipped masks agree with the flipped boxes (inclusive pixel indices)
    assert torch.equal(masks_to_boxes(flipped["masks"]), flipped["boxes"])
    same_image, same = RandomHorizontalFlip(p=0.0)(image, target)
    assert torch.equal(same_image, image) and torch.equal(same["boxes"], target["boxes"])
    wrapped = TransformedDataset(scenes, RandomHorizontalFlip(p=1.0))
    assert len(wrapped) == len(scenes) and torch.equal(wrapped[1][0], scenes[1][0].flip(-1))
    with pytest.raises(ValueError, match="`p`"):
        RandomHorizontalFlip(p=1.5)
    with pytest.raises(ValueError, match="transform"):
        TransformedDataset(scenes, None)


def test_optional_fetch_gives_none_offline(monkeypatch, tmp_path):
    from utils.data import optional_fetch
    from utils.models import coco_category_names

    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert optional_fetch("maskrcnn_resnet50_fpn_coco") is None
    names = coco_category_names()
    assert len(names) == 91 and names[1] == "person"


def test_max_detections_lifts_the_cap_of_one_hundred_per_image():
    """150 tiny squares, all found: AP is 100/150 of the PR curve with COCO's cap, 1 without it.

    With ``maxDets = 100`` only the 100 best detections count, so recall stops at 100/150 and the
    101-point precision is 1 up to recall 0.66 and 0 beyond: AP = 67/101 (recall levels 0.00 ... 0.66).
    """
    h, w = 60, 100
    masks = np.zeros((150, h, w), np.uint8)
    for k in range(150):
        y, x = divmod(k, 25)
        masks[k, 10 * y + 1:10 * y + 5, 4 * x:4 * x + 3] = 1
    boxes = torch.from_numpy(np.stack([[4 * (k % 25), 10 * (k // 25) + 1, 4 * (k % 25) + 2, 10 * (k // 25) + 4]
                                       for k in range(150)]).astype(np.float32))
    target = {"boxes": boxes, "labels": torch.ones(150, dtype=torch.int64), "masks": torch.from_numpy(masks)}
    gt = coco_ground_truth([(torch.zeros(3, h, w), target)], ("background", "nucleus"))
    pred = {"boxes_xyxy": boxes.numpy(), "labels": np.ones(150, np.int64),
            "scores": np.linspace(1.0, 0.5, 150).astype(np.float32), "masks": masks.astype(bool)}
    capped = coco_evaluate(gt, [pred], iou_types=("segm",))
    assert capped["segm_AP50"] == pytest.approx(67 / 101, abs=1e-6)
    assert capped["segm_AP"] == pytest.approx(67 / 101, abs=1e-6)
    full = coco_evaluate(gt, [pred], iou_types=("segm",), max_detections=300)
    assert full["segm_AP50"] == pytest.approx(1.0) and full["segm_AP"] == pytest.approx(1.0)
    assert full["segm_AR100"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="`max_detections` must be an int >= 10"):
        coco_evaluate(gt, [pred], max_detections=5)
