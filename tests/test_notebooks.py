"""Every stored notebook follows the lesson shape of CONTRIBUTING.md (nbval re-executes them separately)."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


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
    badge = f"colab.research.google.com/github/segmentation-course/segmentation-course/blob/main/notebooks/{path.name}"
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
