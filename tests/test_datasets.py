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


def test_joint_resize_keeps_mask_ids_and_flips_both_together():
    from utils.datasets import JointResize

    image = np.zeros((10, 20, 3), np.uint8)
    image[:, :10] = 200                                  # left half bright
    mask = np.zeros((10, 20), np.int64)
    mask[:, :10] = 1
    mask[0, :] = 255                                     # an ignored row
    out = JointResize(8)(image=image, mask=mask)
    assert out["image"].shape == (8, 8, 3) and out["mask"].shape == (8, 8) and out["mask"].dtype == np.int64
    assert set(np.unique(out["mask"])) <= {0, 1, 255}     # nearest neighbour: no new ids
    torch.manual_seed(0)
    flipped = JointResize(8, flip_p=1.0)(image=image, mask=mask)
    np.testing.assert_array_equal(flipped["mask"], out["mask"][:, ::-1])
    np.testing.assert_array_equal(flipped["image"], out["image"][:, ::-1])
    for bad, message in ((dict(size=0), "`size`"), (dict(size=8, flip_p=2.0), "`flip_p`")):
        with pytest.raises(ValueError, match=message):
            JointResize(**bad)


def test_loader_options_bound_workers_and_pin_only_on_cuda():
    from utils.datasets import loader_options

    cpu = loader_options("cpu", max_workers=64)
    assert cpu["pin_memory"] is False and 0 <= cpu["num_workers"] < 64
    assert loader_options("cpu", max_workers=0) == {"num_workers": 0, "pin_memory": False, "persistent_workers": False}
    assert loader_options("cuda", max_workers=0)["pin_memory"] is True


def test_a_loader_with_the_course_transform_works_under_spawn():
    """Workers started with `spawn` (Windows, macOS, Python 3.14) must be able to unpickle dataset and transform."""
    from torch.utils.data import DataLoader

    from utils.datasets import JointResize, SceneSegmentationDataset

    ds = SceneSegmentationDataset(4, size=48, split="val", transform=JointResize(32, flip_p=0.5))
    loader = DataLoader(ds, batch_size=2, num_workers=1, multiprocessing_context="spawn")
    batches = list(loader)
    assert len(batches) == 2 and batches[0][0].shape == (2, 3, 32, 32) and batches[0][1].shape == (2, 32, 32)


def test_rare_class_crops_oversample_the_rare_class():
    from utils.datasets import RareClassCrops, SceneSegmentationDataset

    scenes = SceneSegmentationDataset(40, 64, "train")
    share = {}
    for p in (0.0, 1.0):
        torch.manual_seed(0)
        crops = RareClassCrops(scenes, crop=24, samples=200, rare_class=3, p_rare=p, min_pixels=8)
        samples = [crops[i] for i in range(len(crops))]
        assert all(im.shape == (3, 24, 24) and m.shape == (24, 24) for im, m in samples)
        share[p] = np.mean([int((m == 3).sum()) >= 8 for _, m in samples])
    assert share[1.0] > 0.95 and share[1.0] > share[0.0] + 0.3


def test_rare_class_crops_errors():
    from utils.datasets import RareClassCrops, SceneSegmentationDataset

    scenes = SceneSegmentationDataset(2, 32, "train")
    with pytest.raises(ValueError, match="`p_rare`"):
        RareClassCrops(scenes, 16, 10, 3, p_rare=1.5)
    with pytest.raises(ValueError, match="smaller than `crop`"):
        RareClassCrops(scenes, 48, 10, 3)[0]


def test_label_map_segmentation_gives_the_nuclei_targets_for_in_memory_label_maps():
    from utils import nuclei
    from utils.datasets import LabelMapSegmentation

    shipped = nuclei.NucleiSegmentation("val", "fluo", boundary=True, limit=3)
    ours = LabelMapSegmentation([nuclei.read_image(shipped.root, r) for r in shipped.rows], shipped.labels,
                                object_name="nucleus")
    assert ours.class_names == ("background", "nucleus", "boundary") and len(ours) == 3
    for k in range(3):
        (a, ma), (b, mb) = shipped[k], ours[k]
        assert torch.equal(a, b) and torch.equal(ma, mb)


def test_label_map_segmentation_crops_and_draws_images_by_pixel_count():
    from utils.datasets import LabelMapSegmentation

    images = [np.full((32, 32, 3), 10, np.uint8), np.full((64, 96, 3), 200, np.uint8)]
    labels = [np.zeros((32, 32), np.int32), np.ones((64, 96), np.int32)]
    data = LabelMapSegmentation(images, labels, boundary=False, crop_size=16, samples_per_epoch=400, normalize=False)
    torch.manual_seed(0)
    from_large = sum(int(data[i][1].max()) for i in range(400))
    assert len(data) == 400 and data[0][0].shape == (3, 16, 16)
    assert 330 < from_large < 380   # 6144 of 7168 pixels: 86%


@pytest.mark.parametrize("kwargs, match", [
    (dict(images=[np.zeros((8, 8, 3), np.uint8)], label_maps=[]), "one length"),
    (dict(images=[np.zeros((8, 8), np.uint8)], label_maps=[np.zeros((8, 8), int)]), r"images\[0\]"),
    (dict(images=[np.zeros((8, 8, 3), np.uint8)], label_maps=[np.zeros((8, 9), int)]), r"label_maps\[0\]"),
    (dict(images=[np.zeros((20, 20, 3), np.uint8)], label_maps=[np.zeros((20, 20), int)], crop_size=32), "larger"),
    (dict(images=[np.zeros((20, 20, 3), np.uint8)], label_maps=[np.zeros((20, 20), int)], samples_per_epoch=4),
     "needs `crop_size`"),
])
def test_label_map_segmentation_rejects_bad_input(kwargs, match):
    from utils.datasets import LabelMapSegmentation

    with pytest.raises(ValueError, match=match):
        LabelMapSegmentation(**kwargs)


def test_scene_instance_dataset_takes_the_panoptic_scenes_too():
    from utils.scenes import make_panoptic_scene

    data = SceneInstanceDataset(2, 64, "val", make=make_panoptic_scene)
    scene = make_panoptic_scene(split_seed("val", 1), 64)
    image, target = data[1]
    assert torch.equal(target["masks"].bool(), torch.from_numpy(scene.instance_masks))
    assert torch.equal(image, torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255)
