"""The stable-baselines3 path: train SB3 agents on batched gameable envs and score them the same way.

Needs the optional extra: ``pip install 'gaming_gym[sb3]'``.

* :mod:`~gaming_gym.agents.sb3.vec_env`: :class:`SB3VecEnv` adapts a batched
  :class:`~gaming_gym.fronts.GameableVectorEnv` (torch, on its device) to SB3's ``VecEnv``
  (numpy): ``dones`` joins terminated and truncated, an ended episode's last observation is in
  ``info["terminal_observation"]``, a time-limit end is flagged by ``info["TimeLimit.truncated"]``,
  and ``info["episode"]`` carries the episode's return and length (as SB3's ``Monitor`` writes
  them) and its true return as ``"true_r"``. So SB3 PPO trains on thousands of envs stepped in
  one call. Plain ``gymnasium.make`` envs work with SB3 as usual.
* :mod:`~gaming_gym.agents.sb3.callback`: :class:`GoodhartCallback` logs the true return next to
  SB3's episode reward and evaluates the model periodically into
  :class:`gaming_gym.metrics.Evaluation` records for the Goodhart metric.
* :mod:`~gaming_gym.agents.sb3.settings` and :mod:`~gaming_gym.agents.sb3.training`:
  :func:`sb3_config`, :func:`translate` and :func:`train_sb3` run SB3 PPO like for like with the
  native PPO (:mod:`gaming_gym.agents.ppo`): the same settings, in the same vocabulary (the fields
  of :class:`~gaming_gym.agents.ppo.PPOConfig`), tuned per env in :mod:`gaming_gym.agents.tuned`.

Mitigations (:mod:`gaming_gym.mitigations`) run under SB3 where their hooks allow: SB3 calls
``prepare``, ``measure``, ``at_evaluation`` and the state hooks, so early stopping works; a KL
penalty, which needs the policy's log-probabilities as each step is collected, is native PPO's, and
asking SB3 for one is refused in one line that says why.

What remains different from native PPO, and why: with ``clip_vloss``, SB3 minimises the clipped
value error alone where native PPO takes the larger of clipped and unclipped; SB3 evaluations
record no KL from the initial policy (no d curve or Gao fit); its ``progress.csv`` holds SB3's
own columns beside native PPO's ``charts/`` and ``eval/`` ones; a resumed SB3 run restarts its
episodes (a :class:`~gaming_gym.errors.GamingGymWarning` says so); the random streams differ.

Example::

    from gaming_gym.agents.sb3 import sb3_config, train_sb3

    result = train_sb3(sb3_config("GamingGym/BoatRace-v1", seed=0), run_dir="runs/boat-sb3")
    result.checkpoints  # one Evaluation(step, proxy, true) per evaluation
"""

try:
    import stable_baselines3  # noqa: F401
except ImportError as error:  # an optional extra
    from gaming_gym.errors import MissingDependencyError

    raise MissingDependencyError(
        "gaming_gym.agents.sb3 needs stable-baselines3; install it with "
        "pip install 'gaming_gym[sb3]' (or pip install stable-baselines3)"
    ) from error

from gaming_gym.agents.sb3.callback import GoodhartCallback
from gaming_gym.agents.sb3.settings import (
    AGENT_FILE,
    NATIVE_ONLY,
    RESUMABLE_CHANGES,
    LinearSchedule,
    SB3Settings,
    build_model,
    policy_kwargs,
    sb3_config,
    translate,
    wrap_env,
)
from gaming_gym.agents.sb3.training import SB3Result, load_sb3_policy, train_sb3
from gaming_gym.agents.sb3.vec_env import (
    CLIP_OBS,
    OBS_EPSILON,
    ObservationNormaliser,
    SB3VecEnv,
    ScaledReward,
    make_sb3_vec_env,
    sb3_policy,
)

__all__ = [
    "AGENT_FILE",
    "CLIP_OBS",
    "NATIVE_ONLY",
    "OBS_EPSILON",
    "RESUMABLE_CHANGES",
    "GoodhartCallback",
    "LinearSchedule",
    "ObservationNormaliser",
    "SB3Result",
    "SB3Settings",
    "SB3VecEnv",
    "ScaledReward",
    "build_model",
    "load_sb3_policy",
    "make_sb3_vec_env",
    "policy_kwargs",
    "sb3_config",
    "sb3_policy",
    "train_sb3",
    "translate",
    "wrap_env",
]
