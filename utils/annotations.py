"""Import of one's own labelled images (lesson 12): LabelMe, COCO and CVAT files to masks, and a grouped split.

Three annotation tools, three file formats, one result. Each reader returns, per image, an
:class:`Annotation`: the image's name and size, one boolean mask per object, the objects' label names
(and class ids when a class map is given), which objects are COCO "crowd" regions, and where in the
file each object came from. :func:`to_label_map` and :func:`to_semantic` turn it into the two targets
the course trains on, and :func:`grouped_split` splits the images so that related images (one
patient, one field, one video) never straddle train and test.

Formats read
------------
* **LabelMe** (one JSON file per image, as LabelMe 5 writes it): ``"shapes"``, each with ``"label"``,
  ``"points"`` (a list of ``[x, y]``), ``"shape_type"`` and ``"group_id"``; ``"imagePath"``,
  ``"imageHeight"``, ``"imageWidth"``. Shape types with an area are read: ``polygon`` (also a missing or
  ``null`` type, as LabelMe treats it), ``rectangle`` (two opposite corners, in either order),
  ``circle`` (the centre, then a point on the circumference) and ``mask`` (the two corners
  ``[[x1, y1], [x2, y2]]`` of a base64 PNG placed at rows ``y1..y2``, columns ``x1..x2``). Shapes of the
  same label with the same non-null ``group_id`` are one object (as LabelMe's own export does).
* **COCO** (one JSON file for a data set): ``"images"`` (``id``, ``file_name``, ``height``, ``width``),
  ``"annotations"`` (``image_id``, ``category_id``, ``segmentation``, ``iscrowd``) and
  ``"categories"`` (``id``, ``name``). A segmentation is a list of polygons (each a flat list
  ``[x1, y1, x2, y2, ...]``; the parts of one object are united), an uncompressed RLE
  ``{"counts": [...], "size": [h, w]}`` or a compressed RLE (``counts`` a string). RLE counts run over
  the pixels in column-major order, starting with a run of background (possibly of length 0).
* **CVAT for images 1.1** (one XML file for a task): ``<image id name width height>`` holding
  ``<polygon label points="x1,y1;x2,y2;...">``, ``<box label xtl ytl xbr ybr [rotation]>``,
  ``<ellipse label cx cy rx ry [rotation]>`` and ``<mask label rle left top width height>``. A mask's
  ``rle`` is a comma-separated list of run lengths over its ``width x height`` box, in **row-major**
  order, starting with a run of background (as CVAT's own exporter writes it and its importers read
  it; ``width`` counts pixels, so the box covers columns ``left .. left + width - 1``). Rotations are in
  degrees about the shape's centre, clockwise on screen (y points down), as in CVAT. Objects are
  ordered by ``z_order`` (then file order), so later objects are the ones CVAT draws on top.

Shapes without an area (LabelMe ``line``, ``linestrip``, ``point``, ``points``; CVAT ``polyline``,
``points``, ``tag``, ``skeleton``, ``cuboid``) are left out and listed in :attr:`Annotation.skipped`.

Coordinates and the one rasteriser
----------------------------------
All points are ``(x, y)`` in pixels: ``x`` to the right, ``y`` down, and **pixel edges at integer
coordinates**: pixel ``(row r, column c)`` is the square ``[c, c + 1) x [r, r + 1)``, its centre at
``(c + 0.5, r + 0.5)``, and ``(0, 0)`` is the top-left corner of the image. This is COCO's
convention; the points themselves are read as the files store them, unchanged.

Every polygon, rectangle, box, circle and ellipse is rasterised by **pycocotools** (``frPyObjects``,
the rasteriser behind COCO's mask AP): a pixel belongs to a shape when its centre lies inside (up to
pycocotools' supersampled edge walk, which decides a few pixels whose centres lie within a fraction
of a pixel of an edge). So a rectangle from ``(2, 3)`` to ``(6, 8)`` covers exactly columns 2..5 and
rows 3..7, 20 pixels, its area; circles and ellipses become polygons of enough vertices that the chord
stays within 0.05 px of the curve. Masks imported this way match the masks COCO evaluation computes
from the same polygons. Other rasterisers disagree at the edges: OpenCV's ``fillPoly``, PIL's
``ImageDraw.polygon`` (which LabelMe's own export uses) and ``skimage.draw.polygon`` put pixel centres
at integer coordinates, and OpenCV and PIL also fill the pixels the outline touches. On a pentagon of
1,600 pixels (perimeter 158 px) given to each library as it is, 49 (PIL) to 110 (OpenCV) pixels
differ from pycocotools' mask, a ring along the edges; :func:`compare_rasterisers` measures it.

Clipping and errors
-------------------
A shape partly outside the image is clipped to it; one wholly outside, or one that covers no pixel
centre, is an error. Every error is a ``ValueError`` that names the file and the shape (its index,
counted from 0 in file order, and its label), and says what was wrong: a polygon of fewer than three
points, an unknown label, malformed JSON or XML, a missing image size, a COCO annotation of an
unknown image, an RLE whose runs do not add up to its size.

Memory: masks are stored whole, ``N x H x W`` bytes per image (50 objects on a 4000 x 3000 photo are
600 MB); resize large photos before annotating, or read and convert one file at a time.
"""
from __future__ import annotations

import base64
import io
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from .validation import check_int

__all__ = [
    "Annotation",
    "read_labelme",
    "read_coco",
    "read_cvat_images",
    "to_label_map",
    "to_semantic",
    "mask_to_polygons_xy",
    "write_labelme",
    "write_coco",
    "write_cvat_images",
    "polygon_to_mask",
    "polygon_area_xy",
    "compare_rasterisers",
    "grouped_split",
]

#: LabelMe shape types that have no area: read past and listed in ``Annotation.skipped``.
LABELME_SKIPPED_TYPES = ("line", "linestrip", "point", "points")
#: CVAT for images elements that have no area: read past and listed in ``Annotation.skipped``.
CVAT_SKIPPED_TAGS = ("polyline", "points", "tag", "skeleton", "cuboid")

# A circle or ellipse of radius r becomes a polygon of n vertices whose chords stay within
# r * (1 - cos(pi / n)) < r * pi**2 / (2 n**2) <= _MAX_SAGITTA pixels of the curve.
_MAX_SAGITTA = 0.05


