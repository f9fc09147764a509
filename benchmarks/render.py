"""Rendering and avatar-build speed of the embedded backend.

Prints renders per second of the active face room at 400x300 and 84x84
(TinyRenderer, CPU), the cold and cached avatar build times, and their ratio.

    python benchmarks/render.py [--frames 60]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _rate(sim, pose, intr_size, frames: int) -> float:
    from hcgym.types import CameraIntrinsics

    w, h = intr_size
    intr = CameraIntrinsics.from_hfov(w, h, 60.0)
    sim._render(intr, pose)  # warm-up
    t0 = time.perf_counter()
    for _ in range(frames):
        sim._render(intr, pose)
    return frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    args = ap.parse_args()

    # Cold builds go to a fresh cache (the anny model data stays where it is).
    from hcgym.paths import anny_cache_dir

    os.environ.setdefault("ANNY_CACHE_DIR", str(anny_cache_dir()))
    fresh = Path(tempfile.mkdtemp(prefix="hcgym-bench-"))
    os.environ["HCGYM_CACHE"] = str(fresh)

    from hcgym.envs.backends import make_backend
    from hcgym.synthesis import AvatarSpec
    from hcgym.synthesis.anny_model import get_template
    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.texture import texel_map
    from hcgym.worlds import load_world

    t0 = time.perf_counter()
    get_template()
    t_model = time.perf_counter() - t0
    t0 = time.perf_counter()
    texel_map(2048)
    t_bake = time.perf_counter() - t0
    build_avatar(AvatarSpec.random(999_999))  # first build pays one-time per-process set-up
    cold, cached = [], []
    for s in range(5):
        spec = AvatarSpec.random(123_456 + s)
        t0 = time.perf_counter()
        build_avatar(spec)
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        build_avatar(spec)
        cached.append(time.perf_counter() - t0)
    cold_ms = 1000 * sorted(cold)[len(cold) // 2]
    cached_ms = 1000 * sorted(cached)[len(cached) // 2]

    with make_backend("embedded") as sim:
        sim.load(load_world("active_face_room"))
        _, pose = sim.camera_pose()
        r400 = _rate(sim, pose, (400, 300), args.frames)
        r84 = _rate(sim, pose, (84, 84), args.frames)
        t0 = time.perf_counter()
        for _ in range(args.frames // 2):
            sim.render()
        r_frame = (args.frames // 2) / (time.perf_counter() - t0)

    print(f"anny model load (cached data)          {t_model:8.2f} s")
    print(f"texel map bake (once per cache)        {t_bake:8.2f} s")
    print(f"avatar build, cold (median of 5)       {cold_ms:8.1f} ms")
    print(f"avatar build, cached (median of 5)     {cached_ms:8.2f} ms   cold/cached = {cold_ms / cached_ms:.0f}x")
    print(f"render 400x300 (RGB+depth+seg)         {r400:8.1f} frames/s")
    print(f"render 84x84                           {r84:8.1f} frames/s   84x84 / 400x300 = {r84 / r400:.1f}x")
    print(f"render 400x300 + ground truth (Frame)  {r_frame:8.1f} frames/s")


if __name__ == "__main__":
    main()
