"""utils.models.panoptic_deeplab: targets on hand-made panoptic maps, the model's outputs, the loss, centre finding
and grouping on hand-made predictions, prediction, and a short training run on tiny scenes."""
import numpy as np
import pytest
import torch

from utils.models.panoptic_deeplab import (
    PanopticDeepLabLite,
    find_centers,
    group_panoptic,
    panoptic_batch,
    panoptic_loss,
    panoptic_targets,
    predict_panoptic,
    train_panoptic_deeplab,
)
from utils.scenes import THING_CLASSES, make_scenes

THINGS = (1, 2, 3)


def _two_squares(h=20, w=24):
    """Stuff 0 everywhere, stuff 4 on the last two rows, a 5x5 square of class 1 (instance 1) with centre (4, 5)
    and a 3x3 square of class 2 (instance 2) with centre (12, 17)."""
    pan = np.zeros((h, w), np.int32)
    pan[-2:] = 4000
    pan[2:7, 3:8] = 1001
    pan[11:14, 16:19] = 2002
    return pan


def _segments(panoptic):
    """The partition of a panoptic map as a set of (class, frozenset of flat pixel indices), numbering ignored."""
    flat = panoptic.ravel()
    return {(int(v) // 1000, frozenset(np.flatnonzero(flat == v).tolist())) for v in np.unique(flat)}


# ------------------------------------------------------------------------------------------------
# targets


def test_targets_on_two_squares():
    t = panoptic_targets(_two_squares(), THINGS, sigma=2.0)
    assert t["semantic"].dtype == np.int64 and t["center"].dtype == np.float32
    assert t["offset"].shape == (2, 20, 24) and t["offset"].dtype == np.float32
    np.testing.assert_array_equal(t["centers"], [[4, 5], [12, 17]])
    np.testing.assert_array_equal(t["ids"], [1001, 2002])
    np.testing.assert_array_equal(t["semantic"], _two_squares() // 1000)
    # the heatmap peaks at exactly 1 on each centre and is a Gaussian of sigma 2 around it
    assert t["center"][4, 5] == 1.0 and t["center"][12, 17] == 1.0
    assert t["center"][4, 8] == pytest.approx(np.exp(-9 / 8))
    assert t["center"][0, 23] < 1e-6
    # offsets are (dy, dx) = centre - pixel on thing pixels, zero on stuff
    np.testing.assert_array_equal(t["offset"][:, 2, 3], [2, 2])
    np.testing.assert_array_equal(t["offset"][:, 6, 7], [-2, -2])
    np.testing.assert_array_equal(t["offset"][:, 11, 18], [1, -1])
    stuff = ~np.isin(_two_squares() // 1000, THINGS)
    assert not t["offset"][:, stuff].any()
    np.testing.assert_array_equal(t["offset_weights"], (~stuff).astype(np.float32))
    np.testing.assert_array_equal(t["semantic_weights"], np.ones((20, 24), np.float32))
    # every thing pixel plus its offset lands on its own centre
    ys, xs = np.nonzero(~stuff)
    landed = np.stack([ys + t["offset"][0, ys, xs], xs + t["offset"][1, ys, xs]], 1)
    own = np.where((_two_squares()[ys, xs] == 1001)[:, None], [[4, 5]], [[12, 17]])
    np.testing.assert_array_equal(landed, own)


def test_targets_heatmap_is_max_not_sum():
    pan = np.zeros((10, 20), np.int32)
    pan[4:7, 4:7] = 1001   # centre (5, 5)
    pan[4:7, 8:11] = 1002  # centre (5, 9)
    t = panoptic_targets(pan, THINGS, sigma=2.0)
    assert t["center"][5, 7] == pytest.approx(np.exp(-4 / 8))  # equidistant: max of two equal bumps
    assert t["center"].max() == 1.0


def test_targets_centre_of_mass_is_rounded():
    pan = np.zeros((10, 10), np.int32)
    pan[2:4, 2:4] = 3001      # centre of mass (2.5, 2.5) -> rounded half to even: (2, 2)
    pan[6, 5:8] = 3002        # centre of mass (6, 6)
    t = panoptic_targets(pan, THINGS)
    np.testing.assert_array_equal(t["centers"], [[2, 2], [6, 6]])


def test_targets_without_things_and_with_unnumbered_thing_pixels():
    pan = np.full((8, 8), 5000, np.int32)  # one stuff class (5), no thing
    t = panoptic_targets(pan, THINGS)
    assert not t["center"].any() and not t["offset"].any() and not t["offset_weights"].any()
    assert t["centers"].shape == (0, 2)
    pan[2:4, 2:4] = 2000  # thing class with instance number 0: semantic only
    t = panoptic_targets(pan, THINGS)
    assert t["semantic"][2, 2] == 2 and not t["center"].any() and not t["offset_weights"].any()


def test_targets_small_instance_weights_and_divisor():
    pan = _two_squares() // 1000 * 256 + _two_squares() % 1000
    t = panoptic_targets(pan, THINGS, divisor=256, small_instance_area=10, small_instance_weight=3.0)
    np.testing.assert_array_equal(t["centers"], [[4, 5], [12, 17]])
    assert t["semantic_weights"][12, 17] == 3.0   # 9 pixels < 10
    assert t["semantic_weights"][4, 5] == 1.0     # 25 pixels
    assert t["semantic_weights"][0, 0] == 1.0


def test_batch_flips_recompute_offsets():
    scene = make_scenes(1, size=40, split="val")[0]
    images, flipped = panoptic_batch([scene], THINGS, flips=[[True, True]])
    _, plain = panoptic_batch([scene], THINGS)
    torch.testing.assert_close(images[0], torch.from_numpy(scene.image.copy()).permute(2, 0, 1).flip(1, 2) / 255)
    torch.testing.assert_close(flipped["center"], plain["center"].flip(-1, -2))
    # after flipping both axes the centre lies on the other side: both offset components change sign
    torch.testing.assert_close(flipped["offset"], -plain["offset"].flip(-1, -2))
    assert flipped["center"].shape == (1, 1, 40, 40) and flipped["semantic"].dtype == torch.int64


@pytest.mark.parametrize("kwargs, match", [
    ({"panoptic": np.zeros((2, 3, 4), np.int32)}, "`panoptic` must be an \\(H, W\\) integer map"),
    ({"panoptic": np.zeros((3, 4), np.float32)}, "`panoptic` must be an \\(H, W\\) integer map"),
    ({"panoptic": -np.ones((3, 4), np.int32)}, "non-negative"),
    ({"things": ()}, "`things` must be a non-empty"),
    ({"things": "123"}, "`things` must be a sequence"),
    ({"things": (1, 1)}, "must not repeat"),
    ({"sigma": 0}, "`sigma` must be a positive number"),
    ({"divisor": 0}, "`divisor` must be an int >= 1"),
    ({"small_instance_area": 2.5}, "`small_instance_area`"),
])
def test_targets_errors(kwargs, match):
    args = {"panoptic": _two_squares(), "things": THINGS, **kwargs}
    with pytest.raises(ValueError, match=match):
        panoptic_targets(**args)


def test_batch_errors():
    scenes = make_scenes(2, size=32, split="val")
    with pytest.raises(ValueError, match="`scenes` must be a non-empty list"):
        panoptic_batch([], THINGS)
    with pytest.raises(ValueError, match="`flips` must be a \\(2, 2\\) bool array"):
        panoptic_batch(scenes, THINGS, flips=[[True, False]])


# ------------------------------------------------------------------------------------------------
# the model


@pytest.mark.parametrize("size, output_stride", [((32, 32), 1), ((37, 50), 2), ((40, 24), 4)])
def test_model_outputs(size, output_stride):
    torch.manual_seed(0)
    model = PanopticDeepLabLite(5, width=4, instance_width=2, output_stride=output_stride).eval()
    out = model(torch.rand(2, 3, *size))
    assert set(out) == {"semantic", "center", "offset"}
    assert out["semantic"].shape == (2, 5, *size)
    assert out["center"].shape == (2, 1, *size)
    assert out["offset"].shape == (2, 2, *size)
    # the centre and offset heads start at zero: no centre anywhere, no offset
    assert not out["center"].any() and not out["offset"].any()


def test_model_default_size_is_small():
    model = PanopticDeepLabLite(4)
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 1_000_000
    assert model.config["output_stride"] == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": 1}, "`num_classes` must be an int >= 2"),
    ({"width": 0}, "`width`"),
    ({"output_stride": 3}, "`output_stride` must be 1, 2 or 4"),
    ({"output_stride": 4, "depth": 2}, "below 2\\*\\*depth = 4"),
    ({"norm": "layer"}, "`norm` must be one of"),
])
def test_model_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PanopticDeepLabLite(**{"num_classes": 4, **kwargs})


def test_model_rejects_unbatched_input():
    with pytest.raises(ValueError, match="`x` must be a \\(B, C, H, W\\) batch"):
        PanopticDeepLabLite(4, width=4)(torch.rand(3, 16, 16))


# ------------------------------------------------------------------------------------------------
# the loss


def _perfect_outputs(targets, num_classes=5):
    logits = torch.nn.functional.one_hot(targets["semantic"], num_classes).permute(0, 3, 1, 2).float() * 100
    return {"semantic": logits, "center": targets["center"].clone(), "offset": targets["offset"].clone()}


def _hand_targets():
    t = panoptic_targets(_two_squares(), THINGS)
    keys = ("semantic", "center", "offset", "offset_weights", "semantic_weights")
    batch = {k: torch.from_numpy(t[k])[None] for k in keys}
    batch["center"] = batch["center"][:, None]
    return batch


def test_loss_is_zero_for_perfect_predictions():
    targets = _hand_targets()
    losses = panoptic_loss(_perfect_outputs(targets), targets)
    assert set(losses) == {"loss", "semantic", "center", "offset"}
    assert float(losses["loss"]) == pytest.approx(0.0, abs=1e-6)


def test_loss_offset_term_by_hand():
    targets = _hand_targets()
    outputs = _perfect_outputs(targets)
    outputs["offset"] = torch.zeros_like(outputs["offset"])
    outputs["offset"][:, :, 0, 0] = 50.0  # a stuff pixel: its offset does not count
    # mean over the 34 thing pixels of |dy| + |dx|: on the 5x5 square each axis sums 5 * (2+1+0+1+2) = 30,
    # on the 3x3 square 3 * (1+0+1) = 6
    expected = (2 * 30 + 2 * 6) / 34
    losses = panoptic_loss(outputs, targets, offset_weight=0.5)
    assert float(losses["offset"]) == pytest.approx(0.5 * expected)
    assert float(losses["semantic"]) == pytest.approx(0.0, abs=1e-6)


def test_loss_centre_term_and_bootstrapping():
    targets = _hand_targets()
    outputs = _perfect_outputs(targets)
    outputs["center"] = outputs["center"] + 0.1
    assert float(panoptic_loss(outputs, targets, center_weight=200)["center"]) == pytest.approx(200 * 0.01)
    # one wrong pixel: the bootstrapped loss averages it over 20% of the pixels, the plain one over all
    outputs = _perfect_outputs(targets)
    outputs["semantic"][0, :, 0, 0] = torch.tensor([0.0, 0, 0, 100, 0])
    n = 20 * 24
    top = float(panoptic_loss(outputs, targets, top_k_percent=0.2)["semantic"])
    plain = float(panoptic_loss(outputs, targets, top_k_percent=1.0)["semantic"])
    assert top == pytest.approx(100 / int(0.2 * n), rel=1e-4)
    assert plain == pytest.approx(100 / n, rel=1e-4)


def test_loss_errors():
    targets = _hand_targets()
    outputs = _perfect_outputs(targets)
    with pytest.raises(ValueError, match="`outputs` must be a dict with keys"):
        panoptic_loss({"semantic": outputs["semantic"]}, targets)
    with pytest.raises(ValueError, match="`targets\\['center'\\]` must have shape"):
        panoptic_loss(outputs, {**targets, "center": targets["center"][:, 0]})
    with pytest.raises(ValueError, match="class ids in \\[0, 3\\)"):
        panoptic_loss({**outputs, "semantic": outputs["semantic"][:, :3]}, targets)
    with pytest.raises(ValueError, match="`top_k_percent` must be in \\(0, 1\\]"):
        panoptic_loss(outputs, targets, top_k_percent=0)
    with pytest.raises(ValueError, match="`center_weight` must be a non-negative number"):
        panoptic_loss(outputs, targets, center_weight=-1)


# ------------------------------------------------------------------------------------------------
# centres and grouping


def test_find_centers_nms_threshold_top_k():
    heat = np.zeros((20, 20), np.float32)
    heat[5, 5], heat[5, 7] = 0.9, 0.8   # 2 pixels apart: one window of 7 -> only the higher survives
    heat[15, 15] = 0.5
    heat[2, 17] = 0.05                  # below the threshold
    centers, scores = find_centers(heat, threshold=0.1, nms_kernel=7)
    np.testing.assert_array_equal(centers, [[5, 5], [15, 15]])
    np.testing.assert_allclose(scores, [0.9, 0.5])
    centers, _ = find_centers(torch.from_numpy(heat)[None], threshold=0.1, nms_kernel=3)
    np.testing.assert_array_equal(centers, [[5, 5], [5, 7], [15, 15]])
    centers, _ = find_centers(heat, threshold=0.1, nms_kernel=3, top_k=1)
    np.testing.assert_array_equal(centers, [[5, 5]])
    assert find_centers(np.zeros((4, 4), np.float32))[0].shape == (0, 2)


def test_find_centers_errors():
    with pytest.raises(ValueError, match="`nms_kernel` must be odd"):
        find_centers(np.zeros((4, 4), np.float32), nms_kernel=4)
    with pytest.raises(ValueError, match="`center_heatmap` must be \\(H, W\\) or \\(1, H, W\\)"):
        find_centers(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="`top_k` must be an int >= 1 or None"):
        find_centers(np.zeros((4, 4), np.float32), top_k=0)


def test_group_two_blobs_with_exact_centres_and_offsets():
    pan = _two_squares()
    t = panoptic_targets(pan, THINGS)
    out = group_panoptic(t["semantic"], t["center"], t["offset"], THINGS)
    assert out.dtype == np.int32 and out.shape == pan.shape
    np.testing.assert_array_equal(out, pan)  # numbered in order of centre score: ties keep raster order


def test_group_touching_blobs_of_one_class_are_split_by_offsets():
    semantic = np.zeros((10, 20), np.int64)
    semantic[2:8, 2:18] = 3                      # one connected region of class 3
    heat = np.zeros((10, 20), np.float32)
    heat[5, 5], heat[5, 14] = 1.0, 0.7
    ys, xs = np.mgrid[0:10, 0:20]
    left = xs < 10
    offsets = np.stack([5 - ys, np.where(left, 5, 14) - xs]).astype(np.float32)
    out = group_panoptic(semantic, heat, offsets, THINGS)
    np.testing.assert_array_equal(np.unique(out), [0, 3001, 3002])
    assert (out[2:8, 2:10] == 3001).all() and (out[2:8, 10:18] == 3002).all()
    # without the offsets each pixel joins the nearest centre to itself: the split moves to the midpoint x = 9.5
    out = group_panoptic(semantic, heat, np.zeros_like(offsets), THINGS)
    assert (out[2:8, 2:10] == 3001).all() and (out[2:8, 10:18] == 3002).all()
    offsets[1][:, 8:10] += 9                   # pixels at x = 8, 9 now point at the right centre
    out = group_panoptic(semantic, heat, offsets, THINGS)
    assert (out[2:8, 8:10] == 3002).all()


def test_group_majority_vote_logits_and_stuff_classes():
    semantic = np.zeros((10, 10), np.int64)
    semantic[:, 8:] = 5                 # a second stuff class
    semantic[2:6, 2:6] = 1
    semantic[2, 2:5] = 2                # 3 of 16 pixels say class 2: the vote says 1
    heat = np.zeros((10, 10), np.float32)
    heat[4, 4] = 1.0
    offsets = np.zeros((2, 10, 10), np.float32)
    expected = np.zeros((10, 10), np.int32)
    expected[:, 8:] = 5000
    expected[2:6, 2:6] = 1001
    np.testing.assert_array_equal(group_panoptic(semantic, heat, offsets, THINGS), expected)
    logits = torch.nn.functional.one_hot(torch.from_numpy(semantic), 6).permute(2, 0, 1).float()
    np.testing.assert_array_equal(group_panoptic(logits, torch.from_numpy(heat)[None], offsets, THINGS), expected)
    # stuff_area drops class 5 (20 pixels) to void; thing_area drops the instance
    out = group_panoptic(semantic, heat, offsets, THINGS, stuff_area=30, void=-1)
    assert (out[:, 8:] == -1).all() and (out[2:6, 2:6] == 1001).all()
    out = group_panoptic(semantic, heat, offsets, THINGS, thing_area=17, void=-1)
    assert (out[2:6, 2:6] == -1).all() and (out[0, :8] == 0).all() and (out[:, 8:] == 5000).all()


def test_group_without_centres_leaves_thing_pixels_void():
    semantic = np.zeros((8, 8), np.int64)
    semantic[2:5, 2:5] = 2
    out = group_panoptic(semantic, np.zeros((8, 8), np.float32), np.zeros((2, 8, 8), np.float32), THINGS, void=-1)
    assert (out[2:5, 2:5] == -1).all() and (out[semantic == 0] == 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_group_round_trip_on_scenes(seed):
    scene = make_scenes(seed + 1, size=64, split="val")[seed]
    t = panoptic_targets(scene.panoptic, THING_CLASSES)
    out = group_panoptic(t["semantic"], t["center"], t["offset"], THING_CLASSES, nms_kernel=3)
    assert _segments(out) == _segments(scene.panoptic)


@pytest.mark.parametrize("kwargs, match", [
    ({"semantic": np.zeros((3, 8, 8), np.int64)}, "must be float logits"),
    ({"semantic": np.zeros((8, 8), np.float32)}, "`semantic` must be \\(C, H, W\\) float logits or \\(H, W\\)"),
    ({"offsets": np.zeros((2, 8, 9), np.float32)}, "`offsets` must be \\(2, H, W\\)"),
    ({"center_heatmap": np.zeros((8, 9), np.float32)}, "`center_heatmap` must be \\(8, 8\\)"),
    ({"things": []}, "`things` must be a non-empty"),
    ({"stuff_area": -1}, "`stuff_area` must be an int >= 0"),
    ({"void": 0.5}, "`void` must be an int"),
    ({"semantic": [[0]]}, "`semantic` must be a NumPy array or a torch tensor"),
])
def test_group_errors(kwargs, match):
    args = {"semantic": np.zeros((8, 8), np.int64), "center_heatmap": np.zeros((8, 8), np.float32),
            "offsets": np.zeros((2, 8, 8), np.float32), "things": THINGS, **kwargs}
    with pytest.raises(ValueError, match=match):
        group_panoptic(**args)


# ------------------------------------------------------------------------------------------------
# prediction and training


def test_predict_accepts_scenes_arrays_and_tensors():
    torch.manual_seed(0)
    model = PanopticDeepLabLite(4, width=4, instance_width=2)
    scenes = make_scenes(3, size=32, split="val")
    maps, outputs = predict_panoptic(model, scenes, THINGS, batch_size=2, return_outputs=True)
    assert maps.shape == (3, 32, 32) and maps.dtype == np.int32
    assert outputs["semantic"].shape == (3, 4, 32, 32)
    assert model.training  # the mode is restored
    images = np.stack([s.image for s in scenes])
    np.testing.assert_array_equal(predict_panoptic(model, images, THINGS), maps)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    np.testing.assert_array_equal(predict_panoptic(model, tensor, THINGS), maps)
    assert predict_panoptic(model, scenes[0].image, THINGS).shape == (1, 32, 32)
    with pytest.raises(ValueError, match="`images` as arrays must be uint8"):
        predict_panoptic(model, images.astype(np.float32), THINGS)


def test_training_lowers_the_loss_and_repeats_with_a_seed():
    scenes = make_scenes(8, size=32, split="train")

    def run():
        torch.manual_seed(0)
        model = PanopticDeepLabLite(4, width=8, instance_width=4)
        return model, train_panoptic_deeplab(model, scenes, 30, things=THINGS, batch_size=4, lr=1e-2, seed=0,
                                             progress=False, device="cpu")

    model, history = run()
    assert len(history) == 30 and not model.training
    assert set(history[0]) == {"step", "loss", "semantic", "center", "offset", "lr", "seconds"}
    assert [r["step"] for r in history] == list(range(1, 31))
    assert all(b["seconds"] >= a["seconds"] for a, b in zip(history, history[1:]))
    assert max(r["lr"] for r in history) == pytest.approx(1e-2, rel=0.05) and history[-1]["lr"] < 1e-3
    first = np.mean([r["loss"] for r in history[:5]])
    last = np.mean([r["loss"] for r in history[-5:]])
    assert last < 0.7 * first
    _, again = run()
    assert [r["loss"] for r in again] == pytest.approx([r["loss"] for r in history], rel=1e-4)


def test_training_errors():
    scenes = make_scenes(2, size=32, split="train")
    model = PanopticDeepLabLite(4, width=4)
    with pytest.raises(ValueError, match="fewer than one batch of 4"):
        train_panoptic_deeplab(model, scenes, 1, things=THINGS, batch_size=4)
    with pytest.raises(ValueError, match="`train_scenes` must be a list of Scenes"):
        train_panoptic_deeplab(model, [scenes[0].image], 1, things=THINGS, batch_size=1)
    with pytest.raises(ValueError, match="`lr` must be a positive number"):
        train_panoptic_deeplab(model, scenes, 1, things=THINGS, batch_size=2, lr=0)
    with pytest.raises(ValueError, match="`steps` must be an int >= 1"):
        train_panoptic_deeplab(model, scenes, 0, things=THINGS)
    with pytest.raises(ValueError, match="`model` must be a torch.nn.Module"):
        train_panoptic_deeplab(None, scenes, 1, things=THINGS, batch_size=2)
