"""The experiment runner: every cell of an experiment file on every seed, on Ray or in this process.

:func:`run_sweep` takes a :class:`~gaming_gym.spec.Spec` (an experiment file read by
:func:`~gaming_gym.spec.load_spec`) and:

1. trains the reward models it names (``OUT/reward_models/NAME/``), unless already there;
2. trains every (cell, seed) run into ``OUT/CELL/seed-S/`` (a run directory as ``gaming-gym
   train`` writes it). Runs an agent can train as one stack (native PPO: runs that differ only in
   per-agent settings, seeds above all) are grouped, up to ``max_stack`` a group; each group is
   one task: on Ray (``engine="ray"``, the default when Ray is installed: a local Ray instance with
   no cluster to set up, or a cluster's with ``address``) tasks run in parallel, one CPU each; with
   ``engine="local"`` they run one after another here. Finished runs are skipped, interrupted
   ones resume from their checkpoints;
3. reports each cell over its seeds (``OUT/CELL/goodhart.json`` and curve), prints a table and
   writes it (``OUT/table.csv``), draws ``OUT/comparison.png`` (final p, t and gap per cell) and,
   for a grid with a ``[plot]``, ``OUT/phase_diagram.png`` (gap and true t over two axes);
4. runs the experiment's named analyses (:data:`gaming_gym.analyses.ANALYSES`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gaming_gym.agents import get_agent, read_run_config
from gaming_gym.analyses import ANALYSES, AnalysisContext
from gaming_gym.errors import ConfigError, RunDirectoryError, shortened
from gaming_gym.experiment import report_over_runs, run_report, train_experiments
from gaming_gym.files import write_text_atomically
from gaming_gym.metrics import MEASURES, GoodhartReport
from gaming_gym.plots import plot_conditions, plot_phase_diagram
from gaming_gym.runs import REPORT_FILE, differing_fields
from gaming_gym.spec import STEPS_AXIS, Cell, Spec, cell_config, cell_run_dir, value_label

ENGINES = ("auto", "ray", "local")
STEP_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
"""Where along the budget the ``steps`` axis reads each run (its last evaluation at or before)."""
TABLE_FILE = "table.csv"
COMPARISON_FILE = "comparison.png"
PHASE_FILE = "phase_diagram.png"
REWARD_MODELS = "reward_models"
"""The folder under an experiment's output where its reward models are trained."""


@dataclass(frozen=True)
class Job:
    """One (cell, seed) run: its agent, its checked config and where it trains (a dataclass of
    plain values: it travels to a Ray task)."""

    cell: str
    agent: str
    config: Any
    run_dir: str


@dataclass(frozen=True)
class SweepResult:
    """A finished experiment: each cell's report over its seeds, and the files it wrote."""

    reports: dict[str, GoodhartReport]
    table: Path
    comparison: Path
    phase_diagram: Path | None
    trained: int  # runs trained (or resumed) by this call
    skipped: int  # runs already finished
    seconds: float


