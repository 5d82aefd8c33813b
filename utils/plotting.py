"""Figures the course draws again and again: mask overlays, instances, prediction panels, training curves.

Array contracts
---------------
* ``image``: ``(H, W, 3)`` RGB, either ``uint8`` in [0, 255] or floating point in [0, 1];
  ``(H, W)`` greyscale is accepted and shown in grey.
* ``mask``: ``(H, W)`` integer class ids in ``[0, num_classes)``; ``ignore_index`` pixels are drawn black.
* ``instance_masks``: ``(N, H, W)`` bool; ``boxes_xyxy``: ``(N, 4)`` ``(x_min, y_min, x_max, y_max)``.

Every function takes an optional matplotlib ``ax`` and returns it (or the figure), so figures compose.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .validation import check_int


def voc_palette(num_classes: int = 256) -> np.ndarray:
    """The Pascal VOC colour map: ``(num_classes, 3)`` uint8 RGB, class 0 black, 1 dark red, 2 green, ..."""
    if not (1 <= num_classes <= 256):
        raise ValueError(f"`num_classes` must be in [1, 256], got {num_classes}")
    palette = np.zeros((num_classes, 3), np.uint8)
    for k in range(num_classes):
        c, r, g, b = k, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[k] = (r, g, b)
    return palette


# Okabe and Ito's colour-blind-safe colours for the first classes, far apart from one another: the
# generated scenes' disc, square and triangle are red, blue and yellow in every lesson.
_FIRST_COLOURS = np.array([
    (0, 0, 0),          # 0 background: black
    (213, 94, 0),       # 1 vermillion (red)
    (0, 114, 178),      # 2 blue
    (240, 228, 66),     # 3 yellow
    (0, 158, 115),      # 4 bluish green
    (204, 121, 167),    # 5 reddish purple
    (86, 180, 233),     # 6 sky blue
    (230, 159, 0),      # 7 orange
], np.uint8)


def course_palette(num_classes: int = 256) -> np.ndarray:
    """The course's class colours: ``(num_classes, 3)`` uint8 RGB, used by every figure by default.

    Classes 0 to 7 take Okabe and Ito's colour-blind-safe set (0 black, 1 red, 2 blue, 3 yellow, 4 bluish
    green, 5 reddish purple, 6 sky blue, 7 orange), chosen to be far apart so that a class stays readable
    when blended over an image; classes from 8 on take the VOC colour map's.
    """
    palette = voc_palette(num_classes)
    k = min(num_classes, len(_FIRST_COLOURS))
    palette[:k] = _FIRST_COLOURS[:k]
    return palette


def _as_float_image(image, name="image") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"`{name}` must be (H, W, 3) RGB or (H, W) grey, got shape {image.shape}")
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if np.issubdtype(image.dtype, np.floating):
        lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"`{name}` is floating point with values in [{lo:.3g}, {hi:.3g}]; expected [0, 1] "
                "(undo any normalisation, or pass uint8)"
            )
        return np.clip(image.astype(np.float32), 0, 1)
    raise ValueError(f"`{name}` must be uint8 or float, got dtype {image.dtype}")


def _check_mask(mask, name="mask", shape=None, num_classes=None, ignore_index=None) -> np.ndarray:
    mask = np.asarray(mask)
    if hasattr(mask, "numpy") and not isinstance(mask, np.ndarray):  # pragma: no cover
        mask = mask.numpy()
    if mask.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D (H, W) label map, got shape {mask.shape}")
    if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
        raise ValueError(f"`{name}` must hold integer class ids, got dtype {mask.dtype}")
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(f"`{name}` (shape {mask.shape}) must have the image's height and width {tuple(shape)}")
    mask = mask.astype(np.int64)
    if num_classes is not None:
        valid = mask if ignore_index is None else mask[mask != ignore_index]
        if valid.size and (valid.min() < 0 or valid.max() >= num_classes):
            raise ValueError(
                f"`{name}` holds class ids in [{valid.min()}, {valid.max()}], outside [0, {num_classes})"
                + ("" if ignore_index is None else f" (ignore_index {ignore_index} aside)")
            )
    return mask


def colorize_mask(mask, palette=None, ignore_index: int | None = 255) -> np.ndarray:
    """Turn a label map into an ``(H, W, 3)`` uint8 RGB picture with the palette (:func:`course_palette` by default)."""
    palette = course_palette() if palette is None else np.asarray(palette, np.uint8)
    mask = _check_mask(mask, num_classes=len(palette), ignore_index=ignore_index)
    out = palette[np.where(mask == ignore_index, 0, mask) if ignore_index is not None else mask]
    if ignore_index is not None:
        out[mask == ignore_index] = 0
    return out


def overlay_mask(image, mask, alpha: float = 0.5, palette=None, ignore_index: int | None = 255,
                 skip_background: bool = True, outline: int = 0) -> np.ndarray:
    """Blend a coloured label map over an image; returns ``(H, W, 3)`` float RGB in [0, 1].

    Background (class 0) stays unblended when ``skip_background`` so the photo shows through. With
    ``outline`` > 0, a band of that many pixels along the inside of each labelled region's edge is painted
    in the class's full colour, so the class stays readable where the image's own colour shows through the
    blend (an orange shape under the green "square" class can look like olive, the "triangle" colour).
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}")
    outline = check_int("outline", outline, 0)
    img = _as_float_image(image)
    colours = colorize_mask(mask, palette, ignore_index).astype(np.float32) / 255.0
    mask = np.asarray(mask)
    if mask.shape != img.shape[:2]:
        raise ValueError(f"`mask` (shape {mask.shape}) must have the image's height and width {img.shape[:2]}")
    blend = (1 - alpha) * img + alpha * colours
    keep = (mask == 0) if skip_background else np.zeros(mask.shape, bool)
    out = np.where(keep[..., None], img, blend)
    if outline:
        from skimage.segmentation import find_boundaries

        edge = find_boundaries(mask, mode="inner")
        for _ in range(outline - 1):   # thicker: the pixels next to the edge inside the same region
            grown = edge.copy()
            for axis, step in ((0, 1), (0, -1), (1, 1), (1, -1)):
                moved = np.roll(edge, step, axis=axis) & (np.roll(mask, step, axis=axis) == mask)
                grown |= moved
            edge = grown
        edge &= ~keep
        if ignore_index is not None:
            edge &= mask != ignore_index
        out[edge] = colours[edge]
    return out


