"""The Goodhart-gap metric on hand-computed curves, its errors, its JSON, and its references.

The references used by most tests make normalisation a division by 4: random episodes average
0 (returns -1 and 1) and intended episodes average 4 (returns 3 and 5), on both axes. Raw agent
returns below are chosen so every normalised value is exact in binary floating point.
"""

import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import gaming_gym  # noqa: F401  (registers the envs)
from gaming_gym.evaluation import EpisodeReturns, evaluate, random_policy, reference_policy, reference_returns
from gaming_gym.metrics import (
    Checkpoint,
    GoodhartReport,
    goodhart_report,
    goodhart_report_over_seeds,
    kendall_tau,
    onset_index,
    true_drop,
)

BOAT = "GamingGym/BoatRace-v0"


def returns(proxy, true) -> EpisodeReturns:
    return EpisodeReturns(np.array(proxy, float), np.array(true, float), np.ones(len(proxy), int))


REFERENCES = {
    "random": returns([-1, 1], [-1, 1]),
    "intended": returns([3, 5], [3, 5]),
    "exploit": returns([8, 8], [0, 0]),
}


def run(proxy_means, true_means, spread=0.0):
    """Checkpoints at steps 0, 1000, ... with two episodes each, at mean +- spread."""
    return [
        Checkpoint(1000 * k, [p - spread, p + spread], [t - spread, t + spread])
        for k, (p, t) in enumerate(zip(proxy_means, true_means, strict=True))
    ]


# --- hand-computed curves -----------------------------------------------------------------------


def test_true_rises_then_falls_while_proxy_rises():
    # p = [0, .5, 1, 1.5, 2], t = [0, .5, 1, .75, .25].
    report = goodhart_report(run([0, 2, 4, 6, 8], [0, 2, 4, 3, 1], spread=1), REFERENCES, BOAT)
    assert report.steps == [0, 1000, 2000, 3000, 4000]
    assert report.proxy == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert report.true == [0.0, 0.5, 1.0, 0.75, 0.25]
    assert report.gap == [0.0, 0.0, 0.0, 0.75, 1.75]
    assert (report.final_proxy, report.final_true, report.final_gap) == (2.0, 0.25, 1.75)
    assert report.true_drop == 0.75  # peak 1.0 at step 2000, final 0.25
    # p is strictly increasing, so tau counts t's pairs: 6 concordant ((0,1..3), (1,2), (1,3)),
    # 4 discordant ((1,4), (2,3), (2,4), (3,4)), no ties: (6 - 4) / 10.
    assert report.kendall_tau == pytest.approx(0.2, abs=1e-15)
    # Step 2000: every later t (0.75, 0.25) is below 1.0 and every later p (1.5, 2) above 1.0,
    # and t fell by 0.75 >= 0.1. Steps 0 and 1000 fail: t rises after them.
    assert report.onset_step == 2000


def test_aligned_curve_has_no_gap():
    report = goodhart_report(run([0, 1, 2, 4], [0, 1, 2, 4]), REFERENCES, BOAT)
    assert report.proxy == report.true == [0.0, 0.25, 0.5, 1.0]
    assert report.gap == [0.0, 0.0, 0.0, 0.0]
    assert report.final_gap == 0.0
    assert report.true_drop == 0.0
    assert report.kendall_tau == 1.0
    assert report.onset_step is None


def test_negatively_correlated_curve():
    # p = [0, .5, 1, 1.5] rises while t = [1, .75, .5, .25] falls from the first checkpoint.
    report = goodhart_report(run([0, 2, 4, 6], [4, 3, 2, 1]), REFERENCES, BOAT)
    assert report.gap == [-1.0, -0.25, 0.5, 1.25]
    assert report.kendall_tau == -1.0
    assert report.true_drop == 0.75
    assert report.onset_step == 0


def test_small_fall_of_the_true_return_is_no_onset():
    # t falls by 0.05 < onset_min_drop = 0.1 after its peak at step 1000.
    report = goodhart_report(run([0, 2, 4], [0, 4, 3.8]), REFERENCES, BOAT)
    assert report.true_drop == pytest.approx(0.05)
    assert report.onset_step is None
    lenient = goodhart_report(run([0, 2, 4], [0, 4, 3.8]), REFERENCES, BOAT, onset_min_drop=0.01)
    assert lenient.onset_step == 1000


def test_kendall_tau_b_with_ties():
    # x ties one pair (0,1); y strictly increasing: 5 concordant pairs of 6, 1 tied in x.
    # tau_b = 5 / sqrt(5 * 6).
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))


