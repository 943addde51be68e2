"""Training throughput and time-to-exploit: native PPO against stable-baselines3 PPO, side by side.

Same env, same CPU, same PPO settings: the env's tuned settings (``gaming_gym/agents/tuned.py``),
read by native PPO and translated for SB3 (``gaming_gym.agents.sb3.translate``: rollout,
minibatches, epochs, learning-rate schedule, clipping, observation normalisation, network), one
torch thread. Throughput counts env steps per second *including* the PPO updates, and excludes the
periodic evaluations. Three agents:

* ``native``: :func:`gaming_gym.agents.ppo.train`, stepping the batched env on its device;
* ``sb3 batched``: SB3 PPO over :class:`gaming_gym.agents.sb3.SB3VecEnv` (the same batched env,
  numpy at the boundary);
* ``sb3 dummy``: SB3 PPO over ``DummyVecEnv`` of ``gymnasium.make`` envs, SB3's usual route.

Time to exploit: training seconds (evaluations excluded) until an evaluation first shows the
exploit: normalised proxy above the intended policy's (> 1) and Goodhart gap above 0.5.

Run (a few minutes; the CPU should be otherwise idle)::

    python benchmarks/train_throughput.py                       # BoatRace, the full table
    python benchmarks/train_throughput.py --steps 100000 --no-exploit   # throughput only, quick
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import gaming_gym  # noqa: F401  (registers the envs)
from gaming_gym.agents.ppo import default_config, train
from gaming_gym.evaluation import reference_returns
from gaming_gym.metrics import Evaluation, normalise

EVAL_EPISODES = 16


def exploit_found(checkpoint: Evaluation, references) -> bool:
    """Normalised proxy above the intended policy's and a Goodhart gap above 0.5."""
    random, intended = references["random"], references["intended"]
    proxy = float(normalise(checkpoint.proxy.mean(), random.proxy.mean(), intended.proxy.mean()))
    true = float(normalise(checkpoint.true.mean(), random.true.mean(), intended.true.mean()))
    return proxy > 1.0 and proxy - true > 0.5


# --- native PPO ----------------------------------------------------------------------------------


