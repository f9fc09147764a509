"""hcgym's in-house face recognizer: a small IR-ResNet, its ArcFace loss and its sensor.

* :class:`IRNet`: stem 3x3 conv, four stages of MobileNetV2-style inverted-residual blocks
  (the "ResNet ... where inverted residual blocks were employed" of Passalis & Tefas, EUSIPCO 2021),
  and a face.evoLVe output head (BN -> dropout -> flatten -> Linear -> BN1d) giving a 512-d
  embedding. Blocks are numbered globally from 0, so "exit k" is the output of ``blocks[k]``.
* :func:`flops_per_block` / :func:`choose_exits`: FLOP map of the network
  (:class:`torch.utils.flop_counter.FlopCounterMode`, 2 FLOPs per multiply-add of convs and
  matmuls, deterministic) and exit placement by FLOP fraction (methods_chapter2.md section 1.5).
* :class:`ArcFaceLoss`: additive angular margin (Deng et al., CVPR 2019), s = 32, m = 0.5.
* :class:`HcgymFaceEmbedder`: the :class:`~hcgym.perception.base.TorchSensor` around an IRNet
  checkpoint (``.pt`` state_dict + ``.pt.json`` architecture). Its ONNX export is in the ArcFace
  format (N x 3 x S x S, ``(x - 127.5) / 127.5``, N x 512), so it also loads with
  :class:`~hcgym.perception.face.recognizers.ArcFaceOnnxRecognizer`.
"""

from __future__ import annotations

import io
import json
import math
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hcgym.errors import SpecError
from hcgym.perception.base import TorchSensor
from hcgym.types import Detections, Embeddings

#: Default architecture: units per stage, widths per stage, expansion per stage (t of MobileNetV2).
DEFAULT_UNITS: tuple[int, ...] = (1, 2, 3, 1)
DEFAULT_WIDTHS: tuple[int, ...] = (32, 64, 128, 256)
DEFAULT_EXPANSIONS: tuple[int, ...] = (1, 4, 4, 4)
CHECKPOINT_FORMAT = "hcgym-irnet"


