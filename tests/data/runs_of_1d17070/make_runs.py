"""How the run directories beside this file were made: with gaming_gym at commit 1d17070, before
one PPO loop served any number of agents and mitigations became plug-ins (``kl_coef``,
``kl_reference``, ``holdout_episodes``, ``early_stop`` were PPOConfig fields then). Tiny budgets;
tests/test_old_runs.py checks that they still report, evaluate, render and resume. Kept as
written then: it does not run against today's gaming_gym.

    PYTHONPATH=<checkout of 1d17070> python make_runs.py OUT
"""

import sys
from pathlib import Path

from gaming_gym.experiment import train_experiment

out = Path(sys.argv[1])
TINY = dict(
    num_envs=16,
    num_steps=32,
    num_minibatches=2,
    update_epochs=2,
    total_timesteps=2 * 16 * 32,
    eval_every=1,
    eval_episodes=4,
    hidden_sizes=(8, 8),
    checkpoint_every=1,
)
train_experiment("GamingGym/AbsentSupervisor-v0", out / "ppo_plain", "ppo", progress=False, seed=0, **TINY)
train_experiment(
    "GamingGym/BoatRace-v1",
    out / "ppo_kl_intended_holdout",
    "ppo",
    progress=False,
    seed=1,
    kl_coef=0.1,
    kl_reference="intended",
    holdout_episodes=2,
    early_stop=True,
    **{**TINY, "num_envs": 8},
)
train_experiment(
    "GamingGym/TallFall-v0", out / "ppo_kl_initial", "ppo", progress=False, seed=2, kl_coef=0.05, **TINY
)
train_experiment(
    "GamingGym/ConfidentRater-v0", out / "ppo_sft", "ppo", progress=False, seed=0, kl_reference="sft", **TINY
)
train_experiment(
    "GamingGym/AbsentSupervisor-v0",
    out / "sb3_plain",
    "sb3",
    progress=False,
    seed=0,
    **{k: v for k, v in TINY.items()},
)
print("made", sorted(p.name for p in out.iterdir()))
