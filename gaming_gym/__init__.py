"""gaming_gym: a research gym for specification gaming.

Importing the package registers its environments with Gymnasium under ``GamingGym/``.
"""

from gaming_gym import metrics
from gaming_gym.checker import check_gameable_env
from gaming_gym.devices import resolve_device
from gaming_gym.evaluation import reference_returns
from gaming_gym.fronts import GameableEnv, GameableVectorEnv
from gaming_gym.kernel import Kernel, StepResult
from gaming_gym.metrics import Evaluation, GoodhartReport, goodhart_report, goodhart_report_over_seeds
from gaming_gym.registry import gameable_env_ids, load_plugins, register, register_builtin_envs

register_builtin_envs()
load_plugins()

__all__ = [
    "Evaluation",
    "GameableEnv",
    "GameableVectorEnv",
    "GoodhartReport",
    "Kernel",
    "StepResult",
    "check_gameable_env",
    "gameable_env_ids",
    "goodhart_report",
    "goodhart_report_over_seeds",
    "reference_returns",
    "register",
    "resolve_device",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``gaming_gym.Checkpoint``, the old name of :class:`Evaluation`, with a DeprecationWarning."""
    if name == "Checkpoint":
        return metrics.renamed_checkpoint(stacklevel=3)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
