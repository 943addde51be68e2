"""Training runs of PPO: the loop, evaluations, early stopping, checkpoints and resumption.

:func:`train` makes the batched env and the agent, then alternates
:func:`~gaming_gym.agents.ppo.algorithm.collect_rollout`, ``compute_gae`` and ``ppo_update`` with
evaluations (:func:`evaluate_agent`), log rows and checkpoints in a run directory
(:mod:`gaming_gym.runs`), from which an interrupted run resumes exactly. :func:`load_agent` reads
a trained agent back.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gaming_gym.agents.ppo.algorithm import Rollout, collect_rollout, ppo_update, rollout_advantages
from gaming_gym.agents.ppo.config import PPOConfig, require_network_size
from gaming_gym.agents.ppo.networks import ActorCritic, ReferencePolicy, kl_from
from gaming_gym.agents.reference import SFT_EXPLORATION, SmoothedPolicy, behaviour_clone
from gaming_gym.core import GameableVectorEnv, Policy, resolve_device, seeded_generator
from gaming_gym.errors import ConfigError, RunDirectoryError, RunExistsError
from gaming_gym.evaluation import evaluate, reference_returns
from gaming_gym.metrics import Evaluation, early_stop, normalise
from gaming_gym.rlhf import with_reward_model
from gaming_gym.runs import (
    CHECKPOINT_FILE,
    ProgressLog,
    RunDirectory,
    differing_fields,
    opened,
    read_checkpoint,
    require_registered,
)
from gaming_gym.wrappers import RecordVectorEpisodeStatistics

EVAL_SEED_OFFSET = 1_000_003
"""Evaluation episodes are seeded ``config.seed + EVAL_SEED_OFFSET``: other episodes than training's."""
HOLDOUT_SEED_OFFSET = 2_000_003
"""Seed offset of the held-out true-reward check: other episodes than the evaluation's too."""
REFERENCE_SEED_OFFSET = 3_000_003
"""Seed offset of the behaviour-cloned reference's demonstrations and fit."""


