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

import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hcgym.errors import SpecError
from hcgym.perception.base import TorchModel
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
    "MODELS_DIR", "N_GEOMETRY", "SHIPPED", "SHIPPED_NOMASK", "SHIPPED_ONNX", "JointProcessingModule", "MaskedMultiHeadAttention",
    "Seq2SeqConfig", "Seq2SeqNMS", "Seq2SeqNMSNet", "attention_mask", "cell_statistics", "class_weights",
    "edge_map", "export_onnx", "fmod_descriptors", "geometric_features", "load_model", "match_labels",
    "network_inputs", "pairwise_iou", "resolve_checkpoint", "save_model", "weighted_bce",
]

#: Shipped checkpoints (``hcgym train seq2seq-nms``; provenance beside them): with the attention mask,
#: and the no-mask ablation. ``checkpoint="shipped"`` / ``"shipped-nomask"`` name them.
MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED = MODELS_DIR / "seq2seq_nms.pt"
SHIPPED_NOMASK = MODELS_DIR / "seq2seq_nms_nomask.pt"
#: The shipped ONNX export of :data:`SHIPPED` (``hcgym export --ship``), run by ``nms/seq2seq-onnx``.
SHIPPED_ONNX = MODELS_DIR / "seq2seq_nms.onnx"


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """``"shipped"`` and ``"shipped-nomask"`` name the shipped files; anything else is a path."""
    return {"shipped": SHIPPED, "shipped-nomask": SHIPPED_NOMASK}.get(str(checkpoint), Path(checkpoint))


# --------------------------------------------------------------------------------------------
# The NMS method
# --------------------------------------------------------------------------------------------


