"""Readers for the real datasets of the registry, once :func:`utils.data.fetch` has extracted them.

Sample contracts (the same as :mod:`utils.datasets`)
----------------------------------------------------
* :class:`OxfordPetTrimaps` returns ``(image, mask)``: ``image`` a ``(3, H, W)`` ``float32`` tensor in
  [0, 1] (RGB); ``mask`` a ``(H, W)`` ``int64`` tensor with ``0`` = background, ``1`` = pet and
  ``255`` = the trimap's border band (``ignore_index``: left out of losses and metrics).
* :class:`PennFudanInstances` returns ``(image, target)`` in torchvision's detection format, like
  :class:`utils.datasets.SceneInstanceDataset`: ``target["boxes"]`` ``(N, 4)`` float32 ``xyxy`` in
  inclusive pixel indices (as ``torchvision.ops.masks_to_boxes`` gives them); ``"labels"`` ``(N,)``
  int64, all ``1`` (pedestrian); ``"masks"`` ``(N, H, W)`` uint8 0/1; ``"image_id"`` int; ``"area"``
  ``(N,)`` float32 (mask pixels); ``"iscrowd"`` ``(N,)`` int64 zeros.

Layouts read
------------
Oxford-IIIT Pet (``fetch("oxford_pet_images", extract=True)`` and
``fetch("oxford_pet_annotations", extract=True)``)::

    <images_root>/images/Abyssinian_1.jpg
    <annotations_root>/annotations/trimaps/Abyssinian_1.png   trimap: 1 pet, 2 background, 3 border
    <annotations_root>/annotations/trainval.txt, test.txt     "Abyssinian_1 1 1 1" per line

Only the names listed in the split file are read, so whatever else the archives hold (non-image
files, hidden ``._*`` files) is never opened.

Penn-Fudan (``fetch("penn_fudan", extract=True)``)::

    <root>/PennFudanPed/PNGImages/FudanPed00001.png
    <root>/PennFudanPed/PedMasks/FudanPed00001_mask.png       0 background, 1..N one id per pedestrian

Pascal VOC 2012 (``fetch("voc2012", extract=True)``), read by torchvision's ``VOCSegmentation``::

    <root>/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt, val.txt   one image id per line
    <root>/VOCdevkit/VOC2012/JPEGImages/2007_000033.jpg
    <root>/VOCdevkit/VOC2012/SegmentationClass/2007_000033.png          palette PNG: 0..20 classes, 255 void
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .datasets import _apply_joint, image_to_tensor
from .validation import check_int

PET_CLASS_NAMES = ("background", "pet")
PENN_FUDAN_CLASS_NAMES = ("background", "pedestrian")
VOC_SPLITS = ("train", "val", "trainval")
IGNORE_INDEX = 255
# trimap value -> class id: 1 (pet) -> 1, 2 (background) -> 0, 3 (border, "not classified") -> ignore
_TRIMAP_TO_CLASS = {1: 1, 2: 0, 3: IGNORE_INDEX}


def trimap_to_mask(trimap: np.ndarray) -> np.ndarray:
    """Oxford-IIIT Pet trimap to a class mask.

    Parameters
    ----------
    trimap : (H, W) integer ndarray
        Values ``1`` (pet), ``2`` (background) and ``3`` (border band, not classified).

    Returns
    -------
    (H, W) int64 ndarray
        ``1`` pet, ``0`` background, ``255`` (``IGNORE_INDEX``) on the border band.

    Raises
    ------
    ValueError
        If ``trimap`` is not 2-D integer or holds a value other than 1, 2 and 3.
    """
    trimap = np.asarray(trimap)
    if trimap.ndim != 2 or not np.issubdtype(trimap.dtype, np.integer):
        raise ValueError(f"`trimap` must be a (H, W) integer array, got shape {trimap.shape} and dtype {trimap.dtype}")
    bad = np.setdiff1d(np.unique(trimap), list(_TRIMAP_TO_CLASS))
    if bad.size:
        raise ValueError(f"`trimap` holds values {bad[:8].tolist()}; an Oxford-IIIT Pet trimap has only 1, 2 and 3")
    lut = np.zeros(4, dtype=np.int64)
    for value, cls in _TRIMAP_TO_CLASS.items():
        lut[value] = cls
    return lut[trimap]


class OxfordPetTrimaps(Dataset):
    """Oxford-IIIT Pet as binary semantic segmentation (pet against background, border ignored).

    Parameters
    ----------
    images_root : str or Path
        Folder holding ``images/`` (what ``fetch("oxford_pet_images", extract=True)`` returns).
    annotations_root : str or Path
        Folder holding ``annotations/`` (what ``fetch("oxford_pet_annotations", extract=True)`` returns).
    split : {"trainval", "test"}
        The official split, read from ``annotations/<split>.txt``.
    transform : callable, optional
        Joint transform ``transform(image=HWC uint8, mask=HW int64) -> {"image", "mask"}``
        (Albumentations convention); resize masks with nearest neighbour and pad them with 255.
    limit : int, optional
        Keep only the first ``limit`` samples of the split (small runs).
    """

    class_names = PET_CLASS_NAMES
    num_classes = len(PET_CLASS_NAMES)
    ignore_index = IGNORE_INDEX

    def __init__(self, images_root, annotations_root, split: str = "trainval", transform=None,
                 limit: int | None = None):
        if split not in ("trainval", "test"):
            raise ValueError(f"`split` must be 'trainval' or 'test', got {split!r}")
        check_int("limit", limit, none_ok=True)
        self.image_dir = Path(images_root) / "images"
        self.trimap_dir = Path(annotations_root) / "annotations" / "trimaps"
        split_file = Path(annotations_root) / "annotations" / f"{split}.txt"
        for arg, root, sub in (("images_root", images_root, "images"),
                               ("annotations_root", annotations_root, "annotations/trimaps")):
            if not (Path(root) / sub).is_dir():
                raise FileNotFoundError(f"`{arg}` {root} has no {sub}/ folder; extract the archive with "
                                        "fetch(..., extract=True)")
        if not split_file.is_file():
            raise FileNotFoundError(f"`annotations_root` has no split file {split_file}")
        names = []
        for line in split_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                names.append(line.split()[0])
        if not names:
            raise ValueError(f"split file {split_file} lists no images")
        self.names = names[:limit] if limit else names
        self.split, self.transform = split, transform

    @classmethod
    def from_cache(cls, split: str = "trainval", **kwargs) -> "OxfordPetTrimaps":
        """Fetch (download once, verify, extract) both archives and read them.

        Raises :class:`utils.data.DownloadUnavailable` offline, naming the offline path.
        """
        from .data import fetch

        return cls(fetch("oxford_pet_images", extract=True), fetch("oxford_pet_annotations", extract=True),
                   split=split, **kwargs)

    def __len__(self) -> int:
        return len(self.names)

    def read_image(self, index: int) -> np.ndarray:
        """The ``(H, W, 3)`` uint8 RGB image of sample ``index``."""
        from PIL import Image

        with Image.open(self.image_dir / f"{self.names[index]}.jpg") as im:
            return np.array(im.convert("RGB"))

    def read_mask(self, index: int) -> np.ndarray:
        """The ``(H, W)`` int64 class mask of sample ``index`` (0, 1, 255)."""
        from PIL import Image

        path = self.trimap_dir / f"{self.names[index]}.png"
        with Image.open(path) as im:
            trimap = np.array(im)
        try:
            return trimap_to_mask(trimap)
        except ValueError as err:
            raise ValueError(f"trimap {path}: {err}") from None

    def __getitem__(self, index: int):
        image, mask = self.read_image(index), self.read_mask(index)
        if image.shape[:2] != mask.shape:
            raise ValueError(f"image {self.names[index]}.jpg is {image.shape[:2]} but its trimap is {mask.shape}")
        image, mask = _apply_joint(self.transform, image, mask)
        return image_to_tensor(np.asarray(image)), torch.as_tensor(np.asarray(mask), dtype=torch.int64)


def instance_id_map_to_target(id_map: np.ndarray, image_id: int = 0, label: int = 1) -> dict:
    """An instance id map (``0`` background, ``1..N`` one id per object) to a detection target.

    Parameters
    ----------
    id_map : (H, W) integer ndarray
        Background ``0``; every other value is one instance (ids need not be consecutive).
    image_id : int
        Stored as ``target["image_id"]``.
    label : int
        Class id given to every instance.

    Returns
    -------
    dict
        torchvision's detection target (see the module docstring); instances in increasing id order.
    """
    id_map = np.asarray(id_map)
    if id_map.ndim != 2 or not np.issubdtype(id_map.dtype, np.integer):
        raise ValueError(f"`id_map` must be a (H, W) integer array, got shape {id_map.shape} and dtype {id_map.dtype}")
    ids = np.unique(id_map)
    ids = ids[ids != 0]
    masks = (id_map[None] == ids[:, None, None]).astype(np.uint8)
    boxes = np.zeros((len(ids), 4), dtype=np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        boxes[i] = (xs.min(), ys.min(), xs.max(), ys.max())
    return {
        "boxes": torch.from_numpy(boxes),
        "labels": torch.full((len(ids),), label, dtype=torch.int64),
        "masks": torch.from_numpy(masks),
        "image_id": image_id,
        "area": torch.from_numpy(masks.sum(axis=(1, 2)).astype(np.float32)),
        "iscrowd": torch.zeros(len(ids), dtype=torch.int64),
    }


class PennFudanInstances(Dataset):
    """Penn-Fudan pedestrians as instance segmentation, in torchvision's detection target format.

    Parameters
    ----------
    root : str or Path
        The folder holding ``PNGImages/`` and ``PedMasks/``, or its parent (what
        ``fetch("penn_fudan", extract=True)`` returns, which holds ``PennFudanPed/``).
    limit : int, optional
        Keep only the first ``limit`` images (sorted by name).

    Use :func:`utils.datasets.detection_collate` with a ``DataLoader``.
    """

    class_names = PENN_FUDAN_CLASS_NAMES
    num_classes = len(PENN_FUDAN_CLASS_NAMES)

    def __init__(self, root, limit: int | None = None):
        root = Path(root)
        if not (root / "PNGImages").is_dir() and (root / "PennFudanPed" / "PNGImages").is_dir():
            root = root / "PennFudanPed"
        self.root = root
        for sub in ("PNGImages", "PedMasks"):
            if not (root / sub).is_dir():
                raise FileNotFoundError(f"`root` {root} has no {sub}/ folder; extract the archive with "
                                        "fetch('penn_fudan', extract=True)")
        check_int("limit", limit, none_ok=True)
        images = sorted(p for p in (root / "PNGImages").iterdir() if p.suffix.lower() == ".png"
                        and not p.name.startswith("."))
        if not images:
            raise FileNotFoundError(f"no .png images in {root / 'PNGImages'}")
        missing = [p.name for p in images if not (root / "PedMasks" / f"{p.stem}_mask.png").is_file()]
        if missing:
            raise ValueError(f"images without a mask in {root / 'PedMasks'}: {', '.join(missing[:5])} "
                             "(the mask of X.png is X_mask.png)")
        self.image_paths = images[:limit] if limit else images
        self.mask_paths = [root / "PedMasks" / f"{p.stem}_mask.png" for p in self.image_paths]

    @classmethod
    def from_cache(cls, **kwargs) -> "PennFudanInstances":
        """Fetch (download once, extract) Penn-Fudan and read it; offline raises
        :class:`utils.data.DownloadUnavailable`, naming the offline path."""
        from .data import fetch

        return cls(fetch("penn_fudan", extract=True), **kwargs)

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int):
        from PIL import Image

        with Image.open(self.image_paths[index]) as im:
            image = np.array(im.convert("RGB"))
        with Image.open(self.mask_paths[index]) as im:
            id_map = np.array(im)
        if image.shape[:2] != id_map.shape:
            raise ValueError(f"image {self.image_paths[index].name} is {image.shape[:2]} but its mask "
                             f"{self.mask_paths[index].name} is {id_map.shape}")
        return image_to_tensor(image), instance_id_map_to_target(id_map, image_id=index, label=1)


class VOCSegmentation2012(Dataset):
    """Pascal VOC 2012 semantic segmentation, as ``(image, mask)`` NumPy arrays at each photo's own size.

    A thin layer over ``torchvision.datasets.VOCSegmentation`` (which reads the split file, the JPEG and
    the palette PNG): it checks the layout with a clear error, and returns arrays, because VOC's photos
    differ in size and an evaluation resizes each one as the model's preset asks
    (:func:`utils.segmodels.evaluate_voc_model`).

    Parameters
    ----------
    root : str or Path
        The folder holding ``VOCdevkit/VOC2012/`` (what ``fetch("voc2012", extract=True)`` returns).
    split : {"train", "val", "trainval"}
        ``ImageSets/Segmentation/<split>.txt``: 1,464 / 1,449 / 2,913 images in the real dataset.
    limit : int, optional
        Keep only the first ``limit`` images of the split.

    Samples are ``(image, mask)``: ``image`` ``(H, W, 3)`` uint8 RGB; ``mask`` ``(H, W)`` int64 with the
    classes of :data:`utils.models.VOC_CLASS_NAMES` (0 background, 1..20) and 255 for the void band
    drawn around every object and over ambiguous regions (left out of metrics).
    """

    num_classes = 21
    ignore_index = IGNORE_INDEX

    def __init__(self, root, split: str = "val", limit: int | None = None):
        from torchvision.datasets import VOCSegmentation

        if split not in VOC_SPLITS:
            raise ValueError(f"`split` must be one of {VOC_SPLITS}, got {split!r}")
        check_int("limit", limit, none_ok=True)
        base = Path(root) / "VOCdevkit" / "VOC2012"
        for sub in ("JPEGImages", "SegmentationClass", f"ImageSets/Segmentation/{split}.txt"):
            if not (base / sub).exists():
                raise FileNotFoundError(f"`root` {root} has no VOCdevkit/VOC2012/{sub}; extract the archive with "
                                        "fetch('voc2012', extract=True)")
        self.voc = VOCSegmentation(str(root), year="2012", image_set=split, download=False)
        if not len(self.voc):
            raise ValueError(f"split file {base / 'ImageSets/Segmentation' / (split + '.txt')} lists no images")
        self.split = split
        self.length = min(limit, len(self.voc)) if limit else len(self.voc)

    @classmethod
    def from_cache(cls, split: str = "val", **kwargs) -> "VOCSegmentation2012":
        """Fetch (download once, verify, extract: 2 GB) VOC 2012 and read it; offline raises
        :class:`utils.data.DownloadUnavailable`, naming the offline path."""
        from .data import fetch

        return cls(fetch("voc2012", extract=True), split=split, **kwargs)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} is out of range for {self.length} images")
        image, target = self.voc[index % self.length]
        image, mask = np.array(image.convert("RGB")), np.array(target, dtype=np.int64)
        if image.shape[:2] != mask.shape:
            raise ValueError(f"VOC image {self.voc.images[index]} is {image.shape[:2]} but its mask is {mask.shape}")
        bad = np.setdiff1d(np.unique(mask), [*range(self.num_classes), IGNORE_INDEX])
        if bad.size:
            raise ValueError(f"VOC mask {self.voc.masks[index]} holds values {bad.tolist()[:5]}, not classes 0..20 "
                             "or 255: is it a palette PNG?")
        return image, mask
