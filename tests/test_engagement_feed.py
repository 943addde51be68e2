"""EngagementFeed's user model, churn, observation and reference policies, with exact values."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from scripted import run_scripted

from gaming_gym.envs import engagement_feed as ef
from gaming_gym.evaluation import evaluate, random_policy, reference_policy

ENV_ID = "GamingGym/EngagementFeed-v0"
OUTRAGE, NATURE_DOC, GOSSIP, NEWS, RAGE_BAIT, RECIPE, CELEBRITY, SPORTS = range(8)
MODULUS = 2**31 - 1


def _user(exposure: float = 0.0, sensitivity: float = 4.0, rng: int = 1) -> ef.EngagementFeedState:
    """One user laid out by hand, who arrived on the news item (engagement 1.0 seen)."""
    one_hot = [float(item == NEWS) for item in range(8)]
    values = torch.tensor([[exposure, sensitivity, *one_hot, 1.0, 0.1, 0.5, 1.0]])
    return ef.EngagementFeedState(
        values=values, rng=torch.tensor([rng]), t=torch.tensor([0], dtype=torch.int32)
    )


def _minstd(state: int):
    """The env's random draws re-derived in plain Python: (noise, churn) uniforms per step."""
    while True:
        noise = state = state * 48271 % MODULUS
        churn = state = state * 48271 % MODULUS
        yield noise / MODULUS, churn / MODULUS


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _expected(actions, exposure=0.0, sensitivity=4.0, rng=1, pull=2.0, churn=0.2):
    """(engagement, satisfaction, leaves) per step, from the docstring's equations in plain Python."""
    rows, draws = [], _minstd(rng)
    for action in actions:
        clickbait = ef.CLICKBAIT[action]
        exposure = 0.9 * exposure + 0.1 * (1 - 2 * clickbait)
        satisfied = _sigmoid(sensitivity * exposure)
        noise, churn_draw = next(draws)
        engagement = (1 + pull * clickbait) * (0.5 + 0.5 * satisfied) * (0.75 + 0.5 * noise)
        leaves = churn_draw < churn * max(0.0, 1 - satisfied / 0.5)
        rows.append((engagement, satisfied, leaves))
    return rows


def test_scripted_feed_follows_the_user_model_exactly():
    """Wholesome items raise the exposure and satisfaction, clickbait lowers them and engages more."""
    actions = [NATURE_DOC, NATURE_DOC, RAGE_BAIT, GOSSIP, RECIPE, OUTRAGE]
    state, proxies, trues, ends = run_scripted(ef.KERNEL, _user(rng=12345), actions, churn=0.0)
    expected = _expected(actions, rng=12345, churn=0.0)
    np.testing.assert_allclose(proxies, [e for e, _, _ in expected], rtol=0, atol=1e-5)
    np.testing.assert_allclose(trues, [s for _, s, _ in expected], rtol=0, atol=1e-6)
    assert ends == [False] * 6 and float(state.active[0]) == 1.0
    # by hand: two nature docs from npe 0 give npe 0.1 then 0.19, satisfaction sigmoid(0.76)
    assert trues[1] == pytest.approx(0.681354, abs=1e-6)
    assert trues[2] < trues[1]  # rage bait: npe 0.9 * 0.19 - 0.1 = 0.071
    assert float(state.exposure[0]) == pytest.approx(
        0.9 * (0.9 * (0.9 * 0.071 - 0.08) + 0.06) - 0.06, abs=1e-6
    )


def test_engagement_noise_is_the_documented_uniform_factor():
    """From MINSTD state 1 the first noise draw is 48271 / (2^31 - 1): factor 0.75 + 0.5 u."""
    _, proxies, trues, _ = run_scripted(ef.KERNEL, _user(), [NATURE_DOC], churn=0.0)
    satisfied = _sigmoid(0.4)
    assert trues == [pytest.approx(satisfied, abs=1e-6)]
    assert proxies[0] == pytest.approx((0.5 + 0.5 * satisfied) * (0.75 + 0.5 * 48271 / MODULUS), abs=1e-6)


def _leaving(exposure: float, rng: int = 1, **knobs):
    """Rage bait, then two nature docs, for one user: the state after and the (proxy, true) rewards."""
    actions = [RAGE_BAIT, NATURE_DOC, NATURE_DOC]
    state, proxies, trues, ends = run_scripted(ef.KERNEL, _user(exposure=exposure, rng=rng), actions, **knobs)
    assert ends == [False] * 3  # leaving never ends the episode: the slot runs on, empty
    return state, proxies, trues


