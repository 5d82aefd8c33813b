"""Exercise checks: each says what is right or wrong about an answer, not only pass or fail.

Every check returns a :class:`Feedback` that a notebook shows as the cell's result. In a learner's cell
an unanswered exercise (``None`` or ``...``) gets "not answered yet", never an exception, and never the
answer: a hint comes only with the feedback on a wrong answer. Worked solutions call the
check with ``strict=True``: a wrong solution then raises :class:`ExerciseError`, so CI catches it.

The checks of each lesson live in ``utils.checks.lessonNN``.
"""
from .core import ExerciseError, Feedback, call_answer, feedback, is_unanswered, opening, run_cases

__all__ = ["ExerciseError", "Feedback", "call_answer", "feedback", "is_unanswered", "opening", "run_cases"]
