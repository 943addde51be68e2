"""How near the native PPO trainer runs to its network-only ceiling, alone and stacked.

The ceiling is the network arithmetic an iteration cannot avoid, timed on its own, for an env's
tuned settings (``gaming_gym/agents/tuned.py``) on the chosen device: per rollout of
``num_envs x num_steps`` env steps, ``num_steps`` forward passes of actor and critic on
``num_envs`` observations (no gradient), and ``update_epochs x num_minibatches`` forward and
backward passes of actor and critic on a minibatch. Env steps, action sampling, observation
statistics, GAE and the optimiser are left out. For N stacked agents the same passes go through
:class:`~gaming_gym.agents.ppo.stack.StackedAgents` on N blocks (what a stack runs).

The trainer's throughput is :func:`gaming_gym.agents.ppo.train_stacked` (a stack of one for
"solo") over the same settings without evaluations, its first iteration (one-off costs) left
out; it is printed as a share of the ceiling. Last, the share of a solo run's wall time that its
evaluations take at the env's tuned ``eval_every`` and ``eval_episodes``.

Run (the CPU should be otherwise idle)::

    python benchmarks/ceiling.py                                  # BoatRace, solo and 16 stacked
    python benchmarks/ceiling.py --agents 1 4 16 --iterations 20
    python benchmarks/ceiling.py --compile                        # the trainer with compile=True
    python benchmarks/ceiling.py --device cuda --threads 1        # on a GPU
    python benchmarks/ceiling.py --device cuda --num-envs 4096 --agents 1 64
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

import gaming_gym  # noqa: F401  (registers the envs)
from gaming_gym.agents.ppo import ActorCritic, PPOConfig, default_config, train_stacked
from gaming_gym.agents.ppo.stack import StackedAgents
from gaming_gym.devices import resolve_device
from gaming_gym.evaluation import env_factory


def network_ceiling(config: PPOConfig, agents: int, device: torch.device, repeats: int) -> float:
    """Aggregate env steps per second of the network arithmetic alone (module docstring): the
    median over ``repeats`` timed rollouts' worth of passes."""
    env = env_factory(config.env_id, config.knobs, device)(1)
    observation_space, action_space = env.single_observation_space, env.single_action_space
    env.close()
    networks = [
        ActorCritic(observation_space, action_space, config.hidden_sizes).to(device) for _ in range(agents)
    ]
    stacked = StackedAgents(networks)
    features = networks[0].obs_rms.mean.shape[-1]
    acting = torch.randn(agents * config.num_envs, features, device=device)
    minibatch = torch.randn(config.minibatch_size, agents, features, device=device)

    def one_rollout() -> None:
        with torch.no_grad():
            for _ in range(config.num_steps):
                stacked.head.distribution_from(*stacked.policy_outputs(acting))
                stacked.value(acting)
        for _ in range(config.update_epochs * config.num_minibatches):
            outputs = (*stacked.policy_outputs(minibatch), stacked.value(minibatch))
            sum(output.sum() for output in outputs).backward()

    one_rollout()  # warm-up: allocations, lazy initialisation
    seconds = []
    for _ in range(repeats):
        _synchronize(device)
        started = time.perf_counter()
        one_rollout()
        _synchronize(device)
        seconds.append(time.perf_counter() - started)
    return agents * config.batch_size / statistics.median(seconds)


def trainer_throughput(config: PPOConfig, agents: int) -> float:
    """Aggregate env steps per second of the trainer over its iterations after the first, no
    evaluations: each iteration's ``charts/fps`` in the first agent's ``progress.csv`` (a stack
    of N logs N x batch / wall seconds of the iteration)."""
    configs = [dataclasses.replace(config, seed=seed) for seed in range(agents)]
    with tempfile.TemporaryDirectory() as root:
        run_dirs = [Path(root) / f"seed{seed}" for seed in range(agents)]
        train_stacked(configs, run_dirs, progress=False)
        rates = _iteration_rates(run_dirs[0], first=2)
    return len(rates) / sum(1.0 / rate for rate in rates)  # steps over seconds, iteration by iteration


def evaluation_share(config: PPOConfig) -> float:
    """The share of a solo run's wall time its evaluations take at the env's tuned
    ``eval_every``: a run of two evaluation periods (three evaluations: the start, the middle and
    the end) less its iterations' time, per evaluation, against one period of iterations."""
    every = default_config(config.env_id).eval_every
    run = dataclasses.replace(config, total_timesteps=2 * every * config.batch_size, eval_every=every)
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        train_stacked([run], [root], progress=False)
        wall = time.perf_counter() - started
        iterations = sum(config.batch_size / rate for rate in _iteration_rates(Path(root), first=1))
    evaluation = (wall - iterations) / 3  # set-up and logging count as evaluation: an upper bound
    return evaluation / (evaluation + iterations / 2)


def _iteration_rates(run_dir: Path, first: int) -> list[float]:
    """Each iteration's ``charts/fps`` from ``first`` on, as a run's ``progress.csv`` logged it."""
    with open(run_dir / "progress.csv", newline="") as file:
        return [float(row["charts/fps"]) for row in csv.DictReader(file) if int(row["iteration"]) >= first]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="GamingGym/BoatRace-v1")
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 16], help="stack sizes, one row each")
    parser.add_argument("--iterations", type=int, default=12, help="trainer rollouts per row")
    parser.add_argument("--repeats", type=int, default=5, help="timed rollouts of the ceiling (median)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--num-envs", type=int, default=None, help="envs per agent (default: tuned; minibatches scale)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="the trainer with compile=True (fused env steps)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    tuned = default_config(args.env)
    config = default_config(
        args.env,
        total_timesteps=args.iterations * tuned.num_steps * (args.num_envs or tuned.num_envs),
        num_envs=args.num_envs or tuned.num_envs,
        eval_every=0,
        checkpoint_every=0,
        device=str(device),
        cpu_threads=args.threads,
        compile=args.compile,
    )
    print(
        f"{args.env} on {device}, torch {torch.__version__}, {args.threads} thread(s): "
        f"{config.num_envs} envs x {config.num_steps} steps, {config.update_epochs} epochs x "
        f"{config.num_minibatches} minibatches of {config.minibatch_size}, hidden {config.hidden_sizes}"
        + (", env steps compiled" if args.compile else "")
    )
    print(f"{'agents':>6} {'ceiling steps/s':>16} {'trainer steps/s':>16} {'share':>7}")
    for agents in args.agents:
        ceiling = network_ceiling(config, agents, device, args.repeats)
        trainer = trainer_throughput(config, agents)
        print(f"{agents:>6} {ceiling:>16,.0f} {trainer:>16,.0f} {trainer / ceiling:>6.0%}")
    every = tuned.eval_every
    print(
        f"evaluations ({tuned.eval_episodes} episodes every {every} iterations): "
        f"{evaluation_share(config):.0%} of a solo run's wall time"
    )


if __name__ == "__main__":
    main()
