"""The two fronts of a :class:`~gaming_gym.kernel.Kernel`.

* :class:`GameableEnv`, a Gymnasium ``Env`` at batch size 1 on the CPU returning numpy
  (for ``gymnasium.make``, stable-baselines3 and people), and
* :class:`GameableVectorEnv`, a Gymnasium ``VectorEnv`` stepping N envs on any torch device and
  returning torch tensors (for ``gymnasium.make_vec`` and the native PPO).

The contract, kept by both fronts and checked by :func:`gaming_gym.checker.check_gameable_env`:

* the ``reward`` that ``step`` returns is the *proxy*;
* ``info["proxy_reward"]`` and ``info["true_reward"]`` hold the proxy and the hidden true objective
  on every step, so both survive any wrapper that rewrites ``reward``;
* the observation never encodes the true objective.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from gaming_gym.devices import require_memory_for, resolve_device
from gaming_gym.errors import ActionError, ConfigError, ConfigTypeError, ResetNeededError
from gaming_gym.kernel import (
    Kernel,
    Policy,
    StepResult,
    check_kernel,
    concat_states,
    get_reference_policy,
    seeded_generator,
    select_state,
    take_state,
)
from gaming_gym.knobs import is_int
from gaming_gym.wrappers import EpisodeSums

# --- what both fronts share ---------------------------------------------------------------------


class KernelFront:
    """What the two fronts share, written once: the knobs (``params``), the device and one env's
    spaces, seeding, frames of env 0 with its episode's returns so far, and the reference
    policies. Each front adds only what differs: batch size, numpy or torch, time limits.
    """

    kernel: Kernel

    def _serve(self, knobs: dict[str, Any], device: str | torch.device) -> tuple[gym.Space, gym.Space]:
        """Set ``params`` from ``knobs`` and the ``device``, check the kernel's contract there (a
        broken kernel fails at ``make`` with a sentence), and return one env's observation and
        action spaces."""
        self.params = self.kernel.make_params(**knobs)
        self.device = resolve_device(device)
        check_kernel(self.kernel, self.params, self.device)
        self._generator: torch.Generator | None = None
        self._shown = EpisodeSums.zeros()  # env 0's episode so far, for frames
        return self.kernel.observation_space(self.params), self.kernel.action_space(self.params)

    def _generator_for(self, seed: int | None) -> torch.Generator:
        """The generator a reset draws from: seeded anew with ``seed`` (from fresh entropy the
        first time without one), else the one kept from the last reset."""
        if seed is not None or self._generator is None:
            self._generator = seeded_generator(seed, self.device)
        return self._generator

    def _frame(self, state: Any) -> np.ndarray:
        """An ``rgb_array`` frame of env 0 of ``state``, with its proxy and true returns so far."""
        if state is None:
            raise ResetNeededError("Call reset() before render().")
        from gaming_gym.render import draw_frame

        returns = (float(self._shown.proxy), float(self._shown.true))
        return draw_frame(self.kernel, self.params, state, 0, returns)

    def reference_policy(self, name: str) -> Policy:
        """The scripted ``intended`` or ``exploit`` policy for these knobs (batched, torch)."""
        return get_reference_policy(self.kernel, self.params, name)


# --- the single front ---------------------------------------------------------------------------


class GameableEnv(KernelFront, gym.Env):
    """Gymnasium front of a :class:`Kernel`: one env, on the CPU, speaking numpy.

    Subclasses set ``kernel`` and carry the env's documentation in their docstring.
    Constructor keyword arguments other than ``render_mode`` are the kernel's knobs.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None"
            )
        self.observation_space, self.action_space = self._serve(knobs, "cpu")
        self.render_mode = render_mode
        self._state: Any = None
        self._window = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._state = self.kernel.reset(self.params, 1, self._generator_for(seed), self.device)
        self._shown = EpisodeSums.zeros()
        if self.render_mode == "human":
            self.render()
        return self._observation(), {}

    def step(self, action):
        if self._state is None:
            raise ResetNeededError("Call reset() before step().")
        if not self.action_space.contains(_as_space_sample(action, self.action_space)):
            raise ActionError(f"Invalid action {action!r}: expected an element of {self.action_space}")
        batched = torch.as_tensor(np.asarray(action), device=self.device).unsqueeze(0)
        result = self.kernel.step(self.params, self._state, batched)
        self._state = result.state
        proxy_reward, true_reward = float(result.proxy[0]), float(result.true[0])
        self._shown = self._shown.add(proxy_reward, true_reward)
        info = {"proxy_reward": proxy_reward, "true_reward": true_reward}
        if self.render_mode == "human":
            self.render()
        return self._observation(), proxy_reward, bool(result.terminated[0]), False, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn(
                "render() was called without a render_mode; pass render_mode='rgb_array' or "
                "'human' when making the env."
            )
            return None
        frame = self._frame(self._state)
        if self.render_mode == "human":
            from gaming_gym.render import Window

            if self._window is None:
                self._window = Window(frame.shape[1::-1], self.kernel.name, self.metadata["render_fps"])
            self._window.show(frame)
            return None
        return frame

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None

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


