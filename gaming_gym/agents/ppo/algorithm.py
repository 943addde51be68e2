"""The PPO algorithm: collect a rollout, estimate advantages, update the policy.

After CleanRL's ``ppo.py``, split into three functions that read top to bottom:
:func:`collect_rollout` steps the batched env with the current policy (subtracting the KL
penalty from the rewards when there is one), :func:`compute_gae` turns the rollout into
advantages and value targets, and :func:`ppo_update` runs the clipped-objective minibatch
epochs. Everything stays on the rollout's torch device; :mod:`~gaming_gym.agents.ppo.training`
ties the three into a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
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
) -> tuple[Rollout, torch.Tensor]:
    """Step the batched env ``num_steps`` times with the current policy; return the rollout and the
    observation to continue from. Actions are sampled from ``generator`` (on ``obs``'s device;
    torch's global RNG when None).

    The env resets ended episodes within the same step, so where an episode was *truncated* its
    last observation comes from ``info["final_obs"]``; its value is kept to bootstrap from.

    With a ``reference`` and ``config.kl_coef > 0``, each step's reward loses
    ``kl_coef * log(pi(a_t|s_t) / pi_ref(a_t|s_t))`` before ``reward_scale``, as RLHF's PPO does
    (Ziegler et al. 2019; Ouyang et al. 2022). Its expectation over the action is
    ``kl_coef * KL(pi(.|s_t) || pi_ref(.|s_t))``, but unlike that analytic per-state KL it depends
    on the action taken, so the policy gradient pulls each state's action distribution towards
    the reference. The analytic KL is the same for every action at ``s_t``, so as a reward it only
    penalises *reaching* states where the policy differs (measured on the tests' Corridor env: 10 x
    the analytic KL left the KL from the initial policy where no penalty did; 10 x the log-ratio
    cut it 77-fold). The analytic KL is kept for the log, in ``Rollout.kl_reference``; both stay
    on the device (no host sync per step).
    """
    steps, n = config.num_steps, config.num_envs
    device = obs.device
    penalised = reference is not None and config.kl_coef > 0
    buffers = {
        name: torch.zeros(steps, n, device=device)
        for name in ("log_probs", "values", "rewards", "final_values")
    }
    kl_buffers = {
        name: torch.zeros(steps, n, device=device) for name in ("kl_penalty", "kl_reference") if penalised
    }
    terminated_buffer = torch.zeros(steps, n, dtype=torch.bool, device=device)
    truncated_buffer = torch.zeros_like(terminated_buffer)
    obs_buffer, action_buffer = [], []
    for step in range(steps):
        norm_obs = agent.normalise(obs, update=True)
        distribution = agent.distribution(norm_obs)
        action = agent.head.sample(distribution, generator)
        log_prob = distribution.log_prob(action)
        if penalised:
            reference_distribution = reference.action_distribution(obs)
            log_ratio = log_prob - reference_distribution.log_prob(action)
            kl_buffers["kl_penalty"][step] = config.kl_coef * log_ratio
            kl_buffers["kl_reference"][step] = kl_divergence(distribution, reference_distribution)
        obs, proxy, terminated, truncated, info = env.step(agent.head.to_env(action))
        reward = proxy if config.reward == "proxy" else info["true_reward"]
        if penalised:
            reward = reward - kl_buffers["kl_penalty"][step]

        obs_buffer.append(norm_obs)
        action_buffer.append(action)
        buffers["log_probs"][step] = log_prob
        buffers["values"][step] = agent.value(norm_obs)
        buffers["rewards"][step] = reward * config.reward_scale
        terminated_buffer[step], truncated_buffer[step] = terminated, truncated
        if bool(truncated.any()):
            final_obs = agent.normalise(info["final_obs"][truncated])
            buffers["final_values"][step, truncated] = agent.value(final_obs)

    rollout = Rollout(
        obs=torch.stack(obs_buffer),
        actions=torch.stack(action_buffer),
        terminated=terminated_buffer,
        truncated=truncated_buffer,
        next_value=agent.value(agent.normalise(obs)),
        **buffers,
        **kl_buffers,
    )
    return rollout, obs


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


def ppo_update(
    agent: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    config: PPOConfig,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """``update_epochs`` passes of clipped-objective minibatch updates; returns the loss statistics.

    Minibatch orders are drawn from ``generator`` (torch's global RNG when None).
    """
    obs = rollout.obs.flatten(0, 1)
    actions = rollout.actions.flatten(0, 1)
    old_log_probs, old_values = rollout.log_probs.flatten(), rollout.values.flatten()
    advantages, returns = advantages.flatten(), returns.flatten()
    stats: dict[str, list[float]] = {
        "policy_loss": [],
        "value_loss": [],
        "entropy": [],
        "approx_kl": [],
        "clipfrac": [],
    }
    for _ in range(config.update_epochs):
        order = torch.randperm(config.batch_size, device=obs.device, generator=generator)
        for rows in order.split(config.minibatch_size):
            distribution = agent.distribution(obs[rows])
            log_ratio = distribution.log_prob(actions[rows]) - old_log_probs[rows]
            ratio = log_ratio.exp()
            with torch.no_grad():
                stats["approx_kl"].append(float(((ratio - 1) - log_ratio).mean()))
                stats["clipfrac"].append(float(((ratio - 1).abs() > config.clip_coef).float().mean()))

            minibatch_advantages = advantages[rows]
            if config.norm_adv:
                minibatch_advantages = (minibatch_advantages - minibatch_advantages.mean()) / (
                    minibatch_advantages.std() + 1e-8
                )
            clipped_ratio = ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
            policy_loss = -torch.min(
                minibatch_advantages * ratio, minibatch_advantages * clipped_ratio
            ).mean()
            value_loss = _value_loss(agent.value(obs[rows]), old_values[rows], returns[rows], config)
            entropy = distribution.entropy().mean()
            loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss

            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
            optimizer.step()
            stats["policy_loss"].append(policy_loss.item())
            stats["value_loss"].append(value_loss.item())
            stats["entropy"].append(entropy.item())
        if config.target_kl is not None and stats["approx_kl"][-1] > config.target_kl:
            break
    summary = {name: float(np.mean(values)) for name, values in stats.items()}
    summary["explained_variance"] = _explained_variance(rollout.values.flatten(), returns)
    return summary


def _value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, config: PPOConfig):
    if not config.clip_vloss:
        return 0.5 * (values - returns).square().mean()
    clipped = old_values + (values - old_values).clamp(-config.clip_coef, config.clip_coef)
    return 0.5 * torch.max((values - returns).square(), (clipped - returns).square()).mean()


def _explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    variance = float(target.var())
    return math.nan if variance == 0 else 1.0 - float((target - predicted).var()) / variance
