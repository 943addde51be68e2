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

Randomness inside ``step`` must come from the state, not from a global RNG (``torch.rand``
without a generator): keep a per-env generator state in the state dataclass, seeded at ``reset``
from the front's ``torch.Generator``, as :mod:`gaming_gym.envs.sensor_cleaner` does with its
``rng`` field. Then the same seed and actions give the same trajectory on both fronts, batched or
not; :func:`check_gameable_env` replays a rollout to check it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from gaming_gym.errors import (
    ActionError,
    ConfigError,
    ConfigTypeError,
    DeviceError,
    EnvCheckError,
    InsufficientMemoryError,
    ResetNeededError,
    UnknownPolicyError,
)

Policy = Callable[[torch.Tensor], torch.Tensor]
"""A batched policy: observations ``(N, *obs_shape)`` to actions ``(N, *action_shape)``."""

REFERENCE_POLICY_NAMES = ("intended", "exploit")


DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into the best available device (cuda, then mps, then cpu).

    Any other device is checked to exist on this machine, so ``device="cuda"`` on a CPU-only
    torch fails here, with one clear line, and not at the first tensor made on it.
    """
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from error
    _require_available(resolved)
    return resolved


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def _require_available(device: torch.device) -> None:
    """Raise a :class:`DeviceError` unless ``device`` can hold tensors on this machine."""
    if device.type not in DEVICE_TYPES:
        raise DeviceError(f"device {str(device)!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(device)!r} is not available: this machine or torch build has no CUDA "
                "GPU; use --device cpu (or auto)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} "
                "CUDA device(s), numbered from 0"
            )
    if device.type == "mps" and not _mps_available():
        raise DeviceError(f"device {str(device)!r} is not available on this machine; use cpu (or auto)")


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
            business (``state.t`` counts steps), as Gymnasium's ``TimeLimit`` is. ``step`` is
            pure: any randomness comes from a generator state kept in ``state`` (seeded in
            ``reset`` from its ``generator``; SensorCleaner's ``rng`` field is an example), never
            from torch's global RNG, or the same seed would not give the same trajectory.
        observe: ``(params, state) -> obs`` of shape ``(n, *observation_space.shape)``.
        observation_space, action_space: ``params -> gym.Space`` for one env.
        reference_policies: ``params -> {"intended": Policy, "exploit": Policy}``; batched,
            scripted policies acting on observations.
        summary: one line each for the proxy reward, true objective and known exploit.
        draw: optional ``(params, state, index, surface) -> None`` painting env ``index`` on a
            pygame surface. Without it, frames show the observation as bars with the proxy and
            hidden true returns (:func:`gaming_gym.render.draw_default_frame`), so a new env
            renders before it has drawing code.
    """

    name: str
    params_type: type
    reset: Callable[..., Any]
    step: Callable[..., tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]]
    observe: Callable[..., torch.Tensor]
    observation_space: Callable[[Any], gym.Space]
    action_space: Callable[[Any], gym.Space]
    reference_policies: Callable[[Any], dict[str, Policy]]
    summary: Mapping[str, str]
    draw: Callable[..., None] | None = None

    def make_params(self, **knobs: Any) -> Any:
        """Build ``params_type`` from knob keyword arguments, naming any unknown knob."""
        accepted = [f.name for f in dataclasses.fields(self.params_type)]
        unknown = sorted(set(knobs) - set(accepted))
        if unknown:
            raise ConfigTypeError(
                f"{self.name} has no knob {', '.join(map(repr, unknown))}; "
                f"its knobs are: {', '.join(accepted)}"
            )
        try:
            return self.params_type(**knobs)
        except (ValueError, TypeError, OverflowError) as error:  # the params class's own validation
            raise ConfigError(f"{self.name}: {error}") from error


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


