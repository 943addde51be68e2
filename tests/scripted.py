"""Step a hand-placed state through a scripted action sequence, for exact-value kernel tests."""

from __future__ import annotations

from typing import Any

import torch

from gaming_gym.kernel import Kernel


def run_scripted(kernel: Kernel, state: Any, actions, **knobs: Any):
    """Apply ``actions`` one by one to a batch-of-1 ``state`` with ``kernel.step``.

    Returns the final state and per-step lists of proxy reward, true reward and termination.
    """
    params = kernel.make_params(**knobs)
    proxies, trues, terminals = [], [], []
    for action in actions:
        result = kernel.step(params, state, torch.tensor([action]))
        state = result.state
        proxies.append(float(result.proxy[0]))
        trues.append(float(result.true[0]))
        terminals.append(bool(result.terminated[0]))
    return state, proxies, trues, terminals
