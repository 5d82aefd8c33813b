"""SegFormer written out part by part: a hierarchical transformer encoder and an all-MLP decoder.

E. Xie, W. Wang, Z. Yu, A. Anandkumar, J. M. Alvarez and P. Luo, *SegFormer: Simple and Efficient Design for
Semantic Segmentation with Transformers*, NeurIPS 2021 (arXiv:2105.15203).

The model in one picture, for an ``H x W`` image and the default strides ``(4, 2, 2, 2)``::

    image (B, 3, H, W)
      -> stage 1: OverlapPatchEmbed (7x7 conv, stride 4) -> blocks -> LayerNorm -> (B, C1, H/4,  W/4)
      -> stage 2: OverlapPatchEmbed (3x3 conv, stride 2) -> blocks -> LayerNorm -> (B, C2, H/8,  W/8)
      -> stage 3: ...                                                              -> (B, C3, H/16, W/16)
      -> stage 4: ...                                                              -> (B, C4, H/32, W/32)
    AllMLPDecoder: one linear layer per stage to a common width, upsample all four to H/4 x W/4,
      concatenate, fuse (1x1 conv + BatchNorm + ReLU), classify            -> logits (B, K, H/4, W/4)
    SegFormer.forward: bilinear upsampling of those logits                   -> logits (B, K, H, W)

Each block (:class:`SegFormerBlock`) is a pre-norm transformer block with two changes that make it cheap
and resolution-free:

* :class:`EfficientSelfAttention`: the queries are all ``N = h * w`` tokens, but the keys and values come
  from a copy of the feature map shrunk by ``sr_ratio`` along each side (a convolution with kernel = stride
  = ``sr_ratio``), so the attention matrix is ``N x N / sr_ratio**2`` instead of ``N x N``. The paper's
  reduction ratio ``R`` counts tokens, so ``R = sr_ratio ** 2`` (64, 16, 4, 1 for ``sr_ratios = (8, 4, 2, 1)``).
* :class:`MixFFN`: a 3x3 depthwise convolution between the two linear layers of the feed-forward network.
  Zero padding at the border lets it tell where a token is, so the model needs no positional encoding
  and runs at any image size.

Names follow the paper and the Hugging Face ``transformers`` configuration (``hidden_sizes``, ``depths``,
``num_attention_heads``, ``sr_ratios``, ``patch_sizes``, ``strides``, ``mlp_ratios``, ``decoder_hidden_size``),
so a :class:`SegFormerConfig` turns into a ``transformers.SegformerConfig`` with :func:`hf_config`, and
:func:`load_hf_segformer_weights` copies the weights of a ``SegformerForSemanticSegmentation`` into
:class:`SegFormer` (the course's tests check that both then compute the same, block by block).

This module imports only torch; ``transformers`` is imported inside :func:`hf_config` only
(:func:`load_hf_segformer_weights` reads the ``transformers`` model's ``state_dict()`` and needs no import).

Input sizes. Any ``H, W`` works, as in ``transformers``, provided every stage's feature map is at least
``sr_ratio x sr_ratio`` (otherwise there is nothing to reduce; the error says the smallest size). Sides that
are multiples of 32 keep each stage at exactly 1/4, 1/8, 1/16, 1/32 of the image and let the key/value
reduction cover every token; with other sides the feature maps round up and the reduction drops the last
rows and columns that do not fill a whole ``sr_ratio x sr_ratio`` window (again as in ``transformers``).

Differences from the paper and the official code, all deliberate and small:

* no stochastic depth (drop path) and no dropout inside the encoder: the course's models are small and
  train for few epochs. The decoder keeps the official code's ``Dropout2d`` before the classifier;
* LayerNorm uses PyTorch's default ``eps = 1e-5`` everywhere, as ``transformers`` does (the official
  encoder uses ``1e-6`` in its blocks and stage norms): with ``1e-5`` the outputs match ``transformers``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from numbers import Real

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import check_int

__all__ = [
    "SegFormerConfig", "OverlapPatchEmbed", "EfficientSelfAttention", "MixFFN", "SegFormerBlock", "SegFormerStage",
    "SegFormerEncoder", "AllMLPDecoder", "SegFormer", "segformer_tiny", "segformer_tiny_config",
    "segformer_b0_config", "hf_config", "load_hf_segformer_weights", "hf_key_mapping", "TINY_NUM_PARAMETERS",
]

# Per-stage settings: one entry per encoder stage each.
STAGE_FIELDS = ("hidden_sizes", "depths", "num_attention_heads", "sr_ratios", "patch_sizes", "strides", "mlp_ratios")


# ----------------------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class SegFormerConfig:
    """Sizes of a SegFormer, one entry per encoder stage; the defaults are MiT-b0's (the paper's appendix).

    Attributes
    ----------
    hidden_sizes : tuple of int
        Channels ``C_i`` of each stage's tokens (MiT-b0: 32, 64, 160, 256).
    depths : tuple of int
        Transformer blocks per stage (MiT-b0: 2, 2, 2, 2).
    num_attention_heads : tuple of int
        Heads per stage; each ``hidden_sizes[i]`` must be divisible by ``num_attention_heads[i]``.
    sr_ratios : tuple of int
        Spatial reduction of keys/values per side (8, 4, 2, 1); 1 means plain self-attention.
    patch_sizes, strides : tuple of int
        Kernel and stride of each stage's overlapping patch embedding, (7, 3, 3, 3) and (4, 2, 2, 2): a kernel
        larger than the stride makes neighbouring patches overlap (padding ``patch_size // 2``).
    mlp_ratios : tuple of int
        Hidden width of each Mix-FFN as a multiple of ``hidden_sizes[i]`` (4).
    decoder_hidden_size : int
        Common width ``C`` of the all-MLP decoder (256 for B0, 768 for B1-B5).
    num_channels : int
        Channels of the input images.
    classifier_dropout_prob : float
        Dropout (whole channels) before the decoder's classifier; 0.1 as in the official code.
    """

    hidden_sizes: tuple = (32, 64, 160, 256)
    depths: tuple = (2, 2, 2, 2)
    num_attention_heads: tuple = (1, 2, 5, 8)
    sr_ratios: tuple = (8, 4, 2, 1)
    patch_sizes: tuple = (7, 3, 3, 3)
    strides: tuple = (4, 2, 2, 2)
    mlp_ratios: tuple = (4, 4, 4, 4)
    decoder_hidden_size: int = 256
    num_channels: int = 3
    classifier_dropout_prob: float = 0.1

    def __post_init__(self):
        # Every per-stage field: a list or tuple with one entry per stage (stored as a tuple).
        for name in STAGE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ValueError(f"`{name}` must be a list or tuple with one entry per stage, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        num_stages = len(self.hidden_sizes)
        if num_stages == 0:
            raise ValueError("`hidden_sizes` must give at least one stage, got ()")
        for name in STAGE_FIELDS[1:]:
            if len(getattr(self, name)) != num_stages:
                raise ValueError(f"`{name}` must have one entry per stage: {num_stages} like `hidden_sizes` "
                                 f"{self.hidden_sizes}, got {len(getattr(self, name))}: {getattr(self, name)}")
        for name in STAGE_FIELDS:  # integers >= 1 (mlp_ratios too, as in transformers' configuration)
            values = tuple(check_int(f"{name}[{i}]", v) for i, v in enumerate(getattr(self, name)))
            object.__setattr__(self, name, values)
        for i, (width, heads) in enumerate(zip(self.hidden_sizes, self.num_attention_heads)):
            if width % heads:
                raise ValueError(f"`hidden_sizes[{i}]` = {width} must be divisible by `num_attention_heads[{i}]` "
                                 f"= {heads} (each head gets hidden_size / num_heads channels)")
        object.__setattr__(self, "decoder_hidden_size", check_int("decoder_hidden_size", self.decoder_hidden_size))
        object.__setattr__(self, "num_channels", check_int("num_channels", self.num_channels))
        p = self.classifier_dropout_prob
        if not isinstance(p, Real) or isinstance(p, bool) or not 0 <= p < 1:
            raise ValueError(f"`classifier_dropout_prob` must be a number in [0, 1), got {p!r}")

    @property
    def num_stages(self) -> int:
        """Number of encoder stages (4 in the paper)."""
        return len(self.hidden_sizes)

    def to_dict(self) -> dict:
        """The fields as a plain dict (lists of per-stage values), e.g. to print or save with results."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def segformer_b0_config() -> SegFormerConfig:
    """MiT-b0's published sizes: the paper's smallest SegFormer, B0 (3.8 M parameters on ADE20K's 150 classes)."""
    return SegFormerConfig(hidden_sizes=(32, 64, 160, 256), depths=(2, 2, 2, 2), num_attention_heads=(1, 2, 5, 8),
                           sr_ratios=(8, 4, 2, 1), patch_sizes=(7, 3, 3, 3), strides=(4, 2, 2, 2),
                           mlp_ratios=(4, 4, 4, 4), decoder_hidden_size=256)


def segformer_tiny_config() -> SegFormerConfig:
    """A SegFormer for the course's CPU lesson (96x96 or 128x128 images): half of MiT-b0's widths, one block per
    stage, a 64-wide decoder. The stages, strides, reductions and decoder are the paper's."""
    return SegFormerConfig(hidden_sizes=(16, 32, 64, 128), depths=(1, 1, 1, 1), num_attention_heads=(1, 1, 2, 4),
                           sr_ratios=(8, 4, 2, 1), patch_sizes=(7, 3, 3, 3), strides=(4, 2, 2, 2),
                           mlp_ratios=(4, 4, 4, 4), decoder_hidden_size=64)


# Parameters of ``segformer_tiny(num_classes)``: 455,776 for the encoder and decoder (before the classifier),
# plus 65 per class (a 1x1 convolution from 64 channels, with bias); e.g. 456,036 for 4 classes.
TINY_NUM_PARAMETERS = {"base": 455_776, "per_class": 65}


# ----------------------------------------------------------------------------------------------------------------
# encoder parts


def _tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, h*w, C)`` tokens (row by row) -> ``(B, C, h, w)`` feature map."""
    batch, _, channels = tokens.shape
    return tokens.transpose(1, 2).reshape(batch, channels, height, width)


def _map_to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` feature map -> ``(B, h*w, C)`` tokens, row by row."""
    return feature_map.flatten(2).transpose(1, 2)