# --------------------------------------------------------------------------------------------------
# The common structure
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Annotation:
    """The objects annotated on one image, whatever tool wrote them.

    Attributes
    ----------
    image_name : str
        The image as the file names it: LabelMe's ``imagePath`` (relative to the JSON file's folder),
        COCO's ``file_name``, CVAT's ``name``.
    height, width : int
        The image's size in pixels, as the file states it.
    masks : (N, H, W) bool ndarray
        One mask per object, in drawing order (see :func:`to_label_map`).
    labels : tuple of N str
        Each object's label name (COCO: its category's ``name``).
    class_ids : (N,) int64 ndarray or None
        Each object's class id from the reader's ``class_ids`` map (ids >= 1); ``None`` when the file
        was read without one.
    iscrowd : (N,) bool ndarray
        COCO's ``iscrowd`` flag (one region holding many objects); all ``False`` for LabelMe and CVAT.
    source_shapes : tuple of N str
        Where each object came from, e.g. ``"shape 3 ('cat', polygon)"``; the wording of the errors.
    source : str
        The annotation file read.
    skipped : tuple of str
        Shapes left out: shapes without an area, and unknown labels when the reader was asked to skip
        them.
    """

    image_name: str
    height: int
    width: int
    masks: np.ndarray
    labels: tuple
    class_ids: np.ndarray | None
    iscrowd: np.ndarray
    source_shapes: tuple
    source: str = ""
    skipped: tuple = ()

    def __post_init__(self):
        n = len(self.labels)
        if self.masks.shape != (n, self.height, self.width) or self.masks.dtype != bool:
            raise ValueError(f"`masks` must be ({n}, {self.height}, {self.width}) bool, got shape "
                             f"{self.masks.shape} and dtype {self.masks.dtype}")
        if self.iscrowd.shape != (n,) or len(self.source_shapes) != n:
            raise ValueError(f"`iscrowd` and `source_shapes` must have one entry per object ({n}), got "
                             f"{self.iscrowd.shape[0]} and {len(self.source_shapes)}")
        if self.class_ids is not None and self.class_ids.shape != (n,):
            raise ValueError(f"`class_ids` must be ({n},), got shape {self.class_ids.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"Annotation({self.image_name!r}, {self.height}x{self.width}, {len(self)} objects, "
                f"labels={list(self.labels)!r}, skipped={len(self.skipped)})")


# --------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------

def _class_map(class_ids) -> dict | None:
    """``class_ids`` as a ``{name: id}`` dict (ids >= 1), or ``None``."""
    if class_ids is None:
        return None
    if isinstance(class_ids, Mapping):
        out = {}
        for name, value in class_ids.items():
            if not isinstance(name, str):
                raise ValueError(f"`class_ids` must map label names (str) to ids, got key {name!r}")
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`class_ids` must map names to ints >= 1 (0 is the background), got "
                                 f"{name!r}: {value!r}")
            out[name] = int(value)
        return out
    if isinstance(class_ids, Sequence) and not isinstance(class_ids, (str, bytes)):
        names = list(class_ids)
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise ValueError(f"`class_ids` as a sequence must hold distinct label names (ids 1, 2, ... in "
                             f"order), got {names!r}")
        return {name: i + 1 for i, name in enumerate(names)}
    raise ValueError(f"`class_ids` must be None, a {{name: id}} dict or a list of names, got "
                     f"{type(class_ids).__name__}")


def _check_unknown(unknown) -> str:
    if unknown not in ("error", "skip"):
        raise ValueError(f"`unknown` must be 'error' or 'skip', got {unknown!r}")
    return unknown


