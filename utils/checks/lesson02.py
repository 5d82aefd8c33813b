"""Checks for notebook 02 (watershed, GrabCut, superpixels): counting the coins, markers for touching discs."""
from __future__ import annotations

import numpy as np

from .core import Feedback, feedback, is_unanswered

COINS_IN_PHOTO = 24          # the coins in skimage.data.coins(), counted by eye
_COIN_AREA = (400, 5000)     # pixels: the smallest coin covers about 1 000, the largest about 3 000


def _describe(props, k: int = 4) -> str:
    """``label 7 at (row 120, col 40)`` for the first ``k`` regions."""
    parts = [f"label {p.label} at (row {p.centroid[0]:.0f}, col {p.centroid[1]:.0f})" for p in props[:k]]
    return ", ".join(parts) + (f" and {len(props) - k} more" if len(props) > k else "")


def _reference_coins() -> np.ndarray:
    """A label image of the 24 coins (the lesson's worked solution), to check where the learner's objects are."""
    from scipy import ndimage as ndi
    from skimage import data, filters, measure, morphology, segmentation

    coins = data.coins()
    bright = coins > filters.threshold_local(coins, block_size=151, offset=-5)
    solid = morphology.opening(ndi.binary_fill_holes(morphology.closing(bright, morphology.disk(2))),
                               morphology.disk(3))
    pieces = segmentation.clear_border(measure.label(solid))
    big = np.bincount(pieces.ravel()) >= _COIN_AREA[0]
    big[0] = False
    return measure.label(big[pieces])


def _where(labels: np.ndarray, ids, k: int = 4) -> str:
    """``(row 120, col 40)`` for the first ``k`` objects of ``ids`` in ``labels``."""
    from scipy import ndimage as ndi

    ids = list(ids)
    centres = ndi.center_of_mass(np.ones_like(labels), labels, ids[:k])
    parts = [f"(row {r:.0f}, col {c:.0f})" for r, c in centres]
    return ", ".join(parts) + (f" and {len(ids) - k} more" if len(ids) > k else "")


def check_coin_labels(labels: np.ndarray | None, strict: bool = False) -> Feedback:
    """Exercise 02.1: label every coin of ``skimage.data.coins()`` once.

    ``labels`` is an ``(H, W)`` integer label image of the photo's shape: 0 for background, one positive id
    per coin (ids need not be consecutive). The photo holds 24 coins. Beyond the count, each labelled object
    must look like one coin: one connected piece (8-connectivity), no holes, between 400 and 5 000 pixels, round
    (solidity >= 0.9), and clear of the image border (no coin touches it). And it must be *where a coin is*:
    every coin of a reference labelling must be covered by one of the learner's objects with IoU > 0.5, and
    every object must cover a coin (``utils.instance_metrics.match_labels``), so 24 round blobs in the wrong
    places do not pass.
    """
    from scipy import ndimage as ndi
    from skimage import data, measure

    name = "label the coins"
    hint = ("threshold (a local threshold copes with the uneven light), clean with closing, hole filling and "
            "opening, label with `skimage.measure.label`, then drop objects smaller than a coin and objects that "
            "touch the image border.")
    if is_unanswered(labels):
        return feedback(name, [], "", strict, hint, labels)
    shape = data.coins().shape
    arr = np.asarray(labels)
    if arr.shape != shape:
        return feedback(name, [f"expected a label image shaped like the photo {shape}, got shape {arr.shape}"],
                        "", strict, hint)
    if arr.dtype == bool:
        return feedback(name, ["this is a mask (True/False), not a label image: give each coin its own number "
                               "with `skimage.measure.label(mask)`"], "", strict, hint)
    if not np.issubdtype(arr.dtype, np.integer):
        return feedback(name, [f"labels must be integers, got dtype {arr.dtype}"], "", strict, hint)
    if arr.min() < 0:
        return feedback(name, [f"labels must be >= 0 (0 = background), found {arr.min()}"], "", strict, hint)
    props = measure.regionprops(arr.astype(np.int64))
    n = len(props)
    problems: list[str] = []
    if n == 0:
        return feedback(name, ["no object is labelled: every pixel is 0"], "", strict, hint)
    pieces = [p for p in props if ndi.label(p.image, structure=np.ones((3, 3)))[1] > 1]
    tiny = [p for p in props if p.area < _COIN_AREA[0]]
    huge = [p for p in props if p.area > _COIN_AREA[1]]
    sized = [p for p in props if p.area >= _COIN_AREA[0]]
    holed = [p for p in sized if ndi.binary_fill_holes(p.image).sum() > 1.03 * p.area]
    odd = [p for p in sized if p.area <= _COIN_AREA[1] and p.solidity < 0.9]
    h, w = shape
    edge = [p for p in props if p.bbox[0] == 0 or p.bbox[1] == 0 or p.bbox[2] == h or p.bbox[3] == w]
    if n != COINS_IN_PHOTO:
        problems.append(f"{n} objects labelled; the photo holds {COINS_IN_PHOTO} coins"
                        + (" (too many: something is split or noise is counted)" if n > COINS_IN_PHOTO
                           else " (too few: coins are merged or missed)"))
    if pieces:
        problems.append(f"{len(pieces)} label(s) cover several separate pieces ({_describe(pieces)}): label "
                        "connected components so each piece gets its own id")
    if tiny:
        problems.append(f"{len(tiny)} object(s) under {_COIN_AREA[0]} pixels, too small for a coin "
                        f"({_describe(tiny)}): specks of noise or fragments; remove small objects")
    if huge:
        problems.append(f"{len(huge)} object(s) over {_COIN_AREA[1]} pixels, larger than any coin "
                        f"({_describe(huge)}): coins merged together or with a bright patch of background")
    if edge:
        problems.append(f"{len(edge)} object(s) touch the image border ({_describe(edge)}): no coin does, so these "
                        "are background (the bright band along the top); `skimage.segmentation.clear_border` "
                        "removes objects that touch the border")
    if holed:
        problems.append(f"{len(holed)} coin(s) have holes ({_describe(holed)}): dark details inside a coin fell "
                        "below the threshold; fill holes (scipy.ndimage.binary_fill_holes)")
    if odd:
        problems.append(f"{len(odd)} object(s) are far from round ({_describe(odd)}): a bite missing where a dark "
                        "detail reaches the rim (a closing before filling holes mends it), or background or a "
                        "neighbour attached (an opening cuts it off)")
    from ..instance_metrics import match_labels

    reference = _reference_coins()
    matched = match_labels(reference, arr.astype(np.int64))
    hit_true = {t for t, _, _ in matched["matches"]}
    hit_pred = {p for _, p, _ in matched["matches"]}
    missed = [int(i) for i in np.unique(reference) if i and i not in hit_true]
    stray = [int(i) for i in np.unique(arr) if i and i not in hit_pred]
    if missed:
        problems.append(f"{len(missed)} coin(s) are not covered by any one of your objects with IoU > 0.5, the coins at "
                        f"{_where(reference, missed)}: missed, merged with a neighbour, or only partly covered")
    if stray:
        problems.append(f"{len(stray)} of your objects do not sit on a coin (IoU > 0.5 with none), at "
                        f"{_where(arr.astype(np.int64), stray)}")
    return feedback(name, problems, f"{COINS_IN_PHOTO} coins, each one round piece of plausible size, each on a coin",
                    strict, hint)


