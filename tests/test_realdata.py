"""Tests of utils.realdata: the readers, on tiny folders written here in each dataset's real layout.

These test the readers only; nothing is downloaded.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from utils.datasets import detection_collate
from utils.realdata import (IGNORE_INDEX, OxfordPetTrimaps, PennFudanInstances, instance_id_map_to_target,
                            trimap_to_mask)

# a 4x5 trimap worked out by hand: 1 pet, 2 background, 3 border
TRIMAP = np.array([
    [2, 2, 2, 2, 2],
    [2, 3, 3, 3, 2],
    [2, 3, 1, 3, 2],
    [2, 3, 3, 3, 2],
], dtype=np.uint8)
MASK = np.array([
    [0, 0, 0, 0, 0],
    [0, 255, 255, 255, 0],
    [0, 255, 1, 255, 0],
    [0, 255, 255, 255, 0],
])


def test_trimap_to_mask_by_hand():
    out = trimap_to_mask(TRIMAP)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, MASK)


@pytest.mark.parametrize("bad, message", [
    (np.array([[0, 1], [2, 3]], dtype=np.uint8), r"holds values \[0\]"),
    (np.array([[1, 2], [3, 4]], dtype=np.uint8), r"holds values \[4\]"),
    (np.ones((2, 2, 3), dtype=np.uint8), r"must be a \(H, W\) integer array, got shape \(2, 2, 3\)"),
    (np.ones((2, 2), dtype=np.float32), "dtype float32"),
])
def test_trimap_to_mask_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match="`trimap`.*" + message):
        trimap_to_mask(bad)


def write_pets(tmp_path, names=("Abyssinian_1", "beagle_7"), test_names=("pug_3",)):
    images, annotations = tmp_path / "img_root", tmp_path / "ann_root"
    (images / "images").mkdir(parents=True)
    (annotations / "annotations" / "trimaps").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in (*names, *test_names):
        Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)).save(images / "images" / f"{name}.jpg")
        Image.fromarray(TRIMAP).save(annotations / "annotations" / "trimaps" / f"{name}.png")
    # files that no split lists must be ignored: a hidden ._ file and a non-image file
    (annotations / "annotations" / "trimaps" / f"._{names[0]}.png").write_bytes(b"\x00\x05\x16\x07junk")
    (images / "images" / "Abyssinian_100.mat").write_bytes(b"MATLAB 5.0")
    (annotations / "annotations" / "trainval.txt").write_text("".join(f"{n} 1 1 1\n" for n in names))
    (annotations / "annotations" / "test.txt").write_text("".join(f"{n} 2 2 2\n" for n in test_names))
    return images, annotations


def test_oxford_pet_reader(tmp_path):
    images, annotations = write_pets(tmp_path)
    ds = OxfordPetTrimaps(images, annotations, split="trainval")
    assert len(ds) == 2 and ds.names == ["Abyssinian_1", "beagle_7"]
    assert ds.num_classes == 2 and ds.ignore_index == IGNORE_INDEX == 255
    image, mask = ds[1]
    assert image.shape == (3, 4, 5) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert mask.dtype == torch.int64
    np.testing.assert_array_equal(mask.numpy(), MASK)
    test = OxfordPetTrimaps(images, annotations, split="test")
    assert test.names == ["pug_3"]
    assert len(OxfordPetTrimaps(images, annotations, limit=1)) == 1


def test_oxford_pet_reader_applies_joint_transform(tmp_path):
    images, annotations = write_pets(tmp_path)

    def flip(image, mask):
        return {"image": image[:, ::-1].copy(), "mask": mask[:, ::-1].copy()}

    _, mask = OxfordPetTrimaps(images, annotations, transform=flip)[0]
    np.testing.assert_array_equal(mask.numpy(), MASK[:, ::-1])


def test_oxford_pet_reader_errors(tmp_path):
    images, annotations = write_pets(tmp_path)
    with pytest.raises(ValueError, match="`split` must be 'trainval' or 'test', got 'train'"):
        OxfordPetTrimaps(images, annotations, split="train")
    with pytest.raises(FileNotFoundError, match="`images_root` .* has no images/ folder"):
        OxfordPetTrimaps(tmp_path / "nowhere", annotations)
    with pytest.raises(FileNotFoundError, match="`annotations_root` .* has no annotations/trimaps/ folder"):
        OxfordPetTrimaps(images, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="`limit` must be an int >= 1 or None"):
        OxfordPetTrimaps(images, annotations, limit=0)
    bad = TRIMAP.copy()
    bad[0, 0] = 7
    Image.fromarray(bad).save(annotations / "annotations" / "trimaps" / "beagle_7.png")
    with pytest.raises(ValueError, match=r"beagle_7.png: `trimap` holds values \[7\]"):
        OxfordPetTrimaps(images, annotations)[1]
    Image.fromarray(np.ones((3, 3), np.uint8)).save(annotations / "annotations" / "trimaps" / "beagle_7.png")
    with pytest.raises(ValueError, match=r"beagle_7.jpg is \(4, 5\) but its trimap is \(3, 3\)"):
        OxfordPetTrimaps(images, annotations)[1]


# a 6x7 Penn-Fudan-style id map, two pedestrians (ids 1 and 2), boxes and areas worked out by hand
ID_MAP = np.array([
    [0, 0, 0, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 2, 0],
    [0, 1, 0, 0, 2, 2, 0],
    [0, 0, 0, 0, 2, 2, 2],
    [0, 0, 0, 0, 0, 0, 0],
], dtype=np.uint8)
BOXES = [[1, 1, 2, 3], [4, 2, 6, 4]]
AREAS = [5, 6]


def test_instance_target_by_hand():
    t = instance_id_map_to_target(ID_MAP, image_id=3)
    assert t["boxes"].tolist() == BOXES and t["boxes"].dtype == torch.float32
    assert t["area"].tolist() == AREAS and t["area"].dtype == torch.float32
    assert t["labels"].tolist() == [1, 1] and t["labels"].dtype == torch.int64
    assert t["masks"].shape == (2, 6, 7) and t["masks"].dtype == torch.uint8
    assert t["iscrowd"].tolist() == [0, 0] and t["image_id"] == 3


def test_instance_boxes_match_torchvision():
    from torchvision.ops import masks_to_boxes

    rng = np.random.default_rng(1)
    id_map = rng.integers(0, 6, (40, 50)).astype(np.uint8)
    t = instance_id_map_to_target(id_map)
    torch.testing.assert_close(t["boxes"], masks_to_boxes(t["masks"].bool()))


def test_instance_target_of_empty_map():
    t = instance_id_map_to_target(np.zeros((4, 4), np.uint8))
    assert t["boxes"].shape == (0, 4) and t["masks"].shape == (0, 4, 4) and t["labels"].shape == (0,)


def write_penn_fudan(tmp_path, n=2):
    root = tmp_path / "penn_fudan" / "PennFudanPed"
    (root / "PNGImages").mkdir(parents=True)
    (root / "PedMasks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        image = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "PNGImages" / f"FudanPed{i:05d}.png")
        mask = Image.fromarray(ID_MAP, mode="L").convert("P")  # the real masks are palette PNGs
        mask.save(root / "PedMasks" / f"FudanPed{i:05d}_mask.png")
    return root


def test_penn_fudan_reader(tmp_path):
    root = write_penn_fudan(tmp_path)
    for given in (root, root.parent):  # the folder itself, or what fetch(extract=True) returns
        ds = PennFudanInstances(given)
        assert len(ds) == 2 and ds.num_classes == 2
        image, target = ds[1]
        assert image.shape == (3, 6, 7) and image.dtype == torch.float32
        assert target["boxes"].tolist() == BOXES and target["area"].tolist() == AREAS
        assert target["image_id"] == 1
    images, targets = detection_collate([ds[0], ds[1]])
    assert len(images) == len(targets) == 2
    assert len(PennFudanInstances(root, limit=1)) == 1


def test_penn_fudan_reader_errors(tmp_path):
    root = write_penn_fudan(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no PNGImages/ folder"):
        PennFudanInstances(tmp_path / "elsewhere")
    (root / "PedMasks" / "FudanPed00002_mask.png").unlink()
    with pytest.raises(ValueError, match="images without a mask .*FudanPed00002.png"):
        PennFudanInstances(root)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "PedMasks" / "FudanPed00002_mask.png")
    with pytest.raises(ValueError, match=r"FudanPed00002.png is \(6, 7\) but its mask"):
        PennFudanInstances(root)[1]
