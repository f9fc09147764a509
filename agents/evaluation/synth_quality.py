"""View-synthesis quality: synthesised views against the true views at the same pose (synth-view protocol).

For every image and camera offset whose target view exists in a multi-view set: SSIM on the face region (the
ground-truth face box of the target view) and the dlib embedding distance between the synthesised view and the
true target view, beside the same numbers for the unrotated source image; and milliseconds per synthesised view.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) of two RGB or grey images."""
    import cv2

    def grey(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        return x @ np.array([0.299, 0.587, 0.114]) if x.ndim == 3 else x

    x, y = grey(a), grey(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def _crop(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    x0, y0 = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    x1, y1 = min(int(math.ceil(box[2])), w), min(int(math.ceil(box[3])), h)
    return img[y0:y1, x0:x1]


def synthesis_quality(data, pipeline, offsets=(-30, -15, 15, 30), axis: str = "pan", progress: bool = False,
                      examples: int = 0) -> dict[str, Any]:
    """SSIM and dlib distances of synthesised vs true views (and of the unrotated source vs true), per offset.

    Args:
        data: a :class:`~hcgym.synthesis.multiview.MultiViewSet` (with ``boxes``: face boxes of every view;
            without them, the detector's box on the true view is used).
        pipeline: a :class:`~hcgym.perception.face.pipeline.FacePipeline` (its cache is shared).
        offsets: camera moves in degrees along ``axis``.
        examples: keep this many (source, synthesised, true) triples per offset, for figures.
    """
    from hcgym.synthesis.views import face_landmarks, synthesize_view

    recs: dict[int, dict[str, list]] = {o: {"ssim_synth": [], "ssim_source": [], "d_synth": [], "d_source": [],
                                            "no_face": 0, "no_mesh": 0, "n": 0, "examples": []} for o in offsets}
    ms: list[float] = []
    grid = data.pans if axis == "pan" else data.tilts
    jobs = []
    for p in range(len(data.persons)):
        for s in range(data.n_series):
            for i, pan in enumerate(data.pans):
                for j, tilt in enumerate(data.tilts):
                    if data.present[p, s, i, j]:
                        jobs.append((p, s, pan, tilt))
    it = jobs
    if progress:
        from tqdm import tqdm

        it = tqdm(jobs, desc="synthesis quality", unit="image")
    for p, s, pan, tilt in it:
        src = data.image(p, s, pan, tilt)
        targets = []
        for o in offsets:
            tp, tt = (pan + o, tilt) if axis == "pan" else (pan, tilt + o)
            if (tp if axis == "pan" else tt) in grid and data.present[(p, s, *data.index(tp, tt))]:
                targets.append((o, tp, tt))
        if not targets:
            continue
        t0 = time.perf_counter()
        lm = face_landmarks(src)
        fit_ms = 1000 * (time.perf_counter() - t0)
        v_src, _ = pipeline.embed(src)
        for o, tp, tt in targets:
            r = recs[o]
            r["n"] += 1
            if lm is None:
                r["no_mesh"] += 1
                continue
            t0 = time.perf_counter()
            view = synthesize_view(src, o if axis == "pan" else 0.0, o if axis == "tilt" else 0.0, lm)
            ms.append(1000 * (time.perf_counter() - t0) + fit_ms / len(targets))
            true = data.image(p, s, tp, tt)
            box = data.box(p, s, tp, tt)
            if box is None:
                _, box = pipeline.embed(true)
            if box is not None:
                r["ssim_synth"].append(ssim(_crop(view.image, box), _crop(true, box)))
                r["ssim_source"].append(ssim(_crop(src, box), _crop(true, box)))
            v_true, _ = pipeline.embed(true)
            v_syn, _ = pipeline.embed(view.image)
            if v_true is None or v_syn is None or v_src is None:
                r["no_face"] += 1
            else:
                r["d_synth"].append(float(np.linalg.norm(v_syn - v_true)))
                r["d_source"].append(float(np.linalg.norm(v_src - v_true)))
            if len(r["examples"]) < examples and tilt == 0:
                r["examples"].append((src, view, true, (p, s, pan, tilt)))
    out: dict[str, Any] = {"offsets": {}, "ms_per_view": {"median": float(np.median(ms)) if ms else float("nan"),
                                                          "mean": float(np.mean(ms)) if ms else float("nan"),
                                                          "n": len(ms)}}
    for o, r in recs.items():
        d_s, d_0 = np.asarray(r["d_synth"]), np.asarray(r["d_source"])
        out["offsets"][str(o)] = {
            "pairs": r["n"], "no_mesh": r["no_mesh"], "no_face": r["no_face"],
            "ssim_synth": _mean(r["ssim_synth"]), "ssim_source": _mean(r["ssim_source"]),
            "dlib_synth_vs_true": _mean(d_s), "dlib_source_vs_true": _mean(d_0),
            "synth_closer_fraction": float((d_s < d_0).mean()) if len(d_s) else float("nan"),
            "pairs_with_faces": int(len(d_s)),
        }
    out["examples"] = {str(o): r["examples"] for o, r in recs.items()}
    return out


def _mean(v) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()) if v.size else float("nan")

