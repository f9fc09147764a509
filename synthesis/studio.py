"""A photo studio for avatars: a plain world, portrait camera poses and contact sheets.

Top layer of :mod:`hcgym.synthesis`: it drives a simulator backend directly
(never the Gymnasium envs). Used by ``hcgym avatars``, the identity study and
the tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def show_only(sim, index: int) -> None:
    """Show human ``index`` of a studio world and hide every other one."""
    sim.show_only(sim.humans[index].name)


def portrait_pose(avatar, distance: float, yaw_deg: float = 0.0, target: str = "face"):
    """Camera pose ``distance`` m from the face (or body centre) of an avatar placed at the origin facing -y."""
    from hcgym.envs.backends.base import CameraPose
    from hcgym.geometry import look_at_angles

    if target == "face":
        tgt = (avatar.face_points["left_eye"] + avatar.face_points["right_eye"]) / 2
        tgt = tgt + np.array([0.0, 0.0, -0.03])
    else:
        tgt = np.array([0.0, 0.0, avatar.height / 2])
    a = np.radians(yaw_deg - 90.0)  # yaw 0 = in front (-y)
    eye = tgt + distance * np.array([np.cos(a), np.sin(a), 0.0])
    yaw, pitch = look_at_angles(eye, tgt)
    return CameraPose.from_angles(eye, yaw, pitch)


def studio_world(avatars, width: int = 400, height: int = 300, hfov: float = 60.0,
                 light: tuple[float, float, float] = (-0.3, 0.6, -0.8),
                 light_color: tuple[float, float, float] = (1.0, 1.0, 1.0), ambient: float = 0.5):
    """A plain studio world with the given avatar specs at the origin (show one at a time with :func:`show_only`)."""
    from hcgym.worlds.spec import WorldSpec

    data = {
        "name": "studio", "room": {"size": [12.0, 12.0], "walls": False,
                                   "floor": {"color": [0.62, 0.62, 0.64], "pattern": "plain"}},
        "lights": [{"direction": list(light), "color": list(light_color)}], "ambient": ambient, "background": [0.74, 0.76, 0.79],
        "humans": [{"name": f"h{i}", "avatar": a.to_dict(), "position": [0.0, 0.0], "heading": -90}
                   for i, a in enumerate(avatars)],
        "robots": [{"name": "cam", "body": "none", "position": [0.0, -1.0, 1.6],
                    "cameras": [{"name": "cam", "width": width, "height": height, "hfov": hfov}]}],
    }
    return WorldSpec.from_dict(data, "studio")


def contact_sheet(avatars, labels, out: Path) -> Path:
    """Frontal face (0.6 m) and full body (3.2 m) of each avatar, rendered one at a time."""
    from PIL import Image, ImageDraw

    from hcgym.envs.backends.embedded import EmbeddedBackend
    from hcgym.paths import atomic_write_bytes

    tile_w, tile_h = 250, 225
    cols = min(4, len(avatars))
    rows = (len(avatars) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile_w, rows * tile_h), (255, 255, 255))
    with EmbeddedBackend() as sim:
        sim.load(studio_world([a.spec for a in avatars], 240, 240, 40.0))
        for i, a in enumerate(avatars):
            show_only(sim, i)
            face = sim.render(pose=portrait_pose(a, 0.6)).rgb[:, 30:210]
            body = sim.render(pose=portrait_pose(a, 3.2, target="body")).rgb[:, 60:180]
            x, y = (i % cols) * tile_w, (i // cols) * tile_h
            sheet.paste(Image.fromarray(face).resize((150, 200)), (x, y + 20))
            sheet.paste(Image.fromarray(body).resize((100, 200)), (x + 150, y + 20))
            ImageDraw.Draw(sheet).text((x + 4, y + 4), labels[i], fill=(0, 0, 0))
    import io

    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    return out
