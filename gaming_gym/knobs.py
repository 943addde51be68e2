"""Checks for knob values, shared by every env's params dataclass.

A knob arrives from Python, a ``--knob NAME=VALUE`` on the command line or a saved config, so
``True`` where a number is meant, ``np.float32(1.0)``, ``1e308``, ``NaN`` or a 20-digit int all
reach ``__post_init__``. These functions accept every real number type numpy and Python have,
refuse booleans as numbers, and bound every value, so no knob can overflow a tensor or exhaust
memory later; each raises :class:`~gaming_gym.errors.ConfigError` naming the knob and what it takes.
Bounds are shown as written (``1.0`` or ``1``), so pass them in the unit's natural form.
:func:`checked_dataclass` builds a dataclass of such checked fields (an env's knobs, a
mitigation's settings) from a mapping, naming what is wrong.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from gaming_gym.errors import ConfigError, ConfigTypeError


def is_number_in(value: Any, low: float, high: float) -> bool:
    """A real number (not a bool) within ``[low, high]``; NaN and huge ints fail, without overflow."""
    return (
        isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and low <= value <= high
    )


def is_int(value: Any) -> bool:
    """An int or numpy integer, not a bool (``True`` is an int to Python, not a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def require_number(
    name: str, value: Any, low: float, high: float, unit: str = "", low_open: bool = False
) -> None:
    """``value`` is a real number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if not is_number_in(value, low, high) or (low_open and value == low):
        what = f"a number{' of ' + unit if unit else ''} in {'(' if low_open else '['}{low}, {high}]"
        raise ConfigError(f"{name} must be {what}, got {value!r}")


def require_probability(name: str, value: Any) -> None:
    """``value`` is a real number in ``[0, 1]``."""
    if not is_number_in(value, 0.0, 1.0):
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")


def require_int(
    name: str, value: Any, low: int, high: int, none_means: str | None = None, unit: str = ""
) -> None:
    """``value`` is an int in ``[low, high]`` (or ``None``, where ``none_means`` says what that is)."""
    if value is None and none_means is not None:
        return
    if not (is_int(value) and is_number_in(value, low, high)):
        accepted = f"an int in [{low}, {high}]" + (f" ({unit})" if unit else "")
        accepted += f" or None ({none_means})" if none_means else ""
        raise ConfigError(f"{name} must be {accepted}, got {value!r}")


def require_bool(name: str, value: Any) -> None:
    """``value`` is ``True`` or ``False`` (not 0, 1 or a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")


def require_choice(name: str, value: Any, choices: Collection[str]) -> None:
    """``value`` is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def checked_dataclass(cls: type, values: Mapping[str, Any], owner: str, noun: str) -> Any:
    """``cls(**values)`` for a dataclass whose ``__post_init__`` checks its fields: a name it does
    not have is a :class:`ConfigTypeError` listing the ones it has, a value it refuses a
    :class:`ConfigError`, each message naming ``owner`` (``"BoatRace"``, ``"mitigation
    kl_initial"``) and calling the fields ``noun`` (``"knob"``, ``"setting"``)."""
    accepted = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        raise ConfigTypeError(
            f"{owner} has no {noun} {', '.join(map(repr, unknown))}; "
            f"its {noun}s are: {', '.join(accepted) or 'none'}"
        )
    try:
        return cls(**values)
    except ConfigError as error:
        raise type(error)(f"{owner}: {error}") from error
    except (ValueError, TypeError, OverflowError) as error:  # the class's own checks
        raise ConfigError(f"{owner}: {error}") from error