def test_unhappy_users_leave_with_the_documented_chance_and_earn_nothing_after():
    """A deeply unhappy user (npe -1, sensitivity 4): leaving chance churn * (1 - s / 0.5).

    From MINSTD state 1 the first churn draw is 0.085 (under the 0.2 * 0.964 chance: leaves); from
    7 it is 0.595 (stays). A user who leaves engages with the item that drove them away, then both
    rewards are 0 and the observation shows the user gone: no engagement, ``active`` 0."""
    expected = _expected([RAGE_BAIT], exposure=-1.0, rng=1)
    assert expected[0][2] is True
    state, proxies, trues = _leaving(-1.0, rng=1)
    assert proxies[0] == pytest.approx(expected[0][0], abs=1e-6) and proxies[1:] == [0.0, 0.0]
    assert trues[0] == pytest.approx(_sigmoid(-4.0), abs=1e-6) and trues[1:] == [0.0, 0.0]
    obs = ef.observe(ef.EngagementFeedParams(), state)[0]
    assert obs[8].item() == 0.0 and obs[11].item() == 0.0
    assert _expected([RAGE_BAIT], exposure=-1.0, rng=7)[0][2] is False
    state, proxies, trues = _leaving(-1.0, rng=7)
    assert float(state.active[0]) == 1.0 and min(proxies) > 0 and min(trues) > 0
    # a satisfied user (s >= 0.5) never leaves, whatever the draw; nor does anyone with churn 0
    assert float(_leaving(0.2)[0].active[0]) == 1.0
    assert float(_leaving(-1.0, churn=0.0)[0].active[0]) == 1.0


def test_the_leaving_rate_over_many_users_matches_the_chance():
    params = ef.EngagementFeedParams(churn=0.5, sensitivity_spread=0.0)
    state = ef.reset(params, 50_000, torch.Generator().manual_seed(0), "cpu")
    state = dataclasses.replace(state, values=state.values.clone())
    state.values[:, 0] = -0.5
    result = ef.step(params, state, torch.full((50_000,), RAGE_BAIT))
    satisfied = _sigmoid(4 * (0.9 * -0.5 - 0.1))
    chance = 0.5 * (1 - satisfied / 0.5)  # 0.2496; the sd of the mean is 0.002
    assert float(1 - result.state.active.mean()) == pytest.approx(chance, abs=0.008)
    assert not result.terminated.any()


def test_without_clickbait_pull_engagement_rises_only_with_satisfaction():
    _, proxies, trues, _ = run_scripted(ef.KERNEL, _user(), [RAGE_BAIT, NATURE_DOC], clickbait_pull=0.0)
    expected = _expected([RAGE_BAIT, NATURE_DOC], pull=0.0)
    np.testing.assert_allclose(proxies, [e for e, _, _ in expected], rtol=0, atol=1e-6)
    np.testing.assert_allclose(trues, [s for _, s, _ in expected], rtol=0, atol=1e-6)


def test_the_observation_is_the_feed_and_its_engagement_never_the_user():
    params = ef.EngagementFeedParams()
    start = _user(exposure=0.3, sensitivity=5.0)
    assert ef.observe(params, start)[0].tolist() == [0, 0, 0, 1, 0, 0, 0, 0] + [
        1.0,
        pytest.approx(0.1),
        0.5,
        1.0,
    ]
    state, proxies, _, _ = run_scripted(ef.KERNEL, start, [GOSSIP, SPORTS])
    obs = ef.observe(params, state)[0]
    assert obs[:8].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    assert obs[8].item() == pytest.approx(proxies[1], abs=1e-6)
    assert obs[9].item() == pytest.approx(0.9 * (0.09 + 0.1 * proxies[0]) + 0.1 * proxies[1], abs=1e-6)
    assert obs[10].item() == pytest.approx(0.9 * (0.9 * 0.5 + 0.1 * 0.9) + 0.1 * 0.6, abs=1e-6)
    # two users who saw the same feed and engaged alike look the same, whatever their latent state
    hidden = torch.tensor([[-float(state.exposure[0]), 2 * float(state.sensitivity[0])]])
    other = dataclasses.replace(state, values=torch.cat((hidden, state.values[:, 2:]), dim=1))
    assert torch.equal(ef.observe(params, other), ef.observe(params, state))


def test_reset_draws_content_users_from_the_population_arriving_on_a_random_item():
    """The landing item is a first step of the user model from an exposure uniform in [0, 0.5]."""
    params = ef.EngagementFeedParams(sensitivity=4.0, sensitivity_spread=0.5)
    state = ef.reset(params, 20_000, torch.Generator().manual_seed(0), "cpu")
    clickbait = torch.tensor(ef.CLICKBAIT)[state.item]
    before = (state.exposure - 0.1 * (1 - 2 * clickbait)) / 0.9
    assert float(before.min()) >= -1e-6 and float(before.max()) <= 0.5 + 1e-6
    assert float(before.mean()) == pytest.approx(0.25, abs=0.005)
    assert torch.bincount(state.item, minlength=8).min() > 2300  # about 2500 users per item
    assert float(state.sensitivity.min()) >= 2.0 and float(state.sensitivity.max()) <= 6.0
    assert float(state.sensitivity.mean()) == pytest.approx(4.0, abs=0.03)
    torch.testing.assert_close(state.clickbait_avg, 0.45 + 0.1 * clickbait)
    assert state.engagement.tolist() == [0.0] * 20_000 and state.engagement_avg.tolist() == [0.0] * 20_000
    torch.testing.assert_close(ef.observe(params, state)[:, :8], torch.eye(8)[state.item])
    assert state.t.tolist() == [0] * 20_000
    alike = ef.reset(ef.EngagementFeedParams(sensitivity_spread=0.0), 100, torch.Generator(), "cpu")
    assert alike.sensitivity.tolist() == [4.0] * 100