def two_touching_discs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The binary image of exercise 02.2: two overlapping discs that form one connected blob.

    Returns
    -------
    blob : (110, 150) ndarray of bool
        The union of the two discs (what a threshold would give).
    left, right : (110, 150) ndarray of bool
        Each whole disc (radius 34 centred at row 55, col 48; radius 26 at row 62, col 100).
    """
    yy, xx = np.mgrid[:110, :150]
    left = (yy - 55) ** 2 + (xx - 48) ** 2 <= 34 ** 2
    right = (yy - 62) ** 2 + (xx - 100) ** 2 <= 26 ** 2
    return left | right, left, right


def check_disc_markers(markers: np.ndarray | None, strict: bool = False) -> Feedback:
    """Exercise 02.2: markers that make the watershed split the two touching discs.

    ``markers`` is an ``(H, W)`` integer array shaped like :func:`two_touching_discs`'s blob: 0 where
    unknown, a positive id per object. The check runs
    ``watershed(-distance_transform_edt(blob), markers, mask=blob)`` and wants exactly two regions, each
    matching one disc with IoU >= 0.9.
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from ..classical import binary_iou

    name = "markers that split two touching discs"
    hint = ("the distance transform peaks once inside each disc: `skimage.feature.peak_local_max(distance, "
            "min_distance=..., labels=blob)` gives their (row, col); number them 1 and 2 in a zero array.")
    if is_unanswered(markers):
        return feedback(name, [], "", strict, hint, markers)
    blob, left, right = two_touching_discs()
    arr = np.asarray(markers)
    if arr.shape != blob.shape:
        return feedback(name, [f"expected markers shaped like the blob {blob.shape}, got shape {arr.shape}"],
                        "", strict, hint)
    if arr.dtype == bool:
        return feedback(name, ["markers are True/False, so both discs would share one id: number them "
                               "(1 for one disc, 2 for the other), e.g. with `scipy.ndimage.label`"], "", strict, hint)
    if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)                   # np.zeros(...) is float: whole numbers are fine
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0:
        return feedback(name, [f"markers must be whole numbers >= 0 (0 = unknown), got dtype {arr.dtype} with "
                               f"values in [{arr.min():.3g}, {arr.max():.3g}]"], "", strict, hint)
    inside = np.where(blob, arr, 0)
    ids = [int(i) for i in np.unique(inside) if i > 0]
    problems: list[str] = []
    outside = np.count_nonzero(arr[~blob])
    if outside:
        problems.append(f"{outside} marker pixel(s) lie outside the blob; the watershed is run with mask=blob and "
                        "ignores them")
    if not ids:
        return feedback(name, problems + ["no marker inside the blob: the watershed has nothing to grow from"],
                        "", strict, hint)
    if len(ids) == 1:
        problems.append("only one marker id inside the blob: the watershed makes one region per id, so the two "
                        "discs stay together; give each disc its own id")
    elif len(ids) > 2:
        problems.append(f"{len(ids)} different marker ids: the blob will be cut into {len(ids)} regions "
                        "(over-segmentation); one id per disc")
    else:
        in_left = [bool(np.any((inside == i) & left & ~right)) for i in ids]
        in_right = [bool(np.any((inside == i) & right & ~left)) for i in ids]
        if sum(in_left) == 2 and not any(in_right) or sum(in_right) == 2 and not any(in_left):
            problems.append("both markers sit in the same disc; put one in each")
        else:
            regions = watershed(-ndi.distance_transform_edt(blob), arr.astype(np.int32), mask=blob)
            scores = sorted(((max(binary_iou(regions == i, left), binary_iou(regions == i, right)), i) for i in ids))
            if scores[0][0] < 0.9:
                problems.append(f"the regions grown from your markers match the discs with IoU "
                                f"{scores[0][0]:.3f} and {scores[1][0]:.3f} (want >= 0.9 each): put each marker "
                                "near its disc's centre, where the distance transform peaks")
    return feedback(name, problems, "two markers, two regions, each one disc (IoU >= 0.9)", strict, hint)
