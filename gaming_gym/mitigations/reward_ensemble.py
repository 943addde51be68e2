"""Reward-model ensembles (Coste et al., 2023): optimise a conservative aggregate of several
reward models instead of one.

For a run trained against a learned reward model (``PPOConfig.reward_model``, :mod:`gaming_gym.rlhf`),
the trainer collects the very comparisons that model was fitted on (its config and seed), draws
``members`` bootstrap resamples of them, and fits one model to each, with its own initial weights
(a few seconds each, once, before training; kept with the run's checkpoints). Each rollout step's
trained-on reward is then, over the members' standardised scores ``r_1 .. r_k``:

* ``aggregator = "mean"``: their mean (an ensemble only averages the models' errors);
* ``aggregator = "min"``: their minimum (worst-case optimisation, WCO);
* ``aggregator = "mean_minus_std"``: ``mean - lam * std`` (uncertainty-weighted optimisation, UWO).

Only the one model's score is swapped for the aggregate (``reward - proxy_reward + aggregate``),
so a mitigation applied before this one keeps its penalty. The members score the action as the
policy sampled it: the env's own action for ConfidentRater's ``Discrete`` answers (from 0).
The members disagree most where the comparisons were thin: off the SFT model's habits, where a
single model's errors are what PPO exploits. The run's proxy (what its report calls p) stays the
single model it names. The coefficient is the aggregator, with ``lam`` for UWO. Defaults, fixed in
advance: ``min`` over 5 members (Coste et al.'s WCO needs no coefficient). Log column:
``mitigation/reward_ensemble/spread`` (the members' mean standard deviation a step).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gaming_gym.errors import ConfigError
from gaming_gym.kernel import seeded_generator
from gaming_gym.knobs import require_choice, require_int, require_number
from gaming_gym.mitigations.base import Context, Mitigation, Step, register_mitigation

AGGREGATORS = ("mean", "min", "mean_minus_std")
MEMBER_SEED_STRIDE = 7_919
"""Member ``m`` is fitted with the reward model's seed plus ``(m + 1)`` times this: its own
bootstrap resample and initial weights."""


@dataclass(frozen=True)
class RewardEnsembleSettings:
    aggregator: str = "min"
    """how the members' scores become the reward: "mean", "min" or "mean_minus_std" (module docstring)"""
    lam: float = 1.0
    """weight of the members' standard deviation under "mean_minus_std" (unused otherwise)"""
    members: int = 5
    """reward models in the ensemble, each on its own bootstrap resample"""

    def __post_init__(self) -> None:
        require_choice("aggregator", self.aggregator, AGGREGATORS)
        require_number("lam", self.lam, 0.0, 1e6)
        require_int("members", self.members, 2, 64)


@register_mitigation
class RewardEnsemble(Mitigation):
    """The trained-on reward from an ensemble of reward models (module docstring)."""

    name = "reward_ensemble"
    Settings = RewardEnsembleSettings
    per_agent = ("lam",)
    sb3_unsupported = "the ensemble's reward replaces each step's reward as it is collected"

    def __init__(self, settings: Sequence[Any], context: Context):
        super().__init__(settings, context)
        if getattr(context, "reward_model", None) is None:
            raise ConfigError(
                "the reward_ensemble mitigation needs a run trained against a reward model "
                "(set reward_model to a reward model's folder)"
            )
        self.lam = self.per_agent_tensor("lam", context.envs_per_agent)
        self.members: list[torch.nn.Module] = []
        self._spread = torch.zeros(context.num_agents * context.envs_per_agent, device=context.device)
        self._steps = 0

    def prepare(self) -> None:
        """Fit the members on bootstrap resamples of the reward model's own comparisons."""
        from gaming_gym.rlhf import collect_comparisons, load_reward_model, train_reward_model

        _, config, _ = load_reward_model(self.context.reward_model, self.context.env_id)
        comparisons = collect_comparisons(config, "cpu")
        self.members = []
        for m in range(self.settings[0].members):
            seed = config.seed + (m + 1) * MEMBER_SEED_STRIDE
            rows = torch.randint(
                0,
                len(comparisons),
                (len(comparisons),),
                generator=seeded_generator(seed, torch.device("cpu")),
            )
            member_config = dataclasses.replace(config, seed=seed)
            model, _ = train_reward_model(member_config, "cpu", comparisons=comparisons.take(rows))
            self.members.append(model.to(self.context.device))

    def reward(self, step: Step, reward: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            scores = torch.stack([member(step.obs, step.action) for member in self.members])
        spread = scores.std(0)
        self._spread += spread
        self._steps += 1
        aggregator = self.settings[0].aggregator
        if aggregator == "mean":
            aggregate = scores.mean(0)
        elif aggregator == "min":
            aggregate = scores.min(0).values
        else:
            aggregate = scores.mean(0) - self.lam * spread
        return reward - step.info["proxy_reward"] + aggregate  # the one model's score swapped out only

    def after_iteration(self) -> dict[str, torch.Tensor]:
        spread = self._spread / max(self._steps, 1)
        self._spread, self._steps = torch.zeros_like(self._spread), 0
        return {"spread": spread.view(self.context.num_agents, -1).mean(1)}

    def state(self, agent: int) -> dict[str, Any]:
        """The members' weights (the same for every agent of a stack)."""
        return {"members": [{k: v.cpu().clone() for k, v in m.state_dict().items()} for m in self.members]}

    def load_state(self, agent: int, state: Mapping[str, Any]) -> None:
        if not state or self.members:
            return
        from gaming_gym.rlhf import load_reward_model

        template, _, _ = load_reward_model(self.context.reward_model, self.context.env_id)
        for saved in state["members"]:
            member = copy.deepcopy(template)
            member.load_state_dict(saved)
            self.members.append(member.to(self.context.device).requires_grad_(False))
