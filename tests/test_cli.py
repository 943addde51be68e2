"""The gaming-gym command: every subcommand on tiny budgets, and its one-line errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from gaming_gym.cli import main

REPO = Path(__file__).resolve().parents[1]
NEEDS_SB3 = pytest.mark.skipif(
    importlib.util.find_spec("stable_baselines3") is None, reason="needs the sb3 extra (stable-baselines3)"
)
BOAT = "GamingGym/BoatRace-v1"


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
    assert "proxy: game score" in boat and "true: race progress" in boat and "then circle the lagoon" in boat


def test_list_includes_custom_envs_given_with_import(capsys):
    code, out, _ = run(capsys, "--import", str(REPO / "examples" / "dispenser.py"), "list")
    assert code == 0
    assert "MyLab/Dispenser-v0" in out


def test_evaluate_a_scripted_policy_prints_raw_and_normalised_returns(capsys):
    code, out, _ = run(capsys, "evaluate", f"{BOAT}:intended", "--episodes", "4")
    assert code == 0
    proxy_line = next(line for line in out.splitlines() if "proxy return" in line)
    true_line = next(line for line in out.splitlines() if "true return" in line)
    assert proxy_line.split()[2] == "38.000"  # 11 buoys a lap for 3 laps + the finish bonus
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
        (["--import", "no_such_file.py", "list"], "list: error: --import no_such_file.py: no such file"),
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


def test_mitigations_are_chosen_by_name_with_their_settings_and_recorded(capsys, tmp_path):
    """``--mitigation`` (repeatable, applied in order) and ``--set NAME.SETTING=VALUE``: the run
    trains with both, records them in config.json with every setting filled in, and its
    evaluations carry the early-stopping check's held-out returns."""
    code, out, err = train(
        capsys,
        tmp_path / "run",
        "--steps",
        str(2 * ROLLOUT),
        "--mitigation",
        "kl_initial",
        "--set",
        "kl_initial.beta=0.3",
        "--mitigation",
        "early_stopping",
        "--set",
        "early_stopping.episodes=3",
    )
    assert code == 0, err
    assert _config(tmp_path / "run")["mitigations"] == {
        "kl_initial": {"beta": 0.3},
        "early_stopping": {"episodes": 3, "patience": 2, "min_drop": 0.1, "stop": True},
    }
    evaluations = json.loads((tmp_path / "run" / "evaluations.json").read_text())
    assert [len(record["holdout_true"]) for record in evaluations] == [3, 3, 3]
    assert "early stopping on the held-out check" in out


def test_rerunning_an_interrupted_run_resumes_it(capsys, tmp_path, monkeypatch):
    from test_ppo import raising_on_call

    from gaming_gym.agents.ppo import training

    real_iteration = training._iteration
    monkeypatch.setattr(training, "_iteration", raising_on_call(3, real_iteration, KeyboardInterrupt))
    command = ("--steps", str(4 * ROLLOUT), "--set", "checkpoint_every=1")
    code, _, err = train(capsys, tmp_path / "run", *command)
    assert code == 130 and "re-run the same command to resume" in err
    assert not (tmp_path / "run" / "goodhart.json").exists()
    monkeypatch.setattr(training, "_iteration", real_iteration)
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


# --- hardening: untrusted run directories, imports, bad input, reproducible evaluation -----------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny PPO run on the Dispenser, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    argv = [*DISPENSER, "train", "MyLab/Dispenser-v0", "--out", str(out), "--quiet", "--device", "cpu"]
    assert main([*argv, "--steps", str(ROLLOUT), "--set", "eval_episodes=4"]) == 0
    return out


