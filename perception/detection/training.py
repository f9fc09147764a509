"""Train the person detector (:mod:`.centernet`) on the generator's COCO output.

:func:`load_split` reads one split of an ``hcgym generate`` folder (images + target boxes from
:mod:`.ground_truth`); :func:`train_detector` trains from scratch or fine-tunes (``init``), in
resumable epochs (``out_dir/last.pt`` after every epoch), with the same result for the same seed.
:func:`evaluate_ap` scores a detector with pycocotools (AP0.5 and AP0.5:0.95).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.scoring import load_coco_boxes
from hcgym.perception.training_common import save_training_state, warmup_cosine


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Optimisation settings (Adam, linear warm-up then cosine decay to 1 % of ``lr``).

    ``flip``/``zoom``/``photometric`` are the augmentation probabilities (zoom: a random crop of
    60-100 % of the image, resized back to the canvas). ``person_zoom`` is the probability of a close-up
    crop instead: around one person, so that the person is 45-125 % of the crop's height with the head
    inside it (cut at the bottom like the subject of a portrait), magnified at most :data:`PERSON_ZOOM_MAX`
    times.
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    seed: int = 0
    flip: float = 0.5
    zoom: float = 0.5
    photometric: float = 0.8
    person_zoom: float = 0.0
    threads: int = 2
    device: str = "cpu"
    loader_workers: int = 0


@dataclass
class TrainResult:
    model: Any
    history: list[dict[str, Any]] = field(default_factory=list)


def load_split(data_dir: str | Path, split: str = "train", max_images: int | None = None) -> list[dict[str, Any]]:
    """Images (RGB uint8, decoded) and target boxes of one split of a generated dataset.

    ``max_images`` keeps the first K images (fine-tuning on k field images).
    """
    import cv2

    data_dir = Path(data_dir)
    ann = data_dir / "annotations" / f"{split}.json"
    if not ann.is_file():
        raise SpecError("--data", f"{data_dir} has no annotations/{split}.json (an `hcgym generate` scene folder)")
    items = load_coco_boxes(ann)[:max_images]
    for it in items:
        path = data_dir / "images" / it["file_name"]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SpecError("--data", f"cannot read image {path}")
        it["image"] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        it["path"] = str(path)
    return items


#: Largest magnification of a person close-up crop, and the smallest person height (pixels) it starts from.
PERSON_ZOOM_MAX = 3.0
PERSON_ZOOM_MIN_PX = 32


def _person_crop(image: np.ndarray, boxes: np.ndarray, ignore: np.ndarray, rng: np.random.Generator,
                 aspect: float) -> tuple[int, int, int, int] | None:
    """A close-up crop ``(x0, y0, w, h)`` (may reach past the image) around one person, or ``None`` when no
    person is large enough to magnify."""
    heights = boxes[:, 3] - boxes[:, 1]
    ok = np.nonzero(~ignore & (heights >= PERSON_ZOOM_MIN_PX))[0]
    if not len(ok):
        return None
    j = int(ok[int(rng.integers(len(ok)))])
    x0, y0, x1, y1 = (float(v) for v in boxes[j])
    ratio = float(rng.uniform(0.45, 1.25))
    ch = max((y1 - y0) / ratio, image.shape[0] / PERSON_ZOOM_MAX, 8.0)
    ch = min(ch, float(image.shape[0]))
    cw = ch * aspect
    top = y0 - float(rng.uniform(0.03, 0.25)) * ch
    left = (x0 + x1) / 2 - cw / 2 + float(rng.uniform(-0.2, 0.2)) * cw
    return int(round(left)), int(round(top)), max(8, int(round(cw))), max(8, int(round(ch)))


def _augment(image: np.ndarray, boxes: np.ndarray, ignore: np.ndarray, cfg: DetectorTrainConfig,
             rng: np.random.Generator, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Letterboxed, augmented canvas and its boxes (canvas pixels)."""
    import cv2

    from hcgym.perception.detection.centernet import letterbox

    h, w = image.shape[:2]
    boxes = boxes.copy()
    crop = None
    if cfg.person_zoom and rng.random() < cfg.person_zoom:
        crop = _person_crop(image, boxes, ignore, rng, input_size[0] / input_size[1])
    if crop is None and rng.random() < cfg.zoom:
        s = rng.uniform(0.6, 1.0)
        crop = (int(rng.integers(0, w - int(w * s) + 1)), int(rng.integers(0, h - int(h * s) + 1)),
                int(w * s), int(h * s))
    if crop is not None:
        x0, y0, cw, ch = crop
        pad = np.full((ch, cw, 3), image.reshape(-1, 3).mean(0), np.uint8)  # past the image: its mean colour
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + cw), min(h, y0 + ch)
        if xb > xa and yb > ya:
            pad[ya - y0:yb - y0, xa - x0:xb - x0] = image[ya:yb, xa:xb]
        image = pad
        boxes = boxes - np.array([x0, y0, x0, y0], np.float32)
        clipped = np.clip(boxes, 0, [cw, ch, cw, ch])
        area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
        carea = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        keep = carea > 0
        ignore = ignore | (carea < 0.35 * np.maximum(area, 1e-6))  # mostly cut away: neither positive nor negative
        boxes, ignore = clipped[keep], ignore[keep]
        h, w = ch, cw
    canvas, scale, left, top = letterbox(np.ascontiguousarray(image), input_size)
    boxes = boxes * scale + np.array([left, top, left, top], np.float32)
    if rng.random() < cfg.flip:
        canvas = canvas[:, ::-1]
        cw = input_size[0]
        boxes = np.stack([cw - boxes[:, 2], boxes[:, 1], cw - boxes[:, 0], boxes[:, 3]], axis=1)
    if rng.random() < cfg.photometric:
        hsv = cv2.cvtColor(np.ascontiguousarray(canvas), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 1] *= rng.uniform(0.6, 1.4)
        hsv[..., 2] = hsv[..., 2] * rng.uniform(0.6, 1.4) + rng.uniform(-20, 20)
        canvas = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    return np.ascontiguousarray(canvas), boxes.astype(np.float32), ignore


