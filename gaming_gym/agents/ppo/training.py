"""Training runs of PPO: one loop for a stack of N >= 1 agents; a run of its own is a stack of one.

:func:`train_stacked` trains N runs that differ only in settings that keep tensor shapes (seeds,
coefficients; :data:`~gaming_gym.agents.ppo.config.PER_AGENT_SETTINGS` and the mitigations'
per-agent settings) as one batched computation; :func:`train` is a stack of one. Each iteration
collects a rollout of every agent on one batched env (in blocks: agent ``i`` plays exactly the envs
its own run would), estimates advantages and updates every agent
(:mod:`~gaming_gym.agents.ppo.algorithm`); every ``eval_every`` iterations the stack is evaluated
(:func:`~gaming_gym.agents.ppo.context.evaluate_stack`) and the mitigations decide whether an
agent stops. Every agent logs, checkpoints and resumes in its own run directory
(:mod:`~gaming_gym.agents.ppo.checkpoints`), from which an interrupted run resumes exactly.

An agent of a stack trains as it would alone up to float rounding (batched matrix products round
differently), which training then amplifies as any two runs of a chaotic process: alike in
distribution, not bit for bit. A stack of one is the same arithmetic as a run alone.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gaming_gym.agents.ppo.algorithm import collect_rollout, ppo_update, rollout_advantages
from gaming_gym.agents.ppo.checkpoints import (
    CHECKPOINT_FILE,
    AgentRun,
    checkpoint_state,
    claim,
    new_agent,
    restore,
)
from gaming_gym.agents.ppo.config import PPOConfig, require_network_size, require_stackable
from gaming_gym.agents.ppo.context import EVAL_COLUMNS, StackContext, evaluate_stack
from gaming_gym.agents.ppo.networks import ActorCritic, adam, training_generators
from gaming_gym.agents.ppo.stack import Coefficients, StackedAgents, agent_rows, by_agent
from gaming_gym.devices import resolve_device
from gaming_gym.errors import ConfigError, UnevenStackError
from gaming_gym.evaluation import env_factory
from gaming_gym.fronts import GameableVectorEnv
from gaming_gym.kernel import Policy
from gaming_gym.metrics import Evaluation
from gaming_gym.mitigations import Mitigation, build_mitigations
from gaming_gym.runs import ProgressLog, RunDirectory, opened
from gaming_gym.wrappers import RecordVectorEpisodeStatistics


@dataclass
class TrainResult:
    """What a finished run leaves: the agent, its evaluations and where it wrote."""

    config: PPOConfig
    agent: ActorCritic
    checkpoints: list[Evaluation]  # one per evaluation, in step order, the first at step 0
    global_step: int
    iteration: int
    run_dir: Path | None
    stopped_step: int | None = None
    """step of the evaluation at which early stopping ended training; ``None`` when it never did"""
    kept_step: int | None = None
    """when early stopping fired, the step of the evaluation whose agent ``agent`` is"""
    reference_agreement: float | None = None
    """greedy agreement of the run's behaviour clone (an ``"sft"`` start's, or the KL
    reference's) with the scripted intended policy on held-out states"""

    def policy(self, deterministic: bool = False) -> Policy:
        """The trained batched policy, for :func:`gaming_gym.evaluation.evaluate`."""
        return self.agent.policy(deterministic)


@dataclass
class Stack:
    """The N runs training together: their shared env and observation, the agents as one, the
    per-agent coefficients, the mitigations and what the stack offers them."""

    runs: list[AgentRun]
    env: RecordVectorEpisodeStatistics
    obs: torch.Tensor
    context: StackContext
    coefficients: Coefficients
    agents: StackedAgents | None = None
    mitigations: list[Mitigation] | None = None

    @property
    def shared(self) -> PPOConfig:
        """The settings the stack shares: the first agent's (the others agree on them)."""
        return self.runs[0].config


def train(
    config: PPOConfig,
    run_dir: str | os.PathLike | RunDirectory | None = None,
    progress: bool = True,
    resume: bool = True,
) -> TrainResult:
    """Train PPO as ``config`` says (a stack of one); with ``run_dir``, log there, checkpoint there
    and resume there (see :func:`train_stacked`)."""
    return train_stacked([config], None if run_dir is None else [run_dir], progress, resume)[0]


