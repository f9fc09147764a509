"""Facial expression data from the clip generator: one compressed ``.npz`` cache of face landmark sequences
(dlib, MediaPipe Face Mesh and the ground truth) for the landmark models of :mod:`hcgym.perception.expression`.

:func:`prepare` reads a ``hcgym generate --mode clips --labels expressions`` folder (either ``--style``;
layout in :mod:`hcgym.synthesis.dataset.clips`, styles in :mod:`hcgym.synthesis.dataset.expression_clips`)
and runs, on every frame of every clip:

* **dlib** as the seed does: the HOG detector (upsample 1) on the frames until it finds a face (the
  highest-scoring one, above a detection threshold of -0.8 rather than dlib's 0: on the posed renders the
  default finds a face in 51 % of frames, -0.8 in 98 %, and the best box was the face every time), then
  *tracking*: the next frame's box comes from the previous frame's landmarks (the box of the last detection,
  kept in the frame of the eye centres: moved with their midpoint, scaled with their distance). When the
  landmarks collapse (their extent shrinks below a quarter of the box or changes its area by more than
  x1.5 squared from one frame to the next) or leave the image (more than a quarter of them outside), the
  frame is detected afresh; so is every :data:`REDETECT`-th frame, and a face found there replaces the
  tracked box (on 60 posed clips, tracking alone drifted: 7.6 % of the found frames ended more than 0.3
  inter-ocular distances off the truth; with the refresh 2.2 %, the detector running on 20 % of the frames;
  the detector on every frame, 0.5 %, costs 3x the time). The
  ``shape_predictor_68_face_landmarks`` points minus the 17 jaw points give 51 (the seed's input).
* **MediaPipe Face Mesh** (``static_image_mode``, refined: 478 points, one face) on each frame on its own.
* the **ground truth**: the clip's projected ``face68`` minus the jaw, and its depth-test visibility.

For N clips of T frames it writes:

=================  =====================  ===========================================================
key                shape, dtype           content
=================  =====================  ===========================================================
``dlib51``         (N, T, 51, 2) f32      dlib landmarks without the jaw, frame pixels (zeros: not found)
``dlib_found``     (N, T) bool            dlib gave landmarks in the frame (detected or tracked)
``mesh``           (N, T, 478, 2) f16     MediaPipe Face Mesh x, y in frame pixels (zeros: not found)
``mesh_found``     (N, T) bool            MediaPipe found a face
``truth51``        (N, T, 51, 2) f32      projected ground-truth landmarks (dlib layout minus the jaw), px
``truth_hidden``   (N, T) f32             share of the 51 truth points hidden (depth test: a hand in front,
                                          the far side of a turned face) or outside the image
``frame_label``    (N, T) i64             per-frame dominant expression id (position in ``labels``)
``label``          (N,) i64               the clip's expression id (the dominant one of a blend)
``label2``         (N,) i64               the blended second expression's id, -1 without a blend
``blend_weight``   (N,) f32               second intensity / first intensity (0 without a blend)
``intensity``      (N,) f32               apex intensity of the clip's expression (0 for neutral)
``talking``        (N,) bool              the person talks during part of the clip
``occluded``       (N,) bool              a hand is raised in front of part of the face
``identity``       (N,) i64               identity id of the clip's person
``split``          (N,) str               ``train`` / ``val`` / ``test`` (by identity, from the generator)
``fold``           (N,) i64               10 identity-wise folds (:func:`identity_folds`)
``apex``           (N, 3) i64             the three apex frames (CK+ protocol: frame 0 and these)
``clip``           (N,) str               the clip's video, relative to the clips folder
``labels``         (7,) str               expression names (:data:`hcgym.synthesis.expressions.EXPRESSIONS`)
``style``          () str                 ``posed`` or ``wild``
``metadata``       () str                 JSON: the generator's dataset key, the clips' fps, length and
                                          size, the detectors' settings
=================  =====================  ===========================================================

The cache is written atomically; while it is being prepared, finished chunks of clips are kept beside it
(``<out>.parts/``), so an interrupted run resumes where it stopped.

:class:`ExpressionData` turns the cache into model inputs: :meth:`ExpressionData.sequences` gives
(N, T', V, 2) float32 landmark sequences of a source (``dlib``, ``mesh51``: the 51 Face Mesh vertices that
match dlib's points, :data:`MESH51`; ``mesh``: a denser subset, :data:`MESH_DENSE`; ``truth``) for a
protocol (``ck``: frame 0 and the three apex frames; ``afew``: every frame). Frames where the detector
found nothing carry the last found frame forward (the first found one before it); clips where it never
found a face are zeros and flagged by :meth:`ExpressionData.never_found`, never dropped.

Example::

    hcgym generate --mode clips --labels expressions --style posed --n 560 --identities 80 \\
        --clip-seconds 2 --fps 10 --workers 2 --out /tmp/expr/posed/clips

    >>> from hcgym.synthesis.expression_data import ExpressionData, prepare
    >>> prepare("/tmp/expr/posed/clips", "/tmp/expr/posed.npz", workers=2)
    >>> data = ExpressionData.load("/tmp/expr/posed.npz")
    >>> x = data.sequences("mesh51", "ck")           # (N, 4, 51, 2) float32 pixels
    >>> train, test = data.fold_indices(0)           # identity-wise 10-fold cross-validation
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hcgym.errors import SpecError

__all__ = ["FOLDS", "FORMAT", "JAW", "MESH51", "MESH_DENSE", "PROTOCOLS", "REDETECT", "SOURCES", "ExpressionData",
           "PrepareSettings", "dlib_track", "fill_missing", "fit_mesh51", "identity_folds", "load", "mesh_track",
           "parts_dir", "prepare", "prepare_clip", "read_index"]

#: Format tag stored in the cache's metadata.
FORMAT = "hcgym-expression-data-1"
#: Landmark sources of :meth:`ExpressionData.sequences`.
SOURCES = ("dlib", "mesh51", "mesh", "truth")
#: Frame protocols: ``ck`` (CK+/Oulu-CASIA: frame 0 and the three apex frames) and ``afew`` (the whole clip).
PROTOCOLS = ("ck", "afew")
#: dlib's first 17 points (the jaw line) are dropped, as in the seed: 51 points remain.
JAW = 17
#: Identity-wise cross-validation folds.
FOLDS = 10
#: Frames between two HOG detections while dlib tracks a face (:func:`dlib_track`).
REDETECT = 5

#: For each of dlib's 51 points (68 minus the jaw, in dlib order: brows 17-26, nose 27-35, eyes 36-47,
#: mouth 48-67), the MediaPipe Face Mesh vertex that matches it. Fitted on ground-truth renders with
#: :func:`fit_mesh51`: for every frame where Face Mesh found the face, the pixel distance from each of the
#: 468 surface vertices to each projected truth point, divided by the frame's inter-ocular distance; the
#: vertex with the smallest median over frames wins. Fitting set (22400 frames): the posed expression clips of
#: ``hcgym generate --mode clips --labels expressions --style posed --n 1120 --seed 0 --identities 80
#: --clip-seconds 2 --fps 10``, prepared with :func:`prepare`.
MESH51 = np.array([
    46, 224, 27, 221, 193, 417, 441, 257, 444, 276,  # brows
    6, 197, 5, 1, 75, 97, 164, 326, 460,  # nose
    7, 159, 158, 133, 153, 144, 382, 385, 387, 263, 373, 380,  # eyes
    76, 39, 37, 11, 267, 269, 291, 405, 314, 17, 84, 181, 96, 82, 13, 312, 325, 317, 14, 87,  # mouth
], dtype=np.int64)

#: A denser Face Mesh subset (145 vertices): lips (40), eyes (32), brows (20) and nose (24) as MediaPipe's
#: ``FACEMESH_*`` connection sets list them, 14 cheek, 6 forehead and 7 chin vertices (the parts that
#: cheekSquint, browInnerUp and jawOpen move) and the two iris centres.
MESH_DENSE = np.array([
    # lips
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269, 270,
    291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415,
    # left eye, right eye
    249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466,
    7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246,
    # left brow, right brow
    276, 282, 283, 285, 293, 295, 296, 300, 334, 336, 46, 52, 53, 55, 63, 65, 66, 70, 105, 107,
    # nose
    1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440,
    # cheeks, forehead, chin, iris centres
    50, 280, 101, 330, 117, 346, 118, 347, 205, 425, 187, 411, 36, 266, 9, 151, 108, 337, 69, 299,
    152, 148, 377, 176, 400, 149, 378, 468, 473,
], dtype=np.int64)


# ----------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class PrepareSettings:
    """What :func:`prepare` runs on every frame (stored in the metadata)."""

    dlib_upsample: int = 1
    dlib_threshold: float = -0.8
    dlib_redetect: int = REDETECT
    dlib_tracking: bool = True
    mesh_static: bool = True
    mesh_refine: bool = True
    mesh_min_confidence: float = 0.5


def read_index(clips_dir: str | Path) -> dict[str, Any]:
    """``index.json`` of an expression clips folder, checked: a :class:`SpecError` if it is not one."""
    from hcgym.synthesis.dataset.clips import INDEX_FORMAT

    root = Path(clips_dir)
    if not root.is_dir():
        raise SpecError("clips_dir", f"no such folder: {root}")
    try:
        index = json.loads((root / "index.json").read_text())
    except (OSError, ValueError):
        index = None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or index.get("labels") != "expressions":
        raise SpecError("clips_dir", f"{root} is not an expression clips dataset (no index.json of format "
                                     f"{INDEX_FORMAT} with labels 'expressions'; make one with hcgym generate "
                                     "--mode clips --labels expressions)")
    missing = [f for e in index.get("clips") or [] for f in (e["video"], e["annotation"]) if not (root / f).is_file()]
    if not index.get("clips") or missing:
        raise SpecError("clips_dir", f"{root} holds no clips" if not index.get("clips") else
                        f"{root} is incomplete: {missing[0]} is missing")
    return index


def _check_out(out_npz: str | Path, workers: Any) -> Path:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise SpecError("workers", f"expected a positive integer, got {workers!r}")
    out = Path(out_npz)
    if out.suffix != ".npz":
        raise SpecError("out_npz", f"expected a .npz file name, got {out}")
    if out.is_dir():
        raise SpecError("out_npz", f"{out} is a folder")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise SpecError("out_npz", f"{parent} is not a folder")
    return out


# ----------------------------------------------------------------------------- detectors on one clip
def _extent(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _eye_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Midpoint of the two eye centres of dlib's 68 landmarks and their distance (pixels)."""
    left, right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    return np.concatenate([(left + right) / 2] * 2), max(float(np.linalg.norm(right - left)), 1.0)


