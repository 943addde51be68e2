"""What a PPO stack offers its mitigations, and its one evaluation path.

:class:`StackContext` is the :class:`gaming_gym.mitigations.Context` of a stack: its agents'
initial policies, their behaviour clones (built once, kept with their checkpoints), held-out
play, their weights and evaluations. :func:`evaluate_stack` evaluates every agent at once, each
exactly as its own run's evaluation would: its episodes from its own evaluation seed, its actions
from its own freshly seeded generator, its KL from its initial self over the steps its own
evaluation runs (the length of its longest episode).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gaming_gym.agents.ppo.checkpoints import AgentRun
from gaming_gym.agents.ppo.cloning import SmoothedPolicy, build_clone, clone_from_state
from gaming_gym.agents.ppo.networks import kl_from
from gaming_gym.agents.ppo.stack import SmoothedStack, StackedAgents, agent_columns
from gaming_gym.evaluation import EpisodeReturns, env_factory, evaluate_blocks
from gaming_gym.kernel import Policy, seeded_generator
from gaming_gym.metrics import Evaluation
from gaming_gym.mitigations import Mitigation

EVAL_SEED_OFFSET = 1_000_003
"""Evaluation episodes are seeded ``config.seed + EVAL_SEED_OFFSET``: other episodes than training's."""

EVAL_COLUMNS = (
    "eval/proxy_return",
    "eval/true_return",
    "eval/kl_from_initial",
    "eval/d",
    "eval/holdout_true_return",
    "eval/deploy_true_return",
)
"""Log columns of an evaluation (the held-out one only with early stopping's check)."""


class StackContext:
    """The :class:`gaming_gym.mitigations.Context` of a PPO stack (module docstring)."""

    def __init__(self, runs: Sequence[AgentRun], env: gym.vector.VectorEnv, device: torch.device):
        self.runs = list(runs)
        config = self.runs[0].config
        self.num_agents = len(self.runs)
        self.envs_per_agent = config.num_envs
        self.device = device
        self.env_id, self.knobs = config.env_id, dict(config.knobs)
        self.reward_model = config.reward_model
        self.agents: StackedAgents | None = None  # set by the trainer once the agents are whole
        self.initial: StackedAgents | None = None
        self.clones: dict[str, list[SmoothedPolicy]] = {}
        self._stacked_clones: dict[str, SmoothedStack] = {}
        self._env = env

    def initial_policy(self) -> StackedAgents:
        return self.initial

    def clone(self, kind: str) -> SmoothedStack:
        """Each agent's behaviour clone of ``kind``, built from its seed the first time."""
        if kind not in self.clones:
            config = self.runs[0].config
            self.clones[kind] = [
                build_clone(kind, self.env_id, self.knobs, config.hidden_sizes, run.config.seed, self.device)
                for run in self.runs
            ]
        if kind not in self._stacked_clones:
            self._stacked_clones[kind] = SmoothedStack(self.clones[kind])
        return self._stacked_clones[kind]

    def restore_clone(self, kind: str, agent: int, state: dict[str, Any]) -> None:
        """Put back agent ``agent``'s clone of ``kind`` as its checkpoint saved it."""
        clones = self.clones.setdefault(kind, [None] * self.num_agents)
        clones[agent] = clone_from_state(self._env, self.runs[0].config.hidden_sizes, state, self.device)

    def clone_states(self, agent: int) -> dict[str, Any]:
        return {kind: clones[agent].state_dict() for kind, clones in self.clones.items()}

    def play(self, episodes: int, seed_offset: int) -> list[EpisodeReturns]:
        policy, seeds = self.seeded_policy(seed_offset)
        make = env_factory(self.env_id, self.knobs, self.device, compile=self.runs[0].config.compile)
        return evaluate_blocks(policy, make, episodes, seeds)

    def seeded_policy(self, seed_offset: int) -> tuple[Policy, list[int]]:
        """The agents' evaluation policy, each agent acting from a generator freshly seeded with
        its seed plus ``seed_offset``, and those seeds (its episodes' seeds too): every
        evaluation and held-out play of an agent is the one its own run would make."""
        seeds = [run.config.seed + seed_offset for run in self.runs]
        generators = [seeded_generator(seed, self.device) for seed in seeds]
        return self.agents.policy(self.runs[0].config.eval_deterministic, generators), seeds

    def agent_state(self, agent: int) -> dict[str, torch.Tensor]:
        return {name: tensor.clone() for name, tensor in self.runs[agent].agent.state_dict().items()}

    def evaluations(self, agent: int) -> list[Evaluation]:
        return self.runs[agent].evaluations


