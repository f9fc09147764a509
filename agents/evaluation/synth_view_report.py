"""``table.md`` and figures of the synth-view protocol (:mod:`hcgym.agents.evaluation.synth_view`).

* :func:`table_markdown`: OpenDR D3.2 Table 8 layout with the seed's numbers, accuracy per starting pan, the
  synthesis-bias correction, where Algorithm 1 ended, and the view-synthesis quality;
* :func:`figures`: ``accuracy_vs_pan.png`` and ``synthesis_strip.png`` (real, synthesised and true views).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from hcgym.agents.evaluation.synth_view import CONSTANT_BIAS, DIAGNOSTICS, METHODS, SEED_TABLE8, TRUE_VIEWS, UNCORRECTED
from hcgym.report import markdown_table

#: Source pans of the strip figure (those whose view 15 degrees toward frontal exists are drawn).
STRIP_SOURCES = (0, 30, 45, 60, 75, 90)


def table_markdown(results: dict[str, Any]) -> str:
    """Markdown in the layout of OpenDR D3.2 Table 8, the seed's numbers beside, then per-pan accuracies."""
    seed = results.get("seed_table8", SEED_TABLE8)
    q = results["queries"]
    rows = [["[119] Active (DRL)", "not part of this protocol", f"{seed['active_drl_119']:.1f}%"],
            ["[41] Static", f"{results['static']:.2f}%", f"{seed['static']:.2f}%"],
            ["Proposed Active (synthesized views)", f"{results['synthesized_view']:.2f}%",
             f"{seed['synthesized_view']:.2f}%"],
            ["Oracle moves toward frontal, no synthesis (upper bound, not a method)",
             f"{results['oracle_move']:.2f}%", "—"]]
    for key, label in ((TRUE_VIEWS, "Algorithm 1 fed the true views instead of synthesised ones (diagnostic)"),
                       (UNCORRECTED, "Synthesized views compared by raw FRC, no bias correction (diagnostic)"),
                       (CONSTANT_BIAS, "Synthesized views with one bias for every view (diagnostic)")):
        if key in results:
            rows.append([label, f"{results[key]:.2f}%", "—"])
    lines = ["Table 8 layout: active face recognition accuracy (%).", "",
             *markdown_table(["Algorithm", f"hcgym simulation ({q} queries, Set 1)", "seed (HPID, Set 1)"], rows),
             "",
             f"Gain of the synthesized-view agent over static: {results['synthesized_view'] - results['static']:+.2f} "
             f"points (seed: {seed['synthesized_view'] - seed['static']:+.2f}).", "",
             "Accuracy (%) by starting pan (all tilts, both series):", ""]
    pans = list(results["per_pan"]["static"])
    lines += markdown_table(["method", *(f"{p}°" for p in pans)],
                            [[m, *(f"{results['per_pan'][m][p]:.1f}" for p in pans)]
                             for m in (*METHODS, *DIAGNOSTICS) if m in results["per_pan"]])
    sb = results.get("synth_bias")
    if sb:
        d, f = sb["distance"], sb["frc"]
        lines += ["", f"Synthesis-bias correction ({sb['source']}), embedding distance (FRC): views turning the "
                      f"face toward the camera {d['toward']:+.4f} ({f['toward']:+.3f}), away from it "
                      f"{d['away']:+.4f} ({f['away']:+.3f}), overall {d['other']:+.4f} ({f['other']:+.3f})."]
    for m in ("synthesized_view", *DIAGNOSTICS):
        dec = results.get(f"{m}_decisions")
        if dec:
            lines += ["", f"{m} decisions over {q} queries: stayed {dec['stayed']}, ended nearer the frontal view "
                          f"{dec['ended_nearer_frontal']}, ended farther {dec['ended_farther']}, blocked at the grid "
                          f"edge {dec['blocked_at_grid_edge']}; mean moves {dec['mean_moves']:.2f}; exits "
                          f"{dec['branches']}."]
    qual = results.get("synthesis_quality")
    if qual:
        lines += ["", "View synthesis against the true view at the target pose (face region SSIM; dlib 128-d "
                      "distance):", ""]
        lines += markdown_table(
            ["pan offset", "pairs", "SSIM synthesised", "SSIM source", "dlib d synthesised–true", "dlib d source–true",
             "synthesised closer"],
            [[f"{int(o):+d}°", f"{r['pairs_with_faces']}/{r['pairs']}", f"{r['ssim_synth']:.3f}",
              f"{r['ssim_source']:.3f}", f"{r['dlib_synth_vs_true']:.3f}", f"{r['dlib_source_vs_true']:.3f}",
              f"{100 * r['synth_closer_fraction']:.0f}%"] for o, r in qual["offsets"].items()])
        lines += ["", f"Milliseconds per synthesised view (mesh fit shared between views of one image, CPU): "
                      f"median {qual['ms_per_view']['median']:.1f}."]
    return "\n".join(lines) + "\n"


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``accuracy_vs_pan.png`` and, when the rendered set is in ``results["_data"]`` and has a source pan with
    a view 15 degrees toward frontal, ``synthesis_strip.png``."""
    out = {"accuracy_vs_pan.png": accuracy_figure(results)}
    data = results.get("_data")
    if data is not None:
        strip = strip_figure(data, sources=[p for p in STRIP_SOURCES if p in data.pans and p - 15 in data.pans],
                             tilt=0 if 0 in data.tilts else data.tilts[0])
        if strip is not None:
            out["synthesis_strip.png"] = strip
    return out


def accuracy_figure(results: dict[str, Any]) -> bytes:
    """PNG: accuracy vs starting pan for the three methods and the diagnostics; the database pans are shaded."""
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    pans = sorted(int(p) for p in results["per_pan"]["static"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    styles = {"static": ("s--", "tab:gray"), "oracle_move": ("^:", "tab:green"), "synthesized_view": ("o-", "tab:blue"),
              TRUE_VIEWS: ("x-.", "tab:orange"), UNCORRECTED: ("d:", "tab:purple"),
              CONSTANT_BIAS: ("v:", "tab:brown")}
    for m in (*METHODS, *DIAGNOSTICS):
        if m not in results["per_pan"]:
            continue
        st, col = styles[m]
        groups = [[p for p in pans if p < 0], [p for p in pans if p > 0]]
        first = True
        for side in groups:
            if not side:
                continue
            ax.plot(side, [results["per_pan"][m][str(p)] for p in side], st, color=col,
                    label=f"{m} ({results[m]:.1f}%)" if first else None)
            first = False
    db = results.get("protocol", {}).get("database_pans", [-15, 0, 15])
    ax.axvspan(min(db) - 7.5, max(db) + 7.5, color="0.9", zorder=0, label="database pans")
    ax.set_xlabel("starting pan (degrees)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_xticks(sorted(set(pans) | set(db)))
    ax.legend(fontsize=7, loc="lower center")
    ax.set_title("Active face recognition in simulation (Set 1, all tilts)", fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)


def strip_figure(data, person: int = 0, series: int = 0, tilt: int = 0, sources=STRIP_SOURCES, offset: int = -15,
                 crop: float = 0.75) -> bytes | None:
    """PNG: rows = source pans; columns = real source, synthesised view after ``offset`` (toward frontal for
    positive pans), the true view there, and the synthesised-pixel mask. None when no source pan qualifies."""
    from PIL import Image, ImageDraw

    from hcgym.synthesis.views import synthesize_view

    h, w = data.images.shape[4:6]
    ch, cw = int(h * crop), int(h * crop)
    y0, x0 = (h - ch) // 2 + h // 40, (w - cw) // 2
    tiles = []
    for pan in sources:
        target = pan + offset
        if pan not in data.pans or target not in data.pans or tilt not in data.tilts:
            continue
        src = data.image(person, series, pan, tilt)
        view = synthesize_view(src, offset, 0.0)
        true = data.image(person, series, target, tilt)
        if view is None:
            syn, mask = np.zeros_like(src), np.zeros_like(src)
        else:
            syn = view.image
            mask = np.stack([view.source == 3, view.source == 1, view.source == 2], -1).astype(np.uint8) * 255
        row = [x[max(y0, 0):max(y0, 0) + ch, x0:x0 + cw] for x in (src, syn, true, mask)]
        tiles.append((pan, target, np.concatenate(row, 1)))
    if not tiles:
        return None
    label_h = 14
    sheet = Image.new("RGB", (tiles[0][2].shape[1], (ch + label_h) * len(tiles)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (pan, target, row) in enumerate(tiles):
        y = k * (ch + label_h)
        sheet.paste(Image.fromarray(row), (0, y + label_h))
        for c, text in enumerate((f"real {pan:+d}", f"synthesised {target:+d}", f"real {target:+d}",
                                  "green seen/blue mirror/red inpaint")):
            draw.text((c * cw + 3, y + 1), text, fill=(0, 0, 0))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()
