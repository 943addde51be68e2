"""Optimisation pressure on BoatRace: bigger policies and longer training game the proxy harder.

    python experiments/optimisation_pressure.py [--seeds 0 1 2] [--steps N] [--out runs/optimisation_pressure]

After Pan, Bhatia and Steinhardt (2022), "The Effects of Reward Misspecification": PPO on the
proxy with policy networks of growing width, over seeds. Each arm's Goodhart curve is true and
proxy return against training steps (the other axis of optimisation pressure); comparison.png
sets the final normalised proxy, true return and gap side by side by policy size.
"""

from _common import parse_args, shared_settings

from gaming_gym.experiment import Condition, run_conditions

ENV = "GamingGym/BoatRace-v1"

if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=1_500_000, default_out="runs/optimisation_pressure")
    run_conditions(
        [
            Condition(f"width {width}", ENV, settings={"hidden_sizes": (width, width)})
            for width in (4, 16, 64, 256)
        ],
        args.seeds,
        args.out,
        "BoatRace: optimisation pressure (policy width)",
        progress=not args.quiet,
        settings=shared_settings(args),
    )
