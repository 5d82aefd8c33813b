"""Small helpers for the classical segmentation lessons (weeks 1 and 2).

Binary scores, Otsu's between-class variance, simulated user input (a click inside an object), the
loop that times and scores a method on generated scenes, and the classical nuclei pipeline (Otsu's
threshold, morphology, distance-transform watershed) that lessons 01 and 02 run on the real nuclei of
``data/nuclei/``, the classical baseline for learned models on the same images. The methods on generated
scenes are written out in the notebooks, where learners read them.

Array contracts
---------------
* ``prediction``, ``truth``, ``mask``: ``(H, W)`` boolean masks (any integer or bool array is read as
  ``!= 0``), ``True`` = foreground.
* ``hist``: ``(L,)`` non-negative counts of grey levels ``0 .. L-1`` (``L = 256`` for uint8 images).
* ``image``: ``(H, W, 3)`` uint8 RGB in [0, 255], as :mod:`utils.scenes` makes them; the nuclei
  functions also take ``(H, W)`` uint8 grey.
* Label maps: ``(H, W)`` int32, ``0`` background, ``1..N`` one id per object.
* Points are ``(row, col)`` = ``(y, x)`` integer pixel indices.
"""
from __future__ import annotations

import time

import numpy as np


def _as_binary(mask, name: str, shape=None) -> np.ndarray:
    """Read ``mask`` as an ``(H, W)`` bool array; raise ``ValueError`` naming ``name`` otherwise."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D (H, W) mask, got shape {arr.shape}")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"`{name}` must be bool or integer (read as != 0), got dtype {arr.dtype}; "
                         "threshold probabilities first, e.g. `prob > 0.5`")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"`{name}` (shape {arr.shape}) must have the same shape as `truth` (shape {tuple(shape)})")
    return arr != 0


def binary_iou(prediction, truth) -> float:
    """Intersection over union of two binary masks: ``|P & T| / |P | T|``.

    Parameters
    ----------
    prediction, truth : (H, W) ndarray of bool or int
        Foreground masks of the same shape (non-zero = foreground).

    Returns
    -------
    float
        In [0, 1]. When both masks are empty there is nothing to get wrong and the score is 1.0.
    """
    t = _as_binary(truth, "truth")
    p = _as_binary(prediction, "prediction", t.shape)
    union = np.count_nonzero(p | t)
    return 1.0 if union == 0 else np.count_nonzero(p & t) / union


def binary_dice(prediction, truth) -> float:
    """Dice coefficient (F1 score) of two binary masks: ``2 |P & T| / (|P| + |T|)``.

    Parameters
    ----------
    prediction, truth : (H, W) ndarray of bool or int
        Foreground masks of the same shape (non-zero = foreground).

    Returns
    -------
    float
        In [0, 1]; 1.0 when both masks are empty. Dice = 2 IoU / (1 + IoU), so Dice >= IoU.
    """
    t = _as_binary(truth, "truth")
    p = _as_binary(prediction, "prediction", t.shape)
    total = np.count_nonzero(p) + np.count_nonzero(t)
    return 1.0 if total == 0 else 2 * np.count_nonzero(p & t) / total


def between_class_variance(hist) -> np.ndarray:
    """Otsu's criterion for every threshold: the between-class variance of a grey-level histogram.

    Threshold ``t`` splits the levels into class 0 = ``0 .. t`` and class 1 = ``t+1 .. L-1`` (so
    ``image > t`` is the foreground, as with ``skimage.filters.threshold_otsu``). With class weights
    ``w0, w1`` (fractions of pixels) and class means ``m0, m1``:
    ``sigma_b^2(t) = w0 w1 (m0 - m1)^2``. Otsu's threshold is the ``t`` that maximises it.

    Parameters
    ----------
    hist : (L,) array_like of non-negative numbers
        Count (or frequency) of each grey level ``0 .. L-1``; ``L >= 2``.

    Returns
    -------
    (L,) ndarray of float64
        ``sigma_b^2(t)`` in grey-level units squared, ``>= 0``; 0 where one class is empty (the last
        entry always is).
    """
    h = np.asarray(hist, dtype=np.float64)
    if h.ndim != 1 or h.size < 2:
        raise ValueError(f"`hist` must be a 1-D histogram with at least 2 bins, got shape {h.shape}")
    if not np.all(np.isfinite(h)) or np.any(h < 0):
        raise ValueError("`hist` must hold finite non-negative counts")
    total = h.sum()
    if total <= 0:
        raise ValueError("`hist` is all zeros: there are no pixels to split")
    p = h / total
    levels = np.arange(h.size, dtype=np.float64)
    w0 = np.cumsum(p)                      # fraction of pixels at levels <= t
    w1 = 1.0 - w0
    cum_mean = np.cumsum(p * levels)       # sum over levels <= t of p * level
    mean_all = cum_mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        m0 = cum_mean / w0
        m1 = (mean_all - cum_mean) / w1
        sigma = w0 * w1 * (m0 - m1) ** 2
    valid = (w0 > 1e-12) & (w1 > 1e-12)
    return np.where(valid, sigma, 0.0)


def click_inside(mask) -> tuple[int, int]:
    """Where a user would click to point at an object: the pixel of ``mask`` farthest from its edge.

    Parameters
    ----------
    mask : (H, W) ndarray of bool or int
        One object (non-zero = inside); must not be empty.

    Returns
    -------
    (int, int)
        ``(row, col)`` of the pixel with the largest distance to the nearest background pixel
        (the first one in row-major order on ties), so a seed there sits well inside the object.
    """
    m = _as_binary(mask, "mask")
    if not m.any():
        raise ValueError("`mask` is empty: there is no object to click inside")
    dist = distance_to_edge(m)
    row, col = np.unravel_index(int(np.argmax(dist)), m.shape)
    return int(row), int(col)


def distance_to_edge(mask) -> np.ndarray:
    """Each pixel's Euclidean distance to the nearest pixel outside ``mask`` (0 outside), the image border
    counting as outside: an object cut by the border is not deepest at the border.

    >>> distance_to_edge(np.ones((3, 4), bool))
    array([[1., 1., 1., 1.],
           [1., 2., 2., 1.],
           [1., 1., 1., 1.]])
    """
    from scipy import ndimage as ndi

    return ndi.distance_transform_edt(np.pad(_as_binary(mask, "mask"), 1))[1:-1, 1:-1]


def border_pixels(image, width: int = 4) -> np.ndarray:
    """The pixels of a frame ``width`` pixels wide along the image border.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
    width : int
        Frame width in pixels, ``1 <= width <= min(H, W) // 2``.

    Returns
    -------
    (K,) or (K, C) ndarray
        The frame's values, same dtype as ``image``.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"`image` must be (H, W) or (H, W, C), got shape {img.shape}")
    if not isinstance(width, (int, np.integer)) or not 1 <= width <= min(img.shape[:2]) // 2:
        raise ValueError(f"`width` must be an int in [1, {min(img.shape[:2]) // 2}], got {width!r}")
    frame = np.zeros(img.shape[:2], bool)
    frame[:width], frame[-width:], frame[:, :width], frame[:, -width:] = True, True, True, True
    return img[frame]


