"""RLHF in miniature: preferences from an env's own raters, a Bradley-Terry reward model, PPO on it.

The pipeline of Christiano et al. (2017) and Ouyang et al. (2022), with every piece real and
small enough for a CPU:

1. :func:`collect_comparisons`: a behaviour policy (an env's scripted reference policy, here the
   "SFT" model, with uniformly random actions mixed in so the comparisons cover more than its
   habits) visits states; at each, two responses are sampled and the env's own proxy (its rater)
   scores both *from the same state*: the same rater compares the pair. Ties carry no preference
   and are dropped.
2. :func:`train_reward_model`: a small MLP ``r(obs, action)`` fitted by the Bradley-Terry
   likelihood ``P(a preferred to b) = sigmoid(r(s, a) - r(s, b))``, a fifth of the comparisons
   held out to report its preference accuracy, and its correlation with the hidden true reward.
3. :class:`RewardModelVectorEnv`: a device-resident wrapper of a batched gameable env whose
   ``reward`` (and ``info["proxy_reward"]``) is the model's score; ``info["true_reward"]`` stays,
   and the env's own proxy moves to ``info["rater_reward"]``. ``PPOConfig.reward_model`` trains
   native PPO through it: RLHF's set-up starts the policy as the SFT model (``start="sft"``) with
   a KL penalty toward it (the ``kl_reference`` mitigation, ``reference="sft"``).

A reward model is saved as a directory of two files: ``reward_model.json`` (its config, the env
and knobs it was trained for, and its measured accuracy) and ``reward_model.pt`` (a plain
``state_dict``, read back with ``torch.load(weights_only=True)``: nothing is unpickled).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from gaming_gym.devices import resolve_device
from gaming_gym.errors import ConfigError, RunDirectoryError, RunNotFoundError, shortened
from gaming_gym.files import atomic_write, write_text_atomically
from gaming_gym.fronts import GameableVectorEnv
from gaming_gym.kernel import seeded_generator
from gaming_gym.knobs import is_int
from gaming_gym.policies import random_policy, reference_policy

CONFIG_FILE = "reward_model.json"
WEIGHTS_FILE = "reward_model.pt"
FORMAT = "gaming_gym.reward_model/1"
UNRATED_ACTIONS = {"GamingGym/ConfidentRater-v0": (0,)}
"""Per env, the actions its raters never score (see ``RewardModelConfig.unrated_actions``)."""
HELD_OUT = 0.2
"""Share of the comparisons kept out of the fit to measure the model's preference accuracy."""


@dataclass
class RewardModelConfig:
    """How a reward model is made: from which env, how many comparisons, what network."""

    env_id: str = "GamingGym/ConfidentRater-v0"
    """registered gameable env whose proxy (its rater) provides the preferences"""
    knobs: dict[str, Any] = field(default_factory=dict)
    """env knobs (``check_prob``, say)"""
    comparisons: int = 3000
    """preference pairs collected (ties dropped, so slightly fewer are kept)"""
    behaviour: str = "intended"
    """the scripted reference policy whose states and responses are compared: the SFT model"""
    exploration: float = 0.5
    """chance of a uniformly random action in each response instead of the behaviour policy's"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the model's tanh hidden layers"""
    epochs: int = 30
    """passes over the training comparisons"""
    learning_rate: float = 3e-3
    """Adam learning rate"""
    seed: int = 0
    """seeds the env, the behaviour policy's exploration, the network and the fit"""
    num_envs: int = 256
    """envs stepped in parallel while collecting"""
    unrated_actions: tuple[int, ...] | None = None
    """discrete actions the raters never see (ConfidentRater's RESEARCH, ``(0,)``: the rater
    scores answers, not the looking that precedes them): no comparison involves one, and the
    model scores them 0, as the env's own proxy does; ``None``: the env's entry in
    :data:`UNRATED_ACTIONS`, else none"""

    def __post_init__(self) -> None:
        from gaming_gym.registry import check_knobs

        self.knobs = dict(self.knobs)
        check_knobs(self.env_id, self.knobs)
        self.hidden_sizes = tuple(self.hidden_sizes)
        if self.unrated_actions is None:
            self.unrated_actions = UNRATED_ACTIONS.get(self.env_id, ())
        self.unrated_actions = tuple(self.unrated_actions)
        if not all(is_int(a) and a >= 0 for a in self.unrated_actions):
            raise ConfigError(
                f"RewardModelConfig.unrated_actions must be action indices, got {self.unrated_actions!r}"
            )
        for name, low in (("comparisons", 10), ("epochs", 1), ("num_envs", 1)):
            value = getattr(self, name)
            if not is_int(value) or value < low:
                raise ConfigError(f"RewardModelConfig.{name} must be an int >= {low}, got {value!r}")
        if not isinstance(self.exploration, (int, float)) or not 0 <= self.exploration <= 1:
            raise ConfigError(f"RewardModelConfig.exploration must be in [0, 1], got {self.exploration!r}")
        rate = self.learning_rate
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not math.isfinite(rate)
            or rate <= 0
        ):
            raise ConfigError(f"RewardModelConfig.learning_rate must be a finite number > 0, got {rate!r}")
        if not self.hidden_sizes or not all(is_int(w) and 1 <= w <= 4096 for w in self.hidden_sizes):
            raise ConfigError(
                f"RewardModelConfig.hidden_sizes must be ints from 1 to 4096, got {self.hidden_sizes!r}"
            )
        if not is_int(self.seed) or not 0 <= self.seed <= 2**62:
            raise ConfigError(f"RewardModelConfig.seed must be an int from 0 to 2**62, got {self.seed!r}")


