#!/usr/bin/env python3
"""Re-execute notebooks top to bottom, store their fresh outputs, and refresh the benchmark summary.

    .venv/bin/python tools/run_notebooks.py                     # every notebook, default mode, offline
    .venv/bin/python tools/run_notebooks.py notebooks/04_*.ipynb --mode smoke --no-save

Each notebook runs in a fresh kernel with its folder as working directory, ``COURSE_MODE`` set to
``--mode`` and, unless ``--online``, ``COURSE_OFFLINE=1`` (the stored outputs are the offline path, the
one CI and most learners see). What a notebook records with ``utils.results.record`` is gathered with
its wall time, mode and device into ``benchmarks/summary.json`` (merged, one entry per notebook) and
``benchmarks/SUMMARY.md``. Run it on a quiet machine: the times are part of the summary.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_JSON = ROOT / "benchmarks" / "summary.json"
SUMMARY_MD = ROOT / "benchmarks" / "SUMMARY.md"


def machine() -> str:
    import torch

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"{platform.machine()} {os.cpu_count()} cores, {dev}, torch {torch.__version__}"


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def freeze_progress_bars(nb) -> int:
    """Give each stored tqdm progress bar the text of its final state; return how many were changed.

    ``tqdm.auto`` draws a bar as an ipywidgets ``HBox(HTML, FloatProgress, HTML)``. JupyterLab redraws it
    from the widget state saved in the notebook's metadata, but static viewers (GitHub, nbviewer) show
    the output's ``text/plain``, which tqdm wrote when the bar was created: "0%". This puts the final
    prefix, bar and suffix there instead, e.g. ``epochs: 100%|##########| 4/4 [01:42<00:00, ...]``.
    """
    import html

    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = 0
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            box = state.get(view["model_id"]) if view else None
            if not box or box.get("model_name") != "HBoxModel":
                continue
            parts = [state.get(ref.replace("IPY_MODEL_", ""), {}) for ref in box["state"].get("children", [])]
            if [p.get("model_name") for p in parts] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
                continue
            prefix, bar, suffix = (p["state"] for p in parts)
            frac = min(1.0, max(0.0, bar.get("value", 0) / bar["max"])) if bar.get("max") else 0.0
            filled = int(round(10 * frac))
            text = f"{html.unescape(prefix.get('value', ''))}|{'#' * filled}{' ' * (10 - filled)}|" \
                   f"{html.unescape(suffix.get('value', ''))}"
            out["data"]["text/plain"] = text.replace("\u2007", " ")
            changed += 1
    return changed


def run_one(path: Path, mode: str, offline: bool, timeout: int, save: bool) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    results_file = Path(tempfile.mkstemp(suffix=".json")[1])
    results_file.write_text("{}")
    env_backup = dict(os.environ)
    os.environ.update(COURSE_MODE=mode, COURSE_RESULTS=str(results_file), MPLBACKEND="module://matplotlib_inline.backend_inline")
    if offline:
        os.environ["COURSE_OFFLINE"] = "1"
    else:
        os.environ.pop("COURSE_OFFLINE", None)
    t0 = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    wall = time.perf_counter() - t0
    figures = json.loads(results_file.read_text() or "{}")
    results_file.unlink()
    for cell in nb.cells:  # keep stored notebooks free of per-run noise
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("jupytext", None)  # authoring-tool metadata
    freeze_progress_bars(nb)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    if save:
        nbformat.write(nb, path)
    import torch

    return {"notebook": path.name, "mode": mode, "offline": offline, "wall_s": round(wall, 1),
            "device": "cuda" if torch.cuda.is_available() else "cpu", "machine": machine(),
            "date": time.strftime("%Y-%m-%d"), "results": figures}


HELPERS_JSON = ROOT / "benchmarks" / "helpers.json"

# The course plan's quality targets (default mode, offline, 2-core CPU): (notebook, figure, op, bound).
# "wall_s" is the notebook's own wall time; any other figure is one the notebook records.
NOTEBOOK_WALL_S = 300
TARGETS = [
    ("04_fcn_unet.ipynb", "unet_test_miou", ">=", 0.90),
    ("04_fcn_unet.ipynb", "unet_train_s", "<=", 180),
    ("04b_unet_real_nuclei.ipynb", "nuclei_unet_fg_iou", ">=", 0.80),
    ("04b_unet_real_nuclei.ipynb", "nuclei_unet_f1", ">=", 0.75),
    ("04b_unet_real_nuclei.ipynb", "nuclei_unet_train_s", "<=", 180),
    ("05b_deeplab_at_scale.ipynb", "deeplab_test_miou", ">=", 0.85),
    ("05b_deeplab_at_scale.ipynb", "deeplab_train_s", "<=", 180),
    ("06_mask_rcnn.ipynb", "maskrcnn_mask_ap50", ">=", 0.70),
    ("06_mask_rcnn.ipynb", "maskrcnn_train_s", "<=", 240),
    ("06_mask_rcnn.ipynb", "nuclei_maskrcnn_mask_ap50", ">=", 0.50),
    ("06_mask_rcnn.ipynb", "nuclei_maskrcnn_train_s", "<=", 240),
    ("07_augmentation.ipynb", "aug_gain", ">=", 0.03),
    ("08_imbalance_crf_tracking.ipynb", "crf_bf_gain", ">", 0.0),
    ("09_segment_anything.ipynb", "promptable_scenes_1click_iou", ">=", 0.80),
    ("09_segment_anything.ipynb", "promptable_nuclei_1click_iou", ">=", 0.70),
    ("09_segment_anything.ipynb", "promptable_train_s", "<=", 180),
    ("10_segformer.ipynb", "segformer_test_miou", ">=", 0.85),
    ("10_segformer.ipynb", "segformer_train_s", "<=", 240),
    ("10b_mask2former.ipynb", "mask2former_mask_ap50", ">=", 0.50),
    ("10b_mask2former.ipynb", "mask2former_train_s", "<=", 240),
    ("11_panoptic_segmentation.ipynb", "panoptic_deeplab_pq", ">=", 0.60),
    ("11_panoptic_segmentation.ipynb", "panoptic_deeplab_train_s", "<=", 240),
]


def target_rows(entries: dict) -> list[dict]:
    """Each quality target next to its measured value: ``met`` is True, False, or None (not measured yet).

    Every notebook in ``entries`` also gets the plan's wall-time bound (``NOTEBOOK_WALL_S``).
    """
    targets = list(TARGETS) + [(name, "wall_s", "<=", NOTEBOOK_WALL_S) for name in sorted(entries)]
    rows = []
    for notebook, figure, op, bound in targets:
        entry = entries.get(notebook, {})
        value = entry.get("wall_s") if figure == "wall_s" else entry.get("results", {}).get(figure)
        compare = {">=": lambda v: v >= bound, "<=": lambda v: v <= bound, ">": lambda v: v > bound}[op]
        met = None if value is None else compare(value)
        rows.append({"notebook": notebook, "figure": figure, "target": f"{op} {bound}", "measured": value,
                     "met": met})
    return rows


def write_summary(entries: dict) -> None:
    """Write summary.json (notebooks) and SUMMARY.md (notebooks + helpers.json from run_benchmarks.py)."""
    SUMMARY_JSON.parent.mkdir(exist_ok=True)
    SUMMARY_JSON.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    lines = ["# Benchmark summary", "",
             "Written by `tools/run_notebooks.py` (notebooks, default mode, offline) and",
             "`benchmarks/run_benchmarks.py` (helper benchmarks). Times are wall-clock seconds on the machine named.", "",
             "## Notebooks", "",
             "| notebook | mode | offline | wall s | device | figures |", "|---|---|---|---|---|---|"]
    for name in sorted(entries):
        e = entries[name]
        figs = ", ".join(f"{k}={v}" for k, v in e.get("results", {}).items()) or "-"
        lines.append(f"| {name} | {e['mode']} | {e['offline']} | {e['wall_s']} | {e['device']} | {figs} |")
    machines = sorted({e.get("machine", "?") for e in entries.values()})
    lines += ["", "Machines: " + "; ".join(machines), ""]
    lines += ["## Quality targets", "", "From the course plan (default mode, offline, 2-core CPU).", "",
              "| notebook | figure | target | measured | met |", "|---|---|---|---|---|"]
    for row in target_rows(entries):
        met = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        measured = "-" if row["measured"] is None else row["measured"]
        lines.append(f"| {row['notebook']} | {row['figure']} | {row['target']} | {measured} | {met} |")
    lines.append("")
    if HELPERS_JSON.exists():
        helpers = json.loads(HELPERS_JSON.read_text())
        lines += ["## Helpers", "", f"Machine: {helpers.get('machine', '?')}, {helpers.get('date', '?')}", "",
                  "| benchmark | figure | value |", "|---|---|---|"]
        for bench, figures in sorted(helpers.get("results", {}).items()):
            flat = {}
            for k, v in figures.items():
                flat.update({f"{k}: {k2}": v2 for k2, v2 in v.items()} if isinstance(v, dict) else {k: v})
            for k, v in flat.items():
                lines.append(f"| {bench} | {k} | {round(v, 4) if isinstance(v, float) else v} |")
        lines.append("")
    SUMMARY_MD.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="paths or globs (default: notebooks/*.ipynb)")
    ap.add_argument("--mode", default="default", choices=("smoke", "default", "full"))
    ap.add_argument("--online", action="store_true", help="allow downloads (default: COURSE_OFFLINE=1)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    ap.add_argument("--no-save", action="store_true", help="execute only; keep the stored notebook and summary")
    args = ap.parse_args(argv)
    patterns = args.notebooks or [str(ROOT / "notebooks" / "*.ipynb")]
    paths = sorted({Path(p).resolve() for pat in patterns for p in glob.glob(pat)})
    if not paths:
        print(f"no notebooks match {patterns}", file=sys.stderr)
        return 2
    entries = json.loads(SUMMARY_JSON.read_text()) if SUMMARY_JSON.exists() else {}
    failed = []
    for path in paths:
        print(f"running {path.name} ({args.mode}, {'online' if args.online else 'offline'}) ...", flush=True)
        try:
            entry = run_one(path, args.mode, not args.online, args.timeout, not args.no_save)
        except Exception as exc:  # report and go on with the next notebook; exit status says it failed
            print(f"  FAILED: {type(exc).__name__}: {str(exc)[-2000:]}", flush=True)
            failed.append(path.name)
            continue
        print(f"  {entry['wall_s']} s  {entry['results']}", flush=True)
        if not args.no_save and args.mode == "default" and not args.online:
            entries[path.name] = entry
    if not args.no_save:
        write_summary(entries)
    for row in target_rows(entries):
        if row["met"] is False:
            print(f"target missed: {row['notebook']} {row['figure']} = {row['measured']} (target {row['target']})")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
