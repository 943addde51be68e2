"""What the metric is computed from: evaluation records, one per evaluation of a training run.

An :class:`Evaluation` holds the per-episode proxy and true returns of the agent at one training
step (and, where the trainer measured them, its KL from the initial policy and the true returns
of a held-out check). A run directory keeps them in ``evaluations.json``
(:func:`save_evaluations`), and every report is derived from them, so an old run gets today's
definitions of every measure.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gaming_gym.evaluation import EpisodeReturns
from gaming_gym.files import write_text_atomically


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Per-episode returns of the agent evaluated at one training step: an evaluation record.

    (First called ``Checkpoint``; that name still imports, with a DeprecationWarning, but a
    checkpoint is the training state a run directory's ``checkpoint.pt`` holds, not this record.)

    ``proxy`` and ``true`` are 1-D arrays with one entry per evaluation episode, paired by episode.
    Optional, where the trainer measured them:

    * ``kl``: mean KL divergence (nats per state) of the policy at this step from the initial
      policy, over the evaluation states; ``sqrt(kl)`` is Gao et al.'s optimisation distance d.
    * ``holdout_true``: per-episode true returns of a separate, held-out check (other seeds than
      the evaluation episodes), the signal early stopping may look at without peeking at ``true``.
    * ``deploy_proxy`` and ``deploy_true``: per-episode returns of the same policy on a second,
      deployment setting of the env's knobs (``PPOConfig.deploy_knobs``), for the shift gap
      (:mod:`gaming_gym.metrics.shift`).
    """

    step: int
    proxy: np.ndarray
    true: np.ndarray
    kl: float | None = None
    holdout_true: np.ndarray | None = None
    deploy_proxy: np.ndarray | None = None
    deploy_true: np.ndarray | None = None

    def __post_init__(self):
        if isinstance(self.step, bool) or not isinstance(self.step, (int, np.integer)) or self.step < 0:
            raise ValueError(f"Evaluation step must be an int >= 0 (training steps), got {self.step!r}")
        object.__setattr__(self, "step", int(self.step))
        proxy = episode_array(self.proxy, f"Evaluation at step {self.step}: proxy")
        true = episode_array(self.true, f"Evaluation at step {self.step}: true")
        if len(proxy) != len(true):
            raise ValueError(
                f"Evaluation at step {self.step}: proxy has {len(proxy)} episodes but true has "
                f"{len(true)}; they must be paired, one entry per episode each"
            )
        object.__setattr__(self, "proxy", proxy)
        object.__setattr__(self, "true", true)
        if self.kl is not None:
            kl = float(self.kl)
            if not math.isfinite(kl) or kl < 0:
                raise ValueError(
                    f"Evaluation at step {self.step}: kl must be a finite number >= 0, got {self.kl!r}"
                )
            object.__setattr__(self, "kl", kl)
        if self.holdout_true is not None:
            holdout = episode_array(self.holdout_true, f"Evaluation at step {self.step}: holdout_true")
            object.__setattr__(self, "holdout_true", holdout)
        if (self.deploy_proxy is None) != (self.deploy_true is None):
            raise ValueError(f"Evaluation at step {self.step}: deploy_proxy and deploy_true go together")
        if self.deploy_true is not None:
            for name in ("deploy_proxy", "deploy_true"):
                values = episode_array(getattr(self, name), f"Evaluation at step {self.step}: {name}")
                object.__setattr__(self, name, values)
            if len(self.deploy_proxy) != len(self.deploy_true):
                raise ValueError(f"Evaluation at step {self.step}: deploy_proxy and deploy_true must pair up")

    @classmethod
    def from_returns(
        cls,
        step: int,
        returns: EpisodeReturns,
        kl: float | None = None,
        holdout: EpisodeReturns | None = None,
    ) -> Evaluation:
        """The record of an :func:`~gaming_gym.evaluation.evaluate` result (and, optionally,
        the KL from the initial policy and a held-out check's returns)."""
        return cls(step, returns.proxy, returns.true, kl, None if holdout is None else holdout.true)

    def to_record(self) -> dict[str, Any]:
        """Plain JSON-able values; optional fields appear only where measured."""
        record: dict[str, Any] = {
            "step": self.step,
            "proxy": [float(x) for x in self.proxy],
            "true": [float(x) for x in self.true],
        }
        if self.kl is not None:
            record["kl"] = self.kl
        if self.holdout_true is not None:
            record["holdout_true"] = [float(x) for x in self.holdout_true]
        if self.deploy_true is not None:
            record["deploy_proxy"] = [float(x) for x in self.deploy_proxy]
            record["deploy_true"] = [float(x) for x in self.deploy_true]
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_record` (records without the optional fields load too)."""
        optional = {
            name: None if record.get(name) is None else np.asarray(record[name])
            for name in ("holdout_true", "deploy_proxy", "deploy_true")
        }
        return cls(
            record["step"],
            np.asarray(record["proxy"]),
            np.asarray(record["true"]),
            record.get("kl"),
            **optional,
        )


def save_evaluations(path: str | os.PathLike, evaluations: Sequence[Evaluation]) -> Path:
    """Write evaluation records as JSON (atomically): ``[{"step", "proxy", "true", ...}, ...]``."""
    return write_text_atomically(path, json.dumps([e.to_record() for e in evaluations]) + "\n")


def load_evaluations(path: str | os.PathLike) -> list[Evaluation]:
    """Read evaluation records written by :func:`save_evaluations`."""
    return [Evaluation.from_record(record) for record in json.loads(Path(path).read_text())]


save_checkpoints = save_evaluations  # the names of an earlier version
load_checkpoints = load_evaluations


def episode_array(values: Any, what: str) -> np.ndarray:
    """``values`` as a non-empty, finite 1-D float64 array, or a ValueError saying what is wrong."""
    return finite_array(values, what, entries="returns", position="episode")


def curve_array(values: Any, what: str) -> np.ndarray:
    """A curve over checkpoints (one value each) as a non-empty, finite 1-D float64 array."""
    return finite_array(values, what, entries="values", position="checkpoint")


def finite_array(values: Any, what: str, entries: str, position: str) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(
            f"{what} must be a non-empty 1-D array of {position} {entries}, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array)).tolist()
        raise ValueError(f"{what} holds non-finite {entries} (NaN or inf) at {position}s {bad}")
    return array


def checked_runs(runs: Sequence[Sequence[Evaluation]]) -> list[list[Evaluation]]:
    """Runs as lists of evaluations with the same, strictly increasing steps."""
    if len(runs) == 0:
        raise ValueError("Give at least one run of checkpoints")
    runs = [list(run) for run in runs]
    for index, run in enumerate(runs):
        if len(run) == 0:
            raise ValueError(f"run {index} has no checkpoints; the gap needs at least one")
        if not all(isinstance(checkpoint, Evaluation) for checkpoint in run):
            raise TypeError(f"run {index}: evaluations must be gaming_gym.metrics.Evaluation objects")
        steps = [checkpoint.step for checkpoint in run]
        if any(later <= earlier for earlier, later in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"run {index}: checkpoint steps must be strictly increasing, got {steps}")
    first_steps = [checkpoint.step for checkpoint in runs[0]]
    for index, run in enumerate(runs[1:], start=1):
        steps = [checkpoint.step for checkpoint in run]
        if steps != first_steps:
            raise ValueError(
                f"run {index} has checkpoints at steps {steps} but run 0 at {first_steps}; runs "
                f"combined over seeds must be evaluated at the same steps"
            )
    return runs


def recorded_everywhere(runs: Sequence[Sequence[Evaluation]], name: str) -> bool:
    """Whether every evaluation records the optional field ``name``; False when none does.

    A mix is an error: a curve with holes would be fitted and stopped on silently.
    """
    missing = [(index, c.step) for index, run in enumerate(runs) for c in run if getattr(c, name) is None]
    if not missing:
        return True
    if len(missing) == sum(len(run) for run in runs):
        return False
    raise ValueError(
        f"{name} is recorded at some checkpoints but missing at (run, step) {missing}; record it at "
        f"every evaluation or at none"
    )


def renamed_checkpoint(stacklevel: int) -> type[Evaluation]:
    """:class:`Evaluation`, after warning that its old name ``Checkpoint`` is deprecated (the
    warning points ``stacklevel`` frames up: at the code that asked for the old name)."""
    warnings.warn(
        "Checkpoint is renamed Evaluation (checkpoint.pt is training state; this record is an "
        "evaluation): import gaming_gym.metrics.Evaluation instead",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return Evaluation
