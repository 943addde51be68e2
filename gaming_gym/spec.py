"""Experiment files: one TOML format for every experiment, from a grid sweep to a list of arms.

An experiment names an env, the seeds, the settings every run shares, and its cells: either a
``[grid]`` (one cell per combination of the axes' values) or a list of ``[[conditions]]`` (named
arms, each with knobs and settings of its own). Every cell trains on every seed::

    env = "GamingGym/BoatRace-v1"
    seeds = [0, 1, 2]
    title = "BoatRace: KL penalty x policy width"

    [settings]                       # PPOConfig fields every run shares
    total_timesteps = 1_572_864
    [settings.mitigations.early_stopping]   # a mitigation every run uses, with its settings
    episodes = 8

    [knobs]                          # env knobs every run shares (TOML has no null: write "None")
    respawn_delay = 40

    [grid]                           # axes: PPOConfig fields, "knobs.NAME", "mitigations.NAME.SETTING"
    hidden_sizes = [[16, 16], [64, 64]]
    "mitigations.kl_initial.beta" = [0.0, 0.01, 0.1]

    [plot]                           # a phase diagram over two grid axes (or "steps")
    x = "hidden_sizes"
    y = "steps"
    panels = "mitigations.kl_initial.beta"

or, instead of ``[grid]`` and ``[plot]``::

    [[conditions]]
    label = "lagoon empty"
    knobs = { lagoon_opens = "None" }
    [[conditions]]                   # a condition may train on an env of its own (with its own
    label = "TallFall"               # knobs only: the experiment's are the experiment env's)
    env = "GamingGym/TallFall-v0"
    [[conditions]]
    label = "true reward"
    settings = { reward = "true" }

An experiment may also train reward models first (RLHF: ``[reward_models.NAME]``, the fields of
:class:`gaming_gym.rlhf.RewardModelConfig`; a condition's ``settings.reward_model = "NAME"`` trains
against it), and name its own analyses (``analyses = ["dynamics"]``, or ``[[analyses]]`` tables
with parameters; :data:`gaming_gym.analyses.ANALYSES`). :func:`load_spec` checks the whole file,
every cell's config included (agent settings, knobs, mitigations), so a bad value fails, naming
the file and the key, before anything trains. :mod:`gaming_gym.sweep` runs it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gaming_gym.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPEC_KEYS = {
    "env",
    "agent",
    "seeds",
    "title",
    "settings",
    "knobs",
    "grid",
    "conditions",
    "plot",
    "max_stack",
    "reward_models",
    "analyses",
}
PLOT_KEYS = {"x", "y", "panels"}
CONDITION_KEYS = {"label", "env", "knobs", "settings"}
STEPS_AXIS = "steps"
"""The plot axis of training steps: the evaluations along each run, not a grid axis."""
NULL = "None"
"""TOML has no null: a knob or setting written as this string is ``None``."""


@dataclass(frozen=True)
class PlotSpec:
    """Which axes the phase diagram shows: ``x`` and ``y`` (a grid axis or ``"steps"``), and the
    axis whose values get a panel each (``None``: one panel)."""

    x: str
    y: str = STEPS_AXIS
    panels: str | None = None


@dataclass(frozen=True)
class Cell:
    """One arm of an experiment: its label (a folder name), its grid values (``{}`` for a
    condition), and its own knobs and settings (on top of the experiment's: :meth:`Spec.knobs_of`,
    :meth:`Spec.settings_of`)."""

    label: str
    values: dict[str, Any]
    knobs: dict[str, Any]
    settings: dict[str, Any]
    env_id: str | None = None  # a condition's own env (the experiment's when None)


@dataclass(frozen=True)
class Analysis:
    """A named analysis function the experiment runs after training, with its parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """An experiment file, read and checked (:func:`load_spec`)."""

    env_id: str
    seeds: tuple[int, ...]
    cells: list[Cell]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    plot: PlotSpec | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    knobs: dict[str, Any] = field(default_factory=dict)
    agent: str = "ppo"
    title: str = ""
    max_stack: int = 16
    reward_models: dict[str, dict[str, Any]] = field(default_factory=dict)
    analyses: list[Analysis] = field(default_factory=list)

    def env_of(self, cell: Cell) -> str:
        """A cell's env: its own, else the experiment's."""
        return cell.env_id or self.env_id

    def knobs_of(self, cell: Cell) -> dict[str, Any]:
        """A cell's knobs: the experiment's (unless the cell trains on an env of its own, which
        has knobs of its own), then the cell's."""
        shared = self.knobs if self.env_of(cell) == self.env_id else {}
        return {**shared, **cell.knobs}

    def settings_of(self, cell: Cell) -> dict[str, Any]:
        """A cell's settings: the experiment's, then the cell's own (mitigations merged by name
        and setting)."""
        settings = {**self.settings, **cell.settings}
        shared, own = self.settings.get("mitigations", {}), cell.settings.get("mitigations", {})
        if shared or own:
            settings["mitigations"] = {
                name: {**(shared.get(name) or {}), **(own.get(name) or {})} for name in {**shared, **own}
            }
        return settings

    def with_overrides(self, seeds: list[int] | None = None, **settings: Any) -> Spec:
        """The same experiment on other ``seeds``, or with settings every run shares overridden
        (``total_timesteps``, ``device``; ``None`` leaves one as it is); a cell's own settings
        still win."""
        shared = {**self.settings, **{name: value for name, value in settings.items() if value is not None}}
        return dataclasses.replace(self, seeds=tuple(seeds or self.seeds), settings=shared)


