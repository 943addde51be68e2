"""One run = train an agent, evaluate it along the way, write a run directory and its report.

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
    RUN_DIR/shift.json, shift_curve.png   with ``deploy_knobs``: true t on the training and the
                                deployment setting along training, and the shift gap

The two d plots need the KL that native PPO records at every evaluation (SB3 runs have none).
An SB3 run keeps its agent in ``sb3_agent.pt`` instead of ``checkpoint.pt``; its
``progress.csv`` holds SB3's own columns beside native PPO's ``charts/`` and ``eval/`` ones.

Reports are derived from the raw records (``config.json`` and ``evaluations.json``): a run made
by an older version gets today's definition of every measure (:func:`run_report`). Re-running the
same training on an interrupted run directory continues it from the checkpoint; on a finished one
it only rewrites the report and plots (other settings on a finished run are refused: its
``config.json`` stays what it trained with). The file names, the lock held while a run trains and
reports, and the checks that keep a run from writing into a directory that is not its own live in
:mod:`gaming_gym.runs`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gaming_gym.agents import get_agent, read_run_config
from gaming_gym.errors import ConfigError, MetricError, UnevenStackError
from gaming_gym.evaluation import EpisodeReturns, reference_returns
from gaming_gym.metrics import Evaluation, GoodhartReport, goodhart_report
from gaming_gym.metrics.shift import SHIFT_FILE, ShiftReport, shift_report
from gaming_gym.plots import plot_episode_scatter, plot_gao_fit, plot_goodhart_curve, plot_shift_curve
from gaming_gym.runs import (
    CURVE_FILE,
    GAO_FILE,
    KL_CURVE_FILE,
    REPORT_FILE,
    SCATTER_FILE,
    RunDirectory,
    opened,
    read_evaluations,
)

REFERENCE_EPISODES = 32
SHIFT_CURVE_FILE = "shift_curve.png"


@dataclass(frozen=True)
class RunSummary:
    """What a finished run leaves: its report and where its files are."""

    run_dir: Path
    report: GoodhartReport
    curve: Path
    scatter: Path
    curve_d: Path | None = None  # the curve against d = sqrt(KL), where KL was recorded
    gao_fit: Path | None = None  # true gain against d with Gao et al.'s fits
    shift: ShiftReport | None = None  # train against deployment, where the run evaluated both


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
    ``mitigations``. The run directory is locked from training to the report
    (:class:`~gaming_gym.runs.RunDirectory`); one that holds another run, or files of its own, is
    refused before anything is written. An unknown ``agent`` is a :class:`ConfigError` naming the
    choices.
    """
    chosen = get_agent(agent)
    knobs = dict(knobs or {})
    config = checked_config(lambda: chosen.config(env_id, knobs=knobs, **settings))
    with RunDirectory(run_dir) as directory:
        result = chosen.train_stack([config], [directory], progress=progress)[0]
        return write_report(
            directory,
            env_id,
            knobs,
            result.checkpoints,
            getattr(config, "reward_model", None),
            getattr(config, "deploy_knobs", None),
        )


def train_experiments(
    agent: str, configs: Sequence[Any], run_dirs: Sequence[str | os.PathLike], progress: bool = True
) -> list[RunSummary]:
    """Train several runs of ``agent`` (seeds, settings: its checked configs) as one stack where
    the agent can, each into its run directory (resuming what it holds), then report each.

    Runs killed between their checkpoints stand at different iterations and cannot resume as one
    stack; each then resumes alone from its own.
    """
    chosen = get_agent(agent)
    with ExitStack() as held:
        directories = [held.enter_context(RunDirectory(run_dir)) for run_dir in run_dirs]
        try:
            results = chosen.train_stack(configs, directories, progress=progress)
        except UnevenStackError:
            results = [
                chosen.train_stack([config], [directory], progress=progress)[0]
                for config, directory in zip(configs, directories, strict=True)
            ]
        return [
            write_report(
                directory,
                config.env_id,
                config.knobs,
                result.checkpoints,
                getattr(config, "reward_model", None),
                getattr(config, "deploy_knobs", None),
            )
            for directory, config, result in zip(directories, configs, results, strict=True)
        ]


def write_report(
    run_dir: str | os.PathLike | RunDirectory,
    env_id: str,
    knobs: dict[str, Any],
    evaluations: Sequence[Evaluation],
    reward_model: str | None = None,
    deploy_knobs: dict[str, Any] | None = None,
) -> RunSummary:
    """Measure the references, then write the evaluations, the Goodhart report and its plots into
    ``run_dir`` (a path, locked while writing, or a :class:`~gaming_gym.runs.RunDirectory` held open).

    The references are measured once per env and knobs, with seed 0 (:func:`references`), the
    same set a report over several runs and early stopping use, so one run's numbers are the same
    wherever they are computed. A run trained against a learned ``reward_model``
    (:mod:`gaming_gym.rlhf`) has the model's scores as its proxy, and so do its anchors.
    """
    with opened(run_dir) as directory:
        directory.save_evaluations(evaluations)
        anchors = references(env_id, knobs, reward_model)
        report = measured(lambda: goodhart_report(evaluations, anchors, env_id, knobs))
        report.save(directory.file(REPORT_FILE))
        shift = write_shift(directory.path, [evaluations], env_id, knobs, deploy_knobs, reward_model)
        return RunSummary(
            directory.path,
            report,
            plot_goodhart_curve(report, directory.file(CURVE_FILE)),
            plot_episode_scatter(anchors, directory.file(SCATTER_FILE), evaluations[-1], env_id, knobs),
            *_dynamics_plots(report, directory.path),
            shift,
        )


