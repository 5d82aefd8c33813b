"""Everything the course downloads, in one registry, and the one function that downloads it.

``REGISTRY`` maps a short name to a :class:`RegistryEntry`: the official address, the file name in the
cache, the published hash, an approximate size, the licence, the citation and the offline path the
lessons take when the file cannot be had. Lessons call :func:`fetch`; nothing else in the course opens
a URL.

How a download is made safe
---------------------------
* The cache folder is :func:`utils.runtime.data_dir` (``COURSE_DATA`` moves it; default ``data/``).
* A file already in the cache that verifies is returned at once, with no network request. A small
  stamp (``.verified/<file>.json``: hash, size, modification time) records a successful check, so a
  large archive is not hashed again on every call; ``recheck=True`` hashes it anyway.
* Downloads go through `pooch <https://www.fatiando.org/pooch/>`_ (``HTTPDownloader``: a tqdm progress
  bar, streaming, timeouts) into a private staging folder ``.staging/`` inside the cache. The file is
  moved to its place in the cache only after its hash has been checked, with an atomic rename, so a
  corrupt, truncated or interrupted transfer never leaves a file where :func:`fetch` would find it.
  Staging folders left behind by a killed process are removed by a later download once they are a
  day old.
* Archives are unpacked by :func:`safe_extract`, which refuses the whole archive if any entry is an
  absolute path, climbs out of the target folder (``../``), or is a link or a device file.
* Offline (``COURSE_OFFLINE=1``, or the probe of :func:`utils.runtime.is_online` fails), a fetch that
  needs the network raises :class:`DownloadUnavailable` at once, naming the dataset and the offline
  path the lessons use.

Hashes
------
``"sha256:<64 hex>"`` and ``"md5:<32 hex>"`` are checked in full. ``"sha256-prefix:<hex>"`` is the
leading digits of a SHA-256, the form torchvision publishes in its weight file names
(``deeplabv3_resnet50_coco-cd0a2569.pth``) and that ``torch.hub.load_state_dict_from_url(check_hash=True)``
checks; :func:`fetch` computes the full SHA-256 and compares its start. ``None`` means the publisher
gives no checksum: the entry says so in its ``note``, the file is still downloaded through the same
safe path, and :func:`fetch` prints the SHA-256 (and MD5) it computed so that a user can pin the copy
they got (``dataclasses.replace(entry, hash="sha256:...")``).
"""
from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import runtime
from .validation import check_int

__all__ = [
    "RegistryEntry",
    "REGISTRY",
    "DownloadError",
    "DownloadUnavailable",
    "HashMismatchError",
    "fetch",
    "optional_fetch",
    "safe_extract",
    "registry_table",
    "get_entry",
    "verify_file",
]

KINDS = ("dataset", "weights")
HASH_KINDS = ("sha256", "md5", "sha256-prefix")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
STAGING_DIR = ".staging"
STAMP_DIR = ".verified"
EXTRACTED_MARKER = ".extracted.json"
STALE_STAGING_S = 24 * 3600
DOWNLOAD_TIMEOUT_S = 30
_HEX = re.compile(r"[0-9a-fA-F]+")
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")


class DownloadError(RuntimeError):
    """A download was attempted and failed (network error, truncated transfer, wrong hash)."""


class HashMismatchError(DownloadError):
    """The downloaded file does not match the published hash; nothing was kept in the cache."""


class DownloadUnavailable(RuntimeError):
    """The file is not in the cache and the network may not or cannot be used (offline)."""


