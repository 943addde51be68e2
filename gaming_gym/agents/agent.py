"""The :class:`Agent` protocol and the table of agents the experiment runner and the CLI choose from.

An agent turns settings into a checked config, trains configs into run directories (several at
once, as one stack, where it can), and loads a trained run's policy back. Three implement it:
native PPO (``"ppo"``, :mod:`gaming_gym.agents.ppo`) and stable-baselines3 PPO (``"sb3"``,
:mod:`gaming_gym.agents.sb3`, the optional extra), both configured from the same tuned settings
(:mod:`gaming_gym.agents.tuned`), and DPO (``"dpo"``, :mod:`gaming_gym.agents.dpo`), which learns
offline from a reward model's preference data instead of from the env's reward. A run
directory's ``config.json`` names its agent; :func:`get_agent` looks it up here and
:func:`read_run_config` reads it through that agent. A new agent is one more entry in
:data:`AGENTS`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gaming_gym.errors import ConfigError, ConfigTypeError, RunDirectoryError
from gaming_gym.kernel import Policy
from gaming_gym.metrics import Evaluation
from gaming_gym.runs import RunDirectory, read_config, read_run_file, run_file


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
        ``seed``, ``total_timesteps``, ``mitigations``, ...) on top; bad settings raise a
        :class:`ConfigError` naming them."""
        ...

    def train(
        self, config: Any, run_dir: str | os.PathLike | RunDirectory | None = None, progress: bool = True
    ) -> TrainedAgent:
        """Train ``config`` (resuming ``run_dir`` if it holds this run): a stack of one."""
        ...

    def stack_key(self, config: Any) -> str | None:
        """Configs with equal keys can train as one stack (:meth:`train_stack`); None: this
        config trains alone."""
        ...

    def train_stack(
        self,
        configs: Sequence[Any],
        run_dirs: Sequence[str | os.PathLike | RunDirectory | None],
        progress: bool = True,
    ) -> list[TrainedAgent]:
        """Train every config into its run directory (resuming what each holds), as one stack
        where the agent can."""
        ...

    def upgrade_config(self, saved: dict[str, Any]) -> dict[str, Any]:
        """A ``config.json`` this agent wrote, in today's shape (older versions' included)."""
        ...

    def load_policy(self, run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
        """The trained batched policy of a run directory this agent wrote; nothing is unpickled."""
        ...


@dataclass(frozen=True)
class NativePPO:
    """The device-resident PPO of :mod:`gaming_gym.agents.ppo`: any number of runs as one stack."""

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
        return self.train_stack([config], [run_dir], progress)[0]

    def stack_key(self, config) -> str | None:
        from gaming_gym.agents.ppo import stacking_key

        return stacking_key(config)

    def train_stack(self, configs, run_dirs, progress: bool = True):
        from gaming_gym.agents.ppo import train_stacked

        return train_stacked(configs, run_dirs, progress=progress)

    def upgrade_config(self, saved: dict[str, Any]) -> dict[str, Any]:
        from gaming_gym.agents.ppo.config import as_today

        return as_today(saved)  # with the defaults of settings added since it was written

    def load_policy(self, run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
        from gaming_gym.agents.ppo import CHECKPOINT_FILE, load_agent

        checkpoint = run_file(run_dir, CHECKPOINT_FILE, "a PPO run directory")
        agent, _ = read_run_file(checkpoint, load_agent)
        return agent.policy(deterministic)


@dataclass(frozen=True)
class StableBaselines3PPO:
    """stable-baselines3's PPO through :mod:`gaming_gym.agents.sb3`, on native PPO's settings
    translated (imported when used: it needs ``pip install 'gaming_gym[sb3]'``). Runs train one
    after another."""

    name: str = "sb3"

    def config(self, env_id: str, **settings: Any):
        from gaming_gym.agents.sb3 import sb3_config

        return sb3_config(env_id, **settings)

    def train(self, config, run_dir=None, progress: bool = True):
        return self.train_stack([config], [run_dir], progress)[0]

    def stack_key(self, config) -> str | None:
        return None

    def train_stack(self, configs, run_dirs, progress: bool = True):
        from gaming_gym.agents.sb3 import train_sb3

        return [
            train_sb3(config, run_dir, progress=progress)
            for config, run_dir in zip(configs, run_dirs, strict=True)
        ]

    def upgrade_config(self, saved: dict[str, Any]) -> dict[str, Any]:
        return {"mitigations": {}, **saved}

    def load_policy(self, run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
        from gaming_gym.agents.sb3 import load_sb3_policy

        return load_sb3_policy(Path(run_dir), deterministic)


def _agents() -> tuple[Agent, ...]:
    from gaming_gym.agents.dpo import DirectPreferenceOptimisation

    return NativePPO(), StableBaselines3PPO(), DirectPreferenceOptimisation()


AGENTS: dict[str, Agent] = {agent.name: agent for agent in _agents()}
"""The agents by name: what ``--agent`` and a run directory's ``config.json`` may name."""


def get_agent(name: Any) -> Agent:
    """The agent called ``name``; a :class:`ConfigError` naming the choices for any other name."""
    if isinstance(name, str) and name in AGENTS:
        return AGENTS[name]
    raise ConfigError(f"unknown agent {name!r}; choose one of: {', '.join(AGENTS)}")


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run directory's ``config.json``, checked (:func:`gaming_gym.runs.read_config`), its
    agent one of :data:`AGENTS`, and brought up to date by that agent."""
    saved = read_config(run_dir)
    if saved["agent"] not in AGENTS:
        raise RunDirectoryError(
            f"{Path(run_dir) / 'config.json'} names no known agent ({saved['agent']!r}; "
            f"one of {', '.join(AGENTS)})"
        )
    return AGENTS[saved["agent"]].upgrade_config(saved)


def load_run_policy(run_dir: str | os.PathLike, deterministic: bool = False) -> tuple[Policy, dict]:
    """The trained batched policy of a run directory and the run's config (both checked: see
    :func:`read_run_config`; nothing is unpickled)."""
    saved = read_run_config(run_dir)
    return get_agent(saved["agent"]).load_policy(run_dir, deterministic), saved


__all__ = [
    "AGENTS",
    "Agent",
    "NativePPO",
    "StableBaselines3PPO",
    "TrainedAgent",
    "get_agent",
    "load_run_policy",
    "read_run_config",
]
