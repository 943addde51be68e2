"""The PPO algorithm for a stack of N >= 1 agents: collect a rollout, estimate advantages, update.

After CleanRL's ``ppo.py``, split into functions that read top to bottom: :func:`collect_rollout`
steps the batched env with every agent's current policy (each mitigation transforming the
rewards), :func:`compute_gae` turns the rollout into advantages and value targets, and
:func:`ppo_update` runs the clipped-objective minibatch epochs, each agent stepped by its own
optimiser. Everything stays on the rollout's torch device; :mod:`~gaming_gym.agents.ppo.training`
ties them into runs. The layout of a stack's tensors is :mod:`~gaming_gym.agents.ppo.stack`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from gaming_gym.agents.ppo.stack import Coefficients, StackedAgents, by_agent
from gaming_gym.mitigations import Mitigation, Step


@dataclass
class Rollout:
    """``num_steps`` transitions of every env; tensors shaped ``(num_steps, N * num_envs, ...)``."""

    obs: torch.Tensor  # normalised observations the actions were chosen on
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor  # the trained-on reward, as the mitigations left it, scaled
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_values: torch.Tensor  # V(last observation) where truncated, else 0
    next_value: torch.Tensor  # (N * num_envs,) V of the observation after the rollout


@torch.no_grad()
def collect_rollout(
    agents: StackedAgents,
    env: gym.vector.VectorEnv,
    obs: torch.Tensor,
    shared: Any,
    coefficients: Coefficients,
    generators: Sequence[torch.Generator],
    mitigations: Sequence[Mitigation] = (),
) -> tuple[Rollout, torch.Tensor]:
    """Step the batched env ``shared.num_steps`` times with the agents' current policies; return
    the rollout and the observation to continue from. Agent ``i`` samples its block of actions
    with noise drawn from ``generators[i]``, the whole rollout's at the start, so that the step
    of the agents (:meth:`StackedAgents.act`, compiled with ``compile``) takes tensors alone;
    ``shared`` holds the settings the stack shares (a ``PPOConfig``).

    The env resets ended episodes within the same step, so where an episode was *truncated* its
    last observation comes from ``info["final_obs"]``; its value is kept to bootstrap from,
    every step's final observations through the critic at once after the loop (nothing here
    waits for the device but the env's own autoreset). Each step's trained-on reward (the proxy,
    or ``info["true_reward"]``) goes through every mitigation's ``reward`` hook, in order, and
    is then scaled by ``reward_scale``.
    """
    steps, rows = shared.num_steps, obs.shape[0]
    device = obs.device
    buffers = {name: torch.zeros(steps, rows, device=device) for name in ("log_probs", "values", "rewards")}
    terminated_buffer = torch.zeros(steps, rows, dtype=torch.bool, device=device)
    truncated_buffer = torch.zeros_like(terminated_buffer)
    obs_buffer, action_buffer, final_obs_buffer = [], [], []
    noise = agents.head.noise((steps, rows), generators, device)  # all of it at once: see act
    for step in range(steps):
        norm_obs, action, log_prob, value, *outputs = agents.act(obs, noise[step])
        chosen_on = obs
        obs, proxy, terminated, truncated, info = env.step(agents.head.to_env(action))
        reward = proxy if shared.reward == "proxy" else info["true_reward"]
        if mitigations:
            distribution = agents.head.distribution_from(*outputs)
            seen = Step(chosen_on, action, log_prob, distribution, info)
            for mitigation in mitigations:
                reward = mitigation.reward(seen, reward)

        obs_buffer.append(norm_obs)
        action_buffer.append(action)
        buffers["log_probs"][step] = log_prob
        buffers["values"][step] = value
        buffers["rewards"][step] = reward * coefficients.reward_scale
        terminated_buffer[step], truncated_buffer[step] = terminated, truncated
        final_obs_buffer.append(agents.normalise(info["final_obs"]))  # with this step's statistics

    rollout = Rollout(
        obs=torch.stack(obs_buffer),
        actions=torch.stack(action_buffer),
        terminated=terminated_buffer,
        truncated=truncated_buffer,
        final_values=torch.where(truncated_buffer, agents.value(torch.stack(final_obs_buffer)), 0.0),
        next_value=agents.value(agents.normalise(obs)),
        **buffers,
    )
    return rollout, obs


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float | torch.Tensor,
    gae_lambda: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and value targets (returns), shaped ``(steps, envs)``;
    ``gamma`` and ``gae_lambda`` are numbers or one value per env (column).

    At step ``t`` the value that follows is ``values[t + 1]`` (``next_value`` after the last
    step), except where the episode ended at ``t``: a terminated episode is worth nothing after
    its end, while a truncated one is bootstrapped from the value of its last observation,
    ``final_values[t]``. The advantage recursion never crosses an episode end.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        following = torch.where(truncated[t], final_values[t], following)
        delta = rewards[t] + gamma * following * (~terminated[t]) - values[t]
        running = delta + gamma * gae_lambda * (~(terminated[t] | truncated[t])) * running
        advantages[t] = running
    return advantages, advantages + values


def rollout_advantages(rollout: Rollout, coefficients: Coefficients) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`compute_gae` of a rollout, with each agent's gamma and lambda on its envs."""
    return compute_gae(
        rollout.rewards,
        rollout.values,
        rollout.terminated,
        rollout.truncated,
        rollout.final_values,
        rollout.next_value,
        coefficients.gamma,
        coefficients.gae_lambda,
    )