class OverlapPatchEmbed(nn.Module):
    """Overlapping patch embedding: ``(B, C_in, H, W)`` -> tokens ``(B, h*w, hidden_size)`` and ``h, w``.

    A convolution with kernel ``patch_size`` larger than its ``stride`` (7/4 in stage 1, 3/2 after), padded by
    ``patch_size // 2``, so neighbouring patches share pixels (ViT's patches do not overlap), then LayerNorm
    over each token's channels. ``h = floor((H + 2 * (patch_size // 2) - patch_size) / stride) + 1``, i.e.
    ``ceil(H / stride)`` for an odd ``patch_size``.
    """

    def __init__(self, in_channels: int, hidden_size: int, patch_size: int = 7, stride: int = 4):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=stride,
                              padding=patch_size // 2)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)                      # (B, hidden, h, w)
        height, width = x.shape[-2:]
        return self.norm(_map_to_tokens(x)), height, width


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a spatially reduced copy of the tokens.

    ``(B, N, C)`` tokens of an ``h x w`` map -> ``(B, N, C)``. The queries are the ``N = h * w`` tokens; for the
    keys and values the map goes through a convolution with kernel = stride = ``sr_ratio`` (each
    ``sr_ratio x sr_ratio`` window becomes one token) and a LayerNorm, leaving ``M = (h // sr) * (w // sr)``
    tokens. The attention matrix is ``N x M``: for stage 1 of a 512x512 image, 16384 x 256 instead of
    16384 x 16384. ``sr_ratio = 1`` is plain multi-head self-attention (no convolution, no extra LayerNorm).

    Attributes: ``query``, ``key``, ``value`` (linear, with bias), ``proj`` (output linear), ``sr`` and ``sr_norm``
    (``None`` when ``sr_ratio = 1``).
    """

    def __init__(self, hidden_size: int, num_heads: int = 1, sr_ratio: int = 1):
        super().__init__()
        hidden_size = check_int("hidden_size", hidden_size)
        self.num_heads = check_int("num_heads", num_heads)
        self.sr_ratio = check_int("sr_ratio", sr_ratio)
        if hidden_size % num_heads:
            raise ValueError(f"`hidden_size` = {hidden_size} must be divisible by `num_heads` = {num_heads}")
        self.head_dim = hidden_size // num_heads
        self.scale = self.head_dim ** -0.5     # softmax(Q K^T / sqrt(d)) V, d = channels per head
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(hidden_size, hidden_size, kernel_size=sr_ratio, stride=sr_ratio)
            self.sr_norm = nn.LayerNorm(hidden_size)
        else:
            self.sr = self.sr_norm = None

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, C)`` -> ``(B, heads, L, C / heads)``."""
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, height: int, width: int, return_attention: bool = False):
        """Attend from every token of ``x`` (``(B, height*width, C)``) to the reduced tokens.

        With ``return_attention=True`` also returns the attention weights, ``(B, heads, N, M)``.
        """
        batch, num_tokens, channels = x.shape
        if num_tokens != height * width:
            raise ValueError(f"`x` has {num_tokens} tokens, but `height` x `width` = {height} x {width}")
        q = self._split_heads(self.query(x))                        # (B, heads, N, d)
        if self.sr is not None:
            if height < self.sr_ratio or width < self.sr_ratio:
                raise ValueError(f"`height` x `width` = {height}x{width} is smaller than `sr_ratio` = "
                                 f"{self.sr_ratio}: there is no window to reduce; use larger images")
            reduced = self.sr(_tokens_to_map(x, height, width))      # (B, C, h / sr, w / sr)
            kv = self.sr_norm(_map_to_tokens(reduced))              # (B, M, C)
        else:
            kv = x                                                  # M = N
        k = self._split_heads(self.key(kv))                         # (B, heads, M, d)
        v = self._split_heads(self.value(kv))                       # (B, heads, M, d)
        attention = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)   # (B, heads, N, M)
        out = (attention @ v).transpose(1, 2).reshape(batch, num_tokens, channels)  # heads side by side again
        out = self.proj(out)
        return (out, attention) if return_attention else out


