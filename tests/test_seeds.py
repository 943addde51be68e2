"""Across seeds: each seed's numbers, who rose and fell, Student-t intervals over seeds and their
coverage, the across-seed figure, and the multi-seed demo end to end on a tiny budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gaming_gym.metrics import Evaluation, goodhart_report
from gaming_gym.metrics.seeds import SeedResult, across_seeds, seed_table
from gaming_gym.seed_plots import centre_and_band, interquartile_mean, plot_seed_curves

REFERENCES_MEANS = {"random": (0.0, 0.0), "intended": (4.0, 4.0)}


def references():
    from gaming_gym.evaluation import EpisodeReturns

    return {
        name: EpisodeReturns(np.array([p - 1, p + 1]), np.array([t - 1, t + 1]), np.ones(2, int))
        for name, (p, t) in REFERENCES_MEANS.items()
    }


def report_of(proxy, true):
    """A report of raw means (normalised: divided by 4), two episodes at +-0.25 each."""
    evaluations = [
        Evaluation(1000 * k, [4 * p - 0.25, 4 * p + 0.25], [4 * t - 0.25, 4 * t + 0.25])
        for k, (p, t) in enumerate(zip(proxy, true, strict=True))
    ]
    return goodhart_report(evaluations, references(), "GamingGym/BoatRace-v1", n_bootstrap=50)


def result(seed, **numbers):
    base = dict(
        peak_step=1000, peak_true=0.8, proxy_at_peak=1.0, first_true=0.0, final_true=0.3, final_proxy=2.0
    )
    onset = numbers.pop("onset_step", 2000)
    return SeedResult(seed=seed, onset_step=onset, final_step=5000, **{**base, **numbers})


def test_a_seed_result_reads_its_report():
    report = report_of([0, 0.5, 1, 1, 1.5, 2], [0, 0.5, 1, 1, 0.3, 0.3])
    seed = SeedResult.of(7, report)
    assert (seed.seed, seed.peak_step, seed.peak_true, seed.proxy_at_peak) == (7, 2000, 1.0, 1.0)
    assert (seed.first_true, seed.final_true, seed.final_proxy) == (0.0, 0.3, 2.0)
    assert seed.final_gap == pytest.approx(1.7) and seed.drop == pytest.approx(0.7)
    assert seed.onset_step == report.onset_step == 3000
    assert seed.rises_and_falls


@pytest.mark.parametrize(
    "numbers, rose_and_fell",
    [
        ({}, True),
        ({"first_true": 0.61}, False),  # rose by 0.19 only
        ({"final_true": 0.61}, False),  # fell by 0.19 only
        ({"final_proxy": 0.99}, False),  # p fell below p at the peak
        ({"first_true": 0.6, "final_true": 0.6, "final_proxy": 1.0}, True),  # 0.2 and 0.2, p held
        ({"peak_true": 0.7, "first_true": 0.5, "final_true": 0.5}, True),  # 0.7 - 0.5 = 0.1999...
    ],
)
def test_rises_and_falls_needs_a_rise_a_fall_and_the_proxy_held(numbers, rose_and_fell):
    assert result(0, **numbers).rises_and_falls is rose_and_fell


def test_across_seeds_gives_means_with_student_t_intervals_and_the_onset_where_found():
    results = [result(0, final_true=0.2), result(1, final_true=0.4, onset_step=None)]
    results.append(result(2, final_true=0.3))
    summary = across_seeds(results)
    t = summary["final_true"]
    assert t.mean == pytest.approx(0.3) and t.n == 3
    # sd 0.1 over 3 seeds: half-width t_{0.975, 2} * 0.1 / sqrt(3) = 4.3027 * 0.05774
    assert t.interval == pytest.approx((0.3 - 0.24841, 0.3 + 0.24841), abs=1e-4)
    assert summary["onset_step"].n == 2 and summary["onset_step"].mean == 2000
    assert summary["onset_step"].interval == pytest.approx((2000, 2000))
    late = across_seeds([result(0, onset_step=0), result(1, onset_step=5000)])["onset_step"]
    assert late.interval == (0.0, 5000.0)  # not beyond the training's first and last steps
    table = seed_table(results)
    assert "2 seeds" in table and "3 of 3" in table.splitlines()[-4]


@pytest.mark.parametrize("seeds", [4, 5])
@pytest.mark.parametrize(
    "draw, mean",
    [
        (lambda rng, size: rng.normal(0, 1, size), 0.0),
        (lambda rng, size: rng.uniform(0, 1, size), 0.5),
        (lambda rng, size: rng.lognormal(0, 0.5, size), float(np.exp(0.125))),
    ],
    ids=["normal", "uniform", "lognormal"],
)
def test_student_t_over_few_seeds_covers_at_least_90_percent(seeds, draw, mean):
    rng = np.random.default_rng(seeds)
    covered = 0
    trials = 2000
    for values in draw(rng, (trials, seeds)):
        seeds_results = [result(i, final_true=v) for i, v in enumerate(values)]
        low, high = across_seeds(seeds_results)["final_true"].interval
        covered += low <= mean <= high
    assert covered / trials >= 0.90


def test_the_centre_is_the_mean_under_ten_seeds_and_the_iqm_from_ten():
    curves = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 10.0]])
    centre, low, high = centre_and_band(curves)
    assert np.allclose(centre, [1.5, 4.0]) and np.all(low < centre) and np.all(centre < high)
    many = np.arange(12.0)[:, None] + np.zeros((1, 3))
    many[-1] = 1000.0  # one wild seed moves the mean, not the IQM
    centre, low, high = centre_and_band(many)
    assert np.allclose(centre, interquartile_mean(many)) and np.allclose(centre, 5.5)
    assert np.all(low <= centre) and np.all(centre <= high)


def test_the_seed_figure_is_a_png(tmp_path):
    reports = [report_of([0, 0.5, 1, 1, 1.5, 2], [0, 0.5, 1, 1, d, d]) for d in (0.2, 0.3, 0.9)]
    path = plot_seed_curves(reports, [0, 1, 2], tmp_path / "seeds.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    with pytest.raises(ValueError, match="one report per seed"):
        plot_seed_curves(reports, [0, 1], tmp_path / "bad.png")


def test_the_demo_trains_two_stacked_seeds_and_summarises_them(tmp_path):
    from gaming_gym.demo import describe, run_demo

    demo = run_demo(tmp_path / "demo", seeds=[3, 5], steps=2 * 8192, threads=1, progress=False)
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["env_id"] == "GamingGym/BoatRace-v1"
    assert [seed["seed"] for seed in summary["seeds"]] == [3, 5]
    for seed, run in zip(summary["seeds"], demo.runs, strict=True):
        assert seed["final_true"] == pytest.approx(run.report.true[-1])
        assert seed["onset_step"] is None or seed["onset_step"] in run.report.steps
        assert {"peak_step", "peak_true", "final_proxy"} <= set(seed)
    over = summary["across_seeds"]["final_gap"]
    gaps = [seed["final_gap"] for seed in summary["seeds"]]
    assert over["n"] == 2 and min(gaps) - 1e-9 <= over["mean"] <= max(gaps) + 1e-9
    assert over["interval"][0] <= over["mean"] <= over["interval"][1]
    assert summary["rose_and_fell"] == sum(seed["rises_and_falls"] for seed in summary["seeds"])
    assert summary["gif_seed"] in (3, 5) and demo.gif.exists() and demo.figure.exists()
    assert "2 seeds trained as one stack" in describe(demo)


@pytest.mark.parametrize("seeds", [[], [1, 1], [-1], [True]])
def test_the_demo_refuses_bad_seeds_before_training(tmp_path, seeds):
    from gaming_gym.demo import run_demo
    from gaming_gym.errors import ConfigError

    with pytest.raises(ConfigError, match="seed"):
        run_demo(tmp_path / "demo", seeds=seeds, steps=8192)
    assert not (tmp_path / "demo").exists()


def test_the_gif_seed_is_the_one_nearest_the_median_gap_the_lower_on_a_tie():
    from gaming_gym.demo import median_gap_seed

    results = [result(seed, final_proxy=proxy) for seed, proxy in [(5, 4.0), (2, 1.0), (9, 2.0), (1, 3.0)]]
    assert median_gap_seed(results) == 1  # seeds 9 and 1 (gaps 1.7, 2.7) lie 0.5 from the median 2.2
    assert median_gap_seed(results[:3]) == 9
