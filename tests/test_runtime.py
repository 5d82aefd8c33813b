"""Run modes, device choice, seeding, the online probe and the environment report."""
import random
import socket
import time

import numpy as np
import pytest
import torch

from utils import runtime


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("COURSE_MODE", "COURSE_OFFLINE", "COURSE_DATA"):
        monkeypatch.delenv(name, raising=False)
    runtime._online_cache.clear()
    yield
    runtime._online_cache.clear()


@pytest.mark.parametrize("value, mode", [("smoke", "smoke"), ("default", "default"), ("full", "full"),
                                         (" FULL ", "full")])
def test_mode_from_environment(monkeypatch, value, mode):
    monkeypatch.setenv("COURSE_MODE", value)
    assert runtime.course_mode() == mode


def test_bad_mode_is_an_error(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "fast")
    with pytest.raises(ValueError, match="COURSE_MODE='fast'"):
        runtime.course_mode()


@pytest.mark.parametrize("cuda, online, mode", [(True, True, "full"), (True, False, "default"),
                                                (False, True, "default"), (False, False, "default")])
def test_default_mode_follows_device_and_network(monkeypatch, cuda, online, mode):
    monkeypatch.setattr(runtime, "_cuda_available", lambda: cuda)
    monkeypatch.setattr(runtime, "is_online", lambda *a, **k: online)
    assert runtime.course_mode() == mode


@pytest.mark.parametrize("mode, value", [("smoke", 1), ("default", 2), ("full", 3)])
def test_by_mode(mode, value):
    assert runtime.by_mode(1, 2, 3, mode=mode) == value
    assert runtime.by_mode(1, 2, mode="full") == 2  # full falls back to default


def test_by_mode_bad_mode():
    with pytest.raises(ValueError, match="`mode`"):
        runtime.by_mode(1, 2, mode="turbo")


def test_offline_variable_answers_at_once_without_network(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")

    def boom(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket, "create_connection", boom)
    t0 = time.perf_counter()
    assert runtime.is_online() is False and runtime.is_offline() is True
    assert time.perf_counter() - t0 < 0.05


def test_bad_offline_value(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="COURSE_OFFLINE"):
        runtime.is_online()


def test_probe_is_bounded_even_when_the_resolver_hangs(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("never")

    monkeypatch.setattr(socket, "create_connection", hang)
    t0 = time.perf_counter()
    assert runtime.is_online(timeout=0.3) is False
    assert time.perf_counter() - t0 < 1.0


def test_probe_true_when_a_connection_opens(monkeypatch):
    class Conn:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Conn())
    assert runtime.is_online(refresh=True) is True


def test_seed_everything_reproduces_all_generators():
    runtime.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    runtime.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b


@pytest.mark.parametrize("seed", [-1, 1.5, "1", True])
def test_seed_bad(seed):
    with pytest.raises(ValueError, match="`seed`"):
        runtime.seed_everything(seed)


def test_device_order(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.get_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.get_device().type == "cpu"


def test_device_prefer_unavailable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="'cuda' was asked for"):
        runtime.get_device("cuda")
    with pytest.raises(ValueError, match="`prefer`"):
        runtime.get_device("tpu")


def test_data_dir_follows_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))
    assert runtime.data_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    monkeypatch.delenv("COURSE_DATA")
    assert runtime.data_dir() == runtime.REPO_ROOT / "data"


def test_colab_detection(monkeypatch):
    import sys
    import types

    assert runtime.in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert runtime.in_colab() is True


def test_environment_report(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    report = runtime.environment_report()
    out = capsys.readouterr().out
    assert report["mode"] == "smoke" and report["online"] is False and report["data_dir"] == str(tmp_path)
    assert report["packages"]["torch"] == torch.__version__.split("+")[0] or report["packages"]["torch"] == torch.__version__
    assert "offline" in out and str(tmp_path) in out and "smoke" in out


def test_import_utils_is_cheap():
    import subprocess
    import sys

    code = "import sys, utils, utils.runtime, utils.scenes, utils.checks; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# ----------------------------------------------------------------------------------------------
# full mode: the announcement and the plan it reads


def test_announce_full_run_is_silent_outside_full_mode(capsys):
    from utils.runtime import announce_full_run

    for mode in ("smoke", "default"):
        assert announce_full_run("04_fcn_unet.ipynb", mode=mode) is None
    assert capsys.readouterr().out == ""


def test_announce_full_run_names_downloads_time_and_the_way_out(capsys):
    from utils.data import REGISTRY
    from utils.runtime import announce_full_run

    plan = announce_full_run("04_fcn_unet.ipynb", mode="full")
    out = capsys.readouterr().out
    assert REGISTRY["oxford_pet_images"].title in out and "792 MB" in out
    assert f"about {plan['t4_minutes']} minutes on a Colab T4" in out
    assert "%env COURSE_MODE=default" in out
    announce_full_run("05b_deeplab_at_scale.ipynb", mode="full")
    assert "downloads" not in capsys.readouterr().out   # nothing to fetch: only the time


def test_announce_full_run_rejects_a_notebook_without_a_plan():
    from utils.runtime import announce_full_run

    with pytest.raises(KeyError, match="no plan for 'nope.ipynb'.*estimate_full_mode"):
        announce_full_run("nope.ipynb", mode="full")


def test_every_announcing_notebook_has_a_plan_within_15_minutes_on_a_t4():
    import json
    import re
    from pathlib import Path

    from utils.data import REGISTRY

    root = Path(__file__).resolve().parent.parent
    plans = json.loads((root / "benchmarks" / "full_mode.json").read_text())
    announced = {}
    for nb in sorted((root / "notebooks").glob("*.ipynb")):
        found = re.findall(r'announce_full_run\(\\"([^"\\]+)\\"\)', nb.read_text())
        if found:
            announced[nb.name] = found
    assert set(announced) == set(plans), "each notebook with a full-mode plan announces it, and only those"
    for name, found in announced.items():
        assert found == [name], f"{name} announces the plan of {found}"
        assert plans[name]["t4_minutes"] <= 15, f"{name}: {plans[name]['t4_minutes']} min on a T4, over 15"
        assert set(plans[name]["downloads"]) <= set(REGISTRY)
