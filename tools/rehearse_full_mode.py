#!/usr/bin/env python3
"""Rehearse full mode without the internet: stand-in files in each dataset's real layout, served on loopback.

    .venv/bin/python tools/rehearse_full_mode.py notebooks/04_fcn_unet.ipynb notebooks/06_mask_rcnn.ipynb
    .venv/bin/python tools/rehearse_full_mode.py --scale 0.05 --build-only --out /tmp/fake   # just the files

Full mode downloads real datasets and weights, which CI and an offline machine cannot reach. This tool
builds, for every registry entry a lesson uses, a file in the publisher's real layout and at the real
number of images (``--scale`` shrinks the counts):

* ``oxford_pet_images`` / ``oxford_pet_annotations``: ``images/*.jpg``; ``annotations/trimaps/*.png``
  (1 pet, 2 background, 3 border) and ``annotations/trainval.txt``, ``test.txt``.
* ``penn_fudan``: ``PennFudanPed/PNGImages/*.png`` and ``PedMasks/*_mask.png`` (one id per person).
* ``voc2012``: ``VOCdevkit/VOC2012/JPEGImages``, palette PNGs in ``SegmentationClass`` (255 void band),
  ``ImageSets/Segmentation/train.txt`` and ``val.txt``.
* ``dsb2018_stage1_train``: the course's own 256 real nuclei images, written back in the Data Science
  Bowl's layout (``<id>/images/<id>.png``, one ``<id>/masks/*.png`` per nucleus).
* ``deeplabv3_resnet50_coco``, ``maskrcnn_resnet50_fpn_coco``: randomly initialised state dicts of the real
  architectures (so loading, shapes and timing are real; the scores are not).

Photos are drawn shapes on smooth backgrounds, with masks that match them, so training has something to
learn and JPEG sizes are plausible. The files are served by a loopback HTTP server; each notebook runs in a
fresh kernel with ``COURSE_MODE=full`` and a first, invisible cell that points the registry at the server
(with the stand-ins' SHA-256 where the real entry has a hash) and marks the machine online. Nothing is
saved into the notebooks; the wall time of each is printed and written to ``--report``.

``--as-script`` runs each notebook's code cells, in order, as one Python program instead of in a Jupyter
kernel (the lessons use no IPython magics): for a GPU machine that has PyTorch but no Jupyter.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import threading
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Real image counts of each dataset (the publishers' split files).
PET_COUNTS = {"trainval": 3680, "test": 3669}
VOC_COUNTS = {"train": 1464, "val": 1449}
PENN_FUDAN_COUNT = 170


def _photo_and_mask(rng, h: int, w: int, n_objects: int, label_of=None):
    """A smooth background with ``n_objects`` filled ellipses; the mask holds 1..n at each object."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.uniform(40, 200, 3)
    tilt = rng.uniform(-0.15, 0.15, (2, 3))
    photo = base + yy[..., None] * tilt[0] + xx[..., None] * tilt[1] * (h / w)
    ids = np.zeros((h, w), np.int32)
    for k in range(1, n_objects + 1):
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.15, 0.85) * w
        ry, rx = rng.uniform(0.12, 0.3) * h, rng.uniform(0.08, 0.2) * w
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        ids[inside] = k
        photo[inside] = rng.uniform(0, 255, 3)
    photo = np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
    return photo, ids