class RewardModel(nn.Module):
    """``r(obs, action)``: an MLP on the observation and the one-hot action (or the action vector
    of a Box space), one scalar per step. ``offset`` and ``scale`` (buffers) standardise the
    scores of the comparisons it was fitted on to mean 0 and standard deviation 1, so a KL
    coefficient means the same for any model; ``unrated`` actions score 0."""

    def __init__(
        self,
        obs_size: int,
        action_space: gym.Space,
        hidden_sizes: tuple[int, ...],
        unrated_actions: tuple[int, ...] = (),
    ):
        super().__init__()
        if isinstance(action_space, gym.spaces.Discrete):
            self.num_actions = int(action_space.n)
            action_size = self.num_actions
        elif isinstance(action_space, gym.spaces.Box):
            self.num_actions = 0
            action_size = int(np.prod(action_space.shape))
        else:
            raise ConfigError(f"a reward model takes Discrete or Box actions, got {action_space}")
        sizes = (obs_size + action_size, *hidden_sizes)
        layers: list[nn.Module] = []
        for inputs, outputs in zip(sizes, sizes[1:], strict=False):
            layers += [nn.Linear(inputs, outputs), nn.Tanh()]
        layers.append(nn.Linear(sizes[-1], 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("offset", torch.tensor(0.0))
        self.register_buffer("scale", torch.tensor(1.0))
        rated = torch.ones(max(self.num_actions, 1))
        if unrated_actions and not self.num_actions:
            raise ConfigError("unrated_actions needs a Discrete action space")
        if any(a >= self.num_actions for a in unrated_actions):
            raise ConfigError(f"unrated_actions {unrated_actions} lie outside {action_space}")
        rated[list(unrated_actions)] = 0.0
        self.register_buffer("rated", rated)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        obs = obs.flatten(1).float()
        if self.num_actions:
            rated = self.rated[action.long()]
            action = nn.functional.one_hot(action.long(), self.num_actions).float()
        else:
            rated = 1.0
            action = action.flatten(1).float()
        score = self.net(torch.cat((obs, action), dim=1)).squeeze(1)
        return (score - self.offset) / self.scale * rated


@dataclass
class Comparisons:
    """Preference pairs: at state ``obs``, response ``first`` was preferred (``label`` 1) or not
    (0) to ``second``. ``true_first``/``true_second`` and ``rater_first``/``rater_second`` keep each
    response's hidden true reward and the rater's score, to measure the model against."""

    obs: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    label: torch.Tensor
    true_first: torch.Tensor
    true_second: torch.Tensor
    rater_first: torch.Tensor
    rater_second: torch.Tensor

    def __len__(self) -> int:
        return len(self.label)

    def take(self, rows: torch.Tensor | slice) -> Comparisons:
        return Comparisons(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


@torch.no_grad()
def collect_comparisons(config: RewardModelConfig, device: str | torch.device = "cpu") -> Comparisons:
    """Walk the behaviour policy through ``config.env_id`` and have its rater compare two sampled
    responses at each state, until ``config.comparisons`` pairs with a preference are kept.

    Both responses are scored by the env's kernel from the same state (so by the same rater draw:
    one rater compares the pair), without advancing the env; the env then steps on with the first.
    """
    device = resolve_device(device)
    env = gym.make_vec(config.env_id, num_envs=config.num_envs, device=device, **config.knobs)
    front = env.unwrapped
    if not isinstance(front, GameableVectorEnv):
        env.close()
        raise ConfigError(f"{config.env_id} has no batched gameable front; a reward model needs one")
    try:
        behaviour = reference_policy(config.env_id, config.behaviour, config.knobs, seed=config.seed)
        explore = random_policy(env.single_action_space, seed=config.seed + 1)
        generator = seeded_generator(config.seed + 2, device)
        kernel, params = front.kernel, front.params
        unrated = torch.tensor(config.unrated_actions, dtype=torch.long, device=device)

        def rated(action: torch.Tensor) -> torch.Tensor:
            return (
                ~torch.isin(action.long(), unrated)
                if len(unrated)
                else torch.ones_like(action, dtype=torch.bool)
            )

        def respond(obs: torch.Tensor) -> torch.Tensor:
            action = torch.as_tensor(behaviour(obs), device=device)
            noisy = torch.rand(len(obs), generator=generator, device=device) < config.exploration
            return torch.where(
                noisy.view(-1, *[1] * (action.dim() - 1)), explore(obs).to(action.dtype), action
            )

        obs, _ = env.reset(seed=config.seed)
        kept: list[Comparisons] = []
        count, stalled = 0, 0
        while count < config.comparisons:
            first, second = respond(obs), respond(obs)
            a, b = kernel.step(params, front.state, first), kernel.step(params, front.state, second)
            preferred = (a.proxy != b.proxy) & rated(first) & rated(second)
            pairs = Comparisons(
                obs, first, second, (a.proxy > b.proxy).float(), a.true, b.true, a.proxy, b.proxy
            ).take(preferred)
            kept.append(pairs)
            count += len(pairs)
            stalled = stalled + 1 if len(pairs) == 0 else 0
            if stalled > 1000:
                raise ConfigError(
                    f"{config.env_id}'s rater gave the same score to every pair for 1000 steps: "
                    "there is nothing to learn preferences from"
                )
            obs, *_ = env.step(first)
    finally:
        env.close()
    merged = Comparisons(*(torch.cat(column) for column in zip(*(astuple(c) for c in kept), strict=True)))
    return merged.take(slice(0, config.comparisons))


def astuple(comparisons: Comparisons) -> tuple[torch.Tensor, ...]:
    return tuple(getattr(comparisons, name) for name in comparisons.__dataclass_fields__)


@dataclass
class RewardModelReport:
    """How good a reward model is, measured when it was trained."""

    comparisons: int
    train_accuracy: float
    held_out_accuracy: float
    """share of held-out comparisons whose preferred response the model scores higher"""
    rater_held_out_accuracy: float
    """the same for the (noiseless) rater score itself: 1.0, the ceiling, as a check"""
    true_correlation: float
    """Pearson correlation of the model's score with the hidden true reward over the held-out
    responses (the behaviour policy's, exploration included)"""
    rater_true_correlation: float
    """the rater score's own correlation with the true reward on the same responses"""
    behaviour_true_correlation: float
    """the model's correlation with the true reward on the behaviour policy's own (unexplored)
    answers to held-out states"""

    def summary(self) -> str:
        return (
            f"reward model from {self.comparisons} comparisons: held-out preference accuracy "
            f"{self.held_out_accuracy:.3f} (train {self.train_accuracy:.3f}); correlation with the true "
            f"reward {self.true_correlation:.3f} on held-out responses (the rater's own: "
            f"{self.rater_true_correlation:.3f}), {self.behaviour_true_correlation:.3f} on the "
            "behaviour policy's own answers"
        )


def train_reward_model(
    config: RewardModelConfig, device: str | torch.device = "cpu", comparisons: Comparisons | None = None
) -> tuple[RewardModel, RewardModelReport]:
    """Collect comparisons (unless given) and fit a :class:`RewardModel` to them by the
    Bradley-Terry likelihood; return it with its :class:`RewardModelReport`."""
    device = resolve_device(device)
    data = comparisons if comparisons is not None else collect_comparisons(config, device)
    env = gym.make_vec(config.env_id, num_envs=1, **config.knobs)
    obs_size = int(np.prod(env.single_observation_space.shape))
    action_space = env.single_action_space
    env.close()
    generator = seeded_generator(config.seed + 3, torch.device("cpu"))
    order = torch.randperm(len(data), generator=generator).to(device)
    held = max(1, int(len(data) * HELD_OUT))
    test, fit = data.take(order[:held]), data.take(order[held:])
    with torch.random.fork_rng(devices=[]):  # the network's initial weights; the global RNG is restored
        torch.manual_seed(config.seed)
        model = RewardModel(obs_size, action_space, config.hidden_sizes, config.unrated_actions)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    for _ in range(config.epochs):
        for rows in torch.randperm(len(fit), generator=generator).to(device).split(256):
            batch = fit.take(rows)
            margin = model(batch.obs, batch.first) - model(batch.obs, batch.second)
            loss = nn.functional.binary_cross_entropy_with_logits(margin, batch.label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.requires_grad_(False)
    with torch.no_grad():
        scores = torch.cat((model(fit.obs, fit.first), model(fit.obs, fit.second)))
        model.offset.fill_(float(scores.mean()))
        model.scale.fill_(max(float(scores.std()), 1e-6))
        report = _measure(config, model, fit, test, device)
    return model, report


def _accuracy(model: RewardModel, data: Comparisons) -> float:
    margin = model(data.obs, data.first) - model(data.obs, data.second)
    return float(((margin > 0).float() == data.label).float().mean())


def _correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double().cpu().numpy(), y.double().cpu().numpy()
    if x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _measure(
    config: RewardModelConfig, model: RewardModel, fit: Comparisons, test: Comparisons, device: torch.device
) -> RewardModelReport:
    rater_margin = test.rater_first - test.rater_second
    scores = torch.cat((model(test.obs, test.first), model(test.obs, test.second)))
    trues = torch.cat((test.true_first, test.true_second))
    raters = torch.cat((test.rater_first, test.rater_second))
    behaviour = reference_policy(config.env_id, config.behaviour, config.knobs, seed=config.seed)
    own = torch.as_tensor(behaviour(test.obs), device=device)
    # the behaviour policy's own answers: their true reward, from the states the pairs came from,
    # is known only where one of the two sampled responses was the policy's own action
    mine = torch.cat((test.first == own, test.second == own))
    return RewardModelReport(
        comparisons=len(fit) + len(test),
        train_accuracy=_accuracy(model, fit),
        held_out_accuracy=_accuracy(model, test),
        rater_held_out_accuracy=float(((rater_margin > 0).float() == test.label).float().mean()),
        true_correlation=_correlation(scores, trues),
        rater_true_correlation=_correlation(raters, trues),
        behaviour_true_correlation=_correlation(scores[mine], trues[mine]),
    )


# --- saving and loading --------------------------------------------------------------------------


def save_reward_model(
    model: RewardModel, config: RewardModelConfig, report: RewardModelReport, path: str | os.PathLike
) -> Path:
    """Write ``reward_model.pt`` (the state dict) and ``reward_model.json`` (config, spaces'
    sizes, report) into the folder ``path``, each atomically."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; a reward model is saved as a folder")
    with atomic_write(folder / WEIGHTS_FILE) as partial:
        torch.save({name: tensor.cpu() for name, tensor in model.state_dict().items()}, partial)
    description = {
        "format": FORMAT,
        "config": {
            **asdict(config),
            "hidden_sizes": list(config.hidden_sizes),
            "unrated_actions": list(config.unrated_actions),
        },
        "report": asdict(report),
    }
    write_text_atomically(folder / CONFIG_FILE, json.dumps(description, indent=2) + "\n")
    return folder


def load_reward_model(
    path: str | os.PathLike,
    env_id: str | None = None,
    knobs: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[RewardModel, RewardModelConfig, RewardModelReport]:
    """A reward model saved by :func:`save_reward_model`; with ``env_id``, refuse one trained
    for another env (a :class:`ConfigError`). Knobs may differ (a model trained at one
    ``check_prob`` can score another), but the observation and action spaces must match."""
    from gaming_gym.registry import gameable_env_ids

    folder = Path(path)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise RunNotFoundError(
            f"no reward model at {folder}: expected {CONFIG_FILE} and {WEIGHTS_FILE} there"
        )
    try:
        description = json.loads((folder / CONFIG_FILE).read_text())
        if description.get("format") != FORMAT:
            raise ValueError(f"format {description.get('format')!r}, expected {FORMAT!r}")
        config = RewardModelConfig(**description["config"])
        report = RewardModelReport(**description["report"])
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise RunDirectoryError(f"cannot read the reward model at {folder}: {error}") from error
    if config.env_id not in gameable_env_ids():
        raise RunDirectoryError(
            f"the reward model at {folder} is for {config.env_id!r}, not a registered env"
        )
    if env_id is not None and env_id != config.env_id:
        raise ConfigError(f"the reward model at {folder} was trained on {config.env_id}, not {env_id}")
    env = gym.make_vec(config.env_id, num_envs=1, **(config.knobs if knobs is None else knobs))
    obs_size = int(np.prod(env.single_observation_space.shape))
    try:
        model = RewardModel(obs_size, env.single_action_space, config.hidden_sizes, config.unrated_actions)
    finally:
        env.close()
    try:
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as error:  # a corrupt file or one of another shape: one line, no traceback
        reason = shortened(str(error).splitlines()[0], 160) if str(error) else type(error).__name__
        raise RunDirectoryError(f"cannot load {folder / WEIGHTS_FILE}: {reason}") from error
    return model.to(resolve_device(device)).requires_grad_(False), config, report


# --- the reward model as the env's reward ---------------------------------------------------------


class RewardModelVectorEnv(gym.vector.VectorWrapper):
    """A batched gameable env whose reward is a reward model's score of each step.

    ``reward`` and ``info["proxy_reward"]`` become ``model(obs, action)`` (the observation the
    action was chosen on), ``info["rater_reward"]`` keeps the env's own proxy and
    ``info["true_reward"]`` stays as it was, so episode statistics and evaluations see the model's
    score as the proxy. Stateless: the observation is read back from the env's state, so the
    wrapped env's ``get_state``/``set_state`` checkpoints serve unchanged. Everything stays on the
    env's device.
    """

    def __init__(self, env: gym.vector.VectorEnv, model: RewardModel):
        super().__init__(env)
        front = env.unwrapped
        if not isinstance(front, GameableVectorEnv):
            raise ConfigError(f"a reward model wraps a batched GameableVectorEnv, got {type(front).__name__}")
        self.model = model.to(front.device)

    @torch.no_grad()
    def step(self, actions):
        front = self.env.unwrapped
        if front.state is None:
            return self.env.step(actions)  # the front says what is missing
        before = front.kernel.observe(front.params, front.state)
        obs, proxy, terminated, truncated, info = self.env.step(actions)
        score = self.model(before, torch.as_tensor(actions, device=before.device))
        info = {**info, "rater_reward": proxy, "proxy_reward": score}
        return obs, score, terminated, truncated, info

    def get_state(self, block: int | None = None) -> dict[str, Any]:
        return self.env.get_state() if block is None else self.env.get_state(block)

    def set_state(self, saved: dict[str, Any], block: int | None = None) -> None:
        if block is None:
            self.env.set_state(saved)
        else:
            self.env.set_state(saved, block)


def with_reward_model(
    env: gym.vector.VectorEnv, path: str | os.PathLike | None, env_id: str, knobs: dict[str, Any]
) -> gym.vector.VectorEnv:
    """``env`` scored by the reward model saved at ``path`` (``env`` itself when ``path`` is None)."""
    if path is None:
        return env
    model, _, _ = load_reward_model(path, env_id, knobs, env.unwrapped.device)
    return RewardModelVectorEnv(env, model)


__all__ = [
    "Comparisons",
    "RewardModel",
    "RewardModelConfig",
    "RewardModelReport",
    "RewardModelVectorEnv",
    "collect_comparisons",
    "load_reward_model",
    "save_reward_model",
    "train_reward_model",
    "with_reward_model",
]