def _legend(ax, class_names, palette, present=None):
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=np.asarray(palette[k]) / 255.0, edgecolor="k", label=f"{k} {name}")
        for k, name in enumerate(class_names)
        if present is None or k in present
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def show_mask(image, mask, class_names: Sequence[str] | None = None, alpha: float = 0.6, palette=None,
              title: str | None = None, ax=None, legend: bool = True, ignore_index: int | None = 255):
    """Draw ``mask`` over ``image`` (filled and outlined in the class colours) with a legend of the classes present.

    Returns the axes.
    """
    import matplotlib.pyplot as plt

    palette = course_palette() if palette is None else np.asarray(palette, np.uint8)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    width = max(1, round(max(np.asarray(mask).shape) / 100))  # about 1% of the image: visible at any size
    ax.imshow(overlay_mask(image, mask, alpha, palette, ignore_index, outline=width))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    if legend and class_names is not None:
        present = set(np.unique(np.asarray(mask)).tolist())
        _legend(ax, class_names, palette, present)
    return ax


def draw_instances(image, instance_masks, boxes_xyxy=None, labels=None, class_names=None, scores=None,
                   ax=None, title: str | None = None, alpha: float = 0.45, score_threshold: float = 0.0):
    """Draw instances: each mask filled in its own colour with its contour, its box and a label.

    ``instance_masks`` ``(N, H, W)`` bool (or probabilities in [0, 1], cut at 0.5); ``boxes_xyxy``
    ``(N, 4)``; ``labels`` ``(N,)`` class ids; ``scores`` ``(N,)`` in [0, 1], instances below
    ``score_threshold`` are not drawn.
    """
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from skimage import measure

    img = _as_float_image(image)
    masks = np.asarray(instance_masks)
    if masks.ndim != 3 or masks.shape[1:] != img.shape[:2]:
        raise ValueError(f"`instance_masks` must be (N, H, W) with H, W = {img.shape[:2]}, got shape {masks.shape}")
    masks = masks > 0.5 if np.issubdtype(masks.dtype, np.floating) else masks.astype(bool)
    n = masks.shape[0]
    for name, arr, cols in (("boxes_xyxy", boxes_xyxy, 4), ("labels", labels, None), ("scores", scores, None)):
        if arr is not None:
            arr = np.asarray(arr)
            if arr.shape[0] != n or (cols is not None and arr.shape != (n, cols)):
                raise ValueError(f"`{name}` must have one row per instance ({n}), got shape {arr.shape}")
    keep = np.ones(n, bool) if scores is None else np.asarray(scores) >= score_threshold
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    cmap = colormaps["tab10"]
    labels_drawn = []
    canvas = img.copy()
    for i in np.flatnonzero(keep):
        colour = np.array(cmap(i % 10)[:3])
        canvas[masks[i]] = (1 - alpha) * canvas[masks[i]] + alpha * colour
    ax.imshow(canvas)
    for i in np.flatnonzero(keep):
        colour = cmap(i % 10)
        for contour in measure.find_contours(masks[i].astype(float), 0.5):
            ax.plot(contour[:, 1], contour[:, 0], color=colour, lw=1.2)
        if boxes_xyxy is not None:
            x0, y0, x1, y1 = np.asarray(boxes_xyxy)[i]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.2, ls="--"))
            text = ""
            if labels is not None:
                k = int(np.asarray(labels)[i])
                text = class_names[k] if class_names is not None else str(k)
            if scores is not None:
                text += f" {float(np.asarray(scores)[i]):.2f}"
            if text:
                labels_drawn.append(ax.text(x0, y0 - 1, text.strip(), color="white", fontsize=7, va="bottom",
                                            bbox=dict(facecolor=colour, alpha=0.8, pad=1, lw=0)))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    _separate_labels(ax, labels_drawn)
    return ax


