"""The stable-baselines3 path: train SB3 agents on batched gameable envs and score them the same way.

Needs the optional extra: ``pip install 'gaming_gym[sb3]'``.

* :class:`SB3VecEnv` adapts a batched :class:`~gaming_gym.core.GameableVectorEnv` (torch, on its
  device) to SB3's ``VecEnv`` (numpy): ``dones`` joins terminated and truncated, an ended
  episode's last observation is in ``info["terminal_observation"]``, a time-limit end is flagged by
  ``info["TimeLimit.truncated"]``, and ``info["episode"]`` carries the episode's return and length
  (as SB3's ``Monitor`` writes them) and its true return as ``"true_r"``. So SB3 PPO trains on
  thousands of envs stepped in one call. Plain ``gymnasium.make`` envs work with SB3 as usual.
* :class:`GoodhartCallback` logs the true return next to SB3's episode reward and evaluates the
  model periodically into :class:`gaming_gym.metrics.Evaluation` records for the Goodhart metric.
* :func:`sb3_config`, :func:`translate` and :func:`train_sb3` run SB3 PPO like for like with the
  native PPO (:mod:`gaming_gym.agents.ppo`): the same settings, in the same vocabulary (the fields
  of :class:`~gaming_gym.agents.ppo.PPOConfig`), tuned per env in :mod:`gaming_gym.agents.tuned`.

Example::

    from gaming_gym.agents.sb3 import sb3_config, train_sb3

    result = train_sb3(sb3_config("GamingGym/BoatRace-v1", seed=0), run_dir="runs/boat-sb3")
    result.checkpoints  # one Evaluation(step, proxy, true) per evaluation

**How the settings translate** (:func:`translate`; a setting not named keeps its meaning):

=====================================  ===================================================="""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

try:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize
except ImportError as error:  # an optional extra
    from gaming_gym.errors import MissingDependencyError

    raise MissingDependencyError(
        "gaming_gym.agents.sb3 needs stable-baselines3; install it with "
        "pip install 'gaming_gym[sb3]' (or pip install stable-baselines3)"
    ) from error

from gaming_gym.agents.ppo import PPOConfig
from gaming_gym.agents.ppo.config import require_network_size
from gaming_gym.agents.tuned import tuned_settings
from gaming_gym.core import GameableVectorEnv, Policy, resolve_device
from gaming_gym.errors import ConfigError, ConfigTypeError, RunDirectoryError, RunNotFoundError
from gaming_gym.evaluation import evaluate
from gaming_gym.metrics import Evaluation
from gaming_gym.runs import (
    EVALUATIONS_FILE,
    LEGACY_SB3_MODEL_FILE,
    SB3_AGENT_FILE,
    RunDirectory,
    opened,
    read_checkpoint,
    read_evaluations,
    require_registered,
)
from gaming_gym.wrappers import EpisodeQueues, RecordVectorEpisodeStatistics

