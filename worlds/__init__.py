"""World specifications (YAML) and the worlds that ship with hcgym.

>>> from hcgym.worlds import load_world
>>> world = load_world("active_face_room")
"""

from hcgym.worlds.spec import (
    CameraSpec,
    Human,
    Light,
    Prop,
    Robot,
    Room,
    Surface,
    WorldSpec,
    load_world,
    shipped_worlds,
)

__all__ = ["CameraSpec", "Human", "Light", "Prop", "Robot", "Room", "Surface", "WorldSpec", "load_world",
           "shipped_worlds"]
