"""Stable-baselines3's side of the batched envs: the ``VecEnv`` adapter, reward scaling,
observation statistics kept as plain tensors, and an SB3 model as a batched torch policy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

from gaming_gym.errors import ConfigError, ConfigTypeError
from gaming_gym.fronts import GameableVectorEnv
from gaming_gym.kernel import Policy
from gaming_gym.wrappers import RecordVectorEpisodeStatistics

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
        return to_numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_async(actions) must come before step_wait()")
        obs, proxy, terminated, truncated, info = self.env.step(torch.as_tensor(self._actions))
        self._actions = None
        proxy, true = to_numpy(proxy), to_numpy(info["true_reward"])
        terminated, truncated = to_numpy(terminated), to_numpy(truncated)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [
            {"proxy_reward": p, "true_reward": t} for p, t in zip(proxy.tolist(), true.tolist(), strict=True)
        ]
        if dones.any():
            final_obs = to_numpy(info["final_obs"])
            episode = {key: to_numpy(value) for key, value in info["episode"].items()}
            for index in np.flatnonzero(dones):
                infos[index].update(
                    self._episode_end(index, final_obs[index], bool(truncated[index]), episode)
                )
        rewards = proxy if self.reward == "proxy" else true
        return to_numpy(obs), rewards.astype(np.float32), dones, infos

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


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
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
        observations = to_numpy(obs)
        if normalise is not None:
            observations = normalise(observations)
        actions, _ = model.predict(observations, deterministic=deterministic)
        return torch.as_tensor(actions, device=obs.device)

    return act
