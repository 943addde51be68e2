"""The run-directory layer: one writer, nothing overwritten that the run did not write, a progress
log that survives kills, stale temporaries cleaned up."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_ppo import tiny_config  # registers the 20-step Corridor env

from gaming_gym import files, runs
from gaming_gym.agents import ppo
from gaming_gym.errors import RunDirectoryError, RunDirectoryWarning, RunInUseError
from gaming_gym.runs import ProgressLog, RunDirectory, differing_fields

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"env_id": "PPOTest/Corridor-v0", "knobs": {}, "seed": 0, "total_timesteps": 800, "sizes": (8, 8)}


def _listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# --- the lock -------------------------------------------------------------------------------------


def test_a_second_writer_is_refused_with_the_directory_and_the_holders_pid(tmp_path):
    with RunDirectory(tmp_path / "run"):
        with pytest.raises(RunInUseError) as refused:
            RunDirectory(tmp_path / "run").open()
    message = str(refused.value)
    assert str(tmp_path / "run") in message and f"PID {os.getpid()}" in message
    assert "\n" not in message
    with RunDirectory(tmp_path / "run"):  # let go on exit: the next writer gets it
        pass


def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from gaming_gym.runs import RunDirectory\n"
            f"RunDirectory({str(tmp_path / 'run')!r}).open()\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUseError, match=f"PID {holder.pid}"):
            RunDirectory(tmp_path / "run").open()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with RunDirectory(tmp_path / "run"):  # a killed holder's flock is gone with it
        pass


def test_without_fcntl_the_lock_is_a_file_created_exclusively(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "fcntl", None)
    with RunDirectory(tmp_path / "run"):
        assert (tmp_path / "run" / runs.LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunInUseError, match=rf"PID {os.getpid()}\) \(if no process {os.getpid()} runs"):
            RunDirectory(tmp_path / "run").open()
    assert not (tmp_path / "run").exists()  # created, left empty: removed


# --- whose directory is this? --------------------------------------------------------------------


def test_a_directory_with_files_of_its_own_is_refused_and_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / ".checkpoint.4242.gaming_gym-partial.pt").write_bytes(b"half")  # ours, were the rest
    before = _listing(tmp_path)
    with RunDirectory(tmp_path) as directory:
        with pytest.raises(RunDirectoryError, match=r"is not empty \(notes.txt\) and holds no config.json"):
            directory.check_config("ppo", CONFIG)
    assert _listing(tmp_path) == before


def test_a_config_json_of_another_program_or_agent_or_run_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"learning_rate": 0.1}')
    with RunDirectory(tmp_path) as directory, pytest.raises(RunDirectoryError, match="names no agent"):
        directory.check_config("ppo", CONFIG)
    with RunDirectory(tmp_path) as directory:
        directory.write_config("sb3", CONFIG)
        with pytest.raises(RunDirectoryError, match="holds a sb3 run, not a ppo one"):
            directory.check_config("ppo", CONFIG)
        changed = {**CONFIG, "seed": 1, "knobs": {"coin_value": 2.0}, "total_timesteps": 1600}
        with pytest.raises(RunDirectoryError, match=r"differs in knobs, seed\)"):
            directory.check_config("sb3", changed, resumable=("total_timesteps",))
        assert directory.check_config("sb3", {**CONFIG, "total_timesteps": 1600}, ("total_timesteps",))


def test_config_json_carries_a_format_and_older_files_without_one_still_resume(tmp_path):
    with RunDirectory(tmp_path) as directory:
        directory.write_config("ppo", CONFIG)
        saved = json.loads((tmp_path / "config.json").read_text())
        assert list(saved)[:2] == ["format", "agent"] and saved["format"] == runs.RUN_FORMAT
        (tmp_path / "config.json").write_text(json.dumps({"agent": "ppo", **CONFIG}))  # no format
        assert directory.check_config("ppo", CONFIG)["sizes"] == [8, 8]
        (tmp_path / "config.json").write_text(json.dumps({"agent": "ppo", **CONFIG, "format": "x/9"}))
        with pytest.raises(RunDirectoryError, match="is of format 'x/9'"):
            directory.check_config("ppo", CONFIG)


def test_fields_are_compared_as_json_stores_them_and_the_agent_upgrades_older_configs(tmp_path):
    saved = {"agent": "ppo", "sizes": [8, 8], "seed": 0}
    assert differing_fields(saved, {"sizes": (8, 8), "seed": 0}) == []
    assert differing_fields(saved, {"sizes": (8, 8), "seed": 0, "start": "scratch"}) == ["start"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with RunDirectory(tmp_path) as directory:
        today = {"sizes": (8, 8), "seed": 0, "start": "scratch"}
        with pytest.raises(RunDirectoryError, match="differs in start"):
            directory.check_config("ppo", today)
        assert directory.check_config("ppo", today, upgrade=lambda old: {"start": "scratch", **old})


def test_stale_temporaries_of_a_killed_writer_are_removed_when_the_run_is_claimed(tmp_path):
    """atomic_write's .NAME.PID.gaming_gym-partial.EXT files are left behind by a kill mid-write;
    a user's file that merely looks like a temporary (``.notes.2024.partial.md``) stays."""
    train = tiny_config(total_timesteps=800)
    ppo.train(train, run_dir=tmp_path, progress=False)
    mark = "gaming_gym-partial"
    stale = [f".checkpoint.99999.{mark}.pt", f".config.12345.{mark}.json", f".progress.7.{mark}.csv"]
    for name in stale:
        (tmp_path / name).write_bytes(b"half a file")
    (tmp_path / ".notes.2024.partial.md").write_text("my notes")
    ppo.train(train, run_dir=tmp_path, progress=False)
    assert not [name for name in stale if (tmp_path / name).exists()]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".notes.2024.partial.md",
        "checkpoint.pt",
        "config.json",
        "progress.csv",
    ]
    assert (tmp_path / ".notes.2024.partial.md").read_text() == "my notes"


