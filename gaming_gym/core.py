"""Compatibility imports: the contract now lives in one module per concern.

* :mod:`gaming_gym.kernel`: :class:`Kernel`, the state helpers, :data:`Policy`;
* :mod:`gaming_gym.fronts`: :class:`GameableEnv` and :class:`GameableVectorEnv`;
* :mod:`gaming_gym.checker`: :func:`check_gameable_env`;
* :mod:`gaming_gym.devices`: :func:`resolve_device` and the memory check.

Import from those; this module only keeps older imports working.
"""

from gaming_gym.checker import LEAK_R2, check_gameable_env
from gaming_gym.devices import DEVICE_TYPES, MEMORY_MARGIN, resolve_device
from gaming_gym.fronts import GameableEnv, GameableVectorEnv
from gaming_gym.kernel import (
    REFERENCE_POLICY_NAMES,
    Kernel,
    Policy,
    get_reference_policy,
    seeded_generator,
    select_state,
    take_state,
)

__all__ = [
    "DEVICE_TYPES",
    "LEAK_R2",
    "MEMORY_MARGIN",
    "REFERENCE_POLICY_NAMES",
    "GameableEnv",
    "GameableVectorEnv",
    "Kernel",
    "Policy",
    "check_gameable_env",
    "get_reference_policy",
    "resolve_device",
    "seeded_generator",
    "select_state",
    "take_state",
]
