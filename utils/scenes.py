"""Generated scenes: one seed gives an image with exact semantic, instance and panoptic ground truth.

The offline path of every lesson. A scene is a textured, unevenly lit background with clutter (thin
lines of random colour that belong to the background) and a few shapes of three classes: discs,
squares and triangles. Colours and textures are drawn independently of the class, so colour alone
cannot separate the classes: a model has to look at shape. Shapes overlap (a later shape hides part
of an earlier one, never more than half of it) and touch.

Conventions
-----------
* ``image``: ``(H, W, 3)`` ``uint8``, RGB, values in [0, 255].
* ``semantic``: ``(H, W)`` ``uint8`` class ids, ``0`` = background, ``1..3`` = ``CLASS_NAMES[1:]``.
* ``instance_masks``: ``(N, H, W)`` ``bool``, the *visible* pixels of each instance (after occlusion),
  so the masks are disjoint and their union is the semantic foreground.
* ``boxes_xyxy``: ``(N, 4)`` ``float32`` ``(x_min, y_min, x_max, y_max)`` in pixel indices, inclusive,
  as ``torchvision.ops.masks_to_boxes`` gives them.
* ``labels``: ``(N,)`` ``int64`` class id of each instance (``1..3``).
* ``panoptic``: ``(H, W)`` ``int32``, ``class_id * PANOPTIC_DIVISOR + instance_number`` with instance
  numbers ``1..N`` for things and ``0`` for stuff (the background is the only stuff class), so
  background pixels are ``0``.

Panoptic scenes (:func:`make_panoptic_scene`, lesson 11) put the same three thing classes over three
stuff classes, sky (0), ground (4) and water (5) (``PANOPTIC_CLASS_NAMES``); their arrays follow the
same conventions, with ``semantic`` and ``panoptic`` holding the stuff ids too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import check_int

CLASS_NAMES = ("background", "disc", "square", "triangle")
NUM_CLASSES = len(CLASS_NAMES)
THING_CLASSES = (1, 2, 3)
STUFF_CLASSES = (0,)
PANOPTIC_DIVISOR = 1000
SPLIT_OFFSETS = {"train": 0, "val": 1_000_000, "test": 2_000_000}


@dataclass
class Scene:
    """One generated scene; see the module docstring for each array's contract."""

    image: np.ndarray
    semantic: np.ndarray
    instance_masks: np.ndarray
    boxes_xyxy: np.ndarray
    labels: np.ndarray
    panoptic: np.ndarray
    seed: int

    @property
    def num_instances(self) -> int:
        return int(self.labels.shape[0])


def _check_size(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, (int, np.integer)) for s in size):
        h, w = int(size[0]), int(size[1])
    else:
        raise ValueError(f"`size` must be an int or a (height, width) pair of ints, got {size!r}")
    if h < 32 or w < 32:
        raise ValueError(f"`size` must be at least 32 pixels on each side, got {(h, w)}")
    return h, w


def _smooth_noise(rng, h, w, cells, channels):
    """Low-frequency noise in [-1, 1]: a coarse random grid, bilinearly upsampled."""
    import cv2

    coarse = rng.uniform(-1, 1, size=(cells, cells, channels)).astype(np.float32)
    out = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def _shape_mask(kind, yy, xx, cy, cx, r, theta):
    """Boolean mask of one shape of class ``kind`` centred at (cx, cy), 'radius' r, rotated by theta."""
    dy, dx = yy - cy, xx - cx
    if kind == 1:  # disc
        return dx * dx + dy * dy <= r * r
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if kind == 2:  # square with half-side chosen so its area is close to the disc's
        half = 0.89 * r
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # equilateral triangle with circumradius 1.3 r: inside all three edge half-planes
    R = 1.3 * r
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        a = 2 * np.pi * k / 3
        inside &= (np.cos(a) * u + np.sin(a) * v) <= R / 2
    return inside


