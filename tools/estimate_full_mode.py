#!/usr/bin/env python3
"""Estimate what each notebook costs in full mode on a Colab T4, from measured FLOPs; write the plan.

    .venv/bin/python tools/estimate_full_mode.py      # writes benchmarks/full_mode.json and FULL_MODE.md

Full mode must fit 15 minutes per notebook on a T4. A T4 is not at hand here, so the time is estimated, and
this is how:

* **Compute.** The FLOPs of one training step (forward and backward, with the notebook's model, batch and
  image size) are counted with ``torch.utils.flop_counter.FlopCounterMode`` and multiplied by the number of
  steps; evaluation passes likewise (forward only). They are divided by **8 TFLOP/s**, the rate assumed for a
  T4 under float16 autocast: an eighth of its 65 TFLOP/s tensor-core peak, because these are small
  convolutions, and T4s in Colab run clocked down. On top, every step pays a fixed cost for the Python
  and kernel launches that FLOPs do not see: 10 ms for a segmentation step, 150 ms for a Mask R-CNN step
  (torchvision's detection code does much of its work in Python). Both were read off the GPU rehearsal:
  0.008 s per scene step, and 0.20 s per Penn-Fudan step of which the GPU's arithmetic is a small part.
  A promptable step (lesson 09) runs three decoder calls and samples its corrective clicks on the CPU:
  40 ms is assumed for it, four segmentation steps; it has not been rehearsed on a GPU yet. A Mask2Former
  step (lesson 10b) computes its loss after each of four decoder outputs, with a Hungarian matching per image
  and output on the CPU (32 per step) and point sampling: 80 ms is assumed, also not rehearsed.
* **Loading.** Where photos are decoded from disk every epoch (Oxford-IIIT Pet), the loader's time is the
  measured cost of reading, decoding and resizing one photo on one CPU core (``PET_DECODE_S``, timed on a
  500x375 JPEG and its trimap) times the images, divided by the DataLoader workers a 2-core Colab gets
  (``utils.datasets.loader_options``: one). A training epoch takes the longer of compute and loading.
  Where samples are made in the main process (nuclei crops, Penn-Fudan PNGs, the panoptic targets of
  lesson 11), their measured cost is added to each step (``load_s``).
* **The rest of the notebook** (demonstrations, figures, generating scenes): one minute, ``OTHER_S``. Where a
  notebook does more CPU work outside its training steps, it is listed under ``cpu`` and added, each item
  from a measured cost per unit on one core (generating lesson 11's 10,800 panoptic scenes,
  ``PANOPTIC_SCENE_S``; grouping its predictions into panoptic maps, ``GROUP_PANOPTIC_S``; the corrective
  clicks of a 5-click evaluation, ``CLICK_EVAL_TILE_S``), the detection step overhead per batch of Mask
  R-CNN predictions, or, for files written and read, a round figure.
* **Downloads** at an assumed 25 MB/s (what Colab usually gets from a university server; the Oxford and
  Penn servers can be slower), plus extraction.

The GPU rehearsal (``tools/rehearse_full_mode.py`` on a real GPU) measures the same notebooks for real;
its times are recorded next to these estimates in FULL_MODE.md. When a full-mode configuration changes in a
notebook, change its ``WORKLOADS`` entry here and run this again.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

T4_FLOPS = 8e12
STEP_OVERHEAD_S = {"segmentation": 0.010, "detection": 0.150, "promptable": 0.040, "set_prediction": 0.080}
DOWNLOAD_MB_S = 25.0
PET_DECODE_S = 0.0042          # measured: one 500x375 JPEG + trimap, decoded and resized to 160 px, one core
NUCLEI_CROP_S = 0.00027        # measured: one 128-px crop of utils.nuclei.NucleiSegmentation (boundary classes)
NUCLEI_INSTANCE_CROP_S = 0.00046   # measured: one 128-px crop of NucleiInstances with its targets
PENN_FUDAN_READ_S = 0.0058     # measured: one Penn-Fudan-sized PNG and its instance mask, read and converted
PANOPTIC_SCENE_S = 0.0015      # measured: one utils.scenes.make_panoptic_scene at 96 px
SCENE_S = 0.0012               # measured: one utils.scenes.make_scene at 96 px and its Mask2Former targets
PANOPTIC_TARGETS_S = 0.00043   # measured: panoptic_batch's targets of one 96-px scene, flipped at random
GROUP_PANOPTIC_S = 0.0009      # measured: group_panoptic on one 96-px output (about 0.5-0.9 ms; the upper figure)
CLICK_EVAL_TILE_S = 0.074      # measured: 5-click evaluation of one 128-px nuclei tile, model on the CPU (upper bound)
COLAB_WORKERS = 1              # loader_options on Colab's 2 cores
LIMIT_MIN = 15.0
OTHER_S = 60
NUCLEI_MANIFEST = ROOT / "data" / "nuclei" / "manifest.csv"


def nuclei_pixels(split: str, side: int = 256) -> float:
    """The pixels of a split of the course's nuclei images (``data/nuclei/manifest.csv``), in ``side``-px squares.

    The images are 256x256 to 1024x1024; a convolutional network's FLOPs grow with the pixels, so evaluating
    the split costs this many evaluations of one ``side`` x ``side`` image.
    """
    import csv

    with open(NUCLEI_MANIFEST, newline="") as f:
        return sum(int(r["height"]) * int(r["width"]) for r in csv.DictReader(f) if r["split"] == split) / side ** 2


# Every full-mode training and evaluation of each notebook: (what, model, batch, size, steps, eval images); and
# "cpu": CPU work outside the training steps, beyond OTHER_S, (what, seconds)
WORKLOADS = {
    "03b_loss_experiment.ipynb": {
        "downloads": [],
        "train": [dict(what="6 losses x (2 learning rates + 2 more seeds) = 24 U-Nets (width 8) on 4,000 scenes, "
                            "6 epochs", model="unet8", batch=16, size=64, steps=24 * 6 * 250, eval_images=24 * 6 * 500)],
    },
    "04_fcn_unet.ipynb": {
        "downloads": ["oxford_pet_images", "oxford_pet_annotations"],
        "extract_s": 40,
        "train": [dict(what="U-Net (width 32, depth 4) on Oxford-IIIT Pet at 160 px, 8 epochs, with and without "
                            "skips", model="unet32d4", batch=16, size=160, steps=2 * 8 * 207,
                       eval_images=2 * (8 * 368 + 3669), decode_images=2 * (8 * (3312 + 368) + 3669)),
                  dict(what="FCN-32s and FCN-8s, the same recipe and steps", model="fcn_pair", batch=16, size=160,
                       steps=2 * 8 * 207, eval_images=2 * (8 * 368 + 3669),
                       decode_images=2 * (8 * (3312 + 368) + 3669))],
    },
    "04b_unet_real_nuclei.ipynb": {
        "downloads": ["dsb2018_stage1_train"],
        "extract_s": 90,   # extraction and conversion of 670 images with 29,461 mask files
        "train": [dict(what="U-Net (width 32) on 128-px crops of the whole stage-1 set, 6,000 steps",
                       model="unet32d3", batch=8, size=128, steps=6000, eval_images=10 * 27 * 4,
                       load_s=8 * NUCLEI_CROP_S)],
    },
    "05_deeplab_aspp_pspnet.ipynb": {
        "downloads": ["deeplabv3_resnet50_coco", "voc2012"],
        "extract_s": 60,
        "train": [dict(what="U-Net and DeepLabV3+ strided and dilated x 3 seeds, DeepLabV3 once, on 6,000 scenes of "
                            "64 px, 5 epochs each", model="trio64", batch=16, size=64, steps=10 * 5 * 375,
                       eval_images=10 * 5 * 300),
                  dict(what="pretrained DeepLabV3 ResNet-50 on the 1,449 VOC 2012 val photos (shorter side 520)",
                       model="voc_eval", batch=1, size=520, steps=0, eval_images=1449)],
    },
    "05b_deeplab_at_scale.ipynb": {
        "downloads": [],
        "train": [dict(what="DeepLabV3+ (dilated) and U-Net on 12,000 scenes of 96 px, 8 epochs each", model="duo96",
                       batch=16, size=96, steps=2 * 8 * 750, eval_images=2 * 8 * 300)],
    },
    "06_mask_rcnn.ipynb": {
        "downloads": ["maskrcnn_resnet50_fpn_coco", "penn_fudan"],
        "extract_s": 5,
        "train": [dict(what="Mask R-CNN ResNet-50-FPN fine-tuned on Penn-Fudan, 12 epochs of 55 steps",
                       model="maskrcnn_full", batch=2, size=None, steps=12 * 55, eval_images=12 * 20 + 40,
                       load_s=2 * PENN_FUDAN_READ_S),
                  dict(what="CPU-sized Mask R-CNN on nuclei crops, 1,500 steps", model="maskrcnn_small", batch=4,
                       size=128, steps=1500, eval_images=65, load_s=4 * NUCLEI_INSTANCE_CROP_S)],
    },
    "09_segment_anything.ipynb": {
        "downloads": ["sam_vit_b"],
        "train": [dict(what="small SAM-style model (a one-block decoder), 6,000 steps of 8 images with 2 click rounds; "
                            "5-click evaluation of 200 scenes and 903 nuclei tiles of 64 px (enlarged to 128 px)",
                       model="promptable_detail_1block",
                       batch=8, size=128, steps=6000, eval_images=200 + 903, load_s=8 * NUCLEI_CROP_S),
                  dict(what="SAM ViT-B: two 1024-px embeddings (random and real weights), automatic masks on one "
                            "photo", model="sam_vit_b", batch=1, size=1024, steps=0, eval_images=3)],
        "cpu": [dict(what="corrective clicks of the 5-click evaluation, 200 scenes and 903 tiles (at the cost of a "
                          "128-px nuclei tile, an upper bound)", seconds=(200 + 903) * CLICK_EVAL_TILE_S)],
    },
    "10_segformer.ipynb": {
        "downloads": [],
        "train": [dict(what="SegFormer (tiny) on 12,000 scenes of 128 px, 30 epochs", model="segformer_tiny", batch=16,
                       size=128, steps=30 * 750, eval_images=30 * 300 + 500),
                  dict(what="U-Net (width 16, depth 3), the same scenes, 10 epochs", model="unet16d3", batch=16,
                       size=128, steps=10 * 750, eval_images=10 * 300 + 500)],
    },
    "10b_mask2former.ipynb": {
        "downloads": [],
        "train": [dict(what="small Mask2Former (convolutional backbone, widths 64-128, 16 queries, auxiliary per-pixel "
                            "loss) on new scenes of 64 px, 6,000 steps of 8; 200 test scenes",
                       model="mask2former_small", batch=8, size=64, steps=6000,
                       eval_images=200, load_s=8 * SCENE_S)],
    },
    "11_panoptic_segmentation.ipynb": {
        "downloads": [],
        "train": [dict(what="Panoptic-DeepLab (width 32) on 10,000 scenes of 96 px, 6,000 steps; 300 validation and "
                            "500 test scenes", model="panoptic_deeplab32", batch=8, size=96, steps=6000,
                       eval_images=300 + 500, load_s=8 * PANOPTIC_TARGETS_S),
                  dict(what="CPU-sized Mask R-CNN on the same scenes, 1 epoch of 1,250 steps; 500 test scenes",
                       model="maskrcnn_scenes96", batch=8, size=96, steps=1250, eval_images=500)],
        "cpu": [dict(what="generating 10,800 panoptic scenes", seconds=(10000 + 300 + 500) * PANOPTIC_SCENE_S),
                dict(what="grouping: 300 validation scenes x 9 settings and 500 test scenes",
                     seconds=(300 * 9 + 500) * GROUP_PANOPTIC_S),
                dict(what="Mask R-CNN prediction of 500 scenes: 63 batches, each at the detection step overhead",
                     seconds=63 * STEP_OVERHEAD_S["detection"])],
    },
    "12_capstone_project.ipynb": {
        "downloads": [],
        "train": [dict(what="U-Net (width 16, depth 3) on 128-px nuclei crops, 4,000 steps; 27 validation images "
                            "x 8 epochs and once more, 65 test images, whole", model="unet16d3_nuclei", batch=8,
                       size=128, steps=4000, eval_images=round(9 * nuclei_pixels("val") + nuclei_pixels("test")),
                       load_s=8 * NUCLEI_CROP_S),
                  dict(what="small SAM-style model, 3,000 steps of 8 crops with 2 click rounds; 5-click evaluation "
                            "of 903 nuclei tiles of 64 px (enlarged to 128 px)", model="promptable_detail", batch=8,
                       size=128, steps=3000, eval_images=903, load_s=8 * NUCLEI_CROP_S)],
        "cpu": [dict(what="writing and reading the 256 images' COCO, CVAT and LabelMe files", seconds=30),
                dict(what="corrective clicks of the 5-click evaluation, 903 tiles (at the cost of a 128-px tile, an "
                          "upper bound)", seconds=903 * CLICK_EVAL_TILE_S)],
    },
}


def _seg_step_flops(model, batch, size, classes, train=True):
    import torch
    from torch.nn import functional as F
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, 3, size, size)
    target = torch.randint(0, classes, (batch, size, size))
    model.train(train)
    with FlopCounterMode(display=False) as counter:
        if train:
            out = model(x)
            F.cross_entropy(out["out"] if isinstance(out, dict) else out, target).backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops()


def _detection_step_flops(model, images, train=True):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    targets = []
    for im in images:
        h, w = im.shape[1:]
        masks = torch.zeros(1, h, w, dtype=torch.uint8)
        masks[0, h // 4: h // 2, w // 4: w // 2] = 1
        targets.append({"boxes": torch.tensor([[w / 4, h / 4, w / 2 - 1, h / 2 - 1]]), "labels": torch.tensor([1]),
                        "masks": masks})
    model.train(train)
    with FlopCounterMode(display=False) as counter:
        if train:
            sum(model(images, targets).values()).backward()
        else:
            with torch.no_grad():
                model(images)
    return counter.get_total_flops()


def flops(model_name: str, batch: int, size) -> tuple[float, float]:
    """(FLOPs of one training step, FLOPs of evaluating one image) for a workload's model."""
    import torch

    from torch.utils.flop_counter import FlopCounterMode

    from utils.models import (FCNVGG, UNet, build_deeplabv3, build_deeplabv3plus, build_maskrcnn_cpu,
                              build_maskrcnn_full, deeplabv3_resnet50_voc)

    if model_name == "unet8":
        m = UNet(3, 3, base_width=8, depth=3)
        return _seg_step_flops(m, batch, size, 3), _seg_step_flops(m, 1, size, 3, train=False)
    if model_name == "unet32d4":
        m = UNet(3, 2, base_width=32, depth=4)
        return _seg_step_flops(m, batch, size, 2), _seg_step_flops(m, 1, size, 2, train=False)
    if model_name == "fcn_pair":
        models = [FCNVGG(3, 2, variant=v, base_width=16) for v in ("32s", "8s")]
        return (sum(_seg_step_flops(m, batch, size, 2) for m in models) / 2,
                sum(_seg_step_flops(m, 1, size, 2, train=False) for m in models) / 2)
    if model_name == "unet32d3":
        m = UNet(3, 3, base_width=32, depth=3)
        return _seg_step_flops(m, batch, size, 3), _seg_step_flops(m, 1, 256, 3, train=False)
    if model_name == "trio64":
        models = [UNet(3, 4, base_width=16, depth=3)] + [
            build(4, "resnet18", output_stride=stride, channels=64, atrous_rates=(1, 2, 3), last_layer="layer3")
            for build, stride in ((build_deeplabv3, 8), (build_deeplabv3plus, 16), (build_deeplabv3plus, 8))]
        train = sum(_seg_step_flops(m, batch, size, 4) for m in models) / len(models)
        evaluation = sum(_seg_step_flops(m, 1, size, 4, train=False) for m in models) / len(models)
        return train, evaluation
    if model_name == "duo96":
        models = [UNet(3, 4, base_width=16, depth=3),
                  build_deeplabv3plus(4, "resnet18", output_stride=8, channels=64, atrous_rates=(1, 2, 3),
                                      last_layer="layer3")]
        train = sum(_seg_step_flops(m, batch, size, 4) for m in models) / len(models)
        evaluation = sum(_seg_step_flops(m, 1, size, 4, train=False) for m in models) / len(models)
        return train, evaluation
    if model_name == "voc_eval":
        m = deeplabv3_resnet50_voc(None)
        return 0.0, _seg_step_flops(m, 1, size, 21, train=False) * (693 / 520)   # 500x375 photos -> 520x693
    if model_name == "maskrcnn_full":
        m = build_maskrcnn_full(2)
        images = [torch.rand(3, 380, 480) for _ in range(batch)]   # Penn-Fudan photos are about this size
        return _detection_step_flops(m, images), _detection_step_flops(m, images[:1], train=False)
    if model_name == "maskrcnn_small":
        m = build_maskrcnn_cpu(2, image_size=size, anchor_sizes=(8, 16, 32))
        return (_detection_step_flops(m, [torch.rand(3, size, size) for _ in range(batch)]),
                _detection_step_flops(m, [torch.rand(3, 520, 696)], train=False))
    if model_name == "segformer_tiny":
        from utils.models.segformer import segformer_tiny

        m = segformer_tiny(4)
        return _seg_step_flops(m, batch, size, 4), _seg_step_flops(m, 1, size, 4, train=False)
    if model_name == "unet16d3":
        m = UNet(3, 4, base_width=16, depth=3)
        return _seg_step_flops(m, batch, size, 4), _seg_step_flops(m, 1, size, 4, train=False)
    if model_name == "unet16d3_nuclei":   # boundary classes; evaluated on whole images (see nuclei_pixels)
        m = UNet(3, 3, base_width=16, depth=3)
        return _seg_step_flops(m, batch, size, 3), _seg_step_flops(m, 1, 256, 3, train=False)
    if model_name == "panoptic_deeplab32":
        return _panoptic_flops(batch, size)
    if model_name == "maskrcnn_scenes96":
        m = build_maskrcnn_cpu(4, image_size=size)
        return (_detection_step_flops(m, [torch.rand(3, size, size) for _ in range(batch)]),
                _detection_step_flops(m, [torch.rand(3, size, size)], train=False))
    if model_name in ("promptable", "promptable_detail", "promptable_detail_1block"):
        # SAM's decoder; with the detail path (lesson 12); and one decoder block deep (lesson 09)
        return _promptable_flops(batch, size, detail=model_name != "promptable",
                                 depth=1 if model_name.endswith("_1block") else 2)
    if model_name == "mask2former_small":
        return _mask2former_flops(batch, size)
    if model_name == "sam_vit_b":
        from utils.models.promptable import build_sam_vit_b

        m = build_sam_vit_b()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            m.image_encoder(torch.zeros(1, 3, size, size))
        return 0.0, counter.get_total_flops()
    raise ValueError(f"unknown model {model_name!r}")


