"""The stable-baselines3 path: SB3's VecEnv conventions over the batched env, checked exactly."""

from __future__ import annotations

import csv
import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import gaming_gym  # noqa: F401  (registers the envs)
from gaming_gym.agents.ppo import PPOConfig
from gaming_gym.errors import ConfigError, GamingGymWarning, RunDirectoryError
from gaming_gym.evaluation import evaluate
from gaming_gym.metrics import Evaluation

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402
from test_ppo import CORRIDOR_ID, raising_on_call  # noqa: E402  (a 20-step toy env registered there)

from gaming_gym.agents.sb3 import (  # noqa: E402
    GoodhartCallback,
    LinearSchedule,
    SB3VecEnv,
    ScaledReward,
    build_model,
    load_sb3_policy,
    make_sb3_vec_env,
    sb3_config,
    train_sb3,
    translate,
)

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
    assert len(callback.episodes.true) >= 32 and set(callback.episodes.true) <= {0.0, 1.0}
    with open(tmp_path / "progress.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2  # one per rollout
    logged = float(rows[-1]["rollout/ep_true_rew_mean"])
    assert logged == pytest.approx(np.mean(callback.episodes.true))
    assert float(rows[-1]["rollout/ep_proxy_rew_mean"]) == pytest.approx(
        float(rows[-1]["rollout/ep_rew_mean"])
    )


# --- train_sb3: native PPO's settings, translated ---------------------------------------------------

TINY = dict(  # 8 envs x 40 steps = 320 steps a rollout, 4 minibatches of 80
    num_envs=8, num_steps=40, num_minibatches=4, update_epochs=1, eval_episodes=2, device="cpu"
)


def tiny(**overrides) -> PPOConfig:
    return sb3_config(CORRIDOR_ID, **{**TINY, **overrides})


def test_translate_maps_every_native_setting_to_its_sb3_argument():
    config = sb3_config(
        CORRIDOR_ID,
        seed=7,
        total_timesteps=10 * 1280 + 5,  # rounded down to 10 rollouts
        num_envs=16,
        num_steps=80,
        num_minibatches=8,
        update_epochs=3,
        learning_rate=1e-3,
        anneal_lr=False,
        gamma=0.9,
        gae_lambda=0.8,
        clip_coef=0.3,
        clip_vloss=True,
        norm_adv=False,
        ent_coef=0.02,
        vf_coef=0.6,
        max_grad_norm=0.7,
        hidden_sizes=(32, 16),
        norm_obs=False,
        reward_scale=3.0,
        eval_every=4,
    )
    settings = translate(config)
    assert settings.ppo == {
        "n_steps": 80,
        "batch_size": 16 * 80 // 8,
        "n_epochs": 3,
        "learning_rate": 1e-3,
        "gamma": 0.9,
        "gae_lambda": 0.8,
        "clip_range": 0.3,
        "clip_range_vf": 0.3,
        "normalize_advantage": False,
        "ent_coef": 0.02,
        "vf_coef": 0.3,  # SB3's value loss is the MSE, native PPO's half of it
        "max_grad_norm": 0.7,
        "target_kl": None,
        "policy_kwargs": {"net_arch": {"pi": [32, 16], "vf": [32, 16]}, "activation_fn": torch.nn.Tanh},
        "seed": 7,
    }
    assert (settings.num_envs, settings.rollout, settings.total_timesteps) == (16, 1280, 12_800)
    assert (settings.norm_obs, settings.reward_scale) == (False, 3.0)
    assert (settings.eval_every, settings.eval_seed) == (4 * 1280, 7 + 1_000_003)
    assert translate(dataclasses.replace(config, clip_vloss=False)).ppo["clip_range_vf"] is None


def test_the_built_model_and_its_env_wrappers_are_what_the_settings_say():
    config = tiny(hidden_sizes=(16, 8), reward_scale=4.0, clip_vloss=True, total_timesteps=640)
    env = make_sb3_vec_env(CORRIDOR_ID, 8, seed=0)
    model = build_model(env, translate(config))
    assert (model.n_envs, model.n_steps, model.batch_size, model.n_epochs) == (8, 40, 80, 1)
    assert (model.clip_range(1.0), model.clip_range_vf(1.0), model.vf_coef) == (0.2, 0.2, 0.25)
    assert (model.ent_coef, model.max_grad_norm, model.gamma, model.gae_lambda) == (0.01, 0.5, 0.99, 0.95)
    linear = [
        module for module in model.policy.mlp_extractor.policy_net if isinstance(module, torch.nn.Linear)
    ]
    assert [layer.out_features for layer in linear] == [16, 8]
    assert all(isinstance(module, torch.nn.Tanh) for module in model.policy.mlp_extractor.value_net[1::2])
    vec_normalize = model.get_vec_normalize_env()
    assert vec_normalize.norm_obs and not vec_normalize.norm_reward
    assert (vec_normalize.clip_obs, vec_normalize.epsilon) == (10.0, 1e-8)
    assert isinstance(vec_normalize.venv, ScaledReward) and vec_normalize.venv.scale == 4.0
    vec_normalize.reset()
    _, rewards, _, infos = vec_normalize.step(np.full(8, 0))  # every walker steps left: 2 -> 1
    _, rewards, _, infos = vec_normalize.step(np.full(8, 0))  # 1 -> 0, the coin slot: proxy 1
    assert rewards.tolist() == [4.0] * 8 and [info["proxy_reward"] for info in infos] == [1.0] * 8
    plain = build_model(make_sb3_vec_env(CORRIDOR_ID, 8, seed=0), translate(tiny(norm_obs=False)))
    assert plain.get_vec_normalize_env() is None and isinstance(plain.env, SB3VecEnv)


def test_annealing_gives_each_sb3_update_native_ppos_learning_rate(tmp_path):
    config = tiny(learning_rate=1e-3, total_timesteps=4 * 320)
    schedule = translate(config).ppo["learning_rate"]
    assert schedule == LinearSchedule(1e-3, 320, 1280)
    assert schedule(1.0) == 1e-3  # the optimiser's rate as SB3 builds it
    # SB3 calls the schedule after counting update i's rollout: progress_remaining = 1 - (i + 1) / 4
    rates = [schedule(1 - (i + 1) * 320 / 1280) for i in range(4)]
    assert rates == pytest.approx([1e-3 * (1 - i / 4) for i in range(4)])  # native: 1e-3, ..., 2.5e-4
    assert translate(tiny(anneal_lr=False)).ppo["learning_rate"] == 3e-4
    result = train_sb3(config, progress=False)
    assert result.model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-4)  # the last update's