def _is_int(value: Any) -> bool:
    """An int or numpy integer, not a bool (``True`` is an int to Python, not a count)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


# --- memory: refuse a batch that cannot fit, before allocating it -------------------------------

MEMORY_MARGIN = 4
"""Copies of the state and observations a step may hold at once: the state, the stepped state,
fresh reset states for ended episodes and the merge of the two (and as many observations)."""


def _require_memory_for(kernel: Kernel, params: Any, num_envs: int, device: torch.device) -> None:
    """Raise :class:`InsufficientMemoryError` if ``num_envs`` envs would not fit in memory.

    Measured from one env's state and observation (a 1-env reset), times ``num_envs``, times
    :data:`MEMORY_MARGIN`, against the memory available on ``device``; the batched spaces'
    bounds (numpy arrays on the host) are counted against host memory.
    """
    state = kernel.reset(params, 1, seeded_generator(0, device), device)
    per_env = _nbytes(*(getattr(state, f.name) for f in dataclasses.fields(state)))
    per_env += _nbytes(kernel.observe(params, state))
    spaces_per_env = _space_nbytes(kernel.observation_space(params)) + _space_nbytes(
        kernel.action_space(params)
    )
    needs = {device: MEMORY_MARGIN * per_env * num_envs}
    host = torch.device("cpu")
    needs[host] = needs.get(host, 0) + spaces_per_env * num_envs
    for where, needed in needs.items():
        available = _available_memory(where)
        if available is not None and needed > available:
            per_env_total = needed / num_envs
            raise InsufficientMemoryError(
                f"num_envs={num_envs:,} {kernel.name} envs need about {needed / 2**30:,.1f} GiB of "
                f"{where.type} memory (state, observations and spaces), more than the "
                f"{available / 2**30:,.1f} GiB available; use at most about "
                f"{int(available // per_env_total):,} envs"
            )


def _nbytes(*tensors: Any) -> int:
    return sum(t.element_size() * t.numel() for t in tensors if isinstance(t, torch.Tensor))


def _space_nbytes(space: gym.Space) -> int:
    """Bytes one env adds to the batched space (a Box stores low and high per env)."""
    if isinstance(space, gym.spaces.Box):
        return 2 * space.low.nbytes
    return 16


def _available_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (MemAvailable for the host), or None where it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


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
            raise ConfigError(
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
        self._returns = (0.0, 0.0)  # this episode's proxy and true returns, shown in frames
        self._window = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._generator is None:
            self._generator = seeded_generator(seed, self._device)
        self._state = self.kernel.reset(self.params, 1, self._generator, self._device)
        self._returns = (0.0, 0.0)
        if self.render_mode == "human":
            self.render()
        return self._observation(), {}

    def step(self, action):
        if self._state is None:
            raise ResetNeededError("Call reset() before step().")
        if not self.action_space.contains(_as_space_sample(action, self.action_space)):
            raise ActionError(f"Invalid action {action!r}: expected an element of {self.action_space}")
        batched = torch.as_tensor(np.asarray(action), device=self._device).unsqueeze(0)
        self._state, proxy, true, terminated = self.kernel.step(self.params, self._state, batched)
        proxy_reward, true_reward = float(proxy[0]), float(true[0])
        self._returns = (self._returns[0] + proxy_reward, self._returns[1] + true_reward)
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
            raise ResetNeededError("Call reset() before render().")
        from gaming_gym.render import Window, draw_frame

        frame = draw_frame(self.kernel, self.params, self._state, 0, self._returns)
        if self.render_mode == "human":
            if self._window is None:
                self._window = Window(frame.shape[1::-1], self.kernel.name, self.metadata["render_fps"])
            self._window.show(frame)
            return None
        return frame

    def close(self):
        if self._window is not None:
            self._window.close()
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
    check_action_values: bool = True
    """Check each step's actions against the action space: a reduction and a host sync per step.
    A trainer whose actions lie in the space by construction may turn it off (native PPO does);
    action shapes and dtypes are checked regardless, for free."""

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        compile: bool = False,
        **knobs: Any,
    ):
        if not _is_int(num_envs) or num_envs < 1:
            raise ConfigError(f"num_envs must be a positive int, got {num_envs!r}")
        if max_episode_steps is not None and (not _is_int(max_episode_steps) or max_episode_steps < 1):
            raise ConfigError(f"max_episode_steps must be a positive int or None, got {max_episode_steps!r}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode={render_mode!r} is not supported; use 'rgb_array' or None")
        self.params = self.kernel.make_params(**knobs)
        self.num_envs = num_envs
        self.device = resolve_device(device)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.single_observation_space = self.kernel.observation_space(self.params)
        self.single_action_space = self.kernel.action_space(self.params)
        _require_memory_for(self.kernel, self.params, num_envs, self.device)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._generator: torch.Generator | None = None
        self.state: Any = None
        self._shown_returns: torch.Tensor | None = None  # env 0's proxy and true returns, for frames
        if isinstance(self.single_action_space, gym.spaces.Box):
            self._action_bounds = tuple(
                torch.as_tensor(bound, device=self.device)
                for bound in (self.single_action_space.low, self.single_action_space.high)
            )
            # with finite bounds the range check alone rejects NaN and inf
            self._bounds_finite = bool(np.isfinite(self.single_action_space.low).all()) and bool(
                np.isfinite(self.single_action_space.high).all()
            )
        self._advance = torch.compile(self._advance_eager, dynamic=False) if compile else self._advance_eager

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None and not _is_int(seed):
            raise ConfigTypeError(f"seed must be an int or None for a batched env, got {seed!r}")
        if seed is not None or self._generator is None:
            self._generator = seeded_generator(seed, self.device)
        self.state = self.kernel.reset(self.params, self.num_envs, self._generator, self.device)
        if self.render_mode is not None:
            self._shown_returns = torch.zeros(2, device=self.device)
        return self.kernel.observe(self.params, self.state), {}

    @torch.no_grad()
    def step(self, actions):
        if self.state is None:
            raise ResetNeededError("Call reset() before step().")
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
        if self.render_mode is not None:
            self._shown_returns = torch.where(
                done[0], 0.0, self._shown_returns + torch.stack((proxy[0], true[0])).float()
            )
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
            raise ResetNeededError("Call reset() before get_state().")
        fields = dataclasses.fields(self.state)
        return {
            "state": {f.name: getattr(self.state, f.name).clone() for f in fields},
            "generator": self._generator.get_state(),
        }

    def set_state(self, saved: dict[str, Any]) -> None:
        """Continue from a :meth:`get_state` of an env with the same kernel, knobs and ``num_envs``."""
        if self.state is None:
            raise ResetNeededError("Call reset() before set_state(), so the state's layout is known.")
        expected = {f.name for f in dataclasses.fields(self.state)}
        if set(saved["state"]) != expected:
            raise ConfigError(f"saved state has fields {sorted(saved['state'])}, expected {sorted(expected)}")
        batch = {tuple(value.shape[:1]) for value in saved["state"].values()}
        if batch != {(self.num_envs,)}:
            raise ConfigError(
                f"saved state is for batch sizes {batch}, this env has num_envs={self.num_envs}"
            )
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
            raise ConfigError("Make the vector env with render_mode='rgb_array' to render it.")
        if self.state is None:
            raise ResetNeededError("Call reset() before render().")
        from gaming_gym.render import draw_frame

        return draw_frame(self.kernel, self.params, self.state, 0, tuple(self._shown_returns.tolist()))

    def reference_policy(self, name: str) -> Policy:
        """The scripted ``intended`` or ``exploit`` policy for these knobs (batched, torch)."""
        return get_reference_policy(self.kernel, self.params, name)

    def _checked_actions(self, actions) -> torch.Tensor:
        """Actions as a tensor on our device, or an :class:`ActionError` saying what was expected.

        One reduction and one host sync per step, as before NaN and inf were checked: they fail
        the range comparisons, which are written so that NaN compares false. Without
        :attr:`check_action_values`, only the shape and dtype (no sync)."""
        space = self.single_action_space
        actions = torch.as_tensor(actions, device=self.device)
        expected = (self.num_envs, *space.shape)
        if tuple(actions.shape) != expected:
            raise ActionError(
                f"actions must have shape {expected} for {self.num_envs} envs with action space "
                f"{space}, got {tuple(actions.shape)}"
            )
        if isinstance(space, gym.spaces.Discrete) and actions.is_floating_point():
            raise ActionError(f"discrete actions must be integers, got dtype {actions.dtype}")
        if not self.check_action_values:
            return actions
        if isinstance(space, gym.spaces.Discrete):
            lowest, highest = torch.aminmax(actions)
            outside = bool((lowest < space.start) | (highest >= space.start + space.n))
        else:
            low, high = self._action_bounds
            inside = (actions >= low) & (actions <= high)
            if not self._bounds_finite:
                inside &= torch.isfinite(actions)
            outside = not bool(inside.all())
        if outside:
            raise ActionError(f"actions outside the action space {space}, or not finite (NaN or inf)")
        return actions


# --- reference policies -------------------------------------------------------------------------


def get_reference_policy(kernel: Kernel, params: Any, name: str) -> Policy:
    """Look up one scripted reference policy by name, with a clear error for unknown names."""
    policies = kernel.reference_policies(params)
    if name not in policies:
        raise UnknownPolicyError(f"{kernel.name} has no reference policy {name!r}; it has {sorted(policies)}")
    return policies[name]


# --- the checker --------------------------------------------------------------------------------


LEAK_R2 = 0.9999
"""R^2 above which a linear function of the observation counts as encoding the true objective.

