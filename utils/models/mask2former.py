"""Mask classification with Mask2Former: a small model, targets from the generated scenes, training,
Hungarian matching, and post-processing to the course's instance, semantic and panoptic formats.

Mask2Former (B. Cheng, I. Misra, A. G. Schwing, A. Kirillov and R. Girdhar, *Masked-attention Mask
Transformer for Universal Image Segmentation*, CVPR 2022) does not label pixels: it predicts a fixed set of
``Q`` *queries*, each a pair (class distribution over ``C`` classes plus a "no object" class, binary mask
logits). Training matches queries to the ground-truth segments one-to-one with the Hungarian algorithm and
supervises only the matched pairs (the rest learn "no object"); inference turns the set of (class, mask)
pairs into instances, a semantic map or a panoptic map, with the same network. The model here is Hugging
Face ``transformers``' ``Mask2FormerForUniversalSegmentation`` built from a configuration with random weights
(nothing is downloaded), small enough to learn the generated scenes on a laptop CPU.

Class ids
---------
The model's classes are numbered from 0 and its last logit is "no object". Two numberings of the scenes'
classes (``utils.scenes.CLASS_NAMES``: 0 background, 1 disc, 2 square, 3 triangle) are used:

* **things only** (``include_background=False``, ``num_labels=3``, the default; instance training): model
  class ``k`` is scene class ``k + 1``; the background is no segment at all, only what no query claims.
* **with the background** (``include_background=True``, ``num_labels=4``; panoptic training): model class
  ``k`` is scene class ``k``; the background is one *stuff* segment (class 0) per image.

Post-processing and evaluation infer the numbering from the model's number of classes (3 or 4) unless told.

Array contracts
---------------
* ``pixel_values``: ``(B, 3, H, W)`` float32, RGB normalised with the ImageNet mean and standard deviation
  (as ``Mask2FormerImageProcessor`` does).
* ``mask_labels``: a list of ``B`` float32 tensors ``(N_i, H, W)`` in {0, 1}, one mask per segment;
  ``class_labels``: a list of ``B`` int64 tensors ``(N_i,)`` of model class ids.
* Model outputs: ``class_queries_logits`` ``(B, Q, C + 1)`` and ``masks_queries_logits`` ``(B, Q, H/4, W/4)``
  (the masks come at a quarter of the input resolution).
* Instances (:func:`instances_from_logits`): the dict of ``utils.instance.predict_instances``:
  ``boxes_xyxy`` ``(K, 4)`` float32 (inclusive pixel indices), ``labels`` ``(K,)`` int64 scene class ids
  (1..3), ``scores`` ``(K,)`` float32 sorted high to low, ``masks`` ``(K, H, W)`` bool; what
  ``utils.instance.predictions_to_coco`` takes.
* Semantic map: ``(H, W)`` int64 scene class ids; panoptic map: ``(H, W)`` int32 in the scenes' encoding
  ``class_id * PANOPTIC_DIVISOR + instance_number``, background (and unclaimed pixels) 0.

Where the paper's ideas live in ``transformers``' code: the *masked attention* is the ``attn_mask`` that
``Mask2FormerMaskPredictor`` builds from the previous layer's mask prediction (pixels with probability below
0.5 are hidden from a query; a query that would see nothing sees everything) and that each
``Mask2FormerMaskedAttentionDecoderLayer`` passes to its cross-attention; the matching is
``model.criterion.matcher`` (a ``Mask2FormerHungarianMatcher``); the point-sampled mask losses are in
``model.criterion.loss_masks``.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import Conv2dNormActivation
from transformers import (
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    ResNetConfig,
    SwinConfig,
)
from transformers.modeling_outputs import BackboneOutput

from ..scenes import CLASS_NAMES, PANOPTIC_DIVISOR, THING_CLASSES
from ..validation import check_int, check_positive

__all__ = [
    "ConvBackbone",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SMALL_CONFIG",
    "build_mask2former",
    "evaluate_mask2former",
    "hungarian_match",
    "instances_from_logits",
    "match_queries",
    "matching_cost",
    "panoptic_from_logits",
    "predict_mask2former",
    "scene_targets",
    "semantic_auxiliary_loss",
    "semantic_from_logits",
    "semantic_targets",
    "to_pixel_values",
    "train_mask2former",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The small configuration: every number is a choice against CPU time (the paper's values in brackets).
SMALL_CONFIG = {
    "backbone": "conv",  # "conv" (ConvBackbone), "resnet" (basic blocks) or "swin" [ResNet-50 / Swin-T ... Swin-L]
    "stem_widths": (16, 32),  # "conv" only: channels at full and at half resolution, two 3x3 layers each
    "backbone_widths": (64, 128, 128, 128),  # channels at strides 4, 8, 16, 32 ("swin": the first, then doubling)
    "backbone_depths": (1, 1, 1, 1),  # "conv": 3x3 layers per stage after its stride-2 one; others: blocks per stage
    "feature_size": 64,  # pixel-decoder width; a multiple of 32 (its GroupNorm has 32 groups) [256]
    "mask_feature_size": 64,  # per-pixel embedding width that query embeddings are dotted with [256]
    "hidden_dim": 64,  # query width [256]
    "encoder_layers": 2,  # deformable-attention layers of the pixel decoder [6]
    "encoder_feedforward_dim": 128,  # [1024]
    "decoder_layers": 4,  # transformer decoder: decoder_layers - 1 masked-attention layers [10, i.e. 9]
    "num_attention_heads": 4,  # [8]
    "dim_feedforward": 128,  # [2048]
    "num_queries": 16,  # a scene holds at most 6 shapes [100 for COCO instances]
    "train_num_points": None,  # points of the sampled mask loss; None: image_size ** 2 // 4 [112 * 112]
    "oversample_ratio": 3.0,  # candidate points per kept point, for importance sampling [3.0]
    "importance_sample_ratio": 0.75,  # share of points taken where the prediction is most uncertain [0.75]
    "no_object_weight": 0.1,  # cross-entropy weight of the "no object" class [0.1]
    "class_weight": 2.0,  # loss and matching-cost weights [2, 5, 5]
    "mask_weight": 5.0,
    "dice_weight": 5.0,
    "semantic_weight": 10.0,  # auxiliary per-pixel class loss on the pixel decoder (0: off) [not in the paper]
    "use_auxiliary_loss": True,  # the same loss after every decoder layer (deep supervision)
    "dropout": 0.0,  # transformers also uses it as the decoder's layer-drop probability [0.0]
}

DEFAULT_LR = 3e-4


# ------------------------------------------------------------------------------------------------
# building the model
# ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' warnings for a moment (the ResNet backbone is reported as 'not supported', although
    Mask2Former only needs four feature maps at strides 4, 8, 16 and 32, which it gets)."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _id2label(num_labels: int) -> dict[int, str]:
    if num_labels == len(CLASS_NAMES) - 1:
        return dict(enumerate(CLASS_NAMES[1:]))
    if num_labels == len(CLASS_NAMES):
        return dict(enumerate(CLASS_NAMES))
    return {k: f"class_{k}" for k in range(num_labels)}


def _ints(name: str, values, count: int, low: int = 1) -> tuple:
    """``count`` ints ``>= low`` (each checked with ``check_int``), as a tuple; otherwise a ValueError naming ``name``."""
    if not isinstance(values, (list, tuple)) or len(values) != count:
        raise ValueError(f"`{name}` must be {count} ints >= {low}, got {values!r}")
    return tuple(check_int(name, v, low) for v in values)


class ConvBackbone(nn.Module):
    """A plain convolutional backbone for small images, with the interface Mask2Former's pixel decoder reads.

    ImageNet backbones (ResNet, Swin) reduce the image by a factor of four in their first one or two layers (a 7x7
    stride-2 convolution and a max-pool, or 4x4 patches), which suits 224-pixel photographs. In 64-pixel generated
    scenes the shapes are about 10 to 27 pixels wide, and what tells a square from a disc is a few pixels at its
    corners: this backbone first looks at full resolution, as U-Net's first layers do (two 3x3 layers of
    ``stem_widths[0]`` channels), then at half resolution (two of ``stem_widths[1]``), then four stages, each a
    stride-2 3x3 layer and ``depths[i]`` more 3x3 layers of ``widths[i]`` channels, give the feature maps at strides
    4, 8, 16 and 32. Every layer is torchvision's ``Conv2dNormActivation`` (convolution, batch norm, ReLU).

    ``forward(pixel_values)`` returns a ``transformers`` ``BackboneOutput`` whose ``feature_maps`` are those four
    maps, ``(B, widths[i], H / 2 ** (i + 2), W / 2 ** (i + 2))``; ``channels`` lists their widths.
    """

    def __init__(self, stem_widths=(16, 32), widths=(64, 128, 128, 128), depths=(1, 1, 1, 1)):
        super().__init__()
        s1, s2 = _ints("stem_widths", stem_widths, 2)
        widths = _ints("backbone_widths", widths, 4)
        depths = _ints("backbone_depths", depths, 4, low=0)
        self.stem = nn.Sequential(Conv2dNormActivation(3, s1), Conv2dNormActivation(s1, s1),          # stride 1
                                  Conv2dNormActivation(s1, s2, stride=2), Conv2dNormActivation(s2, s2))  # stride 2
        chans = (s2, *widths)
        self.stages = nn.ModuleList(
            nn.Sequential(Conv2dNormActivation(chans[i], chans[i + 1], stride=2),
                          *[Conv2dNormActivation(chans[i + 1], chans[i + 1]) for _ in range(depths[i])])
            for i in range(4))                                                                      # strides 4 to 32
        self.channels = list(widths)

    def forward(self, pixel_values: torch.Tensor) -> BackboneOutput:
        x = self.stem(pixel_values)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return BackboneOutput(feature_maps=tuple(maps))


def _backbone_config(cfg: dict, image_size: int):
    widths = _ints("backbone_widths", cfg["backbone_widths"], 4)
    depths = _ints("backbone_depths", cfg["backbone_depths"], 4, low=0 if cfg["backbone"] == "conv" else 1)
    stages = ["stage1", "stage2", "stage3", "stage4"]
    if cfg["backbone"] in ("resnet", "conv"):  # "conv": a ResNet of the same widths sizes the pixel decoder
        return ResNetConfig(num_channels=3, embedding_size=widths[0], hidden_sizes=list(widths),
                            depths=list(depths) if cfg["backbone"] == "resnet" else [1, 1, 1, 1],
                            layer_type="basic", out_features=stages)
    if cfg["backbone"] == "swin":
        embed = widths[0]
        heads = [max(1, embed * 2 ** i // 32) for i in range(4)]
        return SwinConfig(image_size=image_size, patch_size=4, num_channels=3, embed_dim=embed, depths=list(depths),
                          num_heads=heads, window_size=4, drop_path_rate=0.0, out_features=stages)
    raise ValueError(f"`backbone` must be 'conv', 'resnet' or 'swin', got {cfg['backbone']!r}")


def build_mask2former(num_labels: int = 3, image_size: int = 64, **overrides) -> Mask2FormerForUniversalSegmentation:
    """A small ``transformers`` Mask2Former with random weights, trainable from scratch on a CPU.

    The architecture of Cheng et al. (CVPR 2022) at a fraction of its width: a four-stage backbone (strides 4
    to 32), a pixel decoder (multi-scale deformable attention over strides 8, 16, 32, then an FPN step to
    stride 4 that gives the per-pixel embeddings), and a transformer decoder whose queries attend, layer after
    layer, only inside their previous mask prediction (masked attention), cycling through the three scales.

    Two choices of the small configuration are not the paper's, both for learning from scratch in minutes:

    * the default backbone is :class:`ConvBackbone`, which looks at the image at full resolution before it
      reduces it. It replaces the backbone ``transformers`` builds (``model.model.pixel_level_module.encoder``)
      after construction; ``model.config.backbone_config`` still describes a ResNet of the same stage widths, the
      one the pixel decoder was sized from, so save and load such a model with ``state_dict``, not
      ``save_pretrained``. ``backbone="resnet"`` or ``"swin"`` keeps ``transformers``' own backbones.
    * with ``semantic_weight > 0`` the model gets ``model.semantic_heads``, one 1x1 convolution per output of the
      pixel decoder (strides 32, 16, 8 and the stride-4 per-pixel embeddings) to ``num_labels + 1`` classes (the
      last: pixels no segment claims), and :func:`train_mask2former` adds ``semantic_weight`` times
      :func:`semantic_auxiliary_loss`. The heads serve training only; inference reads the queries.

    Parameters
    ----------
    num_labels : int
        Classes the model predicts, without "no object": 3 for the scenes' things (instance training), 4 to
        include the background as a stuff class (panoptic training); see the module docstring.
    image_size : int
        Side of the training images (>= 32); sets ``train_num_points`` when that is ``None`` and the Swin
        backbone's nominal input size.
    **overrides
        Any key of :data:`SMALL_CONFIG`, e.g. ``num_queries=20``, ``decoder_layers=6``, ``backbone="resnet"``,
        ``semantic_weight=0`` (Mask2Former's own loss only).

    Returns
    -------
    transformers.Mask2FormerForUniversalSegmentation
        In training mode. Called as ``model(pixel_values, mask_labels=..., class_labels=...)`` it returns
        ``.loss``; without labels, ``.class_queries_logits`` ``(B, Q, num_labels + 1)`` and
        ``.masks_queries_logits`` ``(B, Q, H/4, W/4)``.
    """
    num_labels = check_int("num_labels", num_labels)
    image_size = check_int("image_size", image_size, 32)
    unknown = set(overrides) - set(SMALL_CONFIG)
    if unknown:
        raise ValueError(f"unknown configuration keys {sorted(unknown)}; choose from {sorted(SMALL_CONFIG)}")
    cfg = {**SMALL_CONFIG, **overrides}
    for key in ("feature_size", "mask_feature_size", "hidden_dim", "encoder_layers", "encoder_feedforward_dim",
                "num_attention_heads", "dim_feedforward", "num_queries"):
        check_int(key, cfg[key])
    check_int("decoder_layers", cfg["decoder_layers"], 2, note=" (decoder_layers - 1 masked-attention layers)")
    if cfg["feature_size"] % 32:
        raise ValueError(f"`feature_size` must be a multiple of 32 (the pixel decoder's GroupNorm has 32 groups), "
                         f"got {cfg['feature_size']}")
    if cfg["hidden_dim"] % cfg["num_attention_heads"] or cfg["feature_size"] % cfg["num_attention_heads"]:
        raise ValueError(f"`hidden_dim` ({cfg['hidden_dim']}) and `feature_size` ({cfg['feature_size']}) must be "
                         f"divisible by `num_attention_heads` ({cfg['num_attention_heads']})")
    points = cfg["train_num_points"]
    points = image_size * image_size // 4 if points is None else check_int("train_num_points", points)
    semantic_weight = cfg["semantic_weight"]
    if isinstance(semantic_weight, bool) or not isinstance(semantic_weight, (int, float)) or not semantic_weight >= 0:
        raise ValueError(f"`semantic_weight` must be a number >= 0 (0: no auxiliary per-pixel loss), "
                         f"got {semantic_weight!r}")
    if cfg["backbone"] == "conv":
        _ints("stem_widths", cfg["stem_widths"], 2)
    id2label = _id2label(num_labels)
    with _quiet_transformers():
        config = Mask2FormerConfig(
            backbone_config=_backbone_config(cfg, image_size), use_pretrained_backbone=False,
            id2label=id2label, label2id={v: k for k, v in id2label.items()},
            feature_size=cfg["feature_size"], mask_feature_size=cfg["mask_feature_size"], hidden_dim=cfg["hidden_dim"],
            encoder_layers=cfg["encoder_layers"], encoder_feedforward_dim=cfg["encoder_feedforward_dim"],
            decoder_layers=cfg["decoder_layers"], num_attention_heads=cfg["num_attention_heads"],
            dim_feedforward=cfg["dim_feedforward"], num_queries=cfg["num_queries"], train_num_points=points,
            oversample_ratio=float(cfg["oversample_ratio"]),
            importance_sample_ratio=float(cfg["importance_sample_ratio"]),
            no_object_weight=float(cfg["no_object_weight"]), class_weight=float(cfg["class_weight"]),
            mask_weight=float(cfg["mask_weight"]), dice_weight=float(cfg["dice_weight"]),
            use_auxiliary_loss=bool(cfg["use_auxiliary_loss"]), dropout=float(cfg["dropout"]),
        )
        model = Mask2FormerForUniversalSegmentation(config)
    if model.config.num_labels != num_labels:  # id2label sets the number of labels; make sure it did
        raise RuntimeError(f"the configuration has {model.config.num_labels} labels, expected {num_labels}")
    if cfg["backbone"] == "conv":
        model.model.pixel_level_module.encoder = ConvBackbone(cfg["stem_widths"], cfg["backbone_widths"],
                                                              cfg["backbone_depths"])
    model.config.semantic_weight = float(semantic_weight)
    if semantic_weight > 0:
        model.semantic_heads = nn.ModuleList(
            [nn.Conv2d(cfg["feature_size"], num_labels + 1, 1) for _ in range(3)]
            + [nn.Conv2d(cfg["mask_feature_size"], num_labels + 1, 1)])
    return model.train()


# ------------------------------------------------------------------------------------------------
# inputs and targets
# ------------------------------------------------------------------------------------------------

def _is_scene(x) -> bool:
    return all(hasattr(x, a) for a in ("image", "instance_masks", "labels", "semantic"))


def _scene_list(scenes, name: str = "scenes") -> list:
    if _is_scene(scenes):
        return [scenes]
    if isinstance(scenes, (str, bytes, dict)) or not hasattr(scenes, "__len__"):
        raise ValueError(f"`{name}` must be a Scene or a sequence of Scenes (utils.scenes.make_scenes), "
                         f"got {type(scenes).__name__}")
    scenes = list(scenes)
    if not scenes:
        raise ValueError(f"`{name}` is empty")
    for i, s in enumerate(scenes):
        if not _is_scene(s):
            raise ValueError(f"`{name}[{i}]` must be a Scene (with image, instance_masks, labels, semantic), "
                             f"got {type(s).__name__}")
    return scenes


def to_pixel_values(images) -> torch.Tensor:
    """Images to the model's input: ``(B, 3, H, W)`` float32, normalised with the ImageNet mean and std.

    ``images``: a sequence of ``(H, W, 3)`` uint8 RGB arrays, of ``(3, H, W)`` float tensors in [0, 1] (the
    course's datasets), or of Scenes; or a ``(B, 3, H, W)`` float tensor in [0, 1]. All of one size.
    """
    if torch.is_tensor(images) and images.ndim == 4:
        batch = images
    else:
        if torch.is_tensor(images) or (isinstance(images, np.ndarray) and images.ndim == 3) or _is_scene(images):
            raise ValueError("`images` must be a sequence of images (or a (B, 3, H, W) tensor), got a single image; "
                             "wrap it in a list")
        tensors = []
        for i, im in enumerate(images):
            if _is_scene(im):
                im = im.image
            if isinstance(im, np.ndarray):
                if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                    raise ValueError(f"`images[{i}]` must be (H, W, 3) uint8, got shape {im.shape} and dtype "
                                     f"{im.dtype}")
                im = torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).float().div_(255.0)
            if not torch.is_tensor(im) or im.ndim != 3 or im.shape[0] != 3 or not im.is_floating_point():
                raise ValueError(f"`images[{i}]` must be a (3, H, W) float tensor in [0, 1] or an (H, W, 3) uint8 "
                                 f"array, got {getattr(im, 'shape', type(im).__name__)}")
            if tensors and im.shape != tensors[0].shape:
                raise ValueError(f"`images` must all have one size: images[0] is {tuple(tensors[0].shape[1:])}, "
                                 f"images[{i}] is {tuple(im.shape[1:])}")
            tensors.append(im.float())
        if not tensors:
            raise ValueError("`images` is empty")
        batch = torch.stack(tensors)
    if batch.shape[1] != 3 or not batch.is_floating_point():
        raise ValueError(f"`images` must be (B, 3, H, W) floats in [0, 1], got {tuple(batch.shape)} {batch.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    return (batch - mean) / std


def scene_targets(scenes, include_background: bool = False, device=None) -> dict:
    """Generated scenes to Mask2Former's inputs: ``pixel_values``, ``mask_labels`` and ``class_labels``.

    One segment per instance (its visible pixels, ``scene.instance_masks``), with model class
    ``scene class - 1`` (disc 0, square 1, triangle 2); with ``include_background=True`` also the background
    as one stuff segment (``scene.semantic == 0``, model class 0; the things keep their scene ids 1..3), put
    first, and left out of an image without background pixels. See the module docstring.

    Parameters
    ----------
    scenes : Scene or sequence of Scene
        All of one size.
    include_background : bool
        Add the background segment (for a model with ``num_labels=4``).
    device : torch.device or str, optional
        Where to put the tensors (default: the CPU).

    Returns
    -------
    dict
        ``pixel_values`` ``(B, 3, H, W)`` float32 (normalised); ``mask_labels`` list of ``(N_i, H, W)`` float32
        in {0, 1}; ``class_labels`` list of ``(N_i,)`` int64. ``model(**batch)`` computes the loss.
    """
    scenes = _scene_list(scenes)
    if not isinstance(include_background, bool):
        raise ValueError(f"`include_background` must be True or False, got {include_background!r}")
    pixel_values = to_pixel_values([s.image for s in scenes])
    mask_labels, class_labels = [], []
    for i, s in enumerate(scenes):
        masks = np.asarray(s.instance_masks, dtype=bool)
        labels = np.asarray(s.labels, dtype=np.int64)
        h, w = np.asarray(s.image).shape[:2]
        if masks.ndim != 3 or masks.shape[1:] != (h, w) or len(masks) != len(labels):
            raise ValueError(f"`scenes[{i}]` has instance_masks {masks.shape} and labels {labels.shape} for an image "
                             f"of {(h, w)}; they must be (N, H, W) and (N,)")
        if len(labels) and (labels.min() < 1 or labels.max() >= len(CLASS_NAMES)):
            raise ValueError(f"`scenes[{i}]` has labels {np.unique(labels).tolist()}, outside "
                             f"1..{len(CLASS_NAMES) - 1}")
        if include_background:
            background = np.asarray(s.semantic) == 0
            if background.any():
                masks = np.concatenate([background[None], masks])
                labels = np.concatenate([[0], labels])
        else:
            labels = labels - 1
        mask_labels.append(torch.from_numpy(masks.astype(np.float32)))
        class_labels.append(torch.from_numpy(labels.astype(np.int64)))
    out = {"pixel_values": pixel_values, "mask_labels": mask_labels, "class_labels": class_labels}
    return _batch_to(out, device) if device is not None else out


def _batch_to(batch: dict, device) -> dict:
    device = torch.device(device)
    return {"pixel_values": batch["pixel_values"].to(device),
            "mask_labels": [m.to(device) for m in batch["mask_labels"]],
            "class_labels": [c.to(device) for c in batch["class_labels"]]}


def _check_batch(batch, num_labels: int, name: str = "data") -> dict:
    if not isinstance(batch, dict) or not {"pixel_values", "mask_labels", "class_labels"} <= set(batch):
        raise ValueError(f"a batch of `{name}` must be a list of Scenes or a dict with 'pixel_values', 'mask_labels' "
                         f"and 'class_labels' (scene_targets' output), got "
                         + (f"a dict with keys {sorted(batch)}" if isinstance(batch, dict) else type(batch).__name__))
    pv, ml, cl = batch["pixel_values"], batch["mask_labels"], batch["class_labels"]
    if not torch.is_tensor(pv) or pv.ndim != 4 or pv.shape[1] != 3:
        raise ValueError(f"'pixel_values' must be a (B, 3, H, W) tensor, got {getattr(pv, 'shape', type(pv).__name__)}")
    if len(ml) != len(pv) or len(cl) != len(pv):
        raise ValueError(f"'mask_labels' ({len(ml)}) and 'class_labels' ({len(cl)}) must hold one entry per image "
                         f"({len(pv)})")
    for i, (m, c) in enumerate(zip(ml, cl)):
        if m.ndim != 3 or m.shape[0] != c.shape[0]:
            raise ValueError(f"image {i}: 'mask_labels' {tuple(m.shape)} and 'class_labels' {tuple(c.shape)} must be "
                             "(N, H, W) and (N,)")
        if c.numel() and (int(c.min()) < 0 or int(c.max()) >= num_labels):
            raise ValueError(f"image {i}: 'class_labels' holds {sorted(set(c.tolist()))} but the model has "
                             f"{num_labels} classes (0..{num_labels - 1}); was `include_background` set to match "
                             "the model's num_labels (3: things only, 4: with the background)?")
    return batch


def _random_flips(batch: dict, generator=None) -> dict:
    """Flip each image and its masks left-right and up-down, each with probability 1/2 (the shapes' classes
    do not change under either flip)."""
    pv, ml = batch["pixel_values"].clone(), list(batch["mask_labels"])
    flips = torch.rand(len(pv), 2, generator=generator) < 0.5
    for i, (fx, fy) in enumerate(flips.tolist()):
        dims = [d for d, f in ((-1, fx), (-2, fy)) if f]
        if dims:
            pv[i] = pv[i].flip(dims)
            ml[i] = ml[i].flip(dims)
    return {"pixel_values": pv, "mask_labels": ml, "class_labels": batch["class_labels"]}


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------

def _batches(data, batch_size: int, include_background: bool, generator):
    """An endless stream of target batches from a list of Scenes, a single batch dict, or an iterable of batches."""
    if isinstance(data, dict):
        while True:
            yield data
    if isinstance(data, (list, tuple)) and data and all(_is_scene(s) for s in data):
        n = len(data)
        while True:
            order = torch.randperm(n, generator=generator).tolist()
            for start in range(0, n - n % batch_size if n >= batch_size else n, batch_size):
                yield scene_targets([data[j] for j in order[start:start + batch_size]], include_background)
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise ValueError(f"`data` must be a list of Scenes, a batch dict (scene_targets' output) or an iterable of "
                         f"batches (e.g. a DataLoader with collate_fn=scene_targets), got {type(data).__name__}")
    while True:
        empty = True
        for batch in data:
            empty = False
            if isinstance(batch, (list, tuple)) and batch and all(_is_scene(s) for s in batch):
                batch = scene_targets(list(batch), include_background)
            yield batch
        if empty:
            raise ValueError("`data` yielded no batch")


def semantic_targets(batch: dict, num_labels: int) -> torch.Tensor:
    """``(B, H, W)`` int64 per-pixel classes from a batch's segments: the segment's model class where a segment
    claims the pixel, ``num_labels`` (the "no object" index) where none does."""
    pv = batch["pixel_values"]
    target = torch.full((pv.shape[0], *pv.shape[-2:]), num_labels, dtype=torch.int64, device=pv.device)
    for b, (masks, labels) in enumerate(zip(batch["mask_labels"], batch["class_labels"])):
        for mask, label in zip(masks, labels):
            target[b][mask > 0.5] = label
    return target


def semantic_auxiliary_loss(model, outputs, batch: dict) -> torch.Tensor:
    """The auxiliary per-pixel class loss (unweighted): a cross-entropy at full resolution for each of
    ``model.semantic_heads``, one per output of the pixel decoder, summed.

    Mask2Former's own loss reaches the features that must tell the classes apart only through each matched
    query's one cross-entropy term; this term tells every pixel's features its class directly, as the auxiliary
    semantic loss of MaX-DeepLab (H. Wang et al., CVPR 2021) does. ``outputs`` must come from
    ``model(..., output_hidden_states=True)`` (for ``pixel_decoder_hidden_states``, strides 32, 16 and 8, and
    ``pixel_decoder_last_hidden_state``, the stride-4 per-pixel embeddings); the targets are
    :func:`semantic_targets` of ``batch``.
    """
    heads = getattr(model, "semantic_heads", None)
    if heads is None:
        raise ValueError("the model has no `semantic_heads`: build it with build_mask2former(..., semantic_weight > 0)")
    if outputs.pixel_decoder_hidden_states is None:
        raise ValueError("`outputs` has no pixel_decoder_hidden_states: call the model with output_hidden_states=True")
    features = [*outputs.pixel_decoder_hidden_states, outputs.pixel_decoder_last_hidden_state]
    if len(features) != len(heads):
        raise ValueError(f"the pixel decoder gave {len(features)} feature maps for {len(heads)} semantic heads")
    target = semantic_targets(batch, model.config.num_labels)
    size = target.shape[-2:]
    return sum(F.cross_entropy(F.interpolate(head(f), size=size, mode="bilinear", align_corners=False), target)
               for head, f in zip(heads, features))


def _loss_terms(model, batch: dict) -> tuple[torch.Tensor, dict]:
    """The model's total loss and its terms (each summed over the final and auxiliary decoder layers, weighted;
    ``loss_semantic``: the weighted auxiliary per-pixel loss, when the model has semantic heads)."""
    semantic_weight = getattr(model.config, "semantic_weight", 0.0)
    out = model(pixel_values=batch["pixel_values"], output_auxiliary_logits=True,
                output_hidden_states=semantic_weight > 0)
    loss_dict = model.get_loss_dict(out.masks_queries_logits, out.class_queries_logits, batch["mask_labels"],
                                    batch["class_labels"], out.auxiliary_logits)
    loss = model.get_loss(loss_dict)
    terms = {}
    for key, value in loss_dict.items():
        for base in ("loss_cross_entropy", "loss_mask", "loss_dice"):
            if key == base or key.startswith(base + "_"):
                terms[base] = terms.get(base, 0.0) + float(value.detach())
    if semantic_weight > 0:
        semantic = semantic_weight * semantic_auxiliary_loss(model, out, batch)
        terms["loss_semantic"] = float(semantic.detach())
        loss = loss + semantic
    return loss, terms


def train_mask2former(model, data, steps: int, optimizer=None, device=None, *, batch_size: int = 8,
                      lr: float = DEFAULT_LR, weight_decay: float = 0.05, grad_clip: float | None = 1.0,
                      scheduler=None, include_background: bool = False, flip: bool = True, seed: int | None = None,
                      progress: bool = True, return_terms: bool = False) -> list:
    """Train a Mask2Former for ``steps`` optimiser steps with AdamW and gradient clipping.

    The loss is the model's own (Cheng et al., section 3.2 and 4): Hungarian matching of queries to segments,
    then ``class_weight`` x cross-entropy (the "no object" class weighted ``no_object_weight``) plus
    ``mask_weight`` x binary cross-entropy plus ``dice_weight`` x Dice on the matched masks, computed on
    ``train_num_points`` sampled points (mostly where the prediction is uncertain), repeated after every decoder
    layer when ``use_auxiliary_loss``; plus, for a model built with ``semantic_weight > 0``, that weight times
    :func:`semantic_auxiliary_loss`.

    Parameters
    ----------
    model : transformers.Mask2FormerForUniversalSegmentation
        From :func:`build_mask2former`.
    data
        A list of Scenes (shuffled into batches of ``batch_size``, epoch after epoch); one batch dict
        (:func:`scene_targets`' output, trained on again and again); or an iterable of batches (lists of Scenes
        or batch dicts, e.g. a ``DataLoader`` with ``collate_fn=scene_targets``), restarted when exhausted.
    steps : int
        Optimiser steps.
    optimizer : torch.optim.Optimizer, optional
        Default: ``AdamW(model.parameters(), lr, weight_decay=weight_decay)``.
    device : torch.device or str, optional
        Default: ``utils.runtime.get_device()``.
    batch_size : int
        Images per step when ``data`` is a list of Scenes.
    lr, weight_decay : float
        For the default optimiser (the paper: 1e-4 and 0.05 for a pretrained backbone; from scratch on the
        scenes a larger rate learns faster).
    grad_clip : float or None
        Clip the gradient norm of the whole model to this value.
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped after every optimiser step.
    include_background : bool
        Build targets with the background segment (a ``num_labels=4`` model); for lists of Scenes.
    flip : bool
        Flip each image (and its masks) left-right and up-down at random.
    seed : int, optional
        Seed torch first (batch order, flips and the loss's point sampling are random).
    progress : bool
        Show a tqdm bar with the running loss.
    return_terms : bool
        Return one dict per step instead of one float.

    Returns
    -------
    list
        Per step, the total loss (float); with ``return_terms``, dicts with ``step``, ``loss``,
        ``loss_cross_entropy``, ``loss_mask``, ``loss_dice`` (weighted, summed over the decoder layers), with
        semantic heads ``loss_semantic`` (weighted), ``lr`` and ``seconds`` (elapsed training time). The model is
        left in evaluation mode.
    """
    from tqdm.auto import tqdm

    from ..runtime import get_device, seed_everything

    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size)
    if not isinstance(model, Mask2FormerForUniversalSegmentation):
        raise ValueError(f"`model` must be a transformers Mask2FormerForUniversalSegmentation (build_mask2former), "
                         f"got {type(model).__name__}")
    check_positive("grad_clip", grad_clip, none_ok=True)
    check_positive("lr", lr)
    for name, flag in (("include_background", include_background), ("flip", flip), ("progress", progress),
                       ("return_terms", return_terms)):
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be True or False, got {flag!r}")
    if seed is not None:
        seed_everything(seed)
    device = get_device() if device is None else torch.device(device)
    model.to(device).train()
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    num_labels = model.config.num_labels
    stream = _batches(data, batch_size, include_background, None)
    history, elapsed, running = [], 0.0, None
    bar = tqdm(range(1, steps + 1), desc="Mask2Former", leave=False, disable=not progress)
    for step in bar:
        t0 = time.perf_counter()
        batch = _check_batch(next(stream), num_labels)
        if flip:
            batch = _random_flips(batch)
        batch = _batch_to(batch, device)
        loss, terms = _loss_terms(model, batch)
        if not torch.isfinite(loss):
            shown = {k: round(v, 3) for k, v in terms.items()}
            raise RuntimeError(f"the loss became {loss.item()} at step {step} ({shown}); lower the learning rate "
                               "or clip gradients (grad_clip)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        elapsed += time.perf_counter() - t0
        value = float(loss.detach())
        running = value if running is None else 0.9 * running + 0.1 * value
        if progress:
            bar.set_postfix(loss=f"{running:.2f}")
        if return_terms:
            history.append({"step": step, "loss": value, **terms, "lr": optimizer.param_groups[0]["lr"],
                            "seconds": elapsed})
        else:
            history.append(value)
    model.eval()
    return history


# ------------------------------------------------------------------------------------------------
# matching
# ------------------------------------------------------------------------------------------------

def hungarian_match(cost) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one assignment of rows (queries) to columns (segments) of least total cost.

    ``scipy.optimize.linear_sum_assignment`` (the Hungarian algorithm's job): with ``Q >= N`` every segment
    gets exactly one query and ``Q - N`` queries stay unmatched (they are taught "no object").

    Parameters
    ----------
    cost : (Q, N) array or tensor of finite floats

    Returns
    -------
    (rows, cols) : two int64 arrays of length ``min(Q, N)``
        Query ``rows[j]`` is matched to segment ``cols[j]``; ``rows`` is increasing.
    """
    from scipy.optimize import linear_sum_assignment

    if torch.is_tensor(cost):
        cost = cost.detach().cpu().double().numpy()
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"`cost` must be a (Q, N) matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("`cost` holds NaN or infinite values; the matching needs finite costs")
    rows, cols = linear_sum_assignment(cost)
    return rows.astype(np.int64), cols.astype(np.int64)


def _sample_points(x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Values of ``x`` ``(N, h, w)`` at points ``coords`` ``(P, 2)`` in [0, 1]^2 (x, y), bilinearly: ``(N, P)``."""
    grid = (2.0 * coords - 1.0).view(1, 1, -1, 2).expand(len(x), 1, -1, 2)
    return F.grid_sample(x[:, None], grid, mode="bilinear", align_corners=False)[:, 0, 0]


def matching_cost(class_logits, mask_logits, mask_labels, class_labels, *, class_weight: float = 2.0,
                  mask_weight: float = 5.0, dice_weight: float = 5.0, num_points: int | None = None,
                  generator=None) -> dict:
    """The cost matrix that Mask2Former's matcher minimises, for one image, term by term.

    ``cost[q, n] = class_weight * (-p_q(c_n)) + mask_weight * BCE(mask_q, m_n) + dice_weight * Dice(mask_q, m_n)``,
    where ``p_q`` is query ``q``'s softmax over classes (with "no object"), ``c_n`` and ``m_n`` segment ``n``'s
    class and mask, BCE the mean binary cross-entropy of the mask logits over the compared points and
    ``Dice = 1 - (2 sum(s m) + 1) / (sum(s) + sum(m) + 1)`` with ``s`` the mask probabilities.

    Parameters
    ----------
    class_logits : (Q, C + 1) tensor
    mask_logits : (Q, h, w) tensor
        Usually at a quarter of the image's resolution.
    mask_labels : (N, H, W) tensor in {0, 1}
    class_labels : (N,) int64 tensor of model class ids
    class_weight, mask_weight, dice_weight : float
        The model's ``config.class_weight``, ``mask_weight`` and ``dice_weight`` (Mask2Former's defaults here).
    num_points : int, optional
        ``None``: compare the masks on every pixel of ``mask_labels`` (the predictions are resized bilinearly).
        An int: on that many random points shared by all masks, as ``transformers``' matcher does
        (``config.train_num_points``); with the same random state the two draw the same points.
    generator : torch.Generator, optional
        For the points (default: torch's global generator, as the model's matcher uses).

    Returns
    -------
    dict of (Q, N) float tensors
        ``"class"`` (``-p_q(c_n)``), ``"mask"`` (BCE), ``"dice"``, unweighted, and ``"total"``, the weighted sum.
    """
    for name, t in (("class_logits", class_logits), ("mask_logits", mask_logits), ("mask_labels", mask_labels),
                    ("class_labels", class_labels)):
        if not torch.is_tensor(t):
            raise ValueError(f"`{name}` must be a torch tensor, got {type(t).__name__}")
    if class_logits.ndim != 2 or mask_logits.ndim != 3 or class_logits.shape[0] != mask_logits.shape[0]:
        raise ValueError(f"`class_logits` must be (Q, C + 1) and `mask_logits` (Q, h, w) for one image, got "
                         f"{tuple(class_logits.shape)} and {tuple(mask_logits.shape)}")
    if mask_labels.ndim != 3 or class_labels.ndim != 1 or len(mask_labels) != len(class_labels):
        raise ValueError(f"`mask_labels` must be (N, H, W) and `class_labels` (N,), got {tuple(mask_labels.shape)} "
                         f"and {tuple(class_labels.shape)}")
    if class_labels.numel() and (int(class_labels.min()) < 0 or int(class_labels.max()) >= class_logits.shape[1] - 1):
        raise ValueError(f"`class_labels` must lie in [0, {class_logits.shape[1] - 1}) (the last logit is 'no "
                         f"object'), got {sorted(set(class_labels.tolist()))}")
    probs = class_logits.float().softmax(-1)
    cost_class = -probs[:, class_labels.long()]
    pred = mask_logits.float()
    target = mask_labels.to(pred)
    if num_points is None:
        pred = F.interpolate(pred[None], size=target.shape[-2:], mode="bilinear", align_corners=False)[0].flatten(1)
        target = target.flatten(1)
    else:
        num_points = check_int("num_points", num_points, none_ok=True)
        coords = torch.rand(1, num_points, 2, device=pred.device, generator=generator)[0]
        target = _sample_points(target, coords)
        pred = _sample_points(pred, coords)
    points = pred.shape[1]
    pos = F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred), reduction="none")
    neg = F.binary_cross_entropy_with_logits(pred, torch.zeros_like(pred), reduction="none")
    cost_mask = (pos / points) @ target.T + (neg / points) @ (1 - target).T
    s = pred.sigmoid()
    cost_dice = 1 - (2 * s @ target.T + 1) / (s.sum(-1)[:, None] + target.sum(-1)[None, :] + 1)
    total = class_weight * cost_class + mask_weight * cost_mask + dice_weight * cost_dice
    return {"class": cost_class, "mask": cost_mask, "dice": cost_dice, "total": total}


@torch.no_grad()
def match_queries(model, scenes, *, include_background: bool | None = None, num_points: int | None = None,
                  device=None) -> list[dict]:
    """Which query the matcher gives to which object, in each scene: the model's predictions, its cost matrix
    (:func:`matching_cost` with the model's weights) and the Hungarian assignment (:func:`hungarian_match`).

    Returns
    -------
    list of dict, one per scene
        ``queries``, ``targets``: int64 arrays, query ``queries[j]`` matched to segment ``targets[j]`` (the
        segments of :func:`scene_targets`: instance ``j`` of the scene, after the background when it is
        included); ``cost``, ``class_cost``, ``mask_cost``, ``dice_cost``: ``(Q, N)`` float arrays (the terms
        unweighted, ``cost`` weighted); ``class_labels`` ``(N,)`` the segments' model classes;
        ``class_probs`` ``(Q, C + 1)`` and ``mask_probs`` ``(Q, H, W)`` (resized to the image) of the queries.
    """
    scenes = _scene_list(scenes)
    background = _resolve_background(model.config.num_labels, include_background)
    device = _model_device(model) if device is None else torch.device(device)
    model.to(device).eval()
    batch = scene_targets(scenes, background, device=device)
    out = model(pixel_values=batch["pixel_values"])
    cfg = model.config
    results = []
    for i in range(len(scenes)):
        costs = matching_cost(out.class_queries_logits[i], out.masks_queries_logits[i], batch["mask_labels"][i],
                              batch["class_labels"][i], class_weight=cfg.class_weight, mask_weight=cfg.mask_weight,
                              dice_weight=cfg.dice_weight, num_points=num_points)
        rows, cols = hungarian_match(costs["total"])
        size = batch["mask_labels"][i].shape[-2:]
        masks = F.interpolate(out.masks_queries_logits[i][None].float(), size=size, mode="bilinear",
                              align_corners=False)[0].sigmoid()
        results.append({"queries": rows, "targets": cols, "cost": costs["total"].cpu().numpy(),
                        "class_cost": costs["class"].cpu().numpy(), "mask_cost": costs["mask"].cpu().numpy(),
                        "dice_cost": costs["dice"].cpu().numpy(),
                        "class_labels": batch["class_labels"][i].cpu().numpy(),
                        "class_probs": out.class_queries_logits[i].float().softmax(-1).cpu().numpy(),
                        "mask_probs": masks.cpu().numpy()})
    return results


# ------------------------------------------------------------------------------------------------
# post-processing
# ------------------------------------------------------------------------------------------------

def _resolve_background(num_labels: int, include_background) -> bool:
    if include_background is None:
        if num_labels == len(CLASS_NAMES):
            return True
        if num_labels == len(CLASS_NAMES) - 1:
            return False
        raise ValueError(f"the model has {num_labels} classes; pass `include_background` (True if class 0 is the "
                         "background, False if class k is scene class k + 1)")
    if not isinstance(include_background, bool):
        raise ValueError(f"`include_background` must be True, False or None, got {include_background!r}")
    return include_background


def _model_device(model) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _check_logits(class_logits, mask_logits) -> tuple[torch.Tensor, torch.Tensor]:
    for name, t in (("class_logits", class_logits), ("mask_logits", mask_logits)):
        if not torch.is_tensor(t):
            raise ValueError(f"`{name}` must be a torch tensor, got {type(t).__name__}")
    if class_logits.ndim != 2 or class_logits.shape[1] < 2:
        raise ValueError(f"`class_logits` must be (Q, C + 1) for one image (C classes and 'no object'), got "
                         f"{tuple(class_logits.shape)}")
    if mask_logits.ndim != 3 or mask_logits.shape[0] != class_logits.shape[0]:
        raise ValueError(f"`mask_logits` must be (Q, h, w) with Q = {class_logits.shape[0]} (one mask per query), got "
                         f"{tuple(mask_logits.shape)}")
    return class_logits.detach().float(), mask_logits.detach().float()


def _resized(mask_logits: torch.Tensor, size) -> torch.Tensor:
    if size is None:
        return mask_logits
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"`size` must be None, an int or a (height, width) pair of positive ints, got {size!r}")
    if tuple(mask_logits.shape[-2:]) == tuple(size):
        return mask_logits
    return F.interpolate(mask_logits[None], size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)[0]


def instances_from_logits(class_logits, mask_logits, size=None, *, include_background: bool | None = None,
                          top_k: int | None = None, mask_threshold: float = 0.5, keep_probs: bool = False) -> dict:
    """Instance segmentation from one image's queries, as Mask2Former's instance inference does it.

    Every (query, thing class) pair is a candidate scored by its class probability; the ``top_k`` best are
    kept (so one query may appear with two classes); each mask is the query's probability map cut at
    ``mask_threshold``, and the final score is ``class probability x mean mask probability inside the mask``
    (the paper's mask quality term). Empty masks are dropped. Overlaps are left in: COCO AP scores instances
    one by one.

    Parameters
    ----------
    class_logits : (Q, C + 1) tensor
    mask_logits : (Q, h, w) tensor
    size : int or (int, int), optional
        Resize the masks (bilinearly, as logits) to the image's size; ``None`` keeps ``(h, w)``.
    include_background : bool, optional
        The class numbering (module docstring); default: from ``C`` (3: things only, 4: with the background,
        which is then never an instance).
    top_k : int, optional
        Candidates kept (default ``Q``, as ``transformers`` and the paper with 100 queries).
    mask_threshold : float in (0, 1)
    keep_probs : bool
        Also return the masks' probabilities.

    Returns
    -------
    dict
        ``boxes_xyxy`` (K, 4) float32, ``labels`` (K,) int64 scene class ids, ``scores`` (K,) float32 (high to
        low), ``masks`` (K, H, W) bool, ``queries`` (K,) int64 (the query of each instance) and with
        ``keep_probs`` ``mask_probs`` (K, H, W) float32: ``utils.instance``'s prediction format.
    """
    from torchvision.ops import masks_to_boxes

    class_logits, mask_logits = _check_logits(class_logits, mask_logits)
    num_queries, num_classes = class_logits.shape[0], class_logits.shape[1] - 1
    background = _resolve_background(num_classes, include_background)
    top_k = num_queries if top_k is None else check_int("top_k", top_k)
    if not 0.0 < mask_threshold < 1.0:
        raise ValueError(f"`mask_threshold` must be in (0, 1), got {mask_threshold!r}")
    offset = 0 if background else 1
    things = [k for k in range(num_classes) if k + offset in THING_CLASSES]
    probs = class_logits.softmax(-1)[:, things]  # (Q, T): thing classes only, "no object" left out
    flat_scores, flat_index = probs.flatten().topk(min(top_k, probs.numel()))
    queries = flat_index // len(things)
    labels = torch.tensor(things, dtype=torch.int64)[flat_index % len(things)] + offset
    mask_probs = _resized(mask_logits, size)[queries].sigmoid()
    masks = mask_probs >= mask_threshold
    area = masks.flatten(1).sum(1)
    quality = (mask_probs * masks).flatten(1).sum(1) / area.clamp(min=1)
    scores = flat_scores * quality
    keep = area > 0
    order = torch.argsort(scores[keep], descending=True, stable=True)
    masks, mask_probs = masks[keep][order], mask_probs[keep][order]
    out = {
        "boxes_xyxy": masks_to_boxes(masks).numpy().astype(np.float32) if len(masks) else np.zeros((0, 4), np.float32),
        "labels": labels[keep][order].numpy().astype(np.int64),
        "scores": scores[keep][order].numpy().astype(np.float32),
        "masks": masks.numpy(),
        "queries": queries[keep][order].numpy().astype(np.int64),
    }
    if keep_probs:
        out["mask_probs"] = mask_probs.numpy().astype(np.float32)
    return out


def semantic_from_logits(class_logits, mask_logits, size=None, *, include_background: bool | None = None,
                         background_threshold: float = 0.5, return_scores: bool = False):
    """A semantic map from one image's queries: Mask2Former's semantic inference.

    ``scores[c, y, x] = sum_q p_q(c) * sigmoid(mask_q[y, x])``, with ``p_q`` the softmax over classes with "no
    object" left out (one einsum), then the best class per pixel. A things-only model has no background
    score: a pixel is background where its best thing score is below ``background_threshold``.

    Parameters
    ----------
    class_logits : (Q, C + 1) tensor
    mask_logits : (Q, h, w) tensor
    size : int or (int, int), optional
        Resize to the image's size (``None``: keep ``(h, w)``).
    include_background : bool, optional
        Default: from ``C`` (module docstring).
    background_threshold : float in (0, 1)
        For things-only models.
    return_scores : bool
        Also return the ``(C, H, W)`` scores.

    Returns
    -------
    (H, W) int64 array of scene class ids, or ``(map, scores)`` with ``return_scores``.
    """
    class_logits, mask_logits = _check_logits(class_logits, mask_logits)
    background = _resolve_background(class_logits.shape[1] - 1, include_background)
    if not 0.0 < background_threshold < 1.0:
        raise ValueError(f"`background_threshold` must be in (0, 1), got {background_threshold!r}")
    probs = class_logits.softmax(-1)[:, :-1]
    masks = _resized(mask_logits, size).sigmoid()
    scores = torch.einsum("qc,qhw->chw", probs, masks)
    if background:
        semantic = scores.argmax(0)
    else:
        best, index = scores.max(0)
        semantic = torch.where(best >= background_threshold, index + 1, torch.zeros_like(index))
    semantic = semantic.numpy().astype(np.int64)
    return (semantic, scores.numpy()) if return_scores else semantic


def panoptic_from_logits(class_logits, mask_logits, size=None, *, include_background: bool | None = None,
                         score_threshold: float = 0.8, overlap_threshold: float = 0.8, mask_threshold: float = 0.5,
                         return_segments: bool = False):
    """A panoptic map in the scenes' encoding from one image's queries: Mask2Former's panoptic inference.

    Queries whose best class is not "no object" and whose probability exceeds ``score_threshold`` are kept;
    each pixel goes to the kept query with the highest ``class probability x mask probability``, if that
    query's mask probability there is at least ``mask_threshold``. A query keeps its segment only if it won
    at least ``overlap_threshold`` of its own mask (else it is mostly hidden behind others and dropped). Things
    get instance numbers 1, 2, ... in query order; the background is stuff, encoded 0, as are pixels no query
    claims (the scenes' encoding has no separate "void").

    Parameters
    ----------
    class_logits : (Q, C + 1) tensor
    mask_logits : (Q, h, w) tensor
    size : int or (int, int), optional
        Resize to the image's size (``None``: keep ``(h, w)``).
    include_background : bool, optional
        Default: from ``C`` (module docstring).
    score_threshold, overlap_threshold, mask_threshold : float in (0, 1)
        The paper's ``object_mask_threshold`` and ``overlap_threshold`` are both 0.8.
    return_segments : bool
        Also return the segments: dicts with ``id`` (the value in the map), ``class_id``, ``query``, ``score``,
        ``area``.

    Returns
    -------
    (H, W) int32 array ``class_id * PANOPTIC_DIVISOR + instance_number``, or ``(map, segments)``.
    """
    class_logits, mask_logits = _check_logits(class_logits, mask_logits)
    num_classes = class_logits.shape[1] - 1
    background = _resolve_background(num_classes, include_background)
    for name, v in (("score_threshold", score_threshold), ("overlap_threshold", overlap_threshold),
                    ("mask_threshold", mask_threshold)):
        if not 0.0 < v < 1.0:
            raise ValueError(f"`{name}` must be in (0, 1), got {v!r}")
    offset = 0 if background else 1
    scores, labels = class_logits.softmax(-1).max(-1)
    keep = (labels != num_classes) & (scores > score_threshold)
    mask_probs = _resized(mask_logits, size).sigmoid()
    panoptic = np.zeros(tuple(mask_probs.shape[-2:]), np.int32)
    segments: list[dict] = []
    kept = torch.nonzero(keep).flatten()
    if len(kept):
        probs = mask_probs[kept]
        owner = (scores[kept].view(-1, 1, 1) * probs).argmax(0)
        instance = 0
        for j, q in enumerate(kept.tolist()):
            won = owner == j
            own = probs[j] >= mask_threshold
            region = won & own
            won_area, own_area, area = int(won.sum()), int(own.sum()), int(region.sum())
            if won_area == 0 or own_area == 0 or area == 0 or won_area / own_area < overlap_threshold:
                continue
            class_id = int(labels[q]) + offset
            if class_id in THING_CLASSES:
                instance += 1
                value = class_id * PANOPTIC_DIVISOR + instance
            else:
                value = class_id * PANOPTIC_DIVISOR
            region_np = region.numpy()
            panoptic[region_np] = value
            segments.append({"id": int(value), "class_id": class_id, "query": int(q), "score": float(scores[q]),
                             "area": area})
    return (panoptic, segments) if return_segments else panoptic


@torch.no_grad()
def predict_mask2former(model, images, *, device=None, batch_size: int = 8, include_background: bool | None = None,
                        top_k: int | None = None, score_threshold: float = 0.8, overlap_threshold: float = 0.8,
                        background_threshold: float = 0.5) -> list[dict]:
    """Run the model on images and post-process each: instances, semantic map and panoptic map.

    Parameters
    ----------
    model : transformers.Mask2FormerForUniversalSegmentation
    images : sequence of Scenes, ``(H, W, 3)`` uint8 arrays or ``(3, H, W)`` float tensors in [0, 1]
    device : torch.device or str, optional
        Default: where the model's parameters are.
    batch_size : int
    include_background, top_k, score_threshold, overlap_threshold, background_threshold
        As in :func:`instances_from_logits`, :func:`semantic_from_logits` and :func:`panoptic_from_logits`.

    Returns
    -------
    list of dict, one per image
        ``instances`` (:func:`instances_from_logits`' dict at the image's size), ``semantic`` ``(H, W)`` int64,
        ``panoptic`` ``(H, W)`` int32.
    """
    batch_size = check_int("batch_size", batch_size)
    if _is_scene(images) or (torch.is_tensor(images) and images.ndim == 3) or (
            isinstance(images, np.ndarray) and images.ndim == 3):
        raise ValueError("`images` must be a sequence of images, got a single one; wrap it in a list")
    images = list(images)
    if not images:
        raise ValueError("`images` is empty")
    background = _resolve_background(model.config.num_labels, include_background)
    device = _model_device(model) if device is None else torch.device(device)
    model.to(device).eval()
    results = []
    for start in range(0, len(images), batch_size):
        pixel_values = to_pixel_values(images[start:start + batch_size]).to(device)
        size = tuple(pixel_values.shape[-2:])
        out = model(pixel_values=pixel_values)
        for cls, masks in zip(out.class_queries_logits.cpu(), out.masks_queries_logits.cpu()):
            results.append({
                "instances": instances_from_logits(cls, masks, size, include_background=background, top_k=top_k),
                "semantic": semantic_from_logits(cls, masks, size, include_background=background,
                                                 background_threshold=background_threshold),
                "panoptic": panoptic_from_logits(cls, masks, size, include_background=background,
                                                 score_threshold=score_threshold, overlap_threshold=overlap_threshold),
            })
    return results


def _best_candidate_per_query(instances: dict) -> dict:
    """One detection per query, of class 1 ("object"): each query's highest-scored candidate (the instances are
    sorted by score, so its first one)."""
    _, first = np.unique(instances["queries"], return_index=True)
    first = np.sort(first)
    out = {key: value[first] if isinstance(value, np.ndarray) else value for key, value in instances.items()}
    out["labels"] = np.ones(len(first), dtype=np.int64)
    return out


def evaluate_mask2former(model, scenes, *, device=None, batch_size: int = 8, include_background: bool | None = None,
                         top_k: int | None = None, iou_types=("segm",), class_agnostic: bool = False,
                         **post) -> tuple[dict, list[dict]]:
    """Score a Mask2Former on generated scenes: COCO mask AP with pycocotools, and semantic mIoU.

    Parameters
    ----------
    model : transformers.Mask2FormerForUniversalSegmentation
    scenes : sequence of Scenes
    device, batch_size, include_background, top_k
        As in :func:`predict_mask2former`.
    iou_types : sequence of {"segm", "bbox"}
        COCO evaluations (boxes are the masks' bounding boxes).
    class_agnostic : bool
        Also score the instances with the classes ignored (every true object and every prediction of class
        "object"; each query keeps only its best-scored candidate, so it is one detection): the keys of
        ``coco_evaluate`` prefixed ``agnostic_`` (``agnostic_segm_AP50``, ...). Set against the ordinary AP it
        separates finding the objects from naming them.
    **post
        ``score_threshold``, ``overlap_threshold``, ``background_threshold`` for :func:`predict_mask2former`.

    Returns
    -------
    (metrics, predictions)
        ``metrics``: ``utils.instance.coco_evaluate``'s keys (``segm_AP``, ``segm_AP50``, ...), plus ``miou``,
        ``iou`` (per scene class, NaN where absent) and ``pixel_accuracy`` of the semantic maps (and the
        ``agnostic_`` keys with ``class_agnostic``);
        ``predictions``: :func:`predict_mask2former`'s list.
    """
    from ..instance import coco_evaluate, coco_ground_truth
    from ..metrics import ConfusionMatrix

    scenes = _scene_list(scenes)
    if not isinstance(class_agnostic, bool):
        raise ValueError(f"`class_agnostic` must be True or False, got {class_agnostic!r}")
    unknown = set(post) - {"score_threshold", "overlap_threshold", "background_threshold"}
    if unknown:
        raise ValueError(f"unknown keyword arguments {sorted(unknown)}; post-processing takes score_threshold, "
                         "overlap_threshold and background_threshold")
    predictions = predict_mask2former(model, scenes, device=device, batch_size=batch_size,
                                      include_background=include_background, top_k=top_k, **post)
    dataset = []
    for s in scenes:
        masks = torch.from_numpy(np.asarray(s.instance_masks, dtype=np.uint8))
        dataset.append((torch.zeros(3, *np.asarray(s.image).shape[:2]), {
            "boxes": torch.from_numpy(np.asarray(s.boxes_xyxy, dtype=np.float32)),
            "labels": torch.from_numpy(np.asarray(s.labels, dtype=np.int64)), "masks": masks,
            "iscrowd": torch.zeros(len(masks), dtype=torch.int64)}))
    metrics = coco_evaluate(coco_ground_truth(dataset, CLASS_NAMES), [p["instances"] for p in predictions], iou_types)
    if class_agnostic:
        merged = [(image, {**target, "labels": torch.ones_like(target["labels"])}) for image, target in dataset]
        agnostic = coco_evaluate(coco_ground_truth(merged, ("background", "object")),
                                 [_best_candidate_per_query(p["instances"]) for p in predictions], iou_types)
        metrics.update({f"agnostic_{key}": value for key, value in agnostic.items()})
    cm = ConfusionMatrix(len(CLASS_NAMES), ignore_index=None)
    for s, p in zip(scenes, predictions):
        cm.update(torch.from_numpy(p["semantic"])[None], torch.from_numpy(np.asarray(s.semantic, dtype=np.int64))[None])
    sem = cm.compute()
    metrics.update(miou=sem["miou"], iou=sem["iou"].numpy(), pixel_accuracy=sem["pixel_accuracy"])
    return metrics, predictions
