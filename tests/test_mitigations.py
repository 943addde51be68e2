"""Mitigations as plug-ins: the KL penalties and their references, early stopping on a held-out
check, composing them, stopping one agent of a stack, and a mitigation defined here, outside the
package, that registers, trains stacked and is recorded in the run's config."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_ppo import CORRIDOR_ID, crash_in_iteration, tiny_config

from gaming_gym.agents.ppo import (
    ActorCritic,
    Coefficients,
    PPOConfig,
    StackedAgents,
    collect_rollout,
    default_config,
    load_agent,
    train,
    train_stacked,
)
from gaming_gym.agents.ppo import context as stack_context
from gaming_gym.agents.ppo.cloning import MIN_STD, SmoothedPolicy, build_clone
from gaming_gym.agents.ppo.config import require_stackable
from gaming_gym.errors import ConfigError, RunDirectoryError
from gaming_gym.evaluation import reference_returns
from gaming_gym.metrics import early_stop
from gaming_gym.mitigations import (
    MITIGATIONS,
    Mitigation,
    Step,
    Verdict,
    build_mitigations,
    register_mitigation,
)
from gaming_gym.mitigations.early_stopping import HOLDOUT_SEED_OFFSET, EarlyStopping

CPU = torch.device("cpu")


@pytest.fixture
def one_torch_thread():
    """As training runs (``PPOConfig.cpu_threads``): a second thread only slows these small nets."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the KL penalties ---------------------------------------------------------------------------


def test_the_kl_penalty_takes_beta_times_the_log_ratio_off_each_reward():
    """Same seed, same actions: with the kl_initial hook, the rollout's rewards are the plain ones
    less beta * log(pi(a|s) / pi_0(a|s)), scaled by reward_scale afterwards; the hook's log gives
    the analytic per-state KL the penalty averages to, and the mean penalty."""
    env = gym.make_vec(CORRIDOR_ID, num_envs=8)
    spaces = (env.single_observation_space, env.single_action_space)
    torch.manual_seed(0)
    agent = StackedAgents([ActorCritic(*spaces, (8,), norm_obs=False)])
    reference = ActorCritic(*spaces, (8,), norm_obs=False)
    with torch.no_grad():
        reference.head.logits.weight.mul_(300.0)  # a reference far from the near-uniform agent
    config = tiny_config(num_envs=8, num_steps=30, reward_scale=2.0)
    context = SimpleNamespace(num_agents=1, envs_per_agent=8, device=CPU, initial_policy=lambda: reference)
    (penalty,) = build_mitigations([{"kl_initial": {"beta": 0.5}}], context)
    rollouts = {}
    for mitigations in ((), (penalty,)):
        generator = torch.Generator().manual_seed(1)
        coefficients = Coefficients.of([config], CPU)
        rollouts[mitigations], _ = collect_rollout(
            agent, env, env.reset(seed=0)[0], config, coefficients, [generator], mitigations
        )
    plain, penalised = rollouts[()], rollouts[(penalty,)]
    assert torch.equal(plain.actions, penalised.actions)
    with torch.no_grad():
        log_ratio = agent.distribution(plain.obs).log_prob(plain.actions) - reference.distribution(
            plain.obs
        ).log_prob(plain.actions)
        kl = torch.distributions.kl_divergence(
            agent.distribution(plain.obs), reference.distribution(plain.obs)
        )
    torch.testing.assert_close(penalised.rewards, plain.rewards - 2.0 * 0.5 * log_ratio)
    logs = penalty.after_iteration()
    torch.testing.assert_close(logs["kl"], kl.mean().view(1))
    torch.testing.assert_close(logs["penalty"], (0.5 * log_ratio).mean().view(1))
    assert float(kl.mean()) > 0.05  # the penalty really moved the rewards
    assert penalty.after_iteration()["kl"].item() == 0.0  # the log starts again each iteration