def test_a_link_planted_as_the_lock_or_a_run_file_is_refused_and_its_target_untouched(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".gaming_gym.lock").symlink_to(outside)
    with pytest.raises(RunDirectoryError, match=r"\.gaming_gym\.lock is a symbolic link"):
        ppo.train(tiny_config(total_timesteps=800), run_dir=run_dir, progress=False)
    assert outside.read_text() == "secret"
    (run_dir / ".gaming_gym.lock").unlink()
    ppo.train(tiny_config(total_timesteps=800), run_dir=run_dir, progress=False)
    (run_dir / "progress.csv").unlink()
    (run_dir / "progress.csv").symlink_to(outside)  # appended to when the run goes on
    try:
        ppo.train(tiny_config(total_timesteps=1600), run_dir=run_dir, progress=False)
    except RunDirectoryError as error:
        assert "symbolic link" in str(error)
    assert outside.read_text() == "secret"


def test_an_atomic_write_replaces_a_link_planted_at_its_temporary_instead_of_following_it(tmp_path):
    from gaming_gym.files import write_text_atomically

    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (tmp_path / f".report.{os.getpid()}.gaming_gym-partial.json").symlink_to(outside)
    write_text_atomically(tmp_path / "report.json", "{}")
    assert outside.read_text() == "secret" and (tmp_path / "report.json").read_text() == "{}"


# --- the progress log ----------------------------------------------------------------------------

HEADER = "iteration,global_step,charts/x,eval/y\r\n"


def _raw(path: Path) -> str:
    with open(path, newline="") as file:
        return file.read()


def _log_rows(path: Path) -> list[int]:
    with open(path, newline="") as file:
        return [int(row["iteration"]) for row in csv.DictReader(file)]