def ppo_update(
    agents: StackedAgents,
    optimizers: Sequence[torch.optim.Optimizer],
    rollout: Rollout,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    shared: Any,
    coefficients: Coefficients,
    generators: Sequence[torch.Generator],
    training: Sequence[bool],
    mitigations: Sequence[Mitigation] = (),
) -> dict[str, torch.Tensor]:
    """Every agent's ``update_epochs`` of clipped-objective minibatch updates, as one.

    Each agent draws its minibatch orders from its own generator over its own transitions and
    its gradient is clipped and stepped by its own optimiser; one backward pass serves all (their
    parameters are disjoint, so each gets the gradient of its own loss). Agents not ``training``
    (stopped early), and those whose ``target_kl`` ended their epochs, draw nothing and are not
    stepped. Returns each minibatch's statistics on the device, shaped ``(minibatches, N)``,
    NaN where an agent was not updated. Nothing here waits for the device but a ``target_kl``
    check, once an epoch, when some agent has one.
    """
    n = len(agents)
    batch = _packed_batch(rollout, advantages, returns, n)
    size = batch.rows.shape[0] // n
    device = rollout.obs.device
    agent_index = torch.arange(n, device=device)
    updating = list(training)
    stats: list[dict[str, torch.Tensor]] = []
    for _ in range(shared.update_epochs):
        if not any(updating):
            break
        orders = torch.stack(
            [
                torch.randperm(size, device=device, generator=generator)
                if active
                else torch.arange(size, device=device)
                for active, generator in zip(updating, generators, strict=True)
            ],
            dim=1,
        )
        unchanged = torch.tensor([not active for active in updating], device=device)
        for rows in orders.split(shared.minibatch_size):
            minibatch = batch.minibatch(rows * n + agent_index)
            loss, minibatch_stats = ppo_loss(agents, minibatch, shared, coefficients, mitigations)
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.sum().backward()
            for i, active in enumerate(updating):
                if active:
                    nn.utils.clip_grad_norm_(agents.agents[i].parameters(), coefficients.max_grad_norm[i])
                    optimizers[i].step()
            stats.append(
                {name: value.masked_fill(unchanged, torch.nan) for name, value in minibatch_stats.items()}
            )
        updating = _within_target_kl(updating, stats[-1]["approx_kl"], coefficients.target_kl)
    return {name: torch.stack([minibatch[name] for minibatch in stats]) for name in stats[0]}


