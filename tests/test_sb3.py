"""The stable-baselines3 path: SB3's VecEnv conventions over the batched env, checked exactly."""

from __future__ import annotations

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import gaming_gym  # noqa: F401  (registers the envs)
from gaming_gym.metrics import Evaluation

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402
from test_ppo import CORRIDOR_ID, raising_on_call  # noqa: E402  (a 20-step toy env registered there)

from gaming_gym.agents.sb3 import GoodhartCallback, SB3VecEnv, make_sb3_vec_env, train_sb3  # noqa: E402

BOAT = "GamingGym/BoatRace-v1"
IDLE = 4  # throttle 0, rudder 0: the boat never moves, so its episode runs into the time limit


def test_adapter_follows_sb3_conventions_for_terminated_and_truncated_episodes():
    """Env 0 races with the intended policy (finishes, terminated), then idles; env 1 idles
    throughout (truncated at 1000).

    A bare batched env with the same seed and actions is the ground truth for every number.
    """
    sb3_env = make_sb3_vec_env(BOAT, num_envs=2, seed=7, chop=0.0)
    raw = gym.make_vec(BOAT, num_envs=2, chop=0.0)
    intended = raw.unwrapped.reference_policy("intended")
    obs = sb3_env.reset()
    raw_obs, _ = raw.reset(seed=7)
    np.testing.assert_array_equal(obs, raw_obs.numpy())
    ends, proxy_return = {}, 0.0
    for step in range(1, 1001):
        actions = np.array([IDLE if 0 in ends else int(intended(torch.as_tensor(obs))[0]), IDLE])
        obs, rewards, dones, infos = sb3_env.step(actions)
        raw_obs, raw_proxy, raw_terminated, raw_truncated, raw_info = raw.step(torch.as_tensor(actions))
        np.testing.assert_array_equal(obs, raw_obs.numpy())
        np.testing.assert_array_equal(rewards, raw_proxy.numpy())
        np.testing.assert_array_equal(dones, (raw_terminated | raw_truncated).numpy())
        assert [info["true_reward"] for info in infos] == raw_info["true_reward"].tolist()
        proxy_return += float(rewards[0]) if 0 not in ends else 0.0
        for index in np.flatnonzero(dones):
            assert index not in ends, "each env ends exactly once here"
            np.testing.assert_array_equal(
                infos[index]["terminal_observation"], raw_info["final_obs"][index].numpy()
            )
            ends[index] = (step, infos[index])
        for index in np.flatnonzero(~dones):
            assert "terminal_observation" not in infos[index] and "episode" not in infos[index]

    race_end, race_info = ends[0]
    assert race_end < 1000 and race_info["TimeLimit.truncated"] is False
    assert race_info["episode"]["l"] == race_end
    assert race_info["episode"]["r"] == race_info["episode"]["proxy_r"] == proxy_return == 38.0
    assert race_info["episode"]["true_r"] == pytest.approx(2.0, abs=0.02)  # whole race + finish bonus
    idle_end, idle_info = ends[1]
    assert idle_end == 1000 and idle_info["TimeLimit.truncated"] is True
    assert idle_info["episode"] == {**idle_info["episode"], "r": 0.0, "l": 1000, "true_r": 0.0}


def test_adapter_can_reward_the_true_objective_and_is_seeded():
    proxy_env = make_sb3_vec_env(BOAT, num_envs=3, seed=1)
    true_env = make_sb3_vec_env(BOAT, num_envs=3, seed=1, reward="true")
    np.testing.assert_array_equal(proxy_env.reset(), true_env.reset())
    actions = np.array([7, 7, 7])  # full throttle ahead, along the track
    for _ in range(20):
        _, proxy, _, infos = proxy_env.step(actions)
        _, true, _, true_infos = true_env.step(actions)
        np.testing.assert_array_equal(true, np.float32([info["true_reward"] for info in true_infos]))
        np.testing.assert_array_equal(proxy, np.float32([info["proxy_reward"] for info in infos]))
    assert true.dtype == np.float32 and np.all(true > 0)  # moving forward makes race progress


