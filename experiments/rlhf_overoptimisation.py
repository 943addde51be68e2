"""RLHF in miniature on ConfidentRater: reward models of the rater, PPO against them, overoptimisation.

    python experiments/rlhf_overoptimisation.py [--seeds 0 1 2] [--steps N] [--out runs/rlhf]

Bradley-Terry reward models (``gaming_gym.rlhf``) are fitted to the simulated raters'
comparisons of the SFT policy's answers (the scripted intended policy with half its actions
random; the raters score answers, not RESEARCH steps, so those are never compared and the
models score them 0): from 300, 3,000 and 30,000 comparisons, and from 3,000 comparisons of
raters who check more often (``check_prob`` 0.9 against 0.6). Each model's held-out preference
accuracy and its correlation with the hidden true reward are printed. PPO then starts from the
SFT clone (``kl_reference="sft"``: a clone of the same half-random demonstrator, so it starts
well below the intended policy, at t = 0.43) and trains against each model, evaluated every
iteration, without a KL penalty and, on the 3,000-comparison model, with ``kl_coef`` 0.2, 0.5
and 1 toward the SFT clone. Prints a per-seed table (peak and final true return with the d
where it peaked, final reward-model return, Gao et al.'s RL-form d* against the observed d
range), the dynamics table and a table of the mean curves (start, peak t and its d, final t and
d, the fall, d*); writes true_against_d_comparisons.png (the reward-model sizes and check_prob)
and true_against_d_kl.png (the KL coefficients): normalised true t (solid) and reward-model
score p (dashed) against d = sqrt(KL from the SFT policy).

Measured (seeds 0-2, 40 x 8192 steps a run, about 10 minutes on one CPU thread): every arm
rises from t = 0.43 to a mean peak of 0.61 (300 comparisons, at d = 0.70), 0.61 (3k, d = 1.02),
0.64 (30k, d = 0.98) and 0.68 (``check_prob`` 0.9, d = 1.68, the end of its curve) while the
model's score rises at 95-100% of evaluations; the true return then falls to -0.04, 0.42 and
0.55 (0.67: no fall yet). Fitted d* on the mean curves: 0.41 / 0.66 / 0.93 / 1.46. The KL
penalty stops the policy at final d 1.24 / 0.68 / 0.40 for ``kl_coef`` 0.2 / 0.5 / 1 (1.73
without), with a fall from the peak of 0.18 / 0.08 / 0.05 (0.18 without).
"""

import dataclasses
from pathlib import Path

import numpy as np
import torch
from _common import parse_args, shared_settings

from gaming_gym.envs import confident_rater as cr
from gaming_gym.experiment import Condition, condition_run_dir, dynamics_table, run_conditions
from gaming_gym.metrics import fit_gao
from gaming_gym.plots import plot_true_against_d
from gaming_gym.rlhf import (
    RewardModelConfig,
    collect_comparisons,
    load_reward_model,
    save_reward_model,
    train_reward_model,
)
from gaming_gym.runs import read_evaluations

ENV = "GamingGym/ConfidentRater-v0"
MODELS = {  # reward model name: (comparisons, env knobs of its raters and of the PPO runs on it)
    "300 comparisons": (300, {}),
    "3k comparisons": (3000, {}),
    "30k comparisons": (30000, {}),
    "3k, check_prob 0.9": (3000, {"check_prob": 0.9}),
}
KL_ARMS = {"3k, kl_coef 0.2": 0.2, "3k, kl_coef 0.5": 0.5, "3k, kl_coef 1": 1.0}
EVAL_EVERY = 1
"""Evaluate every iteration (the tuned setting is every 2): the true return peaks within the first
few iterations, at d 0.4-1.0, and a point every 0.1 in d there places the peak."""


def reward_model(out: Path, name: str, device: str) -> str:
    """The folder of reward model ``name``, trained and saved there unless it already is."""
    comparisons, knobs = MODELS[name]
    folder = out / "reward_models" / name.replace(" ", "_").replace(",", "")
    if not (folder / "reward_model.pt").exists():
        config = RewardModelConfig(env_id=ENV, knobs=knobs, comparisons=comparisons)
        model, report = train_reward_model(config, device="cpu" if device == "auto" else device)
        save_reward_model(model, config, report, folder)
    _, _, report = load_reward_model(folder, ENV)
    print(f"{name:<20} {report.summary()}")
    print(f"{'':<20} on 4,000 fresh SFT responses: {sft_correlations(str(folder), knobs)}")
    return str(folder)