def test_the_tuned_settings_reach_sb3():
    boat = translate(sb3_config("GamingGym/BoatRace-v1"))
    assert (boat.num_envs, boat.ppo["n_steps"], boat.ppo["batch_size"]) == (256, 32, 2048)
    assert boat.ppo["learning_rate"] == 3e-4 and boat.total_timesteps == 480 * 8192  # constant rate
    assert boat.eval_every == 10 * 8192 and boat.reward_scale == 1.0
    assert translate(sb3_config("GamingGym/BoatRace-v1", reward="true")).reward_scale == 100.0
    cleaner = translate(sb3_config("GamingGym/SensorCleaner-v1"))
    assert cleaner.ppo["clip_range_vf"] is None and cleaner.ppo["gamma"] == 0.95
    assert cleaner.ppo["batch_size"] == 64 * 128 // 32 and cleaner.ppo["learning_rate"].learning_rate == 1e-3


@pytest.mark.parametrize(
    "setting, message",
    [
        (
            {"mitigations": {"kl_initial": {}}},
            "cannot use mitigation kl_initial (a KL penalty needs the policy's log-probabilities",
        ),
        ({"mitigations": {"kl_reference": {}}}, "cannot use mitigation kl_reference"),
        ({"target_kl": 0.02}, "cannot honour target_kl=0.02 (SB3 stops within an epoch"),
        ({"start": "sft"}, "cannot honour start='sft' (starting from a behaviour-cloned SFT model"),
        ({"n_steps": 40}, "no setting 'n_steps'; n_steps is num_steps here; it takes native PPO's settings"),
        ({"n_step": 40}, "no setting 'n_step'; it takes"),
        ({"learning_rate": float("inf")}, "learning_rate must be a finite number > 0, got inf"),
        ({"num_minibatches": 3}, "num_minibatches=3 must divide the rollout size"),
    ],
)
def test_settings_sb3_cannot_honour_or_train_on_are_refused(setting, message):
    with pytest.raises(ConfigError) as error:
        tiny(**setting)
    assert message in str(error.value)