def _generators(seed: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """Random streams seeded with ``seed``: one on the CPU, which initialises networks, and one on
    ``device``, which samples actions and minibatches; on a CPU run, one generator serves both.

    Everything random in training draws from generators like these, passed explicitly, so torch's
    global RNG is left alone. They draw what ``torch.manual_seed(seed)`` and torch's global
    generators would: a seed gives the run it always gave.
    """
    cpu = seeded_generator(seed, torch.device("cpu"))
    return cpu, cpu if device.type == "cpu" else seeded_generator(seed, device)


def evaluate_agent(
    agent: ActorCritic,
    config: PPOConfig,
    step: int,
    device: torch.device,
    initial: ActorCritic | None = None,
) -> Evaluation:
    """Per-episode proxy and true returns of the current policy, as a Goodhart-metric record.

    The policy samples from its own freshly seeded generator: evaluations are reproducible, and
    how often they happen does not change the training run's own random stream.

    With ``initial`` (the policy before training) the record's ``kl`` is the mean
    KL(current || initial) over every state the policy acted on during the evaluation, all of
    them on-policy (envs whose episode ended play on until the last one ends, and count too);
    ``sqrt(kl)`` is Gao et al.'s distance d: exactly 0 before the first update. With
    ``config.holdout_episodes`` the same policy also plays that many episodes on other seeds (and
    its own generator), the held-out true-reward check that early stopping reads.
    """
    seed = config.seed + EVAL_SEED_OFFSET
    policy = agent.policy(config.eval_deterministic, seeded_generator(seed, device))
    kls: list[torch.Tensor] = []
    returns = evaluate(
        policy if initial is None else _measuring_kl(policy, agent, initial, kls),
        config.env_id,
        episodes=config.eval_episodes,
        seed=seed,
        device=device,
        knobs=config.knobs,
        reward_model=config.reward_model,
    )
    kl = None
    if initial is not None:  # nearly identical policies can round to a hair below 0
        kl = max(float(torch.cat(kls).mean()), 0.0)
    holdout = None
    if config.holdout_episodes:
        seed = config.seed + HOLDOUT_SEED_OFFSET
        holdout = evaluate(
            agent.policy(config.eval_deterministic, seeded_generator(seed, device)),
            config.env_id,
            episodes=config.holdout_episodes,
            seed=seed,
            device=device,
            knobs=config.knobs,
        )
    return Evaluation.from_returns(step, returns, kl=kl, holdout=holdout)


def _measuring_kl(
    policy: Policy, agent: ActorCritic, initial: ActorCritic, kls: list[torch.Tensor]
) -> Policy:
    """``policy`` (the agent's), appending KL(agent || initial) on each batch of observations it
    acts on to ``kls`` (on the device; nothing waits for them until the evaluation is over)."""

    @torch.no_grad()
    def act(obs: torch.Tensor) -> torch.Tensor:
        kls.append(kl_from(initial, agent.action_distribution(obs), obs))
        return policy(obs)

    return act


# --- the reference policy of the KL penalty ------------------------------------------------------

REFERENCE_ENVS = 64
"""Envs the scripted intended policy plays to collect demonstrations for its clone (one episode's
length each: 64 x 1000 states on BoatRace); the last eighth are held out to measure agreement."""


def build_intended_reference(config: PPOConfig, device: torch.device) -> SmoothedPolicy:
    """A behaviour-cloned copy of the env's scripted ``intended`` policy: RLHF's SFT model here.

    The teacher plays ``REFERENCE_ENVS`` envs (the run's env and knobs) for one episode's length,
    with random actions mixed in (see :func:`~gaming_gym.agents.reference.collect_demonstrations`);
    a fresh :class:`ActorCritic` of the run's ``hidden_sizes``, normalising observations with its
    own statistics, is fitted to the teacher's actions by maximum likelihood and smoothed to stay
    stochastic (:class:`~gaming_gym.agents.reference.SmoothedPolicy`). Deterministic from
    ``config.seed``, from generators of its own, so the training run's random stream is
    untouched. A few seconds on a CPU. With ``kl_reference="sft"`` the clone learns the noisy
    demonstrator's actions as taken (:data:`~gaming_gym.agents.reference.SFT_EXPLORATION` random),
    not the teacher's labels: a stochastic SFT model for the policy to start from.
    """
    env = gym.make_vec(config.env_id, num_envs=REFERENCE_ENVS, device=device, **config.knobs)
    try:
        steps = env.unwrapped.max_episode_steps or 1000
        seed = config.seed + REFERENCE_SEED_OFFSET
        init_generator, fit_generator = _generators(seed, device)
        clone = _new_agent(env, config, norm_obs=True, generator=init_generator).to(device)
        return behaviour_clone(
            env.unwrapped.reference_policy("intended"),
            env,
            clone,
            steps,
            seed,
            held_out_envs=REFERENCE_ENVS // 8,
            generator=fit_generator,
            **({"exploration": SFT_EXPLORATION, "label_taken": True} if config.kl_reference == "sft" else {}),
        )
    finally:
        env.close()


def _new_agent(
    env: gym.vector.VectorEnv, config: PPOConfig, norm_obs: bool, generator: torch.Generator
) -> ActorCritic:
    spaces = (env.single_observation_space, env.single_action_space)
    return ActorCritic(*spaces, config.hidden_sizes, norm_obs, generator)


# --- early stopping ------------------------------------------------------------------------------


def _true_anchors(config: PPOConfig) -> tuple[float, float]:
    """Mean true returns of the random and the intended policy on the run's env and knobs: 0 and 1
    of the normalised units ``early_stop_min_drop`` is given in."""
    references = reference_returns(config.env_id, config.knobs)
    random_mean = float(references["random"].true.mean())
    intended_mean = float(references["intended"].true.mean())
    if random_mean == intended_mean:
        raise ConfigError(
            f"early_stop cannot normalise held-out true returns on {config.env_id}: the random and the "
            f"intended policy both average {random_mean}; turn early_stop off for this env"
        )
    return random_mean, intended_mean


def _normalised_holdout(evaluations: Sequence[Evaluation], anchors: tuple[float, float]) -> list[float]:
    return [float(normalise(np.mean(e.holdout_true), *anchors)) for e in evaluations]


# --- the training loop ---------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a finished :func:`train` call leaves: the agent, its evaluations and where it wrote."""

    config: PPOConfig
    agent: ActorCritic
    checkpoints: list[Evaluation]  # one per evaluation, in step order, the first at step 0
    global_step: int
    iteration: int
    run_dir: Path | None
    stopped_step: int | None = None
    """step of the evaluation at which early stopping fired and training ended (it may be the
    last); ``None`` when it never fired"""
    kept_step: int | None = None
    """when early stopping fired, the step of the evaluation whose agent ``agent`` is"""
    reference_agreement: float | None = None
    """greedy agreement of the cloned ``intended`` reference with the scripted policy (held-out
    states), when the KL penalty uses it"""

    def policy(self, deterministic: bool = False) -> Policy:
        """The trained batched policy, for :func:`gaming_gym.evaluation.evaluate`."""
        return self.agent.policy(deterministic)


@dataclass
class _Run:
    """Everything that changes during training, i.e. everything a checkpoint must hold."""

    agent: ActorCritic
    optimizer: torch.optim.Optimizer
    env: RecordVectorEpisodeStatistics
    obs: torch.Tensor
    initial_agent: ActorCritic  # a frozen copy of the agent before training: KL is measured from it
    generator: torch.Generator  # on the device: samples actions and minibatch orders
    reference: ReferencePolicy | None = None  # the KL penalty's reference, when kl_coef > 0
    iteration: int = 0
    global_step: int = 0
    evaluations: list[Evaluation] = field(default_factory=list)
    best_agent: dict[str, torch.Tensor] | None = None  # early_stop: agent at the best held-out evaluation
    best_step: int | None = None
    stopped_step: int | None = None
    kept_step: int | None = None


def train(
    config: PPOConfig,
    run_dir: str | os.PathLike | RunDirectory | None = None,
    progress: bool = True,
    resume: bool = True,
) -> TrainResult:
    """Train PPO as ``config`` says; with ``run_dir``, log there, checkpoint there and resume there.

    The agent is evaluated before the first update (step 0, where its KL from the initial policy
    is 0), every ``eval_every`` iterations and at the end. ``run_dir`` (a path, or a
    :class:`~gaming_gym.runs.RunDirectory` its caller holds open) is locked while training and
    receives ``config.json``, ``checkpoint.pt`` (config, agent with its observation statistics,
    the initial agent, the KL penalty's cloned reference, optimiser, RNG and env state,
    evaluations, early-stopping state; written atomically every ``checkpoint_every`` iterations,
    at the end, and on Ctrl-C), ``progress.csv`` (a row for the step-0 evaluation, then one per
    iteration, appended as it goes) and TensorBoard scalars (``charts/...``, ``losses/...``,
    ``eval/...``) when ``tensorboard`` is installed; see :mod:`gaming_gym.runs`.

    If ``run_dir`` already holds this run (the same config but for :data:`RESUMABLE_CHANGES`) and
    ``resume`` is true, training continues from its checkpoint as if it had never stopped; a
    finished run (or one early stopping ended) just returns its result. A directory holding
    another run or other files, or a run already trained past ``total_timesteps``, is refused
    before anything is written. Ctrl-C (``KeyboardInterrupt``) writes a checkpoint of the last
    completed iteration before it propagates. ``progress`` shows a tqdm bar with the recent proxy
    and true episode returns.

    A library call leaves the process as it found it: everything random draws from generators
    seeded with ``config.seed`` (torch's global RNG is not touched), and torch's thread count,
    set to ``config.cpu_threads`` while training, is the caller's again on return.
    """
    threads_before = torch.get_num_threads()
    if config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    try:
        with opened(run_dir) as directory:
            return _train(config, directory, progress, resume)
    finally:
        torch.set_num_threads(threads_before)


def _train(config: PPOConfig, directory: RunDirectory | None, progress: bool, resume: bool) -> TrainResult:
    device = resolve_device(config.device)
    anchors = _true_anchors(config) if config.early_stop else None
    run = _start_run(config, device)  # makes the env: a bad env or knob fails before any file is written
    try:
        saved = _claim(directory, config, device, resume) if directory is not None else None
        if saved is not None:
            _restore(run, saved, config, device)
        elif config.kl_reference == "sft":  # RLHF: the policy starts as the SFT model
            run.reference = build_intended_reference(config, device)
            run.agent.load_state_dict(run.reference.clone.state_dict())
            run.initial_agent.load_state_dict(run.reference.clone.state_dict())
        elif config.kl_coef > 0 and config.kl_reference == "intended":
            run.reference = build_intended_reference(config, device)
        if directory is None:
            log = ProgressLog(None)
        else:
            log = directory.progress_log(None if saved is None else run.iteration, EVAL_COLUMNS)
        try:
            _train_loop(run, config, device, anchors, directory, log, progress)
        finally:
            log.close()
    finally:
        run.env.close()
    agreement = float(run.reference.agreement) if isinstance(run.reference, SmoothedPolicy) else None
    return TrainResult(
        config,
        run.agent,
        run.evaluations,
        run.global_step,
        run.iteration,
        directory.path if directory is not None else None,
        stopped_step=run.stopped_step,
        kept_step=run.kept_step,
        reference_agreement=agreement,
    )


def _claim(directory: RunDirectory, config: PPOConfig, device: torch.device, resume: bool) -> dict | None:
    """Check that ``directory`` is empty or holds this run, then write its ``config.json``; return
    the checkpoint to resume from (``None`` for a fresh run)."""
    directory.check_config("ppo", config.to_dict(), RESUMABLE_CHANGES, defaults=PPOConfig().to_dict())
    saved = directory.load_checkpoint(CHECKPOINT_FILE, device)
    if saved is not None:
        if not resume:
            raise RunExistsError(
                f"{directory.file(CHECKPOINT_FILE)} exists; pass resume=True to continue that run"
            )
        directory.require_within(saved["global_step"], config.num_iterations * config.batch_size)
    directory.write_config("ppo", config.to_dict())
    return saved


def _train_loop(
    run: _Run,
    config: PPOConfig,
    device: torch.device,
    anchors: tuple[float, float] | None,
    directory: RunDirectory | None,
    log: ProgressLog,
    progress: bool,
) -> None:
    """Iterate until ``num_iterations`` or early stopping, logging and checkpointing as due.

    Between checkpoints an in-memory copy of the last completed iteration's state is kept, so
    Ctrl-C, which may land in the middle of an iteration, saves that state, not a half-updated one.
    """
    unsaved = None  # checkpoint state of the last completed iteration, when it is not on disk
    bar = _progress_bar(config, run.global_step, enabled=progress)
    try:
        if run.iteration == 0:
            log.write({"iteration": 0, "global_step": 0, **_evaluate(run, config, device, anchors)})
        while run.iteration < config.num_iterations and run.stopped_step is None:
            row = _train_iteration(run, config, device)
            last = run.iteration == config.num_iterations
            if _due(run.iteration, config.eval_every) or last:
                row.update(_evaluate(run, config, device, anchors))
            log.write(row)
            bar.update(config.batch_size)
            if math.isfinite(row["charts/true_return"]):  # NaN until the first episode ends
                bar.set_postfix(
                    proxy=f"{row['charts/proxy_return']:.2f}", true=f"{row['charts/true_return']:.2f}"
                )
            if run.stopped_step is not None and progress:
                bar.write(f"early stop at step {run.stopped_step}: kept the agent of step {run.kept_step}")
            if directory is None:
                continue
            if _due(run.iteration, config.checkpoint_every) or last or run.stopped_step is not None:
                directory.save_checkpoint(checkpoint_state(run, config))
                unsaved = None
            else:
                unsaved = copy.deepcopy(checkpoint_state(run, config))
    except KeyboardInterrupt:
        if unsaved is not None:
            directory.save_checkpoint(unsaved)
        raise
    finally:
        bar.close()


def _due(iteration: int, every: int) -> bool:
    return every > 0 and iteration % every == 0


def _start_run(config: PPOConfig, device: torch.device) -> _Run:
    """Make the batched env and reset it with the run's seed, then the run's agent (see
    :func:`new_run`)."""
    env = make_training_env(config, device)
    obs, _ = env.reset(seed=config.seed)
    return new_run(config, device, env, obs)


def make_training_env(
    config: PPOConfig, device: torch.device, num_envs: int | None = None, blocks: int = 1
) -> RecordVectorEpisodeStatistics:
    """The batched env a run trains on (``num_envs`` of them, in ``blocks`` whose episodes are
    counted apart: stacked agents share one), with its episode statistics, not yet reset.

    It skips what would make the host wait for the device at every step: checking action values
    (the policy heads act inside the action space by construction; evaluations, on envs of their
    own, still check every action) and reading ended episodes, which wait on the device until
    :func:`_train_iteration` reads them, once an iteration.
    """
    env = gym.make_vec(config.env_id, num_envs=num_envs or config.num_envs, device=device, **config.knobs)
    if not isinstance(env.unwrapped, GameableVectorEnv):
        env.close()
        raise ConfigError(
            f"{config.env_id} makes a {type(env.unwrapped).__name__}; native PPO needs a batched "
            "GameableVectorEnv (the vector entry point of a gameable env)"
        )
    env.unwrapped.check_action_values = False
    try:
        env = with_reward_model(env, config.reward_model, config.env_id, config.knobs)
        env = RecordVectorEpisodeStatistics(env, deferred=True, blocks=blocks)
        require_network_size(env.single_observation_space, env.single_action_space, config)
    except ConfigError:
        env.close()
        raise
    return env


def new_run(config: PPOConfig, device: torch.device, env: Any, obs: torch.Tensor) -> _Run:
    """A fresh run on ``env`` (reset, at ``obs``): the agent drawn from a generator seeded with
    the run's seed, its frozen copy and its optimiser.

    The KL penalty's reference is the frozen initial agent with ``kl_reference="initial"``; a
    cloned ``"intended"`` one is built (or restored) by the caller.
    """
    init_generator, generator = _generators(config.seed, device)
    agent = _new_agent(env, config, config.norm_obs, init_generator).to(device)
    initial_agent = copy.deepcopy(agent).requires_grad_(False)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)
    run = _Run(agent, optimizer, env, obs, initial_agent, generator)
    if config.kl_coef > 0 and config.kl_reference == "initial":
        run.reference = initial_agent
    return run


