#!/usr/bin/env python3
"""Rebuild the nuclei subset the course ships (``data/nuclei/``) from the Data Science Bowl's own layout.

    python tools/build_nuclei_subset.py SOURCE [--out data/nuclei]

``SOURCE`` is ``stage1_train_fixed.tar.gz`` (the stage-1 training set with the community's mask fixes,
``stage1_train/<id>/images/<id>.png`` and ``.../masks/*.png``), BBBC's ``stage1_train.zip`` or a folder
holding either layout unpacked. The selection is deterministic: within each group of one kind and one
image size, image ids are ordered by the SHA-256 of the id, and the first ones go to ``test``, the next to
``val`` and the next to ``train`` (``GROUPS`` says how many). The split is therefore by image and never
changes unless ``GROUPS`` does. Each image is converted with :func:`utils.nuclei.read_dsb_sample`
(one uint16 label map per image; the smaller nucleus wins where two masks overlap) and listed in
``manifest.csv`` with the SHA-256 of both files.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from utils import nuclei  # noqa: E402

# (kind, height, width): (test, val, train) images. Stained tissue and brightfield are few but kept for
# domain shift; large fluorescence images are kept for their crowded fields.
GROUPS = {
    ("fluo", 256, 256): (30, 15, 100),
    ("fluo", 360, 360): (8, 3, 14),
    ("fluo", 520, 696): (6, 2, 10),
    ("color", 256, 320): (18, 6, 36),
    ("bright", 1024, 1024): (3, 1, 4),
}


def _unpack(source: Path, into: Path) -> Path:
    if source.is_dir():
        return source
    if source.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(source) as tar:
            tar.extractall(into, filter="data")
    elif source.suffix == ".zip":
        with zipfile.ZipFile(source) as z:
            z.extractall(into)
    else:
        raise SystemExit(f"SOURCE {source} is neither a folder, a .tar.gz nor a .zip")
    return into


def select(samples: dict[str, Path]) -> dict[str, str]:
    """``{id: split}`` for the images the subset keeps (see ``GROUPS``)."""
    from PIL import Image

    groups: dict[tuple, list[str]] = {}
    for sample_id, folder in samples.items():
        with Image.open(folder / "images" / f"{sample_id}.png") as im:
            w, h = im.size
            import numpy as np

            kind = nuclei.image_kind(np.array(im.convert("RGB")))
        groups.setdefault((kind, h, w), []).append(sample_id)
    chosen = {}
    for key, (n_test, n_val, n_train) in GROUPS.items():
        ids = sorted(groups.get(key, []), key=lambda s: hashlib.sha256(s.encode()).hexdigest())
        if len(ids) < n_test + n_val + n_train:
            raise SystemExit(f"group {key} has {len(ids)} images, fewer than the {n_test + n_val + n_train} wanted")
        for i, sample_id in enumerate(ids[:n_test + n_val + n_train]):
            chosen[sample_id] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="stage1_train_fixed.tar.gz, stage1_train.zip or a folder")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "nuclei")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        samples = nuclei.find_dsb_samples(_unpack(args.source, Path(tmp)))
        chosen = select(samples)
        for sub in ("images", "labels"):
            shutil.rmtree(args.out / sub, ignore_errors=True)
        rows = []
        for sample_id, split in sorted(chosen.items()):
            image, labels = nuclei.read_dsb_sample(samples[sample_id])
            rows.append(nuclei.write_sample(args.out, sample_id, image, labels, split))
    nuclei.write_manifest(args.out, rows)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    counts = {s: sum(r["split"] == s for r in rows) for s in nuclei.SPLITS}
    print(f"wrote {len(rows)} images ({counts}), {sum(r['nuclei'] for r in rows)} nuclei, "
          f"{size / 1e6:.1f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
