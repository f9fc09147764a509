"""``hcgym demo --out DIR``: render the shipped worlds and an avatar contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render both shipped worlds and an avatar contact sheet into DIR",
                       description="The main job on the embedded backend: renders every shipped world "
                                   "(RGB, depth, segmentation, ground truth), renders a 6 s clip of a person "
                                   "walking up, waving and talking (video.mp4 with ground truth per frame), runs the person detector with greedy "
                                   "and Seq2Seq NMS on the crowd, renders a contact sheet of 8 avatars, and "
                                   "evaluates the static, rule-based and pretrained PPO active face recognition "
                                   "agents on a reduced protocol (tables, plots and GIFs in DIR/active_fr/).")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default out/demo)")
    p.add_argument("--seed", type=_args.seed, default=0, help="world seed")
    p.add_argument("--skip-agents", action="store_true", help="skip the active face recognition evaluation")
    p.set_defaults(func=run)


#: The reduced protocol of the demo (distance m, angle deg): a subset of the cells of Tables 2 and 3.
DEMO_CELLS = {"setup1": [(2.0, 0.0), (4.0, 0.0), (6.0, 0.0)], "setup2": [(3.0, 0.0), (3.0, 120.0), (5.0, 240.0)]}


def detect_people(rgb, out: Path) -> Path:
    """The shipped person detector on the crowd_street render, with greedy NMS and with Seq2Seq-NMS."""
    import json

    import cv2

    from hcgym.perception import nms
    from hcgym.perception.detection import load_detector
    from hcgym.perception.detection.evaluation import draw

    det = load_detector()
    boxes, scores = det.candidates(rgb, 400)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"candidates": int(len(boxes))}
    # score thresholds near each method's best F1 on the dense test set (Seq2Seq-NMS outputs probabilities)
    for name, method, threshold in (("greedy", "greedy_0.5", 0.3), ("seq2seq", "seq2seq", 0.6)):
        r = nms.make(method)(boxes, scores, rgb)
        keep = r.keep[r.scores[r.keep] >= threshold]
        cv2.imwrite(str(out / f"crowd_street_{name}.png"),
                    cv2.cvtColor(draw(rgb, r.boxes[keep], r.scores[keep]), cv2.COLOR_RGB2BGR))
        summary[method] = {"people": int(len(keep)), "score_threshold": threshold, "boxes": r.boxes[keep].round(1).tolist(),
                           "scores": r.scores[keep].round(3).tolist()}
    (out / "detections.json").write_text(json.dumps(summary, indent=1))
    print(f"[demo] person detector on crowd_street: {summary['candidates']} candidates; "
          f"{summary['greedy_0.5']['people']} people (greedy NMS, score >= 0.3), {summary['seq2seq']['people']} "
          f"(Seq2Seq-NMS, p >= 0.6)", flush=True)
    return out


def greeting_clip(out: Path, seed: int = 0) -> Path:
    """A person walks up, stops, smiles, waves and says hello (the shipped ``greeting`` world): 6 s of video
    with ground truth per frame, and a GIF preview."""
    from hcgym.report import gif_bytes, write_files
    from hcgym.synthesis.dataset.video import render_video
    from hcgym.video import read_video
    from hcgym.worlds import load_world

    print("[demo] rendering a 6 s clip of a person walking up, waving and talking (greeting) ...", flush=True)
    info = render_video(load_world("greeting"), out, 6.0, 10, seed=seed, progress=False)
    frames = read_video(out / "video.mp4")
    write_files(out, {"preview.gif": gif_bytes(list(frames[::2]), fps=5)})
    print(f"[demo]   {info['frames']} frames at 10 fps, {info['size'][0]}x{info['size'][1]}, renderer {info['renderer']}",
          flush=True)
    return out


def run(args: argparse.Namespace) -> int:
    from hcgym.envs.backends import make_backend
    from hcgym.scripts.render import write_frame
    from hcgym.synthesis import AvatarSpec
    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.studio import contact_sheet
    from hcgym.worlds import load_world, shipped_worlds

    out: Path = args.out
    written = []
    frames = {}
    for name in shipped_worlds():
        world = load_world(name)
        print(f"[demo] rendering {name} ({len(world.humans)} humans) ...", flush=True)
        with make_backend("embedded", world=world) as sim:
            sim.load(world, seed=args.seed)
            frame = sim.render()
        write_frame(frame, out / name)
        written.append(out / name)
        frames[name] = frame
    detection = detect_people(frames["crowd_street"].rgb, out / "detection") if "crowd_street" in frames else None
    clip = greeting_clip(out / "clip", args.seed)
    print("[demo] building 8 avatars for the contact sheet ...", flush=True)
    seeds = list(range(1, 9))
    avatars = [build_avatar(AvatarSpec.random(s)) for s in seeds]
    sheet = contact_sheet(avatars, [f"seed {s}" for s in seeds], out / "contact_sheet.png")
    agent_dirs = []
    if not args.skip_agents:
        from hcgym.agents.evaluation.active_fr import ActiveFrConfig
        from hcgym.scripts.evaluate import publish_active_fr

        for protocol, cells in DEMO_CELLS.items():
            print(f"[demo] active face recognition, {protocol}: static, rule-based and PPO agents "
                  f"({len(cells)} start cells, 1 held-out person) ...", flush=True)
            config = ActiveFrConfig(protocol=protocol, agents=("static", "rule", "ppo"), persons=1, steps=150, cells=tuple(cells))
            results = publish_active_fr(config, out / "active_fr" / protocol)
            means = ", ".join(f"{r['agent']} {sum(c['confidence'] for c in r['cells']) / len(cells):.2f}"
                              for r in results)
            print(f"[demo]   mean confidence: {means}", flush=True)
            agent_dirs.append(out / "active_fr" / protocol)
    print("[demo] done:")
    for p in written:
        print(f"  {p}/  rgb.png depth.npy depth.png segmentation.png segmentation_color.png ground_truth.json")
    print(f"  {sheet}")
    print(f"  {clip}/  video.mp4 frames.jsonl render.json preview.gif")
    if detection is not None:
        print(f"  {detection}/  crowd_street_{{greedy,seq2seq}}.png detections.json")
    for p in agent_dirs:
        print(f"  {p}/  table.md confidence.png episode_{{static,rule,ppo}}.gif AGENT/results.json")
    return 0
