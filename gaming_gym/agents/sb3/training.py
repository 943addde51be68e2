"""One SB3 PPO run, like for like with native PPO: training into a run directory, resuming it,
and reading its policy back without unpickling anything."""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.logger import KVWriter, Logger

from gaming_gym.agents.ppo import PPOConfig
from gaming_gym.agents.ppo.config import require_network_size
from gaming_gym.agents.ppo.context import EVAL_COLUMNS
from gaming_gym.agents.sb3.callback import GoodhartCallback
from gaming_gym.agents.sb3.settings import (
    AGENT_FILE,
    AGENT_FORMAT,
    LEGACY_MODEL_FILE,
    NATIVE_ONLY,
    READABLE_FORMATS,
    RESUMABLE_CHANGES,
    SB3Settings,
    build_model,
    policy_kwargs,
    translate,
)
from gaming_gym.agents.sb3.vec_env import ObservationNormaliser, load_statistics, make_sb3_vec_env, sb3_policy
from gaming_gym.devices import resolve_device
from gaming_gym.errors import ConfigError, GamingGymWarning, RunDirectoryError, RunNotFoundError
from gaming_gym.evaluation import EpisodeReturns
from gaming_gym.kernel import Policy
from gaming_gym.metrics import Evaluation
from gaming_gym.mitigations import build_mitigations
from gaming_gym.runs import (
    EVALUATIONS_FILE,
    ProgressLog,
    RunDirectory,
    opened,
    read_checkpoint,
    read_evaluations,
    require_registered,
)


@dataclass
class SB3Result:
    """What :func:`train_sb3` leaves: the model, the settings it ran with and its evaluations."""

    model: Any  # stable_baselines3.PPO
    config: PPOConfig
    checkpoints: list[Evaluation]
    run_dir: Path | None
    normaliser: ObservationNormaliser | None = None
    """the model's observation statistics (``None`` without ``norm_obs``)"""
    stopped_step: int | None = None
    """the evaluation at which a mitigation (early stopping) ended training, if one did"""
    kept_step: int | None = None

    def policy(self, deterministic: bool = False) -> Policy:
        """The trained batched policy on raw observations, for :func:`gaming_gym.evaluation.evaluate`."""
        return sb3_policy(self.model, deterministic, self.normaliser)


def run_record(config: PPOConfig) -> dict[str, Any]:
    """What ``config.json`` records of an SB3 run: its settings, less those SB3 cannot honour."""
    return {name: value for name, value in config.to_dict().items() if name not in NATIVE_ONLY}


