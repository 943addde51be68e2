"""The ``gaming-gym`` command (also ``python -m gaming_gym``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym

import gaming_gym
from gaming_gym.core import REFERENCE_POLICY_NAMES
from gaming_gym.evaluation import evaluate, reference_policy
from gaming_gym.render import record_rollout


def cmd_list(args: argparse.Namespace) -> int:
    """One line per registered gameable env: proxy / true objective / known exploit."""
    for env_id in gaming_gym.gameable_env_ids():
        env = gym.make_vec(env_id, num_envs=1)
        summary = env.unwrapped.kernel.summary
        env.close()
        print(f"{env_id}\n  proxy:   {summary['proxy']}\n  true:    {summary['true']}")
        print(f"  exploit: {summary['exploit']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Play BoatRace's reference policies, print their proxy and true returns, write GIFs."""
    env_id = "GamingGym/BoatRace-v0"
    out = Path(args.out)
    print(f"{env_id}: {args.episodes} episodes per policy, seed {args.seed}")
    print(f"{'policy':<10} {'proxy return':>14} {'true return':>12}  rollout")
    for name in REFERENCE_POLICY_NAMES:
        policy = reference_policy(env_id, name)
        returns = evaluate(policy, env_id, episodes=args.episodes, seed=args.seed)
        _, _, path = record_rollout(env_id, policy, out / f"boat_race_{name}.gif", seed=args.seed)
        print(f"{name:<10} {returns.proxy.mean():>14.2f} {returns.true.mean():>12.3f}  {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaming-gym", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the registered gameable envs").set_defaults(run=cmd_list)
    demo = commands.add_parser("demo", help="BoatRace's reference policies: returns and rollout GIFs")
    demo.add_argument("--out", default="demo_out", help="folder for the GIFs (default: demo_out)")
    demo.add_argument("--episodes", type=int, default=8, help="episodes per policy (default: 8)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
