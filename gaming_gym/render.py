"""Pygame drawing shared by every front, and rollout videos (GIF/MP4).

Each kernel paints one env on a pygame surface (``Kernel.draw``), or gets the default frame
(its observation as bars, with the proxy and hidden true returns); this module owns the surface,
the on-screen window and the conversion to ``rgb_array`` frames, so no front draws anything
itself. pygame is imported lazily: envs work without a display, or without pygame until a frame
is asked for.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gaming_gym.errors import ConfigError, MissingDependencyError
from gaming_gym.files import atomic_write
from gaming_gym.wrappers import EpisodeSums

FRAME_SIZE = 480
"""Width and height of a rendered frame in pixels."""


def import_pygame():
    """Import pygame, or say how to get it."""
    try:
        import pygame
    except ImportError as error:  # pragma: no cover - pygame is a dependency
        raise MissingDependencyError(
            "Rendering needs pygame: pip install pygame (it is a dependency of gaming_gym; "
            "a broken install may need reinstalling)."
        ) from error
    return pygame


def draw_frame(
    kernel, params: Any, state: Any, index: int, returns: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Paint env ``index`` of a batched ``state`` and return it as an ``(H, W, 3)`` uint8 array.

    ``returns`` (the episode's proxy and true returns so far) are shown on the default frame of
    a kernel without ``draw``; a kernel's own ``draw`` shows what it keeps in its state.
    """
    pygame = import_pygame()
    if not pygame.font.get_init():
        pygame.font.init()
    surface = pygame.Surface((FRAME_SIZE, FRAME_SIZE))
    cpu_state = _state_to_cpu(state)
    if kernel.draw is None:
        draw_default_frame(kernel, params, cpu_state, index, surface, returns)
    else:
        kernel.draw(params, cpu_state, index, surface)
    return np.ascontiguousarray(np.transpose(pygame.surfarray.pixels3d(surface), (1, 0, 2)))


