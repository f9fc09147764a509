"""The expression models of the seed's Tables 19-21 trained on the rendered expression data, resumably.

Inputs are the landmark caches of :mod:`hcgym.synthesis.expression_data`: a ``posed`` set (CK+/Oulu-like
clips) for protocol ``ck`` (frame 0 and the three apex frames, ``T = 4``) and a ``wild`` set (AFEW-like
clips) for protocol ``afew`` (the whole clip, :attr:`ExprStudySettings.afew_frames` frames taken at equal
intervals, as the seed samples AFEW videos; :func:`protocol_inputs`). Every model trains on the ``train``
split of its set (the identities the generator put there), is validated on ``val`` after every epoch and
scored on ``test`` at the end (the training sets' own test split; ``hcgym evaluate expression`` scores fresh
people, :mod:`.protocol`).

Runs (:func:`plan_runs`), each keyed by everything that sets its result (:func:`run_key`) and kept in
``OUT/runs/<name>-<key>/`` (``model.pt`` when finished; ``train_state.pt`` to resume an interrupted
training; a PST-BLN's search result ``grown.pt`` once its growth is done):

* ``table``: for each protocol and landmark source, ST-GCN, AGCN and ST-BLN at the seed's widths
  {8, 16, 16, 32, 32, 64, 64} and PST-BLN grown by :func:`~.training.fit_pstbln` (block 5, both thresholds
  1e-4, width and depth capped by the settings, ``step_epochs`` per growth step) and fine-tuned;
* ``mcd``: the Monte Carlo dropout seed study: the network PST-BLN's search found on a protocol and source
  (its weights as the search left them), fine-tuned with each of :attr:`ExprStudySettings.mcd_seeds` as the
  table's PST-BLN is (seed 0 is that model), so the seeds differ in data order, augmentation and dropout
  masks. (Trained from scratch at the found widths for the same epochs, the AFEW-like networks stayed near
  chance, 22-24 %: the search's steps are most of a grown network's training.)
* ``stream``: the live sensor's model: the topology found on :attr:`ExprStudySettings.stream_from`, on
  Face Mesh windows of ``stream_window`` frames at ``stream_fps`` cut from the posed and the wild clips
  (:func:`stream_windows`) and labelled with the expression of the window's last frame.

``shard=(k, n)`` trains runs ``i`` with ``i % n == k``. PST-BLN runs come first; a run that needs another
shard's topology waits for it (up to ``wait`` seconds). When every run is done, :func:`train_study` writes
the shipped files: ``expression_models.pt`` (every table and seed-study model, weights packed by
:func:`~.storage.pack`: ST-BLN's graph matrices as int8 with a float32 scale per row, every other weight as
float16; the file xz-compressed; :func:`load_models` unpacks them to float32; the provenance records each
model's test-split accuracy as trained and as shipped) and ``expression_stream.pt`` (a
:func:`~.training.save_model` file with packed weights, which :func:`~.training.load_model` unpacks, and the
sensor's meta ``{"source", "fps", "window", "labels"}``), each with ``PROVENANCE_<name>.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import lzma
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.expression.storage import pack, unpack

#: The data set style each protocol trains and is evaluated on.
PROTOCOL_STYLE = {"ck": "posed", "afew": "wild"}
#: Models of the tables, in table order (``pstbln`` is grown).
TABLE_MODELS = ("stgcn", "agcn", "stbln", "pstbln")
#: Landmark sources the models may train on (``truth``: the projected ground truth, an upper bound).
STUDY_SOURCES = ("dlib", "mesh51", "truth")
#: File names of the shipped bundle and stream model.
BUNDLE = "expression_models.pt"
STREAM = "expression_stream.pt"
#: Landmark source of the stream model (the sensor's default source).
STREAM_SOURCE = "mesh51"


@dataclass(frozen=True)
class ExprStudySettings:
    """What the runs of :func:`train_study` share.

    Attributes:
        protocols, sources: the tables' protocols and landmark sources.
        afew_frames: frames taken at equal intervals from each wild clip (protocol ``afew``).
        epochs_ck, epochs_afew: epochs of every fixed-topology training (table models, the seed study, and
            the final fine-tuning of a grown PST-BLN) on each protocol.
        batch, lr: SGD batch and peak learning rate (cosine decay; momentum 0.9, weight decay 5e-4).
        block, eps, max_layers, max_width, step_epochs, step_epochs_afew: PST-BLN's search (block ``b``,
            ``eps_w = eps_d``, caps, epochs of each growth step on ``ck`` and on ``afew``: in two epochs the
            AFEW-like networks barely leave the chance-level loss, so every new layer looked useless).
        mcd_seeds, mcd_on: seeds of the Monte Carlo dropout study and the ``PROTOCOL-SOURCE`` pairs it runs on.
        stream_window, stream_fps, stream_per_clip, stream_epochs, stream_from: the stream model's window
            (frames), frame rate, windows cut per training clip, epochs, and the ``PROTOCOL-SOURCE`` whose
            found topology it uses.
        tiny: a seconds-long smoke configuration (few clips, one epoch).
    """

    protocols: tuple[str, ...] = ("ck", "afew")
    sources: tuple[str, ...] = ("dlib", "mesh51")
    afew_frames: int = 8
    epochs_ck: int = 16
    epochs_afew: int = 8
    batch: int = 32
    lr: float = 0.1
    block: int = 5
    eps: float = 1e-4
    max_layers: int = 5
    max_width: int = 10
    step_epochs: int = 2
    step_epochs_afew: int = 4
    mcd_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    mcd_on: tuple[str, ...] = ("ck-mesh51", "afew-mesh51")
    stream_window: int = 12
    stream_fps: float = 8.0
    stream_per_clip: int = 2
    stream_epochs: int = 6
    stream_from: str = "ck-mesh51"
    tiny: bool = False

    def check(self) -> ExprStudySettings:
        """Raise :class:`SpecError` naming the first invalid field (as its command-line option); return ``self``."""
        def opt(name: str) -> str:
            return "--" + name.replace("_", "-")

        for name in ("afew_frames", "epochs_ck", "epochs_afew", "batch", "block", "max_layers", "max_width",
                     "step_epochs", "step_epochs_afew", "stream_window", "stream_per_clip", "stream_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(opt(name), f"expected a positive integer, got {v!r}")
        for name in ("lr", "stream_fps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise SpecError(opt(name), f"expected a positive number, got {v!r}")
        if not isinstance(self.eps, (int, float)) or not self.eps >= 0:
            raise SpecError("--eps", f"expected a number >= 0, got {self.eps!r}")
        if self.max_width < self.block:
            raise SpecError("--max-width", f"must be at least the block ({self.block}), got {self.max_width}")
        _names(self.protocols, tuple(PROTOCOL_STYLE), "--protocols")
        _names(self.sources, STUDY_SOURCES, "--sources")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.mcd_seeds) \
                or len(set(self.mcd_seeds)) != len(self.mcd_seeds):
            raise SpecError("--mcd-seeds", f"expected distinct non-negative integers, got {self.mcd_seeds!r}")
        for pair in self.mcd_on:
            self.pair(pair, "--mcd-on")
        self.pair(self.stream_from, "--stream-from")
        if self.stream_from.split("-")[1] != STREAM_SOURCE:
            raise SpecError("--stream-from", f"the stream model reads {STREAM_SOURCE} landmarks; its topology must "
                                             f"come from a {STREAM_SOURCE} run, got {self.stream_from!r}")
        return self

    def pair(self, text: str, option: str) -> tuple[str, str]:
        """``PROTOCOL-SOURCE`` split and checked against the study's protocols and sources."""
        protocol, _, source = str(text).partition("-")
        if protocol not in self.protocols or source not in self.sources:
            raise SpecError(option, f"expected PROTOCOL-SOURCE with a protocol of {list(self.protocols)} and a "
                                    f"source of {list(self.sources)}, got {text!r}")
        return protocol, source

    def epochs(self, protocol: str) -> int:
        """Epochs of a fixed-topology training on ``protocol`` (``stream``: :attr:`stream_epochs`)."""
        if self.tiny:
            return 1
        return {"ck": self.epochs_ck, "afew": self.epochs_afew, "stream": self.stream_epochs}[protocol]

    def step_epochs_of(self, protocol: str) -> int:
        """Epochs of each PST-BLN growth step on ``protocol``."""
        return 1 if self.tiny else self.step_epochs_afew if protocol == "afew" else self.step_epochs


