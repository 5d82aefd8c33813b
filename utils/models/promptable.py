"""Promptable segmentation: Segment Anything's parts, and a small SAM-style model the course trains on a CPU.

Segment Anything (A. Kirillov et al., ICCV 2023, arXiv:2304.02643) splits the work in three:

* an **image encoder** (a ViT-B/L/H at 1024x1024 in the paper) that runs once per image and gives an
  embedding of shape ``(256, 64, 64)``;
* a **prompt encoder** that turns points, boxes and a previous mask into tokens (points and boxes) and a
  dense embedding (the mask);
* a **mask decoder**, a two-way transformer between the prompt tokens and the image embedding, that
  outputs three candidate masks and a predicted IoU for each; it costs milliseconds, so a user can click
  again and again on one embedded image.

:func:`build_promptable_sam` builds the same three parts at a small size, with the ``segment-anything``
package's own :class:`~segment_anything.modeling.PromptEncoder`, :class:`~segment_anything.modeling.MaskDecoder`
and :class:`~segment_anything.modeling.TwoWayTransformer`, and a small convolutional image encoder
(:class:`ConvImageEncoder`: a ViT learns too slowly from scratch on a few hundred images). The result is a
``segment_anything.modeling.Sam``, so the package's ``SamPredictor`` and ``SamAutomaticMaskGenerator`` work
with it unchanged. Two options, off by default and used by lesson 09, help a model trained for minutes:
a high-resolution **detail path** after HQ-SAM (``detail_chans``) and a **mask-aware IoU head** after Mask
Scoring R-CNN (``mask_scoring``); see :class:`BatchedMaskDecoder`. Training code lives in :mod:`utils.prompting`.

This module imports ``segment_anything``; ``import utils.models`` does not import it.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import Conv2dNormActivation

from ..validation import check_int, check_positive

try:
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
except ImportError as error:  # pragma: no cover - the course's requirements install it
    raise ImportError("utils.models.promptable needs the `segment-anything` package: "
                      "pip install segment-anything (it is in the course's requirements.txt)") from error

__all__ = ["ConvImageEncoder", "ClickMapPromptEncoder", "BatchedMaskDecoder", "build_promptable_sam", "build_sam_vit_b",
           "sam_parts_summary"]

# SAM's pixel normalisation (ImageNet mean and std on 0-255 values), kept for the small model too.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class ConvImageEncoder(nn.Module):
    """A small convolutional image encoder with SAM's interface: ``(B, 3, S, S)`` -> ``(B, C, S/stride, S/stride)``.

    Four stages go down to 1/16 of the input, so that a position "sees" a whole object; a small
    feature pyramid brings the coarse stages back to 1/``stride`` (8 by default), the grid on which the
    mask decoder's transformer works (SAM: 1/16 of 1024 pixels). ``img_size`` is the square side the
    model takes, the attribute ``SamPredictor`` reads.

    ``detail_chans > 0`` adds a **detail map** for :class:`BatchedMaskDecoder`'s high-resolution path:
    ``detail_chans`` channels at 1/4 of the input (twice the token grid), from the second stage (3x3) plus
    the third (1x1, upsampled). ``SamPredictor`` stores whatever the encoder returns and hands it to the
    decoder, so the map travels inside the embedding: folded by ``F.pixel_unshuffle`` into
    ``4 * detail_chans`` extra channels on the token grid, after the ``out_chans`` of the embedding proper.
    Only with ``stride=8``.
    """

    def __init__(self, img_size: int = 128, out_chans: int = 64, widths=(32, 48, 96, 128), stride: int = 8,
                 detail_chans: int = 0):
        super().__init__()
        self.img_size = check_int("img_size", img_size, 32)
        if self.img_size % 16:
            raise ValueError(f"`img_size` must be a multiple of 16 (four stride-2 stages), got {img_size}")
        self.out_chans = check_int("out_chans", out_chans, 8)
        if stride not in (4, 8):
            raise ValueError(f"`stride` must be 4 or 8, got {stride!r}")
        self.stride = stride
        if len(widths) != 4:
            raise ValueError(f"`widths` must give 4 stage widths, got {widths!r}")
        w1, w2, w3, w4 = (check_int("widths", w, 1) for w in widths)
        conv = Conv2dNormActivation                          # 3x3 convolution, batch norm, ReLU
        self.stage1 = nn.Sequential(conv(3, w1, stride=2), conv(w1, w1))           # 1/2
        self.stage2 = nn.Sequential(conv(w1, w2, stride=2), conv(w2, w2))          # 1/4
        self.stage3 = nn.Sequential(conv(w2, w3, stride=2), conv(w3, w3))          # 1/8
        self.stage4 = nn.Sequential(conv(w3, w4, stride=2), conv(w4, w4),
                                    nn.Conv2d(w4, w4, 3, padding=2, dilation=2), nn.ReLU(inplace=True))  # 1/16
        self.lateral = nn.ModuleList(nn.Conv2d(w, out_chans, 1) for w in (w2, w3, w4))
        self.fuse = nn.Sequential(nn.Conv2d(out_chans, out_chans, 3, padding=1), nn.GroupNorm(8, out_chans),
                                  nn.GELU(), nn.Conv2d(out_chans, out_chans, 1))
        self.detail_chans = check_int("detail_chans", detail_chans, 0)
        if self.detail_chans:
            if stride != 8:
                raise ValueError(f"`detail_chans` needs `stride` 8 (the detail map is at 1/4, twice the token grid), "
                                 f"got stride {stride}")
            self.detail_fine = nn.Conv2d(w2, self.detail_chans, 3, padding=1)       # from 1/4
            self.detail_coarse = nn.Conv2d(w3, self.detail_chans, 1)                # from 1/8, upsampled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c2 = self.stage2(self.stage1(x))
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        p = self.lateral[2](c4)
        p = self.lateral[1](c3) + F.interpolate(p, size=c3.shape[-2:], mode="nearest")
        if self.stride == 4:
            p = self.lateral[0](c2) + F.interpolate(p, size=c2.shape[-2:], mode="nearest")
        embedding = self.fuse(p)
        if not self.detail_chans:
            return embedding
        detail = self.detail_fine(c2) + F.interpolate(self.detail_coarse(c3), size=c2.shape[-2:], mode="nearest")
        return torch.cat([embedding, F.pixel_unshuffle(detail, 2)], dim=1)


def _max_filter5(x: torch.Tensor) -> torch.Tensor:
    """5 x 5 maximum filter over the last two dimensions (the border padded with -inf), as two 1-D passes of
    elementwise maxima of shifted views: the same result as ``F.max_pool2d(x, 5, 1, 2)``, which on a CPU
    also computes the argmax indices its backward pass would need and costs twenty times as much here."""
    out = x
    for dim, pad in ((-1, (2, 2, 0, 0)), (-2, (0, 0, 2, 2))):
        padded = F.pad(out, pad, value=float("-inf"))
        n = x.shape[dim]
        out = padded.narrow(dim, 0, n).clone()
        for shift in range(1, 5):
            torch.maximum(out, padded.narrow(dim, shift, n), out=out)
    return out


class BatchedMaskDecoder(MaskDecoder):
    """SAM's mask decoder, also accepting one image embedding per prompt; optionally with a high-resolution
    detail path and a mask-aware IoU head.

    The package's decoder takes the embedding of *one* image and repeats it for every prompt (the
    interactive case: many clicks on one image). Training wants prompts from many images in one batch,
    so here ``image_embeddings`` may also have one row per prompt. With one row and neither option the
    package's own code runs, so ``SamPredictor`` works unchanged; otherwise the same computation without
    the repeat, plus the options:

    * ``detail_chans > 0``, after HQ-SAM (L. Ke et al., "Segment Anything in High Quality", NeurIPS 2023),
      which fuses the encoder's early, high-resolution features into the decoder's mask features: SAM
      draws its masks from features upscaled from the token grid by transposed convolutions, so an edge
      can fall only where the tokens put it. Here the embedding carries :class:`ConvImageEncoder`'s detail
      map (1/4 of the image); after the first upscaling step (twice the token grid) the upscaled features
      and the detail map are mixed by two 3x3 convolutions, added back, then upscaled again as in SAM.
    * ``mask_scoring``: the IoU head sees the candidate masks, as Mask Scoring R-CNN's does (Z. Huang et
      al., CVPR 2019): per candidate, the IoU token plus the mask features averaged inside the candidate
      and in a 2-pixel ring just outside it, and its area. SAM's head reads the IoU token alone; with
      sharper candidates that differ in their edges, a head that cannot see them ranks them poorly.
    """

    def __init__(self, *args, detail_chans: int = 0, mask_scoring: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.transformer_dim
        self.detail_chans = check_int("detail_chans", detail_chans, 0)
        if self.detail_chans:
            self.detail_in = nn.Conv2d(c // 4, self.detail_chans, 3, padding=1)
            self.detail_out = nn.Conv2d(self.detail_chans, c // 4, 3, padding=1)
        self.mask_scoring = bool(mask_scoring)
        if self.mask_scoring:
            from segment_anything.modeling.mask_decoder import MLP

            pooled = 2 * (c // 8) + (2 * (c // 4) if self.detail_chans else 0)    # inside and ring, per level
            self.mask_scorer = MLP(c + pooled + 1, c, 1, 3)
            del self.iou_prediction_head                      # replaced by `mask_scorer`

    def predict_masks(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings):
        n_prompts, n_images = sparse_prompt_embeddings.size(0), image_embeddings.size(0)
        if n_images == 1 and not self.detail_chans and not self.mask_scoring:
            return super().predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings)
        if n_images not in (1, n_prompts):
            raise ValueError(f"`image_embeddings` must have 1 row or one per prompt ({n_prompts}), got {n_images}")
        c = self.transformer_dim
        if image_embeddings.size(1) != c + 4 * self.detail_chans:
            raise ValueError(f"`image_embeddings` must have {c} + 4 x {self.detail_chans} channels (the embedding and "
                             f"the folded detail map), got {image_embeddings.size(1)}")
        image_embeddings = image_embeddings.expand(n_prompts, -1, -1, -1)
        embedding, detail = image_embeddings[:, :c], image_embeddings[:, c:]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(n_prompts, -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)
        src = embedding + dense_prompt_embeddings
        pos_src = image_pe.expand(n_prompts, -1, -1, -1)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1: (1 + self.num_mask_tokens), :]
        src = src.transpose(1, 2).reshape(b, c, h, w)
        up = self.output_upscaling            # ConvTranspose, LayerNorm2d, GELU, ConvTranspose, GELU
        if self.detail_chans:
            mid = up[2](up[1](up[0](src)))                                                   # twice the token grid
            mid = mid + self.detail_out(F.gelu(self.detail_in(mid) + F.pixel_shuffle(detail, 2)))
            upscaled = up[4](up[3](mid))
            levels = (upscaled, mid)
        else:
            upscaled = up(src)
            levels = (upscaled,)
        hyper_in = torch.stack([mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
                               dim=1)
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c, h * w)).view(b, -1, h, w)
        if not self.mask_scoring:
            return masks, self.iou_prediction_head(iou_token_out)
        return masks, self._mask_scores(masks, levels, iou_token_out)

    def _mask_scores(self, masks, levels, iou_token_out):
        """Predicted IoU per candidate from the IoU token and the features inside and just outside each mask."""
        prob = masks.detach().sigmoid()
        pooled = []
        for features in levels:
            factor = prob.shape[-1] // features.shape[-1]            # the candidates at the features' grid
            p = prob if factor == 1 else F.avg_pool2d(prob, factor)
            ring = (_max_filter5(p) - p).clamp(min=0)
            f = features.flatten(2).transpose(1, 2)                                         # (P, h w, C)
            for weights in (p.flatten(2), ring.flatten(2)):
                pooled.append(weights @ f / (weights.sum(-1, keepdim=True) + 1))          # (P, M, C)
        area = prob.flatten(2).mean(-1, keepdim=True)
        token = iou_token_out[:, None].expand(-1, masks.shape[1], -1)
        return self.mask_scorer(torch.cat([token, *pooled, area], dim=-1)).squeeze(-1)


class ClickMapPromptEncoder(PromptEncoder):
    """SAM's prompt encoder, with the points and the box also drawn as maps and added to the dense embedding.

    SAM passes a click to the decoder only as a token (its positional encoding plus a learned
    "positive" or "negative" vector); the decoder must learn, by attention, which image positions match
    it, which takes SAM's millions of training masks. Interactive-segmentation models before SAM drew
    clicks as maps the size of the image (K. Sofiiuk et al., "Reviving iterative training with mask
    guidance for interactive segmentation", ICIP 2022, whose training with corrective clicks SAM follows).
    This encoder does both: the tokens are SAM's, unchanged, and a Gaussian blob per click (one channel
    for positive, one for negative clicks) and the filled box (a third channel) go through a small
    convolutional path like SAM's mask path, into the dense embedding that is added to every image
    position. Everything else (``SamPredictor``, the automatic mask generator) works unchanged.
    """

    def __init__(self, *args, click_sigma: float = 8.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.click_sigma = check_positive("click_sigma", click_sigma)
        self.click_downscaling = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=2, stride=2), nn.GELU(),
            nn.Conv2d(8, 32, kernel_size=2, stride=2), nn.GELU(),
            nn.Conv2d(32, self.embed_dim, kernel_size=1),
        )

    def click_maps(self, points, boxes, batch_size: int) -> torch.Tensor:
        """``(B, 3, 4h, 4w)`` maps of positive clicks, negative clicks and the box, in the mask-prompt grid."""
        h, w = self.mask_input_size
        scale_y, scale_x = h / self.input_image_size[0], w / self.input_image_size[1]
        device = self._get_device()
        maps = torch.zeros(batch_size, 3, h, w, device=device)
        yy = (torch.arange(h, device=device, dtype=torch.float32) + 0.5)[:, None]
        xx = (torch.arange(w, device=device, dtype=torch.float32) + 0.5)[None, :]
        if points is not None:
            coords, labels = points
            x = (coords[..., 0] + 0.5) * scale_x
            y = (coords[..., 1] + 0.5) * scale_y
            d2 = (xx[None, None] - x[..., None, None]) ** 2 + (yy[None, None] - y[..., None, None]) ** 2
            blob = torch.exp(-d2 / (2 * (self.click_sigma * scale_x) ** 2))          # (B, N, h, w)
            for channel, label in ((0, 1), (1, 0)):
                chosen = (labels == label)[..., None, None]
                maps[:, channel] = (blob * chosen).amax(1) if blob.shape[1] else 0
        if boxes is not None:
            b = boxes.reshape(-1, 4)
            x0, y0 = b[:, 0, None, None] * scale_x, b[:, 1, None, None] * scale_y
            x1, y1 = (b[:, 2, None, None] + 1) * scale_x, (b[:, 3, None, None] + 1) * scale_y
            maps[:, 2] = ((xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)).float()
        return maps

    def forward(self, points, boxes, masks):
        sparse, dense = super().forward(points, boxes, masks)
        maps = self.click_maps(points, boxes, sparse.shape[0])
        return sparse, dense + self.click_downscaling(maps)


def build_promptable_sam(image_size: int = 128, embed_dim: int = 64, decoder_depth: int = 2, num_heads: int = 4,
                         mlp_dim: int = 256, encoder_widths=(32, 48, 96, 128), click_maps: bool = True,
                         click_sigma: float = 8.0, stride: int = 8, detail_chans: int = 0,
                         mask_scoring: bool = False) -> Sam:
    """A small Segment Anything model: :class:`ConvImageEncoder` + the package's prompt encoder and decoder.

    Parameters
    ----------
    image_size : int
        Side of the square input (images are resized so their longest side is this, then padded).
    embed_dim : int
        Channels of the image embedding and width of the prompt tokens (SAM: 256).
    decoder_depth, num_heads, mlp_dim : int
        The two-way transformer's depth, heads and MLP width (SAM: 2, 8, 2048).
    encoder_widths : 4 ints
        Channels of the image encoder's stages.
    click_maps : bool
        Use :class:`ClickMapPromptEncoder` (clicks and box also drawn as maps, Gaussian blobs of
        ``click_sigma`` pixels) instead of the package's ``PromptEncoder``.
    stride : {4, 8}
        The embedding's grid is ``image_size / stride`` (SAM: 1/16 of 1024); the decoder's masks come out
        at four times that grid.
    detail_chans : int
        Channels of the high-resolution detail path (0: none, SAM's decoder), see
        :class:`ConvImageEncoder` and :class:`BatchedMaskDecoder`; needs ``stride=8``.
    mask_scoring : bool
        An IoU head that sees the candidate masks (:class:`BatchedMaskDecoder`) instead of SAM's.

    Returns a ``segment_anything.modeling.Sam`` in training mode, with SAM's pixel mean and std.
    """
    image_size = check_int("image_size", image_size, 32)
    embed_dim = check_int("embed_dim", embed_dim, 16)
    num_heads = check_int("num_heads", num_heads, 1)
    if embed_dim % 16 or (embed_dim // 2) % num_heads:
        raise ValueError(f"`embed_dim` must be a multiple of 16 and embed_dim/2 of `num_heads`, got {embed_dim}, {num_heads}")
    encoder = ConvImageEncoder(image_size, embed_dim, encoder_widths, stride, detail_chans)
    grid = image_size // stride
    sam = Sam(
        image_encoder=encoder,
        prompt_encoder=(ClickMapPromptEncoder if click_maps else PromptEncoder)(
            embed_dim=embed_dim, image_embedding_size=(grid, grid), input_image_size=(image_size, image_size),
            mask_in_chans=16, **({"click_sigma": click_sigma} if click_maps else {})),
        mask_decoder=BatchedMaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=check_int("decoder_depth", decoder_depth, 1), embedding_dim=embed_dim,
                                          mlp_dim=check_int("mlp_dim", mlp_dim, 8), num_heads=num_heads),
            transformer_dim=embed_dim, iou_head_depth=3, iou_head_hidden_dim=embed_dim,
            detail_chans=detail_chans, mask_scoring=mask_scoring),
        pixel_mean=list(PIXEL_MEAN), pixel_std=list(PIXEL_STD),
    )
    return sam.train()


def build_sam_vit_b(weights_path=None) -> Sam:
    """Segment Anything ViT-B, with random weights or the official checkpoint.

    ``segment_anything.build_sam_vit_b(checkpoint=...)`` would call ``torch.load`` without
    ``weights_only``; the course loads the state dict itself with ``weights_only=True`` (a checkpoint
    is data, never code) and ``strict=True``. Get the file with ``utils.data.optional_fetch("sam_vit_b")``.
    """
    from segment_anything import build_sam_vit_b as _build

    sam = _build(checkpoint=None)
    if weights_path is not None:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        sam.load_state_dict(state, strict=True)
    return sam.eval()


def sam_parts_summary(sam: Sam) -> list[dict]:
    """One row per part (image encoder, prompt encoder, mask decoder): parameters and the embedding shape."""
    grid = sam.prompt_encoder.image_embedding_size
    chans = getattr(sam.image_encoder, "detail_chans", 0)
    detail = f" + detail {chans}x{2 * grid[0]}x{2 * grid[1]}" if chans else ""
    rows = []
    for name in ("image_encoder", "prompt_encoder", "mask_decoder"):
        part = getattr(sam, name)
        rows.append({"part": name, "class": type(part).__name__,
                     "parameters": sum(p.numel() for p in part.parameters())})
    rows.append({"part": "total", "class": type(sam).__name__, "parameters": sum(p.numel() for p in sam.parameters())})
    for row in rows:
        row["input"] = {"image_encoder": f"3x{sam.image_encoder.img_size}x{sam.image_encoder.img_size}",
                        "prompt_encoder": "points, boxes, a mask",
                        "mask_decoder": f"embedding {sam.prompt_encoder.embed_dim}x{grid[0]}x{grid[1]}{detail}"
                                        " + prompts",
                        "total": ""}[row["part"]]
    return rows
