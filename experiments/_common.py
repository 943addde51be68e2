"""Command-line options shared by the experiment scripts."""

from __future__ import annotations

import argparse


def parse_args(description: str, default_steps: int, default_out: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--steps", type=int, default=default_steps, help="env steps per training run")
    parser.add_argument("--out", default=default_out, help="output folder (re-running resumes it)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args()


def shared_settings(args: argparse.Namespace) -> dict:
    """Training settings every arm of an experiment shares."""
    return {"total_timesteps": args.steps, "device": args.device}
