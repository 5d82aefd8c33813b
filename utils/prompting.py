"""Training and evaluating a promptable (SAM-style) model with simulated clicks.

Segment Anything was trained by simulating a user (A. Kirillov et al., ICCV 2023, section 3 and appendix A):
the first prompt is a point drawn uniformly inside an object's mask, or its box; every later click is drawn
from the **error region** of the current prediction, positive where the object was missed and negative
where background was taken, and the previous mask's logits go back in as a mask prompt. Evaluation uses
the deterministic version of the same user: the first click at the point of the object farthest from its
boundary, each next click at the point farthest from the boundary of the error region (the protocol of
interactive segmentation benchmarks, which SAM follows).

Images are ``(H, W, 3)`` uint8 RGB; objects are integer label maps ``(H, W)`` (0 background, one id per
object), as the shipped nuclei and :func:`scene_labels` give them. Points are ``(x, y)`` in pixels, as
``segment_anything`` takes them. The model is a ``segment_anything.modeling.Sam``
(:func:`utils.models.promptable.build_promptable_sam`); ``Sam.forward`` runs without gradients, so
training calls its three parts directly.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .classical import click_inside, distance_to_edge
from .validation import check_int, check_positive

__all__ = ["scene_labels", "interior_point", "corrective_click", "FIRST_CLICKS", "sample_points",
           "sample_corrective_clicks", "PromptCrops", "collate_prompt_crops", "promptable_loss", "train_promptable",
           "fixed_tiles", "click_evaluation", "mask_iou", "enlarge"]


def scene_labels(scene) -> np.ndarray:
    """A generated scene's instances as one label map ``(H, W)`` int64: 0 background, object ``i`` is ``i + 1``."""
    labels = np.zeros(scene.semantic.shape, dtype=np.int64)
    for i, mask in enumerate(scene.instance_masks):
        labels[mask] = i + 1
    return labels


def _check_mask(mask, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"`{name}` must be a (H, W) bool mask, got shape {mask.shape} and dtype {mask.dtype}")
    return mask