def train_sb3(
    config: PPOConfig,
    run_dir: str | os.PathLike | RunDirectory | None = None,
    progress: bool = True,
) -> SB3Result:
    """Train SB3 PPO as ``config`` says (see :func:`sb3_config`, :func:`translate`) on the batched
    env through :class:`SB3VecEnv`, evaluating for the Goodhart metric as native PPO does.

    Training runs ``total_timesteps`` rounded down to whole rollouts. With ``run_dir`` (a path, or
    a :class:`~gaming_gym.runs.RunDirectory` its caller holds open), the run directory is locked
    while training and receives ``config.json`` and :data:`AGENT_FILE`: the agent's weights,
    observation statistics, optimiser state, step counts and evaluations so far, as plain tensors,
    written atomically at the first rollout start after each evaluation and every
    ``checkpoint_every`` rollouts, at the end, and on Ctrl-C (the state of the last whole rollout).
    Calling again with the same ``run_dir`` builds a fresh model from these settings and loads that
    state into it, to resume; a directory holding another run (other settings but for
    :data:`RESUMABLE_CHANGES`), other files, or a run already trained past ``total_timesteps`` is
    refused before anything is written.
    """
    settings = translate(config)
    torch_device = resolve_device(config.device)
    threads_before = torch.get_num_threads()
    if config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    env = make_sb3_vec_env(
        config.env_id, config.num_envs, seed=config.seed, reward=config.reward, **config.knobs
    )
    try:
        require_network_size(env.observation_space, env.action_space, config)
        callback = GoodhartCallback(
            config.env_id,
            config.knobs,
            settings.eval_every,
            config.eval_episodes,
            seed=settings.eval_seed,
            deterministic=config.eval_deterministic,
            progress=progress,
            evaluate_at_start=True,
        )
        model = build_model(env, settings, torch_device)
        context = SB3Context(config, model, callback)
        callback.mitigations = build_mitigations([config.mitigations], context) if config.mitigations else []
        with opened(run_dir) as directory:
            saver = None if directory is None else RunSaver(directory, model, callback, config, settings)
            if saver is None or saver.fresh:
                for mitigation in callback.mitigations:
                    mitigation.prepare()
            remaining = settings.total_timesteps - model.num_timesteps
            if saver is not None and not saver.fresh and remaining > 0 and callback.stopped_step is None:
                warnings.warn(
                    f"resuming the SB3 run in {directory.path} at step {model.num_timesteps:,}: SB3 "
                    "starts new episodes and a new rollout here, so the run will differ from one never "
                    "interrupted (native PPO resumes exactly)",
                    GamingGymWarning,
                    stacklevel=2,
                )
            if remaining > 0 and callback.stopped_step is None:
                try:
                    model.learn(remaining, callback=callback, reset_num_timesteps=False)
                except KeyboardInterrupt:
                    if saver is not None:
                        saver.save_unsaved()
                    raise
                if saver is not None:
                    saver.save()
            if saver is not None:
                saver.log.close()
    finally:
        env.close()
        torch.set_num_threads(threads_before)
    vec_normalize = model.get_vec_normalize_env()
    normaliser = None if vec_normalize is None else ObservationNormaliser.of(vec_normalize)
    path = directory.path if directory is not None else None
    return SB3Result(
        model, config, callback.checkpoints, path, normaliser, callback.stopped_step, callback.kept_step
    )


class SB3Context:
    """The :class:`gaming_gym.mitigations.Context` of an SB3 run (a stack of one): held-out play,
    the model's weights and evaluations. It has no initial policy or behaviour clone to offer."""

    num_agents = 1

    def __init__(self, config: PPOConfig, model: Any, callback: GoodhartCallback):
        self.config, self.model, self.callback = config, model, callback
        self.envs_per_agent, self.device = config.num_envs, model.device
        self.env_id, self.knobs = config.env_id, dict(config.knobs)
        self.reward_model = None  # SB3 trains on the env's own proxy

    def initial_policy(self):
        raise ConfigError("the SB3 agent keeps no initial policy for a mitigation; train with --agent ppo")

    def clone(self, kind: str):
        raise ConfigError("the SB3 agent builds no behaviour clone for a mitigation; train with --agent ppo")

    def play(self, episodes: int, seed_offset: int) -> list[EpisodeReturns]:
        return [self.callback.play(episodes, self.config.seed + seed_offset)]

    def agent_state(self, agent: int) -> dict[str, Any]:
        return self.callback.agent_state()

    def evaluations(self, agent: int) -> list[Evaluation]:
        return self.callback.checkpoints