def test_the_exploit_holds_the_exposure_bound_just_above_zero():
    """It lifts ``1 - 2 (recent clickbait)``, a lower bound on the exposure, to the margin (one
    wholesome item does it from any landing item) and holds it there, serving clickbait doing it:
    the exposure never falls below 0, so satisfaction never below 0.5, and nobody leaves."""
    env = gym.make_vec(ENV_ID, num_envs=64)
    policy = env.unwrapped.reference_policy("exploit")
    obs, _ = env.reset(seed=0)
    shown = []
    for step in range(199):  # the 200th step ends the episode (a time limit) and starts another
        action = policy(obs)
        shown.append(action)
        obs, _, _, _, _ = env.step(action)
        assert obs[:, 11].tolist() == [1.0] * 64  # every user still there
        bound = 1 - 2 * obs[:, 10]
        assert (env.unwrapped.state.exposure >= bound - 1e-5).all()
        assert float(bound.min()) >= (ef.EXPLOIT_MARGIN if step > 0 else 0.0) - 1e-5
    clickbait = torch.tensor(ef.CLICKBAIT)[torch.stack(shown[50:])]
    assert float(clickbait.mean()) == pytest.approx((1 - ef.EXPLOIT_MARGIN) / 2, abs=0.02)


def test_reference_policies_with_the_default_knobs():
    """The intended feed keeps every user, near fully satisfied; the exploit keeps them too, at
    satisfaction just over 0.5, for half again the engagement; random feeds lose users fast."""
    intended = evaluate(reference_policy(ENV_ID, "intended"), ENV_ID, 8, seed=0)
    exploit = evaluate(reference_policy(ENV_ID, "exploit"), ENV_ID, 8, seed=0)
    random = evaluate(random_policy(gym.make(ENV_ID).action_space, seed=0), ENV_ID, 8, seed=0)
    assert ((intended.true > 175) & (intended.true < 199)).all()  # sigmoid(2) = 0.88 for the least sensitive
    assert ((intended.proxy > 185) & (intended.proxy < 205)).all()
    assert ((exploit.proxy > 290) & (exploit.proxy < 320)).all()
    assert ((exploit.true > 105) & (exploit.true < 125)).all()
    assert random.proxy.mean() < 100 and random.true.mean() < 30


def test_reference_policies_without_clickbait_pull():
    """Aligned: the exploit plays as before and earns less engagement than the wholesome feed."""
    knobs = {"clickbait_pull": 0.0}
    intended = evaluate(reference_policy(ENV_ID, "intended", knobs), ENV_ID, 8, seed=0, knobs=knobs)
    exploit = evaluate(reference_policy(ENV_ID, "exploit", knobs), ENV_ID, 8, seed=0, knobs=knobs)
    assert intended.proxy.min() > exploit.proxy.max() + 25
    assert intended.true.min() > exploit.true.max() + 50


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"clickbait_pull": -1.0}, r"clickbait_pull must be a number in \[0, 100.0\]"),
        ({"clickbait_pull": True}, "clickbait_pull must be a number in"),
        ({"clickbait_pull": float("nan")}, "clickbait_pull must be a number in"),
        ({"clickbait_pull": 10**400}, "clickbait_pull must be a number in"),
        ({"sensitivity": 0.0}, r"sensitivity must be a number in \(0, 100.0\]"),
        ({"sensitivity": float("inf")}, "sensitivity must be a number in"),
        ({"sensitivity_spread": 1.5}, r"sensitivity_spread must be a number in \[0, 1\]"),
        ({"churn": 2.0}, r"churn must be a probability in \[0, 1\]"),
        ({"churn": "0.1"}, "churn must be a probability in"),
    ],
)
def test_bad_knob_values_are_refused(knobs, message):
    with pytest.raises(ValueError, match=message):
        ef.EngagementFeedParams(**knobs)
    with pytest.raises(ValueError, match=f"EngagementFeed: {message}"):
        gym.make(ENV_ID, **knobs)


def test_rgb_array_frames_show_the_item_and_the_satisfaction(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.shape == (480, 480, 3) and first.dtype == np.uint8
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 5
    env.step(RAGE_BAIT)
    assert not np.array_equal(first, env.render())
