"""Seq2Seq-NMS (Symeonidis, Mademlis, Pitas, Nikolaidis, 2021): NMS as attention-based rescoring.

The candidates of one image, sorted by detector score (descending), are rescored jointly; nothing is
pruned inside the network, the caller thresholds the new scores ``p`` (default: keep all).

Pipeline (reference summary §2, with the OpenDR code's resolutions of the paper's ambiguities):

* **Edge map** (:func:`edge_map`): grayscale, 3x3 Gaussian blur, Scharr ``dx, dy``, magnitude
  scaled to [0, 255], binarised at 240, /255; the image is first resized so its longest side is at
  most ``config.max_side``.
* **FMoD appearance** (:func:`fmod_descriptors`): ROIAlign of each box on the edge map to a level-0
  map of ``S0 x S0``; level ``j`` splits it into ``4^j`` cells re-pooled (ROIAlign) to ``S0 / 2^j``;
  each cell gives 15 statistics {mean, unbiased std, skewness, excess kurtosis, power} x {profile
  averaged over height, profile averaged over width, flattened cell}; ``5 (4^L - 1)`` values (315
  for L = 3). The model z-scores them with dataset statistics and clips to [-50, 50].
* **Geometry** (:func:`geometric_features`): ``G[i, j]`` (14 values) describes key ``j`` relative
  to query ``i`` in the OpenDR order ``[dx, dy, dxy, w_j/w_i, w_j/(W/20), h_j/h_i, h_j/(H/20),
  5 IoU, area_j/area_i, area_j/(W H/400), 5 s_j, 5 (s_j - s_i), h_j/w_j, (h_j/w_j)/(h_i/w_i)]``.
* **Network** (:class:`Seq2SeqNMSNet`): fusion MLPs (query: appearance + diag(G); key: G + the key's
  appearance), ``n_blocks`` joint processing modules with masked multi-head attention, and a head
  LN-Linear-GELU-Dropout-LN-Linear-Sigmoid.
* **Attention mask** (:func:`attention_mask`), applied to ``S = Q K^T / sqrt(d_k)`` before the
  softmax: keys with IoU < 0.2 get ``-inf`` (here -1e9, which gives an exact 0 weight in float32),
  keys ranked after the query (``j > i``, lower-scoring) are scaled by 0.1, the rest are unchanged.
* **Loss** (:func:`weighted_bce`, :func:`class_weights`): ``-sum_i [w1 y log p + w0 (1-y) log(1-p)]``
  with ``w0 = (1-c) T/B``, ``w1 = c T/P``.

Box geometry uses the "+1 pixel" convention of the reference code (``w = x1 - x0 + 1``) for widths,
heights, areas and the IoU of the features and the mask.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.nms.base import NmsMethod, NmsResult, score_order, sort_keep, validate
from hcgym.perception.nms.roi_align import roi_align

N_GEOMETRY = 14


#: Shipped checkpoints (``hcgym train seq2seq-nms``; provenance beside them): with the attention mask,
#: and the no-mask ablation. ``checkpoint="shipped"`` / ``"shipped-nomask"`` name them.
MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED = MODELS_DIR / "seq2seq_nms.pt"
SHIPPED_NOMASK = MODELS_DIR / "seq2seq_nms_nomask.pt"


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """``"shipped"`` and ``"shipped-nomask"`` name the shipped files; anything else is a path."""
    return {"shipped": SHIPPED, "shipped-nomask": SHIPPED_NOMASK}.get(str(checkpoint), Path(checkpoint))


@dataclass
class Seq2SeqConfig:
    """Model size. The default is the small CPU configuration; :meth:`paper` is the seed's.

    Attributes:
        fmod_levels: pyramid levels L (descriptor size ``5 (4^L - 1)``; 3 gives 315).
        fmod_size: level-0 ROIAlign size S0 (divisible by ``2^(L-1)``; paper 160).
        fmod_sampling_ratio: ROIAlign samples per bin and axis (fixed, so the model exports).
        max_side: the image is resized so that its longest side is at most this (paper "medium": 600).
        d_fuse: width of the fusion MLPs (paper 180).
        d_m: query width (paper 256); ``d_a = d_m / 2`` is the key and attention width.
        heads: attention heads H (paper 2; ``d_k = d_a / H``).
        n_blocks: joint processing modules (paper 4).
        dropout: dropout rate (the input stacks use a quarter of it).
        iou_mask: keys with IoU below it are masked out (paper 0.2).
        lower_scale: factor on the logits of lower-ranked keys (paper 0.1).
        mask: apply the attention mask (eq. 10); ``False`` is the ablation: plain attention of each
            query over all ``N`` keys, no IoU cut and no ``lower_scale``.
    """

    fmod_levels: int = 3
    fmod_size: int = 32
    fmod_sampling_ratio: int = 1
    max_side: int = 320
    d_fuse: int = 48
    d_m: int = 64
    heads: int = 2
    n_blocks: int = 2
    dropout: float = 0.05
    iou_mask: float = 0.2
    lower_scale: float = 0.1
    mask: bool = True

    @classmethod
    def paper(cls) -> Seq2SeqConfig:
        return cls(fmod_levels=3, fmod_size=160, fmod_sampling_ratio=2, max_side=600, d_fuse=180, d_m=256, heads=2,
                   n_blocks=4)

    @property
    def d_a(self) -> int:
        return self.d_m // 2

    @property
    def d_appearance(self) -> int:
        return 5 * (4 ** self.fmod_levels - 1)

    def check(self) -> Seq2SeqConfig:
        if self.fmod_size % (2 ** (self.fmod_levels - 1)):
            raise SpecError("fmod_size", f"{self.fmod_size} is not divisible by 2^(L-1) = {2 ** (self.fmod_levels - 1)}")
        if self.d_m % 2 or self.d_a % self.heads:
            raise SpecError("d_m", f"d_m = {self.d_m} must be even and d_m/2 divisible by heads = {self.heads}")
        return self


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def _wh(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return boxes[:, 2] - boxes[:, 0] + 1.0, boxes[:, 3] - boxes[:, 1] + 1.0


def pairwise_iou(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, N)`` IoU with the "+1 pixel" convention (``w = x1 - x0 + 1``)."""
    w, h = _wh(boxes)
    area = w * h
    iw = (torch.minimum(boxes[:, None, 2], boxes[None, :, 2]) - torch.maximum(boxes[:, None, 0], boxes[None, :, 0])
          + 1.0).clamp(min=0.0)
    ih = (torch.minimum(boxes[:, None, 3], boxes[None, :, 3]) - torch.maximum(boxes[:, None, 1], boxes[None, :, 1])
          + 1.0).clamp(min=0.0)
    inter = iw * ih
    return inter / (area[:, None] + area[None, :] - inter)


