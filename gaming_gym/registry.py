"""Env ids under the ``GamingGym/`` namespace, registered with Gymnasium at import time.

``gymnasium.make("GamingGym/BoatRace-v1")`` gives the single front (with Gymnasium's time
limit) and ``gymnasium.make_vec("GamingGym/BoatRace-v1", num_envs=4096, device="cuda")`` the
batched front, which counts the same time limit itself.

Without ``import gaming_gym`` (in a subprocess worker, say), name the module in the id:
``gymnasium.make("gaming_gym:GamingGym/BoatRace-v1")`` imports it first. Gymnasium 1.x has no
plugin entry points (``gymnasium.envs`` entry points were dropped in 1.0), so this prefix is the
way Gymnasium itself offers.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from gaming_gym.errors import ConfigError, ConfigTypeError, CustomEnvImportError
from gaming_gym.fronts import GameableEnv, GameableVectorEnv
from gaming_gym.kernel import Kernel, check_kernel

NAMESPACE = "GamingGym"

BUILTIN_ENVS = {
    # id: (module, single front, vector front, max_episode_steps, default kwargs)
    "AbsentSupervisor-v0": (
        "gaming_gym.envs.absent_supervisor",
        "AbsentSupervisorEnv",
        "AbsentSupervisorVectorEnv",
        30,
        {},
    ),
    "BoatRace-v1": ("gaming_gym.envs.boat_race", "BoatRaceEnv", "BoatRaceVectorEnv", 1000, {}),
    "BoatRaceContinuous-v1": (
        "gaming_gym.envs.boat_race",
        "BoatRaceEnv",
        "BoatRaceVectorEnv",
        1000,
        {"continuous": True},
    ),
    "EngagementFeed-v0": (
        "gaming_gym.envs.engagement_feed",
        "EngagementFeedEnv",
        "EngagementFeedVectorEnv",
        200,
        {},
    ),
    "ConfidentRater-v0": (
        "gaming_gym.envs.confident_rater",
        "ConfidentRaterEnv",
        "ConfidentRaterVectorEnv",
        100,
        {},
    ),
    "SensorCleaner-v1": (
        "gaming_gym.envs.sensor_cleaner",
        "SensorCleanerEnv",
        "SensorCleanerVectorEnv",
        1000,
        {},
    ),
    "TallFall-v0": ("gaming_gym.envs.tall_fall", "TallFallEnv", "TallFallVectorEnv", 300, {}),
    "CoinRun-v0": ("gaming_gym.envs.coin_run", "CoinRunEnv", "CoinRunVectorEnv", 64, {}),
}


def register_builtin_envs() -> None:
    """Register every built-in env with Gymnasium (idempotent)."""
    for name, (module, single, vector, max_steps, kwargs) in BUILTIN_ENVS.items():
        env_id = f"{NAMESPACE}/{name}"
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=f"{module}:{single}",
            vector_entry_point=f"{module}:{vector}",
            max_episode_steps=max_steps,
            kwargs=dict(kwargs),
        )


PLUGIN_GROUP = "gaming_gym.envs"
"""Entry-point group through which other packages register their gameable envs."""

_CUSTOM_IDS: set[str] = set()


def register(
    env_id: str,
    env: Kernel | type[GameableEnv],
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
    override: bool = False,
) -> str:
    """Register a user's gameable env, both fronts, so ``make``, ``make_vec``, PPO and the CLI see it.

    ``env`` is the env's :class:`~gaming_gym.kernel.Kernel`, or a :class:`~gaming_gym.fronts.GameableEnv`
    subclass carrying one (to keep its docstring as the documentation page). ``kwargs`` are
    default knob values. Registering an id twice is an error unless ``override=True``.
    Returns ``env_id``.
    """
    single, vector = _fronts_for(env)
    params = single.kernel.make_params(**(kwargs or {}))  # an unknown knob or bad value fails here
    check_kernel(single.kernel, params, torch.device("cpu"))  # and so does a kernel off the contract
    if env_id in gym.registry:
        if not override:
            raise ConfigError(f"{env_id!r} is already registered; pass override=True to replace it")
        del gym.registry[env_id]  # replaced on purpose: no "overriding" warning
    gym.register(
        id=env_id,
        entry_point=single,
        vector_entry_point=vector,
        max_episode_steps=max_episode_steps,
        kwargs=dict(kwargs or {}),
    )
    _CUSTOM_IDS.add(env_id)
    return env_id


def _fronts_for(env: Kernel | type[GameableEnv]) -> tuple[type[GameableEnv], type[GameableVectorEnv]]:
    """The single and vector front classes serving ``env``'s kernel."""
    if isinstance(env, Kernel):
        single = type(f"{env.name}Env", (GameableEnv,), {"kernel": env, "__doc__": f"{env.name}."})
    elif isinstance(env, type) and issubclass(env, GameableEnv) and hasattr(env, "kernel"):
        single = env
    else:
        raise ConfigTypeError(
            f"register() takes a gaming_gym Kernel or a GameableEnv subclass with a kernel, got {env!r}"
        )
    vector = type(
        f"{single.kernel.name}VectorEnv",
        (GameableVectorEnv,),
        {"kernel": single.kernel, "__doc__": f"Batched front of {single.__name__}."},
    )
    return single, vector