def _eye_box(points: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The box ``anchor`` (a box in units of the eye distance from the eyes' midpoint) placed on ``points``."""
    centre, dist = _eye_frame(points)
    return centre + anchor * dist


def _eye_anchor(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``box`` in the eye frame of ``points`` (what :func:`_eye_box` turns back into a box)."""
    centre, dist = _eye_frame(points)
    return (np.asarray(box, np.float64) - centre) / dist


def _lost(points: np.ndarray, box: np.ndarray, previous: np.ndarray | None, shape: tuple[int, ...]) -> bool:
    """Whether dlib's landmarks collapsed or left the image (see the module docstring)."""
    h, w = shape[:2]
    x0, y0, x1, y1 = _extent(points)
    bw = max(float(box[2] - box[0]), 1.0)
    if min(x1 - x0, y1 - y0) < 0.25 * bw:
        return True
    outside = (points[:, 0] < 0) | (points[:, 0] >= w) | (points[:, 1] < 0) | (points[:, 1] >= h)
    if outside.mean() > 0.25:
        return True
    if previous is not None:
        px0, py0, px1, py1 = _extent(previous)
        ratio = ((x1 - x0) * (y1 - y0)) / max((px1 - px0) * (py1 - py0), 1.0)
        if not 1 / 1.5 ** 2 <= ratio <= 1.5 ** 2:
            return True
    return False


def _best_face(image: np.ndarray, upsample: int, threshold: float) -> np.ndarray | None:
    """The highest-scoring dlib HOG face box ``[x0, y0, x1, y1]`` above ``threshold``, or ``None``."""
    from hcgym.perception.face.dlib_models import load

    dets, scores, _ = load("hog").run(np.ascontiguousarray(image), int(upsample), float(threshold))
    if not len(dets):
        return None
    d = dets[int(np.argmax(scores))]
    return np.array([d.left(), d.top(), d.right() + 1, d.bottom() + 1], dtype=np.float64)


def dlib_track(frames: np.ndarray, upsample: int = 1, threshold: float = -0.8,
               redetect: int = REDETECT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dlib on a clip's (T, H, W, 3) uint8 RGB frames: (T, 68, 2) landmarks in pixels (zeros where none), (T,)
    found flags and (T,) flags of the frames where the HOG detector ran (see the module docstring; ``redetect``:
    frames between two detections while tracking)."""
    from hcgym.perception.face.dlib_models import landmarks68

    t = len(frames)
    points = np.zeros((t, 68, 2))
    found = np.zeros(t, dtype=bool)
    detected = np.zeros(t, dtype=bool)
    box: np.ndarray | None = None
    anchor = np.zeros(4)
    previous: np.ndarray | None = None
    since = 0

    def detect(image: np.ndarray) -> np.ndarray | None:
        nonlocal anchor, since
        detected[k], since = True, 0
        face = _best_face(image, upsample, threshold)
        if face is None:
            return None
        lm = landmarks68(image, face)
        if _lost(lm, face, None, image.shape):
            return None
        anchor = _eye_anchor(lm, face)
        return lm

    for k, image in enumerate(frames):
        due = box is None or since >= redetect
        lm = detect(image) if due else None
        if lm is None and box is not None:
            lm = landmarks68(image, box)
            if _lost(lm, box, previous, image.shape):
                lm = None if due else detect(image)
        if lm is None:
            box = previous = None
            continue
        points[k], found[k], previous = lm, True, lm
        box = _eye_box(lm, anchor)
        since += 1
    return points, found, detected


def mesh_track(frames: np.ndarray, settings: PrepareSettings = PrepareSettings()) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe Face Mesh on a clip's (T, H, W, 3) frames: (T, 478, 2) x, y pixels (zeros where none) and (T,)
    found flags (one face per frame, each frame on its own)."""
    from hcgym.perception.face.mediapipe_models import face_mesh_points

    n = 478 if settings.mesh_refine else 468
    points = np.zeros((len(frames), n, 2))
    found = np.zeros(len(frames), dtype=bool)
    for k, image in enumerate(frames):
        mesh = face_mesh_points(image, max_faces=1, refine=settings.mesh_refine,
                                min_confidence=settings.mesh_min_confidence)
        if len(mesh):
            points[k], found[k] = mesh[0, :, :2], True
    return points, found


def prepare_clip(root: Path, entry: dict[str, Any], names: Sequence[str],
                 settings: PrepareSettings = PrepareSettings()) -> dict[str, Any]:
    """The cache entries of one clip (arrays without the leading N axis)."""
    from hcgym.video import read_video

    doc = json.loads((root / entry["annotation"]).read_text())
    params = doc.get("params") or {}
    if "style" not in params or "apex_frames" not in params:
        raise SpecError("clips_dir", f"{entry['annotation']} has no expression style or apex frames (made before "
                                     "--style existed): generate the clips again")
    frames = read_video(root / entry["video"])
    t = int(doc["frames"])
    if len(frames) != t or len(doc["per_frame"]) != t:
        raise SpecError("clips_dir", f"{entry['video']} has {len(frames)} frames, the annotation says {t}")
    f68 = np.asarray([r["face68"] for r in doc["per_frame"]], np.float64)[:, JAW:]
    h, w = frames.shape[1:3]
    outside = (f68[..., 0] < 0) | (f68[..., 0] >= w) | (f68[..., 1] < 0) | (f68[..., 1] >= h)
    d68, d_found, _ = dlib_track(frames, settings.dlib_upsample, settings.dlib_threshold, settings.dlib_redetect)
    mesh, m_found = mesh_track(frames, settings)
    label2 = params.get("label2")
    item = {
        "dlib51": d68[:, JAW:], "dlib_found": d_found, "mesh": mesh, "mesh_found": m_found,
        "truth51": f68[..., :2], "truth_hidden": ((f68[..., 2] < 2) | outside).mean(axis=1),
        "frame_label": np.array([names.index(r["label"]) for r in doc["per_frame"]]),
        "label": names.index(doc["label"]), "label2": -1 if label2 is None else names.index(label2),
        "blend_weight": float(params.get("blend_weight", 0.0)), "intensity": float(params["intensity"]),
        "talking": bool(params.get("talking", False)), "occluded": bool(params.get("occluded", False)),
        "apex": np.asarray(params["apex_frames"], np.int64), "style": params["style"],
    }
    return {k: np.asarray(v, dtype=_DTYPES[k]) if k in _DTYPES else v for k, v in item.items()}


@dataclass(frozen=True)
class _Job:
    root: str
    start: int
    entries: tuple[dict[str, Any], ...]
    names: tuple[str, ...]
    settings: PrepareSettings


def _run_job(job: _Job) -> tuple[int, list[dict[str, Any]]]:
    return job.start, [prepare_clip(Path(job.root), e, job.names, job.settings) for e in job.entries]


# ----------------------------------------------------------------------------- folds
def identity_folds(identities: Sequence[int], seed: int, folds: int = FOLDS) -> dict[int, int]:
    """Fold of every distinct identity: a permutation drawn from the dataset ``seed``, dealt round-robin, so the
    folds hold equal numbers of identities (within one) and every clip of an identity is in its fold."""
    ids = sorted({int(i) for i in identities})
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF01D])).permutation(len(ids))
    return {ids[int(j)]: rank % int(folds) for rank, j in enumerate(order)}


# ----------------------------------------------------------------------------- the cache
#: dtype of every per-clip array in the cache.
_DTYPES = {"dlib51": np.float32, "dlib_found": np.bool_, "mesh": np.float16, "mesh_found": np.bool_,
           "truth51": np.float32, "truth_hidden": np.float32, "frame_label": np.int64, "label": np.int64,
           "label2": np.int64, "blend_weight": np.float32, "intensity": np.float32, "talking": np.bool_,
           "occluded": np.bool_, "apex": np.int64}
#: Clips per chunk (a chunk is one job and, until the cache is complete, one file in ``<out>.parts/``).
CHUNK = 8


def _dataset_key(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / "manifest.json").read_text()).get("dataset")
    except (OSError, ValueError, AttributeError):
        return None


