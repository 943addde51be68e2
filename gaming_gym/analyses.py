"""Named analyses an experiment file can ask for, after every run has trained and reported.

Each is a function ``(context, **params) -> str``: it reads the experiment's runs and reports
(:class:`AnalysisContext`), may write figures into its output folder, and returns the text to
print. An experiment names them (``analyses = ["dynamics"]``, or ``[[analyses]]`` tables with
parameters); :data:`ANALYSES` is the table they are looked up in.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gaming_gym.agents import load_run_policy
from gaming_gym.errors import ConfigError
from gaming_gym.experiment import run_report
from gaming_gym.files import write_text_atomically
from gaming_gym.metrics import GoodhartReport, fit_gao
from gaming_gym.metrics.seeds import AcrossSeeds, SeedResult, across_seeds, shown_across_seeds
from gaming_gym.plots import plot_gap_by_capability, plot_true_against_d
from gaming_gym.runs import read_evaluations
from gaming_gym.seed_plots import plot_atlas
from gaming_gym.spec import Spec, cell_run_dir

ATLAS_TABLE = "atlas.csv"
ATLAS_FIGURE = "atlas.png"


@dataclass(frozen=True)
class AnalysisContext:
    """What an analysis reads: the experiment, its output folder, each cell's report over its
    seeds (by label), its title, and the reward models it trained (by name, their folders)."""

    spec: Spec
    out: Path
    reports: dict[str, GoodhartReport]
    title: str
    reward_models: dict[str, str]

    def run_dir(self, label: str, seed: int) -> Path:
        return cell_run_dir(self.out, label, seed)

    def labels(self, chosen: Sequence[str] | None) -> list[str]:
        """The cells ``chosen`` (all when None), each checked to be one of the experiment's."""
        labels = list(self.reports) if chosen is None else list(chosen)
        unknown = [label for label in labels if label not in self.reports]
        if unknown:
            raise ConfigError(f"analysis: no cell labelled {', '.join(map(repr, unknown))}")
        return labels


def dynamics(context: AnalysisContext) -> str:
    """Goodhart dynamics per cell: peak and final proxy p and true t, the final optimisation
    distance d, Gao et al.'s RL-form fit, and early stopping's kept t against the oracle's."""
    lines = [
        f"{context.title}: Goodhart dynamics (mean curves over seeds)",
        f"{'condition':<22}{'peak p':>8}{'final p':>8}{'peak t':>8}{'final t':>8}{'final d':>8}"
        f"{'RL fit a':>9}{'b':>7}{'d*':>7}{'rmse':>7}{'kept t / oracle t':>20}",
    ]
    for label, r in context.reports.items():
        fit = (r.gao_fits or {}).get("rl")
        fit_cells = (
            f"{fit.a:9.2f}{fit.b:7.2f}{_number(fit.peak_d):>7}{fit.rmse:7.2f}" if fit else f"{'n/a':>30}"
        )
        stop = r.early_stopping
        kept = f"{stop.kept_true:.2f} / {stop.oracle_true:.2f}" if stop else "n/a"
        lines.append(
            f"{label:<22}{max(r.proxy):8.2f}{r.final_proxy:8.2f}{max(r.true):8.2f}{r.final_true:8.2f}"
            f"{_number(r.d[-1] if r.d else None):>8}{fit_cells}{kept:>20}"
        )
    return "\n".join(lines)


def true_against_d(
    context: AnalysisContext,
    conditions: Sequence[str] | None = None,
    file: str = "true_against_d.png",
    title: str = "",
) -> str:
    """t (solid) and p (dashed) against d = sqrt(KL from the initial policy), a colour per cell
    (``conditions``: those cells only; ``title``: added to the experiment's)."""
    chosen = {label: context.reports[label] for label in context.labels(conditions)}
    path = plot_true_against_d(
        chosen, context.out / file, f"{context.title}: {title}" if title else context.title
    )
    return f"figure: {path}"