def _evaluate(
    run: _Run, config: PPOConfig, device: torch.device, anchors: tuple[float, float] | None
) -> dict[str, float]:
    """Evaluate the agent now (early stopping may then end the run); return the log's eval columns."""
    evaluation = evaluate_agent(run.agent, config, run.global_step, device, run.initial_agent)
    run.evaluations.append(evaluation)
    if config.early_stop:
        _apply_early_stop(run, config, anchors)
    return _evaluation_row(evaluation)


def _apply_early_stop(run: _Run, config: PPOConfig, anchors: tuple[float, float]) -> None:
    """Keep a copy of the agent at the best held-out evaluation so far; at the Goodhart onset,
    put that agent back and mark the run stopped (the optimiser keeps its later state: the run is
    over)."""
    curve = _normalised_holdout(run.evaluations, anchors)
    if int(np.argmax(curve)) == len(curve) - 1:  # a new running best (a tie keeps the earlier one)
        run.best_agent = {name: tensor.clone() for name, tensor in run.agent.state_dict().items()}
        run.best_step = run.global_step
    stop = early_stop(curve, config.early_stop_min_drop, config.early_stop_patience)
    if stop.stop_index is None:
        return
    fired, kept = stop.stop_index, stop.kept_index
    if run.evaluations[kept].step != run.best_step:
        raise RuntimeError(
            f"early stopping kept step {run.evaluations[kept].step} but the best agent held is of "
            f"step {run.best_step}"
        )
    run.agent.load_state_dict(run.best_agent)
    run.stopped_step, run.kept_step = run.evaluations[fired].step, run.best_step


