"""A training loop for semantic segmentation that fits on one screen: ``fit``, ``evaluate``, ``predict``.

* Batches are ``(images, masks)``: ``images`` ``(B, 3, H, W)`` float32, ``masks`` ``(B, H, W)`` int64
  class ids (``ignore_index`` where unlabelled), as the datasets of ``utils.datasets`` give them.
* A model is called as ``model(images)`` and returns ``(B, C, H, W)`` logits, or a dict whose ``"out"``
  holds them (torchvision's segmentation models); both work everywhere here.
* The same code runs on the CPU and the GPU; on CUDA, ``amp=True`` adds mixed precision (float16
  autocast with a gradient scaler).
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch

from .metrics import ConfusionMatrix
from .runtime import get_device, seed_everything
from .validation import check_int

__all__ = ["evaluate", "fit", "logits_of", "predict", "train_and_score"]

PER_BATCH_SCHEDULERS = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


def logits_of(output) -> torch.Tensor:
    """The ``(B, C, H, W)`` logits of a model's output: the tensor itself, or ``output["out"]``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) and "out" in output:
        return output["out"]
    raise ValueError("a segmentation model must return (B, C, H, W) logits or a dict with key 'out', got "
                     + (f"a dict with keys {sorted(output)}" if isinstance(output, dict) else type(output).__name__))


def _resolve_device(device, model=None):
    """``device`` if given; else the device ``model``'s parameters live on; else the best available."""
    if device is not None:
        return torch.device(device)
    if model is not None:
        for tensor in model.parameters():
            return tensor.device
    return get_device()


def _loss_to(loss_fn, device):
    """Move a loss that is an ``nn.Module`` (its class weights are buffers) to ``device``; return it.

    ``nn.CrossEntropyLoss(weight=...)`` keeps its weight where it was made, on the CPU, and fails on a
    CUDA model's logits: the loop moves it with the model.
    """
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(device)
    return loss_fn


@torch.no_grad()
def evaluate(model, loader, num_classes: int, device=None, loss_fn=None, ignore_index: int | None = 255) -> dict:
    """Score ``model`` on every batch of ``loader`` (evaluation mode, no gradients).

    ``device`` defaults to the one the model's parameters are on; a different one moves the model there.

    Returns
    -------
    dict
        ``"pixel_accuracy"``, ``"miou"``, ``"mdice"`` floats; ``"iou"``, ``"dice"`` ``(C,)`` float64 tensors
        (NaN for classes absent from truth and prediction); ``"loss"`` (mean over batches) if ``loss_fn``.
    """
    device = _resolve_device(device, model)
    model.to(device)
    loss_fn = _loss_to(loss_fn, device)
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index)
    total, batches = 0.0, 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        logits = logits_of(model(images))
        if loss_fn is not None:
            total += float(loss_fn(logits, masks))
            batches += 1
        cm.update(logits, masks)
    model.train(was_training)
    if cm._matrix is None:
        raise ValueError("`loader` yielded no batch to evaluate")
    result = cm.compute()
    if loss_fn is not None:
        result["loss"] = total / batches
    return result


