"""Tables and figures of ``hcgym evaluate biosignal``: the filter study in the layout of the seed's Table 22
(with its PTBDB and MITBIH numbers beside ours), the gain against noise, the learned widths, and the NBoF
variants in the layout of Table 26."""

from __future__ import annotations

from typing import Any

import numpy as np

#: OpenDR D3.2 Table 22 (averages over 5 runs): backbone -> variant -> data set -> (accuracy, F1).
SEED_TABLE22 = {
    "mlp": {"plain": {"PTBDB": (0.9285, 0.9096), "MITBIH": (0.9469, 0.7178)},
            "filtered": {"PTBDB": (0.9367, 0.9190), "MITBIH": (0.9637, 0.8202)}},
    "cnn": {"plain": {"PTBDB": (0.9412, 0.9269), "MITBIH": (0.9603, 0.8096)},
            "filtered": {"PTBDB": (0.9542, 0.9425), "MITBIH": (0.9671, 0.8392)}},
    "lstm": {"plain": {"PTBDB": (0.9553, 0.9429), "MITBIH": (0.9658, 0.8221)},
             "filtered": {"PTBDB": (0.9749, 0.9683), "MITBIH": (0.9741, 0.8603)}},
    "resnet": {"plain": {"PTBDB": (0.9241, 0.9047), "MITBIH": (0.9541, 0.7808)},
               "filtered": {"PTBDB": (0.9446, 0.9299), "MITBIH": (0.9661, 0.8304)}},
}
#: OpenDR D3.2 Table 26, AF column (mean F1 ± std over 5 folds); attention rows come twice in the document (the
#: two latent sizes, d = 512 and 1024, unlabelled), given here as both.
SEED_TABLE26_AF = {
    "nbof": ["76.59 ± 1.24"], "nbof-ca": ["77.02 ± 2.11"], "nbof-ta": ["77.24 ± 2.08"],
    "nbof-csa": ["76.77 ± 1.71", "77.0 ± 1.84"], "nbof-tsa": ["76.32 ± 2.3", "76.04 ± 1.83"],
    "nbof-ctsa": ["77.75 ± 1.31", "76.62 ± 1.77"], "tnbof": ["76.77 ± 1.16"], "tnbof-ca": ["77.06 ± 1.74"],
    "tnbof-ta": ["77.33 ± 2.19"], "tnbof-csa": ["77.95 ± 1.78", "77.25 ± 1.64"],
    "tnbof-tsa": ["76.2 ± 0.75", "77.07 ± 1.16"], "tnbof-ctsa": ["77.01 ± 1.15", "78.0 ± 1.74"],
}
NAMES = {"mlp": "MLP", "cnn": "CNN", "lstm": "LSTM", "resnet": "ResNet"}


def _snr(v: float | None) -> str:
    return "clean" if v is None else f"{v:g} dB"


def _level(filter_results: dict[str, Any], snr: float | None) -> dict[str, Any]:
    for lv in filter_results["levels"]:
        if lv["snr_db"] == snr:
            return lv
    raise KeyError(snr)


def filter_table(filter_results: dict[str, Any], main_snr: float | None) -> str:
    """Table 22's layout at the noise level ``main_snr``, ours (mean ± std over seeds) beside the seed's."""
    lv = _level(filter_results, main_snr)
    seeds = len(filter_results["config"]["seeds"])
    out = [f"**Table 22 layout** (simulated beats at {_snr(main_snr)}, {lv['train']} training and {lv['test']} test "
           f"beats of other people; mean ± std over {seeds} paired seeds; the seed: PTBDB / MITBIH)", "",
           "| model | accuracy | F1 | loss | precision | recall | params | seed acc PTBDB / MITBIH "
           "| seed F1 PTBDB / MITBIH |", "|---|---|---|---|---|---|---|---|---|"]
    for b, cell in lv["backbones"].items():
        for variant in ("plain", "filtered"):
            s = cell[variant]
            name = ("Proposed + " if variant == "filtered" else "") + NAMES.get(b, b)
            seed = SEED_TABLE22.get(b, {}).get(variant)
            sa = f"{seed['PTBDB'][0]:.4f} / {seed['MITBIH'][0]:.4f}" if seed else "-"
            sf = f"{seed['PTBDB'][1]:.4f} / {seed['MITBIH'][1]:.4f}" if seed else "-"
            out.append(f"| {name} | {s['acc']:.4f} ± {s['acc_std']:.4f} | {s['f1']:.4f} ± {s['f1_std']:.4f} | "
                       f"{s['loss']:.4f} | {s['precision']:.4f} | {s['recall']:.4f} | {cell['params'][variant]} | "
                       f"{sa} | {sf} |")
    return "\n".join(out)


