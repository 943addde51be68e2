"""Experiments over conditions and seeds: run directories, combined reports, the comparison figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from gaming_gym.experiment import Condition, run_conditions

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
