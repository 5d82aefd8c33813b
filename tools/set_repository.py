#!/usr/bin/env python3
"""Point the course at a GitHub repository: the Colab badges, the notebooks' setup cells and the README (its links
and the website's GitHub Pages address).

    python tools/set_repository.py                  # rewrite everything from pyproject.toml's [tool.course]
    python tools/set_repository.py OWNER/NAME       # set a fork's address there first, then rewrite

The address lives in one place, ``repository`` under ``[tool.course]`` in ``pyproject.toml``. Each notebook
names it twice: in its "Open in Colab" badge (``colab.research.google.com/github/OWNER/NAME/blob/main/...``)
and in its setup cell, which clones it on Colab. ``tests/test_notebooks.py`` checks that they all agree.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_BADGE = re.compile(r"(colab\.research\.google\.com/github/)[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/blob/)")
# in a notebook's JSON the quotes are escaped: REPOSITORY = \"https://github.com/OWNER/NAME\"
# the website's address in the README: https://OWNER.github.io/NAME/ (GitHub Pages)
_SITE = re.compile(r"(https://)[A-Za-z0-9_-]+(\.github\.io/)[A-Za-z0-9_.-]+(/)")
_CLONE = re.compile(r'(REPOSITORY = \\?"https://github\.com/)[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(\\?")')


def configured_repository(root: Path = ROOT) -> str:
    """``OWNER/NAME`` from ``[tool.course] repository`` in ``pyproject.toml``."""
    text = (root / "pyproject.toml").read_text()
    match = re.search(r'^\[tool\.course\]\s*$(?:\n(?!\[).*)*?\nrepository\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise SystemExit("pyproject.toml has no [tool.course] repository = \"OWNER/NAME\"")
    return match.group(1)


def rewrite(text: str, repository: str) -> str:
    """``text`` with every badge and clone address pointing at ``repository``."""
    text = _BADGE.sub(lambda m: f"{m.group(1)}{repository}{m.group(2)}", text)
    owner, name = repository.split("/")
    text = _SITE.sub(lambda m: f"{m.group(1)}{owner}{m.group(2)}{name}{m.group(3)}", text)
    return _CLONE.sub(lambda m: f"{m.group(1)}{repository}{m.group(2)}", text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository", nargs="?", help="OWNER/NAME of the GitHub repository (default: pyproject's)")
    args = parser.parse_args(argv)
    if args.repository:
        if not _NAME.fullmatch(args.repository):
            raise SystemExit(f"repository must be OWNER/NAME, got {args.repository!r}")
        pyproject = ROOT / "pyproject.toml"
        text = pyproject.read_text()
        text = re.sub(r'(^\[tool\.course\]\s*$(?:\n(?!\[).*)*?\nrepository\s*=\s*")[^"]+(")',
                      lambda m: m.group(1) + args.repository + m.group(2), text, flags=re.M)
        pyproject.write_text(text)
    repository = configured_repository()
    changed = []
    for path in [*sorted((ROOT / "notebooks").glob("*.ipynb")), ROOT / "README.md", ROOT / "CONTRIBUTING.md"]:
        old = path.read_text(encoding="utf-8")
        new = rewrite(old, repository)
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(path.relative_to(ROOT).as_posix())
    print(f"repository {repository}: {len(changed)} file(s) rewritten" + (f" ({', '.join(changed)})" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
