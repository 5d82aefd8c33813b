"""utils.models.mask2former: targets from the scenes, the small transformers Mask2Former, its loss and training,
the Hungarian matching against the model's own matcher, and post-processing on hand-made query outputs."""
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.instance import predictions_to_coco
from utils.models.mask2former import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SMALL_CONFIG,
    ConvBackbone,
    _loss_terms,
    build_mask2former,
    evaluate_mask2former,
    hungarian_match,
    instances_from_logits,
    match_queries,
    matching_cost,
    panoptic_from_logits,
    predict_mask2former,
    scene_targets,
    semantic_auxiliary_loss,
    semantic_from_logits,
    to_pixel_values,
    train_mask2former,
)
from utils.scenes import PANOPTIC_DIVISOR, make_scenes

SIZE = 32
TINY = {"num_queries": 6, "encoder_layers": 1, "decoder_layers": 3, "stem_widths": (8, 16),
        "backbone_widths": (16, 16, 32, 32)}


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(2, size=SIZE, split="val")


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return build_mask2former(3, SIZE, **TINY)


# ------------------------------------------------------------------------------------------------
# targets and the model


def test_scene_targets_things_only(scenes):
    batch = scene_targets(scenes)
    pv = batch["pixel_values"]
    assert pv.shape == (2, 3, SIZE, SIZE) and pv.dtype == torch.float32
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(pv * std + mean, images, atol=1e-5, rtol=0)
    for s, masks, labels in zip(scenes, batch["mask_labels"], batch["class_labels"]):
        assert masks.dtype == torch.float32 and labels.dtype == torch.int64
        assert masks.shape == (s.num_instances, SIZE, SIZE)
        np.testing.assert_array_equal(masks.numpy().astype(bool), s.instance_masks)
        np.testing.assert_array_equal(labels.numpy(), s.labels - 1)  # disc, square, triangle -> 0, 1, 2
        assert labels.min() >= 0 and labels.max() <= 2


def test_scene_targets_with_background(scenes):
    batch = scene_targets(scenes, include_background=True)
    for s, masks, labels in zip(scenes, batch["mask_labels"], batch["class_labels"]):
        assert masks.shape == (s.num_instances + 1, SIZE, SIZE)
        np.testing.assert_array_equal(masks[0].numpy().astype(bool), s.semantic == 0)
        np.testing.assert_array_equal(masks[1:].numpy().astype(bool), s.instance_masks)
        assert labels[0] == 0
        np.testing.assert_array_equal(labels[1:].numpy(), s.labels)
        # the segments tile the image: every pixel belongs to exactly one
        assert torch.all(masks.sum(0) == 1)


