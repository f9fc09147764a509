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
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import io
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.face.irnet import IRNet, chips_to_input, choose_exits, flops_per_block

METHODS: tuple[str, ...] = ("raw", "lr", "bof", "proposed")
HEADS_FORMAT = "hcgym-exit-heads"


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


# ---------------------------------------------------------------- heads of all exits
class ExitHeads(nn.Module):
    """The heads of every method at every exit: ``heads["proposed"][i]`` is exit ``i``'s (block ``exits[i]``).

    ``save(path)`` writes ``path`` (tensor state_dict) and ``path.json`` (exits + head configs);
    ``ExitHeads.load(path)`` rebuilds them (``torch.load(weights_only=True)``, nothing pickled).
    """

    def __init__(self, exits: Sequence[int], heads: dict[str, Sequence[ExitHead]], meta: dict[str, Any] | None = None):
        super().__init__()
        self.exits = [int(k) for k in exits]
        for m, hs in heads.items():
            if m not in HEAD_TYPES or len(hs) != len(self.exits):
                raise SpecError("heads", f"method {m!r} with {len(hs)} heads (allowed methods {list(HEAD_TYPES)}, "
                                         f"one head per exit {self.exits})")
        self.heads = nn.ModuleDict({m: nn.ModuleList(hs) for m, hs in heads.items()})
        self.meta = dict(meta or {})

    def __getitem__(self, method: str) -> list[ExitHead]:
        if method not in self.heads:
            raise SpecError("method", f"{method!r} not fitted (available: {list(self.heads)})")
        return list(self.heads[method])

    @property
    def methods(self) -> list[str]:
        return list(self.heads)

    def config(self) -> dict[str, Any]:
        return {"format": HEADS_FORMAT, "version": 1, "exits": self.exits,
                "heads": {m: [h.config() for h in hs] for m, hs in self.heads.items()}, "meta": self.meta}

    def save(self, path: str | Path) -> Path:
        from hcgym.paths import atomic_write_bytes

        path = Path(path)
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, buf)
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_bytes(path.with_suffix(path.suffix + ".json"), json.dumps(self.config(), indent=1).encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ExitHeads":
        path = Path(path).expanduser()
        jpath = path.with_suffix(path.suffix + ".json")
        if not path.is_file() or not jpath.is_file():
            raise SpecError("heads", f"need {path} and {jpath.name} (written by ExitHeads.save)")
        cfg = json.loads(jpath.read_text())
        if cfg.get("format") != HEADS_FORMAT:
            raise SpecError("heads", f"{jpath} is not an {HEADS_FORMAT} file (format={cfg.get('format')!r})")
        heads = {m: [HEAD_TYPES[c.pop("kind")](**c) for c in (dict(c) for c in hs)] for m, hs in cfg["heads"].items()}
        obj = cls(cfg["exits"], heads, cfg.get("meta"))
        obj.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return obj.eval()


# ---------------------------------------------------------------- feature extraction and fitting
class ExitModel(nn.Module):
    """An IRNet with exits: ``forward(x) -> ([exit maps (N, C_i, H_i, W_i)], embedding (N, M))`` in one pass."""

    def __init__(self, model: IRNet, exits: Sequence[int]) -> None:
        super().__init__()
        self.model, self.exits = model, [int(k) for k in exits]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        return self.model.forward_features(x, self.exits)

    @torch.no_grad()
    def extract(self, chips: np.ndarray, batch_size: int = 128, dtype: torch.dtype = torch.float32,
                progress: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(N, S, S, 3) uint8 aligned chips -> exit maps (stored as ``dtype``) and final embeddings (N, M) float32."""
        was = self.model.training
        self.model.eval()
        n = len(chips)
        maps: list[torch.Tensor] | None = None
        final = torch.empty(n, self.model.embedding_dim)
        bar = _progress(n, "exit features", progress)
        try:
            for s in _chunks(n, batch_size):
                x = torch.from_numpy(chips_to_input(chips[s], self.model.input_size))
                feats, emb = self(x)
                if maps is None:
                    maps = [torch.empty((n, *f.shape[1:]), dtype=dtype) for f in feats]
                for buf, f in zip(maps, feats):
                    buf[s] = f.to(dtype)
                final[s] = emb
                if bar is not None:
                    bar.update(s.stop - s.start)
        finally:
            self.model.train(was)
            if bar is not None:
                bar.close()
        if maps is None:
            raise SpecError("chips", "no chips given")
        return maps, final


def fit_exit_heads(model: IRNet, chips: np.ndarray, exits: Sequence[int] | None = None, n_codewords: int = 512,
                   iterations: int = 2000, seed: int = 0, methods: Sequence[str] = METHODS,
                   max_samples: int | None = 16000, batch_size: int = 32, lr: float = 1e-3, lr_weight: float = 1e-4,
                   ridge: float = 1e-5, max_vectors: int = 20000, kmeans_iters: int = 25,
                   l2_targets: bool = False, lr_bias: bool = False, feature_dtype: torch.dtype = torch.float16,
                   threads: int | None = 1, progress: bool = False) -> ExitHeads:
    """Fit every method's head at every exit of a fixed ``model`` on aligned ``chips`` (N, S, S, 3) uint8.

    ``exits`` defaults to :func:`~hcgym.perception.face.irnet.choose_exits` (22/38/50 % of the FLOPs).
    ``n_codewords`` defaults to the paper's 512; a BoF head costs ``2 N_K (H W C + M)`` FLOPs, which
    on the default 56x56 IRNet is 76 % of the backbone cost of exit 1 (13.4 of 17.6 MFLOPs) for
    N_K = 512 and 9.5 % for N_K = 64 (the paper's ~10 % overhead).
    Up to ``max_samples`` chips (seeded subset) are used for everything; their exit features are kept
    in memory as ``feature_dtype`` (float16 halves it: about 62 KB per chip for the default IRNet).
    Targets are the final embeddings (L2-normalised when ``l2_targets``). The Proposed head starts
    from the fitted BoF head of the same exit (same k-means and sigma), as in the paper. ``lr_bias``
    gives the LR heads an intercept (off by default, as in the paper). ``threads`` sets torch's
    intra-op threads for the whole fit (restored after; ``None`` = leave as is; see
    :meth:`ProposedHead.train_bof` for why one is the default).
    """
    for m in methods:
        if m not in HEAD_TYPES:
            raise SpecError("methods", f"unknown method {m!r} (allowed: {list(HEAD_TYPES)})")
    with _num_threads(threads):
        return _fit_exit_heads(model, chips, exits, n_codewords, iterations, seed, methods, max_samples, batch_size,
                               lr, lr_weight, ridge, max_vectors, kmeans_iters, l2_targets, lr_bias, feature_dtype,
                               progress)


def _fit_exit_heads(model: IRNet, chips: np.ndarray, exits: Sequence[int] | None, n_codewords: int, iterations: int,
                    seed: int, methods: Sequence[str], max_samples: int | None, batch_size: int, lr: float,
                    lr_weight: float, ridge: float, max_vectors: int, kmeans_iters: int, l2_targets: bool,
                    lr_bias: bool, feature_dtype: torch.dtype, progress: bool) -> ExitHeads:
    if exits is None:
        exits = choose_exits(model)[0]
    chips = np.asarray(chips)
    idx = _subset(len(chips), max_samples, seed).numpy()
    maps, targets = ExitModel(model, exits).extract(chips[idx], dtype=feature_dtype, progress=progress)
    if l2_targets:
        targets = nn.functional.normalize(targets, dim=1)
    dim = targets.shape[1]
    common = {"ridge": ridge, "max_samples": None, "max_vectors": max_vectors, "kmeans_iters": kmeans_iters, "seed": seed}
    heads: dict[str, list[ExitHead]] = {m: [] for m in methods}
    for i, feats in enumerate(maps):
        c = feats.shape[1]
        if "raw" in heads:
            heads["raw"].append(RawHead(c, dim).fit(feats))
        if "lr" in heads:
            heads["lr"].append(LRHead(c, dim, lr_bias).fit(feats, targets, **common))
        bof = BoFHead(c, dim, n_codewords).fit(feats, targets, **common) if {"bof", "proposed"} & set(heads) else None
        if "bof" in heads:
            heads["bof"].append(bof)
        if "proposed" in heads:
            heads["proposed"].append(ProposedHead(c, dim, n_codewords).fit(
                feats, targets, iterations=iterations, batch_size=batch_size, lr=lr, lr_weight=lr_weight,
                init=bof, progress=progress, threads=None, **common))
    meta = {"n_samples": int(len(idx)), "n_codewords": int(n_codewords), "iterations": int(iterations), "seed": int(seed),
            "l2_targets": bool(l2_targets), "lr_bias": bool(lr_bias), "input_size": model.input_size}
    return ExitHeads(exits, heads, meta).eval()


# ---------------------------------------------------------------- adaptive inference
@dataclass
class AdaptiveEmbedding:
    """Result of :meth:`AdaptiveFaceEmbedder.embed`.

    Attributes:
        vectors: (N, M) float64 estimates of the final embeddings.
        exit: 1-based exit number used, or ``None`` for the final layer.
        block: IRNet block index of that exit (``None`` for the final layer).
        level: 0..K-1 for the exits, K for the final layer (larger = deeper).
        flops_per_face: FLOPs per face of the path taken (backbone up to the exit + head).
        fits: whether the chosen path fits the budget (``False`` when even exit 1 does not).
    """

    vectors: np.ndarray
    exit: int | None
    block: int | None
    level: int
    flops_per_face: int
    fits: bool = True


class AdaptiveFaceEmbedder:
    """An IRNet with fitted exit heads that answers within a per-frame compute budget.

    ``embed(chips, budget_flops=, budget_ms=, n_faces=)`` uses the deepest level (exit 1..K with the
    ``method`` head, or the final layer) whose per-face cost times the number of faces fits every
    given budget; with no budget, the final layer. FLOP costs come from FlopCounterMode; millisecond
    costs from :meth:`calibrate_timing`, which times this machine once (machine- and load-dependent).
    """

    def __init__(self, model: IRNet, heads: ExitHeads, method: str = "proposed") -> None:
        self.model = model.eval()
        self.exits = list(heads.exits)
        self.method = method
        self.heads = [h.eval() for h in heads[method]]
        self.all_heads = heads
        fl = flops_per_block(model)
        self.flops_per_face: list[int] = [
            int(fl["cumulative"][k] + h.flops(model.block_hw(k), model.block_hw(k))) for k, h in zip(self.exits, self.heads)
        ] + [int(fl["total"])]
        self.ms_per_face: list[float] | None = None

    @property
    def n_levels(self) -> int:
        return len(self.exits) + 1

    def costs(self) -> list[dict[str, Any]]:
        """Per level: exit number, block, FLOPs per face, fraction of the full network, ms per face (if calibrated)."""
        total = self.flops_per_face[-1]
        out = []
        for lv in range(self.n_levels):
            final = lv == len(self.exits)
            out.append({"level": lv, "exit": None if final else lv + 1, "block": None if final else self.exits[lv],
                        "flops_per_face": self.flops_per_face[lv], "fraction": self.flops_per_face[lv] / total,
                        "ms_per_face": None if self.ms_per_face is None else self.ms_per_face[lv]})
        return out

    def choose(self, n_faces: int, budget_flops: float | None = None, budget_ms: float | None = None) -> tuple[int, bool]:
        """(level, fits): the deepest level whose cost x ``n_faces`` fits the budgets; level 0 if none fits."""
        if budget_ms is not None and self.ms_per_face is None:
            self.calibrate_timing()
        n = max(int(n_faces), 1)
        for lv in reversed(range(self.n_levels)):
            ok = budget_flops is None or self.flops_per_face[lv] * n <= budget_flops
            ok = ok and (budget_ms is None or self.ms_per_face[lv] * n <= budget_ms)  # type: ignore[index]
            if ok:
                return lv, True
        return 0, False

    @torch.no_grad()
    def embed_level(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """(N, 3, S, S) normalised input -> (N, M) at ``level`` (0..K-1 exits, K final)."""
        if level == len(self.exits):
            return self.model(x)
        return self.heads[level](self.model.forward_to(x, self.exits[level]))

    def embed(self, chips: np.ndarray, budget_flops: float | None = None, budget_ms: float | None = None,
              n_faces: int | None = None) -> AdaptiveEmbedding:
        """(N, S, S, 3) uint8 aligned chips -> :class:`AdaptiveEmbedding` within the per-frame budget.

        ``n_faces`` (default ``len(chips)``) is the number of faces the budget must cover this frame.
        """
        x = torch.from_numpy(chips_to_input(chips, self.model.input_size))
        lv, fits = self.choose(len(x) if n_faces is None else n_faces, budget_flops, budget_ms)
        vecs = self.embed_level(x, lv).double().numpy() if len(x) else np.zeros((0, self.model.embedding_dim))
        final = lv == len(self.exits)
        return AdaptiveEmbedding(vecs, None if final else lv + 1, None if final else self.exits[lv], lv,
                                 self.flops_per_face[lv], fits)

    @torch.no_grad()
    def calibrate_timing(self, batch: int = 4, repeats: int = 20, seed: int = 0) -> list[float]:
        """Median ms per face of each level on this machine (interleaved runs, batch ``batch``).

        Stored in ``self.ms_per_face``. Wall-clock numbers depend on the CPU, thread count and load.
        """
        g = torch.Generator().manual_seed(int(seed))
        s = self.model.input_size
        x = torch.rand(batch, 3, s, s, generator=g) * 2 - 1
        times: list[list[float]] = [[] for _ in range(self.n_levels)]
        for lv in range(self.n_levels):  # warm-up
            self.embed_level(x, lv)
        for _ in range(int(repeats)):
            for lv in range(self.n_levels):
                t = time.perf_counter()
                self.embed_level(x, lv)
                times[lv].append((time.perf_counter() - t) * 1e3 / batch)
        self.ms_per_face = [float(np.median(t)) for t in times]
        return self.ms_per_face

    # -- files
    def save(self, checkpoint: str | Path, heads_path: str | Path, extra_meta: dict[str, Any] | None = None) -> None:
        """Write the IRNet checkpoint (``save_checkpoint``) and the heads (``ExitHeads.save``)."""
        from hcgym.perception.face.irnet import save_checkpoint

        save_checkpoint(self.model, checkpoint, {"exits": self.exits}, extra_meta)
        self.all_heads.save(heads_path)

    @classmethod
    def load(cls, checkpoint: str | Path, heads_path: str | Path, method: str = "proposed") -> "AdaptiveFaceEmbedder":
        from hcgym.perception.face.irnet import load_checkpoint

        model = load_checkpoint(checkpoint)[0]
        return cls(model, ExitHeads.load(heads_path), method)