def _image_size(value, what: str, where: str) -> int:
    """A positive integer image dimension from a file (JSON number or XML string)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{where}: {what} must be a positive integer, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or value != int(value) or value < 1:
        raise ValueError(f"{where}: {what} must be a positive integer, got {value!r}")
    return int(value)


def _points_xy(points, where: str) -> np.ndarray:
    """``points`` as a ``(K, 2)`` float64 array of finite ``(x, y)``, or an error naming ``where``."""
    try:
        a = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: points must be numbers (x, y), got {points!r:.80}") from None
    if a.ndim == 1 and a.size % 2 == 0:
        a = a.reshape(-1, 2)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{where}: points must be (x, y) pairs, got an array of shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: points must be finite, got {a.tolist()!r:.80}")
    return a


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") \
            from None


# --------------------------------------------------------------------------------------------------
# Rasterising (pycocotools, one convention for every shape)
# --------------------------------------------------------------------------------------------------

def polygon_area_xy(points_xy) -> float:
    """The area enclosed by a simple polygon (the shoelace formula), in square pixels.

    Parameters
    ----------
    points_xy : (K, 2) array-like of float
        The vertices as ``(x, y)``, in order (either direction), not repeating the first.
    """
    p = _points_xy(points_xy, "`points_xy`")
    x, y = p[:, 0], p[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _rasterise(parts: list, height: int, width: int) -> np.ndarray:
    """The union of polygons ``parts`` (each ``(K, 2)`` float, K >= 3) as an ``(H, W)`` bool mask."""
    from pycocotools import mask as mask_utils

    flat = [np.ascontiguousarray(p, dtype=np.float64).ravel().tolist() for p in parts]
    rles = mask_utils.frPyObjects(flat, height, width)
    with warnings.catch_warnings():   # pycocotools' decode under NumPy 2 warns about its own __array__
        warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy keyword",
                                category=DeprecationWarning)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def polygon_to_mask(points_xy, height: int, width: int) -> np.ndarray:
    """Rasterise one polygon the way the readers do (pycocotools, pixel edges at integers).

    Parameters
    ----------
    points_xy : (K, 2) array-like of float, K >= 3
        The vertices as ``(x, y)`` pixels, pixel ``(r, c)`` spanning ``[c, c + 1) x [r, r + 1)``.
    height, width : int
        The mask's size.

    Returns
    -------
    (height, width) bool ndarray
        ``True`` where a pixel's centre ``(c + 0.5, r + 0.5)`` lies inside (pycocotools' edge rule);
        the parts outside the mask are clipped.

    Examples
    --------
    >>> int(polygon_to_mask([(2, 3), (6, 3), (6, 8), (2, 8)], 10, 10).sum())   # 4 x 5 pixels
    20
    """
    height = check_int("height", height)
    width = check_int("width", width)
    p = _points_xy(points_xy, "`points_xy`")
    if len(p) < 3:
        raise ValueError(f"`points_xy` must hold at least 3 points, got {len(p)}")
    return _rasterise([p], height, width)


def _box_polygon(x0: float, y0: float, x1: float, y1: float, rotation_deg: float = 0.0) -> np.ndarray:
    """The corners of a box (optionally rotated about its centre, clockwise on screen) as (4, 2)."""
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    p = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    if rotation_deg:
        a = math.radians(rotation_deg)
        c = p.mean(axis=0)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        p = (p - c) @ rot.T + c
    return p


def _ellipse_polygon(cx: float, cy: float, rx: float, ry: float, rotation_deg: float = 0.0) -> np.ndarray:
    """An ellipse as a polygon whose chords stay within ``_MAX_SAGITTA`` px of the curve, (n, 2)."""
    r = max(rx, ry)
    n = max(64, math.ceil(math.pi * math.sqrt(r / (2 * _MAX_SAGITTA))))
    t = 2 * np.pi * np.arange(n) / n
    p = np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)
    if rotation_deg:
        a = math.radians(rotation_deg)
        p = p @ np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]).T
    return p + np.array([cx, cy])


def _check_nonempty(mask: np.ndarray, bounds_xyxy, height: int, width: int, where: str) -> np.ndarray:
    """``mask`` if it covers a pixel; else an error saying whether the shape lies outside the image."""
    if mask.any():
        return mask
    x0, y0, x1, y1 = bounds_xyxy
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ValueError(f"{where}: lies wholly outside the {width}x{height} image (its extent is "
                         f"x {x0:g}..{x1:g}, y {y0:g}..{y1:g})")
    raise ValueError(f"{where}: covers no pixel (no pixel centre (c + 0.5, r + 0.5) lies inside; extent "
                     f"x {x0:g}..{x1:g}, y {y0:g}..{y1:g})")


def _shape_mask(parts: list, height: int, width: int, where: str) -> np.ndarray:
    """Rasterise polygon ``parts`` (clipped to the image); an error if nothing is left."""
    allp = np.concatenate(parts)
    bounds = (allp[:, 0].min(), allp[:, 1].min(), allp[:, 0].max(), allp[:, 1].max())
    return _check_nonempty(_rasterise(parts, height, width), bounds, height, width, where)


def _paste(crop: np.ndarray, left: int, top: int, height: int, width: int, where: str) -> np.ndarray:
    """Place a ``(h, w)`` bool ``crop`` with its top-left pixel at ``(left, top)``, clipped to the image."""
    h, w = crop.shape
    mask = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + w, width), min(top + h, height)
    if x0 < x1 and y0 < y1:
        mask[y0:y1, x0:x1] = crop[y0 - top:y1 - top, x0 - left:x1 - left]
    return _check_nonempty(mask, (left, top, left + w, top + h), height, width, where)


def compare_rasterisers(points_xy, height: int, width: int, shift_half_pixel: bool = False) -> dict:
    """Rasterise one polygon with four libraries and count where each disagrees with pycocotools.

    Parameters
    ----------
    points_xy : (K, 2) array-like of float, K >= 3
        The vertices as ``(x, y)`` pixels, in the readers' convention (pixel edges at integers).
    height, width : int
        The masks' size.
    shift_half_pixel : bool
        ``False``: every library gets the same coordinates, as a user would pass them. ``True``: the
        three others get the points moved by ``(-0.5, -0.5)``, into their own convention of pixel centres
        at integers, so that only their edge rules differ.

    Returns
    -------
    dict
        ``{name: {"pixels": int, "differ": int}}`` for ``"pycocotools"`` (``frPyObjects``, the readers'
        rasteriser), ``"opencv"`` (``cv2.fillPoly`` with 4 fractional bits), ``"pil"``
        (``ImageDraw.polygon`` with ``fill=1, outline=1``, as LabelMe's export calls it) and
        ``"skimage"`` (``skimage.draw.polygon``): the pixels each fills, and how many of them differ
        from pycocotools' mask (the size of the symmetric difference).
    """
    import cv2
    from PIL import Image, ImageDraw
    from skimage.draw import polygon as sk_polygon

    reference = polygon_to_mask(points_xy, height, width)
    p = _points_xy(points_xy, "`points_xy`") - (0.5 if shift_half_pixel else 0.0)
    shift = 4
    cv_mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(cv_mask, [np.round(p * (1 << shift)).astype(np.int32)], 1, cv2.LINE_8, shift)
    pil_image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(pil_image).polygon([tuple(v) for v in p.tolist()], fill=1, outline=1)
    rows, cols = sk_polygon(p[:, 1], p[:, 0], shape=(height, width))
    sk_mask = np.zeros((height, width), dtype=bool)
    sk_mask[rows, cols] = True
    out = {}
    for name, m in (("pycocotools", reference), ("opencv", cv_mask.astype(bool)),
                    ("pil", np.asarray(pil_image).astype(bool)), ("skimage", sk_mask)):
        out[name] = {"pixels": int(m.sum()), "differ": int((m ^ reference).sum())}
    return out


# --------------------------------------------------------------------------------------------------
# RLE decoding (COCO column-major, CVAT row-major); both checked against the size they claim
# --------------------------------------------------------------------------------------------------

def _coco_string_counts(s: str, where: str) -> list:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``)."""
    counts: list = []
    p = 0
    try:
        data = s.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: compressed RLE string holds a non-ASCII character") from None
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data):
                raise ValueError(f"{where}: compressed RLE string ends in the middle of a number")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"{where}: compressed RLE string holds {chr(data[p])!r}, which is not an "
                                 "RLE character (ASCII 48..111)")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        if x < 0:
            raise ValueError(f"{where}: compressed RLE string decodes to a negative run length")
        counts.append(x)
    return counts


def _runs_to_mask(counts, total: int, where: str) -> np.ndarray:
    """Alternating background/foreground runs (background first) as a flat bool array of ``total``."""
    c = np.asarray(counts)
    if c.ndim != 1 or (c.size and not np.issubdtype(c.dtype, np.integer)) or (c < 0).any():
        raise ValueError(f"{where}: RLE counts must be non-negative integers, got {list(counts)[:8]!r}...")
    if int(c.sum()) != total:
        raise ValueError(f"{where}: RLE runs add up to {int(c.sum())} pixels, but its size holds {total}")
    values = (np.arange(c.size) % 2).astype(bool)
    return np.repeat(values, c)


def _coco_rle_mask(seg: dict, height: int, width: int, where: str) -> np.ndarray:
    """A COCO RLE dict (uncompressed or compressed) as an ``(H, W)`` bool mask of the image's size."""
    size = seg.get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise ValueError(f"{where}: an RLE needs 'size': [height, width], got {size!r}")
    if [int(v) for v in size] != [height, width]:
        raise ValueError(f"{where}: RLE size {list(size)} (height, width) is not the image's "
                         f"[{height}, {width}]")
    counts = seg.get("counts")
    if isinstance(counts, (bytes, str)):
        counts = counts.decode("ascii") if isinstance(counts, bytes) else counts
        counts = _coco_string_counts(counts, where)
    elif not isinstance(counts, list):
        raise ValueError(f"{where}: RLE 'counts' must be a list of run lengths or a string, got "
                         f"{type(counts).__name__}")
    flat = _runs_to_mask(counts, height * width, where)
    return flat.reshape(width, height).T.copy()          # column-major


