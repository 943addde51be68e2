"""The Goodhart onset on synthetic curves: found where t rises then falls for good, near the
transition, and rarely anywhere else (the rates in ``gaming_gym/metrics/onset.py``'s docstring).

Each family is 2,000 normalised curves of 49 checkpoints (the demo's), drawn at once, with the
evaluation noise of the demo's checkpoints: t's standard error 0.02-0.10 (95% half-widths up to
0.2), p's 0.01-0.11 times a log-normal factor per checkpoint (a few reach 0.5), and in half the
curves two isolated checkpoints where p collapses to 40-80% of its trend. The detector is given
standard errors as 16 episodes would estimate them (the true ones times sqrt(chi2_15 / 15)).
"""

from __future__ import annotations

import numpy as np
import pytest

from gaming_gym.metrics.onset import onset_index, onset_indices

CURVES, CHECKPOINTS = 2000, 49


def with_noise(proxy, true, rng):
    """Noisy (proxy, true) and their estimated standard errors (module docstring)."""
    n, k = true.shape
    se_true = np.broadcast_to(rng.uniform(0.02, 0.10, (n, 1)), (n, k))
    se_proxy = rng.uniform(0.01, 0.11, (n, 1)) * rng.lognormal(0.0, 0.8, (n, k))
    true = true + se_true * rng.standard_normal((n, k))
    proxy = proxy + se_proxy * rng.standard_normal((n, k))
    for _ in range(2):
        hit = rng.random(n) < 0.5
        at = rng.integers(1, k, n)
        proxy[hit, at[hit]] *= rng.uniform(0.4, 0.8, hit.sum())

    def estimated(se):
        return se * np.sqrt(rng.chisquare(15, se.shape) / 15)

    return proxy, true, estimated(se_proxy), estimated(se_true)


def rise_then_fall(rng, n=CURVES, k=CHECKPOINTS, proxy_falls=False):
    """t rises from 0-0.2 to a peak of 0.5-1, holds, and from the transition (10-95% of training)
    falls by 0.3-0.8 over 1-3 checkpoints for good; p rises with t and jumps by 0.5-5 as t falls
    (or, with ``proxy_falls``, stays 0.8-2 times t throughout, falling with it)."""
    x = np.arange(k)[None, :]
    transition = np.floor(rng.uniform(0.10, 0.95, n) * (k - 1)).astype(int)[:, None]
    width = rng.integers(1, 4, (n, 1))
    risen = np.maximum(1, np.floor(rng.uniform(0.3, 1.0, (n, 1)) * transition))
    start, peak = rng.uniform(0.0, 0.2, (n, 1)), rng.uniform(0.5, 1.0, (n, 1))
    drop = rng.uniform(0.3, 0.8, (n, 1))
    rise, fall = np.clip(x / risen, 0, 1), np.clip((x - transition) / width, 0, 1)
    true = start + (peak - start) * rise - drop * fall
    proxy_peak = peak * rng.uniform(0.8, 2.0, (n, 1))
    proxy = start + (proxy_peak - start) * rise + rng.uniform(0.5, 5.0, (n, 1)) * fall
    if proxy_falls:
        proxy = true * proxy_peak / peak
    return (*with_noise(proxy, true, rng), transition[:, 0])


def monotone_rise(rng, n=CURVES, k=CHECKPOINTS):
    """p and t rise along a logistic curve to 0.2-1 (p to 0.8-3 times t), anywhere in training."""
    x = np.arange(k)[None, :]
    middle, scale = rng.uniform(0, k, (n, 1)), rng.uniform(1, 10, (n, 1))
    top = rng.uniform(0.2, 1.0, (n, 1))
    shape = 1 / (1 + np.exp(-(x - middle) / scale))
    return with_noise(top * rng.uniform(0.8, 3.0, (n, 1)) * shape, top * shape, rng)


def flat_noise(rng, n=CURVES, k=CHECKPOINTS):
    """p and t flat at a level each (0-3 and 0-1), noise alone."""
    proxy = np.repeat(rng.uniform(0, 3, (n, 1)), k, axis=1)
    true = np.repeat(rng.uniform(0, 1, (n, 1)), k, axis=1)
    return with_noise(proxy, true, rng)