def _farthest_from_edge(region: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` of the pixel of ``region`` farthest from its boundary (the image border counts as boundary)."""
    row, col = click_inside(region)      # lesson 02's click: the same distance transform, as (row, col)
    return col, row


def interior_point(mask) -> tuple[int, int]:
    """The first click of the evaluation protocol: ``(x, y)`` of the mask's pixel farthest from its boundary."""
    mask = _check_mask(mask, "mask")
    if not mask.any():
        raise ValueError("`mask` is empty: there is no object to click on")
    return _farthest_from_edge(mask)


def corrective_click(pred, truth):
    """The next click of the evaluation protocol, or ``None`` when ``pred`` equals ``truth``.

    Returns ``((x, y), label)``: the point farthest from the boundary of the error region, and ``1``
    (positive) if it lies in the object (a missed part) or ``0`` (negative) if it lies outside (a false
    positive). As in the interactive-segmentation benchmarks SAM uses, the largest and thickest mistake
    is corrected first.
    """
    pred, truth = _check_mask(pred, "pred"), _check_mask(truth, "truth")
    if pred.shape != truth.shape:
        raise ValueError(f"`pred` and `truth` must have one shape, got {pred.shape} and {truth.shape}")
    error = pred ^ truth
    if not error.any():
        return None
    x, y = _farthest_from_edge(error)
    return (x, y), int(truth[y, x])


def _uniform_index(weights: torch.Tensor, generator=None) -> torch.Tensor:
    """One column per row of a ``(P, N)`` 0/1 tensor, drawn uniformly among the row's ones.

    A uniform number times the row's count, looked up in the row's cumulative sum: the same distribution
    as ``torch.multinomial(weights, 1)``, which draws a random number for every one of the ``N`` entries
    and took about 6 % of a training step; this draws one per row.
    """
    cumulative = weights.cumsum(1)
    u = torch.rand(len(weights), 1, generator=generator) * cumulative[:, -1:]
    return torch.searchsorted(cumulative, u, right=True).squeeze(1).clamp(max=weights.shape[1] - 1)


FIRST_CLICKS = ("uniform", "interior")


def _distances_to_edge(masks: np.ndarray) -> np.ndarray:
    """:func:`distance_to_edge` of each of ``(P, H, W)`` non-empty masks, computed on the mask's bounding box
    plus a 1-pixel margin only: every pixel outside the box is outside the mask, so the nearest outside pixel of
    a pixel inside is always within the margin (or is the image border), and the result is the same as on the
    whole crop, at a fraction of the cost for small objects."""
    out = np.zeros(masks.shape, np.float64)
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[1:]
    for i, mask in enumerate(masks):
        r, c = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        y0, y1, x0, x1 = max(r[0] - 1, 0), min(r[-1] + 2, h), max(c[0] - 1, 0), min(c[-1] + 2, w)
        out[i, y0:y1, x0:x1] = distance_to_edge(mask[y0:y1, x0:x1])
    return out


def sample_points(masks: torch.Tensor, generator=None, where: str = "uniform") -> torch.Tensor:
    """One point per mask, inside it: ``(P, H, W)`` bool -> ``(P, 2)`` float ``(x, y)``.

    ``where="uniform"`` draws every pixel of the mask with the same probability (SAM's first click);
    ``"interior"`` draws a pixel with probability proportional to its distance from the mask's boundary
    (the image border counting as boundary, as for :func:`interior_point`), so that clicks fall mostly
    near the middle, where people click and where the evaluation's first click is, yet still anywhere
    inside. Interactive-segmentation training before SAM kept positive clicks away from the boundary
    too (N. Xu et al., "Deep interactive object selection", CVPR 2016, with a hard margin).
    """
    if masks.ndim != 3:
        raise ValueError(f"`masks` must be (P, H, W), got shape {tuple(masks.shape)}")
    if where not in FIRST_CLICKS:
        raise ValueError(f"`where` must be one of {FIRST_CLICKS}, got {where!r}")
    flat = masks.flatten(1).float()
    if (flat.sum(1) == 0).any():
        raise ValueError("`masks` has an empty mask: cannot sample a point inside it")
    if where == "interior":
        flat = torch.from_numpy(_distances_to_edge(masks.cpu().numpy())).flatten(1).float()
    index = _uniform_index(flat, generator)
    width = masks.shape[-1]
    return torch.stack([index % width, index // width], dim=1).float()


def sample_corrective_clicks(pred: torch.Tensor, truth: torch.Tensor, generator=None):
    """Training's corrective clicks: one point per row, uniformly in the error region of ``pred`` vs ``truth``.

    Returns ``(points (P, 2), labels (P,))``; the label is ``1`` where the point is in the object, ``0``
    where it is not, and ``-1`` (SAM's "not a point", ignored by the prompt encoder) where the
    prediction has no error left.
    """
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"`pred` and `truth` must both be (P, H, W), got {tuple(pred.shape)} and {tuple(truth.shape)}")
    error = (pred ^ truth).flatten(1).float()
    has_error = error.sum(1) > 0
    weights = torch.where(has_error[:, None], error, torch.ones_like(error))
    index = _uniform_index(weights, generator)
    width = pred.shape[-1]
    points = torch.stack([index % width, index // width], dim=1).float()
    labels = truth.flatten(1).gather(1, index[:, None]).squeeze(1).long()
    labels = torch.where(has_error, labels, torch.full_like(labels, -1))
    return points, labels


def enlarge(images, labels, zoom: int = 2):
    """Images and their label maps enlarged ``zoom`` times, as ``SamPredictor`` enlarges a small image.

    SAM resizes every image so that its longest side is the model's input size (1,024 pixels; 128 for the
    course's small model), so objects far smaller than the decoder's token grid can be enlarged before the
    model sees them. Training on images enlarged the same way (the image with the predictor's own
    ``ResizeLongestSide``, the labels by nearest neighbour so that every id stays whole) teaches the model
    the objects at the size it will see them. Returns ``(images, labels)`` as lists.
    """
    import cv2
    from segment_anything.utils.transforms import ResizeLongestSide

    zoom = check_int("zoom", zoom, 1)
    if len(images) != len(labels):
        raise ValueError(f"`images` and `labels` must have one length, got {len(images)} and {len(labels)}")
    out_images, out_labels = [], []
    for i, (image, lab) in enumerate(zip(images, labels)):
        image, lab = np.asarray(image), np.asarray(lab)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.shape[:2] != lab.shape:
            raise ValueError(f"`images[{i}]` must be (H, W, 3) uint8 matching `labels[{i}]` {lab.shape}, "
                             f"got {image.shape} {image.dtype}")
        if zoom == 1:
            out_images.append(image)
            out_labels.append(lab)
            continue
        big = ResizeLongestSide(zoom * max(image.shape[:2])).apply_image(image)
        out_images.append(big)
        out_labels.append(cv2.resize(lab.astype(np.int32), big.shape[1::-1], interpolation=cv2.INTER_NEAREST))
    return out_images, out_labels


class PromptCrops(torch.utils.data.Dataset):
    """Square crops of images with their label maps, for promptable training.

    Parameters
    ----------
    images : list of (H, W, 3) uint8 arrays
    labels : list of (H, W) integer label maps (0 background)
    size : int
        Side of the crops; images must be at least this large.
    samples_per_epoch : int, optional
        Random crops (a random image, a random position, a random flip) instead of one centred crop per image.
    min_area : int
        Objects smaller than this many pixels inside a crop are dropped (a sliver cut by the border).
    object_crops : float
        With ``samples_per_epoch``, the share of random crops placed around an object: a random object of
        the image (each object as likely), then a random position among those whose crop holds the centre
        of the object's bounding box. The others, and all crops when it is 0 (the default), take any
        position. Where objects are sparse, as nuclei in a large image, a crop at any position is often
        empty and teaches nothing; nnU-Net forces a third of its training patches onto the foreground for
        the same reason (F. Isensee et al., Nature Methods 2021).
    """

    def __init__(self, images, labels, size: int = 128, samples_per_epoch: int | None = None, min_area: int = 12,
                 object_crops: float = 0.0):
        if len(images) != len(labels) or not len(images):
            raise ValueError(f"`images` and `labels` must be non-empty lists of one length, got {len(images)} and {len(labels)}")
        self.size = check_int("size", size, 16)
        self.samples_per_epoch = check_int("samples_per_epoch", samples_per_epoch, none_ok=True)
        self.min_area = check_int("min_area", min_area)
        for i, (im, lab) in enumerate(zip(images, labels)):
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8 or im.shape[:2] != lab.shape:
                raise ValueError(f"`images[{i}]` must be (H, W, 3) uint8 matching `labels[{i}]` {lab.shape}, got {im.shape} {im.dtype}")
            if min(lab.shape) < self.size:
                raise ValueError(f"`images[{i}]` is {lab.shape}, smaller than `size` {self.size}")
        self.images, self.labels = list(images), list(labels)
        if not 0 <= object_crops <= 1:
            raise ValueError(f"`object_crops` must be in [0, 1], got {object_crops!r}")
        if object_crops and not self.samples_per_epoch:
            raise ValueError("`object_crops` places random crops: it needs `samples_per_epoch` (without it every image "
                             "gives one centred crop)")
        self.object_crops = float(object_crops)
        self.centres, self.with_objects = None, None
        if self.object_crops:
            from scipy.ndimage import find_objects

            # (row, col) of each object's bounding-box centre, per image; images without objects are never chosen
            self.centres = [np.array([((r.start + r.stop - 1) // 2, (c.start + c.stop - 1) // 2)
                                      for r, c in filter(None, find_objects(lab.astype(np.int64)))], dtype=np.int64)
                            .reshape(-1, 2) for lab in self.labels]
            self.with_objects = [i for i, c in enumerate(self.centres) if len(c)]
            if not self.with_objects:
                raise ValueError("`object_crops` > 0 needs objects: every label map in `labels` is empty")

    def __len__(self) -> int:
        return self.samples_per_epoch or len(self.images)

    def __getitem__(self, index: int):
        s = self.size
        if self.object_crops and torch.rand(()) < self.object_crops:
            i = self.with_objects[int(torch.randint(len(self.with_objects), ()).item())]
            h, w = self.labels[i].shape
            cy, cx = self.centres[i][int(torch.randint(len(self.centres[i]), ()).item())]
            # a position whose crop [y, y + s) holds the centre row cy (and likewise for x), inside the image
            y0, x0 = max(0, cy - s + 1), max(0, cx - s + 1)
            y = y0 + int(torch.randint(min(cy, h - s) - y0 + 1, ()).item())
            x = x0 + int(torch.randint(min(cx, w - s) - x0 + 1, ()).item())
        elif self.samples_per_epoch:
            i = int(torch.randint(len(self.images), ()).item())
            h, w = self.labels[i].shape
            y, x = int(torch.randint(h - s + 1, ()).item()), int(torch.randint(w - s + 1, ()).item())
        else:
            i = index
            h, w = self.labels[i].shape
            y, x = (h - s) // 2, (w - s) // 2
        image = self.images[i][y:y + s, x:x + s]
        labels = self.labels[i][y:y + s, x:x + s]
        if self.samples_per_epoch and torch.rand(()) < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
        ids = np.unique(labels)
        ids = ids[ids > 0]
        masks = labels[None] == ids[:, None, None]
        masks = masks[masks.sum(axis=(1, 2)) >= self.min_area]
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()   # 0-255, SAM normalises
        return image, torch.from_numpy(np.ascontiguousarray(masks))


def collate_prompt_crops(batch):
    """Stack the images; keep the variable number of masks per image as a list."""
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def mask_iou(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """IoU of each pair of boolean masks ``(..., H, W)`` (1 where both are empty)."""
    inter = (pred & truth).flatten(-2).sum(-1).float()
    union = (pred | truth).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def promptable_loss(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor):
    """SAM's loss at the course's scale: per candidate mask, binary cross-entropy + Dice, and MSE on the IoU.

    ``logits`` ``(P, M, H, W)`` (M candidates), ``iou_pred`` ``(P, M)``, ``target`` ``(P, H, W)`` bool.
    As in SAM, only the best of the ``M`` candidates (lowest mask loss) is trained for each prompt, so
    the candidates are free to specialise (a part, the object, a larger whole); the IoU head learns the
    true IoU of every candidate. SAM weighs focal and Dice 20:1; BCE + Dice (lesson 03) is used here.
    When the masks are coarser than the target (the decoder's 64 x 64 against 128 x 128 crops), the
    target is brought to the masks' grid by area averaging: a soft target, each cell holding the share
    of it the object covers (the loss then runs on a quarter of the pixels, instead of on logits upsampled
    to the target); the true IoU is measured on that grid too (cells at least half covered).
    Returns ``(loss, best_index (P,))``.
    """
    t = target[:, None].float()
    if logits.shape[-2:] != target.shape[-2:]:
        t = F.interpolate(t, size=logits.shape[-2:], mode="area")
    t = t.expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none").flatten(2).mean(-1)
    probs = logits.sigmoid().flatten(2)
    tf = t.flatten(2)
    dice = 1 - (2 * (probs * tf).sum(-1) + 1) / (probs.sum(-1) + tf.sum(-1) + 1)
    mask_loss = bce + dice
    best = mask_loss.argmin(1)
    chosen = mask_loss.gather(1, best[:, None]).mean()
    with torch.no_grad():
        true_iou = mask_iou(logits > 0, t > 0.5)
    return chosen + F.mse_loss(iou_pred, true_iou), best


def _select_prompts(masks_list, per_image: int, generator):
    """Pick up to ``per_image`` objects per image: ``(image index (P,), masks (P, H, W))``."""
    index, chosen = [], []
    for i, masks in enumerate(masks_list):
        if len(masks) == 0:
            continue
        order = torch.randperm(len(masks), generator=generator)[:per_image]
        index.extend([i] * len(order))
        chosen.append(masks[order])
    if not chosen:
        return None, None
    return torch.tensor(index), torch.cat(chosen)


def _forever(loader):
    """Batches of ``loader`` epoch after epoch (``itertools.cycle`` would keep every batch in memory)."""
    while True:
        yield from loader


def _boxes_of(masks: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import masks_to_boxes

    return masks_to_boxes(masks)


def train_promptable(sam, loader, steps: int, optimizer, *, clicks: int = 3, prompts_per_image: int = 4,
                     box_fraction: float = 0.25, device=None, scheduler=None, grad_clip: float | None = None,
                     first_click: str = "uniform", progress: bool = True, seed: int = 0):
    """Train a ``Sam`` with simulated interaction for ``steps`` optimizer steps; returns the loss per step.

    Each step embeds a batch of images once, picks up to ``prompts_per_image`` objects per image, and
    runs ``clicks`` rounds of prompting: round 1 is a point inside each object (or, in ``box_fraction``
    of the steps, each object's box) with three candidate masks; every later round adds a corrective click
    sampled from the current error region and feeds the previous logits back as a mask prompt, with one
    output mask. The losses of all rounds are summed, so the model learns both to guess from one click
    and to repair its guess. ``grad_clip`` (a float, or ``None`` for none) clips the gradient's norm before
    each step: a batch of odd prompts now and then gives a gradient ten times the usual one.
    ``first_click`` says where round 1's point is drawn (:func:`sample_points`): ``"uniform"`` inside the
    object, as SAM, or ``"interior"``, weighted by the distance from the object's boundary.
    """
    from tqdm.auto import tqdm

    steps, clicks = check_int("steps", steps), check_int("clicks", clicks)
    prompts_per_image = check_int("prompts_per_image", prompts_per_image)
    if not 0 <= box_fraction <= 1:
        raise ValueError(f"`box_fraction` must be in [0, 1], got {box_fraction}")
    check_positive("grad_clip", grad_clip, none_ok=True)
    if first_click not in FIRST_CLICKS:
        raise ValueError(f"`first_click` must be one of {FIRST_CLICKS}, got {first_click!r}")
    device = torch.device(device or next(sam.parameters()).device)
    sam.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    batches = loader if hasattr(loader, "__next__") else _forever(loader)
    pe = None
    history = []
    bar = tqdm(range(steps), desc="promptable training", disable=not progress)
    for _ in bar:
        images, masks_list = next(batches)
        index, targets = _select_prompts(masks_list, prompts_per_image, gen)
        if index is None:
            continue
        images, index, targets = images.to(device), index.to(device), targets.to(device)
        embeddings = sam.image_encoder(sam.preprocess(images))[index]
        pe = sam.prompt_encoder.get_dense_pe()
        n = len(targets)
        # The first prompt of the whole batch is a box (for `box_fraction` of the steps) or one point,
        # so that every prompt in the batch has the same number of tokens, as at inference.
        boxes = _boxes_of(targets) if torch.rand((), generator=gen) < box_fraction else None
        if boxes is None:
            points = sample_points(targets.cpu(), gen, first_click).to(device)[:, None]   # (P, 1, 2)
            labels = torch.ones(n, 1, dtype=torch.long, device=device)
            sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=None, masks=None)
        else:
            points = torch.zeros(n, 0, 2, device=device)
            labels = torch.zeros(n, 0, dtype=torch.long, device=device)
            sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        logits, iou_pred = sam.mask_decoder(embeddings, pe, sparse, dense, multimask_output=True)
        loss, best = promptable_loss(logits, iou_pred, targets)
        current = logits[torch.arange(n, device=device), best][:, None]         # (P, 1, H, W)
        for _ in range(clicks - 1):
            with torch.no_grad():
                full = F.interpolate(current, size=targets.shape[-2:], mode="bilinear", align_corners=False)
                new_points, new_labels = sample_corrective_clicks((full[:, 0] > 0).cpu(), targets.cpu(), gen)
            points = torch.cat([points, new_points.to(device)[:, None]], dim=1)
            labels = torch.cat([labels, new_labels.to(device)[:, None]], dim=1)
            sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=boxes, masks=current.detach())
            logits, iou_pred = sam.mask_decoder(embeddings, pe, sparse, dense, multimask_output=False)
            round_loss, _ = promptable_loss(logits, iou_pred, targets)
            loss = loss + round_loss
            current = logits
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(sam.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history.append(loss.item() / clicks)
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    sam.eval()
    return history


def fixed_tiles(images, labels, size: int = 128, max_tiles_per_image: int = 4, min_area: int = 12):
    """Deterministic held-out crops: non-overlapping ``size`` tiles of each image (row by row), at most
    ``max_tiles_per_image`` each, keeping tiles that contain an object. Returns ``(images, label maps)``."""
    size = check_int("size", size, 16)
    out_images, out_labels = [], []
    for image, lab in zip(images, labels):
        h, w = lab.shape
        kept = 0
        for y in range(0, h - size + 1, size):
            for x in range(0, w - size + 1, size):
                if kept >= max_tiles_per_image:
                    break
                tile = lab[y:y + size, x:x + size]
                ids, counts = np.unique(tile[tile > 0], return_counts=True)
                if (counts >= min_area).any():
                    keep = np.isin(tile, ids[counts >= min_area])
                    out_images.append(image[y:y + size, x:x + size])
                    out_labels.append(np.where(keep, tile, 0))
                    kept += 1
    return out_images, out_labels


@torch.no_grad()
def click_evaluation(sam, images, labels, clicks: int = 5, *, progress: bool = True) -> dict:
    """IoU after 1..``clicks`` simulated clicks on every object of held-out images, with ``SamPredictor``.

    For each image the predictor embeds it once (``set_image``); every object is then prompted with its
    interior point; of the three candidate masks the one with the highest *predicted* IoU is kept (what
    a user of the model would see, not the best in hindsight); each next round adds the evaluation
    protocol's corrective click (:func:`corrective_click`) and the previous low-resolution logits.

    Returns ``{"iou": (objects, clicks) array, "mean_iou": per-click means, "objects": count}``.
    """
    from segment_anything import SamPredictor
    from tqdm.auto import tqdm

    clicks = check_int("clicks", clicks)
    if len(images) != len(labels):
        raise ValueError(f"`images` and `labels` must have one length, got {len(images)} and {len(labels)}")
    sam.eval()
    predictor = SamPredictor(sam)
    device = predictor.device
    rows = []
    for image, lab in tqdm(list(zip(images, labels)), desc="click evaluation", disable=not progress):
        ids = np.unique(lab)
        ids = ids[ids > 0]
        if not len(ids):
            continue
        predictor.set_image(np.ascontiguousarray(image))
        truths = np.stack([lab == i for i in ids])
        # All objects of the image are prompted at once: one row of clicks per object.
        points = [[interior_point(t)] for t in truths]
        point_labels = [[1] for _ in truths]
        ious = np.zeros((len(ids), clicks))
        low_res = None
        for r in range(clicks):
            coords = predictor.transform.apply_coords(np.array(points, dtype=np.float32), lab.shape)
            masks, scores, logits = predictor.predict_torch(
                torch.as_tensor(coords, device=device), torch.as_tensor(point_labels, device=device),
                mask_input=low_res, multimask_output=(r == 0))
            best = scores.argmax(1)
            keep = torch.arange(len(ids), device=device)
            pred = masks[keep, best].cpu().numpy()
            low_res = logits[keep, best][:, None]
            inter = (pred & truths).sum(axis=(1, 2))
            union = (pred | truths).sum(axis=(1, 2))
            ious[:, r] = inter / np.maximum(union, 1)
            for k in range(len(ids)):
                nxt = corrective_click(pred[k], truths[k])
                # A perfect mask needs no click: SAM's "not a point" (-1) keeps the rows the same length.
                points[k].append(list(nxt[0]) if nxt else [0, 0])
                point_labels[k].append(nxt[1] if nxt else -1)
        rows.append(ious)
    iou = np.concatenate(rows) if rows else np.zeros((0, clicks))
    return {"iou": iou, "mean_iou": iou.mean(0) if len(iou) else np.full(clicks, np.nan), "objects": len(iou)}


def draw_prompts(image, mask=None, points=(), labels=(), box=None, scale: int = 3) -> np.ndarray:
    """An RGB picture of ``image`` with ``mask`` tinted, positive clicks green and negative ones red.

    Enlarged ``scale`` times (nearest neighbour) so that clicks on a 128-pixel image are easy to see and
    to hit; returns ``(H * scale, W * scale, 3)`` uint8 (what the click widget shows).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"`image` must be (H, W, 3) uint8, got shape {image.shape} and dtype {image.dtype}")
    scale = check_int("scale", scale)
    out = image.astype(np.float32)
    if mask is not None:
        mask = _check_mask(mask, "mask")
        out[mask] = 0.55 * out[mask] + 0.45 * np.array([40.0, 120.0, 255.0])
        from scipy.ndimage import binary_erosion

        out[mask & ~binary_erosion(mask)] = (255.0, 255.0, 0.0)
    out = np.repeat(np.repeat(out, scale, 0), scale, 1)
    yy, xx = np.mgrid[:out.shape[0], :out.shape[1]]
    for (x, y), label in zip(points, labels):
        if label < 0:
            continue
        cx, cy = (x + 0.5) * scale, (y + 0.5) * scale
        ring = (yy - cy) ** 2 + (xx - cx) ** 2
        out[ring <= (2.2 * scale) ** 2] = (255.0, 255.0, 255.0)
        out[ring <= (1.6 * scale) ** 2] = (0.0, 200.0, 0.0) if label == 1 else (230.0, 0.0, 0.0)
    if box is not None:
        x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
        out[y0:y1 + 1, [x0, x1]] = out[[y0, y1], x0:x1 + 1] = (255.0, 160.0, 0.0)
    return np.clip(out, 0, 255).astype(np.uint8)


def click_widget(sam, image, scale: int = 3):
    """Click on ``image`` to prompt ``sam``: a left click adds a positive point, a shift-click a negative one.

    The image is embedded once (``SamPredictor.set_image``); every click runs only the prompt encoder
    and the mask decoder, with the previous mask's logits as a mask prompt, as in SAM's demo. Works in
    JupyterLab and in Colab (it enables Colab's custom widget manager, which ``ipyevents`` needs).
    Returns the widget; a stored notebook shows it only as text, so lessons also draw a static result.
    """
    import sys

    import ipywidgets as widgets
    from ipyevents import Event
    from PIL import Image
    import io

    from segment_anything import SamPredictor

    if "google.colab" in sys.modules:   # third-party widgets need it on Colab
        from google.colab import output

        output.enable_custom_widget_manager()
    image = np.ascontiguousarray(image)
    predictor = SamPredictor(sam.eval())
    predictor.set_image(image)
    state = {"points": [], "labels": [], "low_res": None, "mask": None}
    view = widgets.Image(format="png")
    info = widgets.Label()
    undo = widgets.Button(description="undo")
    clear = widgets.Button(description="clear")

    def show():
        buffer = io.BytesIO()
        Image.fromarray(draw_prompts(image, state["mask"], state["points"], state["labels"], scale=scale)).save(buffer, "png")
        view.value = buffer.getvalue()

    def predict():
        if not state["points"]:
            state["mask"], state["low_res"] = None, None
            info.value = "Click on an object (shift-click: a negative point)."
            return
        first = len(state["points"]) == 1
        masks, scores, logits = predictor.predict(
            point_coords=np.array(state["points"], dtype=np.float32), point_labels=np.array(state["labels"]),
            mask_input=None if first else state["low_res"][None], multimask_output=first)
        best = int(np.argmax(scores))
        state["mask"], state["low_res"] = masks[best], logits[best]
        info.value = f"{len(state['points'])} click(s); predicted IoU {scores[best]:.2f}; {int(masks[best].sum())} pixels"

    def on_click(event):
        x = int(np.clip(event["dataX"] // scale, 0, image.shape[1] - 1))
        y = int(np.clip(event["dataY"] // scale, 0, image.shape[0] - 1))
        state["points"].append((x, y))
        state["labels"].append(0 if event.get("shiftKey") else 1)
        predict()
        show()

    def on_undo(_):
        if state["points"]:
            state["points"].pop()
            state["labels"].pop()
            state["low_res"] = None   # replay the remaining clicks from scratch
            points, labels = list(state["points"]), list(state["labels"])
            state["points"], state["labels"] = [], []
            for p, lab in zip(points, labels):
                state["points"].append(p)
                state["labels"].append(lab)
                predict()
        predict()
        show()

    def on_clear(_):
        state.update(points=[], labels=[], low_res=None, mask=None)
        predict()
        show()

    Event(source=view, watched_events=["click"]).on_dom_event(on_click)
    undo.on_click(on_undo)
    clear.on_click(on_clear)
    predict()
    show()
    return widgets.VBox([view, widgets.HBox([undo, clear, info])])
