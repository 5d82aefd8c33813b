"""Bottom-up panoptic segmentation in the manner of Panoptic-DeepLab, small enough to train on a CPU.

Panoptic-DeepLab (B. Cheng, M. D. Collins, Y. Zhu, T. Liu, T. S. Huang, H. Adam and L.-C. Chen,
*Panoptic-DeepLab: A Simple, Strong, and Fast Baseline for Bottom-Up Panoptic Segmentation*, CVPR 2020) finds
no boxes and no masks per object. One network predicts, for every pixel,

* a **semantic** class (stuff and things alike),
* a **centre heatmap**: how close the pixel is to the centre of mass of a thing instance (a Gaussian bump
  of height 1 at each centre), and
* an **offset**: the vector from the pixel to the centre of the instance it belongs to.

Instances then come from simple post-processing (:func:`group_panoptic`): the peaks of the heatmap are the
instance centres; every thing pixel moves by its offset and joins the nearest centre; an instance's class is
the majority vote of its pixels' semantic predictions; stuff pixels keep their semantic class.

Everything here is generic in the classes: the functions take ``things`` (the thing class ids) and the model
takes ``num_classes``; any panoptic map in the course's encoding works, with one or several stuff classes.

Array contracts
---------------
* ``panoptic``: ``(H, W)`` integer map ``class_id * divisor + instance_number`` (the course's encoding,
  ``divisor = utils.scenes.PANOPTIC_DIVISOR = 1000``); thing pixels have instance numbers ``>= 1``, stuff
  pixels ``0``.
* Coordinates are **(row, column) = (y, x)** in pixel indices, origin at the top-left pixel's centre, ``y``
  down, ``x`` right. Offsets are stored in the same order: channel 0 is ``dy`` (rows), channel 1 is ``dx``
  (columns), in pixels; ``pixel + offset = centre``.
* Images for the model: ``(B, 3, H, W)`` float32 RGB in [0, 1] (``Scene.image / 255``, channels first).
* Model outputs: a dict of ``(B, ., H, W)`` float32 tensors at the input resolution: ``"semantic"``
  ``(B, num_classes, H, W)`` logits, ``"center"`` ``(B, 1, H, W)`` heatmap (regressed, no sigmoid, as in the
  paper), ``"offset"`` ``(B, 2, H, W)`` (``dy, dx`` in pixels).
"""
from __future__ import annotations

import math
import time
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_int
from .unet import ConvBlock, _check_norm, _norm_layer, _Up, pad_to_multiple

__all__ = [
    "PanopticDeepLabLite",
    "find_centers",
    "group_panoptic",
    "panoptic_batch",
    "panoptic_loss",
    "panoptic_targets",
    "predict_panoptic",
    "train_panoptic_deeplab",
]

DEFAULT_SIGMA = 3.0
"""Standard deviation (pixels) of the centre Gaussians: the paper's 8 on 1024 x 2048 Cityscapes images, scaled
down for objects of 10 to 40 pixels."""


# ------------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------------