@torch.no_grad()
def predict(model, images, device=None) -> torch.Tensor:
    """Predicted class ids of a batch: ``(B, 3, H, W)`` (or one ``(3, H, W)``) float32 -> ``(B, H, W)`` int64 on CPU.

    ``device`` defaults to the one the model's parameters are on; a different one moves the model there.
    """
    if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4):
        raise ValueError(f"`images` must be a (B, C, H, W) or (C, H, W) tensor, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    device = _resolve_device(device, model)
    model.to(device)
    batch = images.unsqueeze(0) if images.ndim == 3 else images
    was_training = model.training
    model.eval()
    labels = logits_of(model(batch.to(device))).argmax(1).cpu()
    model.train(was_training)
    return labels


def fit(model, train_loader, val_loader, loss_fn, optimizer, epochs: int, num_classes: int, *, device=None,
        scheduler=None, ignore_index: int | None = 255, early_stopping: int | None = None,
        checkpoint_path=None, monitor: str = "val_miou", amp: bool = True, seed: int | None = None,
        progress: bool = True) -> list[dict]:
    """Train ``model`` for ``epochs`` epochs, scoring it on ``val_loader`` after each, and keep the best weights.

    Parameters
    ----------
    model : torch.nn.Module
        Returns ``(B, C, H, W)`` logits (or a dict with ``"out"``); moved to ``device``.
    train_loader, val_loader : iterables of (images, masks)
        ``images`` (B, 3, H, W) float32, ``masks`` (B, H, W) int64.
    loss_fn : callable
        ``loss_fn(logits, masks) -> scalar tensor``; an ``nn.Module`` loss (class weights included) is
        moved to ``device`` with the model.
    optimizer : torch.optim.Optimizer
    epochs : int
        Number of passes over ``train_loader``.
    num_classes : int
        For the metrics.
    device : str or torch.device, optional
        Default: :func:`utils.runtime.get_device` (CUDA, then MPS, then CPU).
    scheduler : LR scheduler, optional
        ``OneCycleLR`` and ``CyclicLR`` are stepped after every batch, ``ReduceLROnPlateau`` after every
        epoch with the monitored value, any other after every epoch.
    ignore_index : int or None
        Label of unlabelled pixels (left out of the metrics; pass the same to the loss).
    early_stopping : int, optional
        Stop when the monitored value has not improved for this many epochs.
    checkpoint_path : str or Path, optional
        Where to save the best ``state_dict`` (``torch.save``; load it back with ``weights_only=True``).
    monitor : str
        History key that decides "best": maximised unless its name contains ``"loss"``.
    amp : bool
        Mixed precision on CUDA (ignored elsewhere).
    seed : int, optional
        Seed Python, NumPy and torch first (:func:`utils.runtime.seed_everything`).
    progress : bool
        Show a tqdm progress bar (epochs, with the latest metrics) and one per epoch over the batches.

    Returns
    -------
    list of dict
        One per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_miou``, ``val_pixel_accuracy``,
        ``lr`` (the rate of the epoch's last step) and ``time_s`` (seconds for the epoch, training and validation).
        On return ``model`` holds the weights of the best epoch.
    """
    check_int("epochs", epochs)
    check_int("early_stopping", early_stopping, none_ok=True, note=" (patience in epochs)")
    valid_keys = ("train_loss", "val_loss", "val_miou", "val_pixel_accuracy")
    if monitor not in valid_keys:
        raise ValueError(f"`monitor` must be one of {valid_keys}, got {monitor!r}")
    from tqdm.auto import tqdm

    if seed is not None:
        seed_everything(seed)
    device = _resolve_device(device)
    model.to(device)
    loss_fn = _loss_to(loss_fn, device)
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    per_batch = isinstance(scheduler, PER_BATCH_SCHEDULERS)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    sign = -1.0 if "loss" in monitor else 1.0
    best, best_state, stale, history = -math.inf, None, 0, []

    epoch_bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not progress)
    for epoch in epoch_bar:
        start = time.perf_counter()
        model.train()
        total, batches, lr = 0.0, 0, optimizer.param_groups[0]["lr"]
        for images, masks in tqdm(train_loader, desc=f"epoch {epoch}", leave=False, disable=not progress):
            images, masks = images.to(device), masks.to(device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(logits_of(model(images)), masks)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]  # the rate this step used
            if scheduler is not None and per_batch:
                scheduler.step()
            total, batches = total + float(loss.detach()), batches + 1
        scores = evaluate(model, val_loader, num_classes, device, loss_fn, ignore_index)
        row = {"epoch": epoch, "train_loss": total / max(batches, 1), "val_loss": scores["loss"],
               "val_miou": scores["miou"], "val_pixel_accuracy": scores["pixel_accuracy"],
               "lr": lr, "time_s": time.perf_counter() - start}
        if scheduler is not None and plateau:
            scheduler.step(row[monitor])
        elif scheduler is not None and not per_batch:
            scheduler.step()
        history.append(row)
        epoch_bar.set_postfix(train_loss=f"{row['train_loss']:.3f}", val_miou=f"{row['val_miou']:.3f}")

        value = sign * row[monitor]
        if value > best:
            best, stale = value, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            if checkpoint_path is not None:
                Path(checkpoint_path).parent.mkdir(parents=True, exist_ok=True)
                torch.save(best_state, checkpoint_path)
        else:
            stale += 1
            if early_stopping is not None and stale >= early_stopping:
                break
    epoch_bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def train_and_score(make_model, train_data, val_data, test_data, *, num_classes: int, epochs: int,
                    batch_size: int = 16, lr: float = 5e-3, seed: int = 0, device=None, loss_fn=None,
                    progress: bool = False) -> dict:
    """Train a fresh model with the course's recipe and score it on held-out data: one call per comparison row.

    The recipe of lessons 04 and 05: ``seed_everything(seed)`` before the model is built (so the seed fixes
    the initial weights and the data order), channels-last weights, AdamW (weight decay 1e-4) with a
    one-cycle schedule (20% warm-up), :func:`fit` keeping the best validation epoch, then :func:`evaluate`
    on ``test_data``. Models compared with it get the same data, steps and schedule.

    Parameters
    ----------
    make_model : callable
        ``make_model()`` returns a new, untrained model.
    train_data, val_data, test_data : Dataset
        ``(image, mask)`` datasets (batches of 100 are used for validation and test).
    num_classes, epochs, batch_size, lr, seed, device
        As for :func:`fit`.
    loss_fn : callable, optional
        Default ``nn.CrossEntropyLoss(ignore_index=255)``.
    progress : bool
        Progress bars of :func:`fit`.

    Returns
    -------
    dict
        ``"model"`` (best validation epoch), ``"history"``, ``"seconds"`` (training wall time),
        ``"steps"`` and ``"test"`` (:func:`evaluate`'s scores).
    """
    from torch.utils.data import DataLoader

    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    seed_everything(seed)
    model = make_model().to(memory_format=torch.channels_last)
    train_loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, drop_last=True)
    if len(train_loader) == 0:
        raise ValueError(f"`train_data` has {len(train_data)} samples, fewer than one batch of {batch_size}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, pct_start=0.2,
                                                    total_steps=epochs * len(train_loader))
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255) if loss_fn is None else loss_fn
    start = time.perf_counter()
    history = fit(model, train_loader, DataLoader(val_data, batch_size=100), loss_fn, optimizer, epochs,
                  num_classes, device=device, scheduler=scheduler, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    test = evaluate(model, DataLoader(test_data, batch_size=100), num_classes, device=device)
    return {"model": model, "history": history, "seconds": seconds, "steps": epochs * len(train_loader),
            "test": test}
