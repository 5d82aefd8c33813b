"""Tests of utils.data: the registry, fetch and safe extraction. All offline.

Downloads are made from a real HTTP server on 127.0.0.1 (``conftest.LoopbackServer``: an ephemeral port,
threaded) that serves bytes the test makes and counts the requests it receives.
"""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from utils import data, runtime
from utils.data import (REGISTRY, DownloadError, DownloadUnavailable, HashMismatchError, RegistryEntry, fetch,
                        get_entry, registry_table, safe_extract, verify_file)

REPO_ROOT = Path(__file__).resolve().parent.parent
BODY = b"segmentation course test file\n" * 1000


def make_hash(body: bytes, kind: str) -> str | None:
    if kind == "sha256":
        return "sha256:" + hashlib.sha256(body).hexdigest()
    if kind == "md5":
        return "md5:" + hashlib.md5(body).hexdigest()
    if kind == "sha256-prefix":
        return "sha256-prefix:" + hashlib.sha256(body).hexdigest()[:8]
    assert kind == "none"
    return None


def make_entry(url: str, filename: str, hash: str | None, name: str = "test_file") -> RegistryEntry:
    return RegistryEntry(
        name=name, title="a test file", kind="dataset", url=url, filename=filename, hash=hash,
        size_bytes=len(BODY), licence="CC0", citation="none", offline_fallback="the generated scenes",
        note="made by the test" if hash is None else "",
    )