class _Dataset:
    """Augmented canvases and targets; item ``i`` of epoch ``e`` depends on ``(seed, e, i)`` only, so any
    number of loader workers gives the same batches."""

    def __init__(self, items: list[dict], cfg: DetectorTrainConfig, input_size: tuple[int, int], alpha: float,
                 epoch: int) -> None:
        self.items, self.cfg, self.input_size, self.alpha, self.epoch = items, cfg, input_size, alpha, epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        import torch

        from hcgym.perception.detection.centernet import encode_targets

        it = self.items[int(i)]
        rng = np.random.default_rng([self.cfg.seed, self.epoch, int(i)])
        canvas, boxes, ignore = _augment(it["image"], it["boxes"], it["ignore"], self.cfg, rng, self.input_size)
        t = encode_targets(boxes, ignore, self.input_size, self.alpha)
        return (torch.from_numpy(canvas.transpose(2, 0, 1).astype(np.float32)),
                {k: torch.from_numpy(v) for k, v in t.items()})


def train_detector(items: list[dict[str, Any]], cfg: DetectorTrainConfig, model: Any = None,
                   out_dir: str | Path | None = None, val_items: list[dict[str, Any]] | None = None,
                   progress: bool = True, log: Callable[[str], None] = print) -> TrainResult:
    """Train ``model`` (a fresh :class:`~.centernet.CenterNet` when ``None``) on ``items``.

    With ``out_dir``, ``last.pt`` (model and optimiser tensors, epoch, history, settings: tensors and
    plain values only, read back with ``weights_only=True``) is written after every epoch and a later call
    with the same arguments resumes from it. ``val_items`` are scored (AP0.5 with greedy NMS at IoU 0.5)
    after every epoch.
    """
    import torch
    from tqdm import tqdm

    from hcgym.perception.detection.centernet import CenterNet, centernet_loss

    if not items:
        raise SpecError("--data", "no training images")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = (model if model is not None else CenterNet()).to(cfg.device)
    input_size = tuple(model.config.input_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(items) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs

    history: list[dict[str, Any]] = []
    start_epoch = 0
    state_path = Path(out_dir) / "last.pt" if out_dir is not None else None
    if state_path is not None and state_path.is_file():
        from hcgym.perception.detection.sensor import load_tensors

        state = load_tensors(state_path, "--resume", "detector training state",
                             "Delete it or use another --out to train from the start.", cfg.device)
        if not isinstance(state, dict) or _run_key(state.get("config", {})) != _run_key(asdict(cfg)) \
                or state.get("n_items") != len(items):
            raise SpecError("--out", f"{state_path} belongs to a run with other settings; use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, history = state["epoch"], state["history"]
        log(f"[train] resuming after epoch {start_epoch}")
    for epoch in range(start_epoch, cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(items))[:steps_per_epoch * cfg.batch_size]
        torch.manual_seed(cfg.seed * 1000 + epoch)
        loader = torch.utils.data.DataLoader(_Dataset(items, cfg, input_size, model.config.alpha, epoch),
                                             batch_size=cfg.batch_size, sampler=order.tolist(),
                                             num_workers=cfg.loader_workers, drop_last=True)
        model.train()
        t0, losses = time.time(), []
        bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False)
        for s, (x, t) in enumerate(bar):
            step = epoch * steps_per_epoch + s
            for g in opt.param_groups:
                g["lr"] = warmup_cosine(step, cfg.lr, cfg.warmup, total)
            x = x.to(cfg.device, non_blocking=True)
            t = {k: v.to(cfg.device, non_blocking=True) for k, v in t.items()}
            loss, parts = centernet_loss(model(x), t, model.config.size_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            losses.append(float(loss.detach()))
            if s % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        rec: dict[str, Any] = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
                               "seconds": round(time.time() - t0, 1)}
        if val_items:
            model.cpu()
            rec.update({f"val_{k}": v for k, v in evaluate_ap(model, val_items).items()})
            model.to(cfg.device)
        history.append(rec)
        if state_path is not None:
            save_training_state(state_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                             "epoch": epoch + 1, "history": history, "config": asdict(cfg),
                                             "n_items": len(items)})
        log(f"[train] {json.dumps(rec)}")
    model = model.cpu().eval()
    return TrainResult(model=model, history=history)


