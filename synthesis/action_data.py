"""Action recognition data from the clip generator: one compressed ``.npz`` cache of person crops and
NTU RGB+D skeletons (ground truth and MediaPipe Pose) for the clip models of :mod:`hcgym.perception.action`.

:func:`prepare` reads a ``hcgym generate --mode clips --labels actions`` folder (layout in
:mod:`hcgym.synthesis.dataset.clips`) and writes, for N clips of T frames each:

============================  ====================  ==========================================================
key                           shape, dtype          content
============================  ====================  ==========================================================
``rgb``                       (N, T, S, S, 3) u8    square crop around the person, resized to S x S (RGB)
``crop_box``                  (N, 4) f32            the crop ``[x0, y0, x1, y1]`` in frame pixels: the union of
                                                    the person's boxes over the clip's frames, made square and
                                                    enlarged by :data:`CROP_MARGIN`; fixed per clip, so the
                                                    motion stays visible; outside the frame it is black
``skeleton_truth``            (N, T, 25, 3) f32     ground-truth NTU-25 joints, camera frame, normalised (below)
``skeleton_truth_px``         (N, T, 25, 3) f32     the same joints in crop pixels ``(u, v)`` and their COCO
                                                    visibility (0 outside the image, 1 hidden, 2 seen)
``skeleton_mediapipe``        (N, T, 25, 3) f32     MediaPipe Pose on the same frames, mapped to NTU-25 and lifted
                                                    to the camera frame, normalised the same way; zeros where
                                                    nobody was found
``skeleton_mediapipe_px``     (N, T, 25, 2) f32     MediaPipe's mapped joints in crop pixels (zeros: not found)
``mediapipe_visibility``      (N, T, 25) f32        MediaPipe's visibility mapped to NTU-25 (zeros: not found)
``mediapipe_found``           (N, T) bool           MediaPipe found the person in the frame
``norm_truth``,               (N, 4) f32            per clip ``[cx, cy, cz, scale]``: the centre (metres) and
``norm_mediapipe``                                  scale the skeleton was normalised with (undo:
                                                    ``x * scale + c``)
``label``                     (N,) i64              action id (position in ``labels``)
``labels``                    (L,) str              action names (the dataset's ``label_names``)
``split``                     (N,) str              ``train`` / ``val`` / ``test`` (by identity)
``identity``                  (N,) i64              identity id of the clip's person
``clip``                      (N,) str              the clip's video, relative to the clips folder
``metadata``                  () str                JSON: the generator's dataset key (config and seed), the
                                                    clips' fps, length and size, and these settings
============================  ====================  ==========================================================

The MediaPipe arrays are present when ``"mediapipe"`` is among the skeleton sources (the default).

Skeleton coordinates: 3-D points in the camera frame in metres (x right, y down, z forward, the
camera of the clip), the counterpart of NTU RGB+D's Kinect camera space. The ground truth is the
clip's world-frame ``skeleton_3d`` moved into the camera frame with its ``world_to_camera``. MediaPipe
gives metric landmarks centred between the hips with camera-aligned axes (``pose_world_landmarks``); the
translation that puts them in the camera frame is the least-squares solution of their pinhole projection
onto MediaPipe's own image points with the clip camera's intrinsics (linear in the translation; the points
weighted by visibility). Each clip is then normalised as ST-GCN pipelines do: minus the ``spine_mid``
joint of its first frame (for MediaPipe, the first frame it found the person in), divided by the
body size, the mean torso length (``spine_base`` to ``spine_shoulder``) over the clip's frames. Motion
within the clip (walking, sitting down) therefore stays in the coordinates; nothing is rotated.

MediaPipe's 33 points map to NTU-25 by :data:`MEDIAPIPE_TO_NTU`: the twelve limb joints of
:data:`hcgym.types.KEYPOINT_SCHEMES` one to one, the others as weighted combinations of neighbouring
landmarks along segments (e.g. ``spine_base`` between the hips, ``*_hand_tip`` 2.4 times the
wrist-to-knuckles vector from the wrist), fractions fitted to the ground truth.

The mapping, the lift and the normalisation live in :mod:`hcgym.perception.action.skeleton`, the crop and the
RGB normalisation in :mod:`hcgym.perception.action.crop`: the live action sensors
(:mod:`hcgym.perception.action.sensors`) prepare their frames with the same functions.

Example (the default set; the generator settings give every one of the 24 actions at least 40 training
and 10 test clips on held-out identities)::

    hcgym generate --mode clips --labels actions --n 1616 --seed 7 --identities 24 --splits 0.7,0.1,0.2 \\
        --clip-seconds 3.2 --fps 12.5 --workers 2 --out /tmp/actdata/clips

    >>> from hcgym.synthesis.action_data import ActionData, prepare
    >>> prepare("/tmp/actdata/clips", "/tmp/actdata/actions_112.npz", size=112, workers=2)
    >>> data = ActionData.load("/tmp/actdata/actions_112.npz")
    >>> x = data.x3d("train", frames=16)             # (N, 3, 16, 112, 112) float32, normalised RGB
    >>> s = data.gcn("test", source="mediapipe")      # (N, 3, 40, 25, 1) float32
    >>> y = data.y("train")                           # (N,) int64
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.action.crop import CROP_MARGIN, RGB_MEAN, RGB_STD, crop_frames, square_box
from hcgym.perception.action.skeleton import MEDIAPIPE_TO_NTU, SPINE, camera_joints, lift, normalise

__all__ = ["CROP_MARGIN", "FORMAT", "MEDIAPIPE_TO_NTU", "RGB_MEAN", "RGB_STD", "SOURCES", "SPINE", "ActionData",
           "PrepareSettings", "crop_frames", "frame_indices", "lift", "load", "normalise", "npz_bytes", "prepare",
           "prepare_clip", "read_index", "square_box", "to_crop"]

#: Format tag stored in the cache's metadata.
FORMAT = "hcgym-action-data-1"
#: Skeleton sources :func:`prepare` can write.
SOURCES = ("truth", "mediapipe")


# ----------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class PrepareSettings:
    """What :func:`prepare` does to every clip (stored in the metadata)."""

    size: int
    frames: list[int]
    sources: list[str]
    crop_margin: float = CROP_MARGIN


def read_index(clips_dir: str | Path) -> dict[str, Any]:
    """``index.json`` of an action clips folder, checked: a :class:`SpecError` if it is not one."""
    from hcgym.synthesis.dataset.clips import INDEX_FORMAT

    root = Path(clips_dir)
    if not root.is_dir():
        raise SpecError("clips_dir", f"no such folder: {root}")
    path = root / "index.json"
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        index = None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise SpecError("clips_dir", f"{root} is not a clips dataset (no index.json of format {INDEX_FORMAT}; "
                                     "make one with hcgym generate --mode clips --labels actions)")
    if index.get("labels") != "actions":
        raise SpecError("clips_dir", f"{root} holds {index.get('labels')} clips; action data needs --labels actions")
    if not index.get("clips"):
        raise SpecError("clips_dir", f"{root} holds no clips")
    for e in index["clips"]:
        for key in ("video", "annotation"):
            if not (root / e[key]).is_file():
                raise SpecError("clips_dir", f"{root} is incomplete: {e[key]} is missing")
    return index


def frame_indices(total: int, frames: int | None) -> np.ndarray:
    """Indices of ``frames`` frames spread evenly over ``total`` (all of them for ``None``)."""
    if frames is None:
        return np.arange(total)
    return np.linspace(0, total - 1, int(frames)).round().astype(np.int64)


def _check(index: dict[str, Any], out_file: str | Path, size: Any, frames: Any, sources: Any,
           workers: Any) -> tuple[Path, PrepareSettings]:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= 1024:
        raise SpecError("size", f"expected a crop side in pixels, an integer in [16, 1024], got {size!r}")
    total = int(index["frames"])
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, (int, np.integer))
                               or not 1 <= frames <= total):
        raise SpecError("frames", f"expected None (all {total}) or an integer in [1, {total}], got {frames!r}")
    if isinstance(sources, str):
        sources = (sources,)
    if (not isinstance(sources, (tuple, list)) or not sources or len(set(sources)) != len(sources)
            or any(s not in SOURCES for s in sources)):
        raise SpecError("skeleton_source", f"expected a non-empty selection of {', '.join(SOURCES)}, got {sources!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise SpecError("workers", f"expected a positive integer, got {workers!r}")
    out = Path(out_file)
    if out.suffix != ".npz":
        raise SpecError("out_file", f"expected a .npz file name, got {out}")
    if out.is_dir():
        raise SpecError("out_file", f"{out} is a folder")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise SpecError("out_file", f"{parent} is not a folder")
    chosen = frame_indices(total, None if frames is None else int(frames))
    return out, PrepareSettings(int(size), [int(k) for k in chosen], [s for s in SOURCES if s in sources])


# ----------------------------------------------------------------------------- one clip
def to_crop(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Frame pixel coordinates (..., 2) in crop pixel coordinates of a ``size`` x ``size`` crop of ``box``."""
    return (np.asarray(points, np.float64) - box[:2]) * (size / float(box[2] - box[0]))


