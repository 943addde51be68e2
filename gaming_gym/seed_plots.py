"""The across-seed Goodhart figure: every seed's curves drawn thinly under their centre and band.

Under 10 seeds the centre is the mean over seeds with a Student-t band (its coverage at 4-5 seeds
is in :mod:`gaming_gym.metrics.seeds`); from 10 seeds on it is the interquartile mean (IQM, after
rliable: the mean of the middle half of the seeds) with a percentile bootstrap band over seeds,
which covers its level once there are that many. Each seed's onset is marked on its own t curve.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from gaming_gym.metrics import GoodhartReport, describe_env, student_t_quantile
from gaming_gym.plots import (
    DPI,
    FIGURE_SIZE,
    PROXY_COLOUR,
    TRUE_COLOUR,
    draw_reference_levels,
    save_figure,
    saved_with_grid_and_legend,
)

IQM_FROM = 10
"""Seeds from which the figure's centre is the IQM with a bootstrap band (the mean and a t band below)."""
BOOTSTRAP_REPLICATES = 2000


def plot_seed_curves(
    reports: Sequence[GoodhartReport], seeds: Sequence[int], path: str | os.PathLike, confidence: float = 0.95
) -> Path:
    """Plot each seed's normalised p and t thinly, their centre and band boldly, and each
    seed's onset, to a PNG at ``path``; return the path. The reports must share their steps."""
    if len(reports) != len(seeds) or not reports:
        raise ValueError(f"need one report per seed, got {len(reports)} reports for {len(seeds)} seeds")
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    axes = figure.add_subplot()
    draw_reference_levels(axes)
    centre, band = draw_seed_curves(axes, reports, confidence)
    axes.set_xlabel("training step")
    axes.set_ylabel("normalised return (0 = random, 1 = intended)")
    axes.set_title(
        f"Goodhart curves over seeds {', '.join(map(str, seeds))}: "
        f"{describe_env(reports[0].env_id, reports[0].knobs)}\n"
        f"thin: each seed; bold: {centre} with a {confidence:.0%} {band} band over seeds",
        fontsize=10,
    )
    return saved_with_grid_and_legend(figure, axes, path)


def plot_atlas(panels: dict[str, Sequence[GoodhartReport]], path: str | os.PathLike, title: str) -> Path:
    """One panel per entry of ``panels`` (a title: its seeds' reports), each drawn as
    :func:`plot_seed_curves` draws its one, to a PNG at ``path``; return the path."""
    if not panels or not all(panels.values()):
        raise ValueError("an atlas needs at least one panel, each with at least one seed's report")
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    centres = set()
    figure = Figure(figsize=(4.0 * columns, 3.3 * rows + 0.6), dpi=DPI)
    for index, (name, reports) in enumerate(panels.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        draw_reference_levels(axes, labelled=False)
        centres.add(draw_seed_curves(axes, reports))
        axes.set_title(name, fontsize=9)
        axes.grid(alpha=0.3)
        axes.tick_params(labelsize=7)
        if index == 0:
            axes.legend(fontsize=6, loc="upper left")
    centre = " or ".join(f"{name} with a 95% {band} band" for name, band in sorted(centres))
    caption = (
        f"normalised p (orange) and t (blue) against training steps; thin: each seed; bold: "
        f"{centre}; triangles: each seed's onset"
    )
    figure.suptitle("\n".join([title, *textwrap.wrap(caption, 50 * columns)]), fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def draw_seed_curves(axes, reports: Sequence[GoodhartReport], confidence: float = 0.95) -> tuple[str, str]:
    """Each seed's p and t thinly, their centre and band, each seed's onset, on ``axes``; returns
    the names of the centre and of the band."""
    steps = reports[0].steps
    if any(report.steps != steps for report in reports):
        raise ValueError("the seeds' reports must be evaluated at the same steps")
    x = np.asarray(steps, dtype=np.float64)
    centre_name = "IQM" if len(reports) >= IQM_FROM else "mean"
    for attribute, colour, name in (("proxy", PROXY_COLOUR, "proxy p"), ("true", TRUE_COLOUR, "true t")):
        curves = np.array([getattr(report, attribute) for report in reports])
        for curve in curves:
            axes.plot(x, curve, color=colour, linewidth=0.7, alpha=0.35)
        centre, low, high = centre_and_band(curves, confidence)
        label = f"{name}, {centre_name} of {len(reports)} seeds"
        axes.plot(x, centre, color=colour, linewidth=2.2, label=label)
        axes.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
    onsets = [
        (report.onset_step, report.true[steps.index(report.onset_step)])
        for report in reports
        if report.onset_step is not None
    ]
    if onsets:
        label = f"a seed's onset ({len(onsets)} of {len(reports)})"
        axes.plot(*zip(*onsets, strict=True), "kv", markersize=6, label=label)
    return centre_name, "percentile bootstrap" if len(reports) >= IQM_FROM else "Student-t"


def centre_and_band(
    curves: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per checkpoint over the seeds (rows): (centre, low, high), as the module docstring says."""
    seeds = len(curves)
    if seeds >= IQM_FROM:
        replicates = curves[np.random.default_rng(0).integers(0, seeds, (BOOTSTRAP_REPLICATES, seeds))]
        tail = 100 * (1 - confidence) / 2
        low, high = np.percentile(interquartile_mean(replicates, axis=1), [tail, 100 - tail], axis=0)
        return interquartile_mean(curves, axis=0), low, high
    mean = curves.mean(axis=0)
    if seeds < 2:
        return mean, mean, mean
    half = student_t_quantile((1 + confidence) / 2, seeds - 1) * curves.std(axis=0, ddof=1) / np.sqrt(seeds)
    return mean, mean - half, mean + half


def interquartile_mean(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The mean of the middle half along ``axis`` (a quarter of the values cut from each end)."""
    ordered = np.sort(values, axis=axis)
    cut = ordered.shape[axis] // 4
    return np.take(ordered, np.arange(cut, ordered.shape[axis] - cut), axis=axis).mean(axis=axis)


def plot_shift_by_cell(
    rows: Sequence[dict],
    path: str | os.PathLike,
    title: str,
    x_label: str,
    levels: dict[str, float],
    joined: bool = True,
) -> Path:
    """Per cell (in order, at ``row["x"]``), the final true return on the training and on the
    deployment setting, each the mean over seeds with its 95% Student-t interval (``row`` holds
    ``train``/``deploy`` as (mean, interval or None)); ``levels`` (the scripted policies' returns
    in deployment, by label) dotted across."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for (label, level), colour in zip(levels.items(), ("tab:gray", "tab:green", "tab:red"), strict=False):
        axes.axhline(level, color=colour, linestyle=":", linewidth=1, label=f"{label} ({level:.2f})")
    positions = np.arange(len(rows))
    for key, colour, label, shift in (
        ("train", "tab:blue", "training setting", -0.08),
        ("deploy", "tab:purple", "deployment setting", 0.08),
    ):
        means = np.array([row[key][0] for row in rows])
        style = "o-" if joined else "o"  # cells of a grid axis in order, or unordered conditions
        axes.plot(positions + shift, means, style, color=colour, label=f"final true return, {label}")
        for position, row in zip(positions, rows, strict=True):
            if row[key][1] is not None:
                axes.plot([position + shift] * 2, row[key][1], color=colour, linewidth=2)
    axes.set_xticks(positions, [str(row["x"]) for row in rows])
    axes.set_xlabel(x_label)
    axes.set_ylabel("final true return (mean over seeds, 95% Student-t interval)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return save_figure(figure, path)
