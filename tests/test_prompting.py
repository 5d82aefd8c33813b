"""The small promptable model (utils.models.promptable) and its simulated-click training (utils.prompting)."""
import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from utils.models.promptable import BatchedMaskDecoder, build_promptable_sam, sam_parts_summary
from utils.prompting import (PromptCrops, click_evaluation, collate_prompt_crops, corrective_click, fixed_tiles,
                             enlarge, interior_point, mask_iou, promptable_loss, sample_corrective_clicks, sample_points,
                             scene_labels, train_promptable)
from utils.scenes import make_scene


def _disc(h=32, w=32, cy=16, cx=16, r=6):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_interior_point_is_the_centre_of_a_disc_and_of_a_rectangle():
    assert interior_point(_disc(cy=10, cx=20)) == (20, 10)
    rect = np.zeros((20, 30), bool)
    rect[5:10, 2:25] = True          # 5 rows high: the centre row is 7
    x, y = interior_point(rect)
    assert y == 7 and 4 <= x <= 22


def test_interior_point_treats_the_image_border_as_a_boundary():
    mask = np.zeros((10, 40), bool)
    mask[:, :20] = True               # touches the left, top and bottom borders
    x, y = interior_point(mask)
    assert 4 <= y <= 5 and 4 <= x <= 15, (x, y)


def test_corrective_click_picks_the_centre_of_the_largest_error_and_labels_it():
    truth = _disc(64, 64, 32, 32, 20)
    missed = truth.copy()
    missed[_disc(64, 64, 32, 40, 6)] = False            # a hole of radius 6 inside the object
    (x, y), label = corrective_click(missed, truth)
    assert (x, y) == (40, 32) and label == 1
    extra = truth | _disc(64, 64, 5, 5, 4)               # a false positive blob near the corner
    (x, y), label = corrective_click(extra, truth)
    assert abs(x - 5) <= 1 and abs(y - 5) <= 1 and label == 0
    assert corrective_click(truth, truth) is None


def test_corrective_click_errors_name_the_argument():
    with pytest.raises(ValueError, match="`pred`"):
        corrective_click(np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="one shape"):
        corrective_click(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="empty"):
        interior_point(np.zeros((4, 4), bool))


def test_sampled_points_fall_inside_their_masks():
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(3, 16, 20, dtype=torch.bool)
    masks[0, 2:4, 3:5] = True
    masks[1, 10, 19] = True
    masks[2, 5:15, 0:2] = True
    for _ in range(20):
        pts = sample_points(masks, g).long()
        assert all(masks[i, y, x] for i, (x, y) in enumerate(pts.tolist()))
    with pytest.raises(ValueError, match="empty"):
        sample_points(torch.zeros(1, 4, 4, dtype=torch.bool))


def test_sampled_points_are_uniform_over_the_mask():
    # every pixel of a 5-pixel mask is drawn about equally often, pixels outside never
    g = torch.Generator().manual_seed(2)
    masks = torch.zeros(4000, 6, 6, dtype=torch.bool)
    cells = [(0, 0), (0, 5), (2, 3), (5, 0), (5, 5)]
    for y, x in cells:
        masks[:, y, x] = True
    pts = sample_points(masks, g).long()
    counts = torch.zeros(6, 6)
    counts.index_put_((pts[:, 1], pts[:, 0]), torch.ones(len(pts)), accumulate=True)
    assert counts.sum() == 4000 and counts[~masks[0]].sum() == 0
    for y, x in cells:                   # 800 expected each; 4 standard deviations is about 100
        assert 700 < counts[y, x] < 900


