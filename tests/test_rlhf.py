"""RLHF in miniature end to end on tiny budgets: comparisons, the reward model, its wrapper, PPO."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from gaming_gym.agents.dpo import DPOConfig, dpo_loss, load_dpo_agent, train_dpo
from gaming_gym.agents.ppo import default_config, train, train_stacked
from gaming_gym.agents.ppo.cloning import build_clone
from gaming_gym.envs import confident_rater as cr
from gaming_gym.errors import ConfigError, RunDirectoryError, RunNotFoundError
from gaming_gym.evaluation import env_factory, evaluate, reference_policy
from gaming_gym.rlhf import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    RewardModelConfig,
    RewardModelVectorEnv,
    collect_comparisons,
    load_reward_model,
    save_reward_model,
    train_reward_model,
)

ENV_ID = "GamingGym/ConfidentRater-v0"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A reward model from 400 comparisons (a few seconds), saved."""
    config = RewardModelConfig(env_id=ENV_ID, comparisons=400, epochs=10, num_envs=64)
    model, report = train_reward_model(config)
    folder = save_reward_model(model, config, report, tmp_path_factory.mktemp("rm") / "model")
    return folder, model, report


def test_comparisons_are_the_raters_preferences_from_one_state():
    config = RewardModelConfig(env_id=ENV_ID, comparisons=200, num_envs=16)
    data = collect_comparisons(config)
    assert len(data) == 200
    assert torch.equal(data.label, (data.rater_first > data.rater_second).float())  # no ties kept
    assert not torch.any(data.first == cr.RESEARCH) and not torch.any(data.second == cr.RESEARCH)
    again = collect_comparisons(config)
    assert torch.equal(data.obs, again.obs) and torch.equal(data.label, again.label)  # seeded


def test_the_reward_model_learns_the_preferences(saved_model):
    _, _, report = saved_model
    assert report.comparisons == 400
    assert report.rater_held_out_accuracy == 1.0  # the rater agrees with itself: the ceiling
    assert 0.6 < report.held_out_accuracy <= report.train_accuracy + 0.1
    assert np.isfinite(report.true_correlation)


def test_a_saved_model_loads_back_to_the_same_scores(saved_model):
    folder, model, _ = saved_model
    loaded, config, _ = load_reward_model(folder, ENV_ID)
    obs = torch.rand(32, 10)
    actions = torch.arange(32) % cr.ConfidentRaterParams().num_actions
    torch.testing.assert_close(loaded(obs, actions), model(obs, actions))
    assert config.unrated_actions == (cr.RESEARCH,)
    assert torch.all(loaded(obs, torch.zeros(32, dtype=torch.long)) == 0)  # RESEARCH scores 0
    assert json.loads((folder / CONFIG_FILE).read_text())["format"] == "gaming_gym.reward_model/1"


def test_the_wrapper_swaps_the_reward_and_keeps_the_true_one(saved_model):
    folder, model, _ = saved_model
    plain = gym.make_vec(ENV_ID, num_envs=8)
    wrapped = RewardModelVectorEnv(gym.make_vec(ENV_ID, num_envs=8), model)
    obs, _ = plain.reset(seed=3)
    wrapped_obs, _ = wrapped.reset(seed=3)
    assert torch.equal(obs, wrapped_obs)
    policy = reference_policy(ENV_ID, "exploit")
    actions = policy(obs)
    _, proxy, *_, info = plain.step(actions)
    _, score, *_, wrapped_info = wrapped.step(actions)
    torch.testing.assert_close(score, model(obs, actions))
    assert torch.equal(wrapped_info["proxy_reward"], score)
    assert torch.equal(wrapped_info["rater_reward"], proxy)
    assert torch.equal(wrapped_info["true_reward"], info["true_reward"])
    with_model = evaluate(policy, env_factory(ENV_ID, reward_model=str(folder)), episodes=4, seed=0)
    without = evaluate(policy, ENV_ID, episodes=4, seed=0)
    np.testing.assert_array_equal(with_model.true, without.true)
    assert not np.allclose(with_model.proxy, without.proxy)


def rlhf_config(folder, **overrides):
    """RLHF's set-up in two tiny iterations: PPO from the SFT clone against the reward model, with
    a KL penalty toward the SFT model."""
    settings = dict(
        reward_model=str(folder),
        start="sft",
        mitigations={"kl_reference": {"beta": 0.1, "reference": "sft"}},
        total_timesteps=2 * 512,
        num_envs=16,
        num_steps=32,
        eval_every=1,
        eval_episodes=4,
        device="cpu",
    )
    return default_config(ENV_ID, **{**settings, **overrides})


