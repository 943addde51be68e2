"""The gaming detector's distance: Hellinger between action distributions, and a run's score."""

from __future__ import annotations

import math

import pytest
import torch
from test_ppo import tiny_config

from gaming_gym.agents.ppo import train
from gaming_gym.detector import divergence_from_reference, hellinger

Categorical, Normal, Independent = (
    torch.distributions.Categorical,
    torch.distributions.Normal,
    torch.distributions.Independent,
)


def gaussian(loc, scale):
    return Independent(Normal(torch.tensor(loc), torch.tensor(scale)), 1)


def test_hellinger_of_categoricals_is_0_when_equal_and_1_when_disjoint():
    p = Categorical(probs=torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]))
    q = Categorical(probs=torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    torch.testing.assert_close(hellinger(p, q), torch.tensor([0.0, 1.0]))
    # sqrt(1 - (sqrt(0.5 * 0.25) + sqrt(0.5 * 0.75)))
    r = Categorical(probs=torch.tensor([[0.25, 0.75, 0.0]]))
    expected = math.sqrt(1 - (math.sqrt(0.125) + math.sqrt(0.375)))
    assert hellinger(Categorical(probs=torch.tensor([[0.5, 0.5, 0.0]])), r).item() == pytest.approx(expected)


def test_hellinger_of_diagonal_gaussians_has_its_closed_form():
    same = hellinger(gaussian([[0.0, 1.0]], [[1.0, 2.0]]), gaussian([[0.0, 1.0]], [[1.0, 2.0]]))
    torch.testing.assert_close(same, torch.tensor([0.0]))
    # one dimension, unit variances, means 2 apart: BC = exp(-4 / 8)
    shifted = hellinger(gaussian([[0.0]], [[1.0]]), gaussian([[2.0]], [[1.0]]))
    assert shifted.item() == pytest.approx(math.sqrt(1 - math.exp(-0.5)))
    assert hellinger(gaussian([[0.0]], [[0.01]]), gaussian([[5.0]], [[0.01]])).item() == pytest.approx(1.0)


def test_a_runs_score_lies_in_0_1_and_repeats(tmp_path):
    train(tiny_config(total_timesteps=16 * 50 * 2), run_dir=tmp_path / "run", progress=False)
    first, again = (divergence_from_reference(tmp_path / "run") for _ in range(2))
    assert 0.0 <= first <= 1.0 and first == again
