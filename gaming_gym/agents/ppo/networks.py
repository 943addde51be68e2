"""The networks of PPO: observation statistics, policy heads and the actor-critic.

Separate actor and critic MLPs with orthogonal initialisation, as in CleanRL; a categorical head
for ``Discrete`` actions and a diagonal Gaussian for ``Box``. :func:`kl_from` measures a policy's
KL divergence from a reference policy on raw observations (the KL penalty's and the evaluations'
"KL from the initial policy").
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import kl_divergence

from gaming_gym.errors import ConfigError
from gaming_gym.kernel import Policy, seeded_generator


def training_generators(seed: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """Random streams seeded with ``seed``: one on the CPU, which initialises networks, and one on
    ``device``, which samples actions and minibatches; on a CPU run, one generator serves both.
    They draw what ``torch.manual_seed(seed)`` and torch's global generators would: a seed gives
    the run it always gave."""
    cpu = seeded_generator(seed, torch.device("cpu"))
    return cpu, cpu if device.type == "cpu" else seeded_generator(seed, device)


def adam(parameters, learning_rate: float, device: torch.device) -> torch.optim.Adam:
    """PPO's Adam (eps 1e-5, as in CleanRL), fused into one kernel where the device has one: on a
    CPU four times faster a step than torch's default for these small networks."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(parameters, lr=learning_rate, eps=1e-5, fused=fused)


class RunningMeanStd(nn.Module):
    """Running mean and variance of observations (Chan et al.'s parallel update), kept as buffers
    so they are saved and loaded with the agent's ``state_dict``.

    Batches are ``(..., batch, features)``: one agent's statistics of shape ``(features,)`` take
    ``(batch, features)``; stacked agents' statistics, ``(agents, features)`` with counts of shape
    ``(agents, 1)``, take ``(agents, batch, features)`` (:mod:`~gaming_gym.agents.ppo.stacked`).
    """

    def __init__(self, shape: tuple[int, ...], epsilon: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(epsilon))

    @torch.no_grad()
    def update(self, batch: torch.Tensor, frozen: torch.Tensor | None = None) -> None:
        """Fold ``batch`` into the statistics; stacked statistics whose row is ``frozen`` (a bool
        ``(agents,)``: agents early stopping ended) keep their values."""
        batch_mean, batch_count = batch.mean(-2), batch.shape[-2]
        # the variance as a mean of squares: torch's var over the batch dimension is ten times slower
        batch_var = (batch - batch_mean.unsqueeze(-2)).square().mean(-2)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        mean = self.mean + delta * batch_count / total
        var = (
            self.var * self.count
            + batch_var * batch_count
            + delta.square() * self.count * batch_count / total
        ) / total
        if frozen is not None:
            keep = frozen.unsqueeze(-1)
            mean, var, total = (
                torch.where(keep, old, new)
                for old, new in ((self.mean, mean), (self.var, var), (self.count, total))
            )
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(total)

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean.unsqueeze(-2), self.var.unsqueeze(-2)
        return ((obs - mean) / torch.sqrt(var + 1e-8)).clamp(-10.0, 10.0)


