"""Sweeps: a grid of settings times seeds, each cell a run directory, on Ray or in this process.

A sweep file (TOML) names an env, the seeds, the settings every run shares, and the grid: one
run per combination of the grid's values and per seed::

    env = "GamingGym/BoatRace-v1"
    seeds = [0, 1]
    title = "BoatRace: optimisation pressure"

    [settings]                     # PPOConfig fields every run shares
    total_timesteps = 1_572_864

    [knobs]                        # env knobs every run shares
    respawn_delay = 40

    [grid]                         # axes: PPOConfig fields, or knobs.NAME
    hidden_sizes = [[4, 4], [16, 16], [64, 64], [256, 256]]
    kl_coef = [0.0, 0.1]

    [plot]                         # the phase diagram
    x = "hidden_sizes"             # a grid axis
    y = "steps"                    # a grid axis, or "steps" (evaluations along training)
    panels = "kl_coef"             # optional: one panel per value (a mitigation's strength)

:func:`run_sweep` writes ``OUT/CELL/seed-S/`` run directories (as ``gaming-gym train`` does),
then ``OUT/CELL/goodhart.json`` over the seeds, ``OUT/sweep_table.csv`` (a row per cell: mean
final proxy, true and gap with intervals), and ``OUT/phase_diagram.png``: the Goodhart gap and the
true return over the two chosen axes, one column of panels per value of ``panels``.

Runs of native PPO that differ only in settings that keep tensor shapes (seeds above all) are
trained stacked, as one batched computation (:mod:`gaming_gym.agents.ppo.stacked`), up to
``max_stack`` at a time. Each such group is one task: on Ray (``engine="ray"``, the default when
Ray is installed: a local Ray instance with no cluster to set up, or a cluster's with
``address``), tasks run in parallel, one CPU each; with ``engine="local"`` they run one after
another in this process. Re-running a sweep skips the cells that finished and resumes the
interrupted ones from their checkpoints.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gaming_gym.agents.agent import get_agent
from gaming_gym.errors import ConfigError, RunDirectoryError, UnevenStackError
from gaming_gym.experiment import (
    _checked_config,
    condition_run_dir,
    conditions_table,
    load_report,
    report_over_runs,
    train_experiment,
    write_report,
)
from gaming_gym.files import write_text_atomically
from gaming_gym.metrics import GoodhartReport
from gaming_gym.runs import REPORT_FILE, RunDirectory, differing_fields, read_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENGINES = ("auto", "ray", "local")
STEPS_AXIS = "steps"
"""The plot axis of training steps: the evaluations along each run, not a grid axis."""
STEP_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
"""Where along the budget the ``steps`` axis reads each run (its last evaluation at or before)."""
TABLE_FILE = "sweep_table.csv"
PHASE_FILE = "phase_diagram.png"
SWEEP_KEYS = {"env", "agent", "seeds", "title", "settings", "knobs", "grid", "plot", "max_stack"}
PLOT_KEYS = {"x", "y", "panels"}


@dataclass(frozen=True)
class PlotSpec:
    """Which axes the phase diagram shows: ``x`` and ``y`` (a grid axis or ``"steps"``), and the
    axis whose values get a panel each (``None``: one panel)."""

    x: str
    y: str = STEPS_AXIS
    panels: str | None = None


@dataclass(frozen=True)
class Sweep:
    """A sweep file, read and checked (:func:`load_sweep`)."""

    env_id: str
    seeds: tuple[int, ...]
    grid: dict[str, list[Any]]
    plot: PlotSpec
    settings: dict[str, Any] = field(default_factory=dict)
    knobs: dict[str, Any] = field(default_factory=dict)
    agent: str = "ppo"
    title: str = ""
    max_stack: int = 16


@dataclass(frozen=True)
class Cell:
    """One combination of the grid's values: its label, knobs and settings."""

    label: str
    values: dict[str, Any]
    knobs: dict[str, Any]
    settings: dict[str, Any]


