"""Exit heads of the metric-learning early exits (Passalis & Tefas, EUSIPCO 2021) and their numerics.

An exit head ``g`` maps the feature map ``y_i`` (N, C, H, W) after block ``i`` of a fixed
:class:`~hcgym.perception.face.irnet.IRNet` to an estimate of the final embedding ``y`` (N, M), trained
on eq. (2): ``L_i = 1/N sum_j ||y_j - g(y_j^(i))||^2``. Four heads, as in the paper:
:class:`RawHead` (global average pooling, its own space), :class:`LRHead` (GAP + closed-form least
squares), :class:`BoFHead` (k-means codebook, fixed sigma, soft memberships, closed-form regressor) and
:class:`ProposedHead` (BoF with codewords and sigma trained by Adam on eq. (2), regressor refitted).
The numerics they share (pooling, squared distances, k-means, ridge least squares) are here too.
See :mod:`hcgym.perception.face.early_exits` for the overview.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from hcgym.errors import SpecError

METHODS: tuple[str, ...] = ("raw", "lr", "bof", "proposed")


# ---------------------------------------------------------------- numerics
def gap(features: torch.Tensor) -> torch.Tensor:
    """Global average pooling: (N, C, H, W) -> (N, C)."""
    return features.float().mean(dim=(2, 3))


def sq_dists(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (..., n, d) x (k, d) -> (..., n, k), by one matmul (clamped at 0)."""
    return ((x * x).sum(-1, keepdim=True) - 2.0 * (x @ v.T) + (v * v).sum(-1)).clamp_min(0.0)


def kmeans(x: torch.Tensor, k: int, iters: int = 25, seed: int = 0) -> torch.Tensor:
    """k-means (k-means++ seeding, Lloyd iterations) of ``x`` (n, d) -> codewords (k, d); deterministic.

    Empty clusters are re-seeded with the points farthest from their centres.
    """
    x = x.float()
    n = len(x)
    if n < k:
        raise SpecError("n_codewords", f"{k} codewords need at least {k} feature vectors, got {n}")
    g = torch.Generator().manual_seed(int(seed))
    centres = torch.empty(k, x.shape[1])
    centres[0] = x[torch.randint(n, (1,), generator=g)]
    d2 = sq_dists(x, centres[:1])[:, 0]
    for j in range(1, k):
        total = float(d2.sum())
        idx = torch.multinomial(d2 / total, 1, generator=g) if total > 0 else torch.randint(n, (1,), generator=g)
        centres[j] = x[idx]
        d2 = torch.minimum(d2, sq_dists(x, centres[j:j + 1])[:, 0])
    for _ in range(int(iters)):
        dist = sq_dists(x, centres)
        assign = dist.argmin(1)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        new = sums / counts.clamp_min(1).unsqueeze(1).float()
        empty = (counts == 0).nonzero()[:, 0]
        if len(empty):
            far = dist.gather(1, assign[:, None])[:, 0].argsort(descending=True)[: len(empty)]
            new[empty] = x[far]
        if torch.equal(new, centres):
            break
        centres = new
    return centres


def ridge_solve(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-5) -> torch.Tensor:
    """Least squares ``W = argmin ||x W - y||^2 + lam ||W||^2`` (no bias), in float64: (N, D), (N, M) -> (D, M).

    ``lam = ridge * trace(cov(x)) / D * N`` (relative to the centred feature spread; 0 = plain least
    squares, solved by ``lstsq``).
    """
    x, y = x.double(), y.double()
    xtx, xty = x.T @ x, x.T @ y
    return _solve_normal(xtx, xty, x.sum(0), len(x), ridge)


def _solve_normal(xtx: torch.Tensor, xty: torch.Tensor, xsum: torch.Tensor, n: int, ridge: float) -> torch.Tensor:
    d = xtx.shape[0]
    if ridge <= 0:
        return torch.linalg.lstsq(xtx, xty).solution.float()
    centred = torch.trace(xtx) - float(xsum @ xsum) / max(n, 1)
    scale = float(centred) / d if float(centred) > 0 else float(torch.trace(xtx)) / d
    lam = ridge * max(scale, 1e-12)
    return torch.linalg.solve(xtx + lam * torch.eye(d, dtype=xtx.dtype), xty).float()


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _subset(n: int, max_n: int | None, seed: int) -> torch.Tensor:
    """Indices of a seeded random subset of ``range(n)`` of size ``min(n, max_n)`` (sorted)."""
    if max_n is None or n <= max_n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g)[:max_n].sort().values