def _parse_hash(value):
    """Split ``"kind:hex"`` into ``(kind, lowercase hex)``; ``None`` stays ``None``.

    Raises
    ------
    ValueError
        If the kind is unknown or the hex part has the wrong length or characters.
    """
    if value is None:
        return None
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"`hash` must be 'sha256:<hex>', 'md5:<hex>', 'sha256-prefix:<hex>' or None, got {value!r}")
    kind, digest = value.split(":", 1)
    if kind not in HASH_KINDS:
        raise ValueError(f"`hash` {value!r} has kind {kind!r}; use one of {', '.join(HASH_KINDS)}")
    if not _HEX.fullmatch(digest):
        raise ValueError(f"`hash` {value!r}: the part after '{kind}:' must be hexadecimal digits")
    lengths = {"sha256": (64, 64), "md5": (32, 32), "sha256-prefix": (6, 63)}[kind]
    if not lengths[0] <= len(digest) <= lengths[1]:
        want = str(lengths[0]) if lengths[0] == lengths[1] else f"{lengths[0]} to {lengths[1]}"
        raise ValueError(f"`hash` {value!r}: a {kind} needs {want} hex digits, got {len(digest)}")
    return kind, digest.lower()


def _is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class RegistryEntry:
    """One file the course downloads.

    Parameters
    ----------
    name : str
        Short key, lower case with underscores (``"penn_fudan"``); also the name of the folder an
        archive is extracted to.
    title : str
        Human-readable name, used in messages.
    kind : {"dataset", "weights"}
    url : str
        The official address (``https://`` for every entry of ``REGISTRY``; tests may use ``http://``
        on the loopback interface).
    filename : str
        Name of the file in the cache folder (a plain name, no folders).
    hash : str or None
        ``"sha256:<64 hex>"``, ``"md5:<32 hex>"``, ``"sha256-prefix:<6..63 hex>"``, or ``None`` when
        the publisher gives no checksum (``note`` must then say so).
    size_bytes : int
        Approximate size of the download in bytes (rounded; for the user's information, never used to
        verify anything).
    licence : str
        Licence or terms of use, as the publisher states them.
    citation : str
        The work to cite.
    offline_fallback : str
        What the lessons use instead when the file cannot be downloaded.
    hash_source : str
        Where the hash comes from (or why there is none).
    note : str
        Anything else a user should know.
    """

    name: str
    title: str
    kind: str
    url: str
    filename: str
    hash: str | None
    size_bytes: int
    licence: str
    citation: str
    offline_fallback: str
    hash_source: str = ""
    note: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"`name` must be lower case letters, digits and underscores, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.url, str) or not re.match(r"https?://[^/\s]+/\S*$", self.url):
            raise ValueError(f"`url` must be an http(s) address, got {self.url!r}")
        if (not isinstance(self.filename, str) or not self.filename or "/" in self.filename
                or "\\" in self.filename or self.filename.startswith(".")):
            raise ValueError(f"`filename` must be a plain file name (no folders, not hidden), got {self.filename!r}")
        _parse_hash(self.hash)
        if self.hash is None and not self.note.strip():
            raise ValueError(f"entry {self.name!r} has no `hash`; its `note` must say why (none is published)")
        check_int("size_bytes", self.size_bytes)
        for field in ("title", "licence", "citation", "offline_fallback"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"`{field}` of entry {self.name!r} must be a non-empty string, got {value!r}")

    @property
    def is_archive(self) -> bool:
        """Whether :func:`fetch` can extract the file (``.zip``, ``.tar``, ``.tar.gz``, ...)."""
        return _is_archive(self.filename)

    @property
    def hash_kind(self) -> str | None:
        """``"sha256"``, ``"md5"``, ``"sha256-prefix"`` or ``None``."""
        parsed = _parse_hash(self.hash)
        return None if parsed is None else parsed[0]


_TORCHVISION_LICENCE = ("BSD-3-Clause (torchvision); the weights were trained on COCO, whose terms "
                        "(annotations CC BY 4.0, images under their Flickr owners' terms) also apply")

