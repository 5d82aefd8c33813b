"""Real nuclei of the 2018 Data Science Bowl (BBBC038): label maps, the shipped subset, datasets.

The course ships a curated subset of the Data Science Bowl's stage-1 training images, with the
community's mask fixes, in ``data/nuclei/`` (public domain, CC0; see its README for provenance, the
split and the citation). ``full`` mode downloads the whole original set from the Broad Bioimage
Benchmark Collection (registry entry ``dsb2018_stage1_train``) and converts it the same way.

On disk (``data/nuclei/`` or a converted download)::

    images/<id>.png     the image: 8-bit grey ("L") for grey images, 8-bit RGB for stained tissue
    labels/<id>.png     16-bit ("I;16") instance label map: 0 background, 1..N one id per nucleus
    manifest.csv        id, image, label, sha256 of each, kind, height, width, nuclei, split

Kinds of image (``KINDS``): ``"fluo"`` grey fluorescence (bright nuclei on a dark background),
``"color"`` stained tissue (RGB, dark purple nuclei on a light background), ``"bright"`` brightfield
(grey, dark nuclei on a light background). :func:`image_kind` tells them apart from the pixels alone.

Where two of the original per-nucleus masks overlap (a few pixels in 6 of the 664 images), the
**smaller nucleus wins** the shared pixels, so a small nucleus is never swallowed by a large one.

Sample contracts (the same as :mod:`utils.datasets`)
----------------------------------------------------
* :class:`NucleiSegmentation` returns ``(image, mask)``: ``image`` a ``(3, H, W)`` float32 tensor in
  [0, 1] (RGB; grey images repeated over the three channels), ``mask`` a ``(H, W)`` int64 tensor:
  ``0`` background, ``1`` nucleus, and with ``boundary=True`` ``2`` for a nucleus's outer ring of pixels
  (the three-class target the usual nuclei U-Nets learn, so touching nuclei stay apart).
* :class:`NucleiInstances` returns ``(image, target)`` in torchvision's detection format, like
  :class:`utils.datasets.SceneInstanceDataset` (one class: ``labels`` all ``1``).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .validation import check_int

__all__ = [
    "CLASS_NAMES",
    "BOUNDARY_CLASS_NAMES",
    "KINDS",
    "SPLITS",
    "shipped_root",
    "image_kind",
    "masks_to_labels",
    "read_dsb_sample",
    "find_dsb_samples",
    "write_sample",
    "write_manifest",
    "read_manifest",
    "verify_manifest",
    "read_image",
    "read_labels",
    "labels_to_semantic",
    "labels_to_instance_masks",
    "percentile_normalize",
    "labels_from_prediction",
    "NucleiSegmentation",
    "NucleiInstances",
    "convert_dsb",
    "prepare_full",
    "nuclei_root",
]

CLASS_NAMES = ("background", "nucleus")
BOUNDARY_CLASS_NAMES = ("background", "nucleus", "boundary")
KINDS = ("fluo", "color", "bright")
SPLITS = ("train", "val", "test")
MANIFEST_FIELDS = ("id", "image", "label", "image_sha256", "label_sha256", "kind", "height", "width",
                   "nuclei", "split")


def shipped_root() -> Path:
    """The folder of the subset the course ships: ``data/nuclei`` in the course's repository."""
    return Path(__file__).resolve().parent.parent / "data" / "nuclei"


def _sha256(path: Path) -> str:
    from .data import _digests  # the registry's own hashing, streamed in chunks

    return _digests(Path(path))["sha256"]


