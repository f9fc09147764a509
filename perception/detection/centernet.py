"""A small single-class CenterNet (Zhou et al., "Objects as Points", 2019) for person detection, in torch.

The network maps an RGB image (letterboxed into a fixed canvas, pixel values 0-255) to three maps
at stride 4: a centre heatmap (sigmoid), the box size as ``log(w / 4), log(h / 4)`` and the sub-pixel
centre offset. Every heatmap cell is a candidate box; :func:`decode` turns the maps into *raw*
candidates: the top-K cells by score, **without** CenterNet's 3x3 max-pool peak extraction (which
acts as an NMS), so NMS methods can be compared on the candidates a real detector produces —
several overlapping boxes around every person and bridging boxes between neighbours.

Backbone: five stride-2 stages of 3x3 conv-BN-ReLU (+ one residual block from stage 2 on), widths
16-24-48-96-128 (``width`` scales them), a top-down feature pyramid back to stride 4, and one shared
3x3 conv before the three 1x1 heads. About 0.5 M parameters at ``width=1``.

Training targets (:func:`encode_targets`) follow TTFNet's elliptical Gaussians (sigma = alpha x box
size / 6 along each axis, alpha 0.54) and CenterNet's penalty-reduced focal loss (alpha 2, beta 4)
normalised by the number of people; size and offset are L1 losses at the centre cells. People
flagged *ignore* (see :mod:`.ground_truth`) are cut out of the heatmap loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hcgym.errors import SpecError

STRIDE = 4


@dataclass(frozen=True)
class CenterNetConfig:
    """Network size and input canvas.

    Attributes:
        input_size: (width, height) of the canvas every image is letterboxed into; both multiples of 32.
        width: multiplier of the channel widths 16-24-48-96-128 (and the 48-wide pyramid).
        alpha: Gaussian size factor of the heatmap targets (TTFNet).
        size_weight: weight of the size loss (the offset loss has weight 1).
    """

    input_size: tuple[int, int] = (384, 288)
    width: float = 1.0
    alpha: float = 0.54
    size_weight: float = 1.0

    def check(self) -> CenterNetConfig:
        w, h = self.input_size
        if w % 32 or h % 32 or w < 64 or h < 64:
            raise SpecError("input_size", f"width and height must be multiples of 32 and >= 64, got {w}x{h}")
        if not 0.1 <= self.width <= 8:
            raise SpecError("width", f"expected 0.1-8, got {self.width}")
        return self

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> CenterNetConfig:
        d = dict(d)
        d["input_size"] = tuple(d["input_size"])
        return cls(**d).check()


def _conv(c_in: int, c_out: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = _conv(c, c)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(self.a(x)))


class CenterNet(nn.Module):
    """Input ``(B, 3, H, W)`` RGB 0-255; output ``(B, 5, H/4, W/4)``: heatmap probability, log size (2),
    offset (2)."""

    def __init__(self, config: CenterNetConfig | None = None) -> None:
        super().__init__()
        self.config = (config or CenterNetConfig()).check()
        c = [max(8, int(round(v * self.config.width))) for v in (16, 24, 48, 96, 128)]
        p = max(8, int(round(48 * self.config.width)))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)
        self.stages = nn.ModuleList([_conv(3, c[0], 2)])
        for i in range(1, 5):
            self.stages.append(nn.Sequential(_conv(c[i - 1], c[i], 2), _Residual(c[i])))
        self.lateral = nn.ModuleList([nn.Conv2d(c[i], p, 1) for i in range(1, 5)])  # strides 4, 8, 16, 32
        self.smooth = _conv(p, p)
        self.heads = nn.Conv2d(p, 5, 1)
        nn.init.normal_(self.heads.weight, std=0.01)
        nn.init.zeros_(self.heads.bias)
        with torch.no_grad():
            self.heads.bias[0] = -2.19  # prior probability 0.1 (CenterNet)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        y = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[1:-1])):
            y = F.interpolate(y, size=f.shape[-2:], mode="nearest") + lat(f)
        out = self.heads(self.smooth(y))
        return torch.cat([torch.sigmoid(out[:, :1]), out[:, 1:]], dim=1)


# ---------------------------------------------------------------- targets and loss
def encode_targets(boxes: np.ndarray, ignore: np.ndarray, input_size: tuple[int, int],
                   alpha: float = 0.54) -> dict[str, np.ndarray]:
    """Training targets of one image at stride 4 from its boxes ``(G, 4)`` (canvas pixels).

    Returns ``heatmap`` (h, w) in [0, 1], ``weight`` (h, w) (0 around ignored people),
    ``size`` (2, h, w), ``offset`` (2, h, w) and ``mask`` (h, w), 1 at the centre cell of each
    counted person (the larger person wins a shared cell).
    """
    w_out, h_out = input_size[0] // STRIDE, input_size[1] // STRIDE
    heat = np.zeros((h_out, w_out), np.float32)
    weight = np.ones((h_out, w_out), np.float32)
    size = np.zeros((2, h_out, w_out), np.float32)
    offset = np.zeros((2, h_out, w_out), np.float32)
    mask = np.zeros((h_out, w_out), np.float32)
    ys, xs = np.mgrid[0:h_out, 0:w_out].astype(np.float32)
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable") if len(boxes) else []
    counted = np.zeros((h_out, w_out), bool)
    for g in order:  # largest first; a later (smaller) person does not take an occupied centre cell
        x0, y0, x1, y1 = (float(v) / STRIDE for v in boxes[g])
        bw, bh = max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ix, iy = int(np.clip(np.floor(cx), 0, w_out - 1)), int(np.clip(np.floor(cy), 0, h_out - 1))
        sx, sy = max(alpha * bw / 6, 0.5), max(alpha * bh / 6, 0.5)
        g_map = np.exp(-((xs - ix) ** 2) / (2 * sx ** 2) - ((ys - iy) ** 2) / (2 * sy ** 2))
        if ignore[g]:
            weight[g_map > 0.05] = 0.0
            continue
        heat = np.maximum(heat, g_map)
        if not counted[iy, ix]:
            counted[iy, ix] = True
            mask[iy, ix] = 1.0
            size[:, iy, ix] = np.log(bw), np.log(bh)
            offset[:, iy, ix] = cx - ix, cy - iy
    weight[heat > 0.05] = 1.0  # a counted person's own footprint is always trained
    return {"heatmap": heat, "weight": weight, "size": size, "offset": offset, "mask": mask}


def centernet_loss(out: torch.Tensor, targets: dict[str, torch.Tensor], size_weight: float = 1.0
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Penalty-reduced focal loss on the heatmap + L1 size and offset losses at centre cells."""
    p = out[:, 0].clamp(1e-4, 1 - 1e-4)
    gt, w, m = targets["heatmap"], targets["weight"], targets["mask"]
    pos = gt.eq(1.0).float() * m
    n_pos = pos.sum().clamp(min=1.0)
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - gt) ** 4 * (1 - pos) * w).sum()
    heat = (pos_loss + neg_loss) / n_pos
    mm = m.unsqueeze(1)
    size = (F.l1_loss(out[:, 1:3], targets["size"], reduction="none") * mm).sum() / n_pos
    off = (F.l1_loss(out[:, 3:5], targets["offset"], reduction="none") * mm).sum() / n_pos
    total = heat + size_weight * size + off
    return total, {"heatmap": float(heat.detach()), "size": float(size.detach()), "offset": float(off.detach())}