def _seed(root: Path, key: dict[str, Any] | None, first: dict[str, Any]) -> int:
    if isinstance(key, dict) and isinstance(key.get("seed"), int):
        return int(key["seed"])
    return int(json.loads((root / first["annotation"]).read_text())["dataset_seed"])


def prepare(clips_dir: str | Path, out_npz: str | Path, workers: int = 2, progress: bool = True,
            settings: PrepareSettings = PrepareSettings()) -> Path:
    """Read the expression clips in ``clips_dir`` and write the cache ``out_npz`` (see the module docstring).

    Args:
        clips_dir: a ``hcgym generate --mode clips --labels expressions`` output folder.
        out_npz: the ``.npz`` to write (atomically, after every clip is read; parents are created).
        workers: processes (each with its own dlib and MediaPipe models); the output does not depend on it.
        progress: show a progress bar.
        settings: the detectors' settings.

    Bad arguments raise :class:`SpecError` before anything is read or written. Finished chunks are kept in
    ``<out_npz>.parts/`` until the cache is written, so a rerun after an interruption resumes. Returns the path.
    """
    from hcgym.paths import atomic_write_bytes
    from hcgym.synthesis.action_data import npz_bytes
    from hcgym.synthesis.dataset.engines import run_inline, run_pool

    index = read_index(clips_dir)
    out = _check_out(out_npz, workers)
    root = Path(clips_dir)
    clips = index["clips"]
    names = tuple(index["label_names"])
    key = _dataset_key(root)
    fingerprint = _fingerprint(index, settings)
    parts = parts_dir(out)
    stamp = parts / "fingerprint.txt"
    if parts.exists() and (not stamp.is_file() or stamp.read_text() != fingerprint):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    items: list[dict[str, Any] | None] = [None] * len(clips)
    jobs = []
    for s in range(0, len(clips), CHUNK):
        part = parts / f"chunk_{s:06d}.npz"
        if part.is_file():
            for i, item in enumerate(_read_part(part), start=s):
                items[i] = item
        else:
            jobs.append(_Job(str(root), s, tuple(clips[s:s + CHUNK]), names, settings))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(clips), initial=len(clips) - sum(len(j.entries) for j in jobs),
                   desc="prepare expression data", unit="clip", dynamic_ncols=True)

    def on_result(result: tuple[int, list[dict[str, Any]]]) -> None:
        start, chunk = result
        atomic_write_bytes(parts / f"chunk_{start:06d}.npz", npz_bytes(_stack(chunk)))
        items[start:start + len(chunk)] = chunk
        if bar is not None:
            bar.update(len(chunk))

    try:
        if workers == 1 or len(jobs) <= 1:
            run_inline(jobs, on_result, fn=_run_job)
        else:
            run_pool(jobs, int(workers), on_result, fn=_run_job)
    finally:
        if bar is not None:
            bar.close()
    arrays = _stack([it for it in items if it is not None])
    styles = sorted({str(s) for s in arrays.pop("style")})
    ids = [int(e["identity_id"]) for e in clips]
    fold_of = identity_folds(ids, _seed(root, key, clips[0]))
    arrays.update(
        identity=np.array(ids, np.int64), split=np.array([e["split"] for e in clips]),
        fold=np.array([fold_of[i] for i in ids], np.int64), clip=np.array([e["video"] for e in clips]),
        labels=np.array(names), style=np.array(styles[0] if len(styles) == 1 else "mixed"),
        metadata=np.array(json.dumps(_metadata(index, key, settings))))
    atomic_write_bytes(out, npz_bytes(arrays))
    shutil.rmtree(parts, ignore_errors=True)
    return out


