"""One experiment = train an agent, evaluate it along the way, write a run directory.

A run directory holds everything a researcher looks at afterwards, each file written atomically::

    RUN_DIR/config.json         what was run (agent, env, knobs, every training setting)
    RUN_DIR/checkpoint.pt       the latest training checkpoint; re-running resumes from it
    RUN_DIR/progress.csv        one row per training iteration (proxy/true returns, losses, fps)
    RUN_DIR/evaluations.json    per-episode proxy and true returns at each evaluation step
    RUN_DIR/goodhart.json       the Goodhart report (gaming_gym.metrics.GoodhartReport)
    RUN_DIR/goodhart_curve.png  normalised proxy and true return along training, the gap shaded
    RUN_DIR/episodes.png        true against proxy return per episode: references and the agent

Re-running the same experiment on an interrupted run directory continues it from the checkpoint;
on a finished one it only rewrites the report and plots.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gaming_gym.core import Policy
from gaming_gym.evaluation import reference_returns
from gaming_gym.files import write_text_atomically
from gaming_gym.metrics import (
    Checkpoint,
    GoodhartReport,
    goodhart_report,
    goodhart_report_over_seeds,
    load_checkpoints,
    save_checkpoints,
)
from gaming_gym.plots import plot_episode_scatter, plot_goodhart_curve

AGENTS = ("ppo", "sb3")
CONFIG_FILE = "config.json"
REPORT_FILE = "goodhart.json"
EVALUATIONS_FILE = "evaluations.json"
CURVE_FILE = "goodhart_curve.png"
SCATTER_FILE = "episodes.png"
REFERENCE_EPISODES = 32


@dataclass(frozen=True)
class RunSummary:
    """What a finished experiment leaves: its report and where its files are."""

    run_dir: Path
    report: GoodhartReport
    curve: Path
    scatter: Path


def train_experiment(
    env_id: str,
    run_dir: str | os.PathLike,
    agent: str = "ppo",
    knobs: dict[str, Any] | None = None,
    progress: bool = True,
    **settings: Any,
) -> RunSummary:
    """Train ``agent`` on ``env_id`` (resuming ``run_dir`` if it holds this run), then report.

    ``settings`` are the agent's config fields (for PPO: ``PPOConfig``'s, e.g. ``seed``,
    ``total_timesteps``, ``reward``, ``device``, ``num_envs``).
    """
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; use one of {', '.join(AGENTS)}")
    run_dir = Path(run_dir)
    knobs = dict(knobs or {})
    if agent == "ppo":
        from gaming_gym.agents.ppo import default_config, train

        config = default_config(env_id, knobs=knobs, **settings)
        _write_config(run_dir, agent, config.to_dict())
        checkpoints = train(config, run_dir, progress=progress, resume=True).checkpoints
        seed = config.seed
    else:
        from gaming_gym.agents.sb3 import train_sb3

        result = train_sb3(env_id, run_dir=run_dir, knobs=knobs, progress=progress, **settings)
        _write_config(run_dir, agent, result.config)
        checkpoints, seed = result.checkpoints, result.config["seed"]
    return write_report(run_dir, env_id, knobs, checkpoints, seed=seed)


def write_report(
    run_dir: str | os.PathLike,
    env_id: str,
    knobs: dict[str, Any],
    checkpoints: Sequence[Checkpoint],
    seed: int = 0,
) -> RunSummary:
    """Measure the references, then write the Goodhart report and its two plots into ``run_dir``."""
    run_dir = Path(run_dir)
    save_checkpoints(run_dir / EVALUATIONS_FILE, checkpoints)
    references = reference_returns(env_id, knobs, episodes=REFERENCE_EPISODES, seed=seed)
    report = goodhart_report(checkpoints, references, env_id, knobs)
    report.save(run_dir / REPORT_FILE)
    return RunSummary(
        run_dir,
        report,
        plot_goodhart_curve(report, run_dir / CURVE_FILE),
        plot_episode_scatter(references, run_dir / SCATTER_FILE, checkpoints[-1], env_id, knobs),
    )


def report_over_runs(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None):
    """One Goodhart report over several runs (seeds) of the same env and knobs, with its curve.

    Each run's evaluation records are read back from its report; the references are measured
    afresh. Returns ``(report, curve path or None)``.
    """
    reports = [load_report(run_dir) for run_dir in run_dirs]
    settings = {(r.env_id, json.dumps(r.knobs, sort_keys=True)) for r in reports}
    if len(settings) != 1:
        raise ValueError(
            "runs to combine must share one env and knob setting; got "
            + "; ".join(f"{env} {knobs}" for env, knobs in sorted(settings))
        )
    env_id, knobs = reports[0].env_id, dict(reports[0].knobs)
    runs = [_checkpoints_of(run_dir) for run_dir in run_dirs]
    references = reference_returns(env_id, knobs, episodes=REFERENCE_EPISODES)
    report = goodhart_report_over_seeds(runs, references, env_id, knobs)
    curve = plot_goodhart_curve(report, Path(out) / CURVE_FILE) if out is not None else None
    if out is not None:
        report.save(Path(out) / REPORT_FILE)
    return report, curve


def load_report(run_dir: str | os.PathLike) -> GoodhartReport:
    path = Path(run_dir) / REPORT_FILE
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"no run directory at {run_dir}")
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} holds no {REPORT_FILE}: is it a finished run directory?")
    return GoodhartReport.load(path)


def load_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"no run directory at {run_dir}")
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} holds no {CONFIG_FILE}: is it a run directory?")
    return json.loads(path.read_text())


def load_run_policy(run_dir: str | os.PathLike, deterministic: bool = False) -> tuple[Policy, dict]:
    """The trained batched policy of a run directory and the run's config."""
    saved = load_run_config(run_dir)
    try:
        if saved["agent"] == "ppo":
            from gaming_gym.agents.ppo import load_agent

            return load_agent(run_dir)[0].policy(deterministic), saved
        from gaming_gym.agents.sb3 import load_sb3_policy

        return load_sb3_policy(run_dir, deterministic), saved
    except (
        RuntimeError,
        EOFError,
        KeyError,
        ValueError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"cannot load the trained agent in {run_dir}: its checkpoint is corrupt or not a "
            f"gaming_gym checkpoint ({reason[:120]})"
        ) from error


def _checkpoints_of(run_dir: str | os.PathLike) -> list[Checkpoint]:
    """The evaluation records of a finished run."""
    path = Path(run_dir) / EVALUATIONS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} holds no {EVALUATIONS_FILE}: is it a finished run directory?")
    return load_checkpoints(path)


def _write_config(run_dir: Path, agent: str, config: dict[str, Any]) -> None:
    write_text_atomically(run_dir / CONFIG_FILE, json.dumps({"agent": agent, **config}, indent=2) + "\n")


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
            run_dir = out / condition.label / f"seed-{seed}"
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
