"""``hcgym export-webots WORLD OUTDIR [--seed S]``: write a world as a Webots R2023b ``.wbt``."""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-webots", help="write a world as a Webots R2023b world (.wbt, PROTO avatars, meshes)",
        description="Write WORLD as OUTDIR/<name>.wbt with one PROTO and mesh folder per avatar. Open it in "
                    "Webots R2023b and run hcgym with the webots backend as the extern controller of a robot "
                    "(see docs/backends.md).")
    p.add_argument("world", metavar="WORLD", help="world YAML file, or the name of a shipped world")
    p.add_argument("out_dir", metavar="OUTDIR", type=Path,
                   help="output folder: new, empty, or a previous export (which is replaced)")
    p.add_argument("--seed", type=_args.seed, default=0,
                   help="seed of the humans with `avatar: random` (load the world with the same seed; default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print the path of the written ``.wbt`` file."""
    from hcgym.worlds import load_world
    from hcgym.worlds.webots_export import export_webots

    world = load_world(args.world)
    print(export_webots(world, args.out_dir, seed=args.seed))
    if world.animated:
        from hcgym.worlds.webots_export import dropped_motion

        print(f"note: {dropped_motion(world)}")
    return 0