def test_a_strong_kl_penalty_toward_the_initial_policy_keeps_the_policy_near_it(tmp_path):
    """Same seed and budget: with beta = 10 the final KL from the initial policy stays a small
    fraction of the unpenalised run's, and the log shows the penalty."""
    free = train(tiny_config(), progress=False)
    held = train(tiny_config(mitigations={"kl_initial": {"beta": 10.0}}), run_dir=tmp_path, progress=False)
    assert free.checkpoints[-1].kl > 0.1
    assert held.checkpoints[-1].kl < 0.1 * free.checkpoints[-1].kl
    with open(tmp_path / "progress.csv", newline="") as file:
        rows = list(csv.DictReader(file))[1:]
    # the rollouts' KL to the reference (here the initial policy) stays as small
    assert all(0 <= float(row["mitigation/kl_initial/kl"]) < 0.05 for row in rows)
    assert all(np.isfinite(float(row["mitigation/kl_initial/penalty"])) for row in rows)


def test_the_cloned_intended_reference_agrees_with_the_scripted_policy_and_stays_stochastic(
    one_torch_thread,
):
    """The behaviour-cloned BoatRace racer picks the scripted intended policy's action on more
    than 90% of the teacher's states, on its own held-out envs and on fresh episodes; mixed with
    a uniform tenth, every action keeps probability >= 0.1 / 9."""
    reference = build_clone("intended", "GamingGym/BoatRace-v1", {}, (64, 64), 0, CPU)
    assert float(reference.agreement) > 0.9

    env = gym.make_vec("GamingGym/BoatRace-v1", num_envs=8)
    teacher = env.unwrapped.reference_policy("intended")
    obs, _ = env.reset(seed=123)
    matches, probs = [], []
    for _ in range(300):
        action = teacher(obs)
        with torch.no_grad():
            distribution = reference.action_distribution(obs)
        matches.append(distribution.probs.argmax(dim=1) == action)
        probs.append(distribution.probs)
        obs, *_ = env.step(action)
    assert float(torch.cat(matches).float().mean()) > 0.9
    probs = torch.cat(probs)
    assert float(probs.min()) >= 0.1 / 9 - 1e-6 and float(probs.max()) <= 0.9 + 0.1 / 9 + 1e-6


def test_the_cloned_reference_is_deterministic_from_the_seed_and_floors_a_gaussian_std(one_torch_thread):
    first, second = (build_clone("intended", CORRIDOR_ID, {}, (64, 64), 3, CPU) for _ in range(2))
    for name, tensor in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[name], tensor, msg=name)
    assert float(first.agreement) == 1.0  # the Corridor teacher always steps right

    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    clone = ActorCritic(gym.spaces.Box(-1.0, 1.0, (3,), np.float32), space)
    with torch.no_grad():
        clone.head.log_std.fill_(-5.0)  # what a deterministic teacher's likelihood fit heads for
    scale = SmoothedPolicy(clone).action_distribution(torch.zeros(4, 3)).base_dist.scale
    torch.testing.assert_close(scale, torch.full((4, 2), MIN_STD))


def test_an_sft_start_begins_at_the_clone_and_measures_kl_from_it():
    """``start="sft"``: the policy and the initial policy are the SFT clone, so the first
    evaluation's KL is 0 and the run's clone agreement is the clone's (below 1: its
    demonstrations were half random)."""
    result = train(tiny_config(start="sft", eval_every=3), progress=False)
    clone = build_clone("sft", CORRIDOR_ID, {}, (64, 64), 3, CPU)
    assert result.checkpoints[0].kl == 0.0 and result.checkpoints[-1].kl > 0
    assert result.reference_agreement == pytest.approx(float(clone.agreement))
    assert 0.4 < result.reference_agreement < 1.0


# --- early stopping on a held-out check ------------------------------------------------------------


def test_the_held_out_check_plays_other_seeds_and_leaves_training_alone(monkeypatch):
    calls = []
    real = stack_context.evaluate_blocks

    def recording(policy, make_env, episodes, seeds, *args, **kwargs):
        calls.append((episodes, tuple(seeds)))
        return real(policy, make_env, episodes, seeds, *args, **kwargs)

    monkeypatch.setattr(stack_context, "evaluate_blocks", recording)
    checked = train(
        tiny_config(mitigations={"early_stopping": {"episodes": 5, "stop": False}}), progress=False
    )
    plain = train(tiny_config(), progress=False)
    assert [len(c.holdout_true) for c in checked.checkpoints] == [5, 5, 5]
    assert calls[:2] == [(8, (3 + 1_000_003,)), (5, (3 + HOLDOUT_SEED_OFFSET,))]  # evaluation, then held out
    for name, tensor in plain.agent.state_dict().items():
        torch.testing.assert_close(checked.agent.state_dict()[name], tensor, msg=name)
    for with_check, without in zip(checked.checkpoints, plain.checkpoints, strict=True):
        np.testing.assert_array_equal(with_check.proxy, without.proxy)
        assert with_check.kl == without.kl and without.holdout_true is None


