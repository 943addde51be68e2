"""Figures of the Goodhart gap, drawn with matplotlib's Agg backend and saved atomically as PNG.

* :func:`plot_goodhart_curve`: normalised proxy and true return against training steps (or
  Gao et al.'s optimisation distance d), the gap shaded between them, interval bands, the onset
  marked, the random (0) and intended (1) levels drawn, and, where the report has early
  stopping, the held-out check's curve with the kept and oracle checkpoints.
* :func:`plot_gao_fit`: the true gain over the initial policy against d, with Gao et al.'s RL and
  best-of-n forms fitted, their peaks d* and the observed peak.
* :func:`plot_episode_scatter`: true against proxy return per episode for the references and
  the agent, so one sees where the agent sits between intended behaviour and the exploit.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot), so plotting needs no display
and leaves the global pyplot state alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gaming_gym.evaluation import EpisodeReturns
from gaming_gym.files import atomic_write
from gaming_gym.metrics import GAO_FORMS, MEASURES, GoodhartReport, describe_env

PROXY_COLOUR = "tab:orange"
TRUE_COLOUR = "tab:blue"
REFERENCE_STYLES = {
    # name: (colour, marker)
    "random": ("tab:gray", "X"),
    "intended": ("tab:green", "o"),
    "exploit": ("tab:red", "s"),
}
AGENT_STYLE = ("tab:purple", "^")
MEASURE_COLOURS = {"final_proxy": PROXY_COLOUR, "final_true": TRUE_COLOUR, "final_gap": "tab:red"}
KEPT_COLOUR = "tab:green"  # the checkpoint early stopping keeps
GAO_STYLES = {"rl": ("tab:red", "RL"), "bon": ("tab:brown", "best-of-n")}  # form: (colour, name)
X_AXES = {
    "step": "training step (environment steps)",
    "d": "sqrt KL from the initial policy, d (Gao et al.)",
}
FIGURE_SIZE = (8.0, 5.0)  # inches
DPI = 100


def plot_goodhart_curve(
    report: GoodhartReport, path: str | os.PathLike, title: str | None = None, x: str = "step"
) -> Path:
    """Plot a report's normalised proxy and true curves to a PNG at ``path``; return the path.

    ``x`` is "step" (training steps) or "d" (sqrt KL from the initial policy, which needs a report
    with KL). Points are joined in training order, so on the d axis the curve may turn back where
    the policy moved closer to its start.
    """
    xs = _x_values(report, x)
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    axes = figure.add_subplot()
    proxy, true = np.asarray(report.proxy), np.asarray(report.true)

    draw_reference_levels(axes)
    axes.fill_between(xs, true, proxy, color="tab:red", alpha=0.12, label="Goodhart gap (p - t)")
    for curve, intervals, colour, name in (
        (proxy, report.proxy_ci, PROXY_COLOUR, "proxy p"),
        (true, report.true_ci, TRUE_COLOUR, "true t"),
    ):
        axes.plot(xs, curve, color=colour, marker="o", markersize=3, label=f"normalised {name}")
        low, high = _band(intervals, curve)
        axes.fill_between(xs, low, high, color=colour, alpha=0.2, linewidth=0)
        if len(xs) == 1:  # a band of one point is invisible: show the interval as an error bar
            axes.errorbar(xs, curve, yerr=[curve - low, high - curve], color=colour, capsize=4, linestyle="")
    if report.onset_step is not None:
        axes.axvline(
            _x_at(report, xs, report.onset_step),
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"onset (step {report.onset_step})",
        )
    if report.early_stopping is not None:
        _draw_early_stopping(axes, report, xs)

    level = f"{report.interval_label} bands"
    if any(interval is None for interval in report.proxy_ci + report.true_ci):
        level += " (none at one-episode checkpoints)" if report.min_episodes == 1 else " (some undefined)"
    runs = f", mean of {report.n_runs} seeds" if report.n_runs > 1 else ""
    axes.set_xlabel(X_AXES[x])
    axes.set_ylabel("normalised return (0 = random, 1 = intended)")
    axes.set_title(
        title
        or f"Goodhart curve: {describe_env(report.env_id, report.knobs)}\n"
        f"final gap {report.final_gap:.2f}{runs}; {level}{_kept_fraction_text(report)}",
        fontsize=10,
    )
    return saved_with_grid_and_legend(figure, axes, path)


def _x_values(report: GoodhartReport, x: str) -> np.ndarray:
    """Each checkpoint's position on the chosen x axis."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {sorted(X_AXES)}, got {x!r}")
    if x == "step":
        return np.asarray(report.steps, dtype=np.float64)
    if report.d is None:
        raise ValueError(
            "x='d' needs a report with KL from the initial policy at every checkpoint "
            "(Evaluation.kl, recorded by the trainer); this report has none"
        )
    return np.asarray(report.d)


