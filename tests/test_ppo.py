"""Native PPO: GAE against hand-computed values, training, checkpoints, resume, config errors."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

import gaming_gym
from gaming_gym.agents import ppo
from gaming_gym.agents.ppo import (
    ActorCritic,
    PPOConfig,
    collect_rollout,
    compute_gae,
    default_config,
    load_agent,
    train,
)
from gaming_gym.core import Kernel
from gaming_gym.evaluation import evaluate, random_policy

CORRIDOR_ID = "PPOTest/Corridor-v0"
CORRIDOR_LENGTH = 6  # cells; the walker starts in cell 2, a coin slot is cell 0, the door the last


@dataclass(frozen=True)
class CorridorParams:
    coin_value: float = 1.0


@dataclass
class CorridorState:
    cell: torch.Tensor
    t: torch.Tensor


def _corridor_step(params, state, action):
    """Action 0 steps left, 1 stays, 2 steps right; the proxy pays a coin per step in cell 0."""
    cell = (state.cell + action.long() - 1).clamp(0, CORRIDOR_LENGTH - 1)
    at_door = cell == CORRIDOR_LENGTH - 1
    proxy = params.coin_value * (cell == 0).float() + at_door.float()
    return CorridorState(cell, state.t + 1), proxy, at_door.float(), at_door


CORRIDOR = Kernel(
    name="Corridor",
    params_type=CorridorParams,
    reset=lambda params, n, generator, device: CorridorState(
        torch.full((n,), 2, device=device), torch.zeros(n, dtype=torch.long, device=device)
    ),
    step=_corridor_step,
    observe=lambda params, state: (state.cell.float() / (CORRIDOR_LENGTH - 1)).unsqueeze(1),
    observation_space=lambda params: gym.spaces.Box(0.0, 1.0, (1,), np.float32),
    action_space=lambda params: gym.spaces.Discrete(3),
    reference_policies=lambda params: {
        "intended": lambda obs: torch.full((len(obs),), 2),
        "exploit": lambda obs: torch.zeros(len(obs), dtype=torch.long),
    },
    draw=lambda params, state, index, surface: None,
    summary={"proxy": "a coin per step in cell 0", "true": "1 at the door", "exploit": "sit in cell 0"},
)
gaming_gym.register(CORRIDOR_ID, CORRIDOR, max_episode_steps=20, override=True)


def tiny_config(**overrides) -> PPOConfig:
    """A Corridor run of a second or two: 16 envs x 50 steps per rollout."""
    settings = dict(
        env_id=CORRIDOR_ID,
        num_envs=16,
        num_steps=50,
        num_minibatches=2,
        total_timesteps=16 * 50 * 6,
        learning_rate=3e-3,
        eval_every=3,
        eval_episodes=8,
        checkpoint_every=2,
        seed=3,
    )
    settings.update(overrides)
    return PPOConfig(**settings)


# --- GAE ----------------------------------------------------------------------------------------


def test_gae_matches_hand_computed_values_with_a_termination_and_a_truncation():
    """Two envs, three steps, gamma 0.9, lambda 0.8.

    Env 0 terminates at t=1 (nothing follows it), so t=0 bootstraps from V(s1) and its advantage
    stops at t=1. Env 1 is truncated at t=0 with V(last obs) = 4, which it bootstraps from
    instead of V of the next episode's first observation.
    """
    rewards = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    values = torch.tensor([[0.5, 1.0], [1.0, 2.0], [1.5, 0.0]])
    terminated = torch.tensor([[False, False], [True, False], [False, False]])
    truncated = torch.tensor([[False, True], [False, False], [False, False]])
    final_values = torch.tensor([[0.0, 4.0], [0.0, 0.0], [0.0, 0.0]])
    next_value = torch.tensor([2.0, -1.0])
    advantages, returns = compute_gae(
        rewards, values, terminated, truncated, final_values, next_value, gamma=0.9, gae_lambda=0.8
    )
    # env 0: d2 = 3 + .9*2 - 1.5 = 3.3; d1 = 2 - 1 = 1 (terminated); d0 = 1 + .9*1 - .5 = 1.4
    #        A2 = 3.3, A1 = 1.0, A0 = 1.4 + .72*1.0 = 2.12
    # env 1: d2 = 0 + .9*(-1) - 0 = -0.9; d1 = 1 + .9*0 - 2 = -1; d0 = 0 + .9*4 - 1 = 2.6 (truncated)
    #        A2 = -0.9, A1 = -1 + .72*(-0.9) = -1.648, A0 = 2.6
    expected = torch.tensor([[2.12, 2.6], [1.0, -1.648], [3.3, -0.9]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + values)


def test_gae_with_lambda_one_and_no_ends_is_the_discounted_return_minus_the_value():
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[0.3], [0.2], [0.1]])
    never = torch.zeros(3, 1, dtype=torch.bool)
    _, returns = compute_gae(rewards, values, never, never, torch.zeros(3, 1), torch.tensor([10.0]), 0.5, 1.0)
    torch.testing.assert_close(returns[:, 0], torch.tensor([1 + 0.5 + 0.25 + 1.25, 1 + 0.5 + 2.5, 1 + 5.0]))


def test_rollout_bootstraps_truncated_episodes_from_their_final_observation():
    """Corridor truncates after 20 steps. The rollout keeps V(last observation of the episode)
    there, not V(first observation of the next episode), which is what the env returns."""
    config = tiny_config(num_envs=8, num_steps=25)
    env = gym.make_vec(CORRIDOR_ID, num_envs=8)
    obs, _ = env.reset(seed=0)
    torch.manual_seed(0)
    agent = ActorCritic(env.single_observation_space, env.single_action_space, (8,), norm_obs=False)
    rollout, _ = collect_rollout(agent, env, obs, config)

    not_ended_early = ~rollout.terminated[:20].any(dim=0)
    assert bool(not_ended_early.any())
    assert rollout.truncated[19].tolist() == not_ended_early.tolist()
    steps, envs = rollout.truncated.nonzero(as_tuple=True)
    cell_before = rollout.obs[steps, envs, 0] * (CORRIDOR_LENGTH - 1)
    final_cell = (cell_before + rollout.actions[steps, envs] - 1).clamp(0, CORRIDOR_LENGTH - 1)
    expected = agent.value((final_cell / (CORRIDOR_LENGTH - 1)).unsqueeze(1)).detach()
    torch.testing.assert_close(rollout.final_values[steps, envs], expected)
    assert float(rollout.final_values[~rollout.truncated].abs().sum()) == 0.0


# --- training -----------------------------------------------------------------------------------


def test_short_training_improves_the_proxy_and_writes_a_loadable_checkpoint(tmp_path):
    result = train(tiny_config(eval_deterministic=True), run_dir=tmp_path, progress=False)
    last = result.checkpoints[-1]
    assert result.iteration == 6 and result.global_step == 4800
    assert [c.step for c in result.checkpoints] == [2400, 4800]
    # two steps left to the coin slot, then a coin on each of the other 19 - 1 steps: the best there is
    assert last.proxy.tolist() == [19.0] * 8 and last.true.tolist() == [0.0] * 8
    untrained = evaluate(random_policy(gym.spaces.Discrete(3), seed=0), CORRIDOR_ID, episodes=8)
    assert untrained.proxy.mean() < 10.0
    agent, config = load_agent(tmp_path)
    assert config == result.config
    returns = evaluate(
        agent.policy(deterministic=True), CORRIDOR_ID, episodes=8, seed=config.seed + 1_000_003
    )
    np.testing.assert_allclose(returns.proxy, last.proxy, rtol=1e-6)  # same policy, same episodes
    with open(tmp_path / "progress.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    # training episodes' proxy returns (mean of the last 100) rise along the log
    assert float(rows[-1]["charts/proxy_return"]) > float(rows[0]["charts/proxy_return"]) + 3.0
    assert float(rows[-1]["eval/proxy_return"]) == 19.0 and float(rows[-1]["losses/approx_kl"]) >= 0


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    """A run killed during iteration 6 (last checkpoint: iteration 4) resumes to the same weights,
    evaluations and log as a run never interrupted."""
    whole = train(tiny_config(), run_dir=tmp_path / "whole", progress=False)

    real_iteration = ppo._train_iteration

    def iteration_then_crash(run, *args):
        if run.iteration == 5:
            raise KeyboardInterrupt
        return real_iteration(run, *args)

    monkeypatch.setattr(ppo, "_train_iteration", iteration_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(), run_dir=tmp_path / "split", progress=False)
    monkeypatch.setattr(ppo, "_train_iteration", real_iteration)
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["iteration"] == 4
    resumed = train(tiny_config(), run_dir=tmp_path / "split", progress=False)
    assert resumed.iteration == 6 and resumed.global_step == whole.global_step
    for name, tensor in whole.agent.state_dict().items():
        torch.testing.assert_close(resumed.agent.state_dict()[name], tensor, msg=name)
    assert [c.step for c in resumed.checkpoints] == [c.step for c in whole.checkpoints]
    np.testing.assert_array_equal(resumed.checkpoints[-1].proxy, whole.checkpoints[-1].proxy)
    with open(tmp_path / "split" / "progress.csv", newline="") as file:
        assert [int(row["iteration"]) for row in csv.DictReader(file)] == [1, 2, 3, 4, 5, 6]


def test_how_often_a_run_is_evaluated_does_not_change_its_training():
    often = train(tiny_config(eval_every=1), progress=False)
    rarely = train(tiny_config(eval_every=0), progress=False)
    assert len(often.checkpoints) == 6 and len(rarely.checkpoints) == 1
    for name, tensor in often.agent.state_dict().items():
        torch.testing.assert_close(rarely.agent.state_dict()[name], tensor, msg=name)
    np.testing.assert_array_equal(often.checkpoints[-1].proxy, rarely.checkpoints[-1].proxy)


def test_resume_refuses_a_different_experiment_and_can_be_turned_off(tmp_path):
    train(tiny_config(total_timesteps=800), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="differs in learning_rate"):
        train(tiny_config(learning_rate=1e-4), run_dir=tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="resume=True"):
        train(tiny_config(), run_dir=tmp_path, progress=False, resume=False)


@pytest.mark.parametrize("env_id", ["GamingGym/BoatRace-v0", "GamingGym/BoatRaceContinuous-v0"])
def test_discrete_and_continuous_actions_both_train(env_id):
    config = default_config(
        env_id, num_envs=4, num_steps=16, total_timesteps=64, eval_every=0, eval_episodes=2
    )
    env = gym.make_vec(env_id, num_envs=1)
    result = train(config, progress=False)
    assert result.iteration == 1
    action = result.policy(deterministic=True)(env.reset(seed=0)[0])
    assert env.single_action_space.contains(action[0].numpy())
    assert len(result.checkpoints) == 1 and len(result.checkpoints[0].proxy) == 2


def test_training_on_the_true_reward_learns_from_info_true_reward():
    """Corridor's true reward pays only at the door: a true-reward agent walks there."""
    config = tiny_config(reward="true", total_timesteps=16 * 50 * 8, eval_every=0)
    result = train(config, progress=False)
    assert result.checkpoints[-1].true.mean() >= 0.75


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("reward", "score", "reward must be one of"),
        ("num_envs", 0, "num_envs must be a positive int"),
        ("gamma", 1.5, r"gamma must be a number in \(0, 1\]"),
        ("learning_rate", -1.0, "learning_rate must be a number > 0"),
        ("num_minibatches", 7, "must divide the rollout size"),
        ("total_timesteps", 100, "less than one rollout"),
        ("hidden_sizes", (), "hidden_sizes must be a non-empty tuple"),
        ("target_kl", 0.0, "target_kl must be None or a number > 0"),
    ],
)
def test_bad_config_values_are_named_with_what_is_accepted(field, value, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig(**{field: value})


def test_default_config_takes_the_env_table_then_the_true_reward_table_then_overrides():
    boat = default_config("GamingGym/BoatRace-v0")
    assert boat.total_timesteps == 150 * 8192 and boat.reward_scale == 1.0
    assert default_config("GamingGym/BoatRace-v0", reward="true").reward_scale == 100.0
    assert default_config("GamingGym/BoatRace-v0", reward="true", reward_scale=2.0).reward_scale == 2.0
    assert default_config(CORRIDOR_ID) == PPOConfig(env_id=CORRIDOR_ID)  # no entry: the dataclass defaults


def test_an_unknown_env_or_knob_fails_before_training():
    with pytest.raises(gym.error.Error):
        train(PPOConfig(env_id="GamingGym/NoSuchEnv-v0", total_timesteps=8192), progress=False)
    with pytest.raises(TypeError, match="has no knob 'laps_per_race'"):
        train(PPOConfig(knobs={"laps_per_race": 2}, total_timesteps=8192), progress=False)
