"""PST-BLN: progressive width and depth search of an ST-BLN (OpenDR D3.2 Sec. 4.1, Heidari & Iosifidis 2021).

The search (:func:`grow`) starts from an empty network and builds it layer by layer:

* A new layer starts with ``b`` channels (a new classifier follows it; the layers below keep their weights)
  and is trained. Then it is widened, ``F <- F + b``, adding ``b`` output channels to every 2D convolution of
  the layer (:func:`widen`), and the whole network is fine-tuned; after each step the training loss ``L_t``
  is compared with the one before, ``alpha_w = (L_{t-1} - L_t) / L_{t-1}``. While ``alpha_w >= eps_w`` the
  new channels are kept; at the first ``alpha_w < eps_w`` the widening stops and the last increment is
  **reverted** (the network before it is restored; the text keeps new channels only "otherwise", and OpenDR
  decrements the topology). Widths stop at ``max_width`` too.
* After a layer's widths are settled, ``alpha_d = (L^(l-1) - L^(l)) / L^(l-1)`` compares its loss with the
  network's before the layer was added; if ``alpha_d < eps_d`` the new layer is **removed** (the network
  before it is restored) and the search ends. Depth stops at ``max_layers`` too.
* The first step of the first layer has nothing to compare with. A loss of 0 counts as "no improvement
  possible" (``alpha = 0``).

What "training" means is the caller's ``train_step(model) -> loss``: it fine-tunes the model in place and
returns its training cross-entropy (:func:`hcgym.perception.expression.training.fit_pstbln` wires in the
trainer; tests script the losses). The final fine-tuning of the found network is the caller's as well.

Growing keeps old weights exactly: every tensor of the wider network holds the old tensor in its leading
slice. New output channels get fresh random incoming weights (and default batch-norm parameters and running
statistics); with ``outgoing="zero"`` (the default) the weights *from* new channels *into* old ones (the
temporal convolution's cross terms, the next layer's or the classifier's input columns) start at zero, so the
widened network computes exactly the old function (eval mode) and the new channels start contributing
through training; ``outgoing="random"`` draws them at random too (the text's "new neurons are initialised
randomly"). Grown networks use ``residual="conv"`` (a 1x1 convolution wherever there is a residual), so
widening never turns an identity residual into a convolution or back. Every random draw comes from
``seed`` and the step's position, so a search is deterministic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch

from hcgym.errors import SpecError
from hcgym.perception.expression.models import ExpressionNet, ExprModelConfig, build_model

OUTGOING: tuple[str, ...] = ("zero", "random")


@dataclass(frozen=True)
class GrowthSettings:
    """The search's settings (seed values: block 5, both thresholds 1e-4)."""

    block: int = 5
    eps_width: float = 1e-4
    eps_depth: float = 1e-4
    max_layers: int = 10
    max_width: int = 100
    outgoing: str = "zero"
    seed: int = 0

    def check(self) -> GrowthSettings:
        """Raise :class:`SpecError` naming the first invalid field; return ``self``."""
        for name in ("block", "max_layers", "max_width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"growth.{name}", f"must be a positive integer, got {v!r}")
        if self.max_width < self.block:
            raise SpecError("growth.max_width", f"must be at least the block ({self.block}), got {self.max_width}")
        for name in ("eps_width", "eps_depth"):
            if not isinstance(getattr(self, name), (int, float)):
                raise SpecError(f"growth.{name}", f"must be a number, got {getattr(self, name)!r}")
        if self.outgoing not in OUTGOING:
            raise SpecError("growth.outgoing", f"unknown {self.outgoing!r} (allowed: {', '.join(OUTGOING)})")
        return self


@dataclass(frozen=True)
class GrowthEvent:
    """One step of the search: the widths tried, their training loss, the criterion and what was decided.

    ``decision``: ``start`` (first layer), ``add_layer``, ``widen`` (kept), ``revert_width`` (the increment was
    undone), ``width_cap``, ``keep_layer``, ``remove_layer`` or ``depth_cap``.
    """

    layer: int
    widths: tuple[int, ...]
    loss: float
    alpha: float | None
    decision: str


@dataclass
class GrowthResult:
    """The found network (trained as the last kept step left it), its widths, loss and the search's log."""

    model: ExpressionNet
    widths: tuple[int, ...]
    loss: float
    events: list[GrowthEvent] = field(default_factory=list)


def _step_seed(seed: int, layer: int, step: int) -> int:
    return (seed * 1_000_003 + layer * 1009 + step) % (2**63)


def _grown_config(cfg: ExprModelConfig, widths: tuple[int, ...]) -> ExprModelConfig:
    if cfg.model != "stbln":
        raise SpecError("model.model", f"progressive growth builds ST-BLN networks, got {cfg.model!r}")
    return dataclasses.replace(cfg, widths=widths, residual="conv").check()


def _transfer(old: ExpressionNet, new: ExpressionNet, outgoing: str, skip: tuple[str, ...] = ()) -> ExpressionNet:
    """Copy every old tensor into the leading slice of the new one (names in ``skip`` stay fresh).

    With ``outgoing="zero"``, a weight whose input dimension grew gets zeros where old outputs read new
    inputs (``w[:old_out, old_in:] = 0``).
    """
    old_state, state = old.state_dict(), new.state_dict()
    for name, t in state.items():
        if name not in old_state or name.startswith(skip):
            continue
        o = old_state[name]
        if o.dim() != t.dim() or any(a > b for a, b in zip(o.shape, t.shape)):
            raise SpecError("growth", f"{name}: cannot keep {tuple(o.shape)} inside {tuple(t.shape)}")
        if t.dim() == 0:
            t.copy_(o)
            continue
        t[tuple(slice(0, s) for s in o.shape)] = o
        if outgoing == "zero" and t.dim() >= 2 and t.shape[1] > o.shape[1]:
            t[: o.shape[0], o.shape[1]:] = 0
    new.load_state_dict(state)
    return new.train(old.training)


def widen(model: ExpressionNet, layer: int, extra: int, seed: int = 0, outgoing: str = "zero") -> ExpressionNet:
    """A copy of ``model`` with ``extra`` more output channels in ``layer`` (old weights kept exactly).

    The new channels are appended after the old ones in every tensor they touch (this layer's convolutions
    and batch norms, the next layer's input side or the classifier's).
    """
    widths = model.cfg.widths
    if not 0 <= layer < len(widths):
        raise SpecError("layer", f"must be an index below {len(widths)}, got {layer!r}")
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 1:
        raise SpecError("extra", f"must be a positive integer, got {extra!r}")
    new_widths = tuple(w + extra if i == layer else w for i, w in enumerate(widths))
    cfg = _grown_config(model.cfg, new_widths)
    if model.cfg.residuals() != cfg.residuals():
        raise SpecError("model.residual", "widening would change a residual's kind; grow networks with residual='conv'")
    with torch.no_grad():
        return _transfer(model, build_model(cfg, seed), outgoing)


def deepen(model: ExpressionNet, width: int, seed: int = 0) -> ExpressionNet:
    """A copy of ``model`` with one more layer of ``width`` channels and a new classifier (layers kept)."""
    cfg = _grown_config(model.cfg, (*model.cfg.widths, width))
    with torch.no_grad():
        return _transfer(model, build_model(cfg, seed), "random", skip=("fc.",))


def _alpha(before: float, after: float) -> float:
    return (before - after) / before if before > 0 else 0.0


def grow(base: ExprModelConfig, train_step: Callable[[ExpressionNet], float],
         settings: GrowthSettings = GrowthSettings(), log: Callable[[str], None] | None = None) -> GrowthResult:
    """Search an ST-BLN's widths layer by layer (see the module docstring).

    Args:
        base: graph, frames, classes and dropout of the networks (its ``widths`` and ``residual`` are ignored).
        train_step: fine-tunes a network in place and returns its training loss.
        settings: block size, thresholds, caps, initialisation of outgoing weights, seed.
    """
    s = settings.check()
    b, events = s.block, []

    def record(layer: int, model: ExpressionNet, loss: float, alpha: float | None, decision: str) -> None:
        events.append(GrowthEvent(layer, model.cfg.widths, float(loss), alpha, decision))
        if log is not None:
            a = "" if alpha is None else f" alpha={alpha:.3g}"
            log(f"[pstbln] layer {layer} widths {list(model.cfg.widths)} loss {loss:.4f}{a}: {decision}")

    kept: tuple[ExpressionNet, float] | None = None
    for layer in range(s.max_layers):
        if kept is None:
            model = build_model(_grown_config(base, (b,)), _step_seed(s.seed, 0, 0))
        else:
            model = deepen(kept[0], b, _step_seed(s.seed, layer, 0))
        loss = float(train_step(model))
        record(layer, model, loss, None, "start" if kept is None else "add_layer")
        best, best_loss, step = model, loss, 0
        while True:
            if best.cfg.widths[layer] + b > s.max_width:
                record(layer, best, best_loss, None, "width_cap")
                break
            step += 1
            cand = widen(best, layer, b, _step_seed(s.seed, layer, step), s.outgoing)
            cand_loss = float(train_step(cand))
            alpha = _alpha(best_loss, cand_loss)
            if alpha < s.eps_width:
                record(layer, cand, cand_loss, alpha, "revert_width")
                break
            best, best_loss = cand, cand_loss
            record(layer, best, best_loss, alpha, "widen")
        if kept is not None:
            alpha_d = _alpha(kept[1], best_loss)
            if alpha_d < s.eps_depth:
                record(layer, best, best_loss, alpha_d, "remove_layer")
                break
            record(layer, best, best_loss, alpha_d, "keep_layer")
        kept = (best, best_loss)
        if layer == s.max_layers - 1:
            record(layer, best, best_loss, None, "depth_cap")
    assert kept is not None
    return GrowthResult(model=kept[0], widths=kept[0].cfg.widths, loss=kept[1], events=events)