def _check_things(things) -> tuple[int, ...]:
    if isinstance(things, (str, bytes)) or not hasattr(things, "__iter__"):
        raise ValueError(f"`things` must be a sequence of thing class ids, e.g. (1, 2, 3), got {things!r}")
    out = tuple(things)
    if not out or not all(isinstance(t, Integral) and not isinstance(t, bool) and t >= 0 for t in out):
        raise ValueError(f"`things` must be a non-empty sequence of non-negative int class ids, got {things!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"`things` must not repeat a class id, got {things!r}")
    return tuple(int(t) for t in out)


def _check_positive(name: str, value, allow_zero: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        requirement = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"`{name}` must be {requirement} number, got {value!r}")
    return float(value)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False, got {value!r}")
    return value


def _as_numpy(name: str, x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise ValueError(f"`{name}` must be a NumPy array or a torch tensor, got {type(x).__name__}")


def _as_tensor(name: str, x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"`{name}` must be a NumPy array or a torch tensor, got {type(x).__name__}")


# ------------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------------

def panoptic_targets(panoptic, things, sigma: float = DEFAULT_SIGMA, divisor: int = 1000,
                     small_instance_area: int | None = None, small_instance_weight: float = 3.0) -> dict:
    """The training targets of Panoptic-DeepLab for one panoptic map.

    For each thing instance (pixels sharing one ``class_id * divisor + instance_number`` with ``class_id`` in
    ``things`` and ``instance_number >= 1``) the centre is its centre of mass, rounded to the nearest pixel (as
    the paper's code does, so that the heatmap peaks at exactly 1 on a pixel and the offsets point at that
    pixel). The centre of mass of an occluded or concave shape may lie outside its visible pixels; that is
    fine, the offsets still point at it.

    Parameters
    ----------
    panoptic : (H, W) integer ndarray or tensor
        ``class_id * divisor + instance_number``. Thing pixels with instance number 0 (no instance known) get
        the semantic target but no centre and no offset; stuff pixels' instance numbers are ignored.
    things : sequence of int
        The thing class ids (the scenes': ``utils.scenes.THING_CLASSES = (1, 2, 3)``); every other class is stuff.
    sigma : float
        Standard deviation, in pixels, of the Gaussian drawn at each centre (the paper: 8 on Cityscapes).
    divisor : int
        The panoptic encoding's divisor (``utils.scenes.PANOPTIC_DIVISOR``).
    small_instance_area : int, optional
        The paper's small-instance weighting: pixels of thing instances with fewer pixels than this get
        weight ``small_instance_weight`` in the semantic loss (the paper: area below 64 x 64 on Cityscapes,
        weight 3). ``None``: every pixel weighs 1.
    small_instance_weight : float
        That weight.

    Returns
    -------
    dict
        * ``"semantic"``: ``(H, W)`` int64 class ids (``panoptic // divisor``);
        * ``"center"``: ``(H, W)`` float32 in [0, 1], the maximum over instances of
          ``exp(-((y - cy)**2 + (x - cx)**2) / (2 sigma**2))``; zeros when there is no thing;
        * ``"offset"``: ``(2, H, W)`` float32 pixels, ``(cy - y, cx - x)`` (channel 0 ``dy``, channel 1 ``dx``)
          on each thing pixel towards its own instance's centre; 0 on stuff;
        * ``"offset_weights"``: ``(H, W)`` float32, 1 on thing pixels that belong to an instance, else 0 (the
          offset loss is averaged over these pixels);
        * ``"semantic_weights"``: ``(H, W)`` float32, 1, or ``small_instance_weight`` on small instances;
        * ``"centers"``: ``(N, 2)`` int64 ``(y, x)`` of each instance's centre, in order of panoptic id;
        * ``"ids"``: ``(N,)`` int64, the panoptic id of each instance.
    """
    panoptic = _as_numpy("panoptic", panoptic)
    if panoptic.ndim != 2 or not np.issubdtype(panoptic.dtype, np.integer):
        raise ValueError(f"`panoptic` must be an (H, W) integer map, got shape {panoptic.shape} and dtype "
                         f"{panoptic.dtype}")
    if panoptic.size and panoptic.min() < 0:
        raise ValueError(f"`panoptic` must hold non-negative ids, got a minimum of {panoptic.min()}")
    things = _check_things(things)
    sigma = _check_positive("sigma", sigma)
    divisor = check_int("divisor", divisor)
    if small_instance_area is not None:
        check_int("small_instance_area", small_instance_area)
    small_instance_weight = _check_positive("small_instance_weight", small_instance_weight)

    h, w = panoptic.shape
    panoptic = panoptic.astype(np.int64)
    semantic = panoptic // divisor
    instance = panoptic % divisor
    center = np.zeros((h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    offset_weights = np.zeros((h, w), np.float32)
    semantic_weights = np.ones((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    ids = [int(i) for i in np.unique(panoptic[np.isin(semantic, things) & (instance > 0)])]
    centers = np.zeros((len(ids), 2), np.int64)
    for k, pan_id in enumerate(ids):
        mask = panoptic == pan_id
        rows, cols = np.nonzero(mask)
        cy, cx = int(np.round(rows.mean())), int(np.round(cols.mean()))
        centers[k] = (cy, cx)
        gaussian = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
        np.maximum(center, gaussian, out=center)
        offset[0][mask] = cy - rows
        offset[1][mask] = cx - cols
        offset_weights[mask] = 1.0
        if small_instance_area is not None and rows.size < small_instance_area:
            semantic_weights[mask] = small_instance_weight
    return {"semantic": semantic, "center": center, "offset": offset, "offset_weights": offset_weights,
            "semantic_weights": semantic_weights, "centers": centers, "ids": np.asarray(ids, np.int64)}


def _is_scene(x) -> bool:
    return hasattr(x, "image") and hasattr(x, "panoptic")


def _images_tensor(images) -> torch.Tensor:
    """``(B, 3, H, W)`` float32 in [0, 1] from Scenes, uint8 ``(H, W, 3)`` or ``(B, H, W, 3)`` RGB arrays, or float
    ``(B, 3, H, W)`` / ``(3, H, W)`` tensors (taken as they are)."""
    if isinstance(images, torch.Tensor):
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(f"`images` as a tensor must be a float (B, C, H, W) or (C, H, W) batch in [0, 1], got "
                             f"shape {tuple(images.shape)} and dtype {images.dtype}")
        return images.float()
    if isinstance(images, np.ndarray):
        arrays = images[None] if images.ndim == 3 else images
    elif isinstance(images, (list, tuple)) and images:
        arrays = [s.image if _is_scene(s) else s for s in images]
        if not all(isinstance(a, np.ndarray) for a in arrays):
            raise ValueError("`images` as a list must hold Scenes or (H, W, 3) uint8 arrays")
        if len({a.shape for a in arrays}) != 1:
            raise ValueError(f"`images` must all have one size, got shapes {sorted({a.shape for a in arrays})}")
        arrays = np.stack(arrays)
    elif _is_scene(images):
        arrays = images.image[None]
    else:
        raise ValueError(f"`images` must be Scenes, uint8 (H, W, 3) arrays or a float (B, 3, H, W) tensor, got "
                         f"{type(images).__name__}")
    if arrays.ndim != 4 or arrays.shape[-1] != 3 or arrays.dtype != np.uint8:
        raise ValueError(f"`images` as arrays must be uint8 (H, W, 3) RGB, got shape {arrays.shape[1:]} and dtype "
                         f"{arrays.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arrays)).permute(0, 3, 1, 2).float() / 255


def panoptic_batch(scenes, things, sigma: float = DEFAULT_SIGMA, divisor: int = 1000,
                   small_instance_area: int | None = None, small_instance_weight: float = 3.0,
                   flips=None) -> tuple[torch.Tensor, dict]:
    """Images and stacked :func:`panoptic_targets` of a list of scenes: one training batch.

    Parameters
    ----------
    scenes : list of Scene
        Objects with ``image`` (H, W, 3) uint8 RGB and ``panoptic`` (H, W) int; all of one size.
    things, sigma, divisor, small_instance_area, small_instance_weight
        As for :func:`panoptic_targets`.
    flips : (B, 2) bool array, optional
        Per scene, flip left-right (column 0) and up-down (column 1) before the targets are computed. Flipping
        the panoptic map and recomputing the targets keeps offsets right: a left-right flip maps the centre
        column ``cx`` to ``W - 1 - cx``, so ``dx`` changes sign.

    Returns
    -------
    images : (B, 3, H, W) float32 tensor in [0, 1]
    targets : dict of tensors
        ``"semantic"`` (B, H, W) int64, ``"center"`` (B, 1, H, W) float32, ``"offset"`` (B, 2, H, W) float32
        (``dy, dx`` pixels), ``"offset_weights"`` and ``"semantic_weights"`` (B, H, W) float32.
    """
    if _is_scene(scenes):
        scenes = [scenes]
    if not isinstance(scenes, (list, tuple)) or not scenes or not all(_is_scene(s) for s in scenes):
        raise ValueError(f"`scenes` must be a non-empty list of Scenes (with image and panoptic), got "
                         f"{type(scenes).__name__}")
    if flips is not None:
        flips = np.asarray(flips, bool)
        if flips.shape != (len(scenes), 2):
            raise ValueError(f"`flips` must be a ({len(scenes)}, 2) bool array, got shape {flips.shape}")
    images, parts = [], []
    for i, scene in enumerate(scenes):
        image, panoptic = scene.image, scene.panoptic
        if flips is not None:
            axes = [a for a, f in ((1, flips[i, 0]), (0, flips[i, 1])) if f]
            if axes:
                image, panoptic = np.flip(image, axes), np.flip(panoptic, axes)
        images.append(np.ascontiguousarray(image))
        parts.append(panoptic_targets(panoptic, things, sigma, divisor, small_instance_area, small_instance_weight))
    image_tensor = _images_tensor(images)
    if image_tensor.shape[-2:] != parts[0]["semantic"].shape:
        raise ValueError(f"a scene's image is {tuple(image_tensor.shape[-2:])} but its panoptic map is "
                         f"{parts[0]['semantic'].shape}")
    keys = ("semantic", "center", "offset", "offset_weights", "semantic_weights")
    targets = {k: torch.from_numpy(np.stack([p[k] for p in parts])) for k in keys}
    targets["center"] = targets["center"].unsqueeze(1)
    return image_tensor, targets


# ------------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------------

class _Head(nn.Sequential):
    """A prediction head: a 3x3 convolution with normalisation and ReLU, then a 1x1 convolution to ``out``."""

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__(nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=norm == "none"),
                         _norm_layer(norm, in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, 1))


class PanopticDeepLabLite(nn.Module):
    """A small Panoptic-DeepLab: one shared encoder, a semantic and an instance decoder, three heads.

    The paper's layout, shrunk: a shared backbone, then *two* decoders (the paper's "dual decoder": semantic
    segmentation and instance grouping want different features), a semantic head on the first, a centre head
    and an offset head on the second. Here the backbone is the course's U-Net encoder (``ConvBlock`` s with
    2x2 max-pooling, widths ``width * 2**i``) and each decoder is a U-Net decoder (``_Up`` steps with skips
    from the encoder) up to ``output_stride``; the heads predict there and their outputs are upsampled
    bilinearly to the input resolution (the paper: decoders at stride 4, outputs upsampled 4x; offsets are in
    input pixels either way, since the loss compares them with full-resolution targets). The paper's decoders
    start with an ASPP (lesson 05) on a ResNet at stride 16; on images of about 100 pixels the encoder's
    receptive field already covers any object, so the ASPP is left out.

    Parameters
    ----------
    num_classes : int
        Semantic classes, stuff and things together (the scenes: 4).
    in_channels : int
        Channels of the input image.
    width : int
        Channels of the first encoder level; level ``i`` has ``width * 2**i``.
    depth : int
        Number of 2x downsamplings (the encoder's output stride is ``2**depth``).
    instance_width : int, optional
        Channels of the instance decoder's finest level (its level ``i`` has ``instance_width * 2**i``; the
        paper's instance decoder is half as wide as the semantic one). Default: ``max(1, width // 2)``.
    output_stride : {1, 2, 4}
        Resolution of the decoders and heads relative to the input (below ``2**depth``). 2 costs about half of 1
        on a CPU and loses little: offsets and heatmaps are smooth, and class boundaries move by at most a pixel.
    norm : {"batch", "group", "instance", "none"}
        Normalisation after each convolution.

    Shape
    -----
    ``(B, in_channels, H, W)`` float32 in [0, 1] -> dict: ``"semantic"`` ``(B, num_classes, H, W)`` logits,
    ``"center"`` ``(B, 1, H, W)`` heatmap, ``"offset"`` ``(B, 2, H, W)`` (``dy, dx`` in pixels), for any
    ``H, W`` (the input is padded to a multiple of ``2**depth`` and the outputs cropped back).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, depth: int = 3,
                 instance_width: int | None = None, output_stride: int = 2, norm: str = "batch"):
        super().__init__()
        check_int("num_classes", num_classes, 2, note=" (stuff and thing classes together)")
        check_int("in_channels", in_channels)
        check_int("width", width)
        check_int("depth", depth)
        instance_width = check_int("instance_width", instance_width, none_ok=True) or max(1, width // 2)
        norm = _check_norm(norm)
        if isinstance(output_stride, bool) or output_stride not in (1, 2, 4) or output_stride >= 2 ** depth:
            raise ValueError(f"`output_stride` must be 1, 2 or 4 and below 2**depth = {2 ** depth}, got "
                             f"{output_stride!r}")
        self.depth, self.num_classes, self.output_stride = depth, num_classes, output_stride
        self.config = dict(num_classes=num_classes, in_channels=in_channels, width=width, depth=depth,
                           instance_width=instance_width, output_stride=output_stride, norm=norm)
        first = {1: 0, 2: 1, 4: 2}[output_stride]  # the finest level the decoders reach
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.stem = ConvBlock(in_channels, widths[0], norm)
        self.down = nn.ModuleList(ConvBlock(widths[i], widths[i + 1], norm) for i in range(depth))
        self.semantic_decoder = nn.ModuleList(_Up(widths[i + 1], widths[i], norm, "transpose", True)
                                              for i in reversed(range(first, depth)))
        # The instance decoder: its first step reads the bottleneck, each later one its own previous output; the
        # skips come from the encoder, reduced by a 1x1 convolution where the widths differ.
        iw = [instance_width * 2 ** i for i in range(depth + 1)]
        self.instance_reduce = nn.ModuleList(
            nn.Identity() if widths[i] == iw[i] else nn.Conv2d(widths[i], iw[i], 1) for i in range(depth + 1))
        self.instance_decoder = nn.ModuleList(_Up(iw[i + 1], iw[i], norm, "transpose", True)
                                              for i in reversed(range(first, depth)))
        self.semantic_head = _Head(widths[first], num_classes, norm)
        self.center_head = _Head(iw[first], 1, norm)
        self.offset_head = _Head(iw[first], 2, norm)
        for head in (self.center_head, self.offset_head):  # start from "no centre anywhere" and zero offsets
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def forward(self, x: torch.Tensor) -> dict:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, 2 ** self.depth)
        features = [self.stem(x)]
        for block in self.down:
            features.append(block(F.max_pool2d(features[-1], 2)))
        sem = features[-1]
        for k, block in enumerate(self.semantic_decoder):
            sem = block(sem, features[-2 - k])
        ins = self.instance_reduce[-1](features[-1])
        for k, block in enumerate(self.instance_decoder):
            ins = block(ins, self.instance_reduce[-2 - k](features[-2 - k]))
        outputs = {"semantic": self.semantic_head(sem), "center": self.center_head(ins),
                   "offset": self.offset_head(ins)}
        if self.output_stride > 1:
            outputs = {k: F.interpolate(v, scale_factor=self.output_stride, mode="bilinear", align_corners=False)
                       for k, v in outputs.items()}
        return {k: v[..., :h, :w] for k, v in outputs.items()}


# ------------------------------------------------------------------------------------------------
# the loss
# ------------------------------------------------------------------------------------------------

def panoptic_loss(outputs: dict, targets: dict, semantic_weight: float = 1.0, center_weight: float = 200.0,
                  offset_weight: float = 0.1, top_k_percent: float = 0.2) -> dict:
    """The Panoptic-DeepLab loss: bootstrapped cross-entropy + MSE on the heatmap + L1 on thing offsets.

    * **semantic**: per-pixel cross-entropy times ``semantic_weights``; only the ``top_k_percent`` hardest
      pixels of the batch are averaged (the paper's bootstrapped cross-entropy, 0.2 in its code; 1 averages all).
    * **center**: mean squared error between the predicted and target heatmaps over all pixels (the paper's
      weight 200: the heatmap is zero almost everywhere, so the mean is small).
    * **offset**: L1 distance (pixels, both channels summed) averaged over the thing pixels
      (``offset_weights``); 0 in a batch without things. The paper's weight is 0.01 for offsets of up to a few
      hundred pixels on Cityscapes; the scenes' objects are about 30 pixels across, so their offsets are ten
      times smaller and the default weight here is ten times larger, 0.1.

    Parameters
    ----------
    outputs : dict
        The model's ``"semantic"`` (B, C, H, W) logits, ``"center"`` (B, 1, H, W), ``"offset"`` (B, 2, H, W).
    targets : dict
        :func:`panoptic_batch`'s targets: ``"semantic"`` (B, H, W) int64 in ``[0, C)``, ``"center"`` (B, 1, H, W),
        ``"offset"`` (B, 2, H, W), ``"offset_weights"`` and ``"semantic_weights"`` (B, H, W) float32.
    semantic_weight, center_weight, offset_weight : float
        Weights of the three terms.
    top_k_percent : float in (0, 1]
        Fraction of pixels kept by the bootstrapped cross-entropy.

    Returns
    -------
    dict of scalar tensors
        ``"loss"`` (the weighted sum, to back-propagate), and the weighted terms ``"semantic"``, ``"center"``,
        ``"offset"``.
    """
    for name, d, keys in (("outputs", outputs, ("semantic", "center", "offset")),
                          ("targets", targets, ("semantic", "center", "offset", "offset_weights",
                                                "semantic_weights"))):
        if not isinstance(d, dict) or any(k not in d for k in keys):
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"`{name}` must be a dict with keys {keys}, got {got}")
    logits = outputs["semantic"]
    b, c, h, w = logits.shape
    expected = {"semantic": (b, h, w), "center": (b, 1, h, w), "offset": (b, 2, h, w), "offset_weights": (b, h, w),
                "semantic_weights": (b, h, w)}
    for key, shape in expected.items():
        if tuple(targets[key].shape) != shape:
            raise ValueError(f"`targets['{key}']` must have shape {shape} to match the logits, got "
                             f"{tuple(targets[key].shape)}")
    for key in ("center", "offset"):
        if tuple(outputs[key].shape) != expected[key]:
            raise ValueError(f"`outputs['{key}']` must have shape {expected[key]}, got {tuple(outputs[key].shape)}")
    labels = targets["semantic"]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise ValueError(f"`targets['semantic']` must hold class ids in [0, {c}), got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    if not (isinstance(top_k_percent, Real) and 0 < top_k_percent <= 1):
        raise ValueError(f"`top_k_percent` must be in (0, 1], got {top_k_percent!r}")
    for name, value in (("semantic_weight", semantic_weight), ("center_weight", center_weight),
                        ("offset_weight", offset_weight)):
        _check_positive(name, value, allow_zero=True)

    pixel_ce = F.cross_entropy(logits, labels, reduction="none") * targets["semantic_weights"]
    pixel_ce = pixel_ce.reshape(-1)
    if top_k_percent < 1:
        pixel_ce = torch.topk(pixel_ce, max(1, int(top_k_percent * pixel_ce.numel()))).values
    semantic = pixel_ce.mean()
    center = F.mse_loss(outputs["center"], targets["center"])
    weights = targets["offset_weights"].unsqueeze(1)
    offset = (F.l1_loss(outputs["offset"], targets["offset"], reduction="none") * weights).sum()
    offset = offset / weights.sum().clamp(min=1)
    parts = {"semantic": semantic_weight * semantic, "center": center_weight * center,
             "offset": offset_weight * offset}
    return {"loss": parts["semantic"] + parts["center"] + parts["offset"], **parts}


# ------------------------------------------------------------------------------------------------
# post-processing
# ------------------------------------------------------------------------------------------------

def find_centers(center_heatmap, threshold: float = 0.1, nms_kernel: int = 7, top_k: int | None = 200):
    """The instance centres: peaks of the heatmap, by non-maximum suppression with max-pooling.

    A pixel is a peak if it equals the maximum of the ``nms_kernel x nms_kernel`` window around it (a max-pool
    with stride 1 computes every window's maximum at once) and is above ``threshold``. Of the peaks, the
    ``top_k`` highest are kept.

    Parameters
    ----------
    center_heatmap : (H, W) or (1, H, W) float ndarray or tensor
        The predicted heatmap (about 1 at centres, 0 far from them).
    threshold : float
        Minimum heatmap value of a centre (the paper: 0.1).
    nms_kernel : int
        Odd window side of the suppression (the paper: 7): two centres closer than ``nms_kernel // 2`` pixels
        in both directions cannot both be kept.
    top_k : int or None
        Keep at most this many centres (the paper: 200); ``None`` keeps all.

    Returns
    -------
    centers : (K, 2) int64 ndarray
        ``(y, x)`` of each centre, highest score first.
    scores : (K,) float32 ndarray
        Their heatmap values.
    """
    heat = _as_tensor("center_heatmap", center_heatmap).float()
    if heat.ndim == 3 and heat.shape[0] == 1:
        heat = heat[0]
    if heat.ndim != 2:
        raise ValueError(f"`center_heatmap` must be (H, W) or (1, H, W), got shape {tuple(heat.shape)}")
    if not isinstance(threshold, Real) or isinstance(threshold, bool):
        raise ValueError(f"`threshold` must be a number, got {threshold!r}")
    nms_kernel = check_int("nms_kernel", nms_kernel)
    if nms_kernel % 2 == 0:
        raise ValueError(f"`nms_kernel` must be odd (a window centred on each pixel), got {nms_kernel}")
    top_k = check_int("top_k", top_k, none_ok=True)
    pooled = F.max_pool2d(heat[None, None], nms_kernel, stride=1, padding=nms_kernel // 2)[0, 0]
    peaks = (heat == pooled) & (heat > threshold)
    ys, xs = torch.nonzero(peaks, as_tuple=True)
    scores = heat[ys, xs]
    order = torch.argsort(scores, descending=True, stable=True)
    if top_k is not None:
        order = order[:top_k]
    centers = torch.stack([ys[order], xs[order]], dim=1).numpy().astype(np.int64)
    return centers.reshape(-1, 2), scores[order].numpy().astype(np.float32)


def group_panoptic(semantic, center_heatmap, offsets, things, center_threshold: float = 0.1, nms_kernel: int = 7,
                   top_k: int | None = 200, divisor: int = 1000, stuff_area: int = 0, thing_area: int = 0,
                   void: int = 0) -> np.ndarray:
    """Turn one image's three predictions into a panoptic map (the paper's grouping and merging).

    1. Centres: :func:`find_centers` on the heatmap.
    2. Grouping: every pixel whose semantic class is a thing moves by its offset, to ``(y + dy, x + dx)``, and
       joins the centre nearest that point (class-agnostic: a disc's pixel may join any centre).
    3. Classes: an instance's class is the majority vote of its pixels' semantic classes.
    4. Merging: stuff pixels take their semantic class with instance number 0; instances are numbered 1, 2, ...
       in order of their centre's score.

    Parameters
    ----------
    semantic : (C, H, W) float or (H, W) integer ndarray or tensor
        Semantic logits (their argmax over ``C`` is taken) or class ids.
    center_heatmap : (H, W) or (1, H, W) float ndarray or tensor
    offsets : (2, H, W) float ndarray or tensor
        ``(dy, dx)`` in pixels from each pixel to its instance's centre.
    things : sequence of int
        Thing class ids.
    center_threshold, nms_kernel, top_k
        As ``threshold``, ``nms_kernel``, ``top_k`` of :func:`find_centers`.
    divisor : int
        Panoptic encoding divisor (instance numbers must stay below it).
    stuff_area : int
        A stuff class covering fewer pixels than this in the image is dropped (its pixels become ``void``); the
        paper's 2048 on Cityscapes. 0 keeps every stuff pixel.
    thing_area : int
        Instances with fewer pixels than this are dropped (their pixels become ``void``). 0 keeps all.
    void : int
        Value of pixels no segment claims: thing pixels when no centre was found, dropped segments. The scenes'
        encoding has no separate void, and its background is 0, so the default is 0 (as in
        :func:`utils.models.mask2former.panoptic_from_logits`); with several stuff classes pass e.g. -1.

    Returns
    -------
    (H, W) int32 ndarray
        ``class_id * divisor + instance_number``.
    """
    sem = _as_tensor("semantic", semantic)
    if sem.ndim == 3:
        if not sem.is_floating_point():
            raise ValueError(f"`semantic` of shape {tuple(sem.shape)} must be float logits (C, H, W)")
        sem = sem.argmax(0)
    elif sem.ndim != 2 or sem.is_floating_point():
        raise ValueError(f"`semantic` must be (C, H, W) float logits or (H, W) integer class ids, got shape "
                         f"{tuple(sem.shape)} and dtype {sem.dtype}")
    sem = sem.long()
    h, w = sem.shape
    off = _as_tensor("offsets", offsets).float()
    if tuple(off.shape) != (2, h, w):
        raise ValueError(f"`offsets` must be (2, H, W) = {(2, h, w)} like the semantic map, got {tuple(off.shape)}")
    heat = _as_tensor("center_heatmap", center_heatmap)
    if tuple(heat.shape[-2:]) != (h, w):
        raise ValueError(f"`center_heatmap` must be {(h, w)} like the semantic map, got {tuple(heat.shape)}")
    things = _check_things(things)
    divisor = check_int("divisor", divisor)
    stuff_area = check_int("stuff_area", stuff_area, 0)
    thing_area = check_int("thing_area", thing_area, 0)
    if not isinstance(void, Integral) or isinstance(void, bool):
        raise ValueError(f"`void` must be an int, got {void!r}")
    if sem.numel() and int(sem.min()) < 0:
        raise ValueError(f"`semantic` class ids must be non-negative, got {int(sem.min())}")
    centers, _ = find_centers(heat, center_threshold, nms_kernel, top_k)
    if len(centers) >= divisor:
        raise ValueError(f"{len(centers)} centres do not fit instance numbers below `divisor` = {divisor}; "
                         f"lower `top_k`")

    panoptic = torch.full((h, w), int(void), dtype=torch.int64)
    is_thing = torch.isin(sem, torch.tensor(things))

    # stuff: the semantic class, instance number 0 (classes below stuff_area pixels are dropped)
    for cls in torch.unique(sem[~is_thing]).tolist():
        region = (sem == cls) & ~is_thing
        if int(region.sum()) >= stuff_area:
            panoptic[region] = cls * divisor

    # things: move each pixel by its offset, join the nearest centre
    if len(centers) and bool(is_thing.any()):
        ys, xs = torch.nonzero(is_thing, as_tuple=True)
        voted = torch.stack([ys + off[0, ys, xs], xs + off[1, ys, xs]], dim=1)    # (P, 2) where pixels point
        distances = torch.cdist(voted, torch.from_numpy(centers).float())          # (P, K)
        nearest = distances.argmin(1)                                              # (P,) index of a centre
        number = 0
        for k in range(len(centers)):
            members = nearest == k
            size = int(members.sum())
            if size == 0 or size < thing_area:
                continue
            votes = torch.bincount(sem[ys[members], xs[members]])
            number += 1
            panoptic[ys[members], xs[members]] = int(votes.argmax()) * divisor + number
    return panoptic.numpy().astype(np.int32)


# ------------------------------------------------------------------------------------------------
# training and prediction
# ------------------------------------------------------------------------------------------------

def train_panoptic_deeplab(model: nn.Module, train_scenes, steps: int, *, things, batch_size: int = 8,
                           lr: float = 1e-2, weight_decay: float = 1e-4, warmup: float = 0.05,
                           sigma: float = DEFAULT_SIGMA, divisor: int = 1000, small_instance_area: int | None = None,
                           semantic_weight: float = 1.0, center_weight: float = 200.0, offset_weight: float = 0.1,
                           top_k_percent: float = 0.2, flip: bool = True, device=None, seed: int | None = None,
                           progress: bool = True) -> list[dict]:
    """Train a :class:`PanopticDeepLabLite` for ``steps`` optimiser steps on a list of scenes.

    The recipe of the paper, small: AdamW, a linear warm-up over the first ``warmup`` fraction of the steps and
    then the "poly" schedule ``lr * (1 - t)**0.9``, the loss of :func:`panoptic_loss`. Each step draws
    ``batch_size`` scenes (a fresh random order every pass over the data) and, with ``flip``, flips each one
    left-right and up-down at random (the shapes' classes do not change under flips); the targets are computed
    after flipping (:func:`panoptic_batch`).

    Parameters
    ----------
    model : torch.nn.Module
        Returns the dict of :class:`PanopticDeepLabLite`; moved to ``device``.
    train_scenes : list of Scene
        Objects with ``image`` (H, W, 3) uint8 RGB and ``panoptic`` (H, W) int, all one size, at least
        ``batch_size`` of them.
    steps : int
        Optimiser steps.
    things : sequence of int
        Thing class ids.
    batch_size : int
        Scenes per step.
    lr, weight_decay : float
        Peak learning rate and AdamW's weight decay (the paper: Adam at 1e-3 for a pretrained backbone; from
        scratch on the scenes 1e-2 learns the shapes' classes several times faster than 3e-3).
    warmup : float in [0, 1)
        Fraction of the steps of linear warm-up.
    sigma, divisor, small_instance_area
        For :func:`panoptic_targets`.
    semantic_weight, center_weight, offset_weight, top_k_percent
        For :func:`panoptic_loss`.
    flip : bool
        Random flips.
    device : str or torch.device, optional
        Default: :func:`utils.runtime.get_device`.
    seed : int, optional
        Seed Python, NumPy and torch first (:func:`utils.runtime.seed_everything`): initial batch order and
        flips then repeat.
    progress : bool
        Show a tqdm bar with the running loss.

    Returns
    -------
    list of dict
        One row per step: ``step``, ``loss``, ``semantic``, ``center``, ``offset`` (the weighted terms), ``lr``
        (the rate the step used) and ``seconds`` (training time so far). The model is left in evaluation mode.
    """
    from tqdm.auto import tqdm

    from ..runtime import get_device, seed_everything

    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size)
    things = _check_things(things)
    if not isinstance(model, nn.Module):
        raise ValueError(f"`model` must be a torch.nn.Module (e.g. PanopticDeepLabLite), got {type(model).__name__}")
    if not isinstance(train_scenes, (list, tuple)) or not all(_is_scene(s) for s in train_scenes):
        raise ValueError(f"`train_scenes` must be a list of Scenes (with image and panoptic), got "
                         f"{type(train_scenes).__name__}")
    if len(train_scenes) < batch_size:
        raise ValueError(f"`train_scenes` has {len(train_scenes)} scenes, fewer than one batch of {batch_size}")
    lr = _check_positive("lr", lr)
    weight_decay = _check_positive("weight_decay", weight_decay, allow_zero=True)
    if not (isinstance(warmup, Real) and 0 <= warmup < 1):
        raise ValueError(f"`warmup` must be in [0, 1), got {warmup!r}")
    flip, progress = _check_bool("flip", flip), _check_bool("progress", progress)
    if seed is not None:
        seed_everything(seed)
    rng = np.random.default_rng(seed)
    device = get_device() if device is None else torch.device(device)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warmup_steps = int(warmup * steps)

    def factor(i: int) -> float:  # i = steps taken so far
        if i < warmup_steps:
            return (i + 1) / (warmup_steps + 1)
        return (1 - (i - warmup_steps) / max(1, steps - warmup_steps)) ** 0.9

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    order, position = rng.permutation(len(train_scenes)), 0
    history, elapsed, running = [], 0.0, None
    bar = tqdm(range(1, steps + 1), desc="Panoptic-DeepLab", leave=False, disable=not progress)
    for step in bar:
        t0 = time.perf_counter()
        if position + batch_size > len(order):
            order, position = rng.permutation(len(train_scenes)), 0
        picked = [train_scenes[j] for j in order[position:position + batch_size]]
        position += batch_size
        flips = rng.random((batch_size, 2)) < 0.5 if flip else None
        images, targets = panoptic_batch(picked, things, sigma, divisor, small_instance_area, flips=flips)
        images = images.to(device)
        targets = {k: v.to(device) for k, v in targets.items()}
        losses = panoptic_loss(model(images), targets, semantic_weight, center_weight, offset_weight, top_k_percent)
        if not torch.isfinite(losses["loss"]):
            shown = {k: round(float(v), 3) for k, v in losses.items()}
            raise RuntimeError(f"the loss became {shown['loss']} at step {step} ({shown}); lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        rate = optimizer.param_groups[0]["lr"]
        scheduler.step()
        elapsed += time.perf_counter() - t0
        row = {"step": step, **{k: float(v.detach()) for k, v in losses.items()}, "lr": rate, "seconds": elapsed}
        history.append(row)
        running = row["loss"] if running is None else 0.9 * running + 0.1 * row["loss"]
        if progress:
            bar.set_postfix(loss=f"{running:.3f}")
    bar.close()
    model.eval()
    return history


@torch.no_grad()
def predict_panoptic(model: nn.Module, images, things, center_threshold: float = 0.1, nms_kernel: int = 7,
                     top_k: int | None = 200, divisor: int = 1000, stuff_area: int = 0, thing_area: int = 0,
                     void: int = 0, batch_size: int = 16, device=None, return_outputs: bool = False):
    """Panoptic maps of images: the model's three outputs, then :func:`group_panoptic` on each image.

    Parameters
    ----------
    model : torch.nn.Module
        Returns the dict of :class:`PanopticDeepLabLite`; run in evaluation mode (its mode is restored after).
    images
        A Scene or a list of Scenes, uint8 RGB arrays ``(H, W, 3)`` or ``(B, H, W, 3)`` (or a list of them), or
        a float tensor ``(B, 3, H, W)`` / ``(3, H, W)`` in [0, 1]; all one size.
    things, center_threshold, nms_kernel, top_k, divisor, stuff_area, thing_area, void
        As for :func:`group_panoptic`.
    batch_size : int
        Images per forward pass.
    device : str or torch.device, optional
        Default: where the model's parameters are.
    return_outputs : bool
        Also return the model's outputs (a dict of CPU tensors, concatenated over batches).

    Returns
    -------
    (B, H, W) int32 ndarray
        ``class_id * divisor + instance_number`` per image; with ``return_outputs``, ``(maps, outputs)``.
    """
    things = _check_things(things)
    batch_size = check_int("batch_size", batch_size)
    _check_bool("return_outputs", return_outputs)
    x = _images_tensor(images)
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    chunks = [{k: v.cpu() for k, v in model(x[i:i + batch_size].to(device)).items()}
              for i in range(0, len(x), batch_size)]
    model.train(was_training)
    outputs = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    maps = np.stack([group_panoptic(outputs["semantic"][i], outputs["center"][i], outputs["offset"][i], things,
                                    center_threshold, nms_kernel, top_k, divisor, stuff_area, thing_area, void)
                     for i in range(len(x))])
    return (maps, outputs) if return_outputs else maps
