"""Neural Bag-of-Features with 2-D and self-attention for biosignal series (OpenDR D3.2 §5.3, Eq. 21-27).

The pipeline of :class:`NBoFNet`, for a series ``x`` of shape ``(B, C, L)``:

1. **pre-processing** (:func:`conv_frontend`): ``layers`` blocks of Conv1d (``filters`` filters of odd size
   ``kernel``, same padding), optionally BatchNorm, ReLU and max-pooling by ``pool``: ``(B, C, L) -> (B, F, T)``
   with ``T = L // pool**layers`` steps (floor at each block); :func:`receptive_field` gives the samples one step
   sees. BatchNorm is off by default: on the order task (:mod:`.order_task`) some models trained with it reached
   a near-zero training loss in train mode yet answered at chance on their own training data in eval mode;
2. **quantisation** (:class:`LogisticQuantiser`): each step ``x_t`` against ``K`` learned codewords ``c_k`` with
   the toolkit's logistic kernel ``phi_k(t) = (1 + tanh(a <x_t, c_k> + b)) / 2`` (``a``, ``b`` trainable
   scalars): ``Phi`` of shape ``(B, K, T)``. The memberships are not normalised over the codewords by default,
   as in the toolkit; ``normalise=True`` divides each step's by their sum (``phi_k(t) / sum_j phi_j(t)``, the
   classic Bag-of-Features histogram that sums to 1), which on the order task trained markedly slower (the
   histogram entries shrink to about ``1 / K``);
3. **attention** on ``Phi`` (none, or one module below), same shape;
4. **temporal averaging** into a histogram ``(B, K)``; TNBoF concatenates the *short* histogram (the mean over
   the second half of the steps, ``t >= T // 2``) and the *long* one (all steps): ``(B, 2 K)``. In TNBoF the
   attention acts on the long path only: the long histogram is the mean of the attended ``Phi``, the short one
   the mean of the plain ``Phi`` over the second half (quantisation is per step, so the short path's ``Phi`` is
   the second half of the long path's, as in the toolkit where the half is quantised separately);
5. **classifier**: Linear(``hidden``), ReLU, Dropout, Linear(``classes``) (``hidden=0``: one Linear).

Attention modules (``Phi`` is ``K x T`` per sample; ``alpha`` trainable, kept in [0, 1]):

* ``ca`` / ``ta`` (:class:`TwoDAttention`, 2DA, Eq. 21-22): ``A = softmax(Phi W)`` row-wise with ``W`` a
  ``D x D`` matrix whose diagonal is fixed at ``1/D`` (masked, so no optimiser can change it) and
  ``Phi~ = alpha (Phi * A) + (1 - alpha) Phi`` as Eq. 22 writes it (identity at ``alpha = 0``; the toolkit swaps
  the roles of ``alpha`` and ``1 - alpha``). CA applies it to ``Phi^T`` (``D = K``: each step's distribution over
  codewords), TA to ``Phi`` (``D = T``: each codeword's distribution over steps);
* ``ctsa`` (:class:`SelfAttention`, Eq. 23-25): per head ``q = Phi Wq^T`` (``K x d``, ``Wq`` ``d x T``),
  ``k = Phi^T Wk^T`` (``T x d``, ``Wk`` ``d x K``), ``A = sigmoid(q k^T / sqrt d)`` (``K x T``, the toolkit's
  sigmoid), ``Phi~ = alpha Phi + (1 - alpha) A * Phi``;
* ``csa`` (Eq. 26-27): ``q, k = Phi Wq^T, Phi Wk^T`` (``K x d``, both ``d x T``), ``A = softmax(q k^T / sqrt d)``
  (``K x K``) with dropout 0.2, ``Phi~ = alpha Phi + (1 - alpha) A Phi`` (a matrix product);
* ``tsa``: the same on ``Phi^T`` (``Wq, Wk`` ``d x K``, ``A`` ``T x T``), ``Phi~ = alpha Phi + (1 - alpha) Phi A^T``.
  Its projections act on each step's codeword vector alone, so it is equivariant to permuting the steps and the
  time average after it is invariant: unlike TA, CsA and CTsA (whose ``W`` or ``Wq`` span the steps) TsA adds no
  knowledge of *when* a codeword fired to a plain NBoF.

The self-attention modules have ``heads`` heads, each with its own projections and ``alpha``; the projections
have no bias (Eq. 23 and 26 have none), so they add exactly ``n d (T + K)`` (CTsA), ``2 n d T`` (CsA) or
``2 n d K`` (TsA) weights, plus the ``n`` alphas. The document concatenates the heads' outputs and does not say
how they are reduced before the histogram; here they are **averaged** (no parameters, the result keeps the
``K x T`` shape, and with every ``alpha = 1`` the module is the identity). Defaults: 3 heads (the document),
``d = 512`` (the smaller of its two latent sizes), 256 codewords (the toolkit's default); ``heads=1, d=128``
gives the toolkit's self-attention configuration. The 2DA diagonal ``1/D`` is the document's ``1/N`` read with
``N`` the size of ``W`` (the toolkit's reading: ``1/K`` for CA, ``1/T`` for TA); ``W`` starts at ``1/D``
everywhere and ``alpha`` at 0.5 in every module, as in the toolkit.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from hcgym.errors import SpecError

#: Attention kinds, in the table's order.
ATTENTIONS = ("ca", "ta", "csa", "tsa", "ctsa")
#: Every model :func:`make_nbof` builds: NBoF and TNBoF, plain and with each attention.
VARIANTS = tuple(f"{q}{'-' + a if a else ''}" for q in ("nbof", "tnbof") for a in ("", *ATTENTIONS))


def _positive_int(field: str, v: Any, low: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise SpecError(field, f"expected an integer >= {low}, got {v!r}")
    return v


def _clipped(alpha: Tensor, training: bool) -> Tensor:
    """``alpha`` kept in [0, 1]: while training an out-of-range value is projected back in place (as the
    toolkit does), so it never drifts beyond the bounds; the returned value is clamped in the graph."""
    if training:
        with torch.no_grad():
            if bool(((alpha < 0) | (alpha > 1)).any()):
                alpha.clamp_(0.0, 1.0)
    return alpha.clamp(0.0, 1.0)


def conv_frontend(in_channels: int, layers: int = 3, filters: int = 32, kernel: int = 7, pool: int = 2,
                  batchnorm: bool = False) -> nn.Sequential:
    """``layers`` blocks of Conv1d(``filters``, odd ``kernel``, same padding), BatchNorm1d when ``batchnorm``,
    ReLU, MaxPool1d(``pool``): ``(B, in_channels, L) -> (B, filters, L // pool**layers)`` (floor at each block)."""
    _positive_int("layers", layers, 0)
    _positive_int("filters", filters)
    if _positive_int("kernel", kernel) % 2 == 0:
        raise SpecError("kernel", f"expected an odd kernel size (same padding), got {kernel}")
    _positive_int("pool", pool)
    mods: list[nn.Module] = []
    c = in_channels
    for _ in range(layers):
        mods.append(nn.Conv1d(c, filters, kernel, padding=kernel // 2))
        mods += [nn.BatchNorm1d(filters), nn.ReLU()] if batchnorm else [nn.ReLU()]
        if pool > 1:
            mods.append(nn.MaxPool1d(pool))
        c = filters
    return nn.Sequential(*mods)


def receptive_field(model: nn.Module) -> int:
    """Input samples that one output step of ``model``'s pre-processing sees (``model.frontend`` if it has one,
    else ``model`` itself, taken as a chain of Conv1d and pooling layers in module order)."""
    front = getattr(model, "frontend", model)
    rf, jump = 1, 1
    for m in front.modules():
        if isinstance(m, nn.Conv1d):
            k, s, dil = m.kernel_size[0], m.stride[0], m.dilation[0]
        elif isinstance(m, (nn.MaxPool1d, nn.AvgPool1d)):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            dil = getattr(m, "dilation", 1)
            dil = dil if isinstance(dil, int) else dil[0]
        else:
            continue
        rf += (k - 1) * dil * jump
        jump *= s
    return rf


class LogisticQuantiser(nn.Module):
    """``(B, F, T)`` features -> ``(B, K, T)`` memberships ``(1 + tanh(a <x_t, c_k> + b)) / 2`` to ``K`` codewords,
    normalised over the codewords when ``normalise`` (module docstring)."""

    def __init__(self, features: int, codewords: int, normalise: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.empty(codewords, features))
        nn.init.kaiming_uniform_(self.codebook)
        self.a = nn.Parameter(torch.ones(1))
        self.b = nn.Parameter(torch.zeros(1))
        self.normalise, self.eps = normalise, eps

    def forward(self, x: Tensor) -> Tensor:
        phi = (1.0 + torch.tanh(self.a * torch.einsum("kf,bft->bkt", self.codebook, x) + self.b)) / 2.0
        if self.normalise:
            phi = phi / (phi.sum(dim=1, keepdim=True) + self.eps)
        return phi


class TwoDAttention(nn.Module):
    """2DA (Eq. 21-22) on ``(B, K, T)``: ``axis="codeword"`` (CA, 2DA on ``Phi^T``, ``W`` is ``K x K``) or
    ``"temporal"`` (TA, on ``Phi``, ``W`` is ``T x T``); ``W``'s diagonal is fixed at ``1 / D``."""

    #: The ``alpha`` at which the module returns its input (Eq. 22).
    IDENTITY_ALPHA = 0.0

    def __init__(self, codewords: int, steps: int, axis: str) -> None:
        super().__init__()
        if axis not in ("codeword", "temporal"):
            raise SpecError("axis", f"unknown 2DA axis {axis!r} (allowed: codeword, temporal)")
        self.axis = axis
        size = codewords if axis == "codeword" else steps
        self.weight = nn.Parameter(torch.full((size, size), 1.0 / size))  # the toolkit's initial W
        self.register_buffer("off_diagonal", 1.0 - torch.eye(size), persistent=False)
        self.register_buffer("diagonal", torch.eye(size) / size, persistent=False)
        self.alpha = nn.Parameter(torch.full((1,), 0.5))

    def matrix(self) -> Tensor:
        """``W`` (``D x D``) with its diagonal at ``1 / D``; the stored diagonal entries never reach it."""
        return self.weight * self.off_diagonal + self.diagonal

    def attention(self, phi: Tensor) -> Tensor:
        """The mask ``A`` laid out like ``phi`` ``(B, K, T)``: softmax over codewords (CA) or over steps (TA)."""
        x = phi.transpose(1, 2) if self.axis == "codeword" else phi
        a = torch.softmax(x @ self.matrix(), dim=-1)
        return a.transpose(1, 2) if self.axis == "codeword" else a

    def forward(self, phi: Tensor) -> Tensor:
        alpha = _clipped(self.alpha, self.training)
        return alpha * (phi * self.attention(phi)) + (1.0 - alpha) * phi


class SelfAttention(nn.Module):
    """CTsA, CsA or TsA (Eq. 23-27) with ``heads`` heads of latent size ``d`` on ``(B, K, T)``; the heads are
    averaged (module docstring)."""

    #: The ``alpha`` at which every head returns its input (Eq. 25, 27).
    IDENTITY_ALPHA = 1.0

    def __init__(self, codewords: int, steps: int, kind: str, heads: int = 3, d: int = 512,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if kind not in ("csa", "tsa", "ctsa"):
            raise SpecError("kind", f"unknown self-attention {kind!r} (allowed: csa, tsa, ctsa)")
        self.kind, self.heads, self.d = kind, _positive_int("heads", heads), _positive_int("d", d)
        q_in = codewords if kind == "tsa" else steps  # Wq^n is d x q_in
        k_in = steps if kind == "csa" else codewords  # Wk^n is d x k_in
        self.w_q = nn.Parameter(torch.empty(heads, d, q_in))
        self.w_k = nn.Parameter(torch.empty(heads, d, k_in))
        for w in (self.w_q, self.w_k):  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            nn.init.uniform_(w, -1.0 / math.sqrt(w.shape[-1]), 1.0 / math.sqrt(w.shape[-1]))
        self.alpha = nn.Parameter(torch.full((heads,), 0.5))
        self.drop = nn.Dropout(dropout) if kind != "ctsa" else nn.Identity()

    def attention(self, phi: Tensor) -> Tensor:
        """Per-head masks: ``(B, n, K, T)`` (CTsA), ``(B, n, K, K)`` (CsA) or ``(B, n, T, T)`` (TsA)."""
        scale = 1.0 / math.sqrt(self.d)
        if self.kind == "ctsa":
            q = torch.einsum("bkt,hdt->bhkd", phi, self.w_q)
            k = torch.einsum("bkt,hdk->bhtd", phi, self.w_k)
            return torch.sigmoid(q @ k.transpose(-1, -2) * scale)
        x = phi if self.kind == "csa" else phi.transpose(1, 2)  # rows attend to rows
        q = torch.einsum("bri,hdi->bhrd", x, self.w_q)
        k = torch.einsum("bri,hdi->bhrd", x, self.w_k)
        return self.drop(torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1))

    def head_outputs(self, phi: Tensor) -> Tensor:
        """The heads' ``Phi~_n`` stacked: ``(B, n, K, T)``."""
        a = self.attention(phi)
        p = phi.unsqueeze(1)
        if self.kind == "ctsa":
            mixed = a * p
        elif self.kind == "csa":
            mixed = a @ p
        else:
            mixed = p @ a.transpose(-1, -2)
        alpha = _clipped(self.alpha, self.training).view(1, -1, 1, 1)
        return alpha * p + (1.0 - alpha) * mixed

    def forward(self, phi: Tensor) -> Tensor:
        return self.head_outputs(phi).mean(dim=1)


def make_attention(kind: str, codewords: int, steps: int, heads: int = 3, d: int = 512) -> nn.Module:
    """The attention module ``kind`` (one of :data:`ATTENTIONS`) for ``Phi`` of shape ``(B, codewords, steps)``."""
    if kind in ("ca", "ta"):
        return TwoDAttention(codewords, steps, "codeword" if kind == "ca" else "temporal")
    if kind in ("csa", "tsa", "ctsa"):
        return SelfAttention(codewords, steps, kind, heads, d)
    raise SpecError("attention", f"unknown attention {kind!r} (allowed: {', '.join(ATTENTIONS)})")


class NBoFNet(nn.Module):
    """``(B, C, L)`` series -> ``(B, classes)`` logits: pre-processing, (T)NBoF quantisation, attention,
    histogram, classifier (module docstring). Build it with :func:`make_nbof`."""

    def __init__(self, variant: str, in_channels: int, length: int, classes: int, *, codewords: int = 256,
                 heads: int = 3, d: int = 512, layers: int = 3, filters: int = 32, kernel: int = 7, pool: int = 2,
                 hidden: int = 64, dropout: float = 0.2, normalise: bool = False, batchnorm: bool = False) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise SpecError("variant", f"unknown variant {variant!r} (allowed: {', '.join(VARIANTS)})")
        self.channels, self.length = _positive_int("in_channels", in_channels), _positive_int("length", length)
        _positive_int("classes", classes, 2)
        _positive_int("codewords", codewords)
        _positive_int("hidden", hidden, 0)
        self.variant = variant
        self.temporal, _, kind = variant.partition("-")
        self.temporal = self.temporal == "tnbof"
        self.frontend = conv_frontend(in_channels, layers, filters, kernel, pool, batchnorm)
        steps = length
        for _ in range(layers):
            steps //= pool
        if steps < 2:
            raise SpecError("length", f"{length} samples leave {steps} step(s) after {layers} pooling(s) by {pool}; "
                            "at least 2 are needed")
        self.steps, self.codewords = steps, codewords
        self.quantiser = LogisticQuantiser(filters if layers else in_channels, codewords, normalise)
        self.attention = make_attention(kind, codewords, steps, heads, d) if kind else nn.Identity()
        width = codewords * (2 if self.temporal else 1)
        head: list[nn.Module] = [nn.Linear(width, classes)]
        if hidden:
            head = [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes)]
        self.classifier = nn.Sequential(*head)

    def quantise(self, x: Tensor) -> Tensor:
        """``(B, C, L)`` -> ``Phi`` ``(B, K, T)`` (before attention)."""
        if x.ndim != 3 or tuple(x.shape[1:]) != (self.channels, self.length):
            raise SpecError("x", f"expected series (B, {self.channels}, {self.length}), got {tuple(x.shape)}")
        return self.quantiser(self.frontend(x))

    def histogram(self, x: Tensor) -> Tensor:
        """``(B, C, L)`` -> ``(B, K)`` (NBoF) or ``(B, 2 K)`` (TNBoF: short, then long)."""
        phi = self.quantise(x)
        long = self.attention(phi).mean(dim=-1)
        if not self.temporal:
            return long
        return torch.cat([phi[..., self.steps // 2:].mean(dim=-1), long], dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.histogram(x))


def make_nbof(variant: str, in_channels: int, length: int, classes: int, *, codewords: int = 256, heads: int = 3,
              d: int = 512, seed: int | None = None, **options: Any) -> NBoFNet:
    """:class:`NBoFNet` ``variant`` (one of :data:`VARIANTS`) for ``(B, in_channels, length)`` series; ``options``
    are :class:`NBoFNet`'s (``layers``, ``filters``, ``kernel``, ``pool``, ``hidden``, ``dropout``,
    ``normalise``, ``batchnorm``). With a ``seed`` the initial weights depend on it alone (the global generator is untouched)."""
    if variant not in VARIANTS:
        raise SpecError("variant", f"unknown variant {variant!r} (allowed: {', '.join(VARIANTS)})")
    if seed is None:
        return NBoFNet(variant, in_channels, length, classes, codewords=codewords, heads=heads, d=d, **options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_positive_int("seed", seed, 0))
        return NBoFNet(variant, in_channels, length, classes, codewords=codewords, heads=heads, d=d, **options)


__all__ = ["ATTENTIONS", "VARIANTS", "LogisticQuantiser", "NBoFNet", "SelfAttention", "TwoDAttention",
           "conv_frontend", "make_attention", "make_nbof", "receptive_field"]