# --------------------------------------------------------------------------------------------------
# Building an Annotation
# --------------------------------------------------------------------------------------------------

class _Builder:
    """Collects one image's objects, checking labels against the class map as they come."""

    def __init__(self, path: Path, image_name: str, height: int, width: int, classes, unknown: str):
        self.path, self.image_name, self.height, self.width = path, image_name, height, width
        self.classes, self.unknown = classes, unknown
        self.masks, self.labels, self.crowd, self.sources, self.skipped, self.order = [], [], [], [], [], []

    def accept_label(self, label, where: str, short: str) -> bool:
        """Whether an object of ``label`` is kept (``False``: skipped); an error if it is unknown.

        ``where`` names the file and the shape for an error, ``short`` the shape for ``skipped``."""
        if not isinstance(label, str) or not label:
            raise ValueError(f"{where}: label must be a non-empty string, got {label!r}")
        if self.classes is None or label in self.classes:
            return True
        if self.unknown == "skip":
            self.skipped.append(f"{short}: unknown label")
            return False
        known = ", ".join(repr(k) for k in sorted(self.classes))
        raise ValueError(f"{where}: unknown label {label!r}; `class_ids` knows {known} (add it, or read "
                         "with unknown='skip' to leave such shapes out)")

    def add(self, mask: np.ndarray, label: str, source: str, crowd: bool = False, order=0):
        self.masks.append(mask)
        self.labels.append(label)
        self.crowd.append(bool(crowd))
        self.sources.append(source)
        self.order.append(order)

    def build(self) -> Annotation:
        idx = sorted(range(len(self.masks)), key=lambda i: self.order[i])    # stable
        masks = (np.stack([self.masks[i] for i in idx]) if idx
                 else np.zeros((0, self.height, self.width), dtype=bool))
        labels = tuple(self.labels[i] for i in idx)
        class_ids = (None if self.classes is None
                     else np.array([self.classes[lab] for lab in labels], dtype=np.int64))
        return Annotation(image_name=self.image_name, height=self.height, width=self.width, masks=masks,
                          labels=labels, class_ids=class_ids,
                          iscrowd=np.array([self.crowd[i] for i in idx], dtype=bool),
                          source_shapes=tuple(self.sources[i] for i in idx), source=str(self.path),
                          skipped=tuple(self.skipped))


# --------------------------------------------------------------------------------------------------
# LabelMe
# --------------------------------------------------------------------------------------------------

def read_labelme(path, class_ids=None, unknown: str = "error") -> Annotation:
    """Read one LabelMe JSON file (LabelMe 4 and 5) into an :class:`Annotation`.

    Parameters
    ----------
    path : str or Path
        The ``.json`` file LabelMe saved next to the image.
    class_ids : None, dict of str to int, or sequence of str
        The class map: ``{"cat": 1, "dog": 2}``, or ``["cat", "dog"]`` for ids 1, 2, ... in order (0 is
        the background). ``None`` accepts every label and leaves ``Annotation.class_ids`` ``None``.
    unknown : {"error", "skip"}
        What a label missing from ``class_ids`` does: raise (naming the file, the shape's index and its
        label), or leave the shape out (listed in ``Annotation.skipped``).

    Returns
    -------
    Annotation
        One object per shape with an area, in file order (LabelMe draws later shapes on top), except
        that shapes sharing a label and a non-null ``group_id`` are united into one object at the place of
        the first. Polygons, rectangles and circles are rasterised by pycocotools (see the module's
        notes); a shape partly outside the image is clipped to it.

    Raises
    ------
    ValueError
        Malformed JSON; no ``shapes`` list; a missing or non-positive ``imageHeight``/``imageWidth``; a
        polygon of fewer than three points; a rectangle or circle not of two points; a circle of radius
        0; a ``mask`` whose PNG does not fit its corners; a shape wholly outside the image or covering no
        pixel; an unknown label (with ``class_ids`` and ``unknown="error"``); an unknown shape type.
        Each message names the file and the shape.
    """
    path = Path(path)
    classes = _class_map(class_ids)
    unknown = _check_unknown(unknown)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise ValueError(f"{path}: not a LabelMe file (no 'shapes' list at the top level)")
    for key in ("imageHeight", "imageWidth"):
        if data.get(key) is None:
            raise ValueError(f"{path}: missing image size: no '{key}' (LabelMe writes it; open and save the "
                             "file in LabelMe 4 or later)")
    height = _image_size(data["imageHeight"], "'imageHeight'", str(path))
    width = _image_size(data["imageWidth"], "'imageWidth'", str(path))
    builder = _Builder(path, str(data.get("imagePath") or path.with_suffix("").name), height, width,
                       classes, unknown)
    groups: dict = {}                 # (label, group_id) -> (index of the object, its shape indices)
    for i, shape in enumerate(data["shapes"]):
        if not isinstance(shape, dict):
            raise ValueError(f"{path}: shape {i}: must be a JSON object, got {type(shape).__name__}")
        label = shape.get("label")
        kind = shape.get("shape_type") or "polygon"
        where = f"{path}: shape {i} ({label!r}, {kind})"
        if kind in LABELME_SKIPPED_TYPES:
            builder.skipped.append(f"shape {i} ({label!r}, {kind}): no area")
            continue
        if kind not in ("polygon", "rectangle", "circle", "mask"):
            raise ValueError(f"{where}: unknown shape_type {kind!r}; read are polygon, rectangle, circle and "
                             f"mask (and {', '.join(LABELME_SKIPPED_TYPES)} are skipped)")
        if not builder.accept_label(label, where, f"shape {i} ({label!r}, {kind})"):
            continue
        mask = _labelme_shape_mask(shape, kind, height, width, where)
        group_id = shape.get("group_id")
        if group_id is None:
            builder.add(mask, label, f"shape {i} ({label!r}, {kind})")
            continue
        key = (label, group_id)
        if key not in groups:
            groups[key] = (len(builder.masks), [i])
            builder.add(mask, label, f"shape {i} ({label!r}, group_id {group_id})")
            continue
        j, members = groups[key]
        members.append(i)
        builder.masks[j] = builder.masks[j] | mask
        builder.sources[j] = f"shapes {'+'.join(map(str, members))} ({label!r}, group_id {group_id})"
    return builder.build()


