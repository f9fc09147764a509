"""Verification accuracy of the in-house embedder, its early exits and a reference recognizer on pairs.

The protocol of LFW and of OpenDR D3.2 Table 1: 6,000 pairs (half same identity), a pair is "same"
when the distance between L2-normalised embeddings is below a threshold chosen on the other nine
folds; the result is the mean +- std of the 10 fold accuracies (percent).
"""

from __future__ import annotations

from typing import Any

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
