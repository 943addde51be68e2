"""Intervals of the resampled measures: a percentile bootstrap for one run, Student t over runs.

* **One run**: percentile bootstrap. Each of ``n`` replicates resamples, with replacement, the
  episodes of every checkpoint (proxy and true of an episode stay paired) and of the random and
  intended references; every measure is recomputed on each replicate. It sees this run's
  evaluation noise only, not how another training seed would have turned out. A checkpoint of one
  episode shows no noise to resample, so every interval that depends on it is ``None`` (and the
  report warns). With few episodes it covers less than its level.
* **Several runs** (training seeds): Student-t intervals over the runs, for every measure,
  centred on the report's value: ``half-width^2 = (t_{n-1} SE_runs)^2 + (t_{m-1} SE_refs)^2``,
  n runs, m reference episodes. SE_runs is the jackknife standard error over runs (for p, t and
  gap, means over runs, exactly s / sqrt(n), the t-interval over per-run values); SE_refs the
  bootstrap standard error from the reference episodes, which all runs share. A percentile
  bootstrap over runs cannot reach beyond the few runs seen and is too short at 2-3 seeds.

Coverage of the final gap's 95% interval, simulated (1000 trials a cell; references of 32
episodes; each run's final p and t offset from the expectation by seed-to-seed noise of sd 0.5,
then 8 episodes of sd 0.5 per checkpoint, all normalised; the truth is the expected gap over
seeds; the model is ``synthetic_seeds`` in ``tests/test_metrics.py``):

=====  =============================  ==================================
seeds  seed and episode noise         seed noise (episode sd 0.125) only
=====  =============================  ==================================
2      Student t 0.971, before 0.753  Student t 0.962, before 0.677
3      Student t 0.957, before 0.814  Student t 0.949, before 0.771
5      Student t 0.958, before 0.877  Student t 0.957, before 0.859
=====  =============================  ==================================

("before": the percentile bootstrap over runs and episodes used until then.) With episode noise
only, both cover (0.98 / 0.96 at 2 seeds, 0.98 / 0.97 at 5); the t-interval is then wider at 2
seeds (median 2.9 against 0.9), the price of not knowing whether seeds differ. One run's
bootstrap covers its own expected gap in 65% of trials at 2 episodes per checkpoint, 83% at 4,
92% at 8 and 93% at 16, and the expected gap over seeds in only 47% when seeds differ as above.

A resampled measure is a function of normalised curves shaped ``(batch, checkpoints)``; this
module calls it on the replicates. A seeded ``numpy.random.Generator`` makes the intervals
reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gaming_gym.metrics.curves import Anchors, normalised_curves
from gaming_gym.metrics.records import Evaluation

Interval = tuple[float, float]
Resampled = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A measure the intervals recompute: normalised (proxy, true), each ``(batch, checkpoints)``,
to one value per row (or, for a curve, one per row and checkpoint)."""

PERCENTILE_BOOTSTRAP = "percentile-bootstrap"
"""``GoodhartReport.interval_method`` of one run's report: a percentile bootstrap over episodes
and references."""
STUDENT_T_OVER_RUNS = "student-t-over-runs"
"""``GoodhartReport.interval_method`` of a report over several runs: Student-t intervals over runs."""