def write_shift(
    out: Path,
    runs: Sequence[Sequence[Evaluation]],
    env_id: str,
    knobs: dict[str, Any],
    deploy_knobs: dict[str, Any] | None,
    reward_model: str | None = None,
) -> ShiftReport | None:
    """Where the runs evaluated a deployment setting too: the shift report, saved with its curve
    into ``out`` (references measured in the deployment setting); None otherwise."""
    if not deploy_knobs:
        return None
    anchors = references(env_id, {**knobs, **deploy_knobs}, reward_model)
    shift = shift_report(runs, anchors, deploy_knobs)
    if shift is not None:
        shift.save(out / SHIFT_FILE)
        plot_shift_curve(shift, out / SHIFT_CURVE_FILE)
    return shift


def references(
    env_id: str, knobs: dict[str, Any], reward_model: str | None = None
) -> dict[str, EpisodeReturns]:
    """The metric's reference returns: one set (seed 0) for every report of these env, knobs and
    reward model (whose scores are the proxy where there is one)."""
    return reference_returns(env_id, knobs, episodes=REFERENCE_EPISODES, seed=0, reward_model=reward_model)


def _dynamics_plots(report: GoodhartReport, out: Path) -> tuple[Path | None, Path | None]:
    """The curve against d = sqrt(KL) and the Gao fits, where the run recorded KL."""
    if report.d is None:
        return None, None
    curve = plot_goodhart_curve(report, out / KL_CURVE_FILE, x="d")
    return curve, plot_gao_fit(report, out / GAO_FILE) if report.gao_fits is not None else None


def run_report(run_dir: str | os.PathLike) -> GoodhartReport:
    """The Goodhart report of one run directory, computed afresh from its ``config.json`` and
    ``evaluations.json`` (today's definitions, whichever version trained it)."""
    return report_over_runs([run_dir])[0]


def report_over_runs(
    run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None
) -> tuple[GoodhartReport, Path | None]:
    """One Goodhart report over several runs (seeds) of the same env, knobs and reward model,
    computed from their evaluation records; with ``out``, saved there with its curves.
    Returns ``(report, curve path or None)``."""
    _require_distinct(run_dirs)
    configs = [read_run_config(run_dir) for run_dir in run_dirs]
    settings = {
        (c["env_id"], json.dumps(c.get("knobs", {}), sort_keys=True), str(c.get("reward_model")))
        for c in configs
    }
    if len(settings) != 1:
        raise ConfigError(
            "runs to combine must share one env, knob setting and reward model; got "
            + "; ".join(f"{env} {knobs} (reward model {model})" for env, knobs, model in sorted(settings))
        )
    env_id, knobs, reward_model = (
        configs[0]["env_id"],
        dict(configs[0].get("knobs", {})),
        configs[0].get("reward_model"),
    )
    runs = [read_evaluations(run_dir) for run_dir in run_dirs]
    anchors = references(env_id, knobs, reward_model)
    report = measured(lambda: goodhart_report(runs, anchors, env_id, knobs))
    if out is None:
        return report, None
    report.save(Path(out) / REPORT_FILE)
    _dynamics_plots(report, Path(out))
    return report, plot_goodhart_curve(report, Path(out) / CURVE_FILE)


def shift_over_runs(
    run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None
) -> ShiftReport | None:
    """The shift report over runs that evaluated a deployment setting too (``deploy_knobs``), from
    their records; with ``out``, saved there with its curve. None for runs without one."""
    configs = [read_run_config(run_dir) for run_dir in run_dirs]
    config, deploy = configs[0], configs[0].get("deploy_knobs")
    settings = {
        json.dumps(
            [c["env_id"], c.get("knobs"), c.get("reward_model"), c.get("deploy_knobs")], sort_keys=True
        )
        for c in configs
    }
    if len(settings) > 1:
        raise ConfigError(
            "runs to combine must share one env, knobs, reward model and deployment setting; got "
            + "; ".join(sorted(settings))
        )
    if not deploy:
        return None
    runs = [read_evaluations(run_dir) for run_dir in run_dirs]
    env_id, knobs, model = config["env_id"], dict(config.get("knobs", {})), config.get("reward_model")
    if out is not None:
        return write_shift(Path(out), runs, env_id, knobs, deploy, model)
    return shift_report(runs, references(env_id, {**knobs, **deploy}, model), deploy)


def _require_distinct(run_dirs: Sequence[str | os.PathLike]) -> None:
    """The same run twice would count its seed twice and narrow the intervals falsely."""
    seen: dict[Path, str | os.PathLike] = {}
    for run_dir in run_dirs:
        resolved = Path(run_dir).resolve()
        if resolved in seen:
            raise ConfigError(f"run {run_dir} is given twice (as {seen[resolved]} too); give each run once")
        seen[resolved] = run_dir


def checked_config(make: Callable[[], Any]) -> Any:
    """Build an agent config, its validation errors (ValueError, TypeError) as a ConfigError."""
    try:
        return make()
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error)) from error


def measured(measure: Callable[[], GoodhartReport]) -> GoodhartReport:
    """Compute a Goodhart report, the metric's complaints about the returns as a MetricError."""
    try:
        return measure()
    except ValueError as error:
        raise MetricError(f"cannot compute the Goodhart report: {error}") from error
