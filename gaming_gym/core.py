"""The gameable-env contract, the batched kernel every env is written as, and its two fronts.

An environment is written once, as a :class:`Kernel`: pure functions over a state dataclass of
torch tensors with a leading batch dimension. Two thin fronts serve it:

* :class:`GameableEnv`, a Gymnasium ``Env`` at batch size 1 on the CPU returning numpy
  (for ``gymnasium.make``, stable-baselines3 and people), and
* :class:`GameableVectorEnv`, a Gymnasium ``VectorEnv`` stepping N envs on any torch device and
  returning torch tensors (for ``gymnasium.make_vec`` and the native PPO).

The contract, kept by both fronts and checked by :func:`check_gameable_env`:

* the ``reward`` that ``step`` returns is the *proxy*;
* ``info["proxy_reward"]`` and ``info["true_reward"]`` hold the proxy and the hidden true objective
  on every step, so both survive any wrapper that rewrites ``reward``;
* the observation never encodes the true objective.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

Policy = Callable[[torch.Tensor], torch.Tensor]
"""A batched policy: observations ``(N, *obs_shape)`` to actions ``(N, *action_shape)``."""

REFERENCE_POLICY_NAMES = ("intended", "exploit")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into the best available device (cuda, then mps, then cpu)."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class Kernel:
    """One environment, written as pure batched torch functions (after gymnax and Brax).

    Every function takes the knob settings (``params``, an instance of ``params_type``) first.
    ``state`` is a dataclass whose fields are tensors with the batch as their first dimension.

    Attributes:
        name: human name shown in renders and tables, e.g. ``"BoatRace"``.
        params_type: dataclass of the env's knobs; its defaults are the gameable setting.
        reset: ``(params, n, generator, device) -> state`` for ``n`` fresh episodes.
        step: ``(params, state, action) -> (state, proxy, true, terminated)``; rewards are float
            ``(n,)`` tensors and ``terminated`` a bool ``(n,)`` tensor. Time limits are the fronts'
            business (``state.t`` counts steps), as Gymnasium's ``TimeLimit`` is.
        observe: ``(params, state) -> obs`` of shape ``(n, *observation_space.shape)``.
        observation_space, action_space: ``params -> gym.Space`` for one env.
        reference_policies: ``params -> {"intended": Policy, "exploit": Policy}``; batched,
            scripted policies acting on observations.
        draw: ``(params, state, index, surface) -> None`` paints env ``index`` on a pygame surface.
        summary: one line each for the proxy reward, true objective and known exploit.
    """

    name: str
    params_type: type
    reset: Callable[..., Any]
    step: Callable[..., tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]]
    observe: Callable[..., torch.Tensor]
    observation_space: Callable[[Any], gym.Space]
    action_space: Callable[[Any], gym.Space]
    reference_policies: Callable[[Any], dict[str, Policy]]
    draw: Callable[..., None]
    summary: Mapping[str, str]

    def make_params(self, **knobs: Any) -> Any:
        """Build ``params_type`` from knob keyword arguments, naming any unknown knob."""
        accepted = [f.name for f in dataclasses.fields(self.params_type)]
        unknown = sorted(set(knobs) - set(accepted))
        if unknown:
            raise TypeError(
                f"{self.name} has no knob {', '.join(map(repr, unknown))}; "
                f"its knobs are: {', '.join(accepted)}"
            )
        return self.params_type(**knobs)


# --- state helpers: a state is a dataclass of batch-first tensors ------------------------------


def select_state(mask: torch.Tensor, if_true: Any, if_false: Any) -> Any:
    """Per env, take ``if_true``'s fields where ``mask`` holds and ``if_false``'s elsewhere."""
    merged = {}
    for field in dataclasses.fields(if_true):
        a, b = getattr(if_true, field.name), getattr(if_false, field.name)
        merged[field.name] = torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)
    return dataclasses.replace(if_true, **merged)


def take_state(state: Any, rows: torch.Tensor | slice) -> Any:
    """The sub-batch of ``state`` at ``rows`` (a boolean mask, index tensor or slice)."""
    return dataclasses.replace(
        state, **{f.name: getattr(state, f.name)[rows] for f in dataclasses.fields(state)}
    )


def seeded_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A torch generator on ``device``, seeded with ``seed`` or from fresh OS entropy."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


# --- the single front ---------------------------------------------------------------------------


class GameableEnv(gym.Env):
    """Gymnasium front of a :class:`Kernel`: one env, on the CPU, speaking numpy.

    Subclasses set ``kernel`` and carry the env's documentation in their docstring.
    Constructor keyword arguments other than ``render_mode`` are the kernel's knobs.
    """

    kernel: Kernel
    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None"
            )
        self.params = self.kernel.make_params(**knobs)
        self.render_mode = render_mode
        self.observation_space = self.kernel.observation_space(self.params)
        self.action_space = self.kernel.action_space(self.params)
        self._device = torch.device("cpu")
        self._generator: torch.Generator | None = None
        self._state: Any = None
        self._window = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._generator is None:
            self._generator = seeded_generator(seed, self._device)
        self._state = self.kernel.reset(self.params, 1, self._generator, self._device)
        if self.render_mode == "human":
            self.render()
        return self._observation(), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("Call reset() before step().")
        if not self.action_space.contains(_as_space_sample(action, self.action_space)):
            raise ValueError(f"Invalid action {action!r}: expected an element of {self.action_space}")
        batched = torch.as_tensor(np.asarray(action), device=self._device).unsqueeze(0)
        self._state, proxy, true, terminated = self.kernel.step(self.params, self._state, batched)
        proxy_reward, true_reward = float(proxy[0]), float(true[0])
        info = {"proxy_reward": proxy_reward, "true_reward": true_reward}
        if self.render_mode == "human":
            self.render()
        return self._observation(), proxy_reward, bool(terminated[0]), False, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn(
                "render() was called without a render_mode; pass render_mode='rgb_array' or "
                "'human' when making the env."
            )
            return None
        if self._state is None:
            raise RuntimeError("Call reset() before render().")
        from gaming_gym.render import draw_frame, show_frame

        frame = draw_frame(self.kernel, self.params, self._state, 0)
        if self.render_mode == "human":
            self._window = show_frame(frame, self._window, self.kernel.name, self.metadata)
            return None
        return frame

    def close(self):
        if self._window is not None:
            from gaming_gym.render import close_window

            close_window()
            self._window = None

    def reference_policy(self, name: str) -> Policy:
        """The scripted ``intended`` or ``exploit`` policy for these knobs (batched, torch)."""
        return get_reference_policy(self.kernel, self.params, name)

    def _observation(self) -> np.ndarray:
        return self.kernel.observe(self.params, self._state)[0].numpy()


def _as_space_sample(action, space: gym.Space):
    """Make ints, lists and 0-d arrays comparable with ``space.contains``."""
    if isinstance(space, gym.spaces.Discrete):
        array = np.asarray(action)
        if array.shape == () and np.issubdtype(array.dtype, np.integer):
            return np.int64(array)
        return action
    return np.asarray(action, dtype=space.dtype) if np.asarray(action).dtype.kind == "f" else action


# --- the vector front ---------------------------------------------------------------------------


class GameableVectorEnv(gym.vector.VectorEnv):
    """Vector front of a :class:`Kernel`: ``num_envs`` envs on one torch device, speaking torch.

    Observations, rewards, terminations and infos are tensors on ``device`` and never leave it.
    ``compile=True`` fuses each step with ``torch.compile`` (tens of seconds to compile once,
    then several times faster on CPU).
    Episodes that end are reset within the same ``step`` (``AutoresetMode.SAME_STEP``): the
    returned observation is the new episode's first, and ``info["final_obs"]`` holds the last
    observation of each ended episode (valid where ``info["_final_obs"]`` is true).
    """

    kernel: Kernel
    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": 30,
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        compile: bool = False,
        **knobs: Any,
    ):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be positive or None, got {max_episode_steps}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'rgb_array' or None")
        self.params = self.kernel.make_params(**knobs)
        self.num_envs = num_envs
        self.device = resolve_device(device)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.single_observation_space = self.kernel.observation_space(self.params)
        self.single_action_space = self.kernel.action_space(self.params)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._generator: torch.Generator | None = None
        self.state: Any = None
        if isinstance(self.single_action_space, gym.spaces.Box):
            self._action_bounds = tuple(
                torch.as_tensor(bound, device=self.device)
                for bound in (self.single_action_space.low, self.single_action_space.high)
            )
        self._advance = torch.compile(self._advance_eager, dynamic=False) if compile else self._advance_eager

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None for a batched env, got {seed!r}")
        if seed is not None or self._generator is None:
            self._generator = seeded_generator(seed, self.device)
        self.state = self.kernel.reset(self.params, self.num_envs, self._generator, self.device)
        return self.kernel.observe(self.params, self.state), {}

    @torch.no_grad()
    def step(self, actions):
        if self.state is None:
            raise RuntimeError("Call reset() before step().")
        actions = self._checked_actions(actions)
        state, proxy, true, terminated, final_obs = self._advance(self.state, actions)
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = (state.t >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        obs = final_obs
        if bool(done.any()):
            fresh = self.kernel.reset(self.params, self.num_envs, self._generator, self.device)
            state = select_state(done, fresh, state)
            obs = final_obs.clone()
            obs[done] = self.kernel.observe(self.params, take_state(fresh, done))
        self.state = state
        info = {
            "proxy_reward": proxy,
            "true_reward": true,
            "final_obs": final_obs,
            "_final_obs": done,
        }
        return obs, proxy, terminated, truncated, info

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue these envs exactly: the batched state and the RNG's state.

        Tensors only (``torch.save`` with ``weights_only=True`` can store it), for checkpoints.
        """
        if self.state is None:
            raise RuntimeError("Call reset() before get_state().")
        fields = dataclasses.fields(self.state)
        return {
            "state": {f.name: getattr(self.state, f.name).clone() for f in fields},
            "generator": self._generator.get_state(),
        }

    def set_state(self, saved: dict[str, Any]) -> None:
        """Continue from a :meth:`get_state` of an env with the same kernel, knobs and ``num_envs``."""
        if self.state is None:
            raise RuntimeError("Call reset() before set_state(), so the state's layout is known.")
        expected = {f.name for f in dataclasses.fields(self.state)}
        if set(saved["state"]) != expected:
            raise ValueError(f"saved state has fields {sorted(saved['state'])}, expected {sorted(expected)}")
        batch = {tuple(value.shape[:1]) for value in saved["state"].values()}
        if batch != {(self.num_envs,)}:
            raise ValueError(f"saved state is for batch sizes {batch}, this env has num_envs={self.num_envs}")
        self.state = dataclasses.replace(
            self.state, **{name: value.to(self.device) for name, value in saved["state"].items()}
        )
        self._generator.set_state(saved["generator"])

    def _advance_eager(self, state: Any, actions: torch.Tensor):
        """One kernel step and the observation after it (fused by ``torch.compile`` if asked)."""
        state, proxy, true, terminated = self.kernel.step(self.params, state, actions)
        return state, proxy, true, terminated, self.kernel.observe(self.params, state)

    def render(self):
        """An ``rgb_array`` frame of env 0."""
        if self.render_mode != "rgb_array":
            raise ValueError("Make the vector env with render_mode='rgb_array' to render it.")
        from gaming_gym.render import draw_frame

        return draw_frame(self.kernel, self.params, self.state, 0)

    def reference_policy(self, name: str) -> Policy:
        """The scripted ``intended`` or ``exploit`` policy for these knobs (batched, torch)."""
        return get_reference_policy(self.kernel, self.params, name)

    def _checked_actions(self, actions) -> torch.Tensor:
        """Actions as a tensor on our device, or a ValueError saying what was expected."""
        space = self.single_action_space
        actions = torch.as_tensor(actions, device=self.device)
        expected = (self.num_envs, *space.shape)
        if tuple(actions.shape) != expected:
            raise ValueError(
                f"actions must have shape {expected} for {self.num_envs} envs with action space "
                f"{space}, got {tuple(actions.shape)}"
            )
        if isinstance(space, gym.spaces.Discrete):
            if actions.is_floating_point():
                raise ValueError(f"discrete actions must be integers, got dtype {actions.dtype}")
            lowest, highest = torch.aminmax(actions)
            outside = bool(lowest < space.start) or bool(highest >= space.start + space.n)
        else:
            low, high = self._action_bounds
            outside = bool(((actions < low) | (actions > high)).any())
        if outside:
            raise ValueError(f"actions outside the action space {space}")
        return actions


