"""``table.md`` and the figures of ``hcgym evaluate expression`` (:mod:`.protocol`).

Tables in the layout of the seed's Tables 21 (CK+; Table 20, Oulu-CASIA, beside it) and 19 (AFEW) with the
seed's numbers beside ours, the Monte Carlo dropout seed study, the uncertainty AUROCs, the parameter ratio
ST-BLN / PST-BLN in both conventions and the issue's targets. Figures: ``confusion_<protocol>.png`` (the best
model on mesh51, or the first source scored), ``uncertainty.png`` (entropy histograms of correct, wrong and
blended sequences; risk-coverage curves) and ``growth.png`` (PST-BLN's search: training loss per step and
the widths tried).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.perception.expression.protocol import NAMES, SEED_MCD, SEED_TABLES

#: Data type of the seed's landmark rows, and the sources' names in the tables.
SOURCE_NAMES = {"dlib": "dlib 51", "mesh51": "Face Mesh 51", "truth": "true 51"}


def _k(n: int) -> str:
    return f"{n / 1000:.1f}k"


def _f(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _rows(protocol: str, by_source: dict[str, Any]) -> list[list[str]]:
    """One row per model and inference (w/ and wo/ MCD), a column per source, then the seed's."""
    seed = SEED_TABLES[protocol]["rows"]
    oulu = SEED_TABLES["oulu"]["rows"] if protocol == "ck" else None
    rows = []
    first = next(iter(by_source.values()))["models"]
    for name in (m for m in NAMES if m in first):
        variants = (("", "acc"),) if name in ("stgcn", "agcn") else (("_mcd", "acc_mcd"), ("", "acc"))
        for suffix, key in variants:
            label = NAMES[name] + {"_mcd": " w/MCD", "": " wo/MCD"}[suffix] * (name in ("stbln", "pstbln"))
            m = first[name]
            row = [label, *(_f(r["models"][name][key]) for r in by_source.values()),
                   _k(m["params_no_graph"]), _k(m["params"])]
            s = seed.get(name + suffix, ("-", "-"))
            row += [s[0], s[1]] + ([oulu.get(name + suffix, ("-",))[0]] if oulu else [])
            rows.append(row)
    dgnn = seed["dgnn"]
    rows.append(["DGNN (seed only)", *("-" for _ in by_source), "-", "-", dgnn[0], dgnn[1]]
                + ([SEED_TABLES["oulu"]["rows"]["dgnn"][0]] if oulu else []))
    return rows


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md`` (see the module docstring)."""
    from hcgym.report import markdown_table

    d = results["data"]
    st = results["settings"]
    lines = [f"# Facial expressions on fresh people (seed {results['config']['seed']})", "",
             f"{len(d['identities'])} avatars never seen in training (dataset seed {d['dataset_seed']}); "
             + "; ".join(f"{s}: {v['clips']} clips ({v['blends']} blends)" for s, v in d["styles"].items())
             + f". Accuracy is top-1 (%). w/MCD: the mean of Monte Carlo dropout passes ({results['config']['passes']} "
             f"for PST-BLN and the seed study, {results['config']['passes_fixed']} for ST-GCN, AGCN and ST-BLN); "
             "wo/MCD: one deterministic pass. #params: trainable parameters without the learnable graph matrices "
             "(the seed's convention: ST-BLN's 3 E x E matrices per layer, ST-GCN's edge importance, AGCN's B) "
             "and with them. Protocol ck: frame 0 and the three apex frames of posed clips; afew: "
             f"{st['afew_frames']} frames at equal intervals over wild clips (blends, talking, head turns, a hand "
             "in front of the mouth).", ""]
    for protocol, by_source in results["protocols"].items():
        title = SEED_TABLES[protocol]["title"]
        lines += [f"## Protocol {protocol} (layout of the seed's {title}"
                  + (" and Table 20)" if protocol == "ck" else ")"), ""]
        head = ["method", *(f"acc ({SOURCE_NAMES.get(s, s)})" for s in by_source), "#params", "#params with graph",
                f"seed acc ({title.split(' (')[0]})", "seed #params"]
        if protocol == "ck":
            head.append("seed acc (Oulu-CASIA)")
        lines += markdown_table(head, _rows(protocol, by_source))
        lines.append("")
        for source, r in by_source.items():
            ratio = r.get("ratio_stbln_pstbln")
            if ratio:
                lines.append(f"- {SOURCE_NAMES.get(source, source)}: ST-BLN / PST-BLN parameters "
                             f"{ratio['params_no_graph']:.1f}x without graph matrices, {ratio['params']:.2f}x with them; "
                             f"accuracy gap {ratio['acc_mcd_gap']:+.1f} (w/MCD), {ratio['acc_gap']:+.1f} (wo/MCD); "
                             f"PST-BLN widths {r['models']['pstbln']['widths']}.")
        lines.append("")
    lines += _mcd_lines(results)
    lines += _uncertainty_lines(results)
    if results.get("stream"):
        s = results["stream"]
        lines += ["## Stream model (the live sensor's)", ""]
        lines += markdown_table(["clips", "windows", "acc wo/MCD", "acc w/MCD"],
                                [[style, str(s[style]["windows"]), _f(s[style]["acc"]), _f(s[style]["acc_mcd"])]
                                 for style in ("posed", "wild") if style in s])
        lines += ["", f"PST-BLN widths {s['widths']} ({_k(s['params_no_graph'])} parameters without graph matrices) "
                  f"on {s['source']} windows of {s['window']} frames at {s['fps']:g} fps ({s['ends']} window ends per clip, "
                  f"drawn at random), labelled with the expression of its last frame; w/MCD: {s['passes']} passes.", ""]
    lines += ["## Targets", ""]
    lines += markdown_table(["protocol-source", "target", "met"],
                            [[ps, t, "yes" if ok else "no"] for ps, c in results["checks"].items() for t, ok in c.items()])
    return "\n".join(lines) + "\n"


def _mcd_lines(results: dict[str, Any]) -> list[str]:
    from hcgym.report import markdown_table

    rows = []
    for protocol, by_source in results["protocols"].items():
        for source, r in by_source.items():
            m = r.get("mcd")
            if not m:
                continue
            for seed, v in m["per_seed"].items():
                rows.append([f"{protocol} / {source}", seed, _f(v["ensemble"]), _f(v["deterministic"]),
                             f"{v['single_mean']:.1f} +- {v['single_std']:.1f}",
                             "yes" if m["ordering_per_seed"][seed] else "no"])
            rows.append([f"{protocol} / {source}", "mean", _f(m["ensemble"]), _f(m["deterministic"]),
                         f"{m['single_mean']:.1f} +- {m['single_std']:.1f}",
                         "yes" if m["ensemble"] >= m["deterministic"] >= m["single_mean"] else "no"])
    if not rows:
        return []
    s = SEED_MCD
    rows.append(["seed: ST-BLN on AFEW", "-", _f(s["ensemble"], 2), _f(s["deterministic"], 2),
                 f"{s['single_mean']:.2f} +- {s['single_std']:.2f}", "yes"])
    lines = ["## Monte Carlo dropout over training seeds", ""]
    lines += markdown_table(["protocol / source", "seed", "ensemble (w/MCD)", "deterministic (wo/MCD)",
                             "single stochastic pass (mean +- std)", "ensemble >= deterministic >= single"], rows)
    return lines + ["", "The network PST-BLN's search found, fine-tuned with each seed as the table's PST-BLN is "
                    "(seed 0 is that model): the seeds differ in data order, augmentation and dropout masks.", ""]


def _uncertainty_lines(results: dict[str, Any]) -> list[str]:
    from hcgym.report import markdown_table

    rows = []
    for protocol, by_source in results["protocols"].items():
        for source, r in by_source.items():
            u = r["uncertainty"]
            c = u["counts"]
            rows.append([f"{protocol} / {source}", NAMES[u["model"]], _f(u["any"], 3), _f(u["misclassified"], 3),
                         _f(u["blend"], 3), f"{c['correct_clean']} / {c['wrong']} / {c['blended']}",
                         " / ".join(_f(m.get("auroc"), 2) for m in r["models"].values())])
    lines = ["## Uncertainty: AUROC of the predictive entropy", ""]
    lines += markdown_table(["protocol / source", "model", "wrong or blended vs correct clean", "wrong vs right",
                             "blended vs clean", "correct clean / wrong / blended",
                             "each model's (" + " / ".join(NAMES.values()) + ")"], rows)
    return lines + ["", "Entropy of the mean of the Monte Carlo dropout passes (nats). Posed clips hold no blends.", ""]


# ----------------------------------------------------------------------------- figures
def _best(by_source: dict[str, Any]) -> tuple[str, str]:
    source = "mesh51" if "mesh51" in by_source else next(iter(by_source))
    models = by_source[source]["models"]
    return source, max(models, key=lambda m: models[m]["acc_mcd"])


def figures(results: dict[str, Any], labels: list[str] | tuple[str, ...]) -> dict[str, bytes]:
    """``confusion_<protocol>.png``, ``uncertainty.png`` and ``growth.png`` (see the module docstring)."""
    from hcgym.perception.bench_classes import confusion, confusion_png

    out: dict[str, bytes] = {}
    for protocol, by_source in results["protocols"].items():
        source, model = _best(by_source)
        a = by_source[source]["_arrays"]
        records = [{"true": labels[t], "predicted": labels[p]} for t, p in zip(a["y"], a[model]["pred"])]
        acc = by_source[source]["models"][model]["acc_mcd"]
        out[f"confusion_{protocol}.png"] = confusion_png(
            confusion(records, labels), f"{protocol}: {NAMES[model]} w/MCD on {SOURCE_NAMES.get(source, source)} "
                                        f"({acc:.1f} %)")
    out["uncertainty.png"] = _uncertainty_png(results)
    growth = _growth_png(results)
    if growth is not None:
        out["growth.png"] = growth
    return out


def _uncertainty_png(results: dict[str, Any]) -> bytes:
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    pairs = [(p, s) for p, by in results["protocols"].items() for s in by]
    fig, axes = plt.subplots(len(pairs), 2, figsize=(9, 2.6 * len(pairs)), squeeze=False)
    for (protocol, source), (ax_h, ax_r) in zip(pairs, axes):
        r = results["protocols"][protocol][source]
        a = r["_arrays"]
        main = r["uncertainty"]["model"]
        ent, correct, blend = a[main]["entropy"], a[main]["pred"] == a["y"], a["blend"]
        bins = np.linspace(0, max(float(ent.max()), 1e-3), 21)
        for mask, label, color in ((correct & ~blend, "correct, clean", "tab:green"), (~correct, "wrong", "tab:red"),
                                   (blend & correct, "blended, correct", "tab:orange")):
            if mask.any():
                ax_h.hist(ent[mask], bins=bins, alpha=0.55, label=f"{label} ({int(mask.sum())})", color=color)
        ax_h.set_xlabel("predictive entropy (nats)")
        ax_h.set_ylabel("sequences")
        ax_h.set_title(f"{protocol} / {source}: {NAMES[main]}, AUROC {_f(r['uncertainty_auroc'], 2)}", fontsize=9)
        ax_h.legend(fontsize=7)
        for name in r["models"]:
            e = a[name]["entropy"]
            ok = (a[name]["pred"] == a["y"])[np.argsort(e, kind="mergesort")]
            coverage = np.arange(1, len(ok) + 1) / len(ok)
            ax_r.plot(coverage, 100 * np.cumsum(ok) / np.arange(1, len(ok) + 1), label=NAMES[name])
        ax_r.set_xlabel("coverage (most certain first)")
        ax_r.set_ylabel("accuracy of the kept (%)")
        ax_r.set_title("risk-coverage", fontsize=9)
        ax_r.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def _growth_png(results: dict[str, Any]) -> bytes | None:
    from hcgym.report import png_bytes, pyplot

    traces = [(f"{p} / {s}", r["growth"]) for p, by in results["protocols"].items() for s, r in by.items()
              if r.get("growth")]
    if not traces:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(traces), figsize=(4.6 * len(traces), 3.6), squeeze=False)
    for ax, (title, g) in zip(axes[0], traces):
        ev = g["events"]
        ax.plot(range(len(ev)), [e["loss"] for e in ev], "-", color="grey", lw=0.8)
        colors = {"widen": "tab:blue", "revert_width": "tab:red", "remove_layer": "black", "keep_layer": "tab:green",
                  "width_cap": "tab:purple", "depth_cap": "tab:purple", "start": "tab:blue", "add_layer": "tab:cyan"}
        for i, e in enumerate(ev):
            ax.plot(i, e["loss"], "o", ms=4, color=colors.get(e["decision"], "grey"))
            if e["decision"] in ("add_layer", "start", "revert_width", "remove_layer"):
                ax.annotate(",".join(str(w) for w in e["widths"]), (i, e["loss"]), fontsize=6, rotation=45,
                            xytext=(2, 4), textcoords="offset points")
        ax.set_xlabel("growth step")
        ax.set_ylabel("training cross-entropy")
        ax.set_title(f"PST-BLN search, {title}: found {g['widths']}", fontsize=8)
        for name, c in (("widen / start", "tab:blue"), ("new layer", "tab:cyan"), ("revert width", "tab:red"),
                        ("keep layer", "tab:green"), ("remove layer", "black"), ("cap", "tab:purple")):
            ax.plot([], [], "o", color=c, label=name)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return png_bytes(fig)


__all__ = ["figures", "table_markdown"]