_POSE: Any = None


def _pose_sensor() -> Any:
    """One MediaPipe Pose sensor per process (tracking; reset before every clip)."""
    global _POSE
    if _POSE is None:
        from hcgym.perception import make

        _POSE = make("pose/mediapipe")
    return _POSE


def _mediapipe_clip(frames: np.ndarray, camera: dict[str, float], box: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """MediaPipe Pose over a clip's (T, H, W, 3) frames, mapped to NTU-25 (see the module docstring)."""
    pose = _pose_sensor()
    pose.reset()
    t = len(frames)
    cam = np.zeros((t, 25, 3))
    px = np.zeros((t, 25, 2))
    vis = np.zeros((t, 25))
    found = np.zeros(t, dtype=bool)
    for k, image in enumerate(frames):
        kp = pose.process(image)
        if not len(kp) or kp.world is None:
            continue
        found[k] = True
        score = np.clip(kp.scores[0], 0.0, 1.0)
        cam[k] = camera_joints(kp.world[0], kp.points[0], kp.scores[0], camera)
        px[k] = to_crop(MEDIAPIPE_TO_NTU @ kp.points[0], box, size)
        vis[k] = np.clip(np.abs(MEDIAPIPE_TO_NTU) @ score / np.abs(MEDIAPIPE_TO_NTU).sum(axis=1), 0.0, 1.0)
    skeleton, norm = normalise(cam, found)
    return {"skeleton_mediapipe": skeleton, "skeleton_mediapipe_px": px, "mediapipe_visibility": vis,
            "mediapipe_found": found, "norm_mediapipe": norm}


def prepare_clip(root: Path, entry: dict[str, Any], settings: PrepareSettings) -> dict[str, np.ndarray]:
    """The cache arrays of one clip (without the leading N axis)."""
    from hcgym.video import read_video

    doc = json.loads((root / entry["annotation"]).read_text())
    video = read_video(root / entry["video"])
    sel = np.asarray(settings.frames)
    if len(video) <= int(sel.max()) or len(doc["per_frame"]) <= int(sel.max()):
        raise SpecError("clips_dir", f"{entry['video']} has {len(video)} frames, the index says {doc['frames']}")
    frames = video[sel]
    records = [doc["per_frame"][int(k)] for k in sel]
    boxes = [r["bbox"] for r in records if r["bbox"] is not None] or \
        [r["bbox_amodal"] for r in records if r["bbox_amodal"] is not None]
    h, w = frames.shape[1:3]
    box = square_box(np.asarray(boxes, np.float64) if boxes else np.array([[0.0, 0.0, w, h]]))
    size = settings.size
    w2c = np.asarray(doc["camera"]["world_to_camera"], np.float64)
    s3 = np.asarray([r["skeleton_3d"] for r in records], np.float64)
    skeleton, norm = normalise(s3 @ w2c[:3, :3].T + w2c[:3, 3], np.ones(len(records), dtype=bool))
    s2 = np.asarray([r["skeleton"] for r in records], np.float64)
    out = {"rgb": crop_frames(frames, box, size), "crop_box": box, "skeleton_truth": skeleton,
           "skeleton_truth_px": np.concatenate([to_crop(s2[..., :2], box, size), s2[..., 2:]], axis=-1),
           "norm_truth": norm}
    if "mediapipe" in settings.sources:
        out.update(_mediapipe_clip(frames, doc["camera"], box, size))
    if "truth" not in settings.sources:
        for key in ("skeleton_truth", "skeleton_truth_px", "norm_truth"):
            del out[key]
    return out


@dataclass(frozen=True)
class _Job:
    root: str
    entries: tuple[tuple[int, dict[str, Any]], ...]
    settings: PrepareSettings


def _run_job(job: _Job) -> list[tuple[int, dict[str, np.ndarray]]]:
    return [(i, prepare_clip(Path(job.root), e, job.settings)) for i, e in job.entries]


# ----------------------------------------------------------------------------- the cache
#: dtype of every per-clip array in the cache.
_DTYPES = {"rgb": np.uint8, "mediapipe_found": np.bool_}


def prepare(clips_dir: str | Path, out_file: str | Path, size: int = 112, frames: int | None = None,
            skeleton_source: Sequence[str] = SOURCES, progress: bool = True, workers: int = 1) -> Path:
    """Read the action clips in ``clips_dir`` and write the cache ``out_file`` (see the module docstring).

    Args:
        clips_dir: a ``hcgym generate --mode clips --labels actions`` output folder.
        out_file: the ``.npz`` to write (atomically, after every clip is read; parents are created).
        size: crop side S in pixels.
        frames: T frames spread evenly over each clip, or ``None`` for all of them.
        skeleton_source: which skeletons to write: ``"truth"``, ``"mediapipe"`` or both.
        progress: show a progress bar.
        workers: processes (each with its own MediaPipe graph); the output does not depend on it.

    Bad arguments raise :class:`SpecError` before anything is read or written. Returns ``out_file``.
    """
    from hcgym.paths import atomic_write_bytes
    from hcgym.synthesis.dataset.engines import run_inline, run_pool

    index = read_index(clips_dir)
    out, settings = _check(index, out_file, size, frames, skeleton_source, workers)
    root = Path(clips_dir)
    clips = index["clips"]
    chunk = 4
    jobs = [_Job(str(root), tuple((i, clips[i]) for i in range(s, min(s + chunk, len(clips)))), settings)
            for s in range(0, len(clips), chunk)]
    arrays: dict[str, np.ndarray] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(clips), desc="prepare action data", unit="clip", dynamic_ncols=True)

    def on_result(result: list[tuple[int, dict[str, np.ndarray]]]) -> None:
        for i, item in result:
            for key, value in item.items():
                if key not in arrays:
                    arrays[key] = np.zeros((len(clips), *value.shape), dtype=_DTYPES.get(key, np.float32))
                arrays[key][i] = value
        if bar is not None:
            bar.update(len(result))

    try:
        if workers == 1:
            run_inline(jobs, on_result, fn=_run_job)
        else:
            run_pool(jobs, int(workers), on_result, fn=_run_job)
    finally:
        if bar is not None:
            bar.close()
    names = list(index["label_names"])
    arrays.update(
        label=np.array([e["label_id"] for e in clips], dtype=np.int64), labels=np.array(names),
        split=np.array([e["split"] for e in clips]), identity=np.array([e["identity_id"] for e in clips], np.int64),
        clip=np.array([e["video"] for e in clips]), metadata=np.array(json.dumps(_metadata(root, index, settings))))
    atomic_write_bytes(out, npz_bytes(arrays))
    return out