@pytest.mark.parametrize(
    "curve, min_drop, patience, expected",
    [
        ([0.2, 0.5, 0.9, 0.6, 0.5, 0.95], 0.1, 2, (4, 2)),  # two evaluations 0.3, 0.4 below the best
        ([1.0, 0.9, 0.9], 0.1, 2, (2, 0)),  # exactly min_drop below counts (within 1e-9)
        ([1.0, 0.9, 0.91], 0.1, 2, (None, 2)),  # one of the last two is not low enough
        ([0.0, 1.0, 0.5, 1.0, 0.5, 0.5], 0.1, 2, (5, 1)),  # a tie does not replace the best
        ([0.5, 0.3], 0.1, 1, (1, 0)),
        ([0.0, 0.5, 0.45, 0.6], 0.1, 2, (None, 3)),  # never fires: the last is kept
        ([0.7], 0.1, 1, (None, 0)),
    ],
)
def test_early_stopping_fires_at_the_goodhart_onset_of_the_held_out_curve(
    curve, min_drop, patience, expected
):
    stop = early_stop(curve, min_drop, patience)
    assert (stop.stop_index, stop.kept_index) == expected


def falling_holdout(monkeypatch, curves: dict[int, list[float]]) -> None:
    """Early stopping's held-out check measures, for the agent of seed ``s``, ``curves[s][k]``
    (normalised) at its ``k``-th evaluation, whatever the policy does."""
    references = reference_returns(CORRIDOR_ID, {})
    random_true, intended_true = references["random"].true.mean(), references["intended"].true.mean()

    def measure(self):
        values = []
        for agent, run in enumerate(self.context.runs):
            level = curves[run.config.seed][len(self.context.evaluations(agent))]
            values.append(
                np.full(self.settings[agent].episodes, random_true + level * (intended_true - random_true))
            )
        return {"holdout_true": values}

    monkeypatch.setattr(EarlyStopping, "measure", measure)


def test_early_stopping_ends_training_with_the_kept_agent_even_across_a_resume(tmp_path, monkeypatch):
    """A held-out curve (normalised) of 0, 0.8, 0.7, 0.5, ... per iteration peaks at iteration 1
    and has fallen 0.1 below it for two evaluations at iteration 3: training stops there and
    hands back the agent of iteration 1, which a one-iteration run reproduces. A run killed in
    iteration 3 gets that agent back from its checkpoint (written at iteration 2), and running
    the finished run again returns the same result; asking it for longer is refused."""
    falling_holdout(monkeypatch, {3: [0.0, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2]})
    config = tiny_config(eval_every=1, mitigations={"early_stopping": {"episodes": 4}})
    whole = train(config, run_dir=tmp_path / "whole", progress=False)
    assert (whole.stopped_step, whole.kept_step, whole.iteration) == (2400, 800, 3)
    assert [c.step for c in whole.checkpoints] == [0, 800, 1600, 2400]
    one_iteration = train(tiny_config(total_timesteps=800), progress=False)
    for name, tensor in one_iteration.agent.state_dict().items():
        torch.testing.assert_close(whole.agent.state_dict()[name], tensor, msg=name)
    saved = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    assert (saved["stopped_step"], saved["kept_step"], saved["iteration"]) == (2400, 800, 3)
    loaded, _ = load_agent(tmp_path / "whole")
    torch.testing.assert_close(loaded.state_dict(), whole.agent.state_dict())

    crash_in_iteration(3, config, tmp_path / "split", monkeypatch)
    resumed = train(config, run_dir=tmp_path / "split", progress=False)
    assert (resumed.stopped_step, resumed.kept_step, resumed.iteration) == (2400, 800, 3)
    torch.testing.assert_close(resumed.agent.state_dict(), whole.agent.state_dict())

    longer = PPOConfig(**{**config.to_dict(), "total_timesteps": 2 * config.total_timesteps})
    with pytest.raises(RunDirectoryError, match="holds a finished run; its config cannot change"):
        train(longer, run_dir=tmp_path / "whole", progress=False)  # an early stop ended it for good
    again = train(config, run_dir=tmp_path / "whole", progress=False)
    assert (again.stopped_step, again.kept_step, again.iteration) == (2400, 800, 3)
    torch.testing.assert_close(again.agent.state_dict(), whole.agent.state_dict())
    with open(tmp_path / "whole" / "progress.csv", newline="") as file:
        assert [int(row["iteration"]) for row in csv.DictReader(file)] == [0, 1, 2, 3]


