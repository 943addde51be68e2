"""Pygame drawing shared by every front, and rollout videos (GIF/MP4).

Each kernel paints one env on a pygame surface (``Kernel.draw``); this module owns the surface,
the on-screen window and the conversion to ``rgb_array`` frames, so no front draws anything
itself. pygame is imported lazily: envs work without a display, or without pygame until a frame
is asked for.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gaming_gym.files import atomic_write

FRAME_SIZE = 480
"""Width and height of a rendered frame in pixels."""


def import_pygame():
    """Import pygame, or say how to get it."""
    try:
        import pygame
    except ImportError as error:  # pragma: no cover - pygame is a dependency
        raise ImportError(
            "Rendering needs pygame: pip install pygame (it is a dependency of gaming_gym; "
            "a broken install may need reinstalling)."
        ) from error
    return pygame


def draw_frame(kernel, params: Any, state: Any, index: int) -> np.ndarray:
    """Paint env ``index`` of a batched ``state`` and return it as an ``(H, W, 3)`` uint8 array."""
    pygame = import_pygame()
    if not pygame.font.get_init():
        pygame.font.init()
    surface = pygame.Surface((FRAME_SIZE, FRAME_SIZE))
    cpu_state = _state_to_cpu(state)
    kernel.draw(params, cpu_state, index, surface)
    return np.ascontiguousarray(np.transpose(pygame.surfarray.pixels3d(surface), (1, 0, 2)))


def show_frame(frame: np.ndarray, window, title: str, metadata: dict):
    """Show a frame in a pygame window (created on first use); return the window."""
    pygame = import_pygame()
    if window is None:
        pygame.display.init()
        pygame.display.set_caption(f"gaming_gym: {title}")
        window = pygame.display.set_mode(frame.shape[1::-1])
    pygame.event.pump()
    window.blit(pygame.surfarray.make_surface(np.transpose(frame, (1, 0, 2))), (0, 0))
    pygame.display.flip()
    pygame.time.Clock().tick(metadata["render_fps"])
    return window


def close_window() -> None:
    pygame = import_pygame()
    pygame.display.quit()


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: int = 30) -> Path:
    """Write frames to a GIF (pillow) or MP4 (imageio-ffmpeg) by the file suffix, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"Cannot write a video to {path}: use a .gif or .mp4 file name")
    if len(frames) == 0:
        raise ValueError("No frames to write")
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
        raise ImportError(
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

    env = gym.make_vec(env_id, num_envs=1, render_mode="rgb_array", **(knobs or {}))
    obs, _ = env.reset(seed=seed)
    frames, proxy, true, step = [env.render()], 0.0, 0.0, 0
    with torch.no_grad():
        while len(frames) < max_frames:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            proxy += float(reward[0])
            true += float(info["true_reward"][0])
            step += 1
            if bool(terminated[0] | truncated[0]):
                break  # the env has already reset: the frame would show the next episode
            if step % frame_skip == 0:
                frames.append(env.render())
    env.close()
    return proxy, true, write_video(frames, path, fps=fps)
