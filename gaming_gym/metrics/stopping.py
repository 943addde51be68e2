"""Early stopping at the Goodhart onset, judged on a held-out true-return curve (after Karwowski
et al., 2023), and what it keeps against the oracle stop.

:func:`early_stop` is the rule (the early-stopping mitigation applies it during training:
:mod:`gaming_gym.mitigations.early_stopping`); :func:`early_stopping` is the table's measure:
where the rule stops each run's normalised held-out curve, and the true return t kept there
against the oracle stop (each run's argmax of t on the evaluation episodes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gaming_gym.metrics.curves import Curves, at_least
from gaming_gym.metrics.records import curve_array


@dataclass(frozen=True)
class EarlyStop:
    """Where :func:`early_stop` fired (``stop_index``, ``None`` if never) and which checkpoint
    it keeps (``kept_index``: the running best when it fired, else the last checkpoint)."""

    stop_index: int | None
    kept_index: int


def early_stop(holdout: Sequence[float] | np.ndarray, min_drop: float = 0.1, patience: int = 2) -> EarlyStop:
    """Early stopping at the Goodhart onset, judged on a held-out true-return curve.

    Stop when the true return, measured on a held-out check (never on the evaluation returns
    that the report scores), has fallen materially from its best. Walking forward over
    ``holdout`` = h_0, h_1, ..., the stop fires at the first index j where the last ``patience``
    checkpoints (j - patience + 1 .. j) all come after the running best b = argmax_{i <= j} h_i
    (its first occurrence) and each lies at least ``min_drop`` below h_b (up to
    :data:`~gaming_gym.metrics.curves.FALL_TOLERANCE`). It then keeps checkpoint b. If it never
    fires, training ran to the end and the last checkpoint is kept.

    Prefix-consistent, so a trainer can call it after every new evaluation on the curve so far:
    whether it fires at j depends on h_0..h_j only.

    ``min_drop`` is in the units of ``holdout``: 0.1 on normalised returns is a tenth of the
    random-to-intended distance; on raw returns use ``0.1 * (intended mean - random mean)``.
    """
    holdout = curve_array(holdout, "early_stop's holdout curve")
    if not math.isfinite(min_drop) or min_drop < 0:
        raise ValueError(f"early_stop's min_drop must be a finite number >= 0, got {min_drop!r}")
    check_patience(patience)
    best = 0
    for j in range(len(holdout)):
        if holdout[j] > holdout[best]:
            best = j
        window = holdout[j - patience + 1 : j + 1]
        if j - patience + 1 > best and bool(at_least(holdout[best] - window, min_drop).all()):
            return EarlyStop(j, best)
    return EarlyStop(None, len(holdout) - 1)


def check_patience(patience: int) -> None:
    if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
        raise ValueError(f"early stopping's patience must be an int >= 1 (checkpoints), got {patience!r}")


@dataclass(frozen=True)
class EarlyStoppingOutcome:
    """Early stopping (:func:`early_stop` on each run's normalised held-out true curve) against
    the oracle stop (each run's argmax of its true curve t on the evaluation episodes).

    Per run: ``stop_steps`` (``None`` where it never fired), ``kept_steps``, ``oracle_steps``.
    ``kept_true`` and ``oracle_true`` are t at the kept and oracle checkpoints, averaged over
    runs; ``kept_fraction`` is ``kept_true / oracle_true`` (``None`` when ``oracle_true <= 0``).
    The fall threshold is the report's ``onset_min_drop``.
    """

    patience: int
    stop_steps: list[int | None]
    kept_steps: list[int]
    oracle_steps: list[int]
    kept_true: float
    oracle_true: float
    kept_fraction: float | None


def early_stopping(curves: Curves) -> EarlyStoppingOutcome | None:
    """Early stopping on each run's held-out curve against its oracle stop (the table's measure);
    None when the runs recorded no held-out check."""
    if curves.holdout_per_run is None:
        return None
    patience, steps = curves.early_stop_patience, curves.steps
    stops = [early_stop(holdout, curves.onset_min_drop, patience) for holdout in curves.holdout_per_run]
    kept = [stop.kept_index for stop in stops]
    oracle = [int(np.argmax(true)) for true in curves.true_per_run]
    kept_true = float(np.mean([true[k] for true, k in zip(curves.true_per_run, kept, strict=True)]))
    oracle_true = float(np.mean([true[k] for true, k in zip(curves.true_per_run, oracle, strict=True)]))
    return EarlyStoppingOutcome(
        patience=patience,
        stop_steps=[None if stop.stop_index is None else steps[stop.stop_index] for stop in stops],
        kept_steps=[steps[k] for k in kept],
        oracle_steps=[steps[k] for k in oracle],
        kept_true=kept_true,
        oracle_true=oracle_true,
        kept_fraction=kept_true / oracle_true if oracle_true > 0 else None,
    )