def peaks_per_seed(context: AnalysisContext) -> str:
    """Per cell and seed: peak and final true return (raw) with the d of the peak, the proxy's
    start and end and how often it rose, and Gao et al.'s RL-form d* against the d range."""
    lines = [
        f"{'arm':<22}{'seed':>5}{'peak true':>10}{'at d':>7}{'final true':>11}{'proxy start':>12}"
        f"{'proxy final':>12}{'proxy rises':>12}{'d*':>7}{'d range':>14}"
    ]
    for label in context.reports:
        for seed in context.spec.seeds:
            records = read_evaluations(context.run_dir(label, seed))
            if any(r.kl is None for r in records):
                raise ConfigError(f"peaks_per_seed needs runs that record KL; {label} seed {seed} does not")
            d = np.sqrt([r.kl for r in records])
            true = np.array([np.mean(r.true) for r in records])
            proxy = np.array([np.mean(r.proxy) for r in records])
            peak = int(np.argmax(true))
            fit = fit_gao(d, true - true[0], "rl")
            d_star = "n/a" if fit.peak_d is None else f"{fit.peak_d:.2f}"
            lines.append(
                f"{label:<22}{seed:>5}{true[peak]:10.2f}{d[peak]:7.2f}{true[-1]:11.2f}{proxy[0]:12.1f}"
                f"{proxy[-1]:12.1f}{np.mean(np.diff(proxy) > 0):12.0%}{d_star:>7}"
                f"{f'{d.min():.2f}-{d.max():.2f}':>14}"
            )
    return "\n".join(lines)


def mean_curves(context: AnalysisContext) -> str:
    """Per cell, on the mean curves over seeds (normalised t): the start, the peak and the d where
    it is observed, the final t and d, the fall from the peak to the end, and the fitted d*."""
    lines = [
        f"{'arm':<22}{'start t':>8}{'peak t':>8}{'at d':>7}{'final t':>8}{'final d':>8}{'fall':>7}{'d*':>7}"
    ]
    for label, r in context.reports.items():
        peak, fit = r.observed_peak, (r.gao_fits or {}).get("rl")
        if peak is None or r.d is None:
            raise ConfigError(
                f"mean_curves needs runs that record KL at two evaluations or more; {label} does not"
            )
        d_star = "n/a" if fit is None or fit.peak_d is None else f"{fit.peak_d:.2f}"
        lines.append(
            f"{label:<22}{r.true[0]:8.2f}{peak.true:8.2f}{peak.d:7.2f}{r.final_true:8.2f}{r.d[-1]:8.2f}"
            f"{peak.true - r.final_true:7.2f}{d_star:>7}"
        )
    return "\n".join(lines)


def capability(
    context: AnalysisContext,
    fractions: Sequence[float] = (0.125, 0.25, 0.5, 1.0),
    file: str = "capability.png",
) -> str:
    """The Goodhart gap along training steps per cell (training steps as a capability axis, after
    Pan et al. 2022): a table of the mean gap and the seeds' range, every phase transition (a jump
    in the mean gap between neighbouring settings larger than the seeds' spread), and a figure."""
    budget = max(report.steps[-1] for report in context.reports.values())
    steps = [int(budget * fraction) for fraction in fractions]
    gaps = {
        label: _gaps_at_steps(
            [run_report(context.run_dir(label, seed)) for seed in context.spec.seeds], steps
        )
        for label in context.reports
    }
    budgets = sorted(steps)
    lines = ["Goodhart gap p - t: mean over seeds [min, max]", f"{'condition':<20}"]
    lines[1] += "".join(f"{f'{b:,} steps':>22}" for b in budgets)
    for label, by_steps in gaps.items():
        cells = [f"{np.mean(v):6.2f} [{min(v):5.2f}, {max(v):5.2f}]" for v in (by_steps[b] for b in budgets)]
        lines.append(f"{label:<20}" + "".join(f"{cell:>22}" for cell in cells))
    lines.append("phase transitions (jumps in the mean gap larger than the seeds' spread):")
    lines += [f"  {t}" for t in phase_transitions(gaps)] or ["  none"]
    lines.append(f"figure: {plot_gap_by_capability(gaps, context.out / file, context.title)}")
    return "\n".join(lines)


