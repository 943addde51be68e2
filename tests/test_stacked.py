"""Stacked PPO: many agents trained as one batched computation, each as its own run would train.

A run alone is a stack of one, which calls its network directly; a stack of several maps one
network's forward pass over the agents' parameters (``torch.func.vmap``), whose batched matrix
products round differently. So an agent of a stack matches its run alone to float rounding."""

from __future__ import annotations

import pytest
import torch

from gaming_gym.agents.ppo import PPOConfig, load_agent, train, train_stacked
from gaming_gym.errors import ConfigError

TINY = {
    "num_envs": 16,
    "num_steps": 32,
    "num_minibatches": 2,
    "update_epochs": 2,
    "total_timesteps": 2 * 16 * 32,
    "eval_every": 1,
    "eval_episodes": 4,
    "hidden_sizes": (16, 16),
}


def _configs(env_id: str, **extra) -> list[PPOConfig]:
    """Three runs that differ in every kind of per-agent setting."""
    per_agent = [
        {"seed": 0},
        {"seed": 1, "learning_rate": 1e-3, "ent_coef": 0.0, "gamma": 0.9},
        {"seed": 0, "clip_coef": 0.1, "max_grad_norm": 0.2, "reward_scale": 0.5, "target_kl": 0.002},
    ]
    kl = [0.0, 0.2, 0.5]  # a mitigation's per-agent coefficient
    return [
        PPOConfig(env_id=env_id, **TINY, **settings, **extra, mitigations={"kl_initial": {"beta": beta}})
        for settings, beta in zip(per_agent, kl, strict=True)
    ]


def _max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return max(float((x.float() - y.float()).abs().max()) for x, y in pairs)


@pytest.mark.parametrize("env_id", ["GamingGym/AbsentSupervisor-v0", "GamingGym/TallFall-v0"])
def test_each_stacked_agent_trains_as_its_own_run(env_id):
    """Discrete and Gaussian heads alike: after two iterations every stacked agent's weights and
    observation statistics lie within 1e-5 of its run alone (a stack of one: the vmapped stack's
    matrix products round differently, by about 1e-7 a step, and two iterations of 2 epochs do
    not grow that past 1e-5), and its evaluations are its run alone's (the same episodes and
    draws; returns equal to 1e-3, the rounding continuous actions carry into them)."""
    configs = _configs(env_id)
    stacked = train_stacked(configs, progress=False)
    for config, result in zip(configs, stacked, strict=True):
        solo = train(config, progress=False)
        assert result.global_step == solo.global_step == config.total_timesteps
        assert _max_difference(result.agent, solo.agent) < 1e-5
        assert result.checkpoints[0].kl == solo.checkpoints[0].kl == 0.0
        for ours, theirs in zip(result.checkpoints, solo.checkpoints, strict=True):
            assert ours.step == theirs.step
            assert ours.proxy == pytest.approx(theirs.proxy, abs=1e-3)
            assert ours.true == pytest.approx(theirs.true, abs=1e-3)
            assert ours.kl == pytest.approx(theirs.kl, rel=1e-3, abs=1e-7)
    # the settings mattered: the agents went different ways
    assert _max_difference(stacked[0].agent, stacked[2].agent) > 1e-3


def test_a_stacked_run_resumes_exactly_and_each_agent_can_go_on_alone(tmp_path):
    """Run directories get solo checkpoints: a stack stopped after 2 iterations and resumed to 4
    ends bit for bit where a straight run of 4 does, and one of its agents trains on alone."""
    longer = {**TINY, "total_timesteps": 4 * 16 * 32, "checkpoint_every": 1, "anneal_lr": False}
    configs = [PPOConfig(env_id="GamingGym/AbsentSupervisor-v0", seed=seed, **longer) for seed in (0, 1)]
    straight = train_stacked(configs, [tmp_path / "a0", tmp_path / "a1"], progress=False)

    halfway = [PPOConfig(**{**config.to_dict(), "total_timesteps": 2 * 16 * 32}) for config in configs]
    train_stacked(halfway, [tmp_path / "b0", tmp_path / "b1"], progress=False)
    resumed = train_stacked(configs, [tmp_path / "b0", tmp_path / "b1"], progress=False)
    for ours, theirs in zip(resumed, straight, strict=True):
        assert _max_difference(ours.agent, theirs.agent) == 0.0
        assert [e.true.tolist() for e in ours.checkpoints] == [e.true.tolist() for e in theirs.checkpoints]
    rows = (tmp_path / "b1" / "progress.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2", "3", "4"]

    # finished runs are read back; the unfinished one trains in a stack of its own
    third = PPOConfig(**{**configs[0].to_dict(), "seed": 2})
    together = train_stacked(
        configs + [third], [tmp_path / "b0", tmp_path / "b1", tmp_path / "c2"], progress=False
    )
    assert _max_difference(together[0].agent, resumed[0].agent) == 0.0
    assert [r.iteration for r in together] == [4, 4, 4] and len(together[2].checkpoints) == 5

    on_alone = PPOConfig(**{**configs[1].to_dict(), "total_timesteps": 6 * 16 * 32})
    result = train(on_alone, tmp_path / "b1", progress=False)
    assert result.iteration == 6 and [e.step for e in result.checkpoints][-3:] == [2048, 2560, 3072]
    agent, _ = load_agent(tmp_path / "b1", device=next(result.agent.parameters()).device)
    assert _max_difference(agent, result.agent) == 0.0


def test_stacking_refuses_what_changes_shapes_with_a_sentence():
    base = PPOConfig(env_id="GamingGym/AbsentSupervisor-v0", **TINY)
    wider = PPOConfig(**{**base.to_dict(), "seed": 1, "hidden_sizes": (32, 32)})
    with pytest.raises(ConfigError, match="differ in hidden_sizes"):
        train_stacked([base, wider], progress=False)
    with pytest.raises(ConfigError, match="one run twice"):
        train_stacked([base, PPOConfig(**base.to_dict())], progress=False)
    stopping = PPOConfig(**{**base.to_dict(), "seed": 2, "mitigations": {"early_stopping": {"episodes": 2}}})
    with pytest.raises(ConfigError, match="differ in mitigations"):
        train_stacked([base, stopping], progress=False)
    with pytest.raises(ConfigError, match="2 configs but 1 run directories"):
        train_stacked([base, PPOConfig(**{**base.to_dict(), "seed": 3})], ["x"], progress=False)