class Seq2SeqNMS(TorchModel, NmsMethod):
    """Seq2Seq-NMS behind the common interface; ``image`` is required.

    The network (:meth:`run_model`: ``edges, boxes, scores, image_wh -> p``, FMoD, geometry and the
    attention blocks) is what exports to ONNX (``hcgym export nms/seq2seq``); the edge map before it
    and the sorting, thresholding and :class:`NmsResult` after it are the pre/post-processing that
    :class:`~hcgym.perception.base.OnnxSensor` keeps around the export (``nms/seq2seq-onnx``).

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
    onnx_input_names = ("edges", "boxes", "scores", "image_wh")
    onnx_output_names = ("p",)
    #: ``ScatterElements`` with a max reduction needs opset 18 (``RoiAlign`` half-pixel, ``ScatterND`` add: 16).
    onnx_opset = 18

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
        order = score_order(s)
        if self.max_candidates is not None:
            order = order[: self.max_candidates]
        inputs = network_inputs(img, b[order], s[order], self.model.config.max_side)
        if self.fast:
            p = np.asarray(self.run_model(*inputs)[0], np.float64)
        else:
            with torch.no_grad():
                edges, bt, st, wh = (torch.from_numpy(x) for x in inputs)
                p = self.model.rescore(self.model.appearance(edges, bt, wh, dense=True), bt, st, wh)[0].double().numpy()
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

    # ---- ONNX export (TorchModel): the network; the edge map, ordering and thresholds stay around it

    def config(self) -> dict[str, Any]:
        return {"model_config": asdict(self.model.config), "score_threshold": self.score_threshold,
                "max_candidates": self.max_candidates}

    @classmethod
    def from_config(cls, model_config: dict[str, Any], score_threshold: float = 0.0,
                    max_candidates: int | None = None) -> Seq2SeqNMS:
        """The pre/post-processing around an export (an untrained network that :class:`OnnxSensor` replaces)."""
        return cls(None, Seq2SeqConfig(**model_config), score_threshold=score_threshold,
                   max_candidates=max_candidates)

    def example_inputs(self) -> tuple[np.ndarray, ...]:
        return tuple(x.numpy() for x in _example(n=8, edge_hw=(240, 320)))

    def onnx_dynamic_axes(self) -> dict[str, dict[int, str]]:
        return _DYNAMIC_AXES

    def onnx_bytes(self) -> bytes:
        return _trace(self.model, tuple(torch.from_numpy(x) for x in self.example_inputs()), True, self.onnx_opset)

    def parity_inputs(self, rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, ...]]:
        """``n`` candidate sets of the detector simulator (:mod:`~hcgym.perception.nms.simulate`, 16 copies
        per person) on synthetic scenes of about ``N / 10`` people, ``N`` from 2 to 400, three image sizes."""
        from hcgym.perception.nms.simulate import DetectorSimulator, synthetic_scene

        sizes = ((640, 480), (384, 288), (1280, 720))
        sim = DetectorSimulator(seed=int(rng.integers(1 << 31)), rate=16.0)
        caps = np.linspace(2, 400, n).round().astype(int) if n > 1 else np.array([400])
        out = []
        for k, cap in enumerate(rng.permutation(caps)):
            w, h = sizes[k % len(sizes)]
            image, gt = synthetic_scene(rng, w, h, people=int(cap) // 10 + int(rng.integers(1, 6)))
            boxes, scores = sim.candidates(image, int(cap), gt_boxes=gt, key=k)
            if len(boxes) < 2:  # a lone person whose copies all merged: take two of the raw draws
                boxes, scores = sim.candidates(image, int(cap), pre_nms_iou=None, gt_boxes=gt, key=k)
            out.append(network_inputs(image, boxes, scores, self.model.config.max_side))
        return out

    def describe_parity_inputs(self) -> str:
        return ("detector-simulator candidate sets (N 2-400, sorted by score) on synthetic scenes of 1-45 "
                "people at 640x480, 384x288 and 1280x720, with their edge maps")

    def latency_inputs(self, rng: np.random.Generator) -> list[tuple[np.ndarray, ...]]:
        """8 crowded 640x480 scenes (50 people) with N = 400 candidates each."""
        from hcgym.perception.nms.simulate import DetectorSimulator, synthetic_scene

        sim, out = DetectorSimulator(seed=int(rng.integers(1 << 31)), rate=16.0), []
        for k in range(8):
            image, gt = synthetic_scene(rng, 640, 480, people=50)
            boxes, scores = sim.candidates(image, 400, gt_boxes=gt, key=k)
            out.append(network_inputs(image, boxes, scores, self.model.config.max_side))
        return out

    def reload_check(self, exported: Any, rng: np.random.Generator) -> dict[str, Any]:
        """Both methods on a simulated candidate set (up to 400) of a synthetic scene of 25 people: the same
        kept candidates and final scores within 1e-4."""
        from hcgym.perception.nms.simulate import DetectorSimulator, synthetic_scene

        image, gt = synthetic_scene(rng, 640, 480, people=25)
        boxes, scores = DetectorSimulator(seed=int(rng.integers(1 << 31))).candidates(image, 400, gt_boxes=gt)
        a, b = self(boxes, scores, image), exported(boxes, scores, image)
        diff = float(np.max(np.abs(a.scores - b.scores), initial=0.0))
        same = set(a.keep.tolist()) == set(b.keep.tolist()) and diff <= 1e-4
        return {"same": bool(same), "detail": f"NmsResult on {len(boxes)} simulated candidates: {len(a)} vs "
                                              f"{len(b)} kept, scores max abs diff {diff:.1e}"}


def network_inputs(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, max_side: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The network's inputs for candidates already sorted by score (descending): ``edges`` (1, 1, h, w)
    (:func:`edge_map` of ``image``, longest side at most ``max_side``), ``boxes`` (N, 4), ``scores`` (N,)
    and ``image_wh`` (2,) = (W, H) of ``image``, all float32."""
    edges, _ = edge_map(image, max_side)
    return (edges.numpy(), np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1),
            np.array([image.shape[1], image.shape[0]], np.float32))


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


#: Dynamic axes of the export: the edge-map size and the number of candidates N.
_DYNAMIC_AXES = {"edges": {2: "height", 3: "width"}, "boxes": {0: "n"}, "scores": {0: "n"}, "p": {0: "n"}}


