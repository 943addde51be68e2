"""One experiment = train an agent, evaluate it along the way, write a run directory.

A run directory holds everything a researcher looks at afterwards, each file written atomically::

    RUN_DIR/config.json         what was run (agent, env, knobs, every training setting)
    RUN_DIR/checkpoint.pt       the latest training checkpoint; re-running resumes from it
    RUN_DIR/progress.csv        one row per training iteration (proxy/true returns, losses, fps)
    RUN_DIR/evaluations.json    per-episode proxy and true returns (and KL) at each evaluation step
    RUN_DIR/goodhart.json       the Goodhart report (gaming_gym.metrics.GoodhartReport)
    RUN_DIR/goodhart_curve.png  normalised proxy and true return along training, the gap shaded
    RUN_DIR/goodhart_curve_d.png  the same against d = sqrt(KL from the initial policy)
    RUN_DIR/gao_fit.png         true gain against d with Gao et al.'s fitted forms and peaks
    RUN_DIR/episodes.png        true against proxy return per episode: references and the agent

The two d plots need the KL that native PPO records at every evaluation (SB3 runs have none).
An SB3 run keeps its agent in ``sb3_agent.pt`` instead of ``checkpoint.pt``, and writes no
``progress.csv``.

Re-running the same experiment on an interrupted run directory continues it from the checkpoint;
on a finished one it only rewrites the report and plots. The file names, the lock held while a
run trains and reports, and the checks that keep a run from writing into a directory that is not
its own live in :mod:`gaming_gym.runs`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gaming_gym.agents.agent import get_agent
from gaming_gym.core import Policy
from gaming_gym.errors import ConfigError, MetricError
from gaming_gym.evaluation import reference_returns
from gaming_gym.metrics import (
    Evaluation,
    GoodhartReport,
    goodhart_report,
    goodhart_report_over_seeds,
)
from gaming_gym.plots import plot_episode_scatter, plot_gao_fit, plot_goodhart_curve
from gaming_gym.runs import (
    CURVE_FILE,
    GAO_FILE,
    KL_CURVE_FILE,
    REPORT_FILE,
    SCATTER_FILE,
    RunDirectory,
    opened,
    read_evaluations,
    read_run_file,
    require_registered,
    run_file,
)
from gaming_gym.runs import read_config as load_run_config  # its name here before runs.py

REFERENCE_EPISODES = 32


@dataclass(frozen=True)
class RunSummary:
    """What a finished experiment leaves: its report and where its files are."""

    run_dir: Path
    report: GoodhartReport
    curve: Path
    scatter: Path
    curve_d: Path | None = None  # the curve against d = sqrt(KL), where KL was recorded
    gao_fit: Path | None = None  # true gain against d with Gao et al.'s fits


def train_experiment(
    env_id: str,
    run_dir: str | os.PathLike,
    agent: str = "ppo",
    knobs: dict[str, Any] | None = None,
    progress: bool = True,
    **settings: Any,
) -> RunSummary:
    """Train ``agent`` on ``env_id`` (resuming ``run_dir`` if it holds this run), then report.

    ``agent`` names an entry of :data:`gaming_gym.agents.AGENTS` (``"ppo"``, ``"sb3"``).
    ``settings`` override the env's tuned settings (:mod:`gaming_gym.agents.tuned`); both agents
    take ``PPOConfig``'s fields, e.g. ``seed``, ``total_timesteps``, ``reward``, ``device``,
    ``num_envs``. The run directory is locked from training to the report
    (:class:`~gaming_gym.runs.RunDirectory`); one that holds another run, or files of its own, is
    refused before anything is written. An unknown ``agent`` is a :class:`ConfigError` naming the
    choices.
    """
    chosen = get_agent(agent)
    knobs = dict(knobs or {})
    config = _checked_config(lambda: chosen.config(env_id, knobs=knobs, **settings))
    with RunDirectory(run_dir) as directory:
        checkpoints = chosen.train(config, directory, progress=progress).checkpoints
        return write_report(directory, env_id, knobs, checkpoints, getattr(config, "reward_model", None))


def write_report(
    run_dir: str | os.PathLike | RunDirectory,
    env_id: str,
    knobs: dict[str, Any],
    checkpoints: Sequence[Evaluation],
    reward_model: str | None = None,
) -> RunSummary:
    """Measure the references, then write the evaluations, the Goodhart report and its plots into
    ``run_dir`` (a path, locked while writing, or a :class:`~gaming_gym.runs.RunDirectory` held open).

    The references are measured once per env and knobs, with seed 0 (:func:`_references`), the
    same set a report over several runs and PPO's early stopping use, so one run's numbers are the
    same wherever they are computed. A run trained against a learned ``reward_model``
    (:mod:`gaming_gym.rlhf`) has the model's scores as its proxy, and so do its anchors.
    """
    with opened(run_dir) as directory:
        directory.save_evaluations(checkpoints)
        references = _references(env_id, knobs, reward_model)
        report = _measured(lambda: goodhart_report(checkpoints, references, env_id, knobs))
        report.save(directory.file(REPORT_FILE))
        return RunSummary(
            directory.path,
            report,
            plot_goodhart_curve(report, directory.file(CURVE_FILE)),
            plot_episode_scatter(references, directory.file(SCATTER_FILE), checkpoints[-1], env_id, knobs),
            *_dynamics_plots(report, directory.path),
        )


def _references(env_id: str, knobs: dict[str, Any], reward_model: str | None = None):
    """The metric's reference returns: one set (seed 0) for every report of these env, knobs and
    reward model (whose scores are the proxy where there is one)."""
    return reference_returns(env_id, knobs, episodes=REFERENCE_EPISODES, seed=0, reward_model=reward_model)


def _dynamics_plots(report: GoodhartReport, out: Path) -> tuple[Path | None, Path | None]:
    """The curve against d = sqrt(KL) and the Gao fits, where the run recorded KL."""
    if report.d is None:
        return None, None
    curve = plot_goodhart_curve(report, out / KL_CURVE_FILE, x="d")
    return curve, plot_gao_fit(report, out / GAO_FILE) if report.gao_fits is not None else None


def report_over_runs(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None):
    """One Goodhart report over several runs (seeds) of the same env and knobs, with its curve.

    Each run's evaluation records are read back from its report; the references are measured
    afresh. Returns ``(report, curve path or None)``.
    """
    _require_distinct(run_dirs)
    reports = [load_report(run_dir) for run_dir in run_dirs]
    settings = {(r.env_id, json.dumps(r.knobs, sort_keys=True)) for r in reports}
    if len(settings) != 1:
        raise ConfigError(
            "runs to combine must share one env and knob setting; got "
            + "; ".join(f"{env} {knobs}" for env, knobs in sorted(settings))
        )
    env_id, knobs = reports[0].env_id, dict(reports[0].knobs)
    reward_models = {load_run_config(run_dir).get("reward_model") for run_dir in run_dirs}
    if len(reward_models) != 1:
        raise ConfigError(
            f"runs to combine must share one reward model; got {sorted(map(str, reward_models))}"
        )
    runs = [read_evaluations(run_dir) for run_dir in run_dirs]
    references = _references(env_id, knobs, reward_models.pop())
    report = _measured(lambda: goodhart_report_over_seeds(runs, references, env_id, knobs))
    curve = plot_goodhart_curve(report, Path(out) / CURVE_FILE) if out is not None else None
    if out is not None:
        report.save(Path(out) / REPORT_FILE)
        _dynamics_plots(report, Path(out))
    return report, curve


def load_report(run_dir: str | os.PathLike) -> GoodhartReport:
    """The run's Goodhart report, for a registered env only (its id is used to make envs)."""
    path = run_file(run_dir, REPORT_FILE, "a finished run directory")
    report = read_run_file(path, GoodhartReport.load)
    require_registered(report.env_id, path)
    return report


