"""Many PPO agents trained as one batched computation: seeds and settings side by side.

Goodhart research is sweeps over seeds and settings, and on a CPU a run of one small agent spends
most of its time in the overhead of many small tensor operations, not in arithmetic. Here ``N``
runs that differ only in settings that keep every tensor's shape (the seed, the learning rate,
the entropy, value, clipping and KL coefficients, gamma, lambda, the reward scale, the gradient
clip) share each operation:

* one batched env of ``N x num_envs`` envs, in blocks (``GameableVectorEnv.reset_blocks``):
  block ``i`` is reset from a generator seeded with agent ``i``'s seed, so agent ``i`` plays
  exactly the envs its own run would, and one kernel step serves all;
* one forward pass for all ``N`` networks (:class:`StackedAgents`: ``torch.func.vmap`` over the
  agents' parameters, stacked anew at each call so gradients reach each agent's own);
* one backward pass over the sum of the agents' losses (their parameters are disjoint, so each
  gets the gradient of its own loss); then each agent's gradient is clipped and stepped by its
  own Adam with its own learning rate.

Everything else is each agent's own, as in a run of its own: network initialisation, action
sampling and minibatch orders from a generator seeded with its seed; observation statistics;
evaluations (:func:`~gaming_gym.agents.ppo.training.evaluate_agent`, the same numbers a solo
run's evaluation gives at that step); its run directory, with a ``checkpoint.pt`` in the solo
format. So a stacked run resumes from its agents' checkpoints, one agent of it can be continued
alone with :func:`~gaming_gym.agents.ppo.train`, and an agent's run differs from its solo run only
by floating-point rounding (batched matrix products round differently), which training then
amplifies as any two runs of a chaotic process: alike in distribution, not bit for bit.

Not stacked (refused with a ConfigError naming the setting): learned reward models, KL penalties
toward a cloned reference (``kl_reference`` "intended" or "sft"), early stopping, ``target_kl``,
and settings that change shapes or the env (knobs, widths, rollout shape, budget); a sweep puts
such cells in groups of their own.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from contextlib import ExitStack
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from gaming_gym.agents.ppo.algorithm import Rollout, collect_rollout, ppo_loss, rollout_advantages
from gaming_gym.agents.ppo.config import PPOConfig
from gaming_gym.agents.ppo.networks import ActorCritic, RunningMeanStd, acting
from gaming_gym.agents.ppo.training import (
    EVAL_COLUMNS,
    EVAL_SEED_OFFSET,
    HOLDOUT_SEED_OFFSET,
    TrainResult,
    _claim,
    _due,
    _evaluation_row,
    _measuring_kl,
    _progress_bar,
    _restore,
    _Run,
    anneal_learning_rate,
    checkpoint_state,
    finish_iteration,
    make_training_env,
    new_run,
)
from gaming_gym.core import Policy, resolve_device, seeded_generator
from gaming_gym.errors import ConfigError, UnevenStackError
from gaming_gym.evaluation import evaluate_blocks
from gaming_gym.metrics import Evaluation
from gaming_gym.runs import ProgressLog, RunDirectory

PER_AGENT_SETTINGS = (
    "seed",
    "learning_rate",
    "ent_coef",
    "vf_coef",
    "clip_coef",
    "max_grad_norm",
    "gamma",
    "gae_lambda",
    "reward_scale",
    "kl_coef",
)
"""Settings in which stacked agents may differ: none changes a tensor's shape or the env."""
ANY_SETTINGS = ("checkpoint_every", "cpu_threads")
"""Settings that do not shape a run's result; the first agent's serve the stack."""


def stacking_refusal(config: PPOConfig) -> str | None:
    """Why ``config`` cannot train stacked with others (None when it can)."""
    if config.reward_model is not None:
        return "a learned reward model"
    if config.kl_reference != "initial" and (config.kl_coef > 0 or config.kl_reference == "sft"):
        return f'kl_reference="{config.kl_reference}" (a cloned reference policy)'
    if config.early_stop:
        return "early stopping"
    if config.target_kl is not None:
        return "target_kl"
    return None