REGISTRY: dict[str, RegistryEntry] = {
    e.name: e
    for e in (
        RegistryEntry(
            name="oxford_pet_images",
            title="Oxford-IIIT Pet, images",
            kind="dataset",
            url="https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
            filename="oxford_pet_images.tar.gz",
            hash="md5:5c4f3ee8e5d25df40f4fd59a7f44e54c",
            size_bytes=792_000_000,
            licence="CC BY-SA 4.0 (the copyright of the images stays with their owners)",
            citation="O. M. Parkhi, A. Vedaldi, A. Zisserman, C. V. Jawahar. Cats and Dogs. CVPR 2012.",
            offline_fallback="the generated scenes of utils.scenes (SceneSegmentationDataset) stand in for the pets",
            hash_source="torchvision/datasets/oxford_iiit_pet.py (OxfordIIITPet._RESOURCES); "
                        "the dataset page publishes no checksum",
        ),
        RegistryEntry(
            name="oxford_pet_annotations",
            title="Oxford-IIIT Pet, annotations (trimaps)",
            kind="dataset",
            url="https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
            filename="oxford_pet_annotations.tar.gz",
            hash="md5:95a8c909bbe2e81eed6a22bccdf3f68f",
            size_bytes=19_200_000,
            licence="CC BY-SA 4.0",
            citation="O. M. Parkhi, A. Vedaldi, A. Zisserman, C. V. Jawahar. Cats and Dogs. CVPR 2012.",
            offline_fallback="the generated scenes of utils.scenes (SceneSegmentationDataset) stand in for the pets",
            hash_source="torchvision/datasets/oxford_iiit_pet.py (OxfordIIITPet._RESOURCES); "
                        "the dataset page publishes no checksum",
        ),
        RegistryEntry(
            name="penn_fudan",
            title="Penn-Fudan pedestrians",
            kind="dataset",
            url="https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
            filename="PennFudanPed.zip",
            hash=None,
            size_bytes=53_700_000,
            licence="no licence is stated on the dataset page; offered for research, cite the paper",
            citation="L. Wang, J. Shi, G. Song, I. Shen. Object Detection Combining Recognition and "
                     "Segmentation. ACCV 2007.",
            offline_fallback="the generated scenes' instance masks (utils.datasets.SceneInstanceDataset)",
            hash_source="none published: neither the dataset page nor torchvision's tutorial that uses it "
                        "gives a checksum",
            note="No checksum is published for this archive, so fetch() prints the SHA-256 it computed; "
                 "pin it with dataclasses.replace(entry, hash='sha256:...') to detect a changed file later.",
        ),
        RegistryEntry(
            name="dsb2018_stage1_train",
            title="2018 Data Science Bowl nuclei, stage-1 training set (BBBC038v1)",
            kind="dataset",
            url="https://data.broadinstitute.org/bbbc/BBBC038/stage1_train.zip",
            filename="stage1_train.zip",
            hash=None,
            size_bytes=83_000_000,
            licence="CC0 (public domain), as the Broad Bioimage Benchmark Collection states for BBBC038",
            citation="J. C. Caicedo et al. Nucleus segmentation across imaging experiments: the 2018 Data "
                     "Science Bowl. Nature Methods 16, 1247-1253 (2019). Image set BBBC038v1, Broad Bioimage "
                     "Benchmark Collection.",
            offline_fallback="the curated subset the course ships in data/nuclei (utils.nuclei, 256 images)",
            hash_source="none published: the BBBC038 page links the archive without a checksum",
            note="No checksum is published for this archive, so fetch() prints the SHA-256 it computed; "
                 "pin it with dataclasses.replace(entry, hash='sha256:...'). These are the original masks "
                 "(670 images); the shipped subset uses the community's corrected masks of 664 of them. "
                 "utils.nuclei.prepare_full converts the archive to label maps with the same code.",
        ),
        RegistryEntry(
            name="voc2012",
            title="Pascal VOC 2012 train/val",
            kind="dataset",
            url="https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
            filename="VOCtrainval_11-May-2012.tar",
            hash="md5:6cd6e144f989b92b3379bac3b3de84fd",
            size_bytes=2_000_000_000,
            licence="images from Flickr, each under its owner's Flickr terms of use (as the VOC2012 page "
                    "states); annotations for research use",
            citation="M. Everingham, L. Van Gool, C. K. I. Williams, J. Winn, A. Zisserman. The PASCAL Visual "
                     "Object Classes (VOC) Challenge. IJCV 88(2), 2010.",
            offline_fallback="the generated scenes of utils.scenes (SceneSegmentationDataset) stand in for VOC",
            hash_source="torchvision/datasets/voc.py (DATASET_YEAR_DICT['2012']['md5'])",
        ),
        RegistryEntry(
            name="deeplabv3_resnet50_coco",
            title="DeepLabV3 ResNet-50, COCO with VOC labels (torchvision)",
            kind="weights",
            url="https://download.pytorch.org/models/deeplabv3_resnet50_coco-cd0a2569.pth",
            filename="deeplabv3_resnet50_coco-cd0a2569.pth",
            hash="sha256-prefix:cd0a2569",
            size_bytes=168_300_000,
            licence=_TORCHVISION_LICENCE,
            citation="L.-C. Chen, G. Papandreou, F. Schroff, H. Adam. Rethinking Atrous Convolution for "
                     "Semantic Image Segmentation. arXiv:1706.05587, 2017.",
            offline_fallback="a DeepLabV3 trained from scratch on generated scenes; pretrained inference is skipped",
            hash_source="the file name in torchvision/models/segmentation/deeplabv3.py "
                        "(DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.url): torch.hub checks it as the "
                        "start of the SHA-256 (check_hash=True)",
            note="state dict for torchvision.models.segmentation.deeplabv3_resnet50(num_classes=21, "
                 "aux_loss=True); torchvision publishes its size as 160.515 MB.",
        ),
        RegistryEntry(
            name="maskrcnn_resnet50_fpn_coco",
            title="Mask R-CNN ResNet-50 FPN, COCO (torchvision)",
            kind="weights",
            url="https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
            filename="maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
            hash="sha256-prefix:bf2d0c1e",
            size_bytes=178_100_000,
            licence=_TORCHVISION_LICENCE,
            citation="K. He, G. Gkioxari, P. Dollar, R. Girshick. Mask R-CNN. ICCV 2017.",
            offline_fallback="Mask R-CNN trained from scratch on generated scenes (SceneInstanceDataset)",
            hash_source="the file name in torchvision/models/detection/mask_rcnn.py "
                        "(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url): torch.hub checks it as the start of the "
                        "SHA-256 (check_hash=True)",
            note="state dict for torchvision.models.detection.maskrcnn_resnet50_fpn(num_classes=91); "
                 "torchvision publishes its size as 169.84 MB.",
        ),
        RegistryEntry(
            name="sam_vit_b",
            title="Segment Anything ViT-B checkpoint",
            kind="weights",
            url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
            filename="sam_vit_b_01ec64.pth",
            hash=None,
            size_bytes=375_000_000,
            licence="Apache-2.0",
            citation="A. Kirillov et al. Segment Anything. ICCV 2023 (arXiv:2304.02643).",
            offline_fallback="lesson 09 trains a small SAM-style model (utils.models.promptable) on generated "
                             "scenes and the shipped nuclei, and uses it with segment-anything's predictor",
            hash_source="none published: segment-anything's README links the checkpoint without a checksum, "
                        "and the meaning of the '01ec64' in its file name is not documented",
            note="No checksum is published by Meta, so fetch() prints the SHA-256 and MD5 it computed. "
                 "Several independent projects record the MD5 of this file as one beginning with the "
                 "'01ec64' of its name; that is third-party information, not a published hash, so it is "
                 "not enforced here. Load it with torch.load(path, weights_only=True).",
        ),
    )
}


