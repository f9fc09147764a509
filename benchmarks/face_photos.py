"""Every registered face detector on real photos, and per 400x300 avatar frame.

Prints the Markdown table of docs/face.md ("Detectors on real photos"): faces found of six in the
insightface package's group photo, false faces there and in scikit-image's one-person portrait, ms per
call; then ms per 400x300 frame of rendered avatars at 1 m (the envs' frames), with each detector's ratio
to ``face/mediapipe-full`` measured in this run.

    python benchmarks/face_photos.py [--frames 5]
"""

from __future__ import annotations

import argparse
import time


def _avatar_frames(n: int) -> list:
    from hcgym.envs.backends import make_backend
    from hcgym.synthesis import AvatarSpec
    from hcgym.synthesis.studio import portrait_pose, show_only
    from hcgym.worlds.studio import studio_world

    with make_backend("embedded") as sim:
        sim.load(studio_world([AvatarSpec.random(s) for s in range(7000, 7000 + n)]))
        frames = []
        for i, h in enumerate(sim.humans):
            show_only(sim, i)
            frames.append(sim.render(pose=portrait_pose(h.avatar, 1.0)).rgb)
    return frames


def main() -> None:
    import hcgym.perception as hp
    from hcgym.perception.face.real_photos import detector_table, markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5, help="avatar frames timed per detector")
    args = parser.parse_args()
    rows = detector_table()
    print(markdown(rows))
    frames = _avatar_frames(args.frames)
    ms = {}
    for row in rows:
        det = hp.make(row.detector)
        det(frames[0])
        t0 = time.perf_counter()
        for f in frames:
            det(f)
        ms[row.detector] = (time.perf_counter() - t0) * 1e3 / len(frames)
    print(f"\nms per 400x300 avatar frame ({len(frames)} frames), ratio to face/mediapipe-full:")
    for sid, t in ms.items():
        print(f"  {sid:22s} {t:8.1f} ms  x{t / ms['face/mediapipe-full']:.2f}")


if __name__ == "__main__":
    main()
