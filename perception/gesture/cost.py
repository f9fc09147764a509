"""Cost of early fusion and of each backbone: first-convolution MACs, inference latency, training throughput.

* :func:`first_conv_macs`: multiply-adds of the first convolution, the only layer early fusion changes
  (MobileNetV2 at 224x224: 10,838,016 for RGB, 14,450,688 for RGB-D); :func:`model_macs` counts the whole
  network with ptflops and fvcore (:func:`hcgym.perception.action.cost.macs`).
* :func:`latency`: batch-1 inference of every backbone x modality on one thread, in torch eager and in ONNX
  Runtime (one intra-op thread), timed in interleaved rounds (:func:`hcgym.perception.action.cost.throughput`:
  every configuration once per round, the order rotating), so that a varying machine load weighs on each
  alike; median and quartiles per configuration, and the RGB-D / RGB ratio per round (median, quartiles).
* :func:`training_throughput`: training samples per second (augmentation, forward, backward, AdamW step).

Models have random weights (cost does not depend on them), built from ``seed``. Nothing is asserted about speed.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.gesture.backbones import BACKBONES, MODALITIES, first_conv, make_backbone

RUNTIMES = ("torch", "onnx")


def first_conv_macs(model: nn.Module, size: int) -> int:
    """Multiply-adds of ``model``'s first convolution on one ``size x size`` image (bias adds not counted)."""
    conv = first_conv(model)
    out = [(size + 2 * p - d * (k - 1) - 1) // s + 1
           for k, s, p, d in zip(conv.kernel_size, conv.stride, conv.padding, conv.dilation)]
    return int(np.prod(out)) * int(np.prod(conv.kernel_size)) * conv.in_channels // conv.groups * conv.out_channels


def model_macs(model: nn.Module, size: int) -> dict[str, int]:
    """MACs of ``model`` on one ``(1, C, size, size)`` image by ptflops and fvcore: ``{"ptflops", "fvcore"}``."""
    from hcgym.perception.action.cost import macs

    return macs(model, torch.zeros(1, first_conv(model).in_channels, size, size), "clip")


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    q1, q2, q3 = (statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3)
    return q1, q2, q3


def _check_names(backbones: Sequence[str], modalities: Sequence[str], size: int) -> None:
    for b in backbones:
        if b not in BACKBONES:
            raise SpecError("backbones", f"unknown backbone {b!r} (allowed: {', '.join(BACKBONES)})")
    for m in modalities:
        if m not in MODALITIES:
            raise SpecError("modalities", f"unknown modality {m!r} (allowed: {', '.join(MODALITIES)})")
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise SpecError("size", f"expected an integer >= 32, got {size!r}")