def _x_at(report: GoodhartReport, xs: np.ndarray, step: int) -> float:
    """The x position of the checkpoint at training step ``step``."""
    return float(xs[report.steps.index(step)])


def _draw_early_stopping(axes, report: GoodhartReport, xs: np.ndarray) -> None:
    """The held-out check's curve, and markers on the true curve at the kept and oracle checkpoints
    (one per seed's step; markers rather than lines, as they often coincide with the onset)."""
    outcome = report.early_stopping
    axes.plot(
        xs,
        report.holdout_true,
        color=TRUE_COLOUR,
        linestyle="--",
        linewidth=1,
        alpha=0.8,
        label="held-out true (early-stopping check)",
    )
    one_run = report.n_runs == 1
    for steps, value, name, style in (
        (
            outcome.oracle_steps,
            outcome.oracle_true,
            "oracle stop (peak t)",
            {"marker": "*", "s": 260, "color": "gold", "edgecolors": "black"},
        ),
        (
            outcome.kept_steps,
            outcome.kept_true,
            "kept by early stopping",
            {"marker": "o", "s": 220, "facecolors": "none", "edgecolors": KEPT_COLOUR, "linewidths": 2},
        ),
    ):
        at = f"step {steps[0]}, t {value:.2f}" if one_run else f"one per seed, mean t {value:.2f}"
        indices = sorted({report.steps.index(step) for step in steps})
        axes.scatter(xs[indices], np.asarray(report.true)[indices], zorder=4, label=f"{name} ({at})", **style)


def _kept_fraction_text(report: GoodhartReport) -> str:
    outcome = report.early_stopping
    if outcome is None or outcome.kept_fraction is None:
        return ""
    return f"; early stopping kept {outcome.kept_fraction:.0%} of the oracle's t"


def plot_gao_fit(report: GoodhartReport, path: str | os.PathLike, title: str | None = None) -> Path:
    """Plot the true gain over the initial policy against d with Gao et al.'s fitted forms.

    Points: ``t - t(origin)`` per checkpoint; curves: the report's RL and best-of-n fits over a
    smooth grid; vertical lines: each fit's peak d*; star: the observed peak. Raises ValueError
    when the report has no KL or too few distinct d > 0 to fit.
    """
    _x_values(report, "d")  # the same error as the curve's when KL is missing
    if report.gao_fits is None:
        raise ValueError("The report has no Gao fit: it needs at least two checkpoints with distinct d > 0")
    d = np.asarray(report.d)
    origin = report.true[report.steps.index(report.gao_origin_step)]
    gain = np.asarray(report.true) - origin
    peaks = [fit.peak_d for fit in report.gao_fits.values() if fit.peak_d is not None]
    right = 1.05 * max([d.max(), *[peak for peak in peaks if peak <= 2 * d.max()]])
    grid = np.linspace(0.0, right, 300)

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    axes = figure.add_subplot()
    axes.axhline(0.0, color="tab:gray", linestyle=":", linewidth=1, label="initial policy (no gain)")
    axes.scatter(d, gain, color=TRUE_COLOUR, zorder=3, label="checkpoints (mean true gain)")
    for form, fit in report.gao_fits.items():
        colour, name = GAO_STYLES.get(form, ("black", form))
        label = f"{name} fit {GAO_FORMS[form]}: a={fit.a:.3g}, b={fit.b:.3g}"
        peak_shown = fit.peak_d is not None and fit.peak_d <= right
        if not peak_shown:
            where = "no peak" if fit.peak_d is None else f"peak d* = {fit.peak_d:.3g}, off the plot"
            label += f"; {where} (rmse {fit.rmse:.3g})"
        axes.plot(grid, fit.predict(grid), color=colour, label=label)
        if peak_shown:
            axes.axvline(
                fit.peak_d,
                color=colour,
                linestyle="--",
                linewidth=1,
                label=f"{name} fitted peak d* = {fit.peak_d:.3g} (rmse {fit.rmse:.3g})",
            )
    peak = report.observed_peak
    if peak is not None and peak.d is not None:
        axes.scatter(
            [peak.d],
            [peak.true - origin],
            marker="*",
            s=260,
            color="gold",
            edgecolors="black",
            zorder=4,
            label=f"observed peak (step {peak.step}, d {peak.d:.3g})",
        )
    runs = f", mean of {report.n_runs} seeds" if report.n_runs > 1 else ""
    axes.set_xlabel(X_AXES["d"])
    axes.set_ylabel(f"true gain t - t(step {report.gao_origin_step}) (normalised)")
    axes.set_title(
        title
        or f"Gao et al. fits of true gain against d: {describe_env(report.env_id, report.knobs)}\n"
        f"{len(d)} checkpoints{runs}; dashed lines: fitted peaks d*",
        fontsize=10,
    )
    return saved_with_grid_and_legend(figure, axes, path)


