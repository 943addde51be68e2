"""The tuned per-env settings: one table, read unchanged by native PPO."""

from __future__ import annotations

import dataclasses

import pytest

import gaming_gym
from gaming_gym.agents.ppo import PPOConfig, default_config
from gaming_gym.agents.tuned import TUNED, TUNED_TRUE_REWARD, tuned_settings


def _differing_from_defaults(config: PPOConfig) -> dict:
    defaults = PPOConfig().to_dict()
    return {
        name: value
        for name, value in config.to_dict().items()
        if name not in ("env_id", "reward") and value != defaults[name]
    }


@pytest.mark.parametrize("env_id", sorted(TUNED))
@pytest.mark.parametrize("reward", ["proxy", "true"])
def test_native_ppo_reads_the_tuned_table_unchanged(env_id, reward):
    """Every setting of an env's entry (and, on the true reward, of its true-reward entry on top)
    is the config's, and every other field keeps PPOConfig's default: read, not copied, from the
    table."""
    config = default_config(env_id, reward=reward)
    assert (config.env_id, config.reward) == (env_id, reward)
    expected = {**TUNED[env_id], **(TUNED_TRUE_REWARD.get(env_id, {}) if reward == "true" else {})}
    expected = {name: tuple(value) if isinstance(value, list) else value for name, value in expected.items()}
    differing = _differing_from_defaults(config)
    assert {name: getattr(config, name) for name in expected} == expected
    assert set(differing) <= set(expected)  # a tuned value equal to the default is not "differing"


def test_every_builtin_env_is_tuned_and_every_tuned_name_is_a_config_field():
    builtin = {env_id for env_id in gaming_gym.gameable_env_ids() if env_id.startswith("GamingGym/")}
    assert set(TUNED) == builtin
    fields = {field.name for field in dataclasses.fields(PPOConfig)}
    for table in (TUNED, TUNED_TRUE_REWARD):
        for settings in table.values():
            assert set(settings) <= fields


def test_overrides_win_and_an_untuned_env_gets_the_defaults():
    config = default_config("GamingGym/BoatRace-v1", reward="true", reward_scale=2.0, num_envs=8)
    assert (config.reward_scale, config.num_envs, config.num_steps) == (2.0, 8, 32)
    assert tuned_settings("MyLab/Untuned-v0", seed=3) == {"seed": 3}
