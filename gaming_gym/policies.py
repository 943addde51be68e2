"""Reference policies by env id: the scripted ``intended`` and ``exploit`` policies, and ``random``.

They anchor the Goodhart metric's normalisation (0 = random, 1 = intended), serve as the
demonstrators of behaviour cloning and RLHF's comparisons, and are what ``gaming-gym evaluate
ENV_ID:POLICY`` plays. A policy is a batched function ``obs -> action`` on torch tensors.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from gaming_gym.errors import ConfigError, ConfigTypeError
from gaming_gym.kernel import REFERENCE_POLICY_NAMES, Policy, seeded_generator

REFERENCE_NAMES = ("random", *REFERENCE_POLICY_NAMES)
"""The references the metric measures: the normalisation anchors and the exploit."""


def reference_policy(env_id: str, name: str, knobs: dict[str, Any] | None = None, seed: int = 0) -> Policy:
    """The reference policy ``name`` of a registered env with these knobs: one of its scripted
    policies (``"intended"``, ``"exploit"``) or ``"random"`` (:func:`random_policy`, seeded with
    ``seed``).

    The one lookup by env id. With an env in hand, its front's ``reference_policy(name)`` gives
    the scripted ones.
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


__all__ = ["REFERENCE_NAMES", "random_policy", "reference_policy"]