def parts_dir(out_npz: str | Path) -> Path:
    """The folder of finished chunks kept beside ``out_npz`` while :func:`prepare` runs."""
    out = Path(out_npz)
    return out.with_name(out.name + ".parts")


def _fingerprint(index: dict[str, Any], settings: PrepareSettings) -> str:
    """What the chunks in :func:`parts_dir` were made from: chunks of another fingerprint are discarded."""
    text = json.dumps({"format": FORMAT, "index": index, "settings": asdict(settings)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _stack(items: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per-clip entries stacked along a new first axis with the cache's dtypes."""
    return {k: np.asarray([it[k] for it in items], dtype=_DTYPES.get(k)) for k in items[0]}


def _read_part(path: Path) -> list[dict[str, Any]]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    n = len(arrays["label"])
    return [{k: (v[i].item() if v[i].ndim == 0 else v[i]) for k, v in arrays.items()} for i in range(n)]


def _metadata(index: dict[str, Any], key: dict[str, Any] | None, settings: PrepareSettings) -> dict[str, Any]:
    import dlib
    import mediapipe

    return {"format": FORMAT, "dataset": key,
            "clips": {k: index[k] for k in ("fps", "seconds", "frames", "width", "height")},
            "prepare": asdict(settings), "folds": FOLDS,
            "dlib": {"version": dlib.__version__, "detector": "HOG (frontal_face_detector)",
                     "landmarks": "shape_predictor_68_face_landmarks, jaw (points 0-16) dropped"},
            "mediapipe": {"version": mediapipe.__version__, "solution": "face_mesh"}}


def load(npz: str | Path) -> dict[str, Any]:
    """The arrays of a cache written by :func:`prepare`, ``metadata`` as a dict."""
    path = Path(npz)
    if not path.is_file():
        raise SpecError("npz", f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, Any] = {k: z[k] for k in z.files}
        meta = json.loads(str(out["metadata"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SpecError("npz", f"{path} is not an expression data cache ({FORMAT}; write one with prepare())")
    out["metadata"] = meta
    return out


# ----------------------------------------------------------------------------- model inputs
def fill_missing(points: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(T, V, 2) points with every frame where ``found`` is false replaced by the last found frame before it,
    or the first found frame where none came before; unchanged when nothing was found."""
    out = np.array(points, copy=True)
    hits = np.flatnonzero(found)
    if not len(hits):
        return out
    last = hits[0]
    for k in range(len(out)):
        if found[k]:
            last = k
        else:
            out[k] = out[last]
    return out


def fit_mesh51(mesh: np.ndarray, mesh_found: np.ndarray, truth51: np.ndarray, candidates: int = 468) -> np.ndarray:
    """For each of the 51 truth points, the Face Mesh vertex nearest it: the median over found frames of the
    pixel distance divided by the frame's inter-ocular distance (truth eye centres), smallest median wins.

    ``mesh``: (F, 478, 2), ``mesh_found``: (F,), ``truth51``: (F, 51, 2) (frames of any clips, flattened).
    Only the first ``candidates`` vertices compete (468: the face surface, not the refined iris points, which
    follow the gaze rather than the lids). Returns (51,) int64 vertex indices (how :data:`MESH51` was made).
    """
    m = np.asarray(mesh, np.float64)[mesh_found][:, :candidates]
    t = np.asarray(truth51, np.float64)[mesh_found]
    if not len(m):
        raise SpecError("mesh_found", "no frame with a Face Mesh detection to fit on")
    iod = np.linalg.norm(t[:, 19:25].mean(axis=1) - t[:, 25:31].mean(axis=1), axis=1)
    dist = np.stack([np.linalg.norm(m - t[:, [j]], axis=-1) / iod[:, None] for j in range(t.shape[1])], axis=1)
    return np.argmin(np.median(dist, axis=0), axis=1).astype(np.int64)


class ExpressionData:
    """A loaded cache with model-ready arrays; ``which`` selects clips by split name, index array or ``None``."""

    def __init__(self, arrays: dict[str, Any]) -> None:
        self.arrays = arrays
        self.meta: dict[str, Any] = arrays["metadata"]

    @classmethod
    def load(cls, npz: str | Path) -> "ExpressionData":
        return cls(load(npz))

    def __len__(self) -> int:
        return int(len(self.arrays["label"]))

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(str(s) for s in self.arrays["labels"])

    @property
    def style(self) -> str:
        return str(self.arrays["style"])

    def select(self, which: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Clip indices of a split name, an index array or ``None`` (every clip)."""
        if which is None:
            return np.arange(len(self))
        if isinstance(which, str):
            if which not in ("train", "val", "test"):
                raise SpecError("which", f"unknown split {which!r} (allowed: train, val, test)")
            return np.flatnonzero(self.arrays["split"] == which)
        return np.asarray(which, dtype=np.int64)

    def fold_indices(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) clip indices of identity-wise cross-validation fold ``fold``: its clips are the test set."""
        folds = self.arrays["fold"]
        if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= fold < FOLDS:
            raise SpecError("fold", f"expected an integer in [0, {FOLDS - 1}], got {fold!r}")
        return np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)

    def y(self, which: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(N,) int64 expression ids."""
        return self.arrays["label"][self.select(which)].astype(np.int64)

    def frames(self, protocol: str, which: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(N, T') frame indices of ``protocol``: frame 0 and the three apex frames (``ck``) or all (``afew``)."""
        if protocol not in PROTOCOLS:
            raise SpecError("protocol", f"unknown protocol {protocol!r} (allowed: {', '.join(PROTOCOLS)})")
        idx = self.select(which)
        if protocol == "ck":
            return np.concatenate([np.zeros((len(idx), 1), np.int64), self.arrays["apex"][idx]], axis=1)
        t = self.arrays["frame_label"].shape[1]
        return np.tile(np.arange(t, dtype=np.int64), (len(idx), 1))

    def _points(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        """(N, T, V, 2) points and (N, T) found flags of ``source`` over every frame."""
        if source not in SOURCES:
            raise SpecError("source", f"unknown landmark source {source!r} (allowed: {', '.join(SOURCES)})")
        a = self.arrays
        if source == "dlib":
            return a["dlib51"], a["dlib_found"]
        if source == "truth":
            return a["truth51"], np.ones(a["truth51"].shape[:2], dtype=bool)
        return a["mesh"][:, :, MESH51 if source == "mesh51" else MESH_DENSE], a["mesh_found"]

    def found(self, source: str, protocol: str = "afew",
              which: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(N, T') whether the source's detector found the face in each frame of the protocol."""
        idx = self.select(which)
        _, found = self._points(source)
        return np.take_along_axis(found[idx], self.frames(protocol, which), axis=1)

    def never_found(self, source: str, which: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(N,) clips in which the source's detector found no face in any frame (their sequences are zeros)."""
        _, found = self._points(source)
        return ~found[self.select(which)].any(axis=1)

    def sequences(self, source: str, protocol: str,
                  which: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(N, T', V, 2) float32 landmark sequences in frame pixels: ``source`` one of :data:`SOURCES`
        (V = 51, 51, 145 or 51), ``protocol`` one of :data:`PROTOCOLS` (T' = 4 or the clip length). Frames
        without a detection are filled from the clip's other frames (:func:`fill_missing`) before the
        protocol's frames are taken; clips without any are zeros (:meth:`never_found`)."""
        idx = self.select(which)
        points, found = self._points(source)
        frames = self.frames(protocol, which)
        out = np.empty((len(idx), frames.shape[1], points.shape[2], 2), dtype=np.float32)
        for n, i in enumerate(idx):
            out[n] = fill_missing(np.asarray(points[i], np.float32), found[i])[frames[n]]
        return out