def test_adapter_rejects_what_it_cannot_adapt():
    with pytest.raises(TypeError, match="DummyVecEnv"):
        SB3VecEnv(gym.make(BOAT))
    with pytest.raises(ValueError, match="reward must be one of"):
        make_sb3_vec_env(BOAT, num_envs=2, reward="score")
    env = make_sb3_vec_env(BOAT, num_envs=2)
    assert env.get_attr("num_envs") == [2, 2]
    with pytest.raises(ValueError, match="some envs only"):
        env.set_attr("render_mode", None, indices=[0])


def test_sb3_ppo_trains_on_the_adapter_and_the_callback_records_checkpoints(tmp_path):
    env = make_sb3_vec_env(CORRIDOR_ID, num_envs=8, seed=0)
    callback = GoodhartCallback(CORRIDOR_ID, eval_every=320, eval_episodes=4)
    model = PPO("MlpPolicy", env, n_steps=40, batch_size=80, n_epochs=1, seed=0, device="cpu")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(640, callback=callback)
    assert [c.step for c in callback.checkpoints] == [320, 640]
    assert all(isinstance(c, Evaluation) and len(c.proxy) == 4 for c in callback.checkpoints)
    # 8 envs x 80 steps of episodes of at most 20 steps; a true return is 1 (door) or 0 (not)
    assert len(callback.true_returns) >= 32 and set(callback.true_returns) <= {0.0, 1.0}
    with open(tmp_path / "progress.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2  # one per rollout
    logged = float(rows[-1]["rollout/ep_true_rew_mean"])
    assert logged == pytest.approx(np.mean(callback.true_returns))
    assert float(rows[-1]["rollout/ep_proxy_rew_mean"]) == pytest.approx(
        float(rows[-1]["rollout/ep_rew_mean"])
    )


def test_train_sb3_writes_a_run_directory_and_resumes_it(tmp_path):
    settings = dict(num_envs=8, n_steps=40, batch_size=80, n_epochs=1, eval_every=320, eval_episodes=4)
    first = train_sb3(CORRIDOR_ID, tmp_path, progress=False, total_timesteps=320, **settings)
    assert [c.step for c in first.checkpoints] == [320]
    resumed = train_sb3(CORRIDOR_ID, tmp_path, progress=False, total_timesteps=640, **settings)
    assert resumed.model.num_timesteps == 640
    assert [c.step for c in resumed.checkpoints] == [320, 640]
    assert resumed.config["seed"] == 0 and resumed.config["n_steps"] == 40


def test_train_sb3_rounds_steps_down_to_whole_rollouts_as_ppo_does(tmp_path):
    settings = dict(num_envs=8, n_steps=40, batch_size=80, n_epochs=1, eval_every=0, eval_episodes=2)
    result = train_sb3(CORRIDOR_ID, progress=False, total_timesteps=500, **settings)  # 1.56 rollouts
    assert result.model.num_timesteps == 320
    with pytest.raises(ValueError, match="less than one rollout"):
        train_sb3(CORRIDOR_ID, progress=False, total_timesteps=300, **settings)
    with pytest.raises(TypeError, match="has no setting 'n_step'"):
        train_sb3(CORRIDOR_ID, progress=False, total_timesteps=320, n_step=40)


def test_train_sb3_saves_plain_tensors_and_refuses_a_pickled_model(tmp_path):
    settings = dict(num_envs=8, n_steps=40, batch_size=80, n_epochs=1, eval_every=320, eval_episodes=2)
    train_sb3(CORRIDOR_ID, tmp_path / "run", progress=False, total_timesteps=320, **settings)
    saved = torch.load(tmp_path / "run" / "sb3_agent.pt", weights_only=True)
    assert saved["num_timesteps"] == 320 and saved["env_id"] == CORRIDOR_ID
    assert not (tmp_path / "run" / "sb3_model.zip").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "sb3_model.zip").write_bytes(b"PK")  # what older versions wrote
    with pytest.raises(ValueError, match="unpickle"):
        train_sb3(CORRIDOR_ID, tmp_path / "old", progress=False, total_timesteps=320, **settings)


