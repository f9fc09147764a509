"""The live sensor action/costgcn against the clip model, on generated action clips it has never seen.

Generates ``--n`` action clips (3.2 s at 12.5 fps, 160x120, held-out seed), prepares their MediaPipe skeleton
cache (``hcgym.synthesis.action_data.prepare``, per-clip normalisation) and, for each shipped GCN checkpoint
(ST-GCN on MediaPipe skeletons, the sensor's default; ST-GCN, its "*" variant and AGCN on true skeletons), compares

* the clip model on the cached MediaPipe skeletons of the whole clip (what ``hcgym train action`` scores), with
* the sensor stepped through the clip's video frame by frame (MediaPipe, lift, causal normalisation, the
  continual model), its last answer;

printing the accuracy of each, how often their labels agree and the largest score difference (the causal
normalisation's share of it).

    python benchmarks/action_sensor_clips.py [--n 48] [--seed 11] [--out /tmp/action-sensor-clips]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48, help="clips to generate")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", type=Path, default=Path("/tmp/action-sensor-clips"))
    args = ap.parse_args()

    import numpy as np
    import torch

    import hcgym.perception as hp
    from hcgym.perception.action.sensors import MODELS
    from hcgym.perception.action.training import load_model
    from hcgym.synthesis.action_data import ActionData, prepare
    from hcgym.synthesis.dataset import GenerateConfig, generate
    from hcgym.synthesis.dataset.config import ClipSettings
    from hcgym.types import CameraIntrinsics
    from hcgym.video import read_video

    torch.set_num_threads(1)
    clips, cache = args.out / "clips", args.out / "mediapipe.npz"
    if not (clips / "index.json").is_file():
        settings = ClipSettings(labels="actions", seconds=3.2, fps=12.5, identities=6, splits=(0.0, 0.0, 1.0))
        generate(GenerateConfig(out=clips, n=args.n, seed=args.seed, mode="clips", size=(160, 120), shard_size=8,
                                clips=settings), progress=True)
    if not cache.is_file():
        prepare(clips, cache, size=32, skeleton_source=("mediapipe",))
    data = ActionData.load(cache)
    index = json.loads((clips / "index.json").read_text())
    print(f"{len(index['clips'])} clips of {index['frames']} frames (seed {args.seed})")
    print("| checkpoint | clip model, cached MediaPipe skeletons | sensor, frame by frame | same label | "
          "max score difference (median) |")
    print("|---|---|---|---|---|")
    for name in ("action_stgcn_mediapipe.pt", "action_stgcn.pt", "action_stgcn_star.pt", "action_agcn.pt"):
        model, meta = load_model(MODELS / name)
        sensor = hp.make("action/costgcn", checkpoint=name)
        clip_ok = sensor_ok = agree = 0
        diffs = []
        for i, entry in enumerate(index["clips"]):
            cam = json.loads((clips / entry["annotation"]).read_text())["camera"]
            intrinsics = CameraIntrinsics(index["width"], index["height"], cam["fx"], cam["fy"], cam["cx"], cam["cy"])
            sensor.reset()
            for image in read_video(clips / entry["video"]):
                out = sensor.process(image, intrinsics=intrinsics)
            with torch.no_grad():
                ref = torch.softmax(model(torch.from_numpy(data.gcn([i], source="mediapipe"))), 1)[0].numpy()
            truth = data.label_names[int(data.arrays["label"][i])]
            clip_label = meta["labels"][int(ref.argmax())]
            live = out.labels[0] if len(out) else None
            clip_ok += clip_label == truth
            sensor_ok += live == truth
            agree += live == clip_label
            if len(out):
                diffs.append(float(np.abs(out.scores[0] - ref).max()))
        sensor.close()
        n = len(index["clips"])
        print(f"| `{name}` | {clip_ok}/{n} | {sensor_ok}/{n} | {agree}/{n} | "
              f"{max(diffs):.3f} ({float(np.median(diffs)):.3f}) |", flush=True)


if __name__ == "__main__":
    main()