def image_kind(image) -> str:
    """``"fluo"``, ``"bright"`` or ``"color"`` for a Data Science Bowl image.

    Grey images (all three channels equal) with a dark median are fluorescence, grey images with a
    light median are brightfield, anything else is stained tissue. This agrees with the curated kinds
    of all 664 stage-1 training images.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) uint8 ndarray
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"`image` must be (H, W) or (H, W, 3) uint8, got shape {image.shape} and dtype {image.dtype}")
    grey = image.ndim == 2 or (np.array_equal(image[..., 0], image[..., 1])
                               and np.array_equal(image[..., 1], image[..., 2]))
    if not grey:
        return "color"
    return "fluo" if np.median(image) < 128 else "bright"


def masks_to_labels(masks) -> np.ndarray:
    """Binary per-object masks to one instance label map; where masks overlap, the smaller object wins.

    Parameters
    ----------
    masks : (N, H, W) bool or 0/1 or 0/255 ndarray, or a list of (H, W) arrays
        One mask per object, in the order that gives their ids (object ``i`` gets id ``i + 1``).

    Returns
    -------
    (H, W) uint16 ndarray
        ``0`` background, ``i + 1`` where object ``i`` is. An object entirely covered by smaller ones
        would vanish; that raises instead.

    Raises
    ------
    ValueError
        If ``masks`` is not a stack of 2-D masks of one size, a mask is empty or entirely covered by
        smaller ones, or there are more than 65535 objects.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"`masks` must be (N, H, W), one mask per object, got shape {masks.shape}")
    if len(masks) > np.iinfo(np.uint16).max:
        raise ValueError(f"`masks` holds {len(masks)} objects; a uint16 label map holds at most 65535")
    masks = masks.astype(bool)
    areas = masks.reshape(len(masks), -1).sum(1)
    if (areas == 0).any():
        raise ValueError(f"`masks` {np.flatnonzero(areas == 0)[:8].tolist()} are empty")
    labels = np.zeros(masks.shape[1:], np.uint16)
    # Paint the largest first, so that every smaller object is painted over it where they overlap.
    for i in np.argsort(-areas, kind="stable"):
        labels[masks[i]] = i + 1
    present = np.zeros(len(masks) + 1, bool)
    present[np.unique(labels)] = True
    if not present[1:].all():
        lost = np.flatnonzero(~present[1:])
        raise ValueError(f"`masks` {lost[:8].tolist()} are entirely covered by smaller objects")
    return labels


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im)


def read_dsb_sample(folder) -> tuple[np.ndarray, np.ndarray]:
    """One sample in the Data Science Bowl's own layout, as ``(image, labels)``.

    Parameters
    ----------
    folder : str or Path
        ``<id>/`` holding ``images/<id>.png`` (RGBA or RGB) and ``masks/*.png`` (one 0/255 mask per
        nucleus; read in sorted file-name order, which fixes the ids).

    Returns
    -------
    image : (H, W) uint8 for grey images, (H, W, 3) uint8 RGB otherwise
        The constant alpha channel is dropped; grey images keep one channel.
    labels : (H, W) uint16, from :func:`masks_to_labels`
    """
    folder = Path(folder)
    image_path = folder / "images" / f"{folder.name}.png"
    if not image_path.is_file():
        raise FileNotFoundError(f"`folder` {folder} has no images/{folder.name}.png")
    rgba = _read_png(image_path)
    if rgba.ndim == 2:
        image = rgba
    else:
        rgb = rgba[..., :3]
        image = rgb[..., 0].copy() if image_kind(rgb) != "color" else np.ascontiguousarray(rgb)
    mask_paths = sorted((folder / "masks").glob("*.png"))
    if not mask_paths:
        raise FileNotFoundError(f"`folder` {folder} has no masks/*.png")
    masks = np.stack([_read_png(p) for p in mask_paths])
    if masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks in {folder} are {masks.shape[1:]} but the image is {image.shape[:2]}")
    return image, masks_to_labels(masks > 0)


