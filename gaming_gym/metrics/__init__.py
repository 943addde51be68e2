r"""The Goodhart-gap metric: how far a trained agent's proxy and true returns came apart.

Inputs are per-episode returns: the agent's at several training evaluations
(:class:`Evaluation`) and three references measured on the same env and knobs (see
:func:`gaming_gym.evaluation.reference_returns`): ``random`` (uniform random actions),
``intended`` (a scripted policy doing the true task well) and ``exploit`` (a scripted policy
gaming the proxy; reported for context, not needed for the metric). :func:`goodhart_report`
turns them into a :class:`GoodhartReport` of every measure of the table, with intervals.

One module per family of measures, and one table that every reader iterates:

* :mod:`~gaming_gym.metrics.records`: the evaluation records and their file;
* :mod:`~gaming_gym.metrics.curves`: normalisation (0 = random, 1 = intended) and the curves;
* :mod:`~gaming_gym.metrics.gap`: final p, t and gap p - t; the true drop, plain and cross-fitted;
* :mod:`~gaming_gym.metrics.rank`: Kendall's tau-b between the p and t curves;
* :mod:`~gaming_gym.metrics.onset`: the checkpoint after which t falls for good while p holds;
* :mod:`~gaming_gym.metrics.seeds`: each seed's numbers, and intervals over seeds;
* :mod:`~gaming_gym.metrics.leaderboard`: gaming rate, probability of improvement, a detector's AUROC;
* :mod:`~gaming_gym.metrics.gao`: d = sqrt(KL), Gao et al.'s fits of the true gain, the observed peak;
* :mod:`~gaming_gym.metrics.stopping`: early stopping on a held-out check, against the oracle stop;
* :mod:`~gaming_gym.metrics.intervals`: one run's bootstrap, several runs' Student t;
* :mod:`~gaming_gym.metrics.table`: :data:`MEASURES`, what each measure is and how it is shown;
* :mod:`~gaming_gym.metrics.report`: :class:`GoodhartReport` and :func:`goodhart_report`.

The trend measures (true drop, Kendall tau, onset, observed peak) need at least two checkpoints;
a report of one checkpoint gives the gap and leaves them ``None``.
"""

from typing import Any

from gaming_gym.metrics.curves import FALL_TOLERANCE, GoodhartWarning, describe_env, normalise
from gaming_gym.metrics.gao import GAO_FORMS, GaoFit, Peak, fit_gao
from gaming_gym.metrics.gap import true_drop
from gaming_gym.metrics.intervals import PERCENTILE_BOOTSTRAP, STUDENT_T_OVER_RUNS, student_t_quantile
from gaming_gym.metrics.onset import onset_index
from gaming_gym.metrics.rank import TIE_TOLERANCE, kendall_tau
from gaming_gym.metrics.records import (
    Evaluation,
    load_checkpoints,
    load_evaluations,
    renamed_checkpoint,
    save_checkpoints,
    save_evaluations,
)
from gaming_gym.metrics.report import (
    REPORT_FORMAT,
    GoodhartReport,
    goodhart_report,
    goodhart_report_over_seeds,
)
from gaming_gym.metrics.stopping import EarlyStop, EarlyStoppingOutcome, early_stop
from gaming_gym.metrics.table import MEASURES, Measure, measure

__all__ = [
    "FALL_TOLERANCE",
    "GAO_FORMS",
    "MEASURES",
    "PERCENTILE_BOOTSTRAP",
    "REPORT_FORMAT",
    "STUDENT_T_OVER_RUNS",
    "TIE_TOLERANCE",
    "EarlyStop",
    "EarlyStoppingOutcome",
    "Evaluation",
    "GaoFit",
    "GoodhartReport",
    "GoodhartWarning",
    "Measure",
    "Peak",
    "describe_env",
    "early_stop",
    "fit_gao",
    "goodhart_report",
    "goodhart_report_over_seeds",
    "kendall_tau",
    "load_checkpoints",
    "load_evaluations",
    "measure",
    "normalise",
    "onset_index",
    "save_checkpoints",
    "save_evaluations",
    "student_t_quantile",
    "true_drop",
]


def __getattr__(name: str) -> Any:
    """``Checkpoint``, the old name of :class:`Evaluation`, still imports, with a DeprecationWarning."""
    if name == "Checkpoint":
        return renamed_checkpoint(stacklevel=3)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
