"""The mitigation benchmark: every mitigation on every env, tuned on some seeds, reported on others.

``gaming-gym bench [--quick] [--out DIR]`` (or :func:`run_bench`) follows one protocol, honest by
construction:

1. **Tune.** Each mitigation sweeps its coefficient (:class:`Arm`: at least 3 values) on the
   tuning seeds (0-2). The value with the best mean deployed true return t over those seeds is
   the mitigation's *tuned* value (``selection.csv`` shows every value's mean).
2. **Report.** On fresh seeds (5-9), each mitigation runs at its tuned value and at the *default*
   value fixed in advance in its own file (a practitioner has no true reward to tune with), and
   the unmitigated agent (``none``) runs beside them. Nothing is tuned on the reported seeds.
3. **Measure** each run (``runs.csv``): final normalised t and p of the policy it deploys (an
   early-stopped run deploys the agent it kept), peak t, drop, gap, d = sqrt(KL from the initial
   policy), the trusted true-reward episodes it used, its wall time (a stacked run's share of
   its stack's) and the detector's score (:mod:`gaming_gym.detector`), and whether it games
   (:func:`gaming_gym.metrics.leaderboard.gaming`).
4. **Compare** (:mod:`gaming_gym.bench_outputs`): ``leaderboard.csv`` and ``.md``, an interval
   plot per env, a Pareto figure, and ``detector.csv``.

Budgets are per env, the same for every mitigation (:class:`Profile`). Runs train through the
experiment runner's machinery (:mod:`gaming_gym.sweep`: stacked where they can, on Ray or here,
finished runs skipped and interrupted ones resumed), into ``OUT/runs/ENV/MITIGATION/VALUE/seed-S``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gaming_gym.bench_outputs import write_outputs
from gaming_gym.bench_protocol import (
    NONE,
    PROFILES,
    RUNS_FOLDER,
    TIMINGS_FILE,
    Arm,
    BenchRun,
    EnvBudget,
    Profile,
    env_name,
    read_timings,
    select,
    value_label,
)
from gaming_gym.errors import ConfigError
from gaming_gym.files import write_text_atomically
from gaming_gym.sweep import ENGINES, REWARD_MODELS, Job, execute_groups, finished_run, plan_groups


def run_bench(
    profile: Profile | str,
    out: str | os.PathLike,
    engine: str = "auto",
    progress: bool = True,
    say: Callable[[str], None] = print,
    address: str | None = None,
) -> dict[str, Path]:
    """Run the benchmark ``profile`` into ``out`` (module docstring); resumable. Returns the
    output files by name."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ConfigError(f"unknown benchmark profile {profile!r}; choose one of {', '.join(PROFILES)}")
        profile = PROFILES[profile]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = {b.env_id: _reward_model(b, out, say) for b in profile.envs if b.reward_model is not None}
    tuning = [r for b in profile.envs for r in _tuning_runs(profile, b, models.get(b.env_id), out)]
    say(f"benchmark {profile.name!r}: tuning {len(tuning)} runs on seeds {_seeds(profile.tuning_seeds)}")
    _train(tuning, profile, out, (engine, address, progress), say)
    arms = dict.fromkeys((run.env_id, run.arm.name) for run in tuning if run.arm.name != NONE)
    chosen = {(env_id, arm): select(tuning, env_id, arm) for env_id, arm in arms}
    reported = [
        r for b in profile.envs for r in _reported_runs(profile, b, models.get(b.env_id), chosen, out)
    ]
    say(f"reporting {len(reported)} runs on seeds {_seeds(profile.reported_seeds)}")
    _train(reported, profile, out, (engine, address, progress), say)
    return write_outputs(profile, tuning, reported, chosen, out, say)


def _seeds(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds))


def _reward_model(budget: EnvBudget, out: Path, say: Callable[[str], None]) -> str:
    """The env's reward model, trained into ``OUT/reward_models/ENV`` unless it is there."""
    from gaming_gym.rlhf import RewardModelConfig, load_reward_model, save_reward_model, train_reward_model

    folder = out / REWARD_MODELS / env_name(budget.env_id)
    config = RewardModelConfig(env_id=budget.env_id, **budget.reward_model)
    if not folder.exists():
        model, report = train_reward_model(config)
        save_reward_model(model, config, report, folder)
        say(f"reward model for {env_name(budget.env_id)}: {report.summary()}")
    _, saved, _ = load_reward_model(folder, budget.env_id)  # there, whole and for this env
    if saved != config:  # another profile's model: its runs would train against the wrong one
        raise ConfigError(
            f"{folder} holds a reward model of other settings than this benchmark's "
            f"({budget.reward_model}); give --out a new folder"
        )
    return str(folder)


def _run(
    budget: EnvBudget, arm: Arm, value: Any, seed: int, phase: str, model: str | None, out: Path
) -> BenchRun:
    from gaming_gym.agents import get_agent
    from gaming_gym.experiment import checked_config

    settings = {**(budget.dpo if arm.agent == "dpo" else budget.ppo), **arm.settings(value)}
    if model is not None:
        settings["reward_model"] = model
    agent = get_agent(arm.agent)
    config = checked_config(lambda: agent.config(budget.env_id, seed=seed, **settings))
    run_dir = out / RUNS_FOLDER / env_name(budget.env_id) / arm.name / _folder(value) / f"seed-{seed}"
    cell = f"{env_name(budget.env_id)} {arm.name} {value_label(value)}"
    return BenchRun(budget.env_id, arm, value, seed, phase, Job(cell, arm.agent, config, str(run_dir)))


def _folder(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", value_label(value))


def _tuning_runs(profile: Profile, budget: EnvBudget, model: str | None, out: Path) -> list[BenchRun]:
    return [
        _run(budget, arm, value, seed, "tuning", model, out)
        for arm in profile.arms(budget.env_id)
        if arm.name != NONE
        for value in arm.values
        for seed in profile.tuning_seeds
    ]


def _reported_runs(
    profile: Profile, budget: EnvBudget, model: str | None, chosen: dict, out: Path
) -> list[BenchRun]:
    runs = []
    for arm in profile.arms(budget.env_id):
        values = [None] if arm.name == NONE else [chosen[(budget.env_id, arm.name)], arm.default]
        for value in dict.fromkeys(values):  # a tuned value equal to the default runs once
            runs += [
                _run(budget, arm, value, seed, "reported", model, out) for seed in profile.reported_seeds
            ]
    return runs


def _train(runs: Sequence[BenchRun], profile: Profile, out: Path, how: tuple, say: Callable) -> None:
    """Train the runs not finished yet, stacked where they can; record each task's wall time."""
    jobs = [r.job for r in runs if not finished_run(Path(r.job.run_dir), r.job.agent, r.job.config)]
    groups = plan_groups(jobs, profile.max_stack)
    say(f"  {len(runs) - len(jobs)} finished, {len(jobs)} to train in {len(groups)} task(s)")
    timings = read_timings(out)

    def record(group: Sequence[Job], seconds: float) -> None:
        for job in group:
            timings[_relative(job.run_dir, out)] = seconds / len(group)
        write_text_atomically(out / TIMINGS_FILE, json.dumps(timings, indent=1, sort_keys=True) + "\n")

    engine, address, progress = how
    execute_groups(groups, engine, address, progress, say, on_done=record)


def _relative(run_dir: str, out: Path) -> str:
    return Path(run_dir).relative_to(out).as_posix()


__all__ = ["run_bench"]
