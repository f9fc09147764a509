"""The MatchboxNet training recipe's optimiser and schedule (OpenDR D3.2 §5.2): NovoGrad, warmup-hold-decay.

NovoGrad (Ginsburg et al. 2019, Algorithm 1), per parameter tensor ("layer") ``l`` at step ``t``:

* ``v_t = ||g_t||^2`` at the first step, then ``v_t = beta2 v_{t-1} + (1 - beta2) ||g_t||^2`` (one scalar
  second moment per layer);
* ``m_t = beta1 m_{t-1} + (g_t / (sqrt(v_t) + eps) + d w_t)``, with ``(1 - beta1)`` multiplying the bracket
  when ``grad_averaging`` (``m_0 = 0``); ``d`` is the weight decay, added to the normalised gradient;
* ``w_{t+1} = w_t - lr m_t``.

Defaults ``beta1 = 0.95``, ``beta2 = 0.5`` (the recipe in §5.2); the MatchboxNet config uses weight decay 0.001.

The schedule (:func:`warmup_hold_decay`): linear warm-up from ``lr_min`` to ``lr_max`` over the first 5 % of
the steps, ``lr_max`` held to 50 %, then polynomial decay of power 2 to ``lr_min`` at the last step (NeMo's
``PolynomialHoldDecayAnnealing``, power 2, as in the MatchboxNet config); the rate stays in ``[lr_min, lr_max]``
throughout ("capped in the interval between 0.001 and 0.05").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from hcgym.errors import SpecError


class NovoGrad(torch.optim.Optimizer):
    """NovoGrad with layer-wise second moments and decoupled-in-the-moment weight decay (module docstring)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 0.05,
                 betas: tuple[float, float] = (0.95, 0.5), eps: float = 1e-8, weight_decay: float = 0.0,
                 grad_averaging: bool = False) -> None:
        if not lr > 0:
            raise SpecError("lr", f"expected a positive learning rate, got {lr!r}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise SpecError("betas", f"expected two numbers in [0, 1), got {betas!r}")
        if not eps > 0 or not weight_decay >= 0:
            raise SpecError("eps" if not eps > 0 else "weight_decay", f"got eps {eps!r}, weight_decay {weight_decay!r}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "grad_averaging": grad_averaging})

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                norm2 = p.grad.pow(2).sum()
                if not state:
                    state["v"], state["m"] = norm2.clone(), torch.zeros_like(p)
                else:
                    state["v"].mul_(beta2).add_(norm2, alpha=1 - beta2)
                update = p.grad / (state["v"].sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                if group["grad_averaging"]:
                    update.mul_(1 - beta1)
                state["m"].mul_(beta1).add_(update)
                p.add_(state["m"], alpha=-group["lr"])
        return loss


def warmup_hold_decay(step: int, total: int, lr_min: float = 0.001, lr_max: float = 0.05, warmup: float = 0.05,
                      hold: float = 0.45, power: float = 2.0) -> float:
    """Learning rate at ``step`` of ``total`` steps (module docstring): ``lr_min`` at 0, ``lr_max`` from
    ``warmup total`` to ``(warmup + hold) total``, ``lr_min`` at ``total`` (and after)."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise SpecError("total", f"expected a positive integer, got {total!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise SpecError("step", f"expected a non-negative integer, got {step!r}")
    if not 0 < lr_min <= lr_max:
        raise SpecError("lr_min", f"expected 0 < lr_min <= lr_max, got {lr_min!r} and {lr_max!r}")
    if not (0 <= warmup and 0 <= hold and warmup + hold < 1):
        raise SpecError("warmup", f"expected warmup, hold >= 0 with warmup + hold < 1, got {warmup!r}, {hold!r}")
    warm_end, hold_end = warmup * total, (warmup + hold) * total
    if step < warm_end:
        return lr_min + (lr_max - lr_min) * step / warm_end
    if step <= hold_end:
        return lr_max
    remaining = max(0.0, 1.0 - (step - hold_end) / (total - hold_end))
    return lr_min + (lr_max - lr_min) * remaining ** power
