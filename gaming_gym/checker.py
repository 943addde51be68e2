"""The checker of the gameable-env contract: :func:`check_gameable_env`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from gaming_gym.errors import EnvCheckError
from gaming_gym.fronts import GameableEnv
from gaming_gym.kernel import REFERENCE_POLICY_NAMES, Policy
from gaming_gym.wrappers import EpisodeSums

LEAK_R2 = 0.9999
"""R^2 above which a linear function of the observation counts as encoding the true objective.

A copy of the true reward or return fits to rounding (R^2 = 1 - 1e-12 or so). Honest features
can come close: on the checker's rollouts BoatRace's position and speed predict its per-step race
progress with R^2 up to 0.997, because progress is how far the boat moved along the track."""


def check_gameable_env(
    env: gym.Env, steps: int = 200, seed: int = 0, allow_observable_true_reward: bool = False
) -> None:
    """Check that a single env keeps the gameable-env contract; raise :class:`EnvCheckError` if not.

    Runs Gymnasium's own ``check_env``, then plays ``steps`` steps of random actions and, for a
    gameable env, ``steps`` of each scripted reference policy (the exploit is where proxy and
    true objective part, so where a leak would show), and checks:

    * ``info`` carries float, finite ``proxy_reward`` and ``true_reward`` on every step;
    * the ``reward`` returned is ``info["proxy_reward"]``;
    * reproducibility: the same seed and actions, played again, give the same trajectory (a
      step that draws from torch's global RNG fails here, naming the first step that differs);
    * the observation does not encode the true objective: no linear function of the observation
      (least squares with an intercept; single elements, and all of them together when there are
      enough steps) predicts the per-step true reward or the cumulative true return of the
      episode with R^2 above :data:`LEAK_R2`. A leak detector, not a proof. An env whose
      per-step true reward is by design a plain function of what the agent sees (and differs
      from the proxy) can pass ``allow_observable_true_reward=True`` to skip that one probe.
      A shift-family env (:attr:`gaming_gym.kernel.Kernel.family`) skips the probe: its reward
      is the true objective, which an agent sees (CoinRun's coin is in the observation).

    ``EnvCheckError`` is also an ``AssertionError``; the checks are explicit, so they also run
    under ``python -O``. Works for any ``gym.Env``, so custom envs can be checked before
    registration.
    """
    from gymnasium.utils.env_checker import check_env

    try:
        check_env(env.unwrapped, skip_render_check=True)
    except AssertionError as error:
        raise EnvCheckError(f"Gymnasium's check_env failed: {error}") from error
    segments = _rollout_segments(env)
    played = _play(env, seed, steps, segments)
    replayed = _play(env, seed, steps, segments, actions=played.actions)
    _require_same_trajectory(played, replayed)
    if getattr(getattr(env.unwrapped, "kernel", None), "family", "proxy") != "shift":
        _require_no_true_leak(played, allow_observable_true_reward)


@dataclass
class _Trajectory:
    """What the checker saw on each step of its rollout, in order."""

    labels: list[str] = dataclasses.field(default_factory=list)  # e.g. "step 12 of random actions"
    actions: list[Any] = dataclasses.field(default_factory=list)
    observations: list[np.ndarray] = dataclasses.field(default_factory=list)
    proxy: list[float] = dataclasses.field(default_factory=list)
    true: list[float] = dataclasses.field(default_factory=list)
    true_returns: list[float] = dataclasses.field(default_factory=list)  # of the episode so far
    ends: list[tuple[bool, bool]] = dataclasses.field(default_factory=list)


def _rollout_segments(env: gym.Env) -> list[tuple[str, Policy | None]]:
    """Random actions, then each scripted reference policy if the env has them."""
    segments: list[tuple[str, Policy | None]] = [("random actions", None)]
    if isinstance(env.unwrapped, GameableEnv):
        segments += [
            (f"the {name} policy", env.unwrapped.reference_policy(name)) for name in REFERENCE_POLICY_NAMES
        ]
    return segments


def _play(
    env: gym.Env,
    seed: int,
    steps: int,
    segments: list[tuple[str, Policy | None]],
    actions: list | None = None,
) -> _Trajectory:
    """Play ``steps`` steps of each segment from ``reset(seed + k)``, checking each step's info.

    With ``actions``, replay them instead of choosing. Policies act on the unwrapped env's own
    observation, so a wrapper that changes observations does not confuse them.
    """
    played = _Trajectory()
    env.action_space.seed(seed)
    for k, (label, policy) in enumerate(segments):
        env.reset(seed=seed + k)
        sums = EpisodeSums.zeros()
        for step in range(steps):
            if actions is not None:
                action = actions[len(played.actions)]
            elif policy is None:
                action = env.action_space.sample()
            else:
                own_obs = torch.as_tensor(env.unwrapped._observation()).unsqueeze(0)
                action = policy(own_obs)[0].numpy()
            where = f"step {step} of {label}"
            obs, reward, terminated, truncated, info = env.step(action)
            _require_contract_info(where, reward, info)
            sums = sums.add(info["proxy_reward"], info["true_reward"])
            played.labels.append(where)
            played.actions.append(action)
            played.observations.append(np.asarray(obs, dtype=np.float64).ravel())
            played.proxy.append(float(info["proxy_reward"]))
            played.true.append(float(info["true_reward"]))
            played.true_returns.append(sums.true)
            played.ends.append((bool(terminated), bool(truncated)))
            if terminated or truncated:
                env.reset()
                sums = sums.restart(True)
    return played


def _require_contract_info(where: str, reward: Any, info: dict[str, Any]) -> None:
    for key in ("proxy_reward", "true_reward"):
        if key not in info:
            raise EnvCheckError(f"{where}: info lacks {key!r} (the contract needs it every step)")
        if not isinstance(info[key], (float, np.floating)):
            raise EnvCheckError(f"{where}: info[{key!r}] must be a float, got {type(info[key]).__name__}")
        if not math.isfinite(info[key]):
            raise EnvCheckError(f"{where}: info[{key!r}] is {info[key]}")
    if float(reward) != float(info["proxy_reward"]):
        raise EnvCheckError(
            f"{where}: reward {reward} differs from info['proxy_reward'] {info['proxy_reward']}; "
            "the returned reward must be the proxy"
        )


def _require_same_trajectory(first: _Trajectory, second: _Trajectory) -> None:
    """Raise at the first step where a replay with the same seed and actions went differently."""
    for index, where in enumerate(first.labels):
        differs = [
            what
            for what, a, b in (
                ("observation", first.observations[index], second.observations[index]),
                ("proxy reward", first.proxy[index], second.proxy[index]),
                ("true reward", first.true[index], second.true[index]),
                ("episode end", first.ends[index], second.ends[index]),
            )
            if not np.array_equal(a, b, equal_nan=True)
        ]
        if differs:
            raise EnvCheckError(
                f"not reproducible: replaying the same seed and actions gave a different "
                f"{' and '.join(differs)} at {where}. Randomness in step must come from a generator "
                "kept in the state and seeded at reset (see SensorCleaner's rng), not from torch's "
                "global RNG"
            )


def _require_no_true_leak(played: _Trajectory, allow_observable_true_reward: bool) -> None:
    """Fail if a linear function of the observation predicts the true reward or return."""
    observations = np.stack(played.observations)
    true = np.asarray(played.true)
    targets = {"cumulative true return": np.asarray(played.true_returns)}
    if not allow_observable_true_reward and not np.array_equal(true, np.asarray(played.proxy)):
        targets["per-step true reward"] = true  # (equal to the proxy, it hides nothing)
    for what, target in targets.items():
        r2, column, column_r2 = _linear_fit_r2(observations, target)
        if r2 > LEAK_R2:
            raise EnvCheckError(
                f"the observation encodes the {what}: a linear function of it predicts the {what} "
                f"with R^2 {r2:.6f} over {len(target)} steps (observation element {column} alone: "
                f"R^2 {column_r2:.6f}); the true objective must stay hidden"
            )


def _linear_fit_r2(observations: np.ndarray, target: np.ndarray) -> tuple[float, int, float]:
    """R^2 of the best least-squares fit of ``target`` from ``observations`` (with an intercept).

    Returns the overall R^2, the single element that fits best and that element's own R^2.
    All elements together are fitted only with at least 4 steps per coefficient, so that a fit
    cannot match by chance; single elements always are.
    """
    centred = target - target.mean()
    total = float(centred @ centred)
    features = observations - observations.mean(axis=0)
    varying = np.flatnonzero(np.ptp(features, axis=0) > 0)
    if total == 0 or len(varying) == 0:
        return 0.0, -1, 0.0
    features = features[:, varying]
    column_r2 = (features.T @ centred) ** 2 / (np.einsum("ij,ij->j", features, features) * total)
    best = int(np.argmax(column_r2))
    r2 = float(column_r2[best])
    if len(target) >= 4 * (features.shape[1] + 1):
        coefficients, *_ = np.linalg.lstsq(features, centred, rcond=None)
        residual = centred - features @ coefficients
        r2 = max(r2, 1.0 - float(residual @ residual) / total)
    return r2, int(varying[best]), float(column_r2[best])
