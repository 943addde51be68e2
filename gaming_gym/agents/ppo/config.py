"""What one PPO run depends on: :class:`PPOConfig`, its validation, and the per-env defaults."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from gaming_gym.agents.tuned import TUNED, TUNED_TRUE_REWARD, tuned_settings
from gaming_gym.errors import ConfigError
from gaming_gym.mitigations import checked_mitigations
from gaming_gym.mitigations.base import stacking_key as mitigation_stacking_key
from gaming_gym.registry import check_knobs

REWARDS = ("proxy", "true")
STARTS = ("scratch", "sft")
MAX_WIDTH = 16_384
"""Widest hidden layer ``PPOConfig.hidden_sizes`` accepts."""
MAX_THREADS = max(256, os.cpu_count() or 1)
"""Most torch CPU threads a run may ask for (torch crashes on far more than a machine can run)."""
MAX_SEED = 2**62
"""Largest seed: the offsets added for evaluation, held-out and clone episodes stay within the
64-bit seeds torch and the envs take."""
SEED_RANGE = f"an int from 0 to 2**62 ({MAX_SEED:,})"
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
    deploy_knobs: dict[str, Any] | None = None
    """knobs of a second, deployment setting (on top of ``knobs``) on which every evaluation also
    plays the policy, for the shift gap (``{"coin_placement": "random"}`` on CoinRun); None: none"""
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
    compile: bool = False
    """fuse each env step (training's and evaluations') and each rollout step of the agents with
    ``torch.compile``: on a CPU about twenty seconds of compiling per shape, then faster steps
    (BoatRace: 0.25 against 0.76 ms a step of 256 envs); meant for GPUs too, where every small
    operation costs a kernel launch. Needs a C++ compiler on a CPU; results agree with eager
    ones to float rounding"""
    cpu_threads: int | None = 1
    """torch CPU threads while training; one is fastest for these small networks and batches (more
    threads mostly wait on each other, badly so on a busy machine); ``None`` keeps torch's setting"""

    start: str = "scratch"
    """the policy training starts from: ``"scratch"`` (a freshly initialised network) or ``"sft"``
    (RLHF's set-up: a behaviour clone of the env's intended policy's noisy demonstrations, random
    actions and all, so it stays stochastic and starts well below the intended policy; see
    :mod:`~gaming_gym.agents.ppo.cloning`). The KL from the initial policy is then the KL from
    the SFT model"""
    mitigations: dict[str, dict[str, Any]] = field(default_factory=dict)
    """mitigations of Goodhart's law by name, each with its settings, applied in this order (see
    :mod:`gaming_gym.mitigations`), e.g. ``{"kl_reference": {"beta": 0.1, "reference": "intended"},
    "early_stopping": {"episodes": 8}}``; settings left out take their defaults, which the checked
    config fills in"""

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(self.hidden_sizes)
        if not isinstance(self.knobs, dict):
            raise ConfigError(f"PPOConfig.knobs must be a dict of knob settings, got {self.knobs!r}")
        self.knobs = dict(self.knobs)
        check_knobs(self.env_id, self.knobs)
        if self.deploy_knobs is not None:
            if not isinstance(self.deploy_knobs, dict) or not self.deploy_knobs:
                raise ConfigError(
                    "PPOConfig.deploy_knobs must be a non-empty dict of knobs or None, got "
                    f"{self.deploy_knobs!r}"
                )
            self.deploy_knobs = dict(self.deploy_knobs)
            check_knobs(self.env_id, {**self.knobs, **self.deploy_knobs})
        self.mitigations = checked_mitigations(self.mitigations)
        if self.reward not in REWARDS:
            raise ConfigError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.reward_model is not None and not isinstance(self.reward_model, str):
            raise ConfigError(
                f"reward_model must be a folder path (a str) or None, got {self.reward_model!r}"
            )
        if self.start not in STARTS:
            raise ConfigError(f"PPOConfig.start must be one of {STARTS}, got {self.start!r}")
        for name in ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs"):
            _require(name, getattr(self, name), lambda v: isinstance(v, int) and v >= 1, "a positive int")
        for name in ("anneal_lr", "norm_adv", "clip_vloss", "norm_obs", "eval_deterministic", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"PPOConfig.{name} must be true or false, got {getattr(self, name)!r}")
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
            lambda v: v is None or isinstance(v, int) and 1 <= v <= MAX_THREADS,
            f"None or an int from 1 to {MAX_THREADS}",
        )
        _require("seed", self.seed, lambda v: isinstance(v, int) and 0 <= v <= MAX_SEED, SEED_RANGE)
        _require(
            "target_kl",
            self.target_kl,
            lambda v: v is None or math.isfinite(v) and v > 0,
            "None or a finite number > 0",
        )
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

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> PPOConfig:
        """A config from its dict, as a run directory stores it (older versions' too)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in upgraded(saved).items() if name in fields})


LEGACY_MITIGATION_FIELDS = (
    "kl_coef",
    "kl_reference",
    "holdout_episodes",
    "early_stop",
    "early_stop_patience",
    "early_stop_min_drop",
)
"""Fields of configs written before mitigations were plug-ins (:func:`upgraded` reads them)."""


def as_today(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config dict as today's :class:`PPOConfig` would write it: :func:`upgraded`, with
    the defaults of fields it predates (what a resume compares against)."""
    defaults = {
        f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
        for f in dataclasses.fields(PPOConfig)
    }
    return {**defaults, **upgraded(saved)}