def _panoptic_flops(batch, size):
    """One training step of lesson 11's Panoptic-DeepLab (width 32) and its forward pass on one scene.

    The loss is counted as cross-entropy on the semantic logits, MSE on the centre heatmap and L1 on the offsets
    (``panoptic_loss`` adds a top-k and weights: negligible FLOPs).
    """
    import torch
    from torch.nn import functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from utils.models.panoptic_deeplab import PanopticDeepLabLite

    m = PanopticDeepLabLite(6, width=32)
    x = torch.randn(batch, 3, size, size)
    m.train()
    with FlopCounterMode(display=False) as counter:
        out = m(x)
        (F.cross_entropy(out["semantic"], torch.randint(0, 6, (batch, size, size)))
         + F.mse_loss(out["center"], torch.rand_like(out["center"]))
         + F.l1_loss(out["offset"], torch.randn_like(out["offset"]))).backward()
    step = counter.get_total_flops()
    m.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        m(x[:1])
    return step, counter.get_total_flops()


def _promptable_flops(batch, size, detail=False, depth=2):
    """One training step of the small SAM-style model (``detail``: with lesson 09's detail path and mask-aware IoU
    head; ``depth``: the decoder's two-way transformer blocks), and its 5-click evaluation of one generated scene."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from utils.models.promptable import build_promptable_sam
    from utils.prompting import click_evaluation, scene_labels, train_promptable
    from utils.scenes import make_scenes

    sam = build_promptable_sam(image_size=size, decoder_depth=depth,
                               **({"detail_chans": 16, "mask_scoring": True} if detail else {}))
    scenes = make_scenes(batch, size, "train")
    images = torch.stack([torch.from_numpy(s.image.transpose(2, 0, 1).copy()).float() for s in scenes])
    masks = [torch.from_numpy(s.instance_masks.copy()) for s in scenes]
    optimizer = torch.optim.AdamW(sam.parameters())
    with FlopCounterMode(display=False) as counter:
        train_promptable(sam, iter([(images, masks)]), 1, optimizer, clicks=2, prompts_per_image=6, progress=False)
    step = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        click_evaluation(sam, [scenes[0].image], [scene_labels(scenes[0])], 5, progress=False)
    return step, counter.get_total_flops()


def _mask2former_flops(batch, size):
    """One training step of lesson 10b's Mask2Former (its loss with the matching, and the auxiliary per-pixel loss)
    and its forward pass on one scene."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from utils.models.mask2former import _loss_terms, build_mask2former, scene_targets
    from utils.scenes import make_scenes

    m = build_mask2former(3, size)
    data = scene_targets(make_scenes(batch, size, "train"))
    with FlopCounterMode(display=False) as counter:
        _loss_terms(m, data)[0].backward()                  # Mask2Former's loss and the auxiliary per-pixel loss
    step = counter.get_total_flops()
    m.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        m(pixel_values=data["pixel_values"][:1])
    return step, counter.get_total_flops()


