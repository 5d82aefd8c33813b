"""Checks for notebook 00 (welcome): reading a generated scene's ground truth."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..scenes import CLASS_NAMES, PANOPTIC_DIVISOR, make_scene
from .core import Feedback, feedback, is_unanswered, opening


def check_instance_counts(answer: Mapping[str, int] | None, seed: int = 7, size: int = 128,
                          strict: bool = False) -> Feedback:
    """Exercise 00.1: how many instances of each thing class does scene ``seed`` hold?

    ``answer`` maps class names (``"disc"``, ``"square"``, ``"triangle"``) to counts; a class the scene
    lacks may be left out or given 0.
    """
    name = f"instance counts of scene {seed}"
    hint = "`scene.labels` holds one class id per instance; `CLASS_NAMES[id]` names it (np.unique helps)."
    if is_unanswered(answer):
        return feedback(name, [], "", strict, hint, answer)
    if not isinstance(answer, Mapping):
        return feedback(name, [f"expected a dict like {{'disc': 2, 'square': 1}}, got {type(answer).__name__}"],
                        "", strict, hint)
    scene = make_scene(seed, size)
    truth = {CLASS_NAMES[k]: int(np.sum(scene.labels == k)) for k in range(1, len(CLASS_NAMES))}
    problems = []
    unknown = [k for k in answer if k not in truth]
    if unknown:
        problems.append(f"unknown class name(s) {unknown}; the thing classes are {list(truth)} "
                        "('background' is stuff, it has no instances)")
    for cls, count in truth.items():
        given = answer.get(cls, 0)
        if given != count:
            problems.append(f"{cls}: you said {given}, the scene holds {'more' if count > given else 'fewer'}")
    total = sum(v for k, v in answer.items() if k in truth)
    if problems and total == scene.num_instances:
        problems.append("your total is right, so some instances went to the wrong class")
    return feedback(name, problems, f"right: {truth} ({scene.num_instances} instances)", strict, hint)


def check_panoptic_decoder(decode: Callable[[int], tuple[str, int]] | None, strict: bool = False) -> Feedback:
    """Exercise 00.2: ``decode(panoptic_id) -> (class_name, instance_number)``.

    Panoptic ids are ``class_id * PANOPTIC_DIVISOR + instance_number`` (``utils.scenes.PANOPTIC_DIVISOR``);
    background (stuff) pixels carry instance number 0.
    """
    name = "panoptic decoder"
    hint = f"class id = id // {PANOPTIC_DIVISOR}, instance number = id % {PANOPTIC_DIVISOR}; name it with CLASS_NAMES."
    early = opening(name, decode, "a function", strict, hint)
    if early is not None:
        return early
    cases = [0, 1001, 2003, 3002, 1012, 3001]
    problems = []
    for pid in cases:
        want = (CLASS_NAMES[pid // PANOPTIC_DIVISOR], pid % PANOPTIC_DIVISOR)
        try:
            got = decode(pid)
        except Exception as exc:  # the learner's code failed: report it as feedback, not a crash
            problems.append(f"decode({pid}) raised {type(exc).__name__}: {exc}")
            continue
        if got is None and not problems:
            return feedback(name, [], "", strict, hint, None)
        if not isinstance(got, tuple) or len(got) != 2:
            problems.append(f"decode({pid}) returned {got!r}; return a pair (class_name, instance_number)")
        elif got != want:
            detail = ""
            if isinstance(got[0], (int, np.integer)):
                detail = " (the class should be its name, e.g. 'disc', not its id)"
            elif got[1] != want[1] and got[0] == want[0]:
                detail = " (class right, instance number wrong)"
            problems.append(f"decode({pid}) returned {got!r}, expected {want!r}{detail}")
    return feedback(name, problems, f"decodes all {len(cases)} test ids, background included", strict, hint)


def check_semantic_from_instances(semantic: np.ndarray | None, seed: int = 7, size: int = 128,
                                  strict: bool = False) -> Feedback:
    """Exercise 00.3: rebuild scene ``seed``'s semantic mask from its instance masks and labels.

    ``semantic`` is an ``(H, W)`` integer label map.
    """
    name = f"semantic mask of scene {seed} from its instances"
    hint = "start from zeros (background) and write each instance's class id into its mask's pixels."
    if is_unanswered(semantic):
        return feedback(name, [], "", strict, hint, semantic)
    scene = make_scene(seed, size)
    semantic = np.asarray(semantic)
    if semantic.shape != scene.semantic.shape:
        return feedback(name, [f"shape {semantic.shape}, expected {scene.semantic.shape} (H, W)"], "", strict, hint)
    if not np.issubdtype(semantic.dtype, np.integer):
        return feedback(name, [f"dtype {semantic.dtype}; a label map holds integer class ids"], "", strict, hint)
    wrong = semantic != scene.semantic
    problems = []
    if wrong.any():
        problems.append(f"{wrong.mean():.1%} of pixels differ from the ground truth")
        if np.any(wrong & (scene.semantic == 0)):
            problems.append("some background pixels got a class: background must stay 0")
        if semantic.max() > len(CLASS_NAMES) - 1:
            problems.append(f"values up to {semantic.max()}: did you write instance numbers instead of class ids?")
    return feedback(name, problems, "identical to scene.semantic", strict, hint)