def _names(values: Sequence[str], allowed: Sequence[str], option: str) -> None:
    bad = [v for v in values if v not in allowed]
    if not values or bad or len(set(values)) != len(values):
        raise SpecError(option, f"expected distinct names of {', '.join(allowed)}, got {list(values)!r}")


# ----------------------------------------------------------------------------- model inputs
def protocol_inputs(data: Any, source: str, protocol: str, afew_frames: int,
                    which: Any = None) -> np.ndarray:
    """(N, T, 51, 2) float32 landmark pixels of an :class:`~hcgym.synthesis.expression_data.ExpressionData`
    for ``protocol``: ``ck`` frame 0 and the three apex frames; ``afew`` ``afew_frames`` frames at equal
    intervals over the clip (the whole clip when it is no longer)."""
    x = data.sequences(source, protocol, which)
    if protocol == "afew" and x.shape[1] > afew_frames:
        x = x[:, np.round(np.linspace(0, x.shape[1] - 1, afew_frames)).astype(np.int64)]
    return x


def resample_frames(frames: int, fps: float, target_fps: float) -> np.ndarray:
    """Indices of a clip's frames nearest the times ``j / target_fps`` (j = 0, 1, ...) within the clip."""
    count = int(np.floor((frames - 1) / fps * target_fps + 1e-9)) + 1
    return np.clip(np.round(np.arange(count) * fps / target_fps).astype(np.int64), 0, frames - 1)


