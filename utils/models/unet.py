"""Reference segmentation models written from scratch: a configurable U-Net, a small FCN baseline, and the
FCN-32s / FCN-16s / FCN-8s of Long, Shelhamer and Darrell (``FCNVGG``) sized for small images; and
``count_parameters``, which the lessons use on every model.

The models map an image batch to per-pixel class scores of the same height and width:

* input ``x``: ``(B, in_channels, H, W)`` float32 (images in [0, 1], or normalised);
* output: ``(B, num_classes, H, W)`` float32 logits (unnormalised scores; ``argmax(1)`` gives labels).

Any ``H, W`` works for ``UNet`` and ``FCN``: the U-Net pads the input up to a multiple of ``2 ** depth``
and crops the output back, so the skip connections always line up. ``FCNVGG`` needs ``H, W`` divisible by 32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_int

__all__ = ["FCN", "FCNVGG", "UNet", "ConvBlock", "bilinear_kernel", "count_parameters", "unet_original"]

NORMS = ("batch", "group", "instance", "none")
UPSAMPLES = ("transpose", "bilinear")
FCN_VARIANTS = ("32s", "16s", "8s")


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


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad a ``(B, C, H, W)`` batch at the bottom and right so that H and W are multiples of ``multiple`` (an
    encoder that halves the size ``depth`` times needs ``2 ** depth``): reflected where the image is large enough,
    replicated otherwise. The caller crops the output back to ``(H, W)``."""
    if x.ndim != 4:
        raise ValueError(f"`x` must be a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > max(pad_h, pad_w) else "replicate")
    return x


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
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, 2 ** self.depth)
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
    it is the baseline that shows why U-Net's decoder helps on fine detail. ``FCNVGG`` is the paper's
    architecture (five pooling stages, learned upsampling, the 16s and 8s skips).

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


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """Weight of a ``nn.ConvTranspose2d`` that upsamples each channel bilinearly (``upsample_filt`` of the FCN code).

    The 2-D filter is the outer product of the 1-D tent ``1 - |i - center| / factor`` with
    ``factor = (kernel_size + 1) // 2`` and ``center = factor - 1`` (odd size) or ``factor - 0.5`` (even
    size). Channel ``c`` is upsampled from channel ``c`` alone: the weight is zero between different
    channels. With ``kernel_size = 2 * f``, ``stride = f`` and ``padding = f // 2`` (``f`` even), the
    transposed convolution reproduces ``F.interpolate(x, scale_factor=f, mode="bilinear",
    align_corners=False)`` except within ``f // 2`` pixels of the border, where it sees zeros instead of
    repeating the edge.

    Parameters
    ----------
    in_channels : int
        Input channels of the transposed convolution.
    out_channels : int
        Output channels; must equal ``in_channels`` (each channel is upsampled on its own).
    kernel_size : int
        Side of the square kernel (``2 * factor`` for an upsampling by ``factor``).

    Shape
    -----
    Returns a float32 tensor ``(in_channels, out_channels, kernel_size, kernel_size)``, the layout of
    ``nn.ConvTranspose2d.weight``.
    """
    check_int("in_channels", in_channels, 1)
    check_int("out_channels", out_channels, 1)
    check_int("kernel_size", kernel_size, 1)
    if in_channels != out_channels:
        raise ValueError(f"`in_channels` and `out_channels` must be equal (bilinear upsampling maps each channel "
                         f"to itself), got {in_channels} and {out_channels}")
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    tent = 1 - (og - center).abs() / factor
    filt = (tent[:, None] * tent[None, :]).to(torch.float32)
    weight = torch.zeros(in_channels, out_channels, kernel_size, kernel_size)
    weight[range(in_channels), range(out_channels)] = filt
    return weight