def test_in_a_stack_an_early_stop_ends_that_agent_only(tmp_path, monkeypatch):
    """Three stacked agents with early stopping: seed 3's held-out curve falls after iteration 1
    and it stops at iteration 3 with its iteration-1 agent; seeds 4 and 5 never fall and train
    to the end, evaluation for evaluation as they do in a stack without seed 3 (its stop
    changed nothing of theirs: its statistics and weights froze, theirs went on)."""
    falling = [0.0, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2]
    rising = [0.1 * k for k in range(7)]
    falling_holdout(monkeypatch, {3: falling, 4: rising, 5: rising})
    early = {"mitigations": {"early_stopping": {"episodes": 4}}, "eval_every": 1}
    configs = [tiny_config(seed=seed, **early) for seed in (3, 4, 5)]
    dirs = [tmp_path / f"s{seed}" for seed in (3, 4, 5)]
    results = train_stacked(configs, dirs, progress=False)
    assert [(r.stopped_step, r.kept_step, r.iteration) for r in results] == [
        (2400, 800, 3),
        (None, None, 6),
        (None, None, 6),
    ]
    alone = train(configs[0], progress=False)  # the stopped agent, as a stack of one
    torch.testing.assert_close(results[0].agent.state_dict(), alone.agent.state_dict(), atol=1e-5, rtol=0)
    others = train_stacked(configs[1:], progress=False)
    for ours, theirs in zip(results[1:], others, strict=True):
        # a vmapped stack of 3 and one of 2 round their matrix products differently: 1e-3 covers
        # the evaluations' returns after 6 iterations on this env (measured differences: 0)
        for a, b in zip(ours.checkpoints, theirs.checkpoints, strict=True):
            np.testing.assert_allclose(a.true, b.true, atol=1e-3)
    rows = list(csv.DictReader(open(dirs[0] / "progress.csv", newline="")))
    assert [int(row["iteration"]) for row in rows] == [0, 1, 2, 3]


# --- a mitigation of one's own --------------------------------------------------------------------


@dataclass(frozen=True)
class ShapingSettings:
    bonus: float = 0.0
    """added to every step's reward (a stand-in for a real reward transform)"""
    stop_after: int = 0
    """stop at this many evaluations (0: never), keeping the agent of the first"""