def train_stacked(
    configs: Sequence[PPOConfig],
    run_dirs: Sequence[str | os.PathLike | RunDirectory] | None = None,
    progress: bool = True,
    resume: bool = True,
) -> list[TrainResult]:
    """Train one PPO run per config, all as one batched computation; return their results in order.

    The configs may differ only in per-agent settings (no two alike). Each agent is evaluated
    before the first update (step 0, where its KL from the initial policy is 0), every
    ``eval_every`` iterations and at the end. With ``run_dirs`` (one per config: a path, or a
    :class:`~gaming_gym.runs.RunDirectory` held open), each run directory is locked while training
    and receives ``config.json``, ``checkpoint.pt`` (written atomically every ``checkpoint_every``
    iterations, at the end, at an early stop and on Ctrl-C) and ``progress.csv`` (a row for the
    step-0 evaluation, then one per iteration, appended as it goes; TensorBoard scalars too when
    ``tensorboard`` is installed); see :mod:`gaming_gym.runs`.

    If a run directory already holds its run (the same config but for the resumable changes) and
    ``resume`` is true, training continues from its checkpoint as if it had never stopped; a
    finished run (or one early stopping ended) is read back, not trained. The unfinished runs of a
    stack must stand at one iteration (a stack resumes together: :class:`UnevenStackError`
    otherwise). A directory holding another run or other files, or a run already trained past
    ``total_timesteps``, is refused before anything is written. ``progress`` shows a tqdm bar.

    A library call leaves the process as it found it: everything random draws from generators
    seeded with each config's seed (torch's global RNG is not touched), and torch's thread count,
    set to ``cpu_threads`` while training, is the caller's again on return.
    """
    configs = list(configs)
    require_stackable(configs)
    if run_dirs is not None and len(run_dirs) != len(configs):
        raise ConfigError(f"{len(configs)} configs but {len(run_dirs)} run directories")
    threads_before = torch.get_num_threads()
    if configs[0].cpu_threads is not None:
        torch.set_num_threads(configs[0].cpu_threads)
    try:
        with ExitStack() as held:
            directories = [held.enter_context(opened(d)) for d in run_dirs or [None] * len(configs)]
            return _train(configs, directories, progress, resume)
    finally:
        torch.set_num_threads(threads_before)


def _train(
    configs: list[PPOConfig], directories: list[RunDirectory | None], progress: bool, resume: bool
) -> list[TrainResult]:
    device = resolve_device(configs[0].device)
    stack = _new_stack(configs, directories, device)  # a bad env fails before any file is written
    try:
        saved = [
            claim(d, c, device, resume) if d else None for d, c in zip(directories, configs, strict=True)
        ]
        for i, state in enumerate(saved):
            if state is not None:
                _restore_agent(stack, i, state)
        unfinished = [i for i, run in enumerate(stack.runs) if not run.finished]
        if 0 < len(unfinished) < len(configs):  # the unfinished ones again, as a stack of their own
            stack.env.close()
            rest = _train(
                [configs[i] for i in unfinished], [directories[i] for i in unfinished], progress, resume
            )
            for i, result in zip(unfinished, rest, strict=True):
                run = stack.runs[i]
                run.agent, run.evaluations = result.agent, result.checkpoints
                run.global_step, run.iteration = result.global_step, result.iteration
                run.stopped_step, run.kept_step = result.stopped_step, result.kept_step
        elif unfinished:
            _start(stack, saved)
            _train_loop(stack, progress)
    finally:
        stack.env.close()
    return [_result(stack, i) for i in range(len(configs))]


def _new_stack(configs: list[PPOConfig], directories: list, device: torch.device) -> Stack:
    """The batched env, reset in blocks with the runs' seeds, and each run's fresh agent."""
    per_agent = configs[0].num_envs
    env = make_training_env(configs[0], device, num_envs=len(configs) * per_agent, blocks=len(configs))
    obs, _ = env.reset(options={"block_seeds": [config.seed for config in configs]})
    runs = []
    for config, directory in zip(configs, directories, strict=True):
        init_generator, generator = training_generators(config.seed, device)
        agent = new_agent(env, config, init_generator).to(device)
        optimizer = adam(agent.parameters(), config.learning_rate, device)
        initial = copy.deepcopy(agent).requires_grad_(False)
        runs.append(AgentRun(config, agent, initial, optimizer, generator, directory))
    return Stack(runs, env, obs, StackContext(runs, env, device), Coefficients.of(configs, device))


