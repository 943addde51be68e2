"""The human-mode window: paced by one clock, and polite to a display the caller opened."""

from __future__ import annotations

import gymnasium as gym
import pygame

import gaming_gym  # noqa: F401  (registers the envs)


def test_one_clock_paces_every_frame_of_a_window(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    clocks = []
    real_clock = pygame.time.Clock
    monkeypatch.setattr(pygame.time, "Clock", lambda: clocks.append(1) or real_clock())
    env = gym.make("GamingGym/TallFall-v0", render_mode="human")
    env.reset(seed=0)  # renders a frame
    for _ in range(3):
        env.step(env.action_space.sample())  # each renders a frame
    env.close()
    assert len(clocks) == 1  # a clock per frame would sleep a whole 1/fps on every frame


def test_closing_leaves_a_display_the_caller_opened(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame.display.init()
    try:
        env = gym.make("GamingGym/TallFall-v0", render_mode="human")
        env.reset(seed=0)
        env.close()
        assert pygame.display.get_init()
    finally:
        pygame.display.quit()
    env = gym.make("GamingGym/TallFall-v0", render_mode="human")
    env.reset(seed=0)
    assert pygame.display.get_init()
    env.close()
    assert not pygame.display.get_init()  # its own display, it closes


def test_check_env_on_a_machine_without_a_display_prints_no_sdl_errors():
    """Gymnasium's check_env opens a human window to test rendering; with no display SDL printed
    'XDG_RUNTIME_DIR is invalid or not set' while it looked for one."""
    import os
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR")
    }
    code = (
        "import gymnasium as gym, gaming_gym\n"
        "from gymnasium.utils.env_checker import check_env\n"
        "check_env(gym.make('GamingGym/BoatRace-v1', render_mode='rgb_array').unwrapped)\n"
        "print('checked')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "checked" in done.stdout
    assert "XDG_RUNTIME_DIR" not in done.stderr + done.stdout