def get_entry(name) -> RegistryEntry:
    """The :class:`RegistryEntry` for ``name`` (a registry key), or ``name`` itself if it is an entry.

    Raises
    ------
    ValueError
        If ``name`` is neither a registry key nor a :class:`RegistryEntry`.
    """
    if isinstance(name, RegistryEntry):
        return name
    if isinstance(name, str) and name in REGISTRY:
        return REGISTRY[name]
    raise ValueError(f"`name` must be one of {', '.join(sorted(REGISTRY))} or a RegistryEntry, got {name!r}")


def _human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") or value >= 10 else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def registry_table() -> list[dict]:
    """One row per registry entry, for a lesson to show (``pandas.DataFrame(registry_table())``).

    Returns
    -------
    list of dict
        Keys ``name``, ``kind``, ``title``, ``size`` (approximate, human readable), ``licence`` and
        ``hash`` (its kind, or ``"none published"``), in registry order.
    """
    return [
        {
            "name": e.name,
            "kind": e.kind,
            "title": e.title,
            "size": "~" + _human_size(e.size_bytes),
            "licence": e.licence,
            "hash": e.hash_kind or "none published",
        }
        for e in REGISTRY.values()
    ]


# ----------------------------------------------------------------------------------------------
# hashing


def _digests(path: Path, algorithms=("sha256",)) -> dict[str, str]:
    """Hex digests of ``path`` for each algorithm, in one pass over the file."""
    import hashlib

    hashers = {alg: hashlib.new(alg) for alg in algorithms}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            for h in hashers.values():
                h.update(block)
    return {alg: h.hexdigest() for alg, h in hashers.items()}


