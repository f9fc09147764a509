"""Expression classifiers on face landmark sequences: ST-BLN (and PST-BLN's grown networks), ST-GCN, AGCN.

OpenDR D3.2 Sec. 4.1. Every model takes raw landmark sequences ``x`` (N, T, V, 2) in pixels and returns
class scores (N, num_classes). Inside, in this order:

1. :class:`FaceFeatures`: :func:`~.graph.normalise` (nose origin, inter-ocular unit), then the input
   features, laid out ``(N, 2, T, P)`` (channels ``(dx, dy)``, frames, points): for ST-BLN the ``P = E`` edge
   vectors ``e_ij = p_i - p_j`` of the :class:`~.graph.FaceGraph`; for ST-GCN / AGCN the ``P = V`` normalised
   landmarks.
2. A data batch norm over the ``2 P`` (point, channel) pairs (as ST-GCN / OpenDR's ``data_bn``).
3. One layer per width, each a :class:`hcgym.perception.action.gcn.GCNBlock` (spatial part, ``(K, 1)``
   temporal convolution with zero padding and stride, batch norm, outer residual, ReLU) and ``Dropout(p)``.
   Spatial parts: ST-BLN :class:`~.bln.BilinearMapping` (``S`` learnable ``E x E`` matrices); ST-GCN
   :class:`~hcgym.perception.action.gcn.SpatialGraphConv` and AGCN
   :class:`~hcgym.perception.action.gcn.AdaptiveGraphConv` (whole-clip attention, as 2s-AGCN) on the three
   node partitions of :meth:`~.graph.FaceGraph.partitions`. The dropout follows each layer as the text says
   (``dropout_at="after"``, the default); the OpenDR code puts it before each layer instead
   (``dropout_at="before"``), which drops input features and leaves none before the classifier. On the
   procedural data (:mod:`.toy`) input dropout slowed ST-GCN's training markedly (node coordinates carry no
   redundancy, edge vectors do). It is the dropout that MC dropout keeps active.
4. Global average pooling over frames and points, a linear classifier.

Temporal kernel ``K = min(9, largest odd number <= frames)`` (9 in the seed; the CK+ protocol's 4 frames get
3, a 9-frame kernel would see mostly padding). Strides (OpenDR): 2 at layer indices 4 and 7 (0-based), where
the frames entering the layer number at least ``2 K``; else 1. Residuals: layer 0 has no outer residual; with
``residual="auto"`` (the seed's fixed networks) a residual is the identity where widths (and, outer, the
stride) agree, else a 1x1 convolution with batch norm; with ``residual="conv"`` (the grown PST-BLN networks,
so that adding channels never changes a residual's kind) always the convolution.

:func:`count_params` reports all trainable parameters (``params``) and those without the learnable graph
matrices (``params_no_graph``: ST-BLN's ``U``, ST-GCN's edge-importance masks, AGCN's ``B``); the seed's
tables (ST-BLN 132.3k, ST-GCN 131.3k, AGCN 143.7k) must exclude them, since the ``E x E`` matrices alone are
larger than that.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hcgym.errors import SpecError
from hcgym.perception.action.gcn import AdaptiveGraphConv, GCNBlock, SpatialGraphConv
from hcgym.perception.expression.bln import BilinearMapping
from hcgym.perception.expression.graph import FaceGraph, normalise

MODELS: tuple[str, ...] = ("stbln", "stgcn", "agcn")
RESIDUALS: tuple[str, ...] = ("auto", "conv")
DROPOUT_AT: tuple[str, ...] = ("after", "before")
#: The fixed ST-BLN widths of the seed (those of DGNN); ST-GCN and AGCN use them too.
SEED_WIDTHS: tuple[int, ...] = (8, 16, 16, 32, 32, 64, 64)
#: Layer indices (0-based) with a temporal stride of 2 when the clip is long enough (OpenDR).
STRIDED_LAYERS: tuple[int, ...] = (4, 7)


def temporal_kernel(frames: int, largest: int = 9) -> int:
    """``min(largest, largest odd number <= frames)`` (at least 1)."""
    return max(1, min(largest, frames if frames % 2 else frames - 1))


def layer_strides(frames: int, layers: int, kernel: int) -> tuple[int, ...]:
    """Temporal stride of each layer: 2 at :data:`STRIDED_LAYERS` where at least ``2 kernel`` frames enter."""
    out, t = [], frames
    for i in range(layers):
        s = 2 if i in STRIDED_LAYERS and t >= 2 * kernel else 1
        out.append(s)
        t = (t - 1) // s + 1
    return tuple(out)


@dataclass(frozen=True)
class ExprModelConfig:
    """An expression classifier.

    Attributes:
        graph: the face graph (layout, edges, reference shape).
        model: ``stbln``, ``stgcn`` or ``agcn``.
        widths: output channels of each layer.
        frames: clip length ``T`` the network is built for (picks the temporal kernel and strides; other
            lengths run too, the convolutions are zero-padded).
        num_classes: output classes.
        dropout: dropout probability after (or before) each layer.
        residual: ``auto`` or ``conv`` (see the module docstring).
        subsets: number of ``U`` matrices of a bilinear mapping (ST-BLN).
        embed_ratio: AGCN embedding size ``C_e = width // embed_ratio``.
        dropout_at: ``after`` each layer (the text) or ``before`` it (OpenDR's code).
    """

    graph: FaceGraph
    model: str = "stbln"
    widths: tuple[int, ...] = SEED_WIDTHS
    frames: int = 4
    num_classes: int = 7
    dropout: float = 0.2
    residual: str = "auto"
    subsets: int = 3
    embed_ratio: int = 4
    dropout_at: str = "after"

    def check(self) -> ExprModelConfig:
        """Raise :class:`SpecError` naming the first invalid field; return ``self``."""
        def positive(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"model.{name}", f"must be a positive integer, got {value!r}")

        if self.model not in MODELS:
            raise SpecError("model.model", f"unknown model {self.model!r} (allowed: {', '.join(MODELS)})")
        if self.dropout_at not in DROPOUT_AT:
            raise SpecError("model.dropout_at", f"unknown {self.dropout_at!r} (allowed: {', '.join(DROPOUT_AT)})")
        if self.residual not in RESIDUALS:
            raise SpecError("model.residual", f"unknown residual {self.residual!r} (allowed: {', '.join(RESIDUALS)})")
        if not isinstance(self.widths, tuple) or not self.widths:
            raise SpecError("model.widths", f"must be a non-empty list of positive integers, got {self.widths!r}")
        for i, w in enumerate(self.widths):
            positive(f"widths[{i}]", w)
        for name in ("frames", "num_classes", "subsets", "embed_ratio"):
            positive(name, getattr(self, name))
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError("model.dropout", f"must be in [0, 1), got {self.dropout!r}")
        self.graph.check()
        return self

    @property
    def kernel(self) -> int:
        """Temporal kernel ``K`` (:func:`temporal_kernel` of ``frames``)."""
        return temporal_kernel(self.frames)

    @property
    def strides(self) -> tuple[int, ...]:
        """Temporal stride of each layer (:func:`layer_strides`)."""
        return layer_strides(self.frames, len(self.widths), self.kernel)

    @property
    def points(self) -> int:
        """``P``: edges (ST-BLN) or landmarks (ST-GCN, AGCN)."""
        return self.graph.num_edges if self.model == "stbln" else self.graph.layout.num_points

    def residuals(self) -> tuple[tuple[str, str], ...]:
        """(outer, inner) residual kind of each layer (inner: the bilinear mapping's; ``-`` for GCNs)."""
        ins = (2, *self.widths[:-1])
        out = []
        for i, (c_in, c_out, s) in enumerate(zip(ins, self.widths, self.strides)):
            auto = self.residual == "auto"
            outer = "none" if i == 0 else "identity" if auto and c_in == c_out and s == 1 else "conv"
            inner = "-" if self.model != "stbln" else "identity" if auto and c_in == c_out else "conv"
            out.append((outer, inner))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**d, "graph": self.graph.to_dict(), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExprModelConfig:
        """Build and check a configuration; unknown fields raise :class:`SpecError`."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in allowed:
                raise SpecError(f"model.{key}", f"unknown field (allowed: {', '.join(allowed)})")
        if "graph" not in data:
            raise SpecError("model.graph", "missing")
        values = {**data, "graph": FaceGraph.from_dict(data["graph"])}
        if "widths" in values:
            values["widths"] = tuple(values["widths"])
        return cls(**values).check()


class FaceFeatures(nn.Module):
    """Landmarks (N, T, V, 2) pixels -> features (N, 2, T, P): normalised edge vectors or node coordinates."""

    def __init__(self, graph: FaceGraph, edges: bool) -> None:
        super().__init__()
        self.nose = graph.layout.nose
        self.eyes = graph.layout.eyes
        self.edges = edges
        pairs = torch.tensor(graph.edges, dtype=torch.long)
        self.register_buffer("src", pairs[:, 0].clone(), persistent=False)
        self.register_buffer("dst", pairs[:, 1].clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = normalise(x, self.nose, self.eyes)
        if self.edges:
            x = x[:, :, self.src] - x[:, :, self.dst]
        return x.permute(0, 3, 1, 2)


class ExpressionNet(nn.Module):
    """ST-BLN / ST-GCN / AGCN: landmarks (N, T, V, 2) pixels -> class scores (N, num_classes)."""

    def __init__(self, cfg: ExprModelConfig) -> None:
        super().__init__()
        self.cfg = cfg.check()
        p = cfg.points
        self.features = FaceFeatures(cfg.graph, edges=cfg.model == "stbln")
        self.data_bn = nn.BatchNorm1d(2 * p)
        adjacency = None if cfg.model == "stbln" else torch.from_numpy(cfg.graph.partitions())
        layers = []
        ins = (2, *cfg.widths[:-1])
        for c_in, c_out, s, (outer, inner) in zip(ins, cfg.widths, cfg.strides, cfg.residuals()):
            if cfg.model == "stbln":
                spatial: nn.Module = BilinearMapping(c_in, c_out, p, cfg.subsets, inner)
            elif cfg.model == "stgcn":
                spatial = SpatialGraphConv(c_in, c_out, adjacency)
            else:
                spatial = AdaptiveGraphConv(c_in, c_out, adjacency, cfg.embed_ratio, attention="clip")
            block = GCNBlock(spatial, c_in, c_out, cfg.kernel, s, padding=True, residual=outer)
            parts = [("block", block), ("drop", nn.Dropout(cfg.dropout))]
            layers.append(nn.Sequential(OrderedDict(parts if cfg.dropout_at == "after" else parts[::-1])))
        self.layers = nn.ModuleList(layers)
        self.fc = nn.Linear(cfg.widths[-1], cfg.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        v = self.cfg.graph.layout.num_points
        if x.dim() != 4 or tuple(x.shape[2:]) != (v, 2):
            raise SpecError("input", f"expected landmarks (N, T, {v}, 2), got {tuple(x.shape)}")
        f = self.features(x)
        n, c, t, p = f.shape
        f = self.data_bn(f.permute(0, 3, 1, 2).reshape(n, p * c, t)).view(n, p, c, t).permute(0, 2, 3, 1)
        for layer in self.layers:
            f = layer(f)
        return self.fc(f.mean(dim=(2, 3)))


def build_model(cfg: ExprModelConfig, seed: int = 0) -> ExpressionNet:
    """A randomly initialised :class:`ExpressionNet`; the same ``seed`` gives the same weights.

    The global torch random state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ExpressionNet(cfg)


#: Learnable graph matrices by module type (excluded from ``params_no_graph``).
GRAPH_PARAMETERS: dict[type, tuple[str, ...]] = {BilinearMapping: ("U",), SpatialGraphConv: ("importance",),
                                                 AdaptiveGraphConv: ("B",)}


def count_params(model: nn.Module) -> dict[str, int]:
    """``{"params": trainable parameters, "params_no_graph": without the learnable graph matrices,
    "graph_params": the difference}``."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    graph = 0
    for module in model.modules():
        for name in GRAPH_PARAMETERS.get(type(module), ()):
            param = getattr(module, name)
            graph += param.numel() if param.requires_grad else 0
    return {"params": total, "params_no_graph": total - graph, "graph_params": graph}
