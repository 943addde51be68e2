"""Rank correlation of the proxy and true curves: Kendall's tau-b across checkpoints.

+1 when improving the proxy improves the true objective (the curves rank the checkpoints alike),
-1 when improving one worsens the other. Two values within :data:`TIE_TOLERANCE` (relative to the
curve's largest magnitude) are a tie. Undefined (``None`` in a report) when a curve is constant.
"""

from __future__ import annotations

import math

import numpy as np

from gaming_gym.metrics.curves import require_two

TIE_TOLERANCE = 1e-9
"""Kendall tau-b counts two checkpoints as tied on a curve when their values differ by at most this
fraction of the curve's largest magnitude (relative, so the ties do not depend on units): 0.1 + 0.2
and 0.3 are a tie, as rounding made them differ, not the agent."""


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b rank correlation of two curves over the same checkpoints.

    Raises ValueError for fewer than two points, different lengths, or a constant curve.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"Kendall tau needs two 1-D curves of equal length, got {x.shape} and {y.shape}")
    require_two(x, "Kendall tau")
    tau = float(tau_b(x, y))
    if math.isnan(tau):
        raise ValueError("Kendall tau is undefined when a curve is constant across all checkpoints")
    return tau


def tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Tau-b over the last axis, batched over leading axes; NaN where a curve is constant.

    tau_b = sum_{i<j} sign(x_j - x_i) sign(y_j - y_i) / sqrt(n_x n_y), where n_x (n_y) counts the
    pairs not tied in x (y), a tie being a difference within :data:`TIE_TOLERANCE` of the curve's
    largest magnitude.
    """
    sign_x, sign_y = _pair_signs(x), _pair_signs(y)
    untied = np.sqrt(np.abs(sign_x).sum(-1) * np.abs(sign_y).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(untied > 0, (sign_x * sign_y).sum(-1) / untied, np.nan)


def batched_kendall_taus(proxy: np.ndarray, true: np.ndarray, max_pairs: int = 2_000_000) -> np.ndarray:
    """Tau-b of every row of two (batch, checkpoints) arrays, a block of rows at a time to bound
    memory (the table's Kendall tau)."""
    checkpoints = proxy.shape[-1]
    block = max(1, max_pairs // max(1, checkpoints * (checkpoints - 1) // 2))
    return np.concatenate(
        [
            tau_b(proxy[start : start + block], true[start : start + block])
            for start in range(0, len(proxy), block)
        ]
    )


def _pair_signs(curve: np.ndarray) -> np.ndarray:
    """sign(c_j - c_i) for every pair i < j over the last axis, 0 for ties up to rounding.

    NaN where a curve is infinite: a bootstrap replicate whose resampled references have equal
    means normalises to +-inf; its tau comes out NaN and the interval skips it."""
    first, second = np.triu_indices(curve.shape[-1], k=1)
    with np.errstate(invalid="ignore"):
        difference = curve[..., second] - curve[..., first]
        scale = np.abs(curve).max(-1, keepdims=True)
        return np.where(np.abs(difference) <= TIE_TOLERANCE * scale, 0.0, np.sign(difference))