def load_run_policy(run_dir: str | os.PathLike, deterministic: bool = False) -> tuple[Policy, dict]:
    """The trained batched policy of a run directory and the run's config (both checked: see
    :func:`gaming_gym.runs.read_config`; nothing is unpickled)."""
    saved = load_run_config(run_dir)
    return get_agent(saved["agent"]).load_policy(run_dir, deterministic), saved


def _require_distinct(run_dirs: Sequence[str | os.PathLike]) -> None:
    """The same run twice would count its seed twice and narrow the intervals falsely."""
    seen: dict[Path, str | os.PathLike] = {}
    for run_dir in run_dirs:
        resolved = Path(run_dir).resolve()
        if resolved in seen:
            raise ConfigError(f"run {run_dir} is given twice (as {seen[resolved]} too); give each run once")
        seen[resolved] = run_dir


def _checked_config(make: Callable[[], Any]) -> Any:
    """Build an agent config, its validation errors (ValueError, TypeError) as a ConfigError."""
    try:
        return make()
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error)) from error


def _measured(measure: Callable[[], GoodhartReport]) -> GoodhartReport:
    """Compute a Goodhart report, the metric's complaints about the returns as a MetricError."""
    try:
        return measure()
    except ValueError as error:
        raise MetricError(f"cannot compute the Goodhart report: {error}") from error


