"""One agent's run in a stack, and native PPO's checkpoint file: what it holds, how a run claims its
directory, resumes from it, and how a trained agent is read back.

Each agent of a stack writes a ``checkpoint.pt`` of its own in the solo format (a stack of one's),
so a stacked run resumes from its agents' checkpoints, one agent of it can be continued alone,
and ``evaluate``, ``render`` and ``report`` read it like any other. Checkpoints written before
mitigations were plug-ins (no ``format``) still load: :func:`upgraded_checkpoint` reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from gaming_gym.agents.ppo.config import PPOConfig, as_today, upgraded
from gaming_gym.agents.ppo.networks import ActorCritic
from gaming_gym.devices import resolve_device
from gaming_gym.errors import RunDirectoryError, RunExistsError
from gaming_gym.metrics import Evaluation
from gaming_gym.runs import ProgressLog, RunDirectory, differing_fields, read_checkpoint, require_registered

CHECKPOINT_FILE = "checkpoint.pt"
"""native PPO's latest checkpoint in a run directory (plain tensors and data)"""
CHECKPOINT_FORMAT = "gaming_gym.ppo_checkpoint/2"
"""Checkpoints without a format were written before mitigations were plug-ins (format 1)."""
RESUMABLE_CHANGES = (
    "total_timesteps",
    "eval_every",
    "checkpoint_every",
    "device",
    "cpu_threads",
    "compile",
)
"""Config fields a resumed run may change (to train longer, say); all others must match.

The mitigations are part of the experiment: a penalty shapes every update, a stopping rule reads
a held-out curve that must be measured the same way throughout, and whether and where a run
stops decides its result. A finished run (trained to its end, or ended by early stopping) takes no
change at all but ``device`` and ``cpu_threads``: re-running it only rewrites its report.
"""


@dataclass
class AgentRun:
    """One agent of a stack: everything of its run that changes while training (what its
    checkpoint holds), and where it writes."""

    config: PPOConfig
    agent: ActorCritic
    initial: ActorCritic  # a frozen copy of the agent before training: KL is measured from it
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # on the device: samples actions and minibatch orders
    directory: RunDirectory | None = None
    iteration: int = 0
    global_step: int = 0
    evaluations: list[Evaluation] = field(default_factory=list)
    stopped_step: int | None = None  # the evaluation at which early stopping ended the run
    kept_step: int | None = None  # the evaluation whose agent it kept
    log: ProgressLog | None = None
    unsaved: dict[str, Any] | None = None  # the last whole iteration's state, for Ctrl-C

    @property
    def finished(self) -> bool:
        return self.stopped_step is not None or self.iteration >= self.config.num_iterations


def new_agent(env: gym.vector.VectorEnv, config: PPOConfig, generator: torch.Generator) -> ActorCritic:
    """An untrained :class:`ActorCritic` of ``config``'s shape for ``env``, drawn from ``generator``."""
    spaces = (env.single_observation_space, env.single_action_space)
    return ActorCritic(*spaces, config.hidden_sizes, config.norm_obs, generator)


def checkpoint_state(
    run: AgentRun,
    env_state: dict[str, Any],
    obs: torch.Tensor,
    clones: dict[str, Any],
    mitigations: dict[str, Any],
) -> dict[str, Any]:
    """Everything needed to continue one agent's run exactly, as tensors and plain data (what its
    ``checkpoint.pt`` holds; the live tensors, not copies): ``env_state`` and ``obs`` are its
    block of the stack's env, ``clones`` the state of each behaviour clone built for it, and
    ``mitigations`` each mitigation's state for it."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": run.config.to_dict(),
        "iteration": run.iteration,
        "global_step": run.global_step,
        "agent": run.agent.state_dict(),
        "initial_agent": run.initial.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "torch_rng": run.generator.get_state(),  # a CPU run's is what torch.get_rng_state() was
        "env": env_state,
        "obs": obs,
        "evaluations": [e.to_record() for e in run.evaluations],
        "stopped_step": run.stopped_step,
        "kept_step": run.kept_step,
        "clones": clones,
        "mitigations": mitigations,
    }


def upgraded_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of the first format in today's: its config upgraded (:func:`upgraded`), its
    cloned KL reference (``reference``) a clone of the kind the config named, and early
    stopping's best agent (``best_agent``, ``best_step``) that mitigation's state."""
    if state.get("format") == CHECKPOINT_FORMAT:
        return state
    state = dict(state)
    old_config = state["config"]
    reference, best_agent, best_step = (
        state.pop(key, None) for key in ("reference", "best_agent", "best_step")
    )
    state["config"] = upgraded(old_config)
    state["clones"] = {} if reference is None else {old_config.get("kl_reference", "intended"): reference}
    state["mitigations"] = {}
    if "early_stopping" in state["config"]["mitigations"]:
        state["mitigations"]["early_stopping"] = {"best": best_agent, "best_step": best_step}
    state["format"] = CHECKPOINT_FORMAT
    return state


def claim(directory: RunDirectory, config: PPOConfig, device: torch.device, resume: bool) -> dict | None:
    """Check that ``directory`` is empty or holds this run, then write its ``config.json``; return
    the checkpoint to resume from, upgraded (``None`` for a fresh run)."""
    directory.check_config("ppo", config.to_dict(), RESUMABLE_CHANGES, upgrade=as_today)
    saved = directory.load_checkpoint(CHECKPOINT_FILE, device)
    if saved is not None:
        if not resume:
            raise RunExistsError(
                f"{directory.file(CHECKPOINT_FILE)} exists; pass resume=True to continue that run"
            )
        saved = upgraded_checkpoint(saved)
        steps = config.num_iterations * config.batch_size
        directory.require_within(saved["global_step"], steps)
        finished = saved.get("stopped_step") is not None or saved["global_step"] >= steps
        directory.require_unchanged_when_finished(finished, config.to_dict(), as_today)
    directory.write_config("ppo", config.to_dict())
    return saved


def restore(run: AgentRun, state: dict[str, Any]) -> None:
    """Put a saved run's own state back into ``run``, after checking it is the same experiment
    (its env block, clones and mitigations are the stack's to put back).

    Checkpoints written before the initial agent was saved restore too: the agent was built
    from the seed, so the initial agent made here is the one that run started from; their
    evaluations just carry no KL.
    """
    differing = differing_fields(as_today(state["config"]), run.config.to_dict(), RESUMABLE_CHANGES)
    if differing:
        raise RunDirectoryError(
            f"the checkpoint in run_dir was written by a different config (it differs in "
            f"{', '.join(differing)}); use a new run_dir, or the same config to resume"
        )
    run.agent.load_state_dict(state["agent"])
    if state.get("initial_agent") is not None:
        run.initial.load_state_dict(state["initial_agent"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.generator.set_state(state["torch_rng"].cpu())  # a generator's state is a CPU tensor, on any device
    run.iteration, run.global_step = state["iteration"], state["global_step"]
    run.evaluations = [Evaluation.from_record(record) for record in state["evaluations"]]
    run.stopped_step, run.kept_step = state.get("stopped_step"), state.get("kept_step")


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
    config = PPOConfig.from_dict(upgraded_checkpoint(state)["config"])
    env = gym.make_vec(config.env_id, num_envs=1, **config.knobs)
    agent = new_agent(env, config, generator=torch.Generator())  # loaded over
    env.close()
    agent.load_state_dict(state["agent"])
    return agent.to(device), config