def estimate() -> dict:
    import torch

    from utils.data import REGISTRY

    torch.manual_seed(0)
    plan = {}
    for notebook, spec in WORKLOADS.items():
        download_mb = sum(REGISTRY[n].size_bytes for n in spec["downloads"]) / 1e6
        download_s = download_mb / DOWNLOAD_MB_S + spec.get("extract_s", 0)
        rows, total_s = [], download_s + OTHER_S
        for w in spec["train"]:
            step_flops, eval_flops = flops(w["model"], w["batch"], w["size"])
            kind = ("detection" if w["model"].startswith("maskrcnn")
                    else "promptable" if w["model"].startswith("promptable")
                    else "set_prediction" if w["model"].startswith("mask2former") else "segmentation")
            compute_s = (w["steps"] * step_flops + w["eval_images"] * eval_flops) / T4_FLOPS \
                + w["steps"] * (STEP_OVERHEAD_S[kind] + w.get("load_s", 0.0))
            loader_s = w.get("decode_images", 0) * PET_DECODE_S / COLAB_WORKERS
            seconds = max(compute_s, loader_s)
            total_s += seconds
            rows.append({"what": w["what"], "steps": w["steps"], "tflop": round((w["steps"] * step_flops
                         + w["eval_images"] * eval_flops) / 1e12, 1), "compute_s": round(compute_s),
                         "loader_s": round(loader_s), "seconds": round(seconds)})
        cpu = [{"what": c["what"], "seconds": round(c["seconds"])} for c in spec.get("cpu", [])]
        total_s += sum(c["seconds"] for c in spec.get("cpu", []))
        plan[notebook] = {"downloads": spec["downloads"], "download_mb": round(download_mb),
                          "download_s": round(download_s), "workloads": rows, "cpu": cpu,
                          "t4_minutes": round(total_s / 60 + 0.5)}   # rounded up to whole minutes
    return plan


