"""Run modes, device choice, seeding, online detection and the environment report.

One switch, read from the environment, decides how much work a notebook does:

``COURSE_MODE``
    ``full`` (the real dataset and a paper-like schedule, for a GPU), ``default`` (a few minutes on a
    laptop CPU) or ``smoke`` (the fewest steps that still execute every code path; CI uses it).
    Unset: ``full`` on a machine with a GPU and internet, ``default`` anywhere else.
``COURSE_OFFLINE``
    ``1`` forbids any network access. Unset: a short probe (at most ``PROBE_TIMEOUT_S`` seconds) decides.
``COURSE_DATA``
    The download cache (default: ``data/`` at the repository root).
"""
from __future__ import annotations

import os
import platform
import random
import socket
import sys
import threading
from pathlib import Path

MODES = ("smoke", "default", "full")
PROBE_HOSTS = (("download.pytorch.org", 443), ("www.robots.ox.ac.uk", 443))
PROBE_TIMEOUT_S = 1.5
REPO_ROOT = Path(__file__).resolve().parent.parent

_online_cache: dict[str, bool] = {}


def course_mode() -> str:
    """Return the run mode: ``"smoke"``, ``"default"`` or ``"full"``.

    Read from ``COURSE_MODE``; when it is unset or empty, ``"full"`` if a CUDA GPU and internet are
    available, else ``"default"``.

    Raises
    ------
    ValueError
        If ``COURSE_MODE`` holds anything other than the three names.
    """
    raw = os.environ.get("COURSE_MODE", "").strip().lower()
    if raw:
        if raw not in MODES:
            raise ValueError(
                f"COURSE_MODE={os.environ['COURSE_MODE']!r} is not a run mode; use one of {', '.join(MODES)}"
            )
        return raw
    return "full" if (_cuda_available() and is_online()) else "default"


def by_mode(smoke, default, full=None, mode: str | None = None):
    """Pick the value for the current run mode: ``by_mode(smoke=2, default=200, full=5000)``.

    ``full`` falls back to ``default`` when not given, so a notebook only names what changes.
    ``mode`` overrides the environment (useful in tests).
    """
    mode = course_mode() if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
    return {"smoke": smoke, "default": default, "full": default if full is None else full}[mode]


