"""``hcgym render WORLD.yaml --seed S --out DIR``: render one camera of a world with its ground truth;
with ``--seconds S --fps F``: a video of the world over time with its ground truth per frame."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a world camera: rgb.png, depth.npy, segmentation.png, ground_truth.json",
                       description="Render one camera of a world (a YAML file or a shipped world name). Writes "
                                   "rgb.png, depth.npy (float32 metres, inf = nothing hit), depth.png (for viewing), "
                                   "segmentation.png (16-bit instance ids: 0 background, k+1 = human k), "
                                   "segmentation_color.png (for viewing) and ground_truth.json.")
    p.add_argument("world", help="world YAML file or shipped world name (active_face_room, crowd_street)")
    p.add_argument("--seed", type=_args.seed, default=0, help="world seed (draws `avatar: random` humans)")
    p.add_argument("--out", type=Path, default=Path("out/render"), help="output directory")
    p.add_argument("--camera", default=None, help="camera name (robot/camera or camera); default: the first")
    p.add_argument("--pose", type=_args.floats(5, "--pose x,y,z,yaw,pitch"), default=None,
                   help="override the camera pose: x,y,z (m), yaw,pitch (degrees)")
    p.add_argument("--backend", default="embedded", help="simulator backend: embedded (default) or webots")
    v = p.add_argument_group("video", "render the world over time: video.mp4, frames.jsonl (ground truth per "
                                      "frame), render.json and, on request, depth/ and segmentation/ per frame")
    v.add_argument("--seconds", type=_args.positive_float, default=None, help="seconds of world time to render")
    v.add_argument("--fps", type=_args.positive_float, default=15.0, help="frames per second (default 15)")
    v.add_argument("--depth", action="store_true", help="also write depth/NNNNNN.png (16-bit millimetres)")
    v.add_argument("--segmentation", action="store_true", help="also write segmentation/NNNNNN.png (16-bit ids)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcgym.envs.backends import make_backend
    from hcgym.worlds import load_world

    world = load_world(args.world)
    if args.seconds is not None:
        if args.pose is not None:
            raise SystemExit("hcgym render: --pose applies to single frames; a video uses the world's camera")
        from hcgym.synthesis.dataset.video import render_video

        info = render_video(world, args.out, args.seconds, args.fps, seed=args.seed, camera=args.camera,
                            backend=args.backend, depth=args.depth, segmentation=args.segmentation)
        print(f"wrote {args.out}/video.mp4 and frames.jsonl ({info['frames']} frames at {args.fps:g} fps, "
              f"{info['size'][0]}x{info['size'][1]}, renderer {info['renderer']})")
        return 0
    with make_backend(args.backend, world=world) as sim:
        sim.load(world, seed=args.seed)
        pose = None
        if args.pose is not None:
            from hcgym.camera import CameraPose

            x, y, z, yaw, pitch = args.pose
            pose = CameraPose.from_angles((x, y, z), yaw, pitch)
        frame = sim.render(args.camera, pose=pose)
    write_frame(frame, args.out)
    n_vis = sum(1 for h in frame.humans if h.pixels > 0)
    print(f"wrote {args.out}/rgb.png, depth.npy, segmentation.png, ground_truth.json "
          f"({n_vis}/{len(frame.humans)} humans visible)")
    return 0


def write_frame(frame, out: Path, prefix: str = "") -> None:
    """Write a frame's RGB, depth, segmentation and ground truth (each file atomically).

    ``segmentation.png`` holds the instance ids exactly (16-bit grey); ``*_color.png`` and
    ``depth.png`` are for looking at.
    """
    import io

    from hcgym.paths import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    files = {
        f"{prefix}rgb.png": _png(frame.rgb),
        f"{prefix}depth.png": _png(depth_image(frame.depth)),
        f"{prefix}segmentation.png": _png(frame.segmentation.astype(np.uint16)),
        f"{prefix}segmentation_color.png": _png(segmentation_image(frame.segmentation)),
        f"{prefix}ground_truth.json": json.dumps(frame.ground_truth(), indent=1).encode(),
    }
    buf = io.BytesIO()
    np.save(buf, frame.depth)
    files[f"{prefix}depth.npy"] = buf.getvalue()
    for name, data in files.items():
        atomic_write_bytes(out / name, data)


def _png(img: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def depth_image(depth: np.ndarray) -> np.ndarray:
    """Depth (m) as a colour-mapped uint8 image (near = bright), background black."""
    from matplotlib import colormaps

    finite = np.isfinite(depth)
    out = np.zeros(depth.shape + (3,), dtype=np.uint8)
    if finite.any():
        d = np.log(np.clip(depth[finite], 0.05, None))
        t = 1.0 - (d - d.min()) / max(float(d.max() - d.min()), 1e-6)
        out[finite] = (colormaps["magma"](t)[:, :3] * 255).astype(np.uint8)
    return out


def segmentation_image(seg: np.ndarray) -> np.ndarray:
    """Instance ids as distinct colours (0 = background, black)."""
    rng = np.random.default_rng(7)
    palette = (rng.uniform(0.25, 1.0, (max(int(seg.max()) + 1, 2), 3)) * 255).astype(np.uint8)
    palette[0] = 0
    return palette[seg]