# ---------------------------------------------------------------- decoding
def decode(maps: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw candidates of one image from its output maps ``(5, h, w)``: the ``top_k`` cells by score.

    Returns boxes ``(K, 4)`` float32 ``[x0, y0, x1, y1]`` in canvas pixels and scores ``(K,)``,
    sorted by score descending (ties by cell index). No peak extraction, no NMS.
    """
    heat = maps[0].reshape(-1)
    k = min(int(top_k), heat.size)
    idx = np.argpartition(-heat, k - 1)[:k] if k < heat.size else np.arange(heat.size)
    idx = idx[np.lexsort((idx, -heat[idx]))]
    w_out = maps.shape[2]
    iy, ix = idx // w_out, idx % w_out
    cx = (ix + maps[3].reshape(-1)[idx]) * STRIDE
    cy = (iy + maps[4].reshape(-1)[idx]) * STRIDE
    bw = np.exp(np.clip(maps[1].reshape(-1)[idx], -5, 8)) * STRIDE
    bh = np.exp(np.clip(maps[2].reshape(-1)[idx], -5, 8)) * STRIDE
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
    return boxes, heat[idx].astype(np.float32)


def letterbox_params(width: int, height: int, input_size: tuple[int, int]) -> tuple[float, int, int]:
    """Scale and (left, top) padding that fit a ``width`` x ``height`` image centred into the canvas."""
    cw, ch = input_size
    scale = min(cw / width, ch / height)
    nw, nh = int(round(width * scale)), int(round(height * scale))
    return scale, (cw - nw) // 2, (ch - nh) // 2


def letterbox(image: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float, int, int]:
    """The image resized (aspect kept) and centred on a grey canvas; returns (canvas, scale, left, top)."""
    import cv2

    h, w = image.shape[:2]
    scale, left, top = letterbox_params(w, h, input_size)
    cw, ch = input_size
    canvas = np.full((ch, cw, 3), 114, np.uint8)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    resized = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA
                                                          if scale < 1 else cv2.INTER_LINEAR)
    canvas[top:top + nh, left:left + nw] = resized
    return canvas, scale, left, top
