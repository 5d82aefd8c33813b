"""The quizzes of lesson 13 (interview preparation): each right answer passes, each likely wrong answer gets its own
explanation, an unanswered quiz says so without a hint; and the notebook's solutions and links hold together."""
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from utils.checks import ExerciseError, Feedback, lesson13
from utils.checks.lesson13 import QUIZZES, ChoiceQuiz, NumberQuiz

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "13_interview_prep.ipynb"
NAMES = sorted(QUIZZES)


def _quiz(name):
    return getattr(lesson13, name)


def _wrong_answers(spec):
    """(answer, its explanation) for every likely wrong answer the quiz knows."""
    if isinstance(spec, ChoiceQuiz):
        return list(spec.wrong.items())
    return list(spec.wrong)


# ----------------------------------------------------------------------------------------------------------------
# every quiz


@pytest.mark.parametrize("name", NAMES)
def test_the_right_answer_passes_and_says_why(name):
    spec = QUIZZES[name]
    fb = _quiz(name)(spec.right)
    assert isinstance(fb, Feedback) and fb.passed, str(fb)
    assert spec.praise in str(fb)
    assert _quiz(name)(spec.right, strict=True).passed


@pytest.mark.parametrize("name, answer, explanation",
                         [(n, a, e) for n in NAMES for a, e in _wrong_answers(QUIZZES[n])],
                         ids=lambda v: v if isinstance(v, str) and v.startswith("quiz_") else None)
def test_each_likely_wrong_answer_gets_its_own_explanation(name, answer, explanation):
    fb = _quiz(name)(answer)
    assert not fb.passed
    assert explanation in str(fb)
    others = [e for a, e in _wrong_answers(QUIZZES[name]) if e != explanation]
    assert not any(e in str(fb) for e in others), "one wrong answer, one explanation"
    assert QUIZZES[name].praise not in str(fb)
    with pytest.raises(ExerciseError, match="not it"):
        _quiz(name)(answer, strict=True)


@pytest.mark.parametrize("name", NAMES)
def test_unanswered_says_so_without_a_hint_and_strict_raises(name):
    for placeholder in (None, ...):
        fb = _quiz(name)(placeholder)
        assert not fb.passed and "not answered yet" in str(fb)
        assert "hint:" not in str(fb) and QUIZZES[name].praise not in str(fb)
        assert not any(e in str(fb) for _, e in _wrong_answers(QUIZZES[name]))
    with pytest.raises(ExerciseError, match="not answered"):
        _quiz(name)(None, strict=True)


@pytest.mark.parametrize("name", NAMES)
def test_answers_of_the_wrong_kind_are_reported_not_raised(name):
    spec = QUIZZES[name]
    for bad in (["a", "b"], {"answer": 1}, True):
        fb = _quiz(name)(bad)
        assert not fb.passed and "expected" in str(fb), (name, bad)
    if isinstance(spec, ChoiceQuiz):
        assert "expected one of the letters" in str(_quiz(name)("z"))
        assert "as a string" in str(_quiz(name)(2))
    else:
        assert "expected a number" in str(_quiz(name)("twelve"))
        assert "finite" in str(_quiz(name)(float("nan")))
        assert "shape (3,)" in str(_quiz(name)(np.zeros(3)))


@pytest.mark.parametrize("name", [n for n in NAMES if isinstance(QUIZZES[n], NumberQuiz)])
def test_number_quizzes_accept_numpy_torch_and_text_and_give_the_hint_for_other_numbers(name):
    spec = QUIZZES[name]
    assert _quiz(name)(np.float32(spec.right)).passed
    assert _quiz(name)(torch.tensor([spec.right])).passed
    assert _quiz(name)(f"{spec.right:.6f}").passed
    assert _quiz(name)(spec.right + 0.9 * spec.tol).passed
    stray = spec.right * 7 + 123.4   # no likely mistake: the generic hint
    fb = _quiz(name)(stray)
    assert not fb.passed and f"hint: {spec.hint}" in str(fb)


@pytest.mark.parametrize("name", [n for n in NAMES if isinstance(QUIZZES[n], ChoiceQuiz)])
def test_choice_quizzes_read_the_letter_however_it_is_written(name):
    right = QUIZZES[name].right
    for written in (right.upper(), f"({right})", f" {right}. "):
        assert _quiz(name)(written).passed, written


@pytest.mark.parametrize("name", NAMES)
def test_the_known_answers_are_told_apart_within_the_tolerance(name):
    spec = QUIZZES[name]
    if isinstance(spec, ChoiceQuiz):
        assert set(spec.wrong) | {spec.right} == set(spec.options) and len(spec.options) >= 3
        return
    values = [spec.right] + [v for v, _ in spec.wrong]
    gaps = [abs(a - b) for i, a in enumerate(values) for b in values[i + 1:]]
    assert min(gaps) > 2 * spec.tol


def test_a_choice_quiz_must_explain_every_wrong_option():
    with pytest.raises(ValueError, match="needs an explanation"):
        ChoiceQuiz("q", {"a": "x", "b": "y", "c": "z"}, "a", "why", {"b": "no"})