# --- reading a sweep file ------------------------------------------------------------------------


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and check a sweep file; any problem is a :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"no sweep file at {path}") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a valid TOML sweep file: {error}") from error
    try:
        return _sweep_from(spec)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def _sweep_from(spec: dict[str, Any]) -> Sweep:
    unknown = sorted(set(spec) - SWEEP_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; a sweep has {', '.join(sorted(SWEEP_KEYS))}")
    for required in ("env", "seeds", "grid", "plot"):
        if required not in spec:
            raise ConfigError(f"the sweep needs {required!r}")
    _require_finite(spec)
    seeds = spec["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"seeds must be distinct, got {seeds!r}")
    grid = spec["grid"]
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("[grid] must name at least one axis")
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid axis {axis!r} must be a non-empty list of values, got {values!r}")
        if axis == "seed" or axis == STEPS_AXIS:
            raise ConfigError(
                f"{axis!r} cannot be a grid axis: seeds go in 'seeds', steps come from training"
            )
    plot = spec["plot"]
    if not isinstance(plot, dict) or set(plot) - PLOT_KEYS or "x" not in plot:
        raise ConfigError(f"[plot] takes x (required), y and panels; got {plot!r}")
    plot = PlotSpec(**plot)
    for name, axis in (("x", plot.x), ("y", plot.y), ("panels", plot.panels)):
        allowed = list(grid) + ([STEPS_AXIS] if name != "panels" else [])
        if axis is not None and axis not in allowed:
            raise ConfigError(f"plot {name} = {axis!r} is not one of {', '.join(map(repr, allowed))}")
    chosen = [a for a in (plot.x, plot.y, plot.panels) if a is not None]
    if len(set(chosen)) < len(chosen):
        raise ConfigError(f"plot axes must differ, got x={plot.x!r} y={plot.y!r} panels={plot.panels!r}")
    max_stack = spec.get("max_stack", 16)
    if not _is_int(max_stack) or max_stack < 1:
        raise ConfigError(f"max_stack must be a positive int, got {max_stack!r}")
    for table in ("settings", "knobs"):
        if not isinstance(spec.get(table, {}), dict):
            raise ConfigError(f"[{table}] must be a table of NAME = VALUE")
    return Sweep(
        env_id=str(spec["env"]),
        seeds=tuple(seeds),
        grid={axis: list(values) for axis, values in grid.items()},
        plot=plot,
        settings=dict(spec.get("settings", {})),
        knobs=dict(spec.get("knobs", {})),
        agent=str(spec.get("agent", "ppo")),
        title=str(spec.get("title", "")),
        max_stack=max_stack,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_finite(value: Any, where: str = "") -> None:
    """TOML reads nan and inf: refuse them anywhere in the file."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where or 'a value'} is {value}: sweep values must be finite")
    if isinstance(value, dict):
        for key, item in value.items():
            _require_finite(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for item in value:
            _require_finite(item, where)


def sweep_cells(sweep: Sweep) -> list[Cell]:
    """Every combination of the grid's values, in the grid's order (the last axis fastest)."""
    cells = []
    for combination in itertools.product(*sweep.grid.values()):
        values = dict(zip(sweep.grid, combination, strict=True))
        knobs, settings = dict(sweep.knobs), dict(sweep.settings)
        for axis, value in values.items():
            if axis.startswith("knobs."):
                knobs[axis.removeprefix("knobs.")] = value
            else:
                settings[axis] = tuple(value) if isinstance(value, list) else value
        label = ",".join(
            f"{axis.removeprefix('knobs.')}={_value_label(value)}" for axis, value in values.items()
        )
        cells.append(Cell(label, values, knobs, settings))
    return cells


def _value_label(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "x".join(map(str, value))
    return str(value)


# --- running it ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """One (cell, seed) run: what to train and where."""

    cell: str
    seed: int
    env_id: str
    knobs: dict[str, Any]
    settings: dict[str, Any]
    run_dir: str


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: each cell's report over its seeds, the table and the phase diagram."""

    reports: dict[str, GoodhartReport]
    table: Path
    phase_diagram: Path
    trained: int  # runs trained (or resumed) by this call
    skipped: int  # runs already finished
    seconds: float


def run_sweep(
    sweep: Sweep,
    out: str | os.PathLike,
    engine: str = "auto",
    address: str | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> SweepResult:
    """Train every cell of ``sweep`` on every seed into ``out``, then report and plot (see the
    module's docstring). Finished runs are skipped; interrupted ones resume."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    started = time.perf_counter()
    out = Path(out)
    cells = sweep_cells(sweep)
    chosen = get_agent(sweep.agent)
    jobs, skipped = [], 0
    for cell in cells:
        for seed in sweep.seeds:
            settings = {**cell.settings, "seed": seed}
            config = _checked_config(
                lambda s=settings, c=cell: chosen.config(sweep.env_id, knobs=c.knobs, **s)
            )
            run_dir = condition_run_dir(out, cell.label, seed)
            if _finished(run_dir, sweep.agent, config):
                skipped += 1
                continue
            jobs.append(_Job(cell.label, seed, sweep.env_id, cell.knobs, settings, str(run_dir)))
    groups = plan_groups(jobs, sweep.agent, sweep.max_stack)
    say(
        f"sweep: {len(cells)} cells x {len(sweep.seeds)} seeds = {len(cells) * len(sweep.seeds)} runs; "
        f"{skipped} finished, {len(jobs)} to train in {len(groups)} task(s)"
    )
    _execute(groups, sweep.agent, engine, address, progress, say)
    reports = {
        cell.label: report_over_runs(
            [condition_run_dir(out, cell.label, seed) for seed in sweep.seeds], out / cell.label
        )[0]
        for cell in cells
    }
    title = sweep.title or f"sweep on {sweep.env_id}"
    say(conditions_table(reports, title))
    table = write_sweep_table(reports, cells, out / TABLE_FILE)
    diagram = plot_sweep(sweep, cells, out, out / PHASE_FILE, title)
    return SweepResult(reports, table, diagram, len(jobs), skipped, time.perf_counter() - started)


def _finished(run_dir: Path, agent: str, config: Any) -> bool:
    """The run in ``run_dir`` is this very run (every setting, the budget too) and has reported."""
    if not (run_dir / REPORT_FILE).is_file():
        return False
    saved = read_config(run_dir)
    return saved.get("agent") == agent and not differing_fields(saved, config.to_dict())


def plan_groups(jobs: Sequence[_Job], agent: str, max_stack: int) -> list[list[_Job]]:
    """Tasks: native PPO runs that can train stacked in groups of up to ``max_stack`` (seeds
    next to each other), every other run alone."""
    if agent != "ppo":
        return [[job] for job in jobs]
    from gaming_gym.agents.ppo import default_config
    from gaming_gym.agents.ppo.stacked import stacking_key, stacking_refusal

    by_key: dict[str, list[_Job]] = {}
    alone: list[list[_Job]] = []
    for job in jobs:
        config = default_config(job.env_id, knobs=job.knobs, **job.settings)
        if stacking_refusal(config) is not None:
            alone.append([job])
        else:
            by_key.setdefault(stacking_key(config), []).append(job)
    stacked = [
        group[start : start + max_stack]
        for group in by_key.values()
        for start in range(0, len(group), max_stack)
    ]
    # the costliest first, so that parallel tasks do not wait on a big one started last
    return sorted(stacked + alone, key=_cost, reverse=True)


def _cost(group: Sequence[_Job]) -> float:
    """A rough size of a task: runs x steps x network width."""
    settings = group[0].settings
    return len(group) * settings.get("total_timesteps", 1) * sum(settings.get("hidden_sizes", (64, 64)))


def run_group(jobs: Sequence[_Job], agent: str, progress: bool = True) -> list[str]:
    """Train one task's runs (stacked when there are several) and write each one's report;
    returns their run directories."""
    if len(jobs) == 1:
        job = jobs[0]
        train_experiment(job.env_id, job.run_dir, agent, job.knobs, progress, **job.settings)
        return [job.run_dir]
    from gaming_gym.agents.ppo import default_config, train
    from gaming_gym.agents.ppo.stacked import train_stacked

    configs = [default_config(job.env_id, knobs=job.knobs, **job.settings) for job in jobs]
    with ExitStack() as held:
        directories = [held.enter_context(RunDirectory(job.run_dir)) for job in jobs]
        try:
            results = [result.checkpoints for result in train_stacked(configs, directories, progress)]
        except UnevenStackError:  # killed between the runs' checkpoints: each resumes alone from its own
            results = [
                train(config, directory, progress).checkpoints
                for config, directory in zip(configs, directories, strict=True)
            ]
        for job, directory, checkpoints in zip(jobs, directories, results, strict=True):
            write_report(directory, job.env_id, job.knobs, checkpoints)
    return [job.run_dir for job in jobs]


def _execute(
    groups: list[list[_Job]],
    agent: str,
    engine: str,
    address: str | None,
    progress: bool,
    say: Callable[[str], None],
) -> None:
    """Run the tasks on Ray (in parallel) or here (one after another)."""
    if engine == "auto":
        engine = "ray" if _ray_installed() else "local"
    if engine == "local" or not groups:
        for done, group in enumerate(groups, 1):
            started = time.perf_counter()
            run_group(group, agent, progress)
            say(f"[{done}/{len(groups)}] {_describe(group)} in {time.perf_counter() - started:.0f} s")
        return
    if not _ray_installed():
        raise ConfigError("engine 'ray' needs Ray: pip install 'gaming_gym[sweep]' (or use --engine local)")
    _execute_on_ray(groups, agent, address, say)


def _ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _execute_on_ray(
    groups: list[list[_Job]], agent: str, address: str | None, say: Callable[[str], None]
) -> None:
    """One Ray task per group, one CPU each; a local Ray instance unless ``address`` names a
    cluster. Tasks print no progress bars (their output would interleave); each finished one is
    said here. A failed task fails the sweep after the others finish (their runs are kept)."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_timed_group)
        pending = {task.remote(group, agent): group for group in groups}
        failures = []
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(ready[0])
            done += 1
            try:
                seconds = ray.get(ready[0])
                say(f"[{done}/{len(groups)}] {_describe(group)} in {seconds:.0f} s")
            except ray.exceptions.RayTaskError as error:
                failures.append((group, error))
                say(f"[{done}/{len(groups)}] {_describe(group)} FAILED: {_cause(error)}")
        if failures:
            group, error = failures[0]
            cause = error.cause if isinstance(getattr(error, "cause", None), Exception) else None
            if isinstance(cause, ConfigError | RunDirectoryError):
                raise cause
            raise RuntimeError(
                f"{len(failures)} sweep task(s) failed; the first, {_describe(group)}: {_cause(error)}"
            )
    finally:
        if started_here:
            ray.shutdown()


def _timed_group(jobs: Sequence[_Job], agent: str) -> float:
    started = time.perf_counter()
    run_group(jobs, agent, progress=False)
    return time.perf_counter() - started


def _cause(error: Exception) -> str:
    cause = getattr(error, "cause", None)
    return " ".join(str(cause or error).split())[:300]


def _describe(group: Sequence[_Job]) -> str:
    cells = sorted({job.cell for job in group})
    seeds = ",".join(str(job.seed) for job in group)
    stacked = f" (stacked x{len(group)})" if len(group) > 1 else ""
    return f"{'; '.join(cells)} seed {seeds}{stacked}"


# --- what it shows -------------------------------------------------------------------------------


def write_sweep_table(reports: dict[str, GoodhartReport], cells: Sequence[Cell], path: Path) -> Path:
    """A CSV row per cell: its axis values, then the mean final p, t and gap with intervals."""
    axes = list(cells[0].values)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = ["proxy", "true", "gap"]
    writer.writerow(["cell", *axes, "seeds"] + [f"{c}{s}" for c in columns for s in ("", "_low", "_high")])
    for cell in cells:
        report = reports[cell.label]
        row = [cell.label, *(_value_label(cell.values[axis]) for axis in axes), report.n_runs]
        for value, interval in (
            (report.final_proxy, report.final_proxy_ci),
            (report.final_true, report.final_true_ci),
            (report.final_gap, report.final_gap_ci),
        ):
            row += [f"{value:.4f}", *(f"{v:.4f}" for v in interval)] if interval else [f"{value:.4f}", "", ""]
        writer.writerow(row)
    return write_text_atomically(path, buffer.getvalue())


def phase_values(sweep: Sweep, cells: Sequence[Cell], out: Path) -> dict[str, Any]:
    """The phase diagram's numbers: for each panel value, the mean over seeds of the gap and of
    the true return at each (y, x); ``{"x": [...], "y": [...], "panels": [...], "gap": array
    (panels, y, x), "true": ..., "spread": the seeds' gap range, same shape}``."""
    spec = sweep.plot
    x_values = [_value_label(v) for v in sweep.grid[spec.x]]
    panels = [None] if spec.panels is None else sweep.grid[spec.panels]
    if spec.y == STEPS_AXIS:
        budget = _budget(sweep, cells[0])
        y_values = [int(budget * fraction) for fraction in STEP_FRACTIONS]
    else:
        y_values = sweep.grid[spec.y]
    shape = (len(panels), len(y_values), len(x_values))
    gaps: dict[tuple[int, int, int], list[float]] = {}
    trues: dict[tuple[int, int, int], list[float]] = {}
    for cell in cells:  # cells differing only on axes not shown share a square: their seeds pool
        x = x_values.index(_value_label(cell.values[spec.x]))
        panel = 0 if spec.panels is None else _index(panels, cell.values[spec.panels])
        reports = [load_report(condition_run_dir(out, cell.label, seed)) for seed in sweep.seeds]
        rows = (
            list(enumerate(y_values))
            if spec.y == STEPS_AXIS
            else [(_index(y_values, cell.values[spec.y]), None)]
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
        "y": [f"{v:,}" if spec.y == STEPS_AXIS else _value_label(v) for v in y_values],
        "panels": [_value_label(p) for p in panels],
        "gap": gap,
        "true": true,
        "spread": spread,
    }


def _index(values: Sequence[Any], value: Any) -> int:
    return [_value_label(v) for v in values].index(_value_label(value))


def _at(report: GoodhartReport, curve: Sequence[float], steps: int | None) -> float:
    """The curve's value at the report's last evaluation at or before ``steps`` (the end: None)."""
    if steps is None:
        return float(curve[-1])
    evaluated = [k for k, step in enumerate(report.steps) if step <= steps]
    return float(curve[evaluated[-1]]) if evaluated else math.nan


def _budget(sweep: Sweep, cell: Cell) -> int:
    from gaming_gym.agents.ppo import default_config

    config = default_config(sweep.env_id, knobs=cell.knobs, **{**cell.settings, "seed": sweep.seeds[0]})
    return config.num_iterations * config.batch_size


def plot_sweep(sweep: Sweep, cells: Sequence[Cell], out: Path, path: Path, title: str) -> Path:
    from gaming_gym.plots import plot_phase_diagram

    values = phase_values(sweep, cells, out)
    spec = sweep.plot
    return plot_phase_diagram(
        values,
        path,
        title=f"{title}\nmean over seeds {', '.join(map(str, sweep.seeds))}",
        x_label=spec.x,
        y_label="training steps" if spec.y == STEPS_AXIS else spec.y,
        panel_label=spec.panels,
    )


__all__ = [
    "ENGINES",
    "PHASE_FILE",
    "TABLE_FILE",
    "Cell",
    "PlotSpec",
    "Sweep",
    "SweepResult",
    "load_sweep",
    "phase_values",
    "plan_groups",
    "run_group",
    "run_sweep",
    "sweep_cells",
]
