"""Export a network sensor for a robot: ONNX file + sidecar, parity against PyTorch, latency, reload check.

``export_sensor(id, out)`` (``hcgym export ID --out DIR``) writes into ``out``:

* ``<name>.onnx`` and ``<name>.onnx.json`` (the sidecar :class:`~hcgym.perception.base.OnnxSensor` reads:
  the registry id and the pre/post-processing config);
* ``export.json``: parity (max |PyTorch - ONNX Runtime| over every output of ``n`` inputs, default 32,
  limit :data:`PARITY_LIMIT`), latency per input (median, ms) of PyTorch eager and ONNX Runtime, both on
  one thread, and the reload check;
* ``table.md``: the same as a table.

Parity inputs have the network input's shape (batch 1) with values drawn uniformly over the range of
the sensor's ``example_input`` (0-255 when that is constant), from ``seed``. The export is refused, and
nothing is left in ``out``, when parity fails or the reloaded sensor does not answer like the original.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.errors import SpecError

#: Largest allowed |PyTorch - ONNX Runtime| difference on any output value.
PARITY_LIMIT = 1e-4


def exportable() -> list[str]:
    """Ids of the registered sensors that export to ONNX."""
    from hcgym.perception.registry import specs

    return [s.id for s in specs() if s.exports_onnx]


def export_sensor(sensor_id: str, out: str | Path, n: int = 32, seed: int = 0, repeats: int = 3,
                  **kwargs: Any) -> dict[str, Any]:
    """Export ``sensor_id`` into ``out`` and check it; returns what ``export.json`` holds."""
    import torch

    from hcgym.perception.base import OnnxSensor, onnx_session
    from hcgym.perception.registry import make, spec
    from hcgym.report import markdown_table

    if sensor_id not in exportable():
        spec(sensor_id)  # unknown ids get the registry's message with the known ones
        raise SpecError("sensor", f"{sensor_id} does not export to ONNX (exportable: {', '.join(exportable())})")
    if n < 1:
        raise SpecError("n", f"must be >= 1, got {n}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError("out", f"{out} exists and is not a directory")
    sensor = make(sensor_id, **kwargs)
    name = sensor_id.replace("/", "_")
    staging = out.parent / f".{out.name}.export-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        path = sensor.export_onnx(staging / f"{name}.onnx")
        session = onnx_session(path, threads=1)
        rng = np.random.default_rng(seed)
        example = np.asarray(sensor.example_input(), dtype=np.float32)
        lo, hi = (float(example.min()), float(example.max())) if example.max() > example.min() else (0.0, 255.0)
        inputs = [rng.uniform(lo, hi, (1, *example.shape[1:])).astype(np.float32) for _ in range(n)]
        in_name = session.get_inputs()[0].name
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            worst, t_torch, t_onnx = 0.0, [], []
            for x in inputs:
                ref = sensor.run_model(x)
                got = session.run(None, {in_name: x})
                if len(ref) != len(got):
                    raise SpecError("export", f"{sensor_id}: PyTorch gives {len(ref)} outputs, ONNX {len(got)}")
                for a, b in zip(ref, got):
                    worst = max(worst, float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))))
            for _ in range(repeats):
                for x in inputs[: min(n, 8)]:
                    t0 = time.perf_counter()
                    sensor.run_model(x)
                    t_torch.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    session.run(None, {in_name: x})
                    t_onnx.append(time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads)
        if not worst <= PARITY_LIMIT:
            raise SpecError("export", f"{sensor_id}: ONNX Runtime differs from PyTorch by {worst:.2e} "
                                      f"(limit {PARITY_LIMIT:g}); nothing was written")
        reload = _reload_check(sensor, OnnxSensor(path, sensor=sensor_id), rng)
        if not reload["same"]:
            raise SpecError("export", f"{sensor_id}: the reloaded ONNX sensor answers differently ({reload['detail']}); "
                                      "nothing was written")
        report = {
            "sensor": sensor_id, "onnx": path.name, "sidecar": path.name + ".json", "inputs": n, "seed": seed,
            "input_shape": list(inputs[0].shape), "input_range": [lo, hi],
            "parity_max_abs_diff": worst, "parity_limit": PARITY_LIMIT, "parity_ok": True,
            "latency_ms": {"torch_eager_1_thread": 1000 * statistics.median(t_torch),
                           "onnxruntime_1_thread": 1000 * statistics.median(t_onnx)},
            "reload": reload,
        }
        lat = report["latency_ms"]
        table = "\n".join([f"# ONNX export of {sensor_id}", "",
                           *markdown_table(["", "value"], [
                               ["file", f"`{path.name}` (+ `{path.name}.json`)"],
                               ["input", f"{tuple(inputs[0].shape)} float32, values in [{lo:g}, {hi:g}]"],
                               [f"parity, max abs diff over {n} inputs", f"{worst:.2e} (limit {PARITY_LIMIT:g})"],
                               ["PyTorch eager, 1 thread", f"{lat['torch_eager_1_thread']:.2f} ms"],
                               ["ONNX Runtime, 1 thread", f"{lat['onnxruntime_1_thread']:.2f} ms"],
                               ["speed-up", f"{lat['torch_eager_1_thread'] / lat['onnxruntime_1_thread']:.2f}x"],
                               ["reloaded through the registry", reload["detail"]]]), ""])
        (staging / "export.json").write_text(json.dumps(report, indent=1) + "\n")
        (staging / "table.md").write_text(table)
        out.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            item.replace(out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _reload_check(original, exported, rng: np.random.Generator) -> dict[str, Any]:
    """Both sensors on one synthetic image: the same kind of answer, numerically equal within tolerance."""
    from hcgym.types import Detections, Embeddings

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
