#!/usr/bin/env python3
"""Time the confusion-matrix metrics of ``utils.metrics`` against torchmetrics and a per-class loop.

    .venv/bin/python benchmarks/bench_metrics.py            # 16 label maps of 512x512, 21 classes, on the CPU

Three ways to get the per-class IoU of one batch (all give the same numbers, checked below):

* ``utils.metrics``: one ``torch.bincount`` over ``truth * C + prediction`` (with range checks);
* ``torchmetrics``: ``MulticlassJaccardIndex(average="none")``, with its default argument validation
  and with ``validate_args=False``;
* a per-class loop: for each class, two boolean masks, their intersection and union (``2 C`` passes).

:func:`run` prints a table and returns a dict of median times (seconds) and speed ratios.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.metrics import ConfusionMatrix, iou_from_confusion  # noqa: E402


def _per_class_loop(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255):
    valid = target != ignore_index
    iou = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for c in range(num_classes):
        p, t = (pred == c) & valid, (target == c) & valid
        union = int((p | t).sum())
        if union:
            iou[c] = int((p & t).sum()) / union
    return iou


def _ours(pred, target, num_classes):
    cm = ConfusionMatrix(num_classes)
    cm.update(pred, target)
    return iou_from_confusion(cm.matrix)


def _timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(batch: int = 16, size: int = 512, num_classes: int = 21, repeats: int = 7, device: str = "cpu",
        seed: int = 0) -> dict:
    """Time the three implementations on random label maps; return medians (s) and ratios.

    Predictions agree with the truth on about 70% of pixels and 5% of the truth is ``ignore_index``.
    """
    from torchmetrics.classification import MulticlassJaccardIndex

    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, (batch, size, size), generator=g)
    noise = torch.randint(0, num_classes, (batch, size, size), generator=g)
    pred = torch.where(torch.rand(batch, size, size, generator=g) < 0.7, target, noise)
    target[torch.rand(batch, size, size, generator=g) < 0.05] = 255
    pred, target = pred.to(device), target.to(device)

    tm_checked = MulticlassJaccardIndex(num_classes, average="none", ignore_index=255).to(device)
    tm_fast = MulticlassJaccardIndex(num_classes, average="none", ignore_index=255, validate_args=False).to(device)

    def torchmetrics_run(metric):
        def f():
            metric.reset()
            metric.update(pred, target)
            return metric.compute()
        return f

    candidates = {
        "utils.metrics": lambda: _ours(pred, target, num_classes),
        "torchmetrics": torchmetrics_run(tm_checked),
        "torchmetrics (validate_args=False)": torchmetrics_run(tm_fast),
        "per-class loop": lambda: _per_class_loop(pred, target, num_classes),
    }
    reference = candidates["utils.metrics"]().cpu()
    for name, fn in candidates.items():  # same answer everywhere, or the timing means nothing
        other = fn().double().cpu()
        present = ~torch.isnan(reference)
        if not torch.allclose(other[present], reference[present], atol=1e-6):
            raise RuntimeError(f"{name} disagrees with utils.metrics: {other} vs {reference}")
    if device.startswith("cuda"):
        for name, fn in list(candidates.items()):
            candidates[name] = (lambda f: (lambda: (f(), torch.cuda.synchronize())))(fn)
    times = {name: _timeit(fn, repeats) for name, fn in candidates.items()}
    ours = times["utils.metrics"]
    result = {
        "setup": f"{batch} label maps of {size}x{size}, {num_classes} classes, {device}, torch {torch.__version__}, "
                 f"{torch.get_num_threads()} threads",
        "seconds": times,
        "speedup_vs_torchmetrics": times["torchmetrics"] / ours,
        "speedup_vs_torchmetrics_unvalidated": times["torchmetrics (validate_args=False)"] / ours,
        "speedup_vs_loop": times["per-class loop"] / ours,
    }
    print(result["setup"])
    for name, t in times.items():
        print(f"  {name:<36} {1000 * t:8.1f} ms   ({t / ours:5.2f} x utils.metrics)")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    run(args.batch, args.size, args.classes, args.repeats, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