def test_build_small_model_and_its_outputs(model, scenes):
    cfg = model.config
    assert cfg.num_labels == 3 and cfg.id2label == {0: "disc", 1: "square", 2: "triangle"}
    assert cfg.num_queries == 6 and cfg.train_num_points == SIZE * SIZE // 4
    assert isinstance(model.model.pixel_level_module.encoder, ConvBackbone)
    assert cfg.semantic_weight == SMALL_CONFIG["semantic_weight"] > 0
    # one head per pixel-decoder output (three at feature_size, the per-pixel embeddings at mask_feature_size),
    # to the 3 classes and "unclaimed"
    assert [(h.in_channels, h.out_channels) for h in model.semantic_heads] == [(64, 4)] * 3 + [(64, 4)]
    assert model.criterion.matcher.num_points == cfg.train_num_points
    model.eval()
    with torch.no_grad():
        out = model(pixel_values=scene_targets(scenes)["pixel_values"])
    assert out.class_queries_logits.shape == (2, 6, 4)  # 3 classes + "no object"
    assert out.masks_queries_logits.shape == (2, 6, SIZE // 4, SIZE // 4)
    m4 = build_mask2former(4, 64)
    assert m4.config.num_labels == 4 and m4.config.id2label[0] == "background"
    assert m4.semantic_heads[0].out_channels == 5
    assert m4.config.num_queries == SMALL_CONFIG["num_queries"] and m4.config.train_num_points == 64 * 64 // 4


def test_loss_is_finite_and_backward_reaches_every_part(model, scenes):
    model.train()
    batch = scene_targets(scenes)
    out = model(**batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and out.loss > 0
    loss, terms = _loss_terms(model, batch)                    # Mask2Former's loss plus the semantic term
    assert terms["loss_semantic"] > 0 and torch.isfinite(loss)
    loss.backward()
    parts = {"class_predictor": model.class_predictor.weight,
             "backbone": model.model.pixel_level_module.encoder.stem[0][0].weight,
             "queries": model.model.transformer_module.queries_features.weight,
             **{f"semantic head {k}": h.weight for k, h in enumerate(model.semantic_heads)}}
    for name, p in parts.items():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_conv_backbone_gives_four_maps_at_strides_4_to_32():
    torch.manual_seed(0)
    backbone = ConvBackbone((8, 12), (16, 24, 32, 40), (1, 2, 0, 1))
    maps = backbone(torch.randn(2, 3, 64, 96)).feature_maps
    assert [tuple(m.shape) for m in maps] == [(2, 16, 16, 24), (2, 24, 8, 12), (2, 32, 4, 6), (2, 40, 2, 3)]
    assert backbone.channels == [16, 24, 32, 40]
    # stride 1 then 2 before the stages: two 3x3 layers at each (conv, norm, ReLU), the stride-2 one first at half
    convs = [m for m in backbone.stem.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride) for c in convs] == [((3, 3), (1, 1))] * 2 + [((3, 3), (2, 2)), ((3, 3), (1, 1))]
    # stage i: a stride-2 layer and depths[i] more
    assert [sum(isinstance(m, torch.nn.Conv2d) for m in st.modules()) for st in backbone.stages] == [2, 3, 1, 2]
    with pytest.raises(ValueError, match="`stem_widths`"):
        ConvBackbone((8,), (16, 24, 32, 40))
    with pytest.raises(ValueError, match="`backbone_widths`"):
        ConvBackbone((8, 8), (16, 24, 32))
    with pytest.raises(ValueError, match="`backbone_depths`"):
        ConvBackbone((8, 8), (16, 24, 32, 40), (1, 1, 1, -1))


def test_transformers_backbones_and_no_semantic_heads_remain_available(scenes):
    torch.manual_seed(0)
    model = build_mask2former(3, SIZE, **{**TINY, "backbone": "resnet", "semantic_weight": 0})
    assert type(model.model.pixel_level_module.encoder).__name__ == "ResNetBackbone"
    assert not hasattr(model, "semantic_heads") and model.config.semantic_weight == 0
    loss, terms = _loss_terms(model.train(), scene_targets(scenes))
    assert "loss_semantic" not in terms
    assert float(loss.detach()) == pytest.approx(terms["loss_cross_entropy"] + terms["loss_mask"] + terms["loss_dice"],
                                        rel=1e-4)


def test_semantic_loss_is_the_pixel_cross_entropy_of_the_scenes_semantic_map(model, scenes):
    """Written independently of semantic_targets: the scenes' own semantic maps, background -> "unclaimed"."""
    model.eval()
    batch = scene_targets(scenes)
    with torch.no_grad():
        out = model(pixel_values=batch["pixel_values"], output_hidden_states=True)
        ours = semantic_auxiliary_loss(model, out, batch)
    semantic = torch.from_numpy(np.stack([s.semantic for s in scenes]).astype(np.int64))
    target = torch.where(semantic == 0, 3, semantic - 1)                 # disc, square, triangle -> 0..2; none -> 3
    features = [*out.pixel_decoder_hidden_states, out.pixel_decoder_last_hidden_state]
    assert [f.shape[-1] for f in features] == [SIZE // 32, SIZE // 16, SIZE // 8, SIZE // 4]
    expected = 0.0
    for head, f in zip(model.semantic_heads, features):
        logits = F.interpolate(head(f), size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        expected += -torch.log_softmax(logits, 1).gather(1, target[:, None]).mean()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    # with the background as a class (4 labels), every pixel is claimed: the targets are the semantic map itself
    torch.manual_seed(0)
    m4 = build_mask2former(4, SIZE, **TINY).eval()
    batch4 = scene_targets(scenes, include_background=True)
    with torch.no_grad():
        out4 = m4(pixel_values=batch4["pixel_values"], output_hidden_states=True)
        loss4 = semantic_auxiliary_loss(m4, out4, batch4)
        f4 = [*out4.pixel_decoder_hidden_states, out4.pixel_decoder_last_hidden_state]
        expected4 = sum(F.cross_entropy(F.interpolate(h(f), size=(SIZE, SIZE), mode="bilinear",
                                                      align_corners=False), semantic)
                        for h, f in zip(m4.semantic_heads, f4))
    torch.testing.assert_close(loss4, expected4, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="output_hidden_states"):
        semantic_auxiliary_loss(model, model(pixel_values=batch["pixel_values"]), batch)
    plain = build_mask2former(3, SIZE, **{**TINY, "semantic_weight": 0})
    with pytest.raises(ValueError, match="semantic_heads"):
        semantic_auxiliary_loss(plain, out, batch)


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(model, scenes):
    batch = scene_targets(scenes)
    losses = train_mask2former(model, batch, 40, device="cpu", lr=1e-3, flip=False, seed=0, progress=False)
    assert len(losses) == 40 and all(np.isfinite(losses))
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.7 * first, (first, last)
    assert not model.training  # left in evaluation mode


def test_training_on_scenes_returns_terms(model, scenes):
    rows = train_mask2former(model, scenes, 2, device="cpu", batch_size=2, seed=1, progress=False, return_terms=True)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert {"loss", "loss_cross_entropy", "loss_mask", "loss_dice", "loss_semantic", "lr", "seconds"} <= set(r)
        # the three weighted terms, summed over the decoder layers, and the weighted semantic term make up the loss
        assert r["loss"] == pytest.approx(r["loss_cross_entropy"] + r["loss_mask"] + r["loss_dice"]
                                          + r["loss_semantic"], rel=1e-4)


# ------------------------------------------------------------------------------------------------
# matching


def test_hungarian_match_on_a_known_matrix():
    cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    rows, cols = hungarian_match(cost)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]  # 1 + 2 + 2 = 5, the least total
    # more queries than objects: each object gets one query, the others stay unmatched
    rows, cols = hungarian_match(torch.tensor([[5.0, 5.0], [0.0, 9.0], [9.0, 0.5], [1.0, 1.0]]))
    assert rows.tolist() == [1, 2] and cols.tolist() == [0, 1]


def test_matching_cost_terms_by_brute_force():
    g = torch.Generator().manual_seed(3)
    class_logits = torch.randn(5, 4, generator=g)
    mask_logits = 3 * torch.randn(5, 4, 4, generator=g)
    mask_labels = (torch.rand(2, 8, 8, generator=g) > 0.5).float()
    class_labels = torch.tensor([2, 0])
    cost = matching_cost(class_logits, mask_logits, mask_labels, class_labels, class_weight=2, mask_weight=5,
                         dice_weight=5)
    up = F.interpolate(mask_logits[None], size=(8, 8), mode="bilinear", align_corners=False)[0]
    probs = class_logits.softmax(-1)
    for q in range(5):
        for n in range(2):
            bce = F.binary_cross_entropy_with_logits(up[q], mask_labels[n])
            s = up[q].sigmoid()
            dice = 1 - (2 * (s * mask_labels[n]).sum() + 1) / (s.sum() + mask_labels[n].sum() + 1)
            assert cost["class"][q, n] == pytest.approx(-probs[q, class_labels[n]].item(), abs=1e-6)
            assert cost["mask"][q, n] == pytest.approx(bce.item(), abs=1e-5)
            assert cost["dice"][q, n] == pytest.approx(dice.item(), abs=1e-5)
            total = -2 * probs[q, class_labels[n]] + 5 * bce + 5 * dice
            assert cost["total"][q, n] == pytest.approx(total.item(), abs=1e-4)


def test_hungarian_helper_equals_the_models_matcher(model):
    matcher = model.criterion.matcher
    assert (matcher.cost_class, matcher.cost_mask, matcher.cost_dice) == (2.0, 5.0, 5.0)
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        class_logits = 2 * torch.randn(1, 6, 4, generator=g)
        mask_logits = 4 * torch.randn(1, 6, 8, 8, generator=g)
        n = 2 + seed % 3
        mask_labels = (torch.rand(n, SIZE, SIZE, generator=g) > 0.6).float()
        class_labels = torch.randint(0, 3, (n,), generator=g)
        torch.manual_seed(100 + seed)
        (theirs_rows, theirs_cols), = matcher(mask_logits, class_logits, [mask_labels], [class_labels])
        torch.manual_seed(100 + seed)  # the same random points
        cost = matching_cost(class_logits[0], mask_logits[0], mask_labels, class_labels,
                             class_weight=matcher.cost_class, mask_weight=matcher.cost_mask,
                             dice_weight=matcher.cost_dice, num_points=matcher.num_points)
        rows, cols = hungarian_match(cost["total"])
        assert rows.tolist() == theirs_rows.tolist() and cols.tolist() == theirs_cols.tolist()
        assert len(rows) == n and sorted(cols.tolist()) == list(range(n))


def test_match_queries_on_scenes(model, scenes):
    results = match_queries(model, scenes)
    assert len(results) == 2
    for s, r in zip(scenes, results):
        n = s.num_instances
        assert r["cost"].shape == (6, n) and r["mask_probs"].shape == (6, SIZE, SIZE)
        assert sorted(r["targets"].tolist()) == list(range(n)) and len(set(r["queries"].tolist())) == n
        np.testing.assert_array_equal(r["class_labels"], s.labels - 1)
        # the assignment is the cheapest: no other choice of distinct queries does better (all of them tried)
        best = r["cost"][r["queries"], r["targets"]].sum()
        brute = min(r["cost"][list(qs), range(n)].sum() for qs in itertools.permutations(range(6), n))
        assert best == pytest.approx(brute)
        np.testing.assert_allclose(r["cost"], 2 * r["class_cost"] + 5 * r["mask_cost"] + 5 * r["dice_cost"],
                                   rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# post-processing on hand-made outputs


BIG = 12.0  # a mask logit of +-12 is a probability of 1 - 6e-6 or 6e-6


def _hand_made(with_background=False):
    """Four queries on an 8x8 image: a disc top-left, a triangle bottom-right, one 'no object' and (with the
    background) a background query covering the rest."""
    c = 4 if with_background else 3
    off = 0 if with_background else 1
    disc = torch.zeros(8, 8, dtype=torch.bool)
    disc[1:4, 1:5] = True
    tri = torch.zeros(8, 8, dtype=torch.bool)
    tri[5:8, 4:7] = True
    masks = [disc, tri, torch.ones(8, 8, dtype=torch.bool), ~(disc | tri)]
    mask_logits = torch.stack([torch.where(m, BIG, -BIG) for m in masks])
    class_logits = torch.full((4, c + 1), -5.0)
    class_logits[0, 1 - off] = 5.0  # disc
    class_logits[1, 3 - off] = 4.0  # triangle, a little less sure
    class_logits[2, c] = 5.0  # "no object"
    if with_background:
        class_logits[3, 0] = 5.0
    else:
        class_logits[3, c] = 5.0
    return class_logits, mask_logits, disc.numpy(), tri.numpy()


def test_instances_from_hand_made_outputs():
    class_logits, mask_logits, disc, tri = _hand_made()
    p = instances_from_logits(class_logits, mask_logits)
    probs = class_logits.softmax(-1)
    quality = torch.sigmoid(torch.tensor(BIG)).item()
    # the two real objects come first, with score = class probability x mask quality
    assert p["labels"][:2].tolist() == [1, 3] and p["queries"][:2].tolist() == [0, 1]
    np.testing.assert_allclose(p["scores"][:2], [probs[0, 0] * quality, probs[1, 2] * quality], rtol=1e-5)
    np.testing.assert_array_equal(p["masks"][0], disc)
    np.testing.assert_array_equal(p["masks"][1], tri)
    np.testing.assert_array_equal(p["boxes_xyxy"][:2], [[1, 1, 4, 3], [4, 5, 6, 7]])
    assert np.all(np.diff(p["scores"]) <= 0) and p["scores"][2] < 0.01  # the rest score almost nothing
    assert p["masks"].dtype == bool and p["masks"].shape[1:] == (8, 8)
    assert len(p["scores"]) == 4  # top_k defaults to the number of queries
    segm, bbox = predictions_to_coco([p])  # the course's COCO path takes it as it is
    assert len(segm) == len(bbox) == 4 and segm[0]["category_id"] == 1
    up = instances_from_logits(class_logits, mask_logits, size=16, top_k=2, keep_probs=True)
    assert up["masks"].shape == (2, 16, 16) and up["mask_probs"].shape == (2, 16, 16)
    assert up["masks"][0].sum() == pytest.approx(4 * disc.sum(), rel=0.35)


def test_semantic_from_hand_made_outputs():
    class_logits, mask_logits, disc, tri = _hand_made()
    expected = np.zeros((8, 8), np.int64)
    expected[disc], expected[tri] = 1, 3
    semantic, scores = semantic_from_logits(class_logits, mask_logits, return_scores=True)
    np.testing.assert_array_equal(semantic, expected)
    assert scores.shape == (3, 8, 8)
    probs = class_logits.softmax(-1)[:, :-1]
    np.testing.assert_allclose(scores, torch.einsum("qc,qhw->chw", probs, mask_logits.sigmoid()).numpy(), rtol=1e-6)
    # with a background query the map is a plain argmax over four classes
    class_logits, mask_logits, disc, tri = _hand_made(with_background=True)
    np.testing.assert_array_equal(semantic_from_logits(class_logits, mask_logits), expected)


@pytest.mark.parametrize("with_background", [False, True])
def test_panoptic_from_hand_made_outputs(with_background):
    class_logits, mask_logits, disc, tri = _hand_made(with_background)
    panoptic, segments = panoptic_from_logits(class_logits, mask_logits, return_segments=True)
    expected = np.zeros((8, 8), np.int32)
    expected[disc] = 1 * PANOPTIC_DIVISOR + 1
    expected[tri] = 3 * PANOPTIC_DIVISOR + 2
    np.testing.assert_array_equal(panoptic, expected)
    assert panoptic.dtype == np.int32
    things = [s for s in segments if s["class_id"] != 0]
    assert [(s["id"], s["query"], s["area"]) for s in things] == [(1001, 0, disc.sum()), (3002, 1, tri.sum())]
    assert len(segments) == (3 if with_background else 2)  # the background is one stuff segment, encoded 0


def test_panoptic_drops_a_mostly_hidden_query():
    class_logits, mask_logits, _, _ = _hand_made()
    # query 2 now claims a square that overlaps the (more confident) disc on most of its pixels
    square = torch.zeros(8, 8, dtype=torch.bool)
    square[1:4, 2:6] = True  # 12 pixels, 9 of them under the disc
    mask_logits[2] = torch.where(square, BIG, -BIG)
    class_logits[2] = torch.tensor([-5.0, 3.0, -5.0, -5.0])
    panoptic = panoptic_from_logits(class_logits, mask_logits)
    assert not np.any(panoptic // PANOPTIC_DIVISOR == 2)  # won 3/12 < 0.8 of its own mask: dropped
    assert set(np.unique(panoptic).tolist()) == {0, 1001, 3002}
    kept = panoptic_from_logits(class_logits, mask_logits, overlap_threshold=0.2)
    # with a looser threshold it keeps its 3 free pixels, as instance 3 (instances are numbered in query order)
    assert np.sum(kept == 2 * PANOPTIC_DIVISOR + 3) == 3 and set(np.unique(kept).tolist()) == {0, 1001, 2003, 3002}


class _Oracle(torch.nn.Module):
    """Stands in for a Mask2Former: returns, batch after batch, queries that spell out the scenes' truth."""

    def __init__(self, scenes, num_queries=8):
        super().__init__()
        self.config = SimpleNamespace(num_labels=3)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.outputs, self.calls = [], 0
        for s in scenes:
            cls = torch.full((num_queries, 4), -8.0)
            cls[:, 3] = 8.0
            masks = torch.full((num_queries, *s.semantic.shape), -BIG)
            for j, (m, label) in enumerate(zip(s.instance_masks, s.labels)):
                cls[j] = -8.0
                cls[j, label - 1] = 8.0
                masks[j][torch.from_numpy(m)] = BIG
            self.outputs.append((cls, masks))

    def forward(self, pixel_values):
        b = len(pixel_values)
        chunk = self.outputs[self.calls:self.calls + b]
        self.calls += b
        return SimpleNamespace(class_queries_logits=torch.stack([c for c, _ in chunk]),
                               masks_queries_logits=torch.stack([m for _, m in chunk]))


def test_evaluate_and_predict_with_perfect_queries():
    scenes = make_scenes(3, size=SIZE, split="val")
    metrics, preds = evaluate_mask2former(_Oracle(scenes), scenes, batch_size=2, iou_types=("segm", "bbox"))
    assert metrics["segm_AP"] == pytest.approx(1.0) and metrics["segm_AP50"] == pytest.approx(1.0)
    assert metrics["bbox_AP"] == pytest.approx(1.0)
    assert metrics["miou"] == pytest.approx(1.0) and metrics["pixel_accuracy"] == pytest.approx(1.0)
    for s, p in zip(scenes, preds):
        np.testing.assert_array_equal(p["semantic"], s.semantic)
        np.testing.assert_array_equal(p["panoptic"], s.panoptic)  # same instance numbers: query j is instance j + 1
    preds2 = predict_mask2former(_Oracle(scenes), [s.image for s in scenes])  # raw images work as well
    inst, n = preds2[1]["instances"], scenes[1].num_instances
    assert sorted(inst["labels"][:n].tolist()) == sorted(scenes[1].labels.tolist())
    assert np.all(inst["scores"][:n] > 0.99) and np.all(inst["scores"][n:] < 1e-3)  # the true objects first


def test_class_agnostic_ap_separates_finding_from_naming():
    scenes = make_scenes(3, size=SIZE, split="val")
    oracle = _Oracle(scenes)
    for cls, _ in oracle.outputs:                      # every object found, every one named wrongly (class k -> k + 1)
        named = cls[:, :3].argmax(1)
        objects = cls[:, 3] < 0
        wrong = torch.full_like(cls, -8.0)
        wrong[:, 3] = 8.0
        wrong[objects] = -8.0
        wrong[objects, (named[objects] + 1) % 3] = 8.0
        cls.copy_(wrong)
    metrics, preds = evaluate_mask2former(oracle, scenes, class_agnostic=True)
    assert metrics["segm_AP50"] == pytest.approx(0.0)
    assert metrics["agnostic_segm_AP50"] == pytest.approx(1.0) and metrics["agnostic_segm_AP"] == pytest.approx(1.0)
    assert "agnostic_segm_AP50" not in evaluate_mask2former(_Oracle(scenes), scenes)[0]
    with pytest.raises(ValueError, match="`class_agnostic`"):
        evaluate_mask2former(_Oracle(scenes), scenes, class_agnostic="yes")


def test_evaluate_a_trained_few_steps_model_runs(model, scenes):
    metrics, preds = evaluate_mask2former(model, scenes)
    assert 0.0 <= metrics["segm_AP"] <= 1.0 and 0.0 <= metrics["miou"] <= 1.0
    assert len(preds) == 2 and preds[0]["semantic"].shape == (SIZE, SIZE)
    assert preds[0]["instances"]["masks"].shape[1:] == (SIZE, SIZE)


# ------------------------------------------------------------------------------------------------
# errors name the argument


def test_errors_name_the_argument(model, scenes):
    with pytest.raises(ValueError, match="`scenes`"):
        scene_targets("scene")
    with pytest.raises(ValueError, match=r"`scenes\[1\]`"):
        scene_targets([scenes[0], {"image": 1}])
    with pytest.raises(ValueError, match="`include_background`"):
        scene_targets(scenes, include_background="yes")
    with pytest.raises(ValueError, match="`num_labels`"):
        build_mask2former(0)
    with pytest.raises(ValueError, match="`image_size`"):
        build_mask2former(3, 16)
    with pytest.raises(ValueError, match="unknown configuration keys"):
        build_mask2former(3, 32, queries=5)
    with pytest.raises(ValueError, match="`semantic_weight`"):
        build_mask2former(3, SIZE, semantic_weight=-1.0)
    with pytest.raises(ValueError, match="`stem_widths`"):
        build_mask2former(3, SIZE, stem_widths=(16, 0))
    with pytest.raises(ValueError, match="`backbone`"):
        build_mask2former(3, SIZE, backbone="vit")
    with pytest.raises(ValueError, match="`feature_size`"):
        build_mask2former(3, 32, feature_size=48)
    with pytest.raises(ValueError, match="`steps`"):
        train_mask2former(model, scenes, 0, device="cpu", progress=False)
    with pytest.raises(ValueError, match="`model`"):
        train_mask2former(torch.nn.Linear(2, 2), scenes, 1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="`include_background`"):  # 4-class targets for a 3-class model
        train_mask2former(model, scenes, 1, device="cpu", include_background=True, progress=False)
    with pytest.raises(ValueError, match="`data`"):
        train_mask2former(model, 5, 1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="`cost`"):
        hungarian_match(np.ones(3))
    with pytest.raises(ValueError, match="`cost`"):
        hungarian_match(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="`mask_logits`"):
        instances_from_logits(torch.zeros(4, 4), torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="`include_background`"):
        semantic_from_logits(torch.zeros(4, 8), torch.zeros(4, 8, 8))  # 7 classes: numbering unknown
    with pytest.raises(ValueError, match="`score_threshold`"):
        panoptic_from_logits(torch.zeros(4, 4), torch.zeros(4, 8, 8), score_threshold=1.5)
    with pytest.raises(ValueError, match="`size`"):
        semantic_from_logits(torch.zeros(4, 4), torch.zeros(4, 8, 8), size=(8,))
    with pytest.raises(ValueError, match="`class_labels`"):
        matching_cost(torch.zeros(4, 4), torch.zeros(4, 8, 8), torch.zeros(1, 8, 8), torch.tensor([3]))
    with pytest.raises(ValueError, match="wrap it in a list"):
        to_pixel_values(scenes[0].image)
    with pytest.raises(ValueError, match="`images`"):
        predict_mask2former(model, scenes[0])
