#!/usr/bin/env python3
"""Check, online, every address the course depends on: the slow rot of links, hashes and pinned revisions.

    .venv/bin/python tools/drift_check.py             # every address answers (a few seconds)
    .venv/bin/python tools/drift_check.py --hashes    # also download each registry file and verify its hash (GBs)

What it checks:

* each entry of ``utils.data.REGISTRY``: its address answers, and the size the server announces is near the
  registry's (a changed size is a warning: the file may have been replaced); with ``--hashes`` the whole file is
  streamed (nothing is written to disk) and its digest compared with the published one;
* each notebook's Colab badge, and the file on GitHub that the badge opens;
* the Hugging Face checkpoints a lesson loads at a pinned revision (``MODEL_ID = "..."`` with
  ``REVISION = "<commit>"``): that the commit still exists;
* the repository the notebooks' setup cell clones on Colab;
* every http(s) link in README.md, CONTRIBUTING.md and the notebooks' markdown cells.

Offline (``COURSE_OFFLINE=1``, or no internet found) it says so and exits with status 0, having checked nothing.
Otherwise it exits with status 1 when an address is broken or a hash does not match, and prints a table either way.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TIMEOUT_S = 30
WORKERS = 8
USER_AGENT = "segmentation-course-drift-check/1 (+python urllib)"
SIZE_TOLERANCE = 0.2  # a size further than this from the registry's is reported
_URL = re.compile(r"https?://[^\s)<>\]\"'`]+")
_BADGE = re.compile(r"https://colab\.research\.google\.com/github/([^/\s]+/[^/\s]+)/blob/([^/\s]+)/([^\s)]+\.ipynb)")
_MODEL_ID = re.compile(r'^\s*MODEL_ID\s*=\s*"([^"]+)"', re.M)
_REVISION = re.compile(r'^\s*REVISION\s*=\s*"([0-9a-f]{40})"', re.M)
_CLONE = re.compile(r'REPOSITORY = "(https://github\.com/[^"]+)"')
# addresses that are not the course's dependencies: placeholders in the documentation, this machine
PLACEHOLDERS = ("/NN_topic.ipynb", "OWNER/NAME", "://127.0.0.1", "://localhost")


class Address:
    """One address to check, its kind (link, registry, badge, notebook on GitHub, repository, pinned checkpoint) and
    the documents that name it."""

    def __init__(self, url: str, where=(), kind: str = "link"):
        self.url, self.where, self.kind = url, set(where), kind


class Result:
    """What checking one address (or one registry file's hash) found."""

    def __init__(self, url: str, kind: str, where: str, ok: bool, detail: str, warning: str = ""):
        self.url, self.kind, self.where, self.ok, self.detail, self.warning = url, kind, where, ok, detail, warning


# ----------------------------------------------------------------------------------------------
# what to check


def documents(root: Path = ROOT) -> list[Path]:
    """README.md, CONTRIBUTING.md and every notebook."""
    return [root / "README.md", root / "CONTRIBUTING.md", *sorted((root / "notebooks").glob("*.ipynb"))]


def _markdown_of(path: Path) -> tuple[str, str]:
    """(markdown text, code text) of a document; a notebook's cells of each kind joined."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb":
        return text, ""
    cells = json.loads(text)["cells"]

    def join(kind):
        return "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                         for c in cells if c["cell_type"] == kind)

    return join("markdown"), join("code")


def addresses(paths: list[Path], root: Path = ROOT) -> list[Address]:
    """Every link, Colab badge (with the GitHub file it opens) and pinned checkpoint named in ``paths``."""
    found: dict[str, Address] = {}

    def add(url: str, where: str, kind: str):
        found.setdefault(url, Address(url, kind=kind)).where.add(where)

    for path in paths:
        where = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        markdown, code = _markdown_of(path)
        for url in _URL.findall(markdown):
            url = url.rstrip(".,;:")
            if any(p in url for p in PLACEHOLDERS):
                continue
            badge = _BADGE.fullmatch(url)
            if badge:
                repo, branch, file = badge.groups()
                add(url, where, "badge")
                add(f"https://raw.githubusercontent.com/{repo}/{branch}/{file}", where, "notebook on GitHub")
            else:
                add(url, where, "link")
        for url in _CLONE.findall(code):
            add(url, where, "repository")
        models, revisions = _MODEL_ID.findall(code), _REVISION.findall(code)
        if len(models) == 1 and len(revisions) == 1:
            add(f"https://huggingface.co/{models[0]}/resolve/{revisions[0]}/config.json", where, "pinned checkpoint")
    return list(found.values())


def registry_addresses(registry: dict) -> list[Address]:
    return [Address(e.url, {f"utils/data.py REGISTRY[{name!r}]"}, "registry") for name, e in registry.items()]


# ----------------------------------------------------------------------------------------------
# checking


def _request(url: str, method: str, extra_headers=None) -> urllib.request.Request:
    headers = {"User-Agent": USER_AGENT, **(extra_headers or {})}
    return urllib.request.Request(url, method=method, headers=headers)


def probe(url: str, timeout: float = TIMEOUT_S) -> tuple[bool, str, int | None]:
    """Whether ``url`` answers: ``(ok, detail, announced size in bytes or None)``.

    A HEAD request first; servers that refuse HEAD (405, 501, some 403) get a GET that reads no body.
    """
    last = ""
    for method in ("HEAD", "GET"):
        try:
            with urllib.request.urlopen(_request(url, method), timeout=timeout) as answer:
                size = answer.headers.get("Content-Length")
                final = answer.geturl()
                detail = f"{answer.status}" + (f", redirected to {final}" if final != url else "")
                return True, detail, int(size) if size and size.isdigit() else None
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code} {err.reason}"
            if method == "HEAD" and err.code in (400, 403, 405, 501):
                continue
            return False, last, None
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            return False, f"{type(err).__name__}: {reason}", None
    return False, last, None


def stream_digest(url: str, algorithm: str, timeout: float = TIMEOUT_S) -> tuple[str, int]:
    """Hex digest and length of the body at ``url``, streamed (nothing written to disk)."""
    hasher = hashlib.new(algorithm)
    length = 0
    with urllib.request.urlopen(_request(url, "GET"), timeout=timeout) as answer:
        for block in iter(lambda: answer.read(1 << 20), b""):
            hasher.update(block)
            length += len(block)
    return hasher.hexdigest(), length


def verify_hash(entry, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """Download ``entry`` (a ``utils.data.RegistryEntry``) and compare it with its published hash."""
    if entry.hash is None:
        digest, length = stream_digest(entry.url, "sha256", timeout)
        return True, f"no published hash; sha256:{digest} ({length} bytes) to pin it"
    kind, expected = entry.hash.split(":", 1)
    expected = expected.lower()
    algorithm = "md5" if kind == "md5" else "sha256"
    digest, length = stream_digest(entry.url, algorithm, timeout)
    ok = digest.startswith(expected) if kind == "sha256-prefix" else digest == expected
    if ok:
        return True, f"{kind} matches ({length} bytes)"
    return False, f"{kind} does not match: published {expected}, downloaded {algorithm}:{digest} ({length} bytes)"


def check(registry: dict, paths: list[Path], hashes: bool = False, root: Path = ROOT,
          timeout: float = TIMEOUT_S) -> list[Result]:
    """Check every address (and with ``hashes``, every registry file's hash); one :class:`Result` each."""
    todo = registry_addresses(registry) + addresses(paths, root)
    by_url = {e.url: e for e in registry.values()}

    def one(address: Address) -> list[Result]:
        names = sorted(address.where)
        where = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        ok, detail, size = probe(address.url, timeout)
        results = [Result(address.url, address.kind, where, ok, detail)]
        if address.kind == "registry" and address.url in by_url:
            entry = by_url[address.url]
            if ok and size and entry.size_bytes and abs(size - entry.size_bytes) > SIZE_TOLERANCE * entry.size_bytes:
                results[0].warning = (f"the server announces {size} bytes, the registry says about "
                                      f"{entry.size_bytes}: has the file been replaced?")
            if hashes and ok:
                try:
                    good, why = verify_hash(entry, timeout)
                except (urllib.error.URLError, OSError) as err:
                    good, why = False, f"download failed: {type(err).__name__}: {getattr(err, 'reason', err)}"
                results.append(Result(address.url, "registry hash", where, good, why))
        return results

    with ThreadPoolExecutor(WORKERS) as pool:
        return [r for rs in pool.map(one, todo) for r in rs]


def report(results: list[Result]) -> str:
    lines = []
    for r in sorted(results, key=lambda r: (r.ok, r.kind, r.url)):
        mark = "ok    " if r.ok else "BROKEN"
        lines.append(f"{mark} {r.kind:<18} {r.url}\n       {r.detail}; named in {r.where}")
        if r.warning:
            lines.append(f"       warning: {r.warning}")
    broken = sum(not r.ok for r in results)
    warned = sum(bool(r.warning) for r in results)
    lines.append(f"{len(results)} checked, {broken} broken, {warned} warning(s)")
    return "\n".join(lines)


def offline_reason() -> str | None:
    """Why the check cannot run now (``COURSE_OFFLINE=1`` or no internet), or ``None``."""
    from utils import runtime

    if runtime._env_flag("COURSE_OFFLINE"):
        return "COURSE_OFFLINE=1 forbids network access"
    if not runtime.is_online():
        return "no internet connection was found"
    return None


def main(argv=None, registry: dict | None = None, paths: list[Path] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", action="store_true",
                        help="also download every registry file (several GB) and verify its published hash")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per request (default: %(default)s)")
    args = parser.parse_args(argv)
    why = offline_reason()
    if why:
        print(f"drift check: offline ({why}); nothing was checked. Run it with internet access.")
        return 0
    if registry is None:
        from utils.data import REGISTRY as registry
    results = check(registry, documents(root) if paths is None else paths, args.hashes, root, args.timeout)
    print(report(results))
    return 1 if any(not r.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