def _band(intervals: list, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper CI edges; the curve itself where an interval is missing."""
    low = np.array([value if pair is None else pair[0] for pair, value in zip(intervals, curve, strict=True)])
    high = np.array(
        [value if pair is None else pair[1] for pair, value in zip(intervals, curve, strict=True)]
    )
    return low, high


def plot_episode_scatter(
    references: Mapping[str, EpisodeReturns],
    path: str | os.PathLike,
    agent: EpisodeReturns | None = None,
    env_id: str = "",
    knobs: Mapping[str, Any] | None = None,
    agent_label: str = "agent",
) -> Path:
    """Scatter true against proxy return per episode, for the references and the agent."""
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    axes = figure.add_subplot()
    groups = [
        (name, returns, *REFERENCE_STYLES.get(name, ("tab:brown", "D")))
        for name, returns in references.items()
    ]
    if agent is not None:
        groups.append((agent_label, agent, *AGENT_STYLE))
    if not groups:
        raise ValueError("Nothing to plot: give references and/or agent returns")
    for name, returns, colour, marker in groups:
        proxy, true = np.asarray(returns.proxy), np.asarray(returns.true)
        axes.scatter(
            proxy, true, color=colour, marker=marker, alpha=0.6, s=24, label=f"{name} ({len(proxy)} episodes)"
        )
        axes.scatter(proxy.mean(), true.mean(), color=colour, marker=marker, s=140, edgecolors="black")
    axes.set_xlabel("proxy return per episode (env reward units)")
    axes.set_ylabel("true return per episode (true-objective units)")
    axes.set_title(f"Episodes: {describe_env(env_id, knobs)}\nlarge markers: means", fontsize=10)
    return saved_with_grid_and_legend(figure, axes, path)


def draw_reference_levels(axes, labelled: bool = True) -> None:
    """The random policy's normalised level (0) and the intended policy's (1), dotted."""
    axes.axhline(
        0.0, color="tab:gray", linestyle=":", linewidth=1, label="random policy (0)" if labelled else None
    )
    axes.axhline(
        1.0, color="tab:green", linestyle=":", linewidth=1, label="intended policy (1)" if labelled else None
    )


def saved_with_grid_and_legend(figure: Figure, axes, path: str | os.PathLike, legend: str = "best") -> Path:
    """How a one-axes plot ends: a light grid, the legend at ``legend``, a tight layout, then
    :func:`save_figure`."""
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc=legend)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_shift_curve(report, path: str | os.PathLike) -> Path:
    """A :class:`~gaming_gym.metrics.shift.ShiftReport`'s true return along training on the
    training setting and on the deployment setting, the shift gap shaded between them."""
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    axes = figure.add_subplot()
    steps, train, deploy = report.steps, np.asarray(report.train_true), np.asarray(report.deploy_true)
    draw_reference_levels(axes)
    axes.fill_between(steps, deploy, train, color="tab:purple", alpha=0.12, label="shift gap")
    axes.plot(steps, train, color=TRUE_COLOUR, marker="o", markersize=3, label="true t, training setting")
    axes.plot(steps, deploy, color="tab:purple", marker="s", markersize=3, label="true t, deployment setting")
    runs = f", mean of {report.n_runs} runs" if report.n_runs > 1 else ""
    axes.set_xlabel(X_AXES["step"])
    axes.set_ylabel("true return t, normalised in deployment")
    axes.set_title(f"Distribution shift to {report.deploy_knobs}{runs}", fontsize=10)
    return saved_with_grid_and_legend(figure, axes, path)


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Save ``figure`` as a PNG atomically (no half-written file under ``path``); return the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Plots are written as PNG: give a path ending in .png, got {path}")
    FigureCanvasAgg(figure)
    with atomic_write(path) as partial:
        figure.savefig(partial, format="png")
    return path


def plot_conditions(
    reports: Mapping[str, GoodhartReport], path: str | os.PathLike, title: str, xlabel: str = "condition"
) -> Path:
    """The table's compared measures (final normalised proxy, true and gap) per condition (e.g.
    knob settings), as bars with their intervals as error bars."""
    if not reports:
        raise ValueError("Nothing to plot: give at least one condition's report")
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    axes = figure.add_subplot()
    labels = list(reports)
    positions = np.arange(len(labels))
    compared = [row for row in MEASURES if row.compared]  # the table's final p, t and gap
    width = 0.8 / len(compared)
    for index, row in enumerate(compared):
        offset = (index - (len(compared) - 1) / 2) * width
        values = np.array([reports[label].measures[row.name] for label in labels])
        intervals = [reports[label].intervals.get(row.name) for label in labels]
        low, high = _band(intervals, values)
        colour = MEASURE_COLOURS.get(row.name, f"C{index}")
        axes.bar(
            positions + offset,
            values,
            width,
            color=colour,
            label=f"normalised {row.label.removesuffix(' (final)')}",
        )
        axes.errorbar(
            positions + offset,
            values,
            yerr=[values - low, high - values],
            color="black",
            capsize=3,
            linestyle="",
        )
    draw_reference_levels(axes)
    crowded = len(labels) > 4  # long labels side by side overlap: slant them
    axes.set_xticks(
        positions, labels, fontsize=8, rotation=20 if crowded else 0, ha="right" if crowded else "center"
    )
    axes.set_xlabel(xlabel)
    axes.set_ylabel("normalised return at the end of training (0 = random, 1 = intended)")
    seeds = sorted({report.n_runs for report in reports.values()})
    runs = f"{'/'.join(map(str, seeds))} seed{'' if seeds == [1] else 's'}"
    intervals = " / ".join(sorted({report.interval_label for report in reports.values()}))
    axes.set_title(f"{title}\nbars: mean over {runs}; whiskers: {intervals}", fontsize=10)
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_true_against_d(reports: Mapping[str, GoodhartReport], path: str | os.PathLike, title: str) -> Path:
    """Normalised true return t (solid) and proxy p (dashed, right axis) against d = sqrt(KL from
    the initial policy), one colour per condition (e.g. a KL-penalty coefficient), with each
    condition's observed peak of t starred: how far each lets the policy move, and what it keeps."""
    missing = [label for label, report in reports.items() if report.d is None]
    if not reports or missing:
        raise ValueError(
            f"plot_true_against_d needs reports with KL recorded; none in {missing or 'nothing'}"
        )
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    axes = figure.add_subplot()
    proxy_axes = axes.twinx()
    for index, (label, report) in enumerate(reports.items()):
        colour = f"C{index}"
        d = np.asarray(report.d)
        axes.plot(d, report.true, color=colour, marker="o", markersize=3, label=f"{label}: true t")
        proxy_axes.plot(d, report.proxy, color=colour, linestyle="--", linewidth=1, alpha=0.7)
        if report.observed_peak is not None and report.observed_peak.d is not None:
            axes.scatter(
                report.observed_peak.d,
                report.observed_peak.true,
                color=colour,
                marker="*",
                s=160,
                edgecolors="black",
                zorder=3,
            )
    axes.axhline(1.0, color="tab:green", linestyle=":", linewidth=1, label="intended policy (1)")
    axes.axhline(0.0, color="tab:gray", linestyle=":", linewidth=1, label="random policy (0)")
    axes.set_xlabel(X_AXES["d"])
    axes.set_ylabel("normalised true return t (solid; stars: peaks)")
    proxy_axes.set_ylabel("normalised proxy return p (dashed)")
    runs = sorted({report.n_runs for report in reports.values()})
    axes.set_title(f"{title}\nmean of {'/'.join(map(str, runs))} seed(s) per condition", fontsize=10)
    return saved_with_grid_and_legend(figure, axes, path, legend="upper left")