def latency(backbones: Sequence[str] = BACKBONES, modalities: Sequence[str] = tuple(MODALITIES), size: int = 112,
            repeats: int = 100, warmup: int = 3, runtimes: Sequence[str] = RUNTIMES, num_classes: int = 16,
            width: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """Single-thread batch-1 latency of every ``backbone x modality x runtime``, in interleaved rounds.

    Returns:
        ``{"size", "repeats", "rows": [{"backbone", "modality", "channels", "runtime", "median_ms", "q1_ms",
        "q3_ms", "min_ms", "first_conv_macs"}], "ratios": [{"backbone", "runtime", "median", "q1", "q3",
        "of_minima"}]}``: RGB-D / RGB time per round (median, quartiles) and the ratio of the fastest rounds
        (least disturbed by other load), when both modalities are timed.
    """
    from hcgym.perception.action.cost import throughput
    from hcgym.perception.base import onnx_session
    from hcgym.perception.gesture.training import export_onnx

    _check_names(backbones, modalities, size)
    for r in runtimes:
        if r not in RUNTIMES:
            raise SpecError("runtimes", f"unknown runtime {r!r} (allowed: {', '.join(RUNTIMES)})")
    rng = np.random.default_rng(seed)
    fns, macs1 = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for b in backbones:
            for m in modalities:
                torch.manual_seed(seed)
                model = make_backbone(b, MODALITIES[m], num_classes, width).eval()
                macs1[b, m] = first_conv_macs(model, size)
                x = rng.uniform(0, 1, (1, MODALITIES[m], size, size)).astype(np.float32)
                if "torch" in runtimes:
                    fns[b, m, "torch"] = (lambda mod, t: lambda: mod(t))(model, torch.from_numpy(x))
                if "onnx" in runtimes:
                    session = onnx_session(export_onnx(model, MODALITIES[m], size, Path(tmp) / f"{b}_{m}.onnx"))
                    fns[b, m, "onnx"] = (lambda s, feed: lambda: s.run(None, feed))(session, {"image": x})
        # the inputs of one backbone and runtime run one after the other in every round, RGB-D right after RGB
        order = ("rgb", "rgbd", "depth")
        fns = {k: fns[k] for k in sorted(fns, key=lambda k: (backbones.index(k[0]), runtimes.index(k[2]),
                                                              order.index(k[1])))}
        timed = throughput({"|".join(k): f for k, f in fns.items()}, repeats=repeats, threads=1, warmup=warmup)
    rows, ratios = [], []
    for (b, m, r) in fns:
        ms = [1000 * s for s in timed[f"{b}|{m}|{r}"]["seconds"]]
        q1, med, q3 = _quartiles(ms)
        rows.append({"backbone": b, "modality": m, "channels": MODALITIES[m], "runtime": r, "median_ms": med,
                     "q1_ms": q1, "q3_ms": q3, "min_ms": min(ms), "first_conv_macs": macs1[b, m]})
    for b in backbones:
        for r in runtimes:
            if (b, "rgb", r) in fns and (b, "rgbd", r) in fns:
                per_round = [d / c for d, c in zip(timed[f"{b}|rgbd|{r}"]["seconds"], timed[f"{b}|rgb|{r}"]["seconds"])]
                q1, med, q3 = _quartiles(per_round)
                best = timed[f"{b}|rgbd|{r}"]["min_s"] / timed[f"{b}|rgb|{r}"]["min_s"]
                ratios.append({"backbone": b, "runtime": r, "median": med, "q1": q1, "q3": q3, "of_minima": best})
    return {"size": size, "repeats": repeats, "rows": rows, "ratios": ratios}


def latency_markdown(result: dict[str, Any]) -> str:
    """Markdown tables of a :func:`latency` result: ms per image, then the RGB-D / RGB ratios."""
    lines = [f"S = {result['size']}, batch 1, one thread, {result['repeats']} interleaved rounds: median ms "
             "[quartiles]", "", "| backbone | modality | runtime | ms | first-conv MACs |", "|---|---|---|---|---|"]
    lines += [f"| {r['backbone']} | {r['modality']} | {r['runtime']} | {r['median_ms']:.2f} "
              f"[{r['q1_ms']:.2f}-{r['q3_ms']:.2f}] | {r['first_conv_macs']:,} |" for r in result["rows"]]
    if result["ratios"]:
        lines += ["", "| backbone | runtime | RGB-D / RGB per round, median [quartiles] | of the fastest rounds |",
                  "|---|---|---|---|"]
        lines += [f"| {r['backbone']} | {r['runtime']} | {r['median']:.3f} [{r['q1']:.3f}-{r['q3']:.3f}] | "
                  f"{r['of_minima']:.3f} |" for r in result["ratios"]]
    return "\n".join(lines)


def training_throughput(backbones: Sequence[str] = BACKBONES, modality: str = "rgbd", size: int = 112,
                        batch: int = 32, threads: int = 1, repeats: int = 3, warmup: int = 1,
                        num_classes: int = 16, seed: int = 0) -> dict[str, dict[str, float]]:
    """Training samples per second of each backbone: one timed sample is one step (augmentation of a random
    batch, forward, cross-entropy, backward, AdamW step) on ``threads`` torch threads; the backbones are
    timed in interleaved rounds.

    Returns:
        backbone -> ``{"samples_per_s" (batch / median step), "median_step_s", "min_step_s"}``.
    """
    from hcgym.perception.action.cost import throughput
    from hcgym.perception.gesture.augment import Augment, augment
    from hcgym.perception.gesture.training import GestureNet

    _check_names(backbones, [modality], size)
    c = MODALITIES[modality]
    steps = {}
    for b in backbones:
        torch.manual_seed(seed)
        model = GestureNet(make_backbone(b, c, num_classes), torch.zeros(c), torch.ones(c)).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(seed)
        x, y = torch.rand(batch, c, size, size, generator=g), torch.randint(0, num_classes, (batch,), generator=g)

        def step(model: nn.Module = model, opt: torch.optim.Optimizer = opt, x: torch.Tensor = x,
                 y: torch.Tensor = y, g: torch.Generator = g) -> None:
            with torch.enable_grad():
                loss = nn.functional.cross_entropy(model(augment(x, modality, Augment(), g)), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        steps[b] = step
    timed = throughput(steps, repeats=repeats, threads=threads, warmup=warmup)
    return {b: {"samples_per_s": batch / t["median_s"], "median_step_s": t["median_s"], "min_step_s": t["min_s"]}
            for b, t in timed.items()}