def find_dsb_samples(root) -> dict[str, Path]:
    """Every ``<id>/images/<id>.png`` with a ``masks/`` folder below ``root``, as ``{id: folder}``.

    Works for the fixed archive (``stage1_train/<id>/...``) and for BBBC's ``stage1_train.zip``
    (``<id>/...`` at the top).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"`root` {root} is not a folder")
    found = {}
    for image_path in sorted(root.rglob("images/*.png")):
        folder = image_path.parent.parent
        if image_path.stem == folder.name and (folder / "masks").is_dir():
            found[folder.name] = folder
    if not found:
        raise FileNotFoundError(f"no Data Science Bowl samples (<id>/images/<id>.png with masks/) below {root}")
    return found


def write_sample(out_root, sample_id: str, image: np.ndarray, labels: np.ndarray, split: str) -> dict:
    """Write ``images/<id>.png`` and ``labels/<id>.png`` under ``out_root``; return the manifest row."""
    from PIL import Image

    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}")
    labels = np.asarray(labels)
    if labels.dtype != np.uint16 or labels.shape != image.shape[:2]:
        raise ValueError(f"`labels` must be uint16 of the image's size {image.shape[:2]}, "
                         f"got {labels.dtype} {labels.shape}")
    out_root = Path(out_root)
    image_path = out_root / "images" / f"{sample_id}.png"
    label_path = out_root / "labels" / f"{sample_id}.png"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_path, optimize=True)
    Image.fromarray(labels).save(label_path, optimize=True)
    kind = image_kind(image)
    return {"id": sample_id, "image": f"images/{sample_id}.png", "label": f"labels/{sample_id}.png",
            "image_sha256": _sha256(image_path), "label_sha256": _sha256(label_path), "kind": kind,
            "height": image.shape[0], "width": image.shape[1], "nuclei": int(len(np.unique(labels)) - 1),
            "split": split}


def write_manifest(out_root, rows) -> Path:
    """Write ``manifest.csv`` (columns ``MANIFEST_FIELDS``) under ``out_root``, rows sorted by split and id."""
    path = Path(out_root) / "manifest.csv"
    rows = sorted(rows, key=lambda r: (SPLITS.index(r["split"]), r["kind"], r["id"]))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_manifest(root=None) -> list[dict]:
    """The rows of ``<root>/manifest.csv`` (default: the shipped subset), numbers as ints."""
    root = shipped_root() if root is None else Path(root)
    path = root / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest.csv in {root}: is it a nuclei folder written by utils.nuclei?")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("height", "width", "nuclei"):
            row[key] = int(row[key])
    return rows


def verify_manifest(root=None) -> int:
    """Check every file of the manifest against its SHA-256; return how many files were checked.

    Raises
    ------
    ValueError
        Naming the first file that is missing or does not match.
    """
    root = shipped_root() if root is None else Path(root)
    checked = 0
    for row in read_manifest(root):
        for key in ("image", "label"):
            path = root / row[key]
            if not path.is_file():
                raise ValueError(f"{path} is listed in the manifest but missing")
            if _sha256(path) != row[f"{key}_sha256"]:
                raise ValueError(f"{path} does not match its SHA-256 in the manifest (changed or corrupt)")
            checked += 1
    return checked


def read_image(root, row) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB image of a manifest row (grey images repeated over three channels)."""
    image = _read_png(Path(root) / row["image"])
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image


def read_labels(root, row) -> np.ndarray:
    """The ``(H, W)`` int32 instance label map of a manifest row (0 background, 1..N nuclei)."""
    return _read_png(Path(root) / row["label"]).astype(np.int32)


def convert_dsb(source, out_root, split_of, progress: bool = True) -> list[dict]:
    """Convert every Data Science Bowl sample below ``source`` to the course's layout in ``out_root``.

    Parameters
    ----------
    source : str or Path
        A folder in the Data Science Bowl's layout (see :func:`find_dsb_samples`).
    out_root : str or Path
        Where ``images/``, ``labels/`` and ``manifest.csv`` are written.
    split_of : callable
        ``split_of(sample_id) -> "train" | "val" | "test" | None``; ``None`` leaves the sample out.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    list of dict
        The manifest rows written.
    """
    from tqdm.auto import tqdm

    samples = find_dsb_samples(source)
    rows = []
    for sample_id, folder in tqdm(sorted(samples.items()), desc="converting", disable=not progress):
        split = split_of(sample_id)
        if split is None:
            continue
        image, labels = read_dsb_sample(folder)
        rows.append(write_sample(out_root, sample_id, image, labels, split))
    write_manifest(out_root, rows)
    return rows


def prepare_full(progress: bool = True) -> Path:
    """Download the whole stage-1 training set (registry ``dsb2018_stage1_train``) and convert it once.

    The shipped subset's ``test`` and ``val`` images keep their split, so scores stay comparable with
    the default mode and a test image is never trained on; every other image goes to ``train``.

    Returns
    -------
    Path
        ``<cache>/dsb2018_labels``, a nuclei folder with a manifest, usable as ``root=`` of the datasets.

    Raises
    ------
    utils.data.DownloadUnavailable, utils.data.DownloadError
        As :func:`utils.data.fetch` does.
    """
    from . import runtime
    from .data import fetch

    out = runtime.data_dir() / "dsb2018_labels"
    if (out / "manifest.csv").is_file():
        return out
    source = fetch("dsb2018_stage1_train", extract=True, progress=progress)
    held_out = {r["id"]: r["split"] for r in read_manifest() if r["split"] != "train"}
    staging = out.with_name(out.name + ".partial")
    import shutil

    shutil.rmtree(staging, ignore_errors=True)
    convert_dsb(source, staging, lambda sample_id: held_out.get(sample_id, "train"), progress=progress)
    staging.rename(out)
    return out


