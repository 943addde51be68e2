"""The stable-baselines3 path: train SB3 agents on batched gameable envs and score them the same way.

Needs the optional extra: ``pip install 'gaming_gym[sb3]'``.

* :class:`SB3VecEnv` adapts a batched :class:`~gaming_gym.core.GameableVectorEnv` (torch, on its
  device) to SB3's ``VecEnv`` (numpy): ``dones`` joins terminated and truncated, an ended
  episode's last observation is in ``info["terminal_observation"]``, a time-limit end is flagged by
  ``info["TimeLimit.truncated"]``, and ``info["episode"]`` carries the episode's return and length
  (as SB3's ``Monitor`` writes them) and its true return as ``"true_r"``. So SB3 PPO trains on
  thousands of envs stepped in one call. Plain ``gymnasium.make`` envs work with SB3 as usual.
* :class:`GoodhartCallback` logs the true return next to SB3's episode reward and evaluates the
  model periodically into :class:`gaming_gym.metrics.Evaluation` records for the Goodhart metric.

Example::

    from stable_baselines3 import PPO
    from gaming_gym.agents.sb3 import GoodhartCallback, make_sb3_vec_env

    env = make_sb3_vec_env("GamingGym/BoatRace-v1", num_envs=16, seed=0)
    callback = GoodhartCallback("GamingGym/BoatRace-v1", eval_every=50_000)
    PPO("MlpPolicy", env, seed=0).learn(500_000, callback=callback)
    callback.checkpoints  # one Evaluation(step, proxy, true) per evaluation
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

try:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecEnv
except ImportError as error:  # an optional extra
    from gaming_gym.errors import MissingDependencyError

    raise MissingDependencyError(
        "gaming_gym.agents.sb3 needs stable-baselines3; install it with "
        "pip install 'gaming_gym[sb3]' (or pip install stable-baselines3)"
    ) from error

from gaming_gym.core import GameableVectorEnv, Policy, resolve_device
from gaming_gym.errors import ConfigError, ConfigTypeError, RunDirectoryError, RunNotFoundError
from gaming_gym.evaluation import evaluate
from gaming_gym.metrics import Evaluation
from gaming_gym.runs import (
    EVALUATIONS_FILE,
    LEGACY_SB3_MODEL_FILE,
    SB3_AGENT_FILE,
    RunDirectory,
    opened,
    read_checkpoint,
    read_evaluations,
    require_registered,
)
from gaming_gym.wrappers import RecordVectorEpisodeStatistics

REWARDS = ("proxy", "true")


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over one batched gameable env: numpy at the boundary, torch inside.

    Args:
        env: the batched env (``gymnasium.make_vec(env_id, num_envs=N, ...)``); it autoresets in
            the same step, which is exactly SB3's convention.
        reward: what SB3 sees as the reward: ``"proxy"`` (the env's reward) or ``"true"``
            (``info["true_reward"]``, for the intended baseline).
    """

    def __init__(self, env: gym.vector.VectorEnv, reward: str = "proxy"):
        if not isinstance(env.unwrapped, GameableVectorEnv):
            raise ConfigTypeError(
                f"SB3VecEnv adapts a batched gameable env (gymnasium.make_vec of a GamingGym id), got "
                f"{type(env.unwrapped).__name__}; for a single gymnasium env use SB3's DummyVecEnv"
            )
        if reward not in REWARDS:
            raise ConfigError(f"reward must be one of {REWARDS}, got {reward!r}")
        self.env = (
            env if isinstance(env, RecordVectorEpisodeStatistics) else RecordVectorEpisodeStatistics(env)
        )
        self.reward = reward
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self.render_mode = env.render_mode
        self._actions: np.ndarray | None = None
        self._started = time.time()

    def reset(self) -> np.ndarray:
        """Reset every env; seeded by the first of the seeds set with ``seed()`` (one generator
        drives the whole batch, so the batch takes one seed)."""
        obs, _ = self.env.reset(seed=self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return _to_numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_async(actions) must come before step_wait()")
        obs, proxy, terminated, truncated, info = self.env.step(torch.as_tensor(self._actions))
        self._actions = None
        proxy, true = _to_numpy(proxy), _to_numpy(info["true_reward"])
        terminated, truncated = _to_numpy(terminated), _to_numpy(truncated)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [
            {"proxy_reward": p, "true_reward": t} for p, t in zip(proxy.tolist(), true.tolist(), strict=True)
        ]
        if dones.any():
            final_obs = _to_numpy(info["final_obs"])
            episode = {key: _to_numpy(value) for key, value in info["episode"].items()}
            for index in np.flatnonzero(dones):
                infos[index].update(
                    self._episode_end(index, final_obs[index], bool(truncated[index]), episode)
                )
        rewards = proxy if self.reward == "proxy" else true
        return _to_numpy(obs), rewards.astype(np.float32), dones, infos

    def _episode_end(
        self, index: int, final_obs: np.ndarray, truncated: bool, episode: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        """The SB3 info entries of an episode that just ended (returns recorded by the wrapper)."""
        proxy_return, true_return = float(episode["r"][index]), float(episode["true"][index])
        return {
            "terminal_observation": final_obs,
            "TimeLimit.truncated": truncated,
            "episode": {
                "r": proxy_return if self.reward == "proxy" else true_return,
                "l": int(episode["l"][index]),
                "t": round(time.time() - self._started, 6),
                "proxy_r": proxy_return,
                "true_r": true_return,
            },
        }

    def close(self) -> None:
        self.env.close()

    # SB3's per-env attribute access; the batch shares one set of attributes and methods.
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.env.unwrapped, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        self._require_all(indices, f"set {attr_name!r}")
        setattr(self.env.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        self._require_all(indices, f"call {method_name!r}")
        result = getattr(self.env.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result] * self.num_envs

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _require_all(self, indices, what: str) -> None:
        if list(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ConfigError(f"cannot {what} for some envs only: the batched env shares it across all")


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def make_sb3_vec_env(
    env_id: str,
    num_envs: int = 16,
    seed: int | None = None,
    reward: str = "proxy",
    device: str | torch.device = "cpu",
    **knobs: Any,
) -> SB3VecEnv:
    """``gymnasium.make_vec(env_id, num_envs, device, **knobs)`` adapted for SB3, seeded if asked."""
    vec_env = SB3VecEnv(gym.make_vec(env_id, num_envs=num_envs, device=device, **knobs), reward=reward)
    if seed is not None:
        vec_env.seed(seed)
    return vec_env


def sb3_policy(model: BaseAlgorithm | Any, deterministic: bool = False) -> Policy:
    """An SB3 model (or its policy) as a batched torch policy, for :func:`gaming_gym.evaluation.evaluate`."""

    def act(obs: torch.Tensor) -> torch.Tensor:
        actions, _ = model.predict(_to_numpy(obs), deterministic=deterministic)
        return torch.as_tensor(actions, device=obs.device)

    return act


class GoodhartCallback(BaseCallback):
    """Log true returns beside SB3's episode rewards and record evaluations for the Goodhart metric.

    At each rollout's end it records ``rollout/ep_true_rew_mean`` and ``rollout/ep_proxy_rew_mean``
    (means over the last ``window`` episodes, as SB3's own ``ep_rew_mean``). Every ``eval_every``
    timesteps and at the end of training it runs the model on ``eval_episodes`` fresh episodes of
    ``env_id`` and appends a :class:`gaming_gym.metrics.Evaluation` to :attr:`checkpoints`.

    Args:
        env_id, knobs: the env to evaluate on (the one being trained on).
        eval_every: timesteps between evaluations; 0 evaluates only when training ends.
        eval_episodes, seed, deterministic: passed to :func:`gaming_gym.evaluation.evaluate`.
        window: episodes averaged in the logged means.
        progress: show a tqdm progress bar with the recent proxy and true returns.
    """

    def __init__(
        self,
        env_id: str,
        knobs: dict[str, Any] | None = None,
        eval_every: int = 0,
        eval_episodes: int = 16,
        seed: int = 1_000_003,
        deterministic: bool = False,
        window: int = 100,
        progress: bool = False,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        self.progress = progress
        self._bar = None
        if eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0 timesteps (0 = only at the end), got {eval_every}")
        self.env_id = env_id
        self.knobs = dict(knobs or {})
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.seed = seed
        self.deterministic = deterministic
        self.proxy_returns: deque[float] = deque(maxlen=window)
        self.true_returns: deque[float] = deque(maxlen=window)
        self.checkpoints: list[Evaluation] = []
        self.on_evaluation: Callable[[], None] | None = None
        self.before_rollout: Callable[[], None] | None = None
        """called as each rollout starts, when the model is whole (updated on the rollout before)"""
        self._next_eval = eval_every

    def resume_at(self, num_timesteps: int, checkpoints: list[Evaluation]) -> None:
        """Continue a run saved after ``num_timesteps`` steps with its evaluations so far: the
        next evaluation is due at the first multiple of ``eval_every`` past it."""
        self.checkpoints = list(checkpoints)
        if self.eval_every:
            self._next_eval = (num_timesteps // self.eval_every + 1) * self.eval_every

    def _on_training_start(self) -> None:
        if self.progress:
            from tqdm.auto import tqdm

            total = self.locals.get("total_timesteps", self.model._total_timesteps)
            self._bar = tqdm(
                total=total, initial=self.num_timesteps, unit="step", unit_scale=True, desc="SB3 PPO"
            )

    def _on_rollout_start(self) -> None:
        if self.before_rollout is not None:
            self.before_rollout()

    def _on_step(self) -> bool:
        if self._bar is not None:
            self._bar.update(self.training_env.num_envs)
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is not None and "true_r" in episode:
                self.proxy_returns.append(episode["proxy_r"])
                self.true_returns.append(episode["true_r"])
        if self.eval_every and self.num_timesteps >= self._next_eval:
            self._evaluate()
            self._next_eval += self.eval_every
        return True

    def _on_rollout_end(self) -> None:
        if self.true_returns and self._bar is not None:
            self._bar.set_postfix(
                proxy=f"{np.mean(self.proxy_returns):.2f}", true=f"{np.mean(self.true_returns):.2f}"
            )
        if self.true_returns:
            self.logger.record("rollout/ep_proxy_rew_mean", float(np.mean(self.proxy_returns)))
            self.logger.record("rollout/ep_true_rew_mean", float(np.mean(self.true_returns)))

    def _on_training_end(self) -> None:
        if not self.checkpoints or self.checkpoints[-1].step != self.num_timesteps:
            self._evaluate()
        if self._bar is not None:
            self._bar.close()

    def _evaluate(self) -> None:
        """Evaluate on a forked, seeded torch RNG, so evaluating leaves the training run unchanged."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            returns = evaluate(
                sb3_policy(self.model, self.deterministic),
                self.env_id,
                episodes=self.eval_episodes,
                seed=self.seed,
                knobs=self.knobs,
            )
        self.checkpoints.append(Evaluation.from_returns(self.num_timesteps, returns))
        self.logger.record("eval/proxy_return", float(returns.proxy.mean()))
        self.logger.record("eval/true_return", float(returns.true.mean()))
        if self.on_evaluation is not None:
            self.on_evaluation()


# --- one SB3 PPO run, as the experiment runner calls it -------------------------------------------

AGENT_FILE = SB3_AGENT_FILE
"""SB3 run state as plain tensors and numbers (``torch.load(weights_only=True)``), never a pickle."""
LEGACY_MODEL_FILE = LEGACY_SB3_MODEL_FILE
"""What older versions saved with ``PPO.save``; loading it would unpickle its contents, so it is refused."""
AGENT_FORMAT = "gaming_gym.sb3_agent/1"
RESUMABLE_CHANGES = ("total_timesteps", "eval_every", "device")
"""Settings a resumed SB3 run may change; any other change is refused, as native PPO does."""

# SB3 PPO settings matching the native PPO's defaults (gaming_gym.agents.ppo.PPOConfig), so the
# two agents are compared on the same algorithmic footing: 64 envs x 128 steps per rollout,
# 4 minibatches, 4 epochs, entropy bonus 0.01, two tanh layers of 64.
SB3_PPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 128,
    "batch_size": 2048,
    "n_epochs": 4,
    "ent_coef": 0.01,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
}


@dataclass
class SB3Result:
    """What :func:`train_sb3` leaves: the model, the settings it ran with and its evaluations."""

    model: Any  # stable_baselines3.PPO
    config: dict[str, Any]
    checkpoints: list[Evaluation]
    run_dir: Path | None


def whole_rollouts(total_timesteps: int, rollout: int) -> int:
    """``total_timesteps`` rounded *down* to whole rollouts of ``rollout`` env steps.

    The rule both agents follow (native PPO: ``PPOConfig.num_iterations``): training never runs
    past the steps asked for, and asking for less than one rollout is an error.
    """
    if total_timesteps < rollout:
        raise ConfigError(
            f"total_timesteps={total_timesteps} is less than one rollout (num_envs * n_steps = "
            f"{rollout}); raise it or shrink the rollout"
        )
    return total_timesteps - total_timesteps % rollout


def _require_ppo_arguments(ppo_class: type, settings: dict[str, Any]) -> None:
    """Name any setting that ``stable_baselines3.PPO`` does not take, or a number that is not
    finite (SB3 would train on NaNs), before building anything."""
    accepted = set(inspect.signature(ppo_class.__init__).parameters) - {"self", "policy", "env"}
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise ConfigTypeError(
            f"stable_baselines3.PPO has no setting {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(sorted(accepted))}"
        )
    for name, value in settings.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"stable_baselines3.PPO setting {name} must be a finite number, got {value!r}")


def train_sb3(
    env_id: str,
    run_dir: str | os.PathLike | RunDirectory | None = None,
    knobs: dict[str, Any] | None = None,
    progress: bool = True,
    seed: int = 0,
    total_timesteps: int = 2_000_000,
    num_envs: int = 64,
    reward: str = "proxy",
    eval_every: int = 245_760,
    eval_episodes: int = 16,
    device: str = "cpu",
    **ppo_kwargs: Any,
) -> SB3Result:
    """Train SB3 PPO on the batched env through :class:`SB3VecEnv`, evaluating for the Goodhart metric.

    ``ppo_kwargs`` override :data:`SB3_PPO_DEFAULTS` (any ``stable_baselines3.PPO`` argument).
    Training runs ``total_timesteps`` rounded down to whole rollouts (:func:`whole_rollouts`).

    With ``run_dir`` (a path, or a :class:`~gaming_gym.runs.RunDirectory` its caller holds open),
    the run directory is locked while training and receives ``config.json`` and
    :data:`AGENT_FILE`: the agent's weights, optimiser state, step counts and evaluations so far,
    as plain tensors, written atomically at the first rollout boundary after each evaluation, at
    the end, and on Ctrl-C (the state of the last whole rollout). Calling again with the same
    ``run_dir`` builds a fresh model from these settings and loads that state into it, to resume;
    a directory holding another run (other settings but for :data:`RESUMABLE_CHANGES`), other
    files, or a run already trained past ``total_timesteps`` is refused before anything is written.
    """
    from stable_baselines3 import PPO

    knobs = dict(knobs or {})
    settings = {**SB3_PPO_DEFAULTS, **ppo_kwargs}
    config = {
        "env_id": env_id,
        "knobs": knobs,
        "seed": seed,
        "total_timesteps": total_timesteps,
        "num_envs": num_envs,
        "reward": reward,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "device": device,
        **settings,
    }
    _require_ppo_arguments(PPO, settings)
    steps = whole_rollouts(total_timesteps, num_envs * settings["n_steps"])
    torch_device = resolve_device(device)
    env = make_sb3_vec_env(env_id, num_envs, seed=seed, reward=reward, **knobs)
    try:
        callback = GoodhartCallback(env_id, knobs, eval_every, eval_episodes, progress=progress)
        model = PPO("MlpPolicy", env, seed=seed, device=torch_device, **settings)
        with opened(run_dir) as directory:
            saver = None if directory is None else _RunSaver(directory, model, callback, config, steps)
            remaining = steps - model.num_timesteps
            if remaining > 0:
                try:
                    model.learn(remaining, callback=callback, reset_num_timesteps=False)
                except KeyboardInterrupt:
                    if saver is not None:
                        saver.save_unsaved()
                    raise
                if saver is not None:
                    saver.save()
    finally:
        env.close()
    return SB3Result(model, config, callback.checkpoints, directory.path if directory is not None else None)


class _RunSaver:
    """Claims the run directory for an SB3 run (resuming what it holds) and saves the run there.

    SB3 evaluates in the middle of rollouts, where the model is not whole; the run is saved at
    the next rollout start instead (the update on the rollout before is done, the step count is a
    whole number of rollouts). In between, a copy of the state at the last rollout start is kept
    for Ctrl-C.
    """

    def __init__(self, directory: RunDirectory, model: Any, callback: GoodhartCallback, config, steps: int):
        self.directory, self.model, self.callback, self.config = directory, model, callback, config
        _refuse_legacy_model(directory.path)
        directory.check_config("sb3", config, RESUMABLE_CHANGES)
        state = directory.load_checkpoint(AGENT_FILE, model.device)
        if state is not None:
            state = _checked_agent_state(state, directory.file(AGENT_FILE))
            directory.require_within(state["num_timesteps"], steps)
        directory.write_config("sb3", config)
        if state is not None:
            _restore_sb3_run(model, state)
            callback.resume_at(model.num_timesteps, self._evaluations(state))
        self.saved_step, self.saved_evaluations = model.num_timesteps, len(callback.checkpoints)
        self.unsaved: dict[str, Any] | None = None
        callback.before_rollout = self.before_rollout

    def _evaluations(self, state: dict[str, Any]) -> list[Evaluation]:
        """The evaluations saved with the agent (or, from an older version, in evaluations.json)."""
        if "evaluations" in state:
            return [Evaluation.from_record(record) for record in state["evaluations"]]
        return read_evaluations(self.directory.path) if self.directory.file(EVALUATIONS_FILE).exists() else []

    def before_rollout(self) -> None:
        if self.model.num_timesteps == self.saved_step:
            return
        if len(self.callback.checkpoints) > self.saved_evaluations:
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
        return {
            "format": AGENT_FORMAT,
            "env_id": config["env_id"],
            "knobs": config["knobs"],
            "policy_kwargs": config.get("policy_kwargs") or {},
            "use_sde": bool(config.get("use_sde", False)),
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(model._n_updates),
            "policy": model.policy.state_dict(),
            "optimizer": model.policy.optimizer.state_dict(),
            "evaluations": [c.to_record() for c in self.callback.checkpoints],
        }


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
    if state.get("format") != AGENT_FORMAT:
        raise RunDirectoryError(f"{path} is not a gaming_gym SB3 agent (format {AGENT_FORMAT})")
    return state


def _restore_sb3_run(model: Any, state: dict[str, Any]) -> None:
    """Put saved weights, optimiser state and step counts into a freshly built model."""
    try:
        model.policy.load_state_dict(state["policy"])
        model.policy.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise RunDirectoryError(
            f"the saved SB3 agent does not fit this run's settings (policy or optimiser differ): {error}"
        ) from error
    model.num_timesteps = state["num_timesteps"]
    model._n_updates = state["n_updates"]


def load_sb3_policy(run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
    """The batched policy of an SB3 run directory written by :func:`train_sb3`.

    The policy network is built afresh from the saved env id, knobs and ``policy_kwargs`` and
    the saved weights are loaded into it: nothing is unpickled. The saved env id must be a
    registered gameable env (a ``module:`` id would make Gymnasium import that module).
    """
    from stable_baselines3.common.policies import ActorCriticPolicy

    state = _load_agent_state(Path(run_dir))
    require_registered(state["env_id"], Path(run_dir) / AGENT_FILE)
    env = gym.make_vec(state["env_id"], num_envs=1, **state["knobs"])
    policy = ActorCriticPolicy(
        env.single_observation_space,
        env.single_action_space,
        lr_schedule=lambda _: 0.0,
        use_sde=state["use_sde"],
        **state["policy_kwargs"],
    )
    env.close()
    try:
        policy.load_state_dict(state["policy"])
    except RuntimeError as error:
        raise RunDirectoryError(
            f"{run_dir}: the saved SB3 weights do not fit the policy ({error})"
        ) from error
    policy.set_training_mode(False)
    return sb3_policy(policy, deterministic)


__all__: Sequence[str] = (
    "GoodhartCallback",
    "SB3Result",
    "SB3VecEnv",
    "load_sb3_policy",
    "make_sb3_vec_env",
    "sb3_policy",
    "train_sb3",
)