def stream_windows(data: Any, window: int, fps: float, per_clip: int, seed: int, which: Any = None,
                   source: str = STREAM_SOURCE) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``window`` frames at ``fps`` cut from the clips ``which`` of ``data``, as the live sensor sees
    them: ``x`` (M, window, 51, 2) float32 pixels, ``y`` (M,) the expression of each window's last frame.

    Each clip is resampled to ``fps`` (:func:`resample_frames`); ``per_clip`` window ends are drawn without
    replacement from its frames after the first (from ``seed`` and the clip's position); a window reaching
    before the clip's start is padded at the front with its first frame (the sensor pads a young track so).
    """
    idx = data.select(which)
    seq = data.sequences(source, "afew", idx)
    labels = data.arrays["frame_label"][idx]
    keep = resample_frames(seq.shape[1], float(data.meta["clips"]["fps"]), fps)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x57E4]))
    xs, ys = [], []
    for n in range(len(idx)):
        ends = rng.choice(np.arange(1, len(keep)), size=min(per_clip, len(keep) - 1), replace=False)
        for e in np.sort(ends):
            frames = keep[np.clip(np.arange(e - window + 1, e + 1), 0, None)]
            xs.append(seq[n, frames])
            ys.append(labels[n, keep[e]])
    return np.asarray(xs, np.float32), np.asarray(ys, np.int64)


# ----------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Run:
    """One training: its role (``table``, ``mcd``, ``stream``), protocol (``ck``, ``afew`` or ``stream``),
    landmark source, model (``stgcn``, ``agcn``, ``stbln``, ``pstbln`` grown, ``pstbln_fixed`` a found
    topology trained from scratch, ``pstbln_tuned`` a searched network fine-tuned with the run's seed) and
    seed; ``topology``: the ``PROTOCOL-SOURCE`` whose PST-BLN run it builds on."""

    role: str
    protocol: str
    source: str
    model: str
    seed: int = 0
    topology: str | None = None

    @property
    def name(self) -> str:
        return f"{self.role}-{self.protocol}-{self.source}-{self.model}-s{self.seed}"


def plan_runs(settings: ExprStudySettings) -> list[Run]:
    """Every run of the study, in training order: the PST-BLN searches, the stream model, the table's other models
    on Face Mesh landmarks, the seed study on its first pair, the other sources' models, the rest of the seed
    study (so that an interrupted study has the sensor's model and the main comparisons first)."""
    s = settings
    grown = [Run("table", p, src, "pstbln") for p in s.protocols for src in s.sources]
    fixed = [Run("table", p, src, m) for src in s.sources for p in s.protocols for m in ("stbln", "stgcn", "agcn")]
    first = [r for r in fixed if r.source == STREAM_SOURCE]
    stream = [Run("stream", "stream", STREAM_SOURCE, "pstbln_fixed", 0, s.stream_from)]
    mcd = [[Run("mcd", *s.pair(pair, "--mcd-on"), "pstbln_tuned", seed, pair) for seed in s.mcd_seeds]
           for pair in s.mcd_on]
    rest = [r for r in fixed if r.source != STREAM_SOURCE]
    return grown + stream + first + (mcd[0] if mcd else []) + rest + [r for m in mcd[1:] for r in m]


def data_fingerprint(data: Any, source: str) -> str:
    """Sixteen hex digits of what a run reads from a cache: its metadata (the generator's dataset key, the
    detectors' settings) and the landmarks of ``source`` (for ``mesh51`` the :data:`MESH51` vertices), their
    found flags, labels, splits and apex frames. Computed once per cache and source."""
    memo = data.__dict__.setdefault("_fingerprints", {})
    if source not in memo:
        h = hashlib.sha256(json.dumps(data.meta, sort_keys=True, default=str).encode())
        points, found = data._points(source)
        for arr in (points, found, *(data.arrays[k] for k in ("label", "label2", "frame_label", "split", "apex"))):
            h.update(np.ascontiguousarray(arr).tobytes())
        memo[source] = h.hexdigest()[:16]
    return memo[source]


def run_key(run: Run, settings: ExprStudySettings, data: dict[str, Any]) -> str:
    """Eight hex digits naming everything that sets a run's result: the run, the settings its role reads, the
    data it reads (:func:`data_fingerprint` of each cache by style) and the key of the run whose topology it
    takes."""
    s = asdict(settings)
    common: dict[str, Any] = {k: s[k] for k in ("batch", "lr", "tiny")}
    if run.model == "pstbln":
        common.update({k: s[k] for k in ("block", "eps", "max_layers", "max_width")})
        common["step_epochs"] = settings.step_epochs_of(run.protocol)
    if run.topology is not None:
        common["topology"] = run_key(_topology_run(run, settings), settings, data)
    if run.role == "stream":
        common.update({k: s[k] for k in ("stream_window", "stream_fps", "stream_per_clip", "stream_epochs")})
    else:
        common.update({"epochs": settings.epochs(run.protocol), "afew_frames": s["afew_frames"]})
    prints = {style: data_fingerprint(data[style], run.source) for style in needs(run)}
    blob = json.dumps({"run": asdict(run), "settings": common, "data": prints}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def _train_settings(settings: ExprStudySettings, epochs: int, seed: int) -> Any:
    from hcgym.perception.expression.training import TrainSettings

    return TrainSettings(epochs=epochs, lr=settings.lr, batch=settings.batch, seed=seed)


def _growth(settings: ExprStudySettings, seed: int) -> Any:
    from hcgym.perception.expression.progressive import GrowthSettings

    return GrowthSettings(block=settings.block, eps_width=settings.eps, eps_depth=settings.eps,
                          max_layers=2 if settings.tiny else settings.max_layers,
                          max_width=settings.block if settings.tiny else settings.max_width, seed=seed)


@dataclass
class _Split:
    x: np.ndarray
    y: np.ndarray


def _splits(data: dict[str, Any], run: Run, settings: ExprStudySettings) -> dict[str, _Split]:
    """Train / val / test inputs of a run (the stream's windows come from both sets)."""
    out: dict[str, _Split] = {}
    for split in ("train", "val", "test"):
        if run.role == "stream":
            parts = [stream_windows(d, settings.stream_window, settings.stream_fps, settings.stream_per_clip,
                                    seed=k, which=split) for k, d in enumerate((data["posed"], data["wild"]))]
            x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        else:
            d = data[PROTOCOL_STYLE[run.protocol]]
            x, y = protocol_inputs(d, run.source, run.protocol, settings.afew_frames, split), d.y(split)
        if settings.tiny:
            x, y = x[:16 if split == "train" else 8], y[:16 if split == "train" else 8]
        out[split] = _Split(x, y)
    if not len(out["train"].y):
        raise SpecError("--posed" if run.protocol == "ck" else "--wild", f"{run.name}: no training clips")
    return out


def _run_dir(out: Path, run: Run, settings: ExprStudySettings, data: dict[str, Any]) -> Path:
    return out / "runs" / f"{run.name}-{run_key(run, settings, data)}"


def _topology_run(run: Run, settings: ExprStudySettings) -> Run:
    protocol, source = settings.pair(run.topology or "", "--stream-from")
    return Run("table", protocol, source, "pstbln")


def _train_run(run: Run, run_dir: Path, data: dict[str, Any], settings: ExprStudySettings,
               dep_dir: Path | None, log: Callable[[str], None]) -> None:
    """Train one run into ``run_dir/model.pt`` (resuming ``train_state.pt`` / ``grown.pt``); ``dep_dir``: the
    finished PST-BLN run whose topology (``pstbln_fixed``) or searched network (``pstbln_tuned``) it takes."""
    from hcgym.perception.expression.graph import DLIB51, graph_from_data
    from hcgym.perception.expression.models import SEED_WIDTHS, ExprModelConfig, build_model, count_params
    from hcgym.perception.expression.training import evaluate, fit_pstbln, load_model, save_model, train

    t0 = time.time()
    sp = _splits(data, run, settings)
    frames = sp["train"].x.shape[1]
    graph = graph_from_data(sp["train"].x, DLIB51)
    epochs = settings.epochs(run.protocol)
    final = _train_settings(settings, epochs, run.seed)
    meta: dict[str, Any] = {"run": asdict(run), "train": {k: v for k, v in asdict(final).items() if k != "augment"},
                            "augment": asdict(final.augment) if final.augment else None}
    if run.model == "pstbln":
        grown_path = run_dir / "grown.pt"
        if grown_path.is_file():
            model, grown_meta = load_model(grown_path, "--out")
            growth = grown_meta["growth"]
        else:
            base = ExprModelConfig(graph=graph, frames=frames)
            step = _train_settings(settings, settings.step_epochs_of(run.protocol), run.seed)
            fit = fit_pstbln(sp["train"].x, sp["train"].y, base, _growth(settings, run.seed), step, None, log=log)
            model = fit.model
            growth = {"events": [asdict(e) for e in fit.growth.events], "widths": list(fit.growth.widths),
                      "seconds": round(time.time() - t0, 1), "settings": asdict(_growth(settings, run.seed)),
                      "step": {k: v for k, v in asdict(step).items() if k != "augment"}}
            run_dir.mkdir(parents=True, exist_ok=True)
            save_model(model, grown_path, {"growth": growth})
        meta["growth"] = growth
    elif run.model == "pstbln_tuned":
        model, grown_meta = load_model(dep_dir / "grown.pt", "--out")
        meta["growth"] = grown_meta["growth"]
        if run.seed == 0:  # the searched network's own fine-tuning (seed 0): the table's model
            table, table_meta = load_model(dep_dir / "model.pt", "--out")
            save_model(table, run_dir / "model.pt", {**table_meta, "run": asdict(run)})
            log(f"[expression] {run.name}: the table's PST-BLN (its fine-tuning used seed 0)")
            return
    else:
        widths = None if dep_dir is None else tuple(load_model(dep_dir / "model.pt", "--out")[0].cfg.widths)
        cfg = ExprModelConfig(graph=graph, frames=frames, model="stbln" if run.model == "pstbln_fixed" else run.model,
                              widths=tuple(widths) if widths is not None else SEED_WIDTHS,
                              residual="conv" if widths is not None else "auto")
        if settings.tiny and widths is None:
            cfg = dataclasses.replace(cfg, widths=(8, 8))
        model = build_model(cfg, seed=run.seed)
    t1 = time.time()
    result = train(model, sp["train"].x, sp["train"].y, sp["val"].x, sp["val"].y, final, log,
                   checkpoint=run_dir / "train_state.pt")
    test = evaluate(result.model, sp["test"].x, sp["test"].y)
    meta.update(history=result.history, params=count_params(result.model), test=test,
                sizes={k: len(v.y) for k, v in sp.items()}, frames=frames,
                seconds={"total": round(time.time() - t0, 1), "final_training": round(time.time() - t1, 1),
                         "per_epoch": round(float(np.mean([h["seconds"] for h in result.history])), 2)})
    save_model(result.model, run_dir / "model.pt", meta)
    (run_dir / "train_state.pt").unlink(missing_ok=True)
    log(f"[expression] {run.name}: test acc {100 * test['acc']:.1f} %, widths {list(result.model.cfg.widths)}, "
        f"{count_params(result.model)['params_no_graph']:,} parameters without graph matrices, "
        f"{time.time() - t0:.0f} s")


def load_data(posed: str | Path | None, wild: str | Path | None) -> dict[str, Any]:
    """The posed (protocol ``ck``) and wild (protocol ``afew``) caches given, by style, checked: a
    :class:`SpecError` on ``--posed`` / ``--wild`` if one is not found, of the other style, or labelled with
    other expressions than the other, or if neither is given."""
    from hcgym.synthesis.expression_data import ExpressionData

    out: dict[str, Any] = {}
    for style, path in (("posed", posed), ("wild", wild)):
        if path is None:
            continue
        if not Path(path).is_file():
            raise SpecError(f"--{style}", f"not found: {path} (a .npz from expression_data.prepare)")
        d = ExpressionData.load(path)
        if d.style != style:
            raise SpecError(f"--{style}", f"{path} holds {d.style} clips, expected {style} ones")
        out[style] = d
    if not out:
        raise SpecError("--posed", "give the posed and/or the wild expression cache")
    if len(out) == 2 and out["posed"].label_names != out["wild"].label_names:
        raise SpecError("--wild", f"labels {out['wild'].label_names} differ from the posed set's "
                                  f"{out['posed'].label_names}")
    return out


def needs(run: Run) -> tuple[str, ...]:
    """The data set styles a run trains on."""
    return ("posed", "wild") if run.role == "stream" else (PROTOCOL_STYLE[run.protocol],)


def train_study(posed: str | Path | None, wild: str | Path | None, out: str | Path,
                settings: ExprStudySettings = ExprStudySettings(), shard: tuple[int, int] = (0, 1),
                threads: int = 1, wait: float = 3600.0, log: Callable[[str], None] = print,
                command: str | None = None) -> list[Path] | None:
    """Train this process's share of the runs; once every run is done write the shipped files into ``out``.

    Runs on a set not given (``posed`` or ``wild`` None) are left for a later call. Returns the written
    files, or ``None`` while runs are unfinished (another shard's, or on a set not given).
    """
    import torch

    settings.check()
    k, n = shard
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError("--out", f"{out} is not a folder")
    data = load_data(posed, wild)
    torch.set_num_threads(int(threads))
    runs = plan_runs(settings)
    todo = [(i, r) for i, r in enumerate(runs) if i % n == k]
    deadline = None
    while todo:
        waiting = []
        for i, run in todo:
            if not set(needs(run)) <= set(data):
                continue
            run_dir = _run_dir(out, run, settings, data)
            if (run_dir / "model.pt").is_file():
                continue
            dep = None
            if run.topology is not None:
                dep = _run_dir(out, _topology_run(run, settings), settings, data)
                if not (dep / "model.pt").is_file():
                    waiting.append((i, run))
                    continue
            log(f"[expression] run {i + 1}/{len(runs)}: {run.name} -> {run_dir}")
            _train_run(run, run_dir, data, settings, dep, log)
        if not waiting:
            break
        deadline = deadline or time.time() + wait
        if time.time() > deadline:
            log(f"[expression] {len(waiting)} run(s) still wait for a PST-BLN topology of another shard; rerun")
            return None
        log(f"[expression] {len(waiting)} run(s) wait for a PST-BLN topology of another shard")
        time.sleep(20)
        todo = waiting
    if len(data) < 2:
        log(f"[expression] runs on the {'wild' if 'posed' in data else 'posed'} set wait for that cache")
        return None
    finished = [(r, _run_dir(out, r, settings, data) / "model.pt") for r in runs]
    if not all(p.is_file() for _, p in finished):
        return None
    return write_shipped(finished, out, data, settings, command)


# ----------------------------------------------------------------------------- the shipped files
def _packing_check(ckpt: dict[str, Any], packed: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Test-split accuracy (%) of a run's model as trained and as shipped, and the largest difference of a class
    probability between them."""
    import torch

    from hcgym.perception.expression.models import ExpressionNet, ExprModelConfig
    from hcgym.perception.expression.training import predict_logits

    probs = []
    for state in (ckpt["state_dict"], unpack(packed)):
        net = ExpressionNet(ExprModelConfig.from_dict(ckpt["config"]))
        net.load_state_dict(state)
        probs.append(torch.softmax(torch.from_numpy(predict_logits(net, x)), 1).numpy())
    return {"acc_trained": round(100 * float((probs[0].argmax(1) == y).mean()), 2),
            "acc_shipped": round(100 * float((probs[1].argmax(1) == y).mean()), 2),
            "max_abs_prob_diff": float(np.abs(probs[0] - probs[1]).max())}


def write_shipped(finished: Sequence[tuple[Run, Path]], out: Path, data: dict[str, Any],
                  settings: ExprStudySettings, command: str | None = None) -> list[Path]:
    """``expression_models.pt`` (table and seed-study runs, weights packed, each checked on its test split
    against the model as trained), ``expression_stream.pt`` (packed weights, the sensor's meta) and their
    provenance files into ``out``; returns the paths."""
    import torch

    from hcgym.paths import atomic_write_bytes
    from hcgym.perception.detection.sensor import load_tensors
    data_meta = {style: d.meta for style, d in data.items()}
    labels = list(data["posed"].label_names)
    common = {"command": command, "data_metadata": data_meta, "settings": asdict(settings)}
    entries, runs = [], []
    written: list[Path] = []
    for run, path in finished:
        ckpt = load_tensors(path, "--out", "expression run")
        record = {**asdict(run), **{k: ckpt[k] for k in ("params", "test", "history", "sizes", "frames", "seconds")},
                  "widths": ckpt["config"]["widths"], "growth": ckpt.get("growth")}
        if run.role != "stream":
            packed = pack(ckpt["state_dict"])
            d = data[PROTOCOL_STYLE[run.protocol]]
            x = protocol_inputs(d, run.source, run.protocol, settings.afew_frames, "test")
            record["packing"] = _packing_check(ckpt, packed, x, d.y("test"))
            entries.append({"config": ckpt["config"], "state_dict": packed, **asdict(run),
                            "growth": ckpt.get("growth"), "test": ckpt["test"]})
            runs.append(record)
            continue
        stream = {"source": STREAM_SOURCE, "fps": settings.stream_fps, "window": settings.stream_window,
                  "labels": list(labels)}
        buf = io.BytesIO()  # save_model's layout with packed weights (training.load_model unpacks them)
        torch.save({"kind": ckpt["kind"], "config": ckpt["config"], "state_dict": pack(ckpt["state_dict"]), **stream},
                   buf)
        atomic_write_bytes(out / STREAM, buf.getvalue())
        written.append(out / STREAM)
        prov = out / f"PROVENANCE_{Path(STREAM).stem}.json"
        atomic_write_bytes(prov, json.dumps({**common, "stream": stream, **record}, indent=1).encode())
        written.append(prov)
    buf = io.BytesIO()
    torch.save({"kind": "expression-models", "labels": list(labels), "settings": asdict(settings),
                "data_metadata": data_meta, "runs": entries}, buf)
    atomic_write_bytes(out / BUNDLE, lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    prov = out / f"PROVENANCE_{Path(BUNDLE).stem}.json"
    atomic_write_bytes(prov, json.dumps({**common, "runs": runs}, indent=1).encode())
    return [out / BUNDLE, prov, *written]


def load_models(path: str | Path, field: str = "models") -> dict[str, Any]:
    """The bundle of :func:`write_shipped` with every run's model built (weights unpacked to float32, eval mode):
    ``{"labels", "settings", "data_metadata", "runs": [{"role", "protocol", "source", "model", "seed", "topology",
    "growth", "test", "net"}, ...]}``."""
    from hcgym.perception.detection.sensor import load_tensors
    from hcgym.perception.expression.models import ExpressionNet, ExprModelConfig

    path = Path(path)
    if not path.is_file():
        raise SpecError(field, f"expression models not found: {path} (train them with `hcgym train expression`)")
    try:
        raw = lzma.decompress(path.read_bytes())
    except lzma.LZMAError:
        raise SpecError(field, f"{path} is not an expression model bundle (not xz-compressed)") from None
    with tempfile.TemporaryDirectory() as tmp:  # load_tensors reads a file: weights only, never pickled objects
        plain = Path(tmp) / path.name
        plain.write_bytes(raw)
        b = load_tensors(plain, field, "expression model bundle", "Write one with `hcgym train expression`.")
    if not isinstance(b, dict) or b.get("kind") != "expression-models":
        raise SpecError(field, f"{path} is not an expression model bundle")
    for r in b["runs"]:
        net = ExpressionNet(ExprModelConfig.from_dict(r.pop("config")))
        net.load_state_dict(unpack(r.pop("state_dict")))
        r["net"] = net.eval()
    return b


__all__ = ["BUNDLE", "PROTOCOL_STYLE", "STREAM", "STREAM_SOURCE", "TABLE_MODELS", "ExprStudySettings", "Run",
           "data_fingerprint", "load_data", "load_models", "needs", "pack", "plan_runs", "protocol_inputs",
           "resample_frames", "run_key", "stream_windows", "train_study", "unpack", "write_shipped"]
