"""tools/promptable_trials.py on a few crops and steps: it trains, evaluates and writes one JSON line per seed; kind
weights repeat the training images of a kind."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tool_loader import load_tool

from utils.nuclei import image_kind

trials = load_tool("promptable_trials")


def test_trials_write_one_line_per_seed_with_the_lessons_measures(tmp_path, capsys):
    train_set, scenes, (tiles, labels, kinds) = trials.lesson_data(n_scenes=4, samples=8, test_scenes=2,
                                                                    tiles_per_image=1)
    assert len(scenes[0]) == 2 and len(tiles) == len(labels) == len(kinds) and set(kinds) <= {"fluo", "color", "bright"}
    # the first tiles of each kind, so that the per-kind figures are exercised
    keep = [next(i for i, k in enumerate(kinds) if k == kind) for kind in sorted(set(kinds))]
    data = (train_set, scenes, ([tiles[i] for i in keep], [labels[i] for i in keep], kinds[keep]))
    out = tmp_path / "trials.jsonl"
    assert trials.main(["--seeds", "0", "1", "--steps", "2", "--first-click", "interior", "--no-grad-clip",
                        "--out", str(out)], data=data) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seed"] for r in lines] == [0, 1]
    assert capsys.readouterr().out.splitlines() == out.read_text().splitlines()
    for r in lines:
        assert r["steps"] == 2 and r["first_click"] == "interior" and r["grad_clip"] is None
        assert len(r["scenes_iou"]) == len(r["nuclei_iou"]) == 5
        assert all(0 <= v <= 1 for v in r["scenes_iou"] + r["nuclei_iou"])
        assert set(r["nuclei_1click_by_kind"]) == set(kinds)
        assert r["nuclei_objects"] == sum(len(np.unique(labels[i][labels[i] > 0])) for i in keep)


def test_kind_weights_repeat_the_training_images_of_a_kind():
    plain = trials.lesson_data(n_scenes=2, samples=4, test_scenes=1, tiles_per_image=1, kind_weights={})[0].datasets[1]
    weighted = trials.lesson_data(n_scenes=2, samples=4, test_scenes=1, tiles_per_image=1,
                                  kind_weights={"color": 3})[0].datasets[1]
    lesson = trials.lesson_data(n_scenes=2, samples=4, test_scenes=1, tiles_per_image=1)[0].datasets[1]
    colour = sum(image_kind(im) == "color" for im in plain.images)
    assert colour > 0 and len(weighted.images) == len(plain.images) + 2 * colour
    assert sum(image_kind(im) == "color" for im in weighted.images) == 3 * colour
    assert trials.LESSON_KIND_WEIGHTS == {"color": 2} and len(lesson.images) == len(plain.images) + colour
    with pytest.raises(ValueError, match="`kind_weights`"):
        trials.lesson_data(n_scenes=2, samples=4, test_scenes=1, tiles_per_image=1, kind_weights={"colour": 2})
    with pytest.raises(SystemExit):
        trials.main(["--kind-weight", "color=two"], data=())


def test_the_nuclei_share_and_object_crops_reach_the_datasets():
    even = trials.lesson_data(n_scenes=2, samples=6, test_scenes=1, tiles_per_image=1)[0]
    assert [len(d) for d in even.datasets] == [6, 6]                  # the lesson: as many crops of each
    more = trials.lesson_data(n_scenes=2, samples=6, test_scenes=1, tiles_per_image=1, nuclei_share=0.75)[0]
    assert [len(d) for d in more.datasets] == [3, 9]
    assert [d.object_crops for d in even.datasets] == [0, 0]                  # the lesson: crops anywhere
    centred = trials.lesson_data(n_scenes=2, samples=6, test_scenes=1, tiles_per_image=1, object_crops=0.5)[0]
    assert [d.object_crops for d in centred.datasets] == [0, 0.5]             # on the nuclei only
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match="`nuclei_share`"):
            trials.lesson_data(n_scenes=2, samples=6, test_scenes=1, tiles_per_image=1, nuclei_share=bad)


def test_the_validation_split_gives_other_held_out_objects():
    _, test_scenes, test_nuclei = trials.lesson_data(n_scenes=2, samples=4, test_scenes=2, tiles_per_image=1)
    _, val_scenes, val_nuclei = trials.lesson_data(n_scenes=2, samples=4, test_scenes=2, tiles_per_image=1, split="val")
    assert not np.array_equal(test_scenes[0][0], val_scenes[0][0])
    assert len(val_nuclei[0]) and len(val_nuclei[0]) != len(test_nuclei[0])
    with pytest.raises(ValueError, match="`split`"):
        trials.lesson_data(split="train")


def test_the_tool_trains_with_lesson_09s_settings():
    # the tool repeats the lesson's recipe: when the notebook's settings change, this fails until the tool follows
    import inspect

    import nbformat

    notebook = nbformat.read(trials.ROOT / "notebooks" / "09_segment_anything.ipynb", as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    run = inspect.signature(trials.run).parameters
    data = inspect.signature(trials.lesson_data).parameters
    assert f"NUCLEI_ZOOM = {trials.NUCLEI_ZOOM}" in code and f"SIZE = {trials.SIZE}" in code
    assert f"steps = by_mode(smoke=4, default={run['steps'].default}," in code
    assert f"pct_start={run['pct_start'].default})" in code and f"grad_clip={run['grad_clip'].default}," in code
    assert "lr=3e-3" in code and run["lr"].default == 3e-3
    assert f"n_scenes = by_mode(smoke=16, default={data['n_scenes'].default}," in code
    assert f"samples = by_mode(smoke=32, default={data['samples'].default}," in code
    assert f"by_mode(smoke=3, default={data['test_scenes'].default}," in code
    assert f"max_tiles_per_image=by_mode(smoke=1, default={data['tiles_per_image'].default}," in code
    depth = run["decoder_depth"].default
    assert f"build_promptable_sam(image_size=128, detail_chans=16, mask_scoring=True, decoder_depth={depth})" in code
    prompts = run["prompts_per_image"].default
    boxes = run["box_fraction"].default
    assert f"clicks=2, prompts_per_image={prompts},\n                           box_fraction={boxes}" in code
    assert f"batch_size={run['batch_size'].default}, shuffle=True" in code and "click_sigma" not in code
    assert f'first_click="{run["first_click"].default}"' in code
    ((kind, weight),) = trials.LESSON_KIND_WEIGHTS.items()
    assert f'repeats = [{weight} if image_kind(image) == "{kind}" else 1 for image in nuclei.images]' in code
    source = inspect.getsource(trials)
    assert "detail_chans=16, mask_scoring=True, click_sigma=click_sigma,\n" in source and "clicks=2," in source
    assert "batch_size=batch_size, shuffle=True" in source
