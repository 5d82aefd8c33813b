"""Instance segmentation with torchvision's Mask R-CNN: training, prediction, COCO evaluation, matching.

The models are built by :mod:`utils.models.maskrcnn` (:func:`utils.models.build_maskrcnn_cpu`, small enough
to learn from scratch on a CPU, and :func:`utils.models.build_maskrcnn_full`, the paper-like ResNet-50-FPN).

Array contracts
---------------
* ``image`` given to a model: ``(3, H, W)`` ``float32`` tensor, RGB, values in [0, 1] (the model
  normalises it itself).
* A *target* (torchvision's detection format): ``"boxes"`` ``(N, 4)`` float32 ``xyxy`` in pixels,
  ``"labels"`` ``(N,)`` int64 in ``[1, num_classes)``, ``"masks"`` ``(N, H, W)`` uint8 in {0, 1},
  ``"image_id"`` int, optionally ``"iscrowd"`` ``(N,)`` int64.
* A *prediction* from :func:`predict_instances`: NumPy arrays ``"boxes_xyxy"`` ``(K, 4)`` float32,
  ``"labels"`` ``(K,)`` int64, ``"scores"`` ``(K,)`` float32 in [0, 1] sorted high to low,
  ``"masks"`` ``(K, H, W)`` bool (probabilities cut at ``mask_threshold``), and with ``keep_probs=True``
  ``"mask_probs"`` ``(K, H, W)`` float32 in [0, 1].
* COCO boxes are ``xywh`` (``x_min, y_min, width, height``); :func:`box_xyxy_to_xywh` converts.
"""
from __future__ import annotations

import contextlib
import io
import time

import numpy as np
import torch

from .validation import check_int, check_positive


class RandomHorizontalFlip:
    """Flip an ``(image, target)`` pair left-right with probability ``p``: image, masks and boxes together.

    ``image`` ``(3, H, W)`` tensor; ``target`` in torchvision's detection format with boxes ``xyxy`` in
    inclusive pixel indices (``x_max`` is the last column of the object), so a box ``[x0, y0, x1, y1]``
    becomes ``[W - 1 - x1, y0, W - 1 - x0, y1]``.
    """

    def __init__(self, p: float = 0.5, seed: int | None = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"`p` must be in [0, 1], got {p}")
        self.p = p
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: torch.Tensor, target: dict):
        if self.rng.random() >= self.p:
            return image, target
        w = image.shape[-1]
        target = dict(target)
        boxes = torch.as_tensor(target["boxes"]).clone()
        boxes[:, [0, 2]] = (w - 1) - boxes[:, [2, 0]]
        target["boxes"] = boxes
        if "masks" in target:
            target["masks"] = torch.as_tensor(target["masks"]).flip(-1)
        return image.flip(-1), target


class TransformedDataset(torch.utils.data.Dataset):
    """``dataset[i]`` passed through ``transform(image, target)`` (e.g. :class:`RandomHorizontalFlip`)."""

    def __init__(self, dataset, transform):
        if not callable(transform):
            raise ValueError(f"`transform` must be callable as transform(image, target), got {type(transform).__name__}")
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.transform(*self.dataset[index])


