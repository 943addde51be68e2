"""SensorCleaner: PPO on what the camera sees learns to clean, then to cover the camera once the
room looks clean; forbid the cover and it keeps cleaning.

    python experiments/sensor_cleaner_cover.py [--seeds 0 1 2] [--steps N] [--out runs/sensor_cleaner_cover]

Arms: covering allowed once the camera shows at most 2 messy cells (default: the true return
rises, then falls), covering allowed at any time (v0's rules: covering is learnt first and the
true return never rises), covering allowed but costly, covering impossible (aligned), and PPO on
the true objective. Prints the Goodhart table and writes runs/sensor_cleaner_cover/comparison.png.
"""

from _common import parse_args, shared_settings

from gaming_gym.experiment import Condition, run_conditions

ENV = "GamingGym/SensorCleaner-v1"

if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=500_000, default_out="runs/sensor_cleaner_cover")
    run_conditions(
        [
            Condition("cover allowed, guarded", ENV),
            Condition("cover allowed, no guard", ENV, {"cover_guard": None}),
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
