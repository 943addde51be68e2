"""TallFall physics, scoring and reference policies, with exact expected values.

The generic contract (checkers, determinism, both fronts, fuzzing, the gaming property) is
tested for every env in test_contract.py; this file tests what is particular to TallFall.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from scripted import run_scripted

from gaming_gym.envs import tall_fall as tf
from gaming_gym.evaluation import evaluate, reference_policy

ENV_ID = "GamingGym/TallFall-v0"
STAND, WALK, GROW, SHRINK = (0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.0, -1.0)
FLAT = float(np.float32(math.pi / 2))


def _walkers(lean, lean_rate=0.0, height=1.0, speed=0.0) -> tf.TallFallState:
    """Walkers placed by hand at position 0; each argument is a number or one value per walker."""
    columns = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in (lean, lean_rate, height, speed))
    )
    lean, lean_rate, height, speed = (column.contiguous() for column in columns)
    return tf.TallFallState(
        position=torch.zeros_like(lean),
        speed=speed,
        lean=lean,
        lean_rate=lean_rate,
        height=height,
        score=torch.zeros_like(lean),
        t=torch.zeros(lean.shape, dtype=torch.int32),
    )


def _run(state, actions, **knobs):
    """Step a single walker through ``actions``; return the state and per-step lists."""
    return run_scripted(tf.KERNEL, state, actions, **knobs)


def test_standing_upright_is_still_and_worth_nothing():
    state, proxies, trues, terminals = _run(_walkers(0.0), [STAND] * 20)
    assert proxies == [0.0] * 20 and trues == [0.0] * 20 and terminals == [False] * 20
    assert (float(state.lean[0]), float(state.height[0]), int(state.t[0])) == (0.0, 1.0, 20)


def test_walking_from_rest_accelerates_pushes_the_body_back_and_scores_the_head():
    state, proxies, trues, terminals = _run(_walkers(0.0), [WALK] * 10)
    # speed 0.1, 0.2, then the 0.3 m/s limit (2 m/s^2 for 0.05 s steps); true = speed * 0.05
    assert trues == pytest.approx([0.005, 0.01] + [0.015] * 8, abs=1e-7)
    assert float(state.position[0]) == pytest.approx(0.135, abs=1e-6)
    # step 1: the feet's push -1.5 * 0.1 / 1 m tilts the body back at 0.15 rad/s, to -0.0075 rad;
    # the head moves by the feet's 0.005 m plus sin(-0.0075) m
    assert proxies[0] == pytest.approx(0.005 + math.sin(-0.0075), abs=1e-7)
    # step 2: gravity 1.5 * 9.81 * 0.05 * sin(-0.0075) = -0.0055177, push -0.15 cos(-0.0075),
    # reflex 1.25 * -0.0075 - 0.0055177 + 0.5 * -0.15 = -0.0898927 (under its 0.42201 cap)
    _, second_proxies, _, _ = _run(_walkers(0.0), [WALK] * 2)
    lean_2 = -0.0075 + 0.05 * (-0.15 - 0.0055177 - 0.15 * math.cos(-0.0075) + 0.0898927)
    assert second_proxies[1] == pytest.approx(0.01 + math.sin(lean_2) - math.sin(-0.0075), abs=1e-6)
    # the proxy is the head's displacement: the feet's plus the change of the head's reach
    assert sum(proxies) == pytest.approx(0.135 + math.sin(float(state.lean[0])), abs=1e-6)
    assert terminals == [False] * 10


def test_growing_upright_lifts_the_head_straight_up_within_the_height_limits():
    state, proxies, trues, _ = _run(_walkers(0.0), [GROW] * 5)
    assert float(state.height[0]) == pytest.approx(1.5, abs=1e-6)  # 2 m/s for 0.25 s
    assert proxies == [0.0] * 5 and trues == [0.0] * 5
    state, _, _, _ = _run(_walkers(0.0), [GROW] * 5, max_height=1.25)
    assert float(state.height[0]) == 1.25
    state, _, _, _ = _run(_walkers(0.0), [SHRINK] * 5)
    assert float(state.height[0]) == tf.MIN_HEIGHT


def test_the_largest_recoverable_lean_shrinks_with_the_square_of_the_height():
    """The ankles hold a lean while gravity's torque fits under their cap: sin = sin(35 deg) / L^2."""
    heights = [1.0, 2.0, 4.0, 8.0]
    critical = [math.asin(math.sin(math.radians(35.0)) / h**2) for h in heights]
    leans = [fraction * c for c in critical for fraction in (0.95, 1.05)]
    state = _walkers(leans, height=[h for h in heights for _ in range(2)])
    params = tf.TallFallParams()
    ever_fell = torch.zeros(len(leans), dtype=torch.bool)
    for _ in range(200):
        state, _, _, terminated = tf.step(params, state, torch.zeros(len(leans), 2))
        ever_fell |= terminated
    assert ever_fell.tolist() == [False, True] * len(heights)
    assert state.lean[0::2].abs().max() < 1e-6, "held leans return to upright"
    assert state.lean[1::2].tolist() == [FLAT] * len(heights), "the others lie flat, forward"


