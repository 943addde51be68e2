"""The mitigation protocol: the hooks a trainer calls, what it offers them, and the registry.

A mitigation is a class with a name, a frozen ``Settings`` dataclass of its coefficients, and any
of five hooks (each a no-op unless overridden):

==================  ===========================================================================
hook                when the trainer calls it, and what for
==================  ===========================================================================
``prepare``         once, before a fresh run's first update: clone a reference, train an
                    auxiliary model (a resumed run gets its state back instead)
``reward``          at every rollout step: transform the trained-on reward (a KL penalty, a
                    discriminator's occupancy penalty, an ensemble's aggregate)
``loss``            at every minibatch: a term added to each agent's PPO loss
``after_iteration`` after each iteration's update: update an auxiliary model (a discriminator);
                    return log columns
``measure`` and     at every evaluation: measure what the rule needs (a held-out true check,
``at_evaluation``   kept in the evaluation records), then decide for each agent whether to stop
                    training and which of its states to keep
==================  ===========================================================================

One instance serves a whole stack of ``N`` agents (N = 1 for a run of its own), so the hooks
work on batches laid out agent by agent: ``N`` equal blocks of rows, block ``i`` agent ``i``'s.
``settings`` holds each agent's settings; agents may differ in the fields named in ``per_agent``
(a coefficient, say) and must agree on the rest. A stop decided for one agent ends that agent's
training (the trainer masks it) and not the others'. What a mitigation needs of the trainer
(its initial policy, a behaviour clone, a held-out evaluation, an agent's weights) it asks of the
:class:`Context`; so it works with any agent that offers one, and the same class serves native
PPO and, where its hooks allow, stable-baselines3 (``sb3_unsupported`` says why not).

Register a mitigation with :func:`register_mitigation`; it is then chosen by name everywhere:
``PPOConfig(mitigations={"NAME": {...}})``, ``--mitigation NAME --set NAME.COEF=VALUE`` on the
command line, ``[settings.mitigations.NAME]`` in an experiment file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from gaming_gym.errors import ConfigError, ConfigTypeError
from gaming_gym.evaluation import EpisodeReturns
from gaming_gym.knobs import checked_dataclass
from gaming_gym.metrics.records import Evaluation


class ActingPolicy(Protocol):
    """A policy a KL is measured against: an action distribution on raw observations."""

    def action_distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution: ...


class Context(Protocol):
    """What a trainer offers the mitigations of a stack of ``num_agents`` agents."""

    num_agents: int
    envs_per_agent: int
    """rows of a rollout step per agent (the stack's rows are ``num_agents * envs_per_agent``)"""
    device: torch.device
    env_id: str
    knobs: dict[str, Any]
    reward_model: str | None
    """the folder of the reward model the agents train against (:mod:`gaming_gym.rlhf`), if any"""

    def initial_policy(self) -> ActingPolicy:
        """Every agent's policy as training started (the stack's rows, agent by agent)."""
        ...

    def clone(self, kind: str) -> ActingPolicy:
        """A behaviour clone of the env's intended policy for every agent (``"intended"`` or
        ``"sft"``), built once and kept with the run's checkpoints."""
        ...

    def play(self, episodes: int, seed_offset: int) -> list[EpisodeReturns]:
        """Each agent's current policy played for ``episodes`` episodes on its own seed plus
        ``seed_offset`` (episodes no evaluation sees), with a freshly seeded generator."""
        ...

    def agent_state(self, agent: int) -> dict[str, torch.Tensor]:
        """A copy of agent ``agent``'s weights, as :class:`Verdict` gives them back."""
        ...

    def evaluations(self, agent: int) -> list[Evaluation]:
        """Agent ``agent``'s evaluation records so far, the newest last."""
        ...


@dataclass(frozen=True)
class Step:
    """One rollout step of every agent in a stack, as :meth:`Mitigation.reward` sees it."""

    obs: torch.Tensor
    """raw observations the actions were chosen on, ``(rows, ...)``"""
    action: torch.Tensor
    """the actions as the policy sampled them"""
    log_prob: torch.Tensor
    """their log-probabilities under the policy, ``(rows,)``"""
    distribution: torch.distributions.Distribution
    """the policy's action distribution at ``obs``"""
    info: Mapping[str, Any]
    """the env's step info (``proxy_reward``, ``true_reward``, ...)"""


@dataclass(frozen=True)
class Verdict:
    """Stop training this agent, and keep the agent it had at ``kept_step`` (``keep``)."""

    keep: dict[str, torch.Tensor]
    kept_step: int


class Mitigation:
    """Base of every mitigation: every hook a no-op (module docstring)."""

    name: ClassVar[str]
    Settings: ClassVar[type]
    per_agent: ClassVar[tuple[str, ...]] = ()
    """settings in which the agents of one stack may differ"""
    sb3_unsupported: ClassVar[str | None] = None
    """why the stable-baselines3 agent cannot use this mitigation; None when it can (SB3 calls
    ``prepare``, ``measure``, ``at_evaluation`` and the state hooks, not ``reward``, ``loss`` or
    ``after_iteration``: its rollouts and updates are its own)"""

    def __init__(self, settings: Sequence[Any], context: Context):
        self.settings = list(settings)
        self.context = context

    def prepare(self) -> None:
        """Before a fresh run's first update."""

    def reward(self, step: Step, reward: torch.Tensor) -> torch.Tensor:
        """The trained-on reward of one rollout step, ``(rows,)``, transformed."""
        return reward

    def loss(self, minibatch: Mapping[str, torch.Tensor], distribution) -> torch.Tensor | None:
        """A term added to each agent's loss, ``(num_agents,)``; the minibatch is shaped ``(rows,
        num_agents, ...)`` (normalised ``obs``, ``actions``, ``log_probs``, ``advantages``, ...)."""
        return None

    def after_iteration(self) -> dict[str, torch.Tensor]:
        """After each iteration's update; log columns, each ``(num_agents,)`` on the device."""
        return {}

    def measure(self) -> dict[str, list[np.ndarray]]:
        """At each evaluation: extra fields of each agent's :class:`Evaluation` record."""
        return {}

    def at_evaluation(self, agents: Sequence[int]) -> dict[int, Verdict]:
        """After the evaluation records of ``agents`` (those still training) are in: the agents
        to stop, with what each keeps."""
        return {}

    def state(self, agent: int) -> dict[str, Any]:
        """What agent ``agent``'s checkpoint keeps of this mitigation (tensors and plain data)."""
        return {}

    def load_state(self, agent: int, state: Mapping[str, Any]) -> None:
        """Put back what :meth:`state` saved."""

    def per_agent_tensor(self, name: str, rows: int = 1) -> torch.Tensor:
        """Setting ``name`` of every agent as a float tensor on the device, each value repeated
        ``rows`` times: ``(num_agents * rows,)``, laid out as the stack's rows."""
        values = torch.tensor([float(getattr(s, name)) for s in self.settings], device=self.context.device)
        return values.repeat_interleave(rows)


MITIGATIONS: dict[str, type[Mitigation]] = {}
"""Every registered mitigation by name."""


def register_mitigation(cls: type[Mitigation]) -> type[Mitigation]:
    """Register a mitigation class under its ``name`` (a class decorator); it is then chosen by
    name from configs, the command line and experiment files."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigTypeError(f"a mitigation's name must be an identifier, got {name!r}")
    settings = getattr(cls, "Settings", None)
    if not (isinstance(settings, type) and dataclasses.is_dataclass(settings)):
        raise ConfigTypeError(f"mitigation {name}: Settings must be a dataclass of its coefficients")
    fields = {field.name for field in dataclasses.fields(settings)}
    if not set(cls.per_agent) <= fields:
        raise ConfigTypeError(
            f"mitigation {name}: per_agent names {sorted(set(cls.per_agent) - fields)}, not settings"
        )
    if name in MITIGATIONS and MITIGATIONS[name] is not cls:
        raise ConfigError(
            f"a mitigation named {name!r} is registered already ({MITIGATIONS[name].__module__})"
        )
    MITIGATIONS[name] = cls
    return cls


def get_mitigation(name: Any) -> type[Mitigation]:
    """The mitigation registered as ``name``; a ConfigError naming the choices otherwise."""
    if isinstance(name, str) and name in MITIGATIONS:
        return MITIGATIONS[name]
    raise ConfigError(
        f"unknown mitigation {name!r}; registered: {', '.join(sorted(MITIGATIONS))} (register your own "
        "with gaming_gym.mitigations.register_mitigation, and --import its module on the command line)"
    )


def checked_mitigations(chosen: Any) -> dict[str, dict[str, Any]]:
    """Mitigations chosen as ``{name: {setting: value}}`` (a list of names takes the defaults),
    each checked by its ``Settings`` and returned in full (defaults filled in), in order."""
    if isinstance(chosen, (list, tuple)):
        chosen = {name: {} for name in chosen}
    if not isinstance(chosen, Mapping):
        raise ConfigError(
            "mitigations must map names to their settings, e.g. {'kl_initial': {'beta': 0.1}}, "
            f"got {chosen!r}"
        )
    checked = {}
    for name, settings in chosen.items():
        checked[name] = dataclasses.asdict(settings_of(name, settings))
    return checked


def settings_of(name: str, values: Any) -> Any:
    """The ``Settings`` of mitigation ``name`` from a mapping of values, checked; an unknown or
    bad setting is a ConfigError naming the mitigation and what it takes."""
    cls = get_mitigation(name)
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"mitigation {name}'s settings must be a table of NAME = VALUE, got {values!r}")
    return checked_dataclass(cls.Settings, values, f"mitigation {name}", "setting")


def build_mitigations(
    chosen: Sequence[Mapping[str, Mapping[str, Any]]], context: Context
) -> list[Mitigation]:
    """The mitigations of a stack, from each agent's ``{name: settings}`` (all must choose the
    same mitigations, in the same order)."""
    names = list(chosen[0])
    return [
        get_mitigation(name)([settings_of(name, agent[name]) for agent in chosen], context) for name in names
    ]


def stacking_key(chosen: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list]]:
    """What agents of one stack must share of their mitigations: the names, in order, and every
    setting not ``per_agent``."""
    return [
        (name, sorted((k, v) for k, v in settings.items() if k not in get_mitigation(name).per_agent))
        for name, settings in chosen.items()
    ]
