"""The classical nuclei pipeline of utils.classical (Otsu, morphology, distance-transform watershed).

Hand-made images whose answer is known (touching discs, dark discs on a light background, specks), one
``pytest.raises`` per error path, and one run on the shipped ``val`` images.
"""
import numpy as np
import pytest
from scipy import ndimage as ndi

from utils import classical
from utils.instance_metrics import score_label_maps
from utils.nuclei import read_image, read_labels, read_manifest, shipped_root


def disc(shape, row, col, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - row) ** 2 + (xx - col) ** 2 <= radius ** 2


SHAPE = (60, 90)
LEFT, RIGHT = disc(SHAPE, 30, 28, 15), disc(SHAPE, 30, 56, 15)     # centres 28 px apart: they overlap
TOUCHING = LEFT | RIGHT


def paint(mask, inside, outside):
    """uint8 grey image: `inside` on the mask, `outside` elsewhere."""
    return np.where(mask, inside, outside).astype(np.uint8)


def iou(a, b):
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


# ------------------------------------------------------------------------------------ touching discs


def test_two_touching_discs_give_two_labels_one_per_disc():
    labels = classical.nuclei_watershed(paint(TOUCHING, 200, 20))
    assert labels.shape == SHAPE and labels.dtype == np.int32
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2]
    # each label is one disc (the watershed line runs through the overlap)
    assert min(max(iou(labels == k, d) for d in (LEFT, RIGHT)) for k in (1, 2)) >= 0.9
    assert {int(np.bincount(labels[LEFT & ~RIGHT]).argmax()), int(np.bincount(labels[RIGHT & ~LEFT]).argmax())} \
        == {1, 2}


def test_connected_components_alone_merge_the_touching_discs():
    # why the watershed is there: the foreground is one connected piece
    foreground = classical.nuclei_foreground(paint(TOUCHING, 200, 20))
    assert ndi.label(foreground)[1] == 1
    assert iou(foreground, TOUCHING) >= 0.95


def test_dark_discs_on_a_light_background_give_the_same_labels():
    bright = classical.nuclei_watershed(paint(TOUCHING, 200, 20))
    dark = classical.nuclei_watershed(paint(TOUCHING, 55, 235))          # 255 - the bright image
    np.testing.assert_array_equal(dark, bright)


def test_grey_and_rgb_give_the_same_labels():
    grey = paint(TOUCHING, 200, 20)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    np.testing.assert_array_equal(classical.nuclei_watershed(rgb), classical.nuclei_watershed(grey))


def test_stained_tissue_colours_are_inverted_and_split():
    # purple nuclei on a pale pink background, as in stained tissue
    rgb = np.where(TOUCHING[..., None], np.array([110, 60, 160], np.uint8), np.array([235, 210, 225], np.uint8))
    grey = classical.nuclei_grey(rgb)
    assert grey.dtype == np.float64 and grey.shape == SHAPE
    assert grey[TOUCHING].mean() > grey[~TOUCHING].mean()                 # nuclei became the bright side
    assert classical.nuclei_watershed(rgb).max() == 2


def test_noise_does_not_add_objects():
    rng = np.random.default_rng(0)
    noisy = np.clip(paint(TOUCHING, 180, 40) + rng.normal(0, 20, SHAPE), 0, 255).astype(np.uint8)
    assert classical.nuclei_watershed(noisy).max() == 2


@pytest.mark.parametrize("min_distance, expected", [(11, 2), (27, 2), (29, 1), (40, 1)])
def test_min_distance_is_the_closest_two_markers_may_be(min_distance, expected):
    # the distance peaks are the discs' centres, 28 px apart
    assert classical.nuclei_watershed(paint(TOUCHING, 200, 20), min_distance=min_distance).max() == expected


# ------------------------------------------------------------------------------------ cleaning and ids


def test_specks_are_removed_and_ids_are_consecutive():
    shape = (80, 120)
    objects = [disc(shape, 20, 20, 10), disc(shape, 55, 40, 12), disc(shape, 35, 95, 14)]
    speck = np.zeros(shape, bool)
    speck[70:74, 100:104] = True                                         # 16 px, under min_area
    image = paint(np.any(objects, axis=0) | speck, 210, 15)
    labels = classical.nuclei_watershed(image, min_area=40)
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3]
    assert not labels[speck].any()
    assert min(max(iou(labels == k, o) for o in objects) for k in (1, 2, 3)) >= 0.9
    assert classical.nuclei_watershed(image, min_area=0).max() == 4      # kept when nothing is removed


def test_a_flat_image_has_no_nuclei():
    for value in (0, 30, 255):
        labels = classical.nuclei_watershed(np.full((32, 40, 3), value, np.uint8))
        assert labels.shape == (32, 40) and labels.dtype == np.int32 and not labels.any()


def test_the_watershed_keeps_every_foreground_pixel_on_real_images():
    rows = [r for r in read_manifest() if r["split"] == "val"][:6]
    for row in rows:
        image = read_image(shipped_root(), row)
        labels = classical.nuclei_watershed(image)
        np.testing.assert_array_equal(labels > 0, classical.nuclei_foreground(image))
        assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))


def test_the_watershed_beats_connected_components_on_val():
    rows = [r for r in read_manifest() if r["split"] == "val"]
    trues, split, merged = [], [], []
    for row in rows:
        image = read_image(shipped_root(), row)
        trues.append(read_labels(shipped_root(), row))
        split.append(classical.nuclei_watershed(image))
        merged.append(ndi.label(classical.nuclei_foreground(image))[0])
    watershed, components = score_label_maps(trues, split), score_label_maps(trues, merged)
    assert watershed["foreground_iou"] == pytest.approx(components["foreground_iou"])   # same foreground
    assert watershed["recall"] > components["recall"] + 0.05             # touching nuclei are split
    assert watershed["f1"] > components["f1"]


# ------------------------------------------------------------------------------------ bad input


GOOD = paint(TOUCHING, 200, 20)


@pytest.mark.parametrize("image, match", [
    (GOOD.astype(np.float32),
     r"`image` must be \(H, W\) grey or \(H, W, 3\) RGB uint8, got shape \(60, 90\) and dtype float32"),
    (np.zeros((60, 90, 4), np.uint8), r"`image` must be .* got shape \(60, 90, 4\)"),
    (np.zeros(90, np.uint8), r"`image` must be .* got shape \(90,\)"),
    (np.zeros((1, 90), np.uint8), r"`image` must be at least 2x2 pixels"),
])
def test_bad_images_are_refused(image, match):
    with pytest.raises(ValueError, match=match):
        classical.nuclei_watershed(image)


@pytest.mark.parametrize("kwargs, match", [
    ({"min_distance": 0}, r"`min_distance` must be an int >= 1, got 0"),
    ({"min_distance": 2.5}, r"`min_distance` must be an int >= 1, got 2.5"),
    ({"min_area": -1}, r"`min_area` must be an int >= 0, got -1"),
    ({"opening_radius": -2}, r"`opening_radius` must be an int >= 0, got -2"),
    ({"sigma": -1.0}, r"`sigma` must be a number >= 0"),
    ({"sigma": float("nan")}, r"`sigma` must be a number >= 0"),
    ({"sigma": "1"}, r"`sigma` must be a number >= 0"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        classical.nuclei_watershed(GOOD, **kwargs)


def test_nuclei_grey_refuses_a_bad_image():
    with pytest.raises(ValueError, match=r"`image` must be"):
        classical.nuclei_grey(np.zeros((8, 8, 2), np.uint8))