def _labelme_shape_mask(shape: dict, kind: str, height: int, width: int, where: str) -> np.ndarray:
    points = _points_xy(shape.get("points", []), where)
    if kind == "polygon":
        if len(points) < 3:
            raise ValueError(f"{where}: a polygon needs at least 3 points, got {len(points)}")
        return _shape_mask([points], height, width, where)
    if len(points) != 2:
        raise ValueError(f"{where}: a {kind} needs exactly 2 points, got {len(points)}")
    if kind == "rectangle":
        (x0, y0), (x1, y1) = points
        return _shape_mask([_box_polygon(x0, y0, x1, y1)], height, width, where)
    if kind == "circle":
        (cx, cy), (px, py) = points
        r = math.hypot(px - cx, py - cy)
        if r == 0:
            raise ValueError(f"{where}: a circle needs a point on its circumference away from the centre")
        return _shape_mask([_ellipse_polygon(cx, cy, r, r)], height, width, where)
    # kind == "mask": a PNG covering rows y1..y2 and columns x1..x2 (inclusive)
    from PIL import Image

    encoded = shape.get("mask")
    if not isinstance(encoded, str):
        raise ValueError(f"{where}: a mask shape needs 'mask', a base64 PNG, got {type(encoded).__name__}")
    try:
        crop = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded)))) > 0
    except Exception as err:  # noqa: BLE001 (PIL and base64 raise several kinds)
        raise ValueError(f"{where}: 'mask' is not a base64 PNG ({err})") from None
    if crop.ndim == 3:
        crop = crop.any(axis=2)
    (x0, y0), (x1, y1) = points.astype(int)           # as LabelMe's shapes_to_label reads them
    if crop.shape != (y1 - y0 + 1, x1 - x0 + 1):
        raise ValueError(f"{where}: its mask is {crop.shape[1]}x{crop.shape[0]} pixels, but its corners "
                         f"({x0}, {y0}) and ({x1}, {y1}) span {x1 - x0 + 1}x{y1 - y0 + 1}")
    return _paste(crop, x0, y0, height, width, where)


# --------------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------------

def read_coco(path, class_ids=None, unknown: str = "error") -> list:
    """Read a COCO instances JSON file into one :class:`Annotation` per image.

    Parameters
    ----------
    path : str or Path
        The COCO JSON file (``images``, ``annotations``, ``categories``).
    class_ids : None, dict of str to int, or sequence of str
        The class map over category **names** (see :func:`read_labelme`); ``None`` accepts every category.
    unknown : {"error", "skip"}
        What a category name missing from ``class_ids`` does (see :func:`read_labelme`).

    Returns
    -------
    list of Annotation
        One per entry of ``images``, in that order, images without annotations included (with no
        objects). An image's objects are in file order; ``iscrowd`` is COCO's flag. Polygons are
        rasterised by pycocotools; RLEs are decoded after checking that their runs fill their size.
        The ``source_shapes`` read ``"annotation 7 (id 12, 'cat', polygon)"``: 7 is the index in the
        file's ``annotations`` list, 12 the annotation's ``id``.

    Raises
    ------
    ValueError
        Malformed JSON or a missing ``images``/``annotations``/``categories`` list; an image without
        ``height``/``width``; an annotation whose ``image_id`` or ``category_id`` is unknown; a polygon of
        fewer than three points (or an odd number of coordinates); an RLE whose size is not the image's or
        whose runs do not add up to it; a mask wholly outside the image or covering no pixel; an unknown
        label. Each message names the file and the annotation.
    """
    path = Path(path)
    classes = _class_map(class_ids)
    unknown = _check_unknown(unknown)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a COCO file (the top level is a {type(data).__name__}, not an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: not a COCO instances file (no '{key}' list at the top level)")
    categories = {}
    for k, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("name"), str):
            raise ValueError(f"{path}: category {k} needs an 'id' and a 'name', got {cat!r:.80}")
        categories[cat["id"]] = cat["name"]
    builders, by_id = [], {}
    for k, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image:
            raise ValueError(f"{path}: image {k} needs an 'id', got {image!r:.80}")
        where = f"{path}: image {k} (id {image['id']}, {image.get('file_name')!r})"
        for key in ("height", "width"):
            if image.get(key) is None:
                raise ValueError(f"{where}: missing image size: no '{key}'")
        b = _Builder(path, str(image.get("file_name", image["id"])),
                     _image_size(image["height"], "'height'", where),
                     _image_size(image["width"], "'width'", where), classes, unknown)
        if image["id"] in by_id:
            raise ValueError(f"{where}: image id {image['id']!r} appears twice in 'images'")
        by_id[image["id"]] = b
        builders.append(b)
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{path}: annotation {i}: must be a JSON object, got {type(ann).__name__}")
        where = f"{path}: annotation {i} (id {ann.get('id')})"
        b = by_id.get(ann.get("image_id"))
        if b is None:
            raise ValueError(f"{where}: its image_id {ann.get('image_id')!r} is not among the file's "
                             f"{len(by_id)} images")
        if ann.get("category_id") not in categories:
            raise ValueError(f"{where}: its category_id {ann.get('category_id')!r} is not among the file's "
                             f"categories {sorted(categories, key=str)}")
        label = categories[ann["category_id"]]
        seg = ann.get("segmentation")
        kind = "polygon" if isinstance(seg, list) else "RLE"
        where = f"{path}: annotation {i} (id {ann.get('id')}, {label!r}, {kind})"
        if not b.accept_label(label, where, f"annotation {i} (id {ann.get('id')}, {label!r}, {kind})"):
            continue
        mask = _coco_mask(seg, b.height, b.width, where)
        b.add(mask, label, f"annotation {i} (id {ann.get('id')}, {label!r}, {kind})",
              crowd=bool(ann.get("iscrowd", 0)))
    return [b.build() for b in builders]


def _coco_mask(seg, height: int, width: int, where: str) -> np.ndarray:
    if isinstance(seg, dict):
        mask = _coco_rle_mask(seg, height, width, where)
        if not mask.any():
            raise ValueError(f"{where}: the RLE marks no pixel (a single run of background)")
        return mask
    if not isinstance(seg, list) or not seg:
        raise ValueError(f"{where}: needs a 'segmentation' (polygons or an RLE), got {seg!r:.60}; "
                         "box-only annotations cannot be made into masks")
    parts = []
    for j, poly in enumerate(seg):
        if not isinstance(poly, list) or len(poly) % 2:
            raise ValueError(f"{where}: polygon part {j} must be a flat list [x1, y1, x2, y2, ...] of an even "
                             f"length, got {poly!r:.60}")
        p = _points_xy(poly, where)
        if len(p) < 3:
            raise ValueError(f"{where}: polygon part {j} has {len(p)} points; a polygon needs at least 3")
        parts.append(p)
    return _shape_mask(parts, height, width, where)


