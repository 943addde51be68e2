"""Experiments over conditions and seeds: run directories, combined reports, the comparison figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gaming_gym.errors import ConfigError
from gaming_gym.experiment import (
    Condition,
    capability_table,
    condition_run_dir,
    dynamics_table,
    gaps_at_steps,
    phase_transitions,
    run_conditions,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
pytest.importorskip("examples.dispenser")  # registers MyLab/Dispenser-v0
ENV = "MyLab/Dispenser-v0"
ROLLOUT = 64 * 128


def test_run_conditions_trains_each_arm_on_each_seed_and_compares_them(tmp_path, capsys):
    settings = {"total_timesteps": ROLLOUT, "device": "cpu", "eval_episodes": 4}
    reports = run_conditions(
        [Condition("coins", ENV), Condition("no coins", ENV, {"coin_value": 0.0})],
        seeds=[0, 1],
        out=tmp_path,
        title="Dispenser: coins vs none",
        progress=False,
        settings=settings,
    )
    assert list(reports) == ["coins", "no coins"]
    assert reports["no coins"].knobs == {"coin_value": 0.0} and reports["coins"].n_runs == 2
    for arm in ("coins", "no coins"):
        for seed in (0, 1):
            config = json.loads((tmp_path / arm / f"seed-{seed}" / "config.json").read_text())
            assert config["seed"] == seed and config["total_timesteps"] == ROLLOUT
        assert json.loads((tmp_path / arm / "goodhart.json").read_text())["n_runs"] == 2
    with Image.open(tmp_path / "comparison.png") as figure:
        assert figure.format == "PNG" and figure.size == (800, 500)
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "Dispenser: coins vs none"
    row = next(line for line in table if line.startswith("no coins"))
    assert f"{reports['no coins'].final_gap:6.2f}" in row


def _synthetic_report(gaps_by_step: dict[int, float]):
    """A one-run Goodhart report whose normalised gap at each step is the one given (true t = 0,
    references with random at 0 and intended at 1 on both axes)."""
    import numpy as np

    from gaming_gym.evaluation import EpisodeReturns
    from gaming_gym.metrics import Evaluation, goodhart_report

    def returns(proxy: float, true: float) -> EpisodeReturns:
        return EpisodeReturns(np.array([proxy, proxy]), np.array([true, true]), np.array([10, 10]))

    references = {"random": returns(0.0, 0.0), "intended": returns(1.0, 1.0)}
    checkpoints = [Evaluation(step, [gap, gap], [0.0, 0.0]) for step, gap in gaps_by_step.items()]
    return goodhart_report(checkpoints, references, "GamingGym/BoatRace-v1", n_bootstrap=10)


def test_gaps_at_steps_reads_each_runs_gap_at_or_before_each_step(tmp_path):
    curves = {0: {0: 0.0, 100: 0.5, 200: 2.0}, 1: {0: 0.0, 100: 0.25, 200: 3.0}}
    for seed, curve in curves.items():
        run_dir = condition_run_dir(tmp_path, "wide", seed)
        run_dir.mkdir(parents=True)
        _synthetic_report(curve).save(run_dir / "goodhart.json")
    gaps = gaps_at_steps(tmp_path, ["wide"], [0, 1], [50, 100, 150, 250])
    assert gaps == {"wide": {50: [0.0, 0.0], 100: [0.5, 0.25], 150: [0.5, 0.25], 250: [2.0, 3.0]}}
    with pytest.raises(ConfigError, match="no evaluation at or before step -5"):
        gaps_at_steps(tmp_path, ["wide"], [0], [-5])


def test_phase_transitions_are_jumps_larger_than_the_seeds_spread():
    gaps = {
        "width 4": {100: [0.0, 0.1], 200: [0.05, 0.15], 400: [0.0, 0.3]},
        "width 64": {100: [0.0, 0.2], 200: [2.0, 2.4], 400: [3.0, 3.1]},
    }
    found = {(t.axis, t.where, t.before, t.after): (t.jump, t.spread) for t in phase_transitions(gaps)}
    assert found.keys() == {
        ("steps", "width 64", "100 steps", "200 steps"),  # +2.1 against a spread of 0.4
        ("steps", "width 64", "200 steps", "400 steps"),  # +0.85 against 0.4
        ("condition", "200 steps", "width 4", "width 64"),  # +2.1 against 0.4
        ("condition", "400 steps", "width 4", "width 64"),  # +2.9 against 0.3
    }
    assert found[("steps", "width 64", "100 steps", "200 steps")] == pytest.approx((2.1, 0.4))
    assert found[("condition", "400 steps", "width 4", "width 64")] == pytest.approx((2.9, 0.3))
    # width 4's 200 -> 400 (+0.05) and both at 100 steps (+0.05) stay within their spread: none
    with pytest.raises(ConfigError, match="two seeds or more"):
        phase_transitions({"width 4": {100: [0.0], 200: [1.0]}})


def test_capability_and_dynamics_tables_show_the_numbers(tmp_path):
    gaps = {"width 4": {100: [0.0, 0.5], 200: [1.0, 2.0]}}
    lines = capability_table(gaps, "gaps").splitlines()
    assert lines[0] == "gaps"
    assert lines[2].split() == ["width", "4", "0.25", "[", "0.00,", "0.50]", "1.50", "[", "1.00,", "2.00]"]
    report = _synthetic_report({0: 0.0, 100: 0.5, 200: 2.0})
    row = dynamics_table({"no penalty": report}, "dynamics").splitlines()[2]
    assert row.split()[:6] == ["no", "penalty", "2.00", "2.00", "0.00", "0.00"]  # peak p, final p, t
    assert row.split()[-1] == "n/a"  # no held-out check recorded: no early stopping


def test_one_runs_numbers_are_the_same_in_its_report_and_in_a_report_over_runs(tmp_path):
    """Every report of an env and knobs normalises with one reference set (issue: per-run reports
    measured the references with the run's seed, reports over runs with seed 0)."""
    from gaming_gym.agents.ppo import default_config
    from gaming_gym.experiment import report_over_runs, write_report
    from gaming_gym.metrics import Evaluation
    from gaming_gym.runs import RunDirectory

    env = "GamingGym/BoatRace-v1"
    rng = np.random.default_rng(0)
    evaluations = [
        Evaluation(step, proxy=rng.normal(mean_proxy, 5.0, 8), true=rng.normal(mean_true, 0.2, 8))
        for step, mean_proxy, mean_true in [(0, 2.0, 0.0), (1000, 40.0, 1.5), (2000, 150.0, 0.6)]
    ]
    with RunDirectory(tmp_path / "run") as run_dir:
        run_dir.write_config("ppo", default_config(env).to_dict())
        alone = write_report(run_dir, env, {}, evaluations).report
    together, _ = report_over_runs([tmp_path / "run"])
    assert alone.references == together.references
    for field in ("proxy", "true", "gap"):
        assert np.allclose(getattr(alone, field), getattr(together, field), rtol=0, atol=1e-12), field
    assert alone.final_gap == pytest.approx(together.final_gap, abs=1e-12)