def upgraded(saved: dict[str, Any]) -> dict[str, Any]:
    """A config dict of an older version (mitigations as the fields of
    :data:`LEGACY_MITIGATION_FIELDS`) in today's shape; today's dicts come back as they are.

    ``kl_coef`` toward ``kl_reference`` "initial" became ``kl_initial``; toward "intended" or
    "sft", ``kl_reference`` (and "sft" also ``start = "sft"``, which it always implied);
    ``holdout_episodes`` with ``early_stop`` became ``early_stopping`` (``stop`` said whether it
    stopped the run or only measured the held-out check)."""
    if not any(name in saved for name in LEGACY_MITIGATION_FIELDS):
        return dict(saved)
    config = {name: value for name, value in saved.items() if name not in LEGACY_MITIGATION_FIELDS}
    mitigations: dict[str, dict[str, Any]] = {}
    coef, reference = saved.get("kl_coef", 0.0), saved.get("kl_reference", "initial")
    if coef > 0:
        if reference == "initial":
            mitigations["kl_initial"] = {"beta": coef}
        else:
            mitigations["kl_reference"] = {"beta": coef, "reference": reference}
    if reference == "sft":
        config["start"] = "sft"
    if saved.get("holdout_episodes", 0) > 0:
        mitigations["early_stopping"] = {
            "episodes": saved["holdout_episodes"],
            "patience": saved.get("early_stop_patience", 2),
            "min_drop": saved.get("early_stop_min_drop", 0.1),
            "stop": bool(saved.get("early_stop", False)),
        }
    config["mitigations"] = mitigations
    return config


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


def training_defaults(env_id: str) -> str:
    """What ``gaming-gym train`` uses for ``env_id`` unless told otherwise, on one line."""
    c = default_config(env_id)
    return (
        f"--steps {c.total_timesteps:,} --num-envs {c.num_envs}, num_steps {c.num_steps}, eval_every "
        f"{c.eval_every}, eval_episodes {c.eval_episodes}, learning_rate {c.learning_rate:g}, "
        f"hidden_sizes {c.hidden_sizes}"
    )


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


# --- which configs can train as one stack ------------------------------------------------------

PER_AGENT_SETTINGS = (
    "seed",
    "learning_rate",
    "ent_coef",
    "vf_coef",
    "clip_coef",
    "max_grad_norm",
    "gamma",
    "gae_lambda",
    "reward_scale",
    "target_kl",
)
"""Settings in which stacked agents may differ: none changes a tensor's shape or the env (nor
do the ``per_agent`` settings of each mitigation, a KL coefficient say)."""
ANY_SETTINGS = ("checkpoint_every", "cpu_threads")
"""Settings that do not shape a run's result; the first agent's serve the stack."""


def stacking_key(config: PPOConfig) -> str:
    """Configs with the same key can train stacked: equal in every setting not per agent."""
    shared = {
        name: value
        for name, value in config.to_dict().items()
        if name not in (*PER_AGENT_SETTINGS, *ANY_SETTINGS, "mitigations")
    }
    shared["mitigations"] = mitigation_stacking_key(config.mitigations)
    return repr(sorted(shared.items()))


def require_stackable(configs: list[PPOConfig]) -> None:
    """Configs that can train as one stack, or a ConfigError naming what keeps them apart."""
    if not configs:
        raise ConfigError("a stack needs at least one config")
    if len({stacking_key(config) for config in configs}) > 1:
        first = configs[0].to_dict()
        differing = sorted(
            {
                name
                for config in configs[1:]
                for name, value in config.to_dict().items()
                if name not in (*PER_AGENT_SETTINGS, *ANY_SETTINGS) and value != first[name]
            }
            or {"mitigations (in a setting that is not per agent)"}
        )
        raise ConfigError(
            f"stacked runs may differ only in {', '.join(PER_AGENT_SETTINGS)} and their mitigations' "
            f"per-agent settings; these differ in {', '.join(differing)}"
        )
    if len({repr(sorted(config.to_dict().items())) for config in configs}) < len(configs):
        raise ConfigError("two stacked runs have the same config: that is one run twice")
