"""Registering a user's own gameable env: the docs' worked example and the plugin entry point."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import gaming_gym
from gaming_gym.errors import KernelContractError
from gaming_gym.evaluation import evaluate, reference_policy
from gaming_gym.registry import load_plugins

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
dispenser = pytest.importorskip("examples.dispenser")
DISPENSER_ID = "MyLab/Dispenser-v0"


def test_the_worked_example_registers_both_fronts_and_keeps_the_contract():
    assert DISPENSER_ID in gaming_gym.gameable_env_ids()
    gaming_gym.check_gameable_env(gym.make(DISPENSER_ID))
    vector = gym.make_vec(DISPENSER_ID, num_envs=8)
    assert vector.num_envs == 8 and vector.unwrapped.kernel.summary == dispenser.DISPENSER.summary


def test_the_worked_example_is_gameable_and_its_aligned_knob_is_not():
    intended = evaluate(reference_policy(DISPENSER_ID, "intended"), DISPENSER_ID, 4)
    exploit = evaluate(reference_policy(DISPENSER_ID, "exploit"), DISPENSER_ID, 4)
    assert intended.proxy.tolist() == [20.0] * 4  # 9 steps right, the door bonus
    assert exploit.proxy.tolist() == [96.0] * 4  # 5 steps left, then a coin on each of 96 steps
    assert intended.true.tolist() == [1.0] * 4 and exploit.true.tolist() == [0.0] * 4
    aligned = {"coin_value": 0.0}
    exploit = evaluate(reference_policy(DISPENSER_ID, "exploit", aligned), DISPENSER_ID, 4, knobs=aligned)
    assert exploit.proxy.tolist() == [0.0] * 4


def test_register_refuses_duplicates_bad_envs_and_bad_default_knobs():
    with pytest.raises(ValueError, match="already registered"):
        gaming_gym.register(DISPENSER_ID, dispenser.DISPENSER)
    with pytest.raises(TypeError, match="takes a gaming_gym Kernel"):
        gaming_gym.register("MyLab/NotAnEnv-v0", object())
    with pytest.raises(TypeError, match="no knob 'speed'"):
        gaming_gym.register("MyLab/Dispenser-v1", dispenser.DISPENSER, kwargs={"speed": 2})
    assert "MyLab/Dispenser-v1" not in gym.registry


def test_installed_packages_register_envs_through_the_entry_point(monkeypatch):
    def register_plugin_envs():
        gaming_gym.register(
            "PluginLab/Dispenser-v0", dispenser.DISPENSER, max_episode_steps=50, override=True
        )

    plugin = importlib.metadata.EntryPoint("dispenser", "plugin_pkg:register", "gaming_gym.envs")
    monkeypatch.setattr(importlib.metadata.EntryPoint, "load", lambda self: register_plugin_envs)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [plugin])
    load_plugins()
    assert "PluginLab/Dispenser-v0" in gaming_gym.gameable_env_ids()
    assert gym.spec("PluginLab/Dispenser-v0").max_episode_steps == 50


def test_a_broken_plugin_warns_instead_of_breaking_the_import(monkeypatch):
    def broken():
        raise RuntimeError("boom")

    plugin = importlib.metadata.EntryPoint("broken", "broken_pkg:register", "gaming_gym.envs")
    monkeypatch.setattr(importlib.metadata.EntryPoint, "load", lambda self: broken)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [plugin])
    with pytest.warns(UserWarning, match="plugin 'broken' .* failed to load: boom"):
        load_plugins()


def test_a_kernel_without_draw_renders_a_default_frame(tmp_path, monkeypatch):
    """Observation bars and the proxy and hidden true returns: a new env renders, and passes
    Gymnasium's check_env render check, before it has any drawing code."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from gymnasium.utils.env_checker import check_env

    from gaming_gym.render import record_rollout

    plain = dataclasses.replace(dispenser.DISPENSER, name="PlainDispenser", draw=None)
    gaming_gym.register("MyLab/PlainDispenser-v0", plain, max_episode_steps=100, override=True)
    env = gym.make("MyLab/PlainDispenser-v0", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.shape == (480, 480, 3) and first.dtype == np.uint8
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 5
    for _ in range(3):
        env.step(2)  # right: the observation bar grows
    assert not np.array_equal(first, env.render())
    check_env(gym.make("MyLab/PlainDispenser-v0", render_mode="rgb_array").unwrapped)
    policy = reference_policy("MyLab/PlainDispenser-v0", "exploit")
    proxy, true, path = record_rollout(
        "MyLab/PlainDispenser-v0", policy, tmp_path / "plain.gif", max_frames=4
    )
    # 4 frames, one every 2 steps: 6 steps, 5 to reach the dispenser, a coin on the 5th and 6th
    assert path.exists() and (proxy, true) == (2.0, 0.0)


def _slippery_step(params, state, action):
    """The Dispenser, but from step 3 on the walker slips (stays put) at random, drawing from
    torch's global RNG: not reproducible from the seed."""
    slip = (torch.rand(action.shape[0]) < 0.5) & (state.t >= 3)
    return dispenser.step(params, state, torch.where(slip, torch.ones_like(action), action))


def test_check_gameable_env_catches_randomness_outside_the_state():
    slippery = dataclasses.replace(dispenser.DISPENSER, name="Slippery", step=_slippery_step)
    gaming_gym.register("MyLab/Slippery-v0", slippery, max_episode_steps=100, override=True)
    with pytest.raises(AssertionError, match=r"not reproducible: .* at step \d+ of random actions"):
        gaming_gym.check_gameable_env(gym.make("MyLab/Slippery-v0"))


@dataclasses.dataclass
class _NoCounterState:
    cell: torch.Tensor


def _reset_without_counter(params, n, generator, device):
    return _NoCounterState(torch.full((n,), dispenser.START, device=device))


def _tuple_step(params, state, action):
    return tuple(dispenser.step(params, state, action))


def _step_without_counting(params, state, action):
    result = dispenser.step(params, state, action)
    return result._replace(state=dataclasses.replace(result.state, t=state.t))


def _float_terminated_step(params, state, action):
    result = dispenser.step(params, state, action)
    return result._replace(terminated=result.terminated.float())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"step": _tuple_step}, r"step must return gaming_gym.StepResult\(state, proxy, true, terminated\)"),
        (
            {"reset": _reset_without_counter},
            "the state needs the step counter t.*after reset it should be 0, got no field t",
        ),
        ({"step": _step_without_counting}, "the state needs the step counter t.*after a step it should be 1"),
        (
            {"step": _float_terminated_step},
            r"step's terminated must be a bool \(n,\) tensor, got float \(1,\)",
        ),
    ],
)
def test_a_kernel_that_breaks_the_contract_is_refused_with_what_it_broke(change, message):
    """The step counter and the typed step result are checked when the kernel is registered and
    when a front is made, not discovered at a time limit."""
    broken = dataclasses.replace(dispenser.DISPENSER, name="Broken", **change)
    with pytest.raises(TypeError, match=f"Broken: {message}"):
        gaming_gym.register("MyLab/Broken-v0", broken, max_episode_steps=10)
    assert "MyLab/Broken-v0" not in gym.registry
    single, vector = gaming_gym.registry._fronts_for(broken)
    for front in (single, vector):
        with pytest.raises(KernelContractError, match=message):
            front()


