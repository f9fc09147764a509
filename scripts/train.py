"""``hcgym train TARGET``: train the project's models (one sub-command per target).

``hcgym train face-embedder``: render aligned face crops of avatar identities
(resumable shards), train the IRNet with the ArcFace loss (resumable epochs),
fit the early-exit heads, export ONNX and write the provenance beside the
checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (face-embedder, active-fr, detector, seq2seq-nms, action)", description=__doc__)
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    f = targets.add_parser("face-embedder", help="the in-house face recognizer (IRNet + ArcFace) and its exits")
    f.add_argument("--identities", type=_args.positive_int, default=500, help="training identities (avatars)")
    f.add_argument("--per-identity", type=_args.positive_int, default=40, help="face crops per identity")
    f.add_argument("--epochs", type=_args.positive_int, default=24)
    f.add_argument("--batch-size", type=_args.positive_int, default=128)
    f.add_argument("--lr", type=float, default=0.1)
    f.add_argument("--seed", type=_args.seed, default=0)
    f.add_argument("--workers", type=_args.positive_int, default=2, help="processes rendering face crops")
    f.add_argument("--data", type=Path, default=Path("out/face-embedder/data"), help="face-crop folder (resumable)")
    f.add_argument("--out", type=Path, default=Path("out/face-embedder"), help="where the model files go")
    f.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration (tests, CI)")
    f.set_defaults(func=run_face_embedder)

    a = targets.add_parser("active-fr", help="PPO with the paper's network on the active face recognition env")
    a.add_argument("--steps", type=_args.positive_int, default=1_000_000, help="total environment steps")
    a.add_argument("--envs", type=_args.positive_int, default=8, help="parallel environments (SubprocVecEnv)")
    a.add_argument("--obs-size", type=_args.size, default=None,
                   help="observation WxH (default: the env's, 84x84)")
    a.add_argument("--setup", type=int, choices=(1, 2), default=2, help="1: one axis, 2: five actions")
    a.add_argument("--episode-steps", type=_args.positive_int, default=1000, help="steps per training episode")
    a.add_argument("--seed", type=_args.seed, default=0)
    a.add_argument("--checkpoint-every", type=_args.positive_int, default=50_000, help="steps between checkpoints")
    a.add_argument("--out", type=Path, default=Path("out/active-fr"), help="checkpoints, logs, final model")
    a.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.zip")
    a.add_argument("--trust-checkpoint", action="store_true",
                   help="needed with --resume: OUT/checkpoints/last.zip is a pickle (only runs you made or trust)")
    a.add_argument("--headings", type=_args.seed_range, default=[0, 9, 18, 27],
                   help="person headings (indices of the 10-degree arc step) drawn at reset, e.g. 0,18 or 0-35")
    a.add_argument("--start-distance", type=_args.floats(2, "MIN,MAX metres"), default=(1.0, 20.0),
                   help="range of the random start distance, e.g. 1,20")
    a.add_argument("--max-distance", type=float, default=20.5,
                   help="farthest drone distance (metres); backward moves stop there")
    a.add_argument("--lattice-dir", type=Path, default=None,
                   help="precomputed lattices (built first if missing; default OUT/lattice)")
    a.add_argument("--no-lattice", action="store_true", help="render and recognise on line (much slower)")
    a.add_argument("--recognition-range", type=float, default=5.0,
                   help="metres up to which lattices store face embeddings (beyond: computed on line)")
    a.add_argument("--workers", type=_args.positive_int, default=2, help="processes building lattices")
    a.set_defaults(func=run_active_fr)

    from hcgym.scripts import train_action, train_action_study, train_detector, train_seq2seq_nms

    train_detector.register(targets)
    train_seq2seq_nms.register(targets)
    train_action.register(targets)
    train_action_study.register(targets)

    from hcgym.scripts import train_expression

    train_expression.register(targets)

    from hcgym.scripts import train_gesture

    train_gesture.register(targets)

    from hcgym.scripts import train_speech

    train_speech.register(targets)

    from hcgym.scripts import train_biosignal

    train_biosignal.register(targets)


def run_face_embedder(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    import numpy as np

    from hcgym.perception.face.irnet import HcgymFaceEmbedder, save_checkpoint
    from hcgym.perception.face.training import TrainConfig, train_embedder
    from hcgym.synthesis.face_crops import CropSettings, generate_face_crops, load_face_crops

    t0 = time.time()
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    settings = CropSettings()
    if args.tiny:
        cfg = replace(cfg, units=(1, 1, 1, 1), widths=(8, 16, 16, 32), expansions=(1, 2, 2, 2), embedding_dim=64,
                      val_identities=2, batch_size=16)
        settings = replace(settings, variants=1)
    seeds = range(100_000, 100_000 + args.identities)
    print(f"[train] face crops: {args.identities} identities x {args.per_identity} -> {args.data}", flush=True)
    generate_face_crops(args.data, seeds, args.per_identity, settings, seed=args.seed, workers=args.workers)
    data = load_face_crops(args.data)
    print(f"[train] {len(data['chips'])} chips; training IRNet ({cfg.epochs} epochs)", flush=True)
    result = train_embedder(data["chips"], data["labels"], cfg, out_dir=args.out / "train_state")
    args.out.mkdir(parents=True, exist_ok=True)
    provenance = {
        "command": "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", [])),
        "seed": args.seed, "identities": f"AvatarSpec.random({seeds.start}..{seeds.stop - 1})",
        "per_identity": args.per_identity, "crop_settings": asdict(settings), "train_config": asdict(cfg),
        "history": result.history, "metrics": {k: v for k, v in result.final.items() if k.startswith("val")},
        "seconds": round(time.time() - t0, 1),
    }
    # Early exits (OpenDR D3.2 section 2.1): placed by FLOP fraction, heads fitted on training identities.
    from hcgym.perception.face.early_exits import fit_exit_heads
    from hcgym.perception.face.irnet import choose_exits
    from hcgym.perception.face.training import split_identities

    exits, fractions = choose_exits(result.model)
    train_mask, _ = split_identities(data["labels"], cfg.val_identities, cfg.seed)
    print(f"[train] fitting exit heads at blocks {exits} (FLOP fractions {[round(f, 3) for f in fractions]})",
          flush=True)
    heads = fit_exit_heads(result.model, data["chips"][train_mask], exits, n_codewords=16 if args.tiny else 64,
                           iterations=20 if args.tiny else 2000, seed=args.seed, progress=True)
    heads.save(args.out / "exit_heads.pt")
    provenance["exits"] = {"blocks": exits, "flop_fractions": [round(f, 4) for f in fractions]}
    ckpt = save_checkpoint(result.model, args.out / "irnet.pt", config={"exits": exits}, extra_meta=provenance)
    sensor = HcgymFaceEmbedder(ckpt)
    onnx = sensor.export_onnx(args.out / "irnet.onnx")
    # The ONNX file must give the same embeddings as PyTorch.
    from hcgym.perception.base import OnnxSensor

    chips = data["chips"][:16]
    gap = float(np.abs(sensor.embed_aligned(chips) - OnnxSensor(onnx).embed_aligned(chips)).max())
    provenance["onnx_max_abs_diff"] = gap
    (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1))
    from hcgym.paths import atomic_write_bytes
    from hcgym.report import training_curve

    atomic_write_bytes(args.out / "training_curve.png", training_curve(result.history, **FACE_CURVE))
    print(f"[train] wrote {ckpt}, {onnx} (ONNX vs PyTorch max |diff| {gap:.2e}); "
          f"validation verification {provenance['metrics']}", flush=True)
    return 0


#: :func:`hcgym.report.training_curve` settings of the face embedder's training (loss and held-out accuracy).
FACE_CURVE = {"title": "IRNet training on avatar face crops", "loss_label": "training loss",
              "metric": "val_verification", "metric_label": "held-out verification (%)"}


def run_active_fr(args: argparse.Namespace) -> int:
    """Train PPO (paper network) on the active face recognition env, resumable in chunks."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from hcgym.agents.ppo import _policy_cls, make_ppo, trusted_checkpoint
    from hcgym.errors import SpecError

    # One thread for the PPO update: with several, the threads spin against the env workers (measured here:
    # 2 threads gave about a third of the steps/s of 1, half of the CPU time in the kernel).
    torch.set_num_threads(1)
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the env worker processes
    env_id = "hcgym.envs:hcgym/ActiveFaceRecognition" + ("OneAxis" if args.setup == 1 else "") + "-v0"
    gamma = 0.99
    if any(h >= 36 for h in args.headings):
        raise SpecError("--headings", f"heading indices must be in 0..35 (10-degree steps), got {args.headings}")
    lo, hi = args.start_distance
    if not 0.5 < lo <= hi <= args.max_distance:
        raise SpecError("--start-distance", f"need 0.5 < MIN <= MAX <= --max-distance ({args.max_distance:g}) "
                                            f"metres, got {lo:g},{hi:g}")
    if args.resume:  # an SB3 zip is a pickle: refused before any lattice is built unless trusted
        trusted_checkpoint(args.out / "checkpoints" / "last.zip", args.trust_checkpoint, "--resume")
    lattice_s = 0.0
    from hcgym.envs.active_fr import ActiveFaceRecognitionEnv

    obs_size = tuple(args.obs_size or ActiveFaceRecognitionEnv.DEFAULT_OBS_SIZE)
    env_kwargs = {"obs_size": obs_size, "max_steps": args.episode_steps, "headings": tuple(args.headings),
                  "start_distance": (lo, hi), "max_distance": args.max_distance}
    if not args.no_lattice:
        from hcgym.envs.active_fr import TRAIN_AVATARS
        from hcgym.envs.lattice import build_lattices

        lattice_dir = args.lattice_dir or args.out / "lattice"
        t_l = time.time()
        print(f"[train] precomputing lattices ({len(TRAIN_AVATARS)} avatars x {len(args.headings)} headings) "
              f"-> {lattice_dir}", flush=True)
        build_lattices(lattice_dir, {**env_kwargs, "one_axis": args.setup == 1}, range(len(TRAIN_AVATARS)),
                       args.headings, recognition_range=args.recognition_range, workers=args.workers)
        lattice_s = time.time() - t_l
        print(f"[train] lattices ready in {lattice_s:.0f} s", flush=True)
        env_kwargs["lattice_dir"] = str(lattice_dir)
    # Rewards scaled by (1 - gamma) keep returns inside the tanh value head's range (same optimal policy).
    from gymnasium.wrappers import TransformReward

    vec = make_vec_env(env_id, n_envs=args.envs, seed=args.seed, env_kwargs=env_kwargs,
                       vec_env_cls=SubprocVecEnv if args.envs > 1 else None,
                       wrapper_class=TransformReward, wrapper_kwargs={"func": _RewardScale(1 - gamma)})
    ckpt_dir = args.out / "checkpoints"
    last = ckpt_dir / "last.zip"
    if args.resume:
        if not last.is_file():
            raise SpecError("--resume", f"no checkpoint to resume from: {last}")
        model = PPO.load(last, env=vec, device="cpu", custom_objects={"policy_class": _policy_cls()})
        print(f"[train] resuming at {model.num_timesteps} steps", flush=True)
    else:
        model = make_ppo(vec, seed=args.seed, gamma=gamma, tensorboard_log=str(args.out / "tb"),
                         n_steps=128, batch_size=min(256, 128 * args.envs))
    remaining = max(args.steps - model.num_timesteps, 0)

    class Progress(BaseCallback):
        def _on_training_start(self) -> None:
            from tqdm import tqdm

            self.bar = tqdm(total=args.steps, initial=self.model.num_timesteps, desc="train active-fr", unit="step")
            self.next_ckpt = (self.model.num_timesteps // args.checkpoint_every + 1) * args.checkpoint_every

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            if self.model.num_timesteps >= self.next_ckpt:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                self.model.save(ckpt_dir / f"ppo_{self.model.num_timesteps}.zip")
                self.model.save(last)
                self.next_ckpt += args.checkpoint_every
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    t0 = time.time()
    model.learn(remaining, callback=Progress(), reset_num_timesteps=not args.resume, tb_log_name="ppo")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model.save(last)
    model.save(args.out / "ppo.zip")
    from hcgym.agents.ppo import save_slim

    save_slim(model, args.out / "agent.zip")  # for acting: no optimizer moments (the shipped agents are these)
    meta_path = args.out / "PROVENANCE.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"chunks": []}
    meta.update({"env": env_id.split(":")[1], "env_kwargs": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in env_kwargs.items() if k != "lattice_dir"},
                 "seed": args.seed, "envs": args.envs, "steps": int(model.num_timesteps),
                 "reward_scale": 1 - gamma, "gamma": gamma})
    episodes = list(model.ep_info_buffer or [])
    meta["chunks"].append({"command": "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", [])),
                           "steps_after": int(model.num_timesteps), "seconds": round(time.time() - t0, 1),
                           "lattice_seconds": round(lattice_s, 1),
                           "ep_rew_mean_last_100": round(sum(e["r"] for e in episodes) / len(episodes), 2)
                           if episodes else None})
    meta_path.write_text(json.dumps(meta, indent=1))
    vec.close()
    print(f"[train] {model.num_timesteps} steps; wrote {args.out / 'ppo.zip'}", flush=True)
    return 0


class _RewardScale:
    """Picklable reward scaling for the worker processes."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def __call__(self, r: float) -> float:
        return r * self.scale
