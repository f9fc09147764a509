"""Export a network sensor for a robot: ONNX file + sidecar, parity against PyTorch, latency, reload check.

``export_sensor(id, out)`` (``hcgym export ID --out DIR``) writes into ``out``:

* ``<name>.onnx`` and ``<name>.onnx.json`` (the sidecar :class:`~hcgym.perception.base.OnnxSensor` reads:
  the registry id and the pre/post-processing config);
* ``export.json``: parity (max |PyTorch - ONNX Runtime| over every output of ``n`` inputs, default 32,
  limit :data:`PARITY_LIMIT`), latency per input (median, ms) of PyTorch eager and ONNX Runtime, both on
  one thread, the opset and the reload check;
* ``table.md``: the same as a table.

The parity inputs are the sensor's own (:meth:`~hcgym.perception.base.TorchModel.parity_inputs`): for image
networks the input's shape (batch 1) with values drawn uniformly over the range of the example input
(0-255 when that is constant); for Seq2Seq-NMS simulated candidate sets with their edge maps, N from 2 to
400. The export is refused, and nothing is left in ``out``, when parity fails or the reloaded sensor does
not answer like the original.

``ship()`` (``hcgym export --ship``) re-exports the shipped checkpoints (:func:`shipped_exports`) beside
them, with a provenance file; ``shipped_onnx(sensor)`` is the registry's ``*-onnx`` sensor on such a file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError

#: Largest allowed |PyTorch - ONNX Runtime| difference on any output value.
PARITY_LIMIT = 1e-4
#: Largest shipped ONNX file (bytes): models the package ships stay small.
SHIP_LIMIT = 10 * 1024 * 1024


def exportable() -> list[str]:
    """Ids of the registered sensors that export to ONNX."""
    from hcgym.perception.registry import specs

    return [s.id for s in specs() if s.exports_onnx]


def export_sensor(sensor_id: str, out: str | Path, n: int = 32, seed: int = 0, repeats: int = 3,
                  **kwargs: Any) -> dict[str, Any]:
    """Export ``sensor_id`` into ``out`` and check it; returns what ``export.json`` holds."""
    from hcgym.perception.base import OnnxSensor, onnx_session
    from hcgym.perception.registry import make, spec

    if sensor_id not in exportable():
        spec(sensor_id)  # unknown ids get the registry's message with the known ones
        raise SpecError("sensor", f"{sensor_id} does not export to ONNX (exportable: {', '.join(exportable())})")
    if n < 1:
        raise SpecError("n", f"must be >= 1, got {n}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError("out", f"{out} exists and is not a directory")
    try:
        sensor = make(sensor_id, **kwargs)
    except TypeError as e:
        raise SpecError("sensor_kwargs", f"{sensor_id} does not take these arguments: {e}") from None
    name = sensor_id.replace("/", "_")
    staging = out.parent / f".{out.name}.export-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        path = sensor.export_onnx(staging / f"{name}.onnx")
        session = onnx_session(path, threads=1)
        rng = np.random.default_rng(seed)
        inputs = sensor.parity_inputs(rng, n)
        timed = sensor.latency_inputs(rng) or inputs[: min(n, 8)]
        names = [i.name for i in session.get_inputs()]
        worst, t_torch, t_onnx = _compare(sensor, session, names, inputs, timed, repeats)
        if not worst <= PARITY_LIMIT:
            raise SpecError("export", f"{sensor_id}: ONNX Runtime differs from PyTorch by {worst:.2e} "
                                      f"(limit {PARITY_LIMIT:g}); nothing was written")
        reload = _reload_check(sensor, OnnxSensor(path, sensor=sensor_id), rng)
        if not reload["same"]:
            raise SpecError("export", f"{sensor_id}: the reloaded ONNX sensor answers differently ({reload['detail']}); "
                                      "nothing was written")
        report = {
            "sensor": sensor_id, "onnx": path.name, "sidecar": path.name + ".json", "opset": _opset(path),
            "onnx_bytes": path.stat().st_size, "inputs": n, "seed": seed,
            "input_shapes": _shapes(names, inputs), "parity_inputs": sensor.describe_parity_inputs(),
            "parity_max_abs_diff": worst, "parity_limit": PARITY_LIMIT, "parity_ok": True,
            "latency_inputs": _shapes(names, timed),
            "latency_ms": {"torch_eager_1_thread": 1000 * statistics.median(t_torch),
                           "onnxruntime_1_thread": 1000 * statistics.median(t_onnx)},
            "reload": reload,
        }
        if getattr(sensor, "step_report", None):  # a continual model: its step checked against forward_step
            report["continual_step"] = sensor.step_report
        (staging / "export.json").write_text(json.dumps(report, indent=1) + "\n")
        (staging / "table.md").write_text(_table(report))
        out.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            item.replace(out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _compare(sensor: Any, session: Any, names: list[str], inputs: list[tuple[np.ndarray, ...]],
             timed: list[tuple[np.ndarray, ...]], repeats: int) -> tuple[float, list[float], list[float]]:
    """Max |PyTorch - ONNX Runtime| over every output of ``inputs``, and seconds per run of each on
    ``timed`` (``repeats`` rounds), PyTorch on one thread (the session has one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        worst, t_torch, t_onnx = 0.0, [], []
        for x in inputs:
            ref = sensor.run_model(*x)
            got = session.run(None, dict(zip(names, x)))
            if len(ref) != len(got):
                raise SpecError("export", f"{sensor.name}: PyTorch gives {len(ref)} outputs, ONNX {len(got)}")
            for a, b in zip(ref, got):
                if np.shape(a) != np.shape(b):
                    raise SpecError("export", f"{sensor.name}: output shapes differ, {np.shape(a)} vs {np.shape(b)}")
                worst = max(worst, float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)),
                                                initial=0.0)))
        for _ in range(repeats):
            for x in timed:
                t0 = time.perf_counter()
                sensor.run_model(*x)
                t_torch.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                session.run(None, dict(zip(names, x)))
                t_onnx.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return worst, t_torch, t_onnx


