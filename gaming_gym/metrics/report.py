"""The Goodhart report: every measure of the table, with intervals, from evaluation records.

:func:`goodhart_report` is the one entry point, for one run or several (training seeds evaluated
at the same steps). Several runs' normalised curves are averaged, each run weighing the same, and
every measure is taken on that mean curve, so the numbers are those of the curve the report
plots. Intervals: a percentile bootstrap over one run's episodes, Student t over several runs
(:mod:`~gaming_gym.metrics.intervals`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gaming_gym.evaluation import EpisodeReturns
from gaming_gym.files import write_text_atomically
from gaming_gym.metrics.curves import (
    GoodhartWarning,
    anchors_of,
    below_random,
    below_random_text,
    curves_of,
    describe_env,
    raw_means,
    reference_summary,
)
from gaming_gym.metrics.gao import gao_origin_index
from gaming_gym.metrics.intervals import (
    PERCENTILE_BOOTSTRAP,
    STUDENT_T_OVER_RUNS,
    Interval,
    as_interval,
    bootstrap_bounds,
    student_t_bounds,
)
from gaming_gym.metrics.records import Evaluation, checked_runs
from gaming_gym.metrics.stopping import check_patience
from gaming_gym.metrics.table import MEASURE_NAMES, MEASURES, Measure

REPORT_FORMAT = "gaming_gym.GoodhartReport/2"
"""Written into every saved report, so an old file is recognised rather than misread."""
OLD_REPORT_FORMAT = "gaming_gym.GoodhartReport/1"
"""Reports written before the table of measures: read, and converted."""

FEW_EPISODES = 8
"""Below this many evaluation episodes at a checkpoint, one run's summary notes that its
bootstrap intervals cover less than their level."""

CURVE_MEASURES = {
    "proxy": lambda proxy, true: proxy,
    "true": lambda proxy, true: true,
    "gap": lambda proxy, true: proxy - true,
}
"""The normalised curves, resampled for their bands like the measures."""


@dataclass
class GoodhartReport:
    """The Goodhart-gap measures of one training run (or several seeds), with intervals.

    Curves (``proxy``, ``true``, ``gap`` and their ``*_ci``) hold one entry per checkpoint in
    ``steps``; every interval is a ``(low, high)`` pair at ``confidence``, made by
    ``interval_method``, or ``None`` where there is none. ``kl`` (mean over runs, per checkpoint),
    ``d = sqrt(kl)`` and ``holdout_true`` (the held-out check's normalised true curve, mean over
    runs) are ``None`` where the trainer did not record them; ``gao_origin_step`` is the
    checkpoint Gao et al.'s gain is measured from.

    ``measures`` holds the value of every row of :data:`~gaming_gym.metrics.table.MEASURES` and
    ``intervals`` the interval of each resampled one; both read as attributes too
    (``report.final_gap``, ``report.final_gap_ci``). ``references`` holds each reference's mean
    raw and normalised returns; ``min_episodes`` the fewest evaluation episodes of any
    checkpoint; ``intended_below_random`` the axes on which the intended reference scores below
    random (the normalised value then rises as the return falls).
    """

    env_id: str
    knobs: dict[str, Any]
    steps: list[int]
    proxy: list[float]
    true: list[float]
    gap: list[float]
    proxy_ci: list[Interval | None]
    true_ci: list[Interval | None]
    gap_ci: list[Interval | None]
    measures: dict[str, Any] = field(default_factory=dict)
    intervals: dict[str, Interval | None] = field(default_factory=dict)
    references: dict[str, dict[str, float]] = field(default_factory=dict)
    n_runs: int = 1
    confidence: float = 0.95
    n_bootstrap: int = 1000
    bootstrap_seed: int = 0
    onset_min_drop: float = 0.1
    early_stop_patience: int = 2
    interval_method: str = PERCENTILE_BOOTSTRAP
    kl: list[float] | None = None
    d: list[float] | None = None
    holdout_true: list[float] | None = None
    gao_origin_step: int | None = None
    min_episodes: int | None = None
    intended_below_random: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        """A measure of the table by its name (``report.onset_step``), its interval by the name
        and ``_ci`` (``report.final_gap_ci``)."""
        if name not in ("measures", "intervals"):
            if name in MEASURE_NAMES:
                return self.measures.get(name)
            if name.endswith("_ci") and name[:-3] in MEASURE_NAMES:
                return self.intervals.get(name[:-3])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # --- files ------------------------------------------------------------------------------------

    def to_json(self) -> str:
        """The report as a JSON object (strict JSON: no NaN), tagged with :data:`REPORT_FORMAT`."""
        data = dataclasses.asdict(self)
        data["measures"] = {
            row.name: {
                "value": row.encode(self.measures.get(row.name)),
                "interval": self.intervals.get(row.name),
            }
            for row in MEASURES
        }
        del data["intervals"]
        return json.dumps({"format": REPORT_FORMAT, **data}, indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> GoodhartReport:
        """Read a report written by :meth:`to_json` (or by an older version, converted)."""
        data = json.loads(text)
        found = data.pop("format", None)
        if found == OLD_REPORT_FORMAT:
            data = _from_first_format(data)
        elif found != REPORT_FORMAT:
            raise ValueError(f"Not a Goodhart report: format is {found!r}, expected {REPORT_FORMAT!r}")
        for name in ("proxy_ci", "true_ci", "gap_ci"):
            data[name] = [None if pair is None else tuple(pair) for pair in data[name]]
        stored = data.pop("measures")
        data["measures"], data["intervals"] = {}, {}
        for row in MEASURES:
            entry = stored.get(row.name, {"value": None, "interval": None})
            value = entry["value"]
            data["measures"][row.name] = row.decode(value) if value is not None and row.decode else value
            data["intervals"][row.name] = None if entry["interval"] is None else tuple(entry["interval"])
        return cls(**data)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the report as JSON atomically (a reader never sees half a file); return the path."""
        return write_text_atomically(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> GoodhartReport:
        return cls.from_json(Path(path).read_text())

    # --- text ---------------------------------------------------------------------------------------

    @property
    def interval_label(self) -> str:
        """The intervals in a few words, for plot titles: "95% bootstrap CI", "95% t CI over seeds"."""
        if self.interval_method == STUDENT_T_OVER_RUNS:
            return f"{self.confidence:.0%} t CI over seeds"
        return f"{self.confidence:.0%} bootstrap CI"

    def summary(self) -> str:
        """A one-table text summary of every measure, after what the reader must know first (how
        the intervals were made, and any warning)."""
        runs = f"{self.n_runs} run{'s' if self.n_runs != 1 else ''}"
        lines = [
            f"Goodhart report: {describe_env(self.env_id, self.knobs)}",
            f"{len(self.steps)} checkpoints (steps {self.steps[0]}..{self.steps[-1]}), {runs}; "
            f"normalised: 0 = random, 1 = intended",
            *self._note_lines(),
            f"{'measure':<30}{'value':>10}   {self.confidence:.0%} CI",
        ]
        trends = len(self.steps) >= 2
        for row in MEASURES:
            value = self.measures.get(row.name)
            if value is None and row.when_none is not None and row.when_none(self):
                lines.append(row.when_none(self))
                continue
            if row.lines is not None:
                lines += [] if value is None else row.lines(value, self)
                continue
            if value is None and row.hide_none:
                continue
            shown = "n/a" if row.trend and not trends else row.format(value)
            interval = self.intervals.get(row.name)
            bounds = "" if interval is None else "[{}, {}]".format(*(_bound_text(row, b) for b in interval))
            lines.append(f"{row.label:<30}{shown:>10}   {bounds}".rstrip())
        if not trends:
            lines.append("(the trend measures need at least two checkpoints)")
        return "\n".join(lines)

    def _note_lines(self) -> list[str]:
        """How the intervals were made, the warnings, and the true drop's bias."""
        if self.interval_method == STUDENT_T_OVER_RUNS:
            method = (
                f"Student t over {self.n_runs} runs ({self.n_runs - 1} degrees of freedom on the "
                f"run-to-run spread, plus a bootstrap of the references)"
            )
        elif self.n_runs > 1:
            method = (
                "percentile bootstrap over runs and episodes, written by an older version: at few "
                "runs its intervals cover less than their level"
            )
        else:
            method = (
                f"percentile bootstrap over episodes and references ({self.n_bootstrap} replicates): "
                f"this run's evaluation noise, not seed-to-seed variation"
            )
        lines = [f"intervals: {self.confidence:.0%} {method}"]
        if self.n_runs == 1 and self.min_episodes is not None and 1 < self.min_episodes < FEW_EPISODES:
            lines.append(
                f"warning: {self.min_episodes} episodes at some checkpoint: a bootstrap over so few covers "
                f"less than its level (95% intervals in simulation: 65% at 2 episodes, 83% at 4)"
            )
        if self.min_episodes == 1:
            consequence = (
                "their intervals and the trend measures' are left out"
                if self.n_runs == 1
                else "the intervals over runs hold, but there is no cross-fitted true drop"
            )
            consequence += ", and the onset takes their evaluations as exact (their noise is unknown)"
            lines.append(f"warning: some checkpoints were evaluated on one episode; {consequence}")
        for axis in self.intended_below_random:
            means = (self.references["intended"][axis], self.references["random"][axis])
            lines.append(f"warning: {below_random_text(axis, *means)}")
        if self.measures.get("true_drop") is not None:
            lines.append(
                "true drop: a maximum over noisy checkpoints, so biased upward; the cross-fitted drop "
                "(peak picked on even episodes, measured on odd ones, and back) is biased downward"
            )
        return [wrapped for line in lines for wrapped in textwrap.wrap(line, 100, subsequent_indent="  ")]


def goodhart_report(
    runs: Sequence[Sequence[Evaluation]] | Sequence[Evaluation],
    references: Mapping[str, EpisodeReturns],
    env_id: str = "",
    knobs: Mapping[str, Any] | None = None,
    *,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
    onset_min_drop: float = 0.1,
    early_stop_patience: int = 2,
) -> GoodhartReport:
    """The Goodhart report of one run (a sequence of evaluations) or several (a sequence of runs
    evaluated at the same steps, e.g. training seeds).

    Args:
        runs: the agent's evaluations at increasing training steps, or several runs' evaluations.
        references: per-episode returns of at least "random" and "intended" (and optionally
            "exploit"), on the same env and knobs, e.g. from ``reference_returns(env_id, knobs)``.
        env_id, knobs: what was trained on, recorded in the report and plot titles.
        confidence: level of the intervals, in (0, 1).
        n_bootstrap: bootstrap replicates.
        seed: seed of the bootstrap's numpy Generator.
        onset_min_drop: how far (normalised) t must fall after the onset to count; also the fall
            in the held-out check that early stopping judges.
        early_stop_patience: how many checkpoints in a row must have fallen that far before
            early stopping fires (see :func:`~gaming_gym.metrics.stopping.early_stop`).

    The dynamics (``kl``, ``d``, Gao fits, early stopping) are filled when every evaluation
    records ``kl`` (and ``holdout_true``, for early stopping), and left ``None`` when none does;
    a mix is an error. Warns (:class:`GoodhartWarning`, and says so in the summary) when a
    checkpoint was evaluated on one episode, and when the intended reference scores below random.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive int, got {n_bootstrap!r}")
    check_patience(early_stop_patience)
    if not len(runs) or isinstance(runs[0], Evaluation):  # one run (an empty list: one run of none)
        runs = [runs]
    runs = checked_runs(runs)
    anchors = anchors_of(references)
    curves = curves_of(runs, anchors, onset_min_drop, early_stop_patience)
    trends = len(curves.steps) >= 2
    resampled = [row for row in MEASURES if row.resampled and (trends or not row.trend)]
    rng = np.random.default_rng(seed)
    if len(runs) == 1:
        method = PERCENTILE_BOOTSTRAP
        functions = {**CURVE_MEASURES, **{row.name: _bound(row, curves) for row in resampled}}
        bounds = bootstrap_bounds(runs[0], anchors, functions, confidence, n_bootstrap, rng)
        _leave_out_single_episodes(bounds, runs[0], resampled)
    else:
        method = STUDENT_T_OVER_RUNS
        over_runs = [row for row in resampled if not row.index]
        functions = {**CURVE_MEASURES, **{row.name: _bound(row, curves) for row in over_runs}}
        bounds = student_t_bounds(*raw_means(runs), anchors, functions, confidence, n_bootstrap, rng)
    measures, intervals = {}, {}
    for row in MEASURES:
        measures[row.name], intervals[row.name] = _value_and_interval(row, curves, bounds, trends)
    kl = curves.kl
    holdout = curves.holdout_per_run
    _warn(runs, anchors, below_random(anchors))
    return GoodhartReport(
        env_id=env_id,
        knobs=dict(knobs or {}),
        steps=curves.steps,
        proxy=curves.proxy.tolist(),
        true=curves.true.tolist(),
        gap=curves.gap.tolist(),
        proxy_ci=[as_interval(pair) for pair in bounds["proxy"]],
        true_ci=[as_interval(pair) for pair in bounds["true"]],
        gap_ci=[as_interval(pair) for pair in bounds["gap"]],
        measures=measures,
        intervals=intervals,
        references=reference_summary(references, anchors),
        n_runs=len(runs),
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        bootstrap_seed=seed,
        onset_min_drop=onset_min_drop,
        early_stop_patience=early_stop_patience,
        interval_method=method,
        kl=None if kl is None else kl.tolist(),
        d=None if kl is None else curves.d.tolist(),
        holdout_true=None if holdout is None else holdout.mean(0).tolist(),
        gao_origin_step=None if kl is None else curves.steps[gao_origin_index(kl)],
        min_episodes=min(len(c.proxy) for run in runs for c in run),
        intended_below_random=below_random(anchors),
    )


def goodhart_report_over_seeds(
    runs: Sequence[Sequence[Evaluation]], *args: Any, **kwargs: Any
) -> GoodhartReport:
    """The report over several runs: :func:`goodhart_report`, which now takes one run or several."""
    warnings.warn(
        "goodhart_report_over_seeds is goodhart_report now (it takes one run or several)",
        DeprecationWarning,
        stacklevel=2,
    )
    return goodhart_report([list(run) for run in runs], *args, **kwargs)


def _value_and_interval(row: Measure, curves, bounds, trends: bool) -> tuple[Any, Interval | None]:
    """A measure's value (None where undefined: too few checkpoints for a trend, a constant curve
    for Kendall tau) and its interval (resampled measures only)."""
    if row.trend and not trends:
        return None, None
    if not row.resampled:
        return row.compute(curves), None
    value = float(_bound(row, curves)(curves.proxy[None], curves.true[None])[0])
    if math.isnan(value):
        return None, None
    pair = bounds.get(row.name, np.array([np.nan, np.nan]))
    if row.index:
        return curves.steps[int(value)], _step_interval(pair, curves.steps)
    if row.clip is not None:
        pair = np.clip(pair, *row.clip)
    return value, as_interval(pair)


def _bound_text(row: Measure, bound: float) -> str:
    return row.format(int(bound)) if row.index else f"{bound:.3f}"


def _bound(row: Measure, curves) -> Any:
    """A resampled measure as a function of normalised (proxy, true) alone."""
    if row.reads_curves:
        return lambda proxy, true: row.compute(proxy, true, curves)
    return row.compute


def _step_interval(pair: np.ndarray, steps: list[int]) -> Interval | None:
    """An interval of checkpoint indices as the steps of the checkpoints at its ends, widened
    outward to whole checkpoints."""
    interval = as_interval(pair)
    if interval is None:
        return None
    low, high = max(0, math.floor(interval[0])), min(len(steps) - 1, math.ceil(interval[1]))
    return (steps[low], steps[high])


def _leave_out_single_episodes(bounds: dict[str, np.ndarray], run: list[Evaluation], rows) -> None:
    """One run's intervals that depend on a checkpoint of one episode are left out: resampling
    one episode shows no noise, not a precise value."""
    single = np.array([len(checkpoint.proxy) == 1 for checkpoint in run])
    for name in CURVE_MEASURES:
        bounds[name][single] = np.nan
    for row in rows:
        if single.any() if row.depends_on_all else single[-1]:
            bounds[row.name][:] = np.nan


def _warn(runs: list[list[Evaluation]], anchors, axes: list[str]) -> None:
    """Warn about one-episode evaluations and reversed normalisation scales (see the summary)."""
    single = sorted({c.step for run in runs for c in run if len(c.proxy) == 1})
    if single:
        consequence = (
            "the bootstrap over episodes sees no noise there, so the intervals that depend on them are "
            "left out (None)"
            if len(runs) == 1
            else "the intervals, over runs, still hold, but there is no cross-fitted true drop"
        )
        some = " in some runs" if len(runs) > 1 else ""
        warnings.warn(
            f"Goodhart report: the evaluations at steps {single} have one episode{some}; {consequence}. "
            f"Evaluate on several episodes (e.g. 16).",
            GoodhartWarning,
            stacklevel=3,  # _warn, goodhart_report, the caller
        )
    random_proxy, random_true, intended_proxy, intended_true = anchors.means
    for axis in axes:
        intended, random = (intended_proxy, random_proxy) if axis == "proxy" else (intended_true, random_true)
        warnings.warn(
            f"Goodhart report: {below_random_text(axis, intended, random)}", GoodhartWarning, stacklevel=3
        )


def _from_first_format(data: dict[str, Any]) -> dict[str, Any]:
    """A report of the first format (every measure a field of its own) in today's shape."""
    measures = {}
    for row in MEASURES:
        if row.name in data or f"{row.name}_ci" in data:
            measures[row.name] = {
                "value": data.pop(row.name, None),
                "interval": data.pop(f"{row.name}_ci", None),
            }
    if "onset_step" not in measures:
        measures["onset_step"] = {"value": None, "interval": None}
    if "intended_below_random" not in data:  # older still: from the references they list
        means = data.get("references", {})
        data["intended_below_random"] = [
            axis
            for axis in ("proxy", "true")
            if "random" in means and "intended" in means and means["intended"][axis] < means["random"][axis]
        ]
    known = {f.name for f in dataclasses.fields(GoodhartReport)}
    return {**{name: value for name, value in data.items() if name in known}, "measures": measures}


__all__ = [
    "REPORT_FORMAT",
    "GoodhartReport",
    "GoodhartWarning",
    "goodhart_report",
    "goodhart_report_over_seeds",
]