EVAL_COLUMNS = (
    "eval/proxy_return",
    "eval/true_return",
    "eval/kl_from_initial",
    "eval/d",
    "eval/holdout_true_return",
)
"""Log columns of an evaluation (the held-out one only with ``holdout_episodes``)."""


def _evaluation_row(evaluation: Evaluation) -> dict[str, float]:
    row = {
        "eval/proxy_return": float(np.mean(evaluation.proxy)),
        "eval/true_return": float(np.mean(evaluation.true)),
    }
    if evaluation.kl is not None:
        row["eval/kl_from_initial"] = evaluation.kl
        row["eval/d"] = math.sqrt(evaluation.kl)  # Gao et al.'s distance from the initial policy
    if evaluation.holdout_true is not None:
        row["eval/holdout_true_return"] = float(np.mean(evaluation.holdout_true))
    return row


def _train_iteration(run: _Run, config: PPOConfig, device: torch.device) -> dict[str, float]:
    """One rollout and one update; returns the iteration's log row."""
    started = time.perf_counter()
    anneal_learning_rate(run, config)
    rollout, run.obs = collect_rollout(run.agent, run.env, run.obs, config, run.reference, run.generator)
    advantages, returns = rollout_advantages(rollout, config.gamma, config.gae_lambda)
    losses = ppo_update(run.agent, run.optimizer, rollout, advantages, returns, config, run.generator)
    return finish_iteration(run, config, rollout, returns, losses, time.perf_counter() - started)


