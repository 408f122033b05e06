"""One validator per kind of argument, in plain Python, run before anything is traced.

Each returns the value converted to a plain Python type and raises a ``TypeError`` (wrong type) or
``ValueError`` (out of range) that names the argument, what was given and what is allowed. NumPy scalars
are accepted wherever Python numbers are; ``bool`` is never accepted as a number.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


def integer(name: str, value, minimum: int = 1) -> int:
    """An int ``>= minimum`` (Python or NumPy integer; not bool, not float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def optional_integer(name: str, value, minimum: int = 1) -> int | None:
    """None, or an int ``>= minimum``."""
    return None if value is None else integer(name, value, minimum)


def integers(name: str, value, minimum: int = 1) -> tuple[int, ...]:
    """A list, tuple or 1-D array (empty allowed) of ints ``>= minimum``, returned as a tuple of ints."""
    shown = value.tolist() if isinstance(value, np.ndarray) else value  # a one-line message
    if not isinstance(value, (list, tuple, np.ndarray)) or isinstance(value, np.ndarray) and value.ndim != 1:
        raise TypeError(
            f"{name} must be a sequence of ints >= {minimum}, got {shown!r} ({type(value).__name__})"
        )
    try:
        return tuple(integer(name, v, minimum) for v in value)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name} must be a sequence of ints >= {minimum}, got {shown!r}") from None


def real(
    name: str,
    value,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in the interval ``[low, high]`` (``low_open``/``high_open`` exclude an end)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not ((v > low if low_open else v >= low) and (v < high if high_open else v <= high)):
        lo = f"({low}" if low_open else f"[{low}"
        hi = f"{high})" if high_open else f"{high}]"
        raise ValueError(f"{name} must be in {lo}, {hi}, got {value!r}")
    return v


def positive(name: str, value) -> float:
    """A finite real number ``> 0``."""
    return real(name, value, low=0.0, low_open=True)


def optional_positive(name: str, value) -> float | None:
    """None, or a finite real number ``> 0``."""
    return None if value is None else positive(name, value)


def probability(name: str, value) -> float:
    """A real number in ``[0, 1]`` (a discount factor, a quantile)."""
    return real(name, value, low=0.0, high=1.0)


def flag(name: str, value) -> bool:
    """A bool (Python or NumPy); not an int."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def text(name: str, value) -> str:
    """A str (a name or a path)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {value!r} ({type(value).__name__})")
    return value


def sorted_times(name: str, value):
    """A non-empty 1-D array of per-agent times ``> 0`` (``inf`` allowed: a dead agent), sorted ascending."""
    try:
        arr = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of positive per-agent times, got {value!r}") from None
    if arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty array of positive per-agent times (inf allowed for dead agents)"
        )
    if np.any(np.isnan(arr)) or np.any(arr <= 0):
        raise ValueError(
            f"{name} must contain only times > 0 (inf allowed for dead agents); got {arr.tolist()!r}"
        )
    return np.sort(arr)


def one_of(name: str, value, allowed: Sequence[str]) -> str:
    """One of the ``allowed`` names."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value
