"""Episode statistics that keep the proxy and the true return apart, for both fronts.

Like Gymnasium's ``RecordEpisodeStatistics``, but a gameable env has two returns per episode:
the proxy the agent is trained on and the hidden true objective. Both are summed from
``info["proxy_reward"]`` and ``info["true_reward"]`` (the contract's keys), never from the
``reward`` a wrapper may have rewritten, and reported when an episode ends:

* :class:`RecordEpisodeStatistics` (single env): ``info["episode"] = {"r": proxy return,
  "true": true return, "l": length, "t": seconds the episode took}`` at the step the episode ends
  ("r", "l", "t" as Gymnasium writes them, so stable-baselines3 logs the proxy as usual);
* :class:`RecordVectorEpisodeStatistics` (any Gymnasium vector env, torch or numpy, either
  autoreset mode): ``info["episode"] = {"r", "true", "l"}`` as arrays of shape ``(num_envs,)``
  (tensors on the env's device for the batched front), and the mask ``info["_episode"]`` of the
  envs whose episode ended, at every step where one ended. Foreign trainers (CleanRL over
  ``SyncVectorEnv``) should read true returns from it rather than sum ``info["true_reward"]``.

Both keep the most recent ``buffer_length`` episodes in :class:`EpisodeQueues`, for progress bars.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from gaming_gym.errors import ConfigError, MissingInfoKeyError, ResetNeededError


class EpisodeSums(NamedTuple):
    """The running proxy return, true return and length of the episodes in progress.

    One env's as numbers, or a batch's as tensors of one shape (float sums, int64 lengths). Every
    sum of per-step rewards into episode returns in gaming_gym goes through :meth:`add`: the
    fronts' frames, both statistics wrappers, :func:`gaming_gym.evaluation.evaluate`, the checker
    and rollout videos, so they all count a step, mask an ended env and round alike. A tensor sum
    keeps its dtype whatever the rewards' dtype (as ``+=`` into it would).
    """

    proxy: Any
    true: Any
    length: Any

    @classmethod
    def zeros(cls, shape: int | tuple[int, ...] | None = None, device: Any = None) -> EpisodeSums:
        """Sums at zero: numbers when ``shape`` is None, else float32 and int64 tensors on ``device``."""
        if shape is None:
            return cls(0.0, 0.0, 0)
        return cls(
            torch.zeros(shape, dtype=torch.float32, device=device),
            torch.zeros(shape, dtype=torch.float32, device=device),
            torch.zeros(shape, dtype=torch.long, device=device),
        )

    def add(self, proxy: Any, true: Any, counted: bool | torch.Tensor = True) -> EpisodeSums:
        """The sums after one more step that earned ``proxy`` and ``true``, where ``counted``.

        For a batch, ``counted`` is a bool mask: an env whose episode is already over (one that
        :func:`~gaming_gym.evaluation.evaluate` keeps stepping), or whose step only reset it,
        adds nothing, whatever its rewards are.
        """
        if isinstance(counted, torch.Tensor):
            proxy, true = torch.where(counted, proxy, 0.0), torch.where(counted, true, 0.0)
        elif not counted:
            return self
        return EpisodeSums(_plus(self.proxy, proxy), _plus(self.true, true), self.length + counted)

    def restart(self, done: bool | torch.Tensor) -> EpisodeSums:
        """The sums with those of ended episodes (``done``, a bool or a mask) back at zero."""
        if not isinstance(done, torch.Tensor):
            return EpisodeSums.zeros() if done else self
        return EpisodeSums(*(torch.where(done, 0, value) for value in self))


def _plus(total: Any, value: Any) -> Any:
    """``total + value``, kept in ``total``'s dtype when it is a tensor."""
    return (total + value).to(total.dtype) if isinstance(total, torch.Tensor) else total + value


class EpisodeQueues:
    """The proxy returns, true returns and lengths of the most recent finished episodes."""

    def __init__(self, buffer_length: int = 100):
        if buffer_length < 1:
            raise ConfigError(f"buffer_length must be a positive int, got {buffer_length!r}")
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
            raise _missing_key(key)


