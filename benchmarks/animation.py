"""Animated frames per second: people moving their bodies, faces and hands, rendered every frame.

For 1 and 10 people at 400x300 and 160x120, prints frames/s of

* static frames: the same world with nobody moving (render only), and
* animated frames: ``set_time`` (behaviour timeline, rig posing, skinning, vertex upload) + render,

their ratio, the share of an animated frame spent posing, and the memory (RSS) before and after
``--long`` animated frames after a warm-up (its growth in percent). Goals: >= 30 animated frames/s
for one person at 400x300 on one core, >= 10 for ten people, RSS growth < 5% over 10,000 frames.

    python benchmarks/animation.py [--frames 60] [--long 10000] [--threads 1]

``--threads 1`` (default) pins numpy/BLAS and Mesa's llvmpipe to one core each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

SIZES = ((400, 300), (160, 120))


def _world(people: int, size: tuple[int, int], moving: bool):
    from hcgym.worlds import WorldSpec

    humans = []
    for i in range(people):
        x, y = -3.0 + 1.5 * (i % 5), 4.0 + 2.0 * (i // 5)
        h = {"name": f"p{i}", "avatar": {"seed": 100 + i}, "position": [x, y], "heading": -90}
        if moving:
            h.update({
                "path": {"waypoints": [[x, y], [x + 0.6, y - 0.6], [x + 1.2, y], [x + 0.6, y + 0.6]], "speed": 0.9,
                         "loop": True},
                "behaviour": [{"action": "walk", "start": 0.0, "duration": 600.0},
                              {"action": "wave", "start": 1.0, "duration": 3.0, "hand": "right"}],
                "expression": [{"expression": "happy", "start": 0.5, "onset": 0.5, "apex": 600.0, "offset": 0.5}],
                "talk": [{"text": "hello, how are you today, I am fine thank you", "start": 0.2}],
                "gesture": [{"gesture": "five", "hand": "right", "start": 1.2, "duration": 2.5}],
            })
        humans.append(h)
    return WorldSpec.from_dict({
        "name": f"anim_{people}", "room": {"size": [20, 20], "walls": False}, "humans": humans,
        "robots": [{"name": "cam", "body": "none", "position": [0.0, -2.0, 1.6], "yaw": 90,
                    "cameras": [{"name": "c", "width": size[0], "height": size[1], "hfov": 70}]}]},
        f"anim_{people}")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _fps(sim, frames: int, fps: float, animate: bool) -> tuple[float, float]:
    """(frames/s, seconds spent in set_time per frame)."""
    t0, posing = time.perf_counter(), 0.0
    for _ in range(frames):
        if animate:
            a = time.perf_counter()
            sim.set_time(sim.time + 1.0 / fps)
            posing += time.perf_counter() - a
        sim.render(ground_truth=False)
    return frames / (time.perf_counter() - t0), posing / frames


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=60, help="timed frames per case")
    p.add_argument("--long", type=int, default=10000, help="animated frames of the memory run (0: skip)")
    p.add_argument("--threads", type=int, default=1, help="cores for numpy and llvmpipe")
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LP_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    from hcgym.envs.backends import make_backend

    print(f"animated vs static frames, {args.threads} core(s), RGB + depth + segmentation")
    print(f"{'people':>6} {'size':>8} {'static fps':>11} {'animated fps':>13} {'ratio':>6} {'posing ms':>10}")
    for people in (1, 10):
        for size in SIZES:
            still, moving = _world(people, size, False), _world(people, size, True)
            with make_backend("embedded", renderer="gl") as sim:
                sim.load(still, seed=0)
                _fps(sim, 5, 15, False)
                static, _ = _fps(sim, args.frames, 15, False)
            with make_backend("embedded", world=moving) as sim:
                sim.load(moving, seed=0)
                renderer = sim.renderer_name
                _fps(sim, 5, 15, True)
                animated, posing = _fps(sim, args.frames, 15, True)
            print(f"{people:>6} {size[0]:>4}x{size[1]:<3} {static:>11.1f} {animated:>13.1f} {animated / static:>6.2f} "
                  f"{posing * 1000:>10.1f}   ({renderer})")
    if args.long > 0:
        moving = _world(1, (400, 300), True)
        with make_backend("embedded", world=moving) as sim:
            sim.load(moving, seed=0)
            _fps(sim, 300, 30, True)  # warm-up: caches, buffers, allocator
            before = _rss_mb()
            t0 = time.perf_counter()
            for k in range(args.long):
                sim.set_time(sim.time + 1 / 30)
                sim.render()
                if (k + 1) % 2000 == 0:
                    print(f"  {k + 1} frames, RSS {_rss_mb():.0f} MB", file=sys.stderr, flush=True)
            elapsed = time.perf_counter() - t0
            after = _rss_mb()
        print(f"memory over {args.long} animated frames with ground truth (1 person, 400x300, "
              f"{args.long / elapsed:.1f} fps): RSS {before:.0f} -> {after:.0f} MB, growth {100 * (after / before - 1):+.2f}% "
              f"(ratio {after / before:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
