"""The course's segmentation models, one module per family:

* :mod:`utils.models.unet`: U-Net (configurable, the paper's configuration by name), a small FCN, FCN-32s/16s/8s
  (``FCNVGG``), the bilinear kernel of their upsampling, and ``count_parameters``;
* :mod:`utils.models.deeplab`: ASPP, pyramid pooling, a DeepLabV3+ decoder, dilated ResNet trunks, DeepLabV3/V3+
  and PSPNet builders, the pretrained DeepLabV3 ResNet-50 with Pascal VOC's classes;
* :mod:`utils.models.maskrcnn`: torchvision's Mask R-CNN, small enough to learn on a CPU or the paper's
  ResNet-50-FPN.

Their public names are importable from here: ``from utils.models import UNet, DeepLabV3Plus``. Three more
modules are imported on their own (``from utils.models.segformer import ...``) because they need
``transformers`` or ``segment-anything``, which ``import utils.models`` never loads:
:mod:`utils.models.promptable` (segment-anything), :mod:`utils.models.segformer` and
:mod:`utils.models.mask2former` (transformers).

Training and evaluation live beside the package: :mod:`utils.train`, :mod:`utils.segmodels` (receptive fields,
scoring on VOC) and :mod:`utils.instance` (detection training, COCO evaluation).
"""
from .deeplab import (
    ASPP,
    VOC_CLASS_NAMES,
    DeepLabHeadLite,
    DeepLabV3Plus,
    DeepLabV3PlusDecoder,
    PSPHead,
    PyramidPooling,
    build_deeplabv3,
    build_deeplabv3plus,
    build_pspnet,
    deeplabv3_resnet50_voc,
    dilate_resnet_,
    resnet_backbone,
)
from .maskrcnn import CPU_CONFIG, TinyFPNBackbone, build_maskrcnn_cpu, build_maskrcnn_full, coco_category_names
from .unet import FCN, FCNVGG, ConvBlock, UNet, bilinear_kernel, count_parameters, unet_original

__all__ = [
    # unet
    "FCN", "FCNVGG", "ConvBlock", "UNet", "bilinear_kernel", "count_parameters", "unet_original",
    # deeplab
    "ASPP", "PyramidPooling", "DeepLabHeadLite", "PSPHead", "DeepLabV3PlusDecoder", "DeepLabV3Plus", "dilate_resnet_",
    "resnet_backbone", "build_deeplabv3", "build_deeplabv3plus", "build_pspnet", "deeplabv3_resnet50_voc",
    "VOC_CLASS_NAMES",
    # maskrcnn
    "CPU_CONFIG", "TinyFPNBackbone", "build_maskrcnn_cpu", "build_maskrcnn_full", "coco_category_names",
]