@pytest.mark.parametrize(
    "tail",
    ["3,30,0.3,", "3,30,0.3,\r\n3,3", "\x00" * 24, "3,30,0.3\r\n"],
    ids=["row cut short", "next row cut short", "zero-filled", "a cell missing"],
)
def test_a_damaged_last_line_is_dropped_with_a_warning_naming_the_file(tmp_path, tail):
    path = tmp_path / "progress.csv"
    path.write_text(HEADER + "0,0,,1.0\r\n1,10,0.1,\r\n2,20,0.2,2.0\r\n" + tail, newline="")
    with pytest.warns(RunDirectoryWarning, match=rf"{path}: dropped its damaged last line"):
        log = ProgressLog(path, keep_through=1 if tail.startswith("3,30,0.3,\r\n") else 2)
    log.write({"iteration": 3, "global_step": 30, "charts/x": 0.5})
    log.close()
    kept = [0, 1] if tail.startswith("3,30,0.3,\r\n") else [0, 1, 2]
    assert _log_rows(path) == [*kept, 3]


def test_a_damaged_line_before_the_last_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_text(HEADER + "0,0,,1.0\r\nxx\r\n2,20,0.2,2.0\r\n", newline="")
    with pytest.raises(RunDirectoryError, match=rf"{path}: line 3 is damaged"):
        ProgressLog(path, keep_through=2)


def test_resuming_cuts_the_log_back_to_the_checkpoint_atomically_and_appends(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_text(HEADER + "0,0,,1.0\r\n1,10,0.1,\r\n2,20,0.2,2.0\r\n3,30,0.3,\r\n", newline="")
    log = ProgressLog(path, keep_through=1, extra_columns=("eval/y",))
    assert _raw(path) == HEADER + "0,0,,1.0\r\n1,10,0.1,\r\n"  # before any new row
    log.write({"iteration": 2, "global_step": 20, "charts/x": 0.25, "eval/y": 3.0})
    assert _raw(path).endswith("2,20,0.25,3.0\r\n")  # on disk at once
    log.close()
    fresh = ProgressLog(path, keep_through=None, extra_columns=("eval/y",))
    assert not path.exists()  # a fresh run starts the log again
    fresh.write({"iteration": 0, "global_step": 0, "eval/y": 1.0})  # waits for the columns of iteration 1
    assert not path.exists()
    fresh.write({"iteration": 1, "global_step": 10, "charts/x": 0.5})
    fresh.close()
    assert _raw(path) == HEADER + "0,0,,1.0\r\n1,10,0.5,\r\n"


@pytest.mark.slow  # soak: kills training subprocesses
def test_a_kill_while_resuming_loses_no_row_before_the_checkpoint(tmp_path, monkeypatch):
    """The red team's case: a resumed run killed (SIGKILL, no clean-up) as it writes its first
    new row. The log used to be reopened with "w" and was left empty; now it keeps rows 0-4 (the
    checkpoint's iteration), and the next resume completes it."""
    from test_ppo import crash_in_iteration

    config = tiny_config(checkpoint_every=2)
    crash_in_iteration(6, config, tmp_path, monkeypatch)  # checkpoint: iteration 4; log: rows 0-5
    assert _log_rows(tmp_path / "progress.csv") == [0, 1, 2, 3, 4, 5]
    script = textwrap.dedent(
        f"""
        import csv, os, signal, sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        from test_ppo import tiny_config
        from gaming_gym.agents.ppo import train

        write = csv.DictWriter.writerow

        def killed_at_iteration_5(self, row):
            if row.get("iteration") == 5:
                os.kill(os.getpid(), signal.SIGKILL)
            return write(self, row)

        csv.DictWriter.writerow = killed_at_iteration_5
        train(tiny_config(checkpoint_every=2), run_dir={str(tmp_path)!r}, progress=False)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert killed.returncode == -signal.SIGKILL
    assert _log_rows(tmp_path / "progress.csv") == [0, 1, 2, 3, 4]
    ppo.train(config, run_dir=tmp_path, progress=False)
    assert _log_rows(tmp_path / "progress.csv") == [0, 1, 2, 3, 4, 5, 6]