def pick_foreground(binary, width: int = 1) -> np.ndarray:
    """Choose which side of a two-way split is the foreground: the one that covers less of the border.

    A threshold says which pixels are bright and which are dark, not which are objects. In photos and
    in the generated scenes the objects rarely touch the border, so the side that covers most of the
    frame is taken as background.

    Parameters
    ----------
    binary : (H, W) ndarray of bool or int
        The split (non-zero = one side).
    width : int
        Width of the border frame that votes.

    Returns
    -------
    (H, W) ndarray of bool
        ``binary`` or its complement, whichever covers at most half of the border frame.
    """
    b = _as_binary(binary, "binary")
    return ~b if border_pixels(b, width).mean() > 0.5 else b


def border_colour_distance(image, width: int = 4) -> np.ndarray:
    """How far each pixel's colour is from the background's, the background colour being read on the border.

    Parameters
    ----------
    image : (H, W, 3) ndarray of uint8
        RGB in [0, 255].
    width : int
        Width of the border frame whose median colour is taken as the background colour.

    Returns
    -------
    (H, W) ndarray of float32
        Euclidean RGB distance to the median border colour, in [0, 255 * sqrt(3)].
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"`image` must be (H, W, 3) uint8 RGB, got shape {img.shape} and dtype {img.dtype}")
    background = np.median(border_pixels(img, width).astype(np.float32), axis=0)
    return np.linalg.norm(img.astype(np.float32) - background, axis=2)


ERROR_COLOURS = {"true positive": (0.15, 0.8, 0.25), "false positive": (0.95, 0.15, 0.1),
                 "false negative": (0.1, 0.45, 1.0)}


def binary_error_overlay(image, prediction, truth, alpha: float = 0.6) -> np.ndarray:
    """Where a binary mask is right and wrong, over the image: hits green, false alarms red, misses blue.

    Parameters
    ----------
    image : (H, W, 3) or (H, W) ndarray
        uint8 in [0, 255] or float in [0, 1]; shown in grey so that the colours stand out.
    prediction, truth : (H, W) ndarray of bool or int
        Foreground masks (non-zero = foreground).
    alpha : float
        Opacity of the colours, in [0, 1].

    Returns
    -------
    (H, W, 3) ndarray of float32
        RGB in [0, 1]; the colours are :data:`ERROR_COLOURS` (true negatives keep the grey image).
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}")
    t = _as_binary(truth, "truth")
    p = _as_binary(prediction, "prediction", t.shape)
    img = np.asarray(image)
    if img.shape[:2] != t.shape or img.ndim not in (2, 3):
        raise ValueError(f"`image` (shape {img.shape}) must be (H, W) or (H, W, 3) with (H, W) = {t.shape}")
    img = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)
    grey = img if img.ndim == 2 else img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.repeat((0.25 + 0.6 * np.clip(grey, 0, 1))[..., None], 3, axis=2)
    for where, key in ((p & t, "true positive"), (p & ~t, "false positive"), (~p & t, "false negative")):
        out[where] = (1 - alpha) * out[where] + alpha * np.array(ERROR_COLOURS[key], np.float32)
    return out


