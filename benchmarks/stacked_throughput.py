"""Many agents at once: N PPO agents trained stacked against the same N runs one after another.

Each agent is a full run of the env's tuned settings (``gaming_gym/agents/tuned.py``) on its own
seed, evaluations included (they are part of what a sweep pays for). Stacked, the N agents share
one batched env, one forward and backward pass, and one batched evaluation
(:mod:`gaming_gym.agents.ppo.stack`); sequential, each trains alone with
:func:`gaming_gym.agents.ppo.train`. Aggregate throughput = N x env steps per run / wall seconds.

Run (the CPU should be otherwise idle)::

    python benchmarks/stacked_throughput.py                              # BoatRace, 16 agents
    python benchmarks/stacked_throughput.py --env GamingGym/TallFall-v0 --iterations 20
    python benchmarks/stacked_throughput.py --device cuda --threads 1    # on a GPU
"""

from __future__ import annotations

import argparse
import time

import gaming_gym  # noqa: F401  (registers the envs)
from gaming_gym.agents.ppo import default_config, train, train_stacked


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="GamingGym/BoatRace-v1")
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument(
        "--iterations", type=int, default=10, help="rollouts per run (each num_envs x num_steps)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="torch threads of the stacked runs (one row each)",
    )
    parser.add_argument(
        "--sequential", type=int, default=None, help="runs timed one by one (default: --agents)"
    )
    args = parser.parse_args()

    def config(seed: int, threads: int = 1):
        tuned = default_config(args.env)
        steps = args.iterations * tuned.batch_size
        return default_config(
            args.env, seed=seed, total_timesteps=steps, device=args.device, cpu_threads=threads
        )

    steps = config(0).num_iterations * config(0).batch_size
    rows = []
    sequential = args.sequential or args.agents
    started = time.perf_counter()
    for seed in range(sequential):
        train(config(seed), progress=False)
    seconds = (time.perf_counter() - started) * args.agents / sequential
    rows.append((f"{args.agents} runs one after another, 1 thread", seconds, steps / seconds * args.agents))
    one = seconds / args.agents
    rows.append(("one run alone, 1 thread", one, steps / one))
    for threads in args.threads:
        started = time.perf_counter()
        train_stacked([config(seed, threads) for seed in range(args.agents)], progress=False)
        seconds = time.perf_counter() - started
        rows.append(
            (f"{args.agents} runs stacked, {threads} thread(s)", seconds, steps / seconds * args.agents)
        )

    baseline = rows[0][2]
    print(f"{args.env} on {args.device}: {steps:,} env steps a run (evaluations included)")
    print(f"{'':<44}{'wall s':>10}{'env-steps/s':>14}{'vs sequential':>15}")
    for name, seconds, rate in rows:
        print(f"{name:<44}{seconds:10.1f}{rate:14,.0f}{rate / baseline:14.2f}x")


if __name__ == "__main__":
    main()
