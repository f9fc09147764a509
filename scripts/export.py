"""``hcgym export SENSOR --out DIR``: a network sensor as ONNX + sidecar, parity-checked, with a latency table."""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.scripts import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a network sensor to ONNX (parity-checked, latency table)",
                       description="Export a registered network sensor for a robot: DIR/<id>.onnx and its sidecar "
                                   "(hcgym.perception.OnnxSensor reloads it through the registry), export.json and "
                                   "table.md with the parity against PyTorch on N inputs (max |diff| <= 1e-4) and "
                                   "the latency of PyTorch eager vs ONNX Runtime on one thread. Nothing is written "
                                   "when a check fails. `hcgym sensors` lists which sensors export (onnx: yes).")
    p.add_argument("sensor", help="registry id, e.g. person/centernet or face/hcgym-irnet")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--inputs", type=_args.positive_int, default=32, help="parity inputs (default 32)")
    p.add_argument("--seed", type=_args.seed, default=0, help="seed of the parity inputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcgym.perception.export import export_sensor

    r = export_sensor(args.sensor, args.out, n=args.inputs, seed=args.seed)
    lat = r["latency_ms"]
    print(f"wrote {args.out}/{r['onnx']} (+ .json), export.json, table.md: parity {r['parity_max_abs_diff']:.1e} "
          f"over {r['inputs']} inputs; PyTorch {lat['torch_eager_1_thread']:.1f} ms, ONNX Runtime "
          f"{lat['onnxruntime_1_thread']:.1f} ms (1 thread)")
    return 0
