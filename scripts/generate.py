"""``hcgym generate --world W --n N --seed S --out DIR``: a synthetic human dataset (see docs/datasets.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate a synthetic human dataset (COCO persons, face crops, head-pose grids or "
                         "labelled video clips)",
        description="Generate a synthetic human dataset in shards (resumable: rerun the same command after an "
                    "interruption; the same seed gives the same bytes for any number of workers). Modes: scene "
                    "(images with COCO person annotations: boxes, keypoints, masks, face boxes, identities, "
                    "cameras, 3D keypoints; people in the world or blended onto --backgrounds photos), faces "
                    "(ImageFolder face crops + pairs.csv), multiview (per-person pan/tilt grids) and clips (short "
                    "videos of one moving person labelled with an action, expression or hand gesture, with "
                    "per-frame ground truth; --labels). Ranges are "
                    "MIN,MAX; write negative ones as --camera-pitch=-20,5.")
    p.add_argument("--world", default="crowd_street",
                   help="world YAML file or shipped world name (scene mode without --backgrounds; "
                        "default crowd_street)")
    p.add_argument("--n", "--count", dest="n", type=int, required=True,
                   help="images (scene), identities (faces), persons (multiview) or clips (clips) to generate")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--out", type=Path, required=True, help="output folder (a folder of the same dataset resumes)")
    p.add_argument("--mode", default="scene", help="scene (default), faces, multiview, clips or gestures (RGB-D hand "
                                                   "crops in one .npz: --out FILE.npz, --n identities)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (local) or CPUs (local Ray)")
    p.add_argument("--engine", default="local", help="local (process pool, default) or ray")
    p.add_argument("--ray-address", default=None, help="address of an existing Ray cluster (--engine ray)")
    p.add_argument("--backend", default="embedded",
                   help="simulator backend: embedded (default) or webots (faces and multiview modes only)")
    p.add_argument("--backgrounds", type=Path, default=None,
                   help="folder of photos (jpg/png, optional <photo>.json sidecars) to blend people onto")
    p.add_argument("--size", type=_args.size, default=None,
                   help="image size WxH (default 640x480; clips: 160x120 for actions, 224x224 for expressions "
                        "and gestures)")
    p.add_argument("--shard-size", type=int, default=None,
                   help="items per shard (default: 50 images, 8 identities, 4 persons, 8 clips)")
    p.add_argument("--format", dest="image_format", default="jpg", help="jpg (default) or png")
    g = p.add_argument_group("scene mode")
    g.add_argument("--humans", type=_args.ints(2, "--humans MIN,MAX"), default=(1, 6),
                   help="people per image MIN,MAX (default 1,6)")
    g.add_argument("--identities", type=int, default=None,
                   help="size of the identity pool (default 24; a worker holds about 8 MB per identity; "
                        "clips mode: default 12)")
    g.add_argument("--variants", type=int, default=3,
                   help="pose/expression variants per identity (default 3; about 13 MB each per worker)")
    g.add_argument("--distance", type=_args.floats(2, "--distance MIN,MAX"), default=(2.0, 14.0),
                   help="camera-to-person distance in metres MIN,MAX (default 2,14)")
    g.add_argument("--occlusion", type=float, default=0.3,
                   help="probability of putting a person right behind another, 0..1 (default 0.3)")
    g.add_argument("--camera-height", type=_args.floats(2, "--camera-height MIN,MAX"), default=(0.8, 3.0),
                   help="camera height in metres MIN,MAX (default 0.8,3)")
    g.add_argument("--camera-pitch", type=_args.floats(2, "--camera-pitch MIN,MAX"), default=(-20.0, 5.0),
                   help="camera pitch in degrees MIN,MAX, positive up (default -20,5)")
    g.add_argument("--hfov", type=_args.floats(2, "--hfov MIN,MAX"), default=(45.0, 75.0),
                   help="horizontal field of view in degrees MIN,MAX (default 45,75)")
    g.add_argument("--texture-size", type=int, default=1024,
                   help="avatar texture side as rendered: 256, 512, 1024 (default) or 2048")
    g.add_argument("--splits", type=_args.floats(3, "--splits TRAIN,VAL,TEST"), default=(0.8, 0.1, 0.1),
                   help="train,val,test fractions (default 0.8,0.1,0.1; clips mode: of the identity pool)")
    g.add_argument("--empty-fraction", type=float, default=0.0,
                   help="share of images with nobody in them (negatives), 0..1 (default 0)")
    g.add_argument("--distortion", default="0",
                   help="radial lens distortion K1[,K2] (Brown model on coordinates normalised by the focal "
                        "length; negative K1 = barrel, e.g. --distortion=-0.2,0.03; default 0 = pinhole)")
    g.add_argument("--randomise", action="store_true",
                   help="domain randomisation: close-ups and camera roll, light, skin and clothing colours, "
                        "procedural backgrounds, distractor shapes, blur, noise and JPEG quality, all from the seed "
                        "(ranges in docs/datasets.md; not with --backgrounds)")
    f = p.add_argument_group("faces mode")
    f.add_argument("--per-identity", type=int, default=20, help="crops per identity (default 20)")
    f.add_argument("--face-size", type=int, default=112, help="crop side in pixels (default 112)")
    c = p.add_argument_group("clips mode (also --identities and --splits)")
    c.add_argument("--labels", default="actions",
                   help="what the clips show and are labelled with: actions (default: every body action but "
                        "idle), expressions (the 7 basic ones) or gestures (the 16 hand gestures)")
    c.add_argument("--clip-seconds", type=float, default=2.0, help="clip length in seconds (default 2)")
    c.add_argument("--fps", type=float, default=15.0, help="frames per second (default 15)")
    c.add_argument("--style", default="posed",
                   help="expression clips: posed (default; CK+-like: neutral to an apex held to the end, frontal) "
                        "or wild (AFEW-like: blends, talking, head turns, small faces, varied light, a hand in "
                        "front of the face; see docs/datasets.md)")
    r = p.add_argument_group("gestures mode (--n identities, --splits of them, --seed, --workers, --out FILE.npz)")
    r.add_argument("--per-class", type=_args.ints(3, "--per-class TRAIN,VAL,TEST"), default=(8, 4, 6),
                   help="samples of each gesture per identity in train, val and test (default 8,4,6)")
    r.add_argument("--crop-size", type=int, default=112, help="hand crop side in pixels (default 112)")
    r.add_argument("--with-none", type=int, nargs="?", const=2, default=0, metavar="K",
                   help="add the class none (label 16): relaxed hands (hanging, raised, part-way to a gesture, in a "
                        "relaxed arm action), K times --per-class of them per identity (K default 2)")
    r.add_argument("--reuse", type=Path, default=None, metavar="FILE.npz",
                   help="with --with-none: take the gesture samples from this set of the same configuration "
                        "without none and render only the none samples (the result equals a full run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The :class:`~hcgym.synthesis.dataset.GenerateConfig` of parsed arguments (not yet validated)."""
    from hcgym.synthesis.dataset import FaceSettings, GenerateConfig, SceneSettings
    from hcgym.synthesis.dataset.config import CLIP_SIZES, ClipSettings

    clips = ClipSettings(labels=args.labels, seconds=args.clip_seconds, fps=args.fps,
                         identities=ClipSettings.identities if args.identities is None else args.identities,
                         splits=tuple(args.splits), style=args.style)
    size = args.size
    if size is None:
        size = CLIP_SIZES.get(args.labels, (160, 120)) if args.mode == "clips" else (640, 480)
    identities = args.identities if args.identities is not None and args.mode != "clips" else SceneSettings.identities
    scene = SceneSettings(humans=tuple(args.humans), identities=identities, variants=args.variants,
                          distance=tuple(args.distance), occlusion=args.occlusion,
                          camera_height=tuple(args.camera_height), camera_pitch=tuple(args.camera_pitch),
                          hfov=tuple(args.hfov), splits=tuple(args.splits), texture_size=args.texture_size,
                          empty_fraction=args.empty_fraction, distortion=parse_distortion(args.distortion),
                          randomise=args.randomise)
    return GenerateConfig(out=args.out, n=args.n, seed=args.seed, mode=args.mode, world=args.world,
                          size=tuple(size), shard_size=args.shard_size, image_format=args.image_format,
                          backgrounds=args.backgrounds, scene=scene, clips=clips,
                          faces=FaceSettings(per_identity=args.per_identity, size=args.face_size),
                          workers=args.workers, engine=args.engine, ray_address=args.ray_address,
                          backend=args.backend)