# --------------------------------------------------------------------------------------------------
# CVAT for images 1.1
# --------------------------------------------------------------------------------------------------

def read_cvat_images(path, class_ids=None, unknown: str = "error") -> list:
    """Read a "CVAT for images 1.1" XML file (``annotations.xml``) into one :class:`Annotation` per image.

    Parameters
    ----------
    path : str or Path
        The XML file (inside the exported zip it is ``annotations.xml``).
    class_ids : None, dict of str to int, or sequence of str
        The class map over label names (see :func:`read_labelme`).
    unknown : {"error", "skip"}
        What a label missing from ``class_ids`` does (see :func:`read_labelme`).

    Returns
    -------
    list of Annotation
        One per ``<image>``, in file order. Objects are ``<polygon>``, ``<box>``, ``<ellipse>`` (rasterised
        by pycocotools) and ``<mask>`` (decoded: row-major runs over its box, background first), ordered by
        ``z_order`` then file order, so a later object is one CVAT draws on top. ``source_shapes`` read
        ``"element 2 (<polygon> 'car')"``: 2 is the index among the ``<image>``'s child elements.

    Raises
    ------
    ValueError
        Malformed XML; a root that is not ``<annotations>``; tracks (a "CVAT for video" export); an image
        without ``width``/``height``; a polygon of fewer than three points; a mask whose runs do not add up
        to ``width * height``; a shape wholly outside the image or covering no pixel; an unknown label; an
        unknown element. Each message names the file, the image and the element.
    """
    import xml.etree.ElementTree as ET

    path = Path(path)
    classes = _class_map(class_ids)
    unknown = _check_unknown(unknown)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not valid XML ({err})") from None
    if root.tag != "annotations":
        raise ValueError(f"{path}: not a CVAT XML file (the root element is <{root.tag}>, not <annotations>)")
    if root.find("track") is not None:
        raise ValueError(f"{path}: holds <track> elements, a 'CVAT for video' export; export the task as "
                         "'CVAT for images 1.1'")
    out = []
    for k, image in enumerate(root.findall("image")):
        where_image = f"{path}: image {k} (id {image.get('id')}, {image.get('name')!r})"
        for key in ("width", "height"):
            if image.get(key) is None:
                raise ValueError(f"{where_image}: missing image size: no '{key}' attribute")
        height = _image_size(image.get("height"), "'height'", where_image)
        width = _image_size(image.get("width"), "'width'", where_image)
        b = _Builder(path, image.get("name") or str(image.get("id", k)), height, width, classes, unknown)
        for j, el in enumerate(list(image)):
            label = el.get("label")
            where = f"{where_image}, element {j} (<{el.tag}> {label!r})"
            if el.tag in CVAT_SKIPPED_TAGS:
                b.skipped.append(f"element {j} (<{el.tag}> {label!r}): no area")
                continue
            if el.tag not in ("polygon", "box", "ellipse", "mask"):
                raise ValueError(f"{where}: unknown element <{el.tag}>; read are polygon, box, ellipse and "
                                 f"mask (and {', '.join(CVAT_SKIPPED_TAGS)} are skipped)")
            if not b.accept_label(label, where, f"element {j} (<{el.tag}> {label!r})"):
                continue
            mask = _cvat_mask(el, height, width, where)
            b.add(mask, label, f"element {j} (<{el.tag}> {label!r})",
                  order=_xml_number(el, "z_order", where, default=0))
        out.append(b.build())
    return out


def _xml_number(el, name: str, where: str, default=None) -> float:
    value = el.get(name)
    if value is None:
        if default is None:
            raise ValueError(f"{where}: missing attribute '{name}'")
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{where}: attribute '{name}' must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: attribute '{name}' must be finite, got {value!r}")
    return number


def _cvat_mask(el, height: int, width: int, where: str) -> np.ndarray:
    if el.tag == "polygon":
        text = el.get("points")
        if not text:
            raise ValueError(f"{where}: missing attribute 'points'")
        try:
            pts = [[float(v) for v in pair.split(",")] for pair in text.strip().split(";") if pair.strip()]
        except ValueError:
            raise ValueError(f"{where}: points must read 'x1,y1;x2,y2;...', got {text!r:.60}") from None
        p = _points_xy(pts, where)
        if len(p) < 3:
            raise ValueError(f"{where}: a polygon needs at least 3 points, got {len(p)}")
        return _shape_mask([p], height, width, where)
    if el.tag == "box":
        x0, y0, x1, y1 = (_xml_number(el, a, where) for a in ("xtl", "ytl", "xbr", "ybr"))
        rotation = _xml_number(el, "rotation", where, default=0.0)
        return _shape_mask([_box_polygon(x0, y0, x1, y1, rotation)], height, width, where)
    if el.tag == "ellipse":
        cx, cy, rx, ry = (_xml_number(el, a, where) for a in ("cx", "cy", "rx", "ry"))
        if rx <= 0 or ry <= 0:
            raise ValueError(f"{where}: an ellipse needs rx > 0 and ry > 0, got {rx:g} and {ry:g}")
        rotation = _xml_number(el, "rotation", where, default=0.0)
        return _shape_mask([_ellipse_polygon(cx, cy, rx, ry, rotation)], height, width, where)
    # <mask rle="..." left top width height>: row-major runs over the box, background first
    left, top, mw, mh = (_xml_number(el, a, where) for a in ("left", "top", "width", "height"))
    if min(mw, mh) < 1 or any(v != int(v) for v in (left, top, mw, mh)):
        raise ValueError(f"{where}: left, top, width, height must be integers with width, height >= 1, got "
                         f"{left:g}, {top:g}, {mw:g}, {mh:g}")
    text = el.get("rle")
    if text is None:
        raise ValueError(f"{where}: missing attribute 'rle'")
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{where}: rle must be comma-separated integers, got {text!r:.60}") from None
    crop = _runs_to_mask(counts, int(mw) * int(mh), where).reshape(int(mh), int(mw))
    return _paste(crop, int(left), int(top), height, width, where)


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------

def _check_annotation(annotation) -> Annotation:
    if not isinstance(annotation, Annotation):
        raise ValueError(f"`annotation` must be an Annotation (from read_labelme, read_coco or "
                         f"read_cvat_images), got {type(annotation).__name__}")
    return annotation


