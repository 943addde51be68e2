"""PPO that lives on one torch device: rollout, GAE and updates never leave it.

After CleanRL's ``ppo.py`` (one file, a config dataclass with a docstring per field, ``charts/``
and ``losses/`` log tags), split into small functions that read top to bottom:
:func:`collect_rollout`, :func:`compute_gae`, :func:`ppo_update`, :func:`evaluate_agent`, and
:func:`train` tying them together. The batched :class:`~gaming_gym.core.GameableVectorEnv` is
stepped directly with tensors, so a whole rollout runs without a numpy round trip.

PPO trains on the *proxy* reward by default, which is how it discovers the exploit;
``reward="true"`` trains on ``info["true_reward"]`` instead, the intended baseline every
Goodhart experiment compares against.

Every evaluation, from the untrained policy at step 0 on, also measures the KL divergence of the
policy from its initial self (Gao et al.'s optimisation distance is its square root). Two
mitigations of Goodhart's law are configuration switches: a KL penalty toward the initial policy
or a behaviour-cloned copy of the env's intended policy (``kl_coef``, ``kl_reference``; RLHF's
SFT-model penalty), and early stopping at the Goodhart onset as a held-out true-reward check
sees it (``holdout_episodes``, ``early_stop``; after Karwowski et al.).

Example::

    from gaming_gym.agents.ppo import default_config, train

    result = train(default_config("GamingGym/BoatRace-v1", seed=0), run_dir="runs/boat")
    print(result.checkpoints[-1].proxy.mean(), result.checkpoints[-1].true.mean())
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import kl_divergence

from gaming_gym.agents.reference import SmoothedPolicy, behaviour_clone
from gaming_gym.agents.tuned import TUNED, TUNED_TRUE_REWARD, tuned_settings
from gaming_gym.core import GameableVectorEnv, Policy, resolve_device
from gaming_gym.errors import ConfigError, RunDirectoryError, RunExistsError
from gaming_gym.evaluation import evaluate, reference_returns
from gaming_gym.metrics import Checkpoint, early_stop, normalise
from gaming_gym.runs import (
    CHECKPOINT_FILE,
    ProgressLog,
    RunDirectory,
    differing_fields,
    opened,
    read_checkpoint,
    require_registered,
)
from gaming_gym.wrappers import RecordVectorEpisodeStatistics

REWARDS = ("proxy", "true")
KL_REFERENCES = ("initial", "intended")
MAX_WIDTH = 16_384
"""Widest hidden layer ``PPOConfig.hidden_sizes`` accepts."""
MAX_PARAMETERS = 50_000_000
"""Most parameters (actor and critic) a PPO network may have: checked before it is built, since
training holds several copies (Adam's moments, the initial agent, checkpoints)."""


@dataclass
class PPOConfig:
    """Everything one PPO run depends on; a run directory stores it next to the checkpoint."""

    env_id: str = "GamingGym/BoatRace-v1"
    """registered env id; must have a batched (``gymnasium.make_vec``) entry point"""
    knobs: dict[str, Any] = field(default_factory=dict)
    """env knobs passed to ``gymnasium.make_vec`` (e.g. ``{"respawn_delay": None}`` to align)"""
    reward: str = "proxy"
    """what PPO maximises: ``"proxy"`` (the env's reward) or ``"true"`` (``info["true_reward"]``)"""
    seed: int = 0
    """seeds the network, the sampling and the envs; same seed, same run"""
    device: str = "auto"
    """torch device for envs, rollout and updates; ``"auto"`` picks cuda, then mps, then cpu"""
    total_timesteps: int = 2_000_000
    """env steps to train for, summed over all envs"""
    num_envs: int = 64
    """parallel envs in the batched env"""
    num_steps: int = 128
    """steps per env in each rollout; a rollout holds ``num_envs * num_steps`` transitions"""
    learning_rate: float = 3e-4
    """Adam learning rate"""
    anneal_lr: bool = True
    """decay the learning rate linearly to zero over the run"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """lambda of generalised advantage estimation"""
    num_minibatches: int = 4
    """minibatches per epoch; must divide ``num_envs * num_steps``"""
    update_epochs: int = 4
    """passes over each rollout"""
    norm_adv: bool = True
    """normalise advantages within each minibatch"""
    clip_coef: float = 0.2
    """PPO's clipping range for the probability ratio"""
    clip_vloss: bool = True
    """clip the value loss the way the policy ratio is clipped"""
    ent_coef: float = 0.01
    """weight of the entropy bonus"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    max_grad_norm: float = 0.5
    """gradient-norm clipping threshold"""
    target_kl: float | None = None
    """stop an update's epochs early once approximate KL exceeds this; ``None`` never stops"""
    norm_obs: bool = True
    """normalise observations by a running mean and std (saved with the checkpoint)"""
    reward_scale: float = 1.0
    """multiply the trained-on reward by this before learning (logged returns stay unscaled)"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the tanh hidden layers of the actor and of the critic (each at most ``MAX_WIDTH``,
    and at most ``MAX_PARAMETERS`` parameters in all)"""
    eval_every: int = 10
    """iterations between evaluations (one always starts and one always ends the run); 0 evaluates
    only at the start and the end"""
    eval_episodes: int = 16
    """episodes per evaluation"""
    eval_deterministic: bool = False
    """evaluate the greedy policy (mode of the action distribution) instead of sampling"""
    checkpoint_every: int = 10
    """iterations between checkpoints in ``run_dir`` (the end of the run always writes one)"""
    cpu_threads: int | None = 1
    """torch CPU threads while training; one is fastest for these small networks and batches (more
    threads mostly wait on each other, badly so on a busy machine); ``None`` keeps torch's setting"""

    # Mitigations of Goodhart's law: a KL penalty (as in RLHF) and early stopping (Karwowski et al.).
    kl_coef: float = 0.0
    """weight of a KL penalty toward ``kl_reference``, in RLHF's reward form: each step's
    trained-on reward loses ``kl_coef * log(pi(a|s) / pi_ref(a|s))``, whose mean is
    ``kl_coef * KL(pi(.|s) || pi_ref(.|s))`` (before ``reward_scale``; logged returns stay
    unpenalised); 0 turns it off"""
    kl_reference: str = "initial"
    """the penalty's reference policy: ``"initial"`` (the untrained policy; near uniform, so the
    penalty acts much like an entropy bonus) or ``"intended"`` (a behaviour-cloned copy of the env's
    scripted intended policy, the analogue of RLHF's SFT model; see ``agents/reference.py``)"""
    holdout_episodes: int = 0
    """episodes of a held-out true-reward check at each evaluation, on other seeds than the
    evaluation episodes (``Checkpoint.holdout_true``); 0 runs none"""
    early_stop: bool = False
    """stop training at the Goodhart onset as the held-out check sees it and keep the agent of its
    best evaluation; needs ``holdout_episodes > 0``"""
    early_stop_patience: int = 2
    """evaluations in a row, after the best one, that must lie ``early_stop_min_drop`` below it"""
    early_stop_min_drop: float = 0.1
    """how far the held-out true return must fall below its best to count, in normalised units
    (0 is the random policy's true return, 1 the intended policy's)"""

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(self.hidden_sizes)
        self.knobs = dict(self.knobs)
        if self.reward not in REWARDS:
            raise ConfigError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.kl_reference not in KL_REFERENCES:
            raise ConfigError(f"kl_reference must be one of {KL_REFERENCES}, got {self.kl_reference!r}")
        for name in ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs"):
            _require(name, getattr(self, name), lambda v: isinstance(v, int) and v >= 1, "a positive int")
        for name in ("eval_every", "checkpoint_every"):
            _require(name, getattr(self, name), lambda v: isinstance(v, int) and v >= 0, "an int >= 0")
        _require(
            "eval_episodes", self.eval_episodes, lambda v: isinstance(v, int) and v >= 1, "a positive int"
        )
        _require(
            "learning_rate", self.learning_rate, lambda v: math.isfinite(v) and v > 0, "a finite number > 0"
        )
        _require("gamma", self.gamma, lambda v: 0 < v <= 1, "a number in (0, 1]")
        _require("gae_lambda", self.gae_lambda, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        _require("clip_coef", self.clip_coef, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
        for name in ("ent_coef", "vf_coef", "max_grad_norm"):
            _require(name, getattr(self, name), lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
        _require(
            "reward_scale", self.reward_scale, lambda v: math.isfinite(v) and v > 0, "a finite number > 0"
        )
        _require(
            "cpu_threads",
            self.cpu_threads,
            lambda v: v is None or isinstance(v, int) and v >= 1,
            "None or a positive int",
        )
        _require(
            "target_kl",
            self.target_kl,
            lambda v: v is None or math.isfinite(v) and v > 0,
            "None or a finite number > 0",
        )
        self._check_mitigations()
        _require(
            "hidden_sizes",
            self.hidden_sizes,
            lambda v: len(v) >= 1 and all(isinstance(w, int) and 1 <= w <= MAX_WIDTH for w in v),
            f"a non-empty tuple of ints from 1 to {MAX_WIDTH:,}",
        )
        if self.batch_size % self.num_minibatches:
            raise ConfigError(
                f"num_minibatches={self.num_minibatches} must divide the rollout size "
                f"num_envs * num_steps = {self.batch_size}"
            )
        if self.num_iterations < 1:
            raise ConfigError(
                f"total_timesteps={self.total_timesteps} is less than one rollout "
                f"(num_envs * num_steps = {self.batch_size}); raise it or shrink the rollout"
            )

    def _check_mitigations(self) -> None:
        finite_at_least_zero = "a finite number >= 0"
        _require("kl_coef", self.kl_coef, lambda v: math.isfinite(v) and v >= 0, finite_at_least_zero)
        _require(
            "holdout_episodes", self.holdout_episodes, lambda v: isinstance(v, int) and v >= 0, "an int >= 0"
        )
        if not isinstance(self.early_stop, bool):
            raise ConfigError(f"PPOConfig.early_stop must be True or False, got {self.early_stop!r}")
        _require(
            "early_stop_patience",
            self.early_stop_patience,
            lambda v: isinstance(v, int) and v >= 1,
            "a positive int",
        )
        _require(
            "early_stop_min_drop",
            self.early_stop_min_drop,
            lambda v: math.isfinite(v) and v >= 0,
            finite_at_least_zero,
        )
        if self.early_stop and self.holdout_episodes == 0:
            raise ConfigError(
                "PPOConfig.early_stop needs holdout_episodes > 0: it judges the Goodhart onset on a "
                "held-out true-reward check, not on the evaluation episodes it reports"
            )

    @property
    def batch_size(self) -> int:
        """Transitions per rollout."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        """Rollout-and-update iterations; ``total_timesteps`` rounded down to whole rollouts."""
        return self.total_timesteps // self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _require(name: str, value: Any, accept: Callable[[Any], bool], accepted: str) -> None:
    try:
        ok = bool(accept(value))
    except TypeError:
        ok = False
    if not ok or isinstance(value, bool):
        raise ConfigError(f"PPOConfig.{name} must be {accepted}, got {value!r}")


# The per-env tuned settings live in gaming_gym.agents.tuned, shared with the SB3 agent; native PPO
# reads them unchanged.
DEFAULT_CONFIGS = TUNED
TRUE_REWARD_CONFIGS = TUNED_TRUE_REWARD


def default_config(env_id: str, **overrides: Any) -> PPOConfig:
    """The recommended :class:`PPOConfig` for ``env_id`` (and ``reward``), with any field overridden:
    the tuned settings of :mod:`gaming_gym.agents.tuned`, read as they are."""
    return PPOConfig(env_id=env_id, **tuned_settings(env_id, **overrides))


# --- the agent ---------------------------------------------------------------------------------


class RunningMeanStd(nn.Module):
    """Running mean and variance of observations (Chan et al.'s parallel update), kept as buffers
    so they are saved and loaded with the agent's ``state_dict``."""

    def __init__(self, shape: tuple[int, ...], epsilon: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(epsilon))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        batch_mean, batch_var, batch_count = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean += delta * batch_count / total
        self.var.copy_(
            (
                self.var * self.count
                + batch_var * batch_count
                + delta.square() * self.count * batch_count / total
            )
            / total
        )
        self.count.copy_(total)

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-10.0, 10.0)


class DiscreteHead(nn.Module):
    """Categorical distribution over ``Discrete(n)`` actions.

    Heads skip torch's argument validation: it re-checks every batch on the rollout's hot path.
    """

    def __init__(self, space: gym.spaces.Discrete, width: int):
        super().__init__()
        self.start = int(space.start)
        self.logits = _layer(width, int(space.n), std=0.01)

    def distribution(self, features: torch.Tensor) -> torch.distributions.Distribution:
        return torch.distributions.Categorical(logits=self.logits(features), validate_args=False)

    def greedy(self, distribution: torch.distributions.Distribution) -> torch.Tensor:
        return distribution.probs.argmax(dim=-1)

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return action + self.start

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_env`: an env action as this head samples it."""
        return action.long() - self.start


class GaussianHead(nn.Module):
    """Diagonal Gaussian over ``Box`` actions with a learned, state-independent log std.

    Samples are clipped into the box only when sent to the env, so log-probabilities stay exact.
    """

    def __init__(self, space: gym.spaces.Box, width: int):
        super().__init__()
        size = int(np.prod(space.shape))
        self.shape = space.shape
        self.mean = _layer(width, size, std=0.01)
        self.log_std = nn.Parameter(torch.zeros(size))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32).flatten())
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32).flatten())

    def distribution(self, features: torch.Tensor) -> torch.distributions.Distribution:
        mean = self.mean(features)
        normal = torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean), validate_args=False)
        return torch.distributions.Independent(normal, 1, validate_args=False)

    def greedy(self, distribution: torch.distributions.Distribution) -> torch.Tensor:
        return distribution.mean

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(action, self.high), self.low).view(-1, *self.shape)

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        """An env action as this head samples it (flat; in-box actions need no unclipping)."""
        return action.float().flatten(1)


def make_head(space: gym.Space, width: int) -> DiscreteHead | GaussianHead:
    """The policy head for an action space, or a ConfigError naming the spaces PPO supports."""
    if isinstance(space, gym.spaces.Discrete):
        return DiscreteHead(space, width)
    if isinstance(space, gym.spaces.Box):
        return GaussianHead(space, width)
    raise ConfigError(f"PPO supports Discrete and Box action spaces, got {space}")


def _layer(inputs: int, outputs: int, std: float = math.sqrt(2)) -> nn.Linear:
    """Orthogonally initialised linear layer, as in CleanRL (it matters for PPO)."""
    layer = nn.Linear(inputs, outputs)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


def _mlp(inputs: int, hidden_sizes: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [_layer(inputs, width), nn.Tanh()]
        inputs = width
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs over normalised observations, with a policy head.

    Methods taking ``norm_obs`` expect observations already normalised by :meth:`normalise`;
    :meth:`policy` wraps everything into a callable on raw observations for ``evaluate``.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        hidden_sizes: tuple[int, ...] = (64, 64),
        norm_obs: bool = True,
    ):
        super().__init__()
        if not isinstance(observation_space, gym.spaces.Box):
            raise ConfigError(f"PPO needs a Box observation space, got {observation_space}")
        obs_size = int(np.prod(observation_space.shape))
        self.norm_obs = norm_obs
        self.obs_rms = RunningMeanStd((obs_size,))
        self.actor = _mlp(obs_size, hidden_sizes)
        self.head = make_head(action_space, hidden_sizes[-1])
        self.critic = nn.Sequential(_mlp(obs_size, hidden_sizes), _layer(hidden_sizes[-1], 1, std=1.0))

    def normalise(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        """Flatten and normalise raw observations, first folding them into the statistics if asked."""
        obs = obs.float().flatten(1)
        if not self.norm_obs:
            return obs
        if update:
            self.obs_rms.update(obs)
        return self.obs_rms.normalise(obs)

    def value(self, norm_obs: torch.Tensor) -> torch.Tensor:
        return self.critic(norm_obs).squeeze(-1)

    def distribution(self, norm_obs: torch.Tensor) -> torch.distributions.Distribution:
        return self.head.distribution(self.actor(norm_obs))

    def action_distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """The action distribution on raw observations, normalised by this network's statistics."""
        return self.distribution(self.normalise(obs))

    def policy(self, deterministic: bool = False) -> Policy:
        """A batched policy on raw observations, as :func:`gaming_gym.evaluation.evaluate` takes."""

        @torch.no_grad()
        def act(obs: torch.Tensor) -> torch.Tensor:
            distribution = self.action_distribution(obs)
            action = self.head.greedy(distribution) if deterministic else distribution.sample()
            return self.head.to_env(action)

        return act


ReferencePolicy = ActorCritic | SmoothedPolicy
"""A policy a KL is measured against: both give ``action_distribution(raw_obs)``."""


def kl_from(reference: ReferencePolicy, distribution: torch.distributions.Distribution, obs: torch.Tensor):
    """Per-state KL(distribution || reference(.|s)) in nats, on the raw observations ``obs``.

    The reference normalises ``obs`` with its own statistics, so each policy is the function of
    raw observations it really is. Analytic (``torch.distributions.kl_divergence``), for
    categorical and diagonal Gaussian policies alike.
    """
    return kl_divergence(distribution, reference.action_distribution(obs))


# --- rollout -----------------------------------------------------------------------------------


@dataclass
class Rollout:
    """``num_steps`` transitions of every env; tensors shaped ``(num_steps, num_envs, ...)``."""

    obs: torch.Tensor  # normalised observations the actions were chosen on
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor  # the trained-on reward, less any KL penalty, scaled
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_values: torch.Tensor  # V(last observation) where truncated, else 0
    next_value: torch.Tensor  # (num_envs,) V of the observation after the rollout
    kl_penalty: torch.Tensor | None = None  # kl_coef * log(pi(a_t|s_t) / pi_ref(a_t|s_t)), taken off rewards
    kl_reference: torch.Tensor | None = None  # KL(pi(.|s_t) || pi_ref(.|s_t)), where penalised


@torch.no_grad()
def collect_rollout(
    agent: ActorCritic,
    env: gym.vector.VectorEnv,
    obs: torch.Tensor,
    config: PPOConfig,
    reference: ReferencePolicy | None = None,
) -> tuple[Rollout, torch.Tensor]:
    """Step the batched env ``num_steps`` times with the current policy; return the rollout and the
    observation to continue from.

    The env resets ended episodes within the same step, so where an episode was *truncated* its
    last observation comes from ``info["final_obs"]``; its value is kept to bootstrap from.

    With a ``reference`` and ``config.kl_coef > 0``, each step's reward loses
    ``kl_coef * log(pi(a_t|s_t) / pi_ref(a_t|s_t))`` before ``reward_scale``, as RLHF's PPO does
    (Ziegler et al. 2019; Ouyang et al. 2022). Its expectation over the action is
    ``kl_coef * KL(pi(.|s_t) || pi_ref(.|s_t))``, but unlike that analytic per-state KL it depends
    on the action taken, so the policy gradient pulls each state's action distribution towards
    the reference. The analytic KL is the same for every action at ``s_t``, so as a reward it only
    penalises *reaching* states where the policy differs (measured on the tests' Corridor env: 10 x
    the analytic KL left the KL from the initial policy where no penalty did; 10 x the log-ratio
    cut it 77-fold). The analytic KL is kept for the log, in ``Rollout.kl_reference``; both stay
    on the device (no host sync per step).
    """
    steps, n = config.num_steps, config.num_envs
    device = obs.device
    penalised = reference is not None and config.kl_coef > 0
    buffers = {
        name: torch.zeros(steps, n, device=device)
        for name in ("log_probs", "values", "rewards", "final_values")
    }
    kl_buffers = {
        name: torch.zeros(steps, n, device=device) for name in ("kl_penalty", "kl_reference") if penalised
    }
    terminated_buffer = torch.zeros(steps, n, dtype=torch.bool, device=device)
    truncated_buffer = torch.zeros_like(terminated_buffer)
    obs_buffer, action_buffer = [], []
    for step in range(steps):
        norm_obs = agent.normalise(obs, update=True)
        distribution = agent.distribution(norm_obs)
        action = distribution.sample()
        log_prob = distribution.log_prob(action)
        if penalised:
            reference_distribution = reference.action_distribution(obs)
            log_ratio = log_prob - reference_distribution.log_prob(action)
            kl_buffers["kl_penalty"][step] = config.kl_coef * log_ratio
            kl_buffers["kl_reference"][step] = kl_divergence(distribution, reference_distribution)
        obs, proxy, terminated, truncated, info = env.step(agent.head.to_env(action))
        reward = proxy if config.reward == "proxy" else info["true_reward"]
        if penalised:
            reward = reward - kl_buffers["kl_penalty"][step]

        obs_buffer.append(norm_obs)
        action_buffer.append(action)
        buffers["log_probs"][step] = log_prob
        buffers["values"][step] = agent.value(norm_obs)
        buffers["rewards"][step] = reward * config.reward_scale
        terminated_buffer[step], truncated_buffer[step] = terminated, truncated
        if bool(truncated.any()):
            final_obs = agent.normalise(info["final_obs"][truncated])
            buffers["final_values"][step, truncated] = agent.value(final_obs)

    rollout = Rollout(
        obs=torch.stack(obs_buffer),
        actions=torch.stack(action_buffer),
        terminated=terminated_buffer,
        truncated=truncated_buffer,
        next_value=agent.value(agent.normalise(obs)),
        **buffers,
        **kl_buffers,
    )
    return rollout, obs


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and value targets (returns), shaped ``(steps, envs)``.

    At step ``t`` the value that follows is ``values[t + 1]`` (``next_value`` after the last
    step), except where the episode ended at ``t``: a terminated episode is worth nothing after
    its end, while a truncated one is bootstrapped from the value of its last observation,
    ``final_values[t]``. The advantage recursion never crosses an episode end.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        following = torch.where(truncated[t], final_values[t], following)
        delta = rewards[t] + gamma * following * (~terminated[t]) - values[t]
        running = delta + gamma * gae_lambda * (~(terminated[t] | truncated[t])) * running
        advantages[t] = running
    return advantages, advantages + values


def ppo_update(
    agent: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    config: PPOConfig,
) -> dict[str, float]:
    """``update_epochs`` passes of clipped-objective minibatch updates; returns the loss statistics."""
    obs = rollout.obs.flatten(0, 1)
    actions = rollout.actions.flatten(0, 1)
    old_log_probs, old_values = rollout.log_probs.flatten(), rollout.values.flatten()
    advantages, returns = advantages.flatten(), returns.flatten()
    stats: dict[str, list[float]] = {
        "policy_loss": [],
        "value_loss": [],
        "entropy": [],
        "approx_kl": [],
        "clipfrac": [],
    }
    for _ in range(config.update_epochs):
        order = torch.randperm(config.batch_size, device=obs.device)
        for rows in order.split(config.minibatch_size):
            distribution = agent.distribution(obs[rows])
            log_ratio = distribution.log_prob(actions[rows]) - old_log_probs[rows]
            ratio = log_ratio.exp()
            with torch.no_grad():
                stats["approx_kl"].append(float(((ratio - 1) - log_ratio).mean()))
                stats["clipfrac"].append(float(((ratio - 1).abs() > config.clip_coef).float().mean()))

            minibatch_advantages = advantages[rows]
            if config.norm_adv:
                minibatch_advantages = (minibatch_advantages - minibatch_advantages.mean()) / (
                    minibatch_advantages.std() + 1e-8
                )
            clipped_ratio = ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
            policy_loss = -torch.min(
                minibatch_advantages * ratio, minibatch_advantages * clipped_ratio
            ).mean()
            value_loss = _value_loss(agent.value(obs[rows]), old_values[rows], returns[rows], config)
            entropy = distribution.entropy().mean()
            loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss

            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
            optimizer.step()
            stats["policy_loss"].append(policy_loss.item())
            stats["value_loss"].append(value_loss.item())
            stats["entropy"].append(entropy.item())
        if config.target_kl is not None and stats["approx_kl"][-1] > config.target_kl:
            break
    summary = {name: float(np.mean(values)) for name, values in stats.items()}
    summary["explained_variance"] = _explained_variance(rollout.values.flatten(), returns)
    return summary


def _value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, config: PPOConfig):
    if not config.clip_vloss:
        return 0.5 * (values - returns).square().mean()
    clipped = old_values + (values - old_values).clamp(-config.clip_coef, config.clip_coef)
    return 0.5 * torch.max((values - returns).square(), (clipped - returns).square()).mean()


def _explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    variance = float(target.var())
    return math.nan if variance == 0 else 1.0 - float((target - predicted).var()) / variance


EVAL_SEED_OFFSET = 1_000_003
"""Evaluation episodes are seeded ``config.seed + EVAL_SEED_OFFSET``: other episodes than training's."""
HOLDOUT_SEED_OFFSET = 2_000_003
"""Seed offset of the held-out true-reward check: other episodes than the evaluation's too."""
REFERENCE_SEED_OFFSET = 3_000_003
"""Seed offset of the behaviour-cloned reference's demonstrations and fit."""


@contextlib.contextmanager
def _seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block on a forked torch RNG seeded with ``seed``: reproducible on its own, and the
    caller's random stream (the training run's) is left exactly where it was."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def evaluate_agent(
    agent: ActorCritic,
    config: PPOConfig,
    step: int,
    device: torch.device,
    initial: ActorCritic | None = None,
) -> Checkpoint:
    """Per-episode proxy and true returns of the current policy, as a Goodhart-metric record.

    Runs on a forked, freshly seeded torch RNG: evaluations are reproducible, and how often they
    happen does not change the training run's own random stream.

    With ``initial`` (the policy before training) the record's ``kl`` is the mean
    KL(current || initial) over every state the policy acted on during the evaluation, all of
    them on-policy (envs whose episode ended play on until the last one ends, and count too);
    ``sqrt(kl)`` is Gao et al.'s distance d: exactly 0 before the first update. With
    ``config.holdout_episodes`` the same policy also plays that many episodes on other seeds (and
    its own forked RNG), the held-out true-reward check that early stopping reads.
    """
    policy = agent.policy(deterministic=config.eval_deterministic)
    kls: list[torch.Tensor] = []
    seed = config.seed + EVAL_SEED_OFFSET
    with _seeded_rng(seed, device):
        returns = evaluate(
            policy if initial is None else _measuring_kl(policy, agent, initial, kls),
            config.env_id,
            episodes=config.eval_episodes,
            seed=seed,
            device=device,
            knobs=config.knobs,
        )
    kl = None
    if initial is not None:  # nearly identical policies can round to a hair below 0
        kl = max(float(torch.cat(kls).mean()), 0.0)
    holdout = None
    if config.holdout_episodes:
        seed = config.seed + HOLDOUT_SEED_OFFSET
        with _seeded_rng(seed, device):
            holdout = evaluate(
                policy,
                config.env_id,
                episodes=config.holdout_episodes,
                seed=seed,
                device=device,
                knobs=config.knobs,
            )
    return Checkpoint.from_returns(step, returns, kl=kl, holdout=holdout)


def _measuring_kl(
    policy: Policy, agent: ActorCritic, initial: ActorCritic, kls: list[torch.Tensor]
) -> Policy:
    """``policy`` (the agent's), appending KL(agent || initial) on each batch of observations it
    acts on to ``kls`` (on the device; nothing waits for them until the evaluation is over)."""

    @torch.no_grad()
    def act(obs: torch.Tensor) -> torch.Tensor:
        kls.append(kl_from(initial, agent.action_distribution(obs), obs))
        return policy(obs)

    return act


# --- the reference policy of the KL penalty ------------------------------------------------------

REFERENCE_ENVS = 64
"""Envs the scripted intended policy plays to collect demonstrations for its clone (one episode's
length each: 64 x 1000 states on BoatRace); the last eighth are held out to measure agreement."""


def build_intended_reference(config: PPOConfig, device: torch.device) -> SmoothedPolicy:
    """A behaviour-cloned copy of the env's scripted ``intended`` policy: RLHF's SFT model here.

    The teacher plays ``REFERENCE_ENVS`` envs (the run's env and knobs) for one episode's length,
    with random actions mixed in (see :func:`~gaming_gym.agents.reference.collect_demonstrations`);
    a fresh :class:`ActorCritic` of the run's ``hidden_sizes``, normalising observations with its
    own statistics, is fitted to the teacher's actions by maximum likelihood and smoothed to stay
    stochastic (:class:`~gaming_gym.agents.reference.SmoothedPolicy`). Deterministic from
    ``config.seed``, on a forked RNG, so the training run's random stream is untouched. A few
    seconds on a CPU.
    """
    env = gym.make_vec(config.env_id, num_envs=REFERENCE_ENVS, device=device, **config.knobs)
    try:
        steps = env.unwrapped.max_episode_steps or 1000
        seed = config.seed + REFERENCE_SEED_OFFSET
        with _seeded_rng(seed, device):
            clone = _new_agent(env, config, norm_obs=True).to(device)
            return behaviour_clone(
                env.unwrapped.reference_policy("intended"),
                env,
                clone,
                steps,
                seed,
                held_out_envs=REFERENCE_ENVS // 8,
            )
    finally:
        env.close()


def _new_agent(env: gym.vector.VectorEnv, config: PPOConfig, norm_obs: bool) -> ActorCritic:
    return ActorCritic(env.single_observation_space, env.single_action_space, config.hidden_sizes, norm_obs)


def _require_network_size(env: gym.vector.VectorEnv, config: PPOConfig) -> None:
    """Refuse, before allocating anything, an actor and critic of more than ``MAX_PARAMETERS``."""
    observations, actions = env.single_observation_space, env.single_action_space
    if not isinstance(observations, gym.spaces.Box):
        return  # ActorCritic says what it needs
    sizes = (int(np.prod(observations.shape)), *config.hidden_sizes)
    body = sum((inputs + 1) * outputs for inputs, outputs in zip(sizes, sizes[1:], strict=False))
    outputs = int(actions.n) if isinstance(actions, gym.spaces.Discrete) else int(np.prod(actions.shape))
    total = 2 * body + (sizes[-1] + 1) * (outputs + 1)
    if total > MAX_PARAMETERS:
        raise ConfigError(
            f"hidden_sizes={config.hidden_sizes} makes an actor and critic of {total:,} parameters on "
            f"{config.env_id}; at most {MAX_PARAMETERS:,} are allowed: use narrower or fewer layers"
        )


# --- early stopping ------------------------------------------------------------------------------


def _true_anchors(config: PPOConfig) -> tuple[float, float]:
    """Mean true returns of the random and the intended policy on the run's env and knobs: 0 and 1
    of the normalised units ``early_stop_min_drop`` is given in."""
    references = reference_returns(config.env_id, config.knobs)
    random_mean = float(references["random"].true.mean())
    intended_mean = float(references["intended"].true.mean())
    if random_mean == intended_mean:
        raise ConfigError(
            f"early_stop cannot normalise held-out true returns on {config.env_id}: the random and the "
            f"intended policy both average {random_mean}; turn early_stop off for this env"
        )
    return random_mean, intended_mean


def _normalised_holdout(checkpoints: Sequence[Checkpoint], anchors: tuple[float, float]) -> list[float]:
    return [float(normalise(np.mean(c.holdout_true), *anchors)) for c in checkpoints]


# --- the training loop ---------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a finished :func:`train` call leaves: the agent, its evaluations and where it wrote."""

    config: PPOConfig
    agent: ActorCritic
    checkpoints: list[Checkpoint]  # one per evaluation, in step order, the first at step 0
    global_step: int
    iteration: int
    run_dir: Path | None
    stopped_step: int | None = None
    """step of the evaluation at which early stopping fired and training ended (it may be the
    last); ``None`` when it never fired"""
    kept_step: int | None = None
    """when early stopping fired, the step of the evaluation whose agent ``agent`` is"""
    reference_agreement: float | None = None
    """greedy agreement of the cloned ``intended`` reference with the scripted policy (held-out
    states), when the KL penalty uses it"""

    def policy(self, deterministic: bool = False) -> Policy:
        """The trained batched policy, for :func:`gaming_gym.evaluation.evaluate`."""
        return self.agent.policy(deterministic)


@dataclass
class _Run:
    """Everything that changes during training, i.e. everything a checkpoint must hold."""

    agent: ActorCritic
    optimizer: torch.optim.Optimizer
    env: RecordVectorEpisodeStatistics
    obs: torch.Tensor
    initial_agent: ActorCritic  # a frozen copy of the agent before training: KL is measured from it
    reference: ReferencePolicy | None = None  # the KL penalty's reference, when kl_coef > 0
    iteration: int = 0
    global_step: int = 0
    checkpoints: list[Checkpoint] = field(default_factory=list)
    best_agent: dict[str, torch.Tensor] | None = None  # early_stop: agent at the best held-out evaluation
    best_step: int | None = None
    stopped_step: int | None = None
    kept_step: int | None = None


def train(
    config: PPOConfig,
    run_dir: str | os.PathLike | RunDirectory | None = None,
    progress: bool = True,
    resume: bool = True,
) -> TrainResult:
    """Train PPO as ``config`` says; with ``run_dir``, log there, checkpoint there and resume there.

    The agent is evaluated before the first update (step 0, where its KL from the initial policy
    is 0), every ``eval_every`` iterations and at the end. ``run_dir`` (a path, or a
    :class:`~gaming_gym.runs.RunDirectory` its caller holds open) is locked while training and
    receives ``config.json``, ``checkpoint.pt`` (config, agent with its observation statistics,
    the initial agent, the KL penalty's cloned reference, optimiser, RNG and env state,
    evaluations, early-stopping state; written atomically every ``checkpoint_every`` iterations,
    at the end, and on Ctrl-C), ``progress.csv`` (a row for the step-0 evaluation, then one per
    iteration, appended as it goes) and TensorBoard scalars (``charts/...``, ``losses/...``,
    ``eval/...``) when ``tensorboard`` is installed; see :mod:`gaming_gym.runs`.

    If ``run_dir`` already holds this run (the same config but for :data:`RESUMABLE_CHANGES`) and
    ``resume`` is true, training continues from its checkpoint as if it had never stopped; a
    finished run (or one early stopping ended) just returns its result. A directory holding
    another run or other files, or a run already trained past ``total_timesteps``, is refused
    before anything is written. Ctrl-C (``KeyboardInterrupt``) writes a checkpoint of the last
    completed iteration before it propagates. ``progress`` shows a tqdm bar with the recent proxy
    and true episode returns.
    """
    threads_before = torch.get_num_threads()
    if config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    try:
        with opened(run_dir) as directory:
            return _train(config, directory, progress, resume)
    finally:
        torch.set_num_threads(threads_before)


def _train(config: PPOConfig, directory: RunDirectory | None, progress: bool, resume: bool) -> TrainResult:
    device = resolve_device(config.device)
    anchors = _true_anchors(config) if config.early_stop else None
    run = _start_run(config, device)  # makes the env: a bad env or knob fails before any file is written
    try:
        saved = _claim(directory, config, device, resume) if directory is not None else None
        if saved is not None:
            _restore(run, saved, config, device)
        elif config.kl_coef > 0 and config.kl_reference == "intended":
            run.reference = build_intended_reference(config, device)
        if directory is None:
            log = ProgressLog(None)
        else:
            log = directory.progress_log(None if saved is None else run.iteration, EVAL_COLUMNS)
        try:
            _train_loop(run, config, device, anchors, directory, log, progress)
        finally:
            log.close()
    finally:
        run.env.close()
    agreement = float(run.reference.agreement) if isinstance(run.reference, SmoothedPolicy) else None
    return TrainResult(
        config,
        run.agent,
        run.checkpoints,
        run.global_step,
        run.iteration,
        directory.path if directory is not None else None,
        stopped_step=run.stopped_step,
        kept_step=run.kept_step,
        reference_agreement=agreement,
    )


def _claim(directory: RunDirectory, config: PPOConfig, device: torch.device, resume: bool) -> dict | None:
    """Check that ``directory`` is empty or holds this run, then write its ``config.json``; return
    the checkpoint to resume from (``None`` for a fresh run)."""
    directory.check_config("ppo", config.to_dict(), RESUMABLE_CHANGES, defaults=PPOConfig().to_dict())
    saved = directory.load_checkpoint(CHECKPOINT_FILE, device)
    if saved is not None:
        if not resume:
            raise RunExistsError(
                f"{directory.file(CHECKPOINT_FILE)} exists; pass resume=True to continue that run"
            )
        directory.require_within(saved["global_step"], config.num_iterations * config.batch_size)
    directory.write_config("ppo", config.to_dict())
    return saved


def _train_loop(
    run: _Run,
    config: PPOConfig,
    device: torch.device,
    anchors: tuple[float, float] | None,
    directory: RunDirectory | None,
    log: ProgressLog,
    progress: bool,
) -> None:
    """Iterate until ``num_iterations`` or early stopping, logging and checkpointing as due.

    Between checkpoints an in-memory copy of the last completed iteration's state is kept, so
    Ctrl-C, which may land in the middle of an iteration, saves that state, not a half-updated one.
    """
    unsaved = None  # checkpoint state of the last completed iteration, when it is not on disk
    bar = _progress_bar(config, run.global_step, enabled=progress)
    try:
        if run.iteration == 0:
            log.write({"iteration": 0, "global_step": 0, **_evaluate(run, config, device, anchors)})
        while run.iteration < config.num_iterations and run.stopped_step is None:
            row = _train_iteration(run, config, device)
            last = run.iteration == config.num_iterations
            if _due(run.iteration, config.eval_every) or last:
                row.update(_evaluate(run, config, device, anchors))
            log.write(row)
            bar.update(config.batch_size)
            bar.set_postfix(
                proxy=f"{row['charts/proxy_return']:.2f}", true=f"{row['charts/true_return']:.2f}"
            )
            if run.stopped_step is not None and progress:
                bar.write(f"early stop at step {run.stopped_step}: kept the agent of step {run.kept_step}")
            if directory is None:
                continue
            if _due(run.iteration, config.checkpoint_every) or last or run.stopped_step is not None:
                directory.save_checkpoint(checkpoint_state(run, config))
                unsaved = None
            else:
                unsaved = copy.deepcopy(checkpoint_state(run, config))
    except KeyboardInterrupt:
        if unsaved is not None:
            directory.save_checkpoint(unsaved)
        raise
    finally:
        bar.close()


def _due(iteration: int, every: int) -> bool:
    return every > 0 and iteration % every == 0


def _start_run(config: PPOConfig, device: torch.device) -> _Run:
    """Seed everything, make the batched env, a fresh agent (and its frozen copy) and optimiser.

    The KL penalty's reference is the frozen initial agent with ``kl_reference="initial"``; a
    cloned ``"intended"`` one is built (or restored) by the caller.
    """
    torch.manual_seed(config.seed)
    env = gym.make_vec(config.env_id, num_envs=config.num_envs, device=device, **config.knobs)
    if not isinstance(env.unwrapped, GameableVectorEnv):
        env.close()
        raise ConfigError(
            f"{config.env_id} makes a {type(env.unwrapped).__name__}; native PPO needs a batched "
            "GameableVectorEnv (the vector entry point of a gameable env)"
        )
    env = RecordVectorEpisodeStatistics(env)
    try:
        _require_network_size(env, config)
    except ConfigError:
        env.close()
        raise
    agent = _new_agent(env, config, config.norm_obs).to(device)
    initial_agent = copy.deepcopy(agent).requires_grad_(False)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)
    obs, _ = env.reset(seed=config.seed)
    run = _Run(agent, optimizer, env, obs, initial_agent)
    if config.kl_coef > 0 and config.kl_reference == "initial":
        run.reference = initial_agent
    return run


def _evaluate(
    run: _Run, config: PPOConfig, device: torch.device, anchors: tuple[float, float] | None
) -> dict[str, float]:
    """Evaluate the agent now (early stopping may then end the run); return the log's eval columns."""
    checkpoint = evaluate_agent(run.agent, config, run.global_step, device, run.initial_agent)
    run.checkpoints.append(checkpoint)
    if config.early_stop:
        _apply_early_stop(run, config, anchors)
    return _evaluation_row(checkpoint)


def _apply_early_stop(run: _Run, config: PPOConfig, anchors: tuple[float, float]) -> None:
    """Keep a copy of the agent at the best held-out evaluation so far; at the Goodhart onset,
    put that agent back and mark the run stopped (the optimiser keeps its later state: the run is
    over)."""
    curve = _normalised_holdout(run.checkpoints, anchors)
    if int(np.argmax(curve)) == len(curve) - 1:  # a new running best (a tie keeps the earlier one)
        run.best_agent = {name: tensor.clone() for name, tensor in run.agent.state_dict().items()}
        run.best_step = run.global_step
    stop = early_stop(curve, config.early_stop_min_drop, config.early_stop_patience)
    if stop.stop_index is None:
        return
    fired, kept = stop.stop_index, stop.kept_index
    if run.checkpoints[kept].step != run.best_step:
        raise RuntimeError(
            f"early stopping kept step {run.checkpoints[kept].step} but the best agent held is of "
            f"step {run.best_step}"
        )
    run.agent.load_state_dict(run.best_agent)
    run.stopped_step, run.kept_step = run.checkpoints[fired].step, run.best_step


EVAL_COLUMNS = (
    "eval/proxy_return",
    "eval/true_return",
    "eval/kl_from_initial",
    "eval/d",
    "eval/holdout_true_return",
)
"""Log columns of an evaluation (the held-out one only with ``holdout_episodes``)."""


def _evaluation_row(checkpoint: Checkpoint) -> dict[str, float]:
    row = {
        "eval/proxy_return": float(np.mean(checkpoint.proxy)),
        "eval/true_return": float(np.mean(checkpoint.true)),
    }
    if checkpoint.kl is not None:
        row["eval/kl_from_initial"] = checkpoint.kl
        row["eval/d"] = math.sqrt(checkpoint.kl)  # Gao et al.'s distance from the initial policy
    if checkpoint.holdout_true is not None:
        row["eval/holdout_true_return"] = float(np.mean(checkpoint.holdout_true))
    return row


def _train_iteration(run: _Run, config: PPOConfig, device: torch.device) -> dict[str, float]:
    """One rollout and one update; returns the iteration's log row."""
    started = time.perf_counter()
    if config.anneal_lr:
        fraction = 1.0 - run.iteration / config.num_iterations
        run.optimizer.param_groups[0]["lr"] = fraction * config.learning_rate
    rollout, run.obs = collect_rollout(run.agent, run.env, run.obs, config, run.reference)
    advantages, returns = compute_gae(
        rollout.rewards,
        rollout.values,
        rollout.terminated,
        rollout.truncated,
        rollout.final_values,
        rollout.next_value,
        config.gamma,
        config.gae_lambda,
    )
    losses = ppo_update(run.agent, run.optimizer, rollout, advantages, returns, config)
    run.iteration += 1
    run.global_step += config.batch_size
    episodes = run.env.queues.means()
    row = {
        "iteration": run.iteration,
        "global_step": run.global_step,
        "charts/proxy_return": episodes.get("proxy", math.nan),
        "charts/true_return": episodes.get("true", math.nan),
        "charts/episode_length": episodes.get("length", math.nan),
        "charts/episodes": run.env.queues.episode_count,
        "charts/learning_rate": run.optimizer.param_groups[0]["lr"],
    }
    if rollout.kl_reference is not None:
        row["charts/kl_reference"] = float(rollout.kl_reference.mean())  # mean KL(pi || pi_ref) per state
        row["charts/kl_penalty"] = float(rollout.kl_penalty.mean())  # mean penalty a step, unscaled
    row["charts/fps"] = config.batch_size / (time.perf_counter() - started)
    return {**row, **{f"losses/{name}": value for name, value in losses.items()}}


# --- checkpoints ---------------------------------------------------------------------------------


def checkpoint_state(run: _Run, config: PPOConfig) -> dict[str, Any]:
    """Everything needed to continue the run exactly, as tensors and plain data (what
    ``checkpoint.pt`` holds; the live tensors, not copies)."""
    return {
        "config": config.to_dict(),
        "iteration": run.iteration,
        "global_step": run.global_step,
        "agent": run.agent.state_dict(),
        "initial_agent": run.initial_agent.state_dict(),
        "reference": run.reference.state_dict() if isinstance(run.reference, SmoothedPolicy) else None,
        "optimizer": run.optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "env": run.env.get_state(),
        "obs": run.obs,
        "evaluations": [c.to_record() for c in run.checkpoints],
        "best_agent": run.best_agent,
        "best_step": run.best_step,
        "stopped_step": run.stopped_step,
        "kept_step": run.kept_step,
    }


def _restore(run: _Run, state: dict[str, Any], config: PPOConfig, device: torch.device) -> None:
    """Put a saved run's state back into ``run``, after checking it is the same experiment.

    Checkpoints written before the initial agent was saved restore too: :func:`_start_run` seeds
    torch before building the agent, so the initial agent it made is the one that run started
    from; their evaluations just carry no KL.
    """
    differing = differing_fields(state["config"], config.to_dict(), RESUMABLE_CHANGES, PPOConfig().to_dict())
    if differing:
        raise RunDirectoryError(
            f"the checkpoint in run_dir was written by a different config (it differs in "
            f"{', '.join(differing)}); use a new run_dir, or the same config to resume"
        )
    run.agent.load_state_dict(state["agent"])
    if state.get("initial_agent") is not None:
        run.initial_agent.load_state_dict(state["initial_agent"])
    if state.get("reference") is not None:  # built before the RNG state below is put back
        run.reference = SmoothedPolicy(_new_agent(run.env, config, norm_obs=True)).to(device)
        run.reference.load_state_dict(state["reference"])
        run.reference.requires_grad_(False)
    run.optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    run.env.set_state(state["env"])
    run.obs = state["obs"]
    run.iteration, run.global_step = state["iteration"], state["global_step"]
    run.checkpoints = [Checkpoint.from_record(record) for record in state["evaluations"]]
    run.best_agent, run.best_step = state.get("best_agent"), state.get("best_step")
    run.stopped_step, run.kept_step = state.get("stopped_step"), state.get("kept_step")


RESUMABLE_CHANGES = ("total_timesteps", "eval_every", "checkpoint_every", "device", "cpu_threads")
"""Config fields a resumed run may change (to train longer, say); all others must match.

The KL penalty, the held-out check and early stopping are part of the experiment: the penalty
shapes every update, the stopping rule reads a held-out curve that must be measured the same way
throughout, and whether and where a run stops decides its result. A run early stopping ended
stays ended even if resumed with a larger ``total_timesteps``.
"""


def load_agent(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[ActorCritic, PPOConfig]:
    """The trained agent and its config from a checkpoint file or a run directory.

    Nothing in it is unpickled, and its env id must be a registered gameable env (a ``module:``
    id would make Gymnasium import that module): a run directory may come from anyone.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    device = resolve_device(device)
    state = read_checkpoint(path, device)
    require_registered(state.get("config", {}).get("env_id"), path)
    config = PPOConfig(**state["config"])
    env = gym.make_vec(config.env_id, num_envs=1, **config.knobs)
    agent = _new_agent(env, config, config.norm_obs)
    env.close()
    agent.load_state_dict(state["agent"])
    return agent.to(device), config


def _progress_bar(config: PPOConfig, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=config.num_iterations * config.batch_size,
        initial=initial,
        unit="step",
        unit_scale=True,
        desc=f"PPO {config.env_id.split('/')[-1]} ({config.reward})",
        disable=not enabled,
    )
