"""The maintainer's notebook runner: its quality-target table (no notebook is executed here)."""
from pathlib import Path

import pytest
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def runner():
    return load_tool("run_notebooks")


def _entry(wall_s, **results):
    return {"wall_s": wall_s, "results": results}


def test_target_rows_compare_in_the_right_direction(runner):
    entries = {
        "04_fcn_unet.ipynb": _entry(200.0, unet_test_miou=0.92, unet_train_s=190.0),
        "05b_deeplab_at_scale.ipynb": _entry(320.0, deeplab_test_miou=0.84),
    }
    rows = {(r["notebook"], r["figure"]): r for r in runner.target_rows(entries)}
    assert rows[("04_fcn_unet.ipynb", "unet_test_miou")]["met"] is True
    assert rows[("04_fcn_unet.ipynb", "unet_train_s")]["met"] is False  # 190 s > 180 s
    assert rows[("04_fcn_unet.ipynb", "wall_s")]["met"] is True
    assert rows[("05b_deeplab_at_scale.ipynb", "deeplab_test_miou")]["met"] is False
    assert rows[("05b_deeplab_at_scale.ipynb", "wall_s")]["met"] is False  # 320 s > 300 s
    not_measured = rows[("05b_deeplab_at_scale.ipynb", "deeplab_train_s")]
    assert not_measured["met"] is None and not_measured["measured"] is None
    assert rows[("06_mask_rcnn.ipynb", "maskrcnn_mask_ap50")]["met"] is None
    assert ("06_mask_rcnn.ipynb", "wall_s") not in rows  # wall time only for notebooks that ran


def test_targets_name_figures_the_notebooks_record(runner):
    """A target whose figure no notebook records could never be met: every name must appear in its notebook."""
    for notebook, figure, op, bound in runner.TARGETS:
        text = (ROOT / "notebooks" / notebook).read_text()
        assert f"record('{figure}'" in text or f'record(\\"{figure}\\"' in text, (notebook, figure)
        assert op in (">=", "<=", ">") and (bound > 0 or op == ">")


def _bar_notebook(value, maximum):
    ids = {"box": "b0", "pre": "p0", "bar": "f0", "post": "s0"}
    state = {
        ids["box"]: {"model_name": "HBoxModel",
                     "state": {"children": [f"IPY_MODEL_{ids[k]}" for k in ("pre", "bar", "post")]}},
        ids["pre"]: {"model_name": "HTMLModel", "state": {"value": "epochs:\u2007100%"}},
        ids["bar"]: {"model_name": "FloatProgressModel", "state": {"value": value, "max": maximum}},
        ids["post"]: {"model_name": "HTMLModel", "state": {"value": "\u20074/4\u2007[01:42&lt;00:00]"}},
    }
    output = {"output_type": "display_data",
              "data": {"text/plain": "epochs:   0%|          | 0/4 [00:00<?, ?it/s]",
                       WIDGET_VIEW: {"model_id": ids["box"], "version_major": 2, "version_minor": 0}}}
    other = {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    return {"metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}},
            "cells": [{"cell_type": "code", "outputs": [other, output]}]}


def test_freeze_progress_bars_stores_the_final_state(runner):
    nb = _bar_notebook(4.0, 4.0)
    assert runner.freeze_progress_bars(nb) == 1
    outputs = nb["cells"][0]["outputs"]
    assert outputs[1]["data"]["text/plain"] == "epochs: 100%|##########| 4/4 [01:42<00:00]"
    assert outputs[0] == {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    half = _bar_notebook(2.0, 4.0)
    runner.freeze_progress_bars(half)
    assert "|#####     |" in half["cells"][0]["outputs"][1]["data"]["text/plain"]


def test_freeze_progress_bars_leaves_other_widgets_alone(runner):
    nb = _bar_notebook(4.0, 4.0)
    nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]["b0"]["model_name"] = "VBoxModel"
    assert runner.freeze_progress_bars(nb) == 0
    assert nb["cells"][0]["outputs"][1]["data"]["text/plain"].startswith("epochs:   0%")
    assert runner.freeze_progress_bars({"cells": [], "metadata": {}}) == 0


def test_a_strict_improvement_target(runner):
    rows = {(r["notebook"], r["figure"]): r for r in runner.target_rows(
        {"08_imbalance_crf_tracking.ipynb": _entry(100.0, crf_bf_gain=0.0)})}
    assert rows[("08_imbalance_crf_tracking.ipynb", "crf_bf_gain")]["met"] is False   # no change is no improvement
    rows = {(r["notebook"], r["figure"]): r for r in runner.target_rows(
        {"08_imbalance_crf_tracking.ipynb": _entry(100.0, crf_bf_gain=0.01)})}
    assert rows[("08_imbalance_crf_tracking.ipynb", "crf_bf_gain")]["met"] is True
