"""Validators shared by loaders, simulators and models.

Each raises a ValueError (or TypeError for a wrong kind of value) whose message starts with the
field's name and says the expected shape and unit, so that a command-line user reads which
input is wrong and what it should be.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["check_normalized_times", "check_positive", "check_shape", "real_array"]


def check_positive(name: str, value: Any, unit: str) -> float:
    """``value`` as a float, or a ValueError unless it is a positive finite number."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a positive number in {unit}, got the text {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a positive number in {unit}, got {value!r}") from None
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"{name}: expected a positive finite value in {unit}, got {value!r}")
    return number


def check_shape(
    name: str, shape: Any, ndim: int | Sequence[int] = 2, minimum: int = 1
) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, or a ValueError unless it has ``ndim`` integer entries (one
    of them, if a sequence) each at least ``minimum`` pixels."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    axes = " or ".join(
        {1: "(N,)", 2: "(H, W)", 3: "(Z, H, W)"}.get(n, f"{n} ints") for n in allowed
    )
    message = f"{name}: expected a shape {axes} of integers >= {minimum} px, got {shape!r}"
    try:
        dims = tuple(int(s) for s in shape)
        exact = all(not isinstance(s, bool) and int(s) == s for s in shape)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if len(dims) not in allowed or not exact or min(dims) < minimum:
        raise ValueError(message)
    return dims


def check_normalized_times(name: str, times: Any, dtype=np.float64) -> np.ndarray:
    """``times`` as a 1-D array, or a ValueError unless they are finite and within [-1, 1]."""
    times = np.atleast_1d(np.asarray(times, dtype=dtype))
    if times.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of normalized times, got {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name}: expected finite normalized times in [-1, 1], got NaN or inf")
    if times.size and (times.min() < -1 or times.max() > 1):
        raise ValueError(
            f"{name}: expected normalized times in [-1, 1], got range "
            f"[{times.min():.6g}, {times.max():.6g}]"
        )
    return times


def real_array(name: str, array: Any, ndim: int, axes: str) -> np.ndarray:
    """``array`` as finite float64 with ``ndim`` axes (named ``axes`` in the message)."""
    array = np.asarray(array)
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}D array {axes}, got shape {array.shape}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name}: expected real values, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return array


def check_nonnegative(name: str, value: Any, unit: str) -> float:
    """``value`` as a float, or a ValueError unless it is a finite number >= 0."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a number >= 0 in {unit}, got the text {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number >= 0 in {unit}, got {value!r}") from None
    if not np.isfinite(number) or number < 0:
        raise ValueError(f"{name}: expected a finite value >= 0 in {unit}, got {value!r}")
    return number


def check_any_shape(name: str, shape: Any, minimum: int = 1) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, or a ValueError unless it is a non-empty sequence of integers
    each at least ``minimum`` pixels (any number of axes)."""
    try:
        ndim = len(shape)
    except TypeError:
        ndim = 0
    if isinstance(shape, (str, bytes)) or ndim == 0:
        raise ValueError(
            f"{name}: expected a shape (one integer >= {minimum} px per axis), got {shape!r}"
        )
    return check_shape(name, shape, ndim=ndim, minimum=minimum)


__all__ += ["check_any_shape", "check_nonnegative"]
