"""Argument checks shared by the helper modules: bad input gets an error that names the argument.

Imports nothing heavy, so that ``utils.data`` stays cheap to import."""
from __future__ import annotations

from numbers import Integral

__all__ = ["check_int"]


def check_int(name: str, value, low: int = 1, *, none_ok: bool = False, note: str = "") -> int | None:
    """``value`` as a Python ``int``, if it is an integer ``>= low``; otherwise a ``ValueError`` naming ``name``.

    Python and NumPy integers are accepted; ``bool`` is not (``True`` is not a count), nor are floats.

    Parameters
    ----------
    name : str
        The argument's name, as the caller spells it (shown in back-quotes in the message).
    value
        What was passed.
    low : int
        The smallest allowed value.
    none_ok : bool
        Accept ``None`` (returned unchanged) as "not given".
    note : str
        Appended to the requirement in the message, e.g. ``" (patience in epochs)"``.

    Examples
    --------
    >>> check_int("epochs", 3)
    3
    >>> check_int("depth", 0)
    Traceback (most recent call last):
    ...
    ValueError: `depth` must be an int >= 1, got 0
    """
    if value is None and none_ok:
        return None
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:  # NumPy ints are Integral
        requirement = f"an int >= {low}" + (" or None" if none_ok else "")
        raise ValueError(f"`{name}` must be {requirement}{note}, got {value!r}")
    return int(value)
