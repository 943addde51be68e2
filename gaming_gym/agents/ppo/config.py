"""What one PPO run depends on: :class:`PPOConfig`, its validation, and the per-env defaults."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from gaming_gym.agents.tuned import TUNED, TUNED_TRUE_REWARD, tuned_settings
from gaming_gym.errors import ConfigError

REWARDS = ("proxy", "true")
KL_REFERENCES = ("initial", "intended", "sft")
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
    reward_model: str | None = None
    """folder of a learned reward model (:mod:`gaming_gym.rlhf`) whose score replaces the env's
    proxy, in training and in evaluations (whose proxy returns are then the model's); ``None``
    uses the env's own proxy"""
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
    penalty acts much like an entropy bonus), ``"intended"`` (a behaviour-cloned copy of the env's
    scripted intended policy, the analogue of RLHF's SFT model; see ``agents/reference.py``) or
    ``"sft"`` (RLHF's set-up in full: a clone of the intended policy's noisy demonstrations, random
    actions and all, so it stays stochastic, and the policy *starts* as that clone, so the KL from
    the initial policy is the KL from the SFT model; built even when ``kl_coef`` is 0)"""
    holdout_episodes: int = 0
    """episodes of a held-out true-reward check at each evaluation, on other seeds than the
    evaluation episodes (``Evaluation.holdout_true``); 0 runs none"""
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
        if self.reward_model is not None and not isinstance(self.reward_model, str):
            raise ConfigError(
                f"reward_model must be a folder path (a str) or None, got {self.reward_model!r}"
            )
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


def require_network_size(observation_space: gym.Space, action_space: gym.Space, config: PPOConfig) -> None:
    """Refuse, before anything is allocated, an actor and critic of more than ``MAX_PARAMETERS``
    (counted as :class:`~gaming_gym.agents.ppo.networks.ActorCritic` builds them; both agents
    build that shape, so both call this)."""
    if not isinstance(observation_space, gym.spaces.Box):
        return  # ActorCritic says what it needs
    sizes = (int(np.prod(observation_space.shape)), *config.hidden_sizes)
    body = sum((inputs + 1) * outputs for inputs, outputs in zip(sizes, sizes[1:], strict=False))
    if isinstance(action_space, gym.spaces.Discrete):
        outputs = int(action_space.n)
    else:
        outputs = int(np.prod(action_space.shape))
    total = 2 * body + (sizes[-1] + 1) * (outputs + 1)
    if total > MAX_PARAMETERS:
        raise ConfigError(
            f"hidden_sizes={config.hidden_sizes} makes an actor and critic of {total:,} parameters on "
            f"{config.env_id}; at most {MAX_PARAMETERS:,} are allowed: use narrower or fewer layers"
        )