def geometric_features(boxes: torch.Tensor, scores: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
    """``(N, N, 14)``: entry ``[i, j]`` describes key ``j`` relative to query ``i`` (order in the module doc).

    ``image_wh`` is ``(W, H)`` of the image the boxes are in.
    """
    image_wh = image_wh.to(boxes.dtype)
    wi, hi = image_wh[0], image_wh[1]
    w, h = _wh(boxes)
    area = w * h
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    ux, uy = wi / 20.0, hi / 20.0
    ddx = cx[None, :] - cx[:, None]
    ddy = cy[None, :] - cy[:, None]
    aspect = h / w
    n = boxes.shape[0]

    def key(v: torch.Tensor) -> torch.Tensor:  # property of j, broadcast over the query i
        return v[None, :].expand(n, n)

    feats = [
        ddx / ux,
        ddy / uy,
        (ddx ** 2 + ddy ** 2) / (ux ** 2 + uy ** 2),
        w[None, :] / w[:, None],
        key(w / ux),
        h[None, :] / h[:, None],
        key(h / uy),
        5.0 * pairwise_iou(boxes),
        area[None, :] / area[:, None],
        key(area / (wi * hi / 400.0)),
        key(5.0 * scores),
        5.0 * (scores[None, :] - scores[:, None]),
        key(aspect),
        aspect[None, :] / aspect[:, None],
    ]
    return torch.stack(feats, dim=-1)


def attention_mask(iou: torch.Tensor, threshold: float = 0.2, lower_scale: float = 0.1) -> torch.Tensor:
    """``(N, N)`` multiplicative mask for candidates sorted by score, descending (reference eq. 10).

    ``mask = tril(IoU >= t) + lower_scale * triu(IoU >= t, diagonal=1)``: 1 for keys ranked at or
    before the query, ``lower_scale`` for lower-ranked keys, 0 (then ``-inf``) where IoU < t.
    """
    overlap = (iou >= threshold).to(iou.dtype)
    return torch.tril(overlap) + lower_scale * torch.triu(overlap, diagonal=1)


# --------------------------------------------------------------------------------------------
# Appearance: edge map and FMoD descriptors
# --------------------------------------------------------------------------------------------


def edge_map(image: np.ndarray | torch.Tensor, max_side: int = 600) -> tuple[torch.Tensor, float]:
    """Binary edge map ``(1, 1, h, w)`` float32 of an ``(H, W)`` or ``(H, W, 3)`` RGB image, and the
    resize factor ``h / H`` (the image is resized so its longest side is at most ``max_side``)."""
    img = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).to(torch.float32)
    if img.ndim == 3:
        if img.shape[2] not in (1, 3, 4):
            raise SpecError("image", f"expected (H, W) or (H, W, 3) RGB, got shape {tuple(img.shape)}")
        img = img[..., 0] if img.shape[2] == 1 else img[..., :3] @ torch.tensor([0.299, 0.587, 0.114])
    elif img.ndim != 2:
        raise SpecError("image", f"expected (H, W) or (H, W, 3) RGB, got shape {tuple(img.shape)}")
    hgt, wid = img.shape
    if hgt < 2 or wid < 2:
        raise SpecError("image", f"image too small: {hgt}x{wid}")
    if float(img.max()) <= 1.0:
        img = img * 255.0
    factor = min(1.0, max_side / max(hgt, wid))
    x = img[None, None]
    if factor < 1.0:
        size = (max(2, round(hgt * factor)), max(2, round(wid * factor)))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    gauss = torch.tensor([1.0, 2.0, 1.0]) / 4.0
    x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), (gauss[:, None] * gauss[None, :])[None, None])
    scharr = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]])
    xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
    dx = F.conv2d(xp, scharr[None, None]).abs()
    dy = F.conv2d(xp, scharr.t()[None, None]).abs()
    mag = torch.sqrt(dx ** 2 + dy ** 2)
    peak = float(mag.max())
    mag = mag * (255.0 / peak) if peak > 0 else mag
    return (mag >= 240.0).to(torch.float32), x.shape[-2] / hgt


