"""Metric-learning early exits with Bag-of-Features (Passalis & Tefas, EUSIPCO 2021; OpenDR D3.2 section 2.1).

An exit head ``g`` maps the feature map ``y_i`` (N, C, H, W) after block ``i`` of a fixed
:class:`~hcgym.perception.face.irnet.IRNet` to an estimate of the final embedding ``y`` (N, M), trained
on eq. (2): ``L_i = 1/N sum_j ||y_j - g(y_j^(i))||^2``. One gallery of final-layer embeddings then
serves every exit. Four heads, as in the paper:

* :class:`RawHead`: global average pooling (N, C); its own space (a separate gallery per exit).
* :class:`LRHead`: GAP + closed-form least squares C -> M (C*M parameters, no bias).
* :class:`BoFHead`: k-means codebook (N_K codewords), fixed sigma = mean feature-codeword distance,
  soft memberships ``softmax_k(-||x - v_k||^2 / (2 sigma^2))`` at every location, histogram =
  spatial mean, closed-form least squares N_K -> M (N_K*C + N_K*M parameters).
* :class:`ProposedHead`: BoF whose codewords and sigma are trained with Adam on eq. (2) (batch 32,
  2,000 iterations, lr 1e-3 codebook/sigma, 1e-4 regressor), starting from the BoF fit, followed by
  a closed-form refit of the regressor (N_K*C + N_K*M + 1 parameters).

FLOPs (``head.flops(H, W)``, per face) count 2 per multiply-add of matmuls, as
:class:`~torch.utils.flop_counter.FlopCounterMode` does; element-wise work (pooling, exp, softmax)
is not counted. :func:`fit_exit_heads` fits all four heads at every exit; :class:`ExitHeads` saves
them as a tensor file plus JSON (no pickled objects); :class:`AdaptiveFaceEmbedder` picks the deepest
exit whose cost fits a per-frame budget.

The code lives in :mod:`~hcgym.perception.face.exit_heads` (the heads and their numerics),
:mod:`~hcgym.perception.face.exit_fitting` (the container, feature extraction and fitting) and
:mod:`~hcgym.perception.face.adaptive_embedder` (budgeted inference); this module re-exports them.
"""

from __future__ import annotations

from hcgym.perception.face.adaptive_embedder import AdaptiveEmbedding, AdaptiveFaceEmbedder
from hcgym.perception.face.exit_fitting import HEADS_FORMAT, ExitHeads, ExitModel, fit_exit_heads
from hcgym.perception.face.exit_heads import (
                                             HEAD_TYPES,
                                             METHODS,
                                             BoFHead,
                                             ExitHead,
                                             LRHead,
                                             ProposedHead,
                                             RawHead,
                                             gap,
                                             kmeans,
                                             ridge_solve,
                                             sq_dists,
)

__all__ = [
    "METHODS", "HEADS_FORMAT", "HEAD_TYPES", "gap", "sq_dists", "kmeans", "ridge_solve", "ExitHead", "RawHead",
    "LRHead", "BoFHead", "ProposedHead", "ExitHeads", "ExitModel", "fit_exit_heads", "AdaptiveEmbedding",
    "AdaptiveFaceEmbedder",
]