def _check_detection_target(target, index, image_hw=None):
    if not isinstance(target, dict):
        raise ValueError(f"target {index} must be a dict in torchvision's detection format, got {type(target).__name__}")
    missing = [k for k in ("boxes", "labels") if k not in target]
    if missing:
        raise ValueError(f"target {index} lacks {missing}; it needs 'boxes' (N, 4) xyxy, 'labels' (N,) and "
                         "'masks' (N, H, W) for Mask R-CNN")
    boxes = torch.as_tensor(target["boxes"])
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"target {index}: 'boxes' must be (N, 4) xyxy, got shape {tuple(boxes.shape)}")
    if boxes.numel() and bool(((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any()):
        raise ValueError(f"target {index}: 'boxes' must be xyxy with x_max >= x_min and y_max >= y_min; "
                         f"got {boxes[:2].tolist()} ... (xywh boxes? convert them to xyxy)")
    if "masks" in target and image_hw is not None and tuple(target["masks"].shape[-2:]) != tuple(image_hw):
        raise ValueError(f"target {index}: 'masks' are {tuple(target['masks'].shape[-2:])} but the image is {tuple(image_hw)}")


def train_detection(model, loader, optimizer, epochs: int, *, device=None, scheduler=None, grad_clip: float | None = 10.0,
                    eval_fn=None, progress: bool = True, seed: int | None = None) -> list[dict]:
    """Train a torchvision detection model (Mask R-CNN, Faster R-CNN, ...) for ``epochs`` passes over ``loader``.

    In training mode torchvision's detection models take ``(images, targets)`` and return a dict of
    losses (for Mask R-CNN: ``loss_objectness`` and ``loss_rpn_box_reg`` from the RPN,
    ``loss_classifier`` and ``loss_box_reg`` from the box head, ``loss_mask`` from the mask head);
    their sum is minimised.

    Parameters
    ----------
    model : torch.nn.Module
        A torchvision detection model.
    loader : iterable
        Yields ``(images, targets)``: a sequence of ``(3, H, W)`` float32 tensors in [0, 1] and a
        sequence of target dicts (``boxes`` ``(N, 4)`` float32 xyxy, ``labels`` ``(N,)`` int64,
        ``masks`` ``(N, H, W)`` uint8), e.g. a ``DataLoader`` with ``utils.datasets.detection_collate``.
    optimizer : torch.optim.Optimizer
    epochs : int
        Passes over ``loader``.
    device : torch.device or str, optional
        Default: ``utils.runtime.get_device()``.
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped after **every optimiser step** (build it with the total number of steps, e.g. ``OneCycleLR``).
    grad_clip : float or None
        Clip the gradient norm to this value (a from-scratch detector's first steps are unstable).
    eval_fn : callable, optional
        ``eval_fn(model) -> dict`` called after each epoch (in eval mode); its numbers join the history.
    progress : bool
        Show a tqdm progress bar with the running loss.
    seed : int, optional
        Seed torch before training (sampling of anchors and RoIs is random).

    Returns
    -------
    list of dict
        One row per epoch: ``epoch``, ``loss`` (mean total), the mean of each loss term, ``lr`` (at the
        epoch's end), ``seconds`` (training time of the epoch, evaluation excluded), ``elapsed_s``
        (training time so far), and whatever ``eval_fn`` returned.
    """
    from tqdm.auto import tqdm

    from .runtime import get_device, seed_everything

    check_int("epochs", epochs)
    check_positive("grad_clip", grad_clip, none_ok=True)
    if seed is not None:
        seed_everything(seed)
    device = get_device() if device is None else torch.device(device)
    model.to(device)
    history, elapsed = [], 0.0
    for epoch in range(1, int(epochs) + 1):
        model.train()
        sums: dict[str, float] = {}
        steps = 0
        t0 = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress)
        for images, targets in bar:
            if steps == 0 and epoch == 1:
                for i, t in enumerate(targets):
                    _check_detection_target(t, i, tuple(images[i].shape[-2:]))
            images = [im.to(device) for im in images]
            targets = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
            losses = model(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise RuntimeError(f"the loss became {loss.item()} at epoch {epoch}, step {steps + 1} "
                                   f"({ {k: round(v.item(), 3) for k, v in losses.items()} }); lower the learning "
                                   "rate or clip gradients (grad_clip)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            steps += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            if progress:
                bar.set_postfix(loss=f"{sums['loss'] / steps:.3f}")
        if steps == 0:
            raise ValueError("`loader` yielded no batches")
        seconds = time.perf_counter() - t0
        elapsed += seconds
        row = {"epoch": epoch, "loss": sums.pop("loss") / steps}
        row.update({k: v / steps for k, v in sums.items()})
        row.update(lr=optimizer.param_groups[0]["lr"], seconds=seconds, elapsed_s=elapsed)
        if eval_fn is not None:
            model.eval()
            row.update(eval_fn(model))
        history.append(row)
        if progress:
            extra = "  ".join(f"{k} {v:.3f}" for k, v in row.items()
                              if k not in ("epoch", "lr", "seconds", "elapsed_s") and not k.startswith("loss_"))
            print(f"epoch {epoch:>2}/{epochs}  {extra}  ({seconds:.0f} s)")
    model.eval()
    return history


@torch.no_grad()
def predict_instances(model, images, *, device=None, score_threshold: float = 0.0, mask_threshold: float = 0.5,
                      batch_size: int = 8, keep_probs: bool = False) -> list[dict]:
    """Run a Mask R-CNN on images and return NumPy predictions (see the module docstring).

    Parameters
    ----------
    model : torchvision.models.detection.MaskRCNN
    images : sequence of tensors or arrays
        ``(3, H, W)`` float32 tensors in [0, 1], or ``(H, W, 3)`` uint8 RGB arrays in [0, 255].
    score_threshold : float in [0, 1]
        Drop detections scoring below it (0 keeps all, as COCO evaluation wants).
    mask_threshold : float in (0, 1)
        Cut of the mask probabilities that gives ``"masks"``.
    keep_probs : bool
        Also return the full-resolution probabilities. They take four times the memory of the masks
        (200 detections on a 520x696 image: 290 MB against 72 MB), so by default only the thresholded
        masks are kept, the threshold applied on the model's device.

    Returns
    -------
    list of dict
        Per image: ``boxes_xyxy`` (K, 4) float32, ``labels`` (K,) int64, ``scores`` (K,) float32,
        ``masks`` (K, H, W) bool, and with ``keep_probs`` ``mask_probs`` (K, H, W) float32 in [0, 1].
    """
    from .datasets import image_to_tensor
    from .runtime import get_device

    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"`score_threshold` must be in [0, 1], got {score_threshold}")
    if not 0.0 < mask_threshold < 1.0:
        raise ValueError(f"`mask_threshold` must be in (0, 1), got {mask_threshold}")
    if not isinstance(keep_probs, bool):
        raise ValueError(f"`keep_probs` must be True or False, got {keep_probs!r}")
    if torch.is_tensor(images) and images.ndim == 3:
        raise ValueError(f"`images` must be a sequence of images (or a (B, 3, H, W) batch), got one image of shape "
                         f"{tuple(images.shape)}; wrap it in a list")
    tensors = []
    for i, im in enumerate(images):
        if isinstance(im, np.ndarray):
            im = image_to_tensor(im)
        if not torch.is_tensor(im) or im.ndim != 3 or im.shape[0] != 3 or not im.is_floating_point():
            raise ValueError(f"`images[{i}]` must be a (3, H, W) float tensor in [0, 1] or an (H, W, 3) uint8 array, "
                             f"got {getattr(im, 'shape', type(im).__name__)}")
        tensors.append(im)
    device = get_device() if device is None else torch.device(device)
    model.to(device).eval()
    out = []
    for start in range(0, len(tensors), batch_size):
        batch = [t.to(device) for t in tensors[start:start + batch_size]]
        for o in model(batch):
            keep = o["scores"] >= score_threshold
            pred = {
                "boxes_xyxy": o["boxes"][keep].cpu().numpy().astype(np.float32),
                "labels": o["labels"][keep].cpu().numpy().astype(np.int64),
                "scores": o["scores"][keep].cpu().numpy().astype(np.float32),
            }
            if "masks" in o:
                probs = o["masks"][keep][:, 0]
                pred["masks"] = (probs >= mask_threshold).cpu().numpy()
                if keep_probs:
                    pred["mask_probs"] = probs.float().cpu().numpy()
            out.append(pred)
    return out


def box_xyxy_to_xywh(boxes_xyxy) -> np.ndarray:
    """``(N, 4)`` ``(x_min, y_min, x_max, y_max)`` to COCO's ``(x_min, y_min, width, height)``, float64."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"`boxes_xyxy` must be (N, 4), got shape {boxes.shape}")
    out = boxes.copy()
    out[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    return out


def masks_to_rle(masks) -> list[dict]:
    """Encode binary masks as COCO run-length encodings (what pycocotools evaluates).

    Parameters
    ----------
    masks : (N, H, W) array of bool or {0, 1} integers

    Returns
    -------
    list of dict
        ``{"size": [H, W], "counts": str}`` per mask (``counts`` decoded to text so it is JSON-ready).
    """
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"`masks` must be (N, H, W), got shape {masks.shape}")
    if masks.dtype != bool:
        values = np.unique(masks)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"`masks` must be binary (bool or 0/1), got values {values[:6].tolist()}; "
                             "threshold probabilities first")
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def coco_ground_truth(dataset, class_names) -> "pycocotools.coco.COCO":  # noqa: F821
    """Build a pycocotools ``COCO`` object from a dataset of ``(image, target)`` pairs.

    Image ``i`` of the dataset gets COCO image id ``i + 1``; annotation ids start at 1 (pycocotools
    treats id 0 as "unmatched"). Boxes are stored ``xywh`` with ``width = x_max - x_min``, the same
    conversion :func:`predictions_to_coco` uses, and segmentations as RLE.

    Parameters
    ----------
    dataset : sequence of (image, target)
        ``image`` ``(3, H, W)``; ``target`` with ``boxes`` (N, 4) xyxy, ``labels`` (N,), ``masks``
        (N, H, W) uint8 and optionally ``iscrowd`` (N,).
    class_names : sequence of str
        All class names, index 0 the background (not a COCO category).
    """
    from pycocotools.coco import COCO

    if len(class_names) < 2:
        raise ValueError(f"`class_names` must list the background and at least one class, got {list(class_names)}")
    images, annotations = [], []
    for i in range(len(dataset)):
        image, target = dataset[i]
        _check_detection_target(target, i, tuple(image.shape[-2:]))
        if "masks" not in target:
            raise ValueError(f"target {i} has no 'masks'; mask AP needs instance masks")
        h, w = int(image.shape[-2]), int(image.shape[-1])
        images.append({"id": i + 1, "height": h, "width": w})
        masks = torch.as_tensor(target["masks"]).numpy().astype(bool)
        if len(masks) == 0:
            continue
        rles = masks_to_rle(masks)
        boxes = box_xyxy_to_xywh(torch.as_tensor(target["boxes"]).numpy())
        crowd = torch.as_tensor(target.get("iscrowd", torch.zeros(len(masks), dtype=torch.int64))).numpy()
        for j in range(len(masks)):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": int(target["labels"][j]), "segmentation": rles[j],
                                "area": float(masks[j].sum()), "bbox": boxes[j].tolist(), "iscrowd": int(crowd[j])})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": k, "name": n} for k, n in enumerate(class_names) if k > 0]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def predictions_to_coco(predictions, image_ids=None) -> tuple[list[dict], list[dict]]:
    """Turn :func:`predict_instances` output into COCO result lists: ``(segm_results, bbox_results)``.

    ``image_ids`` defaults to ``1 .. len(predictions)`` (as :func:`coco_ground_truth` numbers images).
    Each segm result is ``{"image_id", "category_id", "segmentation": RLE, "score"}``; each bbox result
    ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.
    """
    image_ids = list(range(1, len(predictions) + 1)) if image_ids is None else list(image_ids)
    if len(image_ids) != len(predictions):
        raise ValueError(f"`image_ids` ({len(image_ids)}) and `predictions` ({len(predictions)}) differ in length")
    segm, bbox = [], []
    for img_id, p in zip(image_ids, predictions):
        for key in ("boxes_xyxy", "labels", "scores"):
            if key not in p:
                raise ValueError(f"a prediction lacks {key!r}; pass the output of predict_instances")
        boxes = box_xyxy_to_xywh(p["boxes_xyxy"]) if len(p["scores"]) else np.zeros((0, 4))
        rles = masks_to_rle(p["masks"]) if "masks" in p and len(p["scores"]) else []
        for j in range(len(p["scores"])):
            common = {"image_id": int(img_id), "category_id": int(p["labels"][j]), "score": float(p["scores"][j])}
            bbox.append({**common, "bbox": boxes[j].tolist()})
            if rles:
                segm.append({**common, "segmentation": rles[j]})
    return segm, bbox


STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
              "AR_small", "AR_medium", "AR_large")


def coco_evaluate(coco_gt, predictions, iou_types=("segm", "bbox"), image_ids=None, max_detections: int = 100) -> dict:
    """COCO average precision with pycocotools (the official code) for predictions on ``coco_gt``'s images.

    Parameters
    ----------
    coco_gt : pycocotools.coco.COCO
        From :func:`coco_ground_truth`.
    predictions : list of dict
        :func:`predict_instances` output, one per image, in ``coco_gt``'s image order.
    iou_types : sequence of {"segm", "bbox"}
    max_detections : int
        The most detections per image that count (COCO's ``maxDets``, 100 by default). Crowded images,
        such as nuclei fields with hundreds of objects, need more, or recall is capped at 100 per image.

    Returns
    -------
    dict
        ``"{iou_type}_{stat}"`` for each stat of :data:`STAT_NAMES` (floats in [0, 1]; pycocotools
        gives -1 where a size range holds no object), e.g. ``segm_AP`` (mean over IoU 0.50:0.95),
        ``segm_AP50``, ``segm_AP75``, ``bbox_AP``; and ``"{iou_type}_summary"``, pycocotools' printed table.
        With ``max_detections`` other than 100, every AP and ``AR100`` use ``max_detections`` detections
        per image (``maxDets = [1, 10, max_detections]``); pycocotools' own summary computes its first line
        (AP) at 100 only, so that value is recomputed from its precision table at ``max_detections``.
    """
    from pycocotools.cocoeval import COCOeval

    max_detections = check_int("max_detections", max_detections, 10)
    for t in iou_types:
        if t not in ("segm", "bbox"):
            raise ValueError(f"`iou_types` may hold 'segm' and 'bbox', got {t!r}")
    img_ids = sorted(coco_gt.getImgIds()) if image_ids is None else list(image_ids)
    if len(predictions) != len(img_ids):
        raise ValueError(f"`predictions` has {len(predictions)} entries but the ground truth has {len(img_ids)} images")
    segm, bbox = predictions_to_coco(predictions, img_ids)
    results = {}
    for t in iou_types:
        dets = segm if t == "segm" else bbox
        if t == "segm" and not segm and bbox:
            raise ValueError("`predictions` hold no masks; evaluate 'bbox' only, or predict with a Mask R-CNN")
        if not dets:  # nothing detected anywhere: every precision is zero
            results.update({f"{t}_{n}": 0.0 for n in STAT_NAMES})
            results[f"{t}_summary"] = "no detections"
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            coco_dt = coco_gt.loadRes([dict(d) for d in dets])
            ev = COCOeval(coco_gt, coco_dt, iouType=t)
            ev.params.imgIds = img_ids
            ev.params.maxDets = [1, 10, max_detections]
            ev.evaluate()
            ev.accumulate()
        table = io.StringIO()
        with contextlib.redirect_stdout(table):
            ev.summarize()
        stats = [float(v) for v in ev.stats]
        if max_detections != 100:  # summarize() reads AP at maxDets=100 whatever maxDets holds
            precision = ev.eval["precision"][:, :, :, 0, 2]  # IoUs x recalls x classes, area "all", max_detections
            stats[0] = float(precision[precision > -1].mean()) if (precision > -1).any() else -1.0
        results.update({f"{t}_{n}": v for n, v in zip(STAT_NAMES, stats)})
        results[f"{t}_summary"] = table.getvalue()
    return results


def evaluate_instances(model, dataset, class_names, *, device=None, iou_types=("segm", "bbox"), batch_size: int = 8):
    """Predict on every image of ``dataset`` and score with pycocotools: returns ``(metrics, predictions)``.

    ``metrics`` as :func:`coco_evaluate`; ``predictions`` the :func:`predict_instances` output (all
    scores kept, as COCO AP needs the whole ranking).
    """
    gt = coco_ground_truth(dataset, class_names)
    images = [dataset[i][0] for i in range(len(dataset))]
    preds = predict_instances(model, images, device=device, batch_size=batch_size)
    return coco_evaluate(gt, preds, iou_types), preds


def mask_iou(masks_a, masks_b) -> np.ndarray:
    """IoU of every mask of ``masks_a`` with every mask of ``masks_b``.

    Parameters
    ----------
    masks_a : (N, H, W) bool array
    masks_b : (M, H, W) bool array

    Returns
    -------
    (N, M) float64 array in [0, 1]; two empty masks have IoU 0.
    """
    a, b = np.asarray(masks_a), np.asarray(masks_b)
    for name, m in (("masks_a", a), ("masks_b", b)):
        if m.ndim != 3:
            raise ValueError(f"`{name}` must be (N, H, W), got shape {m.shape}")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"`masks_a` {a.shape[1:]} and `masks_b` {b.shape[1:]} must have the same height and width")
    pixels = int(np.prod(a.shape[1:]))
    fa = a.reshape(len(a), pixels).astype(bool).astype(np.float64)
    fb = b.reshape(len(b), pixels).astype(bool).astype(np.float64)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def greedy_match(iou, iou_threshold: float = 0.5, scores=None) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching on an IoU matrix, as COCO evaluation does it.

    Predictions are taken from the highest score down; each takes the still unmatched true instance
    it overlaps most, if that IoU is at least ``iou_threshold``; otherwise it stays unmatched (a false
    positive). A true instance is matched at most once, so a duplicate detection is a false positive.

    Parameters
    ----------
    iou : (K, N) float array in [0, 1]
        IoU of prediction ``i`` with true instance ``j``.
    iou_threshold : float in (0, 1]
    scores : (K,) float array, optional
        Confidence of each prediction; default: rows are already sorted by decreasing score.

    Returns
    -------
    list of (pred_index, true_index, iou)
        In the order the predictions were taken.
    """
    iou = np.asarray(iou, dtype=np.float64)
    if iou.ndim != 2:
        raise ValueError(f"`iou` must be a (K, N) matrix, got shape {iou.shape}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"`iou_threshold` must be in (0, 1], got {iou_threshold}")
    k, n = iou.shape
    if scores is None:
        order = np.arange(k)
    else:
        scores = np.asarray(scores)
        if scores.shape != (k,):
            raise ValueError(f"`scores` must be ({k},), one per prediction, got shape {scores.shape}")
        order = np.argsort(-scores, kind="stable")
    taken = np.zeros(n, bool)
    matches = []
    for i in order:
        if n == 0:
            break
        candidates = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou_threshold:
            taken[j] = True
            matches.append((int(i), j, float(iou[i, j])))
    return matches


def match_instances(pred_masks, true_masks, scores=None, iou_threshold: float = 0.5) -> dict:
    """Match predicted to true instance masks with :func:`greedy_match` on their :func:`mask_iou`.

    Parameters
    ----------
    pred_masks : (K, H, W) bool array
    true_masks : (N, H, W) bool array
    scores : (K,) float array, optional
        Confidence of each prediction (default: the given order).
    iou_threshold : float in (0, 1]

    Returns
    -------
    dict
        ``matches``: list of ``(pred_index, true_index, iou)``; ``false_positives``: prediction indices
        left unmatched; ``false_negatives``: true indices left unmatched (missed objects); ``iou``:
        the ``(K, N)`` IoU matrix.
    """
    iou = mask_iou(pred_masks, true_masks)
    matches = greedy_match(iou, iou_threshold, scores)
    matched_pred = {m[0] for m in matches}
    matched_true = {m[1] for m in matches}
    return {"matches": matches,
            "false_positives": [i for i in range(iou.shape[0]) if i not in matched_pred],
            "false_negatives": [j for j in range(iou.shape[1]) if j not in matched_true],
            "iou": iou}
