"""Real images for the sensor bench: a folder of photos, a video, or the shipped real-image set, with optional
COCO labels turned into :class:`~hcgym.types.Frame` ground truth the bench's scorers read unchanged.

Sources. :func:`open_source` resolves a ``--source`` value into a :class:`Source` (``real``: the shipped
set, :mod:`hcgym.perception.real_images`; a folder of ``.jpg``/``.jpeg``/``.png`` photos read in name
order; one photo; a video OpenCV decodes) whose :meth:`Source.items` yields ``(name, rgb)``.

Labels. A COCO file (``images``, ``annotations``, ``categories``) with a ``person`` and/or a ``face``
category; ``images[].file_name`` is the path of the photo relative to the folder (or ``frame_000012`` for
frame 12 of a video). Boxes are COCO ``[x, y, w, h]`` pixels; ``iscrowd: 1`` marks a person or face that
is neither a hit nor a miss (an ignore region). A face belongs to the person named by its optional
``person_id`` (an annotation id), else to the person whose box holds most of it, else to nobody.

Ground truth of one labelled image (:func:`labelled_frame`), one :class:`~hcgym.types.HumanTruth` per person:

* ``bbox`` = ``bbox_amodal`` = the person box (the visible extent; the person-detection scorer reads
  ``bbox_amodal`` clipped to the image); ``pixels`` = its area, 0 for an ignored person (below the scorer's
  ``min_pixels`` and fill rules, so it is ignored);
* ``face_box`` = the person's face box; the 5 face landmarks have unknown positions (NaN) and visibility 2
  for a scored face, 0 for an ignored one (the face scorer ignores faces with fewer than 3 visible);
* a face without a scored person (no person box, or an ignored one) is a face-only human: ``bbox`` = the face
  box, ``bbox_amodal`` = ``None`` (the person scorer skips it);
* keypoints are not labelled (visibility 0), ``distance`` and ``face_yaw`` are NaN: the breakdowns by distance,
  yaw and occlusion have no rows; people per frame still works. The camera is a nominal 60-degree pinhole
  (photos carry no calibration; scorers read only its width and height).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.types import CameraIntrinsics, Frame, HumanTruth

#: File suffixes read as photos (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: The name of frame ``k`` of a video in a COCO file.
VIDEO_FRAME_NAME = "frame_{:06d}"
#: Horizontal field of view of the nominal camera of a photo, degrees.
NOMINAL_HFOV = 60.0


@dataclass
class ImageLabels:
    """The hand labels of one image.

    Attributes:
        file_name: the image's path relative to its folder (COCO ``file_name``).
        width, height: image size in pixels.
        persons: (P, 4) ``[x0, y0, x1, y1]`` person boxes (visible extent), pixels.
        person_ignore: (P,) ignore regions (COCO ``iscrowd``).
        faces: (F, 4) ``[x0, y0, x1, y1]`` face boxes (brow to chin, ear to ear), pixels.
        face_ignore: (F,) ignore regions.
        face_person: (F,) index into ``persons`` of each face's person, -1 for none.
        image_id: the COCO image id.
    """

    file_name: str
    width: int
    height: int
    persons: np.ndarray
    person_ignore: np.ndarray
    faces: np.ndarray
    face_ignore: np.ndarray
    face_person: np.ndarray
    image_id: int | None = None

    def scoring_item(self) -> dict[str, Any]:
        """``{"file_name", "width", "height", "boxes", "ignore"}``: the person targets in the item format of
        :func:`hcgym.perception.scoring.coco_ap` and :func:`~hcgym.perception.scoring.precision_at`."""
        return {"file_name": self.file_name, "width": self.width, "height": self.height,
                "boxes": self.persons.astype(np.float32), "ignore": self.person_ignore.copy()}


# ------------------------------------------------------------------ reading pictures
def read_rgb(path: str | Path, field: str = "--source") -> np.ndarray:
    """One photo as (H, W, 3) uint8 RGB (grey and RGBA files converted); :class:`SpecError` naming ``field``
    if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, ValueError) as e:  # UnidentifiedImageError is an OSError
        raise SpecError(field, f"cannot read image {path} ({type(e).__name__})") from None


