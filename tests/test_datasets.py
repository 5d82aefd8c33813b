"""Datasets: generated scenes as tensors, and a folder of images and masks with its error paths."""
import numpy as np
import pytest
import torch
from PIL import Image

from utils.datasets import (FolderSegmentationDataset, SceneInstanceDataset, SceneSegmentationDataset,
                            detection_collate, image_to_tensor)
from utils.scenes import make_scene, split_seed


def test_scene_segmentation_dataset():
    ds = SceneSegmentationDataset(3, size=64, split="val")
    image, mask = ds[1]
    s = make_scene(split_seed("val", 1), 64)
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert mask.dtype == torch.int64 and torch.equal(mask, torch.from_numpy(s.semantic.astype(np.int64)))
    assert torch.allclose(image * 255, torch.from_numpy(s.image).permute(2, 0, 1).float())


def test_scene_dataset_joint_transform_moves_image_and_mask_together():
    flip = lambda image, mask: {"image": image[:, ::-1], "mask": mask[:, ::-1]}  # noqa: E731
    plain, flipped = SceneSegmentationDataset(1, 64), SceneSegmentationDataset(1, 64, transform=flip)
    assert torch.equal(flipped[0][1], plain[0][1].flip(-1)) and torch.equal(flipped[0][0], plain[0][0].flip(-1))


def test_transform_with_wrong_contract_is_explained():
    ds = SceneSegmentationDataset(1, 64, transform=lambda image, mask: (image, mask))
    with pytest.raises(TypeError, match="Albumentations convention"):
        ds[0]


def test_scene_instance_dataset_matches_torchvision_format():
    ds = SceneInstanceDataset(2, size=64)
    images, targets = detection_collate([ds[0], ds[1]])
    t = targets[0]
    n = len(t["labels"])
    assert images[0].shape == (3, 64, 64)
    assert t["boxes"].shape == (n, 4) and t["boxes"].dtype == torch.float32
    assert t["labels"].dtype == torch.int64 and t["masks"].shape == (n, 64, 64) and t["masks"].dtype == torch.uint8
    assert torch.all(t["boxes"][:, 2] >= t["boxes"][:, 0]) and torch.all(t["area"] > 0)


def test_image_to_tensor_rejects_floats():
    with pytest.raises(ValueError, match="`image`"):
        image_to_tensor(np.zeros((4, 4, 3), np.float32))


def _write(root, stem, image, mask, mode=None):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{stem}.jpg" if image.ndim == 3 else root / "images" / f"{stem}.png")
    m = Image.fromarray(mask.astype(np.uint8))
    if mode == "P":
        m = m.convert("P")
        m.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 253))
        m = Image.fromarray(mask.astype(np.uint8), mode="P")
        m.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 253))
    m.save(root / "masks" / f"{stem}.png")


def test_folder_dataset_reads_palette_and_grey_masks(tmp_path):
    img = np.full((8, 6, 3), 100, np.uint8)
    mask = np.zeros((8, 6), np.uint8)
    mask[2:4, 1:3] = 2
    mask[0, 0] = 255
    _write(tmp_path, "a", img, mask, mode="P")
    _write(tmp_path, "b", img, mask)
    ds = FolderSegmentationDataset(tmp_path, num_classes=3)
    assert len(ds) == 2 and ds.stems == ["a", "b"]
    for i in range(2):
        image, m = ds[i]
        assert image.shape == (3, 8, 6) and m.tolist() == mask.astype(np.int64).tolist()


def test_folder_dataset_binary_masks(tmp_path):
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 255
    _write(tmp_path, "x", np.zeros((4, 4, 3), np.uint8), mask)
    _, m = FolderSegmentationDataset(tmp_path, num_classes=2, binary=True)[0]
    assert m.sum() == 4 and m.max() == 1


def test_folder_dataset_missing_pairs_named(tmp_path):
    _write(tmp_path, "a", np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images" / "lonely.jpg")
    with pytest.raises(ValueError, match="images without a mask: lonely.jpg"):
        FolderSegmentationDataset(tmp_path, num_classes=2)


def test_folder_dataset_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="masks/"):
        (tmp_path / "images").mkdir()
        FolderSegmentationDataset(tmp_path, num_classes=2)


def test_folder_dataset_size_mismatch_named(tmp_path):
    _write(tmp_path, "a", np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="a.jpg is \\(4, 4\\) but its mask .*a.png is \\(5, 4\\)"):
        FolderSegmentationDataset(tmp_path, num_classes=2)[0]


def test_folder_dataset_unexpected_values_named(tmp_path):
    _write(tmp_path, "a", np.zeros((4, 4, 3), np.uint8), np.array([[0, 7, 0, 0]] * 4))
    with pytest.raises(ValueError, match="a.png holds class ids \\[7\\]"):
        FolderSegmentationDataset(tmp_path, num_classes=3)[0]


def test_folder_dataset_binary_with_blurred_edges(tmp_path):
    _write(tmp_path, "a", np.zeros((4, 4, 3), np.uint8), np.array([[0, 128, 255, 255]] * 4))
    with pytest.raises(ValueError, match="binary \\(0/255\\) but holds values \\[128\\]"):
        FolderSegmentationDataset(tmp_path, num_classes=2, binary=True)[0]


def test_folder_dataset_bad_num_classes(tmp_path):
    _write(tmp_path, "a", np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="`num_classes`"):
        FolderSegmentationDataset(tmp_path, num_classes=1)


@pytest.mark.parametrize("cls", [SceneSegmentationDataset, SceneInstanceDataset])
def test_scene_datasets_bad_n(cls):
    with pytest.raises(ValueError, match="`n`"):
        cls(0)