def _png(array, palette=None) -> bytes:
    from PIL import Image

    im = Image.fromarray(array)
    if palette is not None:
        im = im.convert("P") if im.mode != "P" else im
        im.putpalette(palette)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(array) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _pet_sample(seed: int):
    """One Oxford-IIIT Pet stand-in: JPEG bytes and trimap PNG bytes (1 pet, 2 background, 3 border)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(300, 420)), int(rng.integers(400, 520))
    photo, ids = _photo_and_mask(rng, h, w, 1)
    trimap = np.where(ids > 0, 1, 2).astype(np.uint8)
    edge = ndimage.binary_dilation(ids > 0, iterations=2) & ~ndimage.binary_erosion(ids > 0, iterations=2)
    trimap[edge] = 3
    return _jpeg(photo), _png(trimap)


def _pool_map(fn, seeds):
    """``fn`` over ``seeds`` on every core (the full-size stand-ins are thousands of images)."""
    from concurrent.futures import ProcessPoolExecutor

    if len(seeds) < 200:   # small sets (the tests') are quicker in this process
        return [fn(seed) for seed in seeds]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(fn, seeds, chunksize=32))


def build_oxford_pet(out: Path, scale: float = 1.0, seed: int = 0) -> tuple[Path, Path]:
    """``images.tar.gz`` and ``annotations.tar.gz`` in Oxford-IIIT Pet's layout."""
    images, annotations = out / "oxford_pet_images.tar.gz", out / "oxford_pet_annotations.tar.gz"
    with tarfile.open(images, "w:gz", compresslevel=1) as ti, tarfile.open(annotations, "w:gz") as ta:
        for s, (split, count) in enumerate(PET_COUNTS.items()):
            names = [f"pet{split}_{i + 1}" for i in range(max(2, round(count * scale)))]
            samples = _pool_map(_pet_sample, [seed * 1_000_000 + s * 100_000 + i for i in range(len(names))])
            for name, (jpeg, trimap) in zip(names, samples):
                _add(ti, f"images/{name}.jpg", jpeg)
                _add(ta, f"annotations/trimaps/{name}.png", trimap)
            _add(ta, f"annotations/{split}.txt", "".join(f"{n} 1 1 1\n" for n in names).encode())
    return images, annotations


def voc_palette() -> list[int]:
    """VOC's 256-colour palette (the bit-interleaving scheme of its development kit)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _voc_sample(seed: int):
    """One VOC stand-in: JPEG bytes and palette-PNG bytes (classes 1..20 on objects, a 255 void band)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(280, 500)), int(rng.integers(350, 500))
    photo, ids = _photo_and_mask(rng, h, w, int(rng.integers(1, 4)))
    classes = np.zeros_like(ids, dtype=np.uint8)
    for k in range(1, ids.max() + 1):
        classes[ids == k] = rng.integers(1, 21)
    classes[ndimage.morphological_gradient(ids, size=5) > 0] = 255   # VOC's void band around objects
    return _jpeg(photo), _png(classes, voc_palette())


def build_voc2012(out: Path, scale: float = 1.0, seed: int = 0) -> Path:
    """``VOCtrainval_11-May-2012.tar`` in Pascal VOC's layout (palette PNG masks with a 255 void band)."""
    path = out / "VOCtrainval_11-May-2012.tar"
    base = "VOCdevkit/VOC2012"
    all_names = []
    with tarfile.open(path, "w") as tar:
        for s, (split, count) in enumerate(VOC_COUNTS.items()):
            names = [f"2012_{split}{i:05d}" for i in range(max(2, round(count * scale)))]
            samples = _pool_map(_voc_sample, [seed * 1_000_000 + s * 100_000 + i for i in range(len(names))])
            for name, (jpeg, png) in zip(names, samples):
                _add(tar, f"{base}/JPEGImages/{name}.jpg", jpeg)
                _add(tar, f"{base}/SegmentationClass/{name}.png", png)
            _add(tar, f"{base}/ImageSets/Segmentation/{split}.txt", "".join(f"{n}\n" for n in names).encode())
            all_names += names
        _add(tar, f"{base}/ImageSets/Segmentation/trainval.txt", "".join(f"{n}\n" for n in all_names).encode())
    return path


def build_penn_fudan(out: Path, scale: float = 1.0, seed: int = 0) -> Path:
    """``PennFudanPed.zip`` in Penn-Fudan's layout."""
    rng = np.random.default_rng(seed)
    path = out / "PennFudanPed.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(max(4, round(PENN_FUDAN_COUNT * scale))):
            h, w = int(rng.integers(300, 420)), int(rng.integers(360, 560))
            photo, ids = _photo_and_mask(rng, h, w, int(rng.integers(1, 4)))
            zf.writestr(f"PennFudanPed/PNGImages/FudanPed{i + 1:05d}.png", _png(photo))
            zf.writestr(f"PennFudanPed/PedMasks/FudanPed{i + 1:05d}_mask.png", _png(ids.astype(np.uint8)))
    return path


