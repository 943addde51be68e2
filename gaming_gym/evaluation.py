"""Evaluate any batched policy on any registered gameable env: per-episode proxy and true returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gaming_gym.core import Policy, resolve_device


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
) -> EpisodeReturns:
    """Run ``policy`` for ``episodes`` episodes (one per batched env) and return their returns.

    ``policy`` maps a batch of observations (a tensor on ``device``) to a batch of actions, like
    the scripted reference policies. Every env runs exactly one episode; envs whose episode has
    ended keep stepping (their results are ignored) until the last one ends.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    env = gym.make_vec(env_id, num_envs=episodes, device=resolve_device(device), **(knobs or {}))
    try:
        obs, _ = env.reset(seed=seed)
        proxy = torch.zeros(episodes, device=env.device)
        true = torch.zeros(episodes, device=env.device)
        length = torch.zeros(episodes, dtype=torch.long, device=env.device)
        running = torch.ones(episodes, dtype=torch.bool, device=env.device)
        while bool(running.any()):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            proxy += info["proxy_reward"] * running
            true += info["true_reward"] * running
            length += running.long()
            running &= ~(terminated | truncated)
    finally:
        env.close()
    return EpisodeReturns(proxy.cpu().numpy(), true.cpu().numpy(), length.cpu().numpy())


def reference_policy(env_id: str, name: str, knobs: dict[str, Any] | None = None) -> Policy:
    """The scripted reference policy ``name`` ("intended" or "exploit") of a registered env."""
    env = gym.make_vec(env_id, num_envs=1, **(knobs or {}))
    try:
        return env.unwrapped.reference_policy(name)
    finally:
        env.close()
