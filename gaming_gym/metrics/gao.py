"""Optimisation pressure: the true gain against Gao et al.'s distance d = sqrt(KL).

Where the trainer recorded each evaluation's ``kl`` (the policy's KL from the initial policy):

* **Optimisation distance** ``d = sqrt(kl)`` (Gao et al., 2022), an x-axis besides steps.
* **Gao fits** (:func:`fit_gao`): the true gain ``t - t_origin`` over the initial policy against
  d, fitted by least squares to ``d (a - b ln d)`` (RL) and ``d (a - b d)`` (best-of-n), with the
  fitted peak d* and the fit's RMSE. The origin is the first checkpoint with ``kl == 0`` (the
  initial policy), else the first checkpoint.
* **Observed peak**: the checkpoint of highest t (its step, t and d).
* **Final distance**: d at the last checkpoint, how far training took the policy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gaming_gym.metrics.curves import Curves
from gaming_gym.metrics.records import curve_array

GAO_FORMS = {"rl": "d (a - b ln d)", "bon": "d (a - b d)"}
"""Gao et al. (2022)'s functional forms of gold (true) reward gain R(d) at optimisation distance
d = sqrt(KL from the initial policy): "rl" for RL optimisation, "bon" for best-of-n sampling."""


@dataclass(frozen=True)
class GaoFit:
    """A least-squares fit of one of :data:`GAO_FORMS` to gold gain against d.

    ``peak_d`` is the fitted d* where R is at its maximum (``exp(a / b - 1)`` for "rl",
    ``a / (2 b)`` for "bon") and ``peak_gold`` is R(d*); both are ``None`` when the fitted curve
    has no finite maximum at d > 0 (b <= 0, or a <= 0 for "bon"): the gain never turns down.
    ``rmse`` is the root-mean-square residual over the ``n_points`` points fitted.
    """

    form: str
    a: float
    b: float
    peak_d: float | None
    peak_gold: float | None
    rmse: float
    n_points: int

    def predict(self, d: np.ndarray | float) -> np.ndarray:
        """The fitted R(d), with R(0) = 0."""
        return _design(np.asarray(d, dtype=np.float64), self.form) @ np.array([self.a, self.b])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GaoFit:
        return cls(**data)


@dataclass(frozen=True)
class Peak:
    """The checkpoint where the normalised true curve t is highest (first one on ties)."""

    step: int
    true: float
    d: float | None = None  # sqrt(kl) there, when the report has KL


def fit_gao(d: Sequence[float] | np.ndarray, gold: Sequence[float] | np.ndarray, form: str) -> GaoFit:
    """Fit Gao et al.'s ``R(d) = d (a - b ln d)`` (form "rl") or ``R(d) = d (a - b d)`` ("bon").

    Both forms are linear in (a, b), so this is ordinary least squares. ``gold`` must be the gain
    over the initial policy (Gao et al. measure gold reward relative to it, so R(0) = 0); points
    at d = 0 are fitted too (they count in ``rmse``) but cannot inform a and b.

    Raises ValueError for an unknown form, non-finite or mismatched inputs, a negative d, or
    fewer than two distinct d > 0 (a and b are then not determined).
    """
    if form not in GAO_FORMS:
        raise ValueError(f"Unknown Gao form {form!r}; accepted: {sorted(GAO_FORMS)}")
    d = curve_array(d, "fit_gao's d")
    gold = curve_array(gold, "fit_gao's gold")
    if len(d) != len(gold):
        raise ValueError(f"fit_gao needs one gold value per d, got {len(d)} d and {len(gold)} gold values")
    if (d < 0).any():
        raise ValueError(f"fit_gao's d is sqrt(KL) and cannot be negative, got {d[d < 0].tolist()}")
    if _distinct_positive(d) < 2:
        raise ValueError(
            f"fit_gao needs at least two distinct d > 0 to determine a and b, got d = {d.tolist()}"
        )
    design = _design(d, form)
    coefficients, *_ = np.linalg.lstsq(design, gold, rcond=None)
    a, b = float(coefficients[0]), float(coefficients[1])
    rmse = float(np.sqrt(np.mean((design @ coefficients - gold) ** 2)))
    peak_d = _peak(form, a, b)
    peak_gold = None if peak_d is None else float(_design(np.asarray(peak_d), form) @ coefficients)
    if peak_gold is not None and not math.isfinite(peak_gold):
        peak_d = peak_gold = None
    return GaoFit(form, a, b, peak_d, peak_gold, rmse, len(d))


def gao_origin_index(kl: np.ndarray) -> int:
    """The checkpoint Gao's gain is measured from: the first with kl == 0 (the initial policy),
    else the first checkpoint."""
    zero = np.flatnonzero(np.asarray(kl) == 0)
    return int(zero[0]) if len(zero) else 0


FIT_PARAMETERS = 2
"""Each form's parameters (a and b)."""
MIN_FIT_POINTS = FIT_PARAMETERS + 2
"""Fewest distinct d > 0 a fit is made through: with as many points as parameters it passes
through them exactly (rmse 0 says nothing), and two more leave it residuals to be judged by."""


def gao_fits(curves: Curves) -> dict[str, GaoFit] | None:
    """Both forms fitted to the mean true gain against d (the table's measure); None without KL
    or with fewer than :data:`MIN_FIT_POINTS` distinct d > 0."""
    d = curves.d
    if d is None or _distinct_positive(d) < MIN_FIT_POINTS:
        return None
    gain = curves.true - curves.true[gao_origin_index(curves.kl)]
    return {form: fit_gao(d, gain, form) for form in GAO_FORMS}


def final_distance(curves: Curves) -> float | None:
    """d at the last checkpoint: how far training took the policy from where it started (the
    square root of the mean KL over runs); None without KL (the table's measure)."""
    d = curves.d
    return None if d is None else float(d[-1])


def observed_peak(curves: Curves) -> Peak:
    """The checkpoint of highest mean t (the table's measure)."""
    best = int(np.argmax(curves.true))
    d = curves.d
    return Peak(curves.steps[best], float(curves.true[best]), None if d is None else float(d[best]))


def why_no_fit(report: Any) -> str | None:
    """The report's one line on why it has no Gao fits, where it recorded KL; None otherwise."""
    if report.d is None:
        return None
    points = _distinct_positive(np.asarray(report.d, dtype=float))
    return (
        f"Gao et al. fits left out: {points} distinct point(s) at d > 0, and a fit of "
        f"{FIT_PARAMETERS} parameters needs at least {MIN_FIT_POINTS} (evaluate more often)"
    )


def _distinct_positive(d: np.ndarray) -> int:
    return len(np.unique(d[d > 0]))


def _design(d: np.ndarray, form: str) -> np.ndarray:
    """Columns multiplying (a, b): ``[d, -d ln d]`` (with d ln d = 0 at d = 0) or ``[d, -d^2]``."""
    if form == "rl":
        d_log_d = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
        return np.stack([d, -d_log_d], axis=-1)
    return np.stack([d, -(d**2)], axis=-1)


def _peak(form: str, a: float, b: float) -> float | None:
    """d* > 0 where dR/dd = 0 and R is at a maximum, or None when there is no finite one."""
    if b <= 0:
        return None
    try:
        peak = math.exp(a / b - 1) if form == "rl" else a / (2 * b)
    except OverflowError:  # a / b so large that d* is beyond any float
        return None
    return peak if math.isfinite(peak) and peak > 0 else None