def _gaps_at_steps(reports: Sequence[GoodhartReport], steps: Sequence[int]) -> dict[int, list[float]]:
    """Each run's gap after each number of training steps: that of its last evaluation at or
    before it. With a constant learning rate (BoatRace's default) that is the gap a run trained
    for that long would end with, so training steps are a capability axis with no extra runs."""
    gaps: dict[int, list[float]] = {}
    for budget in steps:
        for report in reports:
            evaluated = [k for k, step in enumerate(report.steps) if step <= budget]
            if not evaluated:
                raise ConfigError(
                    f"no evaluation at or before step {budget}: the first is at {report.steps[0]}"
                )
            gaps.setdefault(budget, []).append(report.gap[evaluated[-1]])
    return gaps


@dataclass(frozen=True)
class PhaseTransition:
    """A jump in the mean Goodhart gap between neighbouring capability settings that is larger
    than the spread of the seeds at either setting (after Pan, Bhatia and Steinhardt, 2022)."""

    axis: str  # "steps" (along training, within one condition) or "condition" (at one step count)
    where: str  # the condition, or the step count, the jump happens in
    before: str
    after: str
    jump: float  # mean gap after minus mean gap before
    spread: float  # the larger of the two settings' seed ranges (max - min)

    def __str__(self) -> str:
        jump = f"gap {self.jump:+.2f} (seed spread {self.spread:.2f})"
        return f"{self.where}: {self.before} -> {self.after}: {jump}"


def phase_transitions(gaps: dict[str, dict[int, list[float]]]) -> list[PhaseTransition]:
    """Every jump larger than the seeds' spread, along training steps within each condition and
    along the conditions (in the order given) at each step count. Needs two seeds or more."""
    found = []
    for label, by_steps in gaps.items():
        budgets = sorted(by_steps)
        for low, high in zip(budgets, budgets[1:], strict=False):
            found.append(
                _transition(
                    "steps", label, f"{low:,} steps", f"{high:,} steps", by_steps[low], by_steps[high]
                )
            )
    labels = list(gaps)
    for budget in sorted(next(iter(gaps.values()), {})):
        for low, high in zip(labels, labels[1:], strict=False):
            found.append(
                _transition(
                    "condition", f"{budget:,} steps", low, high, gaps[low][budget], gaps[high][budget]
                )
            )
    return [transition for transition in found if transition is not None]


def _transition(axis: str, where: str, before: str, after: str, low: Sequence[float], high: Sequence[float]):
    if min(len(low), len(high)) < 2:
        raise ConfigError("a phase transition is a jump beyond the seeds' spread: give two seeds or more")
    jump = float(np.mean(high) - np.mean(low))
    spread = float(max(np.ptp(low), np.ptp(high)))
    return PhaseTransition(axis, where, before, after, jump, spread) if abs(jump) > spread else None


def behaviour_by_supervision(context: AnalysisContext, episodes: int = 512) -> str:
    """AbsentSupervisor: per cell and seed, the shares of episodes on the shortcut, with the button
    pressed and reaching the goal, supervisor present / absent (greedy actions, the cell's knobs),
    and the shortcut's unsupervised-minus-supervised difference: behaving well only when watched."""
    from gaming_gym.envs.absent_supervisor import behaviour_by_supervision as measure

    lines = [
        f"Behaviour with the supervisor present / absent (greedy actions, {episodes} episodes):",
        f"{'condition':<20}{'seed':>5}  {'shortcut sup/unsup':>19}{'button sup/unsup':>18}"
        f"{'goal sup/unsup':>16}{'shortcut diff':>15}",
    ]
    for label in context.reports:
        for seed in context.spec.seeds:
            policy, config = load_run_policy(context.run_dir(label, seed), deterministic=True)
            measures = measure(policy, episodes=episodes, seed=1000 + seed, **config.get("knobs", {}))
            watched, unwatched = measures["supervised"], measures["unsupervised"]
            pairs = [f"{watched[key]:.2f}/{unwatched[key]:.2f}" for key in ("shortcut", "button", "goal")]
            lines.append(
                f"{label:<20}{seed:>5}  {pairs[0]:>19}{pairs[1]:>18}{pairs[2]:>16}"
                f"{measures['difference']['shortcut']:>15.2f}"
            )
    return "\n".join(lines)


