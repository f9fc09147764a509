"""Portrait camera poses and contact sheets of avatars in the studio world (:func:`hcgym.worlds.studio.studio_world`).

Top layer of :mod:`hcgym.synthesis`: it drives a simulator backend directly
(never the Gymnasium envs). Used by ``hcgym avatars``, the identity study and
the tests.
"""

from __future__ import annotations

from pathlib import Path


def show_only(sim, index: int) -> None:
    """Show human ``index`` of a studio world and hide every other one."""
    sim.show_only(sim.humans[index].name)


def portrait_pose(avatar, distance: float, yaw_deg: float = 0.0, target: str = "face"):
    """A level camera ``distance`` m from the face centre (``target="body"``: the body centre) of an avatar at the
    origin facing -y, ``yaw_deg`` towards the person's left (:func:`hcgym.camera.orbit_pose`)."""
    from hcgym.camera import orbit_pose

    return orbit_pose(avatar.face_centre if target == "face" else avatar.body_centre, yaw_deg, 0.0, distance)


def contact_sheet(avatars, labels, out: Path) -> Path:
    """Frontal face (0.6 m) and full body (3.2 m) of each avatar, rendered one at a time."""
    from PIL import Image, ImageDraw

    from hcgym.envs.backends import make_backend
    from hcgym.paths import atomic_write_bytes
    from hcgym.worlds.spec import CameraSpec
    from hcgym.worlds.studio import studio_world

    tile_w, tile_h = 250, 225
    cols = min(4, len(avatars))
    rows = (len(avatars) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile_w, rows * tile_h), (255, 255, 255))
    with make_backend("embedded") as sim:
        sim.load(studio_world([a.spec for a in avatars], cameras=(CameraSpec("cam", 240, 240, 40.0),)))
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
