"""Distribution shift: the same policy on its training setting and on a deployment setting.

A shift-family env (CoinRun) rewards the true objective and goes wrong only off the training
distribution. A run that sets ``PPOConfig.deploy_knobs`` plays every evaluation on both settings
(:class:`~gaming_gym.metrics.records.Evaluation`'s ``deploy_true``). Both true curves are
normalised by the scripted references **measured in the deployment setting** (0 the random
policy, 1 the intended one there), so they share one scale, and the **shift gap** is the
training curve's final value minus the deployment curve's: how much of what the policy does in
training it keeps in deployment, each run's from its last evaluation (the curves are drawn over
the steps every run reached). Its interval: over several runs, a Student-t interval over the
runs' gaps; for one run, a percentile bootstrap over its final evaluation's episodes (each
setting's resampled apart).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gaming_gym.evaluation import EpisodeReturns
from gaming_gym.metrics.curves import normalise
from gaming_gym.metrics.records import Evaluation
from gaming_gym.metrics.seeds import mean_and_interval

SHIFT_FILE = "shift.json"


@dataclass(frozen=True)
class ShiftReport:
    """Train and deployment true curves (mean over runs, normalised in the deployment setting) and
    the final shift gap with its interval."""

    steps: list[int]
    train_true: list[float]
    deploy_true: list[float]
    gap: float
    interval: tuple[float, float] | None
    n_runs: int
    deploy_knobs: dict
    confidence: float = 0.95

    def summary(self) -> str:
        bounds = "" if self.interval is None else f"  [{self.interval[0]:.3f}, {self.interval[1]:.3f}]"
        how = (
            f"Student t over {self.n_runs} runs"
            if self.n_runs > 1
            else "percentile bootstrap over the final evaluation's episodes"
        )
        return "\n".join(
            [
                f"distribution shift to {self.deploy_knobs} (t normalised by the references there):",
                f"  true t on the training setting (final)      {self.train_true[-1]:7.3f}",
                f"  true t on the deployment setting (final)    {self.deploy_true[-1]:7.3f}",
                f"  shift gap (training - deployment)           {self.gap:7.3f}{bounds}",
                f"  ({self.confidence:.0%} interval: {how})",
            ]
        )

    def save(self, path: str | Path) -> Path:
        from gaming_gym.files import write_text_atomically

        return write_text_atomically(path, json.dumps(asdict(self), indent=1) + "\n")


def shift_report(
    runs: Sequence[Sequence[Evaluation]],
    references: Mapping[str, EpisodeReturns],
    deploy_knobs: Mapping,
    confidence: float = 0.95,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> ShiftReport | None:
    """The :class:`ShiftReport` of runs whose evaluations played the deployment setting too
    (None where they did not); ``references`` are the scripted policies' returns measured in the
    deployment setting."""
    if not runs or not all(e.deploy_true is not None for run in runs for e in run):
        return None
    random, intended = float(np.mean(references["random"].true)), float(np.mean(references["intended"].true))

    def scaled(values) -> np.ndarray:
        return normalise(np.asarray(values, dtype=float), random, intended)

    gaps = np.array([scaled(run[-1].true).mean() - scaled(run[-1].deploy_true).mean() for run in runs])
    shortest = min(len(run) for run in runs)  # runs an early stop ended sooner: the common steps
    train = np.array([[scaled(e.true).mean() for e in run[:shortest]] for run in runs])
    deploy = np.array([[scaled(e.deploy_true).mean() for e in run[:shortest]] for run in runs])
    if len(runs) > 1:
        interval = mean_and_interval(gaps, confidence).interval
    else:
        last = runs[0][-1]
        rng = np.random.default_rng(seed)
        a, b = scaled(last.true), scaled(last.deploy_true)
        replicates = a[rng.integers(0, len(a), (n_bootstrap, len(a)))].mean(1) - b[
            rng.integers(0, len(b), (n_bootstrap, len(b)))
        ].mean(1)
        tail = 100 * (1 - confidence) / 2
        interval = tuple(float(x) for x in np.percentile(replicates, [tail, 100 - tail]))
    return ShiftReport(
        steps=[e.step for e in runs[0][:shortest]],
        train_true=train.mean(0).tolist(),
        deploy_true=deploy.mean(0).tolist(),
        gap=float(gaps.mean()),
        interval=None if interval is None else (float(interval[0]), float(interval[1])),
        n_runs=len(runs),
        deploy_knobs=dict(deploy_knobs),
        confidence=confidence,
    )