class MixFFN(nn.Module):
    """Mix-FFN: ``Linear -> 3x3 depthwise conv -> GELU -> Linear`` on ``(B, h*w, C)`` tokens.

    The depthwise convolution mixes each token with its 8 neighbours, channel by channel; its zero padding at
    the border leaks where a token is, which is all the positional information SegFormer uses (the paper's
    Section 3.1: no positional encoding, so no interpolation of one when the test resolution differs).
    """

    def __init__(self, hidden_size: int, mlp_hidden_size: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, mlp_hidden_size)
        self.dwconv = nn.Conv2d(mlp_hidden_size, mlp_hidden_size, kernel_size=3, padding=1, groups=mlp_hidden_size)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.fc1(x)                                              # (B, N, hidden * mlp_ratio)
        x = _map_to_tokens(self.dwconv(_tokens_to_map(x, height, width)))
        return self.fc2(self.act(x))


class SegFormerBlock(nn.Module):
    """One transformer block: ``x + Attention(LN(x))``, then ``x + MixFFN(LN(x))`` (pre-norm, residuals).

    ``(B, h*w, C)`` -> ``(B, h*w, C)``; the official code's stochastic depth is left out (see the module notes).
    """

    def __init__(self, hidden_size: int, num_heads: int, sr_ratio: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.attn = EfficientSelfAttention(hidden_size, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.ffn = MixFFN(hidden_size, hidden_size * mlp_ratio)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), height, width)
        return x + self.ffn(self.norm2(x), height, width)