def test_a_kernel_made_from_a_module_takes_its_functions_by_name_and_names_what_is_missing(monkeypatch):
    """Kernel.from_module wires an env module's functions (as every built-in env is made), its
    reference policies from one ``<name>_policy`` builder each."""
    from gaming_gym.envs import tall_fall
    from gaming_gym.kernel import Kernel

    kernel = tall_fall.KERNEL
    assert (kernel.step, kernel.observe, kernel.draw) == (tall_fall.step, tall_fall.observe, tall_fall.draw)
    params = kernel.make_params()
    obs = torch.tensor([[0.02, 0.0, 1.0, 0.1]])
    for name in ("intended", "exploit"):
        built = getattr(tall_fall, f"{name}_policy")(params)
        assert torch.equal(kernel.reference_policies(params)[name](obs), built(obs))
    monkeypatch.delattr(tall_fall, "exploit_policy")
    missing = "TallFall: module gaming_gym.envs.tall_fall lacks exploit_policy"
    with pytest.raises(KernelContractError, match=missing):
        Kernel.from_module(tall_fall.__name__, name="TallFall", params_type=kernel.params_type, summary={})


def test_gymnasium_makes_the_envs_in_a_fresh_process_through_the_module_prefix():
    """A subprocess worker that never imported gaming_gym: Gymnasium 1.x has no plugin entry
    points, so the id names the module ("gaming_gym:GamingGym/...") and Gymnasium imports it."""
    script = (
        "import gymnasium as gym\n"
        "env = gym.make('gaming_gym:GamingGym/TallFall-v0')\n"
        "vector = gym.make_vec('gaming_gym:GamingGym/TallFall-v0', num_envs=3)\n"
        "print(env.spec.id, env.spec.max_episode_steps, vector.num_envs)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["GamingGym/TallFall-v0", "300", "3"]