@NEEDS_SB3
def test_an_sb3_run_trains_evaluates_and_renders_through_the_agent_table(capsys, tmp_path):
    out = tmp_path / "sb3"
    tiny = ("--num-envs", "8", "--set", "num_steps=32", "--set", "eval_every=1", "--set", "eval_episodes=2")
    code, _, _ = run(capsys, *DISPENSER, "train", "MyLab/Dispenser-v0", "--agent", "sb3", "--steps", "512",
                     "--out", str(out), "--quiet", "--device", "cpu", *tiny)  # fmt: skip
    assert code == 0 and _config(out)["agent"] == "sb3" and _config(out)["num_steps"] == 32
    assert json.loads((out / "evaluations.json").read_text())[-1]["step"] == 512
    first = run(capsys, *DISPENSER, "evaluate", str(out), "--episodes", "3")
    assert first[0] == 0 and f"agent {out}" in first[1]
    assert run(capsys, *DISPENSER, "evaluate", str(out), "--episodes", "3") == first  # seeded: the same
    code, stdout, _ = run(capsys, *DISPENSER, "render", str(out), "--out", str(tmp_path / "sb3.gif"),
                          "--max-frames", "5")  # fmt: skip
    assert code == 0 and (tmp_path / "sb3.gif").exists()


def _evil_pickle(marker: Path) -> str:
    """A base64 pickle that creates ``marker`` when unpickled."""
    import base64
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    return base64.b64encode(pickle.dumps(Evil())).decode()


@NEEDS_SB3
def test_an_sb3_run_directory_never_unpickles_its_model(capsys, tmp_path):
    import zipfile

    run_dir, marker = tmp_path / "run", tmp_path / "pwned"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"agent": "sb3", "env_id": BOAT, "knobs": {}}))
    data = {"policy_class": {":type:": "x", ":serialized:": _evil_pickle(marker)}}
    with zipfile.ZipFile(run_dir / "sb3_model.zip", "w") as archive:
        archive.writestr("data", json.dumps(data))
    code, _, err = run(capsys, "evaluate", str(run_dir), "--episodes", "2")
    assert not marker.exists(), "loading the run directory ran code from it"
    assert code == 2 and "unpickle" in err and len(err.strip().splitlines()) == 1


def test_a_run_directory_naming_a_module_prefixed_env_is_refused(capsys, tmp_path, trained_run, monkeypatch):
    """``module:Env-v0`` makes Gymnasium import ``module``: a run directory must not do that."""
    import shutil

    import torch

    (tmp_path / "evil_gaming_module.py").write_text(f"import os\nos.mkdir({str(tmp_path / 'pwned')!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    evil_id = "evil_gaming_module:MyLab/Dispenser-v0"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["config"]["env_id"] = evil_id
    torch.save(state, run_dir / "checkpoint.pt")
    code, _, err = run(capsys, *DISPENSER, "evaluate", str(run_dir), "--episodes", "2")
    assert not (tmp_path / "pwned").exists() and code == 2 and "not a registered gameable env" in err
    (run_dir / "config.json").write_text(json.dumps({**_config(run_dir), "env_id": evil_id}))
    code, _, err = run(capsys, *DISPENSER, "render", str(run_dir), "--out", str(tmp_path / "x.gif"))
    assert not (tmp_path / "pwned").exists() and code == 2 and "not a registered gameable env" in err


def test_import_loads_a_file_without_shadowing_a_module_of_the_same_name(capsys, tmp_path, monkeypatch):
    import json as real_json

    monkeypatch.setitem(sys.modules, "json", real_json)  # restored whatever happens
    (tmp_path / "json.py").write_text("NOT_THE_STDLIB = True\n")
    code, _, err = run(capsys, "--import", str(tmp_path / "json.py"), "list")
    assert code == 0, err
    assert sys.modules["json"] is real_json


def test_import_of_a_file_with_a_syntax_error_is_one_line_naming_file_and_line(capsys, tmp_path):
    (tmp_path / "broken_envs.py").write_text("import gaming_gym\n\ndef oops(:\n")
    code, _, err = run(capsys, "--import", str(tmp_path / "broken_envs.py"), "list")
    assert code == 2 and "broken_envs.py, line 3" in err and len(err.strip().splitlines()) == 1


def test_import_of_a_bare_module_name_works_from_its_own_folder(capsys, tmp_path, monkeypatch):
    """The installed ``gaming-gym`` script does not put the working directory on sys.path."""
    (tmp_path / "feed_env_module.py").write_text(
        "import sys, gaming_gym\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from examples.dispenser import DISPENSER\n"
        "gaming_gym.register('FeedLab/Feed-v0', DISPENSER, max_episode_steps=100, override=True)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    code, out, err = run(capsys, "--import", "feed_env_module", "list")
    assert code == 0, err
    assert "FeedLab/Feed-v0" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["render", f"{BOAT}:exploit", "--out", "x.gif", "--max-frames", "0"],
            "max_frames must be a positive int",
        ),
        (
            ["render", f"{BOAT}:exploit", "--out", "x.gif", "--max-frames", "-3"],
            "max_frames must be a positive int",
        ),
        (["evaluate", f"{BOAT}:exploit", "--episodes", "0"], "episodes must be a positive int"),
        (["evaluate", f"{BOAT}:exploit", "--knob", "respawn_delay=-1"], "BoatRace"),
    ],
)
def test_more_bad_input_is_one_clear_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir()), "nothing may be written"