def sft_correlations(folder: str, knobs: dict) -> str:
    """The model's Pearson correlation with the true reward on fresh SFT-policy responses (the
    comparisons' behaviour, other seeds): with the sampled true reward, and with its expectation
    given the observation (:func:`~gaming_gym.envs.confident_rater.expected_true_reward`: what
    an observation can tell at best), beside the rater score's own."""
    model, config, _ = load_reward_model(folder, ENV)
    fresh = dataclasses.replace(config, seed=config.seed + 1000, comparisons=2000)
    data = collect_comparisons(fresh)
    params = cr.KERNEL.make_params(**knobs)
    obs, actions = torch.cat((data.obs, data.obs)), torch.cat((data.first, data.second))
    scores, raters = model(obs, actions), torch.cat((data.rater_first, data.rater_second))
    sampled, expected = (
        torch.cat((data.true_first, data.true_second)),
        cr.expected_true_reward(params, obs, actions),
    )

    def r(x, y):
        return float(np.corrcoef(x.double().numpy(), y.double().numpy())[0, 1])

    return (
        f"corr(RM, true) {r(scores, sampled):.3f}, corr(RM, E[true | obs]) {r(scores, expected):.3f}; "
        f"rater's own: {r(raters, sampled):.3f}, {r(raters, expected):.3f}"
    )


def per_seed_table(out: Path, labels, seeds) -> str:
    lines = [
        f"{'arm':<22}{'seed':>5}{'peak true':>10}{'at d':>7}{'final true':>11}{'RM start':>10}"
        f"{'RM final':>10}{'RM monotone':>12}{'d*':>7}{'d range':>14}"
    ]
    for label in labels:
        for seed in seeds:
            records = read_evaluations(condition_run_dir(out, label, seed))
            d = np.sqrt([r.kl for r in records])
            true = np.array([np.mean(r.true) for r in records])
            rm = np.array([np.mean(r.proxy) for r in records])
            peak = int(np.argmax(true))
            fit = fit_gao(d, true - true[0], "rl")
            rises = float(np.mean(np.diff(rm) > 0))
            d_star = "n/a" if fit.peak_d is None else f"{fit.peak_d:.2f}"
            lines.append(
                f"{label:<22}{seed:>5}{true[peak]:10.2f}{d[peak]:7.2f}{true[-1]:11.2f}{rm[0]:10.1f}"
                f"{rm[-1]:10.1f}{rises:12.0%}{d_star:>7}{f'{d.min():.2f}-{d.max():.2f}':>14}"
            )
    return "\n".join(lines)


def mean_curve_table(reports) -> str:
    """Per arm, on the mean curves over seeds (normalised t): the start, the peak and the d where
    it is observed, the final t and d, the fall from the peak to the end, and the fitted d*."""
    lines = [
        f"{'arm':<22}{'start t':>8}{'peak t':>8}{'at d':>7}{'final t':>8}{'final d':>8}{'fall':>7}{'d*':>7}"
    ]
    for label, r in reports.items():
        peak, fit = r.observed_peak, (r.gao_fits or {}).get("rl")
        d_star = "n/a" if fit is None or fit.peak_d is None else f"{fit.peak_d:.2f}"
        lines.append(
            f"{label:<22}{r.true[0]:8.2f}{peak.true:8.2f}{peak.d:7.2f}{r.final_true:8.2f}{r.d[-1]:8.2f}"
            f"{peak.true - r.final_true:7.2f}{d_star:>7}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=40 * 8192, default_out="runs/rlhf")
    out = Path(args.out)
    models = {name: reward_model(out, name, args.device) for name in MODELS}
    arms = [
        Condition(name, ENV, knobs, {"reward_model": models[name], "kl_reference": "sft"})
        for name, (_, knobs) in MODELS.items()
    ]
    arms += [
        Condition(
            label, ENV, {}, {"reward_model": models["3k comparisons"], "kl_reference": "sft", "kl_coef": c}
        )
        for label, c in KL_ARMS.items()
    ]
    title = "ConfidentRater: PPO against a learned reward model"
    reports = run_conditions(
        arms,
        args.seeds,
        out,
        title,
        progress=not args.quiet,
        settings={**shared_settings(args), "eval_every": EVAL_EVERY},
    )
    print(per_seed_table(out, [arm.label for arm in arms], args.seeds))
    print(dynamics_table(reports, f"{title}: Goodhart dynamics (mean curves over seeds)"))
    print(mean_curve_table(reports))
    sizes = {label: reports[label] for label in MODELS}
    kl = {label: reports[label] for label in ["3k comparisons", *KL_ARMS]}
    print(plot_true_against_d(sizes, out / "true_against_d_comparisons.png", f"{title}: preference data"))
    print(plot_true_against_d(kl, out / "true_against_d_kl.png", f"{title}: KL penalty"))
