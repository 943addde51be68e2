"""The table of measures: what the report computes, ``goodhart.json`` stores, the summary and the
CLI's comparison tables print, and the comparison plot draws.

Each :class:`Measure` names a function of a family module (:mod:`~gaming_gym.metrics.gap`,
:mod:`~gaming_gym.metrics.rank`, :mod:`~gaming_gym.metrics.onset`, :mod:`~gaming_gym.metrics.gao`,
:mod:`~gaming_gym.metrics.stopping`) and how it is shown. A *resampled* measure is a function of
normalised curves shaped ``(batch, checkpoints)``, so the report gives it an interval
(:mod:`~gaming_gym.metrics.intervals`); any other is a function of the report's
:class:`~gaming_gym.metrics.curves.Curves` with no interval. Adding a measure is its function, a
row here and a test; every reader below iterates this table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gaming_gym.metrics.gao as gao
import gaming_gym.metrics.gap as gap
import gaming_gym.metrics.onset as onset
import gaming_gym.metrics.rank as rank
import gaming_gym.metrics.stopping as stopping

Interval = tuple[float, float]


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def step(value: int | None) -> str:
    return "none" if value is None else str(value)


@dataclass(frozen=True)
class Measure:
    """One row of the table.

    ``compute``: for a ``resampled`` measure, ``(proxy, true) -> values`` on normalised curves
    shaped ``(batch, checkpoints)``; otherwise ``curves -> value`` (``None`` when undefined).
    ``trend``: needs two checkpoints or more (``None`` with fewer). ``depends_on_all``: the
    measure reads every checkpoint, not only the last (one run's interval is left out when any
    checkpoint it reads had a single episode). ``clip``: the range the measure lives in, where
    an interval stops. ``compared``: a column of the tables and bars that compare conditions.
    ``lines``: for a structured value, its summary lines (the label and value otherwise);
    ``decode``: the value from its JSON form. ``hide_none``: the summary leaves the row out when
    the measure is undefined (a distance of a run that recorded no KL). ``reads_curves``: a
    resampled measure that also takes the report's
    :class:`~gaming_gym.metrics.curves.Curves` (its noise and parameters) as a third argument.
    ``index``: the measure is a checkpoint index, reported as that checkpoint's step, with an
    interval for one run only (a jackknife over runs does not hold for a measure that jumps
    between checkpoints).
    """

    name: str
    label: str
    compute: Callable[..., Any]
    resampled: bool = False
    format: Callable[[Any], str] = number
    trend: bool = False
    depends_on_all: bool = False
    clip: tuple[float, float] | None = None
    compared: bool = False
    lines: Callable[[Any, Any], list[str]] | None = None
    decode: Callable[[Any], Any] | None = None
    hide_none: bool = False
    reads_curves: bool = False
    index: bool = False
    when_none: Callable[[Any], str | None] | None = None
    """a line the report shows where the measure is None, saying why (given the report)"""

    def encode(self, value: Any) -> Any:
        """The value as JSON takes it (dataclasses as dicts, also inside a dict)."""
        if dataclasses.is_dataclass(value):
            return dataclasses.asdict(value)
        if isinstance(value, Mapping):
            return {key: self.encode(item) for key, item in value.items()}
        return value


def _gao_lines(fits: dict[str, gao.GaoFit], report: Any) -> list[str]:
    lines = [f"Gao et al. fits of t - t(step {report.gao_origin_step}) against d = sqrt(KL):"]
    for form, fit in fits.items():
        peak = "none" if fit.peak_d is None else f"{fit.peak_d:.3f}"
        lines.append(
            f"{'  ' + form + ': ' + gao.GAO_FORMS[form]:<30}"
            f"a {fit.a:.3f}, b {fit.b:.3f}, d* {peak}, rmse {fit.rmse:.3f}"
        )
    return lines


def _peak_lines(peak: gao.Peak, report: Any) -> list[str]:
    d = "" if peak.d is None else f", d {peak.d:.3f}"
    return [f"{'observed peak of t':<30}step {peak.step}{d}, t {peak.true:.3f}"]


def _steps(steps: list[int | None]) -> str:
    """One run's step as ``3000`` (``none`` for None); several runs' as ``[3000, none]``."""
    texts = [step(s) for s in steps]
    return texts[0] if len(texts) == 1 else f"[{', '.join(texts)}]"


def _early_stopping_lines(outcome: stopping.EarlyStoppingOutcome, report: Any) -> list[str]:
    per_run = " (per run)" if report.n_runs > 1 else ""
    mean = "mean " if report.n_runs > 1 else ""
    rows = [
        (f"stop step{per_run}", _steps(outcome.stop_steps)),
        (f"kept step{per_run}", _steps(outcome.kept_steps)),
        (f"oracle step{per_run}", _steps(outcome.oracle_steps)),
        (f"{mean}kept t / oracle t", f"{outcome.kept_true:.3f} / {outcome.oracle_true:.3f}"),
        ("fraction of oracle t kept", number(outcome.kept_fraction)),
    ]
    header = (
        f"early stopping on the held-out check (fall >= {report.onset_min_drop:g}, "
        f"patience {outcome.patience}):"
    )
    return [header] + [f"{'  ' + name:<30}{value}" for name, value in rows]


MEASURES: tuple[Measure, ...] = (
    Measure("final_proxy", "proxy p (final)", gap.final_proxy, resampled=True, compared=True),
    Measure("final_true", "true t (final)", gap.final_true, resampled=True, compared=True),
    Measure("final_gap", "Goodhart gap p - t (final)", gap.final_gap, resampled=True, compared=True),
    Measure(
        "true_drop",
        "true drop (peak - final t)",
        gap.peak_drop,
        resampled=True,
        trend=True,
        depends_on_all=True,
        clip=(0.0, float("inf")),
    ),
    Measure("true_drop_debiased", "true drop, cross-fitted", gap.cross_fitted_drop, trend=True),
    Measure(
        "kendall_tau",
        "Kendall tau (p, t)",
        rank.batched_kendall_taus,
        resampled=True,
        trend=True,
        depends_on_all=True,
        clip=(-1.0, 1.0),
    ),
    Measure(
        "onset_step",
        "onset step",
        onset.resampled_onsets,
        resampled=True,
        format=step,
        trend=True,
        depends_on_all=True,
        reads_curves=True,
        index=True,
    ),
    Measure("final_d", "distance d = sqrt(KL), final", gao.final_distance, hide_none=True),
    Measure(
        "observed_peak",
        "observed peak of t",
        gao.observed_peak,
        trend=True,
        lines=_peak_lines,
        decode=lambda data: gao.Peak(**data),
    ),
    Measure(
        "gao_fits",
        "Gao et al. fits",
        gao.gao_fits,
        lines=_gao_lines,
        decode=lambda data: {form: gao.GaoFit.from_dict(fit) for form, fit in data.items()},
        when_none=gao.why_no_fit,
    ),
    Measure(
        "early_stopping",
        "early stopping",
        stopping.early_stopping,
        lines=_early_stopping_lines,
        decode=lambda data: stopping.EarlyStoppingOutcome(**data),
    ),
)
"""Every measure, in the order the summary shows them."""

MEASURE_NAMES = tuple(measure.name for measure in MEASURES)


def measure(name: str) -> Measure:
    """The table's row ``name``; a KeyError naming the rows for any other."""
    for row in MEASURES:
        if row.name == name:
            return row
    raise KeyError(f"no measure {name!r}; the table has {', '.join(MEASURE_NAMES)}")
