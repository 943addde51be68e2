"""Native PPO: GAE against hand-computed values, training, checkpoints, resume, KL from the initial
policy, config errors. (The mitigations' own tests are in test_mitigations.py, stacks' in
test_stacked.py.)"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

import gaming_gym
from gaming_gym.agents.ppo import (
    EVAL_SEED_OFFSET,
    ActorCritic,
    Coefficients,
    PPOConfig,
    StackedAgents,
    checkpoints,
    collect_rollout,
    compute_gae,
    context,
    default_config,
    load_agent,
    train,
    training,
)
from gaming_gym.agents.ppo.networks import kl_from
from gaming_gym.errors import ConfigError, ConfigTypeError, RunDirectoryError, RunExistsError
from gaming_gym.evaluation import evaluate, random_policy
from gaming_gym.kernel import Kernel, StepResult, seeded_generator

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
    return StepResult(CorridorState(cell, state.t + 1), proxy=proxy, true=at_door.float(), terminated=at_door)


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
    coefficients = Coefficients.of([config], torch.device("cpu"))
    rollout, _ = collect_rollout(StackedAgents([agent]), env, obs, config, coefficients, [torch.Generator()])

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
    assert [c.step for c in result.checkpoints] == [0, 2400, 4800]  # the untrained policy first
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
    assert [int(row["iteration"]) for row in rows] == [0, 1, 2, 3, 4, 5, 6]  # 0: the step-0 evaluation
    assert rows[0]["charts/proxy_return"] == "" and float(rows[0]["eval/proxy_return"]) < 10.0
    # training episodes' proxy returns (mean of the last 100) rise along the log
    assert float(rows[-1]["charts/proxy_return"]) > float(rows[1]["charts/proxy_return"]) + 3.0
    assert float(rows[-1]["eval/proxy_return"]) == 19.0 and float(rows[-1]["losses/approx_kl"]) >= 0


RESUMED_SETTINGS = {
    "plain": {},
    "kl penalty toward the initial policy": {"mitigations": {"kl_initial": {"beta": 0.5}}},
    "kl penalty toward the cloned intended policy": {"mitigations": {"kl_reference": {"beta": 0.5}}},
    "held-out check and early stopping": {"mitigations": {"early_stopping": {"episodes": 4}}},
    "sft start, kl to it, early stopping, target_kl": {
        "start": "sft",
        "target_kl": 0.01,
        "mitigations": {"kl_reference": {"beta": 0.1, "reference": "sft"}, "early_stopping": {"episodes": 4}},
    },
}


def raising_on_call(n: int, function, error: type[BaseException]):
    """``function``, except that its ``n``-th call raises ``error`` instead."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise error
        return function(*args, **kwargs)

    return wrapper


class Killed(BaseException):
    """A kill: unlike Ctrl-C (``KeyboardInterrupt``), training gets no chance to save anything."""


def crash_in_iteration(iteration: int, config: PPOConfig, run_dir, monkeypatch) -> None:
    """Start ``config`` in ``run_dir`` and kill it during ``iteration`` (counting from 1)."""
    real_iteration = training._iteration

    def iteration_then_crash(stack, *args):
        if stack.runs[0].iteration == iteration - 1:
            raise Killed
        return real_iteration(stack, *args)

    monkeypatch.setattr(training, "_iteration", iteration_then_crash)
    with pytest.raises(Killed):
        train(config, run_dir=run_dir, progress=False)
    monkeypatch.setattr(training, "_iteration", real_iteration)


@pytest.mark.parametrize("settings", RESUMED_SETTINGS.values(), ids=RESUMED_SETTINGS.keys())
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, settings):
    """A run killed during iteration 6 (last checkpoint: iteration 4) resumes to the same weights,
    evaluations and log as a run never interrupted, with each mitigation on; a cloned reference
    comes back from the checkpoint, not rebuilt."""
    whole = train(tiny_config(**settings), run_dir=tmp_path / "whole", progress=False)
    crash_in_iteration(6, tiny_config(**settings), tmp_path / "split", monkeypatch)
    monkeypatch.setattr(context, "build_clone", None)  # calling it would fail
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["iteration"] == 4
    resumed = train(tiny_config(**settings), run_dir=tmp_path / "split", progress=False)
    assert resumed.iteration == 6 and resumed.global_step == whole.global_step
    assert (resumed.stopped_step, resumed.kept_step) == (whole.stopped_step, whole.kept_step)
    assert resumed.reference_agreement == whole.reference_agreement
    for name, tensor in whole.agent.state_dict().items():
        torch.testing.assert_close(resumed.agent.state_dict()[name], tensor, msg=name)
    assert [c.to_record() for c in resumed.checkpoints] == [c.to_record() for c in whole.checkpoints]
    with open(tmp_path / "split" / "progress.csv", newline="") as file:
        assert [int(row["iteration"]) for row in csv.DictReader(file)] == [0, 1, 2, 3, 4, 5, 6]


