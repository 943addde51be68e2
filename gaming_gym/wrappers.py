"""Episode statistics that keep the proxy and the true return apart, for both fronts.

Like Gymnasium's ``RecordEpisodeStatistics``, but a gameable env has two returns per episode:
the proxy the agent is trained on and the hidden true objective. Both are summed from
``info["proxy_reward"]`` and ``info["true_reward"]`` (the contract's keys), never from the
``reward`` a wrapper may have rewritten, and reported when an episode ends:

* :class:`RecordEpisodeStatistics` (single env): ``info["episode"] = {"r": proxy return,
  "true": true return, "l": length, "t": seconds the episode took}`` at the step the episode ends
  ("r", "l", "t" as Gymnasium writes them, so stable-baselines3 logs the proxy as usual);
* :class:`RecordVectorEpisodeStatistics` (``GameableVectorEnv``): ``info["episode"] = {"r",
  "true", "l"}`` as tensors of shape ``(num_envs,)`` on the env's device, and the mask
  ``info["_episode"]`` of the envs whose episode ended, at every step where one ended.

Both keep the most recent ``buffer_length`` episodes in :class:`EpisodeQueues`, for progress bars.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import torch
from gymnasium.vector import AutoresetMode


class EpisodeQueues:
    """The proxy returns, true returns and lengths of the most recent finished episodes."""

    def __init__(self, buffer_length: int = 100):
        if buffer_length < 1:
            raise ValueError(f"buffer_length must be a positive int, got {buffer_length!r}")
        self.proxy: deque[float] = deque(maxlen=buffer_length)
        self.true: deque[float] = deque(maxlen=buffer_length)
        self.length: deque[int] = deque(maxlen=buffer_length)
        self.episode_count = 0

    def extend(self, proxy: Iterable[float], true: Iterable[float], length: Iterable[int]) -> None:
        proxy, true, length = list(proxy), list(true), list(length)
        self.proxy.extend(proxy)
        self.true.extend(true)
        self.length.extend(length)
        self.episode_count += len(proxy)

    def means(self) -> dict[str, float]:
        """Mean proxy return, true return and length of the recent episodes ({} before the first)."""
        if not self.proxy:
            return {}
        return {
            "proxy": sum(self.proxy) / len(self.proxy),
            "true": sum(self.true) / len(self.true),
            "length": sum(self.length) / len(self.length),
        }


def _require_contract_keys(info: dict[str, Any]) -> None:
    for key in ("proxy_reward", "true_reward"):
        if key not in info:
            raise KeyError(
                f"info lacks {key!r}: these statistics need a gameable env, whose step info carries "
                f"'proxy_reward' and 'true_reward' (see gaming_gym.check_gameable_env)"
            )


class RecordEpisodeStatistics(gym.Wrapper):
    """Record each episode's proxy return, true return, length and time in ``info["episode"]``.

    Attributes:
        queues: :class:`EpisodeQueues` of the last ``buffer_length`` episodes.
    """

    def __init__(self, env: gym.Env, buffer_length: int = 100):
        super().__init__(env)
        self.queues = EpisodeQueues(buffer_length)
        self._proxy_return = 0.0
        self._true_return = 0.0
        self._length = 0
        self._start_time = time.perf_counter()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._proxy_return, self._true_return, self._length = 0.0, 0.0, 0
        self._start_time = time.perf_counter()
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        _require_contract_keys(info)
        self._proxy_return += float(info["proxy_reward"])
        self._true_return += float(info["true_reward"])
        self._length += 1
        if terminated or truncated:
            if "episode" in info:
                raise ValueError(
                    "info already has an 'episode' entry: is another episode-statistics wrapper inside?"
                )
            info["episode"] = {
                "r": self._proxy_return,
                "true": self._true_return,
                "l": self._length,
                "t": round(time.perf_counter() - self._start_time, 6),
            }
            self.queues.extend([self._proxy_return], [self._true_return], [self._length])
        return obs, reward, terminated, truncated, info


class RecordVectorEpisodeStatistics(gym.vector.VectorWrapper):
    """Record the proxy return, true return and length of every episode of a batched gameable env.

    Returns are summed as float32 tensors on the env's device (as :func:`gaming_gym.evaluation.
    evaluate` sums them). Reading the finished episodes into :attr:`queues` copies a few numbers
    to the host at the steps where episodes end; the env's own autoreset already synchronises
    there. Needs ``AutoresetMode.SAME_STEP`` (as ``GameableVectorEnv`` has): the step that ends an
    episode carries its last reward.

    Attributes:
        queues: :class:`EpisodeQueues` of the last ``buffer_length`` episodes over all envs.
    """

    def __init__(self, env: gym.vector.VectorEnv, buffer_length: int = 100):
        super().__init__(env)
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"RecordVectorEpisodeStatistics needs an env with autoreset_mode SAME_STEP (as "
                f"GameableVectorEnv has), got {mode!r}"
            )
        self.queues = EpisodeQueues(buffer_length)
        self._proxy_return: torch.Tensor | None = None
        self._true_return: torch.Tensor | None = None
        self._length: torch.Tensor | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        device = obs.device if isinstance(obs, torch.Tensor) else torch.device("cpu")
        self._proxy_return = torch.zeros(self.num_envs, dtype=torch.float32, device=device)
        self._true_return = torch.zeros(self.num_envs, dtype=torch.float32, device=device)
        self._length = torch.zeros(self.num_envs, dtype=torch.long, device=device)
        return obs, info

    def get_state(self) -> dict[str, Any]:
        """The wrapped env's :meth:`~gaming_gym.core.GameableVectorEnv.get_state`, plus the
        in-flight episodes' running sums and the recent-episode queues (for exact resumption)."""
        if self._proxy_return is None:
            raise RuntimeError("Call reset() before get_state().")
        return {
            "env": self.env.get_state(),
            "running": [self._proxy_return.clone(), self._true_return.clone(), self._length.clone()],
            "recent": [list(self.queues.proxy), list(self.queues.true), list(self.queues.length)],
            "episode_count": self.queues.episode_count,
        }

    def set_state(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`get_state` (call ``reset`` first, as the wrapped env needs)."""
        self.env.set_state(saved["env"])
        self._proxy_return, self._true_return, self._length = (
            value.to(self._length.device) for value in saved["running"]
        )
        self.queues = EpisodeQueues(self.queues.proxy.maxlen)
        self.queues.extend(*saved["recent"])
        self.queues.episode_count = saved["episode_count"]

    def step(self, actions):
        if self._proxy_return is None:
            raise RuntimeError("Call reset() before step().")
        obs, reward, terminated, truncated, info = super().step(actions)
        _require_contract_keys(info)
        self._proxy_return += info["proxy_reward"]
        self._true_return += info["true_reward"]
        self._length += 1
        done = torch.as_tensor(terminated | truncated, device=self._length.device)
        if bool(done.any()):
            if "episode" in info:
                raise ValueError(
                    "info already has an 'episode' entry: is another episode-statistics wrapper inside?"
                )
            info["episode"] = {
                "r": torch.where(done, self._proxy_return, 0.0),
                "true": torch.where(done, self._true_return, 0.0),
                "l": torch.where(done, self._length, 0),
            }
            info["_episode"] = done
            self.queues.extend(
                self._proxy_return[done].tolist(),
                self._true_return[done].tolist(),
                self._length[done].tolist(),
            )
            self._proxy_return = torch.where(done, 0.0, self._proxy_return)
            self._true_return = torch.where(done, 0.0, self._true_return)
            self._length = torch.where(done, 0, self._length)
        return obs, reward, terminated, truncated, info