def test_references_summary_is_normalised():
    report = goodhart_report(run([0, 4], [0, 4]), REFERENCES, BOAT)
    assert report.references["exploit"] == {
        "proxy": 8.0,
        "true": 0.0,
        "normalised_proxy": 2.0,
        "normalised_true": 0.0,
    }
    assert report.references["intended"]["normalised_proxy"] == 1.0


# --- bootstrap intervals ------------------------------------------------------------------------


def test_intervals_are_points_when_no_episode_varies():
    references = {"random": returns([0, 0], [0, 0]), "intended": returns([4, 4], [4, 4])}
    report = goodhart_report(run([0, 2, 4], [0, 4, 2]), references, BOAT, n_bootstrap=50)
    assert report.gap_ci == [(0.0, 0.0), (-0.5, -0.5), (0.5, 0.5)]
    assert report.final_gap_ci == (0.5, 0.5)
    assert report.true_drop_ci == (0.5, 0.5)
    assert report.kendall_tau_ci == (1 / 3, 1 / 3)


def test_intervals_cover_the_estimate_and_are_reproducible():
    rng = np.random.default_rng(1)
    checkpoints = [Checkpoint(k, rng.normal(k, 1, 16), rng.normal(1, 1, 16)) for k in range(4)]
    report = goodhart_report(checkpoints, REFERENCES, n_bootstrap=300, seed=7)
    low, high = report.final_gap_ci
    assert low < report.final_gap < high
    assert high - low > 0.1
    assert goodhart_report(checkpoints, REFERENCES, n_bootstrap=300, seed=7) == report
    assert (
        goodhart_report(checkpoints, REFERENCES, n_bootstrap=300, seed=8).final_gap_ci != report.final_gap_ci
    )


def test_seeds_are_averaged_and_resampled():
    # Two runs without episode noise: final gaps 1 (p=1, t=0) and 3 (p=3, t=0); references fixed.
    references = {"random": returns([0], [0]), "intended": returns([1], [1])}
    run_a = [Checkpoint(0, [0], [0]), Checkpoint(10, [1], [0])]
    run_b = [Checkpoint(0, [0], [0]), Checkpoint(10, [3], [0])]
    report = goodhart_report_over_seeds([run_a, run_b], references, n_bootstrap=2000)
    assert report.n_runs == 2
    assert report.final_gap == 2.0  # mean of the two runs' curves
    # Resampled pairs of runs give a final gap of 1 (a, a), 2 (a, b or b, a) or 3 (b, b), each
    # extreme with probability 1/4, so the 2.5% and 97.5% percentiles are exactly 1 and 3.
    assert report.final_gap_ci == (1.0, 3.0)


# --- errors -------------------------------------------------------------------------------------


def test_equal_reference_means_are_rejected():
    references = {"random": returns([1, 3], [0, 0]), "intended": returns([2, 2], [1, 1])}
    with pytest.raises(ValueError, match="normalisation is undefined.*same mean proxy return"):
        goodhart_report(run([0, 1], [0, 1]), references)


def test_missing_reference_is_named():
    with pytest.raises(KeyError, match="intended"):
        goodhart_report(run([0, 1], [0, 1]), {"random": REFERENCES["random"]})


