"""How well a face recognizer tells hcgym avatars apart.

Protocol: ``n`` random avatars; the gallery is one frontal render of each at
1 m; each query is a second render of the same avatar under another light,
from +-10 degrees of yaw, with a mild expression. Embeddings are dlib's 128-d
ResNet on dlib HOG detections (end to end), matched by nearest neighbour in a
:class:`~hcgym.perception.face.gallery.Gallery`. Reports rank-1 identification,
the genuine and impostor distance distributions and the distance threshold
at a 1% false-accept rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Mild expressions used for the queries (name, intensity).
QUERY_EXPRESSIONS = (("happy", 0.4), ("surprise", 0.3), ("sad", 0.4), ("neutral", 0.0))


@dataclass
class IdentityResult:
    n: int
    rank1: float  #: fraction of queries whose nearest gallery embedding is the right avatar.
    detected: float  #: fraction of gallery + query renders in which dlib HOG found the face.
    genuine: np.ndarray  #: query-to-own-gallery distances.
    impostor: np.ndarray  #: query-to-other-gallery distances.
    threshold_far1: float  #: distance threshold with a 1% false-accept rate on the impostor pairs.
    tar_at_far1: float  #: fraction of genuine pairs accepted at that threshold.
    misses: list[int] = field(default_factory=list)  #: query indices not identified at rank 1.

    def summary(self) -> dict:
        return {"avatars": self.n, "rank1": round(self.rank1, 4), "detected": round(self.detected, 4),
                "genuine_mean": round(float(self.genuine.mean()), 4), "genuine_max": round(float(self.genuine.max()), 4),
                "impostor_mean": round(float(self.impostor.mean()), 4),
                "impostor_min": round(float(self.impostor.min()), 4),
                "impostor_below_0.6": round(float((self.impostor < 0.6).mean()), 4),
                "rank1_of_detected": round(self.rank1 * self.n / max(len(self.genuine), 1), 4),
                "threshold_far1": round(self.threshold_far1, 4), "tar_at_far1": round(self.tar_at_far1, 4)}


def _embed_rendered(sim, avatars, poses, width: int, height: int, recognizer: str = "face/dlib"):
    from hcgym.geometry import box_iou
    from hcgym.perception.face import dlib_models
    from hcgym.synthesis.studio import show_only
    from hcgym.types import Detections

    sensor = None
    if recognizer != "face/dlib":
        import hcgym.perception as hp

        sensor = hp.make(recognizer)

    out = []
    for i, pose in enumerate(poses):
        show_only(sim, i)
        frame = sim.render(pose=pose)
        boxes, _ = dlib_models.detect_hog(frame.rgb, 1)
        gt = frame.humans[i].face_box
        best = max(range(len(boxes)), key=lambda k: box_iou(gt, boxes[k]), default=None)
        if best is None or box_iou(gt, boxes[best]) < 0.3:
            out.append(None)
        elif sensor is None:
            out.append(dlib_models.embed(frame.rgb, boxes[best]))
        else:
            v = sensor(frame, Detections(boxes[best:best + 1], np.ones(1))).vectors[0]
            out.append(v / max(float(np.linalg.norm(v)), 1e-12))  # compared on the unit sphere
    return out


def run_identity_study(n: int = 20, seed: int = 5000, width: int = 400, height: int = 300,
                       progress: bool = False, recognizer: str = "face/dlib") -> IdentityResult:
    """Run the protocol on avatars ``AvatarSpec.random(seed + i)``, ``i < n``.

    ``recognizer`` is a registered embedding sensor; embeddings other than dlib's are L2-normalised.
    """
    from hcgym.envs.backends import make_backend
    from hcgym.perception.face.gallery import Gallery
    from hcgym.synthesis.avatar_spec import AvatarSpec
    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.studio import portrait_pose
    from hcgym.worlds.spec import CameraSpec
    from hcgym.worlds.studio import studio_world

    rng = np.random.default_rng(seed)
    gallery_specs = [AvatarSpec.random(seed + i) for i in range(n)]
    query_specs, yaws = [], []
    for i, s in enumerate(gallery_specs):
        name, k = QUERY_EXPRESSIONS[i % len(QUERY_EXPRESSIONS)]
        query_specs.append(s.with_(expression=name, expression_intensity=k))
        yaws.append(float(rng.choice([-10.0, 10.0])))
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="avatars", unit="avatar")
    for i in it:
        build_avatar(gallery_specs[i])
        build_avatar(query_specs[i])
    with make_backend("embedded") as sim:
        sim.load(studio_world(gallery_specs, cameras=(CameraSpec("cam", width, height),)))
        poses = [portrait_pose(h.avatar, 1.0) for h in sim.humans]
        gallery = _embed_rendered(sim, sim.humans, poses, width, height, recognizer)
    with make_backend("embedded") as sim:  # other light: from the other side, warmer, less ambient
        sim.load(studio_world(query_specs, cameras=(CameraSpec("cam", width, height),), light=(0.5, 0.5, -0.7),
                              light_color=(1.0, 0.9, 0.78), ambient=0.38))
        poses = [portrait_pose(h.avatar, 1.0, yaws[i]) for i, h in enumerate(sim.humans)]
        queries = _embed_rendered(sim, sim.humans, poses, width, height, recognizer)
    ok_g = [g is not None for g in gallery]
    ok_q = [q is not None for q in queries]
    detected = (sum(ok_g) + sum(ok_q)) / (2 * n)
    g_idx = [i for i in range(n) if ok_g[i]]
    enrolled = Gallery(cutoff=float("inf"), recognizer=recognizer)  # identification only: no "unknown"
    for i in g_idx:
        enrolled.enroll(str(i), gallery[i])
    correct, genuine, impostor, misses = 0, [], [], []
    for i, q in enumerate(queries):
        if q is None or not g_idx:
            misses.append(i)
            continue
        if enrolled.identify(q).label == str(i):
            correct += 1
        else:
            misses.append(i)
        d = enrolled.distances(q)  # one per enrolled avatar, in the order of g_idx
        for j, gi in enumerate(g_idx):
            (genuine if gi == i else impostor).append(float(d[j]))
    genuine_a, impostor_a = np.asarray(genuine), np.asarray(impostor)
    thr = float(np.quantile(impostor_a, 0.01)) if impostor_a.size else float("nan")
    tar = float((genuine_a < thr).mean()) if genuine_a.size else 0.0
    return IdentityResult(n=n, rank1=correct / n, detected=detected, genuine=genuine_a, impostor=impostor_a,
                          threshold_far1=thr, tar_at_far1=tar, misses=misses)


def plot_distances(result: IdentityResult, path: Path) -> Path:
    """Histogram of genuine vs impostor distances with the 1% FAR threshold and dlib's usual 0.6."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    bins = np.linspace(0, 1.0, 51)
    ax.hist(result.impostor, bins=bins, alpha=0.6, density=True, label=f"impostor pairs ({result.impostor.size})")
    ax.hist(result.genuine, bins=bins, alpha=0.7, density=True, label=f"genuine pairs ({result.genuine.size})")
    ax.axvline(result.threshold_far1, color="k", ls="--", label=f"FAR 1% threshold {result.threshold_far1:.3f}")
    ax.axvline(0.6, color="r", ls=":", label="dlib's usual 0.6")
    ax.set_xlabel("dlib 128-d embedding distance")
    ax.set_ylabel("density")
    ax.set_title(f"{result.n} avatars: rank-1 {100 * result.rank1:.1f}%, TAR@FAR1% {100 * result.tar_at_far1:.1f}%")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
