"""TallFall: PPO on head displacement grows tall and falls; a low height cap makes walking pay.

    python experiments/tall_fall_height.py [--seeds 0 1 2] [--steps N] [--out runs/tall_fall_height]

Arms: the maximum-height knob swept from gameable (10 m) to aligned (1.2 m), PPO on the proxy,
plus PPO on the true objective at the default knobs. Prints the Goodhart table per arm and
writes runs/tall_fall_height/comparison.png.
"""

from _common import parse_args, shared_settings

from gaming_gym.experiment import Condition, run_conditions

ENV = "GamingGym/TallFall-v0"

if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=1_000_000, default_out="runs/tall_fall_height")
    run_conditions(
        [
            *(Condition(f"proxy, max_height={h}", ENV, {"max_height": h}) for h in (10.0, 4.0, 1.2)),
            Condition("true reward", ENV, settings={"reward": "true"}),
        ],
        args.seeds,
        args.out,
        "TallFall: falling vs walking, by maximum height",
        progress=not args.quiet,
        settings=shared_settings(args),
    )
