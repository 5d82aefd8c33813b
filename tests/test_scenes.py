"""The generated scenes: consistency of semantic, instance and panoptic truth, determinism, speed-independent facts."""
import numpy as np
import pytest

from utils.scenes import (CLASS_NAMES, PANOPTIC_DIVISOR, make_scene, make_scenes, panoptic_decode,
                          split_seed)

SEEDS = list(range(40))


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(s, 96) for s in SEEDS] + [make_scene(s, (64, 112)) for s in range(10)]


def test_contracts(scenes):
    for s in scenes:
        h, w = s.semantic.shape
        assert s.image.shape == (h, w, 3) and s.image.dtype == np.uint8
        assert s.semantic.dtype == np.uint8 and s.semantic.max() < len(CLASS_NAMES)
        assert s.instance_masks.shape == (s.num_instances, h, w) and s.instance_masks.dtype == bool
        assert s.boxes_xyxy.shape == (s.num_instances, 4) and s.boxes_xyxy.dtype == np.float32
        assert s.labels.dtype == np.int64 and set(s.labels.tolist()) <= {1, 2, 3}
        assert s.panoptic.shape == (h, w) and s.panoptic.dtype == np.int32


def test_union_of_instances_is_semantic_foreground(scenes):
    for s in scenes:
        assert np.array_equal(s.instance_masks.any(0), s.semantic > 0)
        assert s.instance_masks.sum(0).max() <= 1, "instance masks must be disjoint (visible parts)"


def test_instance_class_matches_semantic(scenes):
    for s in scenes:
        for m, k in zip(s.instance_masks, s.labels):
            assert m.any()
            assert np.all(s.semantic[m] == k)


def test_boxes_enclose_masks_tightly(scenes):
    for s in scenes:
        for m, (x0, y0, x1, y1) in zip(s.instance_masks, s.boxes_xyxy):
            ys, xs = np.nonzero(m)
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == (x0, y0, x1, y1)


def test_boxes_match_torchvision_masks_to_boxes(scenes):
    torch = pytest.importorskip("torch")
    from torchvision.ops import masks_to_boxes

    s = scenes[0]
    assert np.allclose(masks_to_boxes(torch.from_numpy(s.instance_masks)).numpy(), s.boxes_xyxy)


def test_panoptic_ids_unique_and_decode(scenes):
    for s in scenes:
        classes, numbers = panoptic_decode(s.panoptic)
        assert np.array_equal(classes, s.semantic)
        assert np.all(numbers[s.semantic == 0] == 0)
        for j, (m, k) in enumerate(zip(s.instance_masks, s.labels)):
            ids = np.unique(s.panoptic[m])
            assert ids.tolist() == [k * PANOPTIC_DIVISOR + j + 1]
        thing_ids = np.unique(s.panoptic[s.semantic > 0])
        assert len(thing_ids) == s.num_instances  # one id per instance, none shared


def test_deterministic_per_seed_and_different_across_seeds():
    a, b, c = make_scene(5, 64), make_scene(5, 64), make_scene(6, 64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.panoptic, b.panoptic)
    assert not np.array_equal(a.image, c.image)


def test_scenes_have_overlap_and_touching_objects(scenes):
    # some instance masks are occluded (visible area smaller than their box suggests) and some touch another
    touching = 0
    for s in scenes:
        for i in range(s.num_instances):
            grown = np.zeros_like(s.instance_masks[i])
            grown[1:] |= s.instance_masks[i][:-1]
            grown[:-1] |= s.instance_masks[i][1:]
            others = s.instance_masks[np.arange(s.num_instances) != i].any(0) if s.num_instances > 1 else grown & False
            touching += bool((grown & others).any())
    assert touching >= 10


def test_colour_alone_does_not_separate_classes(scenes):
    # mean colour per instance: the classes' colour ranges overlap heavily
    means = {k: [] for k in (1, 2, 3)}
    for s in scenes:
        for m, k in zip(s.instance_masks, s.labels):
            means[k].append(s.image[m].mean(0))
    for k in means:
        arr = np.array(means[k])
        assert arr.std(0).min() > 30, f"class {CLASS_NAMES[k]} has too uniform a colour"


def test_splits_are_disjoint():
    assert split_seed("train", 0) != split_seed("val", 0) != split_seed("test", 0)
    assert make_scenes(2, 64, "val")[1].seed == split_seed("val", 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=-1), "`seed`"),
    (dict(seed=1.5), "`seed`"),
    (dict(seed=0, size=16), "`size`"),
    (dict(seed=0, size=(64,)), "`size`"),
    (dict(seed=0, min_objects=4, max_objects=2), "`min_objects`"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_scene(**kwargs)


def test_bad_split_and_n():
    with pytest.raises(ValueError, match="`split`"):
        split_seed("holdout", 0)
    with pytest.raises(ValueError, match="`n`"):
        make_scenes(0)
    with pytest.raises(ValueError, match="`panoptic`"):
        panoptic_decode(np.zeros((2, 2), np.float32))
