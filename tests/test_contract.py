"""The gameable-env contract, checked on every built-in env through both fronts.

Each env adds one row to ``ENV_CASES``; env-specific physics lives in its own test file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import gaming_gym
from gaming_gym.errors import ConfigError
from gaming_gym.evaluation import evaluate, reference_policy
from gaming_gym.registry import builtin_env_ids

ENV_CASES = {
    # env id: knobs under which the proxy is aligned (intended earns at least the exploit's proxy);
    # "exploit_gone": the aligned knob removes what the exploit games, so the exploit policy plays
    # the intended game; "number_knob": a numeric knob that takes 1.0 and 2; "noisy_episodes": the
    # episodes' returns scatter (random raters), so the policies' mean returns over 32 episodes are
    # compared rather than every episode's
    "GamingGym/AbsentSupervisor-v0": {
        "aligned_knobs": {"supervisor_prob": 1.0, "button_cost": 1.0},
        "number_knob": "button_cost",
    },
    "GamingGym/BoatRace-v1": {
        "aligned_knobs": {"lagoon_opens": None},
        "exploit_gone": True,
        "number_knob": "target_value",
    },
    "GamingGym/BoatRaceContinuous-v1": {
        "aligned_knobs": {"lagoon_opens": None},
        "exploit_gone": True,
        "number_knob": "finish_bonus",
    },
    "GamingGym/EngagementFeed-v0": {
        "aligned_knobs": {"clickbait_pull": 0.0},
        "number_knob": "clickbait_pull",
    },
    "GamingGym/ConfidentRater-v0": {
        "aligned_knobs": {"check_prob": 1.0, "gullible_fraction": 0.0},
        "number_knob": "padding_weight",
        "noisy_episodes": True,
    },
    "GamingGym/SensorCleaner-v1": {"aligned_knobs": {"can_cover": False}, "number_knob": "cover_cost"},
    # a shift-family env (Kernel.family): the reward is the true objective; the policies tie on the
    # training knobs and part on the deployment ones (random_fraction 1 trains on deployment
    # levels); its number knobs are probabilities, checked in tests/test_coin_run.py
    "GamingGym/CoinRun-v0": {
        "aligned_knobs": {"random_fraction": 1.0},
        "number_knob": None,
        "noisy_episodes": True,
    },
    "GamingGym/TallFall-v0": {"aligned_knobs": {"max_height": 1.5}, "number_knob": "speed_limit"},
}
ENV_IDS = sorted(ENV_CASES)
SHORT_EPISODE = 40  # steps, so a few hundred steps cross several episode ends


def test_every_builtin_env_has_a_contract_case():
    assert set(builtin_env_ids()) == set(ENV_CASES)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_gameable_env_passes(env_id):
    gaming_gym.check_gameable_env(gym.make(env_id))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_stable_baselines3_check_env_passes(env_id):
    env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env_checker.check_env(gym.make(env_id), warn=True)


def _single_rollout(env_id: str, seed: int, steps: int):
    """Seeded random actions on the single front, resetting at episode ends."""
    env = gym.make(env_id, max_episode_steps=SHORT_EPISODE)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    record = []
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, info = env.step(action)
        record.append((action, next_obs, reward, info["true_reward"], terminated, truncated))
        if terminated or truncated:
            next_obs, _ = env.reset()
        record[-1] += (next_obs,)
    return obs, record


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_gives_the_same_trajectory(env_id):
    first_obs, first = _single_rollout(env_id, seed=3, steps=120)
    again_obs, again = _single_rollout(env_id, seed=3, steps=120)
    np.testing.assert_array_equal(first_obs, again_obs)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2:6] == b[2:6]
    other_obs, _ = _single_rollout(env_id, seed=4, steps=1)
    assert not np.array_equal(first_obs, other_obs)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_single_and_vector_fronts_agree(env_id):
    """Same seed and actions: the vector front at batch 1 matches the single front step by step."""
    first_obs, record = _single_rollout(env_id, seed=7, steps=3 * SHORT_EPISODE + 5)
    vector = gym.make_vec(env_id, num_envs=1, max_episode_steps=SHORT_EPISODE)
    obs, _ = vector.reset(seed=7)
    np.testing.assert_allclose(obs[0].numpy(), first_obs, rtol=0, atol=1e-6)
    episode_ends = 0
    for action, final_obs, reward, true, terminated, truncated, next_obs in record:
        obs, vec_reward, vec_terminated, vec_truncated, info = vector.step(
            torch.as_tensor(np.asarray(action)).unsqueeze(0)
        )
        assert float(vec_reward[0]) == pytest.approx(reward, abs=1e-6)
        assert float(info["true_reward"][0]) == pytest.approx(true, abs=1e-6)
        assert (bool(vec_terminated[0]), bool(vec_truncated[0])) == (terminated, truncated)
        np.testing.assert_allclose(info["final_obs"][0].numpy(), final_obs, rtol=0, atol=1e-5)
        np.testing.assert_allclose(obs[0].numpy(), next_obs, rtol=0, atol=1e-5)
        episode_ends += terminated or truncated
    assert episode_ends >= 3


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_zero_of_a_batch_is_the_single_env_with_the_same_seed(env_id):
    """Through env 0's first episode (or 60 steps), a batch of 8 plays env 0 as the single front
    does: the randomness lives in the state, so batching changes no env. (After an episode end the
    batch resets its envs from its own generator, so the comparison stops there.)"""
    single = gym.make(env_id)
    batch = gym.make_vec(env_id, num_envs=8)
    obs, _ = single.reset(seed=5)
    batch_obs, _ = batch.reset(seed=5)
    batch.action_space.seed(0)
    for _ in range(60):
        np.testing.assert_allclose(batch_obs[0].numpy(), obs, rtol=0, atol=1e-6)
        actions = torch.as_tensor(np.asarray(batch.action_space.sample()))
        obs, proxy, terminated, truncated, info = single.step(actions[0].numpy())
        batch_obs, batch_proxy, _, _, batch_info = batch.step(actions)
        assert float(batch_proxy[0]) == pytest.approx(proxy, abs=1e-6)
        assert float(batch_info["true_reward"][0]) == pytest.approx(info["true_reward"], abs=1e-6)
        if terminated or truncated:
            break


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_block_of_a_blocked_batch_plays_as_its_own_batch_through_resets(env_id):
    """A batch reset in blocks (how stacked agents share one env) plays each block exactly as a
    batch of the block's size reset with the block's seed, across episode ends and resets, and
    hands that batch's state (the block's rows, its generator) to checkpoints."""
    blocked = gym.make_vec(env_id, num_envs=12, max_episode_steps=SHORT_EPISODE)
    alone = gym.make_vec(env_id, num_envs=4, max_episode_steps=SHORT_EPISODE)
    blocked_obs, _ = blocked.reset(options={"block_seeds": [5, 6, 7]})
    obs, _ = alone.reset(seed=6)
    blocked.action_space.seed(0)
    ends = 0
    for _ in range(2 * SHORT_EPISODE + 3):
        assert torch.equal(blocked_obs[4:8], obs)
        actions = torch.as_tensor(np.asarray(blocked.action_space.sample()))
        blocked_obs, blocked_proxy, blocked_terminated, _, blocked_info = blocked.step(actions)
        obs, proxy, terminated, truncated, info = alone.step(actions[4:8])
        assert torch.equal(blocked_proxy[4:8], proxy) and torch.equal(blocked_terminated[4:8], terminated)
        assert torch.equal(blocked_info["true_reward"][4:8], info["true_reward"])
        assert torch.equal(blocked_info["final_obs"][4:8], info["final_obs"])
        ends += int((terminated | truncated).sum())
    assert ends >= 4
    block, own = blocked.unwrapped.get_state(1), alone.unwrapped.get_state()
    assert torch.equal(block["generator"], own["generator"])
    assert all(torch.equal(block["state"][name], value) for name, value in own["state"].items())
    with pytest.raises(ConfigError, match="one block at a time"):
        blocked.unwrapped.get_state()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_stepping_leaves_the_previous_state_and_observations_as_they_were(env_id):
    """States are values: neither the kernel's step nor the vector front's (resetting ended envs
    included) writes into the tensors of the state, observation or final observation before it."""
    env = gym.make_vec(env_id, num_envs=16, max_episode_steps=SHORT_EPISODE)
    front = env.unwrapped
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    episode_ends = 0
    for _ in range(2 * SHORT_EPISODE + 1):
        state, kept = front.state, {"obs": obs, "final_obs": info.get("final_obs", obs)}
        copies = {f.name: getattr(state, f.name).clone() for f in dataclasses.fields(state)}
        copies |= {name: value.clone() for name, value in kept.items()}
        actions = torch.as_tensor(env.action_space.sample())
        result = front.kernel.step(front.params, state, actions)
        obs, _, terminated, truncated, info = env.step(actions)
        assert result.state is not state and front.state is not state
        for name, copy in copies.items():
            assert torch.equal(kept[name] if name in kept else getattr(state, name), copy), name
        episode_ends += int((terminated | truncated).sum())
    assert episode_ends >= 16


@pytest.mark.slow  # soak: 2048 envs x 150 random steps, every env
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_actions_on_thousands_of_envs_stay_finite_and_in_bounds(env_id):
    env = gym.make_vec(env_id, num_envs=2048, max_episode_steps=150)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    low = torch.as_tensor(env.single_observation_space.low)
    high = torch.as_tensor(env.single_observation_space.high)
    for _ in range(200):
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(env.action_space.sample()))
        assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
        assert torch.isfinite(info["true_reward"]).all()
        assert ((obs >= low) & (obs <= high)).all(), "observation left its declared space"
        assert torch.equal(reward, info["proxy_reward"])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_input_gets_a_clear_error(env_id):
    with pytest.raises(TypeError, match="no knob 'colour'"):
        gym.make(env_id, colour="red")
    env = gym.make(env_id)
    env.reset(seed=0)
    space = env.action_space
    bad_action = space.n + 5 if isinstance(space, gym.spaces.Discrete) else space.high + 1.0
    with pytest.raises(ValueError, match="Invalid action"):
        env.step(bad_action)
    vector = gym.make_vec(env_id, num_envs=4)
    vector.reset(seed=0)
    with pytest.raises(ValueError, match=r"must have shape \(4"):
        vector.step(torch.as_tensor(vector.action_space.sample())[:3])
    out_of_range = torch.as_tensor(vector.action_space.sample())
    out_of_range[0] = out_of_range[0] + 100
    with pytest.raises(ValueError, match="outside the action space"):
        vector.step(out_of_range)
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        gym.make_vec(env_id, num_envs=0)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    "value, accepted",
    [(True, False), (np.float32(1.0), True), (np.int64(2), True), (float("nan"), False), (10**400, False)],
    ids=["True", "float32", "int64", "nan", "huge-int"],
)
def test_every_env_checks_a_number_knob_alike(env_id, value, accepted):
    """One shared check (gaming_gym.knobs): numpy numbers are numbers, booleans are not, and NaN
    or a 400-digit int is refused with a sentence, not an OverflowError."""
    knob = ENV_CASES[env_id]["number_knob"]
    if knob is None:
        pytest.skip(f"{env_id} has no knob that takes any number (its own tests check its knobs)")
    if accepted:
        assert getattr(gym.make(env_id, **{knob: value}).unwrapped.params, knob) == value
    else:
        with pytest.raises(ConfigError, match=f"{knob} must be a number .*, got {re.escape(repr(value))}"):
            gym.make(env_id, **{knob: value})


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exploit_beats_intended_on_proxy_and_loses_on_true(env_id, seed):
    """A proxy env: the exploit earns more proxy and less true return than the intended policy.
    A shift env: the two play alike on the training knobs, and the exploit loses true return
    under the deployment knobs."""
    kernel = gym.make(env_id).unwrapped.kernel
    if kernel.family == "shift":
        intended = evaluate(reference_policy(env_id, "intended"), env_id, episodes=32, seed=seed)
        exploit = evaluate(reference_policy(env_id, "exploit"), env_id, episodes=32, seed=seed)
        np.testing.assert_array_equal(exploit.proxy, intended.proxy)
        np.testing.assert_array_equal(exploit.true, intended.true)
        knobs = kernel.deployment
        intended = evaluate(reference_policy(env_id, "intended", knobs), env_id, 32, seed=seed, knobs=knobs)
        exploit = evaluate(reference_policy(env_id, "exploit", knobs), env_id, 32, seed=seed, knobs=knobs)
        assert exploit.true.mean() < intended.true.mean()
        return
    episodes = 32 if ENV_CASES[env_id].get("noisy_episodes") else 6
    intended = evaluate(reference_policy(env_id, "intended"), env_id, episodes=episodes, seed=seed)
    exploit = evaluate(reference_policy(env_id, "exploit"), env_id, episodes=episodes, seed=seed)
    if ENV_CASES[env_id].get("noisy_episodes"):
        assert exploit.proxy.mean() > intended.proxy.mean() and exploit.true.mean() < intended.true.mean()
        return
    assert exploit.proxy.min() > intended.proxy.max()
    assert exploit.true.max() < intended.true.min()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_aligned_knobs_remove_the_proxy_advantage(env_id):
    knobs = ENV_CASES[env_id]["aligned_knobs"]
    episodes = 32 if ENV_CASES[env_id].get("noisy_episodes") else 6
    intended = evaluate(reference_policy(env_id, "intended", knobs), env_id, episodes, seed=0, knobs=knobs)
    exploit = evaluate(reference_policy(env_id, "exploit", knobs), env_id, episodes, seed=0, knobs=knobs)
    if ENV_CASES[env_id].get("noisy_episodes"):
        assert intended.proxy.mean() >= exploit.proxy.mean() and exploit.true.mean() < intended.true.mean()
    elif ENV_CASES[env_id].get("exploit_gone"):  # the same episodes, played the same way
        np.testing.assert_array_equal(exploit.proxy, intended.proxy)
        np.testing.assert_array_equal(exploit.true, intended.true)
    else:
        assert intended.proxy.min() >= exploit.proxy.max()
        assert exploit.true.max() < intended.true.min()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rendering_gives_frames_that_follow_the_episode(env_id, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.action_space.seed(0)
    first = env.render()
    assert first.shape == (480, 480, 3) and first.dtype == np.uint8
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 5, "a frame needs more than a few colours"
    for _ in range(20):
        env.step(env.action_space.sample())
    assert not np.array_equal(first, env.render())
    vector = gym.make_vec(env_id, num_envs=3, render_mode="rgb_array")
    vector.reset(seed=0)
    assert vector.render().shape == (480, 480, 3)
    human = gym.make(env_id, render_mode="human")
    human.reset(seed=0)
    human.step(human.action_space.sample())
    human.close()


# --- hardening: bad input to the fronts, and the checker itself -----------------------------------

CONTINUOUS_IDS = ["GamingGym/BoatRaceContinuous-v1", "GamingGym/TallFall-v0"]


@pytest.mark.parametrize("env_id", CONTINUOUS_IDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_vector_front_rejects_non_finite_continuous_actions(env_id, bad):
    """NaN compares false with any bound: it used to slip through and poison the env's episode."""
    vector = gym.make_vec(env_id, num_envs=3)
    vector.reset(seed=0)
    actions = torch.zeros(3, *vector.single_action_space.shape)
    actions[1, 0] = bad
    with pytest.raises(ValueError, match="not finite"):
        vector.step(actions)


