"""Detector candidates of a dataset, cached for NMS training and evaluation.

A :class:`CandidateSet` holds, per image, the detector's candidate boxes **before** NMS (after the
pre-NMS at IoU 0.8 that the seed applies to every method), sorted by score, descending, and the
ground truth they are scored against (:func:`hcgym.perception.detection.load_coco_boxes`: full-body
boxes clipped to the image, ignore flags for hidden or tiny people).

>>> cset = extract_candidates("out/persons", detector, split="val")   # a generator folder or a COCO file
>>> cset.save("out/candidates_val.npz"); CandidateSet.load("out/candidates_val.npz")
>>> cset.cap(100)[0].boxes                                             # the first 100 candidates of image 0

A detector is any object with ``name``, ``fingerprint`` (a hash of its weights, for cache keys) and
``candidates(image_rgb_uint8, max_candidates=400, pre_nms_iou=0.8) -> (boxes (N, 4) float32 xyxy,
scores (N,) float32)`` sorted by score, descending. :func:`make_detector` resolves ``shipped``, a
file path or ``simulated`` (:class:`~hcgym.perception.nms.simulate.DetectorSimulator`, which is
given the ground truth: a test and demo tool, not a detector).

File format (one ``.npz``, written atomically): ``boxes`` (sum N, 4) float32 and ``scores`` (sum N,)
float32 of all images concatenated, ``offsets`` (M + 1,) int64 (image ``i`` owns rows
``offsets[i]:offsets[i+1]``); ``gt_boxes`` (sum G, 4), ``gt_ignore`` (sum G,) and ``gt_offsets``
likewise; ``image_ids``, ``widths``, ``heights`` (M,) int64; ``meta``: UTF-8 JSON bytes with the
format version, the image paths and :attr:`CandidateSet.meta` (detector name and fingerprint,
pre-NMS IoU, candidate cap, source dataset).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from hcgym.errors import SpecError

FORMAT = "hcgym-nms-candidates/1"
_ARRAYS = ("boxes", "scores", "offsets", "gt_boxes", "gt_ignore", "gt_offsets", "image_ids", "widths", "heights")

#: Registry id of the person detector whose candidates the NMS studies use.
PERSON_DETECTOR = "person/centernet"


@dataclass(frozen=True)
class ImageCandidates:
    """One image of a :class:`CandidateSet`.

    Attributes:
        path: the image file.
        width, height: image size in pixels.
        image_id: the COCO image id.
        boxes: ``(N, 4)`` float32 candidate boxes ``[x0, y0, x1, y1]`` in pixels, by score, descending.
        scores: ``(N,)`` float32 detector scores, descending.
        gt_boxes: ``(G, 4)`` float32 target boxes.
        gt_ignore: ``(G,)`` bool, True for ignore regions (neither hit nor miss).
    """

    path: Path
    width: int
    height: int
    image_id: int
    boxes: np.ndarray
    scores: np.ndarray
    gt_boxes: np.ndarray
    gt_ignore: np.ndarray

    def image(self) -> np.ndarray:
        """The image as ``(H, W, 3)`` uint8 RGB."""
        return read_rgb(self.path)


@dataclass
class CandidateSet:
    """Candidates and ground truth of the images of one dataset split (see the module docstring).

    Attributes:
        images: one :class:`ImageCandidates` per image, in the COCO file's order.
        meta: ``detector`` (name), ``fingerprint``, ``pre_nms_iou``, ``max_candidates``, ``source``
            (the COCO file) and anything else JSON-able.
    """

    images: list[ImageCandidates]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> ImageCandidates:
        return self.images[i]

    def __iter__(self) -> Iterator[ImageCandidates]:
        return iter(self.images)

    @property
    def n_candidates(self) -> int:
        return int(sum(len(im.scores) for im in self.images))

    def cap(self, n: int) -> CandidateSet:
        """The same set with at most the first (highest-scoring) ``n`` candidates per image."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SpecError("cap", f"expected a positive number of candidates, got {n!r}")
        images = [ImageCandidates(im.path, im.width, im.height, im.image_id, im.boxes[:n], im.scores[:n],
                                  im.gt_boxes, im.gt_ignore) for im in self.images]
        return CandidateSet(images, {**self.meta, "cap": int(n)})

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> Path:
        """Write the set to one ``.npz`` (atomically; see the module docstring for the layout)."""
        from hcgym.paths import atomic_write_bytes

        path = Path(path)
        ims = self.images
        meta = {"format": FORMAT, "paths": [str(im.path) for im in ims], **self.meta}
        arrays = {
            "boxes": _concat([im.boxes for im in ims], (0, 4), np.float32),
            "scores": _concat([im.scores for im in ims], (0,), np.float32),
            "offsets": _offsets([len(im.scores) for im in ims]),
            "gt_boxes": _concat([im.gt_boxes for im in ims], (0, 4), np.float32),
            "gt_ignore": _concat([im.gt_ignore for im in ims], (0,), bool),
            "gt_offsets": _offsets([len(im.gt_ignore) for im in ims]),
            "image_ids": np.asarray([im.image_id for im in ims], np.int64),
            "widths": np.asarray([im.width for im in ims], np.int64),
            "heights": np.asarray([im.height for im in ims], np.int64),
            "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path) -> CandidateSet:
        """Read a file written by :meth:`save`; :class:`SpecError` (field ``candidates``) if it is not one."""
        path = Path(path)
        if not path.is_file():
            raise SpecError("candidates", f"no such file: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError: not an npz
            raise SpecError("candidates", f"{path} is not a candidate file (.npz): {e}") from None
        missing = [k for k in (*_ARRAYS, "meta") if k not in data]
        if missing:
            raise SpecError("candidates", f"{path} is not a candidate file: missing {', '.join(missing)}")
        try:
            meta = json.loads(data["meta"].tobytes().decode())
        except ValueError as e:
            raise SpecError("candidates", f"{path}: unreadable metadata ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise SpecError("candidates", f"{path}: format {meta.get('format') if isinstance(meta, dict) else None!r}"
                                          f" is not {FORMAT!r}")
        paths = meta.pop("paths", [])
        meta.pop("format")
        _check_layout(data, len(paths), path)
        off, goff = data["offsets"], data["gt_offsets"]
        images = [ImageCandidates(Path(p), int(data["widths"][i]), int(data["heights"][i]), int(data["image_ids"][i]),
                                  data["boxes"][off[i]:off[i + 1]], data["scores"][off[i]:off[i + 1]],
                                  data["gt_boxes"][goff[i]:goff[i + 1]], data["gt_ignore"][goff[i]:goff[i + 1]])
                  for i, p in enumerate(paths)]
        return cls(images, meta)


def _concat(parts: list[np.ndarray], empty: tuple[int, ...], dtype: Any) -> np.ndarray:
    if not parts:
        return np.zeros(empty, dtype)
    return np.concatenate([np.asarray(p, dtype).reshape((-1,) + empty[1:]) for p in parts])


def _offsets(counts: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


def _check_layout(data: dict[str, np.ndarray], m: int, path: Path) -> None:
    """Shapes and offsets must agree; anything else is a damaged file."""
    def bad(what: str) -> SpecError:
        return SpecError("candidates", f"{path}: damaged file ({what})")

    for key in ("image_ids", "widths", "heights"):
        if data[key].shape != (m,):
            raise bad(f"{key} has shape {data[key].shape}, expected ({m},)")
    for off_key, rows in (("offsets", ("boxes", "scores")), ("gt_offsets", ("gt_boxes", "gt_ignore"))):
        off = data[off_key]
        n = len(data[rows[1]])
        if off.shape != (m + 1,) or off[0] != 0 or off[-1] != n or (np.diff(off) < 0).any():
            raise bad(f"{off_key} do not partition the {n} rows of {rows[1]} into {m} images")
        if data[rows[0]].shape != (n, 4):
            raise bad(f"{rows[0]} has shape {data[rows[0]].shape}, expected ({n}, 4)")


# ------------------------------------------------------------------ images and datasets


def read_rgb(path: str | Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file; :class:`SpecError` (field ``image``) if unreadable."""
    from hcgym.perception.bench_source import read_rgb as read

    return read(path, "image")


def coco_file(dataset: str | Path, split: str = "test") -> Path:
    """The COCO file of ``split`` in a generator output folder, or ``dataset`` itself if it is a file."""
    dataset = Path(dataset)
    if dataset.is_file():
        return dataset
    path = dataset / "annotations" / f"{split}.json"
    if not path.is_file():
        raise SpecError("data", f"no {split} split in {dataset} (expected {path}, as `hcgym generate` writes)")
    return path


def image_path(coco_path: Path, file_name: str) -> Path:
    """Where an image of a COCO file lives: ``<root>/images/<file_name>`` for a generator folder
    (``<root>/annotations/<split>.json``), else beside the COCO file."""
    for folder in (coco_path.parent.parent / "images", coco_path.parent, coco_path.parent / "images"):
        if (folder / file_name).is_file():
            return (folder / file_name).resolve()
    raise SpecError("data", f"image {file_name!r} of {coco_path} not found (looked in "
                            f"{coco_path.parent.parent / 'images'} and {coco_path.parent})")


def visibility(coco_path: Path, images: list[dict[str, Any]]) -> list[np.ndarray]:
    """Per image, ``(G,)`` visibility ``1 - occlusion`` of each target box of :func:`load_coco_boxes`
    (the occluded share of a person's in-image keypoints; 1 where the file has no ``occlusion``)."""
    from hcgym.perception.scoring import person_boxes

    anns: dict[int, list[dict[str, Any]]] = {}
    for a in json.loads(coco_path.read_text()).get("annotations", []):
        anns.setdefault(int(a["image_id"]), []).append(a)
    out = []
    for im in images:
        vis = [1.0 - float(a.get("occlusion", 0.0)) for a in anns.get(im["id"], [])
               if len(person_boxes([a], im["width"], im["height"])[0])]  # the boxes load_coco_boxes keeps
        out.append(np.asarray(vis, np.float64).reshape(-1))
    return out


class CocoResultsDetector:
    """Candidates read from a COCO results file (``[{"image_id", "bbox": [x, y, w, h], "score"}, ...]``):
    the output of any detector, evaluated like the built-in one. Boxes are sorted by score, go through
    the same pre-NMS and cap. ``category_id``, when present, must be the person category (1)."""

    needs_image_id = True

    def __init__(self, path: str | Path) -> None:
        import hashlib

        path = Path(path)
        try:
            raw = path.read_bytes()
            rows = json.loads(raw)
            if isinstance(rows, dict) and "annotations" in rows:  # a COCO file whose annotations carry scores
                rows = rows["annotations"]
            if not isinstance(rows, list):
                raise TypeError(f"expected a JSON list, got {type(rows).__name__}")
            self._by_image: dict[int, list[tuple[list[float], float]]] = {}
            for r in rows:
                if int(r.get("category_id", 1)) != 1:
                    continue
                x, y, w, h = (float(v) for v in r["bbox"])
                self._by_image.setdefault(int(r["image_id"]), []).append(([x, y, x + w, y + h], float(r["score"])))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise SpecError("--detector", f"{path} is not a COCO results file (list of image_id, bbox, score): "
                                          f"{type(e).__name__}: {e}") from None
        self.name = f"coco-results:{path.name}"
        self.fingerprint = hashlib.sha256(raw).hexdigest()[:16]

    def candidates(self, image: np.ndarray, max_candidates: int = 400, pre_nms_iou: float | None = 0.8,
                   key: int | None = None, **_: Any) -> tuple[np.ndarray, np.ndarray]:
        from hcgym.perception.nms.classical import pre_nms

        rows = self._by_image.get(int(key), []) if key is not None else []
        boxes = np.asarray([b for b, _ in rows], np.float32).reshape(-1, 4)
        scores = np.asarray([s for _, s in rows], np.float32).reshape(-1)
        return pre_nms(boxes, scores, pre_nms_iou, max_candidates)


def make_detector(spec: str | Path | None) -> Any:
    """``"simulated"``: the ground-truth-driven simulator; ``"shipped"`` or ``None``: the shipped
    detector; a ``.json`` file: a COCO results file (:class:`CocoResultsDetector`); anything else: a
    detector file (a ``.pt`` checkpoint or an ONNX export of ``person/centernet``), made through the sensor
    registry (the NMS study never imports the detector's package)."""
    if str(spec) == "simulated":
        from hcgym.perception.nms.simulate import DetectorSimulator

        return DetectorSimulator()
    from hcgym.perception.base import OnnxSensor
    from hcgym.perception.registry import make

    if spec is None or str(spec) == "shipped":
        return make(PERSON_DETECTOR)
    if Path(spec).suffix == ".json" and Path(spec).is_file():
        return CocoResultsDetector(spec)
    if not Path(spec).is_file():
        raise SpecError("--detector", f"expected shipped, simulated or a detector file; no such file: {spec}")
    if Path(spec).suffix == ".onnx":
        return OnnxSensor(spec, sensor=PERSON_DETECTOR)
    return make(PERSON_DETECTOR, checkpoint=Path(spec))


def extract_candidates(dataset: str | Path, detector: Any, max_candidates: int = 400, pre_nms_iou: float = 0.8,
                       progress: bool = True, split: str = "test") -> CandidateSet:
    """Run ``detector`` on every image of a COCO file (or of ``split`` of a generator folder).

    Detectors with ``uses_ground_truth = True`` (the simulator) also get ``gt_boxes``, ``visibility``
    and ``key`` (the COCO image id, so that each image's draw is independent of the others).
    """
    from hcgym.perception.scoring import load_coco_boxes

    if isinstance(max_candidates, bool) or not isinstance(max_candidates, int) or max_candidates < 1:
        raise SpecError("max_candidates", f"expected a positive integer, got {max_candidates!r}")
    if not 0.0 <= pre_nms_iou <= 1.0:
        raise SpecError("pre_nms_iou", f"expected a number in [0, 1], got {pre_nms_iou!r}")
    path = coco_file(dataset, split).resolve()
    truth = load_coco_boxes(path)
    oracle = bool(getattr(detector, "uses_ground_truth", False))
    vis = visibility(path, truth) if oracle else None
    iterator: Any = truth
    if progress:
        from tqdm import tqdm

        iterator = tqdm(truth, desc=f"candidates {path.stem} ({detector.name})", unit="img", dynamic_ncols=True)
    images = []
    for i, t in enumerate(iterator):
        file = image_path(path, t["file_name"])
        rgb = read_rgb(file)
        extra = {"gt_boxes": t["boxes"], "visibility": vis[i], "key": t["id"]} if oracle else {}
        if getattr(detector, "needs_image_id", False):
            extra["key"] = t["id"]
        boxes, scores = detector.candidates(rgb, max_candidates=max_candidates, pre_nms_iou=pre_nms_iou, **extra)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")[:max_candidates]  # the contract says sorted; make sure
        images.append(ImageCandidates(file, t["width"], t["height"], t["id"], boxes[order], scores[order],
                                      t["boxes"], t["ignore"]))
    meta = {"detector": detector.name, "fingerprint": detector.fingerprint, "pre_nms_iou": float(pre_nms_iou),
            "max_candidates": int(max_candidates), "source": str(path)}
    return CandidateSet(images, meta)


def cached_candidates(cache: Path, dataset: str | Path, detector: Any, max_candidates: int = 400,
                      pre_nms_iou: float = 0.8, split: str = "test", progress: bool = True) -> CandidateSet:
    """:func:`extract_candidates`, reusing ``cache`` when it was made from the same COCO file (path and
    SHA-256), detector fingerprint, pre-NMS IoU and a cap at least ``max_candidates``."""
    import hashlib

    path = coco_file(dataset, split).resolve()
    want = {"detector": detector.name, "fingerprint": detector.fingerprint, "pre_nms_iou": float(pre_nms_iou),
            "source": str(path), "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    if cache.is_file():
        try:
            cset = CandidateSet.load(cache)
        except SpecError:
            cset = None
        if cset is not None and all(cset.meta.get(k) == v for k, v in want.items()) \
                and cset.meta.get("max_candidates", 0) >= max_candidates:
            return cset.cap(max_candidates) if cset.meta["max_candidates"] > max_candidates else cset
    cset = extract_candidates(path, detector, max_candidates, pre_nms_iou, progress)
    cset.meta["source_sha256"] = want["source_sha256"]
    cset.save(cache)
    return cset