# --- SB3 run directories: the same rules as native PPO's ------------------------------------------

TINY = dict(num_envs=8, n_steps=40, batch_size=80, n_epochs=1, eval_episodes=2)  # 320 steps a rollout


@pytest.mark.parametrize(
    "change, differs",
    [
        ({"seed": 1}, "seed"),
        ({"learning_rate": 1e-3}, "learning_rate"),
        ({"knobs": {"coin_value": 2.0}}, "knobs"),
    ],
)
def test_train_sb3_refuses_to_resume_a_run_with_other_settings(tmp_path, change, differs):
    """It used to load the old agent into a model of the new settings and go on, while config.json
    recorded the new ones."""
    from gaming_gym.errors import RunDirectoryError

    settings = {**TINY, "eval_every": 320, "total_timesteps": 320}
    train_sb3(CORRIDOR_ID, tmp_path, progress=False, **settings)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(RunDirectoryError, match=f"differs in {differs}"):
        train_sb3(CORRIDOR_ID, tmp_path, progress=False, **{**settings, "total_timesteps": 640, **change})
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_train_sb3_refuses_fewer_steps_than_it_has_trained(tmp_path):
    from gaming_gym.errors import RunDirectoryError

    train_sb3(CORRIDOR_ID, tmp_path, progress=False, total_timesteps=640, eval_every=320, **TINY)
    with pytest.raises(RunDirectoryError, match="already trained 640 steps, more than the 320 asked for"):
        train_sb3(CORRIDOR_ID, tmp_path, progress=False, total_timesteps=320, eval_every=320, **TINY)


def test_ctrl_c_in_sb3_saves_the_last_whole_rollout_and_the_rerun_finishes(tmp_path, monkeypatch):
    """Interrupted half way through its third rollout, with no evaluation due until the end: the
    agent file holds the model after two rollouts and their updates, and the rerun trains the
    last two and evaluates once, at the end."""
    real_step_wait = SB3VecEnv.step_wait  # 40 steps a rollout: the 100th is in the third
    monkeypatch.setattr(SB3VecEnv, "step_wait", raising_on_call(100, real_step_wait, KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train_sb3(CORRIDOR_ID, tmp_path, progress=False, total_timesteps=1280, eval_every=0, **TINY)
    monkeypatch.setattr(SB3VecEnv, "step_wait", real_step_wait)
    saved = torch.load(tmp_path / "sb3_agent.pt", weights_only=True)
    assert (saved["num_timesteps"], saved["n_updates"], saved["evaluations"]) == (640, 2, [])
    resumed = train_sb3(CORRIDOR_ID, tmp_path, progress=False, total_timesteps=1280, eval_every=0, **TINY)
    assert resumed.model.num_timesteps == 1280 and resumed.model._n_updates == 4
    assert [c.step for c in resumed.checkpoints] == [1280]


def test_an_sb3_run_directory_holds_one_evaluations_file(tmp_path):
    from gaming_gym.experiment import train_experiment

    settings = {**TINY, "eval_every": 320, "total_timesteps": 640}
    train_experiment(CORRIDOR_ID, tmp_path, "sb3", progress=False, **settings)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "config.json",
        "episodes.png",
        "evaluations.json",
        "goodhart.json",
        "goodhart_curve.png",
        "sb3_agent.pt",
    ]
    evaluations = json.loads((tmp_path / "evaluations.json").read_text())
    saved = torch.load(tmp_path / "sb3_agent.pt", weights_only=True)
    assert [e["step"] for e in evaluations] == [e["step"] for e in saved["evaluations"]] == [320, 640]