def _missing_key(key: str) -> MissingInfoKeyError:
    return MissingInfoKeyError(
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
        self._sums = EpisodeSums.zeros()
        self._start_time = time.perf_counter()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._sums = EpisodeSums.zeros()
        self._start_time = time.perf_counter()
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        _require_contract_keys(info)
        self._sums = self._sums.add(float(info["proxy_reward"]), float(info["true_reward"]))
        if terminated or truncated:
            if "episode" in info:
                raise ConfigError(
                    "info already has an 'episode' entry: is another episode-statistics wrapper inside?"
                )
            sums = self._sums
            info["episode"] = {
                "r": sums.proxy,
                "true": sums.true,
                "l": sums.length,
                "t": round(time.perf_counter() - self._start_time, 6),
            }
            self.queues.extend([sums.proxy], [sums.true], [sums.length])
        return obs, reward, terminated, truncated, info


class RecordVectorEpisodeStatistics(gym.vector.VectorWrapper):
    """Record the proxy return, true return and length of every episode of a vector env.

    Works on any Gymnasium ``VectorEnv`` whose envs keep the gameable-env contract: the batched
    :class:`~gaming_gym.fronts.GameableVectorEnv` (torch tensors on its device) and Gymnasium's own
    ``SyncVectorEnv`` / ``AsyncVectorEnv`` over ``gymnasium.make`` envs (numpy), as CleanRL-style
    trainers use them, in either autoreset mode. Summing ``info["true_reward"]`` by hand there
    loses rewards: with next-step autoreset the step after an episode's end is a reset whose
    info has no ``true_reward``, and with same-step autoreset the last step's rewards sit in
    ``info["final_info"]`` (the top level holds the reset's info). This wrapper reads each step's
    rewards from the right place:

    * ``AutoresetMode.SAME_STEP``: the step that ends an episode carries its last reward, from
      ``info["final_info"]`` where the env provides one, from ``info`` otherwise;
    * ``AutoresetMode.NEXT_STEP`` (Gymnasium's default): the reset step after an end is not
      counted; the next episode starts from zero.

    When episodes end, ``info["episode"] = {"r": proxy return, "true": true return, "l": length}``
    and the mask ``info["_episode"]`` of the envs whose episode ended: torch tensors on the env's
    device for a torch env, numpy arrays for a numpy one. Returns are summed in float32 (as
    :func:`gaming_gym.evaluation.evaluate` sums them). Reading finished episodes into
    :attr:`queues` copies a few numbers to the host at the steps where episodes end, and finding
    out whether one ended is a host sync at every step.

    ``deferred=True`` avoids both, for trainers that read :attr:`queues` only now and then (native
    PPO, once per iteration): ended episodes stay on the device until :attr:`queues` is read,
    which copies them all to the host at once, and ``info["episode"]`` and ``info["_episode"]``
    are present at every step, the mask saying which envs' episodes ended (none, mostly).

    ``blocks=B`` keeps the episodes of each of ``B`` equal blocks of envs apart (the blocks of
    :meth:`~gaming_gym.fronts.GameableVectorEnv.reset_blocks`, one per stacked agent):
    :meth:`block_queues` holds each block's, and ``get_state``/``set_state`` take a ``block``.

    Attributes:
        queues: :class:`EpisodeQueues` of the last ``buffer_length`` episodes over all envs.
    """

    def __init__(
        self, env: gym.vector.VectorEnv, buffer_length: int = 100, deferred: bool = False, blocks: int = 1
    ):
        super().__init__(env)
        if blocks < 1 or env.num_envs % blocks:
            raise ConfigError(f"{env.num_envs} envs do not split into {blocks!r} equal blocks")
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if self.autoreset_mode not in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP):
            raise ConfigError(
                f"RecordVectorEpisodeStatistics needs an env that autoresets (SAME_STEP or "
                f"NEXT_STEP), got autoreset_mode {self.autoreset_mode!r}"
            )
        self.deferred = deferred
        self._queues = [EpisodeQueues(buffer_length) for _ in range(blocks)]
        self._pending: list[tuple[torch.Tensor, ...]] = []  # deferred: (ended, proxy, true, length)
        self._sums: EpisodeSums | None = None  # of the episodes in progress, (num_envs,) each
        self._resetting: torch.Tensor | None = None  # next-step autoreset: envs whose next step resets

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        device = obs.device if isinstance(obs, torch.Tensor) else torch.device("cpu")
        self._sums = EpisodeSums.zeros(self.num_envs, device)
        self._resetting = torch.zeros(self.num_envs, dtype=torch.bool, device=device)
        return obs, info

    @property
    def queues(self) -> EpisodeQueues:
        """The recent episodes (when ``deferred``, those still on the device are read first)."""
        if len(self._queues) > 1:
            raise ConfigError("these statistics keep blocks of envs apart: read block_queues(block)")
        return self.block_queues(0)

    def block_queues(self, block: int) -> EpisodeQueues:
        """The recent episodes of block ``block`` (of ``blocks``), read from the device first."""
        self._read_pending()
        return self._queues[block]

    def _read_pending(self) -> None:
        """Copy the episodes ended since the last read to the host, into the queues: one sync."""
        if not self._pending:
            return
        columns = (torch.stack(column).cpu().numpy() for column in zip(*self._pending, strict=True))
        ended, proxy, true, length = columns
        self._pending = []
        for block, queues in zip(
            np.split(np.arange(self.num_envs), len(self._queues)), self._queues, strict=True
        ):
            kept = ended[:, block]
            queues.extend(
                proxy[:, block][kept].tolist(), true[:, block][kept].tolist(), length[:, block][kept].tolist()
            )

    def get_state(self, block: int | None = None) -> dict[str, Any]:
        """The wrapped env's :meth:`~gaming_gym.fronts.GameableVectorEnv.get_state`, plus the
        in-flight episodes' running sums and the recent-episode queues (for exact resumption);
        with ``block``, that block's alone, as the get_state of a batch of its size."""
        if self._sums is None:
            raise ResetNeededError("Call reset() before get_state().")
        rows, queues = self._block(block)
        return {
            "env": self.env.get_state() if block is None else self.env.get_state(block),
            "running": [value[rows].clone() for value in self._sums],
            "resetting": self._resetting[rows].clone(),
            "recent": [list(queues.proxy), list(queues.true), list(queues.length)],
            "episode_count": queues.episode_count,
        }

    def set_state(self, saved: dict[str, Any], block: int | None = None) -> None:
        """Continue from :meth:`get_state` (call ``reset`` first, as the wrapped env needs); with
        ``block``, put that block back from the get_state of a batch of its size."""
        if block is None:
            self.env.set_state(saved["env"])
        else:
            self.env.set_state(saved["env"], block)
        rows, queues = self._block(block)
        device = self._device
        # copies: the wrapper never shares tensors with the caller's saved dict
        for value, part in zip(self._sums, saved["running"], strict=True):
            value[rows] = part.to(device)
        self._resetting[rows] = saved.get("resetting", torch.zeros_like(self._resetting[rows])).to(device)
        self._pending = []
        fresh = EpisodeQueues(queues.proxy.maxlen)
        fresh.extend(*saved["recent"])
        fresh.episode_count = saved["episode_count"]
        self._queues[0 if block is None else block] = fresh

    def _block(self, block: int | None) -> tuple[slice, EpisodeQueues]:
        """The rows and the queues of ``block`` (of the whole batch when None)."""
        self._read_pending()
        if block is None:
            return slice(0, self.num_envs), self.queues
        size = self.num_envs // len(self._queues)
        return slice(block * size, (block + 1) * size), self._queues[block]

    def step(self, actions):
        if self._sums is None:
            raise ResetNeededError("Call reset() before step().")
        obs, reward, terminated, truncated, info = super().step(actions)
        done = torch.as_tensor(terminated | truncated, device=self._device)
        counted = ~self._resetting
        proxy = self._step_values(info, "proxy_reward", done, counted)
        true = self._step_values(info, "true_reward", done, counted)
        self._sums = self._sums.add(proxy, true, counted)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._resetting = done
        if self.deferred or bool(done.any()):
            self._record_episodes(info, done, as_numpy=not isinstance(reward, torch.Tensor))
        return obs, reward, terminated, truncated, info

    @property
    def _device(self) -> torch.device:
        """Where the sums live: the env's device for a torch env, the CPU for a numpy one."""
        return self._sums.length.device

    def _step_values(self, info: dict[str, Any], key: str, done: torch.Tensor, counted: torch.Tensor):
        """This step's ``info[key]`` of every env as float32 (what a step that is not counted
        holds does not matter: :meth:`EpisodeSums.add` leaves it out).

        Values come from ``info["final_info"]`` for envs that ended (same-step autoreset of
        Gymnasium's vector envs), from ``info`` otherwise. Where a sub-env's info may lack the
        key (Gymnasium's ``_key`` masks), every counted step must have it.
        """
        values, present = self._masked(info, key)
        final_info = info.get("final_info")
        if final_info and key in final_info:
            final_values, final_present = self._masked(final_info, key)
            values = torch.where(done, final_values, values)
            present = torch.where(done, final_present, present)
        if present is not None and bool((counted & ~present).any()):
            raise _missing_key(key)
        return values

    def _masked(self, info: dict[str, Any], key: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``info[key]`` as float32 on our device, and its presence mask (None: all present)."""
        device = self._device
        if key not in info:
            return torch.zeros(self.num_envs, device=device), torch.zeros(
                self.num_envs, dtype=torch.bool, device=device
            )
        values = torch.as_tensor(info[key], dtype=torch.float32, device=device)
        mask = info.get(f"_{key}")
        present = None if mask is None else torch.as_tensor(mask, dtype=torch.bool, device=device)
        return values, present

    def _record_episodes(self, info: dict[str, Any], done: torch.Tensor, as_numpy: bool) -> None:
        """Report the ended episodes in ``info`` and the queues (or, when ``deferred``, keep them
        for the queues on the device), then restart their sums."""
        if "episode" in info:
            raise ConfigError(
                "info already has an 'episode' entry: is another episode-statistics wrapper inside?"
            )
        sums = self._sums
        episode = {
            "r": torch.where(done, sums.proxy, 0.0),
            "true": torch.where(done, sums.true, 0.0),
            "l": torch.where(done, sums.length, 0),
        }
        self._pending.append((done, episode["r"], episode["true"], episode["l"]))
        if not self.deferred:
            self._read_pending()
        if as_numpy:
            episode = {name: value.cpu().numpy() for name, value in episode.items()}
        info["episode"] = episode
        info["_episode"] = done.cpu().numpy() if as_numpy else done
        self._sums = sums.restart(done)
