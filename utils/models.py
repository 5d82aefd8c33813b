"""Reference segmentation models written from scratch: a configurable U-Net and a small FCN baseline.

Both map an image batch to per-pixel class scores of the same height and width:

* input ``x``: ``(B, in_channels, H, W)`` float32 (images in [0, 1], or normalised);
* output: ``(B, num_classes, H, W)`` float32 logits (unnormalised scores; ``argmax(1)`` gives labels).

Any ``H, W`` works: the U-Net pads the input up to a multiple of ``2 ** depth`` and crops the output
back, so the skip connections always line up.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .validation import check_int

__all__ = ["FCN", "UNet", "ConvBlock", "count_parameters", "unet_original"]

NORMS = ("batch", "group", "instance", "none")
UPSAMPLES = ("transpose", "bilinear")


def _norm_layer(norm: str | None, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def _check_norm(norm) -> str:
    norm = "none" if norm is None else norm
    if norm not in NORMS:
        raise ValueError(f"`norm` must be one of {NORMS} (or None), got {norm!r}")
    return norm


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by normalisation and ReLU: ``(B, c_in, H, W) -> (B, c_out, H, W)``.

    Padding 1 keeps the size (the paper used unpadded convolutions and cropped the skips instead).
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch"):
        norm = _check_norm(norm)
        bias = norm == "none"  # a bias right before a normalisation is redundant
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias), _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias), _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class _Up(nn.Module):
    """Decoder step: upsample x2 and halve the channels, concatenate the skip (if any), then a ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, upsample: str, skip: bool):
        super().__init__()
        if upsample == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(in_channels, out_channels, kernel_size=1))
        self.skip = skip
        self.conv = ConvBlock(out_channels * (2 if skip else 1), out_channels, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = self.up(x)
        if self.skip:
            x = torch.cat([skip, x], dim=1)
        return self.conv(x)


class UNet(nn.Module):
    """U-Net (Ronneberger et al., 2015): a contracting encoder, an expanding decoder, skips between them.

    Parameters
    ----------
    in_channels : int
        Channels of the input image (3 for RGB).
    num_classes : int
        Number of output classes ``C`` (>= 1; use 1 with a sigmoid for binary tasks, or 2 with softmax).
    base_width : int
        Channels of the first level; level ``i`` has ``base_width * 2**i`` (the paper: 64).
    depth : int
        Number of 2x downsamplings (the paper: 4, so the bottleneck has ``16 * base_width`` channels).
    norm : {"batch", "group", "instance", "none"}
        Normalisation after each convolution (the paper had none; batch norm trains much faster).
    upsample : {"transpose", "bilinear"}
        Decoder upsampling: a learned 2x2 transposed convolution with stride 2 (the paper's
        "up-convolution"), or bilinear interpolation followed by a 1x1 convolution.
    skip : bool
        Concatenate the encoder features of each level into the decoder (``False`` gives a plain
        encoder-decoder of the same widths, for the ablation).

    Shape
    -----
    ``(B, in_channels, H, W)`` float32 -> ``(B, num_classes, H, W)`` float32 logits, for any ``H, W``.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_width: int = 64, depth: int = 4,
                 norm: str = "batch", upsample: str = "transpose", skip: bool = True):
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("base_width", base_width, 1)
        check_int("depth", depth, 1)
        norm = _check_norm(norm)
        if upsample not in UPSAMPLES:
            raise ValueError(f"`upsample` must be one of {UPSAMPLES}, got {upsample!r}")
        if not isinstance(skip, bool):
            raise ValueError(f"`skip` must be True or False, got {skip!r}")
        self.depth, self.skip = depth, skip
        self.config = dict(in_channels=in_channels, num_classes=num_classes, base_width=base_width, depth=depth,
                           norm=norm, upsample=upsample, skip=skip)
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.stem = ConvBlock(in_channels, widths[0], norm)
        self.down = nn.ModuleList(ConvBlock(widths[i], widths[i + 1], norm) for i in range(depth))
        self.up = nn.ModuleList(_Up(widths[i + 1], widths[i], norm, upsample, skip) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"`x` must be a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        multiple = 2 ** self.depth
        pad_h, pad_w = (-h) % multiple, (-w) % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > max(pad_h, pad_w) else "replicate")
        features = [self.stem(x)]
        for block in self.down:
            features.append(block(F.max_pool2d(features[-1], 2)))
        x = features.pop()
        for block in self.up:
            x = block(x, features.pop())
        return self.head(x)[..., :h, :w]


def unet_original(num_classes: int, in_channels: int = 3, norm: str = "none",
                  upsample: str = "transpose") -> UNet:
    """The configuration of the U-Net paper: base width 64, depth 4 (64-128-256-512-1024 channels).

    The paper had no normalisation and used 2x2 up-convolutions; padded convolutions keep the output
    the size of the input. With ``in_channels=1, num_classes=2`` (the paper's cell images and two
    classes) this has 31,030,658 parameters.
    """
    return UNet(in_channels, num_classes, base_width=64, depth=4, norm=norm, upsample=upsample, skip=True)


class FCN(nn.Module):
    """A small fully convolutional network (FCN-32s style): an encoder, a 1x1 classifier, one upsampling.

    The encoder is ``depth`` ConvBlocks each followed by a 2x2 max-pool, so the class scores are
    computed on a grid ``2 ** depth`` times coarser than the input; a 1x1 convolution turns features
    into class scores, and bilinear interpolation brings them back to the input size. Without skips,
    it is the baseline that shows why U-Net's decoder helps on fine detail.

    Parameters
    ----------
    in_channels : int
        Channels of the input image.
    num_classes : int
        Number of output classes.
    base_width : int
        Channels of the first block, doubled at each level.
    depth : int
        Number of 2x downsamplings (output stride ``2 ** depth``).
    norm : {"batch", "group", "instance", "none"}
        Normalisation after each convolution.

    Shape
    -----
    ``(B, in_channels, H, W)`` float32 -> ``(B, num_classes, H, W)`` float32 logits.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_width: int = 32, depth: int = 3,
                 norm: str = "batch"):
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("base_width", base_width, 1)
        check_int("depth", depth, 1)
        norm = _check_norm(norm)
        self.config = dict(in_channels=in_channels, num_classes=num_classes, base_width=base_width, depth=depth,
                           norm=norm)
        layers, c = [], in_channels
        for i in range(depth):
            layers += [ConvBlock(c, base_width * 2 ** i, norm), nn.MaxPool2d(2)]
            c = base_width * 2 ** i
        self.encoder = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(c, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"`x` must be a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        scores = self.classifier(self.encoder(x))
        return F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