def make_training_env(
    config: PPOConfig, device: torch.device, num_envs: int | None = None, blocks: int = 1
) -> RecordVectorEpisodeStatistics:
    """The batched env a stack trains on (``num_envs`` of them, in ``blocks`` whose episodes are
    counted apart, one per agent), with its episode statistics, not yet reset.

    It skips what would make the host wait for the device at every step: checking action values
    (the policy heads act inside the action space by construction; evaluations, on envs of their
    own, still check every action) and reading ended episodes, which wait on the device until an
    iteration's end reads them.
    """
    make = env_factory(config.env_id, config.knobs, device, config.reward_model, config.compile)
    env = make(num_envs or config.num_envs)
    try:
        if not isinstance(env.unwrapped, GameableVectorEnv):
            raise ConfigError(
                f"{config.env_id} makes a {type(env.unwrapped).__name__}; native PPO needs a batched "
                "GameableVectorEnv (the vector entry point of a gameable env)"
            )
        env.unwrapped.check_action_values = False
        require_network_size(env.single_observation_space, env.single_action_space, config)
        return RecordVectorEpisodeStatistics(env, deferred=True, blocks=blocks)
    except ConfigError:
        env.close()
        raise


def _restore_agent(stack: Stack, agent: int, state: dict[str, Any]) -> None:
    """Agent ``agent``'s checkpoint back into the stack: its run, its env block and observation,
    and the clones built for it (its mitigations' state goes back once they are built)."""
    restore(stack.runs[agent], state)
    stack.env.set_state(state["env"], agent)
    agent_rows(stack.obs, agent, len(stack.runs)).copy_(state["obs"])
    for kind, clone in state.get("clones", {}).items():
        stack.context.restore_clone(kind, agent, clone)


def _start(stack: Stack, saved: list[dict | None]) -> None:
    """A fresh stack starts its policies (as the SFT model, with ``start="sft"``) and prepares its
    mitigations; a resumed one puts their state back."""
    fresh = all(state is None for state in saved)
    if fresh and stack.shared.start == "sft":  # RLHF: the policy starts as the SFT model
        for run, clone in zip(stack.runs, stack.context.clone("sft").clones, strict=True):
            run.agent.load_state_dict(clone.clone.state_dict())
            run.initial.load_state_dict(clone.clone.state_dict())
    stack.agents = stack.context.agents = StackedAgents(
        [run.agent for run in stack.runs], compile=stack.shared.compile
    )
    stack.context.initial = StackedAgents([run.initial for run in stack.runs])
    stack.mitigations = build_mitigations([run.config.mitigations for run in stack.runs], stack.context)
    for mitigation in stack.mitigations:
        if fresh:
            mitigation.prepare()
        else:
            for i, state in enumerate(saved):
                mitigation.load_state(i, state.get("mitigations", {}).get(mitigation.name, {}))


def _train_loop(stack: Stack, progress: bool) -> None:
    """Iterate until every run has its ``num_iterations`` or was stopped, each logging,
    evaluating and checkpointing as its own run would."""
    runs, shared = stack.runs, stack.shared
    if len({run.iteration for run in runs}) > 1:
        raise UnevenStackError(
            "stacked runs resume together, but these stand at iterations "
            + ", ".join(str(run.iteration) for run in runs)
            + " (a kill between their checkpoints?); resume them one by one with train()"
        )
    for run in runs:
        keep = None if run.iteration == 0 else run.iteration
        run.log = (
            ProgressLog(None) if run.directory is None else run.directory.progress_log(keep, EVAL_COLUMNS)
        )
    bar = _progress_bar(stack, enabled=progress)
    try:
        if runs[0].iteration == 0:
            for i, row in _evaluate(stack, list(range(len(runs))), bar).items():
                runs[i].log.write({"iteration": 0, "global_step": 0, **row})
        while not all(run.finished for run in runs):
            training = [i for i, run in enumerate(runs) if not run.finished]
            rows = _iteration(stack, training)
            last = runs[training[0]].iteration == shared.num_iterations
            if _due(runs[training[0]].iteration, shared.eval_every) or last:
                for i, row in _evaluate(stack, training, bar).items():
                    rows[i].update(row)
            for i in training:
                runs[i].log.write(rows[i])
                _checkpoint(stack, i, due=_due(runs[i].iteration, shared.checkpoint_every) or last)
            bar.update(shared.batch_size * len(training))
            _show_returns(bar, stack, training)
    except KeyboardInterrupt:
        for run in runs:
            if run.unsaved is not None:
                run.directory.save_checkpoint(run.unsaved, CHECKPOINT_FILE)
        raise
    finally:
        bar.close()
        for run in runs:
            run.log.close()