def build_dsb2018(out: Path, scale: float = 1.0, seed: int = 0) -> Path:
    """``stage1_train.zip`` in the Data Science Bowl's layout, from the real images the course ships."""
    from utils import nuclei

    path = out / "stage1_train.zip"
    rows = nuclei.read_manifest()
    rows = rows[: max(4, round(len(rows) * scale))] if scale < 1 else rows
    root = nuclei.shipped_root()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for row in rows:
            from PIL import Image

            with Image.open(root / "images" / f"{row['id']}.png") as im:
                image = np.array(im.convert("RGBA"))   # the Data Science Bowl's PNGs are RGBA
            with Image.open(root / "labels" / f"{row['id']}.png") as im:
                labels = np.array(im)
            zf.writestr(f"{row['id']}/images/{row['id']}.png", _png(image))
            for k in np.unique(labels[labels > 0]):
                zf.writestr(f"{row['id']}/masks/{k:04d}.png", _png(((labels == k) * 255).astype(np.uint8)))
    return path


def build_weights(out: Path, name: str) -> Path:
    """A randomly initialised state dict of the architecture the registry entry ``name`` holds."""
    import torch
    import torchvision

    from utils.data import REGISTRY

    if name == "deeplabv3_resnet50_coco":
        model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                                    num_classes=21, aux_loss=True)
    elif name == "maskrcnn_resnet50_fpn_coco":
        model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    else:
        raise ValueError(f"no stand-in weights for {name!r}")
    path = out / REGISTRY[name].filename
    torch.save(model.state_dict(), path)
    return path


BUILDERS = {
    "oxford_pet": build_oxford_pet,
    "voc2012": build_voc2012,
    "penn_fudan": build_penn_fudan,
    "dsb2018_stage1_train": build_dsb2018,
}


def build_all(out: Path, scale: float = 1.0) -> dict[str, Path]:
    """Every stand-in file, keyed by registry name (reused when ``out`` already holds a set of this scale)."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "built.json"
    if stamp.is_file():
        record = json.loads(stamp.read_text())
        if record.get("scale") == scale and all(Path(f).is_file() for f in record["files"].values()):
            return {name: Path(f) for name, f in record["files"].items()}
    files = {}
    t0 = time.perf_counter()
    files["oxford_pet_images"], files["oxford_pet_annotations"] = build_oxford_pet(out, scale)
    files["voc2012"] = build_voc2012(out, scale)
    files["penn_fudan"] = build_penn_fudan(out, scale)
    files["dsb2018_stage1_train"] = build_dsb2018(out, scale)
    for name in ("deeplabv3_resnet50_coco", "maskrcnn_resnet50_fpn_coco"):
        files[name] = build_weights(out, name)
    sizes = ", ".join(f"{n} {p.stat().st_size / 1e6:.0f} MB" for n, p in files.items())
    print(f"built the stand-in files in {time.perf_counter() - t0:.0f} s: {sizes}", flush=True)
    stamp.write_text(json.dumps({"scale": scale, "files": {n: str(p) for n, p in files.items()}}))
    return files


def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 from a daemon thread; return ``(server, base_url)``."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):   # no access log in the notebooks' output
            pass

    handler = partial(Quiet, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def registry_patch(files: dict[str, Path], base_url: str) -> dict:
    """For each entry: the loopback address, and the stand-in's SHA-256 where the real entry is hashed."""
    from utils.data import REGISTRY

    patch = {}
    for name, path in files.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        patch[name] = {"url": f"{base_url}/{path.name}",
                       "hash": None if REGISTRY[name].hash is None else f"sha256:{digest}"}
    return patch


PREAMBLE = """\
import dataclasses as _dc, json as _json, os as _os
import utils.data as _data, utils.runtime as _runtime
for _name, _change in _json.loads(_os.environ["COURSE_REHEARSAL_PATCH"]).items():
    _data.REGISTRY[_name] = _dc.replace(_data.REGISTRY[_name], **_change)
_runtime._online_cache["online"] = True   # the loopback server stands in for the internet
"""


