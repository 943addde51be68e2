"""KL penalty toward the initial policy (RLHF's penalty, Ziegler et al. 2019; Gao et al. 2022).

Each step's trained-on reward loses ``beta * log(pi(a|s) / pi_0(a|s))``, where ``pi_0`` is the
policy as training started: the untrained network (near uniform, so the penalty acts much like
an entropy bonus), or the SFT model when the run starts from one (``PPOConfig.start = "sft"``:
RLHF's penalty toward the SFT model). Its expectation over the action is ``beta * KL(pi(.|s) ||
pi_0(.|s))``, but unlike that analytic per-state KL it depends on the action taken, so the policy
gradient pulls each state's action distribution toward the reference. The analytic KL is the same
for every action at ``s``, so as a reward it only penalises *reaching* states where the policy
differs (measured on the tests' Corridor env: 10 x the analytic KL left the KL from the initial
policy where no penalty did; 10 x the log-ratio cut it 77-fold).

The penalty is taken off before ``reward_scale``; logged returns stay unpenalised. Log columns:
``mitigation/kl_initial/kl`` (mean KL(pi || pi_0) per state) and ``.../penalty`` (mean penalty a
step, unscaled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions import kl_divergence

from gaming_gym.knobs import require_number
from gaming_gym.mitigations.base import ActingPolicy, Context, Mitigation, Step, register_mitigation


@dataclass(frozen=True)
class KLSettings:
    beta: float = 0.1
    """weight of the penalty, the KL coefficient (0 turns it off)"""

    def __post_init__(self) -> None:
        require_number("beta", self.beta, 0.0, 1e6)


@register_mitigation
class KLToInitial(Mitigation):
    """A KL penalty toward the policy training started from (module docstring)."""

    name = "kl_initial"
    Settings = KLSettings
    per_agent = ("beta",)
    sb3_unsupported = (
        "a KL penalty needs the policy's log-probabilities as each step is collected, before "
        "stable-baselines3 computes its advantages"
    )

    def __init__(self, settings: Sequence[Any], context: Context):
        super().__init__(settings, context)
        rows = context.envs_per_agent
        self.beta = self.per_agent_tensor("beta", rows)
        self._kl = torch.zeros(context.num_agents * rows, device=context.device)
        self._penalty = torch.zeros_like(self._kl)
        self._steps = 0

    def reference(self) -> ActingPolicy:
        return self.context.initial_policy()

    def reward(self, step: Step, reward: torch.Tensor) -> torch.Tensor:
        reference = self.reference().action_distribution(step.obs)
        penalty = self.beta * (step.log_prob - reference.log_prob(step.action))
        self._kl += kl_divergence(step.distribution, reference)
        self._penalty += penalty
        self._steps += 1
        return reward - penalty

    def after_iteration(self) -> dict[str, torch.Tensor]:
        """The iteration's mean KL per state and mean penalty a step, per agent."""
        agents, steps = self.context.num_agents, max(self._steps, 1)
        logs = {
            "kl": (self._kl / steps).view(agents, -1).mean(1),
            "penalty": (self._penalty / steps).view(agents, -1).mean(1),
        }
        self._kl, self._penalty, self._steps = torch.zeros_like(self._kl), torch.zeros_like(self._penalty), 0
        return logs
