"""The Goodhart-gap metric on hand-computed curves, its errors, its JSON, and its references.

The references used by most tests make normalisation a division by 4: random episodes average
0 (returns -1 and 1) and intended episodes average 4 (returns 3 and 5), on both axes. Raw agent
returns below are chosen so every normalised value is exact in binary floating point.
"""

import dataclasses
import json
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import gaming_gym  # noqa: F401  (registers the envs)
from gaming_gym.evaluation import EpisodeReturns, evaluate, random_policy, reference_policy, reference_returns
from gaming_gym.metrics import (
    EarlyStop,
    EarlyStoppingOutcome,
    Evaluation,
    GaoFit,
    GoodhartReport,
    GoodhartWarning,
    Peak,
    early_stop,
    fit_gao,
    goodhart_report,
    kendall_tau,
    onset_index,
    student_t_quantile,
    true_drop,
)

BOAT = "GamingGym/BoatRace-v1"


def returns(proxy, true) -> EpisodeReturns:
    return EpisodeReturns(np.array(proxy, float), np.array(true, float), np.ones(len(proxy), int))


REFERENCES = {
    "random": returns([-1, 1], [-1, 1]),
    "intended": returns([3, 5], [3, 5]),
    "exploit": returns([8, 8], [0, 0]),
}


def said(report: GoodhartReport) -> str:
    """The report's summary with its line breaks and indents as single spaces (notes wrap)."""
    return " ".join(report.summary().split())


def run(proxy_means, true_means, spread=0.0):
    """Checkpoints at steps 0, 1000, ... with two episodes each, at mean +- spread."""
    return [
        Evaluation(1000 * k, [p - spread, p + spread], [t - spread, t + spread])
        for k, (p, t) in enumerate(zip(proxy_means, true_means, strict=True))
    ]


# --- hand-computed curves -----------------------------------------------------------------------


def test_true_rises_then_falls_while_proxy_rises():
    # p = [0, .5, 1, 1.5, 2], t = [0, .5, 1, .75, .25].
    report = goodhart_report(run([0, 2, 4, 6, 8], [0, 2, 4, 3, 1], spread=0.25), REFERENCES, BOAT)
    assert report.steps == [0, 1000, 2000, 3000, 4000]
    assert report.proxy == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert report.true == [0.0, 0.5, 1.0, 0.75, 0.25]
    assert report.gap == [0.0, 0.0, 0.0, 0.75, 1.75]
    assert (report.final_proxy, report.final_true, report.final_gap) == (2.0, 0.25, 1.75)
    assert report.true_drop == 0.75  # peak 1.0 at step 2000, final 0.25
    # p is strictly increasing, so tau counts t's pairs: 6 concordant ((0,1..3), (1,2), (1,3)),
    # 4 discordant ((1,4), (2,3), (2,4), (3,4)), no ties: (6 - 4) / 10.
    assert report.kendall_tau == pytest.approx(0.2, abs=1e-15)
    # The largest fall for good is after step 3000 (the mean of t over 1000-3000, 0.75, against
    # 0.25 after: 0.5, beyond 3.5 standard errors of 0.072); t at 2000 stands 0.25 above t at
    # 3000, beyond 2 standard errors of their difference (0.18), so the onset is the peak.
    assert report.onset_step == 2000
    assert report.onset_step_ci == (2000, 3000)


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


def test_onset_over_several_runs_is_the_mean_curves_without_an_interval():
    # Over runs: the mean curve's onset, no interval (a jackknife does not hold for it).
    runs = [run([0, 2, 4, 6, 8], [0, 4, 4, 4, t], spread=0.25) for t in (1.0, 1.2)]
    over_runs = goodhart_report(runs, REFERENCES, BOAT)
    assert over_runs.onset_step == 3000 and over_runs.onset_step_ci is None


def test_a_bootstrap_interval_needs_the_measure_defined_in_more_than_half_the_resamples():
    from gaming_gym.metrics.curves import anchors_of
    from gaming_gym.metrics.intervals import bootstrap_bounds

    def defined_in(share):  # a measure undefined (NaN) in the first 1 - share of the replicates
        return lambda proxy, true: np.where(
            np.arange(len(proxy)) < (1 - share) * len(proxy), np.nan, true[:, -1]
        )

    measures = {"most": defined_in(0.6), "few": defined_in(0.4)}
    rng = np.random.default_rng(0)
    bounds = bootstrap_bounds(run([0, 2], [0, 4], spread=1), anchors_of(REFERENCES), measures, 0.95, 100, rng)
    assert np.isfinite(bounds["most"]).all() and np.isnan(bounds["few"]).all()


def test_small_fall_of_the_true_return_is_no_onset():
    # t holds at 1 and falls by 0.05 < onset_min_drop = 0.1 after step 3000.
    report = goodhart_report(run([0, 2, 4, 6, 8], [0, 4, 4, 4, 3.8]), REFERENCES, BOAT)
    assert report.true_drop == pytest.approx(0.05)
    assert report.onset_step is None
    lenient = goodhart_report(run([0, 2, 4, 6, 8], [0, 4, 4, 4, 3.8]), REFERENCES, BOAT, onset_min_drop=0.01)
    assert lenient.onset_step == 3000


def test_kendall_tau_b_with_ties():
    # x ties one pair (0,1); y strictly increasing: 5 concordant pairs of 6, 1 tied in x.
    # tau_b = 5 / sqrt(5 * 6).
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))


