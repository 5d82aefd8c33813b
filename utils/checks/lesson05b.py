"""Checks for notebook 05b (DeepLabV3+ and U-Net at a proper budget): a budget in optimiser steps."""
from __future__ import annotations

from collections.abc import Callable

from .core import Feedback, feedback, opening, run_cases

# (label, n_scenes, batch_size, epochs, steps) with DataLoader(..., shuffle=True, drop_last=True)
_CASES = [
    ("this notebook's budget", 4500, 16, 3, 843),
    ("lesson 05's section 4", 1500, 16, 3, 279),
    ("a set that divides evenly", 6000, 16, 4, 1500),
    ("fewer scenes than one batch", 15, 16, 5, 0),
    ("batches of one", 7, 1, 2, 14),
]


def check_training_steps(training_steps: Callable | None, strict: bool = False) -> Feedback:
    """Exercise 05b.1: ``training_steps(n_scenes, batch_size, epochs) -> int``, the optimiser steps of a training.

    With ``DataLoader(data, batch_size, shuffle=True, drop_last=True)`` each epoch makes ``n_scenes //
    batch_size`` steps: the incomplete last batch is dropped.
    """
    name = "the optimiser steps of a training"
    hint = "how many full batches does one epoch hold when the incomplete last one is dropped?"
    early = opening(name, training_steps, "a function (n_scenes, batch_size, epochs) -> int", strict, hint)
    if early is not None:
        return early

    def judge(label, got, case):
        n, batch, epochs, want = case
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return f"{label}: returned {got!r}; return an int (a count of steps)"
        if got != want:
            msg = f"{label}: got {got}, expected {want}"
            if abs(got - epochs * n / batch) < 1e-9:
                msg += " - a step needs a full batch: count whole batches (integer division)"
            elif got == epochs * -(-n // batch):
                msg += " - that counts the incomplete last batch; drop_last=True drops it"
            elif got == n // batch:
                msg += " - that is one epoch"
            return msg
        if isinstance(got, float):
            return f"{label}: returned {got!r}; return an int (a count of steps)"
        return None

    problems, unanswered = run_cases(training_steps, ((label, (n, b, e), (n, b, e, s))
                                                      for label, n, b, e, s in _CASES), judge)
    if unanswered:
        return feedback(name, [], "", strict, hint, None)
    return feedback(name, problems, "right on all five budgets, including the one with no full batch.", strict,
                    hint if problems else None)
