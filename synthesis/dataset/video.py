"""Render a world over time: a video, its ground truth per frame and, on request, depth and segmentation.

``render_video(world, out, seconds, fps)`` writes into ``out``:

* ``video.mp4``: the camera's RGB frames (MPEG-4, see :mod:`hcgym.video`);
* ``frames.jsonl``: one JSON object per frame (``frame``, ``time`` and the frame's ground truth:
  camera, intrinsics, extrinsics and every human with boxes, keypoints and, for moving people, the
  ``motion`` labels);
* ``depth/NNNNNN.png`` (16-bit millimetres, 0 = nothing hit) and ``segmentation/NNNNNN.png``
  (16-bit instance ids) when asked;
* ``render.json``: what was rendered (world, seed, camera, fps, frames, renderer).

Frame ``k`` shows time ``k / fps`` exactly, so renders at 10 and 30 fps agree at their shared
times. Files are written under temporary names and renamed at the end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np


def render_video(world, out: Path, seconds: float, fps: float, seed: int = 0, camera: str | None = None,
                 backend: str = "embedded", depth: bool = False, segmentation: bool = False,
                 progress: bool = True) -> dict:
    """Render ``seconds`` of ``world`` at ``fps`` into ``out``; returns the summary written to ``render.json``."""
    import io

    from PIL import Image

    from hcgym.paths import atomic_write_bytes
    from hcgym.synthesis.bench_frames import frame_count, iter_world_frames
    from hcgym.video import VideoWriter

    n = frame_count(seconds, fps)
    _, cam = world.camera(camera)
    frames = iter_world_frames(world, seconds, fps, seed=seed, camera=camera, backend=backend, info=(info := {}))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        lines = []
        with VideoWriter(staging / "video.mp4", fps, (cam.width, cam.height)) as writer:
            for k, frame in enumerate(_bar(frames, n, progress)):
                writer.write(frame.rgb)
                lines.append(json.dumps({"frame": k, **frame.ground_truth()}, separators=(",", ":")))
                if depth:
                    mm = np.where(np.isfinite(frame.depth), np.clip(frame.depth * 1000.0 + 0.5, 0, 65535), 0)
                    _png(staging / "depth" / f"{k:06d}.png", mm.astype(np.uint16), Image, io)
                if segmentation:
                    _png(staging / "segmentation" / f"{k:06d}.png", frame.segmentation.astype(np.uint16), Image, io)
        summary = {"world": world.name, "seed": seed, "camera": cam.name, "fps": fps, "seconds": seconds,
                   "frames": n, "size": [cam.width, cam.height], "backend": backend, "renderer": info["renderer"],
                   "files": {"video": "video.mp4", "frames": "frames.jsonl",
                             **({"depth": "depth/NNNNNN.png (uint16 mm, 0 = nothing hit)"} if depth else {}),
                             **({"segmentation": "segmentation/NNNNNN.png (uint16 ids)"} if segmentation else {})}}
        atomic_write_bytes(staging / "frames.jsonl", ("\n".join(lines) + "\n").encode())
        atomic_write_bytes(staging / "render.json", json.dumps(summary, indent=1).encode())
        for item in staging.iterdir():
            dst = out / item.name
            if dst.is_dir():
                shutil.rmtree(dst)
            item.replace(dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _png(path: Path, img: np.ndarray, Image, io) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())


def _bar(frames, n: int, progress: bool):
    from tqdm import tqdm

    return tqdm(frames, total=n, desc="render", unit="frame", disable=not progress, leave=False)