class RunSaver:
    """Claims the run directory for an SB3 run (resuming what it holds) and saves the run there.

    The run is saved at rollout starts, where the model is whole (the update on the rollout before
    is done, the step count is a whole number of rollouts): after an evaluation and every
    ``checkpoint_every`` rollouts. In between, a copy of the state at the last rollout start is
    kept for Ctrl-C.
    """

    def __init__(
        self,
        directory: RunDirectory,
        model: Any,
        callback: GoodhartCallback,
        config: PPOConfig,
        settings: SB3Settings,
    ):
        self.directory, self.model, self.callback, self.config = directory, model, callback, config
        self.rollout = settings.rollout
        _refuse_legacy_model(directory.path)
        record = run_record(config)
        directory.check_config(
            "sb3",
            record,
            RESUMABLE_CHANGES,
            upgrade=lambda saved: {"mitigations": {}, **saved},
        )
        state = directory.load_checkpoint(AGENT_FILE, model.device)
        if state is not None:
            state = _checked_agent_state(state, directory.file(AGENT_FILE))
            directory.require_within(state["num_timesteps"], settings.total_timesteps)
            finished = (
                state.get("stopped_step") is not None or state["num_timesteps"] >= settings.total_timesteps
            )
            directory.require_unchanged_when_finished(
                finished, record, lambda saved: {"mitigations": {}, **saved}
            )
        directory.write_config("sb3", record)
        self.fresh = state is None
        if state is not None:
            _restore_sb3_run(model, state)
            callback.resume_at(model.num_timesteps, self._evaluations(state))
            callback.stopped_step, callback.kept_step = state.get("stopped_step"), state.get("kept_step")
            for mitigation in callback.mitigations:
                mitigation.load_state(0, state.get("mitigations", {}).get(mitigation.name, {}))
        self.saved_step, self.saved_evaluations = model.num_timesteps, len(callback.checkpoints)
        self.unsaved: dict[str, Any] | None = None
        callback.before_rollout = self.before_rollout
        keep = None if state is None else model.num_timesteps // self.rollout
        self.log = directory.progress_log(keep, (*EVAL_COLUMNS, *TRAIN_COLUMNS))
        model.set_logger(Logger(None, [ProgressWriter(self.log, self.rollout)]))

    def _evaluations(self, state: dict[str, Any]) -> list[Evaluation]:
        """The evaluations saved with the agent (or, from an older version, in evaluations.json)."""
        if "evaluations" in state:
            return [Evaluation.from_record(record) for record in state["evaluations"]]
        return read_evaluations(self.directory.path) if self.directory.file(EVALUATIONS_FILE).exists() else []

    def before_rollout(self) -> None:
        if self.model.num_timesteps == self.saved_step:
            return
        every = self.config.checkpoint_every
        due = every > 0 and (self.model.num_timesteps // self.rollout) % every == 0
        if due or len(self.callback.checkpoints) > self.saved_evaluations:
            self.save()
        else:
            self.unsaved = copy.deepcopy(self._state())

    def save(self) -> None:
        self.directory.save_checkpoint(self._state(), AGENT_FILE)
        self.saved_step, self.saved_evaluations = self.model.num_timesteps, len(self.callback.checkpoints)
        self.unsaved = None

    def save_unsaved(self) -> None:
        if self.unsaved is not None:
            self.directory.save_checkpoint(self.unsaved, AGENT_FILE)

    def _state(self) -> dict[str, Any]:
        """The agent as plain tensors and numbers, with the evaluations so far."""
        model, config = self.model, self.config
        vec_normalize = model.get_vec_normalize_env()
        return {
            "format": AGENT_FORMAT,
            "env_id": config.env_id,
            "knobs": config.knobs,
            "hidden_sizes": list(config.hidden_sizes),
            "obs_rms": None if vec_normalize is None else ObservationNormaliser.of(vec_normalize).state(),
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(model._n_updates),
            "policy": model.policy.state_dict(),
            "optimizer": model.policy.optimizer.state_dict(),
            "evaluations": [c.to_record() for c in self.callback.checkpoints],
            "stopped_step": self.callback.stopped_step,
            "kept_step": self.callback.kept_step,
            "mitigations": {m.name: m.state(0) for m in self.callback.mitigations},
        }


TRAIN_COLUMNS = tuple(
    f"train/{name}"
    for name in (
        "loss", "policy_gradient_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction",
        "clip_range", "explained_variance", "learning_rate", "n_updates", "std",
    )
)  # fmt: skip
"""SB3's update columns: its first log row comes before its first update, so they are named here."""


class ProgressWriter(KVWriter):
    """SB3's logger written as the run's ``progress.csv`` (a :class:`~gaming_gym.runs.ProgressLog`,
    cut back to the checkpoint on resume): one row per rollout, SB3's own columns (``train/``,
    ``rollout/``, ``time/``) beside native PPO's ``charts/`` and ``eval/`` ones."""

    def __init__(self, log: ProgressLog, rollout: int):
        self.log, self.rollout = log, rollout

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        numbers = {k: float(v) for k, v in key_values.items() if isinstance(v, (int, float, np.number))}
        self.log.write({"iteration": step // self.rollout, "global_step": step, **numbers})

    def close(self) -> None:
        self.log.close()


def _refuse_legacy_model(run_dir: Path) -> None:
    """An old pickled ``sb3_model.zip`` is refused, whatever else the directory holds."""
    if (run_dir / LEGACY_MODEL_FILE).exists():
        raise RunDirectoryError(
            f"{run_dir} holds an SB3 model saved by an older gaming_gym ({LEGACY_MODEL_FILE}); loading "
            f"it would unpickle its contents, which can run arbitrary code, so it is refused: retrain "
            f"the run, or load it yourself with stable_baselines3.PPO.load if you trust its source"
        )


def _load_agent_state(run_dir: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The saved agent's state, read without unpickling anything (``weights_only=True``)."""
    _refuse_legacy_model(run_dir)
    path = run_dir / AGENT_FILE
    if not path.exists():
        raise RunNotFoundError(f"{run_dir} holds no {AGENT_FILE}: is it an SB3 run directory?")
    return _checked_agent_state(read_checkpoint(path, device), path)


def _checked_agent_state(state: dict[str, Any], path: Path) -> dict[str, Any]:
    if state.get("format") not in READABLE_FORMATS:
        raise RunDirectoryError(f"{path} is not a gaming_gym SB3 agent (format {AGENT_FORMAT})")
    return state


def _restore_sb3_run(model: Any, state: dict[str, Any]) -> None:
    """Put saved weights, observation statistics, optimiser state and step counts into a freshly
    built model."""
    vec_normalize = model.get_vec_normalize_env()
    if (vec_normalize is None) != (state.get("obs_rms") is None):
        raise RunDirectoryError("the saved SB3 agent does not fit this run's settings (norm_obs differs)")
    try:
        model.policy.load_state_dict(state["policy"])
        model.policy.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise RunDirectoryError(
            f"the saved SB3 agent does not fit this run's settings (policy or optimiser differ): {error}"
        ) from error
    if vec_normalize is not None:
        load_statistics(vec_normalize.obs_rms, state["obs_rms"])
    model.num_timesteps = state["num_timesteps"]
    model._n_updates = state["n_updates"]


def load_sb3_policy(run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
    """The batched policy of an SB3 run directory written by :func:`train_sb3`, on raw observations.

    The policy network is built afresh from the saved env id, knobs and network widths, the saved
    weights are loaded into it, and observations are normalised by the saved statistics (format 2;
    format 1 agents trained on raw observations): nothing is unpickled. The saved env id must be a
    registered gameable env (a ``module:`` id would make Gymnasium import that module).
    """
    from stable_baselines3.common.policies import ActorCriticPolicy

    state = _load_agent_state(Path(run_dir))
    require_registered(state["env_id"], Path(run_dir) / AGENT_FILE)
    env = gym.make_vec(state["env_id"], num_envs=1, **state["knobs"])
    if "hidden_sizes" in state:
        network = {**policy_kwargs(state["hidden_sizes"]), "use_sde": False}
    else:  # format 1
        network = {**state["policy_kwargs"], "use_sde": state["use_sde"]}
    policy = ActorCriticPolicy(
        env.single_observation_space, env.single_action_space, lr_schedule=lambda _: 0.0, **network
    )
    env.close()
    try:
        policy.load_state_dict(state["policy"])
    except RuntimeError as error:
        raise RunDirectoryError(
            f"{run_dir}: the saved SB3 weights do not fit the policy ({error})"
        ) from error
    policy.set_training_mode(False)
    obs_rms = state.get("obs_rms")
    return sb3_policy(
        policy, deterministic, None if obs_rms is None else ObservationNormaliser.from_state(obs_rms)
    )


__all__ = ["RunSaver", "SB3Context", "SB3Result", "load_sb3_policy", "run_record", "train_sb3"]
