"""The documentation figure: rhythm classes, beat kinds, and a stream's heart rate following activity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hcgym.paths import atomic_write_bytes
from hcgym.report import png_bytes, pyplot

#: Activity of the example stream: rest, walk, run, rest (s).
EXAMPLE_ACTIVITY = [(0.0, 60.0, "idle"), (60.0, 180.0, "walk"), (180.0, 300.0, "jump"), (300.0, 480.0, "sit")]


def plot_examples(path: str | Path, seed: int = 0) -> Path:
    """Write a PNG of 10 s of each rhythm class, the Kachuee-cut normal beat beside each abnormal kind, and the
    heart rate and motion level of a rest-walk-run-rest stream (``EXAMPLE_ACTIVITY``); returns ``path``."""
    from hcgym.synthesis.ecg.datasets import CINC2017_SHARES, beat_dataset, rhythm_dataset
    from hcgym.synthesis.ecg.person import ABNORMAL_KINDS
    from hcgym.synthesis.ecg.rhythm import RHYTHMS
    from hcgym.synthesis.ecg.stream import ecg_stream

    plt = pyplot()
    fig = plt.figure(figsize=(12, 9.5), dpi=72)
    grid = fig.add_gridspec(4, 7, height_ratios=[1, 1, 1.1, 1.3], hspace=0.6, wspace=0.35, left=0.06, right=0.94,
                            top=0.96, bottom=0.06)
    rs = rhythm_dataset(16, seed, fs=250, seconds=10, snr_db=20, shares=CINC2017_SHARES[:3] + (0.1,))
    for c, name in enumerate(RHYTHMS):
        ax = fig.add_subplot(grid[c // 2, (c % 2) * 4: (c % 2) * 4 + (4 if c % 2 == 0 else 3)])
        i = int(np.flatnonzero(rs.y == c)[0])
        ax.plot(np.arange(rs.x.shape[1]) / 250, rs.x[i], lw=0.7, color="k")
        sub = f" ({rs.meta['subtype'][i]})" if rs.meta["subtype"][i] else ""
        ax.set_title(f"{name}{sub}, {rs.meta['hr'][i]:.0f} bpm, SNR {rs.meta['snr'][i]:.0f} dB", fontsize=9)
        ax.set_xlabel("s", fontsize=8)
        ax.set_ylabel("mV", fontsize=8)
        ax.tick_params(labelsize=7)
    for c, kind in enumerate(("normal", *ABNORMAL_KINDS)):
        ax = fig.add_subplot(grid[2, c])
        bs = beat_dataset(100, seed, abnormal_share=0.0 if kind == "normal" else 0.5, people=range(5),
                          kinds=None if kind == "normal" else [kind])
        for i in np.flatnonzero(bs.kind == kind)[::4][:5]:
            ax.plot(bs.x[i], lw=0.7, alpha=0.8)
        ax.set_title(kind, fontsize=9)
        ax.set_xticks([0, 93, 186])
        ax.tick_params(labelsize=7)
    st = ecg_stream(EXAMPLE_ACTIVITY, seed, fs=125, snr_db=20)
    ax = fig.add_subplot(grid[3, :])
    step = 25
    ax.plot(st.t[::step], st.heart_rate[::step], color="tab:red", lw=0.8, label="heart rate (bpm)")
    for a, b, name in EXAMPLE_ACTIVITY:
        ax.axvspan(a, b, alpha=0.08, color="k")
        ax.text((a + b) / 2, 172, name, ha="center", fontsize=8)
    ax.set_ylim(40, 180)
    ax.set_xlabel("s", fontsize=8)
    ax.set_ylabel("bpm", fontsize=8)
    ax.tick_params(labelsize=7)
    ax2 = ax.twinx()
    ax2.plot(st.t[::step], st.motion_level[::step], color="tab:blue", lw=0.8, label="motion level")
    ax2.set_ylim(0, 2.2)
    ax2.set_ylabel("motion level", fontsize=8)
    ax2.tick_params(labelsize=7)
    ax.set_title("stream: heart rate (red) and motion level (blue) following the activity", fontsize=9)
    path = Path(path)
    atomic_write_bytes(path, png_bytes(fig))
    return path
