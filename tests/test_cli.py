"""The gaming-gym command: every subcommand on tiny budgets, and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from gaming_gym.cli import main

REPO = Path(__file__).resolve().parents[1]
BOAT = "GamingGym/BoatRace-v0"


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_names_every_env_with_its_proxy_true_and_exploit(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    boat = next(line for line in out.splitlines() if line.startswith(BOAT))
    assert (
        "proxy: game score" in boat and "true: race progress" in boat and "exploit: circle the lagoon" in boat
    )


def test_list_includes_custom_envs_given_with_import(capsys):
    code, out, _ = run(capsys, "--import", str(REPO / "examples" / "dispenser.py"), "list")
    assert code == 0
    assert "MyLab/Dispenser-v0" in out


def test_evaluate_a_scripted_policy_prints_raw_and_normalised_returns(capsys):
    code, out, _ = run(capsys, "evaluate", f"{BOAT}:intended", "--episodes", "4")
    assert code == 0
    proxy_line = next(line for line in out.splitlines() if "proxy return" in line)
    true_line = next(line for line in out.splitlines() if "true return" in line)
    assert proxy_line.split()[2] == "17.000"  # 12 targets + the finish bonus
    assert float(true_line.split()[-1]) == pytest.approx(1.0, abs=0.02)  # intended is 1 by definition


def test_render_writes_an_animated_gif_with_the_expected_frame_count(capsys, tmp_path):
    out = tmp_path / "exploit.gif"
    code, stdout, _ = run(capsys, "render", f"{BOAT}:exploit", "--out", str(out), "--max-frames", "12")
    assert code == 0 and "exploit policy" in stdout
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.size == (480, 480)
        assert gif.n_frames == 12
    assert not list(tmp_path.glob(".*partial*")), "no half-written file may remain"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "Nope/Nothing-v0:exploit"], "unknown env 'Nope/Nothing-v0'"),
        (["evaluate", f"{BOAT}:cheat"], "no reference policy 'cheat'"),
        (["evaluate", "no_such_dir"], "neither a run directory nor ENV_ID:POLICY"),
        (["evaluate", f"{BOAT}:exploit", "--knob", "bogus=1"], "no knob 'bogus'"),
        (["evaluate", f"{BOAT}:exploit", "--knob", "respawn_delay"], "bad --knob 'respawn_delay'"),
        (["train", "Nope/Nothing-v0"], "unknown env"),
        (["render", f"{BOAT}:exploit", "--out", "rollout.avi"], "use a .gif or .mp4"),
        (["report", "no_such_dir"], "no run directory at no_such_dir"),
        (["--import", "no_such_file.py", "list"], "no such file"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_installed_entry_point_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "gaming_gym", "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "SDL_VIDEODRIVER": "dummy"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert BOAT in result.stdout


def _config(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())


# --- training through the CLI, on the docs' tiny custom env so each run takes seconds ------------

DISPENSER = ("--import", str(REPO / "examples" / "dispenser.py"))
ROLLOUT = 64 * 128  # PPO's default num_envs * num_steps: env steps per training iteration


def train(capsys, out: Path, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys, *DISPENSER, "train", "MyLab/Dispenser-v0", "--out", str(out), "--quiet",
        "--device", "cpu", "--set", "eval_every=1", "--set", "eval_episodes=8", *extra,
    )  # fmt: skip


def _iterations(run_dir: Path) -> list[int]:
    lines = (run_dir / "progress.csv").read_text().splitlines()
    column = lines[0].split(",").index("iteration")
    return [int(line.split(",")[column]) for line in lines[1:]]


def test_train_writes_a_complete_run_directory(capsys, tmp_path):
    code, out, err = train(capsys, tmp_path / "run", "--steps", str(2 * ROLLOUT))
    assert code == 0, err
    assert "Goodhart gap p - t (final)" in out
    run_dir = tmp_path / "run"
    assert _config(run_dir)["agent"] == "ppo" and _config(run_dir)["env_id"] == "MyLab/Dispenser-v0"
    assert _iterations(run_dir) == [0, 1, 2]  # 0: the evaluation before the first update
    report = json.loads((run_dir / "goodhart.json").read_text())
    assert report["steps"] == [0, ROLLOUT, 2 * ROLLOUT]
    evaluations = json.loads((run_dir / "evaluations.json").read_text())
    assert [len(record["proxy"]) for record in evaluations] == [8, 8, 8]
    assert evaluations[0]["kl"] == 0.0 and evaluations[-1]["kl"] > 0.0
    for png in ("goodhart_curve.png", "episodes.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run_dir.glob(".*partial*"))


def test_rerunning_an_interrupted_run_resumes_it(capsys, tmp_path, monkeypatch):
    from gaming_gym.agents import ppo

    real_iteration, calls = ppo._train_iteration, []

    def interrupted_on_third_iteration(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_iteration(*args, **kwargs)

    monkeypatch.setattr(ppo, "_train_iteration", interrupted_on_third_iteration)
    command = ("--steps", str(4 * ROLLOUT), "--set", "checkpoint_every=1")
    code, _, err = train(capsys, tmp_path / "run", *command)
    assert code == 130 and "re-run the same command to resume" in err
    assert not (tmp_path / "run" / "goodhart.json").exists()
    monkeypatch.setattr(ppo, "_train_iteration", real_iteration)
    code, _, err = train(capsys, tmp_path / "run", *command)
    assert code == 0, err
    assert _iterations(tmp_path / "run") == [0, 1, 2, 3, 4]  # continued from iteration 2, not restarted
    assert json.loads((tmp_path / "run" / "goodhart.json").read_text())["steps"] == [
        ROLLOUT * k for k in (0, 1, 2, 3, 4)
    ]


def test_report_combines_seeds_and_render_plays_a_trained_run(capsys, tmp_path):
    for seed in (0, 1):
        assert train(capsys, tmp_path / f"s{seed}", "--steps", str(ROLLOUT), "--seed", str(seed))[0] == 0
    code, out, _ = run(
        capsys,
        *DISPENSER,
        "report",
        str(tmp_path / "s0"),
        str(tmp_path / "s1"),
        "--out",
        str(tmp_path / "all"),
    )
    assert code == 0 and "2 runs" in out
    assert json.loads((tmp_path / "all" / "goodhart.json").read_text())["n_runs"] == 2
    assert (tmp_path / "all" / "goodhart_curve.png").exists()
    gif = tmp_path / "agent.gif"
    code, out, _ = run(
        capsys, *DISPENSER, "render", str(tmp_path / "s0"), "--out", str(gif), "--max-frames", "5"
    )
    assert code == 0 and f"agent {tmp_path / 's0'}" in out
    with Image.open(gif) as frames:
        assert 1 <= frames.n_frames <= 5


def test_a_corrupt_checkpoint_is_one_clear_line(capsys, tmp_path):
    assert train(capsys, tmp_path / "run", "--steps", str(ROLLOUT))[0] == 0
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, *DISPENSER, "evaluate", str(tmp_path / "run"))
    assert code == 2
    assert "checkpoint" in err and len(err.strip().splitlines()) == 1
