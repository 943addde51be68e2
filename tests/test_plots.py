"""Plots are written atomically as valid PNGs of the expected size."""

import struct
from pathlib import Path

import numpy as np
import pytest

from gaming_gym.evaluation import EpisodeReturns
from gaming_gym.metrics import Evaluation, goodhart_report
from gaming_gym.plots import (
    DPI,
    FIGURE_SIZE,
    plot_episode_scatter,
    plot_gao_fit,
    plot_gap_by_capability,
    plot_goodhart_curve,
    plot_true_against_d,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (signature, then the IHDR chunk)."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def episodes(proxy_mean: float, true_mean: float, rng: np.random.Generator, n: int = 6) -> EpisodeReturns:
    return EpisodeReturns(rng.normal(proxy_mean, 1, n), rng.normal(true_mean, 0.1, n), np.full(n, 100))


@pytest.fixture
def references():
    rng = np.random.default_rng(0)
    return {
        "random": episodes(2, 0, rng),
        "intended": episodes(17, 2, rng),
        "exploit": episodes(33, 0.2, rng),
    }


def expected_size() -> tuple[int, int]:
    return round(FIGURE_SIZE[0] * DPI), round(FIGURE_SIZE[1] * DPI)


def test_goodhart_curve_is_a_png(tmp_path, references):
    rng = np.random.default_rng(1)
    proxy_means, true_means = [2, 10, 17, 25, 33], [0, 1.2, 2, 1, 0.2]
    checkpoints = [
        Evaluation(10_000 * k, rng.normal(p, 1, 6), rng.normal(t, 0.1, 6))
        for k, (p, t) in enumerate(zip(proxy_means, true_means, strict=True))
    ]
    report = goodhart_report(
        checkpoints, references, "GamingGym/BoatRace-v1", {"respawn_delay": 30}, n_bootstrap=100
    )
    assert report.onset_step == 20_000
    path = plot_goodhart_curve(report, tmp_path / "plots" / "curve.png")
    assert png_size(path) == expected_size()
    assert path.stat().st_size > 20_000  # a drawn figure: empty axes take ~9 KB
    assert [p.name for p in path.parent.iterdir()] == ["curve.png"]  # no partial file left


def dynamics_run(rng: np.random.Generator, a: float = 1.2, b: float = 0.8) -> list[Evaluation]:
    """13 checkpoints at d = 0, 0.25, ..., 3 whose mean true return follows Gao's RL form (peak at
    d* = exp(a / b - 1)), with KL and a noisy held-out check recorded."""
    d = np.linspace(0, 3, 13)
    gain = d * (a - b * np.log(np.where(d > 0, d, 1.0)))  # normalised; the references scale it by 2
    return [
        Evaluation(
            10_000 * k,
            rng.normal(2 + 10 * k, 1, 6),
            rng.normal(2 * gain[k], 0.1, 6),
            d[k] ** 2,
            rng.normal(2 * gain[k], 0.2, 6),
        )
        for k in range(len(d))
    ]


def test_goodhart_dynamics_plot_on_both_axes(tmp_path, references):
    report = goodhart_report(
        dynamics_run(np.random.default_rng(1)), references, "GamingGym/BoatRace-v1", n_bootstrap=100
    )
    assert report.early_stopping is not None and report.gao_fits is not None
    for path in (
        plot_goodhart_curve(report, tmp_path / "step.png"),
        plot_goodhart_curve(report, tmp_path / "d.png", x="d"),
        plot_gao_fit(report, tmp_path / "fit.png"),
    ):
        assert png_size(path) == expected_size()
        assert path.stat().st_size > 20_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "fit.png", "step.png"]


