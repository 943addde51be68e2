"""N PPO agents acting as one: the networks, their per-agent coefficients, and the layout.

Goodhart research is sweeps over seeds and settings, and on a CPU a run of one small agent spends
most of its time in the overhead of many small tensor operations, not in arithmetic. So the
trainer always trains a *stack* of N >= 1 agents (a run of its own is a stack of one): agents
that differ only in settings that keep every tensor's shape share each operation.

Layout: a stack's batch is a single agent's batch with agent ``i``'s rows the ``i``-th of ``N``
equal blocks (of the envs in a rollout step: ``(N * envs, ...)``); a minibatch is shaped ``(rows,
N, ...)``, so a mean over its first dimension gives each agent's own value.

* :class:`StackedAgents`: one forward pass for all N networks (on a CPU each network on its
  block; on an accelerator ``torch.func.vmap`` over the agents' parameters, stacked anew at each
  call so gradients reach each agent's own), each agent's observation statistics its own; a
  stack of one calls its network directly.
* :class:`Coefficients`: the per-agent settings, each decided once to live as a tensor with one
  value per agent (or per row) or as a per-agent tuple, never as a float in one place and a
  tensor in another.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from gaming_gym.agents.ppo.cloning import smoothed
from gaming_gym.agents.ppo.networks import ActorCritic, RunningMeanStd, acting
from gaming_gym.kernel import Policy


class StackedAgents:
    """``N`` :class:`ActorCritic` networks acting as one on a batch laid out agent by agent.

    On a CPU each agent's network runs on its block in turn; on an accelerator each call stacks
    the agents' current parameters and maps one network's forward pass over them with
    ``torch.func.vmap``. Either way the agents' own parameters stay the leaves gradients reach.
    Observation statistics are kept stacked, and each agent's buffers are views of its row, so
    its ``state_dict`` is current. A stack of one uses its network and statistics as they are:
    the same arithmetic as an agent trained alone, without the mapping's overhead.
    """

    def __init__(self, agents: Sequence[ActorCritic], compile: bool = False):
        self.agents = list(agents)
        self.norm_obs = self.agents[0].norm_obs
        self.head = StackedHead(self.agents[0].head, len(self.agents))
        self.frozen = torch.zeros(
            len(self.agents), dtype=torch.bool, device=self.agents[0].obs_rms.mean.device
        )
        """agents whose statistics no longer change (early stopping ended them)"""
        if len(self.agents) > 1:
            self._base = copy.deepcopy(self.agents[0]).to("meta")  # the shape every agent shares
            self._names = [name for name, _ in self.agents[0].named_parameters()]
            self._parameters = [
                [dict(agent.named_parameters())[name] for agent in self.agents] for name in self._names
            ]
            self.obs_rms = _stacked_statistics(self.agents)
        self.act = torch.compile(self._act, dynamic=False) if compile else self._act
        """:meth:`_act`, fused by ``torch.compile`` when the stack was made with ``compile``"""

    def __len__(self) -> int:
        return len(self.agents)

    def normalise(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        """Each agent's block of raw observations, flattened and normalised by its statistics."""
        if len(self) == 1:
            return self.agents[0].normalise(obs, update)
        obs = obs.float().flatten(1)
        if not self.norm_obs:
            return obs
        blocks = obs.view(len(self), -1, obs.shape[-1])
        if update:
            self.obs_rms.update(blocks, self.frozen)
        return self.obs_rms.normalise(blocks).view_as(obs)

    def distribution(self, norm_obs: torch.Tensor) -> torch.distributions.Distribution:
        return self.head.distribution_from(*self.policy_outputs(norm_obs))

    def value(self, norm_obs: torch.Tensor) -> torch.Tensor:
        if len(self) == 1:
            return self.agents[0].value(norm_obs)
        return self._map(norm_obs, "value")[0]

    def action_distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        return self.distribution(self.normalise(obs))

    def _act(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One rollout step of every agent on raw observations, with the step's ``noise``
        (:meth:`StackedHead.noise`): the observations folded into the statistics and normalised,
        the actions drawn, their log-probabilities, the values, and the policy head's outputs
        (its distribution's parameters). Tensors in, tensors out: what ``torch.compile`` fuses."""
        norm_obs = self.normalise(obs, update=True)
        outputs = self.policy_outputs(norm_obs)
        distribution = self.head.distribution_from(*outputs)
        action = self.head.draw(distribution, noise)
        return norm_obs, action, distribution.log_prob(action), self.value(norm_obs), *outputs

    def policy_outputs(self, norm_obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every agent's policy head outputs (its distribution's parameters) on normalised
        observations laid out as :meth:`_map` takes them."""
        if len(self) == 1:
            agent = self.agents[0]
            return agent.head.outputs(agent.actor(norm_obs))
        return self._map(norm_obs, "policy")

    def policy(self, deterministic: bool, generators: Sequence[torch.Generator]) -> Policy:
        """The agents' batched policy on raw observations, each sampling its block from its own
        generator (:meth:`ActorCritic.policy`'s, agent by agent)."""
        return acting(self, deterministic, generators)

    def _map(self, norm_obs: torch.Tensor, part: str) -> tuple[torch.Tensor, ...]:
        """``part`` of every agent's forward pass on its block of ``norm_obs`` (``(..., N * rows,
        features)``, or a minibatch ``(rows, N, features)``), as tensors laid out like it.

        On a CPU each agent's network runs on its own block, one after another: N matrix products
        of an agent's size beat one batched product there (a 16-agent minibatch's forward and
        backward pass took 65 ms so against 82 ms mapped). On an accelerator one mapped pass
        beats N launches of small kernels.
        """
        n = len(self)
        lead, rows, features = norm_obs.shape[:-2], norm_obs.shape[-2], norm_obs.shape[-1]
        blocks = norm_obs.reshape(*lead, n, rows // n, features)
        if norm_obs.device.type == "cpu":
            outputs = [agent(blocks.select(-3, i), part) for i, agent in enumerate(self.agents)]
            return tuple(
                torch.stack(each, dim=len(lead)).reshape(*lead, rows, *each[0].shape[len(lead) + 1 :])
                for each in zip(*outputs, strict=True)
            )
        blocks = blocks.movedim(-3, 0)  # (n, *lead, rows/n, f)
        parameters = {
            name: torch.stack(each) for name, each in zip(self._names, self._parameters, strict=True)
        }

        def one_agent(params: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return functional_call(self._base, params, (x,), {"part": part})

        # each agent's rows as one (rows, features) matrix: vmap maps batched matmuls best in 2-d
        outputs = vmap(one_agent)(parameters, blocks.reshape(n, -1, features))
        return tuple(
            output.reshape(*blocks.shape[:-1], *output.shape[2:])
            .movedim(0, len(lead))
            .reshape(*lead, rows, *output.shape[2:])
            for output in outputs
        )


def _stacked_statistics(agents: Sequence[ActorCritic]) -> RunningMeanStd:
    """The agents' observation statistics in one module (counts shaped ``(N, 1)``), each agent's
    buffers then views of its row."""
    stacked = RunningMeanStd((len(agents), agents[0].obs_rms.mean.shape[-1])).to(
        agents[0].obs_rms.mean.device
    )
    stacked.mean.copy_(torch.stack([agent.obs_rms.mean for agent in agents]))
    stacked.var.copy_(torch.stack([agent.obs_rms.var for agent in agents]))
    stacked.count = torch.stack([agent.obs_rms.count for agent in agents]).unsqueeze(1)
    for row, agent in enumerate(agents):
        agent.obs_rms.mean, agent.obs_rms.var, agent.obs_rms.count = (
            stacked.mean[row],
            stacked.var[row],
            stacked.count[row, 0],
        )
    return stacked


class StackedHead:
    """The agents' policy head: each agent samples its block from its own generator, drawing
    what its head would draw in a run of its own."""

    def __init__(self, head: nn.Module, agents: int):
        self._head = head
        self._agents = agents

    def distribution_from(self, *outputs: torch.Tensor) -> torch.distributions.Distribution:
        return self._head.distribution_from(*outputs)

    def noise(self, shape: tuple[int, ...], generators: Sequence[torch.Generator], device) -> torch.Tensor:
        """Noise for a batch of ``shape`` (its last dimension the stack's rows), each agent's block
        drawn from its own generator, as its head draws it in a run of its own."""
        *lead, rows = shape
        blocks = [self._head.noise((*lead, rows // self._agents), g, device) for g in generators]
        return torch.cat(blocks, dim=len(lead))

    def draw(self, distribution: torch.distributions.Distribution, noise: torch.Tensor) -> torch.Tensor:
        return self._head.draw(distribution, noise)

    @torch.no_grad()
    def sample(
        self, distribution: torch.distributions.Distribution, generators: Sequence[torch.Generator]
    ) -> torch.Tensor:
        device = next(self._head.parameters()).device
        return self.draw(distribution, self.noise(tuple(distribution.batch_shape), generators, device))

    def greedy(self, distribution: torch.distributions.Distribution) -> torch.Tensor:
        return self._head.greedy(distribution)

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return self._head.to_env(action)


class SmoothedStack:
    """Behaviour clones of a stack's agents (one :class:`~gaming_gym.agents.ppo.cloning.
    SmoothedPolicy` each) acting as one reference policy on the stack's rows."""

    def __init__(self, clones: Sequence[Any]):
        self.clones = list(clones)
        self._networks = StackedAgents([clone.clone for clone in self.clones])

    def action_distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        first = self.clones[0]
        return smoothed(self._networks.action_distribution(obs), first.uniform_mix, first.min_std)


@dataclass(frozen=True)
class Coefficients:
    """The per-agent settings of a stack, where the algorithm reads them (module docstring).

    Rollout settings are per row (``(N * envs,)``: each agent's value on each of its envs), loss
    settings per agent (``(N,)``), and the gradient clip and ``target_kl`` one Python value per
    agent (each agent's optimiser steps alone). The learning rate lives in each agent's optimiser.
    """

    gamma: torch.Tensor
    gae_lambda: torch.Tensor
    reward_scale: torch.Tensor
    clip_coef: torch.Tensor
    ent_coef: torch.Tensor
    vf_coef: torch.Tensor
    max_grad_norm: tuple[float, ...]
    target_kl: tuple[float | None, ...]

    @classmethod
    def of(cls, configs: Sequence[Any], device: torch.device) -> Coefficients:
        envs = configs[0].num_envs

        def per_agent(name: str) -> torch.Tensor:
            return torch.tensor([float(getattr(config, name)) for config in configs], device=device)

        return cls(
            **{
                name: per_agent(name).repeat_interleave(envs)
                for name in ("gamma", "gae_lambda", "reward_scale")
            },
            **{name: per_agent(name) for name in ("clip_coef", "ent_coef", "vf_coef")},
            max_grad_norm=tuple(float(config.max_grad_norm) for config in configs),
            target_kl=tuple(config.target_kl for config in configs),
        )


def by_agent(values: torch.Tensor, agents: int) -> torch.Tensor:
    """``(steps, N * envs, ...)`` -> ``(steps * envs, N, ...)``: each agent's transitions in the
    order a run of its own flattens them."""
    steps, envs = values.shape[0], values.shape[1] // agents
    blocks = values.reshape(steps, agents, envs, *values.shape[2:]).transpose(1, 2)
    return blocks.reshape(steps * envs, agents, *values.shape[2:])


def agent_columns(values: torch.Tensor, agent: int, agents: int) -> torch.Tensor:
    """Agent ``agent``'s block of the env columns of ``values`` (``(steps, N * envs, ...)``)."""
    envs = values.shape[1] // agents
    return values[:, agent * envs : (agent + 1) * envs]


def agent_rows(values: torch.Tensor, agent: int, agents: int) -> torch.Tensor:
    """Agent ``agent``'s block of the rows of ``values`` (``(N * rows, ...)``)."""
    rows = values.shape[0] // agents
    return values[agent * rows : (agent + 1) * rows]