def _shapes(names: list[str], inputs: list[tuple[np.ndarray, ...]]) -> dict[str, str]:
    """``{input name: "1x3x288x384"}``, axes that vary over ``inputs`` as ``lo-hi`` (``"2-400x4"``)."""
    out = {}
    for k, name in enumerate(names):
        shapes = np.array([np.shape(x[k]) for x in inputs])
        lo, hi = shapes.min(0), shapes.max(0)
        out[name] = "x".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(lo, hi)) or "scalar"
    return out


def _opset(path: Path) -> int:
    """The default-domain opset of the ONNX file ``path``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return int(next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0))


def _table(report: dict[str, Any]) -> str:
    from hcgym.report import markdown_table

    lat, n, limit = report["latency_ms"], report["inputs"], report["parity_limit"]
    shapes = ", ".join(f"{k} {v}" for k, v in report["input_shapes"].items())
    timed = ", ".join(f"{k} {v}" for k, v in report["latency_inputs"].items())
    rows = [["file", f"`{report['onnx']}` (+ `{report['sidecar']}`), opset {report['opset']}, "
                     f"{report['onnx_bytes'] / 1e6:.2f} MB"],
            ["inputs", f"{shapes} ({report['parity_inputs']})"],
            [f"parity, max abs diff over {n} inputs", f"{report['parity_max_abs_diff']:.2e} (limit {limit:g})"],
            [f"PyTorch eager, 1 thread ({timed})", f"{lat['torch_eager_1_thread']:.2f} ms"],
            ["ONNX Runtime, 1 thread", f"{lat['onnxruntime_1_thread']:.2f} ms"],
            ["speed-up", f"{lat['torch_eager_1_thread'] / lat['onnxruntime_1_thread']:.2f}x"],
            ["reloaded through the registry", report["reload"]["detail"]]]
    if "continual_step" in report:
        step = report["continual_step"]
        rows.append([f"step vs the continual model's forward_step, {step['steps']} frames",
                     f"logits {step['logits_max_abs_diff']:.1e}, state {step['co_state_max_abs_diff']:.1e} "
                     f"(delay {step['delay']}, {step['predictions']} predictions)"])
    return "\n".join([f"# ONNX export of {report['sensor']}", "", *markdown_table(["", "value"], rows), ""])


def _reload_check(original: Any, exported: Any, rng: np.random.Generator) -> dict[str, Any]:
    """Both sensors on one synthetic input (the sensor's own :meth:`~hcgym.perception.base.TorchModel.reload_check`
    where it has one): the same kind of answer, numerically equal within tolerance."""
    from hcgym.types import Detections, Embeddings

    own = original.reload_check(exported, rng)
    if own is not None:
        return own
    if hasattr(original, "embed_aligned"):  # a face embedder: aligned face chips in, embeddings out
        size = int(getattr(original, "input_size", 112))
        chips = rng.uniform(0, 255, (4, size, size, 3)).astype(np.uint8)
        ea, eb = original.embed_aligned(chips), exported.embed_aligned(chips)
        same = ea.shape == eb.shape and np.allclose(ea, eb, atol=1e-3)
        return {"same": bool(same), "detail": f"embeddings of 4 aligned chips, max abs diff "
                                              f"{float(np.max(np.abs(ea - eb))):.1e}"}
    image = (rng.uniform(0, 255, (240, 320, 3))).astype(np.uint8)
    image[60:200, 120:200] = (200, 160, 140)  # a bright blob, so detectors have something to look at
    a, b = original(image), exported(image)
    if type(a) is not type(b):
        return {"same": False, "detail": f"{type(a).__name__} vs {type(b).__name__}"}
    if isinstance(a, Detections):
        same = len(a) == len(b) and np.allclose(a.boxes, b.boxes, atol=0.05) and np.allclose(a.scores, b.scores,
                                                                                               atol=1e-3)
        return {"same": bool(same), "detail": f"{type(a).__name__}: {len(a)} vs {len(b)} boxes on a test image"}
    if isinstance(a, Embeddings):
        same = a.vectors.shape == b.vectors.shape and np.allclose(a.vectors, b.vectors, atol=1e-3)
        return {"same": bool(same), "detail": f"{type(a).__name__}: {len(a)} vs {len(b)} faces on a test image"}
    return {"same": True, "detail": f"{type(a).__name__} from both"}


# --------------------------------------------------------------------------------------------
# Shipped exports
# --------------------------------------------------------------------------------------------


#: Entry point of the registry's ``<id>-onnx`` sensors: a shipped export of ``<id>``.
SHIPPED_ENTRY_POINT = "hcgym.perception.export:shipped_onnx"


def shipped_exports() -> dict[str, tuple[Path, Path]]:
    """``{sensor id: (shipped checkpoint, its shipped ONNX export)}``, from the registered sensors whose entry
    point is :func:`shipped_onnx` (their ``sensor``, ``source`` and ``path`` arguments: each task declares its
    own); each export's sidecar is ``X.onnx.json`` and its provenance ``PROVENANCE_<stem>_onnx.json`` beside it."""
    from hcgym.perception.registry import specs

    return {s.kwargs["sensor"]: (Path(s.kwargs["source"]), Path(s.kwargs["path"]))
            for s in specs() if s.entry_point == SHIPPED_ENTRY_POINT}


