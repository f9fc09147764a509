"""Tables and figures of ``hcgym evaluate gesture`` (:mod:`.protocol`): the seed's Table 29 layout with our
timings beside its numbers, the accuracy and latency tables per backbone, the confusion matrix of the RGB-D
model, accuracy by distance and the confidence figure."""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.perception.gesture.protocol import DISTANCE_BINS, MODALITIES, SEED_ACCURACY, SEED_SIZE, SEED_TABLE29, softmax

NAMES = {"mobilenet_v2": "MobileNetV2", "mnasnet1_0": "MNASNet 1.0", "mnasnet0_5": "MNASNet 0.5",
         "resnet18": "ResNet-18"}


def _f(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table_markdown(results: dict[str, Any]) -> str:
    """Markdown: Table 29 (seed beside ours), accuracy on fresh avatars, latency per backbone, the sensor model."""
    from hcgym.report import markdown_table

    cfg, lat = results["config"], results["latency"]
    lines = [f"Fresh avatars of seed {cfg['seed']}: {results['samples']['identities']} people, "
             f"{results['samples']['gestures']} gesture samples ({cfg['per_class']} per gesture and person), "
             f"{results['samples']['none']} relaxed hands (class none, scored by the models that have it).", "",
             "**Table 29** (MobileNetV2, one RGB-D image, batch 1). Seed: 224 x 224, 1000 runs. Ours: this machine's "
             "CPU, one thread, median of interleaved runs.", ""]
    rows = [(p, "seed", f"{SEED_SIZE}", f"{t:.4f}", f"{fps:.1f}") for p, t, fps in SEED_TABLE29]
    rows += [(f"this CPU, {'PyTorch' if r['runtime'] == 'torch' else 'ONNX Runtime'}, 1 thread", "ours",
              str(r["size"]), f"{r['seconds']:.4f}", f"{r['fps']:.1f}") for r in results["table29"]]
    lines += markdown_table(("Platform", "source", "input", "Inference time (s)", "FPS"), rows)
    lines += ["", "**Accuracy (%)** on the fresh avatars (16 gestures; depth exact, and with the Kinect-like noise "
              "and holes). The seed's figure is MobileNetV2 RGB-D on HANDS (5 real subjects, 224 x 224, ImageNet "
              "weights); ours are trained from scratch on rendered avatars.", ""]
    rows = []
    for b, r in results["models"].items():
        rows.append((NAMES[b], _f(r["rgb"]), _f(r["depth"]), _f(r["rgbd"]), _f(r["depth_noisy"]), _f(r["rgbd_noisy"]),
                     str(r["size"] or "-"), _f(SEED_ACCURACY.get(b), 0) if b in SEED_ACCURACY else "-"))
    lines += markdown_table(("backbone", "RGB", "depth", "RGB-D", "depth (Kinect)", "RGB-D (Kinect)", "input",
                             "seed RGB-D (HANDS)"), rows)
    lines += ["", f"**Latency** (ms, batch 1, one thread, {lat['repeats']} interleaved rounds, S = {lat['size']}, "
              "random weights); RGB-D / RGB: median of the per-round ratios.", ""]
    rows = []
    for b, r in results["models"].items():
        rows.append((NAMES[b], _f(r["ms_rgb"], 2), _f(r["ms_depth"], 2), _f(r["ms_rgbd"], 2), f"{r['ratio']:.3f}",
                     _f(r["ms_rgb_onnx"], 2), _f(r["ms_rgbd_onnx"], 2), f"{r['ratio_onnx']:.3f}",
                     f"{r['params']['rgbd']:,}", f"{r['macs']['rgb'] / 1e6:.1f} / {r['macs']['rgbd'] / 1e6:.1f}",
                     f"{r['first_conv_macs']['rgb']:,} / {r['first_conv_macs']['rgbd']:,}"))
    lines += markdown_table(("backbone", "torch RGB", "torch depth", "torch RGB-D", "RGB-D / RGB", "ORT RGB",
                             "ORT RGB-D", "ORT RGB-D / RGB", "params (RGB-D)", "MMACs RGB / RGB-D",
                             "first-conv MACs RGB / RGB-D"), rows)
    rows = [(NAMES[b], m, _f(r["acc_all"][m]), _f(r[f"{m}_none"]["recall"]), _f(r[f"{m}_none"]["precision"]))
            for b, r in results["models"].items() for m in MODALITIES if m in r.get("acc_all", {})]
    if rows:
        lines += ["", "**With the class none** (models of 17 classes, every fresh sample: the gestures and the relaxed "
                  "hands).", ""]
        lines += markdown_table(("backbone", "input", "accuracy", "none recall", "none precision"), rows)
    s = results.get("sensor")
    if s:
        lines += ["", f"The sensor `gesture/rgbd` loads `{s['file']}`: {NAMES[s['backbone']]} {s['modality']}, "
                  f"{s['classes']} classes, S = {s['size']}."]
    pairs = results.get("paired", {})
    if pairs:
        lines += ["", "**RGB-D against one input** on the same fresh gesture samples: right only with RGB-D / right "
                  "only with the other, McNemar's exact p.", ""]
        lines += markdown_table(("backbone", "vs RGB", "vs depth"), [
            (NAMES[b], *(f"{v['rgbd_only']} / {v['other_only']} (p = {v['p']:.3g})" if v else "-"
                         for v in (p.get("rgbd_vs_rgb"), p.get("rgbd_vs_depth")))) for b, p in pairs.items()])
    checks = results["checks"]
    lines += ["", "**Checks**: RGB-D >= max(RGB, depth): " + (", ".join(
        f"{NAMES[b]} {'yes' if v else 'NO'}" for b, v in checks["rgbd_ge_max"].items()) or "no backbone has all three")
        + "; RGB-D / RGB latency <= 1.05: " + ", ".join(
        f"{NAMES[b]} {'yes' if v else 'NO'}" for b, v in checks["ratio_le_1_05"].items()) + "."]
    return "\n".join(lines) + "\n"


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``confusion.png`` (the RGB-D model), ``accuracy_by_distance.png`` (per modality, each shipped backbone) and
    ``confidence.png`` (max-softmax histograms of right and wrong answers; accuracy against the share kept)."""
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    out: dict[str, bytes] = {}
    conf = results.get("confusion")
    if conf:
        cm = np.asarray(conf["matrix"], float)
        rate = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
        im = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
        k = len(conf["labels"])
        ax.set_xticks(range(k), conf["labels"], rotation=90, fontsize=7)
        ax.set_yticks(range(k), conf["labels"], fontsize=7)
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=5,
                            color="white" if rate[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{conf['model']}: fresh avatars ({int(cm.sum())} samples)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
        fig.tight_layout()
        out["confusion.png"] = png_bytes(fig)
    by = results.get("by_distance", {})
    if by:
        fig, axes = plt.subplots(1, len(by), figsize=(3.6 * len(by), 3.2), dpi=110, squeeze=False)
        centres = [(a + b) / 2 for a, b in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:])]
        for ax, (b, per) in zip(axes[0], by.items()):
            for m in MODALITIES:
                if m in per:
                    ax.plot(centres, [np.nan if v is None else v for v in per[m]], "o-", label=m)
            ax.set_xticks(centres, [f"{a:g}-{c:g}" for a, c in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:])], fontsize=7)
            ax.set_ylim(0, 100)
            ax.set_xlabel("distance (m)")
            ax.set_title(NAMES.get(b, b), fontsize=9)
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("accuracy (%)")
        fig.tight_layout()
        out["accuracy_by_distance.png"] = png_bytes(fig)
    out.update(_confidence_figure(results))
    return out


def _confidence_figure(results: dict[str, Any]) -> dict[str, bytes]:
    from hcgym.report import png_bytes, pyplot

    scores = results.get("_scores", {})
    first = next((b for b in NAMES if "rgbd" in scores.get(b, {})), None)
    if first is None:
        return {}
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.2), dpi=110)
    s = scores[first]["rgbd"]
    p = softmax(s["logits"]).max(1)
    ok = s["logits"].argmax(1) == s["y"]
    bins = np.linspace(0, 1, 21)
    ax1.hist(p[ok], bins=bins, alpha=0.6, label=f"right ({int(ok.sum())})", color="tab:green")
    ax1.hist(p[~ok], bins=bins, alpha=0.6, label=f"wrong ({int((~ok).sum())})", color="tab:red")
    a = results["confidence"].get(first, {}).get("rgbd", {}).get("auroc_error")
    ax1.set_title(f"{NAMES[first]} RGB-D: max softmax (error AUROC {_f(a, 3)})", fontsize=8)
    ax1.set_xlabel("max softmax probability")
    ax1.set_ylabel("samples")
    ax1.legend(fontsize=7)
    for m in MODALITIES:
        if m not in scores[first]:
            continue
        sm = scores[first][m]
        q = softmax(sm["logits"]).max(1)
        right = (sm["logits"].argmax(1) == sm["y"])[np.argsort(-q, kind="mergesort")]
        keep = np.arange(1, len(right) + 1)
        ax2.plot(keep / len(right), 100 * np.cumsum(right) / keep, label=m)
    ax2.set_xlabel("share of samples kept (most confident first)")
    ax2.set_ylabel("accuracy of those kept (%)")
    ax2.set_title(f"{NAMES[first]}: accuracy against coverage", fontsize=8)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return {"confidence.png": png_bytes(fig)}
