"""Torch devices: which one ``"auto"`` means, whether one exists, and whether a batch fits on it."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import gymnasium as gym
import torch

from gaming_gym.errors import DeviceError, InsufficientMemoryError
from gaming_gym.kernel import Kernel, seeded_generator

DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into the best available device (cuda, then mps, then cpu).

    Any other device is checked to exist on this machine, so ``device="cuda"`` on a CPU-only
    torch fails here, with one clear line, and not at the first tensor made on it.
    """
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from error
    _require_available(resolved)
    return resolved


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def _require_available(device: torch.device) -> None:
    """Raise a :class:`DeviceError` unless ``device`` can hold tensors on this machine."""
    if device.type not in DEVICE_TYPES:
        raise DeviceError(f"device {str(device)!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(device)!r} is not available: this machine or torch build has no CUDA "
                "GPU; use --device cpu (or auto)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} "
                "CUDA device(s), numbered from 0"
            )
    if device.type == "mps" and not _mps_available():
        raise DeviceError(f"device {str(device)!r} is not available on this machine; use cpu (or auto)")


# --- memory: refuse a batch that cannot fit, before allocating it -------------------------------

MEMORY_MARGIN = 4
"""Copies of the state and observations a step may hold at once: the state, the stepped state,
fresh reset states for ended episodes and the merge of the two (and as many observations)."""


def require_memory_for(kernel: Kernel, params: Any, num_envs: int, device: torch.device) -> None:
    """Raise :class:`InsufficientMemoryError` if ``num_envs`` envs would not fit in memory.

    Measured from one env's state and observation (a 1-env reset), times ``num_envs``, times
    :data:`MEMORY_MARGIN`, against the memory available on ``device``; the batched spaces'
    bounds (numpy arrays on the host) are counted against host memory.
    """
    state = kernel.reset(params, 1, seeded_generator(0, device), device)
    per_env = _nbytes(*(getattr(state, f.name) for f in dataclasses.fields(state)))
    per_env += _nbytes(kernel.observe(params, state))
    spaces_per_env = _space_nbytes(kernel.observation_space(params)) + _space_nbytes(
        kernel.action_space(params)
    )
    needs = {device: MEMORY_MARGIN * per_env * num_envs}
    host = torch.device("cpu")
    needs[host] = needs.get(host, 0) + spaces_per_env * num_envs
    for where, needed in needs.items():
        available = _available_memory(where)
        if available is not None and needed > available:
            per_env_total = needed / num_envs
            raise InsufficientMemoryError(
                f"num_envs={num_envs:,} {kernel.name} envs need about {needed / 2**30:,.1f} GiB of "
                f"{where.type} memory (state, observations and spaces), more than the "
                f"{available / 2**30:,.1f} GiB available; use at most about "
                f"{int(available // per_env_total):,} envs"
            )


def _nbytes(*tensors: Any) -> int:
    return sum(t.element_size() * t.numel() for t in tensors if isinstance(t, torch.Tensor))


def _space_nbytes(space: gym.Space) -> int:
    """Bytes one env adds to the batched space (a Box stores low and high per env)."""
    if isinstance(space, gym.spaces.Box):
        return 2 * space.low.nbytes
    return 16


def _available_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (MemAvailable for the host), or None where it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
