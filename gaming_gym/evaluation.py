"""Evaluate any batched policy on any registered gameable env: per-episode proxy and true returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gaming_gym.devices import resolve_device
from gaming_gym.errors import ConfigError, ConfigTypeError
from gaming_gym.kernel import REFERENCE_POLICY_NAMES, Policy, seeded_generator
from gaming_gym.wrappers import EpisodeSums


@dataclass(frozen=True)
class EpisodeReturns:
    """Per-episode returns of one policy: arrays of shape ``(episodes,)``."""

    proxy: np.ndarray
    true: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.proxy)


@torch.no_grad()
def evaluate(
    policy: Policy,
    env_id: str,
    episodes: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
    knobs: dict[str, Any] | None = None,
    reward_model: str | None = None,
) -> EpisodeReturns:
    """Run ``policy`` for ``episodes`` episodes (one per batched env) and return their returns.

    With ``reward_model`` (a folder saved by :func:`gaming_gym.rlhf.save_reward_model`) the
    proxy returns are that model's scores (:class:`gaming_gym.rlhf.RewardModelVectorEnv`).

    ``policy`` maps a batch of observations (a tensor on ``device``) to a batch of actions, like
    the scripted reference policies. Every env runs exactly one episode; envs whose episode has
    ended keep stepping (their results are ignored) until the last one ends.
    """
    return evaluate_blocks(policy, env_id, episodes, [seed], device, knobs, reward_model)[0]


@torch.no_grad()
def evaluate_blocks(
    policy: Policy,
    env_id: str,
    episodes: int,
    seeds: Sequence[int],
    device: str | torch.device = "cpu",
    knobs: dict[str, Any] | None = None,
    reward_model: str | None = None,
) -> list[EpisodeReturns]:
    """:func:`evaluate` for several policies at once: ``policy`` acts on ``len(seeds)`` blocks of
    ``episodes`` envs (stacked agents, block ``i`` agent ``i``'s), block ``i`` reset with
    ``seeds[i]`` as :func:`evaluate` with that seed resets its envs; one list entry a block.

    Each block's episodes are those :func:`evaluate` with its seed plays, given the same actions.
    A block whose episodes are all over keeps stepping until every block's are; the length of
    its longest episode says how many steps it was running.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"episodes must be a positive int, got {episodes!r}")
    total = episodes * len(seeds)
    env = gym.make_vec(env_id, num_envs=total, device=resolve_device(device), **(knobs or {}))
    try:
        if reward_model is not None:
            from gaming_gym.rlhf import with_reward_model  # rlhf builds on this module

            env = with_reward_model(env, reward_model, env_id, knobs or {})
        if len(seeds) == 1:
            obs, _ = env.reset(seed=seeds[0])
        else:
            obs, _ = env.reset(options={"block_seeds": list(seeds)})
        sums = EpisodeSums.zeros(total, env.unwrapped.device)
        running = torch.ones(total, dtype=torch.bool, device=env.unwrapped.device)
        while bool(running.any()):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            sums = sums.add(info["proxy_reward"], info["true_reward"], running)
            running &= ~(terminated | truncated)
    finally:
        env.close()
    columns = [value.cpu().numpy() for value in sums]
    return [
        EpisodeReturns(*(column[block * episodes : (block + 1) * episodes] for column in columns))
        for block in range(len(seeds))
    ]


def reference_policy(env_id: str, name: str, knobs: dict[str, Any] | None = None, seed: int = 0) -> Policy:
    """The reference policy ``name`` of a registered env with these knobs: one of its scripted
    policies (``"intended"``, ``"exploit"``) or ``"random"`` (:func:`random_policy`, seeded with
    ``seed``), the anchors and exploit of :data:`REFERENCE_NAMES`.

    The one lookup by env id: :func:`reference_returns` and the CLI go through it. With an env in
    hand, its front's ``reference_policy(name)`` gives the scripted ones.
    """
    env = gym.make_vec(env_id, num_envs=1, **(knobs or {}))
    try:
        if name == "random":
            return random_policy(env.single_action_space, seed=seed)
        return env.unwrapped.reference_policy(name)
    finally:
        env.close()


def random_policy(action_space: gym.Space, seed: int | None = None) -> Policy:
    """A batched policy acting uniformly at random in a single env's ``action_space``.

    It is the "random" anchor of the Goodhart-gap normalisation. Actions come out as a tensor of
    shape ``(N, *action_space.shape)`` on the observations' device, ``N`` being the batch size of
    the observations. ``seed`` makes it reproducible: each device gets its own generator, seeded
    with ``seed`` on first use. Accepted spaces: ``Discrete`` and bounded ``Box``.
    """
    if isinstance(action_space, gym.spaces.Discrete):
        low, high = int(action_space.start), int(action_space.start + action_space.n)

        def sample(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
            return torch.randint(low, high, (n,), generator=generator, device=device)

    elif isinstance(action_space, gym.spaces.Box):
        if not action_space.is_bounded("both"):
            raise ConfigError(f"random_policy needs a bounded Box to sample uniformly, got {action_space}")
        box_low, box_high = torch.as_tensor(action_space.low), torch.as_tensor(action_space.high)

        def sample(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
            low, high = box_low.to(device), box_high.to(device)
            uniform = torch.rand((n, *low.shape), generator=generator, device=device, dtype=low.dtype)
            return low + uniform * (high - low)

    else:
        raise ConfigTypeError(
            f"random_policy supports Discrete and bounded Box action spaces, got {action_space}"
        )
    generators: dict[torch.device, torch.Generator] = {}

    def policy(obs: torch.Tensor) -> torch.Tensor:
        device = obs.device
        if device not in generators:
            generators[device] = seeded_generator(seed, device)
        return sample(obs.shape[0], generators[device], device)

    return policy


REFERENCE_NAMES = ("random", *REFERENCE_POLICY_NAMES)
"""The references :func:`reference_returns` measures: the normalisation anchors and the exploit."""

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
    :func:`evaluate`), the anchors of a run trained against it.

    Measured with :func:`evaluate` (the random policy seeded with ``seed``) and cached in memory
    per (env id, knob settings, episodes, seed, device), so a training loop can ask for them at
    every checkpoint for free. The arrays are read-only because they are shared by every caller.
    """
    device = resolve_device(device)
    key = (env_id, tuple(sorted((knobs or {}).items())), episodes, seed, str(device), reward_model)
    if key not in _REFERENCE_CACHE:
        results = {}
        for name in REFERENCE_NAMES:
            policy = reference_policy(env_id, name, knobs, seed=seed)
            returns = evaluate(policy, env_id, episodes, seed, device, knobs, reward_model)
            for array in (returns.proxy, returns.true, returns.length):
                array.setflags(write=False)
            results[name] = returns
        _REFERENCE_CACHE[key] = results
    return dict(_REFERENCE_CACHE[key])
