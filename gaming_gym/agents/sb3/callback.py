"""The callback that scores an SB3 run as native PPO's are scored: true returns beside SB3's
episode rewards, and evaluations (with the mitigations' measures and verdicts) into
:class:`gaming_gym.metrics.Evaluation` records."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback

from gaming_gym.agents.sb3.vec_env import ObservationNormaliser, load_statistics, sb3_policy
from gaming_gym.errors import ConfigError
from gaming_gym.evaluation import EpisodeReturns, evaluate
from gaming_gym.kernel import Policy
from gaming_gym.metrics import Evaluation
from gaming_gym.wrappers import EpisodeQueues


class GoodhartCallback(BaseCallback):
    """Log true returns beside SB3's episode rewards and record evaluations for the Goodhart metric.

    At each rollout's end it records ``rollout/ep_true_rew_mean`` and ``rollout/ep_proxy_rew_mean``
    (means over the last ``window`` episodes, as SB3's own ``ep_rew_mean``). At the start of the
    first rollout after every ``eval_every`` timesteps (so after the update of the rollout that
    reached them, as native PPO evaluates), at the start of training if ``evaluate_at_start``, and
    at the end of training it runs the model on ``eval_episodes`` fresh episodes of ``env_id`` and
    appends a :class:`gaming_gym.metrics.Evaluation` to :attr:`checkpoints`. A model trained
    under ``VecNormalize`` is evaluated on observations normalised by its current statistics.
    :attr:`episodes` (a :class:`gaming_gym.wrappers.EpisodeQueues`) holds the recent episodes.

    :attr:`mitigations` (set by :func:`~gaming_gym.agents.sb3.train_sb3`) measure at each
    evaluation and may stop training: the model then gets back the weights and observation
    statistics the verdict keeps, and training ends at the next step.

    Args:
        env_id, knobs: the env to evaluate on (the one being trained on).
        eval_every: timesteps between evaluations; 0 evaluates only when training ends.
        eval_episodes, seed, deterministic: passed to :func:`gaming_gym.evaluation.evaluate`.
        window: episodes averaged in the logged means.
        progress: show a tqdm progress bar with the recent proxy and true returns.
        evaluate_at_start: also evaluate the untrained model (at step 0), as native PPO does.
    """

    def __init__(
        self,
        env_id: str,
        knobs: dict[str, Any] | None = None,
        eval_every: int = 0,
        eval_episodes: int = 16,
        seed: int = 1_000_003,
        deterministic: bool = False,
        window: int = 100,
        progress: bool = False,
        verbose: int = 0,
        evaluate_at_start: bool = False,
    ):
        super().__init__(verbose)
        self.progress = progress
        self._bar = None
        if eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0 timesteps (0 = only at the end), got {eval_every}")
        self.env_id = env_id
        self.knobs = dict(knobs or {})
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.seed = seed
        self.deterministic = deterministic
        self.evaluate_at_start = evaluate_at_start
        self.episodes = EpisodeQueues(window)  # the recent episodes' proxy and true returns
        self.checkpoints: list[Evaluation] = []
        self.on_evaluation: Callable[[], None] | None = None
        self.before_rollout: Callable[[], None] | None = None
        """called as each rollout starts, when the model is whole (updated on the rollout before)"""
        self._next_eval = eval_every
        self.mitigations: list[Any] = []
        self.stopped_step: int | None = None
        self.kept_step: int | None = None

    def resume_at(self, num_timesteps: int, checkpoints: list[Evaluation]) -> None:
        """Continue a run saved after ``num_timesteps`` steps with its evaluations so far: the
        next evaluation is due at the first multiple of ``eval_every`` past it."""
        self.checkpoints = list(checkpoints)
        if self.eval_every:
            self._next_eval = (num_timesteps // self.eval_every + 1) * self.eval_every

    def _on_training_start(self) -> None:
        if self.progress:
            from tqdm.auto import tqdm

            total = self.locals.get("total_timesteps", self.model._total_timesteps)
            self._bar = tqdm(
                total=total, initial=self.num_timesteps, unit="step", unit_scale=True, desc="SB3 PPO"
            )
        if self.evaluate_at_start and self.num_timesteps == 0 and not self.checkpoints:
            self._evaluate()

    def _on_rollout_start(self) -> None:
        self.num_timesteps = self.model.num_timesteps
        if self.stopped_step is None and self.eval_every and self.num_timesteps >= self._next_eval:
            self._evaluate()
            self._next_eval = (self.num_timesteps // self.eval_every + 1) * self.eval_every
        if self.before_rollout is not None:
            self.before_rollout()

    def _on_step(self) -> bool:
        if self._bar is not None:
            self._bar.update(self.training_env.num_envs)
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is not None and "true_r" in episode:
                self.episodes.extend([episode["proxy_r"]], [episode["true_r"]], [episode["l"]])
        return self.stopped_step is None

    def _on_rollout_end(self) -> None:
        means = self.episodes.means()
        if not means:
            return
        if self._bar is not None:
            self._bar.set_postfix(proxy=f"{means['proxy']:.2f}", true=f"{means['true']:.2f}")
        self.logger.record("rollout/ep_proxy_rew_mean", means["proxy"])
        self.logger.record("rollout/ep_true_rew_mean", means["true"])
        for name, key in (("proxy_return", "proxy"), ("true_return", "true"), ("episode_length", "length")):
            self.logger.record(f"charts/{name}", means[key])  # native PPO's progress.csv columns

    def _on_training_end(self) -> None:
        self.num_timesteps = self.model.num_timesteps
        if self.stopped_step is None and (
            not self.checkpoints or self.checkpoints[-1].step != self.num_timesteps
        ):
            self._evaluate()
        if self._bar is not None:
            self._bar.close()

    def policy(self) -> Policy:
        """The model as it is now, normalising observations as its training env does."""
        vec_normalize = self.model.get_vec_normalize_env()
        normalise = None if vec_normalize is None else ObservationNormaliser.of(vec_normalize)
        return sb3_policy(self.model, self.deterministic, normalise)

    def play(self, episodes: int, seed: int) -> EpisodeReturns:
        """The model as it is now, played for ``episodes`` episodes from ``seed`` on a forked torch
        RNG seeded with it, so playing leaves the training run unchanged."""
        with seeded_rng(seed, self.model.device):
            return evaluate(self.policy(), self.env_id, episodes=episodes, seed=seed, knobs=self.knobs)

    def _evaluate(self) -> None:
        returns = self.play(self.eval_episodes, self.seed)
        extras = {
            name: values[0]
            for mitigation in self.mitigations
            for name, values in mitigation.measure().items()
        }
        self.checkpoints.append(Evaluation(self.num_timesteps, returns.proxy, returns.true, **extras))
        self.logger.record("eval/proxy_return", float(returns.proxy.mean()))
        self.logger.record("eval/true_return", float(returns.true.mean()))
        for mitigation in self.mitigations:
            verdict = mitigation.at_evaluation([0]).get(0)
            if verdict is not None and self.stopped_step is None:
                self.load_agent_state(verdict.keep)
                self.stopped_step, self.kept_step = self.num_timesteps, verdict.kept_step
        if self.on_evaluation is not None:
            self.on_evaluation()

    def agent_state(self) -> dict[str, Any]:
        """A copy of the model's weights and observation statistics (what early stopping keeps)."""
        vec_normalize = self.model.get_vec_normalize_env()
        return {
            "policy": {name: tensor.clone() for name, tensor in self.model.policy.state_dict().items()},
            "obs_rms": None if vec_normalize is None else ObservationNormaliser.of(vec_normalize).state(),
        }

    def load_agent_state(self, state: dict[str, Any]) -> None:
        self.model.policy.load_state_dict(state["policy"])
        vec_normalize = self.model.get_vec_normalize_env()
        if vec_normalize is not None and state.get("obs_rms") is not None:
            load_statistics(vec_normalize.obs_rms, state["obs_rms"])


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """The block on a forked torch RNG (the model's CUDA one too) seeded with ``seed``."""
    with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):
        torch.manual_seed(seed)
        yield