def stacking_key(config: PPOConfig) -> str:
    """Configs with the same key can train stacked: equal in every setting not per agent."""
    shared = {
        name: value
        for name, value in config.to_dict().items()
        if name not in PER_AGENT_SETTINGS + ANY_SETTINGS
    }
    return repr(sorted(shared.items()))


def _require_stackable(configs: Sequence[PPOConfig]) -> None:
    if not configs:
        raise ConfigError("train_stacked needs at least one config")
    for config in configs:
        refusal = stacking_refusal(config)
        if refusal is not None:
            raise ConfigError(f"{refusal} cannot be trained stacked; train that run on its own")
    keys = {stacking_key(config) for config in configs}
    if len(keys) > 1:
        first = configs[0].to_dict()
        differing = sorted(
            {
                name
                for config in configs[1:]
                for name, value in config.to_dict().items()
                if name not in PER_AGENT_SETTINGS + ANY_SETTINGS and value != first[name]
            }
        )
        raise ConfigError(
            f"stacked runs may differ only in {', '.join(PER_AGENT_SETTINGS)}; these differ in "
            f"{', '.join(differing)}"
        )
    if len({repr(sorted(config.to_dict().items())) for config in configs}) < len(configs):
        raise ConfigError("two stacked runs have the same config: that is one run twice")


# --- N networks as one ---------------------------------------------------------------------------