# --- reference policies -------------------------------------------------------------------------


def get_reference_policy(kernel: Kernel, params: Any, name: str) -> Policy:
    """Look up one scripted reference policy by name, with a clear error for unknown names."""
    policies = kernel.reference_policies(params)
    if name not in policies:
        raise KeyError(f"{kernel.name} has no reference policy {name!r}; it has {sorted(policies)}")
    return policies[name]


# --- the checker --------------------------------------------------------------------------------


def check_gameable_env(env: gym.Env, steps: int = 200, seed: int = 0) -> None:
    """Check that a single env keeps the gameable-env contract; raise AssertionError if not.

    Runs Gymnasium's own ``check_env`` and then, over ``steps`` random steps:

    * ``info`` carries float ``proxy_reward`` and ``true_reward`` on every step, after ``reset``
      too where the episode ends;
    * the ``reward`` returned is ``info["proxy_reward"]``;
    * the observation does not encode the true objective: no observation element tracks the
      cumulative true return exactly (a leak detector, not a proof).

    Works for any ``gym.Env``, so custom envs can be checked before registration.
    """
    from gymnasium.utils.env_checker import check_env

    check_env(env.unwrapped, skip_render_check=True)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    observations, true_returns = [np.asarray(obs, dtype=np.float64).ravel()], [0.0]
    true_return = 0.0
    for step in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        for key in ("proxy_reward", "true_reward"):
            assert key in info, f"step {step}: info lacks {key!r} (the contract needs it every step)"
            assert isinstance(info[key], (float, np.floating)), (
                f"step {step}: info[{key!r}] must be a float, got {type(info[key]).__name__}"
            )
            assert math.isfinite(info[key]), f"step {step}: info[{key!r}] is {info[key]}"
        assert float(reward) == float(info["proxy_reward"]), (
            f"step {step}: reward {reward} differs from info['proxy_reward'] "
            f"{info['proxy_reward']}; the returned reward must be the proxy"
        )
        true_return += info["true_reward"]
        if terminated or truncated:
            obs, _ = env.reset()
            true_return = 0.0
        observations.append(np.asarray(obs, dtype=np.float64).ravel())
        true_returns.append(true_return)
    _assert_no_true_return_leak(np.stack(observations), np.asarray(true_returns))


def _assert_no_true_return_leak(observations: np.ndarray, true_returns: np.ndarray) -> None:
    """Fail if some observation element is an exact affine copy of the running true return."""
    if np.ptp(true_returns) == 0:
        return
    centred_returns = true_returns - true_returns.mean()
    for column in range(observations.shape[1]):
        values = observations[:, column] - observations[:, column].mean()
        if np.ptp(values) == 0:
            continue
        correlation = np.dot(values, centred_returns) / (
            np.linalg.norm(values) * np.linalg.norm(centred_returns)
        )
        assert abs(correlation) < 0.9999, (
            f"observation element {column} is a copy of the cumulative true return "
            f"(correlation {correlation:.6f}); the true objective must stay hidden"
        )
