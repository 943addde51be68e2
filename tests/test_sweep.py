"""Experiment files run as sweeps: a grid x seeds into run directories, on local Ray or
in-process, resumable, with a table and a phase diagram; and every mistake in a file refused in
one line before anything trains."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gaming_gym.agents import get_agent
from gaming_gym.cli import main
from gaming_gym.errors import ConfigError
from gaming_gym.experiment import run_report
from gaming_gym.metrics.seeds import SeedResult
from gaming_gym.spec import check_spec, load_spec, spec_from
from gaming_gym.sweep import Job, phase_values, plan_groups, run_sweep

TINY_SETTINGS = """
[settings]
num_envs = 16
num_steps = 32
num_minibatches = 2
update_epochs = 2
total_timesteps = 2048
eval_every = 1
eval_episodes = 4
checkpoint_every = 1
"""


def _write_sweep(folder: Path, grid: str, plot: str = 'x = "ent_coef"', name: str = "tiny.toml") -> Path:
    path = folder / name
    path.write_text(
        f'env = "GamingGym/AbsentSupervisor-v0"\nseeds = [0, 1]\ntitle = "tiny"\n{TINY_SETTINGS}\n'
        f"[grid]\n{grid}\n\n[plot]\n{plot}\n"
    )
    return path


def _report(run_dir: Path) -> dict:
    return json.loads((run_dir / "goodhart.json").read_text())


@pytest.mark.slow  # soak: starts a Ray instance
def test_a_tiny_sweep_runs_on_local_ray_as_it_runs_in_process(tmp_path):
    """2 cells x 2 seeds on a local Ray instance: one stacked task (the cells differ in a
    per-agent setting), every run directory, a report per cell, the table and the phase
    diagram; and the same numbers, run for run, as the in-process engine gives."""
    pytest.importorskip("ray")
    sweep = load_spec(_write_sweep(tmp_path, "ent_coef = [0.0, 0.05]"))
    messages: list[str] = []
    on_ray = run_sweep(sweep, tmp_path / "ray", engine="ray", progress=False, say=messages.append)
    assert on_ray.trained == 4 and on_ray.skipped == 0
    assert "4 to train in 1 task(s)" in messages[0] and "(stacked x4)" in messages[1]
    local = run_sweep(sweep, tmp_path / "local", engine="local", progress=False, say=lambda _: None)
    for cell in ("ent_coef=0.0", "ent_coef=0.05"):
        for seed in (0, 1):
            ours = _report(tmp_path / "ray" / cell / f"seed-{seed}")
            assert ours == _report(tmp_path / "local" / cell / f"seed-{seed}")
            assert len(ours["steps"]) == 5  # step 0 and 4 iterations
        assert (tmp_path / "ray" / cell / "goodhart.json").is_file()

    rows = list(csv.DictReader(on_ray.table.open()))
    assert [row["cell"] for row in rows] == ["ent_coef=0.0", "ent_coef=0.05"]
    for row, report in zip(rows, local.reports.values(), strict=True):
        assert float(row["gap"]) == pytest.approx(report.final_gap, abs=1e-4)
        assert row["seeds"] == "2"

    values = phase_values(sweep, tmp_path / "ray")
    assert values["gap"].shape == (1, 4, 2)  # one panel, 4 step counts, 2 cells
    # the diagram's last row is the final gap, averaged over seeds, as the table has it
    for column, row in enumerate(rows):
        gaps = [_report(tmp_path / "ray" / row["cell"] / f"seed-{seed}")["gap"][-1] for seed in (0, 1)]
        assert values["gap"][0, -1, column] == pytest.approx(np.mean(gaps), abs=1e-9)
        assert values["gap"][0, -1, column] == pytest.approx(float(row["gap"]), abs=1e-4)
    image = Image.open(on_ray.phase_diagram)
    assert image.size[0] >= 800 and image.size[1] >= 700


def test_cells_that_change_shapes_train_as_separate_tasks():
    sweep = load_sweep_text(
        "hidden_sizes = [[8, 8], [16, 16]]\nlearning_rate = [0.0003, 0.001]",
        'x = "hidden_sizes"\ny = "learning_rate"',
    )

    def jobs(agent: str) -> list[Job]:
        return [
            Job(
                cell.label,
                agent,
                get_agent(agent).config(
                    sweep.env_id, knobs=sweep.knobs_of(cell), **sweep.settings_of(cell), seed=seed
                ),
                "-",
            )
            for cell in sweep.cells
            for seed in sweep.seeds
        ]

    groups = plan_groups(jobs("ppo"), max_stack=3)
    # per width: 2 learning rates x 2 seeds = 4 runs, in stacks of at most 3
    assert sorted(len(group) for group in groups) == [1, 1, 3, 3]
    for group in groups:
        assert len({job.config.hidden_sizes for job in group}) == 1
    pytest.importorskip("stable_baselines3")
    assert [len(g) for g in plan_groups(jobs("sb3"), max_stack=16)] == [1] * 8


def load_sweep_text(grid: str, plot: str, tmp: Path | None = None):
    import tempfile

    folder = Path(tmp or tempfile.mkdtemp())
    return load_spec(_write_sweep(folder, grid, plot))


@pytest.mark.slow  # soak: two subprocess sweeps and a SIGKILL
def test_a_killed_sweep_resumes_where_it_stopped(tmp_path):
    """Kill a sweep (SIGKILL, in-process engine) while its second task is training, then run it
    again: the finished runs are skipped untouched, the killed ones resume from their last
    checkpoints (no iteration logged twice), and the sweep completes."""
    longer = TINY_SETTINGS.replace("total_timesteps = 2048", "total_timesteps = 8192")
    path = tmp_path / "kill.toml"
    path.write_text(
        f'env = "GamingGym/AbsentSupervisor-v0"\nseeds = [0, 1]\n{longer}\n'
        '[grid]\nhidden_sizes = [[8, 8], [16, 16]]\n\n[plot]\nx = "hidden_sizes"\n'
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "gaming_gym", "sweep", str(path), "--out", str(out), "--engine", "local"]
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    second = out / "hidden_sizes=8x8" / "seed-1" / "progress.csv"  # the costlier task goes first
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if second.exists() and len(second.read_text().splitlines()) >= 4:  # header, step 0, 2 iterations
            break
        time.sleep(0.05)
    assert process.poll() is None, "the sweep ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = out / "hidden_sizes=16x16" / "seed-0" / "goodhart.json"
    assert finished.is_file()
    assert not (out / "hidden_sizes=8x8" / "seed-1" / "goodhart.json").exists()
    stamp = finished.stat().st_mtime_ns

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "2 finished, 2 to train in 1 task(s)" in rerun.stdout
    assert finished.stat().st_mtime_ns == stamp
    for seed in (0, 1):
        rows = (out / "hidden_sizes=8x8" / f"seed-{seed}" / "progress.csv").read_text().splitlines()
        assert [row.split(",")[0] for row in rows[1:]] == [str(i) for i in range(17)]
    assert (out / "phase_diagram.png").is_file() and (out / "table.csv").is_file()


HEAD = 'env = "GamingGym/AbsentSupervisor-v0"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            HEAD + 'seeds = [0]\n[grid]\nent_coef = [nan]\n[plot]\nx = "ent_coef"\n',
            "ent_coef is nan: experiment values must be finite",
        ),
        (
            HEAD + 'seeds = [0, 0]\n[grid]\nent_coef = [0.0]\n[plot]\nx = "ent_coef"\n',
            "seeds must be distinct",
        ),
        (
            HEAD + 'seeds = [0]\n[grid]\nent_coef = [0.0]\n[plot]\nx = "gamma"\n',
            "plot x = 'gamma' is not one of",
        ),
        (HEAD + 'seed = [0]\n[grid]\nent_coef = [0.0]\n[plot]\nx = "ent_coef"\n', "unknown key(s) seed"),
        (
            HEAD + 'seeds = [0]\n[grid]\nent_coef = [-1.0]\n[plot]\nx = "ent_coef"\n',
            "cell 'ent_coef=-1.0': PPOConfig.ent_coef must be a finite number >= 0",
        ),
        (
            HEAD
            + 'seeds = [0]\n[grid]\n"knobs.button_cost" = [0.0, 2000.0]\n[plot]\nx = "knobs.button_cost"\n',
            "cell 'button_cost=2000.0': AbsentSupervisor: button_cost must be",
        ),
        (
            HEAD + 'seeds = [0]\n[grid]\n"mitigations.kl_initial.betta" = [0.1]\n',
            "mitigation kl_initial has no setting 'betta'; its settings are: beta",
        ),
        (
            HEAD + 'seeds = [0]\n[grid]\nreward_model = ["../../escape"]\n',
            "'reward_model=../../escape' cannot name a cell or a reward model",
        ),
        (
            HEAD + "seeds = [0]\n[settings]\nseed = 5\n[grid]\nent_coef = [0.0]\n",
            "seed is not a setting of an experiment: list the seeds in 'seeds'",
        ),
        (
            HEAD + "seeds = [0]\n[grid]\nkl_coef = [0.0, 0.0]\n",
            "grid axis 'kl_coef' lists a value twice",
        ),
        (
            HEAD + 'seeds = [0]\n[[conditions]]\nlabel = "a"\n'
            "[conditions.settings.mitigations.kl_initial]\nbeta = -1.0\n",
            "cell 'a': mitigation kl_initial: beta must be",
        ),
        (
            HEAD + 'seeds = [0]\n[[conditions]]\nlabel = "../up"\n',
            "'../up' cannot name a cell or a reward model",
        ),
        (
            HEAD
            + 'seeds = [0]\n[[conditions]]\nlabel = "a"\n[reward_models."../escape"]\ncomparisons = 300\n',
            "'../escape' cannot name a cell or a reward model",
        ),
        (
            HEAD + 'seeds = [0]\n[[conditions]]\nlabel = "a"\n[[conditions]]\nlabel = "a"\n',
            "two cells share a label",
        ),
        ("seeds = [", "is not a valid TOML experiment file"),
    ],
)
def test_a_bad_experiment_file_is_one_line_before_anything_trains(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--engine", "local", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1, error
    assert not (tmp_path / "out").exists()
    assert not any(tmp_path.parent.glob("escape*"))


def test_an_atlas_of_two_envs_trains_each_condition_on_its_own_env(tmp_path):
    """A condition may name its own env; the atlas analysis tabulates every cell over its seeds
    (who rose and fell, peak t, drop, gap, onset with intervals) and draws a panel per cell."""
    path = tmp_path / "atlas.toml"
    path.write_text(
        'env = "GamingGym/AbsentSupervisor-v0"\nseeds = [0, 1]\ntitle = "tiny atlas"\nanalyses = ["atlas"]\n'
        f"{TINY_SETTINGS}\n"
        '[[conditions]]\nlabel = "supervisor"\n\n'
        '[[conditions]]\nlabel = "feed"\nenv = "GamingGym/EngagementFeed-v0"\n'
    )
    spec = load_spec(path)
    messages: list[str] = []
    result = run_sweep(spec, tmp_path / "out", engine="local", progress=False, say=messages.append)
    assert result.trained == 4
    configs = [
        json.loads((tmp_path / "out" / cell / "seed-0" / "config.json").read_text())
        for cell in ("supervisor", "feed")
    ]
    assert [config["env_id"] for config in configs] == [
        "GamingGym/AbsentSupervisor-v0",
        "GamingGym/EngagementFeed-v0",
    ]
    with open(tmp_path / "out" / "atlas.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["cell"], row["env"]) for row in rows] == [
        ("supervisor", "AbsentSupervisor-v0"),
        ("feed", "EngagementFeed-v0"),
    ]
    for row in rows:
        reports = [run_report(tmp_path / "out" / row["cell"] / f"seed-{seed}") for seed in (0, 1)]
        results = [SeedResult.of(seed, report) for seed, report in enumerate(reports)]
        assert row["rose and fell"] == f"{sum(r.rises_and_falls for r in results)}/2"
        mean_gap = np.mean([r.final_gap for r in results])
        assert row["final gap"].startswith(f"{mean_gap:.2f} [")  # the mean with its interval over seeds
    assert Image.open(tmp_path / "out" / "atlas.png").size[0] > 600
    assert any("rose and fell" in message for message in messages)
    for env in (3, ""):
        with pytest.raises(ConfigError, match="env must be an env id"):
            spec_from(
                {"env": "GamingGym/TallFall-v0", "seeds": [0], "conditions": [{"label": "a", "env": env}]}
            )


def test_a_condition_on_its_own_env_does_not_take_the_experiment_envs_knobs():
    spec = spec_from(
        {
            "env": "GamingGym/BoatRace-v1",
            "seeds": [0],
            "knobs": {"respawn_delay": 40},
            "conditions": [{"label": "boat"}, {"label": "fall", "env": "GamingGym/TallFall-v0"}],
        }
    )
    check_spec(spec)  # TallFall has no respawn_delay: it is not handed one
    assert [spec.knobs_of(cell) for cell in spec.cells] == [{"respawn_delay": 40}, {}]


def test_a_grid_of_too_many_runs_is_refused_at_once_unless_max_runs_allows_it(tmp_path, capsys):
    values = ", ".join(str(i / 1000) for i in range(1000))
    file = tmp_path / "huge.toml"
    file.write_text(
        'env = "GamingGym/AbsentSupervisor-v0"\nseeds = [0, 1]\n[grid]\n'
        f'"mitigations.kl_initial.beta" = [{values}]\n"knobs.supervisor_prob" = [{values}]\n'
    )
    started = time.perf_counter()
    assert main(["experiment", str(file), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - started < 10
    assert "asks for 2,000,000 runs (1,000,000 cells x 2 seeds), more than 10,000; pass --max-runs" in err
    assert not (tmp_path / "out").exists()
    small = {
        "env": "GamingGym/AbsentSupervisor-v0",
        "seeds": [0, 1, 2],
        "grid": {"knobs.supervisor_prob": [0.1, 0.5]},
    }
    assert len(spec_from(small, max_runs=6).cells) == 2
    with pytest.raises(ConfigError, match="asks for 6 runs"):
        spec_from(small, max_runs=5)
