"""Occupancy-measure regularisation toward a behaviour-cloned reference (after Laidlaw et al.'s
ORPO, 2025): penalise *where* the policy goes and what it does there, not only how its action
choices differ.

A discriminator ``D(s, a)`` per agent learns to tell the policy's state-action pairs (the last
rollout's) from the reference's (a behaviour clone of the env's intended policy, ``kl_reference``'s
``"intended"`` clone, played in the env before training). Trained with a logistic loss on
balanced batches, its logit estimates ``log(d_pi(s, a) / d_ref(s, a))``, the log ratio of the two
occupancy measures; its mean over the policy's pairs estimates ``KL(d_pi || d_ref)``. Each step's
reward loses ``lam`` times that logit (clipped to +-``CLIP``), so the return of a policy pays
``lam`` times the occupancy KL: the KL-divergence form of ORPO's regulariser. An action KL
(``kl_reference``) cannot see that a policy which acts like the reference wherever it is has
wandered where the reference never goes; the occupancy penalty can.

``lam`` is the coefficient (0 turns the penalty off, the discriminator still trains and its KL
is logged); ``reference_steps`` steps of ``REFERENCE_ENVS`` envs per agent make the reference's
sample; the discriminator takes ``updates`` Adam steps on minibatches of ``batch`` pairs after
every iteration. Log columns: ``mitigation/occupancy/kl`` (the occupancy KL estimate of the
iteration's rollout) and ``.../penalty`` (the mean penalty a step). A checkpoint keeps each
agent's discriminator, its Adam moments and the reference's sample, so a resumed run goes on as
if never stopped. Not for stable-baselines3, whose rollouts are its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from gaming_gym.evaluation import env_factory
from gaming_gym.knobs import require_int, require_number
from gaming_gym.mitigations.base import Context, Mitigation, Step, register_mitigation

REFERENCE_ENVS = 32
"""Envs per agent the reference plays to make its sample of state-action pairs."""
REFERENCE_SEED = 4_000_037
"""Seed of the reference's episodes and action draws (other episodes than training's)."""
HIDDEN = 64
CLIP = 5.0
"""Largest log-ratio (either sign) a step is penalised by: a discriminator sure of itself on a
pair the reference never makes would otherwise swamp the reward."""


@dataclass(frozen=True)
class OccupancySettings:
    lam: float = 0.05
    """weight of the occupancy penalty (0 turns it off)"""
    reference_steps: int = 64
    """steps the reference plays (in 32 envs an agent) to sample its occupancy"""
    updates: int = 20
    """discriminator Adam steps after every iteration"""
    batch: int = 256
    """policy pairs and reference pairs in each discriminator step"""
    learning_rate: float = 1e-3
    """the discriminator's Adam step size"""

    def __post_init__(self) -> None:
        require_number("lam", self.lam, 0.0, 1e6)
        require_int("reference_steps", self.reference_steps, 1, 100_000)
        require_int("updates", self.updates, 0, 10_000)
        require_int("batch", self.batch, 1, 1_000_000)
        require_number("learning_rate", self.learning_rate, 1e-8, 1.0)


