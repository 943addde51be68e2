"""Env-steps per second of the batched VectorEnv against Gymnasium's SyncVectorEnv, random actions.

    python benchmarks/env_throughput.py                      # every built-in env, CPU
    python benchmarks/env_throughput.py --envs GamingGym/BoatRace-v1 --compile --device cuda
    python benchmarks/env_throughput.py --envs GamingGym/BoatRace-v1 --compile --threads 1

A figure, not a timed test: it prints a table and asserts nothing. Actions are sampled on the
env's device inside the timed loop, as a policy's would be. ``--compile`` adds rows for the
vector env with ``compile=True`` (torch.compile; compile time is reported apart). Each row is
the median of ``--repeats`` timed windows, so a machine shared with other work reads steadier;
``--threads`` sets torch's CPU threads (on a busy machine one thread can beat two by far).
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import torch

import gaming_gym
from gaming_gym.devices import resolve_device


def random_actions(space: gym.Space, num_envs: int, device: torch.device) -> torch.Tensor:
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(space.start, space.start + space.n, (num_envs,), device=device)
    low = torch.as_tensor(space.low, device=device)
    high = torch.as_tensor(space.high, device=device)
    return low + (high - low) * torch.rand((num_envs, *space.shape), device=device)


def vector_steps_per_second(env_id, num_envs, device, compile, seconds, repeats) -> tuple[float, float]:
    """(median steps/s, seconds spent before the timed loop: construction, compile and warm-up)."""
    # A fresh torch.compile cache per row: the vector front's compiled step is shared by every
    # env, so a later size would otherwise run a dynamic-shape graph, slower than the static
    # one a program stepping a single vector env gets.
    torch._dynamo.reset()
    started = time.perf_counter()
    env = gym.make_vec(env_id, num_envs=num_envs, device=device, compile=compile)
    env.reset(seed=0)
    for _ in range(3):
        env.step(random_actions(env.single_action_space, num_envs, env.device))
    setup = time.perf_counter() - started

    def window() -> float:
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            env.step(random_actions(env.single_action_space, num_envs, env.device))
            steps += 1
        _synchronize(env.device)
        return steps * num_envs / (time.perf_counter() - started)

    return statistics.median(window() for _ in range(repeats)), setup


def sync_steps_per_second(env_id, num_envs, seconds, repeats) -> float:
    """Median steps/s of Gymnasium's SyncVectorEnv over the single-env front."""
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    env.reset(seed=0)
    env.action_space.seed(0)

    def window() -> float:
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            env.step(env.action_space.sample())
            steps += 1
        return steps * num_envs / (time.perf_counter() - started)

    return statistics.median(window() for _ in range(repeats))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--envs", nargs="*", default=None, help="env ids (default: all built-in)")
    parser.add_argument("--sizes", nargs="*", type=int, default=[1, 64, 1024, 4096, 16384])
    parser.add_argument("--sync-sizes", nargs="*", type=int, default=[1, 64])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--compile", action="store_true", help="also time compile=True")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per timed window")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per row (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    env_ids = args.envs or [e for e in gaming_gym.gameable_env_ids() if "Continuous" not in e]
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'env':<28} {'front':<22} {'envs':>6} {'steps/s':>14} {'us/step':>9} {'setup s':>8}")
    print("(steps/s counts env-steps; us/step is the time of one step of the whole vector)")
    for env_id in env_ids:
        sync_rates = {}
        for num_envs in args.sync_sizes:
            sync_rates[num_envs] = sync_steps_per_second(env_id, num_envs, args.seconds, args.repeats)
            rate = sync_rates[num_envs]
            step_us = 1e6 * num_envs / rate
            print(f"{env_id:<28} {'SyncVectorEnv':<22} {num_envs:>6} {rate:>14,.0f} {step_us:>9.0f}")
        best_sync = max(sync_rates.values())
        for compile in [False, True] if args.compile else [False]:
            front = "VectorEnv" + (" compiled" if compile else "")
            for num_envs in args.sizes:
                rate, setup = vector_steps_per_second(
                    env_id, num_envs, device, compile, args.seconds, args.repeats
                )
                print(
                    f"{env_id:<28} {front:<22} {num_envs:>6} {rate:>14,.0f} {1e6 * num_envs / rate:>9.0f}"
                    f" {setup:>8.1f}"
                    f"   {rate / best_sync:,.0f}x best SyncVectorEnv"
                )


if __name__ == "__main__":
    main()