def run_notebook(path: Path, patch: dict, cache: Path, timeout: int) -> dict:
    """Execute ``path`` in full mode against the stand-ins; outputs are not saved. Returns its record."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PREAMBLE))
    env = {"COURSE_MODE": "full", "COURSE_DATA": str(cache), "COURSE_REHEARSAL_PATCH": json.dumps(patch),
           "MPLBACKEND": "Agg", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    saved = dict(os.environ)
    os.environ.pop("COURSE_OFFLINE", None)
    os.environ.update(env)
    start = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1][:300]
    except Exception as err:  # a timeout or a dead kernel: report it, go on with the next notebook
        error = f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    wall = time.perf_counter() - start
    lines = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                lines += [l for l in out["text"].splitlines() if l.strip() and "\r" not in l and "%|" not in l]
    return {"notebook": path.name, "wall_s": round(wall, 1), "error": error, "printed": lines}


def run_as_script(path: Path, patch: dict, cache: Path, timeout: int, mode: str = "full", log_dir=None) -> dict:
    """Like :func:`run_notebook`, with the code cells run as one Python program (no Jupyter needed)."""
    import subprocess

    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]   # plain JSON: no Jupyter package needed
    code = [PREAMBLE] + ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    script = cache.parent / f"{path.stem}.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("\n\n".join(code) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "COURSE_OFFLINE"}
    env.update(COURSE_MODE=mode, COURSE_DATA=str(cache), COURSE_REHEARSAL_PATCH=json.dumps(patch), MPLBACKEND="Agg",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    log = Path(log_dir or script.parent) / f"{path.stem}.log"
    start = time.perf_counter()
    with open(log, "w") as sink:   # written as it runs: a run cut short still leaves its log
        try:
            done = subprocess.run([sys.executable, str(script)], cwd=path.parent, env=env, stdout=sink,
                                  stderr=subprocess.STDOUT, text=True, timeout=timeout)
            error = None if done.returncode == 0 else f"exit status {done.returncode} (see {log})"
        except subprocess.TimeoutExpired:
            error = f"timed out after {timeout} s"
    out = log.read_text(errors="replace")
    lines = [l for l in out.splitlines() if l.strip() and "%|" not in l and "\r" not in l]
    if error and lines:
        error += ": " + lines[-1][:300]
    return {"notebook": path.name, "wall_s": round(time.perf_counter() - start, 1), "error": error, "printed": lines}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=Path("/tmp/course-rehearsal"), help="stand-ins and cache")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real image counts")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--report", type=Path, default=None, help="JSON file for the records")
    parser.add_argument("--as-script", action="store_true", help="run the code cells as one Python program")
    parser.add_argument("--mode", default="full", choices=("smoke", "default", "full"),
                        help="COURSE_MODE for --as-script (full; smoke checks the tool itself quickly)")
    parser.add_argument("--cache", type=Path, default=None, help="download cache (default: OUT/cache)")
    parser.add_argument("--log-dir", type=Path, default=None, help="where --as-script writes each notebook's log")
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        raise SystemExit(f"--scale must be in (0, 1], got {args.scale}")
    files = build_all(args.out / "files", args.scale)
    if args.build_only:
        return 0
    httpd, base = serve(args.out / "files")
    patch = registry_patch(files, base)
    records = []
    try:
        for nb in args.notebooks:
            cache = args.cache or args.out / "cache"
            if args.as_script:
                record = run_as_script(nb.resolve(), patch, cache, args.timeout, args.mode, args.log_dir)
            else:
                record = run_notebook(nb.resolve(), patch, cache, args.timeout)
            records.append(record)
            status = "ok" if record["error"] is None else f"FAILED: {record['error']}"
            print(f"{record['notebook']}: {record['wall_s']:.0f} s, {status}", flush=True)
            for line in record["printed"]:
                print(f"    {line[:200]}")
            if args.report:
                args.report.write_text(json.dumps(records, indent=1))
    finally:
        httpd.shutdown()
    return 0 if all(r["error"] is None for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
