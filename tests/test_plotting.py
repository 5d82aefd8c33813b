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
    assert np.allclose(out[0, 1], (0.5 + 0.5 * 128 / 255, 0.5, 0.5))  # half white, half dark red
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