@dataclass
class PackedBatch:
    """A rollout's training data, each transition's fields side by side in one row of ``rows``
    (``(steps * envs * N, width)``, agent by agent within a step's env), so that a minibatch is
    one row gather rather than one advanced index per field (each costs as much as the gather)."""

    rows: torch.Tensor
    fields: dict[str, tuple[int, tuple[int, ...], torch.dtype]]  # name: (first column, shape, dtype)

    def minibatch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The fields of rows ``index`` (``(rows, N)``), each shaped ``(rows, N, *shape)``: views
        of one gather laid out agent by agent, so each agent's rows are contiguous."""
        rows, agents = index.shape
        gathered = self.rows.index_select(0, index.T.flatten()).view(agents, rows, -1)
        minibatch = {}
        for name, (start, shape, dtype) in self.fields.items():
            width = math.prod(shape)
            values = gathered[..., start : start + width].reshape(agents, rows, *shape).transpose(0, 1)
            minibatch[name] = values if dtype == values.dtype else values.to(dtype)
        return minibatch


def _packed_batch(rollout: Rollout, advantages: torch.Tensor, returns: torch.Tensor, n: int) -> PackedBatch:
    """The update's fields of every transition, laid out by :func:`by_agent` and packed."""
    named = {
        "obs": rollout.obs,
        "actions": rollout.actions,
        "log_probs": rollout.log_probs,
        "values": rollout.values,
        "advantages": advantages,
        "returns": returns,
    }
    columns, fields, start = [], {}, 0
    for name, values in named.items():
        per_agent = by_agent(values, n)  # (steps * envs, N, *shape)
        shape = tuple(per_agent.shape[2:])
        fields[name] = (start, shape, values.dtype)
        start += math.prod(shape)
        columns.append(per_agent.reshape(*per_agent.shape[:2], -1).float())  # small integer actions are exact
    return PackedBatch(torch.cat(columns, dim=-1).flatten(0, 1), fields)


def _within_target_kl(
    updating: list[bool], approx_kl: torch.Tensor, targets: Sequence[float | None]
) -> list[bool]:
    """The agents still updating after an epoch: those whose approximate KL (of its last
    minibatch) has not passed their ``target_kl``."""
    if all(target is None for target in targets):
        return updating
    kl = approx_kl.tolist()
    return [
        active and (target is None or kl[i] <= target)
        for i, (active, target) in enumerate(zip(updating, targets, strict=True))
    ]


def ppo_loss(
    agents: StackedAgents,
    minibatch: dict[str, torch.Tensor],
    shared: Any,
    coefficients: Coefficients,
    mitigations: Sequence[Mitigation] = (),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each agent's loss on its rows of one minibatch (shaped ``(rows, N, ...)``): clipped
    surrogate objective, value loss, entropy bonus and the mitigations' ``loss`` terms, shaped
    ``(N,)``; and its statistics (detached, on the device)."""
    distribution = agents.distribution(minibatch["obs"])
    log_ratio = distribution.log_prob(minibatch["actions"]) - minibatch["log_probs"]
    ratio = log_ratio.exp()
    advantages = minibatch["advantages"]
    if shared.norm_adv:
        advantages = (advantages - advantages.mean(0)) / (advantages.std(0) + 1e-8)
    clip = coefficients.clip_coef
    clipped_ratio = ratio.clamp(1 - clip, 1 + clip)
    policy_loss = -torch.min(advantages * ratio, advantages * clipped_ratio).mean(0)
    value_loss = _value_loss(agents.value(minibatch["obs"]), minibatch, clip, shared.clip_vloss)
    entropy = distribution.entropy().mean(0)
    loss = policy_loss - coefficients.ent_coef * entropy + coefficients.vf_coef * value_loss
    for mitigation in mitigations:
        term = mitigation.loss(minibatch, distribution)
        if term is not None:
            loss = loss + term
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy.detach(),
            "approx_kl": ((ratio - 1) - log_ratio).mean(0),
            "clipfrac": ((ratio - 1).abs() > clip).float().mean(0),
        }
    return loss, stats


def _value_loss(values: torch.Tensor, minibatch: dict[str, torch.Tensor], clip: torch.Tensor, clipped: bool):
    old_values, returns = minibatch["values"], minibatch["returns"]
    if not clipped:
        return 0.5 * (values - returns).square().mean(0)
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.max((values - returns).square(), (clipped_values - returns).square()).mean(0)