def test_interior_points_are_drawn_in_proportion_to_the_distance_from_the_boundary():
    # a 3 x 5 rectangle: its boundary pixels are 1 from the outside, the 3 middle ones 2 (weights sum to 18)
    g = torch.Generator().manual_seed(3)
    masks = torch.zeros(9000, 5, 7, dtype=torch.bool)
    masks[:, 1:4, 1:6] = True
    pts = sample_points(masks, g, where="interior").long()
    counts = torch.zeros(5, 7)
    counts.index_put_((pts[:, 1], pts[:, 0]), torch.ones(len(pts)), accumulate=True)
    assert counts.sum() == 9000 and counts[~masks[0]].sum() == 0
    middle = torch.zeros(5, 7, dtype=torch.bool)
    middle[2, 2:5] = True
    # expected 1,000 per middle pixel and 500 per boundary pixel; about 4 standard deviations either side
    assert ((counts[middle] > 880) & (counts[middle] < 1120)).all()
    assert ((counts[masks[0] & ~middle] > 410) & (counts[masks[0] & ~middle] < 590)).all()
    # one mask's distances never leak into another's: a thin mask next to a thick one keeps its own weights
    two = torch.zeros(2, 6, 6, dtype=torch.bool)
    two[0, :, :] = True
    two[1, 0, :] = True
    for _ in range(10):
        x, y = sample_points(two, g, where="interior")[1].long().tolist()
        assert y == 0
    with pytest.raises(ValueError, match="`where`"):
        sample_points(masks[:1], g, where="centre")


def test_distances_on_bounding_boxes_equal_distances_on_the_whole_crop():
    from utils.classical import distance_to_edge
    from utils.prompting import _distances_to_edge

    g = np.random.default_rng(0)
    masks = np.zeros((5, 40, 50), bool)
    masks[0, 10:20, 5:30] = True                      # a bar inside
    masks[1, :7, 44:] = True                          # cut by two image borders
    masks[2, 3:38, 1:49] = g.random((35, 48)) < 0.7   # ragged, with holes
    masks[3, 20, 25] = True                           # one pixel
    masks[4] = True                                   # the whole crop
    expected = np.stack([distance_to_edge(m) for m in masks])
    np.testing.assert_array_equal(_distances_to_edge(masks), expected)


def test_max_filter_equals_max_pooling():
    from utils.models.promptable import _max_filter5

    x = torch.randn(3, 2, 17, 9) - 5                  # negative values: the border must not count as 0
    torch.testing.assert_close(_max_filter5(x), torch.nn.functional.max_pool2d(x, 5, 1, 2), rtol=0, atol=0)


def test_sampled_corrective_clicks_lie_in_the_error_region_with_the_truth_as_label():
    g = torch.Generator().manual_seed(1)
    truth = torch.zeros(3, 12, 12, dtype=torch.bool)
    truth[:, 3:9, 3:9] = True
    pred = truth.clone()
    pred[0, 3:9, 3:6] = False            # row 0: missed part -> positive clicks
    pred[1, 0:2, :] = True               # row 1: false positives -> negative clicks
    for _ in range(20):
        pts, labels = sample_corrective_clicks(pred, truth, g)
        x0, y0 = pts[0].long().tolist()
        x1, y1 = pts[1].long().tolist()
        assert (pred[0] ^ truth[0])[y0, x0] and labels[0] == 1
        assert (pred[1] ^ truth[1])[y1, x1] and labels[1] == 0
        assert labels[2] == -1           # row 2 is perfect: "not a point"


def test_scene_labels_match_the_instance_masks():
    scene = make_scene(3, 64)
    labels = scene_labels(scene)
    for i, mask in enumerate(scene.instance_masks):
        assert np.array_equal(labels == i + 1, mask)
    assert (labels > 0).sum() == scene.instance_masks.sum()


