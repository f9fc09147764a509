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

The code lives in :mod:`~hcgym.perception.nms.seq2seq_features` (geometry, edge map, FMoD),
:mod:`~hcgym.perception.nms.seq2seq_net` (configuration, mask, network) and
:mod:`~hcgym.perception.nms.seq2seq_loss` (labels and loss); this module holds the NMS method, the
checkpoint files and ONNX export, and re-exports the rest.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hcgym.errors import SpecError
from hcgym.perception.nms.base import NmsMethod, NmsResult, score_order, sort_keep, validate
from hcgym.perception.nms.seq2seq_features import (
    N_GEOMETRY,
    cell_statistics,
    edge_map,
    fmod_descriptors,
    geometric_features,
    pairwise_iou,
)
from hcgym.perception.nms.seq2seq_loss import class_weights, match_labels, weighted_bce
from hcgym.perception.nms.seq2seq_net import (
    JointProcessingModule,
    MaskedMultiHeadAttention,
    Seq2SeqConfig,
    Seq2SeqNMSNet,
    attention_mask,
)

__all__ = [
    "MODELS_DIR", "N_GEOMETRY", "SHIPPED", "SHIPPED_NOMASK", "JointProcessingModule", "MaskedMultiHeadAttention",
    "Seq2SeqConfig", "Seq2SeqNMS", "Seq2SeqNMSNet", "attention_mask", "cell_statistics", "class_weights",
    "edge_map", "export_onnx", "fmod_descriptors", "geometric_features", "load_model", "match_labels",
    "pairwise_iou", "resolve_checkpoint", "save_model", "weighted_bce",
]

#: Shipped checkpoints (``hcgym train seq2seq-nms``; provenance beside them): with the attention mask,
#: and the no-mask ablation. ``checkpoint="shipped"`` / ``"shipped-nomask"`` name them.
MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED = MODELS_DIR / "seq2seq_nms.pt"
SHIPPED_NOMASK = MODELS_DIR / "seq2seq_nms_nomask.pt"


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """``"shipped"`` and ``"shipped-nomask"`` name the shipped files; anything else is a path."""
    return {"shipped": SHIPPED, "shipped-nomask": SHIPPED_NOMASK}.get(str(checkpoint), Path(checkpoint))


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
        fast: the fast inference path (gather-based ROIAlign, attention on the unmasked pairs only);
            ``False`` runs the former dense computation (same scores within float rounding; slower).
    """

    requires_image = True

    def __init__(self, checkpoint: str | Path | None = None, config: Seq2SeqConfig | None = None,
                 score_threshold: float = 0.0, max_candidates: int | None = None,
                 model: Seq2SeqNMSNet | None = None, fast: bool = True) -> None:
        if model is None:
            if checkpoint is not None:
                model = load_model(resolve_checkpoint(checkpoint))
            else:
                model = Seq2SeqNMSNet(config)
        self.model = model.eval()
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.score_threshold = float(score_threshold)
        self.max_candidates = max_candidates
        self.fast = bool(fast)

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
        bt = torch.as_tensor(b[order], dtype=torch.float32)
        st = torch.as_tensor(s[order], dtype=torch.float32)
        with torch.no_grad():
            if self.fast:
                p = self.model(edges, bt, st, wh)
            else:
                p = self.model.rescore(self.model.appearance(edges, bt, wh, dense=True), bt, st, wh)[0]
        p = p.double().numpy()
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
                f"score_threshold={self.score_threshold}, max_candidates={self.max_candidates}, fast={self.fast})")


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