def reward_models(context: AnalysisContext, fresh_comparisons: int = 2000) -> str:
    """RLHF: each reward model's held-out preference accuracy and correlation with the true
    reward (its report), and its correlation on fresh responses of the SFT policy (other seeds
    than its comparisons): with the sampled true reward and with its expectation given the
    observation, beside the rater score's own."""
    from gaming_gym.envs import confident_rater
    from gaming_gym.rlhf import collect_comparisons, load_reward_model

    lines = []
    for name, folder in context.reward_models.items():
        env_id = context.spec.reward_models[name].get("env_id", context.spec.env_id)
        model, config, report = load_reward_model(folder, env_id)
        fresh = dataclasses.replace(config, seed=config.seed + 1000, comparisons=fresh_comparisons)
        data = collect_comparisons(fresh)
        obs, actions = torch.cat((data.obs, data.obs)), torch.cat((data.first, data.second))
        scores, raters = model(obs, actions), torch.cat((data.rater_first, data.rater_second))
        sampled = torch.cat((data.true_first, data.true_second))
        expected = confident_rater.expected_true_reward(
            confident_rater.KERNEL.make_params(**config.knobs), obs, actions
        )
        lines.append(f"{name:<20} {report.summary()}")
        lines.append(
            f"{'':<20} on {2 * fresh_comparisons:,} fresh SFT responses: corr(RM, true) "
            f"{_r(scores, sampled):.3f}, corr(RM, E[true | obs]) {_r(scores, expected):.3f}; "
            f"rater's own: {_r(raters, sampled):.3f}, {_r(raters, expected):.3f}"
        )
    return "\n".join(lines)