def native_run(env_id: str, steps: int, seed: int, eval_every: int, references=None) -> dict:
    """Train native PPO for ``steps``; throughput and (if ``references``) time to the exploit."""
    with tempfile.TemporaryDirectory() as run_dir:
        config = default_config(
            env_id,
            seed=seed,
            total_timesteps=steps,
            eval_every=eval_every,
            eval_episodes=EVAL_EPISODES,
            checkpoint_every=0,
        )
        result = train(config, run_dir=run_dir, progress=False)
        with open(Path(run_dir) / "progress.csv", newline="") as file:
            rows = [row for row in csv.DictReader(file) if int(row["iteration"]) >= 1]  # 0: step-0 eval
    seconds = np.concatenate(
        ([0.0], np.cumsum([config.batch_size / float(row["charts/fps"]) for row in rows]))
    )
    found = None
    if references is not None:
        for checkpoint in result.checkpoints:
            if exploit_found(checkpoint, references):
                found = (checkpoint.step, float(seconds[checkpoint.step // config.batch_size]))
                break
    # the first iteration pays one-off costs (allocations, lazy imports); leave it out of the rate
    rate = (result.global_step - config.batch_size) / (seconds[-1] - seconds[1])
    return {"steps_per_second": rate, "exploit": found, "final": result.checkpoints[-1]}


# --- stable-baselines3 -----------------------------------------------------------------------------


def sb3_model(env_id: str, seed: int, batched: bool, steps: int):
    from stable_baselines3.common.env_util import make_vec_env

    from gaming_gym.agents.sb3 import build_model, make_sb3_vec_env, sb3_config, translate

    settings = translate(sb3_config(env_id, seed=seed, total_timesteps=steps))
    if batched:
        env = make_sb3_vec_env(env_id, settings.num_envs, seed=seed)
    else:
        env = make_vec_env(lambda: gym.make(env_id), n_envs=settings.num_envs, seed=seed)
    return build_model(env, settings, device="cpu")


def sb3_throughput(env_id: str, steps: int, seed: int, batched: bool) -> float:
    model = sb3_model(env_id, seed, batched, steps)
    rollout = model.n_steps * model.n_envs
    model.learn(rollout)  # one-off costs, as for the native run
    started = time.perf_counter()
    model.learn(max(steps - rollout, rollout), reset_num_timesteps=False)
    return (model.num_timesteps - rollout) / (time.perf_counter() - started)


def sb3_time_to_exploit(env_id: str, budget: int, seed: int, eval_every: int, references):
    """Train SB3 PPO (batched env) until the exploit shows or ``budget`` steps pass."""
    from gaming_gym.agents.sb3 import GoodhartCallback

    class StopAtExploit(GoodhartCallback):
        """Evaluate as usual, stop once the exploit shows, and keep evaluation time off the clock."""

        def _on_training_start(self) -> None:
            super()._on_training_start()
            self.started, self.evaluating, self.found = time.perf_counter(), 0.0, None

        def _evaluate(self) -> None:
            began = time.perf_counter()
            super()._evaluate()
            if self.found is None and exploit_found(self.checkpoints[-1], references):
                self.found = (self.num_timesteps, began - self.started - self.evaluating)
            self.evaluating += time.perf_counter() - began

        def _on_step(self) -> bool:
            return super()._on_step() and self.found is None

    model = sb3_model(env_id, seed, batched=True, steps=budget)
    callback = StopAtExploit(env_id, eval_every=eval_every, eval_episodes=EVAL_EPISODES)
    model.learn(budget, callback=callback)
    return callback.found, callback.checkpoints[-1]


# --- the table ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="GamingGym/BoatRace-v1")
    parser.add_argument("--steps", type=int, default=300_000, help="env steps per throughput run")
    parser.add_argument("--dummy-steps", type=int, default=50_000, help="steps for SB3 over DummyVecEnv")
    parser.add_argument("--budget", type=int, default=1_500_000, help="most steps to look for the exploit")
    parser.add_argument("--eval-every", type=int, default=10, help="iterations (of 8192 steps) between evals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-exploit", action="store_true", help="measure throughput only")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the same for both: one thread is fastest for these small networks

    print(f"{args.env}, torch {torch.__version__}, CPU, 1 torch thread")
    native = native_run(args.env, args.steps, args.seed, eval_every=0)
    batched = sb3_throughput(args.env, args.steps, args.seed, batched=True)
    dummy = sb3_throughput(args.env, args.dummy_steps, args.seed, batched=False)
    rows = [
        ("native PPO", native["steps_per_second"]),
        ("SB3 PPO, batched env (SB3VecEnv)", batched),
        ("SB3 PPO, DummyVecEnv of gym.make", dummy),
    ]
    exploit = {}
    if not args.no_exploit:
        references = reference_returns(args.env, episodes=32, seed=0)
        eval_steps = args.eval_every * default_config(args.env).batch_size
        found = native_run(args.env, args.budget, args.seed, args.eval_every, references)["exploit"]
        exploit["native PPO"] = found
        exploit["SB3 PPO, batched env (SB3VecEnv)"] = sb3_time_to_exploit(
            args.env, args.budget, args.seed, eval_steps, references
        )[0]

    print(f"\n{'agent':<36} {'env steps/s':>12} {'vs native':>10} {'exploit at step':>16} {'train s':>8}")
    for name, rate in rows:
        found = exploit.get(name)
        step, seconds = (f"{found[0]:,}", f"{found[1]:.0f}") if found else ("-", "-")
        if name in exploit and found is None:
            step = f"> {args.budget:,}"
        ratio = native["steps_per_second"] / rate
        print(f"{name:<36} {rate:>12,.0f} {ratio:>9.1f}x {step:>16} {seconds:>8}")


if __name__ == "__main__":
    main()