def _texture(rng, yy, xx, h, w):
    """A texture field in [-1, 1] of a kind drawn at random: flat, stripes, checks or speckle."""
    kind = rng.integers(4)
    if kind == 0:
        return np.zeros((h, w), np.float32)
    if kind == 1:
        period = rng.uniform(4, 9)
        a = rng.uniform(0, np.pi)
        return np.sin(2 * np.pi * (np.cos(a) * xx + np.sin(a) * yy) / period).astype(np.float32)
    if kind == 2:
        period = rng.uniform(4, 10)
        return (np.sign(np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period))).astype(np.float32)
    return _smooth_noise(rng, h, w, max(4, h // 4), 1)[..., 0]


def _place_things(rng, img, yy, xx, count, radius_range, reference_colour, max_colour_tries):
    """Paint ``count`` shapes on ``img`` (in place), each hiding at most half of any earlier one.

    ``reference_colour(window, mask)`` gives the colour a shape must differ from (by more than 0.35); the colour
    is drawn again until it does, at most ``max_colour_tries`` times (``None``: until it does). Returns the
    owner map (which shape owns each pixel, -1 none), the visible pixel count of each shape and its class.
    """
    h, w = img.shape[:2]
    scale = min(h, w)
    owner = np.full((h, w), -1, np.int32)  # which instance owns each pixel (-1 = background)
    full_areas, visible, labels = [], [], []
    for _ in range(count):
        kind = int(rng.integers(1, 4))
        for _attempt in range(30):
            r = rng.uniform(*radius_range) * scale
            cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
            reach = 1.3 * r + 2
            y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
            x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
            wy, wx = yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]
            mask = _shape_mask(kind, wy, wx, cy, cx, r, rng.uniform(0, 2 * np.pi))
            covered = owner[y0:y1, x0:x1][mask]
            ids, hidden = np.unique(covered[covered >= 0], return_counts=True)
            if mask.any() and all(visible[i] - n >= 0.5 * full_areas[i] for i, n in zip(ids, hidden)):
                break
        else:
            continue
        reference = reference_colour(img[y0:y1, x0:x1], mask)
        tries = 0
        while True:  # a colour far enough from the reference that the shape is visible
            colour = rng.uniform(0.05, 0.95, size=3).astype(np.float32)
            tries += 1
            if np.linalg.norm(colour - reference) > 0.35 or (max_colour_tries and tries >= max_colour_tries):
                break
        b = rng.uniform(0, 2 * np.pi)  # the direction the light comes from
        shade = 1 + 0.25 * ((wx - cx) * np.cos(b) + (wy - cy) * np.sin(b)) / r
        tex = _texture(rng, wy, wx, y1 - y0, x1 - x0)
        obj = colour * np.clip(shade, 0.6, 1.4)[..., None] + 0.10 * tex[..., None]
        img[y0:y1, x0:x1][mask] = obj[mask]
        for i, n in zip(ids, hidden):
            visible[i] -= int(n)
        owner[y0:y1, x0:x1][mask] = len(labels)
        full_areas.append(int(mask.sum()))
        visible.append(int(mask.sum()))
        labels.append(kind)
    return owner, visible, labels


def _ground_truth(owner, visible, labels, semantic_base):
    """Semantic map, instance masks, boxes, labels and panoptic map from the owner map of :func:`_place_things`;
    instances with no visible pixel are dropped; ``semantic_base`` holds the stuff classes under the things."""
    keep = [i for i in range(len(labels)) if visible[i] > 0]
    n = len(keep)
    instance_masks = owner[None] == np.asarray(keep, np.int32)[:, None, None]
    labels_arr = np.array([labels[i] for i in keep], np.int64)
    semantic = semantic_base.astype(np.uint8)
    panoptic = semantic_base.astype(np.int32) * PANOPTIC_DIVISOR
    boxes = np.zeros((n, 4), np.float32)
    for j in range(n):
        m = instance_masks[j]
        semantic[m] = labels_arr[j]
        panoptic[m] = labels_arr[j] * PANOPTIC_DIVISOR + (j + 1)
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        boxes[j] = (cols[0], rows[0], cols[-1], rows[-1])
    return semantic, instance_masks, boxes, labels_arr, panoptic


def make_scene(seed: int, size=128, max_objects: int = 6, min_objects: int = 2) -> Scene:
    """Generate the scene of a given seed (the same seed always gives the same scene).

    Parameters
    ----------
    seed : int
        Non-negative seed.
    size : int or (int, int)
        Image size, ``size`` or ``(height, width)``; at least 32 on each side.
    min_objects, max_objects : int
        How many shapes to try to place (a shape that would hide more than half of an earlier one is
        moved, and dropped after 30 tries, so a scene can hold fewer).

    Returns
    -------
    Scene
        ``image`` (H, W, 3) uint8 RGB; ``semantic`` (H, W) uint8; ``instance_masks`` (N, H, W) bool;
        ``boxes_xyxy`` (N, 4) float32; ``labels`` (N,) int64; ``panoptic`` (H, W) int32.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}")
    if not (1 <= min_objects <= max_objects):
        raise ValueError(f"need 1 <= `min_objects` <= `max_objects`, got {min_objects} and {max_objects}")
    h, w = _check_size(size)
    rng = np.random.default_rng(int(seed))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scale = min(h, w)

    # Background: a colour, low-frequency texture, and clutter lines that are still background.
    bg_colour = rng.uniform(0.15, 0.85, size=3).astype(np.float32)
    img = bg_colour + 0.12 * _smooth_noise(rng, h, w, 6, 3) + 0.06 * _texture(rng, yy, xx, h, w)[..., None]
    import cv2

    for _ in range(rng.integers(2, 6)):
        p0, p1 = rng.uniform(0, 1, 2) * (w, h), rng.uniform(0, 1, 2) * (w, h)
        colour = tuple(float(c) for c in rng.uniform(0.05, 0.95, size=3))
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), colour, int(rng.integers(1, 4)))

    # Things: shapes on top of each other; each keeps at least half of its own area visible.
    count = rng.integers(min_objects, max_objects + 1)
    owner, visible, labels = _place_things(rng, img, yy, xx, count, (0.08, 0.17),
                                           lambda window, mask: bg_colour, max_colour_tries=None)

    # Global lighting (a multiplicative ramp) and sensor noise.
    a = rng.uniform(0, 2 * np.pi)
    ramp = 1 + rng.uniform(0.1, 0.35) * ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / scale
    img = img * ramp[..., None] + rng.uniform(0.02, 0.05) * rng.standard_normal(img.shape, dtype=np.float32)
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

    # Ground truth from the owner map: drop any instance that ended with no visible pixel.
    semantic, instance_masks, boxes, labels_arr, panoptic = _ground_truth(owner, visible, labels,
                                                                          np.zeros((h, w), np.uint8))
    return Scene(image, semantic, instance_masks, boxes, labels_arr, panoptic, int(seed))


def split_seed(split: str, index: int) -> int:
    """The seed of scene ``index`` of a split (``"train"``, ``"val"`` or ``"test"``); splits never share a seed."""
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"`split` must be one of {tuple(SPLIT_OFFSETS)}, got {split!r}")
    if not (0 <= index < 1_000_000):
        raise ValueError(f"`index` must be in [0, 1_000_000), got {index}")
    return SPLIT_OFFSETS[split] + index


def make_scenes(n: int, size=128, split: str = "train", **kwargs) -> list[Scene]:
    """The first ``n`` scenes of a split: ``make_scene(split_seed(split, i), size)`` for ``i < n``."""
    n = check_int("n", n)
    return [make_scene(split_seed(split, i), size, **kwargs) for i in range(n)]


def panoptic_decode(panoptic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a panoptic map into ``(class_ids, instance_numbers)``, both ``(H, W)`` int32."""
    panoptic = np.asarray(panoptic)
    if not np.issubdtype(panoptic.dtype, np.integer):
        raise ValueError(f"`panoptic` must hold integers, got dtype {panoptic.dtype}")
    return (panoptic // PANOPTIC_DIVISOR).astype(np.int32), (panoptic % PANOPTIC_DIVISOR).astype(np.int32)


# --------------------------------------------------------------------------------------------------
# Panoptic scenes: several stuff classes under the same three thing classes
# --------------------------------------------------------------------------------------------------

#: Classes of the panoptic scenes, indexed by class id: three stuff classes (sky, ground, water) and
#: the three thing classes of the ordinary scenes, with the same ids 1..3.
PANOPTIC_CLASS_NAMES = ("sky", "disc", "square", "triangle", "ground", "water")
PANOPTIC_NUM_CLASSES = len(PANOPTIC_CLASS_NAMES)
PANOPTIC_THINGS = (1, 2, 3)
PANOPTIC_STUFF = (0, 4, 5)
# Mean colour of each stuff class; a region's colour is drawn up to 0.25 away on each channel, so the
# ranges overlap and only the texture tells every pair apart.
_STUFF_COLOURS = {0: (0.55, 0.62, 0.72), 4: (0.50, 0.46, 0.38), 5: (0.38, 0.48, 0.58)}


def _wave(rng, t, length, amplitude):
    """A wavy offset along coordinate ``t``: two sinusoids of random period, phase and amplitude."""
    out = np.zeros_like(t)
    for _ in range(2):
        period = rng.uniform(0.3, 1.2) * length
        out += rng.uniform(0.3, 1.0) * amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return out


def _stuff_layout(rng, yy, xx, h, w):
    """``(H, W)`` uint8 stuff ids: sky above a wavy horizon; below it ground, water or both."""
    horizon = np.clip(h * rng.uniform(0.25, 0.5) + _wave(rng, xx[0], w, 0.06 * h), 0.12 * h, 0.7 * h)
    layout = np.where(yy < horizon[None, :], 0, 4).astype(np.uint8)
    kind = rng.choice(4, p=(0.15, 0.15, 0.35, 0.35))
    below = layout != 0
    if kind == 1:  # water only
        layout[below] = 5
    elif kind == 2:  # a wavy shoreline across the image: water above it (a lake) or below it
        shore = horizon + rng.uniform(0.25, 0.6) * (h - horizon) + _wave(rng, xx[0], w, 0.05 * h)
        under = yy >= shore[None, :]
        water = under if rng.random() < 0.5 else ~under
        layout[below & water] = 5
    elif kind == 3:  # a wavy shoreline from the horizon downwards: water on the left or the right
        shore = w * rng.uniform(0.25, 0.75) + rng.uniform(-0.4, 0.4) * yy[:, 0] + _wave(rng, yy[:, 0], h, 0.06 * w)
        left = xx < shore[:, None]
        water = left if rng.random() < 0.5 else ~left
        layout[below & water] = 5
    return layout


def _stuff_texture(rng, stuff, yy, xx, h, w):
    """A grey-level texture field for one stuff class: smooth sky, grainy ground, rippled water."""
    if stuff == 0:  # sky: low-frequency clouds and a brightening towards the horizon, nothing fine
        return 0.10 * _smooth_noise(rng, h, w, 3, 1)[..., 0] + 0.12 * (yy / h - 0.5)
    if stuff == 4:  # ground: 2-pixel grain over soft patches
        grain = rng.uniform(-1, 1, size=((h + 1) // 2, (w + 1) // 2)).astype(np.float32)
        grain = np.repeat(np.repeat(grain, 2, 0), 2, 1)[:h, :w]
        return 0.16 * grain + 0.06 * _smooth_noise(rng, h, w, 8, 1)[..., 0]
    # water: horizontal ripples, slightly wavy, of a period of 3 to 6 pixels
    period = rng.uniform(3, 6)
    wobble = rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * xx / rng.uniform(12, 30) + rng.uniform(0, 2 * np.pi))
    return 0.13 * np.sin(2 * np.pi * (yy + wobble) / period) + 0.04 * _smooth_noise(rng, h, w, 6, 1)[..., 0]


def make_panoptic_scene(seed: int, size=128, max_objects: int = 5, min_objects: int = 1) -> Scene:
    """Generate the panoptic scene of a seed: three stuff classes under discs, squares and triangles.

    Sky (class 0) lies above a wavy horizon; below it there is ground (4), water (5) or both, split by
    a wavy shoreline. Each stuff class has its own texture (sky smooth, ground a 2-pixel grain, water
    horizontal ripples) and a colour drawn from ranges that overlap between the classes, so a model
    needs texture, not colour, to tell them apart. The shapes of :func:`make_scene` (the same
    classes 1..3 and the same rule: a later shape hides at most half of an earlier one) are placed
    over them, each in a colour that stands out from what lies beneath it.

    Parameters
    ----------
    seed : int
        Non-negative seed; the same seed always gives the same scene (and a different one from
        ``make_scene(seed)``).
    size : int or (int, int)
        Image size, ``size`` or ``(height, width)``; at least 32 on each side.
    min_objects, max_objects : int
        How many shapes to try to place (a shape that cannot be placed in 30 tries is dropped).

    Returns
    -------
    Scene
        As :func:`make_scene`, with the classes of ``PANOPTIC_CLASS_NAMES``: ``image`` (H, W, 3)
        uint8 RGB in [0, 255]; ``semantic`` (H, W) uint8 in ``{0, ..., 5}`` (stuff ids 0, 4, 5 and
        thing ids 1..3); ``instance_masks`` (N, H, W) bool, the visible pixels of the things,
        disjoint; ``boxes_xyxy`` (N, 4) float32; ``labels`` (N,) int64 in 1..3; ``panoptic`` (H, W)
        int32, ``class_id * PANOPTIC_DIVISOR`` on stuff (0 on sky, 4000 on ground, 5000 on water)
        and ``class_id * PANOPTIC_DIVISOR + j + 1`` on instance ``j``.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}")
    min_objects = check_int("min_objects", min_objects, 0)
    max_objects = check_int("max_objects", max_objects, 0)
    if min_objects > max_objects:
        raise ValueError(f"need `min_objects` <= `max_objects`, got {min_objects} and {max_objects}")
    h, w = _check_size(size)
    rng = np.random.default_rng([int(seed), 11])  # a stream of its own: not make_scene(seed)'s
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scale = min(h, w)

    # Stuff: the layout, then each class's colour and texture on its region.
    stuff = _stuff_layout(rng, yy, xx, h, w)
    img = np.zeros((h, w, 3), np.float32)
    for k in PANOPTIC_STUFF:
        region = stuff == k
        colour = np.clip(np.asarray(_STUFF_COLOURS[k]) + rng.uniform(-0.25, 0.25, 3), 0.05, 0.95)
        field = colour.astype(np.float32) + _stuff_texture(rng, k, yy, xx, h, w)[..., None]
        img[region] = field[region]

    # Things, as in make_scene: each keeps at least half of its own area visible, in a colour that stands out
    # from what it covers.
    count = rng.integers(min_objects, max_objects + 1)
    owner, visible, labels = _place_things(rng, img, yy, xx, count, (0.08, 0.16),
                                           lambda window, mask: window[mask].mean(0), max_colour_tries=50)

    # Global lighting and sensor noise.
    a = rng.uniform(0, 2 * np.pi)
    ramp = 1 + rng.uniform(0.1, 0.3) * ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / scale
    img = img * ramp[..., None] + rng.uniform(0.015, 0.035) * rng.standard_normal(img.shape, dtype=np.float32)
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

    semantic, instance_masks, boxes, labels_arr, panoptic = _ground_truth(owner, visible, labels, stuff)
    return Scene(image, semantic, instance_masks, boxes, labels_arr, panoptic, int(seed))


def make_panoptic_scenes(n: int, size=128, split: str = "train", **kwargs) -> list[Scene]:
    """The first ``n`` panoptic scenes of a split: ``make_panoptic_scene(split_seed(split, i), size)``, ``i < n``."""
    n = check_int("n", n)
    return [make_panoptic_scene(split_seed(split, i), size, **kwargs) for i in range(n)]
