"""``hcgym demo --out DIR``: render the shipped worlds and an avatar contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render both shipped worlds and an avatar contact sheet into DIR",
                       description="The main job on the embedded backend: renders every shipped world "
                                   "(RGB, depth, segmentation, ground truth) and a contact sheet of 8 avatars.")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default out/demo)")
    p.add_argument("--seed", type=_args.seed, default=0, help="world seed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcgym.envs.backends.embedded import EmbeddedBackend
    from hcgym.synthesis.studio import contact_sheet
    from hcgym.scripts.render import write_frame
    from hcgym.synthesis import AvatarSpec
    from hcgym.synthesis.builder import build_avatar
    from hcgym.worlds import load_world, shipped_worlds

    out: Path = args.out
    written = []
    for name in shipped_worlds():
        world = load_world(name)
        print(f"[demo] rendering {name} ({len(world.humans)} humans) ...", flush=True)
        with EmbeddedBackend() as sim:
            sim.load(world, seed=args.seed)
            frame = sim.render()
        write_frame(frame, out / name)
        written.append(out / name)
    print("[demo] building 8 avatars for the contact sheet ...", flush=True)
    seeds = list(range(1, 9))
    avatars = [build_avatar(AvatarSpec.random(s)) for s in seeds]
    sheet = contact_sheet(avatars, [f"seed {s}" for s in seeds], out / "contact_sheet.png")
    print("[demo] done:")
    for p in written:
        print(f"  {p}/  rgb.png depth.npy depth.png segmentation.png segmentation_color.png ground_truth.json")
    print(f"  {sheet}")
    return 0