def anneal_learning_rate(run: _Run, config: PPOConfig) -> None:
    """With ``anneal_lr``, the learning rate of the coming iteration: linearly down to zero."""
    if config.anneal_lr:
        fraction = 1.0 - run.iteration / config.num_iterations
        run.optimizer.param_groups[0]["lr"] = fraction * config.learning_rate


def finish_iteration(
    run: _Run,
    config: PPOConfig,
    rollout: Rollout,
    returns: torch.Tensor,
    losses: dict[str, torch.Tensor],
    seconds: float,
) -> dict[str, float]:
    """Count the iteration that took ``seconds`` and return its log row."""
    run.iteration += 1
    run.global_step += config.batch_size
    charts, losses = _read_statistics(rollout, returns, losses)
    episodes = run.env.queues.means()  # reads the episodes that ended, kept on the device till now
    row = {
        "iteration": run.iteration,
        "global_step": run.global_step,
        "charts/proxy_return": episodes.get("proxy", math.nan),
        "charts/true_return": episodes.get("true", math.nan),
        "charts/episode_length": episodes.get("length", math.nan),
        "charts/episodes": run.env.queues.episode_count,
        "charts/learning_rate": run.optimizer.param_groups[0]["lr"],
        **charts,
        "charts/fps": config.batch_size / seconds,
    }
    return {**row, **losses}


