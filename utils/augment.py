"""Augmentation with Albumentations 2, the way the course uses it, and test-time augmentation.

Training pipelines (:func:`nuclei_augmentation`) are ``albumentations.Compose`` objects: they follow the
``transform(image=..., mask=...)`` convention of every dataset in :mod:`utils.datasets` and
:mod:`utils.nuclei`, move image and mask together (masks with nearest-neighbour interpolation, so no new class
ids appear), fill the mask's new border pixels with ``ignore_index`` rather than a real class, and pickle, so
DataLoader workers can use them under any start method. A ``seed`` makes a pipeline's random stream
reproducible (Albumentations 2 draws from the ``Compose``'s own generator, not from NumPy's or torch's).

Albumentations 2 renamed several arguments of version 1 (``value``/``mask_value`` became ``fill``/``fill_mask``;
``always_apply`` is gone) and only *warns* when given the old ones, then ignores them. :func:`build_strictly`
turns those warnings into errors; the course's pipelines are built through it, and the tests check them.

Instance masks and boxes: :func:`transform_instances` keeps masks, boxes and their ids aligned when a crop or a
warp drops a box (Albumentations 2 filters boxes but returns every mask).

Test-time augmentation: :func:`predict_tta` averages a model's class probabilities over the eight flips and
quarter turns of the image (the dihedral group) or any subset, and :func:`predict_multiscale` over rescaled
copies; both undo each transform on the prediction before averaging.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .realdata import IGNORE_INDEX
from .validation import check_int

__all__ = [
    "build_strictly",
    "nuclei_augmentation",
    "transform_instances",
    "DIHEDRAL",
    "predict_tta",
    "predict_multiscale",
]

KINDS = ("none", "geometric", "photometric", "full")
# (number of quarter turns, flip left-right): the eight symmetries of a square
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


def build_strictly(build: Callable):
    """Call ``build()`` with Albumentations' warnings turned into errors, and return what it built.

    Albumentations 2 warns, then ignores, an argument it does not know (``value=``, ``mask_value=``,
    ``always_apply=`` of version 1): the pipeline runs, silently doing something else than intended. Building
    through this function makes such a pipeline fail at once, naming the argument.

    Raises
    ------
    ValueError
        If building warned; the message is the warning's.
    """
    if not callable(build):
        raise ValueError(f"`build` must be a function that builds a pipeline, got {type(build).__name__}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = build()
    problems = [str(w.message) for w in caught if "albumentations" in (w.filename or "") or "Argument" in str(w.message)]
    if problems:
        raise ValueError("building the augmentation warned, so it would not do what it says: " + "; ".join(problems))
    return built


def nuclei_augmentation(kind: str = "full", seed: int | None = None, ignore_index: int = IGNORE_INDEX):
    """The course's augmentation for nuclei crops (microscopy has no up, down, left or right).

    Parameters
    ----------
    kind : {"none", "geometric", "photometric", "full"}
        ``geometric``: flips and quarter turns (the dihedral group, exact on a pixel grid), a small affine warp
        (rotation, scale) and an elastic deformation, the U-Net paper's trick for small training sets.
        ``photometric``: brightness, contrast and gamma changes, and Gaussian blur and noise; the mask is
        untouched. ``full``: both. ``none``: the identity (the same code path, for a fair comparison).
    seed : int, optional
        Seed of the pipeline's random stream (reproducible runs). ``None``: fresh entropy.
    ignore_index : int
        Fills the mask where a warp pulls in pixels from outside the crop, so losses and metrics skip them.

    Returns
    -------
    albumentations.Compose
        Called as ``aug(image=(H, W, 3) uint8, mask=(H, W) int)``.
    """
    import albumentations as A
    import cv2

    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
    check_int("ignore_index", ignore_index, 0)
    if seed is not None:
        check_int("seed", seed, 0)

    def build():
        geometric = [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=1.0),
            A.Affine(rotate=(-20, 20), scale=(0.85, 1.15), border_mode=cv2.BORDER_CONSTANT, fill=0,
                     fill_mask=ignore_index, p=0.5),
            A.ElasticTransform(alpha=30, sigma=6, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index,
                               p=0.5),
        ]
        photometric = [
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.3, p=0.7),
            A.RandomGamma(gamma_limit=(70, 150), p=0.5),
            A.GaussianBlur(blur_limit=(3, 5), p=0.2),
            A.GaussNoise(std_range=(0.01, 0.05), p=0.3),
        ]
        parts = {"none": [], "geometric": geometric, "photometric": photometric,
                 "full": geometric + photometric}[kind]
        return A.Compose(parts, seed=seed)

    return build_strictly(build)


def transform_instances(aug, image: np.ndarray, masks: Sequence[np.ndarray], boxes: np.ndarray,
                        min_area: int = 1) -> dict:
    """Apply an Albumentations pipeline to an image with instance masks and boxes, and keep them aligned.

    Albumentations 2 transforms every mask of ``masks`` and filters ``bboxes`` (a box that falls out of a crop,
    or below ``BboxParams``' minimum visibility, is dropped), but it never drops a mask: the lists fall out of
    step. Each box here carries its instance's index as a label; the masks whose box survived are kept, in the
    same order, and so are only masks that still hold ``min_area`` pixels.

    Parameters
    ----------
    aug : albumentations.Compose
        Built with ``bbox_params=A.BboxParams(format="pascal_voc", label_fields=["ids"])``.
    image : (H, W, 3) uint8 ndarray
    masks : sequence of (H, W) uint8 ndarrays
        One 0/1 mask per instance.
    boxes : (N, 4) array
        ``xmin, ymin, xmax, ymax`` in pixels (Pascal VOC format), one per mask.
    min_area : int
        Drop an instance whose transformed mask has fewer pixels.

    Returns
    -------
    dict
        ``"image"``, ``"masks"`` (list), ``"boxes"`` ((M, 4) float32) and ``"ids"`` (the surviving indices
        into the input lists).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if len(masks) != len(boxes):
        raise ValueError(f"`masks` has {len(masks)} instances but `boxes` has {len(boxes)}; give one box per mask")
    check_int("min_area", min_area, 0)
    out = aug(image=image, masks=list(masks), bboxes=boxes, ids=list(range(len(boxes))))
    kept_ids, kept_masks, kept_boxes = [], [], []
    for box, i in zip(out["bboxes"], out["ids"]):
        mask = np.asarray(out["masks"][int(i)])
        if int(mask.sum()) >= max(min_area, 1):
            kept_ids.append(int(i))
            kept_masks.append(mask)
            kept_boxes.append(box)
    return {"image": out["image"], "masks": kept_masks, "ids": kept_ids,
            "boxes": np.asarray(kept_boxes, dtype=np.float32).reshape(-1, 4)}


def _dihedral(x: torch.Tensor, k: int, flip: bool, inverse: bool = False) -> torch.Tensor:
    """Rotate ``x`` (..., H, W) by ``k`` quarter turns and flip left-right, or undo it (``inverse``)."""
    if not inverse:
        x = torch.rot90(x, k, dims=(-2, -1))
        return torch.flip(x, dims=(-1,)) if flip else x
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, -k, dims=(-2, -1))


