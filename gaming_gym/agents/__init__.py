"""Agents that optimise the proxy: native PPO, the stable-baselines3 path.

The native PPO is imported here; the SB3 path lives in :mod:`gaming_gym.agents.sb3` and needs the
optional extra (``pip install 'gaming_gym[sb3]'``), so it is imported only when asked for.
:data:`AGENTS` is the table both are chosen from by name (:mod:`gaming_gym.agents.agent`).
"""

from gaming_gym.agents.agent import AGENTS, Agent, get_agent, load_run_policy, read_run_config
from gaming_gym.agents.ppo import PPOConfig, TrainResult, default_config, load_agent, train, train_stacked

__all__ = [
    "AGENTS",
    "Agent",
    "PPOConfig",
    "TrainResult",
    "default_config",
    "get_agent",
    "load_agent",
    "load_run_policy",
    "read_run_config",
    "train",
    "train_stacked",
]