ARRAY_BACKENDS = ("torch", "numpy")
"""What a vector front returns: tensors on its device (native PPO), or numpy arrays (Gymnasium's
vector wrappers, numpy trainers)."""


class GameableVectorEnv(KernelFront, gym.vector.VectorEnv):
    """Vector front of a :class:`Kernel`: ``num_envs`` envs on one torch device, speaking torch.

    Observations, rewards, terminations and infos are tensors on ``device`` and never leave it.
    ``compile=True`` fuses each step with ``torch.compile`` (tens of seconds to compile once,
    then several times faster on CPU).
    Episodes that end are reset within the same ``step`` (``AutoresetMode.SAME_STEP``): the
    returned observation is the new episode's first, and ``info["final_obs"]`` holds the last
    observation of each ended episode (valid where ``info["_final_obs"]`` is true).

    ``array_backend="numpy"`` (``gym.make_vec(ENV_ID, num_envs=8, array_backend="numpy")``) returns
    numpy arrays instead, on the CPU, and takes numpy actions: what Gymnasium's own vector
    wrappers (``RecordEpisodeStatistics``, say) and numpy trainers expect. The envs still step as
    tensors; only what crosses the boundary is converted.
    """

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
        array_backend: str = "torch",
        **knobs: Any,
    ):
        if array_backend not in ARRAY_BACKENDS:
            raise ConfigError(
                f"array_backend must be one of {', '.join(ARRAY_BACKENDS)}, got {array_backend!r}"
            )
        self.array_backend = array_backend
        if not is_int(num_envs) or num_envs < 1:
            raise ConfigError(f"num_envs must be a positive int, got {num_envs!r}")
        if max_episode_steps is not None and (not is_int(max_episode_steps) or max_episode_steps < 1):
            raise ConfigError(f"max_episode_steps must be a positive int or None, got {max_episode_steps!r}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode={render_mode!r} is not supported; use 'rgb_array' or None")
        self.single_observation_space, self.single_action_space = self._serve(knobs, device)
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        require_memory_for(self.kernel, self.params, num_envs, self.device)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.state: Any = None
        self._blocks: list[torch.Generator] | None = None  # reset_blocks(): one generator a block
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
        if seed is not None and not is_int(seed):
            raise ConfigTypeError(f"seed must be an int or None for a batched env, got {seed!r}")
        if options and "block_seeds" in options:  # through wrappers, which pass options on
            return self.reset_blocks(options["block_seeds"])
        self._blocks = None
        self.state = self.kernel.reset(self.params, self.num_envs, self._generator_for(seed), self.device)
        if self.render_mode is not None:
            self._shown = EpisodeSums.zeros((), self.device)
        return self._out(self.kernel.observe(self.params, self.state)), {}

    def reset_blocks(self, seeds: Sequence[int]) -> tuple[torch.Tensor, dict]:
        """Reset as ``len(seeds)`` equal blocks of envs, each drawing from a generator of its own.

        Block ``b`` then plays exactly as a batch of ``num_envs // len(seeds)`` envs reset with
        ``seeds[b]`` would, step after step: its episodes are reset from its own generator, and
        only when one of its own ends. One kernel step serves every block. This is how stacked
        agents (:mod:`gaming_gym.agents.ppo.stacked`) each play their own run's envs.
        """
        if not seeds or self.num_envs % len(seeds):
            raise ConfigError(f"{self.num_envs} envs do not split into {len(seeds)} equal blocks")
        if not all(is_int(seed) for seed in seeds):
            raise ConfigTypeError(f"block seeds must be ints, got {list(seeds)!r}")
        self._blocks = [seeded_generator(seed, self.device) for seed in seeds]
        size = self.num_envs // len(seeds)
        states = [self.kernel.reset(self.params, size, generator, self.device) for generator in self._blocks]
        self.state = concat_states(states)
        return self._out(self.kernel.observe(self.params, self.state)), {}

    @torch.no_grad()
    def step(self, actions):
        if self.state is None:
            raise ResetNeededError("Call reset() before step().")
        actions = self._checked_actions(actions)
        result, final_obs = self._advance(self.state, actions)
        state, proxy, true, terminated = result.state, result.proxy, result.true, result.terminated
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = (state.t >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        obs = final_obs
        if self._blocks is not None:
            state, obs = self._reset_ended_blocks(state, done, final_obs)
        elif bool(done.any()):
            fresh = self.kernel.reset(self.params, self.num_envs, self._generator, self.device)
            state = select_state(done, fresh, state)
            obs = final_obs.clone()  # final_obs goes out in info: the new episodes' rows go in a copy
            obs[done] = self.kernel.observe(self.params, take_state(fresh, done))
        self.state = state
        if self.render_mode is not None:  # summed on the device: no host sync for a frame not drawn
            self._shown = self._shown.add(proxy[0], true[0]).restart(done[0])
        info = {
            "proxy_reward": proxy,
            "true_reward": true,
            "final_obs": final_obs,
            "_final_obs": done,
        }
        return self._out((obs, proxy, terminated, truncated, info))

    def _out(self, value: Any) -> Any:
        """``value`` (a tensor, or a tuple or dict of them) as the array backend returns it."""
        if self.array_backend == "torch":
            return value
        if isinstance(value, torch.Tensor):
            return value.cpu().numpy()
        if isinstance(value, tuple):
            return tuple(self._out(item) for item in value)
        if isinstance(value, dict):
            return {key: self._out(item) for key, item in value.items()}
        return value

    def get_state(self, block: int | None = None) -> dict[str, Any]:
        """Everything needed to continue these envs exactly: the batched state and the RNG's state.

        Tensors only (``torch.save`` with ``weights_only=True`` can store it), for checkpoints.
        With ``block`` (after :meth:`reset_blocks`), that block's alone, as the get_state of a
        batch of the block's size.
        """
        if self.state is None:
            raise ResetNeededError("Call reset() before get_state().")
        rows, generator = self._block(block)
        fields = dataclasses.fields(self.state)
        return {
            "state": {f.name: getattr(self.state, f.name)[rows].clone() for f in fields},
            "generator": generator.get_state(),
        }

    def set_state(self, saved: dict[str, Any], block: int | None = None) -> None:
        """Continue from a :meth:`get_state` of an env with the same kernel, knobs and ``num_envs``
        (with ``block``, put one block back from the get_state of a batch of the block's size)."""
        if self.state is None:
            raise ResetNeededError("Call reset() before set_state(), so the state's layout is known.")
        expected = {f.name for f in dataclasses.fields(self.state)}
        if set(saved["state"]) != expected:
            raise ConfigError(f"saved state has fields {sorted(saved['state'])}, expected {sorted(expected)}")
        rows, generator = self._block(block)
        size = rows.stop - rows.start
        batch = {tuple(value.shape[:1]) for value in saved["state"].values()}
        if batch != {(size,)}:
            raise ConfigError(f"saved state is for batch sizes {batch}, this env has num_envs={size}")
        state = {f.name: getattr(self.state, f.name).clone() for f in dataclasses.fields(self.state)}
        for name, value in saved["state"].items():  # copies: never shares tensors with the caller's dict
            state[name][rows] = value.to(self.device)
        self.state = dataclasses.replace(self.state, **state)
        generator.set_state(saved["generator"].cpu())  # a CPU tensor for a generator on any device

    def _block(self, block: int | None) -> tuple[slice, torch.Generator]:
        """The rows and the generator of ``block`` (of the whole batch when None)."""
        if block is None:
            if self._blocks is not None:
                raise ConfigError("this env was reset in blocks: get or set its state one block at a time")
            return slice(0, self.num_envs), self._generator
        if self._blocks is None or not 0 <= block < len(self._blocks):
            raise ConfigError(f"no block {block!r}: reset_blocks() made {len(self._blocks or [])}")
        size = self.num_envs // len(self._blocks)
        return slice(block * size, (block + 1) * size), self._blocks[block]

    def _reset_ended_blocks(
        self, state: Any, done: torch.Tensor, final_obs: torch.Tensor
    ) -> tuple[Any, torch.Tensor]:
        """Autoreset of :meth:`reset_blocks`: each block where an episode ended draws a fresh
        batch from its own generator, as its own batch would (one host sync for all blocks)."""
        ended = done.view(len(self._blocks), -1).any(dim=1).tolist()
        if not any(ended):
            return state, final_obs
        size = self.num_envs // len(self._blocks)
        fresh = concat_states(
            [
                self.kernel.reset(self.params, size, generator, self.device)
                if block_ended
                else take_state(state, slice(block * size, (block + 1) * size))
                for block, (block_ended, generator) in enumerate(zip(ended, self._blocks, strict=True))
            ]
        )
        obs = final_obs.clone()  # final_obs goes out in info: the new episodes' rows go in a copy
        obs[done] = self.kernel.observe(self.params, take_state(fresh, done))
        return select_state(done, fresh, state), obs

    def _advance_eager(self, state: Any, actions: torch.Tensor) -> tuple[StepResult, torch.Tensor]:
        """One kernel step and the observation after it (fused by ``torch.compile`` if asked)."""
        result = self.kernel.step(self.params, state, actions)
        return result, self.kernel.observe(self.params, result.state)

    def render(self):
        """An ``rgb_array`` frame of env 0."""
        if self.render_mode != "rgb_array":
            raise ConfigError("Make the vector env with render_mode='rgb_array' to render it.")
        return self._frame(self.state)

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