@torch.no_grad()
def predict_tta(model, images: torch.Tensor, transforms=DIHEDRAL, device=None) -> torch.Tensor:
    """Class probabilities averaged over flipped and turned copies of ``images`` (test-time augmentation).

    Each copy is predicted, the prediction turned back, and the softmax probabilities averaged: the model sees
    one scene eight ways and votes. ``transforms=((0, False),)`` is plain prediction.

    Parameters
    ----------
    model : torch.nn.Module
        Returns ``(B, C, H, W)`` logits (or a dict with ``"out"``).
    images : (B, 3, H, W) float tensor
    transforms : sequence of (quarter turns, flip) pairs
        Default: all eight of :data:`DIHEDRAL`.
    device : optional
        Default: the model's.

    Returns
    -------
    (B, C, H, W) float tensor on the CPU
        Mean probabilities; ``.argmax(1)`` gives labels.
    """
    from .train import _resolve_device, logits_of

    if images.ndim != 4:
        raise ValueError(f"`images` must be a (B, 3, H, W) batch, got shape {tuple(images.shape)}")
    transforms = list(transforms)
    if not transforms or any(k not in range(4) or not isinstance(flip, bool) for k, flip in transforms):
        raise ValueError(f"`transforms` must be (quarter turns 0-3, flip bool) pairs, got {transforms!r}")
    device = _resolve_device(device, model)
    model.eval()
    x = images.to(device)
    total = None
    for k, flip in transforms:
        probs = logits_of(model(_dihedral(x, k, flip))).softmax(1)
        probs = _dihedral(probs, k, flip, inverse=True)
        total = probs if total is None else total + probs
    return (total / len(transforms)).cpu()


@torch.no_grad()
def predict_multiscale(model, images: torch.Tensor, scales: Sequence[float] = (0.75, 1.0, 1.25),
                       device=None) -> torch.Tensor:
    """Class probabilities averaged over copies of ``images`` resized by each of ``scales`` (bilinear).

    Each prediction is resized back to the input size before averaging. Large scales show small objects in
    more pixels, small scales give the network more context per receptive field.

    Returns
    -------
    (B, C, H, W) float tensor on the CPU
    """
    from .train import _resolve_device, logits_of

    if images.ndim != 4:
        raise ValueError(f"`images` must be a (B, 3, H, W) batch, got shape {tuple(images.shape)}")
    scales = [float(s) for s in scales]
    if not scales or any(not 0.1 <= s <= 8 for s in scales):
        raise ValueError(f"`scales` must be factors between 0.1 and 8, got {scales}")
    device = _resolve_device(device, model)
    model.eval()
    x = images.to(device)
    size = x.shape[-2:]
    total = None
    for s in scales:
        xs = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False,
                                              antialias=s < 1)
        probs = logits_of(model(xs)).softmax(1)
        if probs.shape[-2:] != size:
            probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
        total = probs if total is None else total + probs
    return (total / len(scales)).cpu()
