#!/usr/bin/env python3
"""Set up the course and open it, or run its tests. Needs only Python 3.9+ on the machine.

    python3 course.py lab     # create/reuse .venv, install everything, open JupyterLab on notebooks/
    python3 course.py test    # create/reuse .venv, install everything, run unit tests + every notebook (nbval, smoke, offline)

The virtual environment lives in .venv inside the repository. It is (re)installed only when
requirements.txt, requirements-dev.txt or pyproject.toml changed since the last install.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".course-installed"
INSTALL_INPUTS = ("requirements.txt", "requirements-dev.txt", "pyproject.toml")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setup() -> Path:
    """Create .venv if needed and install requirements-dev.txt (the lessons' packages, JupyterLab and the test
    tools) plus the editable `utils` package."""
    want = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in INSTALL_INPUTS)).hexdigest()
    py = venv_python()
    if not py.exists():
        print(f"creating the virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if not STAMP.exists() or STAMP.read_text().strip() != want:
        print("installing the course's packages (the first time takes a few minutes)", flush=True)
        subprocess.run([str(py), "-m", "pip", "install", "--upgrade", "pip"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-r", str(ROOT / "requirements-dev.txt"), "-e", str(ROOT)],
                       check=True)
        STAMP.write_text(want)
    return py


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("lab", "test", "setup"):
        print(__doc__)
        return 2
    py = setup()
    if argv[0] == "setup":
        return 0
    if argv[0] == "lab":
        extra = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # containers run as root
        return subprocess.call([str(py), "-m", "jupyter", "lab", "--notebook-dir", str(ROOT), *extra,
                                "notebooks/00_welcome.ipynb"] + argv[1:], cwd=ROOT)
    env = dict(os.environ, COURSE_MODE="smoke", COURSE_OFFLINE="1", MPLBACKEND="Agg")
    cmd = [str(py), "-m", "pytest", "tests", "notebooks", "--nbval-lax", "--nbval-current-env",
           "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-q", "-rs", "--durations=15"] + argv[1:]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