def test_prompt_crops_random_and_fixed():
    scene = make_scene(5, 64)
    crops = PromptCrops([scene.image], [scene_labels(scene)], size=48, samples_per_epoch=7, min_area=1)
    assert len(crops) == 7
    image, masks = crops[0]
    assert image.shape == (3, 48, 48) and image.max() > 1 and masks.dtype == torch.bool and masks.shape[1:] == (48, 48)
    fixed = PromptCrops([scene.image], [scene_labels(scene)], size=48)
    a, b = fixed[0], fixed[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    images, masks_list = collate_prompt_crops([a, b])
    assert images.shape == (2, 3, 48, 48) and len(masks_list) == 2
    with pytest.raises(ValueError, match="smaller than `size`"):
        PromptCrops([scene.image], [scene_labels(scene)], size=80)
    with pytest.raises(ValueError, match="one length"):
        PromptCrops([scene.image], [], size=32)


def test_object_crops_hold_an_object_where_random_crops_are_mostly_empty():
    # one small square object in a corner of a large empty image, and an empty image that is never chosen
    image = np.zeros((200, 200, 3), np.uint8)
    labels = np.zeros((200, 200), np.int64)
    labels[10:16, 170:176] = 7
    empty = np.zeros((200, 200), np.int64)
    torch.manual_seed(0)
    anywhere = PromptCrops([image, image], [labels, empty], size=32, samples_per_epoch=200)
    assert np.mean([len(anywhere[i][1]) for i in range(200)]) < 0.1
    centred = PromptCrops([image, image], [labels, empty], size=32, samples_per_epoch=200, object_crops=1.0)
    crops = [centred[i][1] for i in range(200)]
    assert all(len(m) == 1 and m[0].sum() >= 12 for m in crops)              # the object's centre (12, 172) is in
    assert len({tuple(np.argwhere(m[0].numpy())[0]) for m in crops}) > 20   # at many positions in the crop
    half = PromptCrops([image], [labels], size=32, samples_per_epoch=400, object_crops=0.5)
    share = np.mean([len(half[i][1]) for i in range(400)])
    assert 0.4 < share < 0.6
    with pytest.raises(ValueError, match="`object_crops`"):
        PromptCrops([image], [labels], size=32, samples_per_epoch=4, object_crops=1.5)
    with pytest.raises(ValueError, match="`object_crops`"):
        PromptCrops([image], [empty], size=32, samples_per_epoch=4, object_crops=0.5)
    with pytest.raises(ValueError, match="needs `samples_per_epoch`"):
        PromptCrops([image], [labels], size=32, object_crops=0.5)


def test_object_crops_off_draw_the_same_crops_as_before():
    # without object crops a crop costs four random draws (image, row, column, flip), as before the option
    # existed, so that the lessons' crops stay what they were for a seed
    scene = make_scene(5, 96)
    crops = PromptCrops([scene.image], [scene_labels(scene)], size=48, samples_per_epoch=5)
    torch.manual_seed(3)
    got = [crops[i][0] for i in range(5)]
    torch.manual_seed(3)
    for image in got:
        torch.randint(1, ())
        y, x = int(torch.randint(49, ())), int(torch.randint(49, ()))
        expected = scene.image[y:y + 48, x:x + 48]
        if torch.rand(()) < 0.5:
            expected = expected[:, ::-1]
        assert np.array_equal(image.numpy().transpose(1, 2, 0), expected)


def test_fixed_tiles_keep_tiles_with_objects_only():
    labels = np.zeros((64, 96), np.int64)
    labels[5:15, 5:15] = 1          # tile (0, 0)
    labels[40:42, 70:72] = 2        # 4 pixels in tile (1, 2): below min_area
    images = [np.zeros((64, 96, 3), np.uint8)]
    tiles, tile_labels = fixed_tiles(images, [labels], size=32, min_area=5)
    assert len(tiles) == 1 and tiles[0].shape == (32, 32, 3) and (tile_labels[0] == 1).sum() == 100


def test_mask_iou_and_loss_pick_the_best_candidate():
    target = torch.zeros(2, 8, 8, dtype=torch.bool)
    target[:, 2:6, 2:6] = True
    logits = torch.full((2, 3, 8, 8), -5.0)
    logits[0, 1][target[0]] = 5.0       # prompt 0: candidate 1 is right
    logits[1, 2][target[1]] = 5.0       # prompt 1: candidate 2 is right
    iou_pred = torch.zeros(2, 3)
    loss, best = promptable_loss(logits, iou_pred, target)
    assert best.tolist() == [1, 2]
    assert mask_iou(logits[0, 1] > 0, target[0]) == 1.0 and mask_iou(logits[0, 0] > 0, target[0]) == 0.0
    # the IoU head is trained towards the true IoU of every candidate
    right = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    loss_right, _ = promptable_loss(logits, right, target)
    assert loss_right < loss


def test_loss_of_coarse_masks_uses_the_area_averaged_target():
    # masks at half the target's resolution: the loss is BCE + Dice against each cell's covered share
    g = torch.Generator().manual_seed(3)
    target = torch.zeros(2, 8, 8, dtype=torch.bool)
    target[0, 1:6, 2:7] = True
    target[1, 4:8, 0:3] = True
    logits = torch.randn(2, 3, 4, 4, generator=g)
    iou_pred = torch.rand(2, 3, generator=g)
    loss, best = promptable_loss(logits, iou_pred, target)
    share = target.float().reshape(2, 4, 2, 4, 2).mean((2, 4))          # each 2 x 2 cell's covered fraction
    expected_mask, expected_iou = torch.zeros(2, 3), torch.zeros(2, 3)
    for i in range(2):
        for m in range(3):
            p = logits[i, m].sigmoid()
            bce = torch.nn.functional.binary_cross_entropy(p, share[i])
            dice = 1 - (2 * (p * share[i]).sum() + 1) / (p.sum() + share[i].sum() + 1)
            expected_mask[i, m] = bce + dice
            pred, truth = logits[i, m] > 0, share[i] > 0.5
            expected_iou[i, m] = (pred & truth).sum() / (pred | truth).sum()
    assert best.tolist() == expected_mask.argmin(1).tolist()
    expected = expected_mask.min(1).values.mean() + ((iou_pred - expected_iou) ** 2).mean()
    assert torch.allclose(loss, expected, atol=1e-5)


def test_the_small_model_is_a_segment_anything_model_with_the_package_parts():
    from segment_anything.modeling import PromptEncoder, Sam, TwoWayTransformer

    sam = build_promptable_sam(image_size=64, embed_dim=32, num_heads=2, mlp_dim=64, encoder_widths=(8, 8, 16, 16))
    assert isinstance(sam, Sam) and isinstance(sam.prompt_encoder, PromptEncoder)
    assert isinstance(sam.mask_decoder, BatchedMaskDecoder) and isinstance(sam.mask_decoder.transformer, TwoWayTransformer)
    emb = sam.image_encoder(sam.preprocess(torch.rand(2, 3, 64, 64) * 255))
    assert emb.shape == (2, 32, 8, 8)            # a grid of 1/8 of the input
    assert sam.prompt_encoder.get_dense_pe().shape == (1, 32, 8, 8)
    stride4 = build_promptable_sam(image_size=64, embed_dim=32, num_heads=2, mlp_dim=64, encoder_widths=(8, 8, 16, 16),
                                   stride=4, click_maps=False)
    assert type(stride4.prompt_encoder) is PromptEncoder
    assert stride4.image_encoder(torch.rand(1, 3, 64, 64)).shape == (1, 32, 16, 16)
    rows = sam_parts_summary(sam)
    assert [r["part"] for r in rows] == ["image_encoder", "prompt_encoder", "mask_decoder", "total"]
    assert rows[-1]["parameters"] == sum(p.numel() for p in sam.parameters())
    with pytest.raises(ValueError, match="`img_size`"):
        build_promptable_sam(image_size=72)
    with pytest.raises(ValueError, match="`embed_dim`"):
        build_promptable_sam(embed_dim=40)


def test_batched_decoder_equals_the_package_decoder_prompt_by_prompt():
    torch.manual_seed(0)
    sam = build_promptable_sam(image_size=64, embed_dim=32, num_heads=2, mlp_dim=64, encoder_widths=(8, 8, 16, 16)).eval()
    emb = sam.image_encoder(torch.randn(3, 3, 64, 64))
    assert emb.shape == (3, 32, 8, 8)
    pe = sam.prompt_encoder.get_dense_pe()
    points = torch.rand(3, 2, 2) * 64
    labels = torch.tensor([[1, 0], [1, 1], [1, -1]])
    sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=None, masks=None)
    with torch.no_grad():
        batched, iou_b = sam.mask_decoder(emb, pe, sparse, dense, multimask_output=True)
        for i in range(3):   # the package's path: one image embedding, one prompt
            single, iou_s = sam.mask_decoder(emb[i:i + 1], pe, sparse[i:i + 1], dense[i:i + 1], multimask_output=True)
            torch.testing.assert_close(batched[i:i + 1], single, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(iou_b[i:i + 1], iou_s, atol=1e-5, rtol=1e-5)
        assert batched.shape == (3, 3, 32, 32)    # masks at four times the grid
        with pytest.raises(ValueError, match="`image_embeddings`"):
            sam.mask_decoder(emb[:2], pe, sparse, dense, multimask_output=True)


def _small_detail_sam(**kwargs):
    return build_promptable_sam(image_size=64, embed_dim=32, num_heads=2, mlp_dim=64, encoder_widths=(8, 8, 16, 16),
                                **kwargs)


def test_detail_map_travels_folded_inside_the_embedding():
    torch.manual_seed(0)
    sam = _small_detail_sam(detail_chans=4)
    x = torch.randn(2, 3, 64, 64)
    emb = sam.image_encoder(x)
    assert emb.shape == (2, 32 + 4 * 4, 8, 8)           # embedding + a 16 x 16 x 4 map folded onto the 8 x 8 grid
    enc = sam.image_encoder
    c2 = enc.stage2(enc.stage1(x))
    c3 = enc.stage3(c2)
    detail = enc.detail_fine(c2) + torch.nn.functional.interpolate(enc.detail_coarse(c3), scale_factor=2)
    assert detail.shape == (2, 4, 16, 16)                 # 1/4 of the image
    torch.testing.assert_close(torch.nn.functional.pixel_shuffle(emb[:, 32:], 2), detail)
    assert sam_parts_summary(sam)[2]["input"] == "embedding 32x8x8 + detail 4x16x16 + prompts"
    with pytest.raises(ValueError, match="`detail_chans` needs `stride` 8"):
        _small_detail_sam(detail_chans=4, stride=4)
    with pytest.raises(ValueError, match="`detail_chans`"):
        _small_detail_sam(detail_chans=-1)


@pytest.mark.parametrize("options", [{"detail_chans": 4}, {"mask_scoring": True},
                                     {"detail_chans": 4, "mask_scoring": True}])
def test_decoder_options_batched_equals_one_image_and_work_with_the_predictor(options):
    from segment_anything import SamPredictor

    torch.manual_seed(0)
    sam = _small_detail_sam(**options).eval()
    dec = sam.mask_decoder
    assert hasattr(dec, "iou_prediction_head") != dec.mask_scoring        # the mask-aware head replaces SAM's
    emb = sam.image_encoder(torch.randn(3, 3, 64, 64))
    pe = sam.prompt_encoder.get_dense_pe()
    points, labels = torch.rand(3, 1, 2) * 64, torch.ones(3, 1, dtype=torch.long)
    sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=None, masks=None)
    with torch.no_grad():
        batched, iou_b = dec(emb, pe, sparse, dense, multimask_output=True)
        assert batched.shape == (3, 3, 32, 32) and iou_b.shape == (3, 3)
        for i in range(3):   # one image embedding for one prompt: the same numbers
            single, iou_s = dec(emb[i:i + 1], pe, sparse[i:i + 1], dense[i:i + 1], multimask_output=True)
            torch.testing.assert_close(batched[i:i + 1], single, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(iou_b[i:i + 1], iou_s, atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="channels"):
            dec(emb[:, :20], pe, sparse, dense, multimask_output=True)
    predictor = SamPredictor(sam)
    predictor.set_image(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    masks, scores, low_res = predictor.predict(point_coords=np.array([[20.0, 30.0]]), point_labels=np.array([1]))
    assert masks.shape == (3, 48, 64) and scores.shape == (3,) and low_res.shape == (3, 32, 32)


def test_mask_scores_see_the_masks():
    # the mask-aware IoU head's answer changes when only a candidate's mask changes, and its pooling is
    # the mean of the features inside the mask and in the ring around it
    torch.manual_seed(0)
    dec = _small_detail_sam(mask_scoring=True).mask_decoder.eval()
    features = torch.randn(1, 4, 32, 32)
    token = torch.randn(1, 32)
    inside = torch.full((1, 1, 32, 32), -20.0)
    inside[..., 10:20, 10:20] = 20.0
    bigger = torch.full((1, 1, 32, 32), -20.0)
    bigger[..., 6:24, 6:24] = 20.0
    with torch.no_grad():
        a = dec._mask_scores(inside, (features,), token)
        b = dec._mask_scores(bigger, (features,), token)
        assert a.shape == (1, 1) and not torch.allclose(a, b)
        captured = []
        hook = dec.mask_scorer.register_forward_hook(lambda m, i, o: captured.append(i[0]))
        dec._mask_scores(inside, (features,), token)
        hook.remove()
    x = captured[0][0, 0]
    ring = torch.zeros(32, 32, dtype=torch.bool)
    ring[8:22, 8:22] = True
    ring[10:20, 10:20] = False
    torch.testing.assert_close(x[32:36], features[0][:, 10:20, 10:20].mean((1, 2)) * 100 / 101)
    torch.testing.assert_close(x[36:40], features[0][:, ring].mean(1) * ring.sum() / (ring.sum() + 1))
    torch.testing.assert_close(x[40], torch.tensor(100 / 1024))


def test_click_maps_draw_positive_and_negative_clicks_and_the_box():
    sam = build_promptable_sam(image_size=64, embed_dim=32, num_heads=2, mlp_dim=64, encoder_widths=(8, 8, 16, 16),
                               click_sigma=2.0)
    enc = sam.prompt_encoder
    points = torch.tensor([[[10.0, 20.0], [40.0, 5.0], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0, -1]])                  # positive, negative, padding
    maps = enc.click_maps((points, labels), torch.tensor([[30.0, 30.0, 45.0, 50.0]]), 1)
    assert maps.shape == (1, 3, 32, 32)                   # the mask-prompt grid, half the 64-pixel input
    pos, neg, box = maps[0]
    assert torch.nonzero(pos == pos.max())[0].tolist() == [10, 5] and pos.max() > 0.9   # (y, x) / 2
    assert torch.nonzero(neg == neg.max())[0].tolist() == [2, 20]
    assert pos[0, 0] < 0.01 and neg[0, 0] < 0.01          # the padding point draws nothing
    assert box[15:25, 15:22].all() and box[:14].sum() == 0 and box[:, :14].sum() == 0
    sparse, dense = enc(points=(points, labels), boxes=None, masks=None)
    assert sparse.shape == (1, 4, 32) and dense.shape == (1, 32, 8, 8)   # SAM pads point prompts with one "not a point"
    with pytest.raises(ValueError, match="`click_sigma`"):
        build_promptable_sam(click_sigma=0)


def _tiny_training_set():
    scenes = [make_scene(s, 64, max_objects=3) for s in range(6)]
    return PromptCrops([s.image for s in scenes], [scene_labels(s) for s in scenes], size=64, samples_per_epoch=8,
                       min_area=4)


def test_training_lowers_the_loss_and_the_predictor_and_evaluation_run():
    torch.manual_seed(0)
    sam = build_promptable_sam(image_size=64, embed_dim=32, num_heads=2, mlp_dim=64, encoder_widths=(8, 16, 16, 32))
    loader = torch.utils.data.DataLoader(_tiny_training_set(), batch_size=4, collate_fn=collate_prompt_crops)
    images, masks_list = next(iter(loader))
    fixed = [(images, masks_list)] * 1000
    opt = torch.optim.Adam(sam.parameters(), lr=3e-3)
    history = train_promptable(sam, iter(fixed), 40, opt, clicks=2, box_fraction=0.3, progress=False)
    assert len(history) == 40 and np.isfinite(history).all()
    assert np.mean(history[-5:]) < 0.8 * np.mean(history[:5])
    scene = make_scene(100, 64, max_objects=3)
    result = click_evaluation(sam, [scene.image], [scene_labels(scene)], clicks=3, progress=False)
    assert result["iou"].shape == (scene.num_instances, 3) and result["objects"] == scene.num_instances
    assert ((0 <= result["iou"]) & (result["iou"] <= 1)).all()


def test_train_promptable_checks_its_arguments():
    sam = build_promptable_sam(image_size=64, embed_dim=32, num_heads=2, mlp_dim=64, encoder_widths=(8, 8, 16, 16))
    opt = torch.optim.Adam(sam.parameters())
    with pytest.raises(ValueError, match="`box_fraction`"):
        train_promptable(sam, [], 1, opt, box_fraction=2.0)
    with pytest.raises(ValueError, match="`clicks`"):
        train_promptable(sam, [], 1, opt, clicks=0)
    with pytest.raises(ValueError, match="`grad_clip`"):
        train_promptable(sam, [], 1, opt, grad_clip=0.0)
    with pytest.raises(ValueError, match="`first_click`"):
        train_promptable(sam, [], 1, opt, first_click="centre")


def test_first_click_chooses_where_round_one_is_sampled(monkeypatch):
    import utils.prompting as prompting

    sam = build_promptable_sam(image_size=64, embed_dim=32, num_heads=2, mlp_dim=64, encoder_widths=(8, 16, 16, 32))
    loader = torch.utils.data.DataLoader(_tiny_training_set(), batch_size=4, collate_fn=collate_prompt_crops)
    batch = next(iter(loader))
    seen = []

    def spy(masks, generator=None, where="uniform"):
        seen.append(where)
        return sample_points(masks, generator, where)

    monkeypatch.setattr(prompting, "sample_points", spy)
    for first_click in ("interior", "uniform"):
        seen.clear()
        opt = torch.optim.Adam(sam.parameters(), lr=1e-3)
        history = train_promptable(sam, iter([batch] * 2), 2, opt, clicks=2, box_fraction=0.0, first_click=first_click,
                                   progress=False)
        assert seen == [first_click] * 2 and np.isfinite(history).all()


def test_grad_clip_bounds_the_gradient_norm_of_each_step():
    torch.manual_seed(0)
    sam = build_promptable_sam(image_size=64, embed_dim=32, num_heads=2, mlp_dim=64, encoder_widths=(8, 16, 16, 32))
    loader = torch.utils.data.DataLoader(_tiny_training_set(), batch_size=4, collate_fn=collate_prompt_crops)
    batch = next(iter(loader))
    norms = {}
    for clip in (None, 1e-3):
        model = copy.deepcopy(sam)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)        # lr 0: the weights stay, the gradients are kept
        seen = []
        opt.register_step_pre_hook(lambda o, a, k, m=model: seen.append(
            torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in m.parameters() if p.grad is not None]))))
        train_promptable(model, iter([batch] * 3), 3, opt, clicks=2, grad_clip=clip, progress=False)
        norms[clip] = torch.stack(seen)
    assert (norms[None] > 1e-2).all()                               # unclipped: the usual size
    assert torch.allclose(norms[1e-3], torch.full_like(norms[1e-3], 1e-3), rtol=1e-3)