def test_an_unavailable_device_or_a_huge_batch_is_one_line(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = train(capsys, tmp_path / "cuda", "--device", "cuda")
    assert code == 2 and "'cuda' is not available" in err and len(err.strip().splitlines()) == 1
    code, _, err = train(capsys, tmp_path / "huge", "--num-envs", str(10**12), "--steps", str(10**15))
    assert code == 2 and "use at most about" in err and len(err.strip().splitlines()) == 1


def test_report_refuses_the_same_run_twice(capsys, trained_run, tmp_path):
    code, _, err = run(
        capsys, *DISPENSER, "report", str(trained_run), f"{trained_run}/", "--out", str(tmp_path)
    )
    assert code == 2 and "given twice" in err


def test_bugs_are_not_relabelled_as_bad_input_and_traceback_shows_errors(capsys, monkeypatch):
    from gaming_gym import cli
    from gaming_gym.errors import ConfigError

    def buggy(*args, **kwargs):
        raise RuntimeError("a bug in gaming_gym")

    with pytest.raises(ConfigError, match="unknown env"):
        main(["--traceback", "evaluate", "Nope/Nothing-v0:exploit"])
    monkeypatch.setattr(cli, "evaluate", buggy)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["evaluate", f"{BOAT}:exploit", "--episodes", "2"])


def test_an_unwritable_output_is_one_line(capsys, monkeypatch, tmp_path):
    import errno

    from gaming_gym import render

    def read_only(frames, path, fps):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(render, "_write_gif", read_only)
    code, _, err = run(
        capsys, "render", f"{BOAT}:exploit", "--out", str(tmp_path / "r.gif"), "--max-frames", "2"
    )
    assert code == 2 and str(tmp_path) in err and "Read-only file system" in err


def test_evaluating_a_trained_run_is_reproducible_and_can_be_greedy(capsys, trained_run):
    outputs = [run(capsys, *DISPENSER, "evaluate", str(trained_run), "--episodes", "16")[1] for _ in range(2)]
    assert outputs[0] == outputs[1]
    code, greedy, _ = run(
        capsys, *DISPENSER, "evaluate", str(trained_run), "--episodes", "4", "--deterministic"
    )
    proxy = [float(line.split()[2]) for line in greedy.splitlines() if "proxy return" in line]
    assert code == 0 and len(proxy) == 1


# --- the run directory: one writer, nothing overwritten, nothing half-written ---------------------


