"""Frames with ground truth from a world over time, for the sensor bench (:mod:`hcgym.perception.bench`).

``iter_world_frames(world, seconds, fps, seed, camera, backend)`` loads ``world`` into a backend
(:func:`hcgym.envs.backends.make_backend`, which picks a renderer for moving meshes when the world is
animated) and yields one :class:`~hcgym.types.Frame` per time step ``k / fps``, ``k = 0 .. round(seconds *
fps) - 1``, exactly the times of :func:`hcgym.synthesis.dataset.video.render_video`. Static worlds render one
frame per step too (their people do not move; only the frame time changes).

``enrolment_frames(world, seed)`` renders the gallery of a face recognition bench: one clean frontal
portrait of every person of the world (neutral expression, standing), alone in the studio world
(:func:`hcgym.worlds.studio.studio_world`, the gallery of :mod:`hcgym.synthesis.identity_study`).

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


#: Size of the enrolment portraits (the active face recognition envs' 400x300) and the camera distance (m).
ENROLMENT_SIZE = (400, 300)
ENROLMENT_DISTANCE = 1.0


def enrolment_frames(world: Any, seed: int = 0, size: tuple[int, int] = ENROLMENT_SIZE,
                     distance: float = ENROLMENT_DISTANCE, backend: str = "embedded") -> Iterator[Frame]:
    """Yield one frontal portrait of each distinct identity among ``world``'s people (in world order).

    Each person's avatar (``avatar: random`` ones drawn from ``seed``, as :meth:`WorldSpec.avatars`) is
    shown alone in the studio world with a neutral face, standing, and rendered ``distance`` metres in front
    of the face at ``size = (width, height)`` pixels (60 degrees horizontal field of view). The frame's
    ground truth names the identity (``frame.humans[i].identity`` of the one person in view); people who
    share an identity (re-dressed copies) are rendered once. Bad arguments raise a :class:`SpecError` when
    the generator is created, before anything is rendered.
    """
    specs = world.avatars(seed)  # a bad seed fails here
    w, h = (int(v) for v in size)
    if w < 8 or h < 8:
        raise SpecError("size", f"expected width and height of at least 8 pixels, got {size!r}")
    if not (isinstance(distance, (int, float)) and 0.2 <= distance <= 20):
        raise SpecError("distance", f"expected metres in [0.2, 20], got {distance!r}")
    unique: dict[str, Any] = {}
    for s in specs:
        unique.setdefault(s.identity_key(), s.with_(expression="neutral", pose="stand", facial_actions={},
                                                    bone_rotations={}))
    return _portraits(list(unique.values()), (w, h), float(distance), backend)


def _portraits(specs: list, size: tuple[int, int], distance: float, backend: str) -> Iterator[Frame]:
    from hcgym.envs.backends import make_backend
    from hcgym.synthesis.studio import portrait_pose, show_only
    from hcgym.worlds.spec import CameraSpec
    from hcgym.worlds.studio import studio_world

    if not specs:
        return
    with make_backend(backend) as sim:
        sim.load(studio_world(specs, cameras=(CameraSpec("cam", *size),)))
        for i, h in enumerate(sim.humans):
            show_only(sim, i)
            yield sim.render(pose=portrait_pose(h.avatar, distance))


__all__ = ["ENROLMENT_DISTANCE", "ENROLMENT_SIZE", "enrolment_frames", "frame_count", "iter_world_frames",
           "with_camera_size"]
