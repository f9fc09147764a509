"""Face detectors on real photos that installed packages ship (no downloads).

* the group photo: ``insightface/data/images/t1.jpg`` (1280x886, six people; read from the byte-identical copy
  in the real-image test set, :mod:`hcgym.perception.real_images`, whose labels hold its face boxes), with the
  centres of the six faces, checked by hand (:data:`GROUP_FACE_CENTRES`);
* the one-person portrait: scikit-image's ``astronaut`` (512x512, Eileen Collins).

:func:`score` counts the faces found (a box holds the face's centre) and the false faces (boxes holding no
face centre); :func:`detector_table` measures every
registered face detector on both photos (``benchmarks/face_photos.py`` prints it for docs/face.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

#: (x, y) pixel centres of the six faces in the group photo, left to right.
GROUP_FACE_CENTRES = np.array([(110, 322), (312, 206), (504, 343), (777, 414), (961, 126), (1169, 333)],
                              dtype=np.float64)


def group_photo() -> np.ndarray:
    """The insightface package's sample group photo ``t1.jpg``: (886, 1280, 3) uint8 RGB."""
    from hcgym.perception import real_images
    from hcgym.perception.bench_source import read_rgb

    return read_rgb(real_images.IMAGES / "t1.jpg")


def portrait_photo() -> np.ndarray:
    """scikit-image's ``astronaut`` (shipped in its wheel): (512, 512, 3) uint8 RGB, one face."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def score(boxes: np.ndarray, centres: np.ndarray) -> tuple[int, int]:
    """(faces found, false faces): faces whose centre lies in some box, and boxes holding no centre."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    inside = ((boxes[:, None, 0] <= centres[None, :, 0]) & (centres[None, :, 0] <= boxes[:, None, 2])
              & (boxes[:, None, 1] <= centres[None, :, 1]) & (centres[None, :, 1] <= boxes[:, None, 3]))
    return int(inside.any(axis=0).sum()), int((~inside.any(axis=1)).sum())


@dataclass(frozen=True)
class PhotoResult:
    """One detector on the two photos: faces found of six and false faces in the group photo, the portrait's
    face found (0/1) and false faces there, and milliseconds per call on each photo."""

    detector: str
    found: int
    group_false: int
    portrait_found: int
    portrait_false: int
    group_ms: float
    portrait_ms: float


#: The portrait's face centre (pixels).
PORTRAIT_FACE_CENTRE = np.array([[221.0, 121.0]])


def run_detector(detector, group: np.ndarray, portrait: np.ndarray, name: str) -> PhotoResult:
    """Score one detector (a callable on an RGB image returning ``Detections``), timed after one warm-up call."""
    detector(portrait)
    t0 = time.perf_counter()
    g = detector(group)
    t1 = time.perf_counter()
    p = detector(portrait)
    t2 = time.perf_counter()
    return PhotoResult(name, *score(g.boxes, GROUP_FACE_CENTRES), *score(p.boxes, PORTRAIT_FACE_CENTRE),
                       (t1 - t0) * 1e3, (t2 - t1) * 1e3)


def detector_table(ids: list[str] | None = None) -> list[PhotoResult]:
    """Every registered face detector that needs no user file (or ``ids``) on the two photos."""
    import hcgym.perception as hp
    from hcgym.perception.registry import specs

    if ids is None:
        ids = [s.id for s in specs("face/") if s.kind == "face detector" and s.id != "face/retinaface"]
    group, portrait = group_photo(), portrait_photo()
    return [run_detector(hp.make(i), group, portrait, i) for i in ids]


def markdown(rows: list[PhotoResult]) -> str:
    """The rows as a Markdown table."""
    lines = ["| detector | group photo: faces found (of 6) | false faces | ms | portrait: face found | false faces "
             "| ms |", "|---|---|---|---|---|---|---|"]
    lines += [f"| `{r.detector}` | {r.found} | {r.group_false} | {r.group_ms:.0f} | {r.portrait_found} "
              f"| {r.portrait_false} | {r.portrait_ms:.0f} |" for r in rows]
    return "\n".join(lines)