def _env_flag(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={os.environ[name]!r} is not a yes/no value; use 1 or 0")


def is_offline() -> bool:
    """True when ``COURSE_OFFLINE=1`` or when the online probe fails."""
    return not is_online()


def is_online(timeout: float = PROBE_TIMEOUT_S, refresh: bool = False) -> bool:
    """Whether the course may and can reach the internet.

    ``COURSE_OFFLINE=1`` answers ``False`` at once, without touching the network. Otherwise one TCP
    connection to a download host is tried; the whole probe, DNS included, is bounded by ``timeout``
    seconds (it runs in a daemon thread, so a hanging resolver cannot hang the notebook). The answer is
    cached for the session; ``refresh=True`` probes again.
    """
    if _env_flag("COURSE_OFFLINE"):
        return False
    if not refresh and "online" in _online_cache:
        return _online_cache["online"]
    result: list[bool] = []

    def probe():
        for host, port in PROBE_HOSTS:
            try:
                with socket.create_connection((host, port), timeout=timeout):
                    result.append(True)
                    return
            except OSError:
                continue
        result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    online = bool(result and result[0])
    _online_cache["online"] = online
    return online


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def get_device(prefer: str | None = None):
    """Return the best ``torch.device``: CUDA, then Apple's MPS, then the CPU.

    ``prefer`` (``"cuda"``, ``"mps"`` or ``"cpu"``) asks for one; an unavailable one is an error, not a
    silent fallback.
    """
    import torch

    if prefer is not None:
        if prefer not in ("cuda", "mps", "cpu"):
            raise ValueError(f"`prefer` must be 'cuda', 'mps' or 'cpu', got {prefer!r}")
        available = {
            "cuda": torch.cuda.is_available(),
            "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
            "cpu": True,
        }[prefer]
        if not available:
            raise RuntimeError(f"device {prefer!r} was asked for but is not available on this machine")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU) with one call.

    ``deterministic=True`` also asks cuDNN for deterministic kernels (slower). Returns the seed.
    """
    if not isinstance(seed, (int,)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}")
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:
        return seed
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed


def data_dir() -> Path:
    """The download cache folder: ``$COURSE_DATA`` or ``data/`` at the repository root (created)."""
    raw = os.environ.get("COURSE_DATA", "").strip()
    path = Path(raw).expanduser() if raw else REPO_ROOT / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        dist = {"cv2": "opencv-python-headless", "skimage": "scikit-image", "sklearn": "scikit-learn"}
        try:
            return version(dist.get(module, module))
        except Exception:
            mod = __import__(module)
            return getattr(mod, "__version__", "?")
    except Exception:
        return "not installed"


def environment_report(print_it: bool = True) -> dict:
    """Collect (and print) what a learner needs to know about this runtime.

    Returns a dict with keys ``python``, ``platform``, ``packages`` (name to version), ``device``,
    ``mode``, ``online``, ``colab`` and ``data_dir``.
    """
    packages = {
        name: _version(name)
        for name in ("torch", "torchvision", "numpy", "skimage", "cv2", "albumentations", "matplotlib", "pooch")
    }
    try:
        device = str(get_device())
    except ImportError:
        device = "cpu (torch not installed)"
    report = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "packages": packages,
        "device": device,
        "mode": course_mode(),
        "online": is_online(),
        "colab": in_colab(),
        "data_dir": str(data_dir()),
    }
    if print_it:
        width = 14
        print(f"{'python':<{width}} {report['python']} on {report['platform']}")
        for name, ver in packages.items():
            print(f"{name:<{width}} {ver}")
        print(f"{'device':<{width}} {report['device']}")
        print(f"{'run mode':<{width}} {report['mode']}  (COURSE_MODE: smoke, default, full)")
        print(f"{'internet':<{width}} {'online' if report['online'] else 'offline: lessons use the shipped nuclei, generated scenes and skimage photos'}")
        print(f"{'colab':<{width}} {report['colab']}")
        print(f"{'data cache':<{width}} {report['data_dir']}  (COURSE_DATA moves it)")
    return report


def announce_offline(what: str) -> bool:
    """Print, once per session and per topic, that ``what`` needs the internet and the offline path is used.

    Returns ``True`` when offline (so ``if announce_offline(...):`` reads naturally).
    """
    if is_online():
        return False
    key = f"announced:{what}"
    if key not in _online_cache:
        _online_cache[key] = True
        print(f"Offline: {what} cannot be downloaded, so this lesson uses its offline path.")
    return True


FULL_MODE_PLAN = REPO_ROOT / "benchmarks" / "full_mode.json"


def announce_full_run(notebook: str, mode: str | None = None, plan_file=None) -> dict | None:
    """In full mode, say first what this notebook will download and how long it should take, and how to opt out.

    The figures come from ``benchmarks/full_mode.json`` (written by ``tools/estimate_full_mode.py``: measured
    FLOPs and loader costs turned into minutes on a Colab T4). Outside full mode nothing is printed.

    Parameters
    ----------
    notebook : str
        The notebook's file name, e.g. ``"04_fcn_unet.ipynb"``.
    mode : str, optional
        Overrides :func:`course_mode` (tests).
    plan_file : str or Path, optional
        Default: ``benchmarks/full_mode.json`` in the repository.

    Returns
    -------
    dict or None
        The notebook's plan when it was announced, else ``None``.

    Raises
    ------
    KeyError
        If the plan has no entry for ``notebook`` (run ``tools/estimate_full_mode.py`` after adding one).
    """
    import json

    mode = course_mode() if mode is None else mode
    if mode != "full":
        return None
    plans = json.loads(Path(plan_file or FULL_MODE_PLAN).read_text())
    if notebook not in plans:
        raise KeyError(f"benchmarks/full_mode.json has no plan for {notebook!r}: add it to "
                       "tools/estimate_full_mode.py and run that tool")
    plan = plans[notebook]
    from .data import REGISTRY

    if plan["downloads"]:
        names = ", ".join(f"{REGISTRY[n].title} ({REGISTRY[n].size_bytes / 1e6:,.0f} MB)" for n in plan["downloads"])
        fetch_text = (f"downloads {names}, {plan['download_mb']:,} MB in all, once (later runs use the cache "
                      f"{data_dir()}), and ")
    else:
        fetch_text = ""
    print(f"Full mode: this notebook {fetch_text}takes about {plan['t4_minutes']} minutes on a Colab T4 GPU "
          "(estimate: benchmarks/FULL_MODE.md). For the few-minute version instead, run `%env COURSE_MODE=default` "
          "in a cell (or start Jupyter with COURSE_MODE=default) and run the notebook again from the top.")
    return plan
