"""utils.augment: strict Albumentations 2 pipelines, aligned instances, test-time augmentation."""
from __future__ import annotations

import pickle

import albumentations as A
import numpy as np
import pytest
import torch

from utils.augment import (DIHEDRAL, KINDS, _dihedral, build_strictly, nuclei_augmentation, predict_multiscale,
                           predict_tta, transform_instances)


def _sample(h=64, w=64, seed=0):
    """A mask of three classes, and an image whose red channel encodes it (so alignment can be checked)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.int64)
    mask[10:30, 15:40] = 1
    mask[35:55, 40:60] = 2
    image = rng.integers(0, 40, (h, w, 3)).astype(np.uint8)
    image[..., 0] = (mask * 100).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("kind", KINDS)
def test_every_course_pipeline_builds_without_a_warning_and_keeps_mask_values(kind):
    aug = nuclei_augmentation(kind, seed=1)   # built through build_strictly: a warning would have raised
    image, mask = _sample()
    for _ in range(5):
        out = aug(image=image, mask=mask)
        assert out["image"].shape == image.shape and out["image"].dtype == np.uint8
        assert out["mask"].shape == mask.shape
        assert set(np.unique(out["mask"]).tolist()) <= {0, 1, 2, 255}   # nearest neighbour: no new class ids


def test_none_is_the_identity_and_seeds_reproduce():
    image, mask = _sample()
    out = nuclei_augmentation("none")(image=image, mask=mask)
    assert np.array_equal(out["image"], image) and np.array_equal(out["mask"], mask)
    a = [nuclei_augmentation("full", seed=3)(image=image, mask=mask)["mask"] for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    outs = [nuclei_augmentation("full", seed=s)(image=image, mask=mask)["image"] for s in range(4)]
    assert len({o.tobytes() for o in outs}) > 1


def test_geometric_pipeline_keeps_image_and_mask_aligned():
    image, mask = _sample()
    aug = nuclei_augmentation("geometric", seed=0)
    for _ in range(10):
        out = aug(image=image, mask=mask)
        m, red = out["mask"], out["image"][..., 0].astype(int)
        labelled = m != 255
        # away from edges (where bilinear image and nearest mask may differ by a pixel) the red channel is the mask
        agree = np.abs(red[labelled] - 100 * m[labelled]) < 50
        assert agree.mean() > 0.95


def test_border_pixels_of_a_warp_are_ignored_not_background():
    image, mask = _sample()
    mask[:] = 1
    aug = A.Compose([A.Affine(rotate=(30, 30), p=1.0, fill=0, fill_mask=255)], seed=0)
    out = aug(image=image, mask=mask)
    assert (out["mask"] == 255).any() and not (out["mask"] == 0).any()


def test_version_1_arguments_fail_loudly():
    with pytest.raises(ValueError, match="value"):
        build_strictly(lambda: A.PadIfNeeded(96, 96, value=0, mask_value=255))
    with pytest.raises(ValueError, match="always_apply"):
        build_strictly(lambda: A.HorizontalFlip(always_apply=True))
    assert isinstance(build_strictly(lambda: A.PadIfNeeded(96, 96, fill=0, fill_mask=255)), A.PadIfNeeded)
    with pytest.raises(ValueError, match="`build` must be a function"):
        build_strictly(42)


def test_pipeline_pickles_for_dataloader_workers():
    image, mask = _sample()
    aug = nuclei_augmentation("full", seed=5)
    copy = pickle.loads(pickle.dumps(aug))
    assert np.array_equal(copy(image=image, mask=mask)["mask"], aug(image=image, mask=mask)["mask"])


def test_bad_kind_and_seed():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        nuclei_augmentation("elastic")
    with pytest.raises(ValueError, match="seed"):
        nuclei_augmentation("full", seed=-1)


def test_transform_instances_drops_the_mask_of_a_dropped_box():
    image = np.zeros((40, 40, 3), np.uint8)
    masks = [np.zeros((40, 40), np.uint8) for _ in range(2)]
    masks[0][2:10, 2:10] = 1      # inside the crop below
    masks[1][25:35, 25:35] = 1    # outside it
    boxes = np.array([[2, 2, 10, 10], [25, 25, 35, 35]], np.float32)
    aug = A.Compose([A.Crop(0, 0, 20, 20)], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["ids"]))
    raw = aug(image=image, masks=masks, bboxes=boxes, ids=[0, 1])
    assert len(raw["bboxes"]) == 1 and len(raw["masks"]) == 2      # the pitfall: lists out of step
    out = transform_instances(aug, image, masks, boxes)
    assert out["ids"] == [0] and len(out["masks"]) == 1 and out["boxes"].shape == (1, 4)
    assert out["masks"][0].sum() == 64
    with pytest.raises(ValueError, match="one box per mask"):
        transform_instances(aug, image, masks, boxes[:1])


def test_dihedral_inverse_undoes_each_of_the_eight():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    seen = set()
    for k, flip in DIHEDRAL:
        y = _dihedral(x, k, flip)
        seen.add(y.numpy().tobytes())
        assert torch.equal(_dihedral(y, k, flip, inverse=True), x)
    assert len(seen) == 8


class _PixelModel(torch.nn.Module):
    """A 1x1 convolution: it commutes with flips and turns, so test-time augmentation cannot change it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.conv(x)


class _LeftEdge(torch.nn.Module):
    """Logit for class 1 grows to the right: not symmetric, so TTA averages something else."""

    def forward(self, x):
        b, _, h, w = x.shape
        ramp = torch.linspace(-3, 3, w).expand(b, 1, h, w)
        return torch.cat([torch.zeros_like(ramp), ramp], 1)


def test_tta_of_an_equivariant_model_equals_plain_prediction_and_of_a_biased_one_differs():
    x = torch.rand(2, 3, 8, 12)
    model = _PixelModel().eval()
    plain = model(x).softmax(1)
    assert torch.allclose(predict_tta(model, x), plain, atol=1e-6)
    assert torch.allclose(predict_tta(model, x, transforms=((0, False),)), plain, atol=1e-6)
    biased = predict_tta(_LeftEdge(), x, transforms=((0, False), (0, True)))
    assert torch.allclose(biased, torch.full_like(biased, 0.5), atol=1e-6)   # the ramp and its mirror cancel
    with pytest.raises(ValueError, match="`transforms`"):
        predict_tta(model, x, transforms=((5, False),))
    with pytest.raises(ValueError, match="`images`"):
        predict_tta(model, x[0])


def test_multiscale_at_scale_one_is_plain_prediction():
    x = torch.rand(1, 3, 16, 16)
    model = _PixelModel().eval()
    assert torch.allclose(predict_multiscale(model, x, scales=(1.0,)), model(x).softmax(1), atol=1e-6)
    out = predict_multiscale(model, x)
    assert out.shape == (1, 2, 16, 16) and torch.allclose(out.sum(1), torch.ones(1, 16, 16), atol=1e-5)
    with pytest.raises(ValueError, match="`scales`"):
        predict_multiscale(model, x, scales=(0.0,))