def _example(n: int, edge_hw: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """Tracing inputs: ``n`` random boxes sorted by score on a random ``edge_hw`` edge map of a 2x larger image."""
    gen = torch.Generator().manual_seed(0)
    h, w = edge_hw
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([2 * w, 2 * h]) * 0.6
    boxes = torch.cat([xy, xy + 20 + torch.rand(n, 2, generator=gen) * 80], dim=1)
    scores = torch.sort(torch.rand(n, generator=gen), descending=True).values
    edges = (torch.rand(1, 1, h, w, generator=gen) > 0.8).float()
    return edges, boxes, scores, torch.tensor([2.0 * w, 2.0 * h])


def _index_add_scatter_nd(g: Any, self: Any, dim: int, index: Any, source: Any, alpha: Any = None) -> Any:
    """ONNX for ``index_add`` along dim 0 with repeated indices: ``ScatterND`` with ``reduction="add"``
    (opset 16+; the built-in translation assumes unique indices)."""
    if dim != 0:
        raise SpecError("export", f"index_add along dim {dim}: only dim 0 exports (ScatterND)")
    idx = g.op("Unsqueeze", index, g.op("Constant", value_t=torch.tensor([1])))
    return g.op("ScatterND", self, idx, source, reduction_s="add")


def _scatter_amax(g: Any, self: Any, dim: int, index: Any, src: Any, reduce: str, include_self: bool) -> Any:
    """ONNX for ``scatter_reduce(dim, index, src, "amax", include_self=True)``: ``ScatterElements`` with
    ``reduction="max"`` (opset 18+; one node, where the built-in translation wraps it in an ``If``)."""
    if reduce != "amax" or not include_self:
        raise SpecError("export", f"scatter_reduce {reduce!r} (include_self={include_self}): only amax with "
                                  "include_self exports here")
    return g.op("ScatterElements", self, index, src, axis_i=dim, reduction_s="max")


#: The custom ONNX translations of the export: op -> (function, argument descriptors).
_SYMBOLICS = {"aten::index_add": (_index_add_scatter_nd, ("v", "i", "v", "v", "none")),
              "aten::scatter_reduce": (_scatter_amax, ("v", "i", "v", "v", "s", "b"))}


def _trace(model: Seq2SeqNMSNet, example: tuple[torch.Tensor, ...], dynamic: bool, opset: int = 18) -> bytes:
    """The ONNX bytes of ``model`` traced (TorchScript exporter, no gradients: the fast inference path of
    :meth:`Seq2SeqNMSNet.forward`) on ``example``; ``dynamic``: the edge-map size and N are dynamic axes."""
    import io

    import onnx
    from torch.onnx import register_custom_op_symbolic, symbolic_helper, unregister_custom_op_symbolic

    cfg = model.config
    if cfg.mask and cfg.iou_mask > 1.0:
        raise SpecError("iou_mask", f"{cfg.iou_mask} > 1 leaves queries without a key (not exportable; max 1)")
    model = model.eval()
    for op, (fn, args) in _SYMBOLICS.items():
        register_custom_op_symbolic(op, symbolic_helper.parse_args(*args)(fn), opset)
    buf = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on Python ints taken from shapes (kept symbolic)
            torch.onnx.export(model, example, buf, input_names=["edges", "boxes", "scores", "image_wh"],
                              output_names=["p"], opset_version=opset, dynamo=False,
                              dynamic_axes=_DYNAMIC_AXES if dynamic else None)
    finally:
        for op in _SYMBOLICS:
            unregister_custom_op_symbolic(op, opset)
    graph = onnx.load_from_string(buf.getvalue())
    del graph.graph.value_info[:]  # the tracer's shapes of intermediate values hold traced sizes; ORT infers its own
    return graph.SerializeToString()


def export_onnx(model: Seq2SeqNMSNet, path: str | Path, edge_hw: tuple[int, int] = (240, 320),
                n_example: int = 8, dynamic: bool = True) -> Path:
    """Export ``model`` (inputs ``edges, boxes, scores, image_wh``; output ``p``) to ONNX (atomically).

    The graph is the fast inference path (ROIAlign as the ``RoiAlign`` operator, attention on the unmasked
    query-key pairs; opset 18). With ``dynamic`` the edge-map size and the number of candidates N are dynamic
    axes; otherwise they are fixed at ``edge_hw`` and ``n_example``. ``image_wh`` is an input, so the
    boxes may be in any image whose edge map is given.
    """
    from hcgym.paths import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, _trace(model, _example(n_example, edge_hw), dynamic))
    return path
