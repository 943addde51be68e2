"""The stable-baselines3 path: train SB3 agents on batched gameable envs and score them the same way.

Needs the optional extra: ``pip install 'gaming_gym[sb3]'``.

* :class:`SB3VecEnv` adapts a batched :class:`~gaming_gym.core.GameableVectorEnv` (torch, on its
  device) to SB3's ``VecEnv`` (numpy): ``dones`` joins terminated and truncated, an ended
  episode's last observation is in ``info["terminal_observation"]``, a time-limit end is flagged by
  ``info["TimeLimit.truncated"]``, and ``info["episode"]`` carries the episode's return and length
  (as SB3's ``Monitor`` writes them) and its true return as ``"true_r"``. So SB3 PPO trains on
  thousands of envs stepped in one call. Plain ``gymnasium.make`` envs work with SB3 as usual.
* :class:`GoodhartCallback` logs the true return next to SB3's episode reward and evaluates the
  model periodically into :class:`gaming_gym.metrics.Checkpoint` records for the Goodhart metric.

Example::

    from stable_baselines3 import PPO
    from gaming_gym.agents.sb3 import GoodhartCallback, make_sb3_vec_env

    env = make_sb3_vec_env("GamingGym/BoatRace-v1", num_envs=16, seed=0)
    callback = GoodhartCallback("GamingGym/BoatRace-v1", eval_every=50_000)
    PPO("MlpPolicy", env, seed=0).learn(500_000, callback=callback)
    callback.checkpoints  # one Checkpoint(step, proxy, true) per evaluation
"""

from __future__ import annotations

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
from gaming_gym.files import atomic_write
from gaming_gym.metrics import Checkpoint, load_checkpoints, save_checkpoints
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
    ``env_id`` and appends a :class:`gaming_gym.metrics.Checkpoint` to :attr:`checkpoints`.

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
        self.checkpoints: list[Checkpoint] = []
        self.on_evaluation: Callable[[], None] | None = None
        self._next_eval = eval_every

    def _on_training_start(self) -> None:
        if self.progress:
            from tqdm.auto import tqdm

            total = self.locals.get("total_timesteps", self.model._total_timesteps)
            self._bar = tqdm(
                total=total, initial=self.num_timesteps, unit="step", unit_scale=True, desc="SB3 PPO"
            )

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
        self.checkpoints.append(Checkpoint.from_returns(self.num_timesteps, returns))
        self.logger.record("eval/proxy_return", float(returns.proxy.mean()))
        self.logger.record("eval/true_return", float(returns.true.mean()))
        if self.on_evaluation is not None:
            self.on_evaluation()


# --- one SB3 PPO run, as the experiment runner calls it -------------------------------------------

AGENT_FILE = "sb3_agent.pt"
"""SB3 run state as plain tensors and numbers (``torch.load(weights_only=True)``), never a pickle."""
LEGACY_MODEL_FILE = "sb3_model.zip"
"""What older versions saved with ``PPO.save``; loading it would unpickle its contents, so it is refused."""
AGENT_FORMAT = "gaming_gym.sb3_agent/1"
EVALUATIONS_FILE = "sb3_evaluations.json"

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
    checkpoints: list[Checkpoint]
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
    run_dir: str | os.PathLike | None = None,
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
    With ``run_dir``, the agent's weights, optimiser state and step count (:data:`AGENT_FILE`,
    plain tensors) and the evaluations so far are saved there, atomically, at every evaluation;
    calling again with the same ``run_dir`` builds a fresh model from these settings and loads
    them into it, to resume.
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
    callback = GoodhartCallback(env_id, knobs, eval_every, eval_episodes, progress=progress)
    run_dir = Path(run_dir) if run_dir is not None else None
    model = PPO("MlpPolicy", env, seed=seed, device=torch_device, **settings)
    if run_dir is not None and _saved_agent(run_dir) is not None:
        _restore_sb3_run(model, _load_agent_state(run_dir, torch_device))
        callback.checkpoints = _load_evaluations(run_dir / EVALUATIONS_FILE)
        callback._next_eval = model.num_timesteps + eval_every
    if run_dir is not None:
        callback.on_evaluation = lambda: _save_sb3_run(model, callback.checkpoints, run_dir, config)
    remaining = steps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=callback, reset_num_timesteps=False)
    env.close()
    return SB3Result(model, config, callback.checkpoints, run_dir)


def _save_sb3_run(model: Any, checkpoints: list[Checkpoint], run_dir: Path, config: dict[str, Any]) -> None:
    """Save the agent as plain tensors and numbers, then the evaluations, each atomically."""
    state = {
        "format": AGENT_FORMAT,
        "env_id": config["env_id"],
        "knobs": config["knobs"],
        "policy_kwargs": config.get("policy_kwargs") or {},
        "use_sde": bool(config.get("use_sde", False)),
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(model._n_updates),
        "policy": model.policy.state_dict(),
        "optimizer": model.policy.optimizer.state_dict(),
    }
    with atomic_write(run_dir / AGENT_FILE) as partial:
        torch.save(state, partial)
    save_checkpoints(run_dir / EVALUATIONS_FILE, checkpoints)


def _saved_agent(run_dir: Path) -> Path | None:
    """The run's agent file, None if it has none; an old pickled ``sb3_model.zip`` is refused."""
    if (run_dir / AGENT_FILE).exists():
        return run_dir / AGENT_FILE
    if (run_dir / LEGACY_MODEL_FILE).exists():
        raise RunDirectoryError(
            f"{run_dir} holds an SB3 model saved by an older gaming_gym ({LEGACY_MODEL_FILE}); loading "
            f"it would unpickle its contents, which can run arbitrary code, so it is refused: retrain "
            f"the run, or load it yourself with stable_baselines3.PPO.load if you trust its source"
        )
    return None


def _load_agent_state(run_dir: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The saved agent's state, read without unpickling anything (``weights_only=True``)."""
    path = _saved_agent(run_dir)
    if path is None:
        raise RunNotFoundError(f"{run_dir} holds no {AGENT_FILE}: is it an SB3 run directory?")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # any unreadable file: torch raises many kinds
        raise RunDirectoryError(f"{path} is corrupt or not a gaming_gym SB3 agent ({error})") from error
    if not isinstance(state, dict) or state.get("format") != AGENT_FORMAT:
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


def _load_evaluations(path: Path) -> list[Checkpoint]:
    return load_checkpoints(path) if path.exists() else []


def load_sb3_policy(run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
    """The batched policy of an SB3 run directory written by :func:`train_sb3`.

    The policy network is built afresh from the saved env id, knobs and ``policy_kwargs`` and
    the saved weights are loaded into it: nothing is unpickled. The saved env id must be a
    registered gameable env (a ``module:`` id would make Gymnasium import that module).
    """
    from stable_baselines3.common.policies import ActorCriticPolicy

    from gaming_gym.registry import gameable_env_ids

    state = _load_agent_state(Path(run_dir))
    if state["env_id"] not in gameable_env_ids():
        raise RunDirectoryError(
            f"{run_dir}: the saved agent is for {state['env_id']!r}, which is not a registered gameable env"
        )
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