def test_a_checkpoint_from_before_kl_was_measured_resumes_from_the_seeded_initial_agent(
    tmp_path, monkeypatch
):
    """Older checkpoints hold no initial agent; the seed rebuilds the very same one, so the
    resumed run measures the same KL as a run never interrupted."""
    whole = train(tiny_config(), progress=False)
    crash_in_iteration(6, tiny_config(), tmp_path, monkeypatch)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    old_keys = ("format", "initial_agent", "clones", "mitigations", "stopped_step", "kept_step")
    old = {key: value for key, value in state.items() if key not in old_keys}
    old["evaluations"] = [{k: v for k, v in e.items() if k != "kl"} for e in old["evaluations"]]
    torch.save(old, tmp_path / "checkpoint.pt")
    resumed = train(tiny_config(), run_dir=tmp_path, progress=False)
    assert [c.kl for c in resumed.checkpoints[:2]] == [None, None]  # saved without it
    assert resumed.checkpoints[-1].kl == whole.checkpoints[-1].kl > 0


def test_how_often_a_run_is_evaluated_does_not_change_its_training():
    often = train(tiny_config(eval_every=1), progress=False)
    rarely = train(tiny_config(eval_every=0), progress=False)
    assert len(often.checkpoints) == 7 and len(rarely.checkpoints) == 2  # step 0, then 6 or only the end
    for name, tensor in often.agent.state_dict().items():
        torch.testing.assert_close(rarely.agent.state_dict()[name], tensor, msg=name)
    np.testing.assert_array_equal(often.checkpoints[-1].proxy, rarely.checkpoints[-1].proxy)


def test_resume_refuses_a_different_experiment_and_can_be_turned_off(tmp_path):
    """Refused before anything is written: config.json still records the run that is there."""
    train(tiny_config(total_timesteps=800), run_dir=tmp_path, progress=False)
    config_json = (tmp_path / "config.json").read_bytes()
    with pytest.raises(RunDirectoryError, match="differs in learning_rate"):
        train(tiny_config(learning_rate=1e-4), run_dir=tmp_path, progress=False)
    with pytest.raises(RunExistsError, match="resume=True"):
        train(tiny_config(), run_dir=tmp_path, progress=False, resume=False)
    assert (tmp_path / "config.json").read_bytes() == config_json


def test_resume_refuses_a_run_already_trained_past_the_steps_asked_for(tmp_path):
    """Asking for fewer steps than the run has trained cannot give an agent (or a report) of that
    many steps: refused, and the config.json of the longer run is kept."""
    train(tiny_config(total_timesteps=1600), run_dir=tmp_path, progress=False)
    config_json = (tmp_path / "config.json").read_bytes()
    with pytest.raises(RunDirectoryError, match="already trained 1,600 steps, more than the 800 asked for"):
        train(tiny_config(total_timesteps=800), run_dir=tmp_path, progress=False)
    assert (tmp_path / "config.json").read_bytes() == config_json
    assert train(tiny_config(total_timesteps=1600), run_dir=tmp_path, progress=False).global_step == 1600


