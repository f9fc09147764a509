"""Throughput of ``hcgym generate`` (scene mode, 640x480, full annotations) with 1 and 2 workers.

Prints images/s per worker for each worker count, measured in one run, and where the
time goes (milliseconds per image by step, summed over the workers). The identity pool
is built into the avatar cache first, so the numbers exclude one-time avatar builds
(printed separately); worker start-up (imports, world load, mesh uploads) is included
in the wall-clock rate and shown as its own steps.

    python benchmarks/generate.py [--n 96] [--workers 1,2] [--size 640x480] [--backgrounds DIR]

With ``--field`` it compares, with one worker at 384x288, the field preset of docs/datasets.md
(``field`` world, people at 5-40 m, 70-100 degree lenses with barrel distortion) against the same
settings without distortion and against ``crowd_street``, and prints the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

STEPS = ("stage", "load_avatars", "sample", "place", "render", "lens", "truth", "blend", "annotate", "encode",
         "json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=96, help="images per worker count (default 96)")
    ap.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2)")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--identities", type=int, default=16)
    ap.add_argument("--variants", type=int, default=2)
    ap.add_argument("--backgrounds", type=Path, default=None, help="blend onto these photos")
    ap.add_argument("--field", action="store_true", help="compare the field preset with and without distortion")
    args = ap.parse_args()
    if args.field:
        field_domain(args)
        return

    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.dataset import GenerateConfig, SceneSettings, generate
    from hcgym.synthesis.dataset.sampling import variant_spec

    w, h = (int(v) for v in args.size.split("x"))
    scene = SceneSettings(identities=args.identities, variants=args.variants)
    seed = 0
    t0 = time.perf_counter()
    for i in range(args.identities):
        for v in range(args.variants):
            build_avatar(variant_spec(seed, i, v))
    print(f"identity pool: {args.identities} x {args.variants} avatars built or found in the cache "
          f"in {time.perf_counter() - t0:.1f} s (one-time)")
    rates = {}
    for workers in (int(x) for x in args.workers.split(",")):
        with tempfile.TemporaryDirectory(prefix="hcgym-bench-gen-") as tmp:
            cfg = GenerateConfig(out=Path(tmp) / "data", n=args.n, seed=seed, size=(w, h),
                                 shard_size=args.shard_size, scene=scene, backgrounds=args.backgrounds,
                                 workers=workers)
            res = generate(cfg, progress=False)
        per_worker = res.rate / workers
        busy = sum(v for k, v in res.timings.items() if k != "cpu") / workers
        steady = sum(v for k, v in res.timings.items() if k not in ("stage", "load_avatars", "cpu"))
        rates[workers] = per_worker
        print(f"\n{workers} worker(s): {args.n} images {w}x{h} in {res.seconds:.1f} s wall = {res.rate:.2f} img/s "
              f"= {per_worker:.2f} img/s per worker (workers busy {busy:.1f} s each)")
        print(f"  steady state (without start-up and first avatar loads): {args.n / steady:.2f} img/s per worker")
        print(f"  CPU time of the workers: {1000 * res.timings['cpu'] / args.n:.1f} ms per image = "
              f"{args.n / res.timings['cpu']:.2f} img/s per worker with a core to itself")
        print("  ms per image by step (summed over workers):")
        for k in STEPS:
            if k in res.timings:
                print(f"    {k:13s} {1000 * res.timings[k] / args.n:8.1f}")
    if 1 in rates and 2 in rates:
        print(f"\nper-worker rate, 2 workers / 1 worker = {rates[2] / rates[1]:.2f}")


def field_domain(args: argparse.Namespace) -> None:
    """Steady-state images/s of the field preset, without its lens, and of crowd_street (1 worker, 384x288)."""
    from dataclasses import replace

    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.dataset import GenerateConfig, SceneSettings, generate
    from hcgym.synthesis.dataset.sampling import variant_spec

    preset = SceneSettings(identities=args.identities, variants=args.variants, empty_fraction=0.8,
                           distance=(5.0, 40.0), distortion=(-0.2, 0.03), hfov=(70.0, 100.0),
                           camera_height=(1.5, 3.0))
    for i in range(args.identities):
        for v in range(args.variants):
            build_avatar(variant_spec(0, i, v))
    runs = {"field preset": ("field", preset), "field, no lens": ("field", replace(preset, distortion=(0.0, 0.0))),
            "crowd_street, same options, no lens": ("crowd_street", replace(preset, distortion=(0.0, 0.0)))}
    rates = {}
    for label, (world, scene) in runs.items():
        with tempfile.TemporaryDirectory(prefix="hcgym-bench-field-") as tmp:
            cfg = GenerateConfig(out=Path(tmp) / "data", n=args.n, seed=0, world=world, size=(384, 288),
                                 shard_size=args.shard_size, scene=scene)
            res = generate(cfg, progress=False)
        steady = sum(v for k, v in res.timings.items() if k not in ("stage", "load_avatars", "cpu"))
        rates[label] = args.n / steady
        steps = ", ".join(f"{k} {1000 * res.timings[k] / args.n:.1f}" for k in STEPS
                          if k in res.timings and k not in ("stage", "json"))
        print(f"{label:38s} {rates[label]:6.2f} img/s steady state ({args.n} images; ms per image: {steps})")
    base = rates["field, no lens"]
    print(f"field preset / field without lens = {rates['field preset'] / base:.2f}; "
          f"field / crowd_street (no lens) = {base / rates['crowd_street, same options, no lens']:.2f}")


if __name__ == "__main__":
    main()
