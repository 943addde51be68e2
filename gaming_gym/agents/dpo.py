"""Direct preference optimisation (Rafailov et al., 2023): RLHF without a reward model or RL.

An agent of its own (``"dpo"``), trained **offline** on the very preferences a reward model was
fitted on, to compare with PPO against that model (RLHF's recipe). It reads the reward model's
folder (``reward_model``) for two things: its config, to collect its comparisons again (the same
states, responses and rater labels, from the same seed; all of them, the model's held-out fifth
too), and its scores, which are the proxy p its evaluations report, as PPO + RM's runs do.

The policy starts as the SFT clone a PPO run with ``start = "sft"`` starts from (the same seed
gives the same clone), and that clone, frozen, is DPO's reference ``pi_ref``. Each minibatch of
pairs (state ``s``, preferred response ``w``, the other ``l``) costs

    -log sigmoid(beta * [(log pi(w|s) - log pi_ref(w|s)) - (log pi(l|s) - log pi_ref(l|s))])

``beta`` is the coefficient (default 0.1, the paper's): the implicit KL weight toward the SFT
model. The critique RLHF makes of DPO is that it is offline: it learns only from the states and
responses the comparisons hold, never from what its own policy goes on to do. Here the raters
never compare ConfidentRater's RESEARCH action (they score answers), so DPO has nothing to learn
about it directly, while PPO + RM learns what research does to later answers.

A run directory as native PPO's: ``config.json`` (agent ``"dpo"``), ``checkpoint.pt`` after every
epoch (a resume continues from it), ``evaluations.json`` and the report. The step axis of its
evaluations counts the comparisons trained on; each evaluation also records the KL from the SFT
start over its states, so d = sqrt(KL) is comparable with PPO's.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from gaming_gym.agents.ppo.cloning import build_clone
from gaming_gym.agents.ppo.networks import ActorCritic, kl_from
from gaming_gym.devices import resolve_device
from gaming_gym.errors import ConfigError, ConfigTypeError
from gaming_gym.evaluation import env_factory, evaluate
from gaming_gym.kernel import Policy, seeded_generator
from gaming_gym.knobs import require_int, require_number
from gaming_gym.metrics import Evaluation
from gaming_gym.runs import RunDirectory, opened, read_checkpoint, require_registered, run_file

CHECKPOINT_FILE = "checkpoint.pt"
EVAL_SEED_OFFSET = 1_000_003
"""Evaluation episodes are seeded ``seed + EVAL_SEED_OFFSET``, as native PPO's are."""
RESUMABLE_CHANGES = ("epochs", "eval_every", "device")


@dataclass
class DPOConfig:
    """A DPO run: the preferences (a reward model's), the policy's shape and the optimisation."""

    env_id: str = "GamingGym/ConfidentRater-v0"
    reward_model: str | None = None
    """folder of the reward model whose comparisons DPO trains on and whose scores are the proxy"""
    knobs: dict[str, Any] = field(default_factory=dict)
    beta: float = 0.1
    """DPO's coefficient: the weight of the implicit KL toward the SFT reference"""
    epochs: int = 20
    """passes over the comparisons"""
    batch_size: int = 64
    learning_rate: float = 3e-4
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the policy's hidden layers (and of its SFT clone)"""
    seed: int = 0
    eval_every: int = 2
    """epochs between evaluations (and one before training, one at the end)"""
    eval_episodes: int = 64
    eval_deterministic: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        from gaming_gym.registry import check_knobs

        self.knobs = dict(self.knobs)
        check_knobs(self.env_id, self.knobs)
        self.hidden_sizes = tuple(self.hidden_sizes)
        if not isinstance(self.reward_model, str):
            raise ConfigError(
                f"DPO trains on a reward model's comparisons: set reward_model to its folder, got "
                f"{self.reward_model!r}"
            )
        require_number("beta", self.beta, 0.0, 1e6, low_open=True)
        require_number("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        for name, low in (("epochs", 1), ("batch_size", 1), ("eval_every", 1), ("eval_episodes", 1)):
            require_int(name, getattr(self, name), low, 10_000_000)
        require_int("seed", self.seed, 0, 2**62)
        if not self.hidden_sizes or not all(isinstance(w, int) and 1 <= w <= 4096 for w in self.hidden_sizes):
            raise ConfigError(f"hidden_sizes must be ints from 1 to 4096, got {self.hidden_sizes!r}")

    @property
    def total_timesteps(self) -> int:
        """A size for planning (epochs x a thousand pairs); DPO steps no env while it trains."""
        return self.epochs * 1000

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "hidden_sizes": list(self.hidden_sizes)}