def parse_distortion(text: str) -> tuple[float, float]:
    """``"K1"`` or ``"K1,K2"`` -> ``(k1, k2)``; a :class:`~hcgym.errors.SpecError` (one line) otherwise."""
    import math

    from hcgym.errors import SpecError

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or not all(math.isfinite(v) for v in values):
        raise SpecError("--distortion", f"expected K1 or K1,K2 (numbers, negative K1 = barrel), got {text!r}")
    return (values[0], values[1] if len(values) == 2 else 0.0)


def run(args: argparse.Namespace) -> int:
    from hcgym.synthesis.dataset import generate

    if args.mode == "gestures":
        return run_gestures(args)
    config = config_from_args(args)
    result = generate(config, progress=not args.quiet)
    s = result.summary
    out = result.out
    if config.mode == "scene":
        splits = " / ".join(f"{k} {v['images']}" for k, v in s["splits"].items())
        print(f"wrote {out}: {s['images']} images ({splits}), {s['persons']} persons; annotations/train.json, "
              f"val.json, test.json, summary.json, histograms.png, preview.png")
    elif config.mode == "faces":
        print(f"wrote {out}: {s['images']} face crops of {s['identities']} identities in faces/, "
              f"{2 * s['pairs']['same']} pairs in pairs.csv, summary.json, preview.png")
    elif config.mode == "clips":
        splits = " / ".join(f"{k} {v['clips']}" for k, v in s["splits"].items())
        print(f"wrote {out}: {s['clips']} clips ({splits}) of {len(s['per_label'])} {s['labels']} in clips/, "
              f"index.json, summary.json, preview.png")
    else:
        print(f"wrote {out}: {s['images']} images of {s['persons']} persons in multiview/, index.json, "
              f"summary.json, preview.png")
    if result.rendered:
        unit = {"scene": "img", "faces": "identities", "multiview": "persons", "clips": "clips"}[config.mode]
        per_worker = result.rate / max(1, min(config.workers, config.shard_count))
        print(f"rendered {result.rendered} {'images' if unit == 'img' else unit} in {result.seconds:.1f} s: "
              f"{result.rate:.2f} {unit}/s ({per_worker:.2f} per worker, {config.workers} worker(s), "
              f"engine {config.engine})")
    else:
        print("nothing left to render: the dataset was already complete (final files rewritten)")
    return 0


