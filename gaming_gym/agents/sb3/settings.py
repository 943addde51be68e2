"""Native PPO's settings for stable-baselines3: which it can honour, and how they translate."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from torch import nn

from gaming_gym.agents.ppo import EVAL_SEED_OFFSET, PPOConfig  # the episodes native PPO evaluates on
from gaming_gym.agents.sb3.vec_env import CLIP_OBS, OBS_EPSILON, ScaledReward
from gaming_gym.agents.tuned import tuned_settings
from gaming_gym.errors import ConfigError, ConfigTypeError
from gaming_gym.mitigations import Mitigation, get_mitigation

AGENT_FILE = "sb3_agent.pt"
"""SB3 run state as plain tensors and numbers (``torch.load(weights_only=True)``), never a pickle:
the agent's weights, observation statistics, optimiser state, step counts and evaluations."""
LEGACY_MODEL_FILE = "sb3_model.zip"
"""What older versions saved with ``PPO.save``; loading it would unpickle its contents, so it is refused."""
AGENT_FORMAT = "gaming_gym.sb3_agent/2"
"""Format 2 adds the observation statistics and the network widths; format 1 files still load."""
READABLE_FORMATS = ("gaming_gym.sb3_agent/1", AGENT_FORMAT)
RESUMABLE_CHANGES = ("total_timesteps", "eval_every", "checkpoint_every", "device", "cpu_threads")
"""Settings a resumed SB3 run may change; any other change is refused, as native PPO does."""

NATIVE_ONLY: dict[str, str] = {
    "target_kl": "SB3 stops within an epoch at 1.5 x target_kl, native PPO after an epoch at target_kl",
    "reward_model": "training against a learned reward model (gaming_gym.rlhf) is native PPO's",
    "start": "starting from a behaviour-cloned SFT model is native PPO's (the clone is its network)",
    "compile": "fusing the env's steps with torch.compile is native PPO's",
    "deploy_knobs": "evaluating on a deployment setting as well (the shift gap) is native PPO's",
}
"""Settings SB3 cannot honour, with why: a value other than ``PPOConfig``'s default is refused.
Mitigations are checked one by one (:func:`refuse_unsupported`): SB3 uses those whose hooks it
can call."""

SB3_NAMES = {
    "n_steps": "num_steps",
    "batch_size": "num_minibatches",
    "n_epochs": "update_epochs",
    "clip_range": "clip_coef",
    "clip_range_vf": "clip_vloss",
    "normalize_advantage": "norm_adv",
    "policy_kwargs": "hidden_sizes",
}
"""``stable_baselines3.PPO`` argument names and the settings that say the same here."""


