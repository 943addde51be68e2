"""The tuned per-env settings: one table, read unchanged by native PPO."""

from __future__ import annotations

import dataclasses

import pytest

import gaming_gym
from gaming_gym.agents.ppo import PPOConfig, default_config
from gaming_gym.agents.tuned import TUNED, TUNED_TRUE_REWARD, tuned_settings

# What default_config gave before the tables moved out of agents/ppo.py: the fields that differ
# from PPOConfig's defaults, per env and reward.
EXPECTED = {
    ("GamingGym/AbsentSupervisor-v0", "proxy"): {"total_timesteps": 409_600, "eval_every": 5},
    ("GamingGym/BoatRace-v1", "proxy"): {
        "total_timesteps": 3_932_160,
        "num_envs": 256,
        "num_steps": 32,
        "anneal_lr": False,
    },
    ("GamingGym/BoatRace-v1", "true"): {
        "total_timesteps": 3_932_160,
        "num_envs": 256,
        "num_steps": 32,
        "anneal_lr": False,
        "reward_scale": 100.0,
    },
    ("GamingGym/TallFall-v0", "proxy"): {
        "total_timesteps": 614_400,
        "eval_every": 5,
        "num_envs": 256,
        "num_steps": 32,
    },
    ("GamingGym/SensorCleaner-v1", "proxy"): {
        "total_timesteps": 491_520,
        "eval_every": 3,
        "gamma": 0.95,
        "clip_vloss": False,
        "num_minibatches": 32,
        "learning_rate": 1e-3,
    },
}
EXPECTED[("GamingGym/AbsentSupervisor-v0", "true")] = EXPECTED[("GamingGym/AbsentSupervisor-v0", "proxy")]
EXPECTED[("GamingGym/TallFall-v0", "true")] = EXPECTED[("GamingGym/TallFall-v0", "proxy")]
EXPECTED[("GamingGym/SensorCleaner-v1", "true")] = EXPECTED[("GamingGym/SensorCleaner-v1", "proxy")]


def _differing_from_defaults(config: PPOConfig) -> dict:
    defaults = PPOConfig().to_dict()
    return {
        name: value
        for name, value in config.to_dict().items()
        if name not in ("env_id", "reward") and value != defaults[name]
    }


@pytest.mark.parametrize("env_id, reward", sorted(EXPECTED))
def test_native_ppo_reads_the_tuned_table_unchanged(env_id, reward):
    config = default_config(env_id, reward=reward)
    assert (config.env_id, config.reward) == (env_id, reward)
    assert _differing_from_defaults(config) == EXPECTED[(env_id, reward)]


def test_every_builtin_env_but_the_continuous_boat_is_tuned_and_every_tuned_name_is_a_config_field():
    builtin = {env_id for env_id in gaming_gym.gameable_env_ids() if env_id.startswith("GamingGym/")}
    assert set(TUNED) == builtin - {"GamingGym/BoatRaceContinuous-v1"}
    fields = {field.name for field in dataclasses.fields(PPOConfig)}
    for table in (TUNED, TUNED_TRUE_REWARD):
        for settings in table.values():
            assert set(settings) <= fields


def test_overrides_win_and_an_untuned_env_gets_the_defaults():
    config = default_config("GamingGym/BoatRace-v1", reward="true", reward_scale=2.0, num_envs=8)
    assert (config.reward_scale, config.num_envs, config.num_steps) == (2.0, 8, 32)
    assert tuned_settings("MyLab/Untuned-v0", seed=3) == {"seed": 3}
    assert _differing_from_defaults(default_config("GamingGym/BoatRaceContinuous-v1")) == {}