def _run_key(cfg: dict[str, Any]) -> dict[str, Any]:
    """The settings that define a run's result (where it runs and how data is loaded do not)."""
    return {k: v for k, v in cfg.items() if k not in ("threads", "device", "loader_workers")}


def detect_all(detector: Any, items: list[dict[str, Any]], nms: str = "greedy_0.5", max_candidates: int = 100,
               progress: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """(boxes, scores) after ``nms`` for every item's image (no score threshold)."""
    from tqdm import tqdm

    from hcgym.perception import nms as nms_lib

    method = nms_lib.make(nms)
    out = []
    for it in tqdm(items, desc="detect", disable=not progress, leave=False):
        boxes, scores = detector.candidates(it["image"], max_candidates)
        r = method(boxes, scores, it["image"])
        out.append((r.boxes[r.keep], r.scores[r.keep]))
    return out


def evaluate_ap(model_or_detector: Any, items: list[dict[str, Any]], nms: str = "greedy_0.5",
                max_candidates: int = 100) -> dict[str, float]:
    """AP of a model or detector on items, with ``nms`` on its raw candidates."""
    from hcgym.perception.detection.sensor import PersonDetector
    from hcgym.perception.scoring import coco_ap

    det = model_or_detector
    if not hasattr(det, "candidates"):
        det = PersonDetector(model=copy.deepcopy(model_or_detector).eval())
    was_training = getattr(getattr(det, "model", None), "training", False)
    result = coco_ap(items, detect_all(det, items, nms, max_candidates), max_dets=max_candidates)
    if was_training:
        det.model.train()
    return result
