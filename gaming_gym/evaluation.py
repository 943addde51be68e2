"""Evaluate any batched policy on a batched gameable env: per-episode proxy and true returns.

What is evaluated on is an *env factory*: a function from a number of envs to a batched env, not
yet reset. :func:`env_factory` makes the usual one (an env id, its knobs, a device, and, for a run
trained against a learned reward model, that model as the proxy); a trainer passes its own, so
this module needs to know nothing of what a run trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gaming_gym.devices import resolve_device
from gaming_gym.errors import ConfigError
from gaming_gym.kernel import Policy
from gaming_gym.policies import REFERENCE_NAMES, random_policy, reference_policy
from gaming_gym.wrappers import EpisodeSums

EnvFactory = Callable[[int], gym.vector.VectorEnv]
"""``num_envs -> a batched gameable env`` (a ``GameableVectorEnv``, maybe wrapped), not yet reset."""


@dataclass(frozen=True)
class EpisodeReturns:
    """Per-episode returns of one policy: arrays of shape ``(episodes,)``."""

    proxy: np.ndarray
    true: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.proxy)


def env_factory(
    env_id: str,
    knobs: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    reward_model: str | None = None,
    compile: bool = False,
) -> EnvFactory:
    """Batched envs of ``env_id`` with ``knobs`` on ``device``; with ``reward_model`` (a folder
    saved by :func:`gaming_gym.rlhf.save_reward_model`) their proxy is that model's score
    (:class:`gaming_gym.rlhf.RewardModelVectorEnv`); with ``compile``, their steps fused by
    ``torch.compile`` (:class:`gaming_gym.fronts.GameableVectorEnv`)."""
    knobs = dict(knobs or {})
    fused = {"compile": True} if compile else {}  # only asked of envs that need to know of it

    def make(num_envs: int) -> gym.vector.VectorEnv:
        env = gym.make_vec(env_id, num_envs=num_envs, device=resolve_device(device), **knobs, **fused)
        if reward_model is None:
            return env
        from gaming_gym.rlhf import with_reward_model

        try:
            return with_reward_model(env, reward_model, env_id, knobs)
        except BaseException:
            env.close()
            raise

    return make


@torch.no_grad()
def evaluate(
    policy: Policy,
    env: str | EnvFactory,
    episodes: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
    knobs: dict[str, Any] | None = None,
) -> EpisodeReturns:
    """Run ``policy`` for ``episodes`` episodes (one per batched env) and return their returns.

    ``env`` is an env factory, or an env id (with ``knobs`` and ``device``: :func:`env_factory`).
    ``policy`` maps a batch of observations (a tensor on the env's device) to a batch of actions,
    like the scripted reference policies. Every env runs exactly one episode; envs whose episode
    has ended keep stepping (their results are ignored) until the last one ends.
    """
    return evaluate_blocks(policy, env, episodes, [seed], device, knobs)[0]


@torch.no_grad()
def evaluate_blocks(
    policy: Policy,
    env: str | EnvFactory,
    episodes: int,
    seeds: Sequence[int],
    device: str | torch.device = "cpu",
    knobs: dict[str, Any] | None = None,
) -> list[EpisodeReturns]:
    """:func:`evaluate` for several policies at once: ``policy`` acts on ``len(seeds)`` blocks of
    ``episodes`` envs (stacked agents, block ``i`` agent ``i``'s), block ``i`` reset with
    ``seeds[i]`` as :func:`evaluate` with that seed resets its envs; one list entry a block.

    Each block's episodes are those :func:`evaluate` with its seed plays, given the same actions.
    A block whose episodes are all over keeps stepping until every block's are (and up to
    :data:`CHECK_EVERY` - 1 steps more); the length of its longest episode says how many steps it
    was running.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"episodes must be a positive int, got {episodes!r}")
    make = env_factory(env, knobs, device) if isinstance(env, str) else env
    total = episodes * len(seeds)
    batch = make(total)
    try:
        if len(seeds) == 1:
            obs, _ = batch.reset(seed=seeds[0])
        else:
            obs, _ = batch.reset(options={"block_seeds": list(seeds)})
        sums = EpisodeSums.zeros(total, batch.unwrapped.device)
        running = torch.ones(total, dtype=torch.bool, device=batch.unwrapped.device)
        limit = getattr(batch.unwrapped, "max_episode_steps", None)  # every episode is over by then
        steps = 0
        while limit is None or steps < limit:
            obs, _, terminated, truncated, info = batch.step(policy(obs))
            sums = sums.add(info["proxy_reward"], info["true_reward"], running)
            running &= ~(terminated | truncated)
            steps += 1
            if steps % CHECK_EVERY == 0 and not bool(running.any()):  # the host waits here only
                break
    finally:
        batch.close()
    columns = [value.cpu().numpy() for value in sums]
    return [
        EpisodeReturns(*(column[block * episodes : (block + 1) * episodes] for column in columns))
        for block in range(len(seeds))
    ]


CHECK_EVERY = 16
"""Steps between an evaluation's checks for episodes still running: each check makes the host
wait for the device, and stepping up to ``CHECK_EVERY - 1`` steps past the last episode's end
costs less than waiting every step (a GPU then runs ahead of the host)."""


_REFERENCE_CACHE: dict[tuple, dict[str, EpisodeReturns]] = {}


def reference_returns(
    env_id: str,
    knobs: dict[str, Any] | None = None,
    episodes: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    reward_model: str | None = None,
) -> dict[str, EpisodeReturns]:
    """Per-episode returns of the random, intended and exploit policies: the metric's anchors.

    With ``reward_model`` their proxy returns are that learned model's scores (see
    :func:`env_factory`), the anchors of a run trained against it.

    Measured with :func:`evaluate` (the random policy seeded with ``seed``) and cached in memory
    per (env id, knob settings, episodes, seed, device, reward model), so a training loop can ask
    for them at every evaluation for free. The arrays are read-only: every caller shares them.
    """
    device = resolve_device(device)
    key = (env_id, tuple(sorted((knobs or {}).items())), episodes, seed, str(device), reward_model)
    if key not in _REFERENCE_CACHE:
        make = env_factory(env_id, knobs, device, reward_model)
        results = {}
        for name in REFERENCE_NAMES:
            policy = reference_policy(env_id, name, knobs, seed=seed)
            returns = evaluate(policy, make, episodes, seed)
            for array in (returns.proxy, returns.true, returns.length):
                array.setflags(write=False)
            results[name] = returns
        _REFERENCE_CACHE[key] = results
    return dict(_REFERENCE_CACHE[key])


__all__ = [
    "REFERENCE_NAMES",
    "EnvFactory",
    "EpisodeReturns",
    "env_factory",
    "evaluate",
    "evaluate_blocks",
    "random_policy",
    "reference_policy",
    "reference_returns",
]
