"""Frames with ground truth from a world over time, for the sensor bench (:mod:`hcgym.perception.bench`).

``iter_world_frames(world, seconds, fps, seed, camera, backend)`` loads ``world`` into a backend
(:func:`hcgym.envs.backends.make_backend`, which picks a renderer for moving meshes when the world is
animated) and yields one :class:`~hcgym.types.Frame` per time step ``k / fps``, ``k = 0 .. round(seconds *
fps) - 1``, exactly the times of :func:`hcgym.synthesis.dataset.video.render_video`. Static worlds render one
frame per step too (their people do not move; only the frame time changes).

Top layer of synthesis: it drives a backend, never an env.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from hcgym.errors import SpecError
from hcgym.types import Frame


def frame_count(seconds: float, fps: float) -> int:
    """How many frames ``seconds`` at ``fps`` give (at least one); bad values raise a :class:`SpecError`."""
    if not (isinstance(seconds, (int, float)) and seconds > 0 and seconds < 1e6):
        raise SpecError("seconds", f"must be a positive number of seconds, got {seconds!r}")
    if not (isinstance(fps, (int, float)) and 0 < fps <= 240):
        raise SpecError("fps", f"must be in (0, 240], got {fps!r}")
    return max(1, int(round(seconds * fps)))


def with_camera_size(world: Any, camera: str | None, size: tuple[int, int]) -> Any:
    """``world`` with camera ``camera`` (the first one if ``None``) rendering ``size = (width, height)``
    pixels at the same field of view; an unknown camera raises the world's :class:`SpecError`."""
    w, h = (int(v) for v in size)
    if w < 8 or h < 8:
        raise SpecError("size", f"expected width and height of at least 8 pixels, got {size!r}")
    robot, cam = world.camera(camera)
    new_cam = dataclasses.replace(cam, width=w, height=h)
    robots = tuple(dataclasses.replace(r, cameras=tuple(new_cam if c is cam else c for c in r.cameras))
                   if r is robot else r for r in world.robots)
    return dataclasses.replace(world, robots=robots)


def iter_world_frames(world: Any, seconds: float, fps: float, seed: int = 0, camera: str | None = None,
                      backend: str = "embedded", size: tuple[int, int] | None = None,
                      info: dict | None = None) -> Iterator[Frame]:
    """Yield ``round(seconds * fps)`` frames (at least one) of ``world`` seen by ``camera`` at times ``k / fps``.

    Args:
        world: a :class:`~hcgym.worlds.WorldSpec`.
        seconds, fps: the span and the frame rate; frame ``k`` shows time ``k / fps`` exactly.
        seed: the load seed (draws ``avatar: random`` people).
        camera: ``robot/camera`` or ``camera``; the world's first camera if ``None``.
        backend: ``embedded`` (default) or ``webots``.
        size: ``(width, height)`` to render instead of the camera's own size (same field of view).
        info: a dict that receives ``renderer`` (the backend's renderer name) once the world is loaded.

    Bad arguments (seconds, fps, camera, size) raise a :class:`SpecError` when the generator is created,
    before anything is rendered.
    """
    n = frame_count(seconds, fps)
    world.camera(camera)  # an unknown camera fails here, naming the world's cameras
    if size is not None:
        world = with_camera_size(world, camera, size)
    return _frames(world, n, float(fps), seed, camera, backend, info)


def _frames(world: Any, n: int, fps: float, seed: int, camera: str | None, backend: str,
            info: dict | None) -> Iterator[Frame]:
    from hcgym.envs.backends import make_backend

    with make_backend(backend, world=world) as sim:
        sim.load(world, seed=seed)
        if info is not None:
            info["renderer"] = getattr(sim, "renderer_name", backend)
        for k in range(n):
            sim.set_time(k / fps)
            yield sim.render(camera)


__all__ = ["frame_count", "iter_world_frames", "with_camera_size"]