def nuclei_root(mode: str | None = None) -> Path:
    """The nuclei folder a lesson uses: the whole downloaded set in ``full`` mode, else the shipped subset.

    In ``full`` mode a download that cannot be made (offline, server down, bad file) falls back to the
    shipped subset with a one-line reason instead of a traceback.
    """
    from . import runtime
    from .data import DownloadError, DownloadUnavailable

    mode = runtime.course_mode() if mode is None else mode
    if mode != "full":
        return shipped_root()
    try:
        return prepare_full()
    except (DownloadUnavailable, DownloadError, OSError, ValueError) as exc:
        print(f"Using the shipped nuclei subset: the full set could not be prepared ({exc}).")
        return shipped_root()


def percentile_normalize(image, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Stretch intensities so that the ``low`` and ``high`` percentiles become 0 and 255 (clipped).

    Microscopes and stains give images of very different brightness; this per-image stretch, the
    usual first step of nuclei models (CSBDeep and StarDist use 1 and 99.8), takes most of that
    variation away before the model sees the image. All channels share one pair of percentiles, so
    colours keep their balance.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) uint8 ndarray
    low, high : float
        Percentiles, ``0 <= low < high <= 100``.

    Returns
    -------
    uint8 ndarray of the same shape
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"`image` must be (H, W) or (H, W, 3) uint8, got shape {image.shape} and dtype {image.dtype}")
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= `low` < `high` <= 100, got {low} and {high}")
    lo, hi = np.percentile(image, (low, high))
    scaled = (image.astype(np.float32) - lo) / max(hi - lo, 1e-6)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def labels_to_semantic(labels, boundary: bool = False) -> np.ndarray:
    """Instance label map to a semantic target.

    Parameters
    ----------
    labels : (H, W) integer ndarray
        0 background, positive ids nuclei.
    boundary : bool
        If true, a nucleus's outer ring of pixels (``skimage.segmentation.find_boundaries(mode="inner")``:
        its pixels next to background or to another nucleus) becomes class ``2``, so that a model that
        learns it keeps touching nuclei apart.

    Returns
    -------
    (H, W) int64 ndarray
        ``0`` background, ``1`` nucleus, (``2`` boundary).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must be a (H, W) integer label map, got shape {labels.shape} and dtype {labels.dtype}")
    semantic = (labels > 0).astype(np.int64)
    if boundary:
        from skimage.segmentation import find_boundaries

        semantic[find_boundaries(labels, mode="inner") & (labels > 0)] = 2
    return semantic


def labels_to_instance_masks(labels) -> tuple[np.ndarray, np.ndarray]:
    """``(masks, ids)``: ``(N, H, W)`` bool masks of the ``N`` objects of ``labels`` and their ids."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must be a (H, W) integer label map, got shape {labels.shape} and dtype {labels.dtype}")
    ids = np.unique(labels)
    ids = ids[ids > 0]
    return labels[None] == ids[:, None, None], ids