def test_ctrl_c_saves_the_last_completed_iteration_and_a_rerun_finishes_identically(tmp_path, monkeypatch):
    """Ctrl-C lands in iteration 5, after its rollout (env, observation statistics and RNG have
    moved on) and before its update. No checkpoint was due (checkpoint_every=10), yet the one
    written on the way out is of iteration 4, whole, and resuming from it ends exactly where a
    run never interrupted ends."""
    config = tiny_config(checkpoint_every=10)
    whole = train(config, run_dir=tmp_path / "whole", progress=False)
    real_update = training.ppo_update
    monkeypatch.setattr(training, "ppo_update", raising_on_call(5, real_update, KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir=tmp_path / "split", progress=False)
    monkeypatch.setattr(training, "ppo_update", real_update)
    saved = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert (saved["iteration"], saved["global_step"]) == (4, 4 * 800)
    assert not (tmp_path / "split" / ".gaming_gym.lock").exists()  # the lock was let go
    resumed = train(config, run_dir=tmp_path / "split", progress=False)
    for name, tensor in whole.agent.state_dict().items():
        torch.testing.assert_close(resumed.agent.state_dict()[name], tensor, msg=name)
    assert [c.to_record() for c in resumed.checkpoints] == [c.to_record() for c in whole.checkpoints]
    with open(tmp_path / "split" / "progress.csv", newline="") as file:
        assert [int(row["iteration"]) for row in csv.DictReader(file)] == [0, 1, 2, 3, 4, 5, 6]


def test_a_network_too_large_is_refused_before_it_is_built(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the network was built")

    monkeypatch.setattr(checkpoints, "ActorCritic", never)
    with pytest.raises(
        ConfigError, match="537,034,756 parameters on PPOTest/Corridor-v0; at most 50,000,000"
    ):
        train(tiny_config(hidden_sizes=(16_384, 16_384)), progress=False)


@pytest.mark.parametrize("env_id", ["GamingGym/BoatRace-v1", "GamingGym/BoatRaceContinuous-v1"])
def test_discrete_and_continuous_actions_both_train(env_id):
    config = default_config(
        env_id, num_envs=4, num_steps=16, total_timesteps=64, eval_every=0, eval_episodes=2
    )
    env = gym.make_vec(env_id, num_envs=1)
    result = train(config, progress=False)
    assert result.iteration == 1
    action = result.policy(deterministic=True)(env.reset(seed=0)[0])
    assert env.single_action_space.contains(action[0].numpy())
    assert [c.step for c in result.checkpoints] == [0, 64] and len(result.checkpoints[1].proxy) == 2
    # categorical and Gaussian heads alike: no KL from the initial policy before the first update
    assert result.checkpoints[0].kl == 0.0 and result.checkpoints[1].kl > 0.0


def test_training_on_the_true_reward_learns_from_info_true_reward():
    """Corridor's true reward pays only at the door: a true-reward agent walks there."""
    config = tiny_config(reward="true", total_timesteps=16 * 50 * 8, eval_every=0)
    result = train(config, progress=False)
    assert result.checkpoints[-1].true.mean() >= 0.75


# --- KL from the initial policy and the KL penalty -------------------------------------------------


def test_kl_from_the_initial_policy_is_zero_at_step_0_and_positive_later(tmp_path):
    """Every evaluation measures KL(current || initial) on its own states: exactly 0 before the
    first update, positive once training moved the policy. The checkpoint's initial agent is the
    network the seed builds, and re-measuring with it reproduces the logged KL."""
    result = train(tiny_config(), run_dir=tmp_path, progress=False)
    kls = [c.kl for c in result.checkpoints]
    assert kls[0] == 0.0 and all(kl > 0.01 for kl in kls[1:])
    with open(tmp_path / "progress.csv", newline="") as file:
        evaluated = [row for row in csv.DictReader(file) if row["eval/d"]]
    assert [int(row["global_step"]) for row in evaluated] == [0, 2400, 4800]
    for row, kl in zip(evaluated, kls, strict=True):
        assert float(row["eval/kl_from_initial"]) == pytest.approx(kl)
        assert float(row["eval/d"]) == pytest.approx(kl**0.5)

    env = gym.make_vec(CORRIDOR_ID, num_envs=1)
    torch.manual_seed(result.config.seed)
    seeded = ActorCritic(env.single_observation_space, env.single_action_space)
    initial_state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["initial_agent"]
    for name, tensor in seeded.state_dict().items():
        torch.testing.assert_close(initial_state[name], tensor, msg=name)
    seeded.requires_grad_(False)
    assert remeasured_kl(result.agent, seeded, result.config) == pytest.approx(kls[-1], rel=1e-5)


def remeasured_kl(agent: ActorCritic, initial: ActorCritic, config: PPOConfig) -> float:
    """The evaluation's KL(agent || initial), measured independently of the trainer: the agent
    plays the evaluation's episodes with the evaluation's generator, KL taken at every state
    until its last episode ends. (A tolerance, not equality: the trainer reduces the same
    per-state values in another order, which can round the mean's last bits differently.)"""
    seed = config.seed + EVAL_SEED_OFFSET
    policy = agent.policy(config.eval_deterministic, seeded_generator(seed, torch.device("cpu")))
    kls = []

    def measuring(obs):
        kls.append(kl_from(initial, agent.action_distribution(obs), obs))
        return policy(obs)

    evaluate(measuring, config.env_id, config.eval_episodes, seed)
    return float(torch.cat(kls).mean())


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("reward", "score", "reward must be one of"),
        ("num_envs", 0, "num_envs must be a positive int"),
        ("gamma", 1.5, r"gamma must be a number in \(0, 1\]"),
        ("learning_rate", -1.0, "learning_rate must be a finite number > 0"),
        ("learning_rate", float("inf"), "learning_rate must be a finite number > 0"),  # --set ...=1e999
        ("max_grad_norm", float("nan"), "max_grad_norm must be a finite number >= 0"),
        ("num_minibatches", 7, "must divide the rollout size"),
        ("total_timesteps", 100, "less than one rollout"),
        ("hidden_sizes", (), "hidden_sizes must be a non-empty tuple"),
        ("hidden_sizes", (10_000_000,), "hidden_sizes must be a non-empty tuple of ints from 1 to 16,384"),
        ("target_kl", 0.0, "target_kl must be None or a finite number > 0"),
        ("start", "teacher", "start must be one of"),
        ("knobs", [1], "knobs must be a dict"),
        (
            "mitigations",
            {"kl_initial": {"beta": -0.1}},
            r"mitigation kl_initial: beta must be a number in \[0",
        ),
        ("mitigations", {"kl_initial": {"beta": float("inf")}}, "mitigation kl_initial: beta must be"),
        (
            "mitigations",
            {"kl_reference": {"reference": "teacher"}},
            "reference must be one of 'intended', 'sft'",
        ),
        ("mitigations", {"early_stopping": {"episodes": 0}}, "episodes must be an int in"),
        ("mitigations", {"early_stopping": {"stop": 1}}, "stop must be True or False"),
        ("mitigations", {"kl_initial": {"coef": 1}}, "has no setting 'coef'; its settings are: beta"),
        (
            "mitigations",
            {"softmax": {}},
            "unknown mitigation 'softmax'; registered: .*early_stopping, kl_initial, kl_reference",
        ),
        ("mitigations", "kl_initial", "mitigations must map names to their settings"),
    ],
)
def test_bad_config_values_are_named_with_what_is_accepted(field, value, message):
    with pytest.raises(ConfigError, match=message):
        PPOConfig(**{field: value})