def _bilinear_up(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable ``factor``x upsampling (kernel ``2 * factor``, stride ``factor``, padding ``factor // 2``),
    initialised to bilinear interpolation; ``(B, C, h, w) -> (B, C, factor * h, factor * w)``."""
    up = nn.ConvTranspose2d(channels, channels, kernel_size=2 * factor, stride=factor, padding=factor // 2,
                            bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, channels, 2 * factor))
    return up


def _zero_score(in_channels: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 score convolution with zero weight and bias: it outputs zeros until training changes it."""
    score = nn.Conv2d(in_channels, num_classes, kernel_size=1)
    nn.init.zeros_(score.weight)
    nn.init.zeros_(score.bias)
    return score


class FCNVGG(nn.Module):
    """Fully convolutional network of Long, Shelhamer and Darrell (2015): FCN-32s, FCN-16s or FCN-8s.

    A VGG-like encoder of five stages, each a ``ConvBlock`` (two 3x3 convolutions with normalisation and
    ReLU) followed by a 2x2 max-pool, with widths ``base_width * (1, 2, 4, 8, 8)``: ``pool3``, ``pool4``
    and ``pool5`` have strides 8, 16 and 32. The classifier's fully connected layers become convolutions
    ("fc6": 3x3, "fc7": 1x1, both ``8 * base_width`` wide, with normalisation and ReLU), and a 1x1
    ``score_fr`` gives class scores on the stride-32 grid. VGG16's fc6 is a 7x7 convolution with 4096
    channels; on 64-pixel inputs ``pool5`` is only 2x2, so a 7x7 kernel would see mostly padding and hold
    most of the parameters. The 3x3 kernel still covers the whole 2x2 map from any position; there is no
    dropout (the paper had 0.5 after fc6 and fc7) since the network is small.

    * ``"32s"``: ``score_fr`` is upsampled 32x by one transposed convolution (``upscore``).
    * ``"16s"``: ``score_fr`` is upsampled 2x (``upscore2``) and added to ``score_pool4`` (a 1x1
      convolution on ``pool4``); the sum is upsampled 16x (``upscore16``).
    * ``"8s"``: as ``"16s"``, then the fused map is upsampled 2x again (``upscore_pool4``) and added to
      ``score_pool3`` (a 1x1 convolution on ``pool3``); the sum is upsampled 8x (``upscore8``).

    Every transposed convolution (kernel ``2f``, stride ``f``, padding ``f / 2``, no bias) is initialised
    to bilinear interpolation with ``bilinear_kernel`` and is learnable; the paper kept the final
    upsampling fixed (freeze it with ``model.upscore.weight.requires_grad_(False)``, or ``upscore16``,
    ``upscore8``). The paddings make the output exactly ``H x W`` for ``H, W`` divisible by 32, so the
    paper's input padding of 100 pixels and its crops are not needed. ``score_pool4`` and ``score_pool3``
    start at zero, weight and bias, as in the paper's staged training: at initialisation FCN-16s and FCN-8s
    compute ``score_fr`` upsampled by bilinear steps, the coarse prediction, and the skips are learned on
    top of it.

    Parameters
    ----------
    in_channels : int
        Channels of the input image (3 for RGB).
    num_classes : int
        Number of output classes ``C``.
    variant : {"32s", "16s", "8s"}
        The output stride of the finest scores that reach the output (32: no skip; 16: ``pool4``;
        8: ``pool4`` and ``pool3``).
    base_width : int
        Channels of the first stage (VGG16: 64, with 512 in stages 4 and 5 and 4096 in fc6/fc7).
    norm : {"batch", "group", "instance", "none"}
        Normalisation after each convolution of the encoder and of fc6/fc7 (VGG16 had none).

    Shape
    -----
    ``(B, in_channels, H, W)`` float32 -> ``(B, num_classes, H, W)`` float32 logits; ``H`` and ``W``
    must be multiples of 32.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, variant: str = "8s", base_width: int = 16,
                 norm: str = "batch"):
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("base_width", base_width, 1)
        norm = _check_norm(norm)
        if variant not in FCN_VARIANTS:
            raise ValueError(f"`variant` must be one of {FCN_VARIANTS}, got {variant!r}")
        self.variant = variant
        self.config = dict(in_channels=in_channels, num_classes=num_classes, variant=variant, base_width=base_width,
                           norm=norm)
        widths = [base_width * m for m in (1, 2, 4, 8, 8)]
        chans = [in_channels] + widths
        self.stages = nn.ModuleList(nn.Sequential(ConvBlock(chans[i], chans[i + 1], norm), nn.MaxPool2d(2))
                                    for i in range(5))
        bias = norm == "none"
        fc = 8 * base_width
        self.fc = nn.Sequential(  # fc6 (3x3) and fc7 (1x1) as convolutions
            nn.Conv2d(widths[4], fc, 3, padding=1, bias=bias), _norm_layer(norm, fc), nn.ReLU(inplace=True),
            nn.Conv2d(fc, fc, 1, bias=bias), _norm_layer(norm, fc), nn.ReLU(inplace=True),
        )
        self.score_fr = nn.Conv2d(fc, num_classes, kernel_size=1)
        if variant == "32s":
            self.upscore = _bilinear_up(num_classes, 32)
        else:
            self.upscore2 = _bilinear_up(num_classes, 2)
            self.score_pool4 = _zero_score(widths[3], num_classes)
            if variant == "16s":
                self.upscore16 = _bilinear_up(num_classes, 16)
            else:
                self.upscore_pool4 = _bilinear_up(num_classes, 2)
                self.score_pool3 = _zero_score(widths[2], num_classes)
                self.upscore8 = _bilinear_up(num_classes, 8)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4:
            raise ValueError(f"`x` must be a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"`x` must have a height and width divisible by 32 (the output stride of pool5), "
                             f"got {h}x{w}; pad or resize the images")

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder's outputs ``"pool1"`` ... ``"pool5"`` (strides 2 ... 32), ``"fc7"`` and the coarse
        class scores ``"score_fr"`` ``(B, num_classes, H / 32, W / 32)``."""
        self._check_input(x)
        out = {}
        for i, stage in enumerate(self.stages, start=1):
            x = stage(x)
            out[f"pool{i}"] = x
        out["fc7"] = self.fc(x)
        out["score_fr"] = self.score_fr(out["fc7"])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if self.variant == "32s":
            return self.upscore(f["score_fr"])
        fused = self.upscore2(f["score_fr"]) + self.score_pool4(f["pool4"])  # stride 16
        if self.variant == "16s":
            return self.upscore16(fused)
        fused = self.upscore_pool4(fused) + self.score_pool3(f["pool3"])  # stride 8
        return self.upscore8(fused)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
