"""Optimisation pressure on BoatRace: policy width and training steps against the Goodhart gap.

    python experiments/optimisation_pressure.py [--seeds 0 1 2] [--steps N] [--out runs/optimisation_pressure]

After Pan, Bhatia and Steinhardt (2022), "The Effects of Reward Misspecification": PPO on the
proxy with policy networks of growing width, over seeds, each run evaluated along training so
training steps are a second capability axis (BoatRace trains at a constant learning rate, so the
gap after s steps is the gap a run of s steps ends with). Prints the Goodhart table per width,
the gap by width and step count with the seeds' range, and every phase transition (a jump in
the mean gap between neighbouring settings larger than the seeds' spread); writes
comparison.png (final gaps by width) and capability.png (gap against steps, per width).
"""

from pathlib import Path

from _common import parse_args, shared_settings

from gaming_gym.experiment import (
    Condition,
    capability_table,
    gaps_at_steps,
    phase_transitions,
    run_conditions,
)
from gaming_gym.plots import plot_gap_by_capability

ENV = "GamingGym/BoatRace-v1"
WIDTHS = (4, 16, 64, 256)
STEP_FRACTIONS = (0.125, 0.25, 0.5, 1.0)  # of the training budget: the step counts in the table

if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=480 * 8192, default_out="runs/optimisation_pressure")
    conditions = [Condition(f"width {w}", ENV, settings={"hidden_sizes": (w, w)}) for w in WIDTHS]
    title = "BoatRace: optimisation pressure (policy width, training steps)"
    run_conditions(
        conditions, args.seeds, args.out, title, progress=not args.quiet, settings=shared_settings(args)
    )
    budgets = [int(args.steps * fraction) for fraction in STEP_FRACTIONS]
    gaps = gaps_at_steps(args.out, [c.label for c in conditions], args.seeds, budgets)
    print(capability_table(gaps, "Goodhart gap p - t: mean over seeds [min, max]"))
    transitions = phase_transitions(gaps)
    print("phase transitions (jumps in the mean gap larger than the seeds' spread):")
    print("\n".join(f"  {t}" for t in transitions) or "  none")
    print(plot_gap_by_capability(gaps, Path(args.out) / "capability.png", title))
