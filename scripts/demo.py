"""``hcgym demo --out DIR``: render the shipped worlds and an avatar contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render both shipped worlds and an avatar contact sheet into DIR",
                       description="The main job on the embedded backend: renders every shipped world "
                                   "(RGB, depth, segmentation, ground truth), a contact sheet of 8 avatars, and "
                                   "evaluates the static, rule-based and pretrained PPO active face recognition "
                                   "agents on a reduced protocol (tables, plots and GIFs in DIR/active_fr/).")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default out/demo)")
    p.add_argument("--seed", type=_args.seed, default=0, help="world seed")
    p.add_argument("--skip-agents", action="store_true", help="skip the active face recognition evaluation")
    p.set_defaults(func=run)


#: The reduced protocol of the demo (distance m, angle deg): a subset of the cells of Tables 2 and 3.
DEMO_CELLS = {"setup1": [(2.0, 0.0), (4.0, 0.0), (6.0, 0.0)], "setup2": [(3.0, 0.0), (3.0, 120.0), (5.0, 240.0)]}


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
    agent_dirs = []
    if not args.skip_agents:
        from hcgym.scripts.evaluate import evaluate_active_fr

        for protocol, cells in DEMO_CELLS.items():
            print(f"[demo] active face recognition, {protocol}: static, rule-based and PPO agents "
                  f"({len(cells)} start cells, 1 held-out person) ...", flush=True)
            results = evaluate_active_fr(protocol, ["static", "rule", "ppo"], out / "active_fr" / protocol,
                                         persons=1, steps=150, cells=cells)
            means = ", ".join(f"{r['agent']} {sum(c['confidence'] for c in r['cells']) / len(cells):.2f}"
                              for r in results)
            print(f"[demo]   mean confidence: {means}", flush=True)
            agent_dirs.append(out / "active_fr" / protocol)
    print("[demo] done:")
    for p in written:
        print(f"  {p}/  rgb.png depth.npy depth.png segmentation.png segmentation_color.png ground_truth.json")
    print(f"  {sheet}")
    for p in agent_dirs:
        print(f"  {p}/  table.md confidence.png episode_{{static,rule,ppo}}.gif AGENT/results.json")
    return 0