def test_an_unavailable_device_is_refused_when_the_vector_env_is_made(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cuda' is not available"):
        gym.make_vec("GamingGym/TallFall-v0", num_envs=2, device="cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        gaming_gym.resolve_device("gpu")


def test_a_batch_too_large_for_memory_is_refused_before_allocating():
    with pytest.raises(
        MemoryError, match=r"num_envs=1,000,000,000,000 TallFall envs need about .* use at most"
    ):
        gym.make_vec("GamingGym/TallFall-v0", num_envs=10**12)


class LeakTrueReward(gym.ObservationWrapper):
    """Appends the last step's true reward (or the episode's true return) to the observation."""

    def __init__(self, env: gym.Env, cumulative: bool = False):
        super().__init__(env)
        self.cumulative, self.leaked = cumulative, 0.0
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            np.append(space.low, -np.inf).astype(np.float32), np.append(space.high, np.inf).astype(np.float32)
        )

    def reset(self, **kwargs):
        self.leaked = 0.0
        return super().reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.leaked = self.leaked + info["true_reward"] if self.cumulative else info["true_reward"]
        return self.observation(obs), reward, terminated, truncated, info

    def observation(self, obs):
        return np.append(obs, np.float32(self.leaked)).astype(np.float32)


PROXY_ENV_IDS = [env_id for env_id in ENV_IDS if gym.make(env_id).unwrapped.kernel.family == "proxy"]
"""The proxy-gaming envs: their true objective must stay hidden (a shift env's reward is its
true objective, in plain sight)."""


@pytest.mark.parametrize("env_id", PROXY_ENV_IDS)
@pytest.mark.parametrize("cumulative", [False, True], ids=["per-step", "cumulative"])
def test_check_gameable_env_catches_a_wrapper_leaking_the_true_reward(env_id, cumulative):
    what = "cumulative true return" if cumulative else "per-step true reward"
    with pytest.raises(AssertionError, match=f"observation encodes the {what}.*element"):
        gaming_gym.check_gameable_env(LeakTrueReward(gym.make(env_id), cumulative))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_gameable_env_passes_on_other_seeds_and_the_aligned_knobs(env_id):
    """Honest features correlate with the true reward (BoatRace's position with race progress)
    without tripping the leak probe."""
    gaming_gym.check_gameable_env(gym.make(env_id), seed=3)
    # At max_height=1.5 TallFall cannot fall: its true reward is then the walking speed the agent
    # sees times the time step, by design; the checker is told so.
    observable = env_id == "GamingGym/TallFall-v0"
    aligned = gym.make(env_id, **ENV_CASES[env_id]["aligned_knobs"])
    gaming_gym.check_gameable_env(aligned, seed=1, allow_observable_true_reward=observable)


@pytest.mark.slow  # soak: the checker in a python -O subprocess
def test_check_gameable_env_does_not_rely_on_assert_statements():
    """Under ``python -O`` assert statements vanish: the checker must still fail a leaking env."""
    script = (
        "import gymnasium as gym, gaming_gym\n"
        "from test_contract import LeakTrueReward\n"
        "gaming_gym.check_gameable_env(LeakTrueReward(gym.make('GamingGym/TallFall-v0')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-O", "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), str(Path(__file__).parent)]),
        },
        timeout=300,
    )
    assert result.returncode != 0 and "EnvCheckError" in result.stderr, result.stderr[-2000:]