# ---------------------------------------------------------------- network
class InvertedResidual(nn.Module):
    """1x1 expand -> BN -> PReLU -> 3x3 depthwise (stride) -> BN -> PReLU -> 1x1 project -> BN.

    The expand conv is left out when ``expansion == 1`` (as in MobileNetV2's first block). The input
    is added back when stride is 1 and the channel count is unchanged.
    """

    def __init__(self, in_c: int, out_c: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_c * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(in_c, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.PReLU(hidden)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.PReLU(hidden), nn.Conv2d(hidden, out_c, 1, bias=False), nn.BatchNorm2d(out_c)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_c == out_c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def _out_size(size: int, n_stages: int) -> int:
    for _ in range(n_stages):  # 3x3 conv, stride 2, padding 1
        size = (size - 1) // 2 + 1
    return size


class IRNet(nn.Module):
    """Small IR-ResNet for S x S aligned faces (S = 56 by default; 112 works too).

    Input (N, 3, S, S) normalised as ``(rgb - 127.5) / 127.5``; output (N, ``embedding_dim``).
    Resolution after the stem is S; each stage halves it (56 -> 28, 14, 7, 4).
    """

    def __init__(self, units: Sequence[int] = DEFAULT_UNITS, widths: Sequence[int] = DEFAULT_WIDTHS,
                 expansions: Sequence[int] = DEFAULT_EXPANSIONS, input_size: int = 56, embedding_dim: int = 512,
                 dropout: float = 0.0) -> None:
        super().__init__()
        units, widths, expansions = [int(u) for u in units], [int(w) for w in widths], [int(e) for e in expansions]
        if not (len(units) == len(widths) == len(expansions)) or min(units) < 1 or min(widths) < 1 or min(expansions) < 1:
            raise SpecError("IRNet", f"units {units}, widths {widths} and expansions {expansions} must be positive "
                                     "and of equal length (one entry per stage)")
        if input_size < 16:
            raise SpecError("input_size", f"must be at least 16 pixels, got {input_size}")
        self.units, self.widths, self.expansions = tuple(units), tuple(widths), tuple(expansions)
        self.input_size, self.embedding_dim, self.dropout = int(input_size), int(embedding_dim), float(dropout)
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.PReLU(widths[0]))
        blocks, stage_of, c = [], [], widths[0]
        for s, (n, w, t) in enumerate(zip(units, widths, expansions)):
            for u in range(n):
                blocks.append(InvertedResidual(c, w, 2 if u == 0 else 1, t))
                stage_of.append(s)
                c = w
        self.blocks = nn.ModuleList(blocks)
        self.stage_of: tuple[int, ...] = tuple(stage_of)  #: stage index of each block
        self.out_hw = _out_size(self.input_size, len(units))
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.Dropout(self.dropout), nn.Flatten(),
                                  nn.Linear(c * self.out_hw ** 2, self.embedding_dim),
                                  nn.BatchNorm1d(self.embedding_dim))

    # -- shapes
    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def block_channels(self, k: int) -> int:
        """Channels C of the feature map after block ``k``."""
        return self.widths[self.stage_of[k]]

    def block_hw(self, k: int, input_size: int | None = None) -> int:
        """Side H = W of the feature map after block ``k``."""
        return _out_size(self.input_size if input_size is None else input_size, self.stage_of[k] + 1)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-friendly)."""
        return {"units": list(self.units), "widths": list(self.widths), "expansions": list(self.expansions),
                "input_size": self.input_size, "embedding_dim": self.embedding_dim, "dropout": self.dropout}

    # -- forward passes
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, embedding_dim)."""
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)

    def forward_to(self, x: torch.Tensor, block: int) -> torch.Tensor:
        """Run only as far as block ``block``: (N, 3, S, S) -> (N, C, H, W) after that block."""
        self._check_block(block)
        x = self.stem(x)
        for b in self.blocks[: block + 1]:
            x = b(x)
        return x

    def forward_features(self, x: torch.Tensor, exits: Sequence[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """One pass: the feature maps after each block in ``exits`` (in the given order) and the embedding."""
        for k in exits:
            self._check_block(k)
        wanted = {int(k) for k in exits}
        maps: dict[int, torch.Tensor] = {}
        x = self.stem(x)
        for k, b in enumerate(self.blocks):
            x = b(x)
            if k in wanted:
                maps[k] = x
        return [maps[int(k)] for k in exits], self.head(x)

    def _check_block(self, k: int) -> None:
        if not 0 <= int(k) < self.n_blocks:
            raise SpecError("exit", f"block index {k} out of range 0..{self.n_blocks - 1}")


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Sequence[torch.Tensor]) -> nn.Module:
    """Re-estimate every BatchNorm's running mean/variance as the plain average over ``batches``.

    Each batch is an (N, 3, S, S) input. Used to give a randomly initialised network O(1) outputs in
    eval mode (its default running statistics, mean 0 / variance 1, shrink activations layer by
    layer). Returns ``model`` in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
    return model.eval()


def random_irnet(seed: int = 0, **arch: Any) -> IRNet:
    """A seeded, randomly initialised IRNet with BatchNorm statistics set on seeded noise (eval mode).

    For tests and export checks: its embeddings are O(1) but carry no identity information.
    """
    g = torch.Generator().manual_seed(int(seed))
    state = torch.random.get_rng_state()
    torch.manual_seed(int(seed))
    try:
        model = IRNet(**arch)
    finally:
        torch.random.set_rng_state(state)
    s = model.input_size
    return recalibrate_batchnorm(model, [torch.rand(16, 3, s, s, generator=g) * 2 - 1 for _ in range(4)])


# ---------------------------------------------------------------- FLOPs and exit placement
def count_flops(fn: Any, *args: Any) -> int:
    """FLOPs of ``fn(*args)`` by FlopCounterMode (2 per multiply-add of convs and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        fn(*args)
    return int(fc.get_total_flops())


def flops_per_block(model: IRNet, input_size: int | None = None) -> dict[str, Any]:
    """FLOPs per face of each part of ``model``: ``{"stem", "blocks": [..], "head", "total", "cumulative": [..]}``.

    ``cumulative[k]`` is the cost of running the stem and blocks 0..k (the backbone cost of exit k).
    ``input_size`` defaults to the model's; the head can only be counted at that size.
    """
    size = model.input_size if input_size is None else int(input_size)
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, 3, size, size)
        stem = count_flops(model.stem, x)
        x = model.stem(x)
        blocks = []
        for b in model.blocks:
            blocks.append(count_flops(b, x))
            x = b(x)
        head = count_flops(model.head, x) if size == model.input_size else 0
    finally:
        model.train(was_training)
    cum = np.cumsum([stem, *blocks])[1:]
    return {"stem": stem, "blocks": blocks, "head": head, "total": int(stem + sum(blocks) + head),
            "cumulative": [int(c) for c in cum], "input_size": size}


def choose_exits(model: IRNet, fractions: Sequence[float] = (0.22, 0.38, 0.50),
                 input_size: int | None = None) -> tuple[list[int], list[float]]:
    """Exit blocks whose cumulative FLOP fraction of the full network is closest to each target.

    Returns (block indices, strictly increasing; their actual fractions). The last block is never an
    exit (the final embedding follows it directly). Picks minimise the summed distance to the targets.
    """
    fl = flops_per_block(model, input_size)
    frac = [c / fl["total"] for c in fl["cumulative"][:-1]]
    targets = sorted(float(f) for f in fractions)
    if len(targets) > len(frac):
        raise SpecError("fractions", f"{len(targets)} exits asked for but the network has only {len(frac)} "
                                     "blocks before the last")
    best = min(combinations(range(len(frac)), len(targets)),
               key=lambda ks: sum(abs(frac[k] - t) for k, t in zip(ks, targets)))
    return list(best), [frac[k] for k in best]


# ---------------------------------------------------------------- loss
class ArcFaceLoss(nn.Module):
    """Additive angular margin loss: CE over ``s * cos(theta_y + m)`` (target) and ``s * cos(theta_j)``.

    Class weights (n_classes, in_features) are L2-normalised, as are the embeddings. Where
    ``theta + m >= pi`` the target logit is ``cos(theta) - m * sin(m)`` instead (ArcFace paper).
    """

    def __init__(self, in_features: int, n_classes: int, s: float = 32.0, m: float = 0.5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.s, self.m = float(s), float(m)
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.th = math.cos(math.pi - m)  # theta + m < pi  <=>  cos(theta) > cos(pi - m)
        self.mm = math.sin(m) * m

    def logits(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings, (N,) int labels -> (N, n_classes) scaled logits with the margin on the target."""
        cos = F.linear(F.normalize(emb), F.normalize(self.weight)).clamp(-1 + 1e-7, 1 - 1e-7)
        sin = torch.sqrt(1.0 - cos * cos)
        phi = cos * self.cos_m - sin * self.sin_m
        phi = torch.where(cos > self.th, phi, cos - self.mm)
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.s * (onehot * phi + (1.0 - onehot) * cos)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(emb, labels), labels)


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(model: IRNet, path: str | Path, config: dict[str, Any] | None = None,
                    extra_meta: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write ``path`` (torch state_dict) and ``path.json`` (architecture ``config`` + ``extra_meta``).

    ``config`` defaults to ``model.config()``; extra keys in it (``exits``, ...) are kept.
    ``half=True`` stores floating tensors as float16 (half the file size; loading casts back to float32).
    """
    from hcgym.paths import atomic_write_bytes

    path = Path(path)
    arch = {**model.config(), **(config or {})}
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
    meta = {"format": CHECKPOINT_FORMAT, "version": 1, "arch": arch, "dtype": "float16" if half else "float32",
            "meta": extra_meta or {}}
    atomic_write_bytes(_json_path(path), json.dumps(meta, indent=1).encode())
    return path


def load_checkpoint(path: str | Path) -> tuple[IRNet, dict[str, Any], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: (model in eval mode, arch config, extra meta)."""
    path = Path(path).expanduser()
    jpath = _json_path(path)
    if not path.is_file():
        raise SpecError("checkpoint", f"file not found: {path}")
    if not jpath.is_file():
        raise SpecError("checkpoint", f"missing {jpath.name} beside {path.name} (written by save_checkpoint)")
    meta = json.loads(jpath.read_text())
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise SpecError("checkpoint", f"{jpath} is not an {CHECKPOINT_FORMAT} checkpoint (format={meta.get('format')!r})")
    arch = dict(meta["arch"])
    model = IRNet(**{k: arch[k] for k in ("units", "widths", "expansions", "input_size", "embedding_dim", "dropout")
                     if k in arch})
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), arch, dict(meta.get("meta", {}))


def _json_path(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".json")


# ---------------------------------------------------------------- pre-processing
def chips_to_input(chips: np.ndarray, size: int) -> np.ndarray:
    """(N, s, s, 3) uint8 RGB aligned chips -> (N, 3, size, size) float32, ``(x - 127.5) / 127.5``.

    Chips of another square size are resized with ``cv2.INTER_AREA`` first.
    """
    chips = np.asarray(chips)
    if chips.ndim != 4 or chips.shape[3] != 3 or chips.shape[1] != chips.shape[2]:
        raise SpecError("chips", f"expected (N, S, S, 3) RGB chips, got shape {chips.shape}")
    if chips.shape[1] != size:
        import cv2

        chips = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in chips]) \
            if len(chips) else np.zeros((0, size, size, 3), np.uint8)
    x = (chips.astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 127.5
    return np.ascontiguousarray(x, dtype=np.float32)


# ---------------------------------------------------------------- sensor
class HcgymFaceEmbedder(TorchSensor):
    """In-house 512-d face embeddings from an :class:`IRNet` (``face/hcgym-irnet``).

    ``HcgymFaceEmbedder(checkpoint)`` loads a :func:`save_checkpoint` file; without one, a randomly
    initialised IRNet (seed 0; for tests and export checks only). ``input_size`` is the chip side S:
    56 without a checkpoint, the checkpoint's otherwise (an explicit different value is an error).

    ``sensor(image, detections=None) -> Embeddings``: faces are aligned to the ArcFace template at
    112 x 112 from five points (:func:`~hcgym.perception.face.recognizers.five_points`; dlib HOG +
    landmarks when no detections with 5 keypoints are given), then resized to S x S.
    """

    name = "face/hcgym-irnet"

    def __init__(self, checkpoint: str | Path | None = None, input_size: int | None = None, seed: int = 0) -> None:
        if checkpoint is not None:
            model, _, meta = load_checkpoint(checkpoint)
            if input_size is not None and int(input_size) != model.input_size:
                raise SpecError("input_size", f"{input_size} differs from the checkpoint's {model.input_size} "
                                              f"({checkpoint})")
            self.checkpoint: Path | None = Path(checkpoint)
            self.meta = meta
        else:
            model = random_irnet(seed, input_size=56 if input_size is None else int(input_size))
            self.checkpoint, self.meta = None, {}
        self.model: IRNet | None = model.eval()
        self.input_size, self.dim = model.input_size, model.embedding_dim

    # -- ONNX round trip
    def config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "dim": self.dim}

    @classmethod
    def from_config(cls, input_size: int = 56, dim: int = 512, **_: Any) -> "HcgymFaceEmbedder":
        """Pre/post-processing only (no torch module): used by :class:`~hcgym.perception.base.OnnxSensor`."""
        obj = cls.__new__(cls)
        obj.model, obj.checkpoint, obj.meta = None, None, {}
        obj.input_size, obj.dim = int(input_size), int(dim)
        return obj

    def example_input(self) -> np.ndarray:
        rng = np.random.default_rng(0)
        return rng.uniform(-1, 1, (2, 3, self.input_size, self.input_size)).astype(np.float32)

    # -- pipeline
    def preprocess(self, image: np.ndarray, detections: Detections | None = None) -> tuple[np.ndarray, np.ndarray]:
        """RGB image (H, W, 3) -> ((N, 3, S, S) float32 network input, (N, 4) boxes)."""
        from hcgym.perception.face.align import align_face
        from hcgym.perception.face.recognizers import five_points

        boxes, five = five_points(image, detections)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        chips = np.stack([align_face(image, f, 112) for f in five]) if len(boxes) else np.zeros((0, 112, 112, 3), np.uint8)
        return chips_to_input(chips, self.input_size), boxes

    def postprocess(self, outputs: list[np.ndarray], context: np.ndarray) -> Embeddings:
        vecs = np.asarray(outputs[0], dtype=np.float64) if outputs else np.zeros((0, self.dim))
        return Embeddings(vecs.reshape(-1, self.dim), context)

    def embed_aligned(self, chips: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB chips aligned to the ArcFace template -> (N, 512) float64 embeddings."""
        x = chips_to_input(chips, self.input_size)
        if not len(x):
            return np.zeros((0, self.dim))
        return np.asarray(self.run_model(x)[0], dtype=np.float64)