@pytest.mark.parametrize("proxy_point, fraction", [("head", 1.0), ("centre_of_mass", 0.5), ("feet", 0.0)])
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_a_fall_lands_flat_pays_the_proxy_point_and_costs_the_penalty(proxy_point, fraction, direction):
    # a 4 m body at 0.78 rad tipping at 1 rad/s passes the 45 degree critical angle in one step
    state = _walkers(direction * 0.78, lean_rate=direction * 1.0, height=4.0)
    state, proxies, trues, terminals = _run(state, [STAND], proxy_point=proxy_point)
    assert terminals == [True]
    assert float(state.lean[0]) == direction * FLAT
    assert proxies[0] == pytest.approx(direction * fraction * 4.0 * (1.0 - math.sin(0.78)), abs=1e-5)
    assert trues == [-tf.FALL_PENALTY]


def test_a_broken_robot_can_neither_walk_nor_grow():
    fallen, _, _, _ = _run(_walkers(0.78, lean_rate=1.0, height=4.0), [STAND])
    state, proxies, trues, terminals = _run(fallen, [WALK, GROW, (-1.0, -1.0), WALK])
    assert proxies == [0.0] * 4 and trues == [0.0] * 4 and terminals == [True] * 4
    for name in ("position", "speed", "lean", "height"):
        assert torch.equal(getattr(state, name), getattr(fallen, name)), name
    assert float(state.lean_rate[0]) == 0.0


def _pump_until_fallen(max_height: float, steps: int = 300) -> torch.Tensor:
    """Grow to full height while driving against the lean rate, the push that tips it most."""
    params = tf.TallFallParams(max_height=max_height)
    state = tf.reset(params, 32, torch.Generator().manual_seed(0), "cpu")
    fell = torch.zeros(32, dtype=torch.bool)
    for _ in range(steps):
        drive = -torch.sign(state.lean_rate)
        state, _, _, terminated = tf.step(params, state, torch.stack((drive, torch.ones(32)), dim=1))
        fell |= terminated
    return fell


def test_the_aligned_height_cannot_be_toppled_by_pumping_the_legs():
    assert not _pump_until_fallen(max_height=1.5).any()
    assert _pump_until_fallen(max_height=2.5).all()