def list_images(folder: str | Path) -> list[Path]:
    """The photos directly in ``folder`` (suffixes :data:`IMAGE_SUFFIXES`), sorted by name; refuses a folder
    without any."""
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SpecError("--source", f"folder {folder} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def open_video(path: str | Path) -> tuple[Any, float, int]:
    """``(cv2.VideoCapture, fps, frame count)`` of a readable video whose first frame decodes; else
    :class:`SpecError` (the capture is released)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    ok = cap.isOpened() and cap.read()[0]
    if not ok:
        cap.release()
        raise SpecError("--source", f"cannot read video {path} (not a video file OpenCV can decode)")
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
    return cap, fps if math.isfinite(fps) and fps > 0 else 25.0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))


def iter_video(cap: Any) -> Iterator[np.ndarray]:
    """The frames of an opened capture as (H, W, 3) uint8 RGB; releases it at the end."""
    import cv2

    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


@dataclass
class Source:
    """Pictures to run a sensor on.

    Attributes:
        kind: ``photos`` (a folder, or one photo), ``video`` or ``real`` (the shipped real-image set).
        path: the folder, photo or video file.
        names: photo names relative to the folder, sorted; for a video the frame names
            (:data:`VIDEO_FRAME_NAME`) of the frame count the container declares.
        fps: frames per second of a video (1 for photos: image ``k`` is at time ``k`` s).
        annotations: the COCO labels that come with the source (the shipped set's), else ``None``.
    """

    kind: str
    path: Path
    names: list[str]
    fps: float = 1.0
    annotations: Path | None = None

    def items(self, limit: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, rgb (H, W, 3) uint8)`` in order, at most ``limit``."""
        if self.kind == "video":
            frames = iter_video(open_video(self.path)[0])
            for k, rgb in enumerate(frames):
                if limit is not None and k >= limit:
                    frames.close()
                    return
                yield VIDEO_FRAME_NAME.format(k), rgb
            return
        folder = self.path if self.path.is_dir() else self.path.parent
        for name in self.names[:limit]:
            yield name, read_rgb(folder / name)


#: The ``--source`` keyword of the shipped real-image set.
REAL_SET = "real"
#: Its photos and labels (package data of :mod:`hcgym.perception.real_images`, which reads them with this module).
REAL_IMAGES = Path(__file__).resolve().parent / "real_images" / "images"
REAL_ANNOTATIONS = REAL_IMAGES.parent / "annotations.json"


def open_source(text: str | Path) -> Source:
    """The source a ``--source`` value names: ``real`` (the shipped set; write ``./real`` for a folder of
    that name), a folder of photos, one photo, or a video file. Refuses, with one :class:`SpecError`, a
    missing path, a folder without photos and a file that is neither a photo nor a readable video."""
    if str(text) == REAL_SET:
        return Source("real", REAL_IMAGES, [p.name for p in list_images(REAL_IMAGES)],
                      annotations=REAL_ANNOTATIONS)
    path = Path(text)
    if path.is_dir():
        return Source("photos", path, [p.name for p in list_images(path)])
    if not path.is_file():
        raise SpecError("--source", f"no such file or folder: {path} (or '{REAL_SET}' for the shipped "
                                    "real-image set)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        read_rgb(path)
        return Source("photos", path, [path.name])
    cap, fps, count = open_video(path)
    cap.release()
    return Source("video", path, [VIDEO_FRAME_NAME.format(k) for k in range(count)], fps)


# ------------------------------------------------------------------ COCO labels
def _number_list(v: Any, n: int) -> bool:
    return (isinstance(v, list) and len(v) == n
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v))


def read_coco(path: str | Path, names: list[str] | None = None) -> dict[str, ImageLabels]:
    """The person and face labels of a COCO file, by ``file_name``.

    Args:
        path: the COCO JSON file.
        names: the image names of the source (paths relative to its folder, or video frame names); when
            given, every labelled image must be one of them.

    Refuses, with one :class:`SpecError` (field ``--annotations``) naming the problem: a missing or non-JSON
    file, one that is not COCO (``images``/``annotations``/``categories`` lists, ``id``/``file_name``/
    ``width``/``height`` per image), neither a ``person`` nor a ``face`` category, an annotation naming an
    unknown ``image_id`` or ``category_id`` or holding a bad ``bbox``, and an image not in the source.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError("--annotations", f"file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise SpecError("--annotations", f"{path} is not JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                              for k in ("images", "annotations", "categories")):
        raise SpecError("--annotations", f"{path} is not a COCO file: it needs 'images', 'annotations' and "
                                         "'categories' lists")
    images: dict[int, dict[str, Any]] = {}
    for i, img in enumerate(data["images"]):
        if not (isinstance(img, dict) and isinstance(img.get("id"), int) and isinstance(img.get("file_name"), str)
                and all(isinstance(img.get(k), int) and img[k] > 0 for k in ("width", "height"))):
            raise SpecError("--annotations", f"{path}: images[{i}] needs an integer id, a file_name and positive "
                                             "integer width and height")
        if img["id"] in images:
            raise SpecError("--annotations", f"{path}: image id {img['id']} appears twice")
        images[img["id"]] = img
    cats = {c.get("id"): c.get("name") for c in data["categories"] if isinstance(c, dict)}
    wanted = {cid: name for cid, name in cats.items() if name in ("person", "face")}
    if not wanted:
        raise SpecError("--annotations", f"{path} has neither a 'person' nor a 'face' category "
                                         f"(categories: {sorted(map(str, cats.values()))})")
    if names is not None:
        known = set(names)
        missing = [img["file_name"] for img in images.values() if img["file_name"] not in known]
        if missing:
            raise SpecError("--annotations", f"{path}: image {missing[0]!r} is not in the source "
                                             f"({len(missing)} labelled image(s) missing)")
    per: dict[int, dict[str, list]] = {i: {"person": [], "face": []} for i in images}
    for j, a in enumerate(data["annotations"]):
        aid = a.get("id", j) if isinstance(a, dict) else j
        if not isinstance(a, dict) or a.get("image_id") not in images:
            raise SpecError("--annotations", f"{path}: annotation {aid} names unknown image_id "
                                             f"{a.get('image_id') if isinstance(a, dict) else None!r}")
        if a.get("category_id") not in cats:
            raise SpecError("--annotations", f"{path}: annotation {aid} names unknown category_id "
                                             f"{a.get('category_id')!r}")
        if a["category_id"] not in wanted:
            continue
        if not _number_list(a.get("bbox"), 4) or a["bbox"][2] < 0 or a["bbox"][3] < 0:
            raise SpecError("--annotations", f"{path}: annotation {aid} has no valid bbox [x, y, w, h]")
        per[a["image_id"]][wanted[a["category_id"]]].append(a)
    return {img["file_name"]: _labels(img, per[iid]["person"], per[iid]["face"]) for iid, img in images.items()}


def _xyxy(a: dict[str, Any]) -> list[float]:
    x, y, w, h = (float(v) for v in a["bbox"])
    return [x, y, x + w, y + h]


def _labels(img: dict[str, Any], persons: list[dict], faces: list[dict]) -> ImageLabels:
    pb = np.asarray([_xyxy(a) for a in persons], np.float64).reshape(-1, 4)
    fb = np.asarray([_xyxy(a) for a in faces], np.float64).reshape(-1, 4)
    ids = [a.get("id") for a in persons]
    owner = []
    for a, b in zip(faces, fb):
        if a.get("person_id") in ids:
            owner.append(ids.index(a["person_id"]))
            continue
        ix = np.clip(np.minimum(pb[:, 2], b[2]) - np.maximum(pb[:, 0], b[0]), 0, None)
        iy = np.clip(np.minimum(pb[:, 3], b[3]) - np.maximum(pb[:, 1], b[1]), 0, None)
        inter = ix * iy
        owner.append(int(np.argmax(inter)) if inter.size and inter.max() > 0 else -1)
    return ImageLabels(img["file_name"], int(img["width"]), int(img["height"]), pb,
                       np.asarray([bool(a.get("iscrowd", 0)) for a in persons], bool), fb,
                       np.asarray([bool(a.get("iscrowd", 0)) for a in faces], bool), np.asarray(owner, int),
                       int(img["id"]))


def check_sizes(source: Source, labels: dict[str, ImageLabels]) -> None:
    """Refuse, before any picture is run, labels whose image size is not the picture's (photo headers are read,
    a video's frame size taken from the container)."""
    from PIL import Image

    if source.kind == "video":
        import cv2

        cap = open_video(source.path)[0]
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        cap.release()
        sizes = {name: size for name in labels}
    else:
        folder = source.path if source.path.is_dir() else source.path.parent
        sizes = {}
        for name in labels:
            try:
                with Image.open(folder / name) as im:
                    sizes[name] = im.size
            except OSError:
                raise SpecError("--source", f"cannot read image {folder / name}") from None
    for name, lab in labels.items():
        if sizes[name] != (lab.width, lab.height):
            raise SpecError("--annotations", f"image {name!r} is {sizes[name][0]}x{sizes[name][1]} but its labels "
                                             f"say {lab.width}x{lab.height}")


# ------------------------------------------------------------------ frames
def _truth(k: int, box: np.ndarray, amodal: np.ndarray | None, pixels: int, face: np.ndarray | None,
           face_seen: bool, name: str) -> HumanTruth:
    nan3 = np.full((17, 3), np.nan)
    marks = np.zeros((5, 3))
    marks[:, :2] = np.nan
    marks[:, 2] = 2 if face_seen else 0
    return HumanTruth(id=k, avatar="", identity=name, bbox=box.copy(), bbox_amodal=None if amodal is None
                      else amodal.copy(), face_box=None if face is None else face.copy(), keypoints=np.zeros((17, 3)),
                      keypoints_3d=nan3, face_landmarks=marks, face_landmarks_3d=np.full((5, 3), np.nan),
                      distance=math.nan, face_yaw=math.nan, pixels=int(pixels))


def humans_of(labels: ImageLabels) -> list[HumanTruth]:
    """The ground truth of one labelled image (rules in the module docstring)."""
    def area(b: np.ndarray) -> int:
        return round(max(0.0, float(b[2] - b[0])) * max(0.0, float(b[3] - b[1])))

    humans: list[HumanTruth] = []
    carried: set[int] = set()  # faces whose person carries them
    for p, (box, ig) in enumerate(zip(labels.persons, labels.person_ignore)):
        mine = [f for f in range(len(labels.faces)) if labels.face_person[f] == p]
        face = mine[0] if mine and not ig else None
        if face is not None:
            carried.add(face)
        humans.append(_truth(len(humans), box, box, 0 if ig else area(box),
                             None if face is None else labels.faces[face],
                             face is not None and not labels.face_ignore[face], f"{labels.file_name}#person{p}"))
    for f, box in enumerate(labels.faces):
        if f not in carried:
            humans.append(_truth(len(humans), box, None, area(box), box, not labels.face_ignore[f],
                                 f"{labels.file_name}#face{f}"))
    return humans


def labelled_frame(rgb: np.ndarray, labels: ImageLabels | None = None, index: int = 0, fps: float = 1.0,
                   name: str = "") -> Frame:
    """A :class:`Frame` of a real picture (rgb (H, W, 3) uint8) at time ``index / fps``, with the ground truth
    of ``labels`` (none: no human). Depth is ``inf`` and segmentation 0 everywhere (no depth is known)."""
    h, w = rgb.shape[:2]
    if labels is not None and (labels.width, labels.height) != (w, h):
        raise SpecError("--annotations", f"image {labels.file_name!r} is {w}x{h} but its labels say "
                                         f"{labels.width}x{labels.height}")
    return Frame(rgb=rgb, depth=np.full((h, w), np.inf, np.float32), segmentation=np.zeros((h, w), np.int32),
                 intrinsics=CameraIntrinsics.from_hfov(w, h, NOMINAL_HFOV), world_to_camera=np.eye(4),
                 camera=name or "photo", time=index / fps, humans=[] if labels is None else humans_of(labels))


__all__ = ["IMAGE_SUFFIXES", "ImageLabels", "REAL_SET", "Source", "VIDEO_FRAME_NAME", "check_sizes", "humans_of",
           "iter_video", "labelled_frame", "list_images", "open_source", "open_video", "read_coco", "read_rgb"]