@dataclass(frozen=True)
class Condition:
    """One arm of an experiment: an env, its knobs and the agent's settings, trained over seeds."""

    label: str
    env_id: str
    knobs: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(
        default_factory=dict
    )  # agent config fields, e.g. reward, total_timesteps


def run_conditions(
    conditions: Sequence[Condition],
    seeds: Sequence[int],
    out: str | os.PathLike,
    title: str,
    agent: str = "ppo",
    progress: bool = True,
    settings: dict[str, Any] | None = None,
) -> dict[str, GoodhartReport]:
    """Train every condition on every seed, report each over its seeds, and compare them.

    ``settings`` are agent config fields shared by every condition (e.g. ``total_timesteps``,
    ``device``); a condition's own settings take precedence.

    Writes ``out/LABEL/seed-S/`` run directories (re-running resumes unfinished ones),
    ``out/LABEL/goodhart.json`` and ``goodhart_curve.png`` over seeds, ``out/comparison.png``,
    and prints one table row per condition. Returns the reports by label.
    """
    from gaming_gym.plots import plot_conditions

    out = Path(out)
    reports = {}
    for condition in conditions:
        run_dirs = []
        for seed in seeds:
            run_dir = condition_run_dir(out, condition.label, seed)
            train_experiment(
                condition.env_id,
                run_dir,
                agent,
                condition.knobs,
                progress,
                **{**(settings or {}), "seed": seed, **condition.settings},
            )
            run_dirs.append(run_dir)
        reports[condition.label], _ = report_over_runs(run_dirs, out / condition.label)
    plot_conditions(reports, out / "comparison.png", title)
    print(conditions_table(reports, title))
    return reports


def conditions_table(reports: dict[str, GoodhartReport], title: str) -> str:
    """One row per condition: final normalised proxy, true and gap with their intervals."""

    def cell(value: float, interval) -> str:
        return f"{value:6.2f} [{interval[0]:5.2f}, {interval[1]:5.2f}]" if interval else f"{value:6.2f}"

    lines = [title, f"{'condition':<28}{'proxy p':>22}{'true t':>22}{'gap p - t':>22}"]
    for label, r in reports.items():
        lines.append(
            f"{label:<28}{cell(r.final_proxy, r.final_proxy_ci):>22}"
            f"{cell(r.final_true, r.final_true_ci):>22}{cell(r.final_gap, r.final_gap_ci):>22}"
        )
    return "\n".join(lines)


def condition_run_dir(out: str | os.PathLike, label: str, seed: int) -> Path:
    """Where :func:`run_conditions` keeps the run of condition ``label`` on ``seed``."""
    return Path(out) / label / f"seed-{seed}"


# --- optimisation pressure: the gap along capability axes ------------------------------------------


def gaps_at_steps(
    out: str | os.PathLike, labels: Sequence[str], seeds: Sequence[int], steps: Sequence[int]
) -> dict[str, dict[int, list[float]]]:
    """The Goodhart gap of each condition's runs (written by :func:`run_conditions` into ``out``)
    after each number of training ``steps``: ``{label: {steps: [gap of each seed]}}``.

    A run's gap after ``s`` steps is that of its last evaluation at or before ``s``. With a
    constant learning rate (BoatRace's default) that is the gap a run trained for ``s`` steps
    would end with, so training steps are a capability axis with no extra runs.
    """
    gaps: dict[str, dict[int, list[float]]] = {}
    for label in labels:
        reports = [load_report(condition_run_dir(out, label, seed)) for seed in seeds]
        gaps[label] = {budget: [_gap_after(report, budget) for report in reports] for budget in steps}
    return gaps