def _separate_labels(ax, texts, max_moves: int = 40) -> None:
    """Move text labels down, one label height at a time, until none overlaps an earlier one."""
    if len(texts) < 2:
        return
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    placed = []
    for text in texts:
        for _ in range(max_moves):
            box = text.get_window_extent(renderer).expanded(1.0, 1.05)
            if not any(box.overlaps(other) for other in placed):
                break
            x, y = text.get_position()
            # one label height, in data units (image axes: y grows downwards)
            y0 = ax.transData.inverted().transform((0, box.y0))[1]
            y1 = ax.transData.inverted().transform((0, box.y1))[1]
            text.set_position((x, y + abs(y1 - y0)))
        placed.append(text.get_window_extent(renderer))


def outline_match_errors(image, true_labels, pred_labels, iou_threshold: float = 0.5):
    """Instance errors drawn as outlines: matched predictions green, false ones red, missed true objects yellow.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
        RGB in [0, 255].
    true_labels, pred_labels : (H, W) integer ndarray
        Label maps of the image's size: ``0`` background, ``1..N`` objects.
    iou_threshold : float
        A predicted and a true object match when their IoU exceeds it
        (:func:`utils.instance_metrics.match_labels`).

    Returns
    -------
    rgb : (H, W, 3) uint8 ndarray
        The image with each object's inner boundary drawn in its colour.
    match : dict
        ``match_labels``' result: ``tp``, ``fp``, ``fn``, ``matches`` ``[(true_id, pred_id, iou), ...]``.
    """
    from skimage.segmentation import find_boundaries

    from .instance_metrics import match_labels

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"`image` must be (H, W, 3) uint8 RGB, got shape {image.shape} and dtype {image.dtype}")
    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    if true_labels.shape != image.shape[:2] or pred_labels.shape != image.shape[:2]:
        raise ValueError(f"`true_labels` {true_labels.shape} and `pred_labels` {pred_labels.shape} must have the "
                         f"image's size {image.shape[:2]}")
    match = match_labels(true_labels, pred_labels, iou_threshold)
    hit_true = [t for t, _, _ in match["matches"]]
    hit_pred = [q for _, q, _ in match["matches"]]
    missed = (true_labels > 0) & ~np.isin(true_labels, hit_true)
    good = np.isin(pred_labels, hit_pred) & (pred_labels > 0)
    false = (pred_labels > 0) & ~good
    rgb = image.copy()
    rgb[find_boundaries(np.where(missed, true_labels, 0), mode="inner")] = (255, 220, 0)
    rgb[find_boundaries(np.where(good, pred_labels, 0), mode="inner")] = (0, 220, 0)
    rgb[find_boundaries(np.where(false, pred_labels, 0), mode="inner")] = (255, 40, 40)
    return rgb, match


