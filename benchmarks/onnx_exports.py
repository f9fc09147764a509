"""Every network sensor exported to ONNX: parity against PyTorch and latency, PyTorch eager vs ONNX Runtime.

For each registered sensor that exports (``hcgym.perception.export.exportable()``: person/centernet,
face/hcgym-irnet, nms/seq2seq) this runs ``hcgym export`` into a temporary folder and prints one table
row: the network's inputs, the max |PyTorch - ONNX Runtime| over the parity inputs, and the median ms
per input of PyTorch eager and ONNX Runtime, both on one thread, timed alternately in one run (so the
ratio holds under a varying machine load). Seq2Seq-NMS is timed at N = 400 candidates (network only;
``benchmarks/nms.py`` times the whole call with the edge map).

    python benchmarks/onnx_exports.py [--inputs 32] [--repeats 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=32, help="parity inputs per sensor")
    ap.add_argument("--repeats", type=int, default=5, help="timing rounds over the latency inputs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from hcgym.perception.export import export_sensor, exportable

    print("| sensor | inputs (timed) | parity, max abs diff | PyTorch eager, 1 thread | ONNX Runtime, 1 thread "
          "| ONNX / PyTorch |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for sensor in exportable():
            r = export_sensor(sensor, Path(tmp) / sensor.replace("/", "_"), n=args.inputs, seed=args.seed,
                              repeats=args.repeats)
            t, o = r["latency_ms"]["torch_eager_1_thread"], r["latency_ms"]["onnxruntime_1_thread"]
            shapes = ", ".join(f"{k} {v}" for k, v in r["latency_inputs"].items())
            print(f"| `{sensor}` | {shapes} | {r['parity_max_abs_diff']:.1e} ({r['inputs']} inputs) | {t:.1f} ms "
                  f"| {o:.1f} ms | {o / t:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
