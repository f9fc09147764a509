"""Monte Carlo dropout (OpenDR D3.2 Sec. 4.1): an ensemble of stochastic passes and its uncertainty.

Each pass runs the model with its dropout layers active and everything else in eval mode (batch norm uses
its running statistics and never updates them). The ensemble output is the mean of the passes' softmax
probabilities; the per-class variance across passes is the uncertainty of the seed's text (a variance of a
probability is at most 0.25); the predictive entropy of the mean, and the mutual information between
prediction and dropout mask (entropy of the mean minus mean entropy of the passes) are given too. The
deterministic prediction ("wo/MCD": inference once) is the plain eval-mode pass.

Passes draw their dropout masks from ``seed`` (the global torch random state is left as it was), pass after
pass over the batches of ``batch`` samples, so the same seed and batch size give the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hcgym.errors import SpecError


@dataclass
class MCResult:
    """Monte Carlo dropout outputs for ``N`` samples, ``C`` classes and ``P`` passes (float32 arrays).

    Attributes:
        mean: (N, C) mean probabilities over passes (the ensemble prediction).
        var: (N, C) per-class variance of the probabilities over passes (ddof 0).
        entropy: (N,) predictive entropy of ``mean`` (nats).
        mutual_info: (N,) ``entropy`` minus the mean entropy of the single passes (nats, >= 0).
        passes: (P, N, C) probabilities of every pass.
        deterministic: (N, C) probabilities of the eval-mode pass (dropout off).
    """

    mean: np.ndarray
    var: np.ndarray
    entropy: np.ndarray
    mutual_info: np.ndarray
    passes: np.ndarray
    deterministic: np.ndarray


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)


def _probs(model: nn.Module, x: torch.Tensor, batch: int) -> np.ndarray:
    return np.concatenate([torch.softmax(model(x[i:i + batch]), dim=1).numpy() for i in range(0, len(x), batch)])


def mc_predict(model: nn.Module, x: np.ndarray | torch.Tensor, passes: int = 100, seed: int = 0,
               batch: int = 256) -> MCResult:
    """``passes`` stochastic passes of ``model`` over inputs ``x`` (N, ...), plus the deterministic one.

    The model's train/eval modes are restored afterwards.
    """
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise SpecError("passes", f"must be a positive integer, got {passes!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SpecError("batch", f"must be a positive integer, got {batch!r}")
    dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if not dropouts:
        raise SpecError("model", "has no dropout layer: Monte Carlo dropout needs one")
    x = torch.as_tensor(x, dtype=torch.float32)
    modes = {m: m.training for m in model.modules()}
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model.eval()
            det = _probs(model, x, batch)
            for m in dropouts:
                m.train()
            torch.manual_seed(seed)
            probs = np.stack([_probs(model, x, batch) for _ in range(passes)])
    finally:
        for m, mode in modes.items():
            m.training = mode
    mean = probs.mean(0)
    entropy = _entropy(mean)
    return MCResult(mean=mean, var=probs.var(0), entropy=entropy,
                    mutual_info=np.clip(entropy - _entropy(probs).mean(0), 0, None),
                    passes=probs, deterministic=det)


def mc_accuracies(result: MCResult, y: np.ndarray) -> dict[str, float]:
    """Accuracies of labels ``y`` (N,): ``ensemble`` ("w/MCD"), ``deterministic`` ("wo/MCD"), and the mean
    and standard deviation over passes of the single stochastic passes' accuracies."""
    y = np.asarray(y)
    single = (result.passes.argmax(-1) == y[None]).mean(1)
    return {"ensemble": float((result.mean.argmax(1) == y).mean()),
            "deterministic": float((result.deterministic.argmax(1) == y).mean()),
            "single_mean": float(single.mean()), "single_std": float(single.std())}
