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