def _iteration(stack: Stack, training: list[int]) -> dict[int, dict[str, float]]:
    """One rollout and one update of every agent still training; their log rows."""
    started = time.perf_counter()
    runs, shared = stack.runs, stack.shared
    for i in training:
        _anneal_learning_rate(runs[i])
    generators = [run.generator for run in runs]
    rollout, stack.obs = collect_rollout(
        stack.agents, stack.env, stack.obs, shared, stack.coefficients, generators, stack.mitigations
    )
    advantages, returns = rollout_advantages(rollout, stack.coefficients)
    active = [not run.finished for run in runs]
    losses = ppo_update(
        stack.agents,
        [run.optimizer for run in runs],
        rollout,
        advantages,
        returns,
        shared,
        stack.coefficients,
        generators,
        active,
        stack.mitigations,
    )
    logs = {
        f"mitigation/{mitigation.name}/{name}": value
        for mitigation in stack.mitigations
        for name, value in mitigation.after_iteration().items()
    }
    statistics = _read_statistics(rollout, returns, losses, logs, len(runs))
    seconds = (time.perf_counter() - started) / len(training)
    rows = {}
    for i in training:
        run = runs[i]
        run.iteration += 1
        run.global_step += shared.batch_size
        episodes = stack.env.block_queues(i).means()  # the episodes that ended, kept on the device till now
        rows[i] = {
            "iteration": run.iteration,
            "global_step": run.global_step,
            "charts/proxy_return": episodes.get("proxy", math.nan),
            "charts/true_return": episodes.get("true", math.nan),
            "charts/episode_length": episodes.get("length", math.nan),
            "charts/episodes": stack.env.block_queues(i).episode_count,
            "charts/learning_rate": run.optimizer.param_groups[0]["lr"],
            **{
                name: float(values[i])
                for name, values in statistics.items()
                if not name.startswith("losses/")
            },
            "charts/fps": shared.batch_size / seconds,
            **{name: float(values[i]) for name, values in statistics.items() if name.startswith("losses/")},
        }
    return rows


def _anneal_learning_rate(run: AgentRun) -> None:
    """With ``anneal_lr``, the learning rate of the coming iteration: linearly down to zero."""
    if run.config.anneal_lr:
        fraction = 1.0 - run.iteration / run.config.num_iterations
        run.optimizer.param_groups[0]["lr"] = fraction * run.config.learning_rate


def _read_statistics(
    rollout,
    returns: torch.Tensor,
    losses: dict[str, torch.Tensor],
    logs: dict[str, torch.Tensor],
    agents: int,
) -> dict[str, np.ndarray]:
    """The iteration's log numbers, one per agent, read from the device in one copy: the hot
    loop's numbers reach the host here, once an iteration. Losses are means over the minibatches
    that updated the agent; ``losses/explained_variance`` compares the value targets with the
    values."""
    returns, values = by_agent(returns, agents).T, by_agent(rollout.values, agents).T  # (agents, rows)
    tensors = {
        "returns_variance": returns.var(1),
        "residual_variance": (returns - values).var(1),
        **logs,
        **{f"losses/{name}": value.T for name, value in losses.items()},  # (agents, minibatches)
    }
    flat = (
        torch.cat([tensor.flatten().float() for tensor in tensors.values()]).cpu().numpy().astype(np.float64)
    )
    read = dict(
        zip(tensors, np.split(flat, np.cumsum([t.numel() for t in tensors.values()])[:-1]), strict=True)
    )
    for name in [name for name in read if name.startswith("losses/")]:
        per_minibatch = read[name].reshape(agents, -1)
        counted = np.isfinite(per_minibatch).sum(1)
        read[name] = np.where(counted > 0, np.nansum(per_minibatch, 1) / np.maximum(counted, 1), math.nan)
    variance, residual = read.pop("returns_variance"), read.pop("residual_variance")
    with np.errstate(divide="ignore", invalid="ignore"):
        read["losses/explained_variance"] = np.where(variance == 0, math.nan, 1.0 - residual / variance)
    return read