REWARDS = ("proxy", "true")


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over one batched gameable env: numpy at the boundary, torch inside.

    Args:
        env: the batched env (``gymnasium.make_vec(env_id, num_envs=N, ...)``); it autoresets in
            the same step, which is exactly SB3's convention.
        reward: what SB3 sees as the reward: ``"proxy"`` (the env's reward) or ``"true"``
            (``info["true_reward"]``, for the intended baseline).
    """

    def __init__(self, env: gym.vector.VectorEnv, reward: str = "proxy"):
        if not isinstance(env.unwrapped, GameableVectorEnv):
            raise ConfigTypeError(
                f"SB3VecEnv adapts a batched gameable env (gymnasium.make_vec of a GamingGym id), got "
                f"{type(env.unwrapped).__name__}; for a single gymnasium env use SB3's DummyVecEnv"
            )
        if reward not in REWARDS:
            raise ConfigError(f"reward must be one of {REWARDS}, got {reward!r}")
        self.env = (
            env if isinstance(env, RecordVectorEpisodeStatistics) else RecordVectorEpisodeStatistics(env)
        )
        self.reward = reward
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self.render_mode = env.render_mode
        self._actions: np.ndarray | None = None
        self._started = time.time()

    def reset(self) -> np.ndarray:
        """Reset every env; seeded by the first of the seeds set with ``seed()`` (one generator
        drives the whole batch, so the batch takes one seed)."""
        obs, _ = self.env.reset(seed=self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return _to_numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_async(actions) must come before step_wait()")
        obs, proxy, terminated, truncated, info = self.env.step(torch.as_tensor(self._actions))
        self._actions = None
        proxy, true = _to_numpy(proxy), _to_numpy(info["true_reward"])
        terminated, truncated = _to_numpy(terminated), _to_numpy(truncated)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [
            {"proxy_reward": p, "true_reward": t} for p, t in zip(proxy.tolist(), true.tolist(), strict=True)
        ]
        if dones.any():
            final_obs = _to_numpy(info["final_obs"])
            episode = {key: _to_numpy(value) for key, value in info["episode"].items()}
            for index in np.flatnonzero(dones):
                infos[index].update(
                    self._episode_end(index, final_obs[index], bool(truncated[index]), episode)
                )
        rewards = proxy if self.reward == "proxy" else true
        return _to_numpy(obs), rewards.astype(np.float32), dones, infos

    def _episode_end(
        self, index: int, final_obs: np.ndarray, truncated: bool, episode: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        """The SB3 info entries of an episode that just ended (returns recorded by the wrapper)."""
        proxy_return, true_return = float(episode["r"][index]), float(episode["true"][index])
        return {
            "terminal_observation": final_obs,
            "TimeLimit.truncated": truncated,
            "episode": {
                "r": proxy_return if self.reward == "proxy" else true_return,
                "l": int(episode["l"][index]),
                "t": round(time.time() - self._started, 6),
                "proxy_r": proxy_return,
                "true_r": true_return,
            },
        }

    def close(self) -> None:
        self.env.close()

    # SB3's per-env attribute access; the batch shares one set of attributes and methods.
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.env.unwrapped, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        self._require_all(indices, f"set {attr_name!r}")
        setattr(self.env.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        self._require_all(indices, f"call {method_name!r}")
        result = getattr(self.env.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result] * self.num_envs

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _require_all(self, indices, what: str) -> None:
        if list(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ConfigError(f"cannot {what} for some envs only: the batched env shares it across all")


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def make_sb3_vec_env(
    env_id: str,
    num_envs: int = 16,
    seed: int | None = None,
    reward: str = "proxy",
    device: str | torch.device = "cpu",
    **knobs: Any,
) -> SB3VecEnv:
    """``gymnasium.make_vec(env_id, num_envs, device, **knobs)`` adapted for SB3, seeded if asked."""
    vec_env = SB3VecEnv(gym.make_vec(env_id, num_envs=num_envs, device=device, **knobs), reward=reward)
    if seed is not None:
        vec_env.seed(seed)
    return vec_env


class ScaledReward(VecEnvWrapper):
    """Multiply the rewards SB3 learns from by ``scale`` (native PPO's ``reward_scale``); the
    returns in ``info["episode"]``, which SB3 and :class:`GoodhartCallback` log, stay unscaled."""

    def __init__(self, venv: VecEnv, scale: float):
        super().__init__(venv)
        self.scale = scale

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        return obs, (rewards * self.scale).astype(np.float32), dones, infos


CLIP_OBS = 10.0
"""Normalised observations are clipped to +-10, by native PPO and by ``VecNormalize``."""
OBS_EPSILON = 1e-8
"""Added to the variance before its square root, by native PPO and by ``VecNormalize``."""


class ObservationNormaliser:
    """Observations normalised by running statistics exactly as ``VecNormalize.normalize_obs``
    does, for a policy that acts outside the training env (evaluation, a loaded run).

    ``rms`` is read at each call: built on a live ``VecNormalize``'s statistics it follows them.
    Its state is plain tensors (:meth:`state`, :meth:`from_state`): no pickle, unlike
    ``VecNormalize.save``.
    """

    def __init__(self, rms: RunningMeanStd, clip_obs: float = CLIP_OBS, epsilon: float = OBS_EPSILON):
        self.rms, self.clip_obs, self.epsilon = rms, clip_obs, epsilon

    @classmethod
    def of(cls, vec_normalize: VecNormalize) -> ObservationNormaliser:
        return cls(vec_normalize.obs_rms, vec_normalize.clip_obs, vec_normalize.epsilon)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        normalised = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.epsilon)
        return np.clip(normalised, -self.clip_obs, self.clip_obs).astype(np.float32)

    def state(self) -> dict[str, Any]:
        """The statistics as float64 tensors and plain numbers (copies)."""
        return {
            "mean": torch.from_numpy(np.array(self.rms.mean, dtype=np.float64)),
            "var": torch.from_numpy(np.array(self.rms.var, dtype=np.float64)),
            "count": float(self.rms.count),
            "clip_obs": float(self.clip_obs),
            "epsilon": float(self.epsilon),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ObservationNormaliser:
        rms = RunningMeanStd(shape=tuple(state["mean"].shape))
        load_statistics(rms, state)
        return cls(rms, state["clip_obs"], state["epsilon"])


def load_statistics(rms: RunningMeanStd, state: dict[str, Any]) -> None:
    """Put saved statistics (:meth:`ObservationNormaliser.state`) into ``rms``, in place."""
    rms.mean = state["mean"].detach().cpu().numpy().astype(np.float64)
    rms.var = state["var"].detach().cpu().numpy().astype(np.float64)
    rms.count = float(state["count"])


def sb3_policy(
    model: BaseAlgorithm | Any,
    deterministic: bool = False,
    normalise: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Policy:
    """An SB3 model (or its policy) as a batched torch policy, for :func:`gaming_gym.evaluation.evaluate`.

    ``normalise`` maps raw observations to what the model was trained on (an
    :class:`ObservationNormaliser` when it trained under ``VecNormalize``); ``model.predict``
    alone does not normalise.
    """

    def act(obs: torch.Tensor) -> torch.Tensor:
        observations = _to_numpy(obs)
        if normalise is not None:
            observations = normalise(observations)
        actions, _ = model.predict(observations, deterministic=deterministic)
        return torch.as_tensor(actions, device=obs.device)

    return act


class GoodhartCallback(BaseCallback):
    """Log true returns beside SB3's episode rewards and record evaluations for the Goodhart metric.

    At each rollout's end it records ``rollout/ep_true_rew_mean`` and ``rollout/ep_proxy_rew_mean``
    (means over the last ``window`` episodes, as SB3's own ``ep_rew_mean``). At the start of the
    first rollout after every ``eval_every`` timesteps (so after the update of the rollout that
    reached them, as native PPO evaluates), at the start of training if ``evaluate_at_start``, and
    at the end of training it runs the model on ``eval_episodes`` fresh episodes of ``env_id`` and
    appends a :class:`gaming_gym.metrics.Evaluation` to :attr:`checkpoints`. A model trained
    under ``VecNormalize`` is evaluated on observations normalised by its current statistics.
    :attr:`episodes` (a :class:`gaming_gym.wrappers.EpisodeQueues`) holds the recent episodes.

    Args:
        env_id, knobs: the env to evaluate on (the one being trained on).
        eval_every: timesteps between evaluations; 0 evaluates only when training ends.
        eval_episodes, seed, deterministic: passed to :func:`gaming_gym.evaluation.evaluate`.
        window: episodes averaged in the logged means.
        progress: show a tqdm progress bar with the recent proxy and true returns.
        evaluate_at_start: also evaluate the untrained model (at step 0), as native PPO does.
    """

    def __init__(
        self,
        env_id: str,
        knobs: dict[str, Any] | None = None,
        eval_every: int = 0,
        eval_episodes: int = 16,
        seed: int = 1_000_003,
        deterministic: bool = False,
        window: int = 100,
        progress: bool = False,
        verbose: int = 0,
        evaluate_at_start: bool = False,
    ):
        super().__init__(verbose)
        self.progress = progress
        self._bar = None
        if eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0 timesteps (0 = only at the end), got {eval_every}")
        self.env_id = env_id
        self.knobs = dict(knobs or {})
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.seed = seed
        self.deterministic = deterministic
        self.evaluate_at_start = evaluate_at_start
        self.episodes = EpisodeQueues(window)  # the recent episodes' proxy and true returns
        self.checkpoints: list[Evaluation] = []
        self.on_evaluation: Callable[[], None] | None = None
        self.before_rollout: Callable[[], None] | None = None
        """called as each rollout starts, when the model is whole (updated on the rollout before)"""
        self._next_eval = eval_every

    def resume_at(self, num_timesteps: int, checkpoints: list[Evaluation]) -> None:
        """Continue a run saved after ``num_timesteps`` steps with its evaluations so far: the
        next evaluation is due at the first multiple of ``eval_every`` past it."""
        self.checkpoints = list(checkpoints)
        if self.eval_every:
            self._next_eval = (num_timesteps // self.eval_every + 1) * self.eval_every

    def _on_training_start(self) -> None:
        if self.progress:
            from tqdm.auto import tqdm

            total = self.locals.get("total_timesteps", self.model._total_timesteps)
            self._bar = tqdm(
                total=total, initial=self.num_timesteps, unit="step", unit_scale=True, desc="SB3 PPO"
            )
        if self.evaluate_at_start and self.num_timesteps == 0 and not self.checkpoints:
            self._evaluate()

    def _on_rollout_start(self) -> None:
        self.num_timesteps = self.model.num_timesteps
        if self.eval_every and self.num_timesteps >= self._next_eval:
            self._evaluate()
            self._next_eval = (self.num_timesteps // self.eval_every + 1) * self.eval_every
        if self.before_rollout is not None:
            self.before_rollout()

    def _on_step(self) -> bool:
        if self._bar is not None:
            self._bar.update(self.training_env.num_envs)
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is not None and "true_r" in episode:
                self.episodes.extend([episode["proxy_r"]], [episode["true_r"]], [episode["l"]])
        return True

    def _on_rollout_end(self) -> None:
        means = self.episodes.means()
        if not means:
            return
        if self._bar is not None:
            self._bar.set_postfix(proxy=f"{means['proxy']:.2f}", true=f"{means['true']:.2f}")
        self.logger.record("rollout/ep_proxy_rew_mean", means["proxy"])
        self.logger.record("rollout/ep_true_rew_mean", means["true"])

    def _on_training_end(self) -> None:
        self.num_timesteps = self.model.num_timesteps
        if not self.checkpoints or self.checkpoints[-1].step != self.num_timesteps:
            self._evaluate()
        if self._bar is not None:
            self._bar.close()

    def policy(self) -> Policy:
        """The model as it is now, normalising observations as its training env does."""
        vec_normalize = self.model.get_vec_normalize_env()
        normalise = None if vec_normalize is None else ObservationNormaliser.of(vec_normalize)
        return sb3_policy(self.model, self.deterministic, normalise)

    def _evaluate(self) -> None:
        """Evaluate on a forked, seeded torch RNG, so evaluating leaves the training run unchanged."""
        with _seeded_rng(self.seed, self.model.device):
            returns = evaluate(
                self.policy(), self.env_id, episodes=self.eval_episodes, seed=self.seed, knobs=self.knobs
            )
        self.checkpoints.append(Evaluation.from_returns(self.num_timesteps, returns))
        self.logger.record("eval/proxy_return", float(returns.proxy.mean()))
        self.logger.record("eval/true_return", float(returns.true.mean()))
        if self.on_evaluation is not None:
            self.on_evaluation()


@contextlib.contextmanager
def _seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """The block on a forked torch RNG (the model's CUDA one too) seeded with ``seed``."""
    with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):
        torch.manual_seed(seed)
        yield


# --- one SB3 PPO run, like for like with native PPO -----------------------------------------------

AGENT_FILE = SB3_AGENT_FILE
"""SB3 run state as plain tensors and numbers (``torch.load(weights_only=True)``), never a pickle."""
LEGACY_MODEL_FILE = LEGACY_SB3_MODEL_FILE
"""What older versions saved with ``PPO.save``; loading it would unpickle its contents, so it is refused."""
AGENT_FORMAT = "gaming_gym.sb3_agent/2"
"""Format 2 adds the observation statistics and the network widths; format 1 files still load."""
READABLE_FORMATS = ("gaming_gym.sb3_agent/1", AGENT_FORMAT)
RESUMABLE_CHANGES = ("total_timesteps", "eval_every", "checkpoint_every", "device", "cpu_threads")
"""Settings a resumed SB3 run may change; any other change is refused, as native PPO does."""
EVAL_SEED_OFFSET = 1_000_003
"""Evaluation episodes are seeded ``seed + EVAL_SEED_OFFSET``, the episodes native PPO evaluates on."""

NATIVE_ONLY: dict[str, str] = {
    "target_kl": "SB3 stops within an epoch at 1.5 x target_kl, native PPO after an epoch at target_kl",
    "kl_coef": "the KL penalty toward a reference policy is native PPO's",
    "kl_reference": "the KL penalty toward a reference policy is native PPO's",
    "reward_model": "training against a learned reward model (gaming_gym.rlhf) is native PPO's",
    "holdout_episodes": "the held-out true-reward check is native PPO's",
    "early_stop": "early stopping at the Goodhart onset is native PPO's",
    "early_stop_patience": "early stopping at the Goodhart onset is native PPO's",
    "early_stop_min_drop": "early stopping at the Goodhart onset is native PPO's",
}
"""Settings SB3 cannot honour, with why: a value other than ``PPOConfig``'s default is refused."""

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
    _refuse_native_only(config)
    return config


def _refuse_native_only(config: PPOConfig) -> None:
    defaults = PPOConfig()
    for name, why in NATIVE_ONLY.items():
        if getattr(config, name) != getattr(defaults, name):
            raise ConfigError(
                f"the SB3 agent cannot honour {name}={getattr(config, name)!r} ({why}); leave it at "
                f"{getattr(defaults, name)!r} or train with --agent ppo"
            )


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
    _refuse_native_only(config)
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


@dataclass
class SB3Result:
    """What :func:`train_sb3` leaves: the model, the settings it ran with and its evaluations."""

    model: Any  # stable_baselines3.PPO
    config: PPOConfig
    checkpoints: list[Evaluation]
    run_dir: Path | None
    normaliser: ObservationNormaliser | None = None
    """the model's observation statistics (``None`` without ``norm_obs``)"""

    def policy(self, deterministic: bool = False) -> Policy:
        """The trained batched policy on raw observations, for :func:`gaming_gym.evaluation.evaluate`."""
        return sb3_policy(self.model, deterministic, self.normaliser)


def run_record(config: PPOConfig) -> dict[str, Any]:
    """What ``config.json`` records of an SB3 run: its settings, less those SB3 cannot honour."""
    return {name: value for name, value in config.to_dict().items() if name not in NATIVE_ONLY}


def train_sb3(
    config: PPOConfig,
    run_dir: str | os.PathLike | RunDirectory | None = None,
    progress: bool = True,
) -> SB3Result:
    """Train SB3 PPO as ``config`` says (see :func:`sb3_config`, :func:`translate`) on the batched
    env through :class:`SB3VecEnv`, evaluating for the Goodhart metric as native PPO does.

    Training runs ``total_timesteps`` rounded down to whole rollouts. With ``run_dir`` (a path, or
    a :class:`~gaming_gym.runs.RunDirectory` its caller holds open), the run directory is locked
    while training and receives ``config.json`` and :data:`AGENT_FILE`: the agent's weights,
    observation statistics, optimiser state, step counts and evaluations so far, as plain tensors,
    written atomically at the first rollout start after each evaluation and every
    ``checkpoint_every`` rollouts, at the end, and on Ctrl-C (the state of the last whole rollout).
    Calling again with the same ``run_dir`` builds a fresh model from these settings and loads that
    state into it, to resume; a directory holding another run (other settings but for
    :data:`RESUMABLE_CHANGES`), other files, or a run already trained past ``total_timesteps`` is
    refused before anything is written.
    """
    settings = translate(config)
    torch_device = resolve_device(config.device)
    threads_before = torch.get_num_threads()
    if config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    env = make_sb3_vec_env(
        config.env_id, config.num_envs, seed=config.seed, reward=config.reward, **config.knobs
    )
    try:
        require_network_size(env.observation_space, env.action_space, config)
        callback = GoodhartCallback(
            config.env_id,
            config.knobs,
            settings.eval_every,
            config.eval_episodes,
            seed=settings.eval_seed,
            deterministic=config.eval_deterministic,
            progress=progress,
            evaluate_at_start=True,
        )
        model = build_model(env, settings, torch_device)
        with opened(run_dir) as directory:
            saver = None if directory is None else _RunSaver(directory, model, callback, config, settings)
            remaining = settings.total_timesteps - model.num_timesteps
            if remaining > 0:
                try:
                    model.learn(remaining, callback=callback, reset_num_timesteps=False)
                except KeyboardInterrupt:
                    if saver is not None:
                        saver.save_unsaved()
                    raise
                if saver is not None:
                    saver.save()
    finally:
        env.close()
        torch.set_num_threads(threads_before)
    vec_normalize = model.get_vec_normalize_env()
    normaliser = None if vec_normalize is None else ObservationNormaliser.of(vec_normalize)
    path = directory.path if directory is not None else None
    return SB3Result(model, config, callback.checkpoints, path, normaliser)


class _RunSaver:
    """Claims the run directory for an SB3 run (resuming what it holds) and saves the run there.

    The run is saved at rollout starts, where the model is whole (the update on the rollout before
    is done, the step count is a whole number of rollouts): after an evaluation and every
    ``checkpoint_every`` rollouts. In between, a copy of the state at the last rollout start is
    kept for Ctrl-C.
    """

    def __init__(
        self,
        directory: RunDirectory,
        model: Any,
        callback: GoodhartCallback,
        config: PPOConfig,
        settings: SB3Settings,
    ):
        self.directory, self.model, self.callback, self.config = directory, model, callback, config
        self.rollout = settings.rollout
        _refuse_legacy_model(directory.path)
        record = run_record(config)
        directory.check_config("sb3", record, RESUMABLE_CHANGES)
        state = directory.load_checkpoint(AGENT_FILE, model.device)
        if state is not None:
            state = _checked_agent_state(state, directory.file(AGENT_FILE))
            directory.require_within(state["num_timesteps"], settings.total_timesteps)
        directory.write_config("sb3", record)
        if state is not None:
            _restore_sb3_run(model, state)
            callback.resume_at(model.num_timesteps, self._evaluations(state))
        self.saved_step, self.saved_evaluations = model.num_timesteps, len(callback.checkpoints)
        self.unsaved: dict[str, Any] | None = None
        callback.before_rollout = self.before_rollout

    def _evaluations(self, state: dict[str, Any]) -> list[Evaluation]:
        """The evaluations saved with the agent (or, from an older version, in evaluations.json)."""
        if "evaluations" in state:
            return [Evaluation.from_record(record) for record in state["evaluations"]]
        return read_evaluations(self.directory.path) if self.directory.file(EVALUATIONS_FILE).exists() else []

    def before_rollout(self) -> None:
        if self.model.num_timesteps == self.saved_step:
            return
        every = self.config.checkpoint_every
        due = every > 0 and (self.model.num_timesteps // self.rollout) % every == 0
        if due or len(self.callback.checkpoints) > self.saved_evaluations:
            self.save()
        else:
            self.unsaved = copy.deepcopy(self._state())

    def save(self) -> None:
        self.directory.save_checkpoint(self._state(), AGENT_FILE)
        self.saved_step, self.saved_evaluations = self.model.num_timesteps, len(self.callback.checkpoints)
        self.unsaved = None

    def save_unsaved(self) -> None:
        if self.unsaved is not None:
            self.directory.save_checkpoint(self.unsaved, AGENT_FILE)

    def _state(self) -> dict[str, Any]:
        """The agent as plain tensors and numbers, with the evaluations so far."""
        model, config = self.model, self.config
        vec_normalize = model.get_vec_normalize_env()
        return {
            "format": AGENT_FORMAT,
            "env_id": config.env_id,
            "knobs": config.knobs,
            "hidden_sizes": list(config.hidden_sizes),
            "obs_rms": None if vec_normalize is None else ObservationNormaliser.of(vec_normalize).state(),
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(model._n_updates),
            "policy": model.policy.state_dict(),
            "optimizer": model.policy.optimizer.state_dict(),
            "evaluations": [c.to_record() for c in self.callback.checkpoints],
        }


def _refuse_legacy_model(run_dir: Path) -> None:
    """An old pickled ``sb3_model.zip`` is refused, whatever else the directory holds."""
    if (run_dir / LEGACY_MODEL_FILE).exists():
        raise RunDirectoryError(
            f"{run_dir} holds an SB3 model saved by an older gaming_gym ({LEGACY_MODEL_FILE}); loading "
            f"it would unpickle its contents, which can run arbitrary code, so it is refused: retrain "
            f"the run, or load it yourself with stable_baselines3.PPO.load if you trust its source"
        )


def _load_agent_state(run_dir: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The saved agent's state, read without unpickling anything (``weights_only=True``)."""
    _refuse_legacy_model(run_dir)
    path = run_dir / AGENT_FILE
    if not path.exists():
        raise RunNotFoundError(f"{run_dir} holds no {AGENT_FILE}: is it an SB3 run directory?")
    return _checked_agent_state(read_checkpoint(path, device), path)


def _checked_agent_state(state: dict[str, Any], path: Path) -> dict[str, Any]:
    if state.get("format") not in READABLE_FORMATS:
        raise RunDirectoryError(f"{path} is not a gaming_gym SB3 agent (format {AGENT_FORMAT})")
    return state


def _restore_sb3_run(model: Any, state: dict[str, Any]) -> None:
    """Put saved weights, observation statistics, optimiser state and step counts into a freshly
    built model."""
    vec_normalize = model.get_vec_normalize_env()
    if (vec_normalize is None) != (state.get("obs_rms") is None):
        raise RunDirectoryError("the saved SB3 agent does not fit this run's settings (norm_obs differs)")
    try:
        model.policy.load_state_dict(state["policy"])
        model.policy.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise RunDirectoryError(
            f"the saved SB3 agent does not fit this run's settings (policy or optimiser differ): {error}"
        ) from error
    if vec_normalize is not None:
        load_statistics(vec_normalize.obs_rms, state["obs_rms"])
    model.num_timesteps = state["num_timesteps"]
    model._n_updates = state["n_updates"]


def load_sb3_policy(run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
    """The batched policy of an SB3 run directory written by :func:`train_sb3`, on raw observations.

    The policy network is built afresh from the saved env id, knobs and network widths, the saved
    weights are loaded into it, and observations are normalised by the saved statistics (format 2;
    format 1 agents trained on raw observations): nothing is unpickled. The saved env id must be a
    registered gameable env (a ``module:`` id would make Gymnasium import that module).
    """
    from stable_baselines3.common.policies import ActorCriticPolicy

    state = _load_agent_state(Path(run_dir))
    require_registered(state["env_id"], Path(run_dir) / AGENT_FILE)
    env = gym.make_vec(state["env_id"], num_envs=1, **state["knobs"])
    if "hidden_sizes" in state:
        network = {**policy_kwargs(state["hidden_sizes"]), "use_sde": False}
    else:  # format 1
        network = {**state["policy_kwargs"], "use_sde": state["use_sde"]}
    policy = ActorCriticPolicy(
        env.single_observation_space, env.single_action_space, lr_schedule=lambda _: 0.0, **network
    )
    env.close()
    try:
        policy.load_state_dict(state["policy"])
    except RuntimeError as error:
        raise RunDirectoryError(
            f"{run_dir}: the saved SB3 weights do not fit the policy ({error})"
        ) from error
    policy.set_training_mode(False)
    obs_rms = state.get("obs_rms")
    return sb3_policy(
        policy, deterministic, None if obs_rms is None else ObservationNormaliser.from_state(obs_rms)
    )


__all__: Sequence[str] = (
    "GoodhartCallback",
    "LinearSchedule",
    "ObservationNormaliser",
    "SB3Result",
    "SB3Settings",
    "SB3VecEnv",
    "ScaledReward",
    "build_model",
    "load_sb3_policy",
    "make_sb3_vec_env",
    "sb3_config",
    "sb3_policy",
    "train_sb3",
    "translate",
)