def test_train_sb3_writes_a_run_directory_and_resumes_it(tmp_path):
    first = train_sb3(tiny(total_timesteps=640, eval_every=1), tmp_path, progress=False)
    assert [c.step for c in first.checkpoints] == [0, 320, 640]  # as native PPO: step 0, then each rollout
    with pytest.warns(GamingGymWarning, match="resuming the SB3 run .* at step 640: SB3 starts new episodes"):
        resumed = train_sb3(tiny(total_timesteps=960, eval_every=1), tmp_path, progress=False)
    assert resumed.model.num_timesteps == 960
    assert [c.step for c in resumed.checkpoints] == [0, 320, 640, 960]
    with open(tmp_path / "progress.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(int(r["iteration"]), int(r["global_step"])) for r in rows] == [(1, 320), (2, 640), (3, 960)]
    for column in ("charts/proxy_return", "charts/true_return", "eval/true_return", "train/approx_kl"):
        assert column in rows[0]
    assert all(np.isfinite(float(r["charts/true_return"])) for r in rows)
    assert rows[1]["train/approx_kl"] != "" and rows[0]["eval/true_return"] != ""
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["agent"] == "sb3" and saved["num_steps"] == 40 and "start" not in saved
    assert saved["mitigations"] == {}


def test_sb3_stops_early_with_the_same_plug_in_and_stays_stopped(tmp_path, monkeypatch):
    """The early-stopping mitigation under SB3: its held-out check is in every evaluation, and
    when the check has fallen for two evaluations after its best, training ends and the model
    gets back the weights of the best; run again it stays where it stopped (asked for longer, refused)."""
    from gaming_gym.mitigations.early_stopping import EarlyStopping

    curve = [0.0, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1]

    def measure(self):  # normalised 0.8 at the second evaluation, then falling
        references = gaming_gym.reference_returns(CORRIDOR_ID, {})
        random, intended = references["random"].true.mean(), references["intended"].true.mean()
        level = curve[len(self.context.evaluations(0))]
        return {"holdout_true": [np.full(2, random + level * (intended - random))]}

    monkeypatch.setattr(EarlyStopping, "measure", measure)
    config = tiny(total_timesteps=320 * 6, eval_every=1, mitigations={"early_stopping": {"episodes": 2}})
    result = train_sb3(config, tmp_path, progress=False)
    assert (result.stopped_step, result.kept_step) == (960, 320)
    assert [c.step for c in result.checkpoints] == [0, 320, 640, 960]
    assert all(len(c.holdout_true) == 2 for c in result.checkpoints)
    kept = evaluate(result.policy(deterministic=True), CORRIDOR_ID, episodes=4, seed=5)
    one_rollout = train_sb3(tiny(total_timesteps=320, eval_every=1), progress=False)
    expected = evaluate(one_rollout.policy(deterministic=True), CORRIDOR_ID, episodes=4, seed=5)
    np.testing.assert_array_equal(kept.proxy, expected.proxy)  # the agent of step 320
    longer = dataclasses.replace(config, total_timesteps=320 * 8)
    with pytest.raises(RunDirectoryError, match="holds a finished run; its config cannot change"):
        train_sb3(longer, tmp_path, progress=False)
    again = train_sb3(config, tmp_path, progress=False)
    assert (again.stopped_step, again.kept_step, len(again.checkpoints)) == (960, 320, 4)


def test_sb3_evaluates_after_each_update_on_native_ppos_evaluation_episodes(tmp_path):
    """The evaluation at step 320 is of the model after its first update, as native PPO's is: a
    model trained for exactly one rollout scores the same on the same episodes."""
    longer = train_sb3(tiny(total_timesteps=960, eval_every=1), progress=False)
    once = train_sb3(tiny(total_timesteps=320, eval_every=1), progress=False)
    assert [c.step for c in longer.checkpoints] == [0, 320, 640, 960]
    np.testing.assert_array_equal(longer.checkpoints[1].proxy, once.checkpoints[-1].proxy)
    np.testing.assert_array_equal(longer.checkpoints[1].true, once.checkpoints[-1].true)


def test_train_sb3_rounds_steps_down_to_whole_rollouts_as_ppo_does(tmp_path):
    result = train_sb3(tiny(total_timesteps=500, eval_every=0), progress=False)  # 1.56 rollouts
    assert result.model.num_timesteps == 320
    with pytest.raises(ValueError, match="less than one rollout"):
        tiny(total_timesteps=300)


def test_observation_statistics_are_saved_without_pickle_and_used_again_when_loaded(tmp_path):
    result = train_sb3(tiny(total_timesteps=640, eval_every=0), tmp_path, progress=False)
    vec_normalize = result.model.get_vec_normalize_env()
    saved = torch.load(tmp_path / "sb3_agent.pt", weights_only=True)  # plain tensors and numbers only
    assert saved["format"] == "gaming_gym.sb3_agent/2" and saved["hidden_sizes"] == [64, 64]
    np.testing.assert_array_equal(saved["obs_rms"]["mean"].numpy(), vec_normalize.obs_rms.mean)
    np.testing.assert_array_equal(saved["obs_rms"]["var"].numpy(), vec_normalize.obs_rms.var)
    assert saved["obs_rms"]["count"] == vec_normalize.obs_rms.count == pytest.approx(8 + 640)  # reset, steps
    assert vec_normalize.obs_rms.var[0] != 1.0  # statistics that matter: a walker's cell, not N(0, 1)

    obs = torch.linspace(0.0, 1.0, 6).unsqueeze(1)  # every cell of the corridor
    np.testing.assert_array_equal(result.normaliser(obs.numpy()), vec_normalize.normalize_obs(obs.numpy()))
    loaded = load_sb3_policy(tmp_path)
    for deterministic in (True, False):
        trained, restored = result.policy(deterministic), load_sb3_policy(tmp_path, deterministic)
        with torch.random.fork_rng():
            torch.manual_seed(3)
            expected = trained(obs.repeat(50, 1))
            torch.manual_seed(3)
            actions = restored(obs.repeat(50, 1))
        torch.testing.assert_close(actions, expected, rtol=0, atol=0)
    # the loaded policy, evaluated as the run evaluated it at its end, scores exactly the same
    seed = 1_000_003
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        returns = evaluate(loaded, CORRIDOR_ID, episodes=2, seed=seed)
    np.testing.assert_array_equal(returns.proxy, result.checkpoints[-1].proxy)
    np.testing.assert_array_equal(returns.true, result.checkpoints[-1].true)


def test_a_resumed_sb3_run_keeps_its_observation_statistics(tmp_path):
    train_sb3(tiny(total_timesteps=320, eval_every=1), tmp_path, progress=False)
    saved = torch.load(tmp_path / "sb3_agent.pt", weights_only=True)["obs_rms"]
    resumed = train_sb3(tiny(total_timesteps=640, eval_every=1), tmp_path, progress=False)
    # the saved statistics, then the resumed run's reset (8 observations) and its 320 steps
    assert resumed.model.get_vec_normalize_env().obs_rms.count == pytest.approx(saved["count"] + 8 + 320)


def test_train_sb3_saves_plain_tensors_and_refuses_a_pickled_model(tmp_path):
    train_sb3(tiny(total_timesteps=320, eval_every=1), tmp_path / "run", progress=False)
    saved = torch.load(tmp_path / "run" / "sb3_agent.pt", weights_only=True)
    assert saved["num_timesteps"] == 320 and saved["env_id"] == CORRIDOR_ID
    assert not (tmp_path / "run" / "sb3_model.zip").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "sb3_model.zip").write_bytes(b"PK")  # what older versions wrote
    with pytest.raises(ValueError, match="unpickle"):
        train_sb3(tiny(total_timesteps=320), tmp_path / "old", progress=False)


