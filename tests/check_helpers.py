"""What every test of an exercise check asserts about a known-wrong answer."""
from __future__ import annotations

import re

import pytest

from utils.checks import ExerciseError, Feedback


def assert_explained(check, wrong, says, *, strict_match: str | None = None) -> None:
    """``check(wrong)`` fails with a message that explains why (``says``: a substring of it, or a compiled pattern
    it must match) and the exercise's hint, and ``check(wrong, strict=True)`` raises :class:`ExerciseError` (whose
    text matches ``strict_match`` when given)."""
    fb = check(wrong)
    text = str(fb)
    assert isinstance(fb, Feedback) and not fb.passed, text
    assert (says.search(text) if isinstance(says, re.Pattern) else says in text), text
    assert "hint:" in text, text
    with pytest.raises(ExerciseError, match=strict_match):
        check(wrong, strict=True)
