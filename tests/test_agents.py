"""The agent table: native PPO and SB3 behind one protocol, chosen by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_ppo import CORRIDOR_ID  # noqa: F401  (a 20-step toy env registered there)

from gaming_gym.agents import AGENTS, Agent, get_agent, load_run_policy
from gaming_gym.agents.agent import NativePPO, StableBaselines3PPO, TrainedAgent
from gaming_gym.errors import ConfigError, RunDirectoryError
from gaming_gym.evaluation import evaluate
from gaming_gym.experiment import train_experiment

TINY = dict(  # 8 envs x 40 steps = 320 steps a rollout
    num_envs=8,
    num_steps=40,
    num_minibatches=4,
    update_epochs=1,
    total_timesteps=640,
    eval_every=1,
    eval_episodes=2,
    hidden_sizes=(16,),
    device="cpu",
)


def test_the_table_holds_every_agent_under_its_name():
    assert list(AGENTS) == ["ppo", "sb3", "dpo"]
    assert isinstance(AGENTS["ppo"], NativePPO) and isinstance(AGENTS["sb3"], StableBaselines3PPO)
    assert all(isinstance(agent, Agent) and agent.name == name for name, agent in AGENTS.items())
    assert get_agent("sb3") is AGENTS["sb3"]


@pytest.mark.parametrize("name", ["ppo", "sb3"])
def test_each_agent_trains_through_the_table_and_loads_back(tmp_path, name):
    if name == "sb3":
        pytest.importorskip("stable_baselines3")
    agent = get_agent(name)
    config = agent.config(CORRIDOR_ID, seed=1, **TINY)
    assert (config.num_steps, config.seed, config.hidden_sizes) == (40, 1, (16,))
    result = agent.train(config, tmp_path, progress=False)
    assert isinstance(result, TrainedAgent)
    assert [c.step for c in result.checkpoints] == [0, 320, 640]  # both evaluate at step 0, then each rollout
    assert json.loads((tmp_path / "config.json").read_text())["agent"] == name

    policy, saved = load_run_policy(tmp_path, deterministic=True)  # looked up by config.json's agent
    assert saved["agent"] == name and saved["env_id"] == CORRIDOR_ID
    obs = torch.linspace(0.0, 1.0, 6).unsqueeze(1)
    torch.testing.assert_close(policy(obs), result.policy(deterministic=True)(obs), rtol=0, atol=0)
    loaded = agent.load_policy(tmp_path, deterministic=True)
    returns = evaluate(loaded, CORRIDOR_ID, episodes=4, seed=5)
    expected = evaluate(result.policy(deterministic=True), CORRIDOR_ID, episodes=4, seed=5)
    np.testing.assert_array_equal(returns.proxy, expected.proxy)
    np.testing.assert_array_equal(returns.true, expected.true)


def test_an_agent_loads_only_its_own_run_directories(tmp_path):
    AGENTS["ppo"].train(AGENTS["ppo"].config(CORRIDOR_ID, **TINY), tmp_path, progress=False)
    pytest.importorskip("stable_baselines3")
    with pytest.raises(RunDirectoryError, match="holds no sb3_agent.pt"):
        AGENTS["sb3"].load_policy(tmp_path)


def test_an_unknown_agent_is_one_config_error_naming_the_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"^unknown agent 'sb4'; choose one of: ppo, sb3, dpo$"):
        get_agent("sb4")
    with pytest.raises(ConfigError, match="unknown agent 'a2c'; choose one of: ppo, sb3"):
        train_experiment(CORRIDOR_ID, tmp_path / "run", "a2c", progress=False, **TINY)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="unknown agent"):
        get_agent(["ppo"])  # as a corrupt config.json might hold it


def test_a_run_directory_naming_an_agent_not_in_the_table_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"agent": "a2c", "env_id": CORRIDOR_ID, "knobs": {}}))
    with pytest.raises(RunDirectoryError, match=r"names no known agent \('a2c'; one of ppo, sb3, dpo\)"):
        load_run_policy(tmp_path)


def test_agents_say_which_runs_they_can_train_as_one_stack():
    ppo, one, two = (
        AGENTS["ppo"],
        AGENTS["ppo"].config(CORRIDOR_ID, seed=1),
        AGENTS["ppo"].config(CORRIDOR_ID, seed=2),
    )
    assert ppo.stack_key(one) == ppo.stack_key(two)  # seeds stack
    assert ppo.stack_key(one) != ppo.stack_key(ppo.config(CORRIDOR_ID, hidden_sizes=(8,)))
    pytest.importorskip("stable_baselines3")
    assert AGENTS["sb3"].stack_key(AGENTS["sb3"].config(CORRIDOR_ID)) is None  # one after another


def test_both_agents_refuse_a_setting_they_do_not_have():
    with pytest.raises(ConfigError, match="native PPO has no setting 'n_steps'; it takes: anneal_lr"):
        AGENTS["ppo"].config(CORRIDOR_ID, n_steps=40)
    pytest.importorskip("stable_baselines3")
    with pytest.raises(ConfigError, match="SB3 agent has no setting 'n_steps'; n_steps is num_steps here"):
        AGENTS["sb3"].config(CORRIDOR_ID, n_steps=40)