def _listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "change, differs",
    [(("--set", "learning_rate=0.01"), "learning_rate"), (("--seed", "1"), "seed"),
     (("--knob", "coin_value=2.0"), "knobs")],
)  # fmt: skip
def test_a_refused_resume_leaves_the_run_directory_as_it_was(capsys, tmp_path, change, differs):
    assert train(capsys, tmp_path / "run", "--steps", str(ROLLOUT))[0] == 0
    before = _listing(tmp_path / "run")
    code, _, err = train(capsys, tmp_path / "run", "--steps", str(ROLLOUT), *change)
    assert code == 2 and f"differs in {differs}" in err and _one_line(err)
    assert _listing(tmp_path / "run") == before  # config.json still records the run that is there


def test_train_into_a_directory_it_did_not_write_is_refused_untouched(capsys, tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (out / "config.json").write_text('{"chapters": 5}')  # not gaming_gym's
    code, _, err = train(capsys, out, "--steps", str(ROLLOUT))
    assert code == 2 and "names no agent" in err and _one_line(err)
    (out / "config.json").unlink()
    code, _, err = train(capsys, out, "--steps", str(ROLLOUT))
    assert code == 2 and "is not empty (thesis.tex) and holds no config.json" in err and _one_line(err)
    assert _listing(out) == {"thesis.tex": b"years of work"}
    code, _, err = train(capsys, out / "thesis.tex", "--steps", str(ROLLOUT))
    assert code == 2 and "is a file, not a run directory" in err


def test_a_second_train_into_the_same_out_is_one_line_naming_the_holder(capsys, tmp_path):
    from gaming_gym.runs import RunDirectory

    with RunDirectory(tmp_path / "run"):  # as a first `gaming-gym train` holds it
        code, _, err = train(capsys, tmp_path / "run", "--steps", str(ROLLOUT))
    assert code == 2 and _one_line(err)
    assert f"{tmp_path / 'run'} is in use by another gaming_gym process (PID {os.getpid()})" in err
    assert not (tmp_path / "run").exists()  # the holder made it and left it empty


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--set", "learning_rate=1e999"), "learning_rate must be a finite number > 0, got inf"),
        pytest.param(
            ("--agent", "sb3", "--set", "learning_rate=1e999"),
            "learning_rate must be a finite number > 0, got inf",
            marks=NEEDS_SB3,
        ),
        pytest.param(
            ("--agent", "sb3", "--mitigation", "kl_initial"),
            "the SB3 agent cannot use mitigation kl_initial (a KL penalty needs the policy's",
            marks=NEEDS_SB3,
        ),
        (
            ("--set", "kl_initial.beta=0.1"),
            "--set kl_initial.beta: choose the mitigation with --mitigation kl_initial",
        ),
        (("--mitigation", "kl_everything"), "unknown mitigation 'kl_everything'; registered:"),
        (
            ("--mitigation", "kl_initial", "--set", "kl_initial.beta=-1"),
            "mitigation kl_initial: beta must be",
        ),
        pytest.param(
            ("--agent", "sb3", "--set", "n_epochs=2"),
            "no setting 'n_epochs'; n_epochs is update_epochs here",
            marks=NEEDS_SB3,
        ),
        (
            ("--set", "n_epochs=2"),
            "native PPO has no setting 'n_epochs'; it takes: anneal_lr, checkpoint_every",
        ),
        (("--agent", "sb4"), "unknown agent 'sb4'; choose one of: ppo, sb3"),
        (("--set", "hidden_sizes=(10000000,)"), "hidden_sizes must be a non-empty tuple of ints from 1 to"),
        (("--set", "cpu_threads=100000"), "cpu_threads must be None or an int from 1 to"),  # was a segfault
        (("--set", "seed=18446744073709551616"), "seed must be an int from 0 to 2**62"),
        (
            ("--set", "hidden_sizes=(4096,4096,4096,4096)"),
            "parameters on MyLab/Dispenser-v0; at most 50,000,000",
        ),
        pytest.param(
            ("--agent", "sb3", "--set", "hidden_sizes=(4096,4096,4096,4096)"),
            "parameters on MyLab/Dispenser-v0; at most 50,000,000",
            marks=NEEDS_SB3,
        ),
    ],
)
def test_a_setting_that_cannot_train_is_one_line_and_writes_nothing(capsys, tmp_path, extra, message):
    code, _, err = train(capsys, tmp_path / "run", "--steps", str(ROLLOUT), *extra)
    assert code == 2 and message in err and _one_line(err)
    assert not (tmp_path / "run").exists()