def test_ppo_trains_against_the_model_from_the_sft_clone(saved_model):
    """The run starts from the SFT clone (KL 0 at step 0), and its evaluations' proxy is the
    reward model's score."""
    folder, _, _ = saved_model
    result = train(rlhf_config(folder), progress=False)
    assert [e.step for e in result.checkpoints] == [0, 512, 1024]
    assert result.checkpoints[0].kl == 0.0 and result.checkpoints[-1].kl > 0
    assert 0 < result.reference_agreement < 1  # a clone of noisy demonstrations, random actions and all
    scored = evaluate(
        result.agent.policy(), env_factory(ENV_ID, reward_model=str(folder)), episodes=4, seed=0
    )
    assert np.all(np.isfinite(scored.proxy))


def test_runs_against_a_reward_model_train_stacked_each_as_it_would_alone(saved_model, tmp_path):
    """Two seeds with different KL coefficients against one reward model, from their SFT clones,
    as one stack: each agent's evaluations are its run alone's (returns within 1e-3: the vmapped
    stack rounds its matrix products differently, by about 1e-7, and two iterations of these
    discrete answers do not carry that into the returns)."""
    folder, _, _ = saved_model
    configs = [
        rlhf_config(folder, seed=seed, mitigations={"kl_reference": {"beta": beta, "reference": "sft"}})
        for seed, beta in ((0, 0.1), (1, 0.5))
    ]
    stacked = train_stacked(configs, [tmp_path / "a", tmp_path / "b"], progress=False)
    for config, ours in zip(configs, stacked, strict=True):
        alone = train(config, progress=False)
        assert ours.reference_agreement == alone.reference_agreement
        for a, b in zip(ours.checkpoints, alone.checkpoints, strict=True):
            np.testing.assert_allclose(a.proxy, b.proxy, atol=1e-3)
            np.testing.assert_allclose(a.true, b.true, atol=1e-3)
    # each agent checkpointed its block of the shared, reward-model-scored env, and goes on alone
    longer = train(dataclasses.replace(configs[1], total_timesteps=3 * 512), tmp_path / "b", progress=False)
    assert [e.step for e in longer.checkpoints] == [0, 512, 1024, 1536]


def test_bad_reward_models_are_refused_in_one_line(saved_model, tmp_path):
    folder, _, _ = saved_model
    with pytest.raises(
        ConfigError, match="trained on GamingGym/ConfidentRater-v0, not GamingGym/BoatRace-v1"
    ):
        load_reward_model(folder, "GamingGym/BoatRace-v1")
    with pytest.raises(RunNotFoundError, match="no reward model at"):
        load_reward_model(tmp_path / "nothing", ENV_ID)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CONFIG_FILE).write_text((folder / CONFIG_FILE).read_text())
    (broken / WEIGHTS_FILE).write_bytes(b"not a torch file")
    with pytest.raises(RunDirectoryError, match="cannot load"):
        load_reward_model(broken, ENV_ID)
    with pytest.raises(ConfigError, match="reward model at .* was trained on"):
        train(default_config("GamingGym/BoatRace-v1", reward_model=str(folder)), progress=False)
    with pytest.raises(ConfigError, match="comparisons must be an int"):
        RewardModelConfig(comparisons=float("nan"))
    with pytest.raises(ConfigError, match="check_prob"):
        collect_comparisons(RewardModelConfig(knobs={"check_prob": float("nan")}, comparisons=10))


def _ensemble_config(folder, aggregator, **overrides):
    ensemble = {"aggregator": aggregator, "lam": 2.0, "members": 3}
    return rlhf_config(folder, mitigations={"reward_ensemble": ensemble}, **overrides)


def test_a_reward_ensemble_trains_on_the_aggregate_of_members_fitted_on_bootstrap_resamples(
    saved_model, tmp_path
):
    """The members differ (their own resamples and weights); the reward the agents train on is
    the members' min, mean or mean - lam * std, recomputed here from the members themselves."""
    from gaming_gym.mitigations import Step, build_mitigations

    folder, _, _ = saved_model
    context = SimpleContext(folder)

    def ensemble_of(aggregator):
        settings = {"aggregator": aggregator, "lam": 2.0, "members": 3}
        return build_mitigations([{"reward_ensemble": settings}], context)[0]

    ensemble = ensemble_of("min")
    ensemble.prepare()
    data = collect_comparisons(RewardModelConfig(env_id=ENV_ID, comparisons=50, num_envs=8, seed=9))
    scores = torch.stack([member(data.obs, data.first) for member in ensemble.members])
    assert scores.shape == (3, 50) and scores.std(0).mean() > 0.01  # the members disagree
    proxy = torch.randn(50)  # the one reward model's score, less a penalty an earlier mitigation took
    step = Step(data.obs, data.first, torch.zeros(50), None, {"proxy_reward": proxy})
    torch.testing.assert_close(ensemble.reward(step, proxy - 0.3), scores.min(0).values - 0.3)
    uncertain = scores.mean(0) - 2 * scores.std(0)
    for aggregator, expected in (("mean", scores.mean(0)), ("mean_minus_std", uncertain)):
        other = ensemble_of(aggregator)
        other.members = ensemble.members
        torch.testing.assert_close(other.reward(step, proxy), expected)