def verify_file(path, expected: str | None) -> tuple[bool, str]:
    """Check a file against a registry hash.

    Parameters
    ----------
    path : str or Path
        The file.
    expected : str or None
        A registry hash: ``"sha256:<hex>"``, ``"md5:<hex>"``, ``"sha256-prefix:<hex>"``, or ``None``
        (nothing to check).

    Returns
    -------
    ok : bool
        Whether the file matches (always ``True`` for ``hash=None``).
    computed : str
        The digest computed, as ``"<algorithm>:<hex>"`` (the full SHA-256 for ``sha256-prefix`` and
        ``None``).
    """
    parsed = _parse_hash(expected)
    if parsed is None:
        return True, "sha256:" + _digests(Path(path))["sha256"]
    kind, digest = parsed
    alg = "md5" if kind == "md5" else "sha256"
    computed = _digests(Path(path), (alg,))[alg]
    ok = computed.startswith(digest) if kind == "sha256-prefix" else computed == digest
    return ok, f"{alg}:{computed}"


def _stamp_path(cache: Path, entry: RegistryEntry) -> Path:
    return cache / STAMP_DIR / f"{entry.filename}.json"


def _write_stamp(cache: Path, entry: RegistryEntry, path: Path, computed: str) -> None:
    st = path.stat()
    stamp = _stamp_path(cache, entry)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    record = {"hash": entry.hash, "computed": computed, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
              "url": entry.url}
    tmp = stamp.with_name(stamp.name + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, stamp)


def _stamp_is_current(cache: Path, entry: RegistryEntry, path: Path) -> bool:
    try:
        record = json.loads(_stamp_path(cache, entry).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("hash") == entry.hash and record.get("size") == st.st_size
            and record.get("mtime_ns") == st.st_mtime_ns)


def _cached_copy_ok(cache: Path, entry: RegistryEntry, path: Path, recheck: bool) -> bool:
    """Whether the cached file can be used; a copy that fails its hash is deleted (with a message)."""
    if not path.is_file():
        return False
    if not recheck and _stamp_is_current(cache, entry, path):
        return True
    ok, computed = verify_file(path, entry.hash)
    if ok:
        _write_stamp(cache, entry, path, computed)
        if entry.hash is None:
            print(f"{entry.name}: using the cached {path.name}; no checksum is published, its {computed}")
        return True
    print(f"{entry.name}: the cached {path.name} does not match its published hash "
          f"({entry.hash}, got {computed}); deleting it and downloading again")
    path.unlink()
    _stamp_path(cache, entry).unlink(missing_ok=True)
    return False


# ----------------------------------------------------------------------------------------------
# safe extraction


def _member_problem(name: str, dest_real: str) -> str | None:
    """Why the archive member ``name`` may not be extracted into ``dest_real``, or ``None``."""
    if not name or "\x00" in name:
        return "has an empty or invalid name"
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"[A-Za-z]:", unified):
        return "is an absolute path"
    rel = posixpath.normpath(unified)
    if rel == ".." or rel.startswith("../"):
        return "would land outside the target folder (a '..' path)"
    if ".." in unified.split("/"):
        # stays inside, but zipfile drops '..' while tar resolves it: refuse rather than guess
        return "has a '..' component (refused even inside the target folder: unzip and tar tools read it differently)"
    target = os.path.realpath(os.path.join(dest_real, *PurePosixPath(rel).parts))
    if os.path.commonpath([dest_real, target]) != dest_real:
        return "would land outside the target folder (through a link already in it)"
    return None


