"""Scenario sweeps of the sensor bench, end to end: :func:`run` dispatches the cells (:mod:`hcgym.synthesis.bench_sweep`)
to an engine and assembles the results; :func:`table_markdown` and :func:`figures` report them.

Results (``results.json``)::

    {"sweep":   {"grid": [{"axis", "unit", "meaning", "values"}], "spec", "cells", "per_cell", "identities",
                 "seed", "size", "hfov", "scene", "bench"},
     "cells":   [{"index", "values": {distance, yaw, pitch}, "truth": {people, distance_m, face_yaw_deg, face_px,
                  landmarks_visible}}],
     "sensors": [{"id", "task", "truth", "primary", "primary_label", "metrics" (every cell pooled), "latency_ms",
                  "notes", "cells": [{"index", "metrics", "latency_ms", "records"}]}],
     "run":     {"engine", "workers", "jobs", "seconds"}}

Everything but ``latency_ms`` and ``run`` is a function of the config (the same for every engine and worker
count).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hcgym.errors import SpecError
from hcgym.synthesis.bench_sweep import AXES, SweepConfig, SweepPart, close_studio, format_sweep, plan_jobs

#: Count fields of a scorer's summary that add up over cells (precision is recomputed from them).
COUNTS = ("true_positives", "false_positives", "detections")
#: Metrics shown as percentages in the tables and heat maps.
FRACTIONS = ("recall", "precision", "pck", "detection_rate", "rank1", "accuracy")


def run(config: SweepConfig, engine: str = "local", workers: int = 1, address: str | None = None,
        progress: bool = True) -> dict[str, Any]:
    """Render and score every cell of ``config`` on ``engine`` (``local``: this process or a pool of
    ``workers`` processes; ``ray``: Ray tasks, a local Ray with ``workers`` CPUs unless ``address``)."""
    from hcgym.synthesis.bench_sweep import run_sweep_job
    from hcgym.synthesis.dataset import engines

    config.check()
    jobs = plan_jobs(config, workers)
    parts: dict[int, SweepPart] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(config.cells()), desc=f"sweep {', '.join(config.sensors)}", unit="cell",
                   dynamic_ncols=True)

    def on_result(part: SweepPart) -> None:
        if part.error is not None:
            raise SpecError(*part.error)
        parts[part.index] = part
        if bar is not None:
            bar.update(len(part.cells))

    t0 = time.perf_counter()
    try:
        engines.run(jobs, on_result, engine, workers, address, fn=run_sweep_job)
    finally:
        if bar is not None:
            bar.close()
        close_studio()
    cells = [c for j in sorted(parts) for c in parts[j].cells]
    results = assemble(config, cells)
    results["run"] = {"engine": engine, "workers": workers, "jobs": len(jobs),
                      "seconds": round(time.perf_counter() - t0, 1)}
    return results


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


def assemble(config: SweepConfig, cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The results of a sweep from its scored cells (in cell order)."""
    from hcgym.perception import bench
    from hcgym.perception.registry import spec as spec_of

    cells = sorted(cells, key=lambda c: c["index"])
    sensors = []
    for sid in config.sensors:
        spec = spec_of(sid)
        task = bench.task_for(spec)
        scorer = task.scorer(config.bench_config(sid), spec)
        scored = [c["scores"][sid] for c in cells]
        metrics = scorer.metrics([{**r, "cell": c["index"]} for c in cells for r in c["scores"][sid]["records"]])
        for key in COUNTS:
            if all(key in s["metrics"] for s in scored):
                metrics[key] = int(sum(s["metrics"][key] for s in scored))
        if "true_positives" in metrics and "false_positives" in metrics:
            found = metrics["true_positives"] + metrics["false_positives"]
            metrics["precision"] = round(metrics["true_positives"] / found, 4) if found else None
        notes = list(dict.fromkeys(n for s in scored for n in s["notes"]))
        medians = [s["latency_ms"]["median"] for s in scored if s["latency_ms"]]
        sensors.append({
            "id": sid, "task": task.name, "truth": task.truth, "primary": scorer.primary,
            "primary_label": scorer.primary_label, "metrics": metrics,
            "latency_ms": {"median_of_cells": _median(medians), "calls": int(sum(s["latency_ms"]["calls"]
                                                                             for s in scored if s["latency_ms"]))},
            "notes": notes,
            "cells": [{"index": c["index"], "metrics": s["metrics"], "latency_ms": s["latency_ms"],
                       "records": s["records"]} for c, s in zip(cells, scored)],
        })
    w, h = config.size
    return {
        "sweep": {"grid": [{"axis": n, "unit": AXES[n].unit, "meaning": AXES[n].meaning, "values": list(v)}
                           for n, v in config.grid],
                  "spec": format_sweep(config.grid), "cells": len(cells), "per_cell": config.per_cell,
                  "identities": list(config.avatar_seeds()), "held_out": not config.identities,
                  "seed": config.seed, "size": [w, h], "hfov": config.hfov,
                  "scene": "studio: one avatar per frame, camera aimed at the face centre",
                  "sensor_kwargs": dict(config.sensor_kwargs),
                  "bench": {k: v for k, v in config.bench_config(config.sensors[0]).__dict__.items()
                            if k not in ("sensor", "world", "seconds", "fps", "seed", "camera", "sensor_kwargs")}},
        "cells": [{"index": c["index"], "values": c["values"], "truth": c["truth"]} for c in cells],
        "sensors": sensors,
    }


