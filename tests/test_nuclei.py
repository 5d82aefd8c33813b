"""Tests of utils.nuclei: label maps from per-nucleus masks, the shipped subset, datasets, full-mode download."""
from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from utils import data, nuclei

REPO_ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------
# masks_to_labels: hand-made overlaps


def test_masks_to_labels_ids_follow_the_order():
    a = np.zeros((4, 4), bool)
    a[0, 0] = True
    b = np.zeros((4, 4), bool)
    b[3, 2:] = True
    labels = nuclei.masks_to_labels([a, b])
    assert labels.dtype == np.uint16
    expected = np.zeros((4, 4), np.uint16)
    expected[0, 0] = 1
    expected[3, 2:] = 2
    np.testing.assert_array_equal(labels, expected)


def test_masks_to_labels_smaller_object_wins_the_overlap():
    # big: rows 0-2, columns 0-2 (9 px); small: rows 2-3, columns 2-3 (4 px); they share pixel (2, 2).
    big = np.zeros((4, 4), bool)
    big[:3, :3] = True
    small = np.zeros((4, 4), bool)
    small[2:, 2:] = True
    for order, (big_id, small_id) in (([big, small], (1, 2)), ([small, big], (2, 1))):
        labels = nuclei.masks_to_labels(order)
        assert labels[2, 2] == small_id
        assert (labels == big_id).sum() == 8 and (labels == small_id).sum() == 4


@pytest.mark.parametrize("masks, message", [
    (np.zeros((4, 4), bool), "must be \\(N, H, W\\)"),
    (np.zeros((2, 4, 4), bool), "are empty"),
])
def test_masks_to_labels_errors(masks, message):
    with pytest.raises(ValueError, match=message):
        nuclei.masks_to_labels(masks)


def test_masks_to_labels_refuses_an_object_covered_by_smaller_ones():
    big = np.zeros((2, 4), bool)
    big[:, :2] = True  # 4 px, covered by two 2-px objects
    left = np.zeros((2, 4), bool)
    left[:, 0] = True
    right = np.zeros((2, 4), bool)
    right[:, 1] = True
    with pytest.raises(ValueError, match="entirely covered"):
        nuclei.masks_to_labels([big, left, right])


# ----------------------------------------------------------------------------------------------
# image kinds, semantic targets


def test_image_kind():
    dark = np.full((8, 8, 3), 20, np.uint8)
    light = np.full((8, 8, 3), 220, np.uint8)
    tissue = light.copy()
    tissue[..., 2] = 180
    assert [nuclei.image_kind(x) for x in (dark, light, tissue, dark[..., 0])] == ["fluo", "bright", "color", "fluo"]
    with pytest.raises(ValueError, match="`image` must be"):
        nuclei.image_kind(dark.astype(np.float32))


def test_labels_to_semantic_with_and_without_boundary():
    labels = np.zeros((5, 7), np.int32)
    labels[1:4, 1:4] = 1  # a 3x3 nucleus: its ring of 8 pixels is boundary, the centre interior
    labels[1:4, 4:6] = 2  # touching a 3x2 nucleus: all its pixels touch background or nucleus 1
    two = nuclei.labels_to_semantic(labels)
    np.testing.assert_array_equal(two, (labels > 0).astype(np.int64))
    three = nuclei.labels_to_semantic(labels, boundary=True)
    assert three.dtype == np.int64
    assert three[2, 2] == 1 and (three == 1).sum() == 1
    assert (three == 2).sum() == 8 + 6 and (three[labels == 0] == 0).all()
    with pytest.raises(ValueError, match="`labels` must be"):
        nuclei.labels_to_semantic(labels.astype(float))


def test_labels_to_instance_masks():
    labels = np.array([[0, 3, 3], [7, 0, 3]])
    masks, ids = nuclei.labels_to_instance_masks(labels)
    assert ids.tolist() == [3, 7] and masks.shape == (2, 2, 3)
    np.testing.assert_array_equal(masks[0], labels == 3)


# ----------------------------------------------------------------------------------------------
# the Data Science Bowl's layout, converted


