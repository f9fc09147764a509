"""``hcgym avatars --seeds 1-8 --out DIR``: build avatars and write a contact sheet."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hcgym.scripts._args import seed_range


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("avatars", help="build avatars and write DIR/contact_sheet.png",
                       description="Build random avatars (AvatarSpec.random(seed)) and write a contact sheet "
                                   "with the frontal face and full body of each.")
    p.add_argument("--seeds", type=seed_range, default=seed_range("1-8"), help="seeds, e.g. 1-8 or 1,4,9")
    p.add_argument("--out", type=Path, default=Path("out/avatars"), help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hcgym.synthesis import AvatarSpec
    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.studio import contact_sheet

    specs = [AvatarSpec.random(s) for s in args.seeds]
    avatars = [build_avatar(s) for s in tqdm(specs, desc="avatars", unit="avatar")]
    path = contact_sheet(avatars, [f"seed {s}" for s in args.seeds], args.out / "contact_sheet.png")
    index = [{"seed": s, "key": a.key, "identity": a.identity, "path": str(a.path)} for s, a in
             zip(args.seeds, avatars)]
    (args.out / "avatars.json").write_text(json.dumps(index, indent=1))
    print(f"wrote {path} ({len(avatars)} avatars; meshes in {avatars[0].path.parent})")
    return 0
