"""A KL penalty as a mitigation on BoatRace: how much true return each coefficient keeps.

    python experiments/kl_penalty.py [--seeds 0 1 2] [--steps N] [--out runs/kl_penalty]

PPO on the proxy with RLHF's KL penalty toward a behaviour-cloned copy of the scripted racer
(the SFT model's analogue, ``kl_reference="intended"``) at three coefficients: none, small and
large. Every run also plays a held-out true-reward check at each evaluation, so each arm's
report gives early stopping (Karwowski et al., 2023) against the oracle stop as well. Prints the
Goodhart table and a dynamics table per arm (peak and final p and t, the final optimisation
distance d = sqrt(KL from the initial policy), Gao et al.'s RL-form fit, early stopping's kept
t against the oracle's); writes comparison.png and true_against_d.png (t against d per arm).
"""

from pathlib import Path

from _common import parse_args, shared_settings

from gaming_gym.experiment import Condition, dynamics_table, run_conditions
from gaming_gym.plots import plot_true_against_d

ENV = "GamingGym/BoatRace-v1"
KL_COEFS = {"no penalty": 0.0, "kl_coef 0.01": 0.01, "kl_coef 0.1": 0.1}
MITIGATION = {"kl_reference": "intended", "holdout_episodes": 8}

if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=480 * 8192, default_out="runs/kl_penalty")
    title = "BoatRace: KL penalty toward a cloned racer"
    reports = run_conditions(
        [Condition(label, ENV, settings={"kl_coef": coef, **MITIGATION}) for label, coef in KL_COEFS.items()],
        args.seeds,
        args.out,
        title,
        progress=not args.quiet,
        settings=shared_settings(args),
    )
    print(dynamics_table(reports, f"{title}: Goodhart dynamics (mean curves over seeds)"))
    print(plot_true_against_d(reports, Path(args.out) / "true_against_d.png", title))