# ------------------------------------------------------------------ pivots
def pivot(results: dict[str, Any], values: list[Any]) -> list[tuple[str, list[float], list[float], np.ndarray]]:
    """Per-cell ``values`` (one per cell, ``None`` for none) as 2-D tables: one per combination of the axes after
    the second, each ``(label of those axes, row values, column values, (rows, cols) array with NaN for None)``.
    A one-axis grid gives one column (column values ``[]``)."""
    import itertools

    grid = [(g["axis"], g["values"]) for g in results["sweep"]["grid"]]
    rows = grid[0][1]
    cols = grid[1][1] if len(grid) > 1 else []
    rest = grid[2:]
    by_key = {tuple(c["values"][n] for n, _ in grid): v for c, v in zip(results["cells"], values)}
    out = []
    for combo in itertools.product(*(v for _, v in rest)):
        label = ", ".join(f"{n} {v:g} {AXES[n].unit}" for (n, _), v in zip(rest, combo))
        mat = np.full((len(rows), max(1, len(cols))), np.nan)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols or [None]):
                v = by_key[(r,) + ((c,) if cols else ()) + combo]
                mat[i, j] = np.nan if v is None else float(v)
        out.append((label, rows, cols, mat))
    return out


def _cell_text(v: float, fraction: bool) -> str:
    if not np.isfinite(v):
        return "-"
    return f"{100 * v:.0f}" if fraction else f"{v:.3g}"


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md``: the grid, the faces the cells show, and per sensor its pooled metrics and a table of its
    headline metric per cell (percent for fractions; ``-`` where a cell has nothing to score)."""
    from hcgym.report import markdown_table

    s = results["sweep"]
    grid = s["grid"]
    who = "held-out identities" if s["held_out"] else "avatar seeds"
    lines = [f"# Sensor sweep: {', '.join(x['id'] for x in results['sensors'])}", "",
             f"Grid `{s['spec']}`: {s['cells']} cells x {s['per_cell']} avatars ({who} "
             f"{_seeds(s['identities'])}), {s['size'][0]}x{s['size'][1]} pixels, horizontal FOV {s['hfov']:g} deg; "
             f"{s['scene']}.", "",
             "Axes: " + "; ".join(f"**{g['axis']}** ({g['unit']}): {g['meaning']}" for g in grid) + ".", "",
             "Scoring: " + ", ".join(f"{k} {v}" for k, v in s["bench"].items() if v is not None) + ".", ""]
    first, second = grid[0], (grid[1] if len(grid) > 1 else None)

    def tables(title: str, values: list[Any], fraction: bool) -> list[str]:
        out = []
        for label, rows, cols, mat in pivot(results, values):
            head = [f"{first['axis']} \\ {second['axis']}" if second else first["axis"]]
            head += [f"{c:g}" for c in cols] if cols else [title]
            body = [[f"{r:g}"] + [_cell_text(v, fraction) for v in mat[i]] for i, r in enumerate(rows)]
            out += ([f"*{label}*", ""] if label else []) + markdown_table(head, body) + [""]
        return out

    lines += ["## Face box width (px) per cell", ""]
    lines += tables("face px", [c["truth"].get("face_px") for c in results["cells"]], False)
    for x in results["sensors"]:
        m, lat = x["metrics"], x["latency_ms"]
        lines += [f"## {x['id']} ({x['task']})", "",
                  "All cells: " + ", ".join(f"{k} {_fmt(v)}" for k, v in m.items()) +
                  (f"; latency median {lat['median_of_cells']:.1f} ms (median of the cells' medians)."
                   if lat["median_of_cells"] is not None else "."), ""]
        if x["primary"]:
            frac = x["primary"] in FRACTIONS
            lines += [f"{x['primary_label']} per cell" + (" (percent)" if frac else "") + ":", ""]
            lines += tables(x["primary_label"], [c["metrics"].get(x["primary"]) for c in x["cells"]], frac)
        if x["notes"]:
            lines += [f"- {n}" for n in x["notes"]] + [""]
    return "\n".join(lines)


def _scoring(bench: dict[str, Any]) -> str:
    """The scoring settings in words (face rules only where they are set)."""
    out = f"score >= {bench['score_threshold']:g}"
    if "face_match" in bench:
        rule = f"IoU >= {bench['face_iou']:g}" if bench["face_match"] == "iou" else "box contains the face centre"
        out = f"face hit: {rule}, {out}, faces with >= {bench['face_min_landmarks']} visible landmarks"
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _seeds(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


# ------------------------------------------------------------------ figures
def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``sweep.png``: each sensor's headline metric over the grid, a heat map per sensor (and per value of the
    axes after the second) for grids of two or more axes, one line per sensor for a one-axis grid."""
    scored = [x for x in results["sensors"] if x["primary"]]
    if not scored:
        return {}
    return {"sweep.png": heat_maps(results, scored) if len(results["sweep"]["grid"]) > 1 else lines_plot(results,
                                                                                                          scored)}


