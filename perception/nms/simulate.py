"""A detector *simulator*: candidate boxes drawn around the ground truth (reference summary §2.6(a)).

**Simulated candidates are not detector output.** The simulator is given the ground truth, so it is a
tool for tests, demos and pipeline checks (``--detector simulated``), never a stand-in for a real
detector in reported results.

Per image (seeded by ``(seed, key)``, ``key`` = the COCO image id, so each image's draw is
independent of the others and of the order they come in):

* per person, a confidence ``c ~ U(0.6, 1) (0.3 + 0.7 v)`` (``v`` = visibility, 1 - occlusion) and
  ``k ~ Poisson(rate)`` jittered copies of the box: width and height scaled by ``exp(N(0, scale_sigma))``,
  centre moved by ``N(0, offset_sigma)`` times the width and height; score ``c IoU^2 + N(0, score_noise)``
  (a noisy increasing function of the IoU with the person);
* false positives:

  - **bridge** boxes spanning two adjacent people (boxes that overlap or nearly touch, of similar
    height), with probability ``bridge_prob`` per pair, score ``min(c_a, c_b) U(0.4, 0.85)``: the
    crowd failure that greedy NMS mishandles;
  - **partial-body** boxes, ``Poisson(partial_rate)`` per person: the top 35-65 % of the body,
    score ``c U(0.15, 0.5)``;
  - **background** boxes, ``Poisson(background_rate)`` per image, person-shaped (height 8-50 % of the
    image, aspect 1.5-3.5) anywhere, score ``0.35 U^2``;

* scores clipped to [0.01, 0.99], boxes clipped to the image (boxes under 1 pixel dropped), sorted
  by score (descending, stable), greedy NMS at ``pre_nms_iou`` (IoU > t removes), capped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.nms.classical import pre_nms


@dataclass(frozen=True)
class DetectorSimulator:
    """Candidates around the ground truth, with the detector interface plus ``gt_boxes`` (see module).

    Attributes:
        seed: with the image ``key`` it seeds every draw.
        rate: mean number of jittered copies per person (Poisson lambda).
        scale_sigma: log-normal sigma of the width and height scale of a copy.
        offset_sigma: standard deviation of a copy's centre offset, as a fraction of width and height.
        score_noise: standard deviation of the additive score noise.
        bridge_prob: probability of a bridge box per adjacent pair of people.
        partial_rate: mean number of partial-body boxes per person.
        background_rate: mean number of background boxes per image.
    """

    seed: int = 0
    rate: float = 8.0
    scale_sigma: float = 0.12
    offset_sigma: float = 0.07
    score_noise: float = 0.06
    bridge_prob: float = 0.5
    partial_rate: float = 0.5
    background_rate: float = 10.0

    name = "simulated"
    #: ``extract_candidates`` passes ``gt_boxes``, ``visibility`` and ``key`` to such detectors
    uses_ground_truth = True

    @property
    def fingerprint(self) -> str:
        """Hash of the parameters (the simulator's "weights")."""
        return hashlib.sha256(json.dumps({"simulator": asdict(self)}, sort_keys=True).encode()).hexdigest()[:16]

    def candidates(self, image: Any, max_candidates: int = 400, pre_nms_iou: float = 0.8, *,
                   gt_boxes: Any = None, visibility: Any = None, key: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (N, 4) float32 xyxy, scores (N,) float32)`` by score, descending, ``N <= max_candidates``.

        ``image`` gives only the size (``(H, W, ...)`` array); ``gt_boxes`` ``(G, 4)`` xyxy pixels;
        ``visibility`` ``(G,)`` in [0, 1] (default 1).
        """
        if gt_boxes is None:
            raise SpecError("gt_boxes", "the detector simulator draws candidates around the ground truth; "
                                        "pass gt_boxes (G, 4)")
        height, width = np.shape(image)[:2]
        gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        vis = np.ones(len(gt)) if visibility is None else np.clip(np.asarray(visibility, np.float64), 0.0, 1.0)
        if vis.shape != (len(gt),):
            raise SpecError("visibility", f"expected shape ({len(gt)},), got {vis.shape}")
        rng = np.random.default_rng([self.seed, int(key)])
        conf = rng.uniform(0.6, 1.0, len(gt)) * (0.3 + 0.7 * vis)
        parts = [self._copies(rng, gt, conf), self._bridges(rng, gt, conf), self._partials(rng, gt, conf),
                 self._background(rng, width, height)]
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.clip(np.concatenate([p[1] for p in parts]), 0.01, 0.99)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, height)
        ok = ((boxes[:, 2] - boxes[:, 0]) >= 1.0) & ((boxes[:, 3] - boxes[:, 1]) >= 1.0)
        return pre_nms(boxes[ok], scores[ok], pre_nms_iou, max_candidates)

    def _copies(self, rng: np.random.Generator, gt: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = rng.poisson(self.rate, len(gt))
        src = np.repeat(np.arange(len(gt)), k)
        w, h = (gt[src, 2] - gt[src, 0]), (gt[src, 3] - gt[src, 1])
        cx = (gt[src, 0] + gt[src, 2]) / 2 + rng.normal(0.0, self.offset_sigma, len(src)) * w
        cy = (gt[src, 1] + gt[src, 3]) / 2 + rng.normal(0.0, self.offset_sigma, len(src)) * h
        w = w * np.exp(rng.normal(0.0, self.scale_sigma, len(src)))
        h = h * np.exp(rng.normal(0.0, self.scale_sigma, len(src)))
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        iou = paired_iou(boxes, gt[src])
        scores = conf[src] * iou ** 2 + rng.normal(0.0, self.score_noise, len(src))
        return boxes.reshape(-1, 4), scores

    def _bridges(self, rng: np.random.Generator, gt: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = [], []
        for a, b in adjacent_pairs(gt):
            if rng.random() < self.bridge_prob:
                box = np.concatenate([np.minimum(gt[a, :2], gt[b, :2]), np.maximum(gt[a, 2:], gt[b, 2:])])
                size = np.tile(box[2:] - box[:2], 2)
                boxes.append(box + rng.normal(0.0, 0.03, 4) * size)
                scores.append(min(conf[a], conf[b]) * rng.uniform(0.4, 0.85))
        return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)

    def _partials(self, rng: np.random.Generator, gt: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        src = np.repeat(np.arange(len(gt)), rng.poisson(self.partial_rate, len(gt)))
        frac = rng.uniform(0.35, 0.65, len(src))
        boxes = gt[src].copy()
        boxes[:, 3] = boxes[:, 1] + frac * (gt[src, 3] - gt[src, 1])
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        boxes += rng.normal(0.0, 0.04, boxes.shape) * size
        return boxes.reshape(-1, 4), conf[src] * rng.uniform(0.15, 0.5, len(src))

    def _background(self, rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        n = rng.poisson(self.background_rate)
        h = rng.uniform(0.08, 0.5, n) * height
        w = h / rng.uniform(1.5, 3.5, n)
        x0, y0 = rng.uniform(0, 1, n) * (width - w), rng.uniform(0, 1, n) * (height - h)
        boxes = np.stack([x0, y0, x0 + w, y0 + h], axis=1)
        return boxes.reshape(-1, 4), 0.35 * rng.uniform(0, 1, n) ** 2


def synthetic_scene(rng: np.random.Generator, width: int, height: int, people: int,
                    clutter: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A cluttered synthetic RGB image ``(height, width, 3)`` uint8 with ``people`` person-shaped boxes
    (height 15-60 % of the image, aspect 2-3, flat random colours) and ``clutter`` other rectangles on
    noise, and the people's boxes ``(people, 4)`` xyxy pixels: scenes for the detector simulator whose
    edge maps have the density of a street scene (tests, parity checks of the Seq2Seq-NMS export)."""
    img = rng.integers(90, 140, (height, width, 3)).astype(np.uint8)
    for _ in range(clutter):
        x0, y0 = int(rng.integers(0, max(1, width - 5))), int(rng.integers(0, max(1, height - 5)))
        img[y0:y0 + int(rng.integers(5, max(6, height // 4))), x0:x0 + int(rng.integers(5, max(6, width // 10)))] = (
            rng.integers(0, 255, 3))
    h = rng.uniform(0.15, 0.6, people) * height
    w = h / rng.uniform(2.0, 3.0, people)
    x0, y0 = rng.uniform(0, 1, people) * (width - w), rng.uniform(0, 1, people) * (height - h)
    gt = np.stack([x0, y0, x0 + w, y0 + h], axis=1)
    for box in gt[np.argsort(gt[:, 3])]:  # nearer (lower) people drawn last, over the others
        c0, r0, c1, r1 = (int(round(v)) for v in box)
        img[r0:r1, c0:c1] = rng.integers(0, 255, 3)
    return img, gt


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(K,)`` IoU of ``a[k]`` with ``b[k]`` (continuous coordinates, as :func:`~hcgym.perception.nms.iou_matrix`)."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0.0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0.0, None)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def adjacent_pairs(gt: np.ndarray) -> list[tuple[int, int]]:
    """Pairs ``(a, b)``, ``a < b``, of boxes of similar height (ratio within 1.6) that overlap or whose
    horizontal gap is under half the narrower width and that share at least half of the lower height."""
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    pairs = []
    for a in range(len(gt)):
        for b in range(a + 1, len(gt)):
            if max(h[a], h[b]) > 1.6 * min(h[a], h[b]):
                continue
            gap = max(gt[a, 0], gt[b, 0]) - min(gt[a, 2], gt[b, 2])
            vertical = min(gt[a, 3], gt[b, 3]) - max(gt[a, 1], gt[b, 1])
            if gap < 0.5 * min(w[a], w[b]) and vertical >= 0.5 * min(h[a], h[b]):
                pairs.append((a, b))
    return pairs