class Window:
    """A pygame window that shows frames at ``fps``, for ``render_mode="human"``.

    One ``Clock`` for the window's life, so each frame waits only what is left of its 1/fps
    (a new clock per frame would sleep the whole 1/fps every time). pygame has one display per
    process: closing quits it only if this window started it, so a caller's own pygame window
    stays open. On a Linux machine with no display (no ``DISPLAY`` or ``WAYLAND_DISPLAY``, and no
    ``SDL_VIDEODRIVER`` chosen) the window is SDL's invisible ``dummy`` one: SDL would otherwise
    print errors about ``XDG_RUNTIME_DIR`` while it looks for a display (Gymnasium's
    ``check_env`` opens a human window to test rendering).
    """

    def __init__(self, size: tuple[int, int], title: str, fps: int):
        if sys.platform.startswith("linux") and not any(
            os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")
        ):
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        pygame = import_pygame()
        self._owns_display = not pygame.display.get_init()
        pygame.display.init()
        pygame.display.set_caption(f"gaming_gym: {title}")
        self._surface = pygame.display.set_mode(size)
        self._clock = pygame.time.Clock()
        self._fps = fps

    def show(self, frame: np.ndarray) -> None:
        pygame = import_pygame()
        pygame.event.pump()
        self._surface.blit(pygame.surfarray.make_surface(np.transpose(frame, (1, 0, 2))), (0, 0))
        pygame.display.flip()
        self._clock.tick(self._fps)

    def close(self) -> None:
        if self._owns_display:
            import_pygame().display.quit()


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: int = 30) -> Path:
    """Write frames to a GIF (pillow) or MP4 (imageio-ffmpeg) by the file suffix, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ConfigError(f"Cannot write a video to {path}: use a .gif or .mp4 file name")
    if len(frames) == 0:
        raise ConfigError("No frames to write")
    with atomic_write(path) as partial:
        (_write_gif if suffix == ".gif" else _write_mp4)(frames, partial, fps)
    return path


def _write_gif(frames: Sequence[np.ndarray], path: Path, fps: int) -> None:
    """A looping GIF; a fast 64-colour palette per frame keeps long rollouts quick to write."""
    from PIL import Image

    images = [Image.fromarray(frame).quantize(64, method=Image.Quantize.FASTOCTREE) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def _write_mp4(frames: Sequence[np.ndarray], path: Path, fps: int) -> None:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(
            "Writing MP4 needs imageio-ffmpeg: pip install 'gaming_gym[video]' (or write a .gif)"
        ) from error
    import imageio.v2 as imageio

    imageio.mimwrite(path, list(frames), fps=fps, codec="libx264", macro_block_size=16)


def _state_to_cpu(state: Any) -> Any:
    return dataclasses.replace(
        state,
        **{
            f.name: getattr(state, f.name).cpu()
            for f in dataclasses.fields(state)
            if isinstance(getattr(state, f.name), torch.Tensor)
        },
    )


def draw_scores(surface, proxy_label: str, true_label: str) -> None:
    """Overlay the proxy score (as the game shows it) and the hidden true score (for researchers)."""
    pygame = import_pygame()
    font = pygame.font.Font(None, 26)
    surface.blit(font.render(proxy_label, True, (255, 255, 255)), (10, 8))
    hidden = font.render(f"{true_label}  (hidden)", True, (255, 210, 90))
    surface.blit(hidden, (10, 32))


MAX_BARS = 64
"""Observation elements drawn as bars on the default frame; more are summarised in one line."""


def draw_default_frame(
    kernel, params: Any, state: Any, index: int, surface, returns: tuple[float, float]
) -> None:
    """The frame of a kernel without ``draw``: its observation as bars, and the scores.

    Each bar is one observation element, scaled to its bounds in the observation space (or by
    ``x / (1 + |x|)`` where unbounded), drawn up from a zero line. The proxy return so far and
    the hidden true return are written on top, as every env's frame shows them.
    """
    from gaming_gym.kernel import take_state

    pygame = import_pygame()
    obs = kernel.observe(params, take_state(state, slice(index, index + 1)))[0].flatten().double().numpy()
    space = kernel.observation_space(params)
    surface.fill((28, 30, 38))
    shown = _bar_heights(obs[:MAX_BARS], space, len(obs))
    middle, half = FRAME_SIZE // 2 + 40, FRAME_SIZE // 2 - 80
    width = (FRAME_SIZE - 20) / max(len(shown), 1)
    pygame.draw.line(surface, (120, 120, 130), (10, middle), (FRAME_SIZE - 10, middle))
    for bar, height in enumerate(shown):
        top = middle - max(height, 0.0) * half
        colour = (90, 180, 240) if height >= 0 else (240, 140, 90)
        rect = (10 + bar * width + 1, top, max(width - 2, 1), max(abs(height) * half, 1))
        pygame.draw.rect(surface, colour, rect)
    font = pygame.font.Font(None, 22)
    caption = f"{kernel.name}: observation ({len(obs)} values, step {int(state.t[index])})"
    if len(obs) > MAX_BARS:
        caption += f", first {MAX_BARS} shown"
    surface.blit(font.render(caption, True, (200, 200, 210)), (10, FRAME_SIZE - 24))
    draw_scores(surface, f"proxy return {returns[0]:.2f}", f"true return {returns[1]:.2f}")


def _bar_heights(values: np.ndarray, space, total: int) -> list[float]:
    """Observation values in [-1, 1]: by the space's bounds where finite, else ``x / (1 + |x|)``."""
    heights = []
    low = np.broadcast_to(getattr(space, "low", -np.inf), (total,)).astype(np.float64).ravel()
    high = np.broadcast_to(getattr(space, "high", np.inf), (total,)).astype(np.float64).ravel()
    for value, lo, hi in zip(values, low, high, strict=False):
        if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
            scaled = (value - lo) / (hi - lo) if lo >= 0 else 2 * (value - lo) / (hi - lo) - 1
        else:
            scaled = value / (1 + abs(value))
        heights.append(float(np.clip(scaled, -1.0, 1.0)) if np.isfinite(scaled) else 0.0)
    return heights


def record_rollout(
    env_id: str,
    policy,
    path: str | os.PathLike,
    seed: int = 0,
    max_frames: int = 600,
    frame_skip: int = 2,
    knobs: dict[str, Any] | None = None,
    fps: int = 30,
) -> tuple[float, float, Path]:
    """Play one episode of ``policy`` (batched, torch) and write it as a GIF/MP4.

    Frames are taken every ``frame_skip`` steps, at most ``max_frames`` of them, with the proxy
    score and the hidden true score drawn on each. Returns the episode's proxy return, true
    return (over the steps played) and the video's path.
    """
    import gymnasium as gym

    for name, value in (("max_frames", max_frames), ("frame_skip", frame_skip), ("fps", fps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive int, got {value!r}")

    env = gym.make_vec(env_id, num_envs=1, render_mode="rgb_array", **(knobs or {}))
    obs, _ = env.reset(seed=seed)
    frames, sums = [env.render()], EpisodeSums.zeros()
    with torch.no_grad():
        while len(frames) < max_frames:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            sums = sums.add(float(reward[0]), float(info["true_reward"][0]))
            if bool(terminated[0] | truncated[0]):
                break  # the env has already reset: the frame would show the next episode
            if sums.length % frame_skip == 0:
                frames.append(env.render())
    env.close()
    return sums.proxy, sums.true, write_video(frames, path, fps=fps)