def test_a_read_only_out_is_one_line(capsys, tmp_path, monkeypatch):
    """As on a read-only file system (root may write anywhere, so the error is injected)."""
    import errno

    real_open, out = os.open, tmp_path / "run"
    out.mkdir()

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(out)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    code, _, err = train(capsys, out, "--steps", str(ROLLOUT))
    assert code == 2 and _one_line(err)
    assert f"cannot write in run directory {out}: Read-only file system" in err
    assert not list(out.iterdir())


@pytest.mark.parametrize("failing_sync, victim", [(1, "progress.csv"), (3, "checkpoint.pt")])
def test_a_full_disk_on_resume_is_one_line_and_leaves_nothing_half_written(
    capsys, tmp_path, monkeypatch, failing_sync, victim
):
    """The disk fills up as a resumed run rewrites its log (sync 1) or saves a checkpoint (sync 3,
    after a row); the run stops with one line naming the file, the previous files stay whole, and
    once there is room again the same command finishes the run."""
    import errno

    from gaming_gym import files

    run_dir = tmp_path / "run"
    assert train(capsys, run_dir, "--steps", str(ROLLOUT), "--set", "checkpoint_every=1")[0] == 0
    before = _listing(run_dir)
    real_sync, syncs = files.sync_file, []

    def full_disk(file):
        syncs.append(file)
        if len(syncs) == failing_sync:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_sync(file)

    monkeypatch.setattr(files, "sync_file", full_disk)
    command = ("--steps", str(3 * ROLLOUT), "--set", "checkpoint_every=1")
    code, _, err = train(capsys, run_dir, *command)
    assert code == 2 and _one_line(err)
    assert f"{run_dir / victim}: No space left on device" in err
    assert not [name for name in os.listdir(run_dir) if "partial" in name]
    assert (run_dir / "checkpoint.pt").read_bytes() == before["checkpoint.pt"]
    monkeypatch.setattr(files, "sync_file", real_sync)
    assert train(capsys, run_dir, *command)[0] == 0
    assert _iterations(run_dir) == [0, 1, 2, 3]


def test_a_checkpoint_holding_a_pickle_is_refused_in_one_line_without_running_it(capsys, tmp_path):
    import torch

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / "pwned"),))

    run_dir = tmp_path / "run"
    assert train(capsys, run_dir, "--steps", str(ROLLOUT))[0] == 0
    torch.save({"config": {}, "payload": Evil()}, run_dir / "checkpoint.pt")
    code, _, err = train(capsys, run_dir, "--steps", str(2 * ROLLOUT))
    assert not (tmp_path / "pwned").exists()
    assert code == 2 and f"cannot read {run_dir / 'checkpoint.pt'}" in err and _one_line(err)


def test_a_damaged_last_line_of_the_log_is_dropped_with_one_warning_line(capsys, tmp_path):
    """A crash can leave the log's tail zero-filled; the resume says so in one line and goes on."""
    run_dir = tmp_path / "run"
    assert train(capsys, run_dir, "--steps", str(ROLLOUT), "--set", "checkpoint_every=1")[0] == 0
    with open(run_dir / "progress.csv", "ab") as file:
        file.write(b"\x00" * 40)
    code, _, err = train(capsys, run_dir, "--steps", str(2 * ROLLOUT))
    assert code == 0, err
    assert f"gaming-gym train: warning: {run_dir / 'progress.csv'}: dropped its damaged last line" in err
    assert _iterations(run_dir) == [0, 1, 2]


