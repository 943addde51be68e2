"""Random streams kept inside an env's state: one MINSTD generator per env.

A kernel's ``step`` must be a pure function of its state and action (same seed, same trajectory,
in a batch of any size or alone), so randomness during an episode cannot come from a global or
shared generator. Each env carries its own Park-Miller-Stockmeyer MINSTD state instead, seeded
at ``reset`` from the env's generator and advanced inside ``step``. MINSTD is small and well
understood; its quality is ample for where mess lands or how the water chops.
"""

from __future__ import annotations

import torch

MODULUS = 2**31 - 1  # a prime: every state in [1, MODULUS - 1] lies on one long cycle
MULTIPLIER = 48271  # MINSTD's multiplier; state * multiplier fits in int64


def seeded(uniforms: torch.Tensor) -> torch.Tensor:
    """Generator states from float64 uniforms in [0, 1) (one per env): int64 in [1, MODULUS - 1].

    Draw the uniforms as float64 so each state gets 31 random bits.
    """
    return 1 + (uniforms * (MODULUS - 1)).long()


def advance(state: torch.Tensor) -> torch.Tensor:
    """The next state of every generator."""
    return state * MULTIPLIER % MODULUS


def uniform(state: torch.Tensor) -> torch.Tensor:
    """A float32 in (0, 1) per generator, read from its (already advanced) state."""
    return state.float() * (1.0 / MODULUS)