def run_gestures(args: argparse.Namespace) -> int:
    """``--mode gestures``: the set of :func:`hcgym.synthesis.gesture_data.generate_gestures`, its contact sheet
    ``<out stem>_sheet.png`` beside it."""
    from hcgym.synthesis.dataset.report import write_png
    from hcgym.synthesis.gesture_data import GestureSetConfig, contact_sheet, generate_gestures

    cfg = GestureSetConfig(out=args.out, seed=args.seed, identities=args.n, splits=tuple(args.splits),
                           per_class=tuple(args.per_class), size=args.crop_size, workers=args.workers,
                           none=args.with_none)
    data = generate_gestures(cfg, progress=not args.quiet, reuse=args.reuse)
    sheet = args.out.with_name(args.out.stem + "_sheet.png")
    write_png(sheet, contact_sheet(data))
    m = data.metadata
    splits = " / ".join(f"{k} {v['samples']}" for k, v in m["splits"].items())
    rule = m["rule_agreement"]
    print(f"wrote {args.out}: {m['samples']} samples ({splits}) of {len(data.labels)} classes, {sheet.name}; "
          f"render {m['ms_per_sample']['median']} ms/sample (median); rule classifier on the ground truth agrees "
          f"with {rule['agree']}/{rule['total']} labels")
    return 0