def _archive_format(archive: Path) -> str:
    lower = archive.name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(ARCHIVE_SUFFIXES):
        return "tar"
    raise ValueError(f"`archive` {archive.name!r} is not a supported archive; "
                     f"use one of {', '.join(ARCHIVE_SUFFIXES)}")


def safe_extract(archive, dest) -> Path:
    """Extract a ``.zip`` or ``.tar`` (``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) archive safely.

    Every member is checked before anything is written: the archive is refused as a whole if one
    member has an absolute path, a ``..`` component (one that leaves ``dest``, or even one that stays
    inside, since zip and tar tools resolve it differently), a path through a link already in ``dest``
    that leads out of it, or is a symbolic link, a hard link or a device/FIFO entry. Only regular files
    and folders are extracted.

    Parameters
    ----------
    archive : str or Path
        The archive; its format is taken from its suffix.
    dest : str or Path
        The folder to extract into (created if needed).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    FileNotFoundError
        If ``archive`` does not exist.
    ValueError
        If the suffix is not an archive's, or a member is unsafe (the message names the member).
    """
    archive = Path(archive)
    kind = _archive_format(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"`archive` {archive} does not exist")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = os.path.realpath(dest)

    def refuse(name: str, why: str):
        raise ValueError(f"`archive` {archive.name}: entry {name!r} {why}; nothing was extracted")

    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                # The file type is in the high bits only for archives made on Unix (create_system 3);
                # zipfile itself never creates links, but another unzip tool would.
                mode = info.external_attr >> 16 if info.create_system == 3 else 0
                if stat.S_ISLNK(mode):
                    refuse(info.filename, "is a symbolic link")
                if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    refuse(info.filename, "is not a regular file or folder")
                problem = _member_problem(info.filename, dest_real)
                if problem:
                    refuse(info.filename, problem)
            zf.extractall(dest, members=members)
        return dest

    try:
        tar = tarfile.open(archive)
    except tarfile.TarError as err:
        raise ValueError(f"`archive` {archive.name} is not a readable tar archive: {err}") from None
    with tar:
        members = tar.getmembers()
        for m in members:
            if m.issym():
                refuse(m.name, f"is a symbolic link (to {m.linkname!r})")
            if m.islnk():
                refuse(m.name, f"is a hard link (to {m.linkname!r})")
            if not (m.isfile() or m.isdir()):
                refuse(m.name, "is not a regular file or folder (a device or FIFO)")
            problem = _member_problem(m.name, dest_real)
            if problem:
                refuse(m.name, problem)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: a second line of defence
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - older Pythons; every member was checked above
            tar.extractall(dest, members=members)
    return dest


# ----------------------------------------------------------------------------------------------
# fetch


def _offline_reason() -> str | None:
    """Why the network may not be used now, or ``None`` when it may.

    ``COURSE_OFFLINE=1`` always wins; otherwise :func:`utils.runtime.is_online` decides (looked up at
    call time, so a test may replace it).
    """
    if runtime._env_flag("COURSE_OFFLINE"):
        return "COURSE_OFFLINE=1 forbids network access"
    if not runtime.is_online():
        return "no internet connection was found"
    return None


def _clean_stale_staging(staging_root: Path) -> None:
    if not staging_root.is_dir():
        return
    now = time.time()
    for child in staging_root.iterdir():
        try:
            if now - child.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        except OSError:
            pass


def _archive_problem(path: Path, filename: str) -> str | None:
    """``None`` if ``path`` reads as the archive its ``filename`` says it is, else what is wrong with it.

    Every member's header is read (a tar is read through to its end, which also checks its compression);
    the members' contents are not unpacked.
    """
    try:
        if _archive_format(Path(filename)) == "zip":
            with zipfile.ZipFile(path) as zf:
                zf.infolist()
        else:
            with tarfile.open(path) as tf:
                tf.getmembers()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as err:
        with open(path, "rb") as f:
            head = f.read(64).lstrip().lower()
        looks = " (it starts like an HTML page: the server sent an error page)" if head.startswith((b"<!doctype", b"<html")) else ""
        return f"not a readable {Path(filename).suffix} archive{looks}: {type(err).__name__}: {err}"
    return None