def files_in(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` (the cache's bookkeeping folders included)."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def zip_bytes(members: list[tuple[str, bytes] | zipfile.ZipInfo]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for m in members:
            if isinstance(m, zipfile.ZipInfo):
                zf.writestr(m, "/etc/passwd")
            else:
                zf.writestr(m[0], m[1])
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# fetch: downloads, cache, hashes


@pytest.mark.parametrize("kind", ["sha256", "md5", "sha256-prefix"])
def test_good_file_verifies_and_is_cached(server, cache, online, kind):
    entry = make_entry(server.serve("/good.bin", BODY), "good.bin", make_hash(BODY, kind))
    path = fetch(entry, progress=False)
    assert path == cache / "good.bin"
    assert path.read_bytes() == BODY
    assert server.requests == ["/good.bin"]
    # nothing but the file and its verification stamp; the staging folder is empty
    assert files_in(cache) == [cache / ".verified" / "good.bin.json", path]


def test_second_call_makes_no_request(server, cache, online):
    entry = make_entry(server.serve("/again.bin", BODY), "again.bin", make_hash(BODY, "sha256"))
    first = fetch(entry, progress=False)
    second = fetch(entry, progress=False)
    third = fetch(entry, progress=False, recheck=True)  # hashes the cached copy again, still no request
    assert first == second == third
    assert server.requests == ["/again.bin"]


def test_cached_copy_is_used_offline(server, cache, online, monkeypatch):
    entry = make_entry(server.serve("/kept.bin", BODY), "kept.bin", make_hash(BODY, "md5"))
    fetch(entry, progress=False)
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert fetch(entry, progress=False).read_bytes() == BODY
    assert server.requests == ["/kept.bin"]


def test_cached_copy_without_stamp_is_hashed_not_downloaded(server, cache, online):
    entry = make_entry(server.serve("/copied.bin", BODY), "copied.bin", make_hash(BODY, "sha256"))
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "copied.bin").write_bytes(BODY)  # e.g. copied in by hand from another machine
    assert fetch(entry, progress=False).read_bytes() == BODY
    assert server.requests == []


def test_damaged_cached_copy_is_downloaded_again(server, cache, online, capsys):
    entry = make_entry(server.serve("/damaged.bin", BODY), "damaged.bin", make_hash(BODY, "sha256"))
    path = fetch(entry, progress=False)
    path.write_bytes(b"X" + BODY[1:])  # same size, new content (and a new modification time)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert fetch(entry, progress=False).read_bytes() == BODY
    assert server.requests == ["/damaged.bin", "/damaged.bin"]
    assert "does not match its published hash" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["sha256", "md5", "sha256-prefix"])
def test_corrupted_download_is_refused_and_nothing_stays(server, cache, online, kind):
    corrupted = BODY[:-10] + b"0123456789"
    entry = make_entry(server.serve("/bad.bin", corrupted), "bad.bin", make_hash(BODY, kind))
    with pytest.raises(HashMismatchError, match="test_file.*does not match its published hash"):
        fetch(entry, progress=False)
    assert files_in(cache) == []
    assert not (cache / "bad.bin").exists()


@pytest.mark.parametrize("kind", ["sha256", "none"])
def test_truncated_transfer_leaves_nothing(server, cache, online, kind):
    # the server announces 5000 more bytes than it sends, then closes the connection
    entry = make_entry(server.serve("/cut.bin", BODY, mode="truncate"), "cut.bin", make_hash(BODY, kind))
    with pytest.raises(DownloadError, match="test_file"):
        fetch(entry, progress=False)
    assert files_in(cache) == []
    assert server.requests == ["/cut.bin"]


def test_http_error_leaves_nothing(server, cache, online):
    entry = make_entry(server.url("/missing.bin"), "missing.bin", make_hash(BODY, "sha256"))
    with pytest.raises(DownloadError, match="404"):
        fetch(entry, progress=False)
    assert files_in(cache) == []


def test_entry_without_published_hash_prints_the_computed_sha256(server, cache, online, capsys):
    entry = make_entry(server.serve("/nohash.bin", BODY), "nohash.bin", None)
    assert fetch(entry, progress=False).read_bytes() == BODY
    out = capsys.readouterr().out
    assert "no checksum is published" in out
    assert "sha256:" + hashlib.sha256(BODY).hexdigest() in out
    assert "md5:" + hashlib.md5(BODY).hexdigest() in out
    fetch(entry, progress=False)
    assert server.requests == ["/nohash.bin"]


def test_stale_staging_folders_are_removed_fresh_ones_kept(server, cache, online):
    staging = cache / ".staging"
    old, fresh = staging / "old-download", staging / "running-download"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "partial.bin").write_bytes(b"half")
    long_ago = time.time() - 2 * data.STALE_STAGING_S
    os.utime(old, (long_ago, long_ago))
    fetch(make_entry(server.serve("/s.bin", BODY), "s.bin", make_hash(BODY, "md5")), progress=False)
    assert not old.exists()
    assert (fresh / "partial.bin").exists()


# ----------------------------------------------------------------------------------------------
# offline


def test_offline_flag_fails_fast_even_if_the_probe_says_online(server, cache, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(runtime, "is_online", lambda *args, **kwargs: True)  # COURSE_OFFLINE must win
    entry = make_entry(server.serve("/x.bin", BODY), "x.bin", make_hash(BODY, "sha256"))
    start = time.perf_counter()
    with pytest.raises(DownloadUnavailable) as info:
        fetch(entry, progress=False)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "test_file" in message and "COURSE_OFFLINE=1" in message and "the generated scenes" in message
    assert server.requests == []
    assert files_in(cache) == []


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_offline_registry_fetch_names_dataset_and_fallback(cache, monkeypatch, name):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DownloadUnavailable) as info:
        fetch(name)
    assert time.perf_counter() - start < 1.0
    assert name in str(info.value)
    assert REGISTRY[name].offline_fallback in str(info.value)


def test_failed_probe_means_offline(server, cache, monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(runtime, "is_online", lambda *args, **kwargs: False)
    entry = make_entry(server.serve("/y.bin", BODY), "y.bin", make_hash(BODY, "sha256"))
    with pytest.raises(DownloadUnavailable, match="no internet connection"):
        fetch(entry, progress=False)
    assert server.requests == []


# ----------------------------------------------------------------------------------------------
# fetch(extract=True)


@pytest.mark.parametrize("filename, payload", [
    ("pack.tar.gz", lambda: tar_bytes([("pack/a.txt", b"alpha"), ("pack/sub/b.txt", b"beta")])),
    ("pack.tar", lambda: tar_bytes([("pack/a.txt", b"alpha"), ("pack/sub/b.txt", b"beta")], mode="w")),
    ("pack.zip", lambda: zip_bytes([("pack/a.txt", b"alpha"), ("pack/sub/b.txt", b"beta")])),
])
def test_fetch_extract_once(server, cache, online, filename, payload):
    body = payload()
    entry = make_entry(server.serve("/" + filename, body), filename, make_hash(body, "sha256"), name="pack")
    folder = fetch(entry, progress=False, extract=True)
    assert folder == cache / "pack"
    assert (folder / "pack" / "a.txt").read_bytes() == b"alpha"
    assert (folder / "pack" / "sub" / "b.txt").read_bytes() == b"beta"
    # a second call neither downloads nor extracts again, even once the archive is deleted
    (folder / "pack" / "a.txt").write_bytes(b"edited")
    (cache / filename).unlink()
    assert fetch(entry, progress=False, extract=True) == folder
    assert (folder / "pack" / "a.txt").read_bytes() == b"edited"
    assert server.requests == ["/" + filename]


def test_fetch_extract_refuses_unsafe_archive_and_leaves_no_folder(server, cache, online):
    body = tar_bytes([("ok.txt", b"fine"), ("../escape.txt", b"evil")])
    entry = make_entry(server.serve("/evil.tar.gz", body), "evil.tar.gz", make_hash(body, "sha256"), name="evil")
    with pytest.raises(ValueError, match=r"\.\./escape\.txt"):
        fetch(entry, progress=False, extract=True)
    assert not (cache / "evil").exists()
    assert not (cache / "escape.txt").exists()
    assert list((cache / ".staging").iterdir()) == []


def test_fetch_extract_of_a_non_archive_is_an_error(cache):
    entry = make_entry("https://example.org/w.pth", "w.pth", "sha256-prefix:00112233")
    with pytest.raises(ValueError, match="`extract=True`.*not an archive"):
        fetch(entry, extract=True)


# ----------------------------------------------------------------------------------------------
# safe_extract


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def _hardlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info


def _fifo(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info


def _zip_symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)  # S_IFLNK
    return info


UNSAFE = [
    ("dotdot.tar.gz", lambda: tar_bytes([("good.txt", b"ok"), ("../evil.txt", b"x")]), "../evil.txt", "outside"),
    ("deep.tar.gz", lambda: tar_bytes([("good.txt", b"ok"), ("a/../../evil.txt", b"x")]), "a/../../evil.txt",
     "outside"),
    ("abs.tar", lambda: tar_bytes([("good.txt", b"ok"), ("/tmp/evil.txt", b"x")], mode="w"), "/tmp/evil.txt",
     "absolute"),
    ("link.tgz", lambda: tar_bytes([("good.txt", b"ok"), _symlink("passwd", "/etc/passwd")]), "passwd",
     "symbolic link"),
    ("hard.tar.gz", lambda: tar_bytes([("good.txt", b"ok"), _hardlink("h", "/etc/passwd")]), "h", "hard link"),
    ("fifo.tar.gz", lambda: tar_bytes([("good.txt", b"ok"), _fifo("pipe")]), "pipe", "not a regular file"),
    ("dotdot.zip", lambda: zip_bytes([("good.txt", b"ok"), ("../evil.txt", b"x")]), "../evil.txt", "outside"),
    ("abs.zip", lambda: zip_bytes([("good.txt", b"ok"), ("/tmp/evil.txt", b"x")]), "/tmp/evil.txt", "absolute"),
    ("drive.zip", lambda: zip_bytes([("good.txt", b"ok"), ("C:\\evil.txt", b"x")]), "C:\\evil.txt", "absolute"),
    ("link.zip", lambda: zip_bytes([("good.txt", b"ok"), _zip_symlink("passwd")]), "passwd", "symbolic link"),
]


@pytest.mark.parametrize("filename, payload, member, reason", UNSAFE, ids=[u[0] for u in UNSAFE])
def test_safe_extract_refuses_unsafe_member_and_extracts_nothing(tmp_path, filename, payload, member, reason):
    archive = tmp_path / filename
    archive.write_bytes(payload())
    dest = tmp_path / "out" / "dest"
    with pytest.raises(ValueError) as info:
        safe_extract(archive, dest)
    message = str(info.value)
    assert repr(member) in message and reason in message and filename in message
    assert files_in(tmp_path / "out") == []  # not even the safe member before the bad one
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_a_path_through_an_existing_link(tmp_path):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "door").symlink_to(outside, target_is_directory=True)
    archive = tmp_path / "through.tar"
    archive.write_bytes(tar_bytes([("door/evil.txt", b"x")], mode="w"))
    with pytest.raises(ValueError, match="'door/evil.txt'.*through a link"):
        safe_extract(archive, dest)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("filename, make", [("inner.zip", zip_bytes), ("inner.tar.gz", tar_bytes)])
def test_safe_extract_refuses_inner_dotdot_too(tmp_path, filename, make):
    archive = tmp_path / filename
    archive.write_bytes(make([("c/d.txt", b"dee"), ("a/../b.txt", b"bee")]))
    with pytest.raises(ValueError, match="'a/../b.txt' has a '..' component"):
        safe_extract(archive, tmp_path / "dest")
    assert files_in(tmp_path / "dest") == []


def test_safe_extract_keeps_folders_and_contents(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(tar_bytes([("top/x.txt", b"ex"), ("top/deeper/y.txt", b"why"), ("./z.txt", b"zed")]))
    dest = safe_extract(archive, tmp_path / "dest")
    assert dest == tmp_path / "dest"
    assert sorted(str(p.relative_to(dest)) for p in files_in(dest)) == ["top/deeper/y.txt", "top/x.txt", "z.txt"]
    assert (dest / "top" / "deeper" / "y.txt").read_bytes() == b"why"


def test_safe_extract_unknown_format_is_an_error(tmp_path):
    archive = tmp_path / "notes.rar"
    archive.write_bytes(b"Rar!")
    with pytest.raises(ValueError, match="`archive` 'notes.rar' is not a supported archive"):
        safe_extract(archive, tmp_path / "dest")


def test_safe_extract_missing_archive_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.zip"):
        safe_extract(tmp_path / "missing.zip", tmp_path / "dest")


def test_safe_extract_unreadable_tar_is_an_error(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"this is not gzip data at all")
    with pytest.raises(ValueError, match="broken.tar.gz is not a readable tar archive"):
        safe_extract(archive, tmp_path / "dest")


# ----------------------------------------------------------------------------------------------
# hashes and entries


@pytest.mark.parametrize("kind", ["sha256", "md5", "sha256-prefix"])
def test_verify_file_accepts_right_and_rejects_wrong(tmp_path, kind):
    path = tmp_path / "f.bin"
    path.write_bytes(BODY)
    assert verify_file(path, make_hash(BODY, kind))[0] is True
    assert verify_file(path, make_hash(BODY + b"!", kind))[0] is False


def test_verify_file_reports_the_full_digest(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    # SHA-256 of "abc" (FIPS 180-2, appendix B.1) and MD5 of "abc" (RFC 1321, appendix A.5)
    sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert verify_file(path, "sha256-prefix:ba7816bf") == (True, "sha256:" + sha)
    assert verify_file(path, "md5:900150983cd24fb0d6963f7d28e17f72") == (True, "md5:900150983cd24fb0d6963f7d28e17f72")
    assert verify_file(path, None) == (True, "sha256:" + sha)


@pytest.mark.parametrize("bad_hash, message", [
    ("cd0a2569", "must be 'sha256:<hex>'"),
    ("sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709", "has kind 'sha1'"),
    ("md5:5c4f3ee8e5d25df40f4fd59a7f44e54", "needs 32 hex digits, got 31"),
    ("sha256:" + "0" * 63, "needs 64 hex digits, got 63"),
    ("sha256-prefix:cd0a2", "needs 6 to 63 hex digits, got 5"),
    ("md5:5c4f3ee8e5d25df40f4fd59a7f44e5zz", "must be hexadecimal"),
])
def test_entry_rejects_malformed_hash(bad_hash, message):
    with pytest.raises(ValueError, match="`hash`.*" + message.replace("(", r"\(").replace(")", r"\)")):
        make_entry("https://example.org/f.bin", "f.bin", bad_hash)


@pytest.mark.parametrize("change, message", [
    ({"kind": "model"}, "`kind` must be one of"),
    ({"url": "ftp://example.org/f.bin"}, "`url` must be an http"),
    ({"filename": "../f.bin"}, "`filename` must be a plain file name"),
    ({"name": "Bad Name"}, "`name` must be lower case"),
    ({"size_bytes": 0}, "`size_bytes` must be an int >= 1"),
    ({"licence": ""}, "`licence` of entry 'test_file' must be a non-empty string"),
    ({"hash": None, "note": ""}, "has no `hash`; its `note` must say why"),
])
def test_entry_rejects_bad_fields(change, message):
    good = make_entry("https://example.org/f.bin", "f.bin", "md5:" + "0" * 32)
    with pytest.raises(ValueError, match=message):
        replace(good, **change)


def test_get_entry_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="`name` must be one of .*penn_fudan.* got 'pets'"):
        get_entry("pets")


@pytest.mark.parametrize("arg", ["progress", "extract", "recheck"])
def test_fetch_flags_must_be_bool(cache, arg):
    with pytest.raises(ValueError, match=f"`{arg}` must be True or False, got 'yes'"):
        fetch("penn_fudan", **{arg: "yes"})


# ----------------------------------------------------------------------------------------------
# the registry itself


def test_registry_has_the_course_files():
    assert set(REGISTRY) == {"oxford_pet_images", "oxford_pet_annotations", "penn_fudan", "voc2012", "dsb2018_stage1_train",
                             "deeplabv3_resnet50_coco", "maskrcnn_resnet50_fpn_coco", "sam_vit_b"}
    assert {REGISTRY[n].kind for n in ("deeplabv3_resnet50_coco", "maskrcnn_resnet50_fpn_coco", "sam_vit_b")} \
        == {"weights"}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entry_is_well_formed(name):
    e = REGISTRY[name]
    assert e.name == name
    assert e.url.startswith("https://")
    assert e.hash_kind in ("sha256", "md5", "sha256-prefix", None)
    assert e.hash_source.strip()
    if e.hash is None:
        assert "no checksum is published" in e.note.lower()
    assert len(e.licence) > 3 and len(e.citation) > 10 and e.offline_fallback
    if e.hash_kind == "sha256-prefix":  # torchvision's convention: the prefix is the file name's suffix
        assert e.filename.endswith(f"-{e.hash.split(':')[1]}.pth")
        assert e.url.rsplit("/", 1)[1] == e.filename
    if e.kind == "dataset":
        assert e.is_archive


def test_registry_file_names_are_unique():
    names = [e.filename for e in REGISTRY.values()]
    assert len(names) == len(set(names))


def test_registry_matches_torchvision_source():
    """The MD5s and weight addresses are the ones torchvision itself publishes and checks."""
    pytest.importorskip("torchvision")
    from torchvision.datasets.oxford_iiit_pet import OxfordIIITPet
    from torchvision.datasets.voc import DATASET_YEAR_DICT
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights
    from torchvision.models.segmentation import DeepLabV3_ResNet50_Weights

    voc = DATASET_YEAR_DICT["2012"]
    # the same file and MD5; torchvision before 0.19 still named VOC's former host, so the address is
    # compared by file name (torchvision 0.19 and later give the registry's address exactly)
    assert REGISTRY["voc2012"].hash == "md5:" + voc["md5"]
    assert REGISTRY["voc2012"].url.rsplit("/", 1)[1] == voc["url"].rsplit("/", 1)[1]
    pets = dict(OxfordIIITPet._RESOURCES)
    for name in ("oxford_pet_images", "oxford_pet_annotations"):
        assert REGISTRY[name].hash == "md5:" + pets[REGISTRY[name].url]
    assert REGISTRY["deeplabv3_resnet50_coco"].url == DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.url
    assert REGISTRY["maskrcnn_resnet50_fpn_coco"].url == MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url


def test_registry_table_rows():
    rows = registry_table()
    assert [r["name"] for r in rows] == list(REGISTRY)
    assert all(set(r) == {"name", "kind", "title", "size", "licence", "hash"} for r in rows)
    by_name = {r["name"]: r for r in rows}
    assert by_name["sam_vit_b"]["hash"] == "none published"
    assert by_name["voc2012"]["hash"] == "md5"
    assert by_name["voc2012"]["size"] == "~1.9 GiB"  # 2.0e9 bytes / 2**30
    assert by_name["oxford_pet_annotations"]["size"] == "~18 MiB"  # 19.2e6 bytes / 2**20


def test_import_is_cheap():
    code = ("import sys, utils.data; "
            "print(sorted(m for m in ('pooch', 'requests', 'torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------
# archives that have no published hash


HTML_PAGE = b"<!DOCTYPE html><html><body><h1>503 Service Unavailable</h1></body></html>\n"


def test_unhashed_archive_that_is_an_error_page_is_not_kept(server, cache, online):
    url = server.serve("/PennFudanPed.zip", HTML_PAGE)
    entry = make_entry(url, "PennFudanPed.zip", None)
    with pytest.raises(DownloadError, match="not a readable .zip archive.*HTML page.*nothing was kept"):
        fetch(entry, progress=False)
    assert not (cache / "PennFudanPed.zip").exists()
    assert not [p for p in files_in(cache) if ".staging" not in p.parts]


@pytest.mark.parametrize("filename, make", [
    ("data.zip", lambda: zip_bytes([("a/b.txt", b"x")])),
    ("data.tar.gz", lambda: tar_bytes([("a/b.txt", b"x")])),
])
def test_unhashed_readable_archive_is_kept_and_extracted(server, cache, online, filename, make):
    url = server.serve("/" + filename, make())
    folder = fetch(make_entry(url, filename, None), progress=False, extract=True)
    assert (folder / "a" / "b.txt").read_bytes() == b"x"


def test_a_corrupt_cached_archive_is_removed_with_its_stamp_and_downloaded_again(server, cache, online):
    good = zip_bytes([("a/b.txt", b"x")])
    url = server.serve("/data.zip", good)
    entry = make_entry(url, "data.zip", None)
    fetch(entry, progress=False)                                # cached and stamped
    (cache / "data.zip").write_bytes(HTML_PAGE)                 # damaged later (or saved by an older version)
    data._write_stamp(cache, entry, cache / "data.zip", "sha256:" + hashlib.sha256(HTML_PAGE).hexdigest())
    with pytest.raises(DownloadError, match="cached data.zip is not a readable .zip archive.*removed"):
        fetch(entry, progress=False, extract=True)
    assert not (cache / "data.zip").exists() and not data._stamp_path(cache, entry).exists()
    folder = fetch(entry, progress=False, extract=True)          # the next call downloads it afresh
    assert (folder / "a" / "b.txt").read_bytes() == b"x" and len(server.requests) == 2


def test_optional_fetch_downloads_nothing_in_smoke_mode(server, cache, online, monkeypatch, capsys):
    """Smoke mode downloads nothing, pretrained weights included; a verified cached copy is still used."""
    from utils.data import optional_fetch

    entry = make_entry(server.serve("/weights.pth", BODY), "weights.pth", make_hash(BODY, "sha256"))
    monkeypatch.setattr(data, "get_entry", lambda name: entry)
    monkeypatch.setenv("COURSE_MODE", "smoke")
    assert optional_fetch("test_file") is None
    assert server.requests == [] and "Smoke mode downloads nothing: a test file" in capsys.readouterr().out
    monkeypatch.setenv("COURSE_MODE", "default")
    path = optional_fetch("test_file")
    assert path.read_bytes() == BODY and server.requests == ["/weights.pth"]
    monkeypatch.setenv("COURSE_MODE", "smoke")
    assert optional_fetch("test_file") == path and server.requests == ["/weights.pth"]   # cached: no request