def _metadata(root: Path, index: dict[str, Any], settings: PrepareSettings) -> dict[str, Any]:
    try:
        dataset = json.loads((root / "manifest.json").read_text()).get("dataset")
    except (OSError, ValueError):
        dataset = None
    meta = {"format": FORMAT, "dataset": dataset,
            "clips": {k: index[k] for k in ("fps", "seconds", "frames", "width", "height")},
            "prepare": asdict(settings),
            "skeleton": "NTU RGB+D 25 joints, camera frame (x right, y down, z forward), minus spine_mid of the "
                        "first (found) frame, divided by the mean spine_base-spine_shoulder length"}
    if "mediapipe" in settings.sources:
        import mediapipe

        meta["mediapipe"] = {"version": mediapipe.__version__, "sensor": "pose/mediapipe", "tracking": True,
                             "model_complexity": 1, "to_ntu": MEDIAPIPE_TO_NTU.round(4).tolist()}
    return meta


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed ``.npz`` of ``arrays`` whose bytes depend on the arrays only (fixed zip timestamps, which
    ``np.savez_compressed`` takes from the clock)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arrays[key]), allow_pickle=False)
    return buf.getvalue()


def load(npz: str | Path, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The arrays of a cache written by :func:`prepare` (all but those named in ``skip``: a skeleton model need
    not decompress the 2.4 GB of ``rgb`` of the default set), ``metadata`` as a dict."""
    path = Path(npz)
    if not path.is_file():
        raise SpecError("npz", f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, Any] = {k: z[k] for k in z.files if k not in skip}
        meta = json.loads(str(out["metadata"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SpecError("npz", f"{path} is not an action data cache ({FORMAT}; write one with prepare())")
    out["metadata"] = meta
    return out


# ----------------------------------------------------------------------------- model inputs
class ActionData:
    """A loaded cache with model-ready arrays: ``which`` selects clips by split name, index array or ``None`` (all).

    Arrays are C-contiguous numpy (``torch.from_numpy`` takes them as they are).
    """

    def __init__(self, arrays: dict[str, Any]) -> None:
        self.arrays = arrays
        self.meta: dict[str, Any] = arrays["metadata"]

    @classmethod
    def load(cls, npz: str | Path, skip: Sequence[str] = ()) -> "ActionData":
        return cls(load(npz, skip))

    def __len__(self) -> int:
        return int(len(self.arrays["label"]))

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(str(s) for s in self.arrays["labels"])

    @property
    def frames(self) -> int:
        """Frames per clip T in the cache."""
        return int(next(self.arrays[k] for k in ("rgb", "skeleton_truth", "skeleton_mediapipe")
                        if k in self.arrays).shape[1])

    def select(self, which: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Clip indices of a split name, an index array or ``None`` (every clip)."""
        if which is None:
            return np.arange(len(self))
        if isinstance(which, str):
            if which not in ("train", "val", "test"):
                raise SpecError("which", f"unknown split {which!r} (allowed: train, val, test)")
            return np.flatnonzero(self.arrays["split"] == which)
        return np.asarray(which, dtype=np.int64)

    def _frames(self, frames: int | None) -> np.ndarray:
        if frames is not None and (isinstance(frames, bool) or not isinstance(frames, (int, np.integer))
                                   or not 1 <= frames <= self.frames):
            raise SpecError("frames", f"expected None (all {self.frames}) or an integer in [1, {self.frames}], "
                                      f"got {frames!r}")
        return frame_indices(self.frames, frames)

    def y(self, which: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(N,) int64 action ids."""
        return self.arrays["label"][self.select(which)].astype(np.int64)

    def x3d(self, which: str | Sequence[int] | np.ndarray | None = None, frames: int | None = None,
            normalised: bool = True) -> np.ndarray:
        """(N, 3, T, S, S) float32 RGB clips for :mod:`hcgym.perception.action.x3d`: ``(rgb / 255 - 0.45) / 0.225``
        (``normalised``) or in [0, 1]; ``frames`` spread evenly over the cached ones (all for ``None``)."""
        rgb = self.arrays["rgb"][self.select(which)][:, self._frames(frames)]
        x = np.ascontiguousarray(rgb.transpose(0, 4, 1, 2, 3), dtype=np.float32) / np.float32(255.0)
        if normalised:
            x -= np.float32(RGB_MEAN)
            x /= np.float32(RGB_STD)
        return x

    def gcn(self, which: str | Sequence[int] | np.ndarray | None = None, source: str = "truth",
            frames: int | None = None) -> np.ndarray:
        """(N, 3, T, 25, 1) float32 normalised skeletons (``source`` ``truth`` or ``mediapipe``) for
        :mod:`hcgym.perception.action.gcn`."""
        key = f"skeleton_{source}"
        if source not in SOURCES or key not in self.arrays:
            have = [s for s in SOURCES if f"skeleton_{s}" in self.arrays]
            raise SpecError("source", f"no {source!r} skeletons in this cache (it has: {', '.join(have)})")
        s = self.arrays[key][self.select(which)][:, self._frames(frames)]
        return np.ascontiguousarray(s.transpose(0, 3, 1, 2)[..., None], dtype=np.float32)