class StackedAgents:
    """``N`` :class:`ActorCritic` networks acting as one on a batch grouped by agent.

    Tensors are laid out as a single agent's, with agent ``i``'s rows the ``i``-th of ``N`` equal
    blocks of the second-to-last dimension (of the batch for observations shaped ``(rows,
    features)``): the rollout code runs unchanged on it. Each call stacks the agents' current
    parameters and maps one network's forward pass over them with ``torch.func.vmap``; the
    agents' own parameters stay the leaves gradients reach. Observation statistics are kept
    stacked, and each agent's buffers are views of its row, so its ``state_dict`` is current.
    """

    def __init__(self, agents: Sequence[ActorCritic]):
        self.agents = list(agents)
        self.norm_obs = self.agents[0].norm_obs
        self.head = StackedHead(self.agents[0].head, len(self.agents))
        self._base = copy.deepcopy(self.agents[0]).to("meta")  # the shape every agent shares
        self._names = [name for name, _ in self.agents[0].named_parameters()]
        self._parameters = [
            [dict(agent.named_parameters())[name] for agent in self.agents] for name in self._names
        ]
        self.obs_rms = _stacked_statistics(self.agents)

    def __len__(self) -> int:
        return len(self.agents)

    def normalise(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        """Each agent's block of raw observations, flattened and normalised by its statistics."""
        obs = obs.float().flatten(1)
        if not self.norm_obs:
            return obs
        blocks = obs.view(len(self), -1, obs.shape[-1])
        if update:
            self.obs_rms.update(blocks)
        return self.obs_rms.normalise(blocks).view_as(obs)

    def distribution(self, norm_obs: torch.Tensor) -> torch.distributions.Distribution:
        return self.head.distribution_from(*self._map(norm_obs, "policy"))

    def value(self, norm_obs: torch.Tensor) -> torch.Tensor:
        return self._map(norm_obs, "value")[0]

    def action_distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        return self.distribution(self.normalise(obs))

    def policy(self, deterministic: bool, generators: Sequence[torch.Generator]) -> Policy:
        """The agents' batched policy on raw observations, each sampling its block from its own
        generator (:meth:`ActorCritic.policy`'s, agent by agent)."""
        return acting(self, deterministic, generators)

    def _map(self, norm_obs: torch.Tensor, part: str) -> tuple[torch.Tensor, ...]:
        """``part`` of every agent's forward pass on its block of ``norm_obs`` (``(..., N * rows,
        features)``), as tensors laid out like ``norm_obs``."""
        n = len(self)
        lead, rows, features = norm_obs.shape[:-2], norm_obs.shape[-2], norm_obs.shape[-1]
        blocks = norm_obs.reshape(*lead, n, rows // n, features).movedim(-3, 0)  # (n, *lead, rows/n, f)
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

    @torch.no_grad()
    def sample(
        self, distribution: torch.distributions.Distribution, generators: Sequence[torch.Generator]
    ) -> torch.Tensor:
        rows = distribution.batch_shape[-1] // self._agents
        return torch.cat(
            [
                self._head.sample(self._head.rows(distribution, slice(i * rows, (i + 1) * rows)), generator)
                for i, generator in enumerate(generators)
            ]
        )

    def greedy(self, distribution: torch.distributions.Distribution) -> torch.Tensor:
        return self._head.greedy(distribution)

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return self._head.to_env(action)


def bootstrap_all_values(
    agent: StackedAgents, final_obs: torch.Tensor, truncated: torch.Tensor
) -> torch.Tensor:
    """V(last observation) where an episode was truncated, else 0: every row through the critic
    at once (the blocks must stay whole), kept only where truncated."""
    return torch.where(truncated, agent.value(final_obs), 0.0)


# --- the settings each agent keeps ---------------------------------------------------------------


def _stacked_settings(configs: Sequence[PPOConfig], device: torch.device) -> tuple[Any, Any]:
    """The settings of the rollout (per env: one value a row) and of the loss (per agent)."""
    first = configs[0]

    def per_agent(name: str) -> torch.Tensor:
        return torch.tensor([float(getattr(config, name)) for config in configs], device=device)

    def per_env(name: str) -> torch.Tensor:
        return per_agent(name).repeat_interleave(first.num_envs)

    common = {name: getattr(first, name) for name in ("num_steps", "reward", "norm_adv", "clip_vloss")}
    rollout = SimpleNamespace(
        **common,
        num_envs=len(configs) * first.num_envs,
        **{name: per_env(name) for name in ("gamma", "gae_lambda", "reward_scale", "kl_coef")},
    )
    loss = SimpleNamespace(
        **common, **{name: per_agent(name) for name in ("clip_coef", "ent_coef", "vf_coef")}
    )
    return rollout, loss


# --- training ------------------------------------------------------------------------------------


def train_stacked(
    configs: Sequence[PPOConfig],
    run_dirs: Sequence[str | RunDirectory] | None = None,
    progress: bool = True,
) -> list[TrainResult]:
    """Train one PPO run per config, all stacked into one batched computation; return their
    results in order.

    The configs may differ only in :data:`PER_AGENT_SETTINGS` (no two alike). With
    ``run_dirs`` (one per config), each run logs, checkpoints and resumes in its own directory
    as :func:`~gaming_gym.agents.ppo.train` would, and could be continued by it alone. Runs
    already finished are read back, not trained; the others must stand at one iteration (a
    stack resumes together). Ctrl-C checkpoints every run's last completed iteration.
    """
    configs = list(configs)
    _require_stackable(configs)
    if run_dirs is not None and len(run_dirs) != len(configs):
        raise ConfigError(f"{len(configs)} configs but {len(run_dirs)} run directories")
    threads_before = torch.get_num_threads()
    if configs[0].cpu_threads is not None:
        torch.set_num_threads(configs[0].cpu_threads)
    try:
        with ExitStack() as stack:
            directories = None
            if run_dirs is not None:
                directories = [
                    d if isinstance(d, RunDirectory) else stack.enter_context(RunDirectory(d))
                    for d in run_dirs
                ]
            return _train_stacked(configs, directories, progress)
    finally:
        torch.set_num_threads(threads_before)


class _AgentEnv:
    """One stacked agent's block of the shared env, as a run sees its own env: its episode
    statistics, and its state as a batch of its own (what its checkpoint holds)."""

    def __init__(self, env: Any, block: int):
        self._env, self._block = env, block
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space

    @property
    def queues(self):
        return self._env.block_queues(self._block)

    def get_state(self) -> dict[str, Any]:
        return self._env.get_state(self._block)

    def set_state(self, saved: dict[str, Any]) -> None:
        self._env.set_state(saved, self._block)

    def close(self) -> None:
        """The shared env is closed once, by the stack."""


def _train_stacked(
    configs: list[PPOConfig], directories: list[RunDirectory] | None, progress: bool
) -> list[TrainResult]:
    device = resolve_device(configs[0].device)
    n, per_agent = len(configs), configs[0].num_envs
    env = make_training_env(configs[0], device, num_envs=n * per_agent, blocks=n)
    try:
        obs, _ = env.reset(options={"block_seeds": [config.seed for config in configs]})
        runs = [
            new_run(config, device, _AgentEnv(env, i), obs[i * per_agent : (i + 1) * per_agent])
            for i, config in enumerate(configs)
        ]
        if directories is not None:
            for run, config, directory in zip(runs, configs, directories, strict=True):
                saved = _claim(directory, config, device, resume=True)
                if saved is not None:
                    _restore(run, saved, config, device)
        training = [
            i for i, (run, config) in enumerate(zip(runs, configs, strict=True)) if not _finished(run, config)
        ]
        if 0 < len(training) < n:  # the unfinished stack again, in an env of their own
            env.close()
            rest = _train_stacked(
                [configs[i] for i in training], [directories[i] for i in training], progress
            )
            for i, result in zip(training, rest, strict=True):
                runs[i].agent, runs[i].evaluations = result.agent, result.checkpoints
                runs[i].global_step, runs[i].iteration = result.global_step, result.iteration
        elif training:
            _train_loop_stacked(runs, configs, env, device, directories, progress)
    finally:
        env.close()
    return [
        TrainResult(
            config,
            run.agent,
            run.evaluations,
            run.global_step,
            run.iteration,
            None if directories is None else directories[i].path,
        )
        for i, (run, config) in enumerate(zip(runs, configs, strict=True))
    ]


def _finished(run: _Run, config: PPOConfig) -> bool:
    return run.iteration >= config.num_iterations


def _train_loop_stacked(
    runs: list[_Run],
    configs: list[PPOConfig],
    env: Any,
    device: torch.device,
    directories: list[RunDirectory] | None,
    progress: bool,
) -> None:
    """Iterate the stacked runs to their common end, each logging, evaluating and checkpointing
    as its own run would (see :func:`~gaming_gym.agents.ppo.training._train_loop`)."""
    if len({run.iteration for run in runs}) > 1:
        raise UnevenStackError(
            "stacked runs resume together, but these stand at iterations "
            + ", ".join(str(run.iteration) for run in runs)
            + " (a kill between their checkpoints?); resume them one by one with train()"
        )
    stacked = StackedAgents([run.agent for run in runs])
    initial = StackedAgents([run.initial_agent for run in runs])
    rollout_settings, loss_settings = _stacked_settings(configs, device)
    reference = initial if any(config.kl_coef > 0 for config in configs) else None
    logs = [
        ProgressLog(None)
        if directories is None
        else directory.progress_log(None if run.iteration == 0 else run.iteration, EVAL_COLUMNS)
        for run, directory in zip(runs, directories or [None] * len(runs), strict=True)
    ]
    unsaved: list[dict | None] = [None] * len(runs)
    total = configs[0].num_iterations * configs[0].batch_size * len(runs)
    bar = _progress_bar(configs[0], runs[0].global_step * len(runs), enabled=progress)
    bar.total = total
    bar.set_description(f"PPO x{len(runs)} {configs[0].env_id.split('/')[-1]} ({configs[0].reward})")
    obs = torch.cat([run.obs for run in runs])
    try:
        if runs[0].iteration == 0:
            rows = _evaluate_stacked(stacked, initial, runs, configs, device)
            for log, row in zip(logs, rows, strict=True):
                log.write({"iteration": 0, "global_step": 0, **row})
        while runs[0].iteration < configs[0].num_iterations:
            started = time.perf_counter()
            for run, config in zip(runs, configs, strict=True):
                anneal_learning_rate(run, config)
            rollout, obs = collect_rollout(
                stacked,
                env,
                obs,
                rollout_settings,
                reference,
                [run.generator for run in runs],
                bootstrap=bootstrap_all_values,
            )
            advantages, returns = rollout_advantages(
                rollout, rollout_settings.gamma, rollout_settings.gae_lambda
            )
            losses = stacked_update(stacked, runs, configs, rollout, advantages, returns, loss_settings)
            seconds = (time.perf_counter() - started) / len(runs)
            rows = [
                finish_iteration(
                    run,
                    config,
                    _agent_rollout(rollout, i, len(runs)),
                    _agent_columns(returns, i, len(runs)),
                    {name: value[:, i] for name, value in losses.items()},
                    seconds,
                )
                for i, (run, config) in enumerate(zip(runs, configs, strict=True))
            ]
            last = runs[0].iteration == configs[0].num_iterations
            if _due(runs[0].iteration, configs[0].eval_every) or last:
                for row, evaluation in zip(
                    rows, _evaluate_stacked(stacked, initial, runs, configs, device), strict=True
                ):
                    row.update(evaluation)
            for i, (run, config, log, row) in enumerate(zip(runs, configs, logs, rows, strict=True)):
                run.obs = obs[i * config.num_envs : (i + 1) * config.num_envs]
                log.write(row)
                if directories is not None:
                    if _due(run.iteration, config.checkpoint_every) or last:
                        directories[i].save_checkpoint(checkpoint_state(run, config))
                        unsaved[i] = None
                    else:
                        unsaved[i] = copy.deepcopy(checkpoint_state(run, config))
            bar.update(configs[0].batch_size * len(runs))
            _show_true_returns(bar, runs)
    except KeyboardInterrupt:
        for directory, state in zip(directories or [], unsaved, strict=False):
            if state is not None:
                directory.save_checkpoint(state)
        raise
    finally:
        bar.close()
        for log in logs:
            log.close()


def _show_true_returns(bar: Any, runs: Sequence[_Run]) -> None:
    """The range of the runs' recent training-episode true returns, beside the progress bar."""
    true = [run.env.queues.means().get("true") for run in runs]
    true = [value for value in true if value is not None]
    if true:
        bar.set_postfix(true=f"{min(true):.2f}..{max(true):.2f}")


def _evaluate_stacked(
    stacked: StackedAgents, initial: StackedAgents, runs: Sequence[_Run], configs: Sequence[PPOConfig], device
) -> list[dict[str, float]]:
    """Evaluate every agent now, in one batched env; return each one's log columns.

    Each agent's evaluation is the one :func:`~gaming_gym.agents.ppo.training.evaluate_agent`
    makes of it alone: its episodes from its own evaluation seed, its actions from its own
    freshly seeded generator, its KL from its initial self over the steps its own evaluation
    runs (the length of its longest episode), and its held-out check likewise.
    """
    config = configs[0]
    seeds = [c.seed + EVAL_SEED_OFFSET for c in configs]
    generators = [seeded_generator(seed, device) for seed in seeds]
    kls: list[torch.Tensor] = []
    policy = _measuring_kl(stacked.policy(config.eval_deterministic, generators), stacked, initial, kls)
    returns = evaluate_blocks(policy, config.env_id, config.eval_episodes, seeds, device, config.knobs)
    holdouts: list[Any] = [None] * len(runs)
    if config.holdout_episodes:
        seeds = [c.seed + HOLDOUT_SEED_OFFSET for c in configs]
        generators = [seeded_generator(seed, device) for seed in seeds]
        policy = stacked.policy(config.eval_deterministic, generators)
        holdouts = evaluate_blocks(
            policy, config.env_id, config.holdout_episodes, seeds, device, config.knobs
        )
    kls_by_step = torch.stack(kls)
    rows = []
    for i, (run, agent_returns, holdout) in enumerate(zip(runs, returns, holdouts, strict=True)):
        steps = int(agent_returns.length.max())  # its own evaluation would stop here
        kl = max(float(_agent_columns(kls_by_step[:steps], i, len(runs)).mean()), 0.0)
        evaluation = Evaluation.from_returns(run.global_step, agent_returns, kl=kl, holdout=holdout)
        run.evaluations.append(evaluation)
        rows.append(_evaluation_row(evaluation))
    return rows


def _agent_columns(values: torch.Tensor, agent: int, agents: int) -> torch.Tensor:
    """Agent ``agent``'s block of the env columns of ``values`` (``(steps, N * envs, ...)``)."""
    envs = values.shape[1] // agents
    return values[:, agent * envs : (agent + 1) * envs]


def _agent_rollout(rollout: Rollout, agent: int, agents: int) -> Rollout:
    """Agent ``agent``'s part of a stacked rollout, as its own rollout would be."""
    fields = {}
    for name, value in vars(rollout).items():
        if value is None:
            fields[name] = None
        elif name == "next_value":
            envs = value.shape[0] // agents
            fields[name] = value[agent * envs : (agent + 1) * envs]
        else:
            fields[name] = _agent_columns(value, agent, agents)
    return Rollout(**fields)


def stacked_update(
    stacked: StackedAgents,
    runs: Sequence[_Run],
    configs: Sequence[PPOConfig],
    rollout: Rollout,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    settings: Any,
) -> dict[str, torch.Tensor]:
    """Every agent's ``update_epochs`` of clipped-objective minibatch updates, as one.

    Each agent draws its own minibatch orders from its generator (as
    :func:`~gaming_gym.agents.ppo.ppo_update` does) over its own transitions; minibatches are
    shaped ``(rows, agents, ...)``, so :func:`~gaming_gym.agents.ppo.ppo_loss` gives each agent's
    loss from its own rows. Returns each minibatch's statistics, stacked, shaped
    ``(minibatches, agents)``.
    """
    n, config = len(runs), configs[0]

    def by_agent(values: torch.Tensor) -> torch.Tensor:
        """``(steps, N * envs, ...)`` -> ``(steps * envs, N, ...)``, rows in a solo run's order."""
        steps, envs = values.shape[0], values.shape[1] // n
        blocks = values.reshape(steps, n, envs, *values.shape[2:]).transpose(1, 2)
        return blocks.reshape(steps * envs, n, *values.shape[2:])

    batch = {
        "obs": by_agent(rollout.obs),
        "actions": by_agent(rollout.actions),
        "log_probs": by_agent(rollout.log_probs),
        "values": by_agent(rollout.values),
        "advantages": by_agent(advantages),
        "returns": by_agent(returns),
    }
    agent_index = torch.arange(n, device=rollout.obs.device)
    stats: list[dict[str, torch.Tensor]] = []
    for _ in range(config.update_epochs):
        orders = torch.stack(
            [
                torch.randperm(config.batch_size, device=rollout.obs.device, generator=run.generator)
                for run in runs
            ],
            dim=1,
        )
        for rows in orders.split(config.minibatch_size):
            minibatch = {name: data[rows, agent_index] for name, data in batch.items()}
            loss, minibatch_stats = ppo_loss(stacked, minibatch, settings)
            for run in runs:
                run.optimizer.zero_grad()
            loss.sum().backward()
            for run, agent_config in zip(runs, configs, strict=True):
                nn.utils.clip_grad_norm_(run.agent.parameters(), agent_config.max_grad_norm)
                run.optimizer.step()
            stats.append(minibatch_stats)
    return {name: torch.stack([minibatch[name] for minibatch in stats]) for name in stats[0]}


__all__ = [
    "ANY_SETTINGS",
    "PER_AGENT_SETTINGS",
    "StackedAgents",
    "stacked_update",
    "stacking_key",
    "stacking_refusal",
    "train_stacked",
]