def lines_plot(results: dict[str, Any], scored: list[dict[str, Any]]) -> bytes:
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    g = results["sweep"]["grid"][0]
    fig, ax = plt.subplots(figsize=(5.6, 3.4), dpi=110)
    for x in scored:
        y = [np.nan if c["metrics"].get(x["primary"]) is None else c["metrics"][x["primary"]] for c in x["cells"]]
        ax.plot(g["values"], y, marker="o", label=x["id"])
    ax.set_xlabel(f"{g['axis']} ({g['unit']})")
    ax.set_ylabel(", ".join(dict.fromkeys(x["primary_label"] for x in scored)))
    if all(x["primary"] in FRACTIONS for x in scored):
        ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def heat_maps(results: dict[str, Any], scored: list[dict[str, Any]]) -> bytes:
    """One heat map per sensor and value of the axes after the second: first axis down, second across; cells
    annotated (percent for fractions), grey where a cell has nothing to score."""
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    first, second = results["sweep"]["grid"][:2]
    panels = [(x, label, mat) for x in scored
              for label, _, _, mat in pivot(results, [c["metrics"].get(x["primary"]) for c in x["cells"]])]
    ncols = 2 if len(panels) == 4 else min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    cw, ch = 0.42 * len(second["values"]) + 1.4, 0.34 * len(first["values"]) + 1.2
    fig, axes = plt.subplots(nrows, ncols, figsize=(cw * ncols, ch * nrows), dpi=100, squeeze=False)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.82")
    image = None
    for ax, (x, label, mat) in zip(axes.flat, panels):
        frac = x["primary"] in FRACTIONS
        image = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, vmin=0.0 if frac else None, vmax=1.0 if frac else None,
                          aspect="auto")
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                v = mat[i, j]
                dark = np.isfinite(v) and (v < 0.6 if frac else False)
                ax.text(j, i, _cell_text(v, frac), ha="center", va="center", fontsize=6.5,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(second["values"])), [f"{v:g}" for v in second["values"]], fontsize=7)
        ax.set_yticks(range(len(first["values"])), [f"{v:g}" for v in first["values"]], fontsize=7)
        ax.set_xlabel(f"{second['axis']} ({second['unit']})", fontsize=8)
        ax.set_ylabel(f"{first['axis']} ({first['unit']})", fontsize=8)
        pct = " (%)" if frac else ""
        ax.set_title(f"{x['id']}: {x['primary_label']}{pct}" + (f"\n{label}" if label else ""), fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    s = results["sweep"]
    fig.suptitle(f"{s['per_cell']} avatars per cell, {s['size'][0]}x{s['size'][1]}, FOV {s['hfov']:g} deg; "
                 f"{_scoring(s['bench'])}; grey: nothing to score", fontsize=8)
    fig.tight_layout()
    if image is not None and all(x["primary"] in FRACTIONS for x in scored):
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, pad=0.01)
    return png_bytes(fig)


__all__ = ["assemble", "figures", "heat_maps", "lines_plot", "pivot", "run", "table_markdown"]
