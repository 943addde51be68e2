"""Agents that optimise the proxy: native PPO, the stable-baselines3 path."""
