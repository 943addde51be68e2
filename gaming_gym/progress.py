"""A run's ``progress.csv``: one row per training iteration, written so that a kill loses at most
the row being written, cut back to the checkpoint on resume (and TensorBoard scalars where
``tensorboard`` is installed). :meth:`gaming_gym.runs.RunDirectory.progress_log` opens it."""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gaming_gym import files
from gaming_gym.errors import RunDirectoryError, RunDirectoryWarning
from gaming_gym.files import atomic_write, naming, open_no_follow, refuse_link


class ProgressLog:
    """One CSV row per training iteration, and TensorBoard scalars when ``tensorboard`` is installed.

    Rows are appended, flushed and fsynced one at a time, so a kill loses at most the row being
    written. Resuming (``keep_through`` = the checkpoint's iteration) rewrites the file atomically
    with the rows up to that iteration; a damaged last line is dropped with a warning naming the
    file. A fresh run (``keep_through=None``) starts the file again.

    The header is the columns of the first row of iteration 1 or later plus ``extra_columns`` it
    lacks (columns only some rows have, e.g. evaluations'); rows of iteration 0 (an evaluation
    before training) wait for it. With ``path=None`` nothing is written.
    """

    def __init__(
        self,
        path: Path | None,
        keep_through: int | None = None,
        extra_columns: Sequence[str] = (),
        tensorboard_dir: Path | None = None,
    ):
        self.path = path
        self.extra_columns = tuple(extra_columns)
        self.fields: list[str] | None = None
        self.held: list[dict[str, Any]] = []
        self.file = self.writer = self.tensorboard = None
        if path is None:
            return
        refuse_link(path)  # neither read through nor removed: a planted link is refused
        if keep_through is None:
            path.unlink(missing_ok=True)
        elif path.exists():
            self._cut_back(keep_through)
        if tensorboard_dir is not None:
            self.tensorboard = _summary_writer(tensorboard_dir)

    def _cut_back(self, iteration: int) -> None:
        """Keep the rows up to ``iteration`` (atomically), then append after them."""
        fields, rows = _read_progress(self.path)
        if fields is None:
            self.path.unlink()
            return
        kept = [row for row in rows if int(row["iteration"]) <= iteration]
        with atomic_write(self.path) as partial:
            with open(partial, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=fields)
                writer.writeheader()
                writer.writerows(kept)
                files.sync_file(file)
        self.fields = fields
        self._open()

    def _open(self) -> None:
        self.file = open_no_follow(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.fields, extrasaction="ignore")

    def write(self, row: Mapping[str, Any]) -> None:
        if self.tensorboard is not None:
            for tag, value in row.items():
                if "/" in tag and not math.isnan(value):
                    self.tensorboard.add_scalar(tag, value, row["global_step"])
        if self.path is None:
            return
        if self.fields is None and row["iteration"] == 0:
            self.held.append(dict(row))
            return
        with naming(self.path):  # a full disk names the file; a row cut short is dropped on resume
            if self.fields is None:
                self.fields = list(row) + [name for name in self.extra_columns if name not in row]
                self._open()
                self.writer.writeheader()
                self.writer.writerows(self.held)
            self.writer.writerow(row)
            files.sync_file(self.file)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


def _read_progress(path: Path) -> tuple[list[str] | None, list[dict[str, str]]]:
    """The header and rows of a progress log. A damaged last line (cut short by a kill, or by a
    full disk) is dropped with a :class:`RunDirectoryWarning`; damage anywhere else is an error."""
    lines = path.read_text().splitlines(keepends=True)
    fields, rows = None, []
    for number, line in enumerate(lines, start=1):
        cells = _cells(line) if line.endswith("\n") else None
        if fields is None and cells:
            fields = cells
            continue
        row = dict(zip(fields or (), cells or (), strict=False))
        if cells is not None and fields is not None and len(cells) == len(fields):
            if row.get("iteration", "").isdigit():
                rows.append(row)
                continue
        if number < len(lines):
            raise RunDirectoryError(
                f"{path}: line {number} is damaged; remove that line (or the file) to resume the run"
            )
        warnings.warn(
            f"{path}: dropped its damaged last line (the run stopped while writing it)",
            RunDirectoryWarning,
            stacklevel=2,
        )
    return fields, rows


def _cells(line: str) -> list[str] | None:
    try:
        return next(csv.reader(io.StringIO(line)), [])
    except csv.Error:  # a NUL byte, on older Pythons
        return None


def _summary_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))
