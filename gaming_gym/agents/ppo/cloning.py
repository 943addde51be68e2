"""Behaviour clones of an env's scripted ``intended`` policy: RLHF's SFT model, here.

RLHF starts the policy from a supervised fine-tuned (SFT) model, a network that imitates good
behaviour, and penalises drifting from it. Here the env's scripted ``intended`` policy plays the
demonstrator: its actions on a batch of rollouts are cloned into a fresh :class:`ActorCritic` by
maximum likelihood (:func:`build_clone`), and :class:`SmoothedPolicy` keeps the clone stochastic so
a KL penalty toward it stays finite (see there). Two kinds:

* ``"intended"``: the teacher's labels on states it visits with random actions mixed in (DART):
  a clean clone of the intended policy, a reference to stay close to;
* ``"sft"``: the noisy demonstrator's actions as taken (:data:`SFT_EXPLORATION` random), so the
  clone is middling and stochastic, as an SFT model is before RLHF: the policy a run can *start*
  from (``PPOConfig.start = "sft"``) and the reference of RLHF's KL penalty.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from gaming_gym.agents.ppo.networks import ActorCritic, training_generators
from gaming_gym.kernel import Policy
from gaming_gym.policies import random_policy

UNIFORM_MIX = 0.1
"""Share of a uniform distribution mixed into a discrete clone's action probabilities.