def plot_gap_by_capability(
    gaps: Mapping[str, Mapping[int, Sequence[float]]], path: str | os.PathLike, title: str
) -> Path:
    """The Goodhart gap against training steps, one line per condition (e.g. a policy width): the
    mean over seeds, each seed a dot, so a jump larger than the seeds' spread (a phase
    transition) is visible as such (``gaps``: ``{condition: {steps: [gap of each seed]}}``)."""
    if not gaps:
        raise ValueError("Nothing to plot: give at least one condition's gaps")
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    axes = figure.add_subplot()
    for index, (label, by_steps) in enumerate(gaps.items()):
        steps = sorted(by_steps)
        colour = f"C{index}"
        axes.plot(steps, [np.mean(by_steps[s]) for s in steps], color=colour, marker="o", label=label)
        for s in steps:
            axes.scatter([s] * len(by_steps[s]), by_steps[s], color=colour, s=12, alpha=0.5)
    axes.axhline(0.0, color="tab:gray", linestyle=":", linewidth=1)
    axes.set_xlabel("training steps (environment steps)")
    axes.set_ylabel("Goodhart gap p - t (lines: mean; dots: seeds)")
    axes.set_title(title, fontsize=10)
    return saved_with_grid_and_legend(figure, axes, path)


def plot_phase_diagram(
    values: Mapping[str, Any],
    path: str | os.PathLike,
    title: str,
    x_label: str,
    y_label: str,
    panel_label: str | None = None,
) -> Path:
    """A sweep's phase diagram: the Goodhart gap (top row) and the normalised true return (bottom
    row) over two axes, a column per panel value (e.g. a mitigation's strength), each square
    annotated with its mean over seeds (and, for the gap, the seeds' range), so a sharp change
    between neighbouring squares (a phase transition) reads at a glance.

    ``values`` is :func:`gaming_gym.sweep.phase_values`'s: ``x``, ``y`` and ``panels`` labels, and
    ``gap``, ``true`` and ``spread`` arrays shaped ``(panels, y, x)``.
    """
    gap, true, spread = (np.asarray(values[name], dtype=float) for name in ("gap", "true", "spread"))
    panels = list(values["panels"])
    figure = Figure(
        figsize=(max(FIGURE_SIZE[0], 3.6 * len(panels) + 1.5), 7.5), dpi=DPI, layout="constrained"
    )
    grid = figure.subplots(2, len(panels), squeeze=False)
    rows = (
        ("Goodhart gap p - t", gap, "Reds", (0.0, max(1.0, float(np.nanmax(gap))))),
        (
            "normalised true return t",
            true,
            "RdYlGn",
            (min(0.0, float(np.nanmin(true))), max(1.0, float(np.nanmax(true)))),
        ),
    )
    for row, (name, data, colours, limits) in enumerate(rows):
        for column, panel in enumerate(panels):
            axes = grid[row][column]
            image = axes.imshow(
                data[column], origin="lower", aspect="auto", cmap=colours, vmin=limits[0], vmax=limits[1]
            )
            for (y, x), value in np.ndenumerate(data[column]):
                text = "n/a" if np.isnan(value) else f"{value:.2f}"
                if row == 0 and not np.isnan(spread[column, y, x]):
                    text += f"\n±{spread[column, y, x] / 2:.2f}"
                red, green, blue, _ = image.cmap(image.norm(value))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # white text on dark squares
                axes.text(
                    x, y, text, ha="center", va="center", fontsize=7, color="white" if dark else "black"
                )
            axes.set_xticks(range(len(values["x"])), values["x"], fontsize=8)
            axes.set_yticks(range(len(values["y"])), values["y"], fontsize=8)
            axes.set_xlabel(x_label)
            if column == 0:
                axes.set_ylabel(f"{y_label}\n({name})")
            heading = name if panel_label is None else f"{panel_label} = {panel}: {name}"
            axes.set_title(heading, fontsize=9)
        figure.colorbar(image, ax=list(grid[row]), shrink=0.85)
    figure.suptitle(f"{title}\n(gap squares: mean ± half the seeds' range)", fontsize=10)
    return save_figure(figure, path)
