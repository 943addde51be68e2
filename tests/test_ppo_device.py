"""What native PPO's ``train`` asks of the process: it leaves torch's global RNG and thread count as
it found them (a library call must not reseed its caller's program)."""

from __future__ import annotations

import pytest
import torch
from test_ppo import tiny_config  # registers the 20-step Corridor env

from gaming_gym.agents.ppo import load_agent, train

SETTINGS = {
    "plain": {},
    "every mitigation": {
        "kl_coef": 0.5,
        "kl_reference": "intended",
        "holdout_episodes": 2,
        "early_stop": True,
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
    with pytest.raises(TypeError, match="has no knob"):
        train(tiny_config(knobs={"no_such_knob": 1}), progress=False)
    assert torch.get_num_threads() == three_torch_threads