A clone of a deterministic teacher is nearly one-hot, so KL(policy || clone) explodes the moment
the policy puts any weight on another action, and the penalty would forbid exploring at all. With
a 0.1 mix every action keeps probability >= 0.1 / n, which bounds the per-state KL by
log(n / 0.1) (4.5 nats for BoatRace's 9 actions) while the teacher's action keeps >= 0.9: an SFT
model sampled at a temperature, not greedily."""

MIN_STD = 0.25
"""Floor on a continuous clone's action standard deviation, for the same reason: the maximum
likelihood std of a deterministic teacher shrinks towards zero, and the Gaussian KL grows with
(mean difference / std)^2. At 0.25 (an eighth of a [-1, 1] action's range) a mean off by 0.25
costs half a nat per action dimension."""

EXPLORATION = 0.25
"""Chance of a uniformly random action at each step while collecting demonstrations."""

SFT_EXPLORATION = 0.5
"""Chance of a random action in the demonstrations of an ``"sft"`` reference, whose labels are the
actions taken (random ones included): a supervised model of a noisy demonstrator, middling and
stochastic, as an SFT model is before RLHF. Half, as in the demonstrations whose answers a reward
model's raters compare (``RewardModelConfig.exploration``): the SFT model is the policy the
preferences were collected from, and it starts far enough below the intended policy that RLHF's
first gains in true return are plain to see before the overoptimisation."""


class SmoothedPolicy(nn.Module):
    """A cloned policy whose action distribution is kept away from determinism.

    Discrete actions: ``(1 - uniform_mix) * clone + uniform_mix * uniform``. Continuous actions: the
    clone's Gaussian with its std floored at ``min_std``. Both constants are buffers, saved with
    the ``state_dict`` beside the clone and ``agreement`` (its greedy agreement with the teacher on
    held-out states, measured when it was fitted), so a checkpoint restores the same reference.
    """

    def __init__(self, clone: ActorCritic, uniform_mix: float = UNIFORM_MIX, min_std: float = MIN_STD):
        super().__init__()
        self.clone = clone
        self.register_buffer("uniform_mix", torch.tensor(float(uniform_mix)))
        self.register_buffer("min_std", torch.tensor(float(min_std)))
        self.register_buffer("agreement", torch.tensor(float("nan")))

    def action_distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """The smoothed action distribution on raw observations (the clone's own statistics)."""
        return smoothed(self.clone.action_distribution(obs), self.uniform_mix, self.min_std)


def smoothed(
    distribution: torch.distributions.Distribution,
    uniform_mix: float | torch.Tensor,
    min_std: float | torch.Tensor,
) -> torch.distributions.Distribution:
    """``distribution`` kept away from determinism: a categorical mixed with ``uniform_mix`` of the
    uniform one, a diagonal Gaussian with its std floored at ``min_std``."""
    if isinstance(distribution, torch.distributions.Categorical):
        uniform = 1.0 / distribution.probs.shape[-1]
        probs = (1 - uniform_mix) * distribution.probs + uniform_mix * uniform
        return torch.distributions.Categorical(probs=probs, validate_args=False)
    normal = distribution.base_dist
    floored = torch.distributions.Normal(normal.loc, normal.scale.clamp_min(min_std), validate_args=False)
    return torch.distributions.Independent(floored, 1, validate_args=False)


@torch.no_grad()
def collect_demonstrations(
    env: gym.vector.VectorEnv,
    teacher: Policy,
    steps: int,
    seed: int,
    exploration: float = EXPLORATION,
    label_taken: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw observations and the teacher's actions on them, shaped ``(steps, num_envs, ...)``.

    With probability ``exploration`` the env is stepped with a uniformly random action instead of
    the teacher's, but the label stays the teacher's choice (DART-style noise injection). The
    policy being penalised drifts to states the teacher never visits; a clone fitted only on the
    teacher's own path would be arbitrary there, and its KL penalty noise. Draws come from
    generators seeded with ``seed``, so the demonstrations are reproducible. With
    ``label_taken`` the label is the action taken instead, random or not: the demonstrator's
    own noisy behaviour is what is cloned (the ``"sft"`` reference).
    """
    obs, _ = env.reset(seed=seed)
    device = obs.device
    explore_generator = torch.Generator(device=device).manual_seed(seed)
    random_actions = random_policy(env.single_action_space, seed=seed + 1)
    observations, actions = [], []
    for _ in range(steps):
        action = torch.as_tensor(teacher(obs), device=device)
        explore = torch.rand(len(obs), generator=explore_generator, device=device) < exploration
        explore = explore.view(-1, *[1] * (action.dim() - 1))
        taken = torch.where(explore, random_actions(obs).to(action.dtype), action)
        observations.append(obs)
        actions.append(taken if label_taken else action)
        obs, *_ = env.step(taken)
    return torch.stack(observations), torch.stack(actions)


def fit_by_likelihood(
    student: ActorCritic,
    obs: torch.Tensor,
    actions: torch.Tensor,
    epochs: int = 20,
    minibatch_size: int = 1024,
    learning_rate: float = 3e-3,
    generator: torch.Generator | None = None,
) -> None:
    """Fit the student's actor and head to (raw obs, env action) pairs by maximum likelihood.

    The negative log-likelihood of the teacher's action is cross-entropy for a categorical head
    and the Gaussian NLL (mean and log std) for a continuous one. The student's observation
    statistics are set from all of ``obs`` first, so it normalises with its own. Minibatch orders
    come from ``generator`` (on ``obs``'s device; torch's global RNG when None).
    """
    norm_obs = student.normalise(obs, update=True)
    targets = student.head.from_env(actions)
    parameters = [*student.actor.parameters(), *student.head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    for _ in range(epochs):
        order = torch.randperm(len(norm_obs), device=norm_obs.device, generator=generator)
        for rows in order.split(minibatch_size):
            loss = -student.distribution(norm_obs[rows]).log_prob(targets[rows]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@torch.no_grad()
def greedy_agreement(student: ActorCritic, obs: torch.Tensor, actions: torch.Tensor) -> float:
    """Share of states where the student's greedy action matches the teacher's env action.

    Continuous actions match when every dimension lies within 0.1 of the teacher's.
    """
    distribution = student.action_distribution(obs)
    greedy = student.head.to_env(student.head.greedy(distribution))
    if greedy.is_floating_point():
        matches = ((greedy - actions).abs() <= 0.1).flatten(1).all(dim=1)
    else:
        matches = greedy == actions
    return float(matches.float().mean())


def behaviour_clone(
    teacher: Policy,
    env: gym.vector.VectorEnv,
    student: ActorCritic,
    steps: int,
    seed: int,
    held_out_envs: int,
    generator: torch.Generator | None = None,
    exploration: float = EXPLORATION,
    label_taken: bool = False,
) -> SmoothedPolicy:
    """Clone ``teacher`` into ``student`` from ``steps`` steps of ``env``; return it smoothed.

    The demonstrations of the last ``held_out_envs`` envs are kept out of the fit to measure the
    clone's greedy agreement with the teacher (stored in ``SmoothedPolicy.agreement``): states
    of whole separate trajectories, not neighbours of training states. ``generator`` orders the
    fit's minibatches (see :func:`fit_by_likelihood`); ``exploration`` and ``label_taken`` go to
    :func:`collect_demonstrations`.
    """
    obs, actions = collect_demonstrations(env, teacher, steps, seed, exploration, label_taken)
    fit = slice(0, obs.shape[1] - held_out_envs)
    held_out = slice(obs.shape[1] - held_out_envs, obs.shape[1])
    fit_by_likelihood(student, obs[:, fit].flatten(0, 1), actions[:, fit].flatten(0, 1), generator=generator)
    reference = SmoothedPolicy(student).to(obs.device)
    reference.agreement.fill_(
        greedy_agreement(student, obs[:, held_out].flatten(0, 1), actions[:, held_out].flatten(0, 1))
    )
    return reference.requires_grad_(False)


# --- a clone for a training run ------------------------------------------------------------------

CLONE_KINDS = ("intended", "sft")
"""The clones :func:`build_clone` makes (module docstring)."""
CLONE_ENVS = 64
"""Envs the scripted intended policy plays to collect demonstrations for its clone (one episode's
length each: 64 x 1000 states on BoatRace); the last eighth are held out to measure agreement."""
CLONE_SEED_OFFSET = 3_000_003
"""Seed offset of a clone's demonstrations and fit (other episodes than training's)."""


def build_clone(
    kind: str,
    env_id: str,
    knobs: dict,
    hidden_sizes: tuple[int, ...],
    seed: int,
    device: torch.device,
) -> SmoothedPolicy:
    """A behaviour-cloned copy of ``env_id``'s scripted ``intended`` policy of ``kind``
    (:data:`CLONE_KINDS`), smoothed.

    The teacher plays :data:`CLONE_ENVS` envs (the run's env and knobs) for one episode's length
    (see :func:`collect_demonstrations`); a fresh :class:`ActorCritic` of ``hidden_sizes``,
    normalising observations with its own statistics, is fitted to its actions by maximum
    likelihood and smoothed to stay stochastic. Deterministic from ``seed``, from generators of
    its own, so the training run's random stream is untouched. A few seconds on a CPU.
    """
    if kind not in CLONE_KINDS:
        raise ValueError(f"a clone is one of {CLONE_KINDS}, got {kind!r}")
    env = gym.make_vec(env_id, num_envs=CLONE_ENVS, device=device, **knobs)
    try:
        steps = env.unwrapped.max_episode_steps or 1000
        seed = seed + CLONE_SEED_OFFSET
        init_generator, fit_generator = training_generators(seed, device)
        clone = new_clone(env, hidden_sizes, init_generator).to(device)
        return behaviour_clone(
            env.unwrapped.reference_policy("intended"),
            env,
            clone,
            steps,
            seed,
            held_out_envs=CLONE_ENVS // 8,
            generator=fit_generator,
            **({"exploration": SFT_EXPLORATION, "label_taken": True} if kind == "sft" else {}),
        )
    finally:
        env.close()


def new_clone(
    env: gym.vector.VectorEnv, hidden_sizes: tuple[int, ...], generator: torch.Generator
) -> ActorCritic:
    """An untrained network of a clone's shape (normalising observations with its own statistics)."""
    return ActorCritic(env.single_observation_space, env.single_action_space, hidden_sizes, True, generator)


def clone_from_state(
    env: gym.vector.VectorEnv, hidden_sizes: tuple[int, ...], state: dict, device
) -> SmoothedPolicy:
    """A clone saved with a run (its ``SmoothedPolicy`` state dict), built anew and loaded."""
    reference = SmoothedPolicy(new_clone(env, hidden_sizes, torch.Generator())).to(device)
    reference.load_state_dict(state)
    return reference.requires_grad_(False)
