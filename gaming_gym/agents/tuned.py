"""Tuned per-env training settings, one table read by both agents (as rl-zoo's hyperparameter files).

The settings are in one agent-neutral vocabulary, the field names of
:class:`gaming_gym.agents.ppo.PPOConfig` (``total_timesteps``, ``num_envs``, ``num_steps``,
``num_minibatches``, ``update_epochs``, ``learning_rate``, ``anneal_lr``, ``gamma``,
``gae_lambda``, ``clip_coef``, ``clip_vloss``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``,
``norm_obs``, ``reward_scale``, ``hidden_sizes``, ``eval_every`` (in iterations, i.e. rollouts),
...); a setting an env does not list keeps ``PPOConfig``'s default. Each agent translates them
with one function:

* native PPO reads them unchanged: :func:`gaming_gym.agents.ppo.default_config`;
* stable-baselines3 translates them into ``stable_baselines3.PPO`` arguments and env wrappers:
  :func:`gaming_gym.agents.sb3.sb3_config` and :func:`gaming_gym.agents.sb3.translate`.

So ``--agent ppo`` and ``--agent sb3`` train on the same footing, and a tuning lands in one place.
"""

from __future__ import annotations

from typing import Any

# Per-env settings under which PPO trained on the proxy finds each env's exploit on a 2-core CPU
# within minutes (measured with native PPO over seeds 0-4). Iteration counts are whole rollouts of
# 8192 steps.
TUNED: dict[str, dict[str, Any]] = {
    # Episodes are short (at most 30 steps) and the maze small: with the default rollout shape
    # (64 x 128) PPO on the proxy takes the shortcut when unwatched and walks over the button when
    # watched from about 0.15M steps on, in seeds 0-4 alike (gap 0.76-0.81 at 0.41M), and on the
    # true reward learns the long way round the button (t 0.8-0.9). Under a minute a run on 2
    # busy cores; evaluations every 5 iterations.
    "GamingGym/AbsentSupervisor-v0": {"total_timesteps": 50 * 8192, "eval_every": 5},
    # Racing is learnt first (the lagoon is empty on the first lap), then the ring of lagoon targets
    # lures the racer off the line from its second lap: within 1-3M steps for most seeds. Many
    # short rollouts (256 x 32) and a constant learning rate keep the late phase learning.
    "GamingGym/BoatRace-v1": {
        "total_timesteps": 480 * 8192,
        "eval_every": 10,
        "num_envs": 256,
        "num_steps": 32,
        "anneal_lr": False,
    },
    # Growing tall and toppling shows after about 0.25M steps, unless walking is learnt first (a
    # local optimum); 256 envs x 32 steps explore more starts per update than 64 x 128 (4 of 5
    # seeds fall against 3 of 5). Evaluations every 5 iterations (cheap here) catch the true
    # return's rise before the fall, which lasts only a few iterations. Seeds 0-4 (2026-11-28): 1, 2
    # and 4 peak at t 0.61-0.74 (0.08-0.16M steps) and fall to -0.3..-0.4; seed 0 falls from a
    # peak of 0.12; seed 3 learns to walk (t 0.99).
    "GamingGym/BoatRaceContinuous-v1": {  # tuned on seeds 0-4 (README, experiments/README.md)
        "total_timesteps": 480 * 8192,
        "eval_every": 10,
        "num_envs": 256,
        "num_steps": 32,
        "anneal_lr": False,
        "ent_coef": 0.003,
    },
    "GamingGym/TallFall-v0": {
        "total_timesteps": 75 * 8192,
        "eval_every": 5,
        "num_envs": 256,
        "num_steps": 32,
    },
    # Cleaning is learnt first (true return near the intended policy's by about 0.2M steps), then
    # covering the camera once it shows a clean room, within 0.2-0.4M steps: evaluations every 3
    # iterations show the rise and the fall. Cleaning one cell pays only 1/64 a step, so the
    # policy needs many small updates (32 minibatches, a higher learning rate) to learn it at all;
    # gamma 0.95 keeps returns (~20) and their noise from later mess drops small, and an unclipped
    # value loss lets the critic catch up with them in a few iterations.
    "GamingGym/SensorCleaner-v1": {
        "total_timesteps": 60 * 8192,
        "eval_every": 3,
        "gamma": 0.95,
        "clip_vloss": False,
        "num_minibatches": 32,
        "learning_rate": 1e-3,
    },
    # A random feed (mostly clickbait) loses its users within ~25 steps, so keeping them is learnt
    # first, with a mostly wholesome feed: p and t rise together, t to 0.80-0.90 by 0.25-0.37M
    # steps. Then PPO adds clickbait until users sit near the edge of leaving: t falls to about
    # 0.6 while p passes the exploit policy's (gap 1.0-1.1, seeds 0-4). Rewards scaled down
    # (returns of ~300 become ~15): without it the critic's gradient filled the clipped gradient
    # norm, the policy learnt slowly, and t stalled at 0.4-0.55 on the proxy and the true reward.
    "GamingGym/EngagementFeed-v0": {
        "total_timesteps": 120 * 8192,
        "eval_every": 5,
        "num_envs": 256,
        "num_steps": 32,
        "anneal_lr": False,
        "reward_scale": 0.05,
    },
    # One question a step or two, 32 an episode: short credit assignment (gamma 0.9). A constant,
    # higher learning rate lets PPO from the SFT clone (kl_reference="sft", the RLHF set-up) first
    # sharpen the clone's noisy answers and then overoptimise the rater (or a reward model of it)
    # within 40 iterations; 64 evaluation episodes every 2 iterations keep the true curve's noise
    # (about 4 a episode) small beside its rise and fall.
    # The coin is the only reward (sparse: random actions find it in 1.5% of training levels), so
    # PPO needs about a million steps to collect every coin at the end; then it walks to the end
    # of deployment levels too (one run, seed 0, 2026-12-04: training coin rate 1.0 from 0.86M
    # steps, deployment 0.25, the exploit policy's 0.29). Evaluations every 15 iterations.
    "GamingGym/CoinRun-v0": {"total_timesteps": 150 * 8192, "eval_every": 15},
    "GamingGym/ConfidentRater-v0": {
        "total_timesteps": 40 * 8192,
        "eval_every": 2,
        "eval_episodes": 64,
        "gamma": 0.9,
        "learning_rate": 1e-3,
        "anneal_lr": False,
    },
}


# Settings added when training on the true reward (``reward="true"``), the intended baseline.
TUNED_TRUE_REWARD: dict[str, dict[str, Any]] = {
    # Race progress pays about 0.003 a step: scale it up so the critic can tell progress apart.
    "GamingGym/BoatRace-v1": {"reward_scale": 100.0},
}


def tuned_settings(env_id: str, **overrides: Any) -> dict[str, Any]:
    """The tuned settings of ``env_id`` (those for the true reward too, when
    ``overrides["reward"] == "true"``), then ``overrides`` on top; an env without tuned settings
    gets just ``overrides``. Plain settings, not validated: each agent's translation checks them."""
    settings = dict(TUNED.get(env_id, {}))
    if overrides.get("reward") == "true":
        settings.update(TUNED_TRUE_REWARD.get(env_id, {}))
    return {**settings, **overrides}


__all__ = ["TUNED", "TUNED_TRUE_REWARD", "tuned_settings"]
