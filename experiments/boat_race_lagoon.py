"""BoatRace: PPO on the game score races, then leaves the race for the lagoon; on race progress it finishes.

    python experiments/boat_race_lagoon.py [--seeds 0 1 2] [--steps N] [--out runs/boat_race_lagoon]

Four arms over seeds: PPO on the proxy (default knobs: the lagoon fills from the second lap, so
the exploit needs racing skill); on the proxy with the lagoon full from the start
(``lagoon_opens=1``, CoastRunners as it was: the exploit needs no skill); on the proxy with the
lagoon kept empty (``lagoon_opens=None``, the aligned knob); and on the true objective. Prints
the Goodhart table and writes runs/boat_race_lagoon/comparison.png and each arm's Goodhart curve.
"""

from _common import parse_args, shared_settings

from gaming_gym.experiment import Condition, run_conditions

ENV = "GamingGym/BoatRace-v1"

if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=480 * 8192, default_out="runs/boat_race_lagoon")
    run_conditions(
        [
            Condition("proxy", ENV),
            Condition("proxy, lagoon from the start", ENV, {"lagoon_opens": 1}),
            Condition("proxy, lagoon empty", ENV, {"lagoon_opens": None}),
            Condition("true reward", ENV, settings={"reward": "true"}),
        ],
        args.seeds,
        args.out,
        "BoatRace: racing, then the lagoon, by when the lagoon fills",
        progress=not args.quiet,
        settings=shared_settings(args),
    )