def sweep_table(filter_results: dict[str, Any]) -> str:
    """Gain of the filter (accuracy and F1 points, mean over seeds; wins out of seeds) per noise level, and the
    learned widths."""
    backbones = filter_results["config"]["backbones"]
    seeds = len(filter_results["config"]["seeds"])
    head = "| noise | " + " | ".join(f"{NAMES.get(b, b)} Δacc / ΔF1 (wins)" for b in backbones) + " |"
    out = ["**Gain of the filter against noise** (points; wins: seeds where filtered ≥ plain, accuracy / F1, "
           f"of {seeds})", "", head, "|---|" + "---|" * len(backbones)]
    for lv in filter_results["levels"]:
        cells = []
        for b in backbones:
            c = lv["backbones"][b]
            cells.append(f"{100 * c['gain_acc']:+.2f} / {100 * c['gain_f1']:+.2f} ({c['wins_acc']}/{c['wins_f1']})")
        out.append(f"| {_snr(lv['snr_db'])} | " + " | ".join(cells) + " |")
    out += ["", "**Learned widths** σ of g, g', g'' (samples at 125 Hz; mean over seeds; start 2.0)", "",
            "| noise | " + " | ".join(NAMES.get(b, b) for b in backbones) + " |", "|---|" + "---|" * len(backbones)]
    for lv in filter_results["levels"]:
        out.append(f"| {_snr(lv['snr_db'])} | " + " | ".join(
            " / ".join(f"{v:.2f}" for v in lv["backbones"][b]["sigma"]) for b in backbones) + " |")
    return "\n".join(out)