def provenance_path(onnx: Path) -> Path:
    """``PROVENANCE_<stem>_onnx.json`` beside the shipped export ``onnx``."""
    return onnx.with_name(f"PROVENANCE_{onnx.stem}_onnx.json")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ship(sensors: list[str] | None = None, n: int = 32, seed: int = 0) -> list[dict[str, Any]]:
    """Re-export the shipped checkpoints of ``sensors`` (default: every one of :func:`shipped_exports`) with
    :func:`export_sensor` and replace the shipped ONNX files, sidecars and provenance files
    (``hcgym export --ship``; what to run after a shipped checkpoint is retrained). Every export is made
    and checked (parity, reload, size < :data:`SHIP_LIMIT`) before any shipped file is replaced."""
    import onnxruntime
    import torch

    from hcgym.paths import atomic_write_bytes

    table = shipped_exports()
    sensors = list(table) if not sensors else list(sensors)
    unknown = [s for s in sensors if s not in table]
    if unknown:
        raise SpecError("sensor", f"no shipped ONNX export for {', '.join(unknown)} (shipped: {', '.join(table)})")
    for s in sensors:
        if not table[s][0].is_file():
            raise SpecError("sensor", f"{s}: the shipped checkpoint {table[s][0]} is missing")
    with tempfile.TemporaryDirectory(prefix="hcgym-ship-") as tmp:
        staged = []
        for s in sensors:
            report = export_sensor(s, Path(tmp) / s.replace("/", "_"), n=n, seed=seed)
            onnx = Path(tmp) / s.replace("/", "_") / report["onnx"]
            if report["onnx_bytes"] >= SHIP_LIMIT:
                raise SpecError("sensor", f"{s}: the export is {report['onnx_bytes'] / 1e6:.1f} MB, over the "
                                          f"{SHIP_LIMIT / 1e6:.0f} MB a shipped model may take; nothing was replaced")
            source = table[s][0]
            report = {"command": "hcgym export --ship" + (f" {' '.join(sensors)}" if sensors != list(table) else ""),
                      **report, "onnx": table[s][1].name, "sidecar": table[s][1].name + ".json",
                      "onnx_sha256": sha256(onnx),
                      "source": {"file": source.name, "sha256": sha256(source)},
                      "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}}
            staged.append((s, onnx, report))
        for s, onnx, report in staged:
            target = table[s][1]
            atomic_write_bytes(target, onnx.read_bytes())
            atomic_write_bytes(target.with_name(target.name + ".json"), Path(str(onnx) + ".json").read_bytes())
            atomic_write_bytes(provenance_path(target), (json.dumps(report, indent=1) + "\n").encode())
    return [r for _, _, r in staged]


def shipped_onnx(sensor: str, path: str | Path, source: str | Path | None = None, threads: int = 1,
                 **overrides: Any) -> Any:
    """A registry ``<sensor>-onnx``: the ONNX export ``path`` of ``sensor`` (the shipped one, exported from the
    checkpoint ``source``, unless another is given) on ONNX Runtime with ``threads`` threads, answering the
    original's calls (:class:`~hcgym.perception.base.OnnxSensor`); ``overrides`` replace the export's config
    values (``score_threshold``, ``nms``, ...)."""
    from hcgym.perception.base import OnnxSensor

    path = Path(path)
    if not path.is_file():
        raise SpecError("path", f"ONNX file not found: {path} (`hcgym export --ship {sensor}` rewrites the shipped "
                                "export from the shipped checkpoint)")
    return OnnxSensor(path, threads=threads, sensor=sensor, **overrides)
