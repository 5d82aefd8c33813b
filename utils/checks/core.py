"""The machinery every exercise check shares."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


class ExerciseError(AssertionError):
    """Raised by a check called with ``strict=True`` when the answer is wrong or missing."""


@dataclass
class Feedback:
    """The verdict of a check: ``passed``, and the messages that explain it."""

    exercise: str
    passed: bool
    messages: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"[{'correct' if self.passed else 'not yet'}] {self.exercise}"
        return "\n".join([head] + [f"  - {m}" for m in self.messages])

    __repr__ = __str__

    def __bool__(self) -> bool:
        return self.passed


def is_unanswered(answer) -> bool:
    """True for the placeholders a learner cell starts with: ``None`` and ``...``."""
    return answer is None or answer is Ellipsis


def feedback(exercise: str, problems: list[str], praise: str, strict: bool = False, hint: str | None = None,
             answer=object()) -> Feedback:
    """Build the :class:`Feedback` for a check.

    ``problems`` lists what is wrong (empty when the answer is right); ``praise`` is said when it is right.
    When ``answer`` is a placeholder, the verdict is "not answered yet", and nothing more: the ``hint``
    (which may give the method away) is shown only after a first, wrong answer, with what was wrong.
    With ``strict=True`` a failing verdict raises :class:`ExerciseError` carrying the same text.
    """
    if is_unanswered(answer):
        result = Feedback(exercise, False, ["not answered yet: replace the placeholder with your answer and run "
                                            "the cell again; a hint comes with the feedback on a first try."])
    elif problems:
        result = Feedback(exercise, False, list(problems) + ([f"hint: {hint}"] if hint else []))
    else:
        result = Feedback(exercise, True, [praise])
    if strict and not result.passed:
        raise ExerciseError(str(result))
    return result


def opening(exercise: str, answer, expects: str, strict: bool = False, hint: str | None = None) -> Feedback | None:
    """What every check of a function answer says before running it, or ``None`` when there is a function to run.

    A placeholder (``None`` or ``...``) gets "not answered yet" (:func:`feedback`); anything else that cannot be
    called gets "expected {expects}, got {its type}", with the hint. ``expects`` names the function the
    exercise asks for, e.g. ``"a function hist -> threshold"``. Use it as::

        early = opening(name, otsu, "a function hist -> threshold", strict, hint)
        if early is not None:
            return early
    """
    if is_unanswered(answer):
        return feedback(exercise, [], "", strict, hint, answer)
    if not callable(answer):
        return feedback(exercise, [f"expected {expects}, got {type(answer).__name__}"], "", strict, hint)
    return None


def call_answer(fn, *args):
    """Run the learner's function; return ``(result, None)``, or ``(None, message)`` if it raised.

    A check reports a failing answer as feedback instead of crashing the learner's cell.
    """
    try:
        return fn(*args), None
    except Exception as exc:  # the learner's code failed: report it as feedback, not a crash
        return None, f"{type(exc).__name__}: {exc}"


def _raised(label: str, error: str, context) -> str:
    """The usual message for an answer that raised: ``"{label}: your function raised {error}"``."""
    return f"{label}: your function raised {error}"


def run_cases(fn: Callable, cases: Iterable[tuple[str, tuple, object]],
              judge: Callable[[str, object, object], str | None],
              raised: Callable[[str, str, object], str] = _raised) -> tuple[list[str], bool]:
    """Run the learner's ``fn`` on each case; return ``(problems, unanswered)``.

    Parameters
    ----------
    fn : callable
        The learner's function.
    cases : iterable of (label, args, context)
        ``fn(*args)`` is called through :func:`call_answer`; ``label`` names the case in the messages and
        ``context`` is whatever ``judge`` and ``raised`` need to know about it (the expected answer, the
        input before copying, ...). A generator builds each case only when it is run.
    judge : callable
        ``judge(label, got, context)`` returns the message of what is wrong with ``got``, or ``None`` when
        the answer is right for that case.
    raised : callable, optional
        ``raised(label, error, context)`` returns the message for a case where ``fn`` raised; ``error`` is
        ``"ExceptionName: text"``. By default ``"{label}: your function raised {error}"``.

    Returns
    -------
    problems : list of str
        One message per wrong case, in the order of ``cases``.
    unanswered : bool
        True when ``fn`` returned ``None`` on the first case (a placeholder function that is not written
        yet): nothing else is run and ``problems`` is empty. ``None`` on a later case is an answer like any
        other: it is reported for that case, after the problems already found.
    """
    problems: list[str] = []
    for position, (label, args, context) in enumerate(cases):
        got, error = call_answer(fn, *args)
        if error:
            problems.append(raised(label, error, context))
            continue
        if got is None:
            if position == 0:
                return [], True
            problems.append(f"{label}: your function returned None")
            continue
        problem = judge(label, got, context)
        if problem is not None:
            problems.append(problem)
    return problems, False