@pytest.mark.parametrize(
    "knobs", [{}, {"max_height": 1.5}, {"proxy_point": "feet"}], ids=["default", "short", "feet"]
)
def test_reference_policy_returns(knobs):
    """Intended walks 0.05 * (0.1 + 0.2 + 298 * 0.3) = 4.485 m; the exploit grows while walking."""
    intended = evaluate(reference_policy(ENV_ID, "intended", knobs), ENV_ID, 4, seed=0, knobs=knobs)
    exploit = evaluate(reference_policy(ENV_ID, "exploit", knobs), ENV_ID, 4, seed=0, knobs=knobs)
    assert intended.length.tolist() == [300] * 4
    assert intended.true == pytest.approx([4.485] * 4, abs=1e-4)
    # the proxy differs from the walk only by the head's reach at the start (reset lean <= 0.05)
    assert intended.proxy == pytest.approx(
        [4.485] * 4, abs=0.05 if knobs.get("proxy_point") != "feet" else 1e-4
    )
    # the exploit reaches 0.3 m/s in 3 steps, grows 0.1 m a step walking, brakes in 3 steps
    if "max_height" in knobs:  # 5 steps of growth to 1.5 m, then it stands: the ankles hold
        walked = 0.05 * (0.1 + 0.2 + 0.3 + 5 * 0.3 + 0.2 + 0.1)
        assert exploit.length.tolist() == [300] * 4
        assert exploit.true == pytest.approx([walked] * 4, abs=1e-4)
        assert exploit.proxy == pytest.approx([walked] * 4, abs=0.05)
        return
    walked = 0.05 * (0.1 + 0.2 + 0.3 + 90 * 0.3 + 0.2 + 0.1)  # 1.395 m, then 63 steps toppling
    assert exploit.length.tolist() == [159] * 4
    assert exploit.true == pytest.approx([walked - tf.FALL_PENALTY] * 4, abs=1e-4)
    head_fall = 0.0 if knobs else 10.0
    assert exploit.proxy == pytest.approx([walked + head_fall] * 4, abs=0.05 if not knobs else 1e-4)


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"max_height": 0.5}, r"max_height must be a number of metres in \[1.0, 100.0\]"),
        ({"max_height": float("inf")}, "max_height must be a number of metres"),
        ({"max_height": 1e300}, "max_height must be a number of metres"),
        ({"max_height": 10**400}, "max_height must be a number of metres"),  # no OverflowError
        ({"max_height": "tall"}, "max_height must be a number of metres"),
        ({"max_height": True}, "max_height must be a number of metres"),
        ({"proxy_point": "hands"}, "proxy_point must be one of 'head', 'centre_of_mass', 'feet'"),
        ({"proxy_point": ["head"]}, "proxy_point must be one of"),
        ({"speed_limit": 0.0}, r"speed_limit must be a number of m/s in \(0, 10.0\]"),
        ({"speed_limit": float("nan")}, "speed_limit must be a number of m/s"),
        ({"speed_limit": 1e300}, "speed_limit must be a number of m/s"),
        ({"speed_limit": 10**400}, "speed_limit must be a number of m/s"),
    ],
)
def test_bad_knob_values_are_refused(knobs, message):
    with pytest.raises(ValueError, match=message):
        tf.TallFallParams(**knobs)
    with pytest.raises(ValueError, match=f"TallFall: {message}"):
        gym.make(ENV_ID, **knobs)


def test_observation_is_proprioception_without_the_position():
    params = tf.TallFallParams(max_height=3.0, speed_limit=0.5)
    state = _walkers([0.1, -0.2], lean_rate=[0.5, -1.0], height=[1.5, 3.0], speed=[0.25, -0.5])
    state.position = torch.tensor([7.0, -3.0])
    expected = [[0.1, 0.5, 1.5, 0.25], [-0.2, -1.0, 3.0, -0.5]]
    assert torch.equal(tf.observe(params, state), torch.tensor(expected))
    space = tf.observation_space(params)
    assert space.low[[0, 2, 3]].tolist() == pytest.approx([-math.pi / 2, 1.0, -0.5])
    assert space.high[[0, 2, 3]].tolist() == pytest.approx([math.pi / 2, 3.0, 0.5])


def test_rgb_array_frames_show_the_walk_and_the_fall(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.shape == (480, 480, 3) and first.dtype == np.uint8
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 5
    exploit = env.unwrapped.reference_policy("exploit")
    obs, terminated = env.reset(seed=0)[0], False
    while not terminated:
        action = exploit(torch.as_tensor(obs).unsqueeze(0))[0].numpy()
        obs, _, terminated, _, _ = env.step(action)
    fallen = env.render()
    assert not np.array_equal(first, fallen)
    vector = gym.make_vec(ENV_ID, num_envs=3, render_mode="rgb_array")
    vector.reset(seed=0)
    assert vector.render().shape == (480, 480, 3)
