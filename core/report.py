"""Result files of the evaluation protocols: one writer, markdown tables, figures and training curves.

Every evaluation protocol (:mod:`hcgym.agents.evaluation.active_fr`, :mod:`hcgym.agents.evaluation.synth_view`,
``hcgym.perception.<task>.evaluation``) has the same shape:

* ``run(config, progress=True) -> dict``: the results, JSON-serialisable except under keys that begin with
  ``_`` (artefacts kept for the figures, e.g. rendered images; never written to ``results.json``);
* ``table_markdown(results) -> str``: the text of ``table.md``;
* ``figures(results) -> dict[str, bytes]``: file name -> PNG (or GIF) bytes.

A script parses its arguments into the config, calls ``run`` and hands the three to :func:`write_report`.
Every file is complete before the first one is written, and each is written under a temporary name and renamed,
so a failed run never leaves half-written output. matplotlib is imported inside the functions that draw.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from hcgym.paths import atomic_write_bytes


# ------------------------------------------------------------------ files
def public(results: Mapping[str, Any]) -> dict[str, Any]:
    """``results`` without the artefact keys (those beginning with ``_``)."""
    return {k: v for k, v in results.items() if not str(k).startswith("_")}


def json_bytes(results: Mapping[str, Any]) -> bytes:
    """``results.json`` content: the public keys, ``indent=1``."""
    return json.dumps(public(results), indent=1).encode()


def write_files(out: Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write every ``files[name]`` (bytes, or text as UTF-8) to ``out / name`` (sub-folders allowed), each
    through a temporary name and an atomic rename; returns the paths in order."""
    out = Path(out)
    written = []
    for name, data in files.items():
        path = out / name
        atomic_write_bytes(path, data.encode() if isinstance(data, str) else data)
        written.append(path)
    return written


def write_report(out: Path, results: Mapping[str, Any], table: str | None = None,
                 figures: Mapping[str, bytes] | None = None) -> list[Path]:
    """``results.json``, ``table.md`` (when given) and the figures of one protocol run into ``out``."""
    files: dict[str, bytes | str] = {"results.json": json_bytes(results)}
    if table is not None:
        files["table.md"] = table
    files.update(figures or {})
    return write_files(out, files)


# ------------------------------------------------------------------ tables
def markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Lines of a markdown table: the header, the ``|---|`` rule and one line per row (cells as given)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# ------------------------------------------------------------------ figures
def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes (at its own dpi); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def gif_bytes(frames: Sequence[Any], fps: int = 8) -> bytes:
    """An animated, looping GIF of RGB frames (H, W, 3) uint8 at ``fps`` frames per second."""
    from PIL import Image

    imgs = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
    return buf.getvalue()


def training_curve(history: Sequence[Mapping[str, Any]], title: str, loss_label: str, metric: str | None = None,
                   metric_label: str = "", metric_scale: float = 1.0, title_size: float | None = None,
                   marker_size: float | None = None) -> bytes:
    """PNG of a training run: the loss per epoch (left axis) and, where any epoch has it, ``metric`` times
    ``metric_scale`` (right axis; epochs without it are gaps).

    Args:
        history: one mapping per epoch with ``epoch``, ``loss`` and optionally ``metric``.
    """
    plt = pyplot()
    style = {} if marker_size is None else {"ms": marker_size}
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5.6, 3.2), dpi=110)
    ax.plot(ep, [h["loss"] for h in history], "o-", color="tab:blue", **style)
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_label, color="tab:blue")
    if metric is not None and any(h.get(metric) is not None for h in history):
        ax2 = ax.twinx()
        ax2.plot(ep, [metric_scale * h[metric] if h.get(metric) is not None else float("nan") for h in history],
                 "s-", color="tab:red", **style)
        ax2.set_ylabel(metric_label, color="tab:red")
    ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))
    fig.tight_layout()
    return png_bytes(fig)
