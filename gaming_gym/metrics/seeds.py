"""Across seeds: each seed's Goodhart numbers, how many seeds rose and fell, and intervals over seeds.

A claim about an agent gaming a proxy is a distribution over training seeds. Each seed's run has
its own report (:func:`~gaming_gym.metrics.report.goodhart_report`); :class:`SeedResult` takes
from it the numbers a reader compares across seeds, and :func:`across_seeds` gives each one's
mean with a Student-t interval over the seeds (the onset over the seeds that have one).

A seed **rises and falls** when its peak t is at least ``RISE = 0.2`` above its first
checkpoint's, its final t at least ``FALL = 0.2`` below the peak, and its final p at least p at
the peak (each up to rounding, as the onset's comparisons): it learnt the task, then lost it
while the proxy held.

Coverage of the 95% Student-t interval of a mean over seeds, simulated (20,000 trials a cell):

=========================  =========  =========  ==========
seeds' values drawn from    4 seeds    5 seeds    10 seeds
=========================  =========  =========  ==========
normal                      0.951      0.950      0.951
uniform                     0.926      0.935      0.945
log-normal, sd 0.5          0.916      0.914      0.921
log-normal, sd 1            0.814      0.821      0.835
80% / 20% two modes         0.745      0.729      0.885
=========================  =========  =========  ==========

These intervals hold the references fixed (every seed is normalised by the same reference
episodes), so they show the seeds' spread alone. A report over several runs (``gaming-gym
report RUN ...``, an experiment's table) adds the references' own sampling noise and is wider
where they are noisy: the atlas's AbsentSupervisor final gap is 0.79 [0.77, 0.81] here and
[0.60, 0.98] in its experiment table.

A percentile bootstrap over the seeds covered 0.80 / 0.83 (normal) and 0.60 / 0.66 (two modes)
at 4 / 5 seeds, which is why it is not used. The interval holds for values spread smoothly
over seeds; where seeds split into modes (some never learn the task, say) no interval over 4-5
seeds does, and the count of seeds that rose and fell is the number to read. The test
(``tests/test_seeds.py``) re-checks the first three rows at 4 and 5 seeds.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from gaming_gym.metrics.curves import at_least
from gaming_gym.metrics.intervals import Interval, student_t_quantile
from gaming_gym.metrics.report import GoodhartReport

RISE = 0.2
"""How far (normalised) a seed's peak t must stand above its first checkpoint's to count as risen."""
FALL = 0.2
"""How far (normalised) a seed's final t must lie below its peak to count as fallen."""


@dataclass(frozen=True)
class SeedResult:
    """One seed's numbers, from its report: the peak of t (first highest checkpoint) and p
    there, the first and final t, the final p, the onset (None where the report found none) and
    the last checkpoint's step."""

    seed: int
    peak_step: int
    peak_true: float
    proxy_at_peak: float
    first_true: float
    final_true: float
    final_proxy: float
    onset_step: int | None
    final_step: int

    @classmethod
    def of(cls, seed: int, report: GoodhartReport) -> SeedResult:
        peak = int(np.argmax(report.true))
        return cls(
            seed=seed,
            peak_step=report.steps[peak],
            peak_true=report.true[peak],
            proxy_at_peak=report.proxy[peak],
            first_true=report.true[0],
            final_true=report.true[-1],
            final_proxy=report.proxy[-1],
            onset_step=report.onset_step,
            final_step=report.steps[-1],
        )

    @property
    def final_gap(self) -> float:
        return self.final_proxy - self.final_true

    @property
    def drop(self) -> float:
        """Peak minus final t."""
        return self.peak_true - self.final_true

    @property
    def rises_and_falls(self) -> bool:
        """Rose by ``RISE``, fell by ``FALL`` from the peak, and ended with p at least p at the peak."""
        return bool(
            at_least(self.peak_true - self.first_true, RISE)
            and at_least(self.drop, FALL)
            and at_least(self.final_proxy - self.proxy_at_peak, 0.0)
        )

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "final_gap": self.final_gap,
            "drop": self.drop,
            "rises_and_falls": self.rises_and_falls,
        }


