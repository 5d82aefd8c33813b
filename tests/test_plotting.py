"""Plotting: palettes, overlays, instance drawings, panels and curves, and their input checks."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from utils import plotting  # noqa: E402
from utils.scenes import CLASS_NAMES, make_scene  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("k, rgb", [(0, (0, 0, 0)), (1, (128, 0, 0)), (2, (0, 128, 0)), (3, (128, 128, 0)),
                                    (15, (192, 128, 128)), (20, (0, 64, 128))])
def test_voc_palette_known_colours(k, rgb):
    # VOC's colour map: class 15 'person' is (192, 128, 128), class 20 'tvmonitor' (0, 64, 128)
    assert tuple(plotting.voc_palette(21)[k]) == rgb


def test_overlay_keeps_background_and_blends_classes():
    img = np.full((2, 2, 3), 255, np.uint8)
    mask = np.array([[0, 1], [2, 255]])
    out = plotting.overlay_mask(img, mask, alpha=0.5)
    assert np.allclose(out[0, 0], 1.0)  # background untouched
    red = plotting.course_palette()[1] / 255.0
    assert np.allclose(out[0, 1], 0.5 + 0.5 * red)  # half white, half the class colour
    assert np.allclose(out[1, 1], 0.5)  # ignored pixel blended with black


def test_error_map_marks_wrong_and_ignored():
    truth = np.array([[0, 1], [255, 2]])
    pred = np.array([[0, 2], [1, 2]])
    err = plotting.error_map(truth, pred)
    assert np.allclose(err[0, 0], 0.25) and np.allclose(err[0, 1], (0.9, 0.1, 0.1)) and np.allclose(err[1, 0], 0)


def test_figures_draw():
    s = make_scene(1, 64)
    ax = plotting.show_mask(s.image, s.semantic, CLASS_NAMES, title="t")
    assert ax.get_title() == "t" and ax.get_legend() is not None
    ax = plotting.draw_instances(s.image, s.instance_masks, s.boxes_xyxy, s.labels, CLASS_NAMES,
                                 scores=np.linspace(1, 0.5, s.num_instances))
    assert len(ax.patches) == s.num_instances  # one box each
    fig = plotting.show_predictions([s.image] * 2, [s.semantic] * 2, [s.semantic, np.zeros_like(s.semantic)],
                                    CLASS_NAMES)
    assert np.asarray(fig.axes).size >= 8 and len(fig.legends) == 1
    fig = plotting.plot_history([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_miou": 0.3},
                                 {"epoch": 2, "train_loss": 0.5, "val_loss": 0.7, "val_miou": 0.6}])
    assert len(fig.axes) == 2


@pytest.mark.parametrize("call, message", [
    (lambda: plotting.overlay_mask(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), int)), "`mask`"),
    (lambda: plotting.overlay_mask(np.zeros((4, 4, 3), np.float32) + 3, np.zeros((4, 4), int)), "`image`.*0, 1"),
    (lambda: plotting.overlay_mask(np.zeros((4, 4, 3), np.int16), np.zeros((4, 4), int)), "`image` must be uint8"),
    (lambda: plotting.overlay_mask(np.zeros((4, 4, 5), np.uint8), np.zeros((4, 4), int)), "`image`.*shape"),
    (lambda: plotting.overlay_mask(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), float)), "`mask`.*integer"),
    (lambda: plotting.overlay_mask(np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 300)), "`mask` holds class ids"),
    (lambda: plotting.overlay_mask(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), int), alpha=2), "`alpha`"),
    (lambda: plotting.draw_instances(np.zeros((4, 4, 3), np.uint8), np.zeros((2, 4, 5), bool)), "`instance_masks`"),
    (lambda: plotting.draw_instances(np.zeros((4, 4, 3), np.uint8), np.zeros((2, 4, 4), bool), np.zeros((3, 4))),
     "`boxes_xyxy`"),
    (lambda: plotting.show_predictions([1, 2], [1]), "same length"),
    (lambda: plotting.plot_history(5), "`history`"),
    (lambda: plotting.plot_history({"epoch": [1]}), "no curves"),
    (lambda: plotting.voc_palette(0), "`num_classes`"),
    (lambda: plotting.error_map(np.zeros((2, 2), int), np.zeros((3, 2), int)), "`prediction`"),
])
def test_bad_inputs_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_overlay_outline_paints_region_edges_in_the_class_colour():
    img = np.zeros((6, 6, 3), np.uint8)
    mask = np.zeros((6, 6), int)
    mask[1:5, 1:5] = 2
    out = plotting.overlay_mask(img, mask, alpha=0.5, outline=1)
    green = plotting.course_palette(3)[2] / 255.0
    assert np.allclose(out[1, 1], green) and np.allclose(out[1, 3], green)   # the ring: full class colour
    assert np.allclose(out[2, 2], 0.5 * green)                                # the inside: blended
    assert np.allclose(out[0, 0], 0.0)                                        # background untouched
    plain = plotting.overlay_mask(img, mask, alpha=0.5)
    assert np.allclose(plain[1, 1], 0.5 * green)


def test_instance_labels_do_not_overlap():
    import matplotlib.pyplot as plt

    masks = np.zeros((6, 64, 64), bool)
    boxes = []
    for k in range(6):                     # six boxes whose top-left corners nearly coincide
        masks[k, 10 + k:30 + k, 10 + k:30 + k] = True
        boxes.append([10 + k, 10 + k, 29 + k, 29 + k])
    fig, ax = plt.subplots(figsize=(3, 3))
    plotting.draw_instances(np.zeros((64, 64, 3), np.uint8), masks, np.array(boxes, float), np.ones(6, int),
                            ["bg", "thing"], scores=np.linspace(0.9, 0.4, 6), ax=ax)
    renderer = fig.canvas.get_renderer()
    extents = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(extents) == 6
    assert not any(a.overlaps(b) for i, a in enumerate(extents) for b in extents[i + 1:])
    plt.close(fig)


def test_overlay_outline_width_and_errors():
    mask = np.zeros((8, 8), int)
    mask[1:7, 1:7] = 1
    out = plotting.overlay_mask(np.zeros((8, 8, 3), np.uint8), mask, alpha=0.0, outline=2)
    painted = out.any(axis=2)
    assert painted[1:7, 1:7].sum() == 36 - 4 and not painted[3:5, 3:5].any()   # a 2-px ring around a 2x2 centre
    with pytest.raises(ValueError, match="`outline` must be an int >= 0"):
        plotting.overlay_mask(np.zeros((8, 8, 3), np.uint8), mask, outline=-1)


def test_course_palette_first_classes_are_far_apart_and_the_rest_is_voc():
    p = plotting.course_palette().astype(int)
    assert tuple(p[0]) == (0, 0, 0) and tuple(p[1]) == (213, 94, 0) and tuple(p[3]) == (240, 228, 66)
    first = p[:8]
    distances = np.sqrt(((first[:, None] - first[None]) ** 2).sum(-1))
    assert distances[np.triu_indices(8, 1)].min() > 60
    np.testing.assert_array_equal(p[8:], plotting.voc_palette()[8:])
    assert plotting.course_palette(3).shape == (3, 3)


def test_wrong_fraction_leaves_ignored_pixels_out():
    truth = np.array([[0, 1], [255, 255]])
    pred = np.array([[0, 0], [1, 1]])
    assert plotting.wrong_fraction(truth, pred) == pytest.approx(0.5)          # 1 wrong of 2 labelled
    assert plotting.wrong_fraction(truth, pred, ignore_index=None) == pytest.approx(0.75)
    assert np.isnan(plotting.wrong_fraction(np.full((2, 2), 255), pred))
    with pytest.raises(ValueError, match="`prediction`"):
        plotting.wrong_fraction(truth, pred[:1])


def test_outline_match_errors_colours_hits_false_and_missed_objects():
    from utils.plotting import outline_match_errors

    image = np.zeros((20, 30, 3), np.uint8)
    truth = np.zeros((20, 30), np.int32)
    truth[2:8, 2:8] = 1          # found
    truth[12:18, 2:8] = 2        # missed
    pred = np.zeros_like(truth)
    pred[2:8, 2:9] = 5           # IoU 36/42 with object 1
    pred[10:16, 20:26] = 7       # nothing there: false
    rgb, match = outline_match_errors(image, truth, pred)
    assert (match["tp"], match["fp"], match["fn"]) == (1, 1, 1)
    assert tuple(rgb[2, 4]) == (0, 220, 0) and tuple(rgb[10, 22]) == (255, 40, 40) and tuple(rgb[12, 4]) == (255, 220, 0)
    assert tuple(rgb[5, 5]) == (0, 0, 0)        # interiors untouched
    with pytest.raises(ValueError, match="`image`"):
        outline_match_errors(image[..., 0], truth, pred)
    with pytest.raises(ValueError, match="`true_labels`"):
        outline_match_errors(image, truth[:5], pred)


def test_panoptic_colours_shades_things_by_class_outlines_them_and_blacks_out_void():
    from utils.plotting import panoptic_colours

    palette = [(0.5, 0.5, 0.5), (1.0, 0.0, 0.0)]
    pan = np.zeros((8, 8), np.int64)
    pan[1:4, 1:4] = 1001
    pan[5:8, 5:8] = 1002
    pan[0, 7] = -1
    rgb = panoptic_colours(pan, palette)
    assert np.allclose(rgb[0, 0], 0.5) and np.allclose(rgb[0, 7], 0)            # stuff colour; void black
    assert np.allclose(rgb[2, 2], (0.85, 0, 0)) and np.allclose(rgb[6, 6], (1.0, 0, 0))   # two shades of class 1
    assert np.allclose(rgb[1, 1], 1.0)                                            # outline
    with pytest.raises(ValueError, match="`palette`"):
        panoptic_colours(pan, palette[:1])