def to_label_map(annotation: Annotation, include_crowd: bool = False) -> np.ndarray:
    """One image's objects as an instance label map; where objects overlap, the later one wins.

    Parameters
    ----------
    annotation : Annotation
    include_crowd : bool
        Paint COCO crowd regions too (by default they are left as background: a crowd is not one object).

    Returns
    -------
    (H, W) int32 ndarray
        ``0`` background, ``i + 1`` where object ``i`` (``annotation.masks[i]``, ``annotation.labels[i]``)
        is. **Overlap rule**: objects are painted in order, so a later object covers an earlier one, as the
        tools draw them (LabelMe: later shapes in the file; COCO: later annotations; CVAT: higher
        ``z_order``). An object entirely covered by later ones, or a crowd region left out, leaves its id
        absent, so ids need not be consecutive; ``labels[id - 1]`` is always an id's label. (The shipped
        nuclei use another rule, the smaller nucleus wins, because their masks come without an order.)
    """
    a = _check_annotation(annotation)
    out = np.zeros((a.height, a.width), dtype=np.int32)
    for i, mask in enumerate(a.masks):
        if a.iscrowd[i] and not include_crowd:
            continue
        out[mask] = i + 1
    return out


def to_semantic(annotation: Annotation, class_ids=None) -> np.ndarray:
    """One image's objects as a semantic mask of class ids; where objects overlap, the later one wins.

    Parameters
    ----------
    annotation : Annotation
    class_ids : None, dict of str to int, or sequence of str
        The class map (see :func:`read_labelme`). ``None`` uses the ids the annotation was read with.

    Returns
    -------
    (H, W) int64 ndarray
        ``0`` background, a class id (>= 1) where an object of that class is; painted in the order of
        :func:`to_label_map` (later objects on top). Crowd regions are painted too: a crowd of people is
        people.

    Raises
    ------
    ValueError
        ``class_ids`` is ``None`` and the annotation was read without a class map, or a label is missing
        from ``class_ids`` (the message names the image and the object).
    """
    a = _check_annotation(annotation)
    classes = _class_map(class_ids)
    if classes is None:
        if a.class_ids is None:
            raise ValueError(f"`class_ids` is needed: {a.image_name!r} was read without a class map (pass "
                             "class_ids here, or to the reader)")
        ids = a.class_ids
    else:
        missing = [(s, lab) for s, lab in zip(a.source_shapes, a.labels) if lab not in classes]
        if missing:
            s, lab = missing[0]
            raise ValueError(f"{a.source}: {a.image_name!r}, {s}: label {lab!r} is not in `class_ids` "
                             f"({sorted(classes)})")
        ids = np.array([classes[lab] for lab in a.labels], dtype=np.int64)
    out = np.zeros((a.height, a.width), dtype=np.int64)
    for mask, cid in zip(a.masks, ids):
        out[mask] = cid
    return out


# --------------------------------------------------------------------------------------------------
# Splitting by group
# --------------------------------------------------------------------------------------------------

def grouped_split(ids, groups, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> tuple:
    """Split images into train/val/test (or any number of parts) keeping each group in one part.

    Images of one group (one patient, one field, one video, one day's photos) look alike; if some went
    to training and some to testing, the test score would flatter the model. Groups are shuffled with
    ``seed``, then each in turn goes to the part furthest below its share of images, measured relatively:
    ``(target - assigned) / target`` with ``target = fraction * len(ids)``, ties to the earlier part.
    Parts thus come out close to their fractions **in images** (not in groups), and every part with a
    positive fraction gets at least one group.

    Parameters
    ----------
    ids : sequence of hashable
        The images' ids (e.g. file names), distinct.
    groups : sequence of hashable
        Each image's group, ``len(groups) == len(ids)``.
    fractions : sequence of float
        Each part's share of the images, >= 0, summing to 1 (to within 1e-6). A 0 gives an empty part.
    seed : int
        Seed of the shuffle of the groups (>= 0). The result depends only on the seed and on the
        ``(id, group)`` pairs, not on their order.

    Returns
    -------
    tuple of lists
        One list of ids per fraction, each in the order of ``ids``.

    Raises
    ------
    ValueError
        ``ids`` and ``groups`` of different lengths, repeated ids, bad ``fractions``, or fewer groups than
        parts with a positive fraction.

    Examples
    --------
    >>> train, val, test = grouped_split(["a1", "a2", "b1", "c1"], ["a", "a", "b", "c"], (0.5, 0.25, 0.25))
    >>> sorted(map(len, (train, val, test)))
    [1, 1, 2]
    """
    ids = list(ids)
    groups = list(groups)
    if len(ids) != len(groups):
        raise ValueError(f"`ids` and `groups` must have the same length, got {len(ids)} and {len(groups)}")
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i in ids:
            if i in seen:
                dup = i
                break
            seen.add(i)
        raise ValueError(f"`ids` must be distinct, got {dup!r} more than once")
    try:
        fr = [float(f) for f in fractions]
    except (TypeError, ValueError):
        raise ValueError(f"`fractions` must be a sequence of numbers, got {fractions!r}") from None
    if not fr or any(not math.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"`fractions` must be numbers >= 0 that sum to 1, got {tuple(fractions)!r} "
                         f"(sum {sum(fr) if fr and all(map(math.isfinite, fr)) else 'n/a'})")
    seed = check_int("seed", seed, low=0)
    unique = sorted(dict.fromkeys(groups), key=lambda g: (type(g).__name__, str(g)))
    used = sum(f > 0 for f in fr)
    if len(unique) < used:
        raise ValueError(f"`groups` holds {len(unique)} distinct group(s), fewer than the {used} parts with a "
                         f"positive fraction in {tuple(fractions)!r}; label more groups or ask for fewer parts")
    size: dict = {}
    for g in groups:
        size[g] = size.get(g, 0) + 1
    order = np.random.default_rng(seed).permutation(len(unique))
    targets = [f * len(ids) for f in fr]
    assigned = [0] * len(fr)
    part_of = {}
    for k in order:
        g = unique[k]
        need = [(t - a) / t if t > 0 else -math.inf for t, a in zip(targets, assigned)]
        best = max(range(len(fr)), key=lambda p: (need[p], -p))
        part_of[g] = best
        assigned[best] += size[g]
    parts: tuple = tuple([] for _ in fr)
    for i, g in zip(ids, groups):
        parts[part_of[g]].append(i)
    return parts


# --------------------------------------------------------------------------------------------------
# Writers: label maps back into the tools' files
# --------------------------------------------------------------------------------------------------
# A model's masks written in a tool's format can be opened in that tool and corrected by hand (model-assisted
# labelling, lesson 12); the course also turns the shipped nuclei's label maps into each format to read them back.

def _check_label_map_arg(labels, name: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
        raise ValueError(f"`{name}` must be a non-empty (H, W) integer label map, got shape {labels.shape} and dtype "
                         f"{labels.dtype}")
    return labels


def mask_to_polygons_xy(mask, tolerance: float = 0.0) -> list:
    """The outlines of a mask's pieces as polygons of ``(x, y)`` points, pixel edges at integers.

    Each 4-connected piece gives one polygon: its outer boundary traced by marching squares through the midpoints
    between pixel centres (``skimage.measure.find_contours`` at level 0.5), so every pixel centre of the piece lies
    inside the polygon and rasterising it again (:func:`polygon_to_mask`) gives back the piece, up to
    pycocotools' edge decisions. Holes are not kept (LabelMe and CVAT polygons have none). ``tolerance > 0``
    simplifies each polygon with Douglas-Peucker (``skimage.measure.approximate_polygon``): fewer vertices, a few
    pixels lost or gained at the edges.

    Parameters
    ----------
    mask : (H, W) bool ndarray
    tolerance : float
        Largest distance, in pixels, between the simplified outline and the traced one.

    Returns
    -------
    list of (K, 2) float64 ndarray
        ``(x, y)`` vertices, the last point not repeated; pieces whose simplified outline has fewer than three
        vertices are left out.
    """
    from scipy import ndimage as ndi
    from skimage import measure

    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"`mask` must be an (H, W) bool array, got shape {mask.shape} and dtype {mask.dtype}")
    if not isinstance(tolerance, Real) or not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"`tolerance` must be a number >= 0, got {tolerance!r}")
    pieces, n = ndi.label(mask)
    polygons = []
    for k in range(1, n + 1):
        contours = measure.find_contours(np.pad(pieces == k, 1).astype(np.float32), 0.5)
        outer = max(contours, key=lambda c: len(c))
        if tolerance > 0:
            outer = measure.approximate_polygon(outer, tolerance)
        rc = outer[:-1] - 1 + 0.5          # drop the repeated last point; undo the padding; centres at +0.5
        if len(rc) >= 3:
            polygons.append(rc[:, ::-1].copy())
    return polygons


