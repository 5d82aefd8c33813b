"""Pascal VOC 2012 end to end without the internet: a stand-in archive in VOC's real layout (built by
``tools/rehearse_full_mode.py``), downloaded from a loopback server through the registry's ``fetch``, extracted,
read by :class:`utils.realdata.VOCSegmentation2012` and scored by :func:`utils.segmodels.evaluate_voc_model`."""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from tool_loader import load_tool

from utils import data
from utils.models import VOC_CLASS_NAMES
from utils.realdata import VOCSegmentation2012
from utils.segmodels import evaluate_voc_model



@pytest.fixture(scope="module")
def rehearsal():
    return load_tool("rehearse_full_mode")


@pytest.fixture
def voc_root(rehearsal, tmp_path, server, cache, online):
    archive = rehearsal.build_voc2012(tmp_path, scale=0.002)   # 3 train and 3 val images
    body = archive.read_bytes()
    entry = dataclasses.replace(data.REGISTRY["voc2012"], url=server.serve("/voc.tar", body),
                                hash="md5:" + hashlib.md5(body).hexdigest())
    return data.fetch(entry, extract=True, progress=False)


def test_voc_reader_reads_the_real_layout(voc_root):
    val = VOCSegmentation2012(voc_root, "val")
    assert len(val) == 3 and len(VOCSegmentation2012(voc_root, "train")) == 3
    assert len(VOCSegmentation2012(voc_root, "trainval")) == 6 and len(VOCSegmentation2012(voc_root, limit=2)) == 2
    image, mask = val[0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert mask.dtype == np.int64 and mask.shape == image.shape[:2]
    values = set(np.unique(mask).tolist())
    assert 255 in values and 0 in values and values <= set(range(21)) | {255}
    # the palette PNG holds class indices, not colours: the reader must give the indices back
    png = voc_root / "VOCdevkit/VOC2012/SegmentationClass" / f"{val.voc.images[0].rsplit('/', 1)[-1][:-4]}.png"
    with Image.open(png) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(mask, np.array(im))


def test_voc_reader_errors(tmp_path, voc_root):
    with pytest.raises(ValueError, match="`split` must be one of"):
        VOCSegmentation2012(voc_root, "test")
    with pytest.raises(FileNotFoundError, match="has no VOCdevkit/VOC2012/JPEGImages.*fetch\\('voc2012'"):
        VOCSegmentation2012(tmp_path / "elsewhere")
    with pytest.raises(IndexError):
        VOCSegmentation2012(voc_root, "val")[3]


class _Constant(torch.nn.Module):
    """Predicts one class everywhere, whatever the photo."""

    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def forward(self, x):
        logits = torch.zeros(x.shape[0], len(VOC_CLASS_NAMES), *x.shape[2:])
        logits[:, self.cls] = 1.0
        return {"out": logits}


def test_evaluate_voc_model_accumulates_one_confusion_matrix(voc_root):
    val = VOCSegmentation2012(voc_root, "val")
    scores = evaluate_voc_model(_Constant(0), val, device="cpu", progress=False)
    masks = [val[i][1] for i in range(len(val))]
    counted = np.concatenate([m[m != 255] for m in masks])
    background = (counted == 0).sum()
    # everything is predicted background: IoU(bg) = bg / counted, every other class present scores 0
    present = np.unique(counted)
    expected = np.zeros(21)
    expected[0] = background / counted.size
    assert scores["pixel_accuracy"] == pytest.approx(background / counted.size)
    assert scores["miou"] == pytest.approx(expected[present].mean())
    assert all(np.isnan(float(scores["iou"][c])) for c in range(21) if c not in present)
    assert scores["images"] == 3


def test_evaluate_voc_model_rejects_an_empty_dataset():
    with pytest.raises(ValueError, match="`dataset` is empty"):
        evaluate_voc_model(_Constant(0), [], device="cpu")
