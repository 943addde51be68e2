"""The PPO algorithm: collect a rollout, estimate advantages, update the policy.

After CleanRL's ``ppo.py``, split into three functions that read top to bottom:
:func:`collect_rollout` steps the batched env with the current policy (subtracting the KL
penalty from the rewards when there is one), :func:`compute_gae` turns the rollout into
advantages and value targets, and :func:`ppo_update` runs the clipped-objective minibatch
epochs. Everything stays on the rollout's torch device; :mod:`~gaming_gym.agents.ppo.training`
ties the three into a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import kl_divergence

from gaming_gym.agents.ppo.config import PPOConfig
from gaming_gym.agents.ppo.networks import ActorCritic, ReferencePolicy


@dataclass
class Rollout:
    """``num_steps`` transitions of every env; tensors shaped ``(num_steps, num_envs, ...)``."""

    obs: torch.Tensor  # normalised observations the actions were chosen on
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor  # the trained-on reward, less any KL penalty, scaled
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_values: torch.Tensor  # V(last observation) where truncated, else 0
    next_value: torch.Tensor  # (num_envs,) V of the observation after the rollout
    kl_penalty: torch.Tensor | None = None  # kl_coef * log(pi(a_t|s_t) / pi_ref(a_t|s_t)), taken off rewards
    kl_reference: torch.Tensor | None = None  # KL(pi(.|s_t) || pi_ref(.|s_t)), where penalised


@torch.no_grad()
def collect_rollout(
    agent: ActorCritic,
    env: gym.vector.VectorEnv,
    obs: torch.Tensor,
    config: PPOConfig,
    reference: ReferencePolicy | None = None,
    generator: torch.Generator | None = None,
    bootstrap: Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[Rollout, torch.Tensor]:
    """Step the batched env ``num_steps`` times with the current policy; return the rollout and the
    observation to continue from. Actions are sampled from ``generator`` (on ``obs``'s device;
    torch's global RNG when None).

    ``agent`` and ``config`` may also be stacked agents and their per-env settings
    (:mod:`~gaming_gym.agents.ppo.stacked`, whose ``bootstrap`` values every final observation
    at once, and whose coefficients are tensors of one value per env).

    The env resets ended episodes within the same step, so where an episode was *truncated* its
    last observation comes from ``info["final_obs"]``; its value is kept to bootstrap from (by
    :func:`bootstrap_values`, after the loop: nothing here waits for the device but the env's
    own autoreset). With a ``reference`` and ``config.kl_coef > 0``, each step's reward loses
    the :func:`kl_penalty` before ``reward_scale``.
    """
    steps, n = config.num_steps, config.num_envs
    device = obs.device
    # stacked agents' per-env coefficients (a tensor) come with a reference only where one is > 0
    penalised = reference is not None and (isinstance(config.kl_coef, torch.Tensor) or config.kl_coef > 0)
    names = ["log_probs", "values", "rewards"] + (["kl_penalty", "kl_reference"] if penalised else [])
    buffers = {name: torch.zeros(steps, n, device=device) for name in names}
    terminated_buffer = torch.zeros(steps, n, dtype=torch.bool, device=device)
    truncated_buffer = torch.zeros_like(terminated_buffer)
    obs_buffer, action_buffer, final_obs_buffer = [], [], []
    for step in range(steps):
        norm_obs = agent.normalise(obs, update=True)
        distribution = agent.distribution(norm_obs)
        action = agent.head.sample(distribution, generator)
        log_prob = distribution.log_prob(action)
        if penalised:
            penalty = kl_penalty(distribution, reference.action_distribution(obs), action, log_prob, config)
            buffers["kl_penalty"][step], buffers["kl_reference"][step] = penalty
        obs, proxy, terminated, truncated, info = env.step(agent.head.to_env(action))
        reward = proxy if config.reward == "proxy" else info["true_reward"]
        if penalised:
            reward = reward - buffers["kl_penalty"][step]

        obs_buffer.append(norm_obs)
        action_buffer.append(action)
        buffers["log_probs"][step] = log_prob
        buffers["values"][step] = agent.value(norm_obs)
        buffers["rewards"][step] = reward * config.reward_scale
        terminated_buffer[step], truncated_buffer[step] = terminated, truncated
        final_obs_buffer.append(agent.normalise(info["final_obs"]))  # with this step's statistics

    rollout = Rollout(
        obs=torch.stack(obs_buffer),
        actions=torch.stack(action_buffer),
        terminated=terminated_buffer,
        truncated=truncated_buffer,
        final_values=(bootstrap or bootstrap_values)(agent, torch.stack(final_obs_buffer), truncated_buffer),
        next_value=agent.value(agent.normalise(obs)),
        **buffers,
    )
    return rollout, obs


def kl_penalty(
    distribution: torch.distributions.Distribution,
    reference: torch.distributions.Distribution,
    action: torch.Tensor,
    log_prob: torch.Tensor,
    config: PPOConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RLHF's KL penalty on one step's reward, and the analytic KL it averages to (for the log).

    The penalty is ``kl_coef * log(pi(a_t|s_t) / pi_ref(a_t|s_t))``, as RLHF's PPO takes it off
    the reward (Ziegler et al. 2019; Ouyang et al. 2022). Its expectation over the action is
    ``kl_coef * KL(pi(.|s_t) || pi_ref(.|s_t))``, but unlike that analytic per-state KL it depends
    on the action taken, so the policy gradient pulls each state's action distribution towards
    the reference. The analytic KL is the same for every action at ``s_t``, so as a reward it only
    penalises *reaching* states where the policy differs (measured on the tests' Corridor env: 10 x
    the analytic KL left the KL from the initial policy where no penalty did; 10 x the log-ratio
    cut it 77-fold).
    """
    log_ratio = log_prob - reference.log_prob(action)
    return config.kl_coef * log_ratio, kl_divergence(distribution, reference)


def bootstrap_values(agent: ActorCritic, final_obs: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """V(last observation) where an episode was truncated, else 0; shaped ``(steps, envs)``.

    ``final_obs`` holds each step's last observations, normalised. Reading how many episodes
    each step truncated is the rollout's one host sync (not one a step). Each step's truncated
    envs still go through the critic as one batch, in env order: a matrix product's last bits
    depend on its batch size, and a seed reproduces its run bit for bit.
    """
    values = torch.zeros(truncated.shape, device=truncated.device)
    truncated_first = torch.argsort((~truncated).int(), dim=1, stable=True)  # then in env order
    for step, count in enumerate(truncated.sum(dim=1).tolist()):
        if count:
            rows = truncated_first[step, :count]
            values[step, rows] = agent.value(final_obs[step, rows])
    return values


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and value targets (returns), shaped ``(steps, envs)``.

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


def rollout_advantages(rollout: Rollout, gamma: Any, gae_lambda: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`compute_gae` of a rollout: its advantages and value targets."""
    return compute_gae(
        rollout.rewards,
        rollout.values,
        rollout.terminated,
        rollout.truncated,
        rollout.final_values,
        rollout.next_value,
        gamma,
        gae_lambda,
    )


def ppo_update(
    agent: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    config: PPOConfig,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """``update_epochs`` passes of clipped-objective minibatch updates.

    Returns each minibatch's loss statistics, stacked, on the device: reading them is left to the
    caller. Nothing here waits for the device but a ``target_kl`` check, once an epoch when set.
    Minibatch orders are drawn from ``generator`` (torch's global RNG when None).
    """
    batch = {
        "obs": rollout.obs.flatten(0, 1),
        "actions": rollout.actions.flatten(0, 1),
        "log_probs": rollout.log_probs.flatten(),
        "values": rollout.values.flatten(),
        "advantages": advantages.flatten(),
        "returns": returns.flatten(),
    }
    stats: list[dict[str, torch.Tensor]] = []
    for _ in range(config.update_epochs):
        order = torch.randperm(config.batch_size, device=rollout.obs.device, generator=generator)
        for rows in order.split(config.minibatch_size):
            minibatch = {name: data[rows] for name, data in batch.items()}
            loss, minibatch_stats = ppo_loss(agent, minibatch, config)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
            optimizer.step()
            stats.append(minibatch_stats)
        if config.target_kl is not None and float(stats[-1]["approx_kl"]) > config.target_kl:
            break
    return {name: torch.stack([minibatch[name] for minibatch in stats]) for name in stats[0]}


def ppo_loss(
    agent: ActorCritic, minibatch: dict[str, torch.Tensor], config: PPOConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One minibatch's loss: clipped surrogate objective, value loss and entropy bonus; and its
    statistics (detached, on the device).

    Means are over the minibatch's first dimension: a minibatch of stacked agents, shaped
    ``(rows, agents, ...)`` with coefficients of shape ``(agents,)``, gives each agent's loss and
    statistics, shaped ``(agents,)``, each from its own rows only.
    """
    distribution = agent.distribution(minibatch["obs"])
    log_ratio = distribution.log_prob(minibatch["actions"]) - minibatch["log_probs"]
    ratio = log_ratio.exp()
    advantages = minibatch["advantages"]
    if config.norm_adv:
        advantages = (advantages - advantages.mean(0)) / (advantages.std(0) + 1e-8)
    clipped_ratio = ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
    policy_loss = -torch.min(advantages * ratio, advantages * clipped_ratio).mean(0)
    value_loss = _value_loss(agent.value(minibatch["obs"]), minibatch["values"], minibatch["returns"], config)
    entropy = distribution.entropy().mean(0)
    loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy.detach(),
            "approx_kl": ((ratio - 1) - log_ratio).mean(0),
            "clipfrac": ((ratio - 1).abs() > config.clip_coef).float().mean(0),
        }
    return loss, stats


def _value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, config: PPOConfig):
    if not config.clip_vloss:
        return 0.5 * (values - returns).square().mean(0)
    clipped = old_values + (values - old_values).clamp(-config.clip_coef, config.clip_coef)
    return 0.5 * torch.max((values - returns).square(), (clipped - returns).square()).mean(0)