@dataclass
class DPOResult:
    """A trained DPO run: its evaluations and policy (the agent protocol's ``TrainedAgent``)."""

    config: DPOConfig
    agent: ActorCritic
    checkpoints: list[Evaluation]

    def policy(self, deterministic: bool = False) -> Policy:
        return self.agent.policy(deterministic)


def train_dpo(
    config: DPOConfig, run_dir: str | os.PathLike | RunDirectory | None = None, progress: bool = True
) -> DPOResult:
    """Train ``config`` (resuming ``run_dir`` if it holds this run) and return the result."""
    from tqdm.auto import tqdm

    from gaming_gym.rlhf import collect_comparisons, load_reward_model

    device = resolve_device(config.device)
    _, model_config, _ = load_reward_model(config.reward_model, config.env_id)
    data = collect_comparisons(model_config, device)
    agent, reference = _start(config, device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate)
    generator = seeded_generator(config.seed, torch.device("cpu"))
    evaluations: list[Evaluation] = []
    epoch = 0
    with opened(run_dir) as directory:
        if directory is not None:
            saved = _claim(directory, config, device)
            if saved is not None:
                agent.load_state_dict(saved["agent"])
                if "reference" in saved:  # the reference it trained against, wherever it resumes
                    reference.load_state_dict(saved["reference"])
                optimizer.load_state_dict(saved["optimizer"])
                generator.set_state(saved["generator"].cpu())  # a CPU generator, whatever the device
                epoch = saved["epoch"]
                evaluations = [Evaluation.from_record(r) for r in saved["evaluations"]]
        if not evaluations:
            evaluations.append(_evaluation(config, agent, reference, step=0, device=device))
        bar = tqdm(total=config.epochs, initial=epoch, unit="epoch", desc="DPO", disable=not progress)
        while epoch < config.epochs:
            _epoch(agent, reference, optimizer, data, config, generator)
            epoch += 1
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                evaluations.append(_evaluation(config, agent, reference, epoch * len(data), device))
            if directory is not None:
                directory.save_checkpoint(
                    {
                        "config": config.to_dict(),
                        "agent": agent.state_dict(),
                        "reference": reference.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(),
                        "epoch": epoch,
                        "evaluations": [e.to_record() for e in evaluations],
                    },
                    CHECKPOINT_FILE,
                )
            bar.update(1)
        bar.close()
    return DPOResult(config, agent, evaluations)


