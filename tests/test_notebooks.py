"""Every stored notebook follows the lesson shape of CONTRIBUTING.md (nbval re-executes them separately)."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))


def _configured_repository():
    from tool_loader import load_tool

    return load_tool("set_repository").configured_repository(ROOT)


REPOSITORY = _configured_repository()


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _src(cell):
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_welcome.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_shape(path):
    nb = _load(path)
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown"
    badge = f"colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{path.name}"
    assert badge in _src(cells[0]), "the Colab badge must point at this notebook"
    setup = _src(_load(NOTEBOOKS[0])["cells"][1])
    assert _src(cells[1]) == setup, "the setup cell must be identical to 00_welcome's"
    text = "\n".join(_src(c) for c in cells if c["cell_type"] == "markdown").lower()
    assert "## summary" in text and "## exercises" in text
    assert path.stat().st_size < 1.5e6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_one_clean_run(path):
    code = [c for c in _load(path)["cells"] if c["cell_type"] == "code" and _src(c).strip()]
    counts = [c["execution_count"] for c in code]
    assert None not in counts, "every code cell executed"
    assert counts == list(range(counts[0], counts[0] + len(counts))), "executed top to bottom in one run"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"stored error: {errors[:1]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_hidden_and_strict(path):
    cells = _load(path)["cells"]
    solutions = [c for c in cells if "solution" in c.get("metadata", {}).get("tags", [])]
    assert solutions, "each lesson has worked solutions"
    for c in solutions:
        assert c["metadata"].get("jupyter", {}).get("source_hidden") is True
        assert "strict=True" in _src(c), "a solution runs its check strictly, so CI catches a wrong one"


def test_every_address_of_the_repository_agrees_with_pyproject():
    """Badges, setup cells, README and CONTRIBUTING name the one repository of [tool.course] (tools/set_repository.py)."""
    import re

    names = set()
    for path in [*NOTEBOOKS, ROOT / "README.md", ROOT / "CONTRIBUTING.md"]:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"colab\.research\.google\.com/github/([^/\s]+/[^/\s]+)/blob/", text))
        names |= set(re.findall(r'REPOSITORY = \\?"https://github\.com/([^"\\]+)\\?"', text))
        names |= {f"{o}/{n}" for o, n in re.findall(r"https://([A-Za-z0-9_-]+)\.github\.io/([A-Za-z0-9_.-]+)/", text)}
    assert names - {"OWNER/NAME"} == {REPOSITORY}   # OWNER/NAME: a placeholder in the instructions
    setup = _src(_load(NOTEBOOKS[0])["cells"][1])
    assert f'REPOSITORY = "https://github.com/{REPOSITORY}"' in setup


def test_setup_cell_failure_is_one_line_saying_what_to_do(tmp_path, monkeypatch):
    """On Colab a failed clone ends the cell with one sentence, not a CalledProcessError traceback."""
    import shutil
    import sys
    import types

    if shutil.which("git") is None:
        pytest.skip("git is not installed: install it (apt-get install git) to test the setup cell's clone")
    setup = _src(_load(NOTEBOOKS[0])["cells"][1])
    setup = setup.replace(f"https://github.com/{REPOSITORY}", (tmp_path / "no-such-repository").as_uri())
    setup = setup.replace('"/content/segmentation-course"', repr(str(tmp_path / "course")))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with pytest.raises(SystemExit, match=r"^Setup failed \(git clone exited with \d+\): check that this runtime has "
                                         r"internet and that .* exists, then run this cell again\.$"):
        exec(compile(setup, "setup", "exec"), {})


def test_set_repository_rewrites_badges_and_setup_cells_as_stored():
    from tool_loader import load_tool

    tool = load_tool("set_repository")
    stored = (ROOT / "notebooks" / "00_welcome.ipynb").read_text(encoding="utf-8")   # JSON: escaped quotes
    forked = tool.rewrite(stored, "someone/my-fork")
    assert REPOSITORY not in forked
    assert "colab.research.google.com/github/someone/my-fork/blob/main/notebooks/00_welcome.ipynb" in forked
    assert 'REPOSITORY = \\"https://github.com/someone/my-fork\\"' in forked
    assert tool.rewrite(forked, REPOSITORY) == stored
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    owner, name = REPOSITORY.split("/")
    assert f"https://{owner}.github.io/{name}/" in readme
    assert "https://someone.github.io/my-fork/" in tool.rewrite(readme, "someone/my-fork")