def load_plugins() -> None:
    """Let installed packages register envs through the ``gaming_gym.envs`` entry-point group.

    Each entry point names a module (importing it registers its envs) or a callable (called
    with no arguments). A broken plugin is reported as a warning, not an import error.
    """
    for entry_point in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            loaded = entry_point.load()
            if callable(loaded):
                loaded()
        except Exception as error:  # a third party's bug must not break `import gaming_gym`
            warnings.warn(
                f"gaming_gym plugin {entry_point.name!r} ({entry_point.value}) failed to load: {error}",
                stacklevel=2,
            )


def gameable_env_ids() -> list[str]:
    """Ids of the built-in envs (``GamingGym/`` namespace) and of envs registered with :func:`register`."""
    builtin = {env_id for env_id in gym.registry if env_id.startswith(f"{NAMESPACE}/")}
    custom = {env_id for env_id in _CUSTOM_IDS if env_id in gym.registry}
    return sorted(builtin | custom)


def check_knobs(env_id: Any, knobs: dict[str, Any]) -> None:
    """Check ``knobs`` for the registered gameable env ``env_id`` without making an env: an
    unknown env, an unknown knob or a bad value is a :class:`ConfigError` naming it. What a
    config or an experiment file is read through, so a bad knob fails before anything trains."""
    if not isinstance(env_id, str) or env_id not in gameable_env_ids():
        raise ConfigError(
            f"unknown env {env_id!r}; registered gameable envs: {', '.join(gameable_env_ids())}"
        )
    spec = gym.registry[env_id]
    front = spec.vector_entry_point
    if isinstance(front, str):
        from gymnasium.envs.registration import load_env_creator

        front = load_env_creator(front)
    kernel = getattr(front, "kernel", None)
    if isinstance(kernel, Kernel):
        kernel.make_params(**{**spec.kwargs, **knobs})


def builtin_env_ids() -> list[str]:
    return sorted(f"{NAMESPACE}/{name}" for name in BUILTIN_ENVS)


def import_custom_envs(names: list[str]) -> None:
    """Import modules (or .py files) that register custom envs, each failure in one line.

    A file is loaded under a private module name, never its own stem: ``--import json.py`` must
    not replace the ``json`` module. Its folder (for a module name, the working directory) goes
    at the end of ``sys.path``, so its own imports of modules beside it work without shadowing
    anything installed.
    """
    for name in names:
        try:
            if name.endswith(".py"):
                _import_file(Path(name))
            else:
                _append_to_path(Path.cwd())
                importlib.import_module(name)
        except SyntaxError as error:
            raise CustomEnvImportError(
                f"--import {name}: syntax error in {error.filename}, line {error.lineno}: {error.msg}"
            ) from error
        except CustomEnvImportError:
            raise  # already says which --import
        except ImportError as error:
            raise CustomEnvImportError(f"--import {name}: {error}") from error


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise CustomEnvImportError(f"--import {path}: no such file")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"_gaming_gym_import_{path.stem}_{digest}"
    if module_name in sys.modules:
        return
    _append_to_path(path.resolve().parent)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def _append_to_path(folder: Path) -> None:
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
