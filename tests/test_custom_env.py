"""Registering a user's own gameable env: the docs' worked example and the plugin entry point."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import gaming_gym
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
