"""tools/drift_check.py against a loopback server: links that answer or not, hashes that match or not, offline."""
from __future__ import annotations

import hashlib
import json

import pytest
from tool_loader import load_tool

from utils.data import RegistryEntry

drift = load_tool("drift_check")

BODY = b"the published file\n" * 64


def _entry(name, url, hash_value, size=None):
    return RegistryEntry(
        name=name, title=name.replace("_", " "), kind="dataset", url=url, filename=f"{name}.bin", hash=hash_value,
        size_bytes=len(BODY) if size is None else size, licence="CC0", citation="none", offline_fallback="generated scenes",
        hash_source="made by the test" if hash_value else "none published: made by the test",
        note="" if hash_value else "no checksum is published for this test file")


def _notebook(tmp_path, markdown: str, code: str = ""):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": markdown}]
    if code:
        cells.append({"cell_type": "code", "metadata": {}, "source": code, "outputs": [], "execution_count": None})
    path = tmp_path / "notebooks" / "99_test.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.mark.parametrize("hash_kind, digest, ok, says", [
    ("sha256", hashlib.sha256(BODY).hexdigest(), True, "sha256 matches"),
    ("md5", hashlib.md5(BODY).hexdigest(), True, "md5 matches"),
    ("sha256-prefix", hashlib.sha256(BODY).hexdigest()[:8], True, "sha256-prefix matches"),
    ("sha256", "0" * 64, False, "sha256 does not match: published " + "0" * 64),
    ("md5", "f" * 32, False, "md5 does not match"),
    ("sha256-prefix", "deadbeef", False, "sha256-prefix does not match"),
])
def test_a_registry_hash_is_verified_by_streaming_the_file(server, hash_kind, digest, ok, says):
    entry = _entry("probe", server.serve("/probe.bin", BODY), f"{hash_kind}:{digest}")
    good, detail = drift.verify_hash(entry, timeout=5)
    assert good is ok
    assert says in detail
    assert f"({len(BODY)} bytes)" in detail


def test_an_entry_without_a_published_hash_gets_the_digest_to_pin(server):
    entry = _entry("unpinned", server.serve("/unpinned.bin", BODY), None)
    assert drift.verify_hash(entry, timeout=5) == (
        True, f"no published hash; sha256:{hashlib.sha256(BODY).hexdigest()} ({len(BODY)} bytes) to pin it")


@pytest.fixture
def loopback_links(monkeypatch):
    """Links to the loopback server count (the real check leaves this machine's addresses out)."""
    monkeypatch.setattr(drift, "PLACEHOLDERS", ("/NN_topic.ipynb", "OWNER/NAME"))


def test_main_reports_a_hash_mismatch_a_dead_link_and_a_changed_size(server, online, loopback_links, tmp_path,
                                                                      capsys):
    registry = {
        "good": _entry("good", server.serve("/good.bin", BODY), "sha256:" + hashlib.sha256(BODY).hexdigest()),
        "tampered": _entry("tampered", server.serve("/tampered.bin", BODY + b"!"),
                           "sha256:" + hashlib.sha256(BODY).hexdigest()),
        "resized": _entry("resized", server.serve("/resized.bin", BODY), None, size=10 * len(BODY)),
    }
    alive, dead = server.serve("/page.html", b"<html></html>"), server.url("/gone.html")
    readme = tmp_path / "README.md"
    readme.write_text(f"See [the page]({alive}) and [an old one]({dead}).\n")
    assert drift.main(["--hashes", "--timeout", "5"], registry=registry, paths=[readme], root=tmp_path) == 1
    out = capsys.readouterr().out
    assert f"BROKEN {'registry hash':<18} {registry['tampered'].url}" in out
    assert "sha256 does not match" in out
    assert f"BROKEN {'link':<18} {dead}\n       HTTP 404" in out
    assert "named in README.md" in out
    assert f"ok     {'link':<18} {alive}" in out
    assert "sha256 matches" in out
    assert f"the server announces {len(BODY)} bytes, the registry says about {10 * len(BODY)}" in out
    assert out.rstrip().endswith("8 checked, 2 broken, 1 warning(s)")  # 3 addresses + 3 hashes + 2 links


def test_main_succeeds_when_everything_answers(server, online, loopback_links, tmp_path, capsys):
    registry = {"good": _entry("good", server.serve("/good.bin", BODY), "md5:" + hashlib.md5(BODY).hexdigest())}
    readme = tmp_path / "README.md"
    readme.write_text(f"<{server.serve('/a.html', b'a')}>\n")
    assert drift.main(["--timeout", "5"], registry=registry, paths=[readme], root=tmp_path) == 0
    assert capsys.readouterr().out.rstrip().endswith("2 checked, 0 broken, 0 warning(s)")


def test_offline_it_says_so_and_exits_cleanly(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert drift.main([]) == 0
    assert capsys.readouterr().out == ("drift check: offline (COURSE_OFFLINE=1 forbids network access); nothing was "
                                       "checked. Run it with internet access.\n")


def test_without_internet_it_says_so_and_exits_cleanly(monkeypatch, capsys):
    from utils import runtime

    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(runtime, "is_online", lambda *args, **kwargs: False)
    assert drift.main(["--hashes"]) == 0
    assert "offline (no internet connection was found); nothing was checked" in capsys.readouterr().out


def test_addresses_include_badges_their_github_file_the_clone_and_pinned_checkpoints(tmp_path):
    badge = "https://colab.research.google.com/github/someone/course/blob/main/notebooks/99_test.ipynb"
    path = _notebook(
        tmp_path,
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({badge})\n\n"
        "Read [the paper](https://example.org/paper.pdf). A placeholder: "
        "https://colab.research.google.com/github/OWNER/NAME/blob/main/notebooks/NN_topic.ipynb",
        'REPOSITORY = "https://github.com/someone/course"\nMODEL_ID = "org/model"\nREVISION = "' + "a" * 40 + '"\n')
    found = {a.url: (a.kind, a.where) for a in drift.addresses([path], root=tmp_path)}
    where = {"notebooks/99_test.ipynb"}
    assert found == {
        "https://colab.research.google.com/assets/colab-badge.svg": ("link", where),
        badge: ("badge", where),
        "https://raw.githubusercontent.com/someone/course/main/notebooks/99_test.ipynb": ("notebook on GitHub", where),
        "https://example.org/paper.pdf": ("link", where),
        "https://github.com/someone/course": ("repository", where),
        f"https://huggingface.co/org/model/resolve/{'a' * 40}/config.json": ("pinned checkpoint", where),
    }


def test_the_course_names_its_addresses():
    """The real documents: every notebook's badge and GitHub file, and lesson 10's pinned SegFormer, are found."""
    found = drift.addresses(drift.documents())
    kinds = [a.kind for a in found]
    notebooks = sorted((drift.ROOT / "notebooks").glob("*.ipynb"))
    assert kinds.count("badge") == kinds.count("notebook on GitHub") == len(notebooks)
    assert kinds.count("repository") == 1
    assert any(a.kind == "pinned checkpoint" and "segformer" in a.url for a in found)


def test_a_server_that_refuses_head_is_asked_with_get(server):
    """The loopback server answers GET only (HEAD gets 501), as some download hosts do."""
    ok, detail, size = drift.probe(server.serve("/only-get.bin", BODY), timeout=5)
    assert (ok, detail, size) == (True, "200", len(BODY))
    assert server.requests == ["/only-get.bin"]