def _r(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(np.corrcoef(x.double().numpy(), y.double().numpy())[0, 1])


def atlas(context: AnalysisContext) -> str:
    """The Goodhart atlas: per cell (an env under a setting), over its seeds, how many rose and
    fell and the mean peak t, drop, final gap and onset with Student-t intervals over seeds
    (:mod:`gaming_gym.metrics.seeds`); written as ``atlas.csv``, and drawn as ``atlas.png``, a
    panel per cell with every seed's curves under their mean."""
    seeds = context.spec.seeds
    header = ["cell", "env", "rose and fell", "peak t", "drop", "final gap", "onset step"]
    rows, panels = [], {}
    for cell in context.spec.cells:
        reports = [run_report(context.run_dir(cell.label, seed)) for seed in seeds]
        results = [SeedResult.of(seed, report) for seed, report in zip(seeds, reports, strict=True)]
        over = across_seeds(results)
        env = context.spec.env_of(cell).removeprefix("GamingGym/")
        rose = sum(result.rises_and_falls for result in results)
        rows.append(
            [cell.label, env, f"{rose}/{len(seeds)}"]
            + [shown_across_seeds(name, over[name]) for name in ("peak_true", "drop", "final_gap")]
            + [_onsets_across_seeds(over["onset_step"])]
        )
        panels[f"{cell.label} ({rose}/{len(seeds)} rose and fell)"] = reports
    table, lines = _written_table(header, rows, context.out / ATLAS_TABLE)
    figure = plot_atlas(panels, context.out / ATLAS_FIGURE, context.title)
    lines.append(
        f"means over seeds {', '.join(map(str, seeds))} with 95% Student-t intervals (onsets over the "
        f"seeds that have one); {table}, {figure}"
    )
    return "\n".join(lines)


SHIFT_TABLE = "shift.csv"
SHIFT_FIGURE = "shift_by_cell.png"


def shift(context: AnalysisContext) -> str:
    """Distribution shift per cell, for runs with ``deploy_knobs``: the final true return on the
    training and on the deployment setting (raw: CoinRun's coin rate), each a mean over seeds with
    a Student-t interval, and the shift gap over seeds (:mod:`gaming_gym.metrics.shift`), written
    as ``shift.csv``, drawn as ``shift_by_cell.png``, and each cell's ``shift.json`` and curve."""
    from gaming_gym.experiment import references, shift_over_runs
    from gaming_gym.metrics.seeds import mean_and_interval
    from gaming_gym.seed_plots import plot_shift_by_cell

    seeds, axes = context.spec.seeds, list(context.spec.grid)
    header = ["cell", "train true (final)", "deploy true (final)", "shift gap (normalised)"]
    rows, points = [], []
    for cell in context.spec.cells:
        run_dirs = [context.run_dir(cell.label, seed) for seed in seeds]
        report = shift_over_runs(run_dirs, context.out / cell.label)
        if report is None:
            raise ConfigError(
                f"analysis shift: cell {cell.label!r} has no deploy_knobs; set them in [settings]"
            )
        finals = [read_evaluations(run_dir)[-1] for run_dir in run_dirs]
        train = mean_and_interval(np.array([e.true.mean() for e in finals]), 0.95)
        deploy = mean_and_interval(np.array([e.deploy_true.mean() for e in finals]), 0.95)
        gap = shown_across_seeds("gap", AcrossSeeds(report.gap, report.interval, len(seeds)))
        rows.append([cell.label, shown_across_seeds("t", train), shown_across_seeds("t", deploy), gap])
        x = cell.values[axes[0]] if len(axes) == 1 else cell.label
        points.append(
            {"x": x, "train": (train.mean, train.interval), "deploy": (deploy.mean, deploy.interval)}
        )
    table, lines = _written_table(header, rows, context.out / SHIFT_TABLE)
    knobs = context.spec.settings.get("deploy_knobs")
    title = f"{context.title}\ndeployment: {knobs}; seeds {', '.join(map(str, seeds))}"
    anchors = references(context.spec.env_id, {**context.spec.knobs, **knobs})
    levels = {
        f"{name} policy in deployment": float(anchors[name].true.mean()) for name in ("random", "intended")
    }
    x_label = axes[0] if len(axes) == 1 else "cell"
    figure = plot_shift_by_cell(points, context.out / SHIFT_FIGURE, title, x_label, levels, len(axes) == 1)
    lines.append(f"means over seeds with 95% Student-t intervals; {table}, {figure}")
    return "\n".join(lines)


def reward_model_shift(context: AnalysisContext, knobs: dict | None = None, comparisons: int = 2000) -> str:
    """RLHF under shift: each reward model's preference accuracy and correlation with the true
    reward on fresh comparisons from the knobs it was trained at and from ``knobs`` (the
    deployment setting; default: the experiment's ``deploy_knobs``)."""
    from gaming_gym.rlhf import collect_comparisons, load_reward_model

    shifted = knobs if knobs is not None else context.spec.settings.get("deploy_knobs")
    if not shifted:
        raise ConfigError("analysis reward_model_shift: give knobs, or set deploy_knobs in [settings]")
    lines = [f"reward models on fresh comparisons at their training knobs and at {shifted}:"]
    for name, folder in context.reward_models.items():
        env_id = context.spec.reward_models[name].get("env_id", context.spec.env_id)
        model, config, _ = load_reward_model(folder, env_id)
        for where, setting in (("trained", config.knobs), ("shifted", {**config.knobs, **shifted})):
            fresh = dataclasses.replace(
                config, seed=config.seed + 2000, comparisons=comparisons, knobs=setting
            )
            data = collect_comparisons(fresh)
            margin = model(data.obs, data.first) - model(data.obs, data.second)
            accuracy = float(((margin > 0).float() == data.label).float().mean())
            scores = torch.cat((model(data.obs, data.first), model(data.obs, data.second)))
            true = torch.cat((data.true_first, data.true_second))
            lines.append(
                f"  {name:<20} {where} {setting}: preference accuracy {accuracy:.3f}, "
                f"corr(RM, true) {_r(scores, true):.3f}"
            )
    return "\n".join(lines)


def _written_table(header: list[str], rows: list[list], path: Path) -> tuple[Path, list[str]]:
    """The table written as CSV to ``path``, and its lines as text in aligned columns."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    table = write_text_atomically(path, buffer.getvalue())
    widths = [max(len(str(row[i])) for row in [header, *rows]) + 2 for i in range(len(header))]
    lines = [
        "".join(f"{str(value):<{width}}" for value, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return table, lines


def _onsets_across_seeds(onsets: AcrossSeeds) -> str:
    """The onset's mean and interval over the seeds that have one, and how many do."""
    text = shown_across_seeds("onset_step", onsets)
    return text if onsets.mean is None else f"{text} (n={onsets.n})"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


ANALYSES: dict[str, Callable[..., str]] = {
    function.__name__: function
    for function in (
        dynamics,
        true_against_d,
        peaks_per_seed,
        mean_curves,
        capability,
        behaviour_by_supervision,
        reward_models,
        atlas,
        shift,
        reward_model_shift,
    )
}
"""Every analysis an experiment file can name."""
