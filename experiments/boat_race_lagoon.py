"""BoatRace: PPO on the game score learns to circle the lagoon; PPO on race progress finishes.

    python experiments/boat_race_lagoon.py [--seeds 0 1 2] [--steps N] [--out runs/boat_race_lagoon]

Three arms over seeds: PPO on the proxy (default knobs), PPO on the true objective, and PPO on
the proxy with targets that never respawn (the aligned knob). Prints the Goodhart table and
writes runs/boat_race_lagoon/comparison.png and each arm's Goodhart curve.
"""

from _common import parse_args, shared_settings

from gaming_gym.experiment import Condition, run_conditions

ENV = "GamingGym/BoatRace-v1"

if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=1_500_000, default_out="runs/boat_race_lagoon")
    run_conditions(
        [
            Condition("proxy", ENV),
            Condition("true reward", ENV, settings={"reward": "true"}),
            Condition("proxy, no respawn", ENV, {"respawn_delay": None}),
        ],
        args.seeds,
        args.out,
        "BoatRace: lagoon loop vs finishing the race",
        progress=not args.quiet,
        settings=shared_settings(args),
    )
