"""The worlds built in code, in one place: a plain photo studio and the empty backdrop for photo blending.

Every other world is a YAML file (:func:`hcgym.worlds.load_world`). Code that needs one of the shipped
worlds with other people or cameras in it uses :func:`populate`, so a world's room, props and lights
always come from one spec.

* :func:`studio_world`: avatars at the origin facing -y (heading -90) on a plain floor, one light, a
  bodiless robot ``cam`` carrying the given cameras. With ``floor=None`` the floor takes the background
  colour (a seamless backdrop, as in the multi-view face sets).
* :func:`photo_backdrop_world`: a tiny floor under the camera and a black background: everything outside
  the people is segmentation 0, ready to be replaced by a photo.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

from hcgym.errors import SpecError
from hcgym.worlds.spec import CameraSpec, Human, Robot, WorldSpec

__all__ = ["STUDIO_BACKGROUND", "STUDIO_FLOOR", "STUDIO_LIGHT", "studio_world", "photo_backdrop_world", "populate"]

#: Studio colours (RGB in [0, 1]) and light (direction, colour, ambient level).
STUDIO_BACKGROUND = (0.74, 0.76, 0.79)
STUDIO_FLOOR = (0.62, 0.62, 0.64)
STUDIO_LIGHT = ((-0.3, 0.6, -0.8), (1.0, 1.0, 1.0), 0.5)


def studio_world(avatars: Iterable, cameras: Sequence[CameraSpec] = (CameraSpec("cam"),),
                 light: tuple[float, float, float] = STUDIO_LIGHT[0],
                 light_color: tuple[float, float, float] = STUDIO_LIGHT[1], ambient: float = STUDIO_LIGHT[2],
                 floor: tuple[float, float, float] | None = STUDIO_FLOOR,
                 background: tuple[float, float, float] = STUDIO_BACKGROUND, name: str = "studio") -> WorldSpec:
    """A plain 12 x 12 m studio holding ``avatars`` (:class:`~hcgym.synthesis.AvatarSpec`) at the origin.

    Humans are named ``h0, h1, ...`` and face -y; show one at a time with ``sim.show_only``. The cameras sit on
    a bodiless robot ``cam`` (1 m in front of the origin, 1.6 m up); face cameras are usually placed with
    ``sim.render(camera=..., pose=orbit_pose(...))``.
    """
    if not cameras:
        raise SpecError("cameras", "a studio needs at least one camera")
    data = {
        "name": name, "room": {"size": [12.0, 12.0], "walls": False,
                               "floor": {"color": list(background if floor is None else floor), "pattern": "plain"}},
        "lights": [{"direction": list(light), "color": list(light_color)}], "ambient": ambient,
        "background": list(background),
        "humans": [{"name": f"h{i}", "avatar": a.to_dict(), "position": [0.0, 0.0], "heading": -90}
                   for i, a in enumerate(avatars)],
    }
    world = WorldSpec.from_dict(data, name)
    return replace(world, robots=(Robot("cam", body="none", position=(0.0, -1.0, 1.6), cameras=tuple(cameras)),))


def photo_backdrop_world(camera: CameraSpec = CameraSpec("camera")) -> WorldSpec:
    """A 0.5 m floor and a black background: outside the people nothing is hit (segmentation 0)."""
    world = WorldSpec.from_dict({"name": "backdrop", "room": {"size": [0.5, 0.5], "walls": False},
                                 "background": [0.0, 0.0, 0.0]}, "backdrop")
    return replace(world, robots=(Robot("dataset", body="none", cameras=(camera,)),))


def populate(world: WorldSpec, humans: Sequence[Human] | None = None, robots: Sequence[Robot] | None = None,
             name: str | None = None) -> WorldSpec:
    """``world`` (its room, props and lights) with other humans and/or robots (``None`` keeps them)."""
    return replace(world, name=world.name if name is None else name,
                   humans=world.humans if humans is None else tuple(humans),
                   robots=world.robots if robots is None else tuple(robots))