def _objects(labels):
    return [int(i) for i in np.unique(labels) if i > 0]


def write_labelme(path, image_name: str, labels, label: str = "object", tolerance: float = 0.0):
    """Write a label map as a LabelMe 5 JSON file: one polygon per piece of each object.

    Parameters
    ----------
    path : str or Path
        The ``.json`` file to write (LabelMe keeps it next to the image).
    image_name : str
        The image's file name relative to ``path``'s folder (LabelMe's ``imagePath``).
    labels : (H, W) integer ndarray
        ``0`` background, ``1..N`` objects.
    label : str
        The label of every object.
    tolerance : float
        Polygon simplification in pixels (:func:`mask_to_polygons_xy`); an object in several pieces gets one
        polygon per piece, sharing a ``group_id`` (so :func:`read_labelme` unites them again).

    Returns
    -------
    Path
    """
    labels = _check_label_map_arg(labels)
    shapes = []
    for i in _objects(labels):
        polygons = mask_to_polygons_xy(labels == i, tolerance)
        for poly in polygons:
            shapes.append({"label": str(label), "points": poly.round(2).tolist(),
                           "group_id": i if len(polygons) > 1 else None, "description": "",
                           "shape_type": "polygon", "flags": {}, "mask": None})
    doc = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": str(image_name), "imageData": None,
           "imageHeight": int(labels.shape[0]), "imageWidth": int(labels.shape[1])}
    path = Path(path)
    path.write_text(json.dumps(doc, indent=1))
    return path


def write_coco(path, images, category: str = "object"):
    """Write label maps as one COCO instances JSON file, each object a compressed RLE (exact, unlike a polygon).

    Parameters
    ----------
    path : str or Path
        The ``.json`` file to write.
    images : sequence of (str, (H, W) integer ndarray)
        ``(file_name, labels)`` per image; ``0`` background, ``1..N`` objects.
    category : str
        The one category (id 1) every object belongs to.

    Returns
    -------
    Path
    """
    from pycocotools import mask as mask_utils

    doc = {"info": {"description": "written by utils.annotations.write_coco"}, "licenses": [],
           "images": [], "annotations": [], "categories": [{"id": 1, "name": str(category), "supercategory": ""}]}
    for image_id, (file_name, labels) in enumerate(images, start=1):
        labels = _check_label_map_arg(labels, f"images[{image_id - 1}] labels")
        h, w = labels.shape
        doc["images"].append({"id": image_id, "file_name": str(file_name), "height": int(h), "width": int(w)})
        for i in _objects(labels):
            m = np.asfortranarray(labels == i, dtype=np.uint8)
            rle = mask_utils.encode(m)
            x, y, bw, bh = mask_utils.toBbox(rle).tolist()
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "segmentation": {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")},
                "area": int(m.sum()), "bbox": [x, y, bw, bh]})
    path = Path(path)
    path.write_text(json.dumps(doc))
    return path


def write_cvat_images(path, images, label: str = "object"):
    """Write label maps as one CVAT-for-images 1.1 XML file, each object a ``<mask>`` (CVAT's row-major RLE over
    the object's box, background first), as CVAT's exporter writes it.

    Parameters
    ----------
    path : str or Path
        The ``.xml`` file to write.
    images : sequence of (str, (H, W) integer ndarray)
        ``(name, labels)`` per image; ``0`` background, ``1..N`` objects.
    label : str
        The one label every object carries.

    Returns
    -------
    Path
    """
    import xml.etree.ElementTree as ET

    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(ET.SubElement(ET.SubElement(meta, "labels"), "label"), "name").text = str(label)
    for image_id, (name, labels) in enumerate(images):
        labels = _check_label_map_arg(labels, f"images[{image_id}] labels")
        h, w = labels.shape
        el = ET.SubElement(root, "image", id=str(image_id), name=str(name), width=str(w), height=str(h))
        for z, i in enumerate(_objects(labels)):
            m = labels == i
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            top, left = int(rows[0]), int(cols[0])
            crop = m[top:rows[-1] + 1, left:cols[-1] + 1].ravel()       # row-major over the box
            change = np.flatnonzero(np.diff(crop.astype(np.int8))) + 1
            runs = np.diff(np.concatenate([[0], change, [crop.size]]))
            if crop[0]:
                runs = np.concatenate([[0], runs])                   # the first run counts background
            ET.SubElement(el, "mask", label=str(label), source="manual", occluded="0", z_order=str(z),
                          rle=", ".join(str(int(r)) for r in runs), left=str(left), top=str(top),
                          width=str(crop.size // (rows[-1] - top + 1)), height=str(int(rows[-1] - top + 1)))
    path = Path(path)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
