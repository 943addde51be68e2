"""The run directory: one layer that owns its files, its lock and how each file is written.

Every agent (:mod:`gaming_gym.agents`) and :mod:`gaming_gym.experiment` write a run through a
:class:`RunDirectory`, read top to bottom::

    with RunDirectory("runs/boat") as run_dir:          # one writer: an exclusive lock
        run_dir.check_config("ppo", config, resumable)  # this run's directory, or an empty one?
        saved = run_dir.load_checkpoint(NAME)           # resume from it (None: a fresh run)
        run_dir.require_within(saved_steps, steps)      # not trained past what is asked for
        run_dir.write_config("ppo", config)             # only now is anything written
        log = run_dir.progress_log(keep_through=...)    # append-only CSV, cut back to the checkpoint
        ...; log.write(row); run_dir.save_checkpoint(state, NAME)  # synced; atomically
        run_dir.save_evaluations(evaluations)

This layer knows no agent: an agent names its own checkpoint file and format, and hands
:meth:`RunDirectory.check_config` the function that brings a ``config.json`` of an older version
of its format up to date.

Ctrl-C is the agents' to handle (they know which state is whole): each saves a checkpoint of its
last whole iteration before the ``KeyboardInterrupt`` goes on, and the lock is let go on the way.
Reading a run directory (``read_config``, ``read_checkpoint``, ``read_evaluations``) takes no
lock: every file but the append-only log is replaced atomically.

The rules (DESIGN.md, "one run directory, one writer"):

- **One writer.** Opening takes an exclusive lock (``fcntl.flock`` on :data:`LOCK_FILE` where
  there is ``fcntl``; elsewhere a file created with ``O_EXCL`` holding the PID). A second process
  gets one line naming the directory and the holder's PID.
- **Nothing overwritten that the run did not write.** :meth:`RunDirectory.check_config` refuses
  a directory whose ``config.json`` records another agent, env, knobs or setting (except those a
  resume may change), and a non-empty directory with no ``config.json`` at all, before anything
  is written. Stale ``.NAME.PID.gaming_gym-partial.EXT`` files of a killed writer (and only
  those) are removed then.
- **Nothing half-written.** Files are replaced atomically (:func:`gaming_gym.files.atomic_write`);
  the progress log is appended a row at a time, flushed and fsynced, and on resume rewritten
  (atomically) up to the checkpoint's iteration, a damaged last line (a kill mid-write) dropped
  with a warning that names the file.
- **Nothing unpickled.** A run directory may come from anyone: checkpoints are read with
  ``torch.load(weights_only=True)`` and everything else is JSON; env ids must be registered
  gameable envs before anything makes one.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gaming_gym import files
from gaming_gym.errors import (
    ConfigError,
    RunDirectoryError,
    RunNotFoundError,
    shortened,
)
from gaming_gym.files import PARTIAL_MARK, Lock, atomic_write, write_text_atomically
from gaming_gym.metrics.records import Evaluation, load_evaluations, save_evaluations
from gaming_gym.progress import ProgressLog

RUN_FORMAT = "gaming_gym.run/1"
"""``format`` of ``config.json``; files without one were written before it existed and still read."""

CONFIG_FILE = "config.json"
"""agent, env, knobs and every training setting (:meth:`RunDirectory.write_config`)"""
PROGRESS_FILE = "progress.csv"
"""one row per training iteration (:class:`ProgressLog`)"""
EVALUATIONS_FILE = "evaluations.json"
"""per-episode proxy and true returns at each evaluation (``gaming_gym.metrics.save_evaluations``)"""
REPORT_FILE = "goodhart.json"
CURVE_FILE = "goodhart_curve.png"
SCATTER_FILE = "episodes.png"
KL_CURVE_FILE = "goodhart_curve_d.png"
GAO_FILE = "gao_fit.png"
LOCK_FILE = ".gaming_gym.lock"
"""held while a process writes the run; removed when it lets go"""

_PARTIAL = re.compile(rf"^\..+\.\d+\.{re.escape(PARTIAL_MARK)}(\.[^.]*)?$")
"""Names :func:`gaming_gym.files.atomic_write` gives its temporaries: ``.STEM.PID.MARK.EXT``."""


def _own_partial(name: str) -> bool:
    """A temporary a run's own writer left (its name carries the writer's mark), never a user's
    ``.notes.2024.partial.md``."""
    return _PARTIAL.match(name) is not None


@contextmanager
def opened(run_dir: str | os.PathLike | RunDirectory | None) -> Iterator[RunDirectory | None]:
    """``run_dir`` as an open :class:`RunDirectory` for the block: a path is opened (and locked)
    here and closed after; one already open is used as it is (its opener closes it); ``None``
    stays ``None`` (a run that writes nothing)."""
    if run_dir is None or isinstance(run_dir, RunDirectory):
        yield run_dir
        return
    with RunDirectory(run_dir) as directory:
        yield directory


class RunDirectory:
    """A run directory opened for writing by this process; a context manager holding its lock.

    Args:
        path: the directory; created (with its parents) if missing, and removed again on close
            if this run created it and left nothing in it (a run refused before writing).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock: Lock | None = None
        self._created = False

    def __enter__(self) -> RunDirectory:
        self.open()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def open(self) -> None:
        """Create the directory if needed and take its lock (:class:`RunInUseError` if held)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"{self.path} is a file, not a run directory")
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = Lock(self.path / LOCK_FILE)
        except OSError as error:
            self._remove_if_created()
            raise RunDirectoryError(
                f"cannot write in run directory {self.path}: {error.strerror or error}"
            ) from error

    def close(self) -> None:
        """Let go of the lock (and remove the directory if this run created it and left it empty)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._remove_if_created()

    def _remove_if_created(self) -> None:
        if self._created:
            try:
                self.path.rmdir()  # only if empty
            except OSError:
                pass

    def file(self, name: str) -> Path:
        """The path of the run file ``name`` (one of this module's ``*_FILE`` names)."""
        return self.path / name

    # --- config.json: whose directory is this? ---------------------------------------------------

    def check_config(
        self,
        agent: str,
        config: Mapping[str, Any],
        resumable: Collection[str] = (),
        upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """Make sure this directory is empty or holds this very run; writes nothing but cleanup.

        The saved ``config.json`` must name ``agent`` and agree with ``config`` on every field but
        the ``resumable`` ones (which a resume may change, e.g. ``total_timesteps``); ``upgrade``
        (the agent's) brings a ``config.json`` of an older version up to date first. A non-empty
        directory with no ``config.json`` is refused: its files were not written by a gaming_gym
        run. Then the temporaries of a killed writer are removed. Returns the saved config,
        ``None`` if none.
        """
        saved = _read_config_file(self.file(CONFIG_FILE)) if self.file(CONFIG_FILE).exists() else None
        if saved is None:
            foreign = sorted(
                entry.name
                for entry in self.path.iterdir()
                if entry.name != LOCK_FILE and not _own_partial(entry.name)
            )
            if foreign:
                shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
                raise RunDirectoryError(
                    f"{self.path} is not empty ({shown}) and holds no {CONFIG_FILE}: it is not a "
                    f"gaming_gym run directory, so nothing is written there; use a new or empty directory"
                )
        elif saved["agent"] != agent:
            raise RunDirectoryError(
                f"{self.path} holds a {saved['agent']} run, not a {agent} one; use a new directory"
            )
        else:
            differing = differing_fields(upgrade(saved) if upgrade else saved, config, resumable)
            if differing:
                raise RunDirectoryError(
                    f"{self.path} holds a different run (it differs in {', '.join(differing)}); use a "
                    f"new directory, or the same settings to resume it"
                )
        for entry in self.path.iterdir():
            if _own_partial(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
        return saved

    def require_unchanged_when_finished(
        self,
        finished: bool,
        config: Mapping[str, Any],
        upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        harmless: Collection[str] = ("device", "cpu_threads"),
    ) -> None:
        """A finished run (nothing left to train) keeps its ``config.json``: re-running it only
        rewrites the report, so a config that differs (but for the ``harmless`` fields) is refused
        instead of recorded as if the run had trained with it. ``upgrade`` (the agent's) brings a
        ``config.json`` of an older version up to date first."""
        path = self.file(CONFIG_FILE)
        if not finished or not path.exists():
            return
        saved = _read_config_file(path)
        saved = upgrade(saved) if upgrade else saved  # settings added since take their defaults
        changed = differing_fields(saved, config, harmless)
        if changed:
            shown = ", ".join(
                f"{name} {saved.get(name)!r} -> {_plain(config.get(name))!r}" for name in changed
            )
            raise RunDirectoryError(
                f"{self.path} holds a finished run; its config cannot change ({shown}); "
                "give --out a new directory to train with these settings"
            )

    def write_config(self, agent: str, config: Mapping[str, Any]) -> Path:
        """Write ``config.json`` (atomically): the format marker, the agent, then ``config``.

        Call :meth:`check_config` first: it is what makes overwriting an existing one safe.
        """
        record = {"format": RUN_FORMAT, "agent": agent, **config}
        return write_text_atomically(self.file(CONFIG_FILE), _to_json(record, indent=2) + "\n")

    def require_within(self, trained_steps: int, steps: int) -> None:
        """Refuse to resume a run that has already trained more than the ``steps`` asked for now:
        no agent could match the request, and the report would not match the agent."""
        if trained_steps > steps:
            raise RunDirectoryError(
                f"{self.path} has already trained {trained_steps:,} steps, more than the {steps:,} "
                f"asked for; ask for {trained_steps:,} or more to resume it, or use a new directory"
            )

    # --- checkpoints and evaluations ---------------------------------------------------------------

    def save_checkpoint(self, state: Mapping[str, Any], name: str) -> None:
        """``torch.save`` ``state`` (tensors and plain data only) as ``name``, atomically and synced.

        Serialised in memory first, so a failing disk raises an ``OSError`` naming the file (not
        torch's own error) and leaves the previous checkpoint as it was.
        """
        buffer = io.BytesIO()
        torch.save(dict(state), buffer)
        with atomic_write(self.file(name)) as partial, open(partial, "wb") as file:
            file.write(buffer.getbuffer())
            files.sync_file(file)

    def load_checkpoint(self, name: str, device: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The checkpoint ``name`` (see :func:`read_checkpoint`), or ``None`` if there is none yet."""
        path = self.file(name)
        return read_checkpoint(path, device) if path.exists() else None

    def save_evaluations(self, checkpoints: Sequence[Evaluation]) -> Path:
        return save_evaluations(self.file(EVALUATIONS_FILE), checkpoints)

    def progress_log(self, keep_through: int | None, extra_columns: Sequence[str] = ()) -> ProgressLog:
        """The run's :class:`ProgressLog`; ``keep_through`` is the iteration resumed from (the rows
        after it are dropped), ``None`` for a fresh run (every old row is dropped)."""
        return ProgressLog(self.file(PROGRESS_FILE), keep_through, extra_columns, tensorboard_dir=self.path)


def differing_fields(
    saved: Mapping[str, Any],
    config: Mapping[str, Any],
    resumable: Collection[str] = (),
) -> list[str]:
    """Fields (besides ``format``, ``agent`` and the ``resumable`` ones) on which a saved config and
    ``config`` disagree, compared as JSON stores them (a tuple equals its list)."""
    saved = _plain(dict(saved))
    config = _plain(dict(config))
    skipped = {"format", "agent", *resumable}
    names = [name for name in config if name not in skipped]
    names += [name for name in saved if name not in config and name not in skipped]
    missing = object()
    return [name for name in names if saved.get(name, missing) != config.get(name, missing)]


def _plain(value: Any) -> Any:
    return json.loads(_to_json(value))


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, default=_json_value)


def _json_value(value: Any) -> Any:
    """What ``json`` cannot write itself: numpy scalars, and classes or functions by name (SB3's
    ``policy_kwargs`` may hold an activation class); anything else is refused."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, type) or inspect.isroutine(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    raise ConfigError(
        f"{value!r} cannot be stored in {CONFIG_FILE}: knobs and settings must be plain values "
        "(numbers, strings, None, lists, tuples, dicts)"
    )


# --- reading run directories (no lock needed: every file is replaced atomically) ----------------


def run_file(run_dir: str | os.PathLike, name: str, expected: str) -> Path:
    """The path of ``name`` in ``run_dir``; :class:`RunNotFoundError` if either is missing."""
    if not Path(run_dir).is_dir():
        raise RunNotFoundError(f"no run directory at {run_dir}")
    path = Path(run_dir) / name
    if not path.exists():
        raise RunNotFoundError(f"{run_dir} holds no {name}: is it {expected}?")
    return path


def read_run_file(path: Path, read: Callable[[Path], Any]) -> Any:
    """``read(path)``, any failure to parse the file reported as a corrupt run file, in one line."""
    try:
        return read(path)
    except RunDirectoryError:
        raise
    except Exception as error:  # json, torch and the record classes each raise their own kinds
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RunDirectoryError(
            f"cannot read {path}: it is corrupt or not written by gaming_gym ({shortened(reason, 120)})"
        ) from error


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's ``config.json``, checked before anything acts on it.

    A run directory may come from anyone: it must name an agent (which agents exist is the agents'
    table's business: :func:`gaming_gym.agents.read_run_config` checks it) and its env id must be a
    registered gameable env (a ``module:`` id would make Gymnasium import that
    module).
    """
    path = run_file(run_dir, CONFIG_FILE, "a run directory")
    saved = _read_config_file(path)
    require_registered(saved.get("env_id"), path)
    return saved


def _read_config_file(path: Path) -> dict[str, Any]:
    saved = read_run_file(path, lambda p: json.loads(p.read_text()))
    if not isinstance(saved, dict) or not isinstance(saved.get("agent"), str):
        raise RunDirectoryError(f"{path} names no agent: it is not a gaming_gym run's {CONFIG_FILE}")
    if saved.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise RunDirectoryError(
            f"{path} is of format {saved['format']!r}; this gaming_gym reads {RUN_FORMAT!r}"
        )
    return saved


def read_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint's contents, loaded with ``weights_only=True`` (tensors and plain data: nothing
    is unpickled); anything unreadable is a :class:`RunDirectoryError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise RunNotFoundError(f"no checkpoint at {path}")
    state = read_run_file(path, lambda p: torch.load(p, map_location=device, weights_only=True))
    if not isinstance(state, dict):
        raise RunDirectoryError(f"cannot read {path}: it is not a gaming_gym checkpoint")
    return state


def read_evaluations(run_dir: str | os.PathLike) -> list[Evaluation]:
    """The evaluation records of a run directory (:data:`EVALUATIONS_FILE`)."""
    return read_run_file(run_file(run_dir, EVALUATIONS_FILE, "a finished run directory"), load_evaluations)


def require_registered(env_id: Any, path: Path) -> None:
    """Refuse an env id from a run file unless it is a registered gameable env."""
    from gaming_gym.registry import gameable_env_ids

    if env_id not in gameable_env_ids():
        raise RunDirectoryError(
            f"{path} is for env {env_id!r}, which is not a registered gameable env; use --import to "
            f"register custom envs (ids with a module: prefix are refused: they would import code)"
        )