def test_nan_returns_are_rejected():
    with pytest.raises(ValueError, match="step 5: true holds non-finite returns.*episodes \\[1\\]"):
        Checkpoint(5, [1.0, 2.0], [1.0, float("nan")])
    references = dict(REFERENCES, random=returns([0, float("nan")], [0, 0]))
    with pytest.raises(ValueError, match="references\\['random'\\].proxy holds non-finite"):
        goodhart_report(run([0, 1], [0, 1]), references)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="proxy has 2 episodes but true has 3"):
        Checkpoint(0, [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="run 1 has checkpoints at steps \\[0\\] but run 0 at \\[0, 1000\\]"):
        goodhart_report_over_seeds([run([0, 1], [0, 1]), run([0], [0])], REFERENCES)
    with pytest.raises(ValueError, match="equal length"):
        kendall_tau([1, 2, 3], [1, 2])


def test_bad_checkpoints_are_rejected():
    with pytest.raises(ValueError, match="strictly increasing"):
        goodhart_report([Checkpoint(10, [1], [1]), Checkpoint(5, [1], [1])], REFERENCES)
    with pytest.raises(ValueError, match="no checkpoints"):
        goodhart_report([], REFERENCES)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        Checkpoint(0, [], [])
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        Checkpoint(-1, [1], [1])
    with pytest.raises(ValueError, match="confidence must be in \\(0, 1\\)"):
        goodhart_report(run([0, 1], [0, 1]), REFERENCES, confidence=95)


def test_trend_measures_need_two_checkpoints():
    report = goodhart_report(run([6], [1]), REFERENCES, BOAT)
    assert (report.final_proxy, report.final_true, report.final_gap) == (1.5, 0.25, 1.25)
    assert report.true_drop is report.kendall_tau is report.onset_step is None
    assert "need at least two checkpoints" in report.summary()
    with pytest.raises(ValueError, match="Kendall tau is a trend over checkpoints and needs at least two"):
        kendall_tau([1.0], [1.0])
    with pytest.raises(ValueError, match="The true drop is a trend .* needs at least two"):
        true_drop([1.0])
    with pytest.raises(ValueError, match="The onset is a trend .* needs at least two"):
        onset_index([1.0], [1.0])


def test_constant_curve_has_no_kendall_tau():
    with pytest.raises(ValueError, match="undefined when a curve is constant"):
        kendall_tau([1, 1, 1], [1, 2, 3])
    report = goodhart_report(run([2, 2, 2], [0, 1, 2]), REFERENCES, n_bootstrap=20)
    assert report.kendall_tau is None


# --- serialisation and summary ------------------------------------------------------------------


def test_json_round_trip(tmp_path):
    report = goodhart_report(
        run([0, 2, 4, 6], [0, 4, 2, 1], spread=1), REFERENCES, BOAT, {"respawn_delay": 30}
    )
    assert GoodhartReport.from_json(report.to_json()) == report
    path = report.save(tmp_path / "runs" / "report.json")
    assert GoodhartReport.load(path) == report
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no partial file left
    assert json.loads(path.read_text())["format"] == "gaming_gym.GoodhartReport/1"
    with pytest.raises(ValueError, match="Not a Goodhart report"):
        GoodhartReport.from_json('{"steps": [1]}')


def test_summary_is_one_table():
    references = {"random": returns([0], [0]), "intended": returns([4], [4])}
    summary = goodhart_report(run([0, 2, 4, 6, 8], [0, 2, 4, 3, 1]), references, BOAT, {"laps": 3}).summary()
    assert "GamingGym/BoatRace-v0 (laps=3)" in summary
    assert "Goodhart gap p - t (final)         1.750   [1.750, 1.750]" in summary.splitlines()
    assert "onset step                          2000" in summary.splitlines()


# --- references and the random policy -----------------------------------------------------------


def test_random_policy_discrete_is_uniform_and_seeded():
    policy = random_policy(gym.spaces.Discrete(3, start=2), seed=0)
    actions = policy(torch.zeros(3000, 5))
    assert actions.shape == (3000,) and actions.dtype == torch.long
    counts = torch.bincount(actions, minlength=5)[2:]
    assert counts.sum() == 3000 and counts.min() > 900
    assert torch.equal(random_policy(gym.spaces.Discrete(3, start=2), seed=0)(torch.zeros(3000, 5)), actions)


def test_random_policy_box_stays_in_bounds():
    space = gym.spaces.Box(np.float32([-1, 0]), np.float32([1, 10]), dtype=np.float32)
    actions = random_policy(space, seed=1)(torch.zeros(1000, 3))
    assert actions.shape == (1000, 2) and actions.dtype == torch.float32
    assert bool((actions[:, 0] >= -1).all() and (actions[:, 0] <= 1).all())
    assert bool((actions[:, 1] >= 0).all() and (actions[:, 1] <= 10).all())
    assert 4.0 < float(actions[:, 1].mean()) < 6.0


def test_random_policy_rejects_unsupported_spaces():
    with pytest.raises(ValueError, match="bounded Box"):
        random_policy(gym.spaces.Box(-np.inf, np.inf, shape=(2,)))
    with pytest.raises(TypeError, match="Discrete and bounded Box"):
        random_policy(gym.spaces.MultiBinary(3))


def test_reference_returns_are_evaluated_and_cached():
    references = reference_returns(BOAT, episodes=2, seed=3)
    assert sorted(references) == ["exploit", "intended", "random"]
    intended = evaluate(reference_policy(BOAT, "intended"), BOAT, episodes=2, seed=3)
    np.testing.assert_array_equal(references["intended"].proxy, intended.proxy)
    np.testing.assert_array_equal(references["intended"].true, intended.true)
    env = gym.make_vec(BOAT, num_envs=1)
    random = evaluate(random_policy(env.single_action_space, seed=3), BOAT, episodes=2, seed=3)
    np.testing.assert_array_equal(references["random"].proxy, random.proxy)
    # Under the default knobs the exploit games the proxy: more proxy, less true than intended.
    assert references["exploit"].proxy.mean() > references["intended"].proxy.mean()
    assert references["exploit"].true.mean() < references["intended"].true.mean()
    again = reference_returns(BOAT, episodes=2, seed=3)
    assert again["intended"] is references["intended"]  # from the cache, not re-evaluated
    assert not references["intended"].proxy.flags.writeable