def test_goodhart_dynamics_of_seeds_and_of_unpeaked_fits_plot(tmp_path, references):
    rng = np.random.default_rng(2)
    seeds = goodhart_report([dynamics_run(rng), dynamics_run(rng, 1.0, 0.6)], references)
    assert len(seeds.early_stopping.kept_steps) == 2
    assert png_size(plot_goodhart_curve(seeds, tmp_path / "seeds.png")) == expected_size()
    # The true gain rises all along (b = 0): the fits find no peak, or one far off the plot.
    rising = goodhart_report(dynamics_run(rng, 1.0, 0.0), references, n_bootstrap=20)
    assert all(fit.peak_d is None or fit.peak_d > 6 for fit in rising.gao_fits.values())
    assert png_size(plot_gao_fit(rising, tmp_path / "rising.png")) == expected_size()


def test_d_axis_needs_kl(tmp_path, references):
    report = goodhart_report(
        [Evaluation(0, [2.0, 2.0], [0.0, 0.0]), Evaluation(1, [30.0, 30.0], [0.1, 0.1])], references
    )
    with pytest.raises(ValueError, match="x='d' needs a report with KL from the initial policy"):
        plot_goodhart_curve(report, tmp_path / "d.png", x="d")
    with pytest.raises(ValueError, match="x='d' needs a report with KL"):
        plot_gao_fit(report, tmp_path / "fit.png")
    with pytest.raises(ValueError, match="x must be one of \\['d', 'step'\\], got 'kl'"):
        plot_goodhart_curve(report, tmp_path / "kl.png", x="kl")
    too_few = goodhart_report(
        [Evaluation(0, [2.0, 2.0], [0.0, 0.0], 0.0), Evaluation(1, [30.0, 30.0], [0.1, 0.1], 1.0)], references
    )
    with pytest.raises(ValueError, match="no Gao fit: it needs at least two checkpoints with distinct d > 0"):
        plot_gao_fit(too_few, tmp_path / "fit.png")
    assert list(tmp_path.iterdir()) == []


def test_single_checkpoint_curve_still_plots(tmp_path, references):
    report = goodhart_report([Evaluation(0, [29.0, 31.0], [0.1, 0.1])], references, n_bootstrap=20)
    assert png_size(plot_goodhart_curve(report, tmp_path / "one.png")) == expected_size()


def test_episode_scatter_is_a_png(tmp_path, references):
    agent = episodes(31, 0.3, np.random.default_rng(2))
    path = plot_episode_scatter(references, tmp_path / "scatter.png", agent, "GamingGym/BoatRace-v1")
    assert png_size(path) == expected_size()
    assert path.stat().st_size > 20_000


def test_plots_need_a_png_path(tmp_path, references):
    with pytest.raises(ValueError, match="ending in .png"):
        plot_episode_scatter(references, tmp_path / "scatter.jpg")
    assert list(tmp_path.iterdir()) == []


def test_true_against_d_plots_each_condition_and_needs_kl(tmp_path, references):
    runs = {
        label: goodhart_report(dynamics_run(np.random.default_rng(seed), a=a), references, n_bootstrap=20)
        for label, seed, a in (("no penalty", 1, 1.2), ("kl_coef 0.1", 2, 0.6))
    }
    path = plot_true_against_d(runs, tmp_path / "true_against_d.png", "KL penalty")
    assert png_size(path) == expected_size() and path.stat().st_size > 20_000
    without_kl = goodhart_report(
        [Evaluation(0, [2.0, 2.0], [0.0, 0.0]), Evaluation(10, [9.0, 9.0], [1.0, 1.0])], references
    )
    with pytest.raises(ValueError, match="KL recorded"):
        plot_true_against_d({"no kl": without_kl}, tmp_path / "never.png", "x")
    assert not (tmp_path / "never.png").exists()


def test_gap_by_capability_is_a_png(tmp_path):
    gaps = {"width 4": {100: [0.0, 0.1], 200: [0.1, 0.2]}, "width 64": {100: [0.0, 0.2], 200: [2.0, 2.4]}}
    path = plot_gap_by_capability(gaps, tmp_path / "capability.png", "optimisation pressure")
    assert png_size(path) == expected_size() and path.stat().st_size > 20_000
    with pytest.raises(ValueError, match="Nothing to plot"):
        plot_gap_by_capability({}, tmp_path / "empty.png", "x")