def test_onset_is_found_near_the_transition_of_noisy_rise_then_fall_curves():
    proxy, true, se_proxy, se_true, transition = rise_then_fall(np.random.default_rng(0))
    onsets = onset_indices(proxy, true, se_proxy=se_proxy, se_true=se_true)
    found = ~np.isnan(onsets)
    near = found & (np.abs(np.where(found, onsets, -99) - transition) <= 2)
    assert found.mean() >= 0.95
    assert near.mean() >= 0.90


@pytest.mark.parametrize("family", [monotone_rise, flat_noise])
def test_curves_that_never_fall_rarely_show_an_onset(family):
    proxy, true, se_proxy, se_true = family(np.random.default_rng(1))
    assert np.isnan(onset_indices(proxy, true, se_proxy=se_proxy, se_true=se_true)).mean() >= 0.95


def test_a_fall_of_the_proxy_with_the_true_return_is_no_onset():
    # Both collapse (the agent unlearned everything): not Goodhart's law.
    proxy, true, se_proxy, se_true, _ = rise_then_fall(np.random.default_rng(2), proxy_falls=True)
    assert np.isnan(onset_indices(proxy, true, se_proxy=se_proxy, se_true=se_true)).mean() >= 0.95


def test_one_evaluation_that_collapses_does_not_veto_the_onset():
    # The demo's seed 1, by shape: t holds at 1 and falls to 0.25 while p rises from about 2 to 3;
    # one late checkpoint's p collapses to 1.1 and recovers. The old rule (every later p above)
    # found no onset.
    true = np.r_[np.linspace(0, 1, 9), np.ones(30), np.full(10, 0.25)]
    proxy = np.r_[np.linspace(0, 2, 9), np.full(30, 2.0), np.full(10, 3.0)]
    proxy[42] = 1.1
    assert onset_index(proxy, true, se_proxy=0.05, se_true=0.05) == 38


def test_noise_free_curves_keep_the_plain_meaning():
    # p rises, t peaks at the third checkpoint and falls: the onset is the peak.
    assert onset_index([0, 0.5, 1, 1.5, 2], [0, 0.5, 1, 0.75, 0.25]) == 2
    # t falls from the start while p rises: the onset is the first checkpoint.
    assert onset_index([0, 1, 2, 3], [1, 0.75, 0.5, 0.25]) == 0
    # A plateau, then a fall for good: its last checkpoint.
    assert onset_index([0, 1, 1, 1, 1, 3, 3], [0, 1, 1, 1, 1, 0.2, 0.2]) == 4
    # t rising throughout, or p falling with t: none.
    assert onset_index([0, 1, 2, 3], [0, 0.2, 0.4, 0.6]) is None
    assert onset_index([0, 2, 2, 2, 0.5, 0.5], [0, 1, 1, 1, 0.2, 0.2]) is None


def test_a_fall_counts_from_min_drop_up_to_rounding():
    # 0.6 - 0.5 is 0.0999... in binary floating point; it counts, as early stopping's falls do.
    assert onset_index([0, 1, 1, 1, 2], [0.6, 0.6, 0.6, 0.6, 0.5]) == 3
    assert onset_index([0, 1, 1, 1, 2], [0.6, 0.6, 0.6, 0.6, 0.50001]) is None
    assert onset_index([0, 1, 1, 1, 2], [0.6, 0.6, 0.6, 0.6, 0.55], min_drop=0.01) == 3


def test_a_noisy_fall_must_clear_its_standard_error():
    # A fall of 0.3 counts without noise and is noise when each checkpoint's error is 0.2.
    proxy, true = [0, 1, 1, 1, 1, 1], [0.5, 0.8, 0.8, 0.8, 0.5, 0.5]
    assert onset_index(proxy, true) == 3
    assert onset_index(proxy, true, se_true=0.2) is None


def test_onset_needs_two_equal_curves():
    with pytest.raises(ValueError, match="at least two"):
        onset_index([1.0], [1.0])
    with pytest.raises(ValueError, match="equal length"):
        onset_index([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least two"):
        onset_indices(np.ones((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="one shape"):
        onset_indices(np.ones((3, 4)), np.ones((2, 4)))


def test_a_proxy_flat_up_to_rounding_has_not_fallen():
    # p's medians before and after differ by one unit in the last place (0.1 + 0.2 against 0.3).
    assert onset_index([0.1 + 0.2] * 4 + [0.3] * 3, [1, 1, 1, 1, 0.2, 0.2, 0.2]) == 3
