"""requirements.txt (the lessons) and requirements-dev.txt (the tools) match environment.yml and Colab; the launcher and
CI call the same command."""
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


def _file_reqs(name):
    return _reqs((ROOT / name).read_text().splitlines())


def test_requirements_and_environment_name_the_same_packages():
    runtime, dev = _file_reqs("requirements.txt"), _file_reqs("requirements-dev.txt")
    assert not set(runtime) & set(dev), f"named in both files: {set(runtime) & set(dev)}"
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
    req = {**runtime, **dev}
    yml = (ROOT / "environment.yml").read_text().splitlines()
    pip_section = [l.strip()[2:] for l in yml if l.startswith("      - ")]
    env = _reqs(pip_section)
    assert set(req) == set(env), f"only in requirements: {set(req) - set(env)}; only in environment.yml: {set(env) - set(req)}"
    assert req == env, "version ranges differ"
    assert "-e ." in pip_section


def test_requirements_cover_the_design_card_and_do_not_pin_torch():
    runtime, dev = _file_reqs("requirements.txt"), _file_reqs("requirements-dev.txt")
    for name in ("torch", "torchvision", "opencv-python-headless", "scikit-image", "matplotlib", "albumentations",
                 "pooch", "tqdm", "pycocotools", "ipywidgets"):
        assert name in runtime, name
    for name in ("jupyterlab", "nbval", "pytest"):   # maintainers' tools, not the learner's
        assert name in dev and name not in runtime, name
    assert "==" not in runtime["torch"] and "==" not in runtime["torchvision"], "ranges, so Colab's torch is accepted"


def _colab_versions():
    lines = (ROOT / "tools" / "colab_versions.txt").read_text().splitlines()
    pairs = [l.split("==") for l in lines if l.strip() and not l.startswith("#")]
    return {name.lower(): version for name, version in pairs}


def _setup_cell_needs():
    """The NEEDS dict of the notebooks' setup cell: module -> pip requirement (identical in every notebook)."""
    import ast
    import json

    source = "".join(json.loads((ROOT / "notebooks" / "00_welcome.ipynb").read_text())["cells"][1]["source"])
    start = source.index("NEEDS = ") + len("NEEDS = ")
    return ast.literal_eval(source[start:source.index("}", start) + 1])   # the dict may span lines


def test_colab_versions_satisfy_the_runtime_requirements_or_the_setup_cell_installs_them():
    """A dry run against Colab: nothing Colab has is upgraded, nothing the lessons need is left out."""
    from packaging.requirements import Requirement

    colab = _colab_versions()
    needs = _setup_cell_needs()
    runtime = _file_reqs("requirements.txt")
    assert set(colab) <= set(runtime), f"not in requirements.txt: {set(colab) - set(runtime)}"
    installed_by_setup = {_reqs([spec]).popitem()[0] for spec in needs.values()}
    for name, line in runtime.items():
        if name not in colab:
            assert name in installed_by_setup, f"Colab lacks {name} and the setup cell does not install it"
            continue
        req = Requirement(line)
        assert req.specifier.contains(colab[name], prereleases=True), (
            f"requirements.txt asks {line}, Colab has {name}=={colab[name]}: pip would replace Colab's copy")
    for module, spec in needs.items():
        assert spec in runtime.values(), f"the setup cell installs {spec!r}, which is not requirements.txt's range"


def test_the_setup_cell_installs_only_what_lessons_import():
    """Each package the setup cell may install is imported by a lesson or by utils (which the lessons import)."""
    import json

    sources = "\n".join(p.read_text() for p in (ROOT / "utils").rglob("*.py"))
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"][2:]   # after the setup cell
        sources += "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for module in _setup_cell_needs():
        assert re.search(rf"^\s*(import|from) {module}\b", sources, re.M), f"no lesson imports {module}"


def test_colab_versions_check_fails_on_a_range_colab_does_not_meet():
    from packaging.requirements import Requirement

    assert not Requirement("ipywidgets>=8.0").specifier.contains(_colab_versions()["ipywidgets"])


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 course.py test" in readme and "python3 course.py lab" in readme
    assert "python3 course.py test" in ci