def test_importing_utils_models_does_not_import_segment_anything():
    code = "import sys, utils.models, utils.prompting; print('segment_anything' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_enlarge_matches_the_predictors_resize_and_keeps_every_label_whole():
    from segment_anything.utils.transforms import ResizeLongestSide

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    labels = np.zeros((20, 30), np.int64)
    labels[2:6, 3:9], labels[10:18, 20:29] = 1, 7
    (big,), (big_labels,) = enlarge([image], [labels], 2)
    assert big.shape == (40, 60, 3) and big_labels.shape == (40, 60)
    assert np.array_equal(big, ResizeLongestSide(60).apply_image(image))      # what SamPredictor does to the image
    assert set(np.unique(big_labels)) == {0, 1, 7}
    assert (big_labels == 1).sum() == 4 * (labels == 1).sum() and (big_labels == 7).sum() == 4 * (labels == 7).sum()
    same = enlarge([image], [labels], 1)
    assert same[0][0] is image and same[1][0] is labels
    with pytest.raises(ValueError, match="`zoom`"):
        enlarge([image], [labels], 0)
    with pytest.raises(ValueError, match="one length"):
        enlarge([image], [], 2)
    with pytest.raises(ValueError, match=r"`images\[0\]`"):
        enlarge([image[..., 0]], [labels], 2)