def _read_statistics(
    rollout: Rollout, returns: torch.Tensor, losses: dict[str, torch.Tensor]
) -> tuple[dict[str, float], dict[str, float]]:
    """The iteration's KL-penalty ``charts/`` and its ``losses/`` log columns, read from the
    device in one copy: the hot loop's numbers reach the host here, once an iteration."""
    returns, values = returns.flatten(), rollout.values.flatten()
    scalars = {"returns_variance": returns.var(), "residual_variance": (returns - values).var()}
    if rollout.kl_reference is not None:
        scalars["charts/kl_reference"] = rollout.kl_reference.mean()  # mean KL(pi || pi_ref) per state
        scalars["charts/kl_penalty"] = rollout.kl_penalty.mean()  # mean penalty a step, unscaled
    read = _to_host({**scalars, **{f"losses/{name}": value for name, value in losses.items()}})
    variance, residual = float(read.pop("returns_variance")[0]), float(read.pop("residual_variance")[0])
    charts = {name: float(value[0]) for name, value in read.items() if name.startswith("charts/")}
    losses = {name: float(np.mean(value)) for name, value in read.items() if name.startswith("losses/")}
    losses["losses/explained_variance"] = math.nan if variance == 0 else 1.0 - residual / variance
    return charts, losses


def _to_host(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Each tensor's values as a flat float64 array, all copied from the device at once."""
    flat = torch.cat([tensor.flatten().float() for tensor in tensors.values()]).cpu().numpy()
    parts = np.split(flat.astype(np.float64), np.cumsum([tensor.numel() for tensor in tensors.values()])[:-1])
    return dict(zip(tensors, parts, strict=True))


# --- checkpoints ---------------------------------------------------------------------------------


def checkpoint_state(run: _Run, config: PPOConfig) -> dict[str, Any]:
    """Everything needed to continue the run exactly, as tensors and plain data (what
    ``checkpoint.pt`` holds; the live tensors, not copies)."""
    return {
        "config": config.to_dict(),
        "iteration": run.iteration,
        "global_step": run.global_step,
        "agent": run.agent.state_dict(),
        "initial_agent": run.initial_agent.state_dict(),
        "reference": run.reference.state_dict() if isinstance(run.reference, SmoothedPolicy) else None,
        "optimizer": run.optimizer.state_dict(),
        "torch_rng": run.generator.get_state(),  # a CPU run's is what torch.get_rng_state() was
        "env": run.env.get_state(),
        "obs": run.obs,
        "evaluations": [e.to_record() for e in run.evaluations],
        "best_agent": run.best_agent,
        "best_step": run.best_step,
        "stopped_step": run.stopped_step,
        "kept_step": run.kept_step,
    }


def _restore(run: _Run, state: dict[str, Any], config: PPOConfig, device: torch.device) -> None:
    """Put a saved run's state back into ``run``, after checking it is the same experiment.

    Checkpoints written before the initial agent was saved restore too: :func:`_start_run` builds
    the agent from the seed, so the initial agent it made is the one that run started from; their
    evaluations just carry no KL.
    """
    differing = differing_fields(state["config"], config.to_dict(), RESUMABLE_CHANGES, PPOConfig().to_dict())
    if differing:
        raise RunDirectoryError(
            f"the checkpoint in run_dir was written by a different config (it differs in "
            f"{', '.join(differing)}); use a new run_dir, or the same config to resume"
        )
    run.agent.load_state_dict(state["agent"])
    if state.get("initial_agent") is not None:
        run.initial_agent.load_state_dict(state["initial_agent"])
    if state.get("reference") is not None:  # built before the RNG state below is put back
        clone = _new_agent(run.env, config, norm_obs=True, generator=torch.Generator())  # loaded over
        run.reference = SmoothedPolicy(clone).to(device)
        run.reference.load_state_dict(state["reference"])
        run.reference.requires_grad_(False)
    run.optimizer.load_state_dict(state["optimizer"])
    run.generator.set_state(state["torch_rng"].cpu())  # a generator's state is a CPU tensor, on any device
    run.env.set_state(state["env"])
    run.obs = state["obs"]
    run.iteration, run.global_step = state["iteration"], state["global_step"]
    run.evaluations = [Evaluation.from_record(record) for record in state["evaluations"]]
    run.best_agent, run.best_step = state.get("best_agent"), state.get("best_step")
    run.stopped_step, run.kept_step = state.get("stopped_step"), state.get("kept_step")


RESUMABLE_CHANGES = ("total_timesteps", "eval_every", "checkpoint_every", "device", "cpu_threads")
"""Config fields a resumed run may change (to train longer, say); all others must match.

The KL penalty, the held-out check and early stopping are part of the experiment: the penalty
shapes every update, the stopping rule reads a held-out curve that must be measured the same way
throughout, and whether and where a run stops decides its result. A run early stopping ended
stays ended even if resumed with a larger ``total_timesteps``.
"""


def load_agent(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[ActorCritic, PPOConfig]:
    """The trained agent and its config from a checkpoint file or a run directory.

    Nothing in it is unpickled, and its env id must be a registered gameable env (a ``module:``
    id would make Gymnasium import that module): a run directory may come from anyone.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    device = resolve_device(device)
    state = read_checkpoint(path, device)
    require_registered(state.get("config", {}).get("env_id"), path)
    config = PPOConfig(**state["config"])
    env = gym.make_vec(config.env_id, num_envs=1, **config.knobs)
    agent = _new_agent(env, config, config.norm_obs, generator=torch.Generator())  # loaded over
    env.close()
    agent.load_state_dict(state["agent"])
    return agent.to(device), config


def _progress_bar(config: PPOConfig, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=config.num_iterations * config.batch_size,
        initial=initial,
        unit="step",
        unit_scale=True,
        desc=f"PPO {config.env_id.split('/')[-1]} ({config.reward})",
        disable=not enabled,
    )
