"""Run directories written before the redesign (gaming_gym at commit 1d17070: mitigations were
PPOConfig fields, checkpoints held a ``reference`` and a ``best_agent``, reports were format 1)
still report, evaluate, render and resume. ``tests/data/runs_of_1d17070/make_runs.py`` says how
they were made: two iterations each of native PPO plain, with a KL penalty toward a cloned racer
plus the held-out check and early stopping, with a KL penalty toward the initial policy, from an
SFT start, and of SB3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from gaming_gym.cli import main
from gaming_gym.metrics import GoodhartReport

OLD = Path(__file__).parent / "data" / "runs_of_1d17070"
RUNS = {  # name: (env, the command-line settings that resume it, what its config.json becomes)
    "ppo_plain": ("GamingGym/AbsentSupervisor-v0", (), {"start": "scratch", "mitigations": {}}),
    "ppo_kl_intended_holdout": (
        "GamingGym/BoatRace-v1",
        (
            "--seed=1",
            "--set=num_envs=8",
            "--mitigation=kl_reference",
            "--set=kl_reference.beta=0.1",
            "--mitigation=early_stopping",
            "--set=early_stopping.episodes=2",
        ),
        {
            "mitigations": {
                "kl_reference": {"beta": 0.1, "reference": "intended"},
                "early_stopping": {"episodes": 2, "patience": 2, "min_drop": 0.1, "stop": True},
            }
        },
    ),
    "ppo_kl_initial": (
        "GamingGym/TallFall-v0",
        ("--seed=2", "--mitigation=kl_initial", "--set=kl_initial.beta=0.05"),
        {"mitigations": {"kl_initial": {"beta": 0.05}}},
    ),
    "ppo_sft": ("GamingGym/ConfidentRater-v0", ("--set=start=sft",), {"start": "sft", "mitigations": {}}),
    "sb3_plain": ("GamingGym/AbsentSupervisor-v0", ("--agent=sb3",), {"mitigations": {}}),
}
TINY = ("--set=num_steps=32", "--set=num_minibatches=2", "--set=update_epochs=2", "--set=eval_every=1")
TINY += ("--set=eval_episodes=4", "--set=hidden_sizes=(8,8)", "--set=checkpoint_every=1", "--quiet")


@pytest.fixture(params=sorted(RUNS))
def old_run(request, tmp_path):
    if request.param.startswith("sb3"):
        pytest.importorskip("stable_baselines3")
    shutil.copytree(OLD / request.param, tmp_path / request.param)
    return request.param, tmp_path / request.param


def test_an_old_run_reports_evaluates_and_renders(old_run, capsys, monkeypatch):
    name, run_dir = old_run
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert main(["report", str(run_dir)]) == 0
    assert "Goodhart gap p - t (final)" in capsys.readouterr().out  # recomputed from its records
    old_report = GoodhartReport.load(run_dir / "goodhart.json")  # format 1, read and converted
    assert old_report.steps == [e["step"] for e in json.loads((run_dir / "evaluations.json").read_text())]
    assert main(["evaluate", str(run_dir), "--episodes", "2"]) == 0
    assert main(["render", str(run_dir), "--out", str(run_dir.parent / "run.gif"), "--max-frames", "5"]) == 0
    assert (run_dir.parent / "run.gif").stat().st_size > 0


def test_an_old_run_resumes_for_longer_and_its_config_reads_as_todays(old_run, capsys, monkeypatch):
    name, run_dir = old_run
    env, settings, today = RUNS[name]
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    before = json.loads((run_dir / "evaluations.json").read_text())
    steps = before[-1]["step"] * 2  # twice as long as it trained
    envs = "--set=num_envs=8" if "--set=num_envs=8" in settings else "--set=num_envs=16"
    code = main(["train", env, "--out", str(run_dir), "--steps", str(steps), envs, *TINY, *settings])
    assert code == 0, capsys.readouterr().err
    after = json.loads((run_dir / "evaluations.json").read_text())
    assert after[: len(before)] == before  # what it had is kept as it was
    batch = before[1]["step"]  # an evaluation every rollout
    assert [e["step"] for e in after][len(before) :] == list(
        range(before[-1]["step"] + batch, steps + 1, batch)
    )
    config = json.loads((run_dir / "config.json").read_text())
    assert {key: config[key] for key in today} == today
    assert not {"kl_coef", "kl_reference", "holdout_episodes", "early_stop"} & set(config)
    if name.startswith("ppo"):
        assert (
            torch.load(run_dir / "checkpoint.pt", weights_only=True)["format"]
            == "gaming_gym.ppo_checkpoint/2"
        )


def test_a_finished_run_written_before_a_setting_existed_is_still_finished_and_reruns(tmp_path):
    """A config.json without a setting added since (deploy_knobs) is the same run: the sweep's
    check calls it finished, and training it again rewrites its report instead of refusing."""
    import json

    from test_ppo import tiny_config

    from gaming_gym.agents import ppo
    from gaming_gym.experiment import train_experiments
    from gaming_gym.sweep import finished_run

    config = tiny_config(total_timesteps=800)
    train_experiments("ppo", [config], [tmp_path], progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["deploy_knobs"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert finished_run(tmp_path, "ppo", config)
    again = ppo.train(config, run_dir=tmp_path, progress=False)
    assert again.global_step == 800
