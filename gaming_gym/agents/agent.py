"""The :class:`Agent` protocol and the table of agents the experiment runner and the CLI choose from.

An agent turns settings into a checked config, trains it into a run directory, and loads a
trained run's policy back. Two implement it: native PPO (``"ppo"``, :mod:`gaming_gym.agents.ppo`)
and stable-baselines3 PPO (``"sb3"``, :mod:`gaming_gym.agents.sb3`, the optional extra), both
configured from the same tuned settings (:mod:`gaming_gym.agents.tuned`). A run directory's
``config.json`` names its agent; :func:`get_agent` looks it up here. A new agent is one more entry
in :data:`AGENTS`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gaming_gym.core import Policy
from gaming_gym.errors import ConfigError, ConfigTypeError
from gaming_gym.metrics import Evaluation
from gaming_gym.runs import CHECKPOINT_FILE, RunDirectory, read_run_file, run_file


@runtime_checkable
class TrainedAgent(Protocol):
    """What training leaves: the evaluations along the way and the trained policy."""

    checkpoints: list[Evaluation]

    def policy(self, deterministic: bool = False) -> Policy: ...


@runtime_checkable
class Agent(Protocol):
    """One way to train a policy on a gameable env and load it back from its run directory."""

    name: str
    """what ``config.json`` records as its ``agent``, and ``--agent`` takes"""

    def config(self, env_id: str, **settings: Any) -> Any:
        """The run's checked config: ``env_id``'s tuned settings with ``settings`` (``knobs``,
        ``seed``, ``total_timesteps``, ...) on top; bad settings raise a :class:`ConfigError`."""
        ...

    def train(
        self, config: Any, run_dir: str | os.PathLike | RunDirectory | None = None, progress: bool = True
    ) -> TrainedAgent:
        """Train as ``config`` says, resuming ``run_dir`` if it holds this run."""
        ...

    def load_policy(self, run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
        """The trained batched policy of a run directory this agent wrote; nothing is unpickled."""
        ...


@dataclass(frozen=True)
class NativePPO:
    """The device-resident PPO of :mod:`gaming_gym.agents.ppo`."""

    name: str = "ppo"

    def config(self, env_id: str, **settings: Any):
        from gaming_gym.agents.ppo import PPOConfig, default_config

        fields = {field.name for field in dataclasses.fields(PPOConfig)} - {"env_id"}
        unknown = sorted(set(settings) - fields)
        if unknown:
            raise ConfigTypeError(
                f"native PPO has no setting {', '.join(map(repr, unknown))}; "
                f"it takes: {', '.join(sorted(fields))}"
            )
        try:
            return default_config(env_id, **settings)
        except TypeError as error:  # a value of the wrong type, e.g. hidden_sizes=5
            raise ConfigTypeError(str(error)) from error

    def train(self, config, run_dir=None, progress: bool = True):
        from gaming_gym.agents.ppo import train

        return train(config, run_dir, progress=progress, resume=True)

    def load_policy(self, run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
        from gaming_gym.agents.ppo import load_agent

        checkpoint = run_file(run_dir, CHECKPOINT_FILE, "a PPO run directory")
        agent, _ = read_run_file(checkpoint, load_agent)
        return agent.policy(deterministic)


@dataclass(frozen=True)
class StableBaselines3PPO:
    """stable-baselines3's PPO through :mod:`gaming_gym.agents.sb3`, on native PPO's settings
    translated (imported when used: it needs ``pip install 'gaming_gym[sb3]'``)."""

    name: str = "sb3"

    def config(self, env_id: str, **settings: Any):
        from gaming_gym.agents.sb3 import sb3_config

        return sb3_config(env_id, **settings)

    def train(self, config, run_dir=None, progress: bool = True):
        from gaming_gym.agents.sb3 import train_sb3

        return train_sb3(config, run_dir, progress=progress)

    def load_policy(self, run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
        from gaming_gym.agents.sb3 import load_sb3_policy

        return load_sb3_policy(Path(run_dir), deterministic)


AGENTS: dict[str, Agent] = {agent.name: agent for agent in (NativePPO(), StableBaselines3PPO())}
"""The agents by name: what ``--agent`` and a run directory's ``config.json`` may name."""


def get_agent(name: Any) -> Agent:
    """The agent called ``name``; a :class:`ConfigError` naming the choices for any other name."""
    if isinstance(name, str) and name in AGENTS:
        return AGENTS[name]
    raise ConfigError(f"unknown agent {name!r}; choose one of: {', '.join(AGENTS)}")


__all__ = ["AGENTS", "Agent", "NativePPO", "StableBaselines3PPO", "TrainedAgent", "get_agent"]
