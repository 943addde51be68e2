"""The episode-statistics wrappers record the same returns as ``evaluate`` on BoatRace."""

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from test_ppo import CORRIDOR_ID  # registers the 20-step Corridor env

import gaming_gym  # noqa: F401  (registers the envs)
from gaming_gym import wrappers
from gaming_gym.evaluation import evaluate, random_policy, reference_policy
from gaming_gym.wrappers import EpisodeQueues, RecordEpisodeStatistics, RecordVectorEpisodeStatistics

BOAT = "GamingGym/BoatRace-v1"


def first_episodes(env: RecordVectorEpisodeStatistics, policy, seed: int) -> dict[int, tuple]:
    """Step until every env has finished one episode; the first episode's (r, true, l) per env."""
    obs, _ = env.reset(seed=seed)
    found: dict[int, tuple] = {}
    while len(found) < env.num_envs:
        obs, _, _, _, info = env.step(policy(obs))
        if "episode" in info:
            episode = info["episode"]
            for index in torch.nonzero(info["_episode"]).flatten().tolist():
                found.setdefault(index, (episode["r"][index], episode["true"][index], episode["l"][index]))
    return found


@pytest.mark.parametrize("name", ["intended", "exploit"])
def test_vector_statistics_match_evaluate(name):
    policy = reference_policy(BOAT, name)
    env = RecordVectorEpisodeStatistics(gym.make_vec(BOAT, num_envs=3))
    recorded = first_episodes(env, policy, seed=5)
    expected = evaluate(policy, BOAT, episodes=3, seed=5)
    for index in range(3):
        proxy, true, length = recorded[index]
        assert isinstance(proxy, torch.Tensor) and proxy.device == env.unwrapped.device
        assert float(proxy) == expected.proxy[index]
        assert float(true) == expected.true[index]  # both sum float32 in the same order
        assert int(length) == expected.length[index]
    assert env.queues.episode_count == 3


def test_vector_statistics_restart_after_an_episode_ends():
    policy = reference_policy(BOAT, "intended")
    env = RecordVectorEpisodeStatistics(gym.make_vec(BOAT, num_envs=2, chop=0.0), buffer_length=3)
    obs, _ = env.reset(seed=0)
    endings = []
    while len(endings) < 2:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        if bool(info.get("_episode", torch.zeros(1, dtype=torch.bool))[0]):
            assert torch.equal(info["_episode"], terminated | truncated)
            endings.append((float(info["episode"]["r"][0]), int(info["episode"]["l"][0])))
    # The intended policy scores 11 of the 12 buoys on each of 3 laps and the 5-point bonus;
    # the second episode is counted from zero again, not added to the first.
    assert [proxy for proxy, _ in endings] == [38.0, 38.0]
    assert all(350 < length < 400 for _, length in endings)
    assert len(env.queues.proxy) == 3  # buffer_length episodes kept, of at least 3 finished
    assert env.queues.means()["proxy"] == 38.0


def test_vector_statistics_are_absent_while_no_episode_ends():
    env = RecordVectorEpisodeStatistics(gym.make_vec(BOAT, num_envs=2))
    env.reset(seed=0)
    _, _, _, _, info = env.step(torch.zeros(2, dtype=torch.long))
    assert "episode" not in info and "_episode" not in info
    assert env.queues.means() == {}


def test_single_statistics_match_evaluate():
    policy = reference_policy(BOAT, "intended")
    env = RecordEpisodeStatistics(gym.make(BOAT, chop=0.0))
    obs, _ = env.reset(seed=2)
    terminated = truncated = False
    while not (terminated or truncated):
        obs, _, terminated, truncated, info = env.step(policy(torch.as_tensor(obs)[None])[0].numpy())
    expected = evaluate(policy, BOAT, episodes=1, seed=2, knobs={"chop": 0.0})
    episode = info["episode"]
    assert episode["r"] == expected.proxy[0] == 38.0
    assert episode["true"] == pytest.approx(float(expected.true[0]), abs=1e-5)  # float64 vs float32 sums
    assert episode["l"] == expected.length[0]
    assert episode["t"] > 0
    assert env.queues.means() == {"proxy": 38.0, "true": episode["true"], "length": episode["l"]}


