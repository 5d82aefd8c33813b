"""DeepLab and PSPNet, written out: atrous convolution, ASPP, the pyramid pooling module, a DeepLabV3+
decoder on a torchvision backbone, builders for torchvision's ``DeepLabV3``, and the pretrained DeepLabV3
ResNet-50 with the 21 Pascal VOC classes.

Conventions
-----------
* Images given to a model: ``(B, 3, H, W)`` ``float32`` in [0, 1] (the course's datasets). The
  pretrained torchvision weights expect ImageNet normalisation; :func:`utils.segmodels.segment_with_voc_model`
  applies it.
* Every model here returns what torchvision's segmentation models return: a dict whose ``"out"`` is
  ``(B, num_classes, H, W)`` ``float32`` logits at the input's size, so ``utils.train.fit`` trains
  them all alike.
* Feature maps inside are ``(B, C, h, w)`` with ``h = H / output_stride``.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import Conv2dNormActivation

from ..validation import check_int

__all__ = [
    "ASPP",
    "PyramidPooling",
    "DeepLabHeadLite",
    "PSPHead",
    "DeepLabV3PlusDecoder",
    "DeepLabV3Plus",
    "dilate_resnet_",
    "resnet_backbone",
    "build_deeplabv3",
    "build_deeplabv3plus",
    "build_pspnet",
    "deeplabv3_resnet50_voc",
    "VOC_CLASS_NAMES",
]

# The classes of Pascal VOC 2012, in label order: what deeplabv3_resnet50_voc predicts.
VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")


def _check_rates(rates) -> tuple[int, ...]:
    if isinstance(rates, (int, np.integer)) or not isinstance(rates, Sequence) or len(rates) == 0:
        raise ValueError(f"`atrous_rates` must be a non-empty sequence of positive ints, got {rates!r}")
    for r in rates:
        check_int("atrous_rates[i]", r)
    return tuple(int(r) for r in rates)


def _conv_bn_relu(c_in: int, c_out: int, kernel_size: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution (no bias), batch norm, ReLU: torchvision's ``Conv2dNormActivation``, whose padding
    ``dilation * (kernel_size - 1) // 2`` keeps the size (a dilated k x k kernel spans d (k - 1) + 1 pixels)."""
    return Conv2dNormActivation(c_in, c_out, kernel_size, dilation=dilation)


# ----------------------------------------------------------------------------------------------
# ASPP and the pyramid pooling module


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (DeepLabV3): parallel views of one feature map at several rates.

    Branches: a 1x1 convolution; one 3x3 convolution per atrous rate (dilation ``r``, padding ``r``,
    so each keeps the size); and image pooling (global average, 1x1 convolution, upsampled back).
    Their outputs are concatenated and projected by a 1x1 convolution.

    Parameters
    ----------
    in_channels : int
    out_channels : int
        Channels of every branch and of the output (DeepLabV3: 256).
    atrous_rates : sequence of int
        DeepLabV3 uses (6, 12, 18) at output stride 16 on 513-pixel crops (doubled at stride 8). A rate
        larger than the feature map makes the 3x3 kernel see only padding outside its centre tap:
        it degenerates to a 1x1 convolution, so rates must scale with the feature map.
    image_pooling : bool
        Include the global-average branch (image-level context).
    dropout : float
        Dropout after the projection (DeepLabV3: 0.5 in torchvision, 0.1 in many reimplementations).

    Shape
    -----
    ``(B, in_channels, h, w)`` -> ``(B, out_channels, h, w)``.
    """

    def __init__(self, in_channels: int, out_channels: int = 256, atrous_rates: Sequence[int] = (6, 12, 18),
                 image_pooling: bool = True, dropout: float = 0.1):
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("out_channels", out_channels)
        rates = _check_rates(atrous_rates)
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}")
        self.atrous_rates = rates
        self.branches = nn.ModuleList([_conv_bn_relu(in_channels, out_channels, 1)]
                                      + [_conv_bn_relu(in_channels, out_channels, 3, r) for r in rates])
        self.pool = (nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                   nn.ReLU(inplace=True)) if image_pooling else None)
        n = len(self.branches) + (1 if image_pooling else 0)
        self.project = nn.Sequential(_conv_bn_relu(n * out_channels, out_channels, 1), nn.Dropout(dropout))

    def branch_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each branch's ``(B, out_channels, h, w)`` output, before concatenation (for inspection)."""
        outs = [b(x) for b in self.branches]
        if self.pool is not None:
            outs.append(F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False))
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat(self.branch_outputs(x), dim=1))


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module: context pooled over 1x1, 2x2, 3x3 and 6x6 grids of the map.

    Each bin size ``b`` average-pools the map to ``b x b``, reduces it with a 1x1 convolution to
    ``in_channels // len(bins)`` channels and upsamples it back; the pooled maps are concatenated
    with the input.

    Parameters
    ----------
    in_channels : int
    bins : sequence of int
        Grid sizes (PSPNet: 1, 2, 3, 6).
    reduced_channels : int, optional
        Channels of each pooled branch; default ``in_channels // len(bins)``.

    Shape
    -----
    ``(B, in_channels, h, w)`` -> ``(B, in_channels + len(bins) * reduced_channels, h, w)``
    (PSPNet: twice ``in_channels``).
    """

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6), reduced_channels: int | None = None):
        super().__init__()
        check_int("in_channels", in_channels)
        if isinstance(bins, (int, np.integer)) or not isinstance(bins, Sequence) or not bins:
            raise ValueError(f"`bins` must be a non-empty sequence of positive ints, got {bins!r}")
        self.bins = tuple(check_int("bins[i]", b) for b in bins)
        reduced = in_channels // len(self.bins) if reduced_channels is None else check_int("reduced_channels", reduced_channels)
        if reduced < 1:
            raise ValueError(f"`in_channels` {in_channels} is too small for {len(self.bins)} bins; give `reduced_channels`")
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_channels, reduced, 1, bias=False), nn.ReLU(inplace=True))
            for b in self.bins)
        self.out_channels = in_channels + len(self.bins) * reduced

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False) for stage in self.stages]
        return torch.cat([x, *pooled], dim=1)


class DeepLabHeadLite(nn.Sequential):
    """DeepLabV3's head: :class:`ASPP`, a 3x3 convolution, and a 1x1 classifier (torchvision's
    ``DeepLabHead`` with a choice of width, so it also fits a CPU).

    Shape: ``(B, in_channels, h, w)`` -> ``(B, num_classes, h, w)`` logits.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256,
                 atrous_rates: Sequence[int] = (12, 24, 36), dropout: float = 0.1):
        super().__init__(ASPP(in_channels, channels, atrous_rates, dropout=dropout),
                         _conv_bn_relu(channels, channels, 3),
                         nn.Conv2d(channels, check_int("num_classes", num_classes), 1))


