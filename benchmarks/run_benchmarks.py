#!/usr/bin/env python3
"""Benchmarks of the helper package, written to benchmarks/helpers.json and benchmarks/SUMMARY.md.

    .venv/bin/python benchmarks/run_benchmarks.py

* scenes: how long `utils.scenes.make_scene` takes for 1000 scenes of 128x128 (the lessons' data).
* metrics: the confusion-matrix metrics against torchmetrics and a per-class loop (benchmarks/bench_metrics.py).
Run on a quiet machine; the numbers are wall-clock.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def bench_scenes(n: int = 1000, size: int = 128) -> dict:
    from utils.scenes import make_scene

    make_scene(0, size)  # warm-up (imports, caches)
    t0 = time.perf_counter()
    for i in range(n):
        make_scene(i, size)
    total = time.perf_counter() - t0
    return {"scenes": n, "size": size, "total_s": round(total, 2), "ms_per_scene": round(1000 * total / n, 2)}


def main() -> int:
    from run_notebooks import HELPERS_JSON, SUMMARY_JSON, machine, write_summary

    results = {"scenes": bench_scenes()}
    print("scenes:", results["scenes"], flush=True)
    try:
        import bench_metrics
    except ImportError:
        bench_metrics = None
    if bench_metrics is not None:
        results["metrics"] = bench_metrics.run()
        print("metrics:", results["metrics"], flush=True)
    HELPERS_JSON.write_text(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d"), "results": results},
                                       indent=1) + "\n")
    entries = json.loads(SUMMARY_JSON.read_text()) if SUMMARY_JSON.exists() else {}
    write_summary(entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