def dpo_loss(
    agent: ActorCritic,
    reference: ActorCritic,
    obs: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO's loss on a batch of pairs: ``chosen`` preferred to ``rejected`` at ``obs`` (module
    docstring)."""
    policy, ref = agent.action_distribution(obs), reference.action_distribution(obs)
    chosen, rejected = agent.head.from_env(chosen), agent.head.from_env(rejected)
    with torch.no_grad():
        ref_margin = ref.log_prob(chosen) - ref.log_prob(rejected)
    margin = policy.log_prob(chosen) - policy.log_prob(rejected) - ref_margin
    return -nn.functional.logsigmoid(beta * margin).mean()


def _epoch(agent, reference, optimizer, data, config: DPOConfig, generator: torch.Generator) -> None:
    order = torch.randperm(len(data), generator=generator).to(data.obs.device)
    for rows in order.split(config.batch_size):
        batch = data.take(rows)
        preferred = batch.label.bool()
        chosen = torch.where(preferred, batch.first, batch.second)
        rejected = torch.where(preferred, batch.second, batch.first)
        loss = dpo_loss(agent, reference, batch.obs, chosen, rejected, config.beta)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _start(config: DPOConfig, device: torch.device) -> tuple[ActorCritic, ActorCritic]:
    """The policy and the frozen reference, both the SFT clone of ``config.seed``."""
    clone = build_clone("sft", config.env_id, config.knobs, config.hidden_sizes, config.seed, device).clone
    reference = copy.deepcopy(clone).requires_grad_(False)
    return clone.requires_grad_(True), reference


@torch.no_grad()
def _evaluation(
    config: DPOConfig, agent: ActorCritic, reference: ActorCritic, step: int, device: torch.device
) -> Evaluation:
    """``eval_episodes`` episodes scored by the reward model (p) and the env (t), with the KL from
    the SFT start over the states they visit."""
    seen: list[torch.Tensor] = []
    policy = agent.policy(config.eval_deterministic, seeded_generator(config.seed + EVAL_SEED_OFFSET, device))

    def watched(obs: torch.Tensor) -> torch.Tensor:
        seen.append(obs)
        return policy(obs)

    make = env_factory(config.env_id, config.knobs, device, config.reward_model)
    returns = evaluate(watched, make, config.eval_episodes, seed=config.seed + EVAL_SEED_OFFSET)
    states = torch.cat(seen)
    kl = float(kl_from(reference, agent.action_distribution(states), states).mean())
    return Evaluation(step, returns.proxy, returns.true, max(kl, 0.0) if math.isfinite(kl) else None)


def _claim(directory: RunDirectory, config: DPOConfig, device: torch.device) -> dict | None:
    directory.check_config("dpo", config.to_dict(), RESUMABLE_CHANGES)
    saved = directory.load_checkpoint(CHECKPOINT_FILE, device)
    if saved is not None:
        directory.require_within(saved["epoch"], config.epochs)
        directory.require_unchanged_when_finished(saved["epoch"] >= config.epochs, config.to_dict())
    directory.write_config("dpo", config.to_dict())
    return saved


def load_dpo_agent(
    run_dir: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ActorCritic, DPOConfig]:
    """The trained policy and config of a DPO run directory (nothing unpickled)."""
    path = run_file(run_dir, CHECKPOINT_FILE, "a DPO run directory")
    state = read_checkpoint(path, resolve_device(device))
    require_registered(state.get("config", {}).get("env_id"), path)
    config = DPOConfig(**state["config"])
    env = gym.make_vec(config.env_id, num_envs=1, **config.knobs)
    agent = ActorCritic(env.single_observation_space, env.single_action_space, config.hidden_sizes, True)
    env.close()
    agent.load_state_dict(state["agent"])
    return agent.to(resolve_device(device)), config


@dataclass(frozen=True)
class DirectPreferenceOptimisation:
    """The agent protocol's face of DPO (:class:`gaming_gym.agents.Agent`); runs train one after
    another."""

    name: str = "dpo"

    def config(self, env_id: str, **settings: Any) -> DPOConfig:
        fields = {f.name for f in dataclasses.fields(DPOConfig)} - {"env_id"}
        unknown = sorted(set(settings) - fields)
        if unknown:
            raise ConfigTypeError(
                f"DPO has no setting {', '.join(map(repr, unknown))}; it takes: {', '.join(sorted(fields))}"
            )
        try:
            return DPOConfig(env_id=env_id, **settings)
        except TypeError as error:
            raise ConfigTypeError(str(error)) from error

    def train(self, config, run_dir=None, progress: bool = True) -> DPOResult:
        return train_dpo(config, run_dir, progress)

    def stack_key(self, config) -> str | None:
        return None

    def train_stack(self, configs, run_dirs, progress: bool = True) -> list[DPOResult]:
        return [train_dpo(c, d, progress) for c, d in zip(configs, run_dirs, strict=True)]

    def upgrade_config(self, saved: dict[str, Any]) -> dict[str, Any]:
        return dict(saved)

    def load_policy(self, run_dir: str | os.PathLike, deterministic: bool = False) -> Policy:
        agent, _ = load_dpo_agent(run_dir)
        return agent.policy(deterministic)


__all__ = [
    "DPOConfig",
    "DPOResult",
    "DirectPreferenceOptimisation",
    "dpo_loss",
    "load_dpo_agent",
    "train_dpo",
]