def labels_from_prediction(classes, min_interior: int = 0, min_distance: int | None = None) -> np.ndarray:
    """Instances from a three-class prediction (background 0, nucleus interior 1, boundary 2).

    The interiors are what a boundary-aware model keeps apart: each connected piece of class ``1`` is
    one nucleus (a marker). The boundary pixels are then given back to the nuclei by a watershed of the
    distance to the background from those markers, restricted to the foreground (classes 1 and 2), so
    that two touching nuclei are split where their boundaries meet. Foreground pixels that no marker
    reaches (a boundary ring with no interior) stay background.

    Parameters
    ----------
    classes : (H, W) integer ndarray
        Class ids in {0, 1, 2}, e.g. ``logits.argmax(0)``.
    min_interior : int
        Interior pieces of at most this many pixels are not used as markers (specks of class 1 are more
        often noise than nuclei); ``0`` keeps every piece.
    min_distance : int, optional
        If given, an interior piece that still joins two nuclei is split as the classical pipeline splits
        a blob (lesson 02): the markers are the peaks of the distance transform of the interior, at least
        ``min_distance`` pixels apart, instead of one marker per piece.

    Returns
    -------
    (H, W) int32 ndarray
        ``0`` background, ``1..N`` one id per nucleus.
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    classes = np.asarray(classes)
    if classes.ndim != 2 or not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"`classes` must be a (H, W) integer array, got shape {classes.shape} and dtype {classes.dtype}")
    bad = np.setdiff1d(np.unique(classes), [0, 1, 2])
    if bad.size:
        raise ValueError(f"`classes` holds {bad[:8].tolist()}; expected 0 background, 1 interior, 2 boundary")
    min_interior = check_int("min_interior", min_interior, 0)
    min_distance = check_int("min_distance", min_distance, 1, none_ok=True)
    foreground = classes > 0
    markers, _ = ndi.label(classes == 1)
    if min_interior:
        sizes = np.bincount(markers.ravel())
        small = sizes <= min_interior
        small[0] = False
        markers[small[markers]] = 0
    if min_distance is not None:
        from .classical import distance_peak_markers

        markers = distance_peak_markers(ndi.distance_transform_edt(markers > 0), markers, min_distance)
    return watershed(-ndi.distance_transform_edt(foreground), markers, mask=foreground).astype(np.int32)


def _select_rows(root, split, kinds):
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}")
    kinds = KINDS if kinds is None else ((kinds,) if isinstance(kinds, str) else tuple(kinds))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"`kinds` must name some of {KINDS}, got {kinds!r}")
    rows = [r for r in read_manifest(root) if r["split"] == split and r["kind"] in kinds]
    if not rows:
        raise ValueError(f"no {'/'.join(kinds)} images in the {split!r} split of {root}")
    return rows, kinds


class _NucleiBase:
    def __init__(self, split, kinds, root, crop_size, samples_per_epoch, normalize, limit=None):
        import torch  # noqa: F401  (datasets are torch objects; keep `import utils.nuclei` cheap)

        self.root = shipped_root() if root is None else Path(root)
        self.rows, self.kinds = _select_rows(self.root, split, kinds)
        if check_int("limit", limit, 1, none_ok=True) is not None:
            self.rows = self.rows[:limit]
        self.split = split
        self.crop_size = check_int("crop_size", crop_size, 16, none_ok=True)
        if self.crop_size is not None:
            small = [r["id"][:8] for r in self.rows if min(r["height"], r["width"]) < self.crop_size]
            if small:
                raise ValueError(f"`crop_size` {self.crop_size} is larger than images {small[:4]}")
        if samples_per_epoch is not None and self.crop_size is None:
            raise ValueError("`samples_per_epoch` needs `crop_size`: whole images are each seen once per epoch")
        self.samples_per_epoch = check_int("samples_per_epoch", samples_per_epoch, none_ok=True)
        self.normalize = bool(normalize)
        self.images = [read_image(self.root, r) for r in self.rows]
        if self.normalize:
            self.images = [percentile_normalize(im) for im in self.images]
        self.labels = [read_labels(self.root, r) for r in self.rows]
        self._pixel_weights = None

    def __len__(self) -> int:
        return self.samples_per_epoch or len(self.rows)

    def _crop(self, index):
        """Image and labels of sample ``index``, or a random crop: :func:`utils.datasets.random_crop`, images drawn
        in proportion to their pixel counts so that a 1024x1024 brightfield image is not seen as rarely as a
        256x256 one."""
        import torch

        from .datasets import random_crop

        if self._pixel_weights is None:
            self._pixel_weights = torch.tensor([float(r["height"] * r["width"]) for r in self.rows])
        return random_crop(self.images, self.labels, index, self.crop_size, self.samples_per_epoch,
                           self._pixel_weights)


class NucleiSegmentation(_NucleiBase):
    """Semantic segmentation of real nuclei: whole images, or random crops for training.

    Parameters
    ----------
    split : {"train", "val", "test"}
        The manifest's fixed split, by image: test images are never trained on.
    kinds : str or sequence of str, optional
        Keep only these kinds of image (``KINDS``); default all. Train on ``"fluo"`` and test on
        ``"color"`` to measure domain shift.
    boundary : bool
        Three classes (background, nucleus, boundary) instead of two; see :func:`labels_to_semantic`.
    crop_size : int, optional
        Return random ``crop_size`` squares (a new one at every access) instead of whole images.
    samples_per_epoch : int, optional
        With ``crop_size``: the length of the dataset. Each sample is then a crop of an image drawn at
        random, with a probability proportional to its pixel count.
    normalize : bool
        Stretch each image's intensities with :func:`percentile_normalize` (the 1st to the 99.8th
        percentile to [0, 255]), so that a dim and a bright fluorescence image look alike to the model.
    root : str or Path, optional
        A nuclei folder with a manifest (default: the shipped subset).
    transform : callable, optional
        Joint transform, Albumentations convention, on the uint8 RGB crop and its int64 mask.
    limit : int, optional
        Keep only the first ``limit`` images of the selection, in the manifest's order (a small training set).

    Samples are ``(image, mask)`` as the module docstring says. Whole images differ in size: use
    ``batch_size=1`` for them (U-Nets of :mod:`utils.models` pad any size internally).
    """

    def __init__(self, split: str = "train", kinds=None, *, boundary: bool = False, crop_size: int | None = None,
                 samples_per_epoch: int | None = None, normalize: bool = True, root=None, transform=None,
                 limit: int | None = None):
        super().__init__(split, kinds, root, crop_size, samples_per_epoch, normalize, limit)
        self.boundary, self.transform = bool(boundary), transform
        self.class_names = BOUNDARY_CLASS_NAMES if self.boundary else CLASS_NAMES
        self.num_classes = len(self.class_names)

    def __getitem__(self, index: int):
        import torch

        from .datasets import _apply_joint, image_to_tensor

        image, labels = self._crop(index)
        mask = labels_to_semantic(labels, boundary=self.boundary)
        image, mask = _apply_joint(self.transform, np.ascontiguousarray(image), mask)
        return image_to_tensor(np.asarray(image)), torch.as_tensor(np.ascontiguousarray(mask), dtype=torch.int64)


class NucleiInstances(_NucleiBase):
    """Instance segmentation of real nuclei, in torchvision's detection target format.

    ``split``, ``kinds``, ``crop_size``, ``samples_per_epoch``, ``normalize`` and ``root`` as in
    :class:`NucleiSegmentation`. A nucleus cut by a crop keeps the part inside it; parts smaller than
    ``min_area`` pixels, or only one pixel high or wide, are dropped (too little of the nucleus is left
    to be an object, and torchvision refuses boxes of zero height or width). Use
    :func:`utils.datasets.detection_collate` with a ``DataLoader``.

    ``target``: ``"boxes"`` ``(N, 4)`` float32 ``xyxy`` (inclusive pixel indices, as
    ``torchvision.ops.masks_to_boxes`` gives them), ``"labels"`` ``(N,)`` int64 ones, ``"masks"``
    ``(N, H, W)`` uint8, ``"image_id"`` int, ``"area"`` ``(N,)`` float32, ``"iscrowd"`` ``(N,)`` zeros.
    """

    class_names = CLASS_NAMES
    num_classes = 2

    def __init__(self, split: str = "train", kinds=None, *, crop_size: int | None = None,
                 samples_per_epoch: int | None = None, normalize: bool = True, min_area: int = 8, root=None):
        super().__init__(split, kinds, root, crop_size, samples_per_epoch, normalize)
        self.min_area = check_int("min_area", min_area)

    def __getitem__(self, index: int):
        import torch
        from torchvision.ops import masks_to_boxes

        from .datasets import image_to_tensor

        image, labels = self._crop(index)
        masks, _ = labels_to_instance_masks(labels)
        masks = masks[masks.sum(axis=(1, 2)) >= self.min_area]
        masks_t = torch.from_numpy(masks.astype(np.uint8))
        boxes = masks_to_boxes(masks_t) if len(masks) else torch.zeros((0, 4), dtype=torch.float32)
        # A sliver one pixel high or wide (a nucleus cut by the crop) has a box of zero height or width,
        # which torchvision's detectors refuse: it is not an object to learn from either.
        solid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        masks_t, boxes = masks_t[solid], boxes[solid]
        target = {
            "boxes": boxes.float(),
            "labels": torch.ones(len(masks_t), dtype=torch.int64),
            "masks": masks_t,
            "image_id": int(index),
            "area": masks_t.flatten(1).sum(1).float(),
            "iscrowd": torch.zeros(len(masks_t), dtype=torch.int64),
        }
        return image_to_tensor(np.ascontiguousarray(image)), target