def test_an_sb3_agent_of_format_1_still_loads(tmp_path):
    """Format 1 (before the observation statistics were saved): trained on raw observations."""
    result = train_sb3(tiny(total_timesteps=320, eval_every=0, norm_obs=False), tmp_path, progress=False)
    saved = torch.load(tmp_path / "sb3_agent.pt", weights_only=True)
    del saved["hidden_sizes"], saved["obs_rms"]
    saved.update(format="gaming_gym.sb3_agent/1", policy_kwargs={}, use_sde=False)  # SB3's 64, 64 tanh
    torch.save(saved, tmp_path / "sb3_agent.pt")
    obs = torch.linspace(0.0, 1.0, 6).unsqueeze(1)
    expected = result.policy(deterministic=True)(obs)
    torch.testing.assert_close(load_sb3_policy(tmp_path, deterministic=True)(obs), expected)


# --- SB3 run directories: the same rules as native PPO's ------------------------------------------


@pytest.mark.parametrize(
    "change, differs",
    [
        ({"seed": 1}, "seed"),
        ({"learning_rate": 1e-3}, "learning_rate"),
        ({"norm_obs": False}, "norm_obs"),
        ({"knobs": {"coin_value": 2.0}}, "knobs"),
    ],
)
def test_train_sb3_refuses_to_resume_a_run_with_other_settings(tmp_path, change, differs):
    """It used to load the old agent into a model of the new settings and go on, while config.json
    recorded the new ones."""

    train_sb3(tiny(eval_every=1, total_timesteps=320), tmp_path, progress=False)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(RunDirectoryError, match=f"differs in {differs}"):
        train_sb3(tiny(eval_every=1, total_timesteps=640, **change), tmp_path, progress=False)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_train_sb3_refuses_fewer_steps_than_it_has_trained(tmp_path):

    train_sb3(tiny(total_timesteps=640, eval_every=1), tmp_path, progress=False)
    with pytest.raises(RunDirectoryError, match="already trained 640 steps, more than the 320 asked for"):
        train_sb3(tiny(total_timesteps=320, eval_every=1), tmp_path, progress=False)