def filter_figures(filter_results: dict[str, Any]) -> dict[str, bytes]:
    """``filter_gain.png``: accuracy and F1 gain against noise per backbone (mean ± std over seeds);
    ``filter_sigma.png``: the learned widths against noise."""
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()

    levels = filter_results["levels"]
    backbones = filter_results["config"]["backbones"]
    labels = [_snr(lv["snr_db"]) for lv in levels]
    xs = np.arange(len(levels))
    files: dict[str, bytes] = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    for ax, key, title in ((axes[0], "gain_acc_per_seed", "accuracy gain"), (axes[1], "gain_f1_per_seed", "F1 gain")):
        for b in backbones:
            v = np.array([lv["backbones"][b][key] for lv in levels]) * 100
            ax.errorbar(xs, v.mean(1), yerr=v.std(1), capsize=3, marker="o", label=NAMES.get(b, b))
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(xs, labels)
        ax.set_xlabel("noise (SNR)")
        ax.set_ylabel("points (filtered - plain)")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    files["filter_gain.png"] = png_bytes(fig)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharey=True, dpi=110)
    for k, (ax, name) in enumerate(zip(axes, ("g", "g'", "g''"))):
        for b in backbones:
            ax.plot(xs, [lv["backbones"][b]["sigma"][k] for lv in levels], marker="o", label=NAMES.get(b, b))
        ax.set_xticks(xs, labels)
        ax.set_title(f"learned σ of {name}")
        ax.set_xlabel("noise (SNR)")
    axes[0].set_ylabel("σ (samples)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    files["filter_sigma.png"] = png_bytes(fig)
    return files


def checks_markdown(checks: dict[str, Any]) -> str:
    """The issue's filter targets as measured."""
    f = checks["filter"]
    lines = [f"**Targets** (noise level of the main table: {_snr(f['main_snr'])})", ""]
    for b, v in f["filtered_ge_plain"].items():
        lines.append(f"- {NAMES.get(b, b)}: filtered >= plain in accuracy {'yes' if v['acc'] else 'no'}, "
                     f"in F1 {'yes' if v['f1'] else 'no'}")
    g = f["gain_grows_with_noise"]
    fmt = {m: ("-" if v is None else f"{v:+.2f}") for m, v in g.items()}
    lines.append(f"- gain grows with noise (Spearman correlation of the mean gain with the noise order "
                 f"{', '.join(_snr(v) for v in f['noise_order'])}): accuracy {fmt['acc']}, F1 {fmt['f1']}")
    return "\n".join(lines)


#: OpenDR D3.2 Table 24 (lightweight backbone of Goodfellow et al.): row -> data set -> (accuracy, F1), params.
SEED_TABLE24 = {"lightweight": ({"PTBDB": (0.9886, 0.9856), "MITBIH": (0.9818, 0.9040)}, "3.1M"),
                "lightweight_filtered": ({"PTBDB": (0.9948, 0.9933), "MITBIH": (0.9846, 0.9124)}, "3.1M"),
                "baseline": ({"PTBDB": (0.9937, 0.9932), "MITBIH": (0.9818, 0.9052)}, "5.5M")}


def table24(t24: dict[str, Any]) -> str:
    """The Table 24 comparison in its layout, ours (mean ± std over seeds) beside the seed's."""
    names = {"lightweight": "Lightweight", "lightweight_filtered": "Lightweight + Proposed", "baseline": "Baseline"}
    rows = []
    for key, name in names.items():
        s, (seed, seed_params) = t24[key], SEED_TABLE24[key]
        rows.append(f"| {name} | {s['acc']:.4f} ± {s['acc_std']:.4f} | {s['f1']:.4f} ± {s['f1_std']:.4f} | "
                    f"{s['loss']:.4f} | {s['precision']:.4f} | {s['recall']:.4f} | {t24['params'][key]} | "
                    f"{seed['PTBDB'][0]:.4f} / {seed['MITBIH'][0]:.4f} | {seed['PTBDB'][1]:.4f} / "
                    f"{seed['MITBIH'][1]:.4f} | {seed_params} |")
    return "\n".join([
        f"**Table 24 layout** (a deeper CNN and its slimmed version at {_snr(t24['snr_db'])}; mean ± std over "
        "seeds; the seed: PTBDB / MITBIH)", "",
        "| model | accuracy | F1 | loss | precision | recall | params | seed acc | seed F1 | seed params |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        f"- lightweight + filter minus baseline: accuracy {100 * t24['gain_acc_over_baseline']:+.2f} points, F1 "
        f"{100 * t24['gain_f1_over_baseline']:+.2f} points"])


def nbof_table(results: dict[str, Any]) -> str:
    """The NBoF study in the layout of Table 26 (AF column) with the order task beside it."""
    order, af, checks = results["order_task"], results["nbof"], results["nbof_checks"]
    rows = []
    for v in af:
        o = order.get(v)
        oa = "-" if o is None else f"{100 * o['acc_mean']:.1f} ± {100 * o['acc_std']:.1f}"
        rows.append(f"| {v} | {oa} | "
                    f"{100 * af[v]['f1_mean']:.2f} ± {100 * af[v]['f1_std']:.2f} | {100 * af[v]['acc_mean']:.2f} | "
                    f"{' / '.join(SEED_TABLE26_AF.get(v, ['-']))} |")
    d = checks["af_ctsa_minus_nbof"]
    return "\n".join([
        "**Table 26 layout** (NBoF variants; order task: accuracy % over 3 seeds, chance 50; simulated AF: macro F1 "
        "% over 5 folds, 4 rhythm classes; the seed: AF challenge, both latent sizes)", "",
        "| variant | order task acc | AF F1 | AF acc | seed AF F1 |", "|---|---|---|---|---|", *rows, "",
        f"- order task: NBoF at chance {'yes' if checks['order_nbof_at_chance'] else 'no'}, temporal NBoF succeeds "
        f"{'yes' if checks['order_tnbof_succeeds'] else 'no'}, CTsA succeeds "
        f"{'yes' if checks['order_ctsa_succeeds'] else 'no'}",
        f"- AF: CTsA >= NBoF in mean F1 {'yes' if checks['af_ctsa_ge_nbof'] else 'no'}; paired per fold "
        f"{100 * d['mean']:+.2f} points, 95 % interval [{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}], "
        f"ahead or level on {d['wins']} of {len(d['per_run'])} folds"])


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md`` of ``hcgym evaluate biosignal``."""
    runs = results["filter_runs"]
    parts = ["# hcgym evaluate biosignal", "", filter_table(runs, results["checks"]["filter"]["main_snr"]), "",
             sweep_table(runs), "", checks_markdown(results["checks"])]
    if "table24" in results:
        parts += ["", table24(results["table24"])]
    if "nbof" in results:
        parts += ["", nbof_table(results)]
    return "\n".join(parts) + "\n"


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """The figures of ``hcgym evaluate biosignal``."""
    return filter_figures(results["filter_runs"])


__all__ = ["SEED_TABLE22", "SEED_TABLE24", "SEED_TABLE26_AF", "table24", "checks_markdown", "nbof_table", "figures", "filter_figures", "filter_table", "sweep_table",
           "table_markdown"]