class PSPHead(nn.Sequential):
    """PSPNet's head: :class:`PyramidPooling`, a 3x3 convolution, dropout, and a 1x1 classifier.

    Shape: ``(B, in_channels, h, w)`` -> ``(B, num_classes, h, w)`` logits.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, bins: Sequence[int] = (1, 2, 3, 6),
                 dropout: float = 0.1):
        ppm = PyramidPooling(in_channels, bins)
        super().__init__(ppm, _conv_bn_relu(ppm.out_channels, channels, 3), nn.Dropout(dropout),
                         nn.Conv2d(channels, check_int("num_classes", num_classes), 1))


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+'s decoder: ASPP on the deep features, upsampled and joined with early, sharp features.

    1. :class:`ASPP` on the deep map (output stride 16 or 8);
    2. the result upsampled bilinearly to the low-level map's size (stride 4);
    3. the low-level map reduced to ``low_level_reduced`` channels by a 1x1 convolution (few, so the
       semantic features dominate), concatenated;
    4. two 3x3 convolutions and a 1x1 classifier.

    Shape
    -----
    ``forward(low, deep)``: ``low`` ``(B, low_level_channels, H/4, W/4)``, ``deep``
    ``(B, in_channels, H/s, W/s)`` -> ``(B, num_classes, H/4, W/4)`` logits.
    """

    def __init__(self, in_channels: int, low_level_channels: int, num_classes: int, channels: int = 256,
                 atrous_rates: Sequence[int] = (6, 12, 18), low_level_reduced: int = 48, dropout: float = 0.1):
        super().__init__()
        self.aspp = ASPP(in_channels, channels, atrous_rates, dropout=dropout)
        self.reduce = _conv_bn_relu(check_int("low_level_channels", low_level_channels),
                                    check_int("low_level_reduced", low_level_reduced), 1)
        self.fuse = nn.Sequential(_conv_bn_relu(channels + low_level_reduced, channels, 3),
                                  _conv_bn_relu(channels, channels, 3))
        self.classifier = nn.Conv2d(channels, check_int("num_classes", num_classes), 1)

    def forward(self, low: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        x = self.aspp(deep)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse(torch.cat([x, self.reduce(low)], dim=1))
        return self.classifier(x)


# ----------------------------------------------------------------------------------------------
# Backbones


def dilate_resnet_(resnet: nn.Module, output_stride: int) -> nn.Module:
    """Turn a torchvision ResNet's last strides into dilations, in place (the atrous trick).

    ``output_stride=16`` removes the stride of ``layer4`` and dilates its 3x3 convolutions by 2;
    ``output_stride=8`` does the same to ``layer3`` (rate 2) and ``layer4`` (rate 4). The weights are
    untouched, so a pretrained network keeps its meaning: each kernel still sees the same spacing of
    features as before, on a map that is no longer subsampled. Works for BasicBlock ResNets (18, 34),
    whose torchvision constructor refuses ``replace_stride_with_dilation``, and for Bottleneck ones.

    Returns the same ``resnet``.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"`output_stride` must be 8, 16 or 32, got {output_stride!r}")
    layers = {32: [], 16: ["layer4"], 8: ["layer3", "layer4"]}[output_stride]
    dilation = 1
    for name in layers:
        layer = getattr(resnet, name, None)
        if layer is None:
            raise ValueError(f"`resnet` has no {name}; pass a torchvision ResNet")
        previous, dilation = dilation, dilation * 2
        for i, block in enumerate(layer):
            convs = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
            for j, conv in enumerate(convs):
                conv.stride = (1, 1)
                d = previous if (i == 0 and j == 0) else dilation  # the first conv keeps the old spacing
                conv.dilation, conv.padding = (d, d), (d, d)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)
    return resnet


def resnet_backbone(name: str = "resnet18", output_stride: int = 16, last_layer: str = "layer4",
                    weights=None) -> nn.Module:
    """A torchvision ResNet trunk returning ``{"low": layer1 output, "out": last_layer output}``.

    Parameters
    ----------
    name : {"resnet18", "resnet34", "resnet50", "resnet101"}
    output_stride : {8, 16, 32}
        Stride of ``"out"`` relative to the input (see :func:`dilate_resnet_`).
    last_layer : {"layer2", "layer3", "layer4"}
        Cut the trunk after this stage. ``layer2`` ends at stride 8 with no dilation (so it needs
        ``output_stride=8``): on small images (about 100 pixels) its 12 x 12 map is as deep as the
        scene needs, and it costs a fraction of the dilated later stages. ``layer3`` halves the cost
        of a ResNet-18.
    weights : torchvision weights enum or None
        Passed to the torchvision constructor (``None``: random initialisation).

    Returns
    -------
    torchvision.models._utils.IntermediateLayerGetter
        With attributes ``out_channels`` and ``low_level_channels``. ``"low"`` is ``(B, C_low, H/4, W/4)``.
    """
    import torchvision
    from torchvision.models._utils import IntermediateLayerGetter

    if name not in RESNETS:
        raise ValueError(f"`name` must be one of {RESNETS}, got {name!r}")
    if last_layer not in ("layer2", "layer3", "layer4"):
        raise ValueError(f"`last_layer` must be 'layer2', 'layer3' or 'layer4', got {last_layer!r}")
    if last_layer == "layer3" and output_stride == 32:
        raise ValueError("`output_stride` 32 needs layer4; layer3 ends at stride 16")
    if last_layer == "layer2" and output_stride != 8:
        raise ValueError(f"`last_layer` 'layer2' ends at stride 8, so `output_stride` must be 8, got {output_stride!r}")
    resnet = getattr(torchvision.models, name)(weights=weights)
    if last_layer != "layer2":  # layer2 is already at stride 8: nothing before it is dilated
        dilate_resnet_(resnet, output_stride)
    body = IntermediateLayerGetter(resnet, return_layers={"layer1": "low", last_layer: "out"})
    expansion = 4 if name in ("resnet50", "resnet101") else 1
    body.low_level_channels = 64 * expansion
    body.out_channels = {"layer2": 128, "layer3": 256, "layer4": 512}[last_layer] * expansion
    body.output_stride = output_stride
    return body


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ (Chen et al., 2018): a dilated backbone, ASPP, and a decoder fed by low-level features.

    Parameters
    ----------
    backbone : nn.Module
        Returns ``{"low": (B, C_low, H/4, W/4), "out": (B, C, H/s, W/s)}`` and has attributes
        ``low_level_channels`` and ``out_channels`` (see :func:`resnet_backbone`).
    num_classes : int
    channels, atrous_rates, low_level_reduced, dropout
        As in :class:`DeepLabV3PlusDecoder`.

    Shape
    -----
    ``(B, 3, H, W)`` -> ``{"out": (B, num_classes, H, W)}`` logits (bilinear upsampling from stride 4).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, channels: int = 256,
                 atrous_rates: Sequence[int] = (6, 12, 18), low_level_reduced: int = 48, dropout: float = 0.1):
        super().__init__()
        for attr in ("low_level_channels", "out_channels"):
            if not hasattr(backbone, attr):
                raise ValueError(f"`backbone` needs an attribute {attr!r}; build it with resnet_backbone()")
        self.backbone = backbone
        self.decoder = DeepLabV3PlusDecoder(backbone.out_channels, backbone.low_level_channels, num_classes,
                                            channels, atrous_rates, low_level_reduced, dropout)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        if x.ndim != 4:
            raise ValueError(f"`x` must be a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        features = self.backbone(x)
        logits = self.decoder(features["low"], features["out"])
        return OrderedDict(out=F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False))


class _OutOnly(nn.Module):
    """Wrap a backbone so it returns only ``{"out": ...}`` (what torchvision's ``DeepLabV3`` expects)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body
        self.out_channels = body.out_channels

    def forward(self, x):
        return OrderedDict(out=self.body(x)["out"])


def build_deeplabv3(num_classes: int, backbone: str = "resnet18", output_stride: int = 8, channels: int = 256,
                    atrous_rates: Sequence[int] = (12, 24, 36), last_layer: str = "layer4", dropout: float = 0.1):
    """torchvision's ``DeepLabV3`` with ``num_classes`` outputs, a dilated ResNet trunk and an ASPP head.

    The model is ``torchvision.models.segmentation.DeepLabV3(backbone, classifier)``: the backbone's
    ``"out"`` map goes through :class:`DeepLabHeadLite` and the logits are upsampled bilinearly to the
    input size (by ``output_stride``, with no decoder).

    Parameters
    ----------
    num_classes : int
    backbone : {"resnet18", "resnet34", "resnet50", "resnet101"}
        Randomly initialised (see :func:`deeplabv3_resnet50_voc` for the pretrained model).
    output_stride, last_layer
        As in :func:`resnet_backbone`.
    channels, atrous_rates, dropout
        As in :class:`ASPP`.

    Returns
    -------
    torchvision.models.segmentation.DeepLabV3
        ``model(x)["out"]``: ``(B, num_classes, H, W)`` logits.
    """
    from torchvision.models.segmentation import DeepLabV3

    body = resnet_backbone(backbone, output_stride, last_layer)
    head = DeepLabHeadLite(body.out_channels, num_classes, channels, atrous_rates, dropout)
    return DeepLabV3(_OutOnly(body), head)


def build_pspnet(num_classes: int, backbone: str = "resnet18", output_stride: int = 8, channels: int = 256,
                 bins: Sequence[int] = (1, 2, 3, 6), last_layer: str = "layer4", dropout: float = 0.1):
    """The same torchvision ``DeepLabV3`` container with a :class:`PSPHead` in place of ASPP: a PSPNet.

    Returns a model whose ``model(x)["out"]`` is ``(B, num_classes, H, W)`` logits.
    """
    from torchvision.models.segmentation import DeepLabV3

    body = resnet_backbone(backbone, output_stride, last_layer)
    return DeepLabV3(_OutOnly(body), PSPHead(body.out_channels, num_classes, channels, bins, dropout))


def build_deeplabv3plus(num_classes: int, backbone: str = "resnet18", output_stride: int = 16, channels: int = 256,
                        atrous_rates: Sequence[int] = (6, 12, 18), last_layer: str = "layer4",
                        low_level_reduced: int = 48, dropout: float = 0.1) -> DeepLabV3Plus:
    """:class:`DeepLabV3Plus` on a (randomly initialised) torchvision ResNet trunk; see :func:`resnet_backbone`."""
    body = resnet_backbone(backbone, output_stride, last_layer)
    return DeepLabV3Plus(body, num_classes, channels, atrous_rates, low_level_reduced, dropout)


# ----------------------------------------------------------------------------------------------
# The pretrained model


def deeplabv3_resnet50_voc(weights_path=None):
    """torchvision's DeepLabV3 ResNet-50 with the 21 VOC classes, loaded from a state-dict file.

    Parameters
    ----------
    weights_path : str or Path, optional
        The file ``utils.data.fetch("deeplabv3_resnet50_coco")`` returns (torchvision's
        ``COCO_WITH_VOC_LABELS_V1``: trained on the COCO images that hold VOC's 20 classes). Loaded with
        ``torch.load(..., weights_only=True)``. ``None`` gives the untrained model.

    Returns
    -------
    torchvision.models.segmentation.DeepLabV3
        In eval mode; with the auxiliary FCN head (the checkpoint holds it). Expects ImageNet-normalised
        input (:func:`utils.segmodels.segment_with_voc_model` does it).
    """
    from torchvision.models.segmentation import deeplabv3_resnet50

    model = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=len(VOC_CLASS_NAMES), aux_loss=True)
    if weights_path is not None:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()