def test_ctrl_c_in_sb3_saves_the_last_whole_rollout_and_the_rerun_finishes(tmp_path, monkeypatch):
    """Interrupted half way through its third rollout, with no evaluation due until the end but
    the one at step 0: the agent file holds the model after two rollouts and their updates, and
    the rerun trains the last two and evaluates once more, at the end."""
    real_step_wait = SB3VecEnv.step_wait  # 40 steps a rollout: the 100th is in the third
    monkeypatch.setattr(SB3VecEnv, "step_wait", raising_on_call(100, real_step_wait, KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train_sb3(tiny(total_timesteps=1280, eval_every=0), tmp_path, progress=False)
    monkeypatch.setattr(SB3VecEnv, "step_wait", real_step_wait)
    saved = torch.load(tmp_path / "sb3_agent.pt", weights_only=True)
    assert (saved["num_timesteps"], saved["n_updates"]) == (640, 2)
    assert [record["step"] for record in saved["evaluations"]] == [0]
    resumed = train_sb3(tiny(total_timesteps=1280, eval_every=0), tmp_path, progress=False)
    assert resumed.model.num_timesteps == 1280 and resumed.model._n_updates == 4
    assert [c.step for c in resumed.checkpoints] == [0, 1280]


def test_an_sb3_run_directory_holds_one_evaluations_file(tmp_path):
    from gaming_gym.experiment import train_experiment

    train_experiment(CORRIDOR_ID, tmp_path, "sb3", progress=False, **TINY, eval_every=1, total_timesteps=640)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "config.json",
        "episodes.png",
        "evaluations.json",
        "goodhart.json",
        "goodhart_curve.png",
        "progress.csv",
        "sb3_agent.pt",
    ]
    evaluations = json.loads((tmp_path / "evaluations.json").read_text())
    saved = torch.load(tmp_path / "sb3_agent.pt", weights_only=True)
    assert [e["step"] for e in evaluations] == [e["step"] for e in saved["evaluations"]] == [0, 320, 640]
