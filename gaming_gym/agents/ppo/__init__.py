"""PPO that lives on one torch device: rollout, GAE and updates never leave it.

After CleanRL's ``ppo.py`` (a config dataclass with a docstring per field, ``charts/`` and
``losses/`` log tags), in five modules that each read top to bottom:

* :mod:`~gaming_gym.agents.ppo.algorithm`: the algorithm itself, :func:`collect_rollout` (with
  the :func:`kl_penalty` reward term), :func:`compute_gae` and :func:`ppo_update`;
* :mod:`~gaming_gym.agents.ppo.networks`: the :class:`ActorCritic`, its policy heads and its
  running observation statistics;
* :mod:`~gaming_gym.agents.ppo.config`: :class:`PPOConfig` and :func:`default_config`;
* :mod:`~gaming_gym.agents.ppo.training`: :func:`train` (the loop, evaluations, early stopping,
  checkpoints and resumption) and :func:`load_agent`;
* :mod:`~gaming_gym.agents.ppo.stacked`: :func:`train_stacked`, many runs (seeds, coefficients) as
  one batched computation, each as it would train alone.

The batched :class:`~gaming_gym.core.GameableVectorEnv` is stepped directly with tensors, so a
whole rollout runs without a numpy round trip, and the host reads the device's numbers a fixed
few times an iteration (the env's autoreset check aside, once a step), not per step or minibatch.

PPO trains on the *proxy* reward by default, which is how it discovers the exploit;
``reward="true"`` trains on ``info["true_reward"]`` instead, the intended baseline every
Goodhart experiment compares against.

Every evaluation, from the untrained policy at step 0 on, also measures the KL divergence of the
policy from its initial self (Gao et al.'s optimisation distance is its square root). Two
mitigations of Goodhart's law are configuration switches: a KL penalty toward the initial policy
or a behaviour-cloned copy of the env's intended policy (``kl_coef``, ``kl_reference``; RLHF's
SFT-model penalty), and early stopping at the Goodhart onset as a held-out true-reward check
sees it (``holdout_episodes``, ``early_stop``; after Karwowski et al.).

Example::

    from gaming_gym.agents.ppo import default_config, train

    result = train(default_config("GamingGym/BoatRace-v1", seed=0), run_dir="runs/boat")
    print(result.checkpoints[-1].proxy.mean(), result.checkpoints[-1].true.mean())
"""

from gaming_gym.agents.ppo.algorithm import (
    Rollout,
    bootstrap_values,
    collect_rollout,
    compute_gae,
    kl_penalty,
    ppo_loss,
    ppo_update,
)
from gaming_gym.agents.ppo.config import (
    DEFAULT_CONFIGS,
    KL_REFERENCES,
    MAX_PARAMETERS,
    MAX_WIDTH,
    REWARDS,
    TRUE_REWARD_CONFIGS,
    PPOConfig,
    default_config,
)
from gaming_gym.agents.ppo.networks import (
    ActorCritic,
    DiscreteHead,
    GaussianHead,
    ReferencePolicy,
    RunningMeanStd,
    kl_from,
    make_head,
)
from gaming_gym.agents.ppo.stacked import train_stacked
from gaming_gym.agents.ppo.training import (
    EVAL_COLUMNS,
    EVAL_SEED_OFFSET,
    HOLDOUT_SEED_OFFSET,
    REFERENCE_ENVS,
    REFERENCE_SEED_OFFSET,
    RESUMABLE_CHANGES,
    TrainResult,
    build_intended_reference,
    checkpoint_state,
    evaluate_agent,
    load_agent,
    train,
)

__all__ = [
    "DEFAULT_CONFIGS",
    "EVAL_COLUMNS",
    "EVAL_SEED_OFFSET",
    "HOLDOUT_SEED_OFFSET",
    "KL_REFERENCES",
    "MAX_PARAMETERS",
    "MAX_WIDTH",
    "REFERENCE_ENVS",
    "REFERENCE_SEED_OFFSET",
    "RESUMABLE_CHANGES",
    "REWARDS",
    "TRUE_REWARD_CONFIGS",
    "ActorCritic",
    "DiscreteHead",
    "GaussianHead",
    "PPOConfig",
    "ReferencePolicy",
    "Rollout",
    "RunningMeanStd",
    "TrainResult",
    "bootstrap_values",
    "build_intended_reference",
    "checkpoint_state",
    "collect_rollout",
    "compute_gae",
    "default_config",
    "evaluate_agent",
    "kl_from",
    "kl_penalty",
    "load_agent",
    "make_head",
    "ppo_loss",
    "ppo_update",
    "train",
    "train_stacked",
]
