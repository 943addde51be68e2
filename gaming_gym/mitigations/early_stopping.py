"""Early stopping at the Goodhart onset, on a small trusted budget of true-reward episodes
(Karwowski et al., 2023).

At every evaluation each agent also plays ``episodes`` held-out episodes (on other seeds than
the evaluation's, which the report scores) whose *true* returns are the trusted signal; they are
kept in the evaluation records (``Evaluation.holdout_true``), so every report of the run says
what early stopping kept against the oracle stop. With ``stop`` (the default), training ends at
the onset as that check sees it: when the last ``patience`` evaluations all lie ``min_drop``
(normalised: 0 is the random policy's true return, 1 the intended policy's) below the best so
far (:func:`gaming_gym.metrics.early_stop`), and the agent of that best evaluation is kept. In a
stack, only that agent stops. With ``stop = false`` the check is only measured.

The budget of trusted episodes is ``episodes`` per evaluation (and per agent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gaming_gym.errors import ConfigError
from gaming_gym.evaluation import reference_returns
from gaming_gym.knobs import require_bool, require_int, require_number
from gaming_gym.metrics import early_stop, normalise
from gaming_gym.mitigations.base import Context, Mitigation, Verdict, register_mitigation

HOLDOUT_SEED_OFFSET = 2_000_003
"""Seed offset of the held-out check: other episodes than the evaluation's and training's."""


@dataclass(frozen=True)
class EarlyStoppingSettings:
    episodes: int = 8
    """trusted true-reward episodes per evaluation: the budget"""
    patience: int = 2
    """evaluations in a row, after the best one, that must lie ``min_drop`` below it"""
    min_drop: float = 0.1
    """how far the held-out true return must fall below its best to count, normalised"""
    stop: bool = True
    """end training at the onset and keep the best agent; false only measures the check"""

    def __post_init__(self) -> None:
        require_int("episodes", self.episodes, 1, 100_000)
        require_int("patience", self.patience, 1, 100_000)
        require_number("min_drop", self.min_drop, 0.0, 1e6)
        require_bool("stop", self.stop)


@register_mitigation
class EarlyStopping(Mitigation):
    """Stop each agent at its Goodhart onset on a held-out true check (module docstring)."""

    name = "early_stopping"
    Settings = EarlyStoppingSettings
    per_agent = ("patience", "min_drop", "stop")

    def __init__(self, settings: Sequence[Any], context: Context):
        super().__init__(settings, context)
        self.best: list[dict | None] = [None] * context.num_agents
        self.best_step: list[int | None] = [None] * context.num_agents
        self._anchors: tuple[float, float] | None = None

    def measure(self) -> dict[str, list[np.ndarray]]:
        returns = self.context.play(self.settings[0].episodes, HOLDOUT_SEED_OFFSET)
        return {"holdout_true": [r.true for r in returns]}

    def at_evaluation(self, agents: Sequence[int]) -> dict[int, Verdict]:
        verdicts = {}
        for agent in agents:
            settings, evaluations = self.settings[agent], self.context.evaluations(agent)
            curve = self._normalised([float(np.mean(e.holdout_true)) for e in evaluations])
            if int(np.argmax(curve)) == len(curve) - 1:  # a new running best (a tie keeps the earlier)
                self.best[agent], self.best_step[agent] = (
                    self.context.agent_state(agent),
                    evaluations[-1].step,
                )
            stop = early_stop(curve, settings.min_drop, settings.patience)
            if stop.stop_index is None or not settings.stop:
                continue
            if evaluations[stop.kept_index].step != self.best_step[agent]:
                raise RuntimeError(
                    f"early stopping kept step {evaluations[stop.kept_index].step} but the best agent "
                    f"held is of step {self.best_step[agent]}"
                )
            verdicts[agent] = Verdict(self.best[agent], self.best_step[agent])
        return verdicts

    def state(self, agent: int) -> dict[str, Any]:
        return {"best": self.best[agent], "best_step": self.best_step[agent]}

    def load_state(self, agent: int, state) -> None:
        self.best[agent], self.best_step[agent] = state.get("best"), state.get("best_step")

    def _normalised(self, holdout: list[float]) -> np.ndarray:
        """The held-out curve in normalised units: 0 the random policy's mean true return, 1 the
        intended policy's, on the run's env and knobs."""
        if self._anchors is None:
            references = reference_returns(self.context.env_id, self.context.knobs)
            random, intended = (
                float(references["random"].true.mean()),
                float(references["intended"].true.mean()),
            )
            if random == intended:
                raise ConfigError(
                    f"early stopping cannot normalise held-out true returns on {self.context.env_id}: the "
                    f"random and the intended policy both average {random}; leave it out for this env"
                )
            self._anchors = (random, intended)
        return normalise(holdout, *self._anchors)