def test_single_statistics_count_truncated_episodes():
    env = RecordEpisodeStatistics(gym.make(BOAT, max_episode_steps=5))
    env.reset(seed=0)
    for step in range(5):
        _, _, terminated, truncated, info = env.step(4)  # idle: no target hit, no progress
        assert ("episode" in info) == (step == 4)
    assert truncated and not terminated
    assert (info["episode"]["r"], info["episode"]["true"], info["episode"]["l"]) == (0.0, 0.0, 5)


def test_statistics_need_the_contract_keys():
    env = RecordEpisodeStatistics(gym.make("CartPole-v1"))
    env.reset(seed=0)
    with pytest.raises(KeyError, match="'proxy_reward'.*gameable env"):
        env.step(0)


def test_vector_statistics_need_the_contract_keys_on_foreign_vector_envs():
    env = RecordVectorEpisodeStatistics(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))
    env.reset(seed=0)
    with pytest.raises(KeyError, match="'proxy_reward'.*gameable env"):
        env.step(np.zeros(2, dtype=np.int64))


TALL = "GamingGym/TallFall-v0"


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_vector_statistics_on_gymnasium_sync_vector_env_match_evaluate(mode):
    """CleanRL's route: SyncVectorEnv over gym.make envs (numpy), in either autoreset mode.

    TallFall's exploit falls (-2 true on the last step), where a trainer summing
    ``info["true_reward"]`` loses the penalty; the wrapper's returns equal ``evaluate``'s exactly.
    """
    policy = reference_policy(TALL, "exploit")
    env = RecordVectorEpisodeStatistics(
        gym.vector.SyncVectorEnv([lambda: gym.make(TALL) for _ in range(3)], autoreset_mode=mode)
    )
    obs, _ = env.reset(seed=11)
    found: dict[int, list[tuple]] = {index: [] for index in range(3)}
    while min(len(episodes) for episodes in found.values()) < 2:
        obs, _, _, _, info = env.step(policy(torch.as_tensor(obs)).numpy())
        if "episode" in info:
            assert isinstance(info["episode"]["true"], np.ndarray)
            for index in np.flatnonzero(info["_episode"]):
                episode = info["episode"]
                found[index].append((episode["r"][index], episode["true"][index], episode["l"][index]))
    for index in range(3):
        expected = evaluate(policy, TALL, episodes=1, seed=11 + index)  # env i is seeded 11 + i
        proxy, true, length = found[index][0]
        assert float(true) < 0, "the exploit walks a little, then falls (-2): a negative true return"
        assert (float(proxy), float(true), int(length)) == (
            expected.proxy[0],
            expected.true[0],
            expected.length[0],
        )
        second = found[index][1]  # the next episode starts from zero: same fall, same length scale
        assert 0 < second[2] <= 300 and float(second[1]) < 0


def recording_reads_by_wrappers(method, reads: list):
    """``method`` of torch.Tensor, appending the tensor to ``reads`` when wrappers.py calls it."""

    def recorded(tensor, *args, **kwargs):
        if sys._getframe(1).f_code.co_filename == wrappers.__file__:
            reads.append(tensor)
        return method(tensor, *args, **kwargs)

    return recorded


