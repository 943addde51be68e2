"""What native PPO's ``train`` asks of the process and of the host: it leaves torch's global RNG and
thread count as it found them (a library call must not reseed its caller's program), and its hot
loop reads values from the device a fixed few times per iteration, not per step or minibatch."""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_ppo import tiny_config  # registers the 20-step Corridor env

import gaming_gym
from gaming_gym import evaluation
from gaming_gym.agents.ppo import default_config, load_agent, train, training
from gaming_gym.errors import ConfigError
from gaming_gym.policies import reference_policy

SETTINGS = {
    "plain": {},
    "every mitigation, from an sft start": {
        "start": "sft",
        "mitigations": {
            "kl_initial": {"beta": 0.5},
            "kl_reference": {"beta": 0.5, "reference": "intended"},
            "early_stopping": {"episodes": 2},
        },
    },
}


@pytest.fixture
def three_torch_threads():
    """A thread count train would not pick itself (it trains on ``cpu_threads=1``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(threads)


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_train_resume_and_load_leave_the_global_rng_and_thread_count_alone(
    tmp_path, three_torch_threads, settings
):
    """A fresh run, its resumption (restoring a checkpoint) and loading its agent: torch's global
    RNG is where the caller left it and the thread count is the caller's, and the runs still
    come out the same for the same seed."""
    torch.manual_seed(12345)
    rng_before = torch.get_rng_state()
    short = train(tiny_config(total_timesteps=1600, **settings), run_dir=tmp_path, progress=False)
    longer = train(tiny_config(total_timesteps=2400, **settings), run_dir=tmp_path, progress=False)
    load_agent(tmp_path)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.get_num_threads() == three_torch_threads
    assert (short.global_step, longer.global_step) == (1600, 2400)

    torch.manual_seed(999)  # another global state: the same run, all the same
    again = train(tiny_config(total_timesteps=1600, **settings), progress=False)
    for name, tensor in short.agent.state_dict().items():
        torch.testing.assert_close(again.agent.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    assert [e.to_record() for e in again.checkpoints] == [e.to_record() for e in short.checkpoints]


def test_train_restores_the_thread_count_when_it_fails(three_torch_threads):
    with pytest.raises(ConfigError, match="at most 50,000,000 are allowed"):
        train(tiny_config(hidden_sizes=(16_384, 16_384)), progress=False)
    assert torch.get_num_threads() == three_torch_threads


# --- host syncs ---------------------------------------------------------------------------------

PACKAGE = Path(gaming_gym.__file__).parent
PPO_CODE = (PACKAGE / "agents", PACKAGE / "wrappers.py")  # the trainer's code, apart from the env's
READS = ("item", "tolist", "cpu", "nonzero", "__bool__", "__float__", "__int__", "__index__")
"""Tensor methods that bring a value to the host: on a GPU, each waits for the device."""


class HostReads:
    """Counts, per training iteration, the host reads of tensor values made by gaming_gym code.

    On a CPU nothing waits, so the reads are counted where a GPU would wait: the methods in
    ``READS`` and indexing with a boolean mask (which must count the mask's true entries first),
    called from the package's own code (torch's internals, such as Adam's CPU step counters, are
    not syncs). Reads from the trainer's code (``agents/``, ``wrappers.py``) and from the env's
    are counted apart.
    """

    def __init__(self, monkeypatch):
        self.iterations: list[Counter] = []
        self._counting: Counter | None = None
        for name in READS:
            monkeypatch.setattr(torch.Tensor, name, self._counted(getattr(torch.Tensor, name)))
        for name in ("__getitem__", "__setitem__"):
            monkeypatch.setattr(torch.Tensor, name, self._counted_if_masked(getattr(torch.Tensor, name)))
        real_iteration = training._iteration

        def counted_iteration(*args):
            self._counting = Counter()
            try:
                return real_iteration(*args)
            finally:
                self.iterations.append(self._counting)
                self._counting = None

        monkeypatch.setattr(training, "_iteration", counted_iteration)

    def _count(self) -> None:
        if self._counting is None:
            return
        caller = Path(sys._getframe(2).f_code.co_filename)
        if caller.is_relative_to(PACKAGE):
            self._counting["ppo" if any(caller.is_relative_to(p) for p in PPO_CODE) else "env"] += 1

    def _counted(self, method):
        def counted(tensor, *args, **kwargs):
            self._count()
            return method(tensor, *args, **kwargs)

        return counted

    def _counted_if_masked(self, method):
        def counted(tensor, index, *args):
            parts = index if isinstance(index, tuple) else (index,)
            if any(isinstance(part, torch.Tensor) and part.dtype == torch.bool for part in parts):
                self._count()
            return method(tensor, index, *args)

        return counted


ROLLOUTS = {
    "corridor": dict(num_steps=50, num_minibatches=2),
    "corridor, longer rollouts, more minibatches": dict(num_steps=100, num_minibatches=8, update_epochs=2),
    "corridor, KL penalty": dict(num_steps=50, num_minibatches=2, mitigations={"kl_initial": {"beta": 0.5}}),
    "continuous boat": dict(
        env_id="GamingGym/BoatRaceContinuous-v1", num_envs=4, num_steps=32, num_minibatches=4
    ),
}


@pytest.mark.parametrize("settings", ROLLOUTS.values(), ids=ROLLOUTS.keys())
def test_an_iteration_reads_from_the_device_a_fixed_few_times(monkeypatch, settings):
    """Five host reads an iteration from the trainer, however many steps and minibatches: the
    episodes that ended (four columns) and the losses, the value statistics and the mitigations'
    log columns (one copy); truncated episodes are bootstrapped without asking how many there
    were. What is left per step is the env's own: its autoreset asks whether any episode ended
    (one read a step; where some did, it resets them by mask). Earlier the trainer read 2 values
    a step (more where episodes ended) and 5 a minibatch, and the env 2 more a step to check the
    actions; then 6 an iteration."""
    config = tiny_config(eval_every=0, **settings)
    config = dataclasses.replace(config, total_timesteps=2 * config.batch_size)
    reads = HostReads(monkeypatch)
    train(config, progress=False)
    assert [count["ppo"] for count in reads.iterations] == [5, 5]
    autoreset_checks = config.num_steps  # one a step, where the env decides whether to reset
    assert all(count["env"] >= autoreset_checks for count in reads.iterations)
    if settings.get("env_id") == "GamingGym/BoatRaceContinuous-v1":  # 1000-step episodes: no end yet
        assert [count["env"] for count in reads.iterations] == [autoreset_checks] * 2


def test_the_training_env_checks_action_shapes_every_step_but_values_only_in_evaluations():
    """PPO's heads act inside the action space by construction, so its training env skips the
    per-step value check (a host sync); shapes and dtypes are still checked there, for free, and
    the envs evaluations make check values as every env does by default."""
    batched = training.make_training_env(tiny_config(), torch.device("cpu"))
    batched.reset(seed=0)
    assert batched.unwrapped.check_action_values is False and batched.deferred
    with pytest.raises(ValueError, match=r"must have shape \(16"):
        batched.step(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="discrete actions must be integers"):
        batched.step(torch.ones(16))
    batched.close()
    fresh = gym.make_vec(tiny_config().env_id, num_envs=2)  # as evaluate() makes them
    fresh.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        fresh.step(torch.tensor([1, 3]))


@pytest.mark.slow  # soak: torch.compile of two env sizes, about 20 s on a CPU
def test_compiled_env_steps_train_as_the_eager_ones():
    """``compile=True`` fuses the training and evaluation envs' steps: a short BoatRace run
    evaluates the same episodes and ends with the same weights, to float rounding."""
    config = default_config(
        "GamingGym/BoatRace-v1",
        seed=3,
        num_envs=16,
        num_steps=16,
        num_minibatches=2,
        total_timesteps=3 * 256,
        eval_every=0,
        eval_episodes=4,
    )
    eager = train(config, progress=False)
    fused = train(dataclasses.replace(config, compile=True), progress=False)
    assert len(eager.checkpoints) == len(fused.checkpoints) == 2
    for a, b in zip(eager.checkpoints, fused.checkpoints, strict=True):
        np.testing.assert_allclose(a.proxy, b.proxy, atol=1e-3)
        np.testing.assert_allclose(a.true, b.true, atol=1e-3)
        assert a.kl == pytest.approx(b.kl, abs=1e-5)
    weights = fused.agent.state_dict()
    for name, value in eager.agent.state_dict().items():
        torch.testing.assert_close(weights[name], value, atol=1e-4, rtol=1e-4)


def test_compile_must_be_a_bool():
    with pytest.raises(ConfigError, match="compile must be true or false"):
        tiny_config(compile="yes")


def test_an_evaluation_asks_whether_episodes_run_every_few_steps_only(monkeypatch):
    """An evaluation reads from the device whether any episode still runs once every
    ``CHECK_EVERY`` steps, not every step, and stops at the first check after the last episode
    ended (BoatRace's intended policy finishes its races in a few hundred of 1000 steps)."""
    intended = reference_policy("GamingGym/BoatRace-v1", "intended")
    steps = 0

    def counted_policy(obs):
        nonlocal steps
        steps += 1
        return intended(obs)

    reads = 0
    real_bool = torch.Tensor.__bool__

    def counted_bool(tensor):
        nonlocal reads
        if Path(sys._getframe(1).f_code.co_filename) == Path(evaluation.__file__):
            reads += 1
        return real_bool(tensor)

    monkeypatch.setattr(torch.Tensor, "__bool__", counted_bool)
    returns = evaluation.evaluate(counted_policy, "GamingGym/BoatRace-v1", episodes=4, seed=0)
    longest = int(returns.length.max())
    assert longest < 1000  # every race finished: the loop stopped at a check, not at the limit
    assert steps % evaluation.CHECK_EVERY == 0
    assert longest <= steps < longest + evaluation.CHECK_EVERY
    assert reads == steps // evaluation.CHECK_EVERY