def _evaluate(stack: Stack, recorded: list[int], bar: Any) -> dict[int, dict[str, float]]:
    """Evaluate the stack and record the agents ``recorded`` (those that trained this iteration);
    then the mitigations may stop agents (each keeps the agent its verdict names, and only it
    stops). Returns the log columns of the agents recorded."""
    rows = evaluate_stack(stack.context, stack.mitigations, recorded)
    for mitigation in stack.mitigations:
        for i, verdict in mitigation.at_evaluation(recorded).items():
            run = stack.runs[i]
            if run.stopped_step is not None:
                continue  # an earlier mitigation stopped it already
            run.agent.load_state_dict(verdict.keep)
            run.stopped_step, run.kept_step = run.global_step, verdict.kept_step
            stack.agents.frozen[i] = True
            if not bar.disable:
                bar.write(
                    f"early stop of seed {run.config.seed} at step {run.stopped_step}: "
                    f"kept the agent of step {run.kept_step}"
                )
    return rows


def _checkpoint(stack: Stack, agent: int, due: bool) -> None:
    """Save agent ``agent``'s checkpoint when due (or when it just stopped); else keep a copy of
    its state for Ctrl-C."""
    run = stack.runs[agent]
    if run.directory is None:
        return
    n = len(stack.runs)
    state = checkpoint_state(
        run,
        stack.env.get_state(agent),
        agent_rows(stack.obs, agent, n),
        stack.context.clone_states(agent),
        {mitigation.name: mitigation.state(agent) for mitigation in stack.mitigations},
    )
    if due or run.stopped_step is not None:
        run.directory.save_checkpoint(state, CHECKPOINT_FILE)
        run.unsaved = None
    else:
        run.unsaved = copy.deepcopy(state)


def _due(iteration: int, every: int) -> bool:
    return every > 0 and iteration % every == 0


def _result(stack: Stack, agent: int) -> TrainResult:
    run = stack.runs[agent]
    clones = stack.context.clones
    agreement = next((float(c[agent].agreement) for c in clones.values() if c[agent] is not None), None)
    path = run.directory.path if run.directory is not None else None
    return TrainResult(
        run.config,
        run.agent,
        run.evaluations,
        run.global_step,
        run.iteration,
        path,
        stopped_step=run.stopped_step,
        kept_step=run.kept_step,
        reference_agreement=agreement,
    )


def _progress_bar(stack: Stack, enabled: bool):
    from tqdm.auto import tqdm

    shared, n = stack.shared, len(stack.runs)
    name = shared.env_id.split("/")[-1]
    return tqdm(
        total=shared.num_iterations * shared.batch_size * n,
        initial=sum(run.global_step for run in stack.runs),
        unit="step",
        unit_scale=True,
        desc=f"PPO{f' x{n}' if n > 1 else ''} {name} ({shared.reward})",
        disable=not enabled,
    )


def _show_returns(bar: Any, stack: Stack, training: list[int]) -> None:
    """The recent training episodes' returns beside the progress bar (the range over agents)."""
    means = [stack.env.block_queues(i).means() for i in training]
    true = [m["true"] for m in means if "true" in m]
    if len(stack.runs) == 1 and means[0]:
        bar.set_postfix(proxy=f"{means[0]['proxy']:.2f}", true=f"{means[0]['true']:.2f}")
    elif true:
        bar.set_postfix(true=f"{min(true):.2f}..{max(true):.2f}")
