"""PPO that lives on one torch device, for a stack of N >= 1 agents: rollout, GAE and updates
never leave the device, and a run of its own is a stack of one.

After CleanRL's ``ppo.py`` (a config dataclass with a docstring per field, ``charts/`` and
``losses/`` log tags), in modules that each read top to bottom:

* :mod:`~gaming_gym.agents.ppo.config`: :class:`PPOConfig`, :func:`default_config`, and which
  configs can train as one stack;
* :mod:`~gaming_gym.agents.ppo.networks`: the :class:`ActorCritic`, its policy heads and its
  running observation statistics;
* :mod:`~gaming_gym.agents.ppo.stack`: N networks acting as one (each on its block on a CPU,
  ``vmap`` over their parameters on an accelerator) and their per-agent :class:`Coefficients`;
* :mod:`~gaming_gym.agents.ppo.algorithm`: the algorithm itself, :func:`collect_rollout`,
  :func:`compute_gae` and :func:`ppo_update`, for N agents at once;
* :mod:`~gaming_gym.agents.ppo.cloning`: behaviour clones of an env's intended policy (the SFT
  model a run can start from, and a KL penalty's reference);
* :mod:`~gaming_gym.agents.ppo.context`: what a stack offers its mitigations, and its evaluation;
* :mod:`~gaming_gym.agents.ppo.checkpoints`: one agent's run and its checkpoint file,
  :func:`load_agent`;
* :mod:`~gaming_gym.agents.ppo.training`: the one loop, :func:`train_stacked` and :func:`train`.

The batched :class:`~gaming_gym.fronts.GameableVectorEnv` is stepped directly with tensors, so a
whole rollout runs without a numpy round trip, and the host reads the device's numbers a fixed
few times an iteration (the env's autoreset check aside, once a step), not per step or minibatch.

PPO trains on the *proxy* reward by default, which is how it discovers the exploit;
``reward="true"`` trains on ``info["true_reward"]`` instead, the intended baseline every
Goodhart experiment compares against. Every evaluation, from the untrained policy at step 0 on,
also measures the KL divergence of the policy from its initial self (Gao et al.'s optimisation
distance is its square root). Mitigations of Goodhart's law are plug-ins
(:mod:`gaming_gym.mitigations`), chosen by name in ``PPOConfig.mitigations``.

Example::

    from gaming_gym.agents.ppo import default_config, train, train_stacked

    result = train(default_config("GamingGym/BoatRace-v1", seed=0), run_dir="runs/boat")
    print(result.checkpoints[-1].proxy.mean(), result.checkpoints[-1].true.mean())
    seeds = train_stacked([default_config("GamingGym/BoatRace-v1", seed=s) for s in range(5)])
"""

from gaming_gym.agents.ppo.algorithm import Rollout, collect_rollout, compute_gae, ppo_loss, ppo_update
from gaming_gym.agents.ppo.checkpoints import CHECKPOINT_FILE, RESUMABLE_CHANGES, load_agent
from gaming_gym.agents.ppo.config import (
    DEFAULT_CONFIGS,
    MAX_PARAMETERS,
    MAX_WIDTH,
    PER_AGENT_SETTINGS,
    REWARDS,
    STARTS,
    TRUE_REWARD_CONFIGS,
    PPOConfig,
    default_config,
    stacking_key,
)
from gaming_gym.agents.ppo.context import EVAL_COLUMNS, EVAL_SEED_OFFSET
from gaming_gym.agents.ppo.networks import (
    ActorCritic,
    DiscreteHead,
    GaussianHead,
    RunningMeanStd,
    kl_from,
    make_head,
)
from gaming_gym.agents.ppo.stack import Coefficients, StackedAgents
from gaming_gym.agents.ppo.training import TrainResult, train, train_stacked

__all__ = [
    "CHECKPOINT_FILE",
    "DEFAULT_CONFIGS",
    "EVAL_COLUMNS",
    "EVAL_SEED_OFFSET",
    "MAX_PARAMETERS",
    "MAX_WIDTH",
    "PER_AGENT_SETTINGS",
    "RESUMABLE_CHANGES",
    "REWARDS",
    "STARTS",
    "TRUE_REWARD_CONFIGS",
    "ActorCritic",
    "Coefficients",
    "DiscreteHead",
    "GaussianHead",
    "PPOConfig",
    "Rollout",
    "RunningMeanStd",
    "StackedAgents",
    "TrainResult",
    "collect_rollout",
    "compute_gae",
    "default_config",
    "kl_from",
    "load_agent",
    "make_head",
    "ppo_loss",
    "ppo_update",
    "stacking_key",
    "train",
    "train_stacked",
]