def sb3_config(env_id: str, **overrides: Any) -> PPOConfig:
    """The settings of an SB3 run on ``env_id``: its tuned settings (:mod:`gaming_gym.agents.tuned`)
    with ``overrides`` on top, checked as native PPO checks them, in native PPO's vocabulary (the
    fields of :class:`~gaming_gym.agents.ppo.PPOConfig`); settings SB3 cannot honour
    (:data:`NATIVE_ONLY`) are refused with a :class:`ConfigError`."""
    fields = {field.name for field in dataclasses.fields(PPOConfig)} - {"env_id"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        hints = "".join(f"; {name} is {SB3_NAMES[name]} here" for name in unknown if name in SB3_NAMES)
        raise ConfigTypeError(
            f"the SB3 agent has no setting {', '.join(map(repr, unknown))}{hints}; it takes native "
            f"PPO's settings: {', '.join(sorted(fields - set(NATIVE_ONLY)))}"
        )
    try:
        config = PPOConfig(env_id=env_id, **tuned_settings(env_id, **overrides))
    except TypeError as error:  # a value of the wrong type, e.g. hidden_sizes=5
        raise ConfigTypeError(str(error)) from error
    refuse_unsupported(config)
    return config


SB3_HOOKS = ("prepare", "measure", "at_evaluation", "state", "load_state")
"""The mitigation hooks the SB3 agent calls; a mitigation overriding another cannot run under SB3
(its rollouts and updates are stable-baselines3's own)."""


def refuse_unsupported(config: PPOConfig) -> None:
    """A ConfigError, in one line, for a setting or mitigation SB3 cannot honour."""
    defaults = PPOConfig()
    for name, why in NATIVE_ONLY.items():
        if getattr(config, name) != getattr(defaults, name):
            raise ConfigError(
                f"the SB3 agent cannot honour {name}={getattr(config, name)!r} ({why}); leave it at "
                f"{getattr(defaults, name)!r} or train with --agent ppo"
            )
    for name in config.mitigations:
        cls = get_mitigation(name)
        hooks = [
            hook
            for hook in ("reward", "loss", "after_iteration")
            if getattr(cls, hook) is not getattr(Mitigation, hook)
        ]
        why = cls.sb3_unsupported or (
            f"it overrides {', '.join(hooks)}, hooks SB3 cannot call" if hooks else None
        )
        if why:
            raise ConfigError(f"the SB3 agent cannot use mitigation {name} ({why}); train with --agent ppo")


@dataclass(frozen=True)
class LinearSchedule:
    """Native PPO's annealed learning rate as an SB3 schedule.

    Native PPO sets the rate of iteration ``i`` (from 0) to ``learning_rate * (1 - i / n)`` for
    ``n`` iterations. SB3 calls a schedule with ``progress_remaining = 1 - steps / total`` at each
    update, *after* the update's rollout is counted (``steps = (i + 1) * rollout``), so one
    rollout's share is added back: the first update gets ``learning_rate``, the last
    ``learning_rate / n``. At the optimiser's construction (``progress_remaining = 1``) it is
    ``learning_rate`` too.
    """

    learning_rate: float
    rollout: int
    total: int

    def __call__(self, progress_remaining: float) -> float:
        return self.learning_rate * min(1.0, progress_remaining + self.rollout / self.total)


@dataclass(frozen=True)
class SB3Settings:
    """A :class:`~gaming_gym.agents.ppo.PPOConfig` translated for stable-baselines3 (:func:`translate`)."""

    ppo: dict[str, Any]
    """``stable_baselines3.PPO`` keyword arguments (all but ``policy``, ``env`` and ``device``)"""
    num_envs: int
    norm_obs: bool
    """wrap the env in ``VecNormalize`` (observations only)"""
    reward_scale: float
    """wrap the env in :class:`ScaledReward` when not 1"""
    total_timesteps: int
    """``total_timesteps`` rounded down to whole rollouts"""
    rollout: int
    """env steps per rollout, ``num_envs * n_steps``"""
    eval_every: int
    """timesteps between evaluations (``eval_every`` rollouts)"""
    eval_seed: int


def translate(config: PPOConfig) -> SB3Settings:
    """The ``stable_baselines3.PPO`` arguments and env wrappers that train as ``config`` says (the
    table in this module's docstring). ``config`` comes from :func:`sb3_config`, or is checked
    here the same way."""
    refuse_unsupported(config)
    rollout = config.batch_size
    total = config.num_iterations * rollout
    learning_rate: float | LinearSchedule = config.learning_rate
    if config.anneal_lr:
        learning_rate = LinearSchedule(config.learning_rate, rollout, total)
    ppo = {
        "n_steps": config.num_steps,
        "batch_size": config.minibatch_size,
        "n_epochs": config.update_epochs,
        "learning_rate": learning_rate,
        "gamma": config.gamma,
        "gae_lambda": config.gae_lambda,
        "clip_range": config.clip_coef,
        "clip_range_vf": config.clip_coef if config.clip_vloss else None,
        "normalize_advantage": config.norm_adv,
        "ent_coef": config.ent_coef,
        "vf_coef": config.vf_coef / 2,
        "max_grad_norm": config.max_grad_norm,
        "target_kl": None,
        "policy_kwargs": policy_kwargs(config.hidden_sizes),
        "seed": config.seed,
    }
    return SB3Settings(
        ppo=ppo,
        num_envs=config.num_envs,
        norm_obs=config.norm_obs,
        reward_scale=config.reward_scale,
        total_timesteps=total,
        rollout=rollout,
        eval_every=config.eval_every * rollout,
        eval_seed=config.seed + EVAL_SEED_OFFSET,
    )


def policy_kwargs(hidden_sizes: Sequence[int]) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` for native PPO's network: separate actor and critic MLPs of
    ``hidden_sizes`` with tanh activations (SB3's orthogonal init gives native's gains)."""
    return {"net_arch": {"pi": list(hidden_sizes), "vf": list(hidden_sizes)}, "activation_fn": nn.Tanh}


def wrap_env(venv: VecEnv, settings: SB3Settings) -> VecEnv:
    """``venv`` under the wrappers ``settings`` ask for: :class:`ScaledReward`, then ``VecNormalize``
    of the observations (statistics and clipping as native PPO's)."""
    if settings.reward_scale != 1.0:
        venv = ScaledReward(venv, settings.reward_scale)
    if settings.norm_obs:
        venv = VecNormalize(
            venv,
            norm_obs=True,
            norm_reward=False,
            clip_obs=CLIP_OBS,
            epsilon=OBS_EPSILON,
            gamma=settings.ppo["gamma"],
        )
    return venv


def build_model(venv: VecEnv, settings: SB3Settings, device: str | torch.device = "cpu") -> Any:
    """``stable_baselines3.PPO`` on ``venv`` (wrapped by :func:`wrap_env`) with ``settings``."""
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", wrap_env(venv, settings), device=device, **settings.ppo)