def error_legend(ax, **kwargs) -> None:
    """Add the legend of :func:`binary_error_overlay`'s colours to a matplotlib axes."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=c, label=k) for k, c in ERROR_COLOURS.items()]
    ax.legend(handles=handles, **{"loc": "lower center", "fontsize": 8, "ncol": 3, "frameon": False, **kwargs})


def score_on_scenes(segment, scenes) -> dict:
    """Run a binary segmentation method on generated scenes; time it and score it against the truth.

    The target of every scene is its foreground, ``scene.semantic > 0`` (any shape, whatever its class).

    Parameters
    ----------
    segment : callable
        ``segment(scene) -> (H, W) bool`` foreground mask. It gets the whole :class:`utils.scenes.Scene`,
        so a method that simulates user input (a box, a click) can read it from the ground truth.
    scenes : sequence of utils.scenes.Scene
        At least one scene.

    Returns
    -------
    dict
        ``"iou"`` and ``"dice"``: mean over the scenes (floats in [0, 1]); ``"ms"``: median wall time of
        one call in milliseconds; ``"per_scene_iou"``: ``(N,)`` float64 array.
    """
    if not callable(segment):
        raise ValueError(f"`segment` must be a function scene -> mask, got {type(segment).__name__}")
    scenes = list(scenes)
    if not scenes:
        raise ValueError("`scenes` is empty: give at least one scene to score on")
    ious, dices, times = [], [], []
    for scene in scenes:
        truth = scene.semantic > 0
        t0 = time.perf_counter()
        pred = segment(scene)
        times.append(time.perf_counter() - t0)
        pred = np.asarray(pred)
        if pred.shape != truth.shape:
            raise ValueError(f"`segment` returned shape {pred.shape} for scene {scene.seed}; "
                             f"expected the image's (H, W) = {truth.shape}")
        ious.append(binary_iou(pred, truth))
        dices.append(binary_dice(pred, truth))
    return {"iou": float(np.mean(ious)), "dice": float(np.mean(dices)),
            "ms": 1000 * float(np.median(times)), "per_scene_iou": np.array(ious)}


# --------------------------------------------------------------------------------------------------
# The classical nuclei pipeline (threshold, morphology, distance-transform watershed)
# --------------------------------------------------------------------------------------------------

def _check_nuclei_image(image) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"`image` must be (H, W) grey or (H, W, 3) RGB uint8, got shape {img.shape} and "
                         f"dtype {img.dtype}; `utils.nuclei.read_image` gives (H, W, 3) uint8")
    if min(img.shape[:2]) < 2:
        raise ValueError(f"`image` must be at least 2x2 pixels, got shape {img.shape}")
    return img


def nuclei_grey(image) -> np.ndarray:
    """The grey image the nuclei pipeline thresholds: nuclei bright, background dark.

    Colour is turned into grey with ``skimage.color.rgb2gray`` (a weighted sum of R, G and B). Then
    the **polarity** is set: in fluorescence the nuclei glow on a dark background, but in brightfield
    and in stained tissue they absorb light and are *darker* than a light background. A threshold's
    foreground is the bright side, so an image whose median grey level is light (above 0.5; most of
    an image is background) is inverted, and the nuclei become the bright side in every kind of image.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) uint8 ndarray
        Grey or RGB, values in [0, 255].

    Returns
    -------
    (H, W) float64 ndarray
        Grey levels in [0, 1], nuclei bright.

    Raises
    ------
    ValueError
        If ``image`` is not a uint8 ``(H, W)`` or ``(H, W, 3)`` array of at least 2x2 pixels.
    """
    from skimage.color import rgb2gray

    img = _check_nuclei_image(image)
    grey = rgb2gray(img) if img.ndim == 3 else img / 255.0
    return 1.0 - grey if np.median(grey) > 0.5 else grey


def nuclei_foreground(image, *, min_area: int = 40, opening_radius: int = 1, sigma: float = 1.0) -> np.ndarray:
    """Nucleus-or-background by Otsu's threshold and morphology: the first half of :func:`nuclei_watershed`.

    Steps: :func:`nuclei_grey` (grey, nuclei bright); a Gaussian blur of width ``sigma`` against
    pixel noise; Otsu's threshold; an opening with a disc of radius ``opening_radius`` (removes specks and
    thin bridges); filling holes; removing connected pieces smaller than ``min_area`` pixels.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) uint8 ndarray
        Grey or RGB, values in [0, 255].
    min_area : int
        Pieces with fewer pixels are dropped, ``>= 0`` (0 keeps all).
    opening_radius : int
        Radius in pixels of the opening's disc, ``>= 0`` (0: no opening).
    sigma : float
        Width in pixels of the Gaussian blur before the threshold, ``>= 0`` (0: no blur).

    Returns
    -------
    (H, W) bool ndarray
        ``True`` on nuclei.

    Raises
    ------
    ValueError
        For a bad ``image`` (see :func:`nuclei_grey`) or an argument out of range, named in the message.
    """
    from scipy import ndimage as ndi
    from skimage import filters, morphology

    from .validation import check_int

    grey = nuclei_grey(image)
    min_area = check_int("min_area", min_area, 0)
    opening_radius = check_int("opening_radius", opening_radius, 0)
    if not isinstance(sigma, (int, float, np.integer, np.floating)) or isinstance(sigma, bool) \
            or not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"`sigma` must be a number >= 0 (pixels; 0 means no blur), got {sigma!r}")
    if sigma > 0:
        grey = filters.gaussian(grey, sigma=float(sigma))
    if grey.max() == grey.min():                 # a flat image has nothing to split
        return np.zeros(grey.shape, bool)
    mask = grey > filters.threshold_otsu(grey)
    if opening_radius > 0:
        mask = morphology.opening(mask, morphology.disk(opening_radius))
    mask = ndi.binary_fill_holes(mask)
    if min_area > 0:
        labels, _ = ndi.label(mask)
        keep = np.bincount(labels.ravel()) >= min_area
        keep[0] = False
        mask = keep[labels]
    return mask


def nuclei_watershed(image, *, min_distance: int = 11, min_area: int = 40, opening_radius: int = 1,
                     sigma: float = 1.0) -> np.ndarray:
    """The classical nuclei pipeline: Otsu's threshold, morphology, distance-transform watershed.

    1. **Foreground** (:func:`nuclei_foreground`): grey conversion; polarity (an image with a light median
       has dark nuclei, as in brightfield and stained tissue, and is inverted so that nuclei are bright
       everywhere); a Gaussian blur; Otsu's threshold; opening, hole filling, removal of small pieces.
    2. **Distance transform**: for every foreground pixel, the Euclidean distance to the nearest background
       pixel. It peaks near the centre of each roundish nucleus and dips at the neck where two touch.
    3. **Markers**: the peaks of the distance (``skimage.feature.peak_local_max``, at least ``min_distance``
       pixels apart), one id each. They are searched within each connected piece, so every piece gets at
       least one (its deepest pixel is always a peak) and no piece is lost.
    4. **Watershed** of the negated distance from the markers, restricted to the foreground: one region per
       marker, and touching nuclei are split along the necks.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) uint8 ndarray
        Grey or RGB, values in [0, 255] (``utils.nuclei.read_image`` gives ``(H, W, 3)``).
    min_distance : int
        Smallest distance in pixels between two markers, ``>= 1``. Smaller values split more: set it to
        about the radius of the smallest nucleus you want to keep apart from a neighbour.
    min_area : int
        Foreground pieces of fewer pixels are dropped before splitting, ``>= 0``.
    opening_radius : int
        Radius in pixels of the opening's disc, ``>= 0`` (0: no opening).
    sigma : float
        Width in pixels of the Gaussian blur before the threshold, ``>= 0`` (0: no blur).

    Returns
    -------
    (H, W) int32 ndarray
        Instance label map: ``0`` background, ``1..N`` one id per nucleus (consecutive, one per marker).

    Raises
    ------
    ValueError
        For a bad ``image`` (not uint8 ``(H, W)`` or ``(H, W, 3)``) or an argument out of range, named in
        the message.

    Notes
    -----
    The defaults are the setting with the best instance F1 at IoU 0.5 (counts summed over the images) on
    the 27 ``val`` images of the shipped nuclei (``data/nuclei/``), from a grid of ``min_distance`` 3 to 19,
    ``min_area`` 0 to 60, ``opening_radius`` 0 to 2 and ``sigma`` 0 to 2; the ``test`` images played no
    part. Around the best setting the score is flat (within 0.01 for ``min_distance`` 9 to 15). One
    ``min_distance`` for every image is a compromise: nuclei of the large fluorescence images are a few
    pixels across, those of stained tissue several times larger.

    Examples
    --------
    >>> yy, xx = np.mgrid[:60, :90]
    >>> discs = ((yy - 30) ** 2 + (xx - 28) ** 2 <= 15 ** 2) | ((yy - 30) ** 2 + (xx - 56) ** 2 <= 15 ** 2)
    >>> labels = nuclei_watershed((discs * 200 + 20).astype(np.uint8))
    >>> labels.shape, labels.dtype.name, int(labels.max())
    ((60, 90), 'int32', 2)
    """
    from scipy import ndimage as ndi
    from skimage import segmentation

    from .validation import check_int

    min_distance = check_int("min_distance", min_distance, 1)
    foreground = nuclei_foreground(image, min_area=min_area, opening_radius=opening_radius, sigma=sigma)
    pieces, n_pieces = ndi.label(foreground)
    if n_pieces == 0:
        return np.zeros(foreground.shape, np.int32)
    distance = ndi.distance_transform_edt(foreground)
    markers = distance_peak_markers(distance, pieces, min_distance)
    return segmentation.watershed(-distance, markers, mask=foreground).astype(np.int32)


def distance_peak_markers(distance, pieces, min_distance: int) -> np.ndarray:
    """Watershed markers at the peaks of a distance map, one id per peak.

    Parameters
    ----------
    distance : (H, W) float ndarray
        Distance to the background (``scipy.ndimage.distance_transform_edt`` of a mask).
    pieces : (H, W) integer ndarray
        Connected pieces (0 outside): peaks are searched within each, so every piece gets at least one.
    min_distance : int
        Smallest distance in pixels between two peaks, ``>= 1``.

    Returns
    -------
    (H, W) int32 ndarray
        ``0`` everywhere but at the peaks, numbered ``1..K``.
    """
    from skimage import feature

    from .validation import check_int

    min_distance = check_int("min_distance", min_distance, 1)
    peaks = feature.peak_local_max(distance, min_distance=min_distance, labels=pieces, exclude_border=False)
    markers = np.zeros(np.shape(distance), np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return markers