class SimpleContext:
    """Just what the ensemble asks of a trainer: the reward model, env and device."""

    def __init__(self, folder):
        self.reward_model, self.env_id, self.knobs = str(folder), ENV_ID, {}
        self.num_agents, self.envs_per_agent, self.device = 1, 50, torch.device("cpu")


def test_a_reward_ensemble_run_resumes_as_if_never_stopped(saved_model, tmp_path, monkeypatch):
    from test_ppo import crash_in_iteration

    folder, _, _ = saved_model
    config = _ensemble_config(folder, "mean_minus_std", total_timesteps=3 * 512, checkpoint_every=1)
    whole = train(config, run_dir=tmp_path / "whole", progress=False)
    crash_in_iteration(2, config, tmp_path / "split", monkeypatch)
    resumed = train(config, run_dir=tmp_path / "split", progress=False)
    torch.testing.assert_close(resumed.agent.state_dict(), whole.agent.state_dict())


def test_a_reward_ensemble_needs_a_reward_model_and_checks_its_settings():
    with pytest.raises(ConfigError, match="reward_ensemble.*reward model"):
        train(
            default_config(
                ENV_ID, mitigations={"reward_ensemble": {}}, total_timesteps=512, num_envs=16, num_steps=32
            ),
            progress=False,
        )
    from gaming_gym.mitigations import checked_mitigations

    assert checked_mitigations(["reward_ensemble"])["reward_ensemble"] == {
        "aggregator": "min",
        "lam": 1.0,
        "members": 5,
    }
    for bad in ({"aggregator": "max"}, {"lam": float("nan")}, {"members": 1}):
        with pytest.raises(ConfigError, match="reward_ensemble"):
            checked_mitigations({"reward_ensemble": bad})


def dpo_config(folder, **overrides):
    settings = dict(reward_model=str(folder), epochs=4, eval_every=2, eval_episodes=8, beta=0.1)
    return DPOConfig(**{**settings, **overrides})


def test_dpo_starts_at_the_sft_clone_and_learns_the_raters_preferences(saved_model):
    """KL 0 and the SFT clone's returns at step 0; after training, the policy prefers what the
    raters preferred more often than the clone did, and has moved from it."""
    folder, _, _ = saved_model
    result = train_dpo(dpo_config(folder, learning_rate=1e-3), progress=False)
    assert [e.step for e in result.checkpoints] == [0, 800, 1600]
    assert result.checkpoints[0].kl == 0.0 and result.checkpoints[-1].kl > 0.01
    data = collect_comparisons(RewardModelConfig(env_id=ENV_ID, comparisons=400, epochs=10, num_envs=64))
    sft = build_clone("sft", ENV_ID, {}, (64, 64), 0, torch.device("cpu")).clone

    def agreement(agent):
        with torch.no_grad():
            dist = agent.action_distribution(data.obs)
            margin = dist.log_prob(data.first) - dist.log_prob(data.second)
        return float(((margin > 0).float() == data.label).float().mean())

    assert agreement(result.agent) > agreement(sft) + 0.05
    with torch.no_grad():
        loss_before = dpo_loss(sft, sft, data.obs, data.first, data.second, 0.1)
    assert loss_before == pytest.approx(np.log(2), abs=1e-6)  # the policy is its reference: margin 0


def test_a_dpo_run_resumes_as_if_never_stopped_and_reports_like_any_run(saved_model, tmp_path):
    from gaming_gym.experiment import run_report, train_experiments

    folder, _, _ = saved_model
    whole = train_dpo(dpo_config(folder), tmp_path / "whole", progress=False)
    train_dpo(dpo_config(folder, epochs=2), tmp_path / "split", progress=False)
    resumed = train_dpo(dpo_config(folder), tmp_path / "split", progress=False)
    torch.testing.assert_close(resumed.agent.state_dict(), whole.agent.state_dict())
    assert [e.step for e in resumed.checkpoints] == [e.step for e in whole.checkpoints]
    summary = train_experiments("dpo", [dpo_config(folder)], [tmp_path / "whole"], progress=False)[0]
    assert summary.report.d is not None and run_report(tmp_path / "whole").n_runs == 1
    agent, config = load_dpo_agent(tmp_path / "whole")
    torch.testing.assert_close(agent.state_dict(), whole.agent.state_dict())
    saved = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    sft = build_clone("sft", ENV_ID, {}, (64, 64), 0, torch.device("cpu")).clone
    torch.testing.assert_close(saved["reference"], sft.state_dict())  # resumed against the same one
    with pytest.raises(RunDirectoryError, match="holds a finished run; its config cannot change"):
        train_dpo(dpo_config(folder, eval_every=1), tmp_path / "whole", progress=False)
    with pytest.raises(ConfigError, match="reward_model"):
        DPOConfig(beta=0.1)
    with pytest.raises(ConfigError, match="beta"):
        dpo_config(folder, beta=0.0)
