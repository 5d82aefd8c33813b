"""Argument checks shared by the helper modules: bad input gets an error that names the argument.

Imports nothing heavy, so that ``utils.data`` stays cheap to import."""
from __future__ import annotations

from numbers import Integral, Real

__all__ = ["check_int", "check_positive"]


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


def check_positive(name: str, value, *, none_ok: bool = False) -> float | None:
    """``value`` as a Python ``float``, if it is a real number ``> 0``; otherwise a ``ValueError`` naming ``name``.

    For rates, widths and limits (a learning rate, a gradient-norm clip, a blob's standard deviation); ``bool``
    and NaN are refused, ``None`` is returned unchanged with ``none_ok``.

    Examples
    --------
    >>> check_positive("lr", 3e-3)
    0.003
    >>> check_positive("grad_clip", 0.0, none_ok=True)
    Traceback (most recent call last):
    ...
    ValueError: `grad_clip` must be positive or None, got 0.0
    """
    if value is None and none_ok:
        return None
    if not isinstance(value, Real) or isinstance(value, bool) or not value > 0:     # NaN > 0 is False
        raise ValueError(f"`{name}` must be positive" + (" or None" if none_ok else "") + f", got {value!r}")
    return float(value)