def bootstrap_bounds(
    run: list[Evaluation],
    anchors: Anchors,
    measures: Mapping[str, Resampled],
    confidence: float,
    n: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Percentile bootstrap bounds of one run: every replicate resamples the episodes of every
    checkpoint and of the random and intended references. Bounds are arrays ``(..., 2)``, NaN
    where the measure was undefined in every replicate."""
    proxy = np.empty((n, len(run)))
    true = np.empty((n, len(run)))
    for k, checkpoint in enumerate(run):
        proxy[:, k], true[:, k] = _resampled_means(checkpoint.proxy, checkpoint.true, n, rng)
    samples = normalised_curves(proxy, true, *_resampled_anchor_means(anchors, n, rng))
    return {name: _percentile_bounds(measure(*samples), confidence) for name, measure in measures.items()}


def student_t_bounds(
    raw_proxy: np.ndarray,
    raw_true: np.ndarray,
    anchors: Anchors,
    measures: Mapping[str, Resampled],
    confidence: float,
    n: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Student-t bounds over runs, for every measure: estimate +- half-width, where

        half-width^2 = (t_{runs - 1} SE_runs)^2 + (t_{m - 1} SE_references)^2

    ``raw_proxy`` and ``raw_true`` are each run's mean returns, shape (runs, checkpoints).
    SE_runs^2 is the jackknife variance over runs (each run left out in turn); for a measure that
    is a mean over runs (p, t and gap, at every checkpoint) it is exactly s^2 / runs, so that part
    is the textbook t-interval over per-run values. SE_references^2 is the variance the reference
    episodes add, which all runs share: the runs held at their means, the references resampled
    ``n`` times; m is the fewer episodes of the two references. Each part is widened by its own t
    quantile and the two are added in quadrature, which keeps the few-run part wide even when
    the run-to-run spread happens to look small by chance (Welch-Satterthwaite degrees of freedom
    for the sum, tried first, then rise and the interval shrinks: 86-90% coverage at 2 runs in a
    50-trial check).
    """
    runs = len(raw_proxy)
    means = anchors.means

    def evaluate(mean_proxy: np.ndarray, mean_true: np.ndarray, *anchor_means) -> dict[str, np.ndarray]:
        curves = normalised_curves(mean_proxy, mean_true, *anchor_means)
        return {name: measure(*curves) for name, measure in measures.items()}

    estimate = evaluate(raw_proxy.mean(0, keepdims=True), raw_true.mean(0, keepdims=True), *means)
    others = ~np.eye(runs, dtype=bool)  # row i: every run but i
    leave_one_out = evaluate(
        np.stack([raw_proxy[keep].mean(0) for keep in others]),
        np.stack([raw_true[keep].mean(0) for keep in others]),
        *means,
    )
    resampled_references = evaluate(
        raw_proxy.mean(0, keepdims=True),
        raw_true.mean(0, keepdims=True),
        *_resampled_anchor_means(anchors, n, rng),
    )
    reference_episodes = min(len(anchors.random_proxy), len(anchors.intended_proxy))
    level = (1 + confidence) / 2
    bounds = {}
    for name, value in estimate.items():
        jackknife = leave_one_out[name]
        between = (runs - 1) / runs * ((jackknife - jackknife.mean(0)) ** 2).sum(0)
        from_references = _finite_variance(resampled_references[name])
        half_width = np.sqrt(
            student_t_quantile(level, runs - 1) ** 2 * between
            + student_t_quantile(level, max(reference_episodes - 1, 1)) ** 2 * from_references
        )
        bounds[name] = np.stack([value[0] - half_width, value[0] + half_width], axis=-1)
    return bounds


def student_t_quantile(level: float, df: int) -> float:
    """The ``level`` quantile of Student's t distribution with ``df`` (an int >= 1) degrees of freedom.

    Exact, without scipy: the closed form of P(|T| <= t) for integer df (Abramowitz and Stegun
    26.7.3 and 26.7.4), inverted by bisection to the float's precision.
    """
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"Student's t needs an int >= 1 of degrees of freedom, got {df!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if level < 0.5:
        return -student_t_quantile(1 - level, df)
    target = 2 * level - 1  # P(|T| <= t)
    high = 1.0
    while _t_central_probability(high, int(df)) < target:
        high *= 2
    low = 0.0
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if _t_central_probability(middle, int(df)) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _t_central_probability(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` degrees of freedom."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2 == 0:  # sin(theta) (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ... up to cos^(df-2))
        term = total = 1.0
        for j in range(1, df // 2):
            term *= cos2 * (2 * j - 1) / (2 * j)
            total += term
        return math.sin(theta) * total
    # odd: 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ... up to cos^(df-3)))
    term = total = 1.0
    for j in range(1, (df - 1) // 2):
        term *= cos2 * (2 * j) / (2 * j + 1)
        total += term
    series = math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0
    return 2 / math.pi * (theta + series)


def as_interval(pair: Any) -> Interval | None:
    """``(low, high)`` from a bound pair, or None where either end is undefined."""
    low, high = float(pair[0]), float(pair[1])
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def _resampled_anchor_means(anchors: Anchors, count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The random and intended references' means over ``count`` resamples of their episodes, as
    columns ``(count, 1)``: random proxy, random true, intended proxy, intended true."""
    random_proxy, random_true = _resampled_means(anchors.random_proxy, anchors.random_true, count, rng)
    intended_proxy, intended_true = _resampled_means(
        anchors.intended_proxy, anchors.intended_true, count, rng
    )
    return tuple(means[:, None] for means in (random_proxy, random_true, intended_proxy, intended_true))


def _resampled_means(proxy: np.ndarray, true: np.ndarray, count: int, rng: np.random.Generator):
    """Means of ``count`` resamples of paired episodes: two arrays of shape ``(count,)``."""
    episodes = rng.integers(0, len(proxy), size=(count, len(proxy)))
    return proxy[episodes].mean(1), true[episodes].mean(1)


def _percentile_bounds(samples: np.ndarray, confidence: float) -> np.ndarray:
    """Percentile interval of bootstrap replicates (axis 0) as an array ``samples.shape[1:] + (2,)``,
    skipping replicates where the measure was undefined (a constant curve for Kendall tau,
    resampled references with equal means, a resample without an onset); NaN where it was
    undefined in half the replicates or more: an interval over the few that define it would
    look surer than the measure is."""
    tail = 100 * (1 - confidence) / 2
    flat = samples.reshape(len(samples), -1)
    bounds = np.full((flat.shape[1], 2), np.nan)
    for column in range(flat.shape[1]):
        values = flat[:, column][np.isfinite(flat[:, column])]
        if 2 * len(values) > len(flat):
            bounds[column] = np.percentile(values, [tail, 100 - tail])
    return bounds.reshape(samples.shape[1:] + (2,))


def _finite_variance(samples: np.ndarray) -> np.ndarray:
    """Variance over axis 0 of the finite entries; NaN where none is finite."""
    finite = np.isfinite(samples)
    count = finite.sum(0)
    mean = np.where(finite, samples, 0.0).sum(0) / np.maximum(count, 1)
    variance = (np.where(finite, samples - mean, 0.0) ** 2).sum(0) / np.maximum(count, 1)
    return np.where(count > 0, variance, np.nan)
