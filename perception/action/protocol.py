"""``hcgym evaluate action``: the shipped action models, clip and continual, on fresh clips of unseen people.

Test data is drawn fresh from the seed: ``people`` avatars of the clip generator's pool for dataset seed
``EVAL_DATASET_SEED + seed`` (checked to share no identity with any shipped model's training set), each doing
the 24 body actions, rendered, cropped and run through MediaPipe exactly as the training caches were
(:func:`hcgym.synthesis.action_data.prepare`). Then, for every shipped model:

* ``clip_acc``: the clip model (X3D: the centre 16-frame window; GCNs: all 40 frames) on its training
  skeleton source, plus ``clip_acc_truth`` / ``clip_acc_mediapipe`` for the GCNs;
* ``continual_acc``: its continual version stepped frame by frame through every clip from a cold start, scored
  at the frame that completes the clip model's window (the steady state); ``max_abs_diff`` of its logits
  against the clip model's;
* ``flops_per_pred`` (MACs by ptflops, fvcore beside), ``preds_per_s`` (batch 1, one thread, median of timed
  steps; ``clip_preds_per_s`` for the clip model), ``params``, ``state_floats``, ``delay``;
* ``transient``: the accuracy at every frame after a cold start (``None`` while the model is silent).

Plus the pool-size curve of CoX3D (accuracy at the clip's last frame for every pool size; computed through the
clip trunk, which the continual model equals), and the two seed studies of §6.1 (:mod:`.study`): ``ignore``
and ``fusion`` (mean +- std over the training seeds of each variant).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError

#: Dataset seed of the test clips is this plus the evaluation seed (the shipped models trained on seed 7).
EVAL_DATASET_SEED = 5_000_000
#: The shipped models scored, in table order.
MODELS = ("x3d", "stgcn", "stgcn_star", "agcn", "stgcn_mediapipe")
#: The seed studies scored (``action_<study>_study.pt`` among the shipped models).
STUDIES = ("ignore", "fusion")
#: The clip generator's settings of the training caches (docs/action.md "Data").
CLIP_SIZE = (160, 120)
CLIP_SECONDS = 3.2
CLIP_FPS = 12.5
ACTIONS = 24

#: Rows of the seed's Tables 15/16 (Kinetics-400, CPU) and 18 (NTU-60 X-Sub, CPU) shown beside ours.
SEED_X3D = [("X3D-S (13x160^2)", "64.71", "3.79", "2.06 G", "2.23"), ("CoX3D-S_64", "67.33", "3.79", "0.21 G", "13.19"),
            ("X3D-M (16x224^2)", "67.24", "3.79", "4.97 G", "0.83"), ("CoX3D-M_64", "71.03", "3.79", "0.40 G", "7.51")]
SEED_GCN = {"stgcn": ("ST-GCN", "300", "86.0", "3.14", "16.73 G", "2.3"),
            "stgcn_star": ("CoST-GCN*", "1", "86.5", "3.14", "0.16 G", "45.8"),
            "agcn": ("AGCN", "300", "86.4", "3.47", "18.69 G", "2.1"),
            "stgcn_transferred": ("CoST-GCN* (no fine-tuning)", "1", "80.6 (CoST-GCN)", "3.14", "0.27 G", "24.1")}
SEED_IGNORE = {"se": "32.80", "se-ign1": "31.40", "se-ign2": "32.78", "se-ign3": "30.95", "cbam": "31.46",
               "cbam-ign1": "30.58", "cbam-ign2": "31.42", "cbam-ign3": "30.88", "none": "34.06"}
SEED_FUSION = {"mmtm": "89.98", "mmtm-ign1": "90.52", "mmtm-ign2": "90.21", "mmtm-ign3": "90.36"}


@dataclass(frozen=True)
class ActionEvalConfig:
    """One ``hcgym evaluate action`` run.

    Attributes:
        seed: picks the test avatars (dataset seed ``EVAL_DATASET_SEED + seed``) and everything random.
        people: test avatars; each does every action once (``people * 24`` clips).
        workers: processes generating and preparing the clips.
        models: shipped models to score (:data:`MODELS`).
        studies: seed studies to score (:data:`STUDIES`).
        pool_sizes: CoX3D pool sizes of the pool-size curve (each at most the clip's frames minus the
            receptive field plus one).
        timing_steps: timed rounds (a clip, then a prediction's steps) per model for ``preds_per_s``.
        data_dir: where the generated clips and their cache go (default: ``$HCGYM_CACHE/action-eval``);
            a second run with the same seed reuses them.
    """

    seed: int = 0
    people: int = 5
    workers: int = 2
    models: tuple[str, ...] = MODELS
    studies: tuple[str, ...] = STUDIES
    pool_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 28)
    timing_steps: int = 30
    data_dir: Path | None = None

    def check(self) -> ActionEvalConfig:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecError("seed", f"expected a non-negative integer, got {self.seed!r}")
        for name in ("people", "workers", "timing_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(name, f"expected a positive integer, got {v!r}")
        for name, allowed in (("models", MODELS), ("studies", STUDIES)):
            bad = [m for m in getattr(self, name) if m not in allowed]
            if bad:
                raise SpecError(name, f"unknown {name[:-1]} {bad[0]!r} (allowed: {', '.join(allowed)})")
        if not self.pool_sizes or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in self.pool_sizes):
            raise SpecError("pool_sizes", f"expected positive integers, got {self.pool_sizes!r}")
        return self


def quick_config(seed: int = 0) -> ActionEvalConfig:
    """A small run: one avatar (24 clips), few timed steps, two pool sizes."""
    return ActionEvalConfig(seed=seed, people=1, pool_sizes=(4, 16), timing_steps=5)


# ----------------------------------------------------------------------------- data
def training_identities() -> set[str]:
    """Identity keys of every person in the training sets of the shipped models (from their checkpoints'
    data metadata: the clip generator's pool for that dataset seed)."""
    import json

    from hcgym.perception.action.models import __file__ as models_init
    from hcgym.synthesis.dataset.clips import identity_spec

    keys: set[str] = set()
    folder = Path(models_init).parent
    for prov in sorted(folder.glob("PROVENANCE_*.json")):
        meta = json.loads(prov.read_text()).get("data_metadata") or {}
        ds = meta.get("dataset") or {}
        if ds.get("mode") == "clips":
            keys.update(identity_spec(int(ds["seed"]), j).identity_key() for j in range(int(ds["clips"]["identities"])))
    return keys


def test_data(config: ActionEvalConfig, progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """The fresh test clips of ``config.seed`` as an :class:`~hcgym.synthesis.action_data.ActionData` (generated
    and prepared on the first call, reused after) and a summary (dataset seed, identities, clips, seconds)."""
    from hcgym.paths import cache_dir
    from hcgym.synthesis.action_data import ActionData, prepare
    from hcgym.synthesis.dataset import GenerateConfig, generate
    from hcgym.synthesis.dataset.clips import identity_spec
    from hcgym.synthesis.dataset.config import ClipSettings

    t0 = time.time()
    dataset_seed = EVAL_DATASET_SEED + config.seed
    people = [identity_spec(dataset_seed, j).identity_key() for j in range(config.people)]
    seen = training_identities() & set(people)
    if seen:  # a hash collision of avatar seeds; never expected
        raise SpecError("seed", f"test identities {sorted(seen)} were in a training set; choose another seed")
    root = Path(config.data_dir) if config.data_dir is not None else cache_dir() / "action-eval"
    folder = root / f"seed{config.seed}-people{config.people}"
    npz = folder / "actions_112.npz"
    if not npz.is_file():
        generate(GenerateConfig(out=folder / "clips", n=ACTIONS * config.people, seed=dataset_seed, mode="clips",
                                size=CLIP_SIZE, workers=config.workers,
                                clips=ClipSettings(labels="actions", seconds=CLIP_SECONDS, fps=CLIP_FPS,
                                                   identities=config.people, splits=(0.0, 0.0, 1.0))),
                 progress=progress)
        prepare(folder / "clips", npz, size=112, workers=config.workers, progress=progress)
    data = ActionData.load(npz)
    return data, {"dataset_seed": dataset_seed, "identities": people, "clips": len(data), "cache": str(npz),
                  "seconds": round(time.time() - t0, 1)}


# ----------------------------------------------------------------------------- scoring
def _labels_map(model_labels: list[str], data_labels: tuple[str, ...]) -> np.ndarray:
    """Index of every data label among the model's labels (the generator's action set must match)."""
    missing = [n for n in data_labels if n not in model_labels]
    if missing:
        raise SpecError("models", f"the test actions {missing} are not among the model's classes")
    return np.array([model_labels.index(n) for n in data_labels])


def _inputs(kind: str, cfg: dict[str, Any], data: Any, source: str) -> tuple[Any, int, int]:
    """The clip model's input for every test clip, the stream the continual model steps through, and the
    frame (index into the stream) whose output equals the clip model's."""
    import torch

    if kind == "x3d":
        frames, total = int(cfg["frames"]), data.frames
        start = (total - frames) // 2
        video = torch.from_numpy(data.x3d())  # (N, 3, T, S, S), the whole clip
        return video[:, :, start:start + frames], video, start + frames - 1
    skel = torch.from_numpy(data.gcn(source=source))  # (N, 3, T, 25, 1)
    return skel, skel, skel.shape[2] - 1


def _step_all(co_model: Any, stream: Any, chunk: int = 64) -> list[Any]:
    """Per-frame outputs of a continual model stepped through ``stream`` (N, C, T, ...) from a cold start, in
    chunks of clips: a list over T of (N, classes) tensors or ``None``."""
    import torch

    outs: list[list[Any]] = [[] for _ in range(stream.shape[2])]
    with torch.no_grad():
        for k in range(0, stream.shape[0], chunk):
            co_model.clean_state()
            part = stream[k:k + chunk]
            for t in range(part.shape[2]):
                y = co_model.forward_step(part[:, :, t])
                outs[t].append(None if y is None or not isinstance(y, torch.Tensor) else y)
    co_model.clean_state()
    return [None if any(o is None for o in frame) else torch.cat(frame) for frame in outs]


def rates(model: Any, clip: Any, co_model: Any, stream: Any, rounds: int, fpp: int) -> tuple[float, float]:
    """Predictions per second of the clip model (one ``clip`` per prediction) and of the continual model (``fpp``
    steps per prediction through the frames of ``stream[:1]``, after its delay), on one thread, batch 1, timed
    in alternation by :func:`.cost.throughput` (medians over ``rounds``)."""
    import torch

    from hcgym.perception.action.cost import throughput

    frames = [(stream[:1, :, t],) for t in range(stream.shape[2])]
    co_model.clean_state()
    try:
        with torch.no_grad():
            for t in range(int(co_model.delay)):  # past the delay: every timed step does the full work
                co_model.forward_step(frames[t % len(frames)][0])
        timed = throughput({"clip": lambda: model(clip), "step": co_model.forward_step}, {"step": frames},
                           repeats=rounds, calls={"step": fpp})
    finally:
        co_model.clean_state()
    return timed["clip"]["per_s"], timed["step"]["per_s"] / fpp


def _continual(kind: str, model: Any, frames: int, pool_size: int | None = None) -> Any:
    if kind == "x3d":
        from hcgym.perception.action.x3d import to_continual

        return to_continual(model, pool_size)
    import logging

    from hcgym.perception.action.gcn import to_continual

    log = logging.getLogger("continual.conv")  # its per-conversion note on strides: the table says frames per pred
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return to_continual(model, frames)
    finally:
        log.setLevel(level)


def score_model(name: str, data: Any, config: ActionEvalConfig) -> dict[str, Any]:
    """Every number of one shipped model on the test clips (see the module docstring)."""
    import torch

    from hcgym.perception.action.cost import flops_per_prediction, state_memory
    from hcgym.perception.action.gcn import star_variant
    from hcgym.perception.action.sensors import MODELS as SHIPPED
    from hcgym.perception.action.training import load_model

    model, meta = load_model(SHIPPED / f"action_{name}.pt", "models")
    kind = meta["kind"]
    source = meta.get("skeleton", "truth")
    lab = _labels_map(list(meta["labels"]), data.label_names)
    y = torch.from_numpy(lab[data.y()])
    clip_in, stream, at = _inputs(kind, meta["config"], data, source)
    out: dict[str, Any] = {"kind": kind, "trained_on": "rgb" if kind == "x3d" else f"{source} skeletons"}
    with torch.no_grad():
        clip_logits = torch.cat([model(clip_in[k:k + 32]) for k in range(0, len(clip_in), 32)])
    out["clip_acc"] = _acc(clip_logits, y)
    if kind != "x3d":
        for src in ("truth", "mediapipe"):
            x = torch.from_numpy(data.gcn(source=src))
            with torch.no_grad():
                out[f"clip_acc_{src}"] = _acc(torch.cat([model(x[k:k + 32]) for k in range(0, len(x), 32)]), y)
    co_model = _continual(kind, model, data.frames)
    per_frame = _step_all(co_model, stream)
    if kind != "x3d":  # a strided GCN predicts every `stride` frames: its last prediction is the clip model's
        at = max((t for t, o in enumerate(per_frame) if o is not None), default=at)
    steady = per_frame[at]
    out["continual_acc"] = _acc(steady, y) if steady is not None else None
    out["max_abs_diff"] = float((steady - clip_logits).abs().max()) if steady is not None else None
    out["transient"] = [None if o is None else _acc(o, y) for o in per_frame]
    fpp = int(co_model.stride[0])
    one = clip_in[:1]
    cost = flops_per_prediction(model, co_model, one)
    out["flops_per_pred"] = int(round(cost["step"]["ptflops"]))
    out["flops_per_pred_fvcore"] = int(round(cost["step"]["fvcore"]))
    out["clip_flops"] = int(round(cost["clip"]["ptflops"]))
    out["flops_ratio"] = round(float(cost["ratio"]["ptflops"]), 2)
    out["frames_per_pred"] = fpp
    clip_rate, step_rate = rates(model, one, co_model, stream, config.timing_steps, fpp)
    out["preds_per_s"], out["clip_preds_per_s"] = round(step_rate, 2), round(clip_rate, 2)
    out["params"] = int(sum(p.numel() for p in model.parameters()))
    out["state_floats"] = state_memory(co_model, stream[:1, :, 0])["floats"]
    out["delay"] = int(co_model.delay)
    if name == "stgcn":  # the "*" variant of the clip model, transferred without fine-tuning
        star = star_variant(model).eval()
        co_star = _continual(kind, star, data.frames)
        last = _step_all(co_star, stream)[-1]
        out["transferred_star_continual_acc"] = _acc(last, y) if last is not None else None
    if kind == "x3d":
        out["pool_size"] = int(model.config.pool_size)
        out["pool_curve"] = pool_curve(model, stream, y, config.pool_sizes)
    return out


def _acc(logits: Any, y: Any) -> float:
    return round(100.0 * float((logits.argmax(1) == y).float().mean()), 2)


def pool_logits(model: Any, video: Any, pool_sizes: tuple[int, ...], chunk: int = 16) -> dict[int, Any]:
    """Logits of CoX3D with each pool size at the last frame of ``video`` (N, 3, T, S, S): the clip trunk over
    the whole clip once, then the head on the mean of its last ``p`` positions (what the continual model with
    pool ``p``, stepped through the clip, outputs there)."""
    import torch

    cfg = model.config
    if cfg.temporal_padding:
        raise SpecError("model", "the pool-size curve needs a model without temporal padding")
    positions = video.shape[2] - cfg.trunk_receptive_field + 1
    too_big = [p for p in pool_sizes if p > positions]
    if too_big:
        raise SpecError("pool_sizes", f"pool {too_big[0]} needs {cfg.clip_frames(too_big[0])} frames; the test clips "
                                      f"have {video.shape[2]} (at most {positions})")
    head = model.head
    per = []
    with torch.no_grad():
        for k in range(0, len(video), chunk):
            f = head.act5(head.bn5(head.conv5(model.features(video[k:k + chunk]))))  # (n, C, positions, h, w)
            per.append(f.mean((3, 4)))
        feats = torch.cat(per)  # (N, C, positions)
        return {p: head.fc2(head.act_fc(head.fc1(feats[:, :, -p:].mean(2)[:, :, None, None, None]))).flatten(1)
                for p in pool_sizes}


def pool_curve(model: Any, video: Any, y: Any, pool_sizes: tuple[int, ...]) -> dict[str, Any]:
    """CoX3D accuracy at the clip's last frame for each pool size (:func:`pool_logits`), with the receptive
    field each pool gives and the pool the model was trained with."""
    cfg = model.config
    logits = pool_logits(model, video, pool_sizes)
    return {"accuracy": {str(p): _acc(v, y) for p, v in logits.items()},
            "receptive_field": {str(p): cfg.clip_frames(p) for p in pool_sizes}, "trained_pool": int(cfg.pool_size)}


def score_study(study: str, data: Any) -> dict[str, Any]:
    """Test accuracy of every run of a shipped study bundle, summarised per variant (mean, std, per seed)."""
    import torch

    from hcgym.perception.action.batches import accuracy, downsample
    from hcgym.perception.action.sensors import MODELS as SHIPPED
    from hcgym.perception.action.study import StudySettings, load_bundle, study_batch, summarise

    bundle = load_bundle(SHIPPED / f"action_{study}_study.pt")
    runs = bundle["runs"]
    settings = StudySettings(**runs[0]["settings"])
    lab = _labels_map(list(runs[0]["labels"]), data.label_names)
    arrays = dict(data.arrays)
    arrays["label"] = lab[data.arrays["label"]]
    view = type(data)(arrays)
    rgb = downsample(arrays["rgb"], settings.size)
    idx = np.arange(len(view))
    rows = []
    torch.manual_seed(0)
    for r in runs:
        batch = study_batch(r["kind"], view, settings, rgb)
        rows.append({"variant": r["variant"], "seed": r["seed"],
                     "acc": round(accuracy(r["model"], lambda j, b=batch: b(j, None), idx), 2)})
    return {"settings": asdict(settings), "summary": summarise(rows),
            "training_test_split": summarise([{"variant": r["variant"], "seed": r["seed"], "acc": r["test_acc"]}
                                              for r in runs])}


# ----------------------------------------------------------------------------- the run
def run(config: ActionEvalConfig = ActionEvalConfig(), progress: bool = True) -> dict[str, Any]:
    """Score everything; returns the ``results.json`` dict."""
    import torch

    config.check()
    torch.manual_seed(config.seed)
    t0 = time.time()
    data, summary = test_data(config, progress)
    seconds: dict[str, float] = {"data": summary.pop("seconds")}
    results: dict[str, Any] = {"config": {**asdict(config), "data_dir": None if config.data_dir is None
                                          else str(config.data_dir)},
                               "data": summary, "models": {}}
    for name in config.models:
        t = time.time()
        if progress:
            print(f"[action] scoring {name}", flush=True)
        results["models"][name] = score_model(name, data, config)
        seconds[name] = round(time.time() - t, 1)
    diffs = [m["max_abs_diff"] for m in results["models"].values() if m.get("max_abs_diff") is not None]
    results["exactness_max_abs_diff"] = max(diffs) if diffs else None
    for study in config.studies:
        t = time.time()
        if progress:
            print(f"[action] scoring the {study} study", flush=True)
        s = score_study(study, data)
        results[study] = {v: d["mean"] for v, d in s["summary"].items()}
        results[f"{study}_detail"] = s
        seconds[study] = round(time.time() - t, 1)
    seconds["total"] = round(time.time() - t0, 1)
    results["_seconds"] = seconds
    return results


# ----------------------------------------------------------------------------- report
def _g(macs: float) -> str:
    return f"{macs / 1e9:.3f} G" if macs >= 1e8 else f"{macs / 1e6:.2f} M"


def _f(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table_markdown(results: dict[str, Any]) -> str:
    """``table.md``: our numbers in the layouts of the seed's Tables 15/16 (CoX3D) and 18 (CoST-GCN), the
    pool-size curve, and the ignore and fusion tables, each with the seed's numbers beside."""
    from hcgym.report import markdown_table

    d = results["data"]
    lines = [f"# Action recognition on fresh clips (seed {results['config']['seed']})", "",
             f"{d['clips']} clips of {len(d['identities'])} avatars never seen in training (dataset seed "
             f"{d['dataset_seed']}), 24 actions, 40 frames at 12.5 fps, 112x112 crops. Accuracy is top-1 (%). "
             "FLOPs are MACs per prediction (ptflops); throughput is predictions per second on one CPU thread, "
             "batch 1 (this machine; the seed's on one core of a 2.6 GHz Core i7).", ""]
    models = results["models"]
    if "x3d" in models:
        m = models["x3d"]
        lines += ["## CoX3D (layout of the seed's Tables 15 and 16)", ""]
        rows = [["X3D-like (ours, 16x112^2)", _f(m["clip_acc"]), f"{m['params'] / 1e6:.3f}", _g(m["clip_flops"]),
                 _f(m["clip_preds_per_s"]), "1.0x", "1.0x"],
                [f"CoX3D (ours, pool {m['pool_size']})", _f(m["continual_acc"]), f"{m['params'] / 1e6:.3f}",
                 _g(m["flops_per_pred"]), _f(m["preds_per_s"]), f"{m['flops_ratio']:.1f}x",
                 f"{m['preds_per_s'] / m['clip_preds_per_s']:.1f}x"]]
        rows += [[f"seed: {n}", a, p, f, t, "", ""] for n, a, p, f, t in SEED_X3D]
        lines += markdown_table(["model", "acc", "params (M)", "FLOPs", "CPU preds/s", "FLOPs lower",
                                 "throughput higher"], rows)
        lines += ["", "Seed: Kinetics-400 top-1; CoX3D-S_64 10.0x fewer FLOPs and 5.9x CPU throughput, CoX3D-M_64 "
                  "12.4x / 9.1x (Table 16). Ours: eager PyTorch, the whole step including Python per module; "
                  "benchmarks/action_continual.py compares the runtimes like with like.", ""]
        pc = m["pool_curve"]
        lines += ["### Pool size (seed's Table 2)", ""]
        lines += markdown_table(["pool", "receptive field (frames)", "acc"],
                                [[p + (" (trained)" if int(p) == pc["trained_pool"] else ""),
                                  str(pc["receptive_field"][p]), _f(a)] for p, a in pc["accuracy"].items()])
        lines += ["", "Seed: CoX3D-S 49.2 / 50.1 / 54.7 / 59.8 / 61.8 at pool 13 / 16 / 32 / 64 / 96 (Kinetics at "
                  "15 fps); our clips have 40 frames, so pools stop at 28.", ""]
    gcn = [n for n in ("stgcn", "stgcn_star", "agcn", "stgcn_mediapipe") if n in models]
    if gcn:
        lines += ["## CoST-GCN and CoAGCN (layout of the seed's Table 18)", ""]
        rows = []
        for n in gcn:
            m = models[n]
            label = {"stgcn": "ST-GCN / CoST-GCN", "stgcn_star": "CoST-GCN* (fine-tuned)", "agcn": "AGCN / CoAGCN",
                     "stgcn_mediapipe": "ST-GCN / CoST-GCN (MediaPipe-trained)"}[n]
            seed = SEED_GCN.get(n, ("", "", "", "", "", ""))
            rows.append([label, str(m["frames_per_pred"]), _f(m["clip_acc_truth"]), _f(m["clip_acc_mediapipe"]),
                         _f(m["continual_acc"]), f"{m['params'] / 1e6:.3f}", _g(m["clip_flops"]),
                         _g(m["flops_per_pred"]), f"{m['flops_ratio']:.1f}x", _f(m["preds_per_s"]),
                         _f(m["clip_preds_per_s"]), f"{seed[0]} {seed[2]}".strip() or "-"])
            if n == "stgcn" and m.get("transferred_star_continual_acc") is not None:
                s = SEED_GCN["stgcn_transferred"]
                rows.append(["CoST-GCN* transferred without fine-tuning", "1", "-", "-",
                             _f(m["transferred_star_continual_acc"]), f"{m['params'] / 1e6:.3f}", "-", "-", "-", "-",
                             "-", f"{s[0]} {s[2]}"])
        lines += markdown_table(["model", "frames per pred", "clip acc (true skel.)", "clip acc (MediaPipe)",
                                 "continual acc", "params (M)", "clip FLOPs", "FLOPs per pred", "FLOPs lower",
                                 "continual preds/s", "clip preds/s", "seed X-Sub"], rows)
        lines += ["", "Continual accuracy is on each model's training source (true skeletons, or MediaPipe for the "
                  "MediaPipe-trained model). Seed (NTU-60, T = 300): ST-GCN 16.73 G, CoST-GCN* 0.16 G (107.7x fewer), "
                  "throughput 2.3 -> 45.8 preds/s (19.9x). Our GCNs are the small k = 5 models of 40-frame clips; "
                  "the T = 300 comparison is benchmarks/action_continual.py.", ""]
    if results.get("exactness_max_abs_diff") is not None:
        lines += [f"Exactness: max |continual - clip| over every model and clip: "
                  f"{results['exactness_max_abs_diff']:.2e}.", ""]
    for study, seed_vals, title in (("ignore", SEED_IGNORE, "Learning to ignore (seed's Table 27 / paper Tables 1-2)"),
                                    ("fusion", SEED_FUSION, "RGB + skeleton fusion (seed's Table 28)")):
        if f"{study}_detail" not in results:
            continue
        s = results[f"{study}_detail"]
        st = s["settings"]
        lines += [f"## {title}", ""]
        rows = []
        for v, d in s["summary"].items():
            tr = s["training_test_split"].get(v, {})
            rows.append([v, f"{d['mean']:.1f} +- {d['std']:.1f}", " / ".join(f"{a:.1f}" for a in d["per_seed"].values()),
                         f"{tr.get('mean', float('nan')):.1f} +- {tr.get('std', float('nan')):.1f}",
                         seed_vals.get(v, "-")])
        seed_head = "seed: CIFAR-100 ResNet50 top-1 error" if study == "ignore" else "seed: NTU-RGBD acc"
        lines += markdown_table(["variant", "acc, these clips (mean +- std)", "per seed", "acc, training set's test split",
                                 seed_head], rows)
        lines += ["", f"Small models at {st['size']}x{st['size']}, {st['frames']}-frame windows, {st['epochs']} epochs, "
                  f"seeds {', '.join(next(iter(s['summary'].values()))['per_seed'])}"
                  + (f"; skeletons from {st['skeleton']}." if study == "fusion" else ".") + " Ign1 uses alpha = 0.5.", ""]
    return "\n".join(lines) + "\n"


def figures(results: dict[str, Any]) -> dict[str, bytes]:
    """``pool_size.png`` (CoX3D accuracy against pool size), ``transient.png`` (accuracy per frame after a
    cold start, every model) and ``studies.png`` (each study's variants: mean +- std and every seed)."""
    from hcgym.report import png_bytes, pyplot

    plt = pyplot()
    out: dict[str, bytes] = {}
    models = results["models"]
    if "x3d" in models:
        pc = models["x3d"]["pool_curve"]
        fig, ax = plt.subplots(figsize=(5, 3.4))
        pools = [int(p) for p in pc["accuracy"]]
        ax.plot(pools, list(pc["accuracy"].values()), "o-")
        ax.axvline(pc["trained_pool"], color="grey", ls=":", label="trained pool")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("global pool size (frames)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title("CoX3D: accuracy against pool size")
        ax.legend()
        out["pool_size.png"] = png_bytes(fig)
    if models:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for name, m in models.items():
            tr = m["transient"]
            xs = [t + 1 for t, a in enumerate(tr) if a is not None]
            ax.plot(xs, [a for a in tr if a is not None], "o-" if len(xs) < 4 else ".-",
                    label=f"{name} (delay {m['delay']})")
        ax.set_xlabel("frames since a cold start")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title("Continual models after a cold start (nothing before the delay)")
        ax.legend(fontsize=7)
        out["transient.png"] = png_bytes(fig)
    studies = [s for s in STUDIES if f"{s}_detail" in results]
    if studies:
        fig, axes = plt.subplots(1, len(studies), figsize=(5 * len(studies), 3.4), squeeze=False)
        for ax, name in zip(axes[0], studies):
            summary = results[f"{name}_detail"]["summary"]
            names = list(summary)
            ax.bar(range(len(names)), [summary[v]["mean"] for v in names],
                   yerr=[summary[v]["std"] for v in names], capsize=3, color="tab:blue")
            for i, v in enumerate(names):
                ax.plot([i] * len(summary[v]["per_seed"]), list(summary[v]["per_seed"].values()), "k.", ms=4)
            ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
            lo = min(a for v in names for a in summary[v]["per_seed"].values())
            ax.set_ylim(max(0.0, lo - 10), 100)
            ax.set_ylabel("top-1 accuracy (%)")
            ax.set_title(f"{name} study: mean +- std over seeds (dots)")
        fig.tight_layout()
        out["studies.png"] = png_bytes(fig)
    return out


def with_overrides(config: ActionEvalConfig, **over: Any) -> ActionEvalConfig:
    return replace(config, **{k: v for k, v in over.items() if v is not None})


__all__ = ["ActionEvalConfig", "EVAL_DATASET_SEED", "MODELS", "STUDIES", "figures", "pool_logits", "quick_config", "run",
           "score_model", "score_study", "table_markdown", "test_data", "training_identities", "with_overrides"]