# ---------------------------------------------------------------- heads
class ExitHead(nn.Module, ABC):
    """An exit head: (N, C, H, W) exit features -> (N, D) estimate of the final embedding."""

    kind: str = "head"

    def __init__(self, in_channels: int, dim: int = 512) -> None:
        super().__init__()
        self.in_channels, self.dim = int(in_channels), int(dim)

    def config(self) -> dict[str, Any]:
        """Constructor arguments plus ``kind`` (JSON-friendly)."""
        return {"kind": self.kind, "in_channels": self.in_channels, "dim": self.dim}

    @property
    @abstractmethod
    def n_params(self) -> int:
        """Added parameters (the paper's Table I count)."""

    @abstractmethod
    def flops(self, h: int, w: int) -> int:
        """FLOPs per face on an (C, h, w) exit map (2 per multiply-add; element-wise ops not counted)."""

    @abstractmethod
    def fit(self, features: torch.Tensor, targets: torch.Tensor, **kwargs: Any) -> "ExitHead":
        """Fit on exit features (N, C, H, W) and final embeddings (N, M); returns ``self``."""

    def _check(self, features: torch.Tensor) -> None:
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise SpecError("features", f"expected (N, {self.in_channels}, H, W), got {tuple(features.shape)}")

    @torch.no_grad()
    def predict(self, features: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Forward pass in chunks, without gradients: (N, C, H, W) -> (N, D) float32."""
        if not len(features):
            return torch.zeros(0, self.out_dim)
        return torch.cat([self(features[s].float()) for s in _chunks(len(features), batch_size)])

    @property
    def out_dim(self) -> int:
        return self.dim


class RawHead(ExitHead):
    """Global average pooling (N, C, H, W) -> (N, C): raw exit features, compared in their own gallery."""

    kind = "raw"

    @property
    def out_dim(self) -> int:
        return self.in_channels

    @property
    def n_params(self) -> int:
        return 0

    def flops(self, h: int, w: int) -> int:
        return 0

    def fit(self, features: torch.Tensor, targets: torch.Tensor | None = None, **_: Any) -> "RawHead":
        self._check(features)
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self._check(features)
        return gap(features)


class LRHead(ExitHead):
    """GAP + linear map C -> M fitted in closed form (least squares, optional ridge).

    No bias by default, as in the paper's parameter count (C*M). ``bias=True`` adds an intercept
    (C*M + M parameters): GAP features cannot otherwise represent the targets' mean, whereas BoF
    histograms sum to 1 and so carry an implicit intercept.
    """

    kind = "lr"

    def __init__(self, in_channels: int, dim: int = 512, bias: bool = False) -> None:
        super().__init__(in_channels, dim)
        self.weight = nn.Parameter(torch.zeros(self.in_channels, self.dim), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(self.dim), requires_grad=False) if bias else None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "bias": self.bias is not None}

    @property
    def n_params(self) -> int:
        return self.in_channels * self.dim + (self.dim if self.bias is not None else 0)

    def flops(self, h: int, w: int) -> int:
        return 2 * self.in_channels * self.dim

    @torch.no_grad()
    def fit(self, features: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-5,
            max_samples: int | None = 16000, seed: int = 0, **_: Any) -> "LRHead":
        """Closed-form fit on up to ``max_samples`` (seeded subset) of (N, C, H, W) features and (N, M) targets."""
        self._check(features)
        idx = _subset(len(features), max_samples, seed)
        x = torch.cat([gap(features[idx[s]]) for s in _chunks(len(idx), 1024)])
        if self.bias is None:
            self.weight.copy_(ridge_solve(x, targets[idx].float(), ridge))
        else:  # intercept from the centred problem (not penalised)
            xm, ym = x.double().mean(0), targets[idx].double().mean(0)
            w = ridge_solve(x.double() - xm, targets[idx].double() - ym, ridge)
            self.weight.copy_(w)
            self.bias.copy_((ym - xm @ w.double()).float())
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self._check(features)
        y = gap(features) @ self.weight
        return y if self.bias is None else y + self.bias


class BoFHead(ExitHead):
    """Bag-of-Features pooling + linear regression N_K -> M (k-means codebook, fixed sigma, closed form)."""

    kind = "bof"
    trainable = False

    def __init__(self, in_channels: int, dim: int = 512, n_codewords: int = 512) -> None:
        super().__init__(in_channels, dim)
        self.n_codewords = int(n_codewords)
        self.codewords = nn.Parameter(torch.zeros(self.n_codewords, self.in_channels), requires_grad=self.trainable)
        self.sigma = nn.Parameter(torch.ones(()), requires_grad=self.trainable)
        self.weight = nn.Parameter(torch.zeros(self.n_codewords, self.dim), requires_grad=self.trainable)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_codewords": self.n_codewords}

    @property
    def n_params(self) -> int:
        return self.n_codewords * self.in_channels + self.n_codewords * self.dim

    def flops(self, h: int, w: int) -> int:
        return 2 * h * w * self.n_codewords * self.in_channels + 2 * self.n_codewords * self.dim

    def memberships(self, features: torch.Tensor) -> torch.Tensor:
        """Soft codeword memberships (N, H*W, N_K); each location's row sums to 1."""
        self._check(features)
        x = features.float().flatten(2).transpose(1, 2)  # (N, HW, C)
        return torch.softmax(-sq_dists(x, self.codewords) / (2.0 * self.sigma ** 2), dim=-1)

    def histogram(self, features: torch.Tensor) -> torch.Tensor:
        """BoF histogram (N, N_K): spatial mean of the memberships."""
        return self.memberships(features).mean(1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.histogram(features) @ self.weight

    @torch.no_grad()
    def init_codebook(self, features: torch.Tensor, max_vectors: int = 20000, kmeans_iters: int = 25,
                      seed: int = 0) -> None:
        """k-means on up to ``max_vectors`` feature vectors (random locations), sigma = mean vector-codeword distance."""
        self._check(features)
        n, _, h, w = features.shape
        g = torch.Generator().manual_seed(int(seed))
        pick = torch.randperm(n * h * w, generator=g)[: max(int(max_vectors), self.n_codewords)]
        vecs = features.flatten(2)[pick // (h * w), :, pick % (h * w)].float()  # (n_vectors, C)
        self.codewords.copy_(kmeans(vecs, self.n_codewords, kmeans_iters, seed))
        self.sigma.fill_(float(torch.cat([sq_dists(vecs[s], self.codewords).sqrt().mean(1)
                                          for s in _chunks(len(vecs), 4096)]).mean()))

    @torch.no_grad()
    def fit_regressor(self, features: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-5,
                      max_samples: int | None = 16000, seed: int = 0, batch_size: int = 256) -> None:
        """Closed-form least squares of the histograms of up to ``max_samples`` faces onto the targets."""
        idx = _subset(len(features), max_samples, seed)
        s = torch.cat([self.histogram(features[idx[c]].float()) for c in _chunks(len(idx), batch_size)])
        self.weight.copy_(ridge_solve(s, targets[idx].float(), ridge))

    def fit(self, features: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-5,
            max_samples: int | None = 16000, max_vectors: int = 20000, kmeans_iters: int = 25, seed: int = 0,
            **_: Any) -> "BoFHead":
        """k-means codebook -> sigma = mean distance -> closed-form regressor."""
        self._check(features)
        self.init_codebook(features, max_vectors, kmeans_iters, seed)
        self.fit_regressor(features, targets, ridge, max_samples, seed)
        return self


class ProposedHead(BoFHead):
    """BoF with trainable codewords and sigma, trained on eq. (2), regressor refitted in closed form."""

    kind = "proposed"
    trainable = True

    @property
    def n_params(self) -> int:
        return super().n_params + 1

    def fit(self, features: torch.Tensor, targets: torch.Tensor, iterations: int = 2000, batch_size: int = 32,
            lr: float = 1e-3, lr_weight: float = 1e-4, ridge: float = 1e-5, max_samples: int | None = 16000,
            max_vectors: int = 20000, kmeans_iters: int = 25, seed: int = 0, init: BoFHead | None = None,
            progress: bool = False, threads: int | None = 1, **_: Any) -> "ProposedHead":
        """k-means -> sigma -> closed-form W (or copy of a fitted ``init`` BoF) -> Adam on MSE -> closed-form W.

        Records the per-iteration training loss in ``self.history`` (list of floats).
        """
        self._check(features)
        if init is not None:
            with torch.no_grad():
                for name in ("codewords", "sigma", "weight"):
                    getattr(self, name).copy_(getattr(init, name))
        else:
            super().fit(features, targets, ridge, max_samples, max_vectors, kmeans_iters, seed)
        self.history = self.train_bof(features, targets, iterations, batch_size, lr, lr_weight, seed, progress, threads)
        self.fit_regressor(features, targets, ridge, max_samples, seed)
        return self

    def train_bof(self, features: torch.Tensor, targets: torch.Tensor, iterations: int = 2000, batch_size: int = 32,
                  lr: float = 1e-3, lr_weight: float = 1e-4, seed: int = 0, progress: bool = False,
                  threads: int | None = 1) -> list[float]:
        """Adam (default betas) on ``mean_j ||y_j - g(x_j)||^2`` over seeded mini-batches; returns the losses.

        ``threads``: torch intra-op threads during the loop (restored after; ``None`` = leave as is).
        One thread is the default: each step is small, and on a shared 2-core machine two threads
        were measured 4-45x slower per step than one (spin-waiting under load).
        """
        with _num_threads(threads):
            return self._train_bof(features, targets, iterations, batch_size, lr, lr_weight, seed, progress)

    def _train_bof(self, features: torch.Tensor, targets: torch.Tensor, iterations: int, batch_size: int,
                   lr: float, lr_weight: float, seed: int, progress: bool) -> list[float]:
        opt = torch.optim.Adam([{"params": [self.codewords, self.sigma], "lr": lr},
                                {"params": [self.weight], "lr": lr_weight}])
        g = torch.Generator().manual_seed(int(seed) + 1)
        n, order, pos, history = len(features), torch.randperm(len(features), generator=g), 0, []
        bar = _progress(iterations, f"proposed head C={self.in_channels}", progress)
        for _ in range(int(iterations)):
            if pos + batch_size > n:
                order, pos = torch.randperm(n, generator=g), 0
            idx = order[pos: pos + batch_size]
            pos += batch_size
            loss = ((self(features[idx].float()) - targets[idx].float()) ** 2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return history


@contextmanager
def _num_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


HEAD_TYPES: dict[str, type[ExitHead]] = {"raw": RawHead, "lr": LRHead, "bof": BoFHead, "proposed": ProposedHead}


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False)
