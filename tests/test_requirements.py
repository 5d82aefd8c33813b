"""requirements.txt and environment.yml install the same packages; the launcher and CI call the same command."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _reqs(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        name = re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower().replace("_", "-")
        out[name] = line.replace(" ", "")
    return out


def test_requirements_and_environment_name_the_same_packages():
    req = _reqs((ROOT / "requirements.txt").read_text().splitlines())
    yml = (ROOT / "environment.yml").read_text().splitlines()
    pip_section = [l.strip()[2:] for l in yml if l.startswith("      - ")]
    env = _reqs(pip_section)
    assert set(req) == set(env), f"only in requirements.txt: {set(req) - set(env)}; only in environment.yml: {set(env) - set(req)}"
    assert req == env, "version ranges differ"
    assert "-e ." in pip_section


def test_requirements_cover_the_design_card_and_do_not_pin_torch():
    req = _reqs((ROOT / "requirements.txt").read_text().splitlines())
    for name in ("jupyterlab", "torch", "torchvision", "opencv-python-headless", "scikit-image", "matplotlib",
                 "albumentations", "nbval", "pooch", "tqdm", "pycocotools", "ipywidgets"):
        assert name in req, name
    assert "==" not in req["torch"] and "==" not in req["torchvision"], "ranges, so Colab's torch is accepted"


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 course.py test" in readme and "python3 course.py lab" in readme
    assert "python3 course.py test" in ci