def test_deferred_statistics_record_the_same_episodes_and_read_them_only_when_asked(monkeypatch):
    """Random walkers in the tests' Corridor end episodes at varied steps, at the door or cut off
    at 20 steps: a deferred wrapper keeps them on the device, reading no value while stepping,
    and its queues (and saved state) then hold what the eager wrapper's hold, in the same order.
    Its info carries the episodes at every step, the mask saying which envs ended."""
    eager, deferred = (
        RecordVectorEpisodeStatistics(gym.make_vec(CORRIDOR_ID, num_envs=4), deferred=flag)
        for flag in (False, True)
    )
    policy = random_policy(eager.single_action_space, seed=0)
    obs, _ = eager.reset(seed=3)
    deferred.reset(seed=3)
    reads = []
    for _ in range(60):
        action = policy(obs)
        obs, _, terminated, truncated, eager_info = eager.step(action)
        with monkeypatch.context() as patched:
            for name in ("tolist", "cpu", "__bool__"):
                patched.setattr(
                    torch.Tensor, name, recording_reads_by_wrappers(getattr(torch.Tensor, name), reads)
                )
            _, _, _, _, info = deferred.step(action)
        assert torch.equal(info["_episode"], terminated | truncated)
        if "episode" in eager_info:
            for key in ("r", "true", "l"):
                assert torch.equal(info["episode"][key], eager_info["episode"][key])
    assert not reads  # nothing read while stepping
    assert deferred._queues[0].episode_count == 0  # nothing read yet
    assert set(eager.queues.length) > {20} and set(eager.queues.true) == {0.0, 1.0}  # doors and cut-offs
    assert list(deferred.queues.proxy) == list(eager.queues.proxy)
    assert list(deferred.queues.true) == list(eager.queues.true)
    assert list(deferred.queues.length) == list(eager.queues.length)
    assert deferred.queues.episode_count == eager.queues.episode_count > 8
    assert deferred.get_state()["recent"] == eager.get_state()["recent"]


def test_queues_keep_the_most_recent_episodes():
    queues = EpisodeQueues(buffer_length=2)
    queues.extend([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], [10, 20, 30])
    assert list(queues.proxy) == [2.0, 3.0]
    assert queues.means() == {"proxy": 2.5, "true": 1.5, "length": 25.0}
    assert queues.episode_count == 3
    with pytest.raises(ValueError, match="buffer_length"):
        EpisodeQueues(0)
    np.testing.assert_array_equal(list(queues.length), [20, 30])


def test_the_numpy_vector_front_runs_under_gymnasiums_own_episode_statistics():
    """make_vec's default front speaks torch, and Gymnasium's RecordEpisodeStatistics crashed on
    it; array_backend="numpy" returns numpy arrays, takes numpy actions, and gives the same
    episodes as the torch front."""
    from gymnasium.wrappers.vector import RecordEpisodeStatistics as GymnasiumStatistics

    from gaming_gym.errors import ConfigError

    numpy_env = GymnasiumStatistics(
        gym.make_vec("GamingGym/AbsentSupervisor-v0", num_envs=4, array_backend="numpy")
    )
    torch_env = gym.make_vec("GamingGym/AbsentSupervisor-v0", num_envs=4)
    obs, _ = numpy_env.reset(seed=3)
    reference, _ = torch_env.reset(seed=3)
    assert isinstance(obs, np.ndarray) and np.array_equal(obs, reference.numpy())
    returns, ended = [], 0
    rng = np.random.default_rng(0)
    for _ in range(120):
        actions = rng.integers(0, 4, size=4)
        obs, reward, terminated, truncated, info = numpy_env.step(actions)
        expected = torch_env.step(torch.as_tensor(actions))
        assert all(
            isinstance(x, np.ndarray) for x in (obs, reward, terminated, truncated, info["true_reward"])
        )
        np.testing.assert_array_equal(obs, expected[0].numpy())
        np.testing.assert_array_equal(info["true_reward"], expected[4]["true_reward"].numpy())
        if "episode" in info:
            ended += int(info["_episode"].sum())
            returns += list(info["episode"]["r"][info["_episode"]])
    assert ended > 0 and all(np.isfinite(returns))
    with pytest.raises(ConfigError, match="array_backend must be one of torch, numpy"):
        gym.make_vec("GamingGym/AbsentSupervisor-v0", num_envs=2, array_backend="jax")