ACROSS_SEEDS: tuple[tuple[str, str], ...] = (
    ("final_proxy", "final p"),
    ("final_true", "final t"),
    ("final_gap", "final gap p - t"),
    ("peak_true", "peak t"),
    ("drop", "drop (peak - final t)"),
    ("onset_step", "onset step"),
)
"""The numbers :func:`across_seeds` summarises: attribute of :class:`SeedResult`, label."""


@dataclass(frozen=True)
class AcrossSeeds:
    """One number over seeds: the mean over the ``n`` seeds that have it, with its Student-t
    interval (None with fewer than two; an onset's stops at the start and end of training)."""

    mean: float | None
    interval: Interval | None
    n: int


def across_seeds(results: Sequence[SeedResult], confidence: float = 0.95) -> dict[str, AcrossSeeds]:
    """Each number of :data:`ACROSS_SEEDS` over the seeds (module docstring)."""
    summary = {}
    for name, _ in ACROSS_SEEDS:
        values = np.array([v for v in (getattr(r, name) for r in results) if v is not None], dtype=float)
        summary[name] = mean_and_interval(values, confidence)
    onset = summary["onset_step"]
    if onset.interval is not None:
        end = min(result.final_step for result in results)
        low, high = onset.interval
        summary["onset_step"] = AcrossSeeds(onset.mean, (max(low, 0.0), min(high, float(end))), onset.n)
    return summary


def seed_table(results: Sequence[SeedResult], confidence: float = 0.95) -> str:
    """A text table: a row per number, a column per seed, then the mean over seeds with its
    interval; last, which seeds rose and fell."""
    summary = across_seeds(results, confidence)
    lines = [
        f"{'':<24}"
        + "".join(f"{'seed ' + str(r.seed):>11}" for r in results)
        + f"   mean [{confidence:.0%} CI]"
    ]
    for name, label in ACROSS_SEEDS:
        over = summary[name]
        mean = shown_across_seeds(name, over)
        if over.n < len(results):
            mean += f" ({over.n} seeds)"
        lines.append(
            f"{label:<24}" + "".join(f"{_shown(name, getattr(r, name)):>11}" for r in results) + f"   {mean}"
        )
    rose = sum(result.rises_and_falls for result in results)
    lines.append(
        f"{'rose and fell':<24}"
        + "".join(f"{'yes' if r.rises_and_falls else 'no':>11}" for r in results)
        + f"   {rose} of {len(results)}"
    )
    note = (
        f"intervals: Student t over the seeds (the onset's over those that have one); a seed rose and fell "
        f"when its peak t stood >= {RISE} above its first, its final t >= {FALL} below the peak, and its "
        f"final p at least p at the peak"
    )
    return "\n".join(lines + textwrap.wrap(note, 100))


def mean_and_interval(values: np.ndarray, confidence: float) -> AcrossSeeds:
    if len(values) == 0:
        return AcrossSeeds(None, None, 0)
    mean = float(values.mean())
    if len(values) < 2:
        return AcrossSeeds(mean, None, 1)
    half = (
        student_t_quantile((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    )
    return AcrossSeeds(mean, (mean - half, mean + half), len(values))


def shown_across_seeds(name: str, value: AcrossSeeds) -> str:
    """``mean [low, high]`` of the number ``name`` of :data:`ACROSS_SEEDS` (an onset in millions
    of steps), ``none`` where no seed has it."""
    text = _shown(name, value.mean)
    if value.mean is not None and value.interval is not None:
        text += f" [{_shown(name, value.interval[0])}, {_shown(name, value.interval[1])}]"
    return text


def _shown(name: str, value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value / 1e6:.2f}M" if name == "onset_step" else f"{value:.2f}"