@register_mitigation
class OccupancyRegularisation(Mitigation):
    """A penalty on the occupancy KL from a cloned reference, by a discriminator (module docstring)."""

    name = "occupancy"
    Settings = OccupancySettings
    per_agent = ("lam",)
    sb3_unsupported = "the occupancy penalty changes each step's reward as it is collected"

    def __init__(self, settings: Sequence[Any], context: Context):
        super().__init__(settings, context)
        shared = self.settings[0]
        self.lam = self.per_agent_tensor("lam", context.envs_per_agent)
        env = env_factory(context.env_id, context.knobs, context.device)(1)
        self.observation_space, self.action_space = env.single_observation_space, env.single_action_space
        env.close()
        features = gym.spaces.flatdim(self.observation_space) + _action_width(self.action_space)
        self.discriminator = StackedDiscriminator(context.num_agents, features).to(context.device)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=shared.learning_rate)
        self.reference_pairs: torch.Tensor | None = None  # (agents, pairs, features), raw
        self.mean = self.std = None  # the reference pairs' statistics, to standardise with
        self._rollout: list[torch.Tensor] = []
        self._trained = 0  # discriminator trainings so far: each draws its minibatches from its own seed
        self._penalty = torch.zeros(context.num_agents * context.envs_per_agent, device=context.device)

    def prepare(self) -> None:
        """Play the reference clone and keep its state-action pairs, agent by agent."""
        agents, envs = self.context.num_agents, REFERENCE_ENVS
        reference = self.context.clone("intended")
        env = env_factory(self.context.env_id, self.context.knobs, self.context.device)(agents * envs)
        pairs = []
        with torch.random.fork_rng(
            devices=[] if self.context.device.type == "cpu" else [self.context.device]
        ):
            torch.manual_seed(REFERENCE_SEED)
            obs, _ = env.reset(seed=REFERENCE_SEED)
            for _ in range(self.settings[0].reference_steps):
                action = self._in_box(reference.action_distribution(obs).sample())
                pairs.append(self._pairs(obs, action))
                obs, *_ = env.step(self._to_env(action))
        env.close()
        self._keep_reference(
            torch.stack(pairs).view(len(pairs), agents, envs, -1).transpose(0, 1).flatten(1, 2)
        )

    def reward(self, step: Step, reward: torch.Tensor) -> torch.Tensor:
        pairs = self._pairs(step.obs, self._in_box(step.action))
        self._rollout.append(pairs)
        with torch.no_grad():
            log_ratio = self.discriminator(self._standardised(self._by_agent(pairs))).flatten()
        penalty = self.lam * log_ratio.clamp(-CLIP, CLIP)
        self._penalty += penalty
        return reward - penalty

    def after_iteration(self) -> dict[str, torch.Tensor]:
        """Train the discriminators on the iteration's pairs against the reference's; log the
        occupancy KL estimate and the mean penalty a step, per agent."""
        steps = max(len(self._rollout), 1)
        policy = self._by_agent(torch.cat(self._rollout)) if self._rollout else None
        logs = {"penalty": (self._penalty / steps).view(self.context.num_agents, -1).mean(1)}
        if policy is not None:
            self._train(policy)
            with torch.no_grad():
                logs["kl"] = self.discriminator(self._standardised(policy)).mean(1)
        self._rollout, self._penalty = [], torch.zeros_like(self._penalty)
        return logs

    def state(self, agent: int) -> dict[str, Any]:
        """Agent ``agent``'s discriminator, its Adam moments, and the reference's pairs."""
        moments = {}
        for name, parameter in self.discriminator.named_parameters():
            for key, value in self.optimizer.state.get(parameter, {}).items():
                moments[f"{name}.{key}"] = value.clone() if key == "step" else value[agent].clone()
        return {
            "discriminator": {
                name: value[agent].clone() for name, value in self.discriminator.state_dict().items()
            },
            "moments": moments,
            "reference_pairs": self.reference_pairs[agent].clone(),
            "trained": self._trained,
        }

    def load_state(self, agent: int, state: Mapping[str, Any]) -> None:
        if not state:
            return
        with torch.no_grad():
            for name, value in self.discriminator.state_dict().items():
                value[agent] = state["discriminator"][name].to(value.device)
            for name, parameter in self.discriminator.named_parameters():
                saved = {
                    key.removeprefix(f"{name}."): v
                    for key, v in state["moments"].items()
                    if key.startswith(f"{name}.")
                }
                if not saved:
                    continue
                moments = self.optimizer.state[parameter]
                for key, value in saved.items():
                    if key == "step":
                        moments[key] = value.clone()
                    else:
                        moments.setdefault(key, torch.zeros_like(parameter))[agent] = value.to(
                            parameter.device
                        )
        if self.reference_pairs is None:
            features = state["reference_pairs"].shape[-1]
            empty = torch.zeros(self.context.num_agents, len(state["reference_pairs"]), features)
            self.reference_pairs = empty.to(self.context.device)
        self.reference_pairs[agent] = state["reference_pairs"].to(self.context.device)
        self._keep_reference(self.reference_pairs)
        self._trained = int(state["trained"])

    # --- helpers ----------------------------------------------------------------------------

    def _train(self, policy: torch.Tensor) -> None:
        settings = self.settings[0]
        generator = torch.Generator(device=policy.device).manual_seed(REFERENCE_SEED + self._trained)
        self._trained += 1
        for _ in range(settings.updates):
            take = torch.randint(
                0, policy.shape[1], (settings.batch,), generator=generator, device=policy.device
            )
            refs = torch.randint(
                0, self.reference_pairs.shape[1], (settings.batch,), generator=generator, device=policy.device
            )
            logits_policy = self.discriminator(self._standardised(policy[:, take]))
            logits_reference = self.discriminator(self._standardised(self.reference_pairs[:, refs]))
            loss = (
                nn.functional.softplus(-logits_policy).mean()
                + nn.functional.softplus(logits_reference).mean()
            )
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    def _keep_reference(self, pairs: torch.Tensor) -> None:
        self.reference_pairs = pairs
        self.mean = pairs.mean(1, keepdim=True)
        self.std = pairs.std(1, keepdim=True).clamp_min(1e-3)

    def _standardised(self, pairs: torch.Tensor) -> torch.Tensor:
        return ((pairs - self.mean) / self.std).clamp(-10.0, 10.0)

    def _by_agent(self, pairs: torch.Tensor) -> torch.Tensor:
        """Rows laid out agent by agent (a rollout step's, or several steps' concatenated) as
        ``(agents, pairs, features)``."""
        agents, envs = self.context.num_agents, self.context.envs_per_agent
        return pairs.view(-1, agents, envs, pairs.shape[-1]).transpose(0, 1).flatten(1, 2)

    def _pairs(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Each row's flattened observation and encoded action, as floats."""
        if isinstance(self.action_space, gym.spaces.Discrete):  # indices from 0, as a policy samples them
            encoded = nn.functional.one_hot(action.long().view(-1), int(self.action_space.n)).float()
        else:
            encoded = action.float().flatten(1)
        return torch.cat([obs.float().flatten(1), encoded], dim=1)

    def _to_env(self, action: torch.Tensor) -> torch.Tensor:
        """A sampled action as the env takes it (a discrete index shifted to the space's start)."""
        if isinstance(self.action_space, gym.spaces.Discrete):
            return action + int(self.action_space.start)
        return action.view(-1, *self.action_space.shape)

    def _in_box(self, action: torch.Tensor) -> torch.Tensor:
        """Continuous actions clipped into the action box (as the env applies them)."""
        if isinstance(self.action_space, gym.spaces.Box):
            low = torch.as_tensor(self.action_space.low, device=action.device)
            high = torch.as_tensor(self.action_space.high, device=action.device)
            return torch.maximum(torch.minimum(action, high), low)
        return action


class StackedDiscriminator(nn.Module):
    """One small MLP per agent, held as stacked weights: ``(agents, pairs, features)`` in, one
    logit per pair out, ``(agents, pairs)``."""

    def __init__(self, agents: int, features: int, hidden: int = HIDDEN, seed: int = REFERENCE_SEED):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)  # not torch's global RNG: runs repeat exactly
        self.w1 = nn.Parameter(torch.randn(agents, features, hidden, generator=generator) / features**0.5)
        self.b1 = nn.Parameter(torch.zeros(agents, 1, hidden))
        self.w2 = nn.Parameter(torch.randn(agents, hidden, 1, generator=generator) / hidden**0.5)
        self.b2 = nn.Parameter(torch.zeros(agents, 1, 1))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(torch.bmm(pairs, self.w1) + self.b1)
        return (torch.bmm(hidden, self.w2) + self.b2).squeeze(-1)


def _action_width(space: gym.Space) -> int:
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else gym.spaces.flatdim(space)