@register_mitigation
class ConstantShaping(Mitigation):
    """A mitigation defined outside the package: a reward hook, a loss hook, a log column, a
    stopping rule and a state, each counted."""

    name = "constant_shaping"
    Settings = ShapingSettings
    per_agent = ("bonus", "stop_after")

    def __init__(self, settings, context):
        super().__init__(settings, context)
        self.bonus = self.per_agent_tensor("bonus", context.envs_per_agent)
        self.steps = 0
        self.first: dict[int, dict] = {}

    def reward(self, step: Step, reward: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        return reward + self.bonus

    def loss(self, minibatch, distribution):
        return torch.zeros(self.context.num_agents)

    def after_iteration(self):
        return {"steps": torch.full((self.context.num_agents,), float(self.steps))}

    def at_evaluation(self, agents):
        verdicts = {}
        for agent in agents:
            evaluations = self.context.evaluations(agent)
            if len(evaluations) == 1:
                self.first[agent] = self.context.agent_state(agent)
            if self.settings[agent].stop_after and len(evaluations) >= self.settings[agent].stop_after:
                verdicts[agent] = Verdict(self.first[agent], evaluations[0].step)
        return verdicts

    def state(self, agent):
        return {"steps": self.steps}


def test_a_mitigation_defined_outside_the_package_registers_trains_stacked_and_is_recorded(tmp_path):
    assert MITIGATIONS["constant_shaping"] is ConstantShaping
    configs = [
        tiny_config(seed=seed, mitigations={"constant_shaping": {"bonus": bonus, "stop_after": stop}})
        for seed, bonus, stop in ((3, 0.0, 0), (4, 5.0, 2))
    ]
    results = train_stacked(configs, [tmp_path / "a", tmp_path / "b"], progress=False)
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["mitigations"] == {"constant_shaping": {"bonus": 5.0, "stop_after": 2}}
    assert (results[0].stopped_step, results[0].iteration) == (None, 6)
    assert (results[1].stopped_step, results[1].kept_step) == (2400, 0)  # its second evaluation
    initial = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["initial_agent"]
    for name, tensor in results[1].agent.state_dict().items():  # it kept the agent of step 0
        torch.testing.assert_close(tensor, initial[name], msg=name)
    rows = list(csv.DictReader(open(tmp_path / "a" / "progress.csv", newline="")))
    assert (
        float(rows[-1]["mitigation/constant_shaping/steps"]) == 6 * 50
    )  # every rollout step went through it
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert state["mitigations"]["constant_shaping"] == {"steps": 300}
    with pytest.raises(ConfigError, match="mitigation constant_shaping has no setting 'scale'"):
        tiny_config(mitigations={"constant_shaping": {"scale": 1.0}})


def test_stacked_agents_may_differ_in_a_mitigations_per_agent_settings_only():
    kl = [tiny_config(seed=s, mitigations={"kl_reference": {"beta": b}}) for s, b in ((3, 0.1), (4, 0.5))]
    require_stackable(kl)  # beta is per agent
    other_reference = tiny_config(seed=5, mitigations={"kl_reference": {"beta": 0.1, "reference": "sft"}})
    with pytest.raises(ConfigError, match="differ in mitigations"):
        require_stackable([kl[0], other_reference])
    with pytest.raises(ConfigError, match="differ in mitigations"):
        require_stackable([kl[0], tiny_config(seed=6)])


def test_the_default_config_has_no_mitigation():
    assert default_config("GamingGym/BoatRace-v1").mitigations == {}


# --- occupancy-measure regularisation -----------------------------------------------------------


def _progress(run_dir) -> list[dict]:
    with open(run_dir / "progress.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_the_occupancy_penalty_trains_stacked_measures_its_kl_and_charges_lam(tmp_path, one_torch_thread):
    """Two stacked agents, lam 0 and 0.5: both discriminators learn to tell the near-random
    policies' state-action pairs from the intended clone's (the KL estimate grows positive), and
    only the agent with lam > 0 pays a penalty."""
    configs = [
        tiny_config(seed=seed, mitigations={"occupancy": {"lam": lam, "reference_steps": 16}})
        for seed, lam in ((3, 0.0), (4, 0.5))
    ]
    train_stacked(configs, [tmp_path / "free", tmp_path / "charged"], progress=False)
    free, charged = _progress(tmp_path / "free"), _progress(tmp_path / "charged")
    assert all(float(row["mitigation/occupancy/penalty"]) == 0.0 for row in free[1:])
    assert any(float(row["mitigation/occupancy/penalty"]) != 0.0 for row in charged[1:])
    for rows in (free, charged):
        kls = [float(row["mitigation/occupancy/kl"]) for row in rows[1:]]
        assert min(kls) > 0 and np.mean(kls) > 0.1, kls


def test_an_occupancy_run_resumes_as_if_never_stopped(tmp_path, monkeypatch, one_torch_thread):
    config = tiny_config(mitigations={"occupancy": {"lam": 0.5, "reference_steps": 16}}, checkpoint_every=1)
    whole = train(config, run_dir=tmp_path / "whole", progress=False)
    crash_in_iteration(4, config, tmp_path / "split", monkeypatch)
    resumed = train(config, run_dir=tmp_path / "split", progress=False)
    torch.testing.assert_close(resumed.agent.state_dict(), whole.agent.state_dict())
    assert [row["mitigation/occupancy/kl"] for row in _progress(tmp_path / "split")] == [
        row["mitigation/occupancy/kl"] for row in _progress(tmp_path / "whole")
    ]


def test_occupancy_settings_are_checked():
    from gaming_gym.mitigations import checked_mitigations

    assert checked_mitigations(["occupancy"])["occupancy"]["lam"] == 0.05
    for bad in ({"lam": -1.0}, {"lam": float("nan")}, {"updates": 1.5}, {"batch": 0}):
        with pytest.raises(ConfigError, match="occupancy"):
            checked_mitigations({"occupancy": bad})