def _signal_stats(x: torch.Tensor, subsample_mean: bool) -> torch.Tensor:
    """``(..., 5)`` [mean, std (unbiased), skewness, excess kurtosis, power] along the last dim."""
    mu = x.mean(-1, keepdim=True)
    std = x.std(-1, keepdim=True)
    z = (x - mu) / std.clamp(min=1e-6)          # a constant signal has z = 0
    mean = x[..., 0:-1:5].mean(-1, keepdim=True) if subsample_mean else mu
    return torch.cat([mean, std, (z ** 3).mean(-1, keepdim=True), (z ** 4).mean(-1, keepdim=True) - 3.0,
                      (x ** 2).mean(-1, keepdim=True)], dim=-1)


def cell_statistics(cells: torch.Tensor) -> torch.Tensor:
    """``(..., 15)`` statistics of ``(..., h, w)`` cells: [profile over width (averaged over height) |
    profile over height (averaged over width) | flattened cell], 5 each."""
    return torch.cat([_signal_stats(cells.mean(-2), True), _signal_stats(cells.mean(-1), True),
                      _signal_stats(cells.flatten(-2), False)], dim=-1)


def fmod_descriptors(edges: torch.Tensor, boxes: torch.Tensor, spatial_scale: torch.Tensor | float,
                     levels: int = 3, size: int = 160, sampling_ratio: int = 2) -> torch.Tensor:
    """``(N, 5 (4^L - 1))`` FMoD descriptors of ``boxes`` (image coordinates) on ``edges`` (1, 1, h, w)."""
    n = boxes.shape[0]
    rois = torch.cat([torch.zeros(n, 1, dtype=boxes.dtype), boxes], dim=1)
    level0 = roi_align(edges, rois, size, spatial_scale, sampling_ratio, aligned=True)    # (N, 1, S0, S0)
    out = [cell_statistics(level0[:, 0]).reshape(n, -1)]
    for j in range(1, levels):
        k = 2 ** j
        cs = size / k
        grid = torch.arange(k, dtype=boxes.dtype) * cs
        y0, x0 = torch.meshgrid(grid, grid, indexing="ij")
        cells = torch.stack([x0.flatten(), y0.flatten(), x0.flatten() + cs, y0.flatten() + cs], dim=1)  # row-major
        idx = torch.arange(n, dtype=boxes.dtype).repeat_interleave(k * k)[:, None]
        crois = torch.cat([idx, cells.repeat(n, 1)], dim=1)
        pooled = roi_align(level0, crois, size // k, 1.0, sampling_ratio, aligned=True)  # (N k^2, 1, S0/k, S0/k)
        out.append(cell_statistics(pooled[:, 0]).reshape(n, -1))
    return torch.cat(out, dim=1)


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def _mlp(d_in: int, d: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, d), nn.GELU(), nn.LayerNorm(d), nn.Linear(d, d),
                         nn.GELU())