def _gap_after(report: GoodhartReport, steps: int) -> float:
    evaluated = [k for k, step in enumerate(report.steps) if step <= steps]
    if not evaluated:
        raise ConfigError(f"no evaluation at or before step {steps}: the run's first is at {report.steps[0]}")
    return report.gap[evaluated[-1]]


@dataclass(frozen=True)
class PhaseTransition:
    """A jump in the mean Goodhart gap between neighbouring capability settings that is larger
    than the spread of the seeds at either setting (after Pan, Bhatia and Steinhardt, 2022)."""

    axis: str  # "steps" (along training, within one condition) or "condition" (at one step count)
    where: str  # the condition, or the step count, the jump happens in
    before: str  # the lower setting
    after: str  # the higher setting
    jump: float  # mean gap after minus mean gap before
    spread: float  # the larger of the two settings' seed ranges (max - min)

    def __str__(self) -> str:
        return (
            f"{self.where}: {self.before} -> {self.after}: gap {self.jump:+.2f} "
            f"(seed spread {self.spread:.2f})"
        )


def phase_transitions(gaps: dict[str, dict[int, list[float]]]) -> list[PhaseTransition]:
    """Every jump larger than the seeds' spread, along training steps within each condition and
    along the conditions (in the order given) at each step count. Needs two seeds or more."""
    transitions = []
    for label, by_steps in gaps.items():
        budgets = sorted(by_steps)
        for low, high in zip(budgets, budgets[1:], strict=False):
            found = _transition(
                "steps", label, f"{low:,} steps", f"{high:,} steps", by_steps[low], by_steps[high]
            )
            transitions += [found] if found else []
    labels = list(gaps)
    for budget in sorted(next(iter(gaps.values()), {})):
        for low, high in zip(labels, labels[1:], strict=False):
            found = _transition(
                "condition", f"{budget:,} steps", low, high, gaps[low][budget], gaps[high][budget]
            )
            transitions += [found] if found else []
    return transitions


def _transition(axis: str, where: str, before: str, after: str, low: Sequence[float], high: Sequence[float]):
    if min(len(low), len(high)) < 2:
        raise ConfigError("a phase transition is a jump beyond the seeds' spread: give two seeds or more")
    jump = float(np.mean(high) - np.mean(low))
    spread = float(max(np.ptp(low), np.ptp(high)))
    return PhaseTransition(axis, where, before, after, jump, spread) if abs(jump) > spread else None


def capability_table(gaps: dict[str, dict[int, list[float]]], title: str) -> str:
    """One row per condition, one column per step count: the mean gap and the seeds' [min, max]."""
    budgets = sorted(next(iter(gaps.values()), {}))
    lines = [title, f"{'condition':<20}" + "".join(f"{f'{b:,} steps':>22}" for b in budgets)]
    for label, by_steps in gaps.items():
        cells = [f"{np.mean(v):6.2f} [{min(v):5.2f}, {max(v):5.2f}]" for v in (by_steps[b] for b in budgets)]
        lines.append(f"{label:<20}" + "".join(f"{cell:>22}" for cell in cells))
    return "\n".join(lines)


def dynamics_table(reports: dict[str, GoodhartReport], title: str) -> str:
    """Goodhart dynamics per condition: peak and final proxy p and true t, the final optimisation
    distance d, Gao et al.'s RL-form fit, and early stopping's kept t against the oracle's."""
    lines = [
        title,
        f"{'condition':<22}{'peak p':>8}{'final p':>8}{'peak t':>8}{'final t':>8}{'final d':>8}"
        f"{'RL fit a':>9}{'b':>7}{'d*':>7}{'rmse':>7}{'kept t / oracle t':>20}",
    ]
    for label, r in reports.items():
        fit = (r.gao_fits or {}).get("rl")
        fit_cells = (
            f"{fit.a:9.2f}{fit.b:7.2f}{_number(fit.peak_d):>7}{fit.rmse:7.2f}" if fit else f"{'n/a':>30}"
        )
        stop = r.early_stopping
        kept = f"{stop.kept_true:.2f} / {stop.oracle_true:.2f}" if stop else "n/a"
        final_d = _number(r.d[-1] if r.d else None)
        lines.append(
            f"{label:<22}{max(r.proxy):8.2f}{r.final_proxy:8.2f}{max(r.true):8.2f}{r.final_true:8.2f}"
            f"{final_d:>8}{fit_cells}{kept:>20}"
        )
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
