"""PyTorch datasets: generated scenes (semantic and instance) and a folder of images and masks.

Sample contracts
----------------
* Semantic datasets return ``(image, mask)``: ``image`` a ``(3, H, W)`` ``float32`` tensor in [0, 1]
  (RGB), ``mask`` a ``(H, W)`` ``int64`` tensor of class ids, ``ignore_index`` where unlabelled.
* :class:`SceneInstanceDataset` returns ``(image, target)`` in the format torchvision's detection
  models take: ``target["boxes"]`` ``(N, 4)`` float32 ``xyxy``; ``"labels"`` ``(N,)`` int64;
  ``"masks"`` ``(N, H, W)`` uint8; ``"image_id"`` int; ``"area"`` ``(N,)`` float32; ``"iscrowd"`` ``(N,)``
  int64 zeros.

Joint transforms follow the Albumentations call: ``transform(image=HWC uint8, mask=HW int) -> dict`` with
the same keys, so image and mask always move together.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .scenes import CLASS_NAMES, make_scene, split_seed
from .validation import check_int

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB in [0, 255] to a ``(3, H, W)`` float32 tensor in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"`image` must be (H, W, 3) uint8, got shape {image.shape} and dtype {image.dtype}")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def _apply_joint(transform, image, mask):
    if transform is None:
        return image, mask
    out = transform(image=image, mask=mask)
    if not isinstance(out, dict) or "image" not in out or "mask" not in out:
        raise TypeError("`transform` must be called as transform(image=..., mask=...) and return a dict "
                        "with 'image' and 'mask' (the Albumentations convention)")
    return out["image"], out["mask"]


class JointResize:
    """Joint transform: resize an image (area interpolation) and its mask (nearest neighbour) to a square,
    and flip both left-right with probability ``flip_p``.

    A class in ``utils`` rather than a function in a notebook, so that DataLoader workers can pickle it
    under the ``spawn`` and ``forkserver`` start methods (Windows, macOS, Python 3.14's default). The flip
    draws from torch's generator, which PyTorch seeds differently in every worker.

    Parameters
    ----------
    size : int
        Side of the output, in pixels (>= 1).
    flip_p : float in [0, 1]
        Probability of a horizontal flip of image and mask together.

    Called as ``transform(image=(H, W, 3) uint8, mask=(H, W) integer)``, it returns
    ``{"image": (size, size, 3) uint8, "mask": (size, size) of the mask's dtype}`` (the Albumentations
    convention of the datasets here). The mask is resized with nearest neighbour, so no new class ids
    (and no blend of a class with ``ignore_index``) appear.
    """

    def __init__(self, size: int, flip_p: float = 0.0):
        self.size = check_int("size", size)
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"`flip_p` must be in [0, 1], got {flip_p!r}")
        self.flip_p = float(flip_p)

    def __call__(self, image, mask):
        import cv2

        image = cv2.resize(np.asarray(image), (self.size, self.size), interpolation=cv2.INTER_AREA)
        mask = np.asarray(mask)
        resized = cv2.resize(mask.astype(np.int32), (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        mask = resized.astype(mask.dtype)
        if self.flip_p and float(torch.rand(())) < self.flip_p:
            image, mask = image[:, ::-1], mask[:, ::-1]
        return {"image": np.ascontiguousarray(image), "mask": np.ascontiguousarray(mask)}

    def __repr__(self) -> str:
        return f"JointResize(size={self.size}, flip_p={self.flip_p})"


def loader_options(device, max_workers: int = 4) -> dict:
    """DataLoader keyword arguments for reading files on ``device``'s behalf.

    ``num_workers`` is at most ``max_workers`` and at most the machine's CPU count less one (so that the
    training process keeps a core); ``pin_memory`` only on CUDA, where page-locked batches make the copy to
    the GPU asynchronous (elsewhere it only costs memory).
    """
    import os

    max_workers = check_int("max_workers", max_workers, 0)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(0, min(max_workers, cpus - 1))
    return {"num_workers": workers, "pin_memory": torch.device(device).type == "cuda",
            "persistent_workers": workers > 0}


class SceneSegmentationDataset(Dataset):
    """Semantic segmentation on generated scenes: ``n`` scenes of a split, made once and kept in memory.

    Parameters
    ----------
    n : int
        Number of scenes.
    size : int
        Side of the square images.
    split : {"train", "val", "test"}
        Splits use disjoint seeds, so a model is always scored on scenes it never saw.
    transform : callable, optional
        Joint transform ``transform(image=, mask=) -> {"image", "mask"}`` on uint8 HWC / HW arrays.
    """

    class_names = CLASS_NAMES
    num_classes = len(CLASS_NAMES)

    def __init__(self, n: int, size: int = 128, split: str = "train", transform=None):
        n = check_int("n", n)
        self.n, self.size, self.split, self.transform = n, size, split, transform
        scenes = [make_scene(split_seed(split, i), size) for i in range(n)]
        self.images = np.stack([s.image for s in scenes])
        self.masks = np.stack([s.semantic for s in scenes])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        image, mask = _apply_joint(self.transform, self.images[index], self.masks[index])
        return image_to_tensor(image), torch.as_tensor(np.ascontiguousarray(mask), dtype=torch.int64)


class SceneInstanceDataset(Dataset):
    """Instance segmentation on generated scenes, in torchvision's detection target format.

    ``n``, ``size`` and ``split`` as in :class:`SceneSegmentationDataset`. Use :func:`detection_collate`
    with a ``DataLoader`` (targets differ in length). ``make`` is the scene generator: ``make_scene``, or
    ``utils.scenes.make_panoptic_scene`` for scenes with several stuff classes (their things are the same three
    shapes; the stuff is background to a detector).
    """

    class_names = CLASS_NAMES
    num_classes = len(CLASS_NAMES)

    def __init__(self, n: int, size: int = 128, split: str = "train", make=make_scene):
        n = check_int("n", n)
        self.n, self.size, self.split = n, size, split
        self.scenes = [make(split_seed(split, i), size) for i in range(n)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        s = self.scenes[index]
        masks = torch.from_numpy(s.instance_masks.astype(np.uint8))
        target = {
            "boxes": torch.from_numpy(s.boxes_xyxy.copy()),
            "labels": torch.from_numpy(s.labels.copy()),
            "masks": masks,
            "image_id": index,
            "area": masks.flatten(1).sum(1).float(),
            "iscrowd": torch.zeros(len(s.labels), dtype=torch.int64),
        }
        return image_to_tensor(s.image), target


def detection_collate(batch):
    """Collate for detection: a tuple of images and a tuple of targets (they differ in size)."""
    return tuple(zip(*batch))


def random_crop(images, labels, index: int, crop_size: int | None, samples_per_epoch: int | None, pixel_weights=None):
    """Image and label map of sample ``index``, or a random ``crop_size`` square of an image (torch's RNG, so
    DataLoader workers differ).

    With ``samples_per_epoch`` the image itself is drawn at random too, with a probability proportional to its
    number of pixels (``pixel_weights``, a float tensor, one entry per image): crops are then spread uniformly over
    the training pixels, so a large image is not seen as rarely as a small one. Without it, sample ``index`` is
    image ``index``. Arrays come back as views, ``(c, c, 3)`` and ``(c, c)``.
    """
    if samples_per_epoch:
        i = int(torch.multinomial(pixel_weights, 1).item())
    else:
        i = index
    image, lab = images[i], labels[i]
    if crop_size is None:
        return image, lab
    c = crop_size
    h, w = lab.shape
    y = int(torch.randint(0, h - c + 1, ()).item())
    x = int(torch.randint(0, w - c + 1, ()).item())
    return image[y:y + c, x:x + c], lab[y:y + c, x:x + c]


class LabelMapSegmentation(Dataset):
    """Semantic segmentation from instance label maps held in memory: one's own annotated images.

    What :class:`utils.nuclei.NucleiSegmentation` does for the shipped nuclei, for any images and label maps, for
    example those read from annotation files with :mod:`utils.annotations` (lesson 12).

    Parameters
    ----------
    images : sequence of (H, W, 3) uint8 ndarray
        RGB images in [0, 255]; sizes may differ between images.
    label_maps : sequence of (H, W) integer ndarray
        One per image, same height and width: ``0`` background, ``1..N`` one id per object.
    boundary : bool
        Three classes (background, object, object boundary) instead of two, so that a model that learns the
        boundary keeps touching objects apart (:func:`utils.nuclei.labels_to_semantic`).
    crop_size : int, optional
        Return random ``crop_size`` squares (a new one at every access) instead of whole images.
    samples_per_epoch : int, optional
        With ``crop_size``: the length of the dataset; each sample is a crop of an image drawn with a probability
        proportional to its pixel count.
    normalize : bool
        Stretch each image with :func:`utils.nuclei.percentile_normalize` (1st to 99.8th percentile to [0, 255]).
    transform : callable, optional
        Joint transform, Albumentations convention, on the uint8 RGB crop and its int64 mask.
    object_name : str
        The objects' class name (``class_names`` is ``("background", object_name[, "boundary"])``).

    Samples are ``(image, mask)`` as the module docstring says; whole images differ in size, so use
    ``batch_size=1`` for them.
    """

    def __init__(self, images, label_maps, *, boundary: bool = True, crop_size: int | None = None,
                 samples_per_epoch: int | None = None, normalize: bool = True, transform=None,
                 object_name: str = "object"):
        from .nuclei import percentile_normalize

        images, label_maps = list(images), list(label_maps)
        if len(images) != len(label_maps) or not images:
            raise ValueError(f"`images` and `label_maps` must be non-empty and of one length, got {len(images)} "
                             f"and {len(label_maps)}")
        for k, (image, lab) in enumerate(zip(images, label_maps)):
            image, lab = np.asarray(image), np.asarray(lab)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"`images[{k}]` must be (H, W, 3) uint8 RGB, got shape {image.shape} and dtype "
                                 f"{image.dtype}")
            if lab.shape != image.shape[:2] or not np.issubdtype(lab.dtype, np.integer):
                raise ValueError(f"`label_maps[{k}]` must be an integer (H, W) map of the image's size "
                                 f"{image.shape[:2]}, got shape {lab.shape} and dtype {lab.dtype}")
        self.crop_size = check_int("crop_size", crop_size, 16, none_ok=True)
        if self.crop_size is not None:
            small = [k for k, lab in enumerate(label_maps) if min(np.shape(lab)) < self.crop_size]
            if small:
                raise ValueError(f"`crop_size` {self.crop_size} is larger than images {small[:4]} (by index)")
        if samples_per_epoch is not None and self.crop_size is None:
            raise ValueError("`samples_per_epoch` needs `crop_size`: whole images are each seen once per epoch")
        self.samples_per_epoch = check_int("samples_per_epoch", samples_per_epoch, none_ok=True)
        self.images = [percentile_normalize(im) if normalize else np.asarray(im) for im in images]
        self.labels = [np.asarray(lab) for lab in label_maps]
        self.boundary, self.transform = bool(boundary), transform
        self.class_names = ("background", str(object_name)) + (("boundary",) if self.boundary else ())
        self.num_classes = len(self.class_names)
        self._pixel_weights = torch.tensor([float(lab.size) for lab in self.labels])

    def __len__(self) -> int:
        return self.samples_per_epoch or len(self.images)

    def __getitem__(self, index: int):
        from .nuclei import labels_to_semantic

        image, labels = random_crop(self.images, self.labels, index, self.crop_size, self.samples_per_epoch,
                                    self._pixel_weights)
        mask = labels_to_semantic(labels, boundary=self.boundary)
        image, mask = _apply_joint(self.transform, np.ascontiguousarray(image), mask)
        return image_to_tensor(np.asarray(image)), torch.as_tensor(np.ascontiguousarray(mask), dtype=torch.int64)


class FolderSegmentationDataset(Dataset):
    """Images and masks in two folders, paired by file stem: ``root/images/x.jpg`` with ``root/masks/x.png``.

    Masks are PNG label maps: a palette ("P" mode) PNG whose indices are class ids, or a greyscale PNG
    whose values are class ids. With ``binary=True`` masks are 0/255 black-and-white: 0 becomes class 0
    (background), 255 becomes class 1 (foreground); any other value is an error (a resized mask with
    blurred edges, typically).

    Parameters
    ----------
    root : str or Path
        Folder holding ``images/`` and ``masks/`` (names changeable with ``images_dir``, ``masks_dir``).
    num_classes : int
        Class ids must lie in ``[0, num_classes)``, apart from ``ignore_index``.
    transform : callable, optional
        Joint transform, Albumentations convention.
    ignore_index : int
        Label of pixels that carry no class (VOC's object borders use 255).
    binary : bool
        Read 0/255 masks as background/foreground.
    """

    def __init__(self, root, num_classes: int, transform=None, ignore_index: int = 255, binary: bool = False,
                 images_dir: str = "images", masks_dir: str = "masks"):
        root = Path(root)
        self.image_root, self.mask_root = root / images_dir, root / masks_dir
        for name, folder in (("images", self.image_root), ("masks", self.mask_root)):
            if not folder.is_dir():
                raise FileNotFoundError(f"`root` {root} has no {folder.name}/ folder for the {name}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an int >= 2, got {num_classes!r}")
        self.num_classes, self.transform, self.ignore_index, self.binary = num_classes, transform, ignore_index, binary
        images = {p.stem: p for p in sorted(self.image_root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        masks = {p.stem: p for p in sorted(self.mask_root.iterdir()) if p.suffix.lower() == ".png"}
        if not images:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.image_root}")
        lonely_images = sorted(set(images) - set(masks))
        lonely_masks = sorted(set(masks) - set(images))
        if lonely_images or lonely_masks:
            parts = []
            if lonely_images:
                parts.append(f"images without a mask: {', '.join(images[s].name for s in lonely_images[:5])}")
            if lonely_masks:
                parts.append(f"masks without an image: {', '.join(masks[s].name for s in lonely_masks[:5])}")
            raise ValueError(f"unpaired files in {root}: " + "; ".join(parts)
                             + " (pairs share a file stem: images/x.jpg with masks/x.png)")
        self.stems = sorted(images)
        self.image_paths = [images[s] for s in self.stems]
        self.mask_paths = [masks[s] for s in self.stems]

    def __len__(self) -> int:
        return len(self.stems)

    def read_mask(self, index: int) -> np.ndarray:
        """The ``(H, W)`` int64 label map of sample ``index``, validated."""
        from PIL import Image

        path = self.mask_paths[index]
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "1", "I", "I;16"):
                raise ValueError(f"mask {path} has mode {im.mode}; expected a palette or greyscale PNG label map")
            mask = np.array(im).astype(np.int64)
        if self.binary:
            bad = np.setdiff1d(np.unique(mask), [0, 255])
            if bad.size:
                raise ValueError(f"mask {path} is read as binary (0/255) but holds values {bad[:8].tolist()}; "
                                 "was it resized with interpolation? Resize masks with nearest neighbour")
            return (mask == 255).astype(np.int64)
        labels = mask[mask != self.ignore_index]
        if labels.size and labels.max() >= self.num_classes:
            bad = np.unique(labels[labels >= self.num_classes])
            raise ValueError(f"mask {path} holds class ids {bad[:8].tolist()}, outside [0, {self.num_classes}) "
                             f"and not the ignore_index {self.ignore_index}; is it a 0/255 mask (use binary=True)?")
        return mask

    def read_image(self, index: int) -> np.ndarray:
        """The ``(H, W, 3)`` uint8 RGB image of sample ``index``."""
        from PIL import Image

        with Image.open(self.image_paths[index]) as im:
            return np.array(im.convert("RGB"))

    def __getitem__(self, index: int):
        image, mask = self.read_image(index), self.read_mask(index)
        if image.shape[:2] != mask.shape:
            raise ValueError(f"image {self.image_paths[index]} is {image.shape[:2]} but its mask "
                             f"{self.mask_paths[index]} is {mask.shape}; they must have the same size")
        image, mask = _apply_joint(self.transform, image, mask)
        return image_to_tensor(np.asarray(image)), torch.as_tensor(np.ascontiguousarray(mask), dtype=torch.int64)


class RareClassCrops(Dataset):
    """Random square crops of a segmentation dataset, a share of which is drawn to contain a rare class.

    Oversampling at the level of crops: with probability ``p_rare`` a sample is redrawn (up to ``tries``
    times) until its crop holds at least ``min_pixels`` pixels of ``rare_class``; otherwise the crop is taken
    as it comes. ``p_rare=0`` is plain random cropping, the fair baseline (the same code, the same number of
    samples). The randomness comes from torch's generator, so ``torch.manual_seed`` fixes it and DataLoader
    workers differ.

    Parameters
    ----------
    dataset : Dataset
        Returns ``(image (3, H, W) float tensor, mask (H, W) int64 tensor)``, every sample at least ``crop``
        on each side.
    crop : int
        Side of the crops.
    samples : int
        Length of one epoch.
    rare_class : int
        The class to oversample.
    p_rare : float in [0, 1]
        Share of samples drawn to contain the rare class.
    min_pixels : int
        Pixels of the rare class that make a crop count as containing it.
    tries : int
        Redraws before a sample is accepted anyway (a dataset may hold too little of the class).
    """

    def __init__(self, dataset, crop: int, samples: int, rare_class: int, p_rare: float = 0.0,
                 min_pixels: int = 8, tries: int = 30):
        self.dataset = dataset
        self.crop = check_int("crop", crop)
        self.samples = check_int("samples", samples)
        self.rare_class = check_int("rare_class", rare_class, 0)
        if not 0.0 <= float(p_rare) <= 1.0:
            raise ValueError(f"`p_rare` must be in [0, 1], got {p_rare!r}")
        self.p_rare = float(p_rare)
        self.min_pixels = check_int("min_pixels", min_pixels)
        self.tries = check_int("tries", tries)
        if len(dataset) == 0:
            raise ValueError("`dataset` is empty")

    def __len__(self) -> int:
        return self.samples

    def _draw(self):
        image, mask = self.dataset[int(torch.randint(len(self.dataset), ()).item())]
        h, w = mask.shape[-2:]
        if min(h, w) < self.crop:
            raise ValueError(f"a sample of `dataset` is {h}x{w}, smaller than `crop` {self.crop}")
        y = int(torch.randint(0, h - self.crop + 1, ()).item())
        x = int(torch.randint(0, w - self.crop + 1, ()).item())
        return image[..., y:y + self.crop, x:x + self.crop], mask[..., y:y + self.crop, x:x + self.crop]

    def __getitem__(self, index: int):
        image, mask = self._draw()
        if self.p_rare and float(torch.rand(())) < self.p_rare:
            for _ in range(self.tries):
                if int((mask == self.rare_class).sum()) >= self.min_pixels:
                    break
                image, mask = self._draw()
        return image, mask