def run_sweep(
    spec: Spec,
    out: str | os.PathLike,
    engine: str = "auto",
    address: str | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> SweepResult:
    """Run the experiment ``spec`` into ``out`` (module docstring)."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    unknown = [analysis.name for analysis in spec.analyses if analysis.name not in ANALYSES]
    if unknown:
        raise ConfigError(
            f"unknown analysis {', '.join(map(repr, unknown))}; there are {', '.join(ANALYSES)}"
        )
    started = time.perf_counter()
    out = Path(out)
    models = train_reward_models(spec, out, say)
    jobs, skipped = [], 0
    for cell in spec.cells:
        for seed in spec.seeds:
            config = cell_config(spec, cell, seed, models)
            run_dir = cell_run_dir(out, cell.label, seed)
            if finished_run(run_dir, spec.agent, config):
                skipped += 1
                continue
            jobs.append(Job(cell.label, spec.agent, config, str(run_dir)))
    groups = plan_groups(jobs, spec.max_stack)
    runs = len(spec.cells) * len(spec.seeds)
    say(
        f"{len(spec.cells)} cells x {len(spec.seeds)} seeds = {runs} runs; "
        f"{skipped} finished, {len(jobs)} to train in {len(groups)} task(s)"
    )
    execute_groups(groups, engine, address, progress, say)
    reports = {
        cell.label: report_over_runs(
            [cell_run_dir(out, cell.label, s) for s in spec.seeds], out / cell.label
        )[0]
        for cell in spec.cells
    }
    title = spec.title or f"experiment on {spec.env_id}"
    say(conditions_table(reports, title))
    table = write_table(reports, spec.cells, out / TABLE_FILE)
    comparison = plot_conditions(reports, out / COMPARISON_FILE, title)
    diagram = plot_sweep(spec, out, out / PHASE_FILE, title) if spec.plot is not None else None
    context = AnalysisContext(spec, out, reports, title, models)
    for analysis in spec.analyses:
        say(ANALYSES[analysis.name](context, **analysis.params))
    return SweepResult(reports, table, comparison, diagram, len(jobs), skipped, time.perf_counter() - started)


def train_reward_models(spec: Spec, out: Path, say: Callable[[str], None]) -> dict[str, str]:
    """Each reward model the experiment names, trained into ``out/reward_models/NAME`` unless it
    is there already; their folders by name."""
    from gaming_gym.rlhf import RewardModelConfig, load_reward_model, save_reward_model, train_reward_model

    folders = {}
    for name, fields in spec.reward_models.items():
        folder = out / REWARD_MODELS / name.replace(" ", "_").replace(",", "")
        if not folder.exists():
            config = RewardModelConfig(**{"env_id": spec.env_id, **fields})
            device = spec.settings.get("device", "cpu")
            model, report = train_reward_model(config, device="cpu" if device == "auto" else device)
            save_reward_model(model, config, report, folder)
            say(f"reward model {name!r}: {report.summary()}")
        load_reward_model(folder, fields.get("env_id", spec.env_id))  # there, whole, and for its env
        folders[name] = str(folder)
    return folders


def finished_run(run_dir: Path, agent: str, config: Any) -> bool:
    """The run in ``run_dir`` is this very run (every setting, the budget too) and has reported."""
    if not (run_dir / REPORT_FILE).is_file():
        return False
    saved = read_run_config(run_dir)
    return saved.get("agent") == agent and not differing_fields(saved, config.to_dict())


def plan_groups(jobs: Sequence[Job], max_stack: int) -> list[list[Job]]:
    """Tasks: runs the agent can train as one stack in groups of up to ``max_stack`` (seeds next
    to each other), every other run alone; the costliest first."""
    by_key: dict[str, list[Job]] = {}
    alone: list[list[Job]] = []
    for job in jobs:
        key = get_agent(job.agent).stack_key(job.config)
        if key is None:
            alone.append([job])
        else:
            by_key.setdefault(key, []).append(job)
    stacked = [
        group[start : start + max_stack]
        for group in by_key.values()
        for start in range(0, len(group), max_stack)
    ]
    return sorted(stacked + alone, key=_cost, reverse=True)


def _cost(group: Sequence[Job]) -> float:
    """A rough size of a task: runs x steps x network width."""
    config = group[0].config
    return len(group) * config.total_timesteps * sum(config.hidden_sizes)


class Progress:
    """Says each finished task with its time and an estimate of the time left (the work left,
    as :func:`_cost` sizes it, at the pace so far); ``on_done(group, seconds)`` hears of each."""

    def __init__(
        self,
        groups: Sequence[Sequence[Job]],
        say: Callable[[str], None],
        on_done: Callable[[Sequence[Job], float], None] | None = None,
    ):
        self.total, self.left = len(groups), sum(_cost(g) for g in groups)
        self.done, self.spent = 0, 0.0
        self.started = time.perf_counter()
        self.say, self.on_done = say, on_done

    def finished(self, group: Sequence[Job], seconds: float | None, failure: str | None = None) -> None:
        self.done += 1
        self.left -= _cost(group)
        self.spent += _cost(group)
        elapsed = time.perf_counter() - self.started
        eta = elapsed * self.left / self.spent if self.spent and self.left > 0 else 0.0
        what = f"FAILED: {failure}" if failure else f"in {seconds:.0f} s"
        left = f"; about {_duration(eta)} left" if self.done < self.total else ""
        self.say(f"[{self.done}/{self.total}] {_describe(group)} {what}{left}")
        if failure is None and self.on_done is not None:
            self.on_done(group, seconds)


def _duration(seconds: float) -> str:
    """``"40 s"``, ``"12 min"`` or ``"2 h 05 min"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def run_group(jobs: Sequence[Job], progress: bool = True) -> list[str]:
    """Train one task's runs (as one stack where the agent can) and write each one's report;
    returns their run directories."""
    train_experiments(jobs[0].agent, [job.config for job in jobs], [job.run_dir for job in jobs], progress)
    return [job.run_dir for job in jobs]


def execute_groups(
    groups: list[list[Job]],
    engine: str,
    address: str | None,
    progress: bool,
    say: Callable[[str], None],
    on_done: Callable[[Sequence[Job], float], None] | None = None,
) -> None:
    """Run the tasks on Ray (in parallel) or here (one after another), saying each finished one
    with the time left; ``on_done(group, seconds)`` hears of each that finished."""
    if engine == "auto":
        engine = "ray" if _ray_installed() else "local"
    tracker = Progress(groups, say, on_done)
    if engine == "local" or not groups:
        for group in groups:
            started = time.perf_counter()
            run_group(group, progress)
            tracker.finished(group, time.perf_counter() - started)
        return
    if not _ray_installed():
        raise ConfigError("engine 'ray' needs Ray: pip install 'gaming_gym[sweep]' (or use --engine local)")
    _execute_on_ray(groups, address, tracker)


def _ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _execute_on_ray(groups: list[list[Job]], address: str | None, tracker: Progress) -> None:
    """One Ray task per group, one CPU each; a local Ray instance unless ``address`` names a
    cluster. Tasks print no progress bars (their output would interleave); each finished one is
    said here. A failed task fails the experiment after the others finish (their runs are kept)."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_timed_group)
        pending = {task.remote(group): group for group in groups}
        failures = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(ready[0])
            try:
                tracker.finished(group, ray.get(ready[0]))
            except ray.exceptions.RayTaskError as error:
                failures.append((group, error))
                tracker.finished(group, None, _cause(error))
        if failures:
            group, error = failures[0]
            cause = error.cause if isinstance(getattr(error, "cause", None), Exception) else None
            if isinstance(cause, ConfigError | RunDirectoryError):
                raise cause
            raise RuntimeError(
                f"{len(failures)} task(s) failed; the first, {_describe(group)}: {_cause(error)}"
            )
    finally:
        if started_here:
            ray.shutdown()


def _timed_group(jobs: Sequence[Job]) -> float:
    started = time.perf_counter()
    run_group(jobs, progress=False)
    return time.perf_counter() - started


def _cause(error: Exception) -> str:
    cause = getattr(error, "cause", None)
    return shortened(str(cause or error), 300)


def _describe(group: Sequence[Job]) -> str:
    cells = sorted({job.cell for job in group})
    seeds = ",".join(str(job.config.seed) for job in group)
    stacked = f" (stacked x{len(group)})" if len(group) > 1 else ""
    return f"{'; '.join(cells)} seed {seeds}{stacked}"


# --- what it shows -------------------------------------------------------------------------------

COMPARED = [row for row in MEASURES if row.compared]
"""The measures the tables and bars comparing cells show (final p, t and gap)."""


def conditions_table(reports: dict[str, GoodhartReport], title: str) -> str:
    """One row per cell: the compared measures of the table, each with its interval."""

    def cell(value: float, interval) -> str:
        return f"{value:6.2f} [{interval[0]:5.2f}, {interval[1]:5.2f}]" if interval else f"{value:6.2f}"

    header = f"{'condition':<28}" + "".join(f"{row.label.removesuffix(' (final)'):>22}" for row in COMPARED)
    lines = [title, header]
    for label, report in reports.items():
        values = [cell(report.measures[row.name], report.intervals.get(row.name)) for row in COMPARED]
        lines.append(f"{label:<28}" + "".join(f"{value:>22}" for value in values))
    return "\n".join(lines)


def write_table(reports: dict[str, GoodhartReport], cells: Sequence[Cell], path: Path) -> Path:
    """A CSV row per cell: its axis values (grid cells), then each compared measure's mean over
    seeds with its interval."""
    axes = list(cells[0].values)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    names = [row.name.removeprefix("final_") for row in COMPARED]
    writer.writerow(["cell", *axes, "seeds"] + [f"{n}{s}" for n in names for s in ("", "_low", "_high")])
    for cell in cells:
        report = reports[cell.label]
        row = [cell.label, *(value_label(cell.values[axis]) for axis in axes), report.n_runs]
        for measure in COMPARED:
            value, interval = report.measures[measure.name], report.intervals.get(measure.name)
            row += [f"{value:.4f}", *(f"{v:.4f}" for v in interval)] if interval else [f"{value:.4f}", "", ""]
        writer.writerow(row)
    return write_text_atomically(path, buffer.getvalue())


def phase_values(spec: Spec, out: Path) -> dict[str, Any]:
    """The phase diagram's numbers: for each panel value, the mean over seeds of the gap and of
    the true return at each (y, x); ``{"x": [...], "y": [...], "panels": [...], "gap": array
    (panels, y, x), "true": ..., "spread": the seeds' gap range, same shape}``."""
    plot = spec.plot
    x_values = [value_label(v) for v in spec.grid[plot.x]]
    panels = [None] if plot.panels is None else spec.grid[plot.panels]
    if plot.y == STEPS_AXIS:
        config = cell_config(spec, spec.cells[0], spec.seeds[0])
        budget = config.num_iterations * config.batch_size
        y_values = [int(budget * fraction) for fraction in STEP_FRACTIONS]
    else:
        y_values = spec.grid[plot.y]
    shape = (len(panels), len(y_values), len(x_values))
    gaps: dict[tuple[int, int, int], list[float]] = {}
    trues: dict[tuple[int, int, int], list[float]] = {}
    for cell in spec.cells:  # cells differing only on axes not shown share a square: their seeds pool
        x = x_values.index(value_label(cell.values[plot.x]))
        panel = 0 if plot.panels is None else _index(panels, cell.values[plot.panels])
        reports = [run_report(cell_run_dir(out, cell.label, seed)) for seed in spec.seeds]
        rows = (
            list(enumerate(y_values))
            if plot.y == STEPS_AXIS
            else [(_index(y_values, cell.values[plot.y]), None)]
        )
        for y, steps in rows:
            gaps.setdefault((panel, y, x), []).extend(_at(r, r.gap, steps) for r in reports)
            trues.setdefault((panel, y, x), []).extend(_at(r, r.true, steps) for r in reports)
    gap, true, spread = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for square, values in gaps.items():
        gap[square], spread[square] = np.mean(values), np.ptp(values)
        true[square] = np.mean(trues[square])
    return {
        "x": x_values,
        "y": [f"{v:,}" if plot.y == STEPS_AXIS else value_label(v) for v in y_values],
        "panels": [value_label(p) for p in panels],
        "gap": gap,
        "true": true,
        "spread": spread,
    }


def _index(values: Sequence[Any], value: Any) -> int:
    return [value_label(v) for v in values].index(value_label(value))


def _at(report: GoodhartReport, curve: Sequence[float], steps: int | None) -> float:
    """The curve's value at the report's last evaluation at or before ``steps`` (the end: None)."""
    if steps is None:
        return float(curve[-1])
    evaluated = [k for k, step in enumerate(report.steps) if step <= steps]
    return float(curve[evaluated[-1]]) if evaluated else math.nan


def plot_sweep(spec: Spec, out: Path, path: Path, title: str) -> Path:
    plot = spec.plot
    return plot_phase_diagram(
        phase_values(spec, out),
        path,
        title=f"{title}\nmean over seeds {', '.join(map(str, spec.seeds))}",
        x_label=plot.x,
        y_label="training steps" if plot.y == STEPS_AXIS else plot.y,
        panel_label=plot.panels,
    )


__all__ = [
    "COMPARISON_FILE",
    "ENGINES",
    "PHASE_FILE",
    "TABLE_FILE",
    "Job",
    "SweepResult",
    "conditions_table",
    "execute_groups",
    "finished_run",
    "phase_values",
    "plan_groups",
    "run_group",
    "run_sweep",
    "train_reward_models",
]