def write(plan: dict, measured: dict | None = None) -> None:
    (ROOT / "benchmarks" / "full_mode.json").write_text(json.dumps(plan, indent=1) + "\n")
    lines = ["# Full mode on a Colab T4: the plan", "",
             "Written by `tools/estimate_full_mode.py` (how the estimate is made: its docstring). Each notebook "
             "prints its line of this table before it downloads or trains in full mode "
             "(`utils.runtime.announce_full_run`). The limit is 15 minutes per notebook.", "",
             "| notebook | downloads | training and evaluation | T4 estimate |", "|---|---|---|---|"]
    for notebook, p in plan.items():
        downloads = f"{p['download_mb']:,} MB ({p['download_s']} s)" if p["downloads"] else "none"
        work = "<br>".join(f"{w['what']}: {w['tflop']} TFLOP, {w['seconds']} s"
                           + (f" (loader-bound: {w['loader_s']} s)" if w["loader_s"] > w["compute_s"] else "")
                           for w in p["workloads"])
        work += "".join(f"<br>{c['what']} (CPU): {c['seconds']} s" for c in p["cpu"])
        lines.append(f"| {notebook} | {downloads} | {work} | {p['t4_minutes']} min |")
    rehearsal = ROOT / "benchmarks" / "full_mode_rehearsal.json"
    if rehearsal.is_file():   # what a GPU rehearsal measured (tools/rehearse_full_mode.py), written by hand
        r = json.loads(rehearsal.read_text())
        lines += ["", f"## Rehearsed on a GPU ({r['date']})", "", f"{r['machine']}: `{r['command']}`.", "", r["note"], "",
                  "| notebook | outcome | wall time | seen |", "|---|---|---|---|"]
        lines += [f"| {x['notebook']} | {x['status']} | {'' if x['wall_s'] is None else str(x['wall_s']) + ' s'} | "
                  f"{x['seen']} |" for x in r["runs"]]
    (ROOT / "benchmarks" / "FULL_MODE.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    """Measure, estimate, write the plan; exit status 1 if a notebook is over the limit."""
    start = time.perf_counter()
    plan = estimate()
    write(plan)
    for notebook, p in plan.items():
        flag = "" if p["t4_minutes"] <= LIMIT_MIN else f"  OVER the {LIMIT_MIN:.0f}-minute limit"
        print(f"{notebook:32s} {p['download_mb']:6,} MB  about {p['t4_minutes']:3d} min on a T4{flag}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0 if all(p["t4_minutes"] <= LIMIT_MIN for p in plan.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