MAX_RUNS = 10_000
"""Most runs (cells x seeds) an experiment may ask for unless ``max_runs`` (``--max-runs``) allows
more: a grid of 1,000 x 1,000 values is a typo more often than a plan, and checking a million
cells alone takes minutes."""


def load_spec(path: str | os.PathLike, max_runs: int = MAX_RUNS) -> Spec:
    """Read and check an experiment file; any problem is a :class:`ConfigError` naming the file.
    More than ``max_runs`` runs is refused before any cell is built."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"no experiment file at {path}") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a valid TOML experiment file: {error}") from error
    try:
        spec = spec_from(data, max_runs)
        check_spec(spec)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error
    return spec


def spec_from(data: dict[str, Any], max_runs: int = MAX_RUNS) -> Spec:
    """A checked :class:`Spec` from a parsed experiment file (see the module docstring)."""
    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)}; an experiment has {', '.join(sorted(SPEC_KEYS))}"
        )
    for required in ("env", "seeds"):
        if required not in data:
            raise ConfigError(f"the experiment needs {required!r}")
    _require_finite(data)
    data = _nulls(data)
    seeds = data["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"seeds must be distinct, got {seeds!r}")
    for table in ("settings", "knobs", "reward_models"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"[{table}] must be a table of NAME = VALUE")
    if "seed" in data.get("settings", {}):
        raise ConfigError("[settings] seed is not a setting of an experiment: list the seeds in 'seeds'")
    max_stack = data.get("max_stack", 16)
    if not _is_int(max_stack) or max_stack < 1:
        raise ConfigError(f"max_stack must be a positive int, got {max_stack!r}")
    settings, knobs = dict(data.get("settings", {})), dict(data.get("knobs", {}))
    if ("grid" in data) == ("conditions" in data):
        raise ConfigError("an experiment has either a [grid] or [[conditions]], not both or neither")
    grid = _checked_grid(data["grid"]) if "grid" in data else {}
    conditions = data.get("conditions")
    count = (
        math.prod(map(len, grid.values())) if grid else len(conditions) if isinstance(conditions, list) else 0
    )
    check_run_count(count, len(seeds), max_runs)
    cells = _grid_cells(grid) if grid else _condition_cells(data["conditions"])
    labels = [cell.label for cell in cells]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"two cells share a label: {sorted({lb for lb in labels if labels.count(lb) > 1})}")
    return Spec(
        env_id=str(data["env"]),
        seeds=tuple(seeds),
        cells=cells,
        grid=grid,
        plot=_checked_plot(data.get("plot"), grid),
        settings=settings,
        knobs=knobs,
        agent=str(data.get("agent", "ppo")),
        title=str(data.get("title", "")),
        max_stack=max_stack,
        reward_models={
            _checked_label(str(name)): fields for name, fields in data.get("reward_models", {}).items()
        },
        analyses=_checked_analyses(data.get("analyses", [])),
    )


def _checked_grid(grid: Any) -> dict[str, list[Any]]:
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("[grid] must name at least one axis")
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid axis {axis!r} must be a non-empty list of values, got {values!r}")
        if axis in ("seed", STEPS_AXIS):
            raise ConfigError(
                f"{axis!r} cannot be a grid axis: seeds go in 'seeds', steps come from training"
            )
        if axis.startswith("mitigations.") and len(axis.split(".")) != 3:
            raise ConfigError(f"grid axis {axis!r}: a mitigation's axis is mitigations.NAME.SETTING")
        labels = [value_label(value) for value in values]
        if len(set(labels)) < len(labels):
            raise ConfigError(f"grid axis {axis!r} lists a value twice: {values!r}")
    return {axis: list(values) for axis, values in grid.items()}


def check_run_count(cells: int, seeds: int, max_runs: int = MAX_RUNS) -> None:
    """Refuse more than ``max_runs`` runs, saying how many were asked for and how to allow them."""
    runs = cells * seeds
    if runs > max_runs:
        raise ConfigError(
            f"the experiment asks for {runs:,} runs ({cells:,} cells x {seeds} seeds), more than "
            f"{max_runs:,}; pass --max-runs {runs} to run them all"
        )


def _grid_cells(grid: dict[str, list[Any]]) -> list[Cell]:
    """Every combination of the grid's values, in the grid's order (the last axis fastest)."""
    cells = []
    for combination in itertools.product(*grid.values()):
        values = dict(zip(grid, combination, strict=True))
        cell_knobs: dict[str, Any] = {}
        cell_settings: dict[str, Any] = {}
        for axis, value in values.items():
            set_axis(axis, value, cell_knobs, cell_settings)
        label = ",".join(f"{axis_label(axis)}={value_label(value)}" for axis, value in values.items())
        cells.append(Cell(_checked_label(label), values, cell_knobs, cell_settings))
    return cells


def _condition_cells(conditions: Any) -> list[Cell]:
    if not isinstance(conditions, list) or not conditions:
        raise ConfigError("[[conditions]] must list at least one condition")
    cells = []
    for condition in conditions:
        if not isinstance(condition, dict) or "label" not in condition:
            raise ConfigError(f"a condition is a table with a label (and knobs, settings), got {condition!r}")
        unknown = sorted(set(condition) - CONDITION_KEYS)
        if unknown:
            raise ConfigError(f"condition {condition['label']!r}: unknown key(s) {', '.join(unknown)}")
        own_knobs, own_settings = condition.get("knobs", {}), condition.get("settings", {})
        if not isinstance(own_knobs, dict) or not isinstance(own_settings, dict):
            raise ConfigError(f"condition {condition['label']!r}: knobs and settings must be tables")
        env = condition.get("env")
        if env is not None and (not isinstance(env, str) or not env):
            raise ConfigError(f"condition {condition['label']!r}: env must be an env id, got {env!r}")
        label = _checked_label(str(condition["label"]))
        cells.append(Cell(label, {}, dict(own_knobs), dict(own_settings), env))
    return cells


def set_axis(axis: str, value: Any, knobs: dict[str, Any], settings: dict[str, Any]) -> None:
    """Put a grid axis's value where it goes: a knob, a mitigation's setting, or a setting."""
    value = tuple(value) if isinstance(value, list) else value
    if axis.startswith("knobs."):
        knobs[axis.removeprefix("knobs.")] = value
    elif axis.startswith("mitigations."):
        _, name, setting = axis.split(".")
        mitigations = settings.setdefault("mitigations", {})
        mitigations[name] = {**mitigations.get(name, {}), setting: value}
    else:
        settings[axis] = value


def axis_label(axis: str) -> str:
    """An axis as a cell label shows it: without its ``knobs.`` or ``mitigations.`` prefix."""
    return axis.removeprefix("knobs.").removeprefix("mitigations.")


def value_label(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "x".join(map(str, value))
    return str(value)


def _checked_label(label: str) -> str:
    """A cell's label (or a reward model's name) names its folder under the experiment's output: it
    must stay one folder there."""
    if (
        not label
        or label in (".", "..")
        or label.startswith(".")
        or any(c in label for c in "/\\")
        or not label.isprintable()
    ):
        raise ConfigError(
            f"{label!r} cannot name a cell or a reward model: it names a folder under the output, so it "
            "must be one printable name, not starting with '.' and without '/' or '\\'"
        )
    return label


def _checked_plot(plot: Any, grid: dict[str, list[Any]]) -> PlotSpec | None:
    if plot is None:
        return None
    if not grid:
        raise ConfigError("[plot] draws a phase diagram over grid axes; this experiment has no [grid]")
    if not isinstance(plot, dict) or set(plot) - PLOT_KEYS or "x" not in plot:
        raise ConfigError(f"[plot] takes x (required), y and panels; got {plot!r}")
    spec = PlotSpec(**plot)
    for name, axis in (("x", spec.x), ("y", spec.y), ("panels", spec.panels)):
        allowed = list(grid) + ([STEPS_AXIS] if name != "panels" else [])
        if axis is not None and axis not in allowed:
            raise ConfigError(f"plot {name} = {axis!r} is not one of {', '.join(map(repr, allowed))}")
    chosen = [a for a in (spec.x, spec.y, spec.panels) if a is not None]
    if len(set(chosen)) < len(chosen):
        raise ConfigError(f"plot axes must differ, got x={spec.x!r} y={spec.y!r} panels={spec.panels!r}")
    return spec


def _checked_analyses(analyses: Any) -> list[Analysis]:
    if not isinstance(analyses, list):
        raise ConfigError(f"analyses must be a list of names or tables, got {analyses!r}")
    checked = []
    for entry in analyses:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(
                f"an analysis is a name, or a table with a name and its parameters, got {entry!r}"
            )
        params = {key: value for key, value in entry.items() if key != "name"}
        checked.append(Analysis(entry["name"], params))
    return checked


def _nulls(value: Any) -> Any:
    """:data:`NULL` strings as None, anywhere in the file."""
    if value == NULL:
        return None
    if isinstance(value, dict):
        return {key: _nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nulls(item) for item in value]
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_finite(value: Any, where: str = "") -> None:
    """TOML reads nan and inf: refuse them anywhere in the file."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where or 'a value'} is {value}: experiment values must be finite")
    if isinstance(value, dict):
        for key, item in value.items():
            _require_finite(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for item in value:
            _require_finite(item, where)


def cell_config(spec: Spec, cell: Cell, seed: int, reward_models: dict[str, str] | None = None) -> Any:
    """The agent's checked config of ``cell`` on ``seed`` (a ConfigError naming the cell). A
    ``reward_model`` naming one of the experiment's ``[reward_models]`` becomes its folder in
    ``reward_models`` (its name, while only checking)."""
    from gaming_gym.agents import get_agent

    settings = spec.settings_of(cell)
    name = settings.get("reward_model")
    if isinstance(name, str) and name in spec.reward_models:
        settings["reward_model"] = (reward_models or {}).get(name, name)
    try:
        agent = get_agent(spec.agent)
        return agent.config(spec.env_of(cell), knobs=spec.knobs_of(cell), **settings, seed=seed)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"cell {cell.label!r}: {error}") from error


def check_spec(spec: Spec) -> None:
    """Every cell's config and every reward model's, checked before anything trains."""
    from gaming_gym.rlhf import RewardModelConfig

    for name, fields in spec.reward_models.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"[reward_models.{name}] must be a table of RewardModelConfig fields")
        try:
            RewardModelConfig(**{"env_id": spec.env_id, **fields})
        except (ValueError, TypeError) as error:
            raise ConfigError(f"reward model {name!r}: {error}") from error
    for cell in spec.cells:
        cell_config(spec, cell, spec.seeds[0])


def cell_run_dir(out: str | os.PathLike, label: str, seed: int) -> Path:
    """Where an experiment written into ``out`` keeps the run of cell ``label`` on ``seed``."""
    return Path(out) / label / f"seed-{seed}"