def test_rendering_a_trained_run_is_reproducible_and_can_be_greedy(capsys, tmp_path, trained_run):
    """`render` seeds the agent's action sampling with --seed: the same command, the same frames."""

    def frames(name: str, *extra: str) -> np.ndarray:
        out = tmp_path / name
        code, _, err = run(capsys, *DISPENSER, "render", str(trained_run), "--out", str(out),
                           "--max-frames", "8", *extra)  # fmt: skip
        assert code == 0, err
        return iio.imread(out)

    assert np.array_equal(frames("a.gif", "--seed", "4"), frames("b.gif", "--seed", "4"))
    greedy = [frames(f"greedy-{n}.gif", "--deterministic") for n in range(2)]
    assert greedy[0].shape[0] == 8 and np.array_equal(*greedy)


def test_train_with_the_dpo_agent_learns_from_a_reward_models_comparisons(capsys, tmp_path):
    rm, run_dir = tmp_path / "rm", tmp_path / "dpo"
    code, _, _ = run(
        capsys, "reward-model", "GamingGym/ConfidentRater-v0", "--comparisons", "200", "--out", str(rm)
    )
    assert code == 0
    code, out, _ = run(
        capsys, "train", "GamingGym/ConfidentRater-v0", "--agent", "dpo", "--reward-model", str(rm),
        "--set", "epochs=2", "--set", "eval_every=1", "--set", "eval_episodes=4",
        "--out", str(run_dir), "--quiet",
    )  # fmt: skip
    assert code == 0 and "distance d = sqrt(KL), final" in out
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["agent"], saved["epochs"], saved["reward_model"]) == ("dpo", 2, str(rm))
    code, _, err = run(
        capsys, "train", "GamingGym/ConfidentRater-v0", "--agent", "dpo", "--out", str(tmp_path / "x")
    )
    assert code == 2 and "reward_model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["train", "evaluate", "render", "demo"])
def test_a_seed_out_of_range_is_one_line_not_a_traceback(capsys, tmp_path, command):
    target = "GamingGym/AbsentSupervisor-v0" + ("" if command == "train" else ":intended")
    argv = {
        "train": ["train", target, "--out", str(tmp_path / "r")],
        "evaluate": ["evaluate", target],
        "render": ["render", target, "--out", str(tmp_path / "x.gif")],
        "demo": ["demo", "--out", str(tmp_path / "d")],
    }[command]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--seed", str(2**64)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "a seed is an int from 0 to 2**62" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_a_finished_run_keeps_its_config_and_says_how_to_train_anew(capsys, tmp_path):
    out = tmp_path / "run"
    assert train(capsys, out, "--steps", str(ROLLOUT))[0] == 0
    before = (out / "config.json").read_text()
    code, _, err = train(capsys, out, "--steps", str(ROLLOUT), "--set", "eval_every=7")
    assert code == 2 and "holds a finished run; its config cannot change (eval_every 1 -> 7)" in err
    assert "--out" in err and _one_line(err) and (out / "config.json").read_text() == before
    assert train(capsys, out, "--steps", str(ROLLOUT))[0] == 0  # the same settings: the report again


def test_a_long_error_is_cut_at_a_word_not_mid_word():
    from gaming_gym.errors import shortened

    text = "cannot load the file because " + "something went wrong " * 20
    cut = shortened(text, 60)
    assert len(cut) <= 60 and cut.endswith("...") and text.startswith(cut[:-3])
    assert cut[:-3].split()[-1] in text.split()  # a whole word
    assert shortened("short one", 60) == "short one"


def test_list_verbose_shows_each_envs_training_defaults_and_train_help_points_there(capsys):
    code, out, _ = run(capsys, "list", "--verbose")
    assert code == 0
    boat = out.splitlines()[
        [i for i, line in enumerate(out.splitlines()) if line.startswith("GamingGym/BoatRace-v1")][0] + 1
    ]
    assert "train defaults: --steps 3,932,160 --num-envs 256, num_steps 32, eval_every 10" in boat
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "gaming-gym list --verbose" in " ".join(capsys.readouterr().out.split())