def _download(entry: RegistryEntry, cache: Path, target: Path, progress: bool, timeout) -> None:
    """Download ``entry`` through pooch into a staging folder, verify it, then move it to ``target``."""
    import pooch
    import requests

    staging_root = cache / STAGING_DIR
    staging_root.mkdir(parents=True, exist_ok=True)
    _clean_stale_staging(staging_root)
    staging = Path(tempfile.mkdtemp(prefix=f"{entry.name}-", dir=staging_root))
    parsed = _parse_hash(entry.hash)
    # pooch checks full md5/sha256 itself, on its temporary file, before moving it; a prefix or an
    # absent hash is checked here, still inside the staging folder.
    pooch_hash = entry.hash if parsed is not None and parsed[0] in ("md5", "sha256") else None
    logger = pooch.get_logger()
    level = logger.level
    print(f"Downloading {entry.name} ({entry.title}, ~{_human_size(entry.size_bytes)}) from {entry.url}")
    try:
        logger.setLevel("WARNING")  # our own message above replaces pooch's
        try:
            staged = Path(pooch.retrieve(
                entry.url, known_hash=pooch_hash, fname=entry.filename, path=staging,
                downloader=pooch.HTTPDownloader(progressbar=progress, timeout=timeout),
            ))
        except ValueError as err:  # pooch's hash mismatch (it has deleted its temporary file)
            if "hash" not in str(err):
                raise
            raise HashMismatchError(
                f"{entry.name}: the file downloaded from {entry.url} does not match its published hash; "
                f"nothing was kept in the cache. {err}") from None
        except (requests.exceptions.RequestException, OSError) as err:
            raise DownloadError(
                f"{entry.name}: downloading {entry.url} failed ({type(err).__name__}: {err}); "
                "nothing was kept in the cache. Try again later.") from err
        finally:
            logger.setLevel(level)
        if parsed is None and entry.is_archive:  # nothing to verify against: at least it must be an archive
            problem = _archive_problem(staged, entry.filename)
            if problem:
                raise DownloadError(f"{entry.name}: the file downloaded from {entry.url} is {problem}; nothing was "
                                    "kept in the cache. Try again later, or check the address in a browser.")
        if parsed is None:
            computed = _digests(staged, ("sha256", "md5"))
            print(f"{entry.name}: no checksum is published for {entry.filename}. The copy you downloaded has\n"
                  f"  sha256:{computed['sha256']}\n  md5:{computed['md5']}\n"
                  "Pin it with dataclasses.replace(entry, hash='sha256:...') to detect a changed file later.")
            computed_text = "sha256:" + computed["sha256"]
        else:
            ok, computed_text = verify_file(staged, entry.hash)
            if not ok:
                raise HashMismatchError(
                    f"{entry.name}: the file downloaded from {entry.url} does not match its published hash "
                    f"{entry.hash} (got {computed_text}); nothing was kept in the cache.")
        os.replace(staged, target)
        _write_stamp(cache, entry, target, computed_text)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_cached(entry: RegistryEntry, cache: Path, archive: Path) -> Path:
    """Extract ``archive`` to ``cache/<entry.name>/`` through a staging folder, with a marker file."""
    dest = cache / entry.name
    staging_root = cache / STAGING_DIR
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{entry.name}-extract-", dir=staging_root))
    try:
        print(f"Extracting {archive.name} to {dest}")
        safe_extract(archive, staging)
        (staging / EXTRACTED_MARKER).write_text(json.dumps({"archive": archive.name, "hash": entry.hash}))
        if dest.exists():  # an extraction without a valid marker (older, or for another hash)
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _extraction_is_current(entry: RegistryEntry, dest: Path) -> bool:
    try:
        record = json.loads((dest / EXTRACTED_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("archive") == entry.filename and record.get("hash") == entry.hash


def fetch(name, *, progress: bool = True, extract: bool = False, recheck: bool = False,
          timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Return the local path of a registry file, downloading and verifying it if needed.

    Parameters
    ----------
    name : str or RegistryEntry
        A key of ``REGISTRY`` (``"penn_fudan"``), or an entry (tests and pinned copies use this).
    progress : bool
        Show a tqdm progress bar while downloading.
    extract : bool
        Also extract the archive (safely, see :func:`safe_extract`) into ``<cache>/<name>/`` and return
        that folder. A marker file makes a second call instant, even if the archive has been deleted.
    recheck : bool
        Hash the cached file again even if its verification stamp is current (with ``extract=True``,
        also extract it again).
    timeout : float
        Seconds to wait for the server to connect or send data.

    Returns
    -------
    Path
        The verified file in the cache folder (:func:`utils.runtime.data_dir`), or the extracted folder
        with ``extract=True``.

    Raises
    ------
    ValueError
        If ``name`` is unknown, or ``extract=True`` for a file that is not an archive.
    DownloadUnavailable
        If the file is not cached and the network may not be used (``COURSE_OFFLINE=1``) or cannot be
        reached; raised at once, naming the dataset and the offline path the lessons use.
    HashMismatchError
        If the download does not match the published hash (nothing is kept).
    DownloadError
        If the transfer fails (network error, HTTP error, truncated transfer; nothing is kept), an archive
        that has no published hash does not read as an archive (an HTML error page saved under its name;
        nothing is kept), or, with ``extract=True``, the cached archive cannot be read (it is removed, so
        that the next call downloads it again).
    """
    entry = get_entry(name)
    for arg, value in (("progress", progress), ("extract", extract), ("recheck", recheck)):
        if not isinstance(value, bool):
            raise ValueError(f"`{arg}` must be True or False, got {value!r}")
    if extract and not entry.is_archive:
        raise ValueError(f"`extract=True` but {entry.name} ({entry.filename}) is not an archive")
    cache = runtime.data_dir()
    target = cache / entry.filename

    if extract and not recheck and _extraction_is_current(entry, cache / entry.name):
        return cache / entry.name
    if not _cached_copy_ok(cache, entry, target, recheck):
        reason = _offline_reason()
        if reason is not None:
            raise DownloadUnavailable(
                f"{entry.name} ({entry.title}) is not in the cache {cache} and cannot be downloaded: {reason}. "
                f"Offline, the lessons use {entry.offline_fallback}.")
        _download(entry, cache, target, progress, timeout)
    if extract:
        try:
            return _extract_cached(entry, cache, target)   # reads the archive once; a corrupt one fails here
        except (EOFError, OSError, ValueError, zipfile.BadZipFile, tarfile.TarError):
            problem = _archive_problem(target, entry.filename)
            if problem is None:   # a readable archive refused for another reason (an unsafe member): say that
                raise
        # a bad copy kept by an older version of the course, or damaged since: never keep it
        target.unlink(missing_ok=True)
        _stamp_path(cache, entry).unlink(missing_ok=True)
        shutil.rmtree(cache / entry.name, ignore_errors=True)
        raise DownloadError(f"{entry.name}: the cached {entry.filename} is {problem}. It was removed from the "
                            f"cache {cache}; run again to download it afresh.")
    return target


def optional_fetch(name: str):
    """:func:`fetch`, or ``None`` when the file is not cached and cannot, or should not, be downloaded.

    ``None`` comes back offline (:class:`DownloadUnavailable`), and in smoke mode, which downloads nothing
    (a file already in the cache is still used; one line says what was skipped). A download that fails online
    (wrong hash, broken transfer) still raises, so a real problem is never hidden.
    """
    entry = get_entry(name)
    if runtime.course_mode() == "smoke":
        cache = runtime.data_dir()
        if _cached_copy_ok(cache, entry, cache / entry.filename, recheck=False):
            return cache / entry.filename
        print(f"Smoke mode downloads nothing: {entry.title} ({_human_size(entry.size_bytes)}) is skipped.")
        return None
    try:
        return fetch(entry)
    except DownloadUnavailable:
        return None