def panoptic_colours(panoptic, palette, divisor: int = 1000, void: int = -1) -> np.ndarray:
    """A picture of a panoptic map: stuff in its class colour; each thing in its class's colour, lighter or darker per
    instance, with a white outline, so that one class looks alike in a prediction and in the truth; void black.

    Parameters
    ----------
    panoptic : (H, W) integer ndarray
        ``class_id * divisor + instance_number`` (instance 0 for stuff), ``void`` where unassigned.
    palette : (C, 3) float array-like
        RGB in [0, 1], one row per class id.

    Returns
    -------
    (H, W, 3) float64 ndarray in [0, 1]
    """
    from skimage.segmentation import find_boundaries

    panoptic = np.asarray(panoptic)
    palette = np.asarray(palette, dtype=float)
    if panoptic.ndim != 2 or not np.issubdtype(panoptic.dtype, np.integer):
        raise ValueError(f"`panoptic` must be an (H, W) integer map, got shape {panoptic.shape} and dtype {panoptic.dtype}")
    classes = np.unique(panoptic[panoptic != void]) // divisor
    if palette.ndim != 2 or palette.shape[1] != 3 or (len(classes) and classes.max() >= len(palette)):
        raise ValueError(f"`palette` must be (C, 3) with a row for every class id up to {classes.max() if len(classes) else 0}, "
                         f"got shape {palette.shape}")
    rgb = np.zeros(panoptic.shape + (3,))
    for segment in np.unique(panoptic):
        if segment == void:
            continue
        cls, instance = divmod(int(segment), divisor)
        shade = 1.0 if instance == 0 else (0.7, 0.85, 1.0, 1.15)[instance % 4]
        rgb[panoptic == segment] = np.clip(palette[cls] * shade, 0, 1)
    things = np.where((panoptic != void) & (panoptic % divisor > 0), panoptic, 0)
    rgb[find_boundaries(things, mode="inner")] = 1.0
    return rgb


def wrong_fraction(truth, prediction, ignore_index: int | None = 255) -> float:
    """The fraction of *labelled* pixels whose predicted class is wrong (``ignore_index`` pixels left out).

    ``nan`` when no pixel is labelled.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"`prediction` (shape {prediction.shape}) must have `truth`'s shape {truth.shape}")
    labelled = np.ones(truth.shape, bool) if ignore_index is None else truth != ignore_index
    return float(np.mean(truth[labelled] != prediction[labelled])) if labelled.any() else float("nan")


def error_map(truth, prediction, ignore_index: int | None = 255) -> np.ndarray:
    """``(H, W, 3)`` float RGB: correct pixels dark grey, wrong ones red, ignored ones black."""
    truth = _check_mask(truth, "truth")
    prediction = _check_mask(prediction, "prediction", shape=truth.shape)
    out = np.full(truth.shape + (3,), 0.25, np.float32)
    out[truth != prediction] = (0.9, 0.1, 0.1)
    if ignore_index is not None:
        out[truth == ignore_index] = 0.0
    return out


def show_predictions(images, truths, predictions=None, class_names=None, palette=None, max_rows: int = 4,
                     ignore_index: int | None = 255, titles=("image", "ground truth", "prediction", "errors")):
    """A grid with one row per example: image | ground truth | prediction | error map.

    ``images`` a sequence of images (or a ``(B, H, W, 3)`` array); ``truths`` and ``predictions``
    sequences of ``(H, W)`` label maps of the same length. Without predictions, two columns.
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    if len(truths) != n or (predictions is not None and len(predictions) != n):
        raise ValueError(
            f"`images` ({n}), `truths` ({len(truths)})"
            + ("" if predictions is None else f" and `predictions` ({len(predictions)})")
            + " must have the same length"
        )
    rows = min(n, max_rows)
    cols = 2 if predictions is None else 4
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols + (1.4 if class_names else 0), 2.3 * rows),
                             squeeze=False)
    for r in range(rows):
        panels = [("image", None), ("truth", truths[r])]
        if predictions is not None:
            panels += [("prediction", predictions[r]), ("errors", None)]
        for c, (kind, mask) in enumerate(panels):
            ax = axes[r, c]
            if kind == "image":
                ax.imshow(_as_float_image(images[r]))
                ax.set_axis_off()
            elif kind == "errors":
                err = error_map(truths[r], predictions[r], ignore_index)
                ax.imshow(err)
                ax.set_axis_off()
            else:
                show_mask(images[r], mask, class_names, palette=palette, ax=ax, legend=False,
                          ignore_index=ignore_index)
            if r == 0:
                ax.set_title(titles[c], fontsize=10)
        if predictions is not None:
            axes[r, 3].text(0.02, 0.02, f"{100 * wrong_fraction(truths[r], predictions[r], ignore_index):.1f}% wrong",
                            transform=axes[r, 3].transAxes, color="white", fontsize=8)
    fig.tight_layout()
    if class_names is not None:  # one legend for the whole grid, right of the last column
        from matplotlib.patches import Patch

        colours = course_palette() if palette is None else np.asarray(palette, np.uint8)
        handles = [Patch(facecolor=colours[k] / 255.0, edgecolor="k", label=f"{k} {name}")
                   for k, name in enumerate(class_names)]
        fig.subplots_adjust(right=0.86)
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.865, 0.5), fontsize=8, frameon=False)
    return fig