# the right answers are what the course's code computes


def test_number_answers_agree_with_the_course_code():
    from utils.losses import class_weights
    from utils.segmodels import receptive_field_size

    assert QUIZZES["quiz_dice_from_iou"].right == pytest.approx(2 * 0.5 / 1.5)
    assert QUIZZES["quiz_median_frequency_weight"].right == pytest.approx(
        class_weights([0.70, 0.25, 0.05], "median")[2].item(), rel=1e-6)
    assert QUIZZES["quiz_dilated_field"].right == receptive_field_size([3, 3, 3], dilations=[1, 2, 5])
    with torch.no_grad():
        side = torch.nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1)(torch.zeros(1, 1, 16, 16)).shape[-1]
    assert QUIZZES["quiz_transposed_size"].right == side
    logits = torch.tensor([[[[0.0]], [[np.log(9.0)]]]])           # p_t = 0.9 for class 1
    target = torch.tensor([[[1]]])
    from utils.losses import focal_loss

    ratio = focal_loss(logits, target, gamma=2.0) / torch.nn.functional.cross_entropy(logits, target)
    assert QUIZZES["quiz_focal_factor"].right == pytest.approx(ratio.item(), rel=1e-4)


# ----------------------------------------------------------------------------------------------------------------
# the notebook


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_every_solution_is_hidden_and_calls_a_quiz_strictly(notebook):
    solutions = [c for c in notebook.cells if "solution" in c.metadata.get("tags", [])]
    assert solutions
    called = set()
    for cell in solutions:
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True
        assert cell.source.splitlines()[0] == "# Solution (expand to read)"
        calls = re.findall(r"\b(quiz_\w+)\((.*)strict=True\)", cell.source)
        assert calls, f"a solution must call its quiz with strict=True:\n{cell.source}"
        called |= {name for name, _ in calls}
    assert called == set(QUIZZES), "every quiz has a worked solution"


def test_every_solution_passes_its_quiz(notebook):
    """The solutions use only the quizzes, NumPy, torch and utils: run each on its own."""
    for cell in (c for c in notebook.cells if "solution" in c.metadata.get("tags", [])):
        from utils.segmodels import receptive_field_size

        namespace = {"np": np, "torch": torch, "nn": torch.nn, "receptive_field_size": receptive_field_size,
                     **{n: _quiz(n) for n in QUIZZES}}
        exec(compile(cell.source, "solution", "exec"), namespace)  # noqa: S102 (the notebook's own cells; strict=True raises)


def test_every_quiz_cell_starts_unanswered(notebook):
    learner = [c for c in notebook.cells if c.cell_type == "code" and re.search(r"^quiz_\w+\(answer\)$", c.source, re.MULTILINE)
               and "solution" not in c.metadata.get("tags", [])]
    assert {re.search(r"(quiz_\w+)\(answer\)", c.source).group(1) for c in learner} == set(QUIZZES)
    for cell in learner:
        assert re.match(r"answer = None\b", cell.source), cell.source


def _anchors(path):
    """The anchors Jupyter gives a notebook's headings: the heading text, spaces replaced by '-'."""
    anchors = set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
                if heading:
                    anchors.add(heading.group(1).strip().replace(" ", "-"))
    return anchors


def test_every_relative_link_points_at_a_notebook_and_a_heading_that_exist(notebook):
    links = [m for c in notebook.cells if c.cell_type == "markdown"
             for m in re.findall(r"\]\(([^)\s]+)\)", c.source) if not re.match(r"[a-z]+://", m)]
    assert len(links) >= 12, "each section links to the lesson that goes deeper"
    for link in links:
        target, _, anchor = link.partition("#")
        path = NOTEBOOK.parent / target
        assert path.is_file(), f"{link}: no notebook {target}"
        if anchor:
            assert anchor in _anchors(path), f"{link}: no heading '{anchor.replace('-', ' ')}' in {target}"


def test_every_numbered_section_has_a_demonstration_a_link_and_a_quiz(notebook):
    sections, current = {}, None
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^## (\d+)\. ", cell.source, re.MULTILINE)
            if heading:
                current = int(heading.group(1))
            elif re.search(r"^## ", cell.source, re.MULTILINE):
                current = None
        if current is not None:
            sections.setdefault(current, []).append(cell)
    assert sorted(sections) == list(range(1, len(sections) + 1)) and 10 <= len(sections) <= 12
    for number, cells in sections.items():
        text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
        assert re.search(r"^> \*\"", text, re.MULTILINE), f"section {number}: the question as an interviewer asks it"
        assert re.search(r"\]\(\w+\.ipynb#", text), f"section {number}: a link to the section that goes deeper"
        demos = [c for c in cells if c.cell_type == "code" and "quiz_" not in c.source]
        assert demos, f"section {number}: a runnable demonstration"
        assert any("quiz_" in c.source and "answer = None" in c.source for c in cells), f"section {number}: a quiz"