class PolicyHead(nn.Module):
    """What both policy heads share: a distribution is built from the head's ``outputs`` (its
    parameters as tensors, which a vmap over stacked agents can return) by ``distribution_from``."""

    def distribution(self, features: torch.Tensor) -> torch.distributions.Distribution:
        return self.distribution_from(*self.outputs(features))

    @torch.no_grad()
    def sample(
        self, distribution: torch.distributions.Distribution, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Actions drawn from ``distribution`` with noise from ``generator`` (on this head's device)."""
        device = next(self.parameters()).device
        return self.draw(distribution, self.noise(tuple(distribution.batch_shape), generator, device))


class Categorical(torch.distributions.Categorical):
    """torch's ``Categorical`` with its probabilities read as ``exp`` of its normalised logits.

    torch's own ``probs`` is a softmax over the last dimension, which on a CPU runs ten times
    slower for a few actions than the ``exp`` of the log-probabilities it has already computed;
    the rollout samples from it and the update's entropy reads it, every step and minibatch.
    """

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()


class DiscreteHead(PolicyHead):
    """Categorical distribution over ``Discrete(n)`` actions.

    Heads skip torch's argument validation: it re-checks every batch on the rollout's hot path.
    They sample from an explicit generator (``Distribution.sample`` takes none, and would draw
    from torch's global RNG), or from noise drawn ahead (a rollout draws all its noise at once,
    so that a compiled step needs no generator), one uniform number a row.
    """

    def __init__(self, space: gym.spaces.Discrete, width: int, generator: torch.Generator | None = None):
        super().__init__()
        self.start = int(space.start)
        self.logits = _layer(width, int(space.n), std=0.01, generator=generator)

    def outputs(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The distribution's parameters as tensors (what a vmap over stacked agents can return)."""
        return (self.logits(features),)

    def distribution_from(self, logits: torch.Tensor) -> torch.distributions.Distribution:
        return Categorical(logits=logits, validate_args=False)

    def noise(self, shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
        """What :meth:`draw` turns into actions of a batch of ``shape``: one uniform number each."""
        return torch.rand(shape, generator=generator, device=device)

    def draw(self, distribution: torch.distributions.Distribution, noise: torch.Tensor) -> torch.Tensor:
        """Actions from ``noise`` (:meth:`noise`) by inverse transform sampling: a few vectorised
        operations, where ``torch.multinomial`` costs a hundred microseconds a batch on a CPU."""
        cumulative = distribution.probs.cumsum(-1)
        below = (cumulative < (noise * cumulative[..., -1]).unsqueeze(-1)).sum(-1)
        return below.clamp_max(cumulative.shape[-1] - 1)

    def greedy(self, distribution: torch.distributions.Distribution) -> torch.Tensor:
        return distribution.probs.argmax(dim=-1)

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return action + self.start

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_env`: an env action as this head samples it."""
        return action.long() - self.start


class GaussianHead(PolicyHead):
    """Diagonal Gaussian over ``Box`` actions with a learned, state-independent log std.

    Samples are clipped into the box only when sent to the env, so log-probabilities stay exact.
    """

    def __init__(self, space: gym.spaces.Box, width: int, generator: torch.Generator | None = None):
        super().__init__()
        size = int(np.prod(space.shape))
        self.shape = space.shape
        self.mean = _layer(width, size, std=0.01, generator=generator)
        self.log_std = nn.Parameter(torch.zeros(size))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32).flatten())
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32).flatten())

    def outputs(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The distribution's parameters as tensors (what a vmap over stacked agents can return)."""
        mean = self.mean(features)
        return mean, self.log_std.expand_as(mean)

    def distribution_from(
        self, mean: torch.Tensor, log_std: torch.Tensor
    ) -> torch.distributions.Distribution:
        normal = torch.distributions.Normal(mean, log_std.exp(), validate_args=False)
        return torch.distributions.Independent(normal, 1, validate_args=False)

    def noise(self, shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
        """What :meth:`draw` turns into actions of a batch of ``shape``: standard normal numbers."""
        return torch.randn((*shape, self.log_std.shape[0]), generator=generator, device=device)

    def draw(self, distribution: torch.distributions.Distribution, noise: torch.Tensor) -> torch.Tensor:
        """Actions from standard normal ``noise`` (:meth:`noise`): mean + std * noise."""
        normal = distribution.base_dist
        return normal.loc + normal.scale * noise

    def greedy(self, distribution: torch.distributions.Distribution) -> torch.Tensor:
        return distribution.mean

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(action, self.high), self.low).view(-1, *self.shape)

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        """An env action as this head samples it (flat; in-box actions need no unclipping)."""
        return action.float().flatten(1)


def make_head(
    space: gym.Space, width: int, generator: torch.Generator | None = None
) -> DiscreteHead | GaussianHead:
    """The policy head for an action space, or a ConfigError naming the spaces PPO supports."""
    if isinstance(space, gym.spaces.Discrete):
        return DiscreteHead(space, width, generator)
    if isinstance(space, gym.spaces.Box):
        return GaussianHead(space, width, generator)
    raise ConfigError(f"PPO supports Discrete and Box action spaces, got {space}")


def _layer(
    inputs: int, outputs: int, std: float = math.sqrt(2), generator: torch.Generator | None = None
) -> nn.Linear:
    """Orthogonally initialised linear layer, as in CleanRL (it matters for PPO), drawn from
    ``generator`` (torch's global RNG when None).

    ``nn.Linear``'s own initialisation is drawn first, then overwritten, as constructing one does:
    the draws keep each seed's network what it always was (a checkpoint saved without its
    initial agent rebuilds it from the seed).
    """
    layer = torch.nn.utils.skip_init(nn.Linear, inputs, outputs)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    nn.init.uniform_(layer.bias, -1 / math.sqrt(inputs), 1 / math.sqrt(inputs), generator=generator)
    nn.init.orthogonal_(layer.weight, std, generator=generator)
    nn.init.zeros_(layer.bias)
    return layer


def _mlp(inputs: int, hidden_sizes: tuple[int, ...], generator: torch.Generator | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [_layer(inputs, width, generator=generator), nn.Tanh()]
        inputs = width
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs over normalised observations, with a policy head.

    Methods taking ``norm_obs`` expect observations already normalised by :meth:`normalise`;
    :meth:`policy` wraps everything into a callable on raw observations for ``evaluate``. The
    weights are drawn from ``generator`` (torch's global RNG when None), on the CPU.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        hidden_sizes: tuple[int, ...] = (64, 64),
        norm_obs: bool = True,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if not isinstance(observation_space, gym.spaces.Box):
            raise ConfigError(f"PPO needs a Box observation space, got {observation_space}")
        obs_size = int(np.prod(observation_space.shape))
        self.norm_obs = norm_obs
        self.obs_rms = RunningMeanStd((obs_size,))
        self.actor = _mlp(obs_size, hidden_sizes, generator)
        self.head = make_head(action_space, hidden_sizes[-1], generator)
        self.critic = nn.Sequential(
            _mlp(obs_size, hidden_sizes, generator), _layer(hidden_sizes[-1], 1, std=1.0, generator=generator)
        )

    def normalise(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        """Flatten and normalise raw observations, first folding them into the statistics if asked."""
        obs = obs.float().flatten(1)
        if not self.norm_obs:
            return obs
        if update:
            self.obs_rms.update(obs)
        return self.obs_rms.normalise(obs)

    def value(self, norm_obs: torch.Tensor) -> torch.Tensor:
        return self.critic(norm_obs).squeeze(-1)

    def forward(self, norm_obs: torch.Tensor, part: str = "both") -> tuple[torch.Tensor, ...]:
        """On normalised observations, the policy head's outputs (``part="policy"``), the value
        (``"value"``) or both, as tensors: what
        :class:`~gaming_gym.agents.ppo.stacked.StackedAgents` maps over agents."""
        policy = self.head.outputs(self.actor(norm_obs)) if part in ("policy", "both") else ()
        value = (self.value(norm_obs),) if part in ("value", "both") else ()
        return *policy, *value

    def distribution(self, norm_obs: torch.Tensor) -> torch.distributions.Distribution:
        return self.head.distribution(self.actor(norm_obs))

    def action_distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """The action distribution on raw observations, normalised by this network's statistics."""
        return self.distribution(self.normalise(obs))

    def policy(self, deterministic: bool = False, generator: torch.Generator | None = None) -> Policy:
        """A batched policy on raw observations, as :func:`gaming_gym.evaluation.evaluate` takes;
        it samples from ``generator`` (on the observations' device; torch's global RNG when None)."""
        return acting(self, deterministic, generator)


def acting(agent: Any, deterministic: bool, generator: Any) -> Policy:
    """The batched policy of an agent (anything with ``action_distribution`` and a ``head``) on
    raw observations: greedy, or sampling from ``generator`` (what its head's ``sample`` takes)."""

    @torch.no_grad()
    def act(obs: torch.Tensor) -> torch.Tensor:
        distribution = agent.action_distribution(obs)
        if deterministic:
            return agent.head.to_env(agent.head.greedy(distribution))
        return agent.head.to_env(agent.head.sample(distribution, generator))

    return act


def kl_from(reference: Any, distribution: torch.distributions.Distribution, obs: torch.Tensor):
    """Per-state KL(distribution || reference(.|s)) in nats, on the raw observations ``obs``
    (``reference``: anything with ``action_distribution(raw obs)``).

    The reference normalises ``obs`` with its own statistics, so each policy is the function of
    raw observations it really is. Analytic (``torch.distributions.kl_divergence``), for
    categorical and diagonal Gaussian policies alike.
    """
    return kl_divergence(distribution, reference.action_distribution(obs))