class MaskedMultiHeadAttention(nn.Module):
    """Multi-head attention of each query ``i`` over its own ``N`` relative keys, with the IoU mask."""

    def __init__(self, d: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.d_k = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.drop = nn.Dropout(dropout)

    def logits(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """``(H, N, N)`` unmasked ``Q K^T / sqrt(d_k)``; ``q`` (N, d), ``kv`` (N, N, d)."""
        n = q.shape[0]
        qh = self.q(q).reshape(n, self.heads, 1, self.d_k)                   # (N, H, 1, dk)
        kh = self.k(kv).reshape(n, -1, self.heads, self.d_k).transpose(1, 2)  # (N, H, N, dk)
        return (qh @ kh.transpose(-1, -2))[:, :, 0].transpose(0, 1) / math.sqrt(self.d_k)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(out (N, d), weights (H, N, N))``."""
        n = q.shape[0]
        s = self.logits(q, kv) * mask
        s = s.masked_fill(mask == 0, -1e9)
        weights = torch.softmax(s, dim=-1)
        vh = self.v(kv).reshape(n, -1, self.heads, self.d_k).transpose(1, 2)  # (N, H, N, dk)
        out = (self.drop(weights).transpose(0, 1).unsqueeze(2) @ vh)[:, :, 0]  # (N, H, dk)
        return self.o(out.reshape(n, -1)), weights


class JointProcessingModule(nn.Module):
    """One block: ``F^D = LN(Q + MHA(Q, F^K, F^K))`` with ``Q = F^Q C^Q``;
    ``F^Q <- LN(F^D C^D + F^Q)``; ``F^K[i, j] <- LN(F^K[i, j] + F^D[j] * C^K)``."""

    def __init__(self, d_m: int, d_a: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.c_q = nn.Linear(d_m, d_a)
        self.attn = MaskedMultiHeadAttention(d_a, heads, dropout)
        self.ln_d = nn.LayerNorm(d_a)
        self.c_d = nn.Linear(d_a, d_m)
        self.ln_q = nn.LayerNorm(d_m)
        self.c_k = nn.Parameter(torch.empty(d_a).uniform_(0.01, 2.0))     # the Scale Layer
        self.ln_k = nn.LayerNorm(d_a)
        self.drop = nn.Dropout(dropout)

    def forward(self, fq: torch.Tensor, fk: torch.Tensor, mask: torch.Tensor):
        q = self.c_q(fq)
        att, weights = self.attn(q, fk, mask)
        fd = self.ln_d(q + self.drop(att))
        fq = self.ln_q(self.drop(self.c_d(fd)) + fq)
        fk = self.ln_k(fk + (fd * self.c_k)[None, :, :])
        return fq, fk, weights


class Seq2SeqNMSNet(nn.Module):
    """The rescoring network on one image's candidates, **sorted by detector score, descending**.

    ``forward(edges, boxes, scores, image_wh) -> p (N,)``: ``edges`` (1, 1, h, w) the edge map of the
    image resized from ``image_wh = (W, H)``; ``boxes`` (N, 4) xyxy in the original image; ``scores`` (N,).
    """

    def __init__(self, config: Seq2SeqConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = (config or Seq2SeqConfig()).check()
        d_in = cfg.dropout / 4
        self.register_buffer("app_mean", torch.zeros(cfg.d_appearance))
        self.register_buffer("app_std", torch.ones(cfg.d_appearance))
        self.app_mlp = _mlp(cfg.d_appearance, cfg.d_fuse, d_in)
        self.gq_mlp = _mlp(N_GEOMETRY, cfg.d_fuse, d_in)
        self.gk_mlp = _mlp(N_GEOMETRY, cfg.d_fuse, d_in)
        self.fuse_q = nn.Sequential(nn.LayerNorm(2 * cfg.d_fuse), nn.Linear(2 * cfg.d_fuse, cfg.d_m), nn.GELU())
        self.fuse_k = nn.Sequential(nn.LayerNorm(2 * cfg.d_fuse), nn.Linear(2 * cfg.d_fuse, cfg.d_a), nn.GELU())
        self.blocks = nn.ModuleList(JointProcessingModule(cfg.d_m, cfg.d_a, cfg.heads, cfg.dropout)
                                    for _ in range(cfg.n_blocks))
        self.head = nn.Sequential(nn.LayerNorm(cfg.d_m), nn.Linear(cfg.d_m, cfg.d_a), nn.GELU(), nn.Dropout(cfg.dropout),
                                  nn.LayerNorm(cfg.d_a), nn.Linear(cfg.d_a, 1), nn.Sigmoid())
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def appearance(self, edges: torch.Tensor, boxes: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
        """Raw FMoD descriptors ``(N, 5 (4^L - 1))``."""
        cfg = self.config
        scale = torch.stack([edges.shape[-1] / image_wh[0].to(boxes.dtype),
                             edges.shape[-2] / image_wh[1].to(boxes.dtype)])
        return fmod_descriptors(edges, boxes, scale, cfg.fmod_levels, cfg.fmod_size, cfg.fmod_sampling_ratio)

    def rescore(self, app: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor, image_wh: torch.Tensor,
                use_mask: bool | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(p (N,), attention weights per block)`` from raw descriptors ``app``; ``use_mask`` defaults
        to ``config.mask``."""
        cfg = self.config
        use_mask = cfg.mask if use_mask is None else use_mask
        a = ((app - self.app_mean) / self.app_std).clamp(-50.0, 50.0)
        g = geometric_features(boxes, scores, image_wh)
        iou = g[..., 7] / 5.0
        n = boxes.shape[0]
        mask = attention_mask(iou, cfg.iou_mask, cfg.lower_scale) if use_mask else torch.ones_like(iou)
        ea = self.app_mlp(a)                                                      # (N, d_fuse)
        gq = torch.diagonal(g, dim1=0, dim2=1).transpose(0, 1)                    # (N, 14) = G[i, i]
        fq = self.fuse_q(torch.cat([ea, self.gq_mlp(gq)], dim=-1))                # (N, d_m)
        fk = self.fuse_k(torch.cat([self.gk_mlp(g), ea[None, :, :].expand(n, n, -1)], dim=-1))  # (N, N, d_a)
        weights = []
        for block in self.blocks:
            fq, fk, w = block(fq, fk, mask)
            weights.append(w)
        return self.head(fq)[:, 0], weights

    def forward(self, edges: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor,
                image_wh: torch.Tensor) -> torch.Tensor:
        return self.rescore(self.appearance(edges, boxes, image_wh), boxes, scores, image_wh)[0]

    def set_normalisation(self, descriptors: torch.Tensor) -> None:
        """Per-dimension z-score statistics of raw FMoD descriptors ``(M, D)`` of a training set.

        Dimensions that are (nearly) constant on the set (std <= 1e-3) are only centred: dividing
        by a tiny std would blow their noise up to the +-50 clip.
        """
        std = descriptors.std(0)
        self.app_mean.copy_(descriptors.mean(0))
        self.app_std.copy_(torch.where(std > 1e-3, std, torch.ones_like(std)))


# --------------------------------------------------------------------------------------------
# Labels and loss
# --------------------------------------------------------------------------------------------


def class_weights(gt_counts: Any, candidate_counts: Any, c: float = 0.1, max_dets: int | None = None,
                  start: int = 1) -> tuple[float, float]:
    """``(w0, w1)`` of eq. (12): ``P = sum G_m``, ``B = sum max(0, R_m - G_m)``, ``T = P + B``,
    ``w0 = (1 - c) T / B``, ``w1 = c T / P``. As in the reference code, counts are capped at
    ``max_dets`` and ``P``, ``B`` start at ``start`` (1; 0 gives the bare equation)."""
    g = np.asarray(gt_counts, dtype=np.int64)
    r = np.asarray(candidate_counts, dtype=np.int64)
    if max_dets is not None:
        g, r = np.minimum(g, max_dets), np.minimum(r, max_dets)
    p = start + int(g.sum())
    b = start + int(np.maximum(0, r - g).sum())
    if p <= 0 or b <= 0:
        raise SpecError("class_weights", f"need positives and background, got P = {p}, B = {b}")
    t = p + b
    return (1.0 - c) * t / b, c * t / p


def weighted_bce(p: torch.Tensor, y: torch.Tensor, w0: float, w1: float) -> torch.Tensor:
    """Eq. (11), summed over the candidates; ``p`` clamped to [0.001, 0.999]."""
    p = p.clamp(0.001, 0.999)
    return -(w1 * y * torch.log(p) + w0 * (1.0 - y) * torch.log(1.0 - p)).sum()


def match_labels(boxes: np.ndarray, order_scores: np.ndarray, gt_boxes: np.ndarray,
                 iou_threshold: float = 0.5) -> np.ndarray:
    """``(N,)`` 0/1 labels: greedy matching in order of ``order_scores`` (descending); a candidate is
    positive when its best IoU (> ``iou_threshold``, strict) is with a not-yet-matched ground truth."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    y = np.zeros(len(boxes))
    if len(gt) == 0 or len(boxes) == 0:
        return y
    iou = pairwise_iou(torch.as_tensor(np.concatenate([boxes, gt])))[: len(boxes), len(boxes):].numpy()
    taken = np.zeros(len(gt), bool)
    for i in np.argsort(-np.asarray(order_scores), kind="stable"):
        cand = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(cand))
        if cand[j] > iou_threshold:
            taken[j] = True
            y[i] = 1.0
    return y


# --------------------------------------------------------------------------------------------
# The NMS method
# --------------------------------------------------------------------------------------------


class Seq2SeqNMS(NmsMethod):
    """Seq2Seq-NMS behind the common interface; ``image`` is required.

    Args:
        checkpoint: a file written by :func:`save_model`, ``"shipped"`` (the default of
            ``nms.make("seq2seq")``: the model trained on the shipped detector's candidates) or
            ``"shipped-nomask"`` (its no-mask ablation); ``None`` gives an untrained model (random init).
        config: size configuration of an untrained model (default: the small CPU configuration).
        score_threshold: candidates whose rescored ``p`` is below it are removed (default 0: keep all,
            as in the seed's evaluation).
        max_candidates: only the highest-scoring ones are rescored (others get 0); None for all.
    """

    requires_image = True

    def __init__(self, checkpoint: str | Path | None = None, config: Seq2SeqConfig | None = None,
                 score_threshold: float = 0.0, max_candidates: int | None = None,
                 model: Seq2SeqNMSNet | None = None) -> None:
        if model is None:
            if checkpoint is not None:
                model = load_model(resolve_checkpoint(checkpoint))
            else:
                model = Seq2SeqNMSNet(config)
        self.model = model.eval()
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.score_threshold = float(score_threshold)
        self.max_candidates = max_candidates

    def __call__(self, boxes: Any, scores: Any, image: Any = None) -> NmsResult:
        b, s = validate(boxes, scores)
        if image is None:
            raise SpecError("image", "Seq2Seq-NMS needs the image (appearance features); got None")
        if len(b) == 0:
            return NmsResult(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4)))
        img = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image)
        edges, _ = edge_map(img, self.model.config.max_side)
        order = score_order(s)
        if self.max_candidates is not None:
            order = order[: self.max_candidates]
        wh = torch.tensor([img.shape[1], img.shape[0]], dtype=torch.float32)
        with torch.no_grad():
            p = self.model(edges, torch.as_tensor(b[order], dtype=torch.float32),
                           torch.as_tensor(s[order], dtype=torch.float32), wh).double().numpy()
        final = np.zeros_like(s)
        final[order] = p
        kept = order[p >= self.score_threshold]
        final[np.setdiff1d(np.arange(len(s)), kept)] = 0.0
        return NmsResult(sort_keep(kept, final), final, b)

    nms = __call__

    def _run(self, boxes: np.ndarray, scores: np.ndarray) -> NmsResult:  # pragma: no cover - __call__ overrides
        raise SpecError("image", "Seq2Seq-NMS needs the image")

    def __repr__(self) -> str:
        return (f"Seq2SeqNMS(checkpoint={self.checkpoint!r}, config={self.model.config}, "
                f"score_threshold={self.score_threshold}, max_candidates={self.max_candidates})")


def save_model(model: Seq2SeqNMSNet, path: str | Path) -> Path:
    """Write the model's config and weights to ``path`` (atomically: a temporary file, then a rename)."""
    import io

    from hcgym.paths import atomic_write_bytes

    path = Path(path)
    buf = io.BytesIO()
    torch.save({"config": asdict(model.config), "state_dict": model.state_dict()}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_model(path: str | Path) -> Seq2SeqNMSNet:
    path = Path(path)
    if not path.is_file():
        raise SpecError("checkpoint", f"no such file: {path}")
    data = torch.load(path, map_location="cpu", weights_only=True)
    model = Seq2SeqNMSNet(Seq2SeqConfig(**data["config"]))
    model.load_state_dict(data["state_dict"])
    return model.eval()


def export_onnx(model: Seq2SeqNMSNet, path: str | Path, edge_hw: tuple[int, int] = (240, 320),
                n_example: int = 8, dynamic: bool = True) -> Path:
    """Export ``model`` (inputs ``edges, boxes, scores, image_wh``; output ``p``) to ONNX.

    The edge-map size ``edge_hw`` is fixed (a camera's resolution is; the interpolation matrices of
    ROIAlign depend on it); with ``dynamic`` the number of candidates N is a dynamic axis, otherwise
    it is fixed at ``n_example``. ``image_wh`` is an input, so any image resized to ``edge_hw`` works.
    """
    path = Path(path)
    model = model.eval()
    gen = torch.Generator().manual_seed(0)
    h, w = edge_hw
    xy = torch.rand(n_example, 2, generator=gen) * torch.tensor([w, h]) * 0.6
    boxes = torch.cat([xy, xy + 10 + torch.rand(n_example, 2, generator=gen) * 40], dim=1)
    scores = torch.sort(torch.rand(n_example, generator=gen), descending=True).values
    edges = (torch.rand(1, 1, h, w, generator=gen) > 0.8).float()
    wh = torch.tensor([float(w), float(h)])
    kwargs: dict[str, Any] = {}
    if dynamic:
        n = torch.export.Dim("n", min=2, max=4096)
        kwargs["dynamic_shapes"] = {"edges": None, "boxes": {0: n}, "scores": {0: n}, "image_wh": None}
    torch.onnx.export(model, (edges, boxes, scores, wh), str(path), input_names=["edges", "boxes", "scores", "image_wh"],
                      output_names=["p"], dynamo=True, verbose=False, **kwargs)
    return path