class SegFormerStage(nn.Module):
    """One encoder stage: ``OverlapPatchEmbed -> depth x SegFormerBlock -> LayerNorm``, back to a feature map.

    ``(B, C_in, H, W)`` -> ``(B, hidden_size, ceil(H / stride), ceil(W / stride))`` (odd ``patch_size``).
    """

    def __init__(self, in_channels: int, hidden_size: int, depth: int, num_heads: int, sr_ratio: int,
                 mlp_ratio: int, patch_size: int, stride: int):
        super().__init__()
        self.patch_embed = OverlapPatchEmbed(in_channels, hidden_size, patch_size, stride)
        self.blocks = nn.ModuleList(SegFormerBlock(hidden_size, num_heads, sr_ratio, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, height, width = self.patch_embed(x)
        for block in self.blocks:
            tokens = block(tokens, height, width)
        return _tokens_to_map(self.norm(tokens), height, width)


class SegFormerEncoder(nn.Module):
    """The hierarchical encoder (the paper's Mix Transformer, "MiT"): one :class:`SegFormerStage` per stage.

    ``(B, num_channels, H, W)`` -> a list of feature maps, ``(B, hidden_sizes[i], H_i, W_i)``, at 1/4, 1/8, 1/16
    and 1/32 of the image with the default strides. Stage ``i`` embeds the output of stage ``i - 1``.
    """

    def __init__(self, config: SegFormerConfig):
        super().__init__()
        if not isinstance(config, SegFormerConfig):
            raise ValueError(f"`config` must be a SegFormerConfig, got {type(config).__name__}")
        self.config = config
        in_channels = (config.num_channels, *config.hidden_sizes[:-1])
        self.stages = nn.ModuleList(
            SegFormerStage(in_channels[i], config.hidden_sizes[i], config.depths[i], config.num_attention_heads[i],
                           config.sr_ratios[i], config.mlp_ratios[i], config.patch_sizes[i], config.strides[i])
            for i in range(config.num_stages))

    def feature_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(h_i, w_i)`` of each stage's feature map for an ``height x width`` image (convolution arithmetic)."""
        sizes = []
        for patch, stride in zip(self.config.patch_sizes, self.config.strides):
            pad = patch // 2
            height, width = ((height + 2 * pad - patch) // stride + 1, (width + 2 * pad - patch) // stride + 1)
            sizes.append((height, width))
        return sizes

    def min_input_size(self) -> int:
        """Smallest square side the encoder accepts: every stage's map at least ``sr_ratio x sr_ratio``."""
        side = 1
        while any(min(size) < sr for size, sr in zip(self.feature_sizes(side, side), self.config.sr_ratios)):
            side += 1
        return side

    def check_images(self, images) -> None:
        """Raise a ``ValueError`` naming ``images`` unless it is a ``(B, num_channels, H, W)`` float tensor whose
        stages are all at least ``sr_ratio x sr_ratio``."""
        channels = self.config.num_channels
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != channels:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"`images` must be a (B, {channels}, H, W) tensor, got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"`images` must be a float tensor, got {images.dtype}")
        height, width = images.shape[-2:]
        for i, (size, sr) in enumerate(zip(self.feature_sizes(height, width), self.config.sr_ratios)):
            if min(size) < sr:
                raise ValueError(f"`images` of {height}x{width} are too small for this SegFormer: stage {i + 1} gives "
                                 f"a {size[0]}x{size[1]} map, smaller than its `sr_ratios[{i}]` = {sr} (the key/value "
                                 f"reduction needs one {sr}x{sr} window); use images of at least "
                                 f"{self.min_input_size()}x{self.min_input_size()}")

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        self.check_images(images)
        features, x = [], images
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


# ----------------------------------------------------------------------------------------------------------------
# decoder and full model


class AllMLPDecoder(nn.Module):
    """The all-MLP decoder: ``features -> logits (B, num_classes, h_1, w_1)`` at the first stage's resolution.

    For each stage, a linear layer maps ``hidden_sizes[i]`` channels to ``decoder_hidden_size`` (per token, so a
    1x1 convolution), the result is upsampled bilinearly to stage 1's size (1/4 of the image); the maps are
    concatenated, deepest first as in the official code, and fused by a 1x1 convolution + BatchNorm + ReLU
    (the paper writes this as a linear layer; the official code uses a ``ConvModule``, which is what is done
    here); after dropout a 1x1 convolution gives the class scores.
    """

    def __init__(self, in_channels: Sequence[int], decoder_hidden_size: int, num_classes: int,
                 dropout: float = 0.1):
        super().__init__()
        num_classes = check_int("num_classes", num_classes)
        self.proj = nn.ModuleList(nn.Linear(c, decoder_hidden_size) for c in in_channels)
        self.fuse = nn.Conv2d(decoder_hidden_size * len(in_channels), decoder_hidden_size, 1, bias=False)
        self.norm = nn.BatchNorm2d(decoder_hidden_size)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(decoder_hidden_size, num_classes, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(features) != len(self.proj):
            raise ValueError(f"`features` must hold {len(self.proj)} feature maps (one per stage), got {len(features)}")
        size = features[0].shape[-2:]
        maps = []
        for feature, proj in zip(features, self.proj):
            height, width = feature.shape[-2:]
            x = _tokens_to_map(proj(_map_to_tokens(feature)), height, width)   # (B, C_dec, h_i, w_i)
            maps.append(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        x = self.act(self.norm(self.fuse(torch.cat(maps[::-1], dim=1))))       # deepest stage first
        return self.classifier(self.dropout(x))


def _init_weights(module: nn.Module) -> None:
    """The official SegFormer initialisation: truncated normal (std 0.02) for linear layers, He-style normal
    (``std = sqrt(2 / fan_out)``) for convolutions, biases zero, norms at weight 1 and bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class SegFormer(nn.Module):
    """SegFormer: :class:`SegFormerEncoder` + :class:`AllMLPDecoder`.

    ``model(images)`` maps ``(B, num_channels, H, W)`` images to ``(B, num_classes, H, W)`` logits: the decoder's
    logits at 1/4 resolution, upsampled bilinearly (``align_corners=False``, as ``transformers`` does before its
    loss) to the image size, which is what the course's training loop (:func:`utils.train.fit`) expects.
    ``model(images, upsample=False)`` returns the decoder's 1/4-resolution logits themselves, the output of
    ``transformers``' ``SegformerForSemanticSegmentation``.

    Parameters
    ----------
    num_classes : int
        Number of classes (background included).
    config : SegFormerConfig, optional
        Sizes; default MiT-b0 (:func:`segformer_b0_config`). :func:`segformer_tiny` builds the course's small one.
    """

    def __init__(self, num_classes: int, config: SegFormerConfig | None = None):
        super().__init__()
        config = segformer_b0_config() if config is None else config
        if not isinstance(config, SegFormerConfig):
            raise ValueError(f"`config` must be a SegFormerConfig, got {type(config).__name__}")
        self.num_classes = check_int("num_classes", num_classes)
        self.config = config
        self.encoder = SegFormerEncoder(config)
        self.decoder = AllMLPDecoder(config.hidden_sizes, config.decoder_hidden_size, num_classes,
                                     config.classifier_dropout_prob)
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        logits = self.decoder(self.encoder(images))             # (B, num_classes, H/4, W/4)
        if not upsample:
            return logits
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def segformer_tiny(num_classes: int) -> SegFormer:
    """The course's small SegFormer (:func:`segformer_tiny_config`) for ``num_classes`` classes.

    About 0.46 M parameters (``TINY_NUM_PARAMETERS``: 455,776 + 65 per class, 456,036 for 4 classes; MiT-b0
    with its decoder has 3.75 M for 150 classes, the paper's 3.8 M), for 96x96 or 128x128 images on a CPU.
    """
    return SegFormer(num_classes, segformer_tiny_config())


# ----------------------------------------------------------------------------------------------------------------
# the Hugging Face transformers model: configuration and weights


def hf_config(config: SegFormerConfig, num_labels: int):
    """The ``transformers.SegformerConfig`` of the same architecture, for ``num_labels`` classes.

    Dropout and drop path are 0 as in :class:`SegFormer`, except ``classifier_dropout_prob``, copied. Build the
    model with ``transformers.SegformerForSemanticSegmentation(hf_config(config, num_labels))`` (random weights).
    """
    if not isinstance(config, SegFormerConfig):
        raise ValueError(f"`config` must be a SegFormerConfig, got {type(config).__name__}")
    num_labels = check_int("num_labels", num_labels)
    from transformers import SegformerConfig

    return SegformerConfig(
        num_channels=config.num_channels, num_encoder_blocks=config.num_stages,
        depths=list(config.depths), sr_ratios=list(config.sr_ratios), hidden_sizes=list(config.hidden_sizes),
        patch_sizes=list(config.patch_sizes), strides=list(config.strides),
        num_attention_heads=list(config.num_attention_heads), mlp_ratios=list(config.mlp_ratios),
        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        classifier_dropout_prob=float(config.classifier_dropout_prob), drop_path_rate=0.0,
        decoder_hidden_size=config.decoder_hidden_size, reshape_last_stage=True, num_labels=num_labels)


# The explicit name mapping, one row per kind of weight: (this module's name, the name in transformers' current
# layout, the name in its earlier layout). ``transformers`` has renamed SegFormer's modules: 4.x had
# ``segformer.encoder.block.0.0.attention.self.query``, 5.24 has ``segformer.stages.0.blocks.0.attention.q_proj``.
# Checkpoints on the Hub, and files written by ``save_pretrained`` (5.24 converts back when saving), keep the
# earlier names, so both are read. {0}, {1}, ... are the indices and the parameter name the pattern captures.
_P = r"(weight|bias)"
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_BLOCK = r"encoder\.stages\.(\d+)\.blocks\.(\d+)\."
_HF_BLOCK = "segformer.stages.{0}.blocks.{1}."
_HF_OLD_BLOCK = "segformer.encoder.block.{0}.{1}."
_HF_KEY_RULES = [
    (r"encoder\.stages\.(\d+)\.patch_embed\.proj\." + _P,
     "segformer.stages.{0}.patch_embeddings.proj.{1}", "segformer.encoder.patch_embeddings.{0}.proj.{1}"),
    (r"encoder\.stages\.(\d+)\.patch_embed\.norm\." + _P,
     "segformer.stages.{0}.patch_embeddings.layer_norm.{1}", "segformer.encoder.patch_embeddings.{0}.layer_norm.{1}"),
    (_BLOCK + r"norm1\." + _P, _HF_BLOCK + "layernorm_before.{2}", _HF_OLD_BLOCK + "layer_norm_1.{2}"),
    (_BLOCK + r"attn\.query\." + _P, _HF_BLOCK + "attention.q_proj.{2}", _HF_OLD_BLOCK + "attention.self.query.{2}"),
    (_BLOCK + r"attn\.key\." + _P, _HF_BLOCK + "attention.k_proj.{2}", _HF_OLD_BLOCK + "attention.self.key.{2}"),
    (_BLOCK + r"attn\.value\." + _P, _HF_BLOCK + "attention.v_proj.{2}", _HF_OLD_BLOCK + "attention.self.value.{2}"),
    (_BLOCK + r"attn\.sr\." + _P, _HF_BLOCK + "attention.sequence_reduction.sequence_reduction.{2}",
     _HF_OLD_BLOCK + "attention.self.sr.{2}"),
    (_BLOCK + r"attn\.sr_norm\." + _P, _HF_BLOCK + "attention.sequence_reduction.layer_norm.{2}",
     _HF_OLD_BLOCK + "attention.self.layer_norm.{2}"),
    (_BLOCK + r"attn\.proj\." + _P, _HF_BLOCK + "attention.o_proj.{2}", _HF_OLD_BLOCK + "attention.output.dense.{2}"),
    (_BLOCK + r"norm2\." + _P, _HF_BLOCK + "layernorm_after.{2}", _HF_OLD_BLOCK + "layer_norm_2.{2}"),
    (_BLOCK + r"ffn\.fc1\." + _P, _HF_BLOCK + "mlp.fc1.{2}", _HF_OLD_BLOCK + "mlp.dense1.{2}"),
    (_BLOCK + r"ffn\.dwconv\." + _P, _HF_BLOCK + "mlp.dwconv.dwconv.{2}", _HF_OLD_BLOCK + "mlp.dwconv.dwconv.{2}"),
    (_BLOCK + r"ffn\.fc2\." + _P, _HF_BLOCK + "mlp.fc2.{2}", _HF_OLD_BLOCK + "mlp.dense2.{2}"),
    (r"encoder\.stages\.(\d+)\.norm\." + _P,
     "segformer.stages.{0}.layer_norm.{1}", "segformer.encoder.layer_norm.{0}.{1}"),
    (r"decoder\.proj\.(\d+)\." + _P,
     "decode_head.linear_projections.{0}.proj.{1}", "decode_head.linear_c.{0}.proj.{1}"),
    (r"decoder\.fuse\.(weight)", "decode_head.linear_fuse.{0}", "decode_head.linear_fuse.{0}"),
    (r"decoder\.norm\." + _BN, "decode_head.batch_norm.{0}", "decode_head.batch_norm.{0}"),
    (r"decoder\.classifier\." + _P, "decode_head.classifier.{0}", "decode_head.classifier.{0}"),
]


def hf_key_mapping(model: SegFormer, legacy: bool = False) -> dict[str, str]:
    """``{name in model.state_dict(): name in transformers' SegformerForSemanticSegmentation}``.

    ``legacy=True`` gives the earlier ``transformers`` names (``segformer.encoder.block...``), which Hub
    checkpoints and ``save_pretrained`` files use.
    """
    mapping = {}
    for key in model.state_dict():
        for pattern, current, earlier in _HF_KEY_RULES:
            match = re.fullmatch(pattern, key)
            if match:
                mapping[key] = (earlier if legacy else current).format(*match.groups())
                break
        else:  # every weight of SegFormer has a rule: a new submodule needs one too
            raise ValueError(f"no transformers name for the weight {key!r} of `model`")
    return mapping


def _key_list(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")


def load_hf_segformer_weights(model: SegFormer, hf_model) -> SegFormer:
    """Copy the weights of a ``transformers`` ``SegformerForSemanticSegmentation`` into ``model``, in place.

    Every weight is matched by name (:func:`hf_key_mapping`), never by position; both ``transformers``' current
    module names and the earlier ones (Hub checkpoints) are recognised. ``hf_model`` may also be a state dict:
    its ``state_dict()``, or a checkpoint file's (``safetensors.torch.load_file("model.safetensors")``).
    Nothing is copied unless every weight maps: a ``ValueError`` names the weights that
    ``hf_model`` lacks, those it has in excess, or those whose shapes differ (e.g. another ``num_labels``).
    Returns ``model``.
    """
    if not isinstance(model, SegFormer):
        raise ValueError(f"`model` must be a SegFormer, got {type(model).__name__}")
    if isinstance(hf_model, Mapping):
        state = dict(hf_model)
    elif hasattr(hf_model, "state_dict"):
        state = hf_model.state_dict()
    else:
        raise ValueError(f"`hf_model` must be a transformers SegformerForSemanticSegmentation or its state_dict(), "
                         f"got {type(hf_model).__name__}")
    legacy = any(key.startswith("segformer.encoder.") for key in state)
    mapping = hf_key_mapping(model, legacy=legacy)
    missing = [hf_key for hf_key in mapping.values() if hf_key not in state]
    unexpected = set(state) - set(mapping.values())
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing in `hf_model`: {_key_list(missing)}")
        if unexpected:
            problems.append(f"unexpected in `hf_model` (nothing in `model` maps to them): {_key_list(unexpected)}")
        raise ValueError("the weights of `hf_model` do not map onto `model` (is it a SegformerForSemanticSegmentation "
                         "of the same configuration, e.g. from hf_config(model.config, model.num_classes)?): "
                         + "; ".join(problems))
    ours = model.state_dict()
    wrong = [f"{hf_key} {tuple(state[hf_key].shape)} -> {key} {tuple(ours[key].shape)}"
             for key, hf_key in mapping.items() if state[hf_key].shape != ours[key].shape]
    if wrong:
        raise ValueError(f"shapes differ between `hf_model` and `model` (another configuration or num_labels?): "
                         f"{_key_list(wrong)}")
    model.load_state_dict({key: state[hf_key] for key, hf_key in mapping.items()}, strict=True)
    return model