def test_default_config_takes_the_env_table_then_the_true_reward_table_then_overrides():
    boat = default_config("GamingGym/BoatRace-v1")
    assert boat.total_timesteps == 480 * 8192 and boat.num_envs == 256 and boat.reward_scale == 1.0
    assert default_config("GamingGym/BoatRace-v1", reward="true").reward_scale == 100.0
    assert default_config("GamingGym/BoatRace-v1", reward="true", reward_scale=2.0).reward_scale == 2.0
    assert default_config(CORRIDOR_ID) == PPOConfig(env_id=CORRIDOR_ID)  # no entry: the dataclass defaults


def test_an_unknown_env_or_a_bad_knob_is_refused_when_the_config_is_made():
    """Knobs are checked once, with the config (no env is made for it), naming the knob."""
    with pytest.raises(ConfigError, match="unknown env 'GamingGym/NoSuchEnv-v0'; registered gameable envs:"):
        PPOConfig(env_id="GamingGym/NoSuchEnv-v0", total_timesteps=8192)
    with pytest.raises(ConfigTypeError, match="BoatRace has no knob 'laps_per_race'; its knobs are"):
        PPOConfig(knobs={"laps_per_race": 2}, total_timesteps=8192)
    with pytest.raises(ConfigError, match="BoatRace: laps must be"):
        PPOConfig(knobs={"laps": 0}, total_timesteps=8192)


def test_a_config_of_an_older_version_reads_its_mitigation_fields_as_plug_ins():
    old = {
        "env_id": CORRIDOR_ID,
        "kl_coef": 0.5,
        "kl_reference": "sft",
        "holdout_episodes": 4,
        "early_stop": False,
    }
    config = PPOConfig.from_dict(old)
    assert config.start == "sft"
    assert config.mitigations == {
        "kl_reference": {"beta": 0.5, "reference": "sft"},
        "early_stopping": {"episodes": 4, "patience": 2, "min_drop": 0.1, "stop": False},
    }
    assert PPOConfig.from_dict({"env_id": CORRIDOR_ID, "kl_coef": 0.1}).mitigations == {
        "kl_initial": {"beta": 0.1}
    }
    assert (
        PPOConfig.from_dict({"env_id": CORRIDOR_ID, "kl_coef": 0.0, "kl_reference": "intended"}).mitigations
        == {}
    )


def test_steps_round_down_to_whole_rollouts():
    """One rule for both agents: training never runs past the steps asked for."""
    config = tiny_config(total_timesteps=16 * 50 * 2 + 16 * 50 // 2, eval_every=1)
    assert config.num_iterations == 2
    result = train(config, progress=False)
    assert result.checkpoints[-1].step == 16 * 50 * 2