def plot_history(history: Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]], keys=None,
                 title: str | None = None):
    """Training curves: one panel for losses (keys with 'loss'), one for the other metrics.

    ``history`` is either a dict of lists (``{"train_loss": [...], "val_miou": [...]}``) or a list of
    per-epoch dicts (what ``utils.train.fit`` returns). Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if isinstance(history, Mapping):
        table = {k: list(v) for k, v in history.items()}
    elif isinstance(history, Sequence) and all(isinstance(h, Mapping) for h in history):
        table = {}
        for row in history:
            for k, v in row.items():
                table.setdefault(k, []).append(v)
    else:
        raise ValueError("`history` must be a dict of lists or a list of dicts, got " + type(history).__name__)
    table.pop("epoch", None)
    keys = [k for k in (keys or table) if k in table]
    if not keys:
        raise ValueError(f"`history` has no curves to draw (keys: {sorted(table)})")
    losses = [k for k in keys if "loss" in k]
    others = [k for k in keys if "loss" not in k and all(isinstance(v, (int, float)) for v in table[k])]
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3), squeeze=False)
    for ax, group in zip(axes[0], panels):
        for k in group:
            ys = table[k]
            ax.plot(range(1, len(ys) + 1), ys, marker="o" if len(ys) < 30 else None, ms=3, label=k)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("loss" if losses else "value")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def compact_notebook_figures(fmt: str = "jpeg", quality: int = 85, dpi: int = 80) -> None:
    """Store inline figures compactly: JPEG at ``quality`` and ``dpi`` (photos and noisy scenes compress
    badly as PNG, and a stored notebook should stay small). Outside IPython this does nothing.
    """
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"`fmt` must be 'jpeg' or 'png', got {fmt!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"`quality` must be in [1, 100], got {quality}")
    import matplotlib as mpl

    mpl.rcParams["figure.dpi"] = dpi
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # plain Python: nothing to configure
        return
    if get_ipython() is None:
        return
    if fmt == "jpeg":
        set_matplotlib_formats("jpeg", pil_kwargs={"quality": quality})
    else:
        set_matplotlib_formats("png")


def live_controls(draw, **controls) -> None:
    """Offer sliders (``ipywidgets.interact``) that redraw ``draw(**values)`` as a learner moves them.

    The pattern of the course's interactive cells: first call ``draw()`` yourself, so the cell's stored
    output (what CI, GitHub and a static view show) holds the figure for sensible defaults; then call
    ``live_controls(draw, param=(lo, hi, step), ...)``. The controls are created only inside an IPython
    kernel with ipywidgets installed; elsewhere (plain Python, a missing ipywidgets) this does nothing.
    A kernel without a widget frontend (CI) creates them harmlessly; the widget frontend of JupyterLab
    or Colab shows them, and each move of a control draws the new figure below them.

    Parameters
    ----------
    draw : callable
        Draws one figure from keyword arguments, each with a default value.
    **controls
        ``ipywidgets.interact`` abbreviations or widgets, one per argument of ``draw``.
    """
    if not callable(draw):
        raise ValueError(f"`draw` must be a function that draws a figure, got {type(draw).__name__}")
    if not controls:
        raise ValueError("give at least one control, e.g. live_controls(draw, threshold=(0, 255, 1))")
    try:
        import ipywidgets
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    handle = ipywidgets.interact(draw, **controls)   # the function back, with the widget attached
    # interact draws once with the initial values; that figure already stands above the controls, so drop the
    # copy (it would be stored a second time in the notebook's widget state). Moving a control draws anew.
    handle.widget.out.clear_output()
    return None
