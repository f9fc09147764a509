"""Tables and figures of ``hcgym evaluate speech``: the configurations in the layout of the seed's Table 25 (its
accuracies beside ours), the ordering checks, and the accuracy against distance and reverberation."""

from __future__ import annotations

from typing import Any

import numpy as np

from hcgym.report import markdown_table, png_bytes, pyplot

#: OpenDR D3.2 Table 25: Google Speech Commands accuracy (%) of MatchboxNet configurations A-F.
SEED_TABLE25 = {"A": 97.1789, "B": 97.1763, "C": 96.3570, "D": 96.6057, "E": 97.7105, "F": 93.8259}


def configs_table(results: dict[str, Any]) -> str:
    """Table 25's layout: per configuration our accuracy (mean ± std over seeds), MACs, parameters, the seed's."""
    d = results["data"]
    rows = []
    for v, c in results["configs"].items():
        seed = SEED_TABLE25.get(v)
        rows.append([v, f"{c['acc_mean']:.2f} ± {c['acc_std']:.2f}", str(len(c["per_seed"])),
                     f"{c['macs']['fvcore']:,}", f"{c['params']:,}", f"{c['power_products']:,}",
                     "-" if seed is None else f"{seed:.4f}"])
    head = ["configuration", "accuracy % (mean ± std)", "seeds", "MACs", "params", "power products", "seed accuracy %"]
    return "\n".join([f"**Table 25 layout** ({d['clips']} fresh clips of test speakers, data seed {d['seed']}; "
                      "the seed: Google Speech Commands)", "", *markdown_table(head, rows)])


def checks_markdown(checks: dict[str, Any]) -> str:
    """The ordering checks, the MAC ratio and the paired differences."""
    def yes(v: bool | None) -> str:
        return "-" if v is None else ("yes" if v else "no")

    lines = ["**Checks**", "", f"- E >= A (mean accuracy): {yes(checks['e_ge_a'])}",
             f"- F < A (mean accuracy): {yes(checks['f_lt_a'])}",
             f"- MACs E / A: {'-' if checks['mac_ratio_e_a'] is None else checks['mac_ratio_e_a']}"]
    for key, name in (("e_minus_a", "E - A"), ("f_minus_a", "F - A")):
        d = checks[key]
        if d is not None:
            ci = "-" if d["ci95"] is None else f"[{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
            lines.append(f"- {name} paired per seed: {d['mean']:+.2f} points, 95 % interval {ci}, ahead or level "
                         f"on {d['wins']} of {len(d['per_run'])} seeds")
    return "\n".join(lines)


def distance_table(cells: list[dict[str, Any]], snr_1m_db: float) -> str:
    """Accuracy (mean over seeds) per distance (columns) and RT60 x configuration (rows)."""
    if not cells:
        return "**By distance**: no speech clips"
    distances = sorted({c["distance"] for c in cells})
    rt60s = list(dict.fromkeys(c["rt60"] for c in cells))
    names = list(cells[0]["acc"])
    rows = []
    for r in rt60s:
        row_cells = {c["distance"]: c for c in cells if c["rt60"] == r}
        measured = ", ".join(f"{row_cells[d]['rt60_measured']:.2f}" for d in distances)
        for v in names:
            rows.append([f"{r:g} s ({measured})", v, *(f"{row_cells[d]['acc'][v]:.1f}" for d in distances)])
    rows.append(["speech SNR dB (median)", "", *(f"{np.median([c['snr_db'] for c in cells if c['distance'] == d]):.1f}"
                                                 for d in distances)])
    head = ["RT60 target (measured per distance)", "config", *(f"{d:g} m" for d in distances)]
    return "\n".join(["**By distance and reverberation** (accuracy %, mean over seeds; the same words re-heard in a "
                      f"simulated room, pink ambient noise {snr_1m_db:g} dB below the direct sound at 1 m)", "",
                      *markdown_table(head, rows)])


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md`` of ``hcgym evaluate speech``."""
    return "\n".join(["# hcgym evaluate speech", "", configs_table(results), "", checks_markdown(results["checks"]), "",
                      distance_table(results["by_distance"], results["config"]["snr_1m_db"])]) + "\n"


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``configs.png``: accuracy per configuration (bar: mean; dots: seeds; crosses: the seed's Table 25);
    ``by_distance.png``: accuracy against distance, one panel per RT60, one line per configuration."""
    plt = pyplot()
    configs = results["configs"]
    names = list(configs)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 3.6))
    xs = np.arange(len(names))
    ax.bar(xs, [configs[v]["acc_mean"] for v in names], color="0.8", label="mean over seeds")
    for i, v in enumerate(names):
        seeds = list(configs[v]["per_seed"].values())
        ax.scatter(np.full(len(seeds), i) + np.linspace(-0.15, 0.15, len(seeds)), seeds, s=14, color="C0", zorder=3)
    seed = [(i, SEED_TABLE25[v]) for i, v in enumerate(names) if v in SEED_TABLE25]
    if seed:
        ax.scatter(*zip(*seed), marker="x", color="C3", zorder=4, label="seed (Speech Commands)")
    ax.set_xticks(xs, names)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("fresh test speakers")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    files = {"configs.png": png_bytes(fig)}
    cells = results["by_distance"]
    rt60s = list(dict.fromkeys(c["rt60"] for c in cells)) or [None]
    fig, axes = plt.subplots(1, len(rt60s), figsize=(3.4 * len(rt60s) + 0.6, 3.4), sharey=True, squeeze=False)
    for ax, r in zip(axes[0], rt60s):
        row = sorted((c for c in cells if c["rt60"] == r), key=lambda c: c["distance"])
        for k, v in enumerate(row[0]["acc"] if row else []):
            d = [c["distance"] for c in row]
            per = np.array([list(c["acc_per_seed"][v].values()) for c in row])
            ax.errorbar(d, per.mean(1), yerr=per.std(1), marker="o", capsize=3, color=f"C{k}", label=v)
        ax.set_xlabel("talker distance (m)")
        ax.set_title("no speech clips" if r is None else f"RT60 {r:g} s")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    files["by_distance.png"] = png_bytes(fig)
    return files


__all__ = ["SEED_TABLE25", "checks_markdown", "configs_table", "distance_table", "figures", "table_markdown"]
