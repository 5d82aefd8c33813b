"""Looking into segmentation networks and scoring them: receptive fields, in theory and measured by
back-propagation, for any network; and a model with Pascal VOC's classes (such as
:func:`utils.models.deeplabv3_resnet50_voc`) applied to photos and scored on VOC 2012.

The models themselves live in :mod:`utils.models`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .models.deeplab import VOC_CLASS_NAMES
from .validation import check_int

__all__ = [
    "receptive_field_size",
    "stack_receptive_field",
    "effective_receptive_field",
    "segment_with_voc_model",
    "evaluate_voc_model",
    "TORCHVISION_VOC_REFERENCE",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# What torchvision publishes for DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1 (its `meta["_metrics"]`):
# measured on the COCO val2017 images that hold VOC's 20 classes, not on VOC itself.
TORCHVISION_VOC_REFERENCE = {"data": "COCO val2017, VOC's 21 classes", "miou": 0.664, "pixel_accuracy": 0.924}


# ----------------------------------------------------------------------------------------------
# Receptive fields


def receptive_field_size(kernel_sizes: Sequence[int], dilations: Sequence[int] | None = None,
                         strides: Sequence[int] | None = None) -> int:
    """Theoretical receptive field (in input pixels, along one axis) of a stack of convolutions.

    ``RF = 1 + sum_i (k_i - 1) * d_i * prod_{j < i} s_j``: each layer widens the field by its kernel's
    dilated span minus one, measured in input pixels (hence the product of the earlier strides).

    Parameters
    ----------
    kernel_sizes : sequence of int
        Kernel size of each layer, input side first.
    dilations : sequence of int, optional
        Dilation (atrous rate) of each layer; default all 1.
    strides : sequence of int, optional
        Stride of each layer; default all 1.

    Examples
    --------
    >>> receptive_field_size([3, 3, 3])
    7
    >>> receptive_field_size([3, 3, 3], dilations=[1, 2, 4])
    15
    """
    ks = [check_int("kernel_sizes[i]", k) for k in kernel_sizes]
    n = len(ks)
    ds = [1] * n if dilations is None else [check_int("dilations[i]", d) for d in dilations]
    ss = [1] * n if strides is None else [check_int("strides[i]", s) for s in strides]
    if len(ds) != n or len(ss) != n:
        raise ValueError(f"`kernel_sizes` ({n}), `dilations` ({len(ds)}) and `strides` ({len(ss)}) "
                         "must have one entry per layer")
    rf, jump = 1, 1
    for k, d, s in zip(ks, ds, ss):
        rf += (k - 1) * d * jump
        jump *= s
    return rf


def stack_receptive_field(module: nn.Module) -> int:
    """Theoretical receptive field of a network's main path: every ``Conv2d`` and ``MaxPool2d``, in order.

    The layers are read in the order they were registered, which for torchvision's ResNets (and trunks cut
    from them by :func:`utils.models.resnet_backbone`) is the order data flows through them. The 1 x 1
    shortcut convolutions (modules named ``downsample``) run beside the main path and widen nothing, so they
    are left out. A dilated layer counts with its rate: this is how :func:`utils.models.dilate_resnet_`
    keeps the field while removing the stride.

    Examples
    --------
    >>> import torchvision
    >>> stack_receptive_field(torchvision.models.resnet18())   # the classic ResNet-18 figure
    435
    """
    kernels, dilations, strides = [], [], []
    for name, layer in module.named_modules():
        if "downsample" in name.split("."):
            continue
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            pair = lambda v: v if isinstance(v, int) else v[0]   # noqa: E731 (square kernels here)
            kernels.append(pair(layer.kernel_size))
            dilations.append(pair(layer.dilation))
            strides.append(pair(layer.stride))
    if not kernels:
        raise ValueError("`module` holds no Conv2d or MaxPool2d layer")
    return receptive_field_size(kernels, dilations, strides)


def effective_receptive_field(module: nn.Module, input_shape=(1, 1, 65, 65), position=None,
                              random_input: bool = False, seed: int = 0) -> np.ndarray:
    """Which input pixels influence one output pixel: the gradient of that output with respect to the input.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(B, C, H, W)`` to ``(B, C', H', W')``; put in eval mode here (no batch-norm updates).
    input_shape : tuple (1, C, H, W)
    position : (row, col), optional
        The output pixel; default the centre of the output.
    random_input : bool
        Differentiate at a random input (standard normal) instead of at zeros. For a linear stack the
        answer is the same; with ReLUs a random input shows which paths are active.
    seed : int
        Seed of the random input.

    Returns
    -------
    (H, W) float64 array
        ``|d out[position] / d input|`` summed over input channels and output channels, scaled so the
        largest value is 1 (all zeros if the output does not depend on the input at all).
    """
    if len(input_shape) != 4 or input_shape[0] != 1:
        raise ValueError(f"`input_shape` must be (1, C, H, W), got {tuple(input_shape)}")
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(input_shape, generator=gen) if random_input else torch.zeros(input_shape)).requires_grad_(True)
    was_training = module.training
    module.eval()
    try:
        out = module(x)
        if isinstance(out, dict):
            out = out["out"]
        if out.ndim != 4:
            raise ValueError(f"`module` must return (B, C, H, W), got shape {tuple(out.shape)}")
        h, w = out.shape[-2:]
        r, c = (h // 2, w // 2) if position is None else position
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"`position` {position} is outside the {h}x{w} output")
        out[0, :, r, c].sum().backward()
    finally:
        module.train(was_training)
    g = x.grad[0].abs().sum(0).double().numpy()
    top = g.max()
    return g / top if top > 0 else g


# ----------------------------------------------------------------------------------------------
# A VOC-class model on VOC photos


@torch.no_grad()
def segment_with_voc_model(model, image: np.ndarray, resize: int = 520, device=None) -> np.ndarray:
    """Segment one photo with a VOC-trained model, as torchvision's preset does.

    Parameters
    ----------
    model : torch.nn.Module
        Returns ``{"out": (1, 21, h, w)}`` logits (e.g. :func:`utils.models.deeplabv3_resnet50_voc`).
    image : (H, W, 3) uint8 ndarray
        RGB, values in [0, 255].
    resize : int
        The shorter side is resized to this (torchvision's ``SemanticSegmentation`` preset: 520).

    Returns
    -------
    (H, W) int64 ndarray
        VOC class ids in [0, 21) (:data:`utils.models.VOC_CLASS_NAMES`), at the photo's own size.
    """
    from .datasets import image_to_tensor
    from .runtime import get_device

    image = np.asarray(image)
    x = image_to_tensor(image)  # validates (H, W, 3) uint8
    h, w = image.shape[:2]
    scale = resize / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    device = get_device() if device is None else torch.device(device)
    model = model.to(device).eval()
    logits = model(((x - mean) / std).to(device))["out"]
    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].cpu().numpy().astype(np.int64)


def evaluate_voc_model(model, dataset, device=None, resize: int = 520, amp: bool = True, progress: bool = True) -> dict:
    """Score a VOC-class model on a VOC split: the confusion matrix over every counted pixel.

    Each photo is segmented at its own size by :func:`segment_with_voc_model` (shorter side resized to
    ``resize`` for the network, logits resized back), and its pixels are added to one confusion matrix;
    void pixels (255) are left out. mIoU is the mean over the 21 classes of that accumulated matrix, the
    way the VOC benchmark and torchvision's reference scripts count it (not a mean of per-image scores).

    Parameters
    ----------
    model : torch.nn.Module
        Returns ``{"out": (1, 21, h, w)}`` logits (e.g. :func:`utils.models.deeplabv3_resnet50_voc`).
    dataset : sequence of (image, mask)
        ``(H, W, 3)`` uint8 RGB and ``(H, W)`` int64 in 0..20 or 255, e.g.
        :class:`utils.realdata.VOCSegmentation2012`.
    device : str or torch.device, optional
        Default: :func:`utils.runtime.get_device`.
    resize : int
        The shorter side the network sees (torchvision's preset: 520).
    amp : bool
        float16 autocast on CUDA (about 3x faster on a T4; ignored elsewhere).
    progress : bool
        A tqdm progress bar over the images.

    Returns
    -------
    dict
        ``"miou"``, ``"pixel_accuracy"`` (floats), ``"iou"`` (21 per-class values, NaN for a class absent
        from truth and prediction), ``"images"`` (count), ``"seconds"``.
    """
    import time

    from tqdm.auto import tqdm

    from .metrics import ConfusionMatrix
    from .runtime import get_device

    check_int("resize", resize)
    if len(dataset) == 0:
        raise ValueError("`dataset` is empty: there is nothing to score")
    device = get_device() if device is None else torch.device(device)
    cm = ConfusionMatrix(len(VOC_CLASS_NAMES), ignore_index=255)
    start = time.perf_counter()
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
        for i in tqdm(range(len(dataset)), desc="VOC images", disable=not progress):
            image, mask = dataset[i]
            pred = segment_with_voc_model(model, image, resize=resize, device=device)
            cm.update(torch.from_numpy(pred)[None], torch.as_tensor(mask, dtype=torch.int64)[None])
    scores = cm.compute()
    return {"miou": scores["miou"], "pixel_accuracy": scores["pixel_accuracy"], "iou": scores["iou"],
            "images": len(dataset), "seconds": time.perf_counter() - start}
