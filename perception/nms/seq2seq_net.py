"""The Seq2Seq-NMS rescoring network: configuration, attention mask, masked multi-head attention, joint
processing modules and :class:`Seq2SeqNMSNet`. See :mod:`hcgym.perception.nms.seq2seq` for the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.nms.seq2seq_features import (
    N_GEOMETRY,
    fmod_descriptors,
    geometric_features,
    pair_geometric_features,
    pairwise_iou,
)


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


def attention_mask(iou: torch.Tensor, threshold: float = 0.2, lower_scale: float = 0.1) -> torch.Tensor:
    """``(N, N)`` multiplicative mask for candidates sorted by score, descending (reference eq. 10).

    ``mask = tril(IoU >= t) + lower_scale * triu(IoU >= t, diagonal=1)``: 1 for keys ranked at or
    before the query, ``lower_scale`` for lower-ranked keys, 0 (then ``-inf``) where IoU < t.
    """
    overlap = (iou >= threshold).to(iou.dtype)
    return torch.tril(overlap) + lower_scale * torch.triu(overlap, diagonal=1)


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

    def forward_pairs(self, q: torch.Tensor, kv: torch.Tensor, query: torch.Tensor, scale: torch.Tensor
                      ) -> torch.Tensor:
        """:meth:`forward` on the unmasked pairs only: ``out (N, d)``.

        ``kv`` (P, d) holds ``F^K[query[p], key[p]]`` for every pair with a non-zero mask value
        ``scale`` (P,), grouped by ``query``; every query must have at least one pair. Masked pairs get
        an exact 0 weight in :meth:`forward`, so leaving them out changes nothing but the rounding.
        The segment reductions (``scatter_reduce_`` max, ``index_add_``) export to ONNX ``ScatterElements``
        and ``ScatterND`` with a reduction (:func:`~hcgym.perception.nms.seq2seq.export_onnx`).
        """
        n, h, dk = q.shape[0], self.heads, self.d_k
        qh = self.q(q).reshape(n, h, dk)
        kvh = nn.functional.linear(kv, torch.cat([self.k.weight, self.v.weight]), torch.cat([self.k.bias, self.v.bias]))
        kh, vh = kvh[:, : h * dk].reshape(-1, h, dk), kvh[:, h * dk:].reshape(-1, h, dk)   # K and V in one product
        s = (qh[query] * kh).sum(-1) / math.sqrt(dk) * scale[:, None]                    # (P, H)
        rows = query[:, None].expand(-1, h)
        top = torch.full((n, h), -math.inf, dtype=s.dtype).scatter_reduce_(0, rows, s, "amax")
        e = torch.exp(s - top[query])
        w = e / torch.zeros(n, h, dtype=s.dtype).index_add_(0, query, e)[query]
        out = torch.zeros(n, h, dk, dtype=s.dtype).index_add_(0, query, self.drop(w)[:, :, None] * vh)
        return self.o(out.reshape(n, -1))


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

    def forward_pairs(self, fq: torch.Tensor, fk: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                      scale: torch.Tensor, last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` on the unmasked pairs (``fk`` (P, d_a), see
        :meth:`MaskedMultiHeadAttention.forward_pairs`); ``last`` skips the ``F^K`` update nothing reads."""
        q = self.c_q(fq)
        fd = self.ln_d(q + self.drop(self.attn.forward_pairs(q, fk, query, scale)))
        fq = self.ln_q(self.drop(self.c_d(fd)) + fq)
        if not last:
            fk = self.ln_k(fk + (fd * self.c_k)[key])
        return fq, fk


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

    def appearance(self, edges: torch.Tensor, boxes: torch.Tensor, image_wh: torch.Tensor,
                   dense: bool = False) -> torch.Tensor:
        """Raw FMoD descriptors ``(N, 5 (4^L - 1))`` (``dense``: the former ROIAlign formulation)."""
        cfg = self.config
        scale = torch.stack([edges.shape[-1] / image_wh[0].to(boxes.dtype),
                             edges.shape[-2] / image_wh[1].to(boxes.dtype)])
        return fmod_descriptors(edges, boxes, scale, cfg.fmod_levels, cfg.fmod_size, cfg.fmod_sampling_ratio,
                                dense=dense)

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

    def rescore_pairs(self, app: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor,
                      image_wh: torch.Tensor) -> torch.Tensor:
        """``p (N,)`` as :meth:`rescore` computes it (within float rounding), on the query-key pairs with
        a non-zero attention mask only.

        With the mask, a key with IoU < ``iou_mask`` gets an exact 0 attention weight, and ``F^K[i, j]``
        only ever feeds the attention of query ``i``; so the pairs ``(i, j)`` with IoU >= ``iou_mask``
        (a few percent of the ``N^2`` in a crowd) determine ``p``, and the others are never computed.
        Without the mask (or if some query has no such pair: ``iou_mask > 1``) this is :meth:`rescore`.
        """
        cfg = self.config
        n = boxes.shape[0]
        if not cfg.mask or n == 0:
            return self.rescore(app, boxes, scores, image_wh)[0]
        iou = pairwise_iou(boxes)
        query, key = (iou >= cfg.iou_mask).nonzero(as_tuple=True)          # grouped by query (row-major)
        if not torch.onnx.is_in_onnx_export() and torch.unique(query).numel() < n:
            return self.rescore(app, boxes, scores, image_wh)[0]   # (an export checks iou_mask <= 1 instead)
        scale = torch.where(key <= query, 1.0, cfg.lower_scale).to(app.dtype)   # eq. 10: tril 1, triu lower_scale
        a = ((app - self.app_mean) / self.app_std).clamp(-50.0, 50.0)
        ea = self.app_mlp(a)
        diag = torch.arange(n)
        gq = pair_geometric_features(boxes, scores, image_wh, diag, diag, iou[diag, diag])
        gk = pair_geometric_features(boxes, scores, image_wh, query, key, iou[query, key])
        fq = self.fuse_q(torch.cat([ea, self.gq_mlp(gq)], dim=-1))
        fk = self._fuse_k_pairs(self.gk_mlp(gk), ea, key)                          # (P, d_a)
        for b, block in enumerate(self.blocks):
            fq, fk = block.forward_pairs(fq, fk, query, key, scale, last=b == len(self.blocks) - 1)
        return self.head(fq)[:, 0]

    def _fuse_k_pairs(self, gk: torch.Tensor, ea: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """``fuse_k(cat[gk, ea[key]])`` without building the ``(P, 2 d_fuse)`` concatenation: the LayerNorm
        statistics come from per-part sums, and its scale and the Linear are folded so the key's part
        ``ea @ W_a^T`` is computed once per box (N rows) instead of once per pair."""
        ln, lin, act = self.fuse_k
        d = gk.shape[-1]
        w = lin.weight * ln.weight                                                # (d_a, 2 d_fuse): Linear . diag(gamma)
        wg, wa = w[:, :d], w[:, d:]
        bias = lin.bias + lin.weight @ ln.bias
        n_in = float(2 * d)
        mean = (gk.sum(-1) + ea.sum(-1)[key]) / n_in
        var = ((gk * gk).sum(-1) + (ea * ea).sum(-1)[key]) / n_in - mean * mean
        rstd = torch.rsqrt(var.clamp(min=0.0) + ln.eps)
        y = gk @ wg.t() + (ea @ wa.t())[key] - mean[:, None] * (wg.sum(1) + wa.sum(1))
        return act(torch.addcmul(bias, y, rstd[:, None]))

    def forward(self, edges: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor,
                image_wh: torch.Tensor) -> torch.Tensor:
        """``p (N,)``. Inference (no gradients) computes only the unmasked pairs (:meth:`rescore_pairs`),
        in eager mode and in the ONNX export (:func:`~hcgym.perception.nms.seq2seq.export_onnx`, traced);
        training (gradients) and ``torch.compile``/``torch.export`` run the dense :meth:`rescore`."""
        app = self.appearance(edges, boxes, image_wh)
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return self.rescore(app, boxes, scores, image_wh)[0]
        return self.rescore_pairs(app, boxes, scores, image_wh)

    def set_normalisation(self, descriptors: torch.Tensor) -> None:
        """Per-dimension z-score statistics of raw FMoD descriptors ``(M, D)`` of a training set.

        Dimensions that are (nearly) constant on the set (std <= 1e-3) are only centred: dividing
        by a tiny std would blow their noise up to the +-50 clip.
        """
        std = descriptors.std(0)
        self.app_mean.copy_(descriptors.mean(0))
        self.app_std.copy_(torch.where(std > 1e-3, std, torch.ones_like(std)))
