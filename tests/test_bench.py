"""The mitigation benchmark end to end on its smoke profile (tiny budgets), and its tables."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from gaming_gym.bench_outputs import LEADERBOARD_COLUMNS, detector_rows, leaderboard_rows
from gaming_gym.bench_protocol import FULL, QUICK, EnvBudget, Profile, deployed
from gaming_gym.cli import main
from gaming_gym.metrics import GoodhartReport


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """``gaming-gym bench --profile smoke`` once, in this process."""
    out = tmp_path_factory.mktemp("bench") / "smoke"
    assert main(["bench", "--profile", "smoke", "--out", str(out), "--engine", "local", "--quiet"]) == 0
    return out


def test_the_benchmark_writes_its_leaderboard_detector_table_and_figures(smoke):
    rows = read_csv(smoke / "leaderboard.csv")
    assert tuple(rows[0]) == LEADERBOARD_COLUMNS
    # per env: none once, every other mitigation tuned and default
    arms = {
        "AbsentSupervisor-v0": ["none", "early_stopping"],
        "ConfidentRater-v0": ["none", "early_stopping", "reward_ensemble", "dpo"],
    }
    for env, names in arms.items():
        mine = [(r["mitigation"], r["selection"]) for r in rows if r["env"] == env]
        expected = [("none", "default")] + [(n, s) for n in names[1:] for s in ("tuned", "default")]
        assert mine == expected
    for row in rows:
        assert int(row["n_seeds"]) == 2
        assert float(row["true_ci_low"]) <= float(row["true_iqm"]) <= float(row["true_ci_high"])
        assert 0 <= float(row["gaming_rate"]) <= 1 and 0 <= float(row["p_improvement"]) <= 1
    defaults = {(r["env"], r["mitigation"]): r["coef"] for r in rows if r["selection"] == "default"}
    assert defaults[("ConfidentRater-v0", "reward_ensemble")] == "min"  # the file's default
    assert (
        defaults[("ConfidentRater-v0", "dpo")] == "0.1"
        and defaults[("AbsentSupervisor-v0", "early_stopping")] == "8"
    )
    detector = read_csv(smoke / "detector.csv")
    assert [r["env"] for r in detector] == ["AbsentSupervisor-v0", "ConfidentRater-v0", "all"]
    runs = read_csv(smoke / "runs.csv")
    assert int(detector[-1]["n_policies"]) == len(runs)
    for name in (
        "leaderboard.md",
        "pareto.png",
        "intervals_AbsentSupervisor-v0.png",
        "intervals_ConfidentRater-v0.png",
    ):
        assert (smoke / name).stat().st_size > 0
    assert "mean over seeds with a 95% Student-t interval" in (smoke / "leaderboard.md").read_text()


def test_the_tuned_value_is_the_best_on_the_tuning_seeds_and_reported_on_fresh_ones(smoke):
    selection = read_csv(smoke / "selection.csv")
    runs = read_csv(smoke / "runs.csv")
    for env, mitigation in {(r["env"], r["mitigation"]) for r in selection}:
        mine = [r for r in selection if r["env"] == env and r["mitigation"] == mitigation]
        best = max(mine, key=lambda r: float(r["tuning_true_mean"]))
        assert [r["coef"] for r in mine if r["chosen"] == "true"] == [best["coef"]]
        tuning_t = [
            float(r["final_true"])
            for r in runs
            if (r["env"], r["mitigation"], r["coef"], r["phase"]) == (env, mitigation, best["coef"], "tuning")
        ]
        assert float(best["tuning_true_mean"]) == pytest.approx(np.mean(tuning_t), abs=1e-4)
    assert {r["seed"] for r in runs if r["phase"] == "tuning"} == {"0"}
    assert {r["seed"] for r in runs if r["phase"] == "reported"} == {"5", "6"}


def test_an_early_stopped_run_deploys_the_agent_it_kept_and_counts_its_trusted_episodes(smoke):
    runs = read_csv(smoke / "runs.csv")
    stopped = [r for r in runs if r["mitigation"] == "early_stopping"]
    assert stopped and all(int(r["trusted_episodes"]) > 0 for r in stopped)
    assert all(int(r["trusted_episodes"]) == 0 for r in runs if r["mitigation"] != "early_stopping")
    folder = smoke / "runs" / "ConfidentRater-v0" / "early_stopping" / "2" / "seed-0"
    report = GoodhartReport.load(folder / "goodhart.json")
    saved = torch.load(folder / "checkpoint.pt", weights_only=True)
    kept = saved["kept_step"] if saved["kept_step"] is not None else report.steps[-1]
    assert deployed(folder).true == pytest.approx(report.true[report.steps.index(kept)])
    assert report.measures["early_stopping"].kept_steps[0] == kept  # the report's rule agrees
    evaluations = json.loads((folder / "evaluations.json").read_text())
    assert deployed(folder).trusted_episodes == 2 * len(evaluations)  # 2 held-out episodes each


def test_a_second_call_trains_nothing_and_keeps_the_timings(smoke, capsys):
    timings = json.loads((smoke / "timings.json").read_text())
    assert len(timings) == len(read_csv(smoke / "runs.csv")) and all(v > 0 for v in timings.values())
    assert main(["bench", "--profile", "smoke", "--out", str(smoke), "--engine", "local", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count(", 0 to train in 0 task(s)") == 2
    assert json.loads((smoke / "timings.json").read_text()) == timings


def test_the_leaderboard_and_detector_rows_from_known_records():
    def record(env, mitigation, coef, t, games, detector=0.0):
        return dict(
            env=env,
            mitigation=mitigation,
            coef=coef,
            phase="reported",
            final_true=t,
            final_proxy=t + 1,
            games=games,
            detector=detector,
        )

    env = "AbsentSupervisor-v0"
    records = [record(env, "none", "-", t, True, 0.9) for t in (0.1, 0.2, 0.3)]
    records += [record(env, "early_stopping", "8", t, False, 0.1) for t in (0.5, 0.6, 0.7)]
    records += [
        record(env, "early_stopping", "2", t, g, 0.5) for t, g in ((0.0, True), (0.2, False), (0.4, False))
    ]
    profile = Profile("test", (EnvBudget("GamingGym/" + env),), mitigations=("none", "early_stopping"))
    rows = leaderboard_rows(profile, [], {("GamingGym/AbsentSupervisor-v0", "early_stopping"): 2}, records)
    none, tuned, default = rows[:3]
    assert (
        none["true_iqm"] == pytest.approx(0.2) and none["gaming_rate"] == 1.0 and none["p_improvement"] == 0.5
    )
    half = 4.303 * np.std([0.1, 0.2, 0.3], ddof=1) / np.sqrt(3)  # t(0.975, 2 df)
    assert none["true_ci_high"] == pytest.approx(0.2 + half, abs=1e-3)
    assert (tuned["coef"], tuned["selection"], tuned["gaming_rate"]) == ("2", "tuned", pytest.approx(1 / 3))
    assert tuned["p_improvement"] == pytest.approx(4.5 / 9)  # 0.0 beats none; 0.2 one and ties one; 0.4 all
    assert default["p_improvement"] == 1.0 and default["gaming_rate"] == 0.0
    table = {r["env"]: r for r in detector_rows(records)}
    # 4 gaming (0.9 x3, 0.5) against 5 honest (0.1 x3, 0.5 x2): 15 + 3 + 2 halves of 20 pairs
    assert table[env]["auroc"] == pytest.approx(19 / 20)
    assert (table[env]["n_gaming"], table[env]["n_honest"], table["all"]["n_policies"]) == (4, 5, 9)
    all_gaming = detector_rows([record(env, "none", "-", 0.1, True)] * 3)
    assert (
        all_gaming[0]["auroc"] is None and all_gaming[0]["n_gaming"] == 3 and all_gaming[0]["n_honest"] == 0
    )


def test_the_profiles_follow_the_protocol():
    assert FULL.tuning_seeds == (0, 1, 2) and FULL.reported_seeds == (5, 6, 7, 8, 9)
    assert len(FULL.envs) >= 5
    for budget in FULL.envs:
        for arm in FULL.arms(budget.env_id):
            assert arm.name == "none" or len(arm.values) >= 3, arm
    names = {arm.name for arm in FULL.arms("GamingGym/ConfidentRater-v0")}
    assert {
        "none",
        "kl_initial",
        "kl_reference",
        "occupancy",
        "early_stopping",
        "reward_ensemble",
        "dpo",
    } <= names
    assert {arm.name for arm in FULL.arms("GamingGym/BoatRace-v1")} == names - {"reward_ensemble", "dpo"}
    assert len(QUICK.envs) == 3 and len(QUICK.reported_seeds) == 2
    assert set(QUICK.mitigations) == {"none", "kl_reference", "early_stopping"}


def test_a_reward_model_of_another_profile_in_the_output_is_refused(smoke):
    from gaming_gym.bench import run_bench
    from gaming_gym.errors import ConfigError

    with pytest.raises(ConfigError, match="holds a reward model of other settings"):
        run_bench("quick", smoke, engine="local", progress=False, say=lambda line: None)


def test_bad_benchmark_input_is_one_line(capsys, tmp_path):
    from gaming_gym.bench import run_bench
    from gaming_gym.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown benchmark profile 'huge'"):
        run_bench("huge", tmp_path)
    with pytest.raises(ConfigError, match="engine must be one of"):
        run_bench("smoke", tmp_path, engine="slurm")
    (tmp_path / "timings.json").write_text("{not json")
    with pytest.raises(ConfigError, match="timings.json"):
        from gaming_gym.bench_protocol import read_timings

        read_timings(tmp_path)
