"""Verification accuracy of the in-house embedder, its early exits and a reference recognizer on pairs.

The protocol of LFW and of OpenDR D3.2 Table 1 (``hcgym evaluate face``): 6,000 pairs (half same identity),
a pair is "same" when the distance between L2-normalised embeddings is below a threshold chosen on the other
nine folds; the result is the mean +- std of the 10 fold accuracies (percent). It runs on held-out avatar
identities in three simulated settings (LFW-, CPLFW- and CALFW-like) for the network's final layer, every
early exit x head (Raw, LR, BoF, Proposed) and dlib; FLOPs per exit. The face sets are rendered by
:mod:`hcgym.synthesis.face_sets`, through the ``render`` the caller passes to :func:`run` (perception does
not drive the renderer).

Protocol shape (:mod:`hcgym.report`): :func:`run`, :func:`table_markdown` (Table 1 layout), :func:`figures`
(``accuracy_by_exit.png``, ``accuracy_vs_flops.png``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hcgym.perception.face.early_exits import ExitHeads, ExitModel
from hcgym.perception.face.irnet import IRNet, count_flops
from hcgym.perception.face.training import pair_accuracy


def evaluate_pairs(model: IRNet, heads: ExitHeads, chips: np.ndarray, pairs: np.ndarray,
                   reference: np.ndarray | None = None, progress: bool = False) -> dict[str, Any]:
    """Accuracies (%) on ``pairs`` (n, 3: a, b, same) of chip embeddings: final layer, every exit x head,
    and ``reference`` embeddings (e.g. dlib's, one per chip) when given."""
    maps, final = ExitModel(model, heads.exits).extract(chips, progress=progress)
    mean, std = pair_accuracy(final.numpy(), pairs)
    out: dict[str, Any] = {"final": round(mean, 2), "final_std": round(std, 2), "exits": {}}
    if reference is not None:
        m, s = pair_accuracy(np.asarray(reference), pairs)
        out["dlib"], out["dlib_std"] = round(m, 2), round(s, 2)
    for i in range(len(heads.exits)):
        cell: dict[str, float] = {}
        for method in heads.methods:
            emb = heads[method][i].predict(maps[i]).numpy()
            m, s = pair_accuracy(emb, pairs)
            cell[method], cell[f"{method}_std"] = round(m, 2), round(s, 2)
        out["exits"][str(i + 1)] = cell
    return out


def exit_flops(model: IRNet, heads: ExitHeads, method: str = "proposed") -> dict[str, int]:
    """FLOPs per image (2 per multiply-add, FlopCounterMode) of the full network and of each exit
    (backbone up to the exit plus the ``method`` head)."""
    import torch

    x = torch.zeros(1, 3, model.input_size, model.input_size)
    model.eval()
    with torch.no_grad():
        out = {"final": int(count_flops(model, x))}
        for i, k in enumerate(heads.exits):
            head = heads[method][i]
            h = model.block_hw(k)
            out[f"exit{i + 1}"] = int(count_flops(lambda t: model.forward_to(t, k), x)) + int(head.flops(h, h))
    return out


METHOD_NAMES = {"raw": "Raw", "lr": "LR", "bof": "BoF", "proposed": "Proposed"}
SET_NAMES = {"lfw_like": "LFW-like", "cplfw_like": "CPLFW-like", "calfw_like": "CALFW-like"}
EXITS = ("1", "2", "3")
#: ``render(kind) -> (data, pairs)``: the chips (``data["chips"]``, and ``data["dlib"]`` reference embeddings
#: when asked for) of a face set and its pairs (n, 3: a, b, same).
RenderPairs = Callable[[str], tuple[dict[str, np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class FaceVerificationConfig:
    """What one run covers (the rendering settings live in the caller's ``render``).

    Attributes:
        sets: face-set kinds (``lfw_like``, ``cplfw_like``, ``calfw_like``).
        seed, identities, per_identity, pairs: recorded with the results (they pick the rendered identities,
            images per identity and pairs per set).
        checkpoint: the evaluated network's file (recorded).
    """

    sets: tuple[str, ...] = tuple(SET_NAMES)
    seed: int = 0
    identities: int = 300
    per_identity: int = 10
    pairs: int = 6000
    checkpoint: str = ""


def run(config: FaceVerificationConfig, model: IRNet, heads: ExitHeads, render: RenderPairs,
        progress: bool = True) -> dict[str, Any]:
    """Accuracies (%) per set of the final layer, every exit x head and (where rendered) dlib; FLOPs per exit."""
    t0 = time.time()
    results: dict[str, Any] = {"sets": {}, "flops": exit_flops(model, heads), "exits": heads.exits,
                               "checkpoint": config.checkpoint, "seed": config.seed, "identities": config.identities,
                               "per_identity": config.per_identity, "pairs": config.pairs}
    for kind in config.sets:
        if progress:
            print(f"[evaluate] rendering {kind}: {config.identities} identities x {config.per_identity}", flush=True)
        data, pairs = render(kind)
        results["sets"][kind] = evaluate_pairs(model, heads, data["chips"], pairs, data.get("dlib"))
        if progress:
            print(f"[evaluate] {kind}: {json.dumps(results['sets'][kind])}", flush=True)
    results["seconds"] = round(time.time() - t0, 1)
    return results


def table_markdown(results: dict[str, Any]) -> str:
    """Markdown in the layout of OpenDR D3.2 Table 1 (accuracy % mean +- std per exit), then FLOPs per exit."""
    from hcgym.report import markdown_table

    f = results["flops"]
    rows = []
    for kind, r in results["sets"].items():
        rows.append([f"**{SET_NAMES.get(kind, kind)}**", "", "", "", "", ""])
        for m, name in METHOD_NAMES.items():
            if m not in r["exits"]["1"]:
                continue
            cells = [f"{r['exits'][e][m]:.2f} ± {r['exits'][e][m + '_std']:.2f}" for e in EXITS]
            final = f"{r['final']:.2f} ± {r['final_std']:.2f}" if m == "proposed" else ""
            dlib = f"{r['dlib']:.2f} ± {r['dlib_std']:.2f}" if m == "proposed" and "dlib" in r else ""
            rows.append([name, *cells, final, dlib])
    lines = markdown_table(["Method", "Exit 1", "Exit 2", "Exit 3", "Final layer", "dlib"], rows)
    lines += ["", "FLOPs per image (2 per multiply-add; exits include the Proposed head):", ""]
    lines += markdown_table(["", "Exit 1", "Exit 2", "Exit 3", "Final layer"], [
        ["MFLOPs", *(f"{f[k] / 1e6:.1f}" for k in ("exit1", "exit2", "exit3", "final"))],
        ["fraction of the full network", *(f"{f[k] / f['final']:.2f}" for k in ("exit1", "exit2", "exit3")), "1.00"]])
    return "\n".join(lines) + "\n"


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``accuracy_by_exit.png`` (a bar per head at each exit, per set) and ``accuracy_vs_flops.png``."""
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    sets = list(results["sets"])
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.4), dpi=110, squeeze=False)
    for ax, kind in zip(axes[0], sets):
        r = results["sets"][kind]
        x = np.arange(3)
        for j, (m, name) in enumerate(METHOD_NAMES.items()):
            ys = [r["exits"][e][m] for e in EXITS]
            ax.bar(x + (j - 1.5) * 0.2, ys, 0.2, label=name)
        ax.axhline(r["final"], color="k", ls="--", lw=1, label="final layer")
        if "dlib" in r:
            ax.axhline(r["dlib"], color="r", ls=":", lw=1, label="dlib")
        ax.set_xticks(x, ["exit 1", "exit 2", "exit 3"])
        ax.set_ylim(45, 100)
        ax.set_title(SET_NAMES.get(kind, kind))
        ax.set_ylabel("verification accuracy (%)")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = {"accuracy_by_exit.png": png_bytes(fig)}
    f = results["flops"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=110)
    fl = np.asarray([f["exit1"], f["exit2"], f["exit3"]]) / 1e6
    for kind in sets:
        r = results["sets"][kind]
        line, = ax.plot(fl, [r["exits"][e]["proposed"] for e in EXITS], "o-",
                        label=f"{SET_NAMES.get(kind, kind)} Proposed")
        ax.plot(fl, [r["exits"][e]["lr"] for e in EXITS], "s--", color=line.get_color(),
                alpha=0.6, label=f"{SET_NAMES.get(kind, kind)} LR")
        ax.plot([f["final"] / 1e6], [r["final"]], "*", ms=12, color=line.get_color())
    ax.set_xlabel("MFLOPs per face")
    ax.set_ylabel("verification accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["accuracy_vs_flops.png"] = png_bytes(fig)
    return out