# --- rounding: a fall of exactly min_drop, ties up to rounding -----------------------------------


def test_onset_counts_a_fall_of_exactly_min_drop():
    # t = [0.6, 0.6, 0.6, 0.6, 0.5]: 0.6 - 0.5 is 0.0999... in binary floating point; it counts,
    # as early stopping's falls do (the rule itself: tests/test_onset.py).
    report = goodhart_report(run([0, 2, 2, 2, 4], [2.4, 2.4, 2.4, 2.4, 2]), REFERENCES)
    assert report.onset_step == 3000


def test_kendall_tau_treats_rounding_differences_as_ties():
    # x ties pair (0, 1) up to rounding; y strictly increasing: 2 concordant pairs of 3,
    # tau_b = 2 / sqrt(2 * 3), as for an exact tie.
    curve = np.array([0.1 + 0.2, 0.3, 1.0])
    assert kendall_tau(curve, [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    # The tolerance is relative to the curve's largest magnitude: units do not change the ties...
    assert kendall_tau(1e6 * curve, [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert kendall_tau(1e-12 * curve, [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    # ...and differences well above rounding stay differences, at any scale.
    assert kendall_tau([1, 1 + 1e-6, 2], [1, 2, 3]) == 1.0
    assert kendall_tau([1e-12, 2e-12, 3e-12], [1, 2, 3]) == 1.0


def test_undefined_kendall_tau_has_no_interval():
    # p is constant (mean 2 at every checkpoint) though its episodes vary, so tau is undefined; a
    # replicate's tau, of a resampled p that is no longer constant, says nothing about it.
    report = goodhart_report(run([2, 2, 2], [0, 1, 2], spread=1), REFERENCES, n_bootstrap=50)
    assert report.kendall_tau is None
    assert report.kendall_tau_ci is None
    assert f"{'Kendall tau (p, t)':<30}{'n/a':>10}" in report.summary().splitlines()


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
    checkpoints = [Evaluation(k, rng.normal(k, 1, 16), rng.normal(1, 1, 16)) for k in range(4)]
    report = goodhart_report(checkpoints, REFERENCES, n_bootstrap=300, seed=7)
    low, high = report.final_gap_ci
    assert low < report.final_gap < high
    assert high - low > 0.1
    assert goodhart_report(checkpoints, REFERENCES, n_bootstrap=300, seed=7) == report
    assert (
        goodhart_report(checkpoints, REFERENCES, n_bootstrap=300, seed=8).final_gap_ci != report.final_gap_ci
    )


def test_seeds_give_a_student_t_interval_over_runs():
    # Two runs without episode noise: final gaps 1 (p=1, t=0) and 3 (p=3, t=0); references fixed.
    references = {"random": returns([0, 0], [0, 0]), "intended": returns([1, 1], [1, 1])}
    run_a = [Evaluation(0, [0, 0], [0, 0]), Evaluation(10, [1, 1], [0, 0])]
    run_b = [Evaluation(0, [0, 0], [0, 0]), Evaluation(10, [3, 3], [0, 0])]
    report = goodhart_report([run_a, run_b], references, n_bootstrap=2000)
    assert report.n_runs == 2
    assert report.interval_method == "student-t-over-runs"
    assert report.final_gap == 2.0  # mean of the two runs' curves
    # The per-run gaps 1 and 3: mean 2, standard error s / sqrt(2) = 1, and Student's t with one
    # degree of freedom has its 97.5% quantile at 12.706. (A percentile bootstrap over the two
    # runs said [1, 3]: it can never reach beyond the runs seen.)
    t_1 = 12.7062047361747
    assert report.final_gap_ci == pytest.approx((2 - t_1, 2 + t_1), abs=1e-9)
    assert report.proxy_ci == [(0.0, 0.0), pytest.approx((2 - t_1, 2 + t_1), abs=1e-9)]
    assert report.final_true_ci == (0.0, 0.0)
    assert report.true_drop_ci == (0.0, 0.0)


def synthetic_seeds(rng, n_runs, episodes=8, between=2.0, within=2.0):
    """References of 32 episodes and ``n_runs`` runs whose final normalised gap is 1 on average.

    Raw means: random 0 and intended 4 on both axes (the normalisation divides by 4); a run's final
    proxy and true means are 8 and 4 (p = 2, t = 1) plus the run's own N(0, between) offsets (seed
    to seed variation), its episodes N(0, within) around them.
    """
    references = {
        "random": returns(rng.normal(0, 1, 32), rng.normal(0, 1, 32)),
        "intended": returns(rng.normal(4, 1, 32), rng.normal(4, 1, 32)),
    }
    runs = []
    for _ in range(n_runs):
        offset_proxy, offset_true = rng.normal(0, between, 2)
        runs.append(
            [
                Evaluation(0, rng.normal(0, within, episodes), rng.normal(0, within, episodes)),
                Evaluation(
                    1000,
                    rng.normal(8 + offset_proxy, within, episodes),
                    rng.normal(4 + offset_true, within, episodes),
                ),
            ]
        )
    return runs, references


def percentile_bootstrap_gap(runs, references, rng, n=400, confidence=0.95):
    """The final gap's interval as the metric computed it over seeds before: a percentile bootstrap
    over runs, then over the episodes of each drawn run and of the references."""

    def resampled_means(returns_, count):
        index = rng.integers(0, len(returns_.proxy), size=(count, len(returns_.proxy)))
        return returns_.proxy[index].mean(1), returns_.true[index].mean(1)

    drawn = rng.integers(0, len(runs), size=(n, len(runs)))
    proxy, true = np.zeros(n), np.zeros(n)
    for slot in range(len(runs)):
        for index, run_ in enumerate(runs):
            rows = drawn[:, slot] == index
            p, t = resampled_means(run_[-1], int(rows.sum()))
            proxy[rows] += p / len(runs)
            true[rows] += t / len(runs)
    random_proxy, random_true = resampled_means(references["random"], n)
    intended_proxy, intended_true = resampled_means(references["intended"], n)
    gap = (proxy - random_proxy) / (intended_proxy - random_proxy) - (true - random_true) / (
        intended_true - random_true
    )
    tail = 100 * (1 - confidence) / 2
    return np.percentile(gap, [tail, 100 - tail])


@pytest.mark.parametrize("seeds", [2, 3])
def test_intervals_over_few_seeds_cover_at_their_level(seeds):
    # 200 simulated experiments of 2 or 3 seeds whose true final gap is 1 (synthetic_seeds); the
    # counts at this seed: 193 and 194 (Student t), 145 and 162 (percentile bootstrap).
    rng = np.random.default_rng(10)
    covered = {"student t": 0, "percentile bootstrap": 0}
    for _ in range(200):
        runs, references = synthetic_seeds(rng, seeds)
        low, high = goodhart_report(runs, references, n_bootstrap=200).final_gap_ci
        covered["student t"] += low <= 1 <= high
        low, high = percentile_bootstrap_gap(runs, references, rng)
        covered["percentile bootstrap"] += low <= 1 <= high
    assert covered["student t"] >= 0.9 * 200
    assert covered["percentile bootstrap"] < 0.9 * 200  # the interval used before: too short


def test_student_t_quantiles():
    for df, level, expected in [
        (1, 0.975, 12.7062047361747),
        (2, 0.975, 4.30265272974946),
        (3, 0.975, 3.18244630528371),
        (4, 0.975, 2.77644510519779),
        (9, 0.975, 2.2621571627982),
        (30, 0.975, 2.04227245630124),
        (120, 0.975, 1.97993040508244),
        (1, 0.95, 6.31375151467504),
        (5, 0.95, 2.01504837333302),
        (2, 0.995, 9.92484320091829),
    ]:
        assert student_t_quantile(level, df) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="degrees of freedom"):
        student_t_quantile(0.975, 0)


def test_single_episode_evaluations_warn_and_leave_their_intervals_out():
    # One episode per checkpoint: a bootstrap over episodes sees no noise and would give points.
    checkpoints = [Evaluation(1000 * k, [p], [t]) for k, (p, t) in enumerate([(0, 0), (4, 4), (8, 2)])]
    with pytest.warns(GoodhartWarning, match="one episode"):
        report = goodhart_report(checkpoints, REFERENCES, n_bootstrap=50)
    assert report.min_episodes == 1
    assert report.proxy_ci == report.true_ci == report.gap_ci == [None, None, None]
    assert (
        report.final_proxy_ci is report.final_gap_ci is report.true_drop_ci is report.kendall_tau_ci is None
    )
    assert report.true_drop_debiased is None  # no episodes to split
    assert "warning: some checkpoints were evaluated on one episode" in said(report)
    # Only the first checkpoint has one episode: the intervals that depend on it go.
    mixed = [Evaluation(0, [0], [0]), Evaluation(1000, [3, 5], [3, 5]), Evaluation(2000, [7, 9], [1, 3])]
    with pytest.warns(GoodhartWarning, match="steps \\[0\\] have one episode"):
        report = goodhart_report(mixed, REFERENCES, n_bootstrap=50)
    assert report.gap_ci[0] is None and report.gap_ci[1] is not None
    assert report.final_gap_ci is not None
    assert report.true_drop_ci is report.kendall_tau_ci is None
    # Over seeds the interval comes from the spread between runs, which one episode does not hide.
    shifted = [Evaluation(1000 * k, [p + 1], [t]) for k, (p, t) in enumerate([(0, 0), (4, 4), (8, 2)])]
    with pytest.warns(GoodhartWarning, match="one episode"):
        seeds = goodhart_report([checkpoints, shifted], REFERENCES, n_bootstrap=50)
    assert seeds.final_gap_ci is not None and seeds.final_gap_ci[0] < seeds.final_gap < seeds.final_gap_ci[1]


def test_several_episodes_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = goodhart_report(run([0, 2, 4], [0, 4, 2], spread=1), REFERENCES, n_bootstrap=50)
    assert report.min_episodes == 2
    assert report.intended_below_random == []
    # Two episodes do not warn, but the summary says that a bootstrap over so few is short.
    few = "warning: 2 episodes at some checkpoint: a bootstrap over so few covers less than its level"
    assert few in said(report)
    eight = [
        Evaluation(1000 * k, [p - 1, p + 1] * 4, [t - 1, t + 1] * 4)
        for k, (p, t) in enumerate([(0, 0), (2, 4), (4, 2)])
    ]
    assert "warning" not in said(goodhart_report(eight, REFERENCES, n_bootstrap=50))


def test_true_drop_cross_fitted_on_halves_of_the_episodes():
    # Even episodes put t's peak at step 0 (t = 1, .5, .5), odd ones at step 1000 (.5, 1, .5);
    # the full curve, t = [.75, .75, .5], drops by .25.
    checkpoints = [
        Evaluation(0, [0, 0], [4, 2]),
        Evaluation(1000, [1, 1], [2, 4]),
        Evaluation(2000, [2, 2], [2, 2]),
    ]
    report = goodhart_report(checkpoints, REFERENCES, n_bootstrap=20)
    assert report.true_drop == 0.25
    # The peak picked on even episodes (step 0), measured on odd ones: .5 - .5; and the other way
    # round (step 1000): .5 - .5. Halves that disagree on the peak show the fall was noise.
    assert report.true_drop_debiased == 0.0
    assert f"{'true drop, cross-fitted':<30}{'0.000':>10}" in report.summary().splitlines()
    assert "the cross-fitted drop (peak picked on even episodes, measured on odd ones" in said(report)


def test_true_drop_is_biased_up_under_noise_and_the_cross_fitted_drop_is_not():
    # t is flat at .5 over 8 checkpoints (no drop at all); 8 episodes of sd .5 (normalised) each.
    rng = np.random.default_rng(4)
    plain, crossed = [], []
    for _ in range(300):
        checkpoints = [Evaluation(1000 * k, rng.normal(k, 1, 8), rng.normal(2, 2, 8)) for k in range(8)]
        report = goodhart_report(checkpoints, REFERENCES, n_bootstrap=1)
        plain.append(report.true_drop)
        crossed.append(report.true_drop_debiased)
    # The plain drop is a maximum over noise: about 1.4 standard errors (.18) of a checkpoint mean.
    assert 0.2 < np.mean(plain) < 0.3
    assert abs(np.mean(crossed)) < 3 * np.std(crossed) / math.sqrt(300)


def test_intended_below_random_is_said():
    # The proxy is a cost here: intended behaviour scores 0 where random actions score 4, so p
    # rises as the agent's proxy return falls.
    references = {"random": returns([3, 5], [-1, 1]), "intended": returns([-1, 1], [3, 5])}
    with pytest.warns(GoodhartWarning, match="intended reference scores below random on the proxy"):
        report = goodhart_report(run([4, 0, -4], [0, 2, 4], spread=1), references, n_bootstrap=20)
    assert report.proxy == [0.0, 1.0, 2.0]
    assert report.intended_below_random == ["proxy"]
    assert "warning: the intended reference scores below random on the proxy (0 < 4)" in said(report)
    assert GoodhartReport.from_json(report.to_json()) == report


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
        Evaluation(5, [1.0, 2.0], [1.0, float("nan")])
    references = dict(REFERENCES, random=returns([0, float("nan")], [0, 0]))
    with pytest.raises(ValueError, match="references\\['random'\\].proxy holds non-finite"):
        goodhart_report(run([0, 1], [0, 1]), references)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="proxy has 2 episodes but true has 3"):
        Evaluation(0, [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="run 1 has checkpoints at steps \\[0\\] but run 0 at \\[0, 1000\\]"):
        goodhart_report([run([0, 1], [0, 1]), run([0], [0])], REFERENCES)
    with pytest.raises(ValueError, match="equal length"):
        kendall_tau([1, 2, 3], [1, 2])


def test_checkpoint_is_the_deprecated_old_name_of_evaluation():
    """The record was first called Checkpoint (a name checkpoint.pt, the training state, also
    claims): it still imports, from gaming_gym.metrics and from gaming_gym, with a warning that
    names the new one and points at the code asking for the old."""
    with pytest.warns(DeprecationWarning, match="Checkpoint is renamed Evaluation") as caught:
        from gaming_gym.metrics import Checkpoint
    assert Checkpoint is Evaluation and caught[0].filename == __file__
    with pytest.warns(DeprecationWarning, match="Checkpoint is renamed Evaluation") as caught:
        assert gaming_gym.Checkpoint is Evaluation
    assert caught[0].filename == __file__
    with pytest.raises(AttributeError, match="has no attribute 'Checkpoints'"):
        gaming_gym.metrics.Checkpoints  # noqa: B018  (other names are not aliased)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from gaming_gym.metrics import Evaluation as current  # the new name: no warning
    assert current is Evaluation


def test_bad_checkpoints_are_rejected():
    with pytest.raises(ValueError, match="strictly increasing"):
        goodhart_report([Evaluation(10, [1], [1]), Evaluation(5, [1], [1])], REFERENCES)
    with pytest.raises(ValueError, match="no checkpoints"):
        goodhart_report([], REFERENCES)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        Evaluation(0, [], [])
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        Evaluation(-1, [1], [1])
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
    assert json.loads(path.read_text())["format"] == "gaming_gym.GoodhartReport/2"
    with pytest.raises(ValueError, match="Not a Goodhart report"):
        GoodhartReport.from_json('{"steps": [1]}')


def test_summary_is_one_table():
    references = {"random": returns([0], [0]), "intended": returns([4], [4])}
    summary = goodhart_report(run([0, 2, 4, 6, 8], [0, 2, 4, 3, 1]), references, BOAT, {"laps": 3}).summary()
    assert "GamingGym/BoatRace-v1 (laps=3)" in summary
    assert "Goodhart gap p - t (final)         1.750   [1.750, 1.750]" in summary.splitlines()
    assert "onset step                          2000   [2000, 2000]" in summary.splitlines()


# --- Gao et al.'s fits against d ----------------------------------------------------------------


def rl_gain(d, a, b):
    """Gao et al.'s RL form, written out apart from the module: d (a - b ln d), 0 at d = 0."""
    return np.array([0.0 if x == 0 else x * (a - b * math.log(x)) for x in d])


def bon_gain(d, a, b):
    """Gao et al.'s best-of-n form: d (a - b d)."""
    return np.asarray(d) * (a - b * np.asarray(d))


D = np.linspace(0, 4, 17)


def test_gao_rl_fit_recovers_a_and_b():
    fit = fit_gao(D, rl_gain(D, 2.0, 1.0), "rl")
    assert (fit.form, fit.n_points) == ("rl", 17)
    assert fit.a == pytest.approx(2.0, abs=1e-6)
    assert fit.b == pytest.approx(1.0, abs=1e-6)
    assert fit.peak_d == pytest.approx(math.e, abs=1e-6)  # exp(a / b - 1)
    assert fit.peak_gold == pytest.approx(math.e, abs=1e-6)  # R(d*) = b d* in this form
    assert fit.rmse < 1e-9


def test_gao_bon_fit_recovers_a_and_b():
    fit = fit_gao(D, bon_gain(D, 1.5, 0.8), "bon")
    assert fit.a == pytest.approx(1.5, abs=1e-6)
    assert fit.b == pytest.approx(0.8, abs=1e-6)
    assert fit.peak_d == pytest.approx(0.9375, abs=1e-6)  # a / (2 b)
    assert fit.peak_gold == pytest.approx(0.703125, abs=1e-6)  # a^2 / (4 b)
    assert fit.rmse < 1e-9


def test_gao_fits_recover_a_and_b_under_noise():
    rng = np.random.default_rng(0)
    d = np.linspace(0, 4, 81)
    for form, gain, a, b in (("rl", rl_gain, 2.0, 1.0), ("bon", bon_gain, 1.5, 0.8)):
        fit = fit_gao(d, gain(d, a, b) + rng.normal(0, 0.02, len(d)), form)
        assert fit.a == pytest.approx(a, abs=0.01)
        assert fit.b == pytest.approx(b, abs=0.01)
        assert 0.015 < fit.rmse < 0.025  # about the noise's standard deviation


@pytest.mark.parametrize(
    "form, gain, a, b",
    [
        ("rl", rl_gain, 2.0, 1.0),
        ("rl", rl_gain, 0.5, 0.7),
        ("rl", rl_gain, -0.3, 0.4),  # the gain dips below 0 after an early peak at d* = 0.17
        ("bon", bon_gain, 1.5, 0.8),
        ("bon", bon_gain, 0.2, 0.05),
    ],
)
def test_gao_peak_is_the_maximum_of_the_fitted_curve(form, gain, a, b):
    fit = fit_gao(D, gain(D, a, b), form)
    grid = np.linspace(1e-5, 10, 1_000_000)  # spacing 1e-5
    values = fit.predict(grid)
    assert fit.peak_d == pytest.approx(grid[np.argmax(values)], abs=2e-5)
    assert fit.peak_gold == pytest.approx(values.max(), abs=1e-9)


def test_gao_fit_without_a_turn_down_has_no_peak():
    straight = fit_gao(D, 0.5 * D, "rl")  # b = 0 (up to rounding)
    convex = fit_gao(D, bon_gain(D, 1.0, -0.5), "bon")
    falling = fit_gao(D, bon_gain(D, -1.0, 0.5), "bon")  # concave, but its top is at d < 0
    for fit in (straight, convex, falling):
        assert fit.peak_d is None and fit.peak_gold is None
    assert straight.a == pytest.approx(0.5)


def test_gao_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="Unknown Gao form 'log'; accepted: \\['bon', 'rl'\\]"):
        fit_gao(D, D, "log")
    with pytest.raises(ValueError, match="at least two distinct d > 0"):
        fit_gao([0, 1], [0, 1], "rl")
    with pytest.raises(ValueError, match="at least two distinct d > 0"):
        fit_gao([0, 1, 1], [0, 1, 1], "bon")
    with pytest.raises(
        ValueError, match="gold holds non-finite values \\(NaN or inf\\) at checkpoints \\[1\\]"
    ):
        fit_gao([0, 1, 2], [0, math.nan, 1], "rl")
    with pytest.raises(ValueError, match="d holds non-finite"):
        fit_gao([0, math.inf, 2], [0, 1, 1], "rl")
    with pytest.raises(ValueError, match="cannot be negative, got \\[-1.0\\]"):
        fit_gao([-1, 1, 2], [0, 1, 1], "rl")
    with pytest.raises(ValueError, match="got 3 d and 2 gold values"):
        fit_gao([0, 1, 2], [0, 1], "rl")


def test_gao_fit_dict_round_trip():
    fit = fit_gao(D, bon_gain(D, 1.5, 0.8), "bon")
    assert GaoFit.from_dict(json.loads(json.dumps(fit.to_dict()))) == fit


# --- early stopping on a held-out check ---------------------------------------------------------


def test_early_stop_counts_a_fall_of_exactly_min_drop():
    # Best 1.0 at index 2. At index 3 the window (2, 3) still holds the best; at index 4 both
    # 0.9s sit 0.1 below it (1.0 - 0.9 is 0.0999... in floating point, and still counts).
    assert early_stop([0, 0.5, 1.0, 0.9, 0.9, 0.5]) == EarlyStop(stop_index=4, kept_index=2)
    # A fall of 0.09 never counts: training runs to the end and keeps the last checkpoint.
    assert early_stop([0, 0.5, 1.0, 0.91, 0.91, 0.91]) == EarlyStop(stop_index=None, kept_index=5)


def test_early_stop_never_fires_on_a_rising_curve():
    assert early_stop([0, 0.2, 0.4, 0.4, 0.5]) == EarlyStop(None, 4)
    assert early_stop([0.3]) == EarlyStop(None, 0)


def test_early_stop_patience():
    curve = [0, 1, 0.8, 0.95, 0.7, 0.6]  # best 1 at index 1
    assert early_stop(curve, patience=1) == EarlyStop(2, 1)  # 0.8 is 0.2 below at once
    # Patience 2: (0.8, 0.95) fails, 0.95 being 0.05 below; so does (0.95, 0.7); (0.7, 0.6) fires.
    assert early_stop(curve, patience=2) == EarlyStop(5, 1)
    assert early_stop(curve, patience=3) == EarlyStop(None, 5)  # every window of 3 holds 0.95


def test_early_stop_waits_out_a_dip_that_recovers():
    curve = [0, 1, 0.7, 1.2, 0.5, 0.4]
    # Patience 2: the dip at index 2 recovers to a new best (1.2 at index 3) before a second fall.
    assert early_stop(curve) == EarlyStop(5, 3)
    assert early_stop(curve, patience=1) == EarlyStop(2, 1)


def test_early_stop_min_drop():
    curve = [0, 1, 0.8, 0.7]
    assert early_stop(curve, min_drop=0.25) == EarlyStop(None, 3)
    assert early_stop(curve, min_drop=0.2) == EarlyStop(3, 1)  # 1 - 0.8 = 0.19999...
    # min_drop 0 is plain patience: stop after `patience` checkpoints without a new best.
    assert early_stop([0, 1, 1, 1], min_drop=0) == EarlyStop(3, 1)


def test_early_stop_is_prefix_consistent():
    rng = np.random.default_rng(3)
    fired = 0
    for _ in range(200):
        curve = np.cumsum(rng.normal(0, 0.1, 12))
        whole = early_stop(curve)
        for end in range(1, len(curve) + 1):
            if whole.stop_index is not None and whole.stop_index < end:
                assert early_stop(curve[:end]) == whole
            else:
                assert early_stop(curve[:end]) == EarlyStop(None, end - 1)
        fired += whole.stop_index is not None
    assert 20 < fired < 180  # both branches exercised


def test_early_stop_rejects_bad_input():
    for patience in (0, True, 1.5):
        with pytest.raises(ValueError, match="patience must be an int >= 1"):
            early_stop([0, 1], patience=patience)
    for min_drop in (-0.1, math.nan):
        with pytest.raises(ValueError, match="min_drop must be a finite number >= 0"):
            early_stop([0, 1], min_drop=min_drop)
    with pytest.raises(ValueError, match="holdout curve must be a non-empty 1-D array of checkpoint values"):
        early_stop([])
    with pytest.raises(ValueError, match="non-finite values \\(NaN or inf\\) at checkpoints \\[1\\]"):
        early_stop([0, math.nan])


# --- Goodhart dynamics in the report ------------------------------------------------------------

D_DYNAMICS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def dynamics_run(true_means, holdout_means):
    """Checkpoints at steps 0, 1000, ... with kl = d^2 for d in D_DYNAMICS, two equal episodes each."""
    return [
        Evaluation(1000 * k, [2 * k] * 2, [t] * 2, d**2, [h])
        for k, (t, h, d) in enumerate(
            zip(true_means, holdout_means, D_DYNAMICS[: len(true_means)], strict=True)
        )
    ]


# t = [0, .5, 1, .75, .5, .25, 0] peaks at step 2000; the held-out check
# h = [0, .5, .75, 1, .75, .5, .25] peaks a checkpoint later, at step 3000.
PEAKED_TRUE, LATER_HOLDOUT = [0, 2, 4, 3, 2, 1, 0], [0, 2, 3, 4, 3, 2, 1]


def test_report_measures_goodhart_dynamics():
    report = goodhart_report(dynamics_run(PEAKED_TRUE, LATER_HOLDOUT), REFERENCES, BOAT, n_bootstrap=20)
    assert report.kl == [0.0, 0.25, 1.0, 2.25, 4.0, 6.25, 9.0]
    assert report.d == D_DYNAMICS
    assert report.holdout_true == [0.0, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25]
    assert report.observed_peak == Peak(step=2000, true=1.0, d=1.0)
    assert report.gao_origin_step == 0
    assert report.gao_fits == {form: fit_gao(D_DYNAMICS, report.true, form) for form in ("rl", "bon")}
    # Held-out best 1 at step 3000; at step 5000 the last two (0.75, 0.5) both sit >= 0.1 below
    # it: stop there, keep step 3000, whose t is 0.75, against the oracle's t = 1 at step 2000.
    assert report.early_stopping == EarlyStoppingOutcome(
        patience=2,
        stop_steps=[5000],
        kept_steps=[3000],
        oracle_steps=[2000],
        kept_true=0.75,
        oracle_true=1.0,
        kept_fraction=0.75,
    )
    impatient = goodhart_report(
        dynamics_run(PEAKED_TRUE, LATER_HOLDOUT), REFERENCES, n_bootstrap=20, early_stop_patience=1
    )
    assert (impatient.early_stopping.stop_steps, impatient.early_stopping.kept_steps) == ([4000], [3000])
    with pytest.raises(ValueError, match="patience must be an int >= 1"):
        goodhart_report(dynamics_run(PEAKED_TRUE, LATER_HOLDOUT), REFERENCES, early_stop_patience=0)


def test_the_final_distance_is_d_at_the_last_checkpoint():
    report = goodhart_report(dynamics_run(PEAKED_TRUE, LATER_HOLDOUT), REFERENCES, BOAT, n_bootstrap=20)
    assert report.final_d == D_DYNAMICS[-1] and report.final_d_ci is None
    assert f"{'distance d = sqrt(KL), final':<30}{D_DYNAMICS[-1]:>10.3f}" in report.summary().splitlines()
    without_kl = goodhart_report(run([0, 2], [0, 1]), REFERENCES, n_bootstrap=20)
    assert without_kl.final_d is None and "distance d" not in without_kl.summary()


def test_gao_gain_is_measured_from_the_initial_policy():
    # t = [.25, .5, 1, .75, .5] at d = [0, 1, 2, 3, 4]: the gain over step 0 is [0, .25, .75, .5, .25].
    trues = [1, 2, 4, 3, 2]
    checkpoints = [Evaluation(1000 * k, [0, 0], [t, t], float(k**2)) for k, t in enumerate(trues)]
    report = goodhart_report(checkpoints, REFERENCES, n_bootstrap=20)
    assert report.gao_origin_step == 0
    assert report.gao_fits["bon"] == fit_gao([0, 1, 2, 3, 4], [0, 0.25, 0.75, 0.5, 0.25], "bon")
    # Without an evaluation at kl = 0 the first checkpoint is the origin.
    later = goodhart_report(checkpoints[1:], REFERENCES, n_bootstrap=20)
    assert later.gao_origin_step == 1000
    assert later.gao_fits["bon"] == fit_gao([1, 2, 3, 4], [0, 0.5, 0.25, 0], "bon")
    # The origin is the checkpoint with kl == 0 even when it is not the first.
    moved = [
        Evaluation(c.step, c.proxy, c.true, kl)
        for c, kl in zip(checkpoints, [1.0, 0.0, 4.0, 9.0, 16.0], strict=True)
    ]
    assert goodhart_report(moved, REFERENCES, n_bootstrap=20).gao_origin_step == 1000


def test_gao_fits_through_too_few_points_are_left_out_with_one_line_saying_why():
    """Two parameters through 3 points at d > 0 fit almost exactly: an rmse of 0.000 that says
    nothing. Fewer than 4 distinct d > 0 leave the fits out, and the report says why."""
    checkpoints = [Evaluation(1000 * k, [0, 0], [t, t], float(k**2)) for k, t in enumerate([1, 2, 4, 3])]
    report = goodhart_report(checkpoints, REFERENCES, n_bootstrap=20)
    assert report.gao_fits is None
    lines = [line for line in report.summary().splitlines() if "Gao" in line]
    assert lines == [
        "Gao et al. fits left out: 3 distinct point(s) at d > 0, and a fit of 2 parameters needs at "
        "least 4 (evaluate more often)"
    ]
    without_kl = [Evaluation(c.step, c.proxy, c.true) for c in checkpoints]
    assert "Gao" not in goodhart_report(without_kl, REFERENCES, n_bootstrap=20).summary()


def test_early_stopping_over_seeds_uses_each_runs_own_curves():
    run_a = dynamics_run(PEAKED_TRUE, LATER_HOLDOUT)  # stop 5000, keep 3000 (t .75); oracle 2000 (t 1)
    run_b = dynamics_run([0, 1, 2, 3, 4, 3, 2], [0, 1, 2, 3, 4, 3, 2])  # stop 6000, keep = oracle 4000
    report = goodhart_report([run_a, run_b], REFERENCES, n_bootstrap=20)
    assert report.early_stopping == EarlyStoppingOutcome(
        patience=2,
        stop_steps=[5000, 6000],
        kept_steps=[3000, 4000],
        oracle_steps=[2000, 4000],
        kept_true=0.875,
        oracle_true=1.0,
        kept_fraction=0.875,
    )
    # The mean curve t = [0, .375, .75, .75, .75, .5, .25]: the observed peak is its first maximum.
    assert report.observed_peak == Peak(step=2000, true=0.75, d=1.0)
    assert report.kl == [0.0, 0.25, 1.0, 2.25, 4.0, 6.25, 9.0]


def test_kept_fraction_needs_a_positive_oracle():
    # t = [0, -.25, -.5] never rises above random, so there is nothing to keep a fraction of.
    report = goodhart_report(dynamics_run([0, -1, -2], [0, -1, -2]), REFERENCES, n_bootstrap=20)
    assert report.early_stopping.stop_steps == [2000]
    assert report.early_stopping.oracle_true == 0.0
    assert report.early_stopping.kept_fraction is None


def test_goodhart_dynamics_need_their_records():
    report = goodhart_report(run([0, 2, 4], [0, 4, 2]), REFERENCES, n_bootstrap=20)
    assert report.kl is report.d is report.holdout_true is report.gao_origin_step is None
    assert report.gao_fits is report.early_stopping is None
    assert report.observed_peak == Peak(step=1000, true=1.0, d=None)
    assert goodhart_report(run([1], [1]), REFERENCES, n_bootstrap=20).observed_peak is None
    # KL at two checkpoints gives d but too few points to fit.
    two = goodhart_report(
        [Evaluation(0, [0, 0], [0, 0], 0.0), Evaluation(1000, [1, 1], [1, 1], 1.0)], REFERENCES
    )
    assert two.d == [0.0, 1.0]
    assert two.gao_fits is None
    with pytest.raises(ValueError, match=r"kl is recorded .* missing at \(run, step\) \[\(0, 1000\)\]"):
        goodhart_report([Evaluation(0, [0], [0], 0.0), Evaluation(1000, [1], [1])], REFERENCES)


def test_json_round_trip_with_goodhart_dynamics():
    report = goodhart_report(dynamics_run(PEAKED_TRUE, LATER_HOLDOUT), REFERENCES, BOAT, n_bootstrap=20)
    assert GoodhartReport.from_json(report.to_json()) == report
    data = json.loads(report.to_json())
    assert data["format"] == "gaming_gym.GoodhartReport/2"
    assert data["d"] == D_DYNAMICS
    measures = data["measures"]
    assert measures["gao_fits"]["value"]["rl"] == report.gao_fits["rl"].to_dict()
    assert measures["observed_peak"] == {"value": {"step": 2000, "true": 1.0, "d": 1.0}, "interval": None}
    assert measures["early_stopping"]["value"]["kept_steps"] == [3000]
    assert measures["final_gap"] == {"value": report.final_gap, "interval": list(report.final_gap_ci)}


def first_format(report: GoodhartReport) -> dict:
    """The report as the first format wrote it: every measure (and its ``_ci``) a field of its own."""
    data = json.loads(report.to_json())
    data["format"] = "gaming_gym.GoodhartReport/1"
    for name, entry in data.pop("measures").items():
        data[name] = entry["value"]
        if entry["interval"] is not None or name in ("final_proxy", "final_true", "final_gap", "true_drop"):
            data[f"{name}_ci"] = entry["interval"]
    del data["early_stop_patience"]
    return data


def test_reports_of_the_first_format_written_before_goodhart_dynamics_still_load():
    report = goodhart_report(run([0, 2, 4], [0, 4, 2]), REFERENCES, BOAT, n_bootstrap=20)
    old = first_format(report)
    for key in ("kl", "d", "holdout_true", "gao_origin_step", "gao_fits", "observed_peak", "early_stopping"):
        del old[key]
    for key in ("interval_method", "min_episodes", "true_drop_debiased", "intended_below_random"):
        del old[key]
    loaded = GoodhartReport.from_json(json.dumps(old))
    gone = {"observed_peak": None, "true_drop_debiased": None, "gao_fits": None, "early_stopping": None}
    assert loaded == dataclasses.replace(report, measures={**report.measures, **gone}, min_episodes=None)
    assert loaded.summary().splitlines()[-1].startswith("onset step")


def test_old_reports_over_seeds_say_their_intervals_undercover():
    # Reports over seeds written before the Student-t interval hold percentile bootstrap intervals.
    runs = [run([0, 2, 4], [0, 4, 2], spread=1), run([0, 3, 5], [0, 4, 1], spread=1)]
    old = first_format(goodhart_report(runs, REFERENCES, n_bootstrap=20))
    for key in ("interval_method", "min_episodes", "true_drop_debiased", "intended_below_random"):
        del old[key]
    loaded = GoodhartReport.from_json(json.dumps(old))
    assert loaded.interval_method == "percentile-bootstrap"
    assert "written by an older version: at few runs its intervals cover less than their level" in said(
        loaded
    )


SUMMARY_OF_DYNAMICS = [
    "observed peak of t            step 2000, d 1.000, t 1.000",
    "Gao et al. fits of t - t(step 0) against d = sqrt(KL):",
    "  rl: d (a - b ln d)          a 0.800, b 0.743, d* 1.081, rmse 0.103",
    "  bon: d (a - b d)            a 1.109, b 0.385, d* 1.440, rmse 0.144",
    "early stopping on the held-out check (fall >= 0.1, patience 2):",
    "  stop step                   5000",
    "  kept step                   3000",
    "  oracle step                 2000",
    "  kept t / oracle t           0.750 / 1.000",
    "  fraction of oracle t kept   0.750",
]


def test_summary_shows_goodhart_dynamics():
    report = goodhart_report(dynamics_run(PEAKED_TRUE, LATER_HOLDOUT), REFERENCES, BOAT, n_bootstrap=20)
    assert report.summary().splitlines()[-10:] == SUMMARY_OF_DYNAMICS


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


def test_reference_policy_looks_up_random_and_the_scripted_policies_by_env_id():
    """One lookup by env id serves all three references: "random" is random_policy seeded with
    ``seed``, the scripted ones are the front's, for the knobs given."""
    env = gym.make_vec(BOAT, num_envs=3, continuous=True)
    obs, _ = env.reset(seed=0)
    looked_up = reference_policy(BOAT, "random", {"continuous": True}, seed=7)(obs)
    assert torch.equal(looked_up, random_policy(env.single_action_space, seed=7)(obs))
    assert looked_up.shape == (3, 2)
    exploit = reference_policy(BOAT, "exploit", {"continuous": True})(obs)
    assert torch.equal(exploit, env.unwrapped.reference_policy("exploit")(obs))
    with pytest.raises(KeyError, match="BoatRace has no reference policy 'cheat'"):
        reference_policy(BOAT, "cheat")


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