def evaluate_stack(
    context: StackContext, mitigations: Sequence[Mitigation], recorded: Sequence[int]
) -> dict[int, dict[str, float]]:
    """Evaluate every agent now, in one batched env, and append the records of the agents
    ``recorded`` (those still training) to their runs; return each one's log columns.

    Each mitigation's ``measure`` adds fields to the records (early stopping's held-out check).
    """
    runs, device = context.runs, context.device
    config = runs[0].config
    policy, seeds = context.seeded_policy(EVAL_SEED_OFFSET)
    kl = KLMeter(context)
    make = env_factory(config.env_id, config.knobs, device, config.reward_model, config.compile)
    returns = evaluate_blocks(kl.watching(policy), make, config.eval_episodes, seeds)
    extras: dict[str, list[np.ndarray]] = {}
    for mitigation in mitigations:
        extras.update(mitigation.measure())
    if config.deploy_knobs is not None:
        extras.update(_deployed(context, config))
    kls_by_step = kl.by_step()
    rows = {}
    for i in recorded:
        steps = int(returns[i].length.max())  # its own evaluation would stop here
        kl_i = max(float(agent_columns(kls_by_step[:steps], i, len(runs)).mean()), 0.0)
        fields = {name: values[i] for name, values in extras.items()}
        evaluation = Evaluation(runs[i].global_step, returns[i].proxy, returns[i].true, kl_i, **fields)
        runs[i].evaluations.append(evaluation)
        rows[i] = evaluation_row(evaluation)
    return rows


def _deployed(context: StackContext, config) -> dict[str, list[np.ndarray]]:
    """Every agent played on the deployment knobs, on its evaluation's seeds and generators."""
    policy, seeds = context.seeded_policy(EVAL_SEED_OFFSET)
    knobs = {**config.knobs, **config.deploy_knobs}
    make = env_factory(config.env_id, knobs, context.device, config.reward_model, config.compile)
    returns = evaluate_blocks(policy, make, config.eval_episodes, seeds)
    return {"deploy_proxy": [r.proxy for r in returns], "deploy_true": [r.true for r in returns]}


class KLMeter:
    """KL(agent || its initial self) on every batch of observations an evaluation's policy acts
    on, measured a block of steps at a time: the observations wait on the device until
    :data:`KL_BLOCK` steps have gathered, then both policies see them in one batched pass (a
    pass a step costs a small network's overhead twice a step)."""

    def __init__(self, context: StackContext):
        self._context = context
        self._waiting: list[torch.Tensor] = []
        self._kls: list[torch.Tensor] = []

    def watching(self, policy: Policy) -> Policy:
        """``policy``, keeping each batch of observations it acts on for the KL."""

        def act(obs: torch.Tensor) -> torch.Tensor:
            self._waiting.append(obs)
            if len(self._waiting) == KL_BLOCK:
                self._measure()
            return policy(obs)

        return act

    def by_step(self) -> torch.Tensor:
        """The KL of every env at every step, ``(steps, N * envs)``, on the device."""
        self._measure()
        return torch.cat(self._kls)

    @torch.no_grad()
    def _measure(self) -> None:
        if not self._waiting:
            return
        agents = self._context.num_agents
        steps = torch.stack(self._waiting)  # (steps, N * envs, ...)
        rows = steps.shape[1] // agents
        # agent by agent (the layout a stack acts on): (N * steps * envs, ...)
        blocks = steps.reshape(len(self._waiting), agents, rows, *steps.shape[2:]).transpose(0, 1)
        obs = blocks.reshape(-1, *steps.shape[2:])
        kl = kl_from(self._context.initial, self._context.agents.action_distribution(obs), obs)
        by_step = kl.view(agents, len(self._waiting), rows).transpose(0, 1)  # (steps, N, envs)
        self._kls.append(by_step.reshape(len(self._waiting), -1))
        self._waiting = []


KL_BLOCK = 32
"""Evaluation steps whose KL is measured in one batched pass (:class:`KLMeter`)."""


def evaluation_row(evaluation: Evaluation) -> dict[str, float]:
    """An evaluation's columns of the progress log (:data:`EVAL_COLUMNS`)."""
    row = {
        "eval/proxy_return": float(np.mean(evaluation.proxy)),
        "eval/true_return": float(np.mean(evaluation.true)),
    }
    if evaluation.kl is not None:
        row["eval/kl_from_initial"] = evaluation.kl
        row["eval/d"] = math.sqrt(evaluation.kl)  # Gao et al.'s distance from the initial policy
    if evaluation.holdout_true is not None:
        row["eval/holdout_true_return"] = float(np.mean(evaluation.holdout_true))
    if evaluation.deploy_true is not None:
        row["eval/deploy_true_return"] = float(np.mean(evaluation.deploy_true))
    return row
