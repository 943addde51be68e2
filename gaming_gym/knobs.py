"""Checks for knob values, shared by every env's params dataclass.

A knob arrives from Python, a ``--knob NAME=VALUE`` on the command line or a saved config, so
``True`` where a number is meant, ``np.float32(1.0)``, ``1e308``, ``NaN`` or a 20-digit int all
reach ``__post_init__``. These functions accept every real number type numpy and Python have,
refuse booleans as numbers, and bound every value, so no knob can overflow a tensor or exhaust
memory later; each raises :class:`~gaming_gym.errors.ConfigError` naming the knob and what it takes.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from gaming_gym.errors import ConfigError


def is_number_in(value: Any, low: float, high: float) -> bool:
    """A real number (not a bool) within ``[low, high]``; NaN and huge ints fail, without overflow."""
    return (
        isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and low <= value <= high
    )


def require_number(name: str, value: Any, low: float, high: float, unit: str = "") -> None:
    """``value`` is a real number in ``[low, high]``."""
    if not is_number_in(value, low, high):
        what = f"a number{' of ' + unit if unit else ''} in [{low:g}, {high:g}]"
        raise ConfigError(f"{name} must be {what}, got {value!r}")


def require_int(name: str, value: Any, low: int, high: int, none_means: str | None = None) -> None:
    """``value`` is an int in ``[low, high]`` (or ``None``, where ``none_means`` says what that is)."""
    if value is None and none_means is not None:
        return
    if not (isinstance(value, numbers.Integral) and is_number_in(value, low, high)):
        accepted = f"an int in [{low}, {high}]" + (f" or None ({none_means})" if none_means else "")
        raise ConfigError(f"{name} must be {accepted}, got {value!r}")


def require_bool(name: str, value: Any) -> None:
    """``value`` is ``True`` or ``False`` (not 0, 1 or a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
