"""Experiments of named conditions over seeds: run directories, reports over seeds, the comparison
figure, reports recomputed from raw records, and the named analyses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gaming_gym.analyses import ANALYSES, AnalysisContext, _gaps_at_steps, phase_transitions
from gaming_gym.errors import ConfigError
from gaming_gym.evaluation import EpisodeReturns
from gaming_gym.metrics import Evaluation, goodhart_report
from gaming_gym.spec import spec_from
from gaming_gym.sweep import run_sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
pytest.importorskip("examples.dispenser")  # registers MyLab/Dispenser-v0
ENV = "MyLab/Dispenser-v0"
ROLLOUT = 64 * 128


def test_an_experiment_of_conditions_trains_each_arm_on_each_seed_and_compares_them(tmp_path):
    spec = spec_from(
        {
            "env": ENV,
            "seeds": [0, 1],
            "title": "Dispenser: coins vs none",
            "settings": {"total_timesteps": ROLLOUT, "device": "cpu", "eval_episodes": 4},
            "conditions": [{"label": "coins"}, {"label": "no coins", "knobs": {"coin_value": 0.0}}],
            "analyses": ["dynamics"],
        }
    )
    said: list[str] = []
    result = run_sweep(spec, tmp_path, engine="local", progress=False, say=said.append)
    reports = result.reports
    assert list(reports) == ["coins", "no coins"]
    assert reports["no coins"].knobs == {"coin_value": 0.0} and reports["coins"].n_runs == 2
    for arm in ("coins", "no coins"):
        for seed in (0, 1):
            config = json.loads((tmp_path / arm / f"seed-{seed}" / "config.json").read_text())
            assert config["seed"] == seed and config["total_timesteps"] == ROLLOUT
        assert json.loads((tmp_path / arm / "goodhart.json").read_text())["n_runs"] == 2
    with Image.open(result.comparison) as figure:
        assert figure.format == "PNG" and figure.size == (800, 500)
    assert result.phase_diagram is None  # conditions have no grid to draw
    table = next(text for text in said if text.startswith("Dispenser: coins vs none")).splitlines()
    row = next(line for line in table if line.startswith("no coins"))
    assert f"{reports['no coins'].final_gap:6.2f}" in row
    assert said[-1].splitlines()[0] == "Dispenser: coins vs none: Goodhart dynamics (mean curves over seeds)"


def _returns(proxy: float, true: float) -> EpisodeReturns:
    return EpisodeReturns(np.array([proxy, proxy]), np.array([true, true]), np.array([10, 10]))


def _synthetic_report(gaps_by_step: dict[int, float]):
    """A one-run Goodhart report whose normalised gap at each step is the one given (true t = 0,
    references with random at 0 and intended at 1 on both axes)."""
    references = {"random": _returns(0.0, 0.0), "intended": _returns(1.0, 1.0)}
    evaluations = [Evaluation(step, [gap, gap], [0.0, 0.0]) for step, gap in gaps_by_step.items()]
    return goodhart_report(evaluations, references, "GamingGym/BoatRace-v1", n_bootstrap=10)


def test_gaps_at_steps_are_each_runs_gap_at_or_before_each_step():
    reports = [
        _synthetic_report({0: 0.0, 100: 0.5, 200: 2.0}),
        _synthetic_report({0: 0.0, 100: 0.25, 200: 3.0}),
    ]
    gaps = _gaps_at_steps(reports, [50, 100, 150, 250])
    assert gaps == {50: [0.0, 0.0], 100: [0.5, 0.25], 150: [0.5, 0.25], 250: [2.0, 3.0]}
    with pytest.raises(ConfigError, match="no evaluation at or before step -5"):
        _gaps_at_steps(reports, [-5])


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


def test_the_dynamics_analysis_shows_the_numbers(tmp_path):
    report = _synthetic_report({0: 0.0, 100: 0.5, 200: 2.0})
    spec = spec_from({"env": ENV, "seeds": [0], "conditions": [{"label": "no penalty"}]})
    context = AnalysisContext(spec, tmp_path, {"no penalty": report}, "dynamics", {})
    row = ANALYSES["dynamics"](context).splitlines()[2]
    assert row.split()[:6] == ["no", "penalty", "2.00", "2.00", "0.00", "0.00"]  # peak p, final p, t
    assert row.split()[-1] == "n/a"  # no held-out check recorded: no early stopping
    with pytest.raises(ConfigError, match="no cell labelled 'penalty'"):
        ANALYSES["true_against_d"](context, conditions=["penalty"])


def test_one_runs_numbers_are_the_same_in_its_report_and_in_a_report_over_runs(tmp_path):
    """Every report of an env and knobs normalises with one reference set, and the report a run
    directory gives is recomputed from its records: the same numbers as the one written."""
    from gaming_gym.agents.ppo import default_config
    from gaming_gym.experiment import report_over_runs, run_report, write_report
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
    again = run_report(tmp_path / "run")
    assert alone.references == together.references == again.references
    for field in ("proxy", "true", "gap"):
        # the same arithmetic on the same records: equal up to the last bits (1e-12)
        assert np.allclose(getattr(alone, field), getattr(together, field), rtol=0, atol=1e-12), field
    assert alone.final_gap == pytest.approx(together.final_gap, abs=1e-12)
    assert again.measures == alone.measures


def test_report_of_a_run_directory_recomputes_the_onset_a_stale_goodhart_json_holds(tmp_path):
    """gaming-gym report reads evaluations.json, not goodhart.json: a report written under an older
    definition (here, an onset edited into the file) gives way to today's."""
    from gaming_gym.agents.ppo import default_config
    from gaming_gym.experiment import run_report, write_report
    from gaming_gym.runs import RunDirectory

    env = "GamingGym/BoatRace-v1"
    rng = np.random.default_rng(0)
    means = [(2.0, 0.0), (60.0, 1.5), (60.0, 1.5), (60.0, 1.5), (200.0, 0.5), (210.0, 0.5)]
    evaluations = [
        Evaluation(1000 * k, proxy=rng.normal(p, 1.0, 8), true=rng.normal(t, 0.05, 8))
        for k, (p, t) in enumerate(means)
    ]
    with RunDirectory(tmp_path / "run") as run_dir:
        run_dir.write_config("ppo", default_config(env).to_dict())
        written = write_report(run_dir, env, {}, evaluations).report
    assert written.onset_step == 3000
    stale = json.loads((tmp_path / "run" / "goodhart.json").read_text())
    stale["measures"]["onset_step"] = {"value": None, "interval": None}
    (tmp_path / "run" / "goodhart.json").write_text(json.dumps(stale))
    assert run_report(tmp_path / "run").onset_step == 3000
