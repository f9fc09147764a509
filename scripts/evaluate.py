"""``hcgym evaluate TARGET``: evaluation protocols (one sub-command per target).

``hcgym evaluate face --out DIR``: verification accuracy (6,000 pairs, 10-fold
cross-validation) on held-out avatar identities in three simulated settings
(LFW-, CPLFW- and CALFW-like) for the in-house network's final layer, every
early exit x head (Raw, LR, BoF, Proposed) and dlib; FLOPs per exit. Writes
``results.json``, ``table.md`` and figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="run an evaluation protocol (face, active-fr, synth-view, detector, nms)", description=__doc__)
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    f = targets.add_parser("face", help="face verification: final layer, early exits x heads, dlib")
    f.add_argument("--out", type=Path, default=Path("out/evaluate-face"), help="output directory")
    f.add_argument("--seed", type=_args.seed, default=0, help="picks the held-out identities and the pairs")
    f.add_argument("--identities", type=_args.positive_int, default=300, help="held-out identities per set")
    f.add_argument("--per-identity", type=_args.positive_int, default=10, help="images per identity")
    f.add_argument("--pairs", type=_args.positive_int, default=6000, help="pairs per set (half same identity)")
    f.add_argument("--sets", default="lfw_like,cplfw_like,calfw_like", help="comma-separated subset of the sets")
    f.add_argument("--checkpoint", type=Path, default=None, help="IRNet checkpoint (default: the shipped one)")
    f.add_argument("--heads", type=Path, default=None, help="exit heads file (default: beside the checkpoint)")
    f.add_argument("--no-dlib", action="store_true", help="skip the dlib comparison (faster)")
    f.add_argument("--workers", type=_args.positive_int, default=2, help="rendering processes")
    f.set_defaults(func=run_face)

    a = targets.add_parser("active-fr", help="OpenDR D3.2 Tables 2/3 protocol for an active face recognition agent")
    a.add_argument("--protocol", choices=("setup1", "setup2"), required=True)
    a.add_argument("--agent", required=True, help="ppo, rule or static, or several comma-separated "
                                                  "(one table with a column per agent)")
    a.add_argument("--checkpoint", type=Path, default=None,
                   help="PPO model .zip (default: the shipped agent of the protocol's setup)")
    a.add_argument("--trust-checkpoint", action="store_true",
                   help="allow a --checkpoint from outside hcgym (SB3 zips are pickles: only files you trust)")
    a.add_argument("--avatars", type=_args.seed_range, default=None,
                   help="avatar seeds (>= 5; the first 4 are evaluated, all form the gallery); default 400000-400007")
    a.add_argument("--sample", action="store_true",
                   help="PPO samples its actions (seeded, reproducible) instead of taking the most probable one")
    a.add_argument("--persons", type=_args.positive_int, default=4, help="how many of the avatars are evaluated")
    a.add_argument("--steps", type=_args.positive_int, default=300, help="steps per episode")
    a.add_argument("--out", type=Path, default=Path("out/evaluate-active-fr"))
    a.set_defaults(func=run_active_fr)

    from hcgym.scripts import evaluate_nms, evaluate_synth_view

    evaluate_synth_view.register(targets)
    evaluate_nms.register(targets)

    from hcgym.scripts import evaluate_detector

    evaluate_detector.register(targets)


def run_face(args: argparse.Namespace) -> int:
    from hcgym.errors import SpecError
    from hcgym.perception.face.early_exits import ExitHeads
    from hcgym.perception.face.evaluation import evaluate_pairs, exit_flops
    from hcgym.perception.face.irnet import load_checkpoint
    from hcgym.perception.face.models import shipped_checkpoint
    from hcgym.synthesis.face_sets import SETS, held_out_identities, make_pairs, render_set

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in sets:
        if s not in SETS:
            raise SpecError("--sets", f"unknown set {s!r} (allowed: {', '.join(SETS)})")
    ckpt = args.checkpoint or shipped_checkpoint()
    heads_path = args.heads or ckpt.with_name("exit_heads.pt")
    model, arch, _ = load_checkpoint(ckpt)
    heads = ExitHeads.load(heads_path)
    t0 = time.time()
    results: dict = {"sets": {}, "flops": exit_flops(model, heads), "exits": heads.exits,
                     "checkpoint": str(ckpt), "seed": args.seed, "identities": args.identities,
                     "per_identity": args.per_identity, "pairs": args.pairs}
    ids = held_out_identities(args.seed, args.identities)
    for kind in sets:
        print(f"[evaluate] rendering {kind}: {args.identities} identities x {args.per_identity}", flush=True)
        data = render_set(kind, ids, args.per_identity, model.input_size, seed=args.seed, progress=True,
                          with_dlib=not args.no_dlib, workers=args.workers)
        pairs = make_pairs(data, kind, args.pairs, seed=args.seed)
        results["sets"][kind] = evaluate_pairs(model, heads, data["chips"], pairs, data.get("dlib"))
        print(f"[evaluate] {kind}: {json.dumps(results['sets'][kind])}", flush=True)
    results["seconds"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "table.md").write_text(face_table(results))
    face_figures(results, args.out)
    print(f"[evaluate] wrote {args.out}/results.json, table.md, accuracy_by_exit.png, accuracy_vs_flops.png")
    return 0


METHOD_NAMES = {"raw": "Raw", "lr": "LR", "bof": "BoF", "proposed": "Proposed"}
SET_NAMES = {"lfw_like": "LFW-like", "cplfw_like": "CPLFW-like", "calfw_like": "CALFW-like"}


def face_table(results: dict) -> str:
    """Markdown in the layout of OpenDR D3.2 Table 1 (accuracy % mean +- std per exit)."""
    f = results["flops"]
    lines = ["| Method | Exit 1 | Exit 2 | Exit 3 | Final layer | dlib |", "|---|---|---|---|---|---|"]
    for kind, r in results["sets"].items():
        lines.append(f"| **{SET_NAMES.get(kind, kind)}** | | | | | |")
        for m, name in METHOD_NAMES.items():
            if m not in r["exits"]["1"]:
                continue
            cells = [f"{r['exits'][e][m]:.2f} ± {r['exits'][e][m + '_std']:.2f}" for e in ("1", "2", "3")]
            final = f"{r['final']:.2f} ± {r['final_std']:.2f}" if m == "proposed" else ""
            dlib = f"{r['dlib']:.2f} ± {r['dlib_std']:.2f}" if m == "proposed" and "dlib" in r else ""
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {final} | {dlib} |")
    lines += ["", "FLOPs per image (2 per multiply-add; exits include the Proposed head):", "",
              "| | Exit 1 | Exit 2 | Exit 3 | Final layer |", "|---|---|---|---|---|",
              f"| MFLOPs | {f['exit1'] / 1e6:.1f} | {f['exit2'] / 1e6:.1f} | {f['exit3'] / 1e6:.1f} | "
              f"{f['final'] / 1e6:.1f} |",
              f"| fraction of the full network | {f['exit1'] / f['final']:.2f} | {f['exit2'] / f['final']:.2f} | "
              f"{f['exit3'] / f['final']:.2f} | 1.00 |"]
    return "\n".join(lines) + "\n"


def face_figures(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sets = list(results["sets"])
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.4), dpi=110, squeeze=False)
    for ax, kind in zip(axes[0], sets):
        r = results["sets"][kind]
        x = np.arange(3)
        for j, (m, name) in enumerate(METHOD_NAMES.items()):
            ys = [r["exits"][e][m] for e in ("1", "2", "3")]
            ax.bar(x + (j - 1.5) * 0.2, ys, 0.2, label=name)
        ax.axhline(r["final"], color="k", ls="--", lw=1, label="final layer")
        if "dlib" in r:
            ax.axhline(r["dlib"], color="r", ls=":", lw=1, label="dlib")
        ax.set_xticks(x, ["exit 1", "exit 2", "exit 3"])
        ax.set_ylim(45, 100)
        ax.set_title(SET_NAMES.get(kind, kind))
        ax.set_ylabel("verification accuracy (%)")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "accuracy_by_exit.png")
    plt.close(fig)
    f = results["flops"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=110)
    fl = [f["exit1"], f["exit2"], f["exit3"]]
    for kind in sets:
        r = results["sets"][kind]
        line, = ax.plot(np.asarray(fl) / 1e6, [r["exits"][e]["proposed"] for e in ("1", "2", "3")], "o-",
                        label=f"{SET_NAMES.get(kind, kind)} Proposed")
        ax.plot(np.asarray(fl) / 1e6, [r["exits"][e]["lr"] for e in ("1", "2", "3")], "s--", color=line.get_color(),
                alpha=0.6, label=f"{SET_NAMES.get(kind, kind)} LR")
        ax.plot([f["final"] / 1e6], [r["final"]], "*", ms=12, color=line.get_color())
    ax.set_xlabel("MFLOPs per face")
    ax.set_ylabel("verification accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_flops.png")
    plt.close(fig)


def run_active_fr(args: argparse.Namespace) -> int:
    from hcgym.agents.evaluation import EVAL_AVATARS
    from hcgym.errors import SpecError

    avatars = tuple(args.avatars) if args.avatars else EVAL_AVATARS
    if len(avatars) < 5:
        raise SpecError("--avatars", f"need at least 5 avatar seeds (the gallery holds 5), got {len(avatars)}")
    if args.persons > len(avatars):
        raise SpecError("--persons", f"{args.persons} is more than the {len(avatars)} avatars given")
    names = [a.strip() for a in args.agent.split(",") if a.strip()]
    bad = [a for a in names if a not in AGENTS]
    if not names or bad or len(set(names)) != len(names):
        raise SpecError("--agent", f"expected distinct agents among {', '.join(AGENTS)} (comma-separated), "
                                   f"got {args.agent!r}")
    if "ppo" in names and args.checkpoint is not None:  # refused before any episode runs
        from hcgym.agents.ppo import trusted_checkpoint

        trusted_checkpoint(args.checkpoint, args.trust_checkpoint, "--checkpoint")
    results = evaluate_active_fr(args.protocol, names, args.out, avatars=avatars, persons=args.persons,
                                 steps=args.steps, checkpoint=args.checkpoint, sample=args.sample,
                                 trust=args.trust_checkpoint)
    for r in results:
        mean = sum(c["confidence"] for c in r["cells"]) / len(r["cells"])
        print(f"[evaluate] {args.protocol} {r['agent']}: mean confidence {mean:.3f}")
    print(f"[evaluate] wrote {args.out}/ (results.json, table.md, confidence.png, episode GIFs)")
    return 0


AGENTS = ("ppo", "rule", "static")


def make_active_fr_agent(name: str, protocol: str, checkpoint: Path | None = None, sample: bool = False,
                         trust: bool = False):
    """The named agent for a protocol (PPO: ``checkpoint`` or the shipped agent of that setup; ``sample``:
    actions drawn from the policy with a fixed seed instead of its most probable action; ``trust``: allow a
    checkpoint from outside hcgym, see :func:`hcgym.agents.ppo.trusted_checkpoint`)."""
    from hcgym.agents import RuleBasedAgent, StaticAgent

    if name == "ppo":
        from hcgym.agents.ppo import PPOAgent, shipped_agent

        return PPOAgent.load(checkpoint if checkpoint is not None else shipped_agent(protocol),
                             deterministic=not sample, trust=trust)
    if name == "rule":
        return RuleBasedAgent(one_axis=protocol == "setup1")
    return StaticAgent()


def evaluate_active_fr(protocol: str, agents: list[str], out: Path, avatars: tuple[int, ...] | None = None,
                       persons: int = 4, steps: int = 300, checkpoint: Path | None = None,
                       cells: list[tuple[float, float]] | None = None, gif_steps: int = 120,
                       sample: bool = False, trust: bool = False) -> list[dict]:
    """Run the protocol for each agent; write results.json (one agent) or AGENT/results.json (several),
    table.md in the layout of Tables 2/3, confidence.png and one episode GIF per agent. Output goes through
    a temporary directory, so a failed run leaves nothing half written."""
    import gymnasium as gym

    import hcgym.envs  # noqa: F401 - registers the ids
    from hcgym.agents.evaluation import EVAL_AVATARS, evaluate, run_episode, table_markdown
    avatars = tuple(avatars) if avatars else EVAL_AVATARS
    one_axis = protocol == "setup1"
    env_id = "hcgym/ActiveFaceRecognition" + ("OneAxis" if one_axis else "") + "-v0"
    results, episodes = [], {}
    for name in agents:
        agent = make_active_fr_agent(name, protocol, checkpoint, sample, trust)
        obs_size = agent.observation_size() if hasattr(agent, "observation_size") else (400, 300)

        def make_env():
            return gym.make(env_id, obs_size=obs_size, avatars=avatars, max_steps=steps)

        result = evaluate(protocol, make_env, agent, list(range(persons)), steps, progress=True, cells=cells)
        result["avatars"] = list(avatars[:persons])
        result["scoring"] = "confidence of the last stay within the episode (0 if not recognised or never stayed)"
        if name == "ppo":
            result["checkpoint"] = str(checkpoint) if checkpoint is not None else f"shipped ({protocol})"
            result["policy"] = "sampled (seed 0, restarted each episode)" if sample else "most probable action"
        results.append(result)
        env = make_env()
        d, a = (5.0, 0.0) if one_axis else (3.0, 120.0)
        episodes[name] = run_episode(env.unwrapped, agent, 0, d, a, min(steps, gif_steps), record=True)
        env.close()
    _publish(Path(out), results, episodes, protocol, table_markdown)
    return results


def _publish(out: Path, results: list[dict], episodes: dict, protocol: str, table_markdown) -> None:
    """Write every file into a temporary folder first, then move each into ``out`` (atomic per file)."""
    import os
    import shutil
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".evaluate.", dir=out))
    try:
        files = {}
        for r in results:
            name = "results.json" if len(results) == 1 else f"{r['agent']}/results.json"
            files[name] = json.dumps(r, indent=1).encode()
        files["table.md"] = table_markdown(results, protocol).encode()
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        _active_fr_plot(results, protocol, tmp / "confidence.png")
        for name, ep in episodes.items():
            _gif(ep.frames, tmp / f"episode_{name}.gif")
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            target = out / path.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _active_fr_plot(results: list[dict], protocol: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7.0, 3.4), dpi=110)
    cells = results[0]["cells"]
    labels = [f"{c['distance_m']:g}" if protocol == "setup1" else f"{c['distance_m']:g}m/{c['angle_deg']:g}°"
              for c in cells]
    x = np.arange(len(cells))
    w = 0.8 / len(results)
    for k, r in enumerate(results):
        ax.bar(x + (k - (len(results) - 1) / 2) * w, [c["confidence"] for c in r["cells"]], w, label=r["agent"])
    ax.set_xticks(x, labels, rotation=60 if protocol == "setup2" else 0, fontsize=7)
    ax.set_xlabel("start distance (m)" if protocol == "setup1" else "start distance / angle")
    ax.set_ylabel("face recognition confidence")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _gif(frames: list, path: Path, fps: int = 8) -> None:
    from PIL import Image

    if not frames:
        return
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
