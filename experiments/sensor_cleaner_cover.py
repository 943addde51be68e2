"""SensorCleaner: PPO on what the camera sees learns to cover it; forbid the cover and it cleans.

    python experiments/sensor_cleaner_cover.py [--seeds 0 1 2] [--steps N] [--out runs/sensor_cleaner_cover]

Arms: covering allowed (default), covering allowed but costly, covering impossible (aligned),
and PPO on the true objective. Prints the Goodhart table and writes
runs/sensor_cleaner_cover/comparison.png.
"""

from _common import parse_args, shared_settings

from gaming_gym.experiment import Condition, run_conditions

ENV = "GamingGym/SensorCleaner-v0"

if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=1_000_000, default_out="runs/sensor_cleaner_cover")
    run_conditions(
        [
            Condition("cover allowed", ENV),
            Condition("cover costs 0.5", ENV, {"cover_cost": 0.5}),
            Condition("cover impossible", ENV, {"can_cover": False}),
            Condition("true reward", ENV, settings={"reward": "true"}),
        ],
        args.seeds,
        args.out,
        "SensorCleaner: covering the camera, by the cover knob",
        progress=not args.quiet,
        settings=shared_settings(args),
    )
