"""Env ids under the ``GamingGym/`` namespace, registered with Gymnasium at import time.

``gymnasium.make("GamingGym/BoatRace-v0")`` gives the single front (with Gymnasium's time
limit) and ``gymnasium.make_vec("GamingGym/BoatRace-v0", num_envs=4096, device="cuda")`` the
batched front, which counts the same time limit itself.
"""

from __future__ import annotations

import gymnasium as gym

NAMESPACE = "GamingGym"

BUILTIN_ENVS = {
    # id: (module, single front, vector front, max_episode_steps, default kwargs)
    "BoatRace-v0": ("gaming_gym.envs.boat_race", "BoatRaceEnv", "BoatRaceVectorEnv", 1000, {}),
    "BoatRaceContinuous-v0": (
        "gaming_gym.envs.boat_race",
        "BoatRaceEnv",
        "BoatRaceVectorEnv",
        1000,
        {"continuous": True},
    ),
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


def gameable_env_ids() -> list[str]:
    """Ids of all registered envs in the ``GamingGym/`` namespace."""
    return sorted(env_id for env_id in gym.registry if env_id.startswith(f"{NAMESPACE}/"))