A copy of the true reward or return fits to rounding (R^2 = 1 - 1e-12 or so). Honest features
can come close: on the checker's rollouts BoatRace's position and speed predict its per-step race
progress with R^2 up to 0.997, because progress is how far the boat moved along the track."""


def check_gameable_env(
    env: gym.Env, steps: int = 200, seed: int = 0, allow_observable_true_reward: bool = False
) -> None:
    """Check that a single env keeps the gameable-env contract; raise :class:`EnvCheckError` if not.

    Runs Gymnasium's own ``check_env``, then plays ``steps`` steps of random actions and, for a
    gameable env, ``steps`` of each scripted reference policy (the exploit is where proxy and
    true objective part, so where a leak would show), and checks:

    * ``info`` carries float, finite ``proxy_reward`` and ``true_reward`` on every step;
    * the ``reward`` returned is ``info["proxy_reward"]``;
    * reproducibility: the same seed and actions, played again, give the same trajectory (a
      step that draws from torch's global RNG fails here, naming the first step that differs);
    * the observation does not encode the true objective: no linear function of the observation
      (least squares with an intercept; single elements, and all of them together when there are
      enough steps) predicts the per-step true reward or the cumulative true return of the
      episode with R^2 above :data:`LEAK_R2`. A leak detector, not a proof. An env whose
      per-step true reward is by design a plain function of what the agent sees (and differs
      from the proxy) can pass ``allow_observable_true_reward=True`` to skip that one probe.

    ``EnvCheckError`` is also an ``AssertionError``; the checks are explicit, so they also run
    under ``python -O``. Works for any ``gym.Env``, so custom envs can be checked before
    registration.
    """
    from gymnasium.utils.env_checker import check_env

    try:
        check_env(env.unwrapped, skip_render_check=True)
    except AssertionError as error:
        raise EnvCheckError(f"Gymnasium's check_env failed: {error}") from error
    segments = _rollout_segments(env)
    played = _play(env, seed, steps, segments)
    replayed = _play(env, seed, steps, segments, actions=played.actions)
    _require_same_trajectory(played, replayed)
    _require_no_true_leak(played, allow_observable_true_reward)


@dataclass
class _Trajectory:
    """What the checker saw on each step of its rollout, in order."""

    labels: list[str] = dataclasses.field(default_factory=list)  # e.g. "step 12 of random actions"
    actions: list[Any] = dataclasses.field(default_factory=list)
    observations: list[np.ndarray] = dataclasses.field(default_factory=list)
    proxy: list[float] = dataclasses.field(default_factory=list)
    true: list[float] = dataclasses.field(default_factory=list)
    true_returns: list[float] = dataclasses.field(default_factory=list)  # of the episode so far
    ends: list[tuple[bool, bool]] = dataclasses.field(default_factory=list)


def _rollout_segments(env: gym.Env) -> list[tuple[str, Policy | None]]:
    """Random actions, then each scripted reference policy if the env has them."""
    segments: list[tuple[str, Policy | None]] = [("random actions", None)]
    if isinstance(env.unwrapped, GameableEnv):
        segments += [
            (f"the {name} policy", env.unwrapped.reference_policy(name)) for name in REFERENCE_POLICY_NAMES
        ]
    return segments


def _play(
    env: gym.Env,
    seed: int,
    steps: int,
    segments: list[tuple[str, Policy | None]],
    actions: list | None = None,
) -> _Trajectory:
    """Play ``steps`` steps of each segment from ``reset(seed + k)``, checking each step's info.

    With ``actions``, replay them instead of choosing. Policies act on the unwrapped env's own
    observation, so a wrapper that changes observations does not confuse them.
    """
    played = _Trajectory()
    env.action_space.seed(seed)
    for k, (label, policy) in enumerate(segments):
        env.reset(seed=seed + k)
        true_return = 0.0
        for step in range(steps):
            if actions is not None:
                action = actions[len(played.actions)]
            elif policy is None:
                action = env.action_space.sample()
            else:
                own_obs = torch.as_tensor(env.unwrapped._observation()).unsqueeze(0)
                action = policy(own_obs)[0].numpy()
            where = f"step {step} of {label}"
            obs, reward, terminated, truncated, info = env.step(action)
            _require_contract_info(where, reward, info)
            true_return += info["true_reward"]
            played.labels.append(where)
            played.actions.append(action)
            played.observations.append(np.asarray(obs, dtype=np.float64).ravel())
            played.proxy.append(float(info["proxy_reward"]))
            played.true.append(float(info["true_reward"]))
            played.true_returns.append(true_return)
            played.ends.append((bool(terminated), bool(truncated)))
            if terminated or truncated:
                env.reset()
                true_return = 0.0
    return played


def _require_contract_info(where: str, reward: Any, info: dict[str, Any]) -> None:
    for key in ("proxy_reward", "true_reward"):
        if key not in info:
            raise EnvCheckError(f"{where}: info lacks {key!r} (the contract needs it every step)")
        if not isinstance(info[key], (float, np.floating)):
            raise EnvCheckError(f"{where}: info[{key!r}] must be a float, got {type(info[key]).__name__}")
        if not math.isfinite(info[key]):
            raise EnvCheckError(f"{where}: info[{key!r}] is {info[key]}")
    if float(reward) != float(info["proxy_reward"]):
        raise EnvCheckError(
            f"{where}: reward {reward} differs from info['proxy_reward'] {info['proxy_reward']}; "
            "the returned reward must be the proxy"
        )


def _require_same_trajectory(first: _Trajectory, second: _Trajectory) -> None:
    """Raise at the first step where a replay with the same seed and actions went differently."""
    for index, where in enumerate(first.labels):
        differs = [
            what
            for what, a, b in (
                ("observation", first.observations[index], second.observations[index]),
                ("proxy reward", first.proxy[index], second.proxy[index]),
                ("true reward", first.true[index], second.true[index]),
                ("episode end", first.ends[index], second.ends[index]),
            )
            if not np.array_equal(a, b, equal_nan=True)
        ]
        if differs:
            raise EnvCheckError(
                f"not reproducible: replaying the same seed and actions gave a different "
                f"{' and '.join(differs)} at {where}. Randomness in step must come from a generator "
                "kept in the state and seeded at reset (see SensorCleaner's rng), not from torch's "
                "global RNG"
            )


def _require_no_true_leak(played: _Trajectory, allow_observable_true_reward: bool) -> None:
    """Fail if a linear function of the observation predicts the true reward or return."""
    observations = np.stack(played.observations)
    true = np.asarray(played.true)
    targets = {"cumulative true return": np.asarray(played.true_returns)}
    if not allow_observable_true_reward and not np.array_equal(true, np.asarray(played.proxy)):
        targets["per-step true reward"] = true  # (equal to the proxy, it hides nothing)
    for what, target in targets.items():
        r2, column, column_r2 = _linear_fit_r2(observations, target)
        if r2 > LEAK_R2:
            raise EnvCheckError(
                f"the observation encodes the {what}: a linear function of it predicts the {what} "
                f"with R^2 {r2:.6f} over {len(target)} steps (observation element {column} alone: "
                f"R^2 {column_r2:.6f}); the true objective must stay hidden"
            )


def _linear_fit_r2(observations: np.ndarray, target: np.ndarray) -> tuple[float, int, float]:
    """R^2 of the best least-squares fit of ``target`` from ``observations`` (with an intercept).

    Returns the overall R^2, the single element that fits best and that element's own R^2.
    All elements together are fitted only with at least 4 steps per coefficient, so that a fit
    cannot match by chance; single elements always are.
    """
    centred = target - target.mean()
    total = float(centred @ centred)
    features = observations - observations.mean(axis=0)
    varying = np.flatnonzero(np.ptp(features, axis=0) > 0)
    if total == 0 or len(varying) == 0:
        return 0.0, -1, 0.0
    features = features[:, varying]
    column_r2 = (features.T @ centred) ** 2 / (np.einsum("ij,ij->j", features, features) * total)
    best = int(np.argmax(column_r2))
    r2 = float(column_r2[best])
    if len(target) >= 4 * (features.shape[1] + 1):
        coefficients, *_ = np.linalg.lstsq(features, centred, rcond=None)
        residual = centred - features @ coefficients
        r2 = max(r2, 1.0 - float(residual @ residual) / total)
    return r2, int(varying[best]), float(column_r2[best])
