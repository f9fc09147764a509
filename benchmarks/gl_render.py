"""The embedded backend's two CPU renderers: TinyRenderer (PyBullet) vs OpenGL on EGL (Mesa llvmpipe).

Prints ms/frame and frames/s of RGB + depth + segmentation at 400x300 and 160x120 for 1 and 10
people (static), the gl renderer with every person's vertices rewritten every frame (``_deform_human``,
what skinned animation does), the memory (RSS) before and after 2,000 such gl frames, and the same for
a few TinyRenderer frames (PyBullet keeps every re-uploaded mesh).

    python benchmarks/gl_render.py [--frames 40] [--long 2000] [--threads 1]

``--threads`` sets ``LP_NUM_THREADS`` (llvmpipe's rasteriser threads; default: every core).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

SIZES = ((400, 300), (160, 120))


def _world(people: int):
    from hcgym.worlds import WorldSpec

    humans = [{"name": f"p{i}", "avatar": {"seed": 100 + i}, "position": [-2.0 + (i % 5), 3.0 + 1.5 * (i // 5)],
               "heading": -90} for i in range(people)]
    return WorldSpec.from_dict({
        "name": f"bench_{people}", "room": {"size": [20, 20]}, "humans": humans,
        "robots": [{"name": "cam", "position": [0.0, -1.0, 1.5], "yaw": 90, "cameras": [{"name": "c"}]}]},
        f"bench_{people}")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _animate(sim) -> None:
    """Give every human a ``render_mesh`` that alternates between two precomputed poses (no skinning cost)."""
    for h in sim.humans:
        m = h.avatar.mesh
        poses = [(m["positions"], m["normals"]), (m["positions"] + np.float32(0.01), m["normals"])]
        frame = [0]

        def render_mesh(poses=poses, frame=frame):
            frame[0] += 1
            return poses[frame[0] % 2]

        h.render_mesh = render_mesh


def _ms(sim, size, frames: int, deform: bool = False) -> float:
    from hcgym.types import CameraIntrinsics

    intr = CameraIntrinsics.from_hfov(*size, 60.0)
    _, pose = sim.camera_pose()
    for i in range(len(sim.humans) if deform else 0):
        sim._deform_human(i)  # the first deformation gives each person its own vertex buffers
    sim._render(intr, pose)  # warm-up (frame buffers, first upload)
    t0 = time.perf_counter()
    for _ in range(frames):
        if deform:
            for i in range(len(sim.humans)):
                sim._deform_human(i)
        sim._render(intr, pose)
    return 1000 * (time.perf_counter() - t0) / frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="frames per timing")
    ap.add_argument("--long", type=int, default=2000, help="gl frames with vertex updates for the memory check")
    ap.add_argument("--threads", type=int, default=0, help="LP_NUM_THREADS for llvmpipe (0: its default)")
    args = ap.parse_args()
    if args.threads:
        os.environ["LP_NUM_THREADS"] = str(args.threads)

    from hcgym.envs.backends import make_backend

    rows = {}
    for people in (1, 10):
        world = _world(people)
        for renderer in ("tiny", "gl"):
            with make_backend("embedded", renderer=renderer) as sim:
                sim.load(world)
                assert sim.renderer_name == renderer, f"{renderer} unavailable here ({sim.renderer_name} used)"
                for size in SIZES:
                    rows[(renderer, people, size, False)] = _ms(sim, size, args.frames)
                if renderer == "gl":
                    _animate(sim)
                    for size in SIZES:
                        rows[(renderer, people, size, True)] = _ms(sim, size, args.frames, deform=True)

    print(f"{'renderer':10} {'people':>6} {'size':>8} {'vertices':>9} {'ms/frame':>9} {'fps':>7} {'tiny/gl':>8}")
    for (renderer, people, size, deform), ms in rows.items():
        ratio = rows[("tiny", people, size, False)] / ms if renderer == "gl" else 1.0
        print(f"{renderer:10} {people:6d} {size[0]:>4}x{size[1]:<3} {'per frame' if deform else 'static':>9} "
              f"{ms:9.2f} {1000 / ms:7.1f} {ratio:7.2f}x")

    # Memory over a long animated gl run (one person, 400x300, new vertices every frame).
    world = _world(1)
    with make_backend("embedded", renderer="gl") as sim:
        sim.load(world)
        _animate(sim)
        _ms(sim, SIZES[0], 50, deform=True)
        before = _rss_mb()
        ms = _ms(sim, SIZES[0], args.long, deform=True)
        after = _rss_mb()
    print(f"gl, {args.long} frames with vertex updates: {ms:.2f} ms/frame, RSS {before:.0f} MB -> {after:.0f} MB "
          f"(after/before = {after / before:.3f})")
    # The same with TinyRenderer, for a few frames: PyBullet keeps every re-uploaded mesh.
    with make_backend("embedded", renderer="tiny") as sim, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim.load(world)
        _animate(sim)
        n = 20
        before = _rss_mb()
        ms = _ms(sim, SIZES[0], n, deform=True)
        after = _rss_mb()
    print(f"tiny, {n} frames with vertex updates: {ms:.2f} ms/frame, RSS {before:.0f} MB -> {after:.0f} MB "
          f"(+{(after - before) / (n + 1):.1f} MB per frame)")


if __name__ == "__main__":
    main()
