"""Command-line values: ``NAME=VALUE`` pairs (``--knob``, ``--set``, ``--eval-knob``) as Python
values, and ``--set NAME.SETTING=VALUE`` as a chosen mitigation's setting."""

from __future__ import annotations

import ast
from typing import Any

from gaming_gym.errors import ConfigError
from gaming_gym.mitigations import get_mitigation


def knob_values(pairs: list[str] | None, option: str = "--knob") -> dict[str, Any]:
    """``["respawn_delay=None", "laps=2"]`` -> ``{"respawn_delay": None, "laps": 2}``."""
    return assignments(pairs, option)


def setting_values(pairs: list[str] | None, mitigations: list[str] | None) -> dict[str, Any]:
    """``--set`` values and ``--mitigation`` names as training settings: ``NAME.SETTING=VALUE``
    sets a chosen mitigation's setting, anything else a training setting."""
    chosen: dict[str, dict[str, Any]] = {}
    for name in mitigations or []:
        get_mitigation(name)  # one line naming the registered ones
        chosen[name] = {}
    settings: dict[str, Any] = {}
    for name, value in assignments(pairs, "--set").items():
        mitigation, dot, setting = name.partition(".")
        if not dot:
            settings[name] = value
        elif mitigation not in chosen:
            raise ConfigError(f"--set {name}: choose the mitigation with --mitigation {mitigation}")
        else:
            chosen[mitigation][setting] = value
    if chosen:
        settings["mitigations"] = {**settings.get("mitigations", {}), **chosen}
    return settings


def assignments(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """NAME=VALUE strings to a dict; values are Python literals, or else plain strings."""
    values = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"bad {option} {pair!r}: write NAME=VALUE, e.g. respawn_delay=None")
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = text  # a bare word is a string
    return values
