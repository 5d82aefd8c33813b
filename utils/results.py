"""Record the figures a notebook reports (quality, timings) for the benchmark summary, and state seed spreads.

``record("unet_val_miou", 0.93)`` returns the value unchanged and, when the notebook runs under
``tools/run_notebooks.py`` (which sets ``COURSE_RESULTS`` to a JSON file), also stores it there; the
tool then writes ``benchmarks/summary.json`` and ``benchmarks/SUMMARY.md``. Outside that tool it only
returns the value, so notebooks call it freely.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path


def record(key: str, value, fmt: str | None = None):
    """Store ``value`` (a number or short string) under ``key`` for the benchmark summary; return it."""
    if not isinstance(key, str) or not key.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"`key` must be a short identifier like 'unet_val_miou', got {key!r}")
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"`value` for {key!r} is {value}; record finite numbers only")
    if not isinstance(value, (int, float, str, bool)):
        raise ValueError(f"`value` for {key!r} must be a number or string, got {type(value).__name__}")
    path = os.environ.get("COURSE_RESULTS")
    if path:
        p = Path(path)
        data = json.loads(p.read_text()) if p.exists() and p.stat().st_size else {}
        data[key] = round(value, 4) if isinstance(value, float) else value
        p.write_text(json.dumps(data, indent=1))
    return value


def mean_range(values) -> str:
    """A model's scores over several seeds as ``"mean (lowest-highest)"``, or ``"score (one seed)"``.

    The form every comparison over seeds in the course prints: a difference between two models counts only when it
    is larger than these ranges.
    """
    import numpy as np

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("`values` is empty: give at least one score")
    if values.size == 1:
        return f"{values[0]:.3f} (one seed)"
    return f"{values.mean():.3f} ({values.min():.3f}-{values.max():.3f})"
