"""The errors gaming_gym raises for bad input, after ``gymnasium.error``.

Every one derives from :class:`GamingGymError`, so the command line can tell a user's mistake
(printed as one line, exit status 2) from a bug (a traceback). Each also derives from the builtin
error that Python code raised here before, so existing ``except ValueError`` (or ``TypeError``,
``KeyError``, ``FileNotFoundError``, ``AssertionError``) callers keep working.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class GamingGymError(Exception):
    """Base of every error gaming_gym raises on purpose: the input, not the code, is wrong."""

    def __str__(self) -> str:
        # KeyError would print the message quoted; say it plainly whatever the builtin base.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ConfigError(GamingGymError, ValueError):
    """A setting, knob, argument or option has a value that is not accepted."""


class ConfigTypeError(ConfigError, TypeError):
    """A setting of the wrong type, or one that does not exist (an unknown knob or field)."""


class KernelContractError(ConfigTypeError):
    """A kernel whose functions break the contract's shape: a step that does not return a
    ``StepResult``, a state without its step counter ``t``, rewards of the wrong dtype."""


class UnknownPolicyError(ConfigError, KeyError):
    """No reference policy of that name."""


class DeviceError(ConfigError):
    """The torch device asked for does not exist or is not available on this machine."""


class InsufficientMemoryError(GamingGymError, MemoryError):
    """What was asked for would not fit in the memory available (e.g. a huge ``num_envs``)."""


class ActionError(GamingGymError, ValueError):
    """An action outside the action space, of the wrong shape, or not finite."""


class ResetNeededError(GamingGymError, RuntimeError):
    """An env was stepped, rendered or saved before its first ``reset``."""


class RunDirectoryError(GamingGymError, ValueError):
    """A run directory that is incomplete, corrupt, from an untrusted or older format, or misused."""


class RunNotFoundError(RunDirectoryError, FileNotFoundError):
    """No run directory (or no file it should hold) at the path given."""


class UnevenStackError(RunDirectoryError):
    """Runs to resume stacked stand at different iterations (killed between their checkpoints):
    each must resume alone."""


class RunExistsError(RunDirectoryError, FileExistsError):
    """The run directory already holds a run, and resuming it was turned off."""


class RunInUseError(RunDirectoryError):
    """Another process holds the run directory's lock: one run directory has one writer."""


class EnvCheckError(GamingGymError, AssertionError):
    """An env breaks the gameable-env contract (raised by ``check_gameable_env``)."""


class MissingInfoKeyError(GamingGymError, KeyError):
    """An env's step info lacks ``proxy_reward`` or ``true_reward``: it is not a gameable env."""


class MissingDependencyError(GamingGymError, ImportError):
    """An optional dependency that this feature needs is not installed."""


class CustomEnvImportError(GamingGymError, ImportError):
    """A module or file given to ``--import`` could not be found or imported."""


class MetricError(GamingGymError, ValueError):
    """Returns the Goodhart metric cannot be computed from (degenerate references, NaN, ...)."""


class GamingGymWarning(UserWarning):
    """Base of gaming_gym's warnings: something was wrong and was repaired, not refused."""


class RunDirectoryWarning(GamingGymWarning):
    """A run directory needed repair to resume, e.g. a progress log's last line cut short by a kill."""


def shortened(text: str, limit: int) -> str:
    """``text`` on one line, cut at the last whole word within ``limit`` characters (then "...")."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0] if " " in text[: limit - 3] else text[: limit - 3]
    return cut.rstrip(" ,;:") + "..."


def one_line_warnings(command: str, show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints gaming_gym's warnings (a repaired run directory) as
    one line, like its errors, and leaves every other warning to ``show``."""

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, GamingGymWarning):
            print(f"gaming-gym {command}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning


def one_line(error: BaseException) -> str:
    """The error's message on one line; a system error names the file and says what went wrong."""
    if isinstance(error, OSError) and not isinstance(error, GamingGymError) and error.strerror:
        where = f"{error.filename}: " if error.filename is not None else ""
        return f"{where}{error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__