def _png_bytes(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _dsb_members(prefix: str = "") -> dict[str, bytes]:
    """Three tiny samples in the Data Science Bowl's layout: two fluorescence, one stained."""
    members = {}
    rng = np.random.default_rng(0)
    for n, (sample_id, colour) in enumerate((("aaa1", False), ("bbb2", False), ("ccc3", True))):
        rgba = np.zeros((40, 48, 4), np.uint8)
        rgba[..., 3] = 255
        grey = rng.integers(0, 60, (40, 48), dtype=np.uint8)
        rgba[..., :3] = grey[..., None]
        if colour:
            rgba[..., 0] = 200
            rgba[..., 1] = 150 + grey // 4
            rgba[..., 2] = 210
        members[f"{prefix}{sample_id}/images/{sample_id}.png"] = _png_bytes(rgba)
        for k in range(n + 2):
            mask = np.zeros((40, 48), np.uint8)
            mask[4 + 10 * k:12 + 10 * k, 5:15 + 3 * k] = 255
            members[f"{prefix}{sample_id}/masks/m{k}.png"] = _png_bytes(mask)
    return members


def _write_tree(root: Path, members: dict[str, bytes]) -> Path:
    for name, body in members.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


@pytest.mark.parametrize("prefix", ["", "stage1_train/"])
def test_find_and_read_dsb_samples(tmp_path, prefix):
    root = _write_tree(tmp_path / "src", _dsb_members(prefix))
    found = nuclei.find_dsb_samples(root)
    assert sorted(found) == ["aaa1", "bbb2", "ccc3"]
    image, labels = nuclei.read_dsb_sample(found["bbb2"])
    assert image.shape == (40, 48) and image.dtype == np.uint8  # grey kept as one channel
    assert labels.dtype == np.uint16 and np.unique(labels).tolist() == [0, 1, 2, 3]
    assert (labels == 2).sum() == 8 * 13
    image, _ = nuclei.read_dsb_sample(found["ccc3"])
    assert image.shape == (40, 48, 3)


def test_find_dsb_samples_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        nuclei.find_dsb_samples(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no Data Science Bowl samples"):
        nuclei.find_dsb_samples(tmp_path)


def test_convert_manifest_and_verify(tmp_path):
    src = _write_tree(tmp_path / "src", _dsb_members())
    out = tmp_path / "out"
    rows = nuclei.convert_dsb(src, out, lambda i: {"aaa1": "train", "bbb2": "test"}.get(i), progress=False)
    assert [r["id"] for r in rows] == ["aaa1", "bbb2"]  # ccc3 left out by split_of
    manifest = nuclei.read_manifest(out)
    assert [(r["id"], r["split"], r["kind"], r["nuclei"], r["height"], r["width"]) for r in manifest] == [
        ("aaa1", "train", "fluo", 2, 40, 48), ("bbb2", "test", "fluo", 3, 40, 48)]
    assert nuclei.verify_manifest(out) == 4
    rgb = nuclei.read_image(out, manifest[0])
    assert rgb.shape == (40, 48, 3) and rgb.dtype == np.uint8
    (out / manifest[1]["label"]).write_bytes(_png_bytes(np.zeros((40, 48), np.uint16)))
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        nuclei.verify_manifest(out)
    (out / manifest[1]["label"]).unlink()
    with pytest.raises(ValueError, match="missing"):
        nuclei.verify_manifest(out)
    with pytest.raises(FileNotFoundError, match="no manifest.csv"):
        nuclei.read_manifest(tmp_path)


def test_build_tool_is_deterministic_on_its_groups(tmp_path):
    """The rebuild script's selection: within a group, ids ordered by the SHA-256 of the id, test first."""
    from tool_loader import load_tool

    build = load_tool("build_nuclei_subset")
    ids = [f"id{i:03d}" for i in range(40)]
    samples = {}
    for sample_id in ids:
        folder = tmp_path / sample_id
        (folder / "images").mkdir(parents=True)
        Image.fromarray(np.full((20, 30), 10, np.uint8)).save(folder / "images" / f"{sample_id}.png")
        samples[sample_id] = folder
    build.GROUPS = {("fluo", 20, 30): (3, 2, 5)}
    chosen = build.select(samples)
    ordered = sorted(ids, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    assert chosen == {**{s: "test" for s in ordered[:3]}, **{s: "val" for s in ordered[3:5]},
                      **{s: "train" for s in ordered[5:10]}}


# ----------------------------------------------------------------------------------------------
# the shipped subset


def test_shipped_subset_verifies_and_is_small():
    rows = nuclei.read_manifest()
    assert nuclei.verify_manifest() == 2 * len(rows)
    size = sum(p.stat().st_size for p in nuclei.shipped_root().rglob("*") if p.is_file())
    assert size < 20e6
    assert {r["kind"] for r in rows if r["split"] == "test"} == set(nuclei.KINDS)
    assert len({r["id"] for r in rows}) == len(rows)  # each image in exactly one split


def test_shipped_labels_match_the_manifest():
    for row in nuclei.read_manifest()[::25]:
        labels = nuclei.read_labels(nuclei.shipped_root(), row)
        assert labels.shape == (row["height"], row["width"])
        assert len(np.unique(labels)) - 1 == row["nuclei"]


def test_segmentation_dataset_contracts():
    crops = nuclei.NucleiSegmentation("train", "fluo", boundary=True, crop_size=64, samples_per_epoch=5)
    assert len(crops) == 5 and crops.num_classes == 3
    image, mask = crops[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert mask.shape == (64, 64) and mask.dtype == torch.int64 and set(mask.unique().tolist()) <= {0, 1, 2}
    whole = nuclei.NucleiSegmentation("test", "color")
    assert len(whole) == 18 and whole.num_classes == 2
    image, mask = whole[0]
    assert image.shape == (3, 256, 320) and mask.shape == (256, 320)


def test_crops_follow_torch_seed():
    crops = nuclei.NucleiSegmentation("val", crop_size=32, samples_per_epoch=4)
    torch.manual_seed(3)
    first = crops[1][0]
    torch.manual_seed(3)
    assert torch.equal(crops[1][0], first)


def test_instance_dataset_targets_agree_with_masks():
    ds = nuclei.NucleiInstances("val", "fluo", crop_size=96, samples_per_epoch=3, min_area=8)
    torch.manual_seed(0)
    image, target = ds[2]
    assert image.shape == (3, 96, 96)
    n = len(target["labels"])
    assert n > 0 and target["masks"].shape == (n, 96, 96) and target["masks"].dtype == torch.uint8
    assert (target["labels"] == 1).all() and (target["area"] >= 8).all()
    from torchvision.ops import masks_to_boxes

    torch.testing.assert_close(target["boxes"], masks_to_boxes(target["masks"]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(split="holdout"), "`split` must be one of"),
    (dict(kinds="phase"), "`kinds` must name some of"),
    (dict(crop_size=8), "`crop_size` must be an int >= 16"),
    (dict(crop_size=300), "larger than images"),
    (dict(samples_per_epoch=10), "needs `crop_size`"),
])
def test_dataset_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nuclei.NucleiSegmentation(**kwargs)


def test_min_area_must_be_positive():
    with pytest.raises(ValueError, match="`min_area` must be an int >= 1"):
        nuclei.NucleiInstances("val", min_area=0)


# ----------------------------------------------------------------------------------------------
# full mode: the original archive through the registry, from a loopback server


def test_prepare_full_downloads_converts_and_keeps_held_out_images(server, cache, online, monkeypatch):
    held_out = [r for r in nuclei.read_manifest() if r["split"] == "test"][:1]
    members = _dsb_members()
    # one sample carries the id of a shipped test image, so it must stay in "test"
    test_id = held_out[0]["id"]
    members = {k.replace("aaa1", test_id): v for k, v in members.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    body = buf.getvalue()
    url = server.serve("/bbbc/stage1_train.zip", body)
    entry = replace(data.REGISTRY["dsb2018_stage1_train"], url=url)
    monkeypatch.setitem(data.REGISTRY, "dsb2018_stage1_train", entry)
    root = nuclei.nuclei_root("full")
    assert root == cache / "dsb2018_labels"
    splits = {r["id"]: r["split"] for r in nuclei.read_manifest(root)}
    assert splits == {test_id: "test", "bbb2": "train", "ccc3": "train"}
    assert nuclei.verify_manifest(root) == 6
    assert nuclei.nuclei_root("full") == root and len(server.requests) == 1  # converted once, fetched once
    train = nuclei.NucleiSegmentation("train", root=root)
    assert len(train) == 2


def test_full_mode_falls_back_to_the_shipped_subset_offline(cache, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert nuclei.nuclei_root("full") == nuclei.shipped_root()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "shipped nuclei subset" in out and "COURSE_OFFLINE" in out
    assert nuclei.nuclei_root("default") == nuclei.shipped_root()


def test_instance_dataset_crop_without_nuclei_gives_empty_target(tmp_path):
    out = tmp_path / "one"
    labels = np.zeros((64, 64), np.uint16)
    labels[2:10, 2:10] = 1
    row = nuclei.write_sample(out, "img1", np.full((64, 64), 30, np.uint8), labels, "train")
    nuclei.write_manifest(out, [row])
    ds = nuclei.NucleiInstances("train", root=out, crop_size=16, samples_per_epoch=50)
    torch.manual_seed(0)
    targets = [ds[i][1] for i in range(50)]
    empty = [t for t in targets if len(t["labels"]) == 0]
    assert empty, "a 16-px crop of a 64-px image with one nucleus in a corner is mostly empty"
    assert all(t["boxes"].shape == (0, 4) and t["masks"].shape == (0, 16, 16) for t in empty)


def test_labels_from_prediction_splits_touching_nuclei_at_their_boundaries():
    # two 4x4 nuclei side by side: interiors (1) apart, their rings (2) touching
    classes = np.zeros((6, 10), np.int64)
    classes[1:5, 1:9] = 2
    classes[2:4, 2:4] = 1
    classes[2:4, 6:8] = 1
    labels = nuclei.labels_from_prediction(classes)
    assert labels.dtype == np.int32 and np.unique(labels).tolist() == [0, 1, 2]
    assert (labels > 0).sum() == 32 and (labels == 1).sum() == (labels == 2).sum() == 16
    assert labels[2, 2] != labels[2, 7]
    ring_only = np.zeros((5, 5), np.int64)
    ring_only[1:4, 1:4] = 2
    assert nuclei.labels_from_prediction(ring_only).max() == 0  # no interior, no nucleus


@pytest.mark.parametrize("classes, message", [
    (np.zeros((2, 2, 2), np.int64), "must be a \\(H, W\\) integer array"),
    (np.zeros((3, 3)), "must be a \\(H, W\\) integer array"),
    (np.full((3, 3), 3), "holds \\[3\\]"),
])
def test_labels_from_prediction_errors(classes, message):
    with pytest.raises(ValueError, match=message):
        nuclei.labels_from_prediction(classes)


def test_labels_from_prediction_drops_small_interiors():
    classes = np.zeros((8, 12), np.int64)
    classes[1:7, 1:7] = 2
    classes[2:6, 2:6] = 1          # a 16-px interior
    classes[3:5, 8:10] = 2
    classes[4, 9] = 1              # a 1-px speck of interior inside a small ring
    assert nuclei.labels_from_prediction(classes).max() == 2
    kept = nuclei.labels_from_prediction(classes, min_interior=1)
    assert kept.max() == 1 and (kept == 1).sum() == 36
    with pytest.raises(ValueError, match="`min_interior` must be an int >= 0"):
        nuclei.labels_from_prediction(classes, min_interior=-1)


def test_labels_from_prediction_min_distance_splits_a_joined_interior():
    # two 7x7 interiors joined by a 1-px bridge: one piece, two distance peaks 10 px apart
    classes = np.zeros((11, 22), np.int64)
    classes[1:10, 1:21] = 2
    classes[2:9, 2:9] = 1
    classes[2:9, 12:19] = 1
    classes[5, 9:12] = 1
    assert nuclei.labels_from_prediction(classes).max() == 1
    split = nuclei.labels_from_prediction(classes, min_distance=5)
    assert split.max() == 2 and split[5, 4] != split[5, 16]
    assert nuclei.labels_from_prediction(classes, min_distance=12).max() == 1  # peaks closer than that: one
    with pytest.raises(ValueError, match="`min_distance` must be an int >= 1 or None"):
        nuclei.labels_from_prediction(classes, min_distance=0)
