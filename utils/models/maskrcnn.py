"""torchvision's Mask R-CNN in two configurations of the same ``MaskRCNN`` class:

* :func:`build_maskrcnn_cpu`: a small model that learns from scratch on a laptop CPU in minutes
  (a four-stage convolutional trunk with a three-level FPN of 64 channels, anchors sized for small
  images, few proposals, light heads, and no resizing of the input);
* :func:`build_maskrcnn_full`: the paper-like ResNet-50-FPN model, COCO-pretrained when its weights
  file is given, with new box and mask predictors for the course's classes (GPU work).

An image given to either model is a ``(3, H, W)`` ``float32`` tensor, RGB, values in [0, 1] (the model
normalises it itself). Training, prediction, COCO evaluation and matching are in :mod:`utils.instance`,
with the formats of targets and predictions.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation

from ..validation import check_int

__all__ = ["CPU_CONFIG", "TinyFPNBackbone", "build_maskrcnn_cpu", "build_maskrcnn_full", "coco_category_names"]

# The cheap configuration, explained in notebook 06: every number here is a choice against CPU time.
CPU_CONFIG = {
    "image_size": 128,  # min_size = max_size = the scene size: torchvision must not upscale to 800 px
    "widths": (32, 64, 96, 128),  # trunk channels at strides 2, 4, 8, 16 (ResNet-50: 64 ... 2048)
    "fpn_channels": 64,  # FPN width (ResNet-50-FPN: 256)
    "anchor_sizes": (16, 32, 64),  # one anchor size per FPN level (strides 4, 8, 16); COCO: 32 ... 512
    "aspect_ratios": (0.5, 1.0, 2.0),
    "rpn_pre_nms_top_n_train": 300,  # proposals kept before / after NMS (COCO: 2000 / 2000 in training)
    "rpn_post_nms_top_n_train": 150,
    "rpn_pre_nms_top_n_test": 150,  # (COCO: 1000 / 1000 at test time)
    "rpn_post_nms_top_n_test": 60,
    "rpn_batch_size_per_image": 128,  # anchors sampled for the RPN loss (COCO: 256)
    "box_batch_size_per_image": 64,  # RoIs sampled for the box and mask losses (COCO: 512)
    "box_detections_per_img": 20,  # a scene holds at most 6 shapes (COCO: 100)
    "representation_size": 256,  # box head MLP width (COCO: 1024)
    "mask_head_layers": (64, 64),  # mask head convolutions (COCO: four of 256)
}


def _check_num_classes(num_classes) -> int:
    return check_int("num_classes", num_classes, 2, note=" (the background counts as class 0)")


class TinyFPNBackbone(nn.Module):
    """A small convolutional trunk with a feature pyramid, shaped like torchvision's ``BackboneWithFPN``.

    Four stages of two 3x3 convolutions (batch norm, ReLU), each halving the resolution, then a
    ``torchvision.ops.FeaturePyramidNetwork`` over the last three stages.

    Parameters
    ----------
    widths : tuple of 4 ints
        Channels of the stages at strides 2, 4, 8 and 16.
    fpn_channels : int
        Channels of every pyramid level (``self.out_channels``, which ``MaskRCNN`` reads).

    Shape
    -----
    Input ``(B, 3, H, W)`` float32 (normalised by the model's transform). Output an ``OrderedDict``
    ``{"0": (B, C, H/4, W/4), "1": (B, C, H/8, W/8), "2": (B, C, H/16, W/16)}`` with ``C = fpn_channels``.
    """

    def __init__(self, widths=(32, 64, 96, 128), fpn_channels: int = 64):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        widths = tuple(widths)
        if len(widths) != 4 or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(f"`widths` must be four positive ints (strides 2, 4, 8, 16), got {widths!r}")
        check_int("fpn_channels", fpn_channels)
        w = widths
        conv = Conv2dNormActivation                          # 3x3 convolution, batch norm, ReLU
        self.stem = nn.Sequential(conv(3, w[0], stride=2), conv(w[0], w[0]))
        self.stage1 = nn.Sequential(conv(w[0], w[1], stride=2), conv(w[1], w[1]))
        self.stage2 = nn.Sequential(conv(w[1], w[2], stride=2), conv(w[2], w[2]))
        self.stage3 = nn.Sequential(conv(w[2], w[3], stride=2), conv(w[3], w[3]))
        self.fpn = FeaturePyramidNetwork([w[1], w[2], w[3]], fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        c1 = self.stage1(self.stem(x))
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        return self.fpn(OrderedDict([("0", c1), ("1", c2), ("2", c3)]))


def build_maskrcnn_cpu(num_classes: int, image_size: int = 128, **overrides):
    """A torchvision ``MaskRCNN`` small enough to learn from scratch on a 2-core CPU in minutes.

    Parameters
    ----------
    num_classes : int
        Classes including the background (the generated scenes: 4).
    image_size : int
        Side of the (square) training images; the model's transform keeps images at this size
        (``min_size = max_size = image_size``) instead of upscaling them to 800 pixels.
    **overrides
        Any key of :data:`CPU_CONFIG` except ``image_size``, to try another choice.

    Returns
    -------
    torchvision.models.detection.MaskRCNN
        Untrained (no weights exist for this trunk); ``model.backbone`` is a :class:`TinyFPNBackbone`.
    """
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    num_classes = _check_num_classes(num_classes)
    if not isinstance(image_size, (int, np.integer)) or image_size < 32:
        raise ValueError(f"`image_size` must be an int >= 32, got {image_size!r}")
    unknown = set(overrides) - (set(CPU_CONFIG) - {"image_size"})
    if unknown:
        raise ValueError(f"unknown configuration keys {sorted(unknown)}; choose from {sorted(set(CPU_CONFIG) - {'image_size'})}")
    cfg = {**CPU_CONFIG, **overrides}
    if len(cfg["anchor_sizes"]) != 3:
        raise ValueError(f"`anchor_sizes` must give one size per pyramid level (3), got {cfg['anchor_sizes']!r}")
    c = cfg["fpn_channels"]
    backbone = TinyFPNBackbone(cfg["widths"], c)
    anchors = AnchorGenerator(tuple((int(s),) for s in cfg["anchor_sizes"]),
                              (tuple(cfg["aspect_ratios"]),) * len(cfg["anchor_sizes"]))
    # RoIs pick their pyramid level by size, FPN's equation 1: level = 3 + log2(sqrt(area) / 56), so a
    # 56-pixel box reads the stride-8 level (COCO's 224 pixels -> level 4 is tuned for 800-pixel images).
    levels = ["0", "1", "2"]
    box_pool = MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2, canonical_scale=56, canonical_level=3)
    mask_pool = MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2, canonical_scale=56, canonical_level=3)
    mask_layers = tuple(cfg["mask_head_layers"])
    rep = cfg["representation_size"]
    return MaskRCNN(
        backbone, num_classes=None, min_size=int(image_size), max_size=int(image_size),
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=cfg["rpn_pre_nms_top_n_train"], rpn_post_nms_top_n_train=cfg["rpn_post_nms_top_n_train"],
        rpn_pre_nms_top_n_test=cfg["rpn_pre_nms_top_n_test"], rpn_post_nms_top_n_test=cfg["rpn_post_nms_top_n_test"],
        rpn_batch_size_per_image=cfg["rpn_batch_size_per_image"],
        box_roi_pool=box_pool, box_head=TwoMLPHead(c * 7 * 7, rep), box_predictor=FastRCNNPredictor(rep, num_classes),
        box_batch_size_per_image=cfg["box_batch_size_per_image"], box_detections_per_img=cfg["box_detections_per_img"],
        mask_roi_pool=mask_pool, mask_head=MaskRCNNHeads(c, list(mask_layers), 1),
        mask_predictor=MaskRCNNPredictor(mask_layers[-1], mask_layers[-1], num_classes),
    )


def coco_category_names() -> list[str]:
    """The 91 COCO category names of torchvision's detection weights (index = label id; unused ids are "N/A")."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    return list(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])


def build_maskrcnn_full(num_classes: int | None, weights_path=None, trainable_backbone_layers: int = 3, **kwargs):
    """torchvision's Mask R-CNN ResNet-50-FPN (the paper's configuration), COCO weights loaded from a file.

    Built as ``torchvision.models.detection.maskrcnn_resnet50_fpn`` builds it (frozen batch norm in the
    ResNet, the first ``5 - trainable_backbone_layers`` stages frozen), then, when ``num_classes`` is
    given, with a new box predictor and mask predictor for those classes: the recipe for fine-tuning
    on a new dataset such as Penn-Fudan.

    Parameters
    ----------
    num_classes : int or None
        Classes including the background; ``None`` keeps COCO's 91 (for inference with the COCO heads).
    weights_path : str or Path, optional
        The state dict ``utils.data.fetch("maskrcnn_resnet50_fpn_coco")`` returns, loaded with
        ``torch.load(..., weights_only=True)``. ``None``: random initialisation (every layer trainable).
    trainable_backbone_layers : int in [0, 5]
        ResNet stages left trainable when pretrained (torchvision's default: 3).
    **kwargs
        Passed to ``MaskRCNN`` (``min_size``, ``max_size``, ``box_detections_per_img``, ...).

    Returns
    -------
    torchvision.models.detection.MaskRCNN
    """
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
    from torchvision.ops.misc import FrozenBatchNorm2d

    if num_classes is not None:
        num_classes = _check_num_classes(num_classes)
    if not isinstance(trainable_backbone_layers, int) or not 0 <= trainable_backbone_layers <= 5:
        raise ValueError(f"`trainable_backbone_layers` must be an int in [0, 5], got {trainable_backbone_layers!r}")
    pretrained = weights_path is not None
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None,
                                   norm_layer=FrozenBatchNorm2d if pretrained else nn.BatchNorm2d,
                                   trainable_layers=trainable_backbone_layers if pretrained else 5)
    model = MaskRCNN(backbone, num_classes=91 if (pretrained or num_classes is None) else num_classes, **kwargs)
    if pretrained:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        for m in model.modules():  # torchvision's COCO_V1 weights were trained with eps = 0 (overwrite_eps)
            if isinstance(m, FrozenBatchNorm2d):
                m.eps = 0.0
    if pretrained and num_classes is not None:  # new, untrained predictors for the new classes
        box_in = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(box_in, num_classes)
        mask_in = model.roi_heads.mask_predictor.conv5_mask.in_channels
        model.roi_heads.mask_predictor = MaskRCNNPredictor(mask_in, 256, num_classes)
    return model
