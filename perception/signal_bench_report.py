"""Tables and figures of the signal bench (:mod:`hcgym.perception.signal_bench`): ``table.md``, the per-band bars
(as the frame bench draws them), the confusion matrices and the keyword sweep's accuracy against talker distance
for each reverberation time."""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.perception.bench import _fmt
from hcgym.perception.signal_bench import BREAKDOWN_TITLES

#: Metrics drawn per band, by task: (key, axis label).
BAND_METRICS = {"ecg beats and rhythm": (("beat_accuracy", "beat accuracy"), ("rhythm_accuracy", "rhythm accuracy")),
                "keyword spotting": (("accuracy", "utterance accuracy"),)}


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md``: headline metrics, latency, the breakdowns, the confusion matrices and the notes."""
    from hcgym.perception.bench_classes import confusion_markdown
    from hcgym.report import markdown_table

    c = results["config"]
    lines = [f"# Signal bench: {c['sensor']} in {c['world'] or 'signals'}", "",
             f"Task: **{results['task']}** (ground truth: {results['truth']}); {c['duration']:g} s of signals "
             f"(seed {c['seed']}), windows of {c['window_s']:g} s.", ""]
    if results.get("onnx"):
        lines += [f"Ran from ONNX: `{results['onnx']['path']}` (ONNX Runtime, export of {results['onnx']['sensor']}).",
                  ""]
    m = results["metrics"]
    lines += markdown_table(list(m), [[_fmt(v) for v in m.values()]]) + [""]
    lat = results["latency_ms"]
    lines += [f"Latency per call (one window): median {lat['median']:.1f} ms, p90 {lat['p90']:.1f} ms "
              f"({lat['calls']} calls)." if lat else "Latency: not measured.", ""]
    for kind, rows in results["breakdown"].items():
        if rows:
            keys = [k for k in rows[0] if k not in ("band", "n", "beats", "utterances")]  # n counts them
            lines += [f"## By {BREAKDOWN_TITLES[kind]}", ""]
            lines += markdown_table(["band", "n", *keys], [[r["band"], str(r["n"]), *(_fmt(r[k]) for k in keys)]
                                                           for r in rows]) + [""]
    for key, title in (("confusion", "Confusion matrix"), ("rhythm_confusion", "Rhythm confusion matrix")):
        if results.get(key) and results[key]["labels"]:
            lines += [f"## {title}", ""] + confusion_markdown(results[key]) + [""]
    if results["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    return "\n".join(lines)


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``vs_<breakdown>.png`` (each metric of :data:`BAND_METRICS` per band, bars labelled with their counts) and
    ``confusion.png`` (``rhythm_confusion.png`` for the ECG)."""
    from hcgym.perception.bench_classes import confusion_png
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    name = results["config"]["sensor"]
    out = {}
    for key in ("confusion", "rhythm_confusion"):
        if results.get(key) and results[key]["labels"]:
            out[f"{key}.png"] = confusion_png(results[key], f"{name}: {key.replace('_', ' ')}")
    metrics = BAND_METRICS.get(results["task"], ())
    for kind, rows in results["breakdown"].items():
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(4.8, 3.0), dpi=100)
        x = np.arange(len(rows))
        width = 0.8 / len(metrics)
        for k, (key, label) in enumerate(metrics):
            vals = [np.nan if r.get(key) is None else r[key] for r in rows]
            ax.bar(x + (k - (len(metrics) - 1) / 2) * width, vals, width, label=label)
        for xi, r in zip(x, rows):
            ax.text(xi, 1.0, f"n={r['n']}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [r["band"] for r in rows], fontsize=7)
        ax.set_xlabel(BREAKDOWN_TITLES[kind])
        ax.set_ylim(0, 1.1)
        if len(metrics) > 1:
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"{name}: by {BREAKDOWN_TITLES[kind]}", fontsize=8)
        fig.tight_layout()
        out[f"vs_{kind}.png"] = png_bytes(fig)
    return out


def sweep_markdown(sweep: dict[str, Any]) -> str:
    """The keyword sweep as a table: one row per (RT60, distance scale)."""
    from hcgym.report import markdown_table

    head = ["RT60 target", "RT60 measured", "distance scale", "mean distance (m)", "utterances", "accuracy",
            "keyword accuracy", "detected", "false keywords"]
    rows = [[f"{r['rt60']:g} s", f"{r['rt60_measured']:.2f} s", f"{r['distance_scale']:g}", f"{r['mean_distance']:.2f}",
             str(r["utterances"]), _fmt(r["accuracy"]), _fmt(r["keyword_accuracy"]), _fmt(r["detected"]),
             str(r["false_keywords"])] for r in sweep["rows"]]
    return "\n".join([f"# Keyword sweep: {sweep['sensor']} in {sweep['world']} (seed {sweep['seed']})", "",
                      *markdown_table(head, rows), ""])


def sweep_figure(sweep: dict[str, Any]) -> bytes:
    """``sweep.png``: utterance accuracy against the mean talker distance, one line per RT60."""
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.2), dpi=100)
    for rt60 in sorted({r["rt60"] for r in sweep["rows"]}):
        rows = sorted((r for r in sweep["rows"] if r["rt60"] == rt60), key=lambda r: r["mean_distance"])
        measured = np.mean([r["rt60_measured"] for r in rows])
        ax.plot([r["mean_distance"] for r in rows], [r["accuracy"] for r in rows], "o-",
                label=f"RT60 {rt60:g} s (measured {measured:.2f})")
    ax.set_xlabel("mean talker distance to the microphone (m)")
    ax.set_ylabel("utterance accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title(f"{sweep['sensor']} in {sweep['world']}: distance and reverberation", fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


__all__ = ["figures", "sweep_figure", "sweep_markdown", "table_markdown"]
