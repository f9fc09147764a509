"""``hcgym export SENSOR --out DIR``: a network sensor as ONNX + sidecar, parity-checked, with a latency table.
``hcgym export --ship [SENSOR ...]``: re-export the shipped checkpoints into the package's model folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from hcgym.errors import SpecError
from hcgym.scripts import _args
from hcgym.scripts.evaluate_sensor import sensor_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a network sensor to ONNX (parity-checked, latency table)",
                       description="Export a registered network sensor for a robot: DIR/<id>.onnx and its sidecar "
                                   "(hcgym.perception.OnnxSensor reloads it through the registry), export.json and "
                                   "table.md with the parity against PyTorch on N inputs (max |diff| <= 1e-4) and "
                                   "the latency of PyTorch eager vs ONNX Runtime on one thread. Nothing is written "
                                   "when a check fails. `hcgym sensors` lists which sensors export (onnx: yes). "
                                   "--ship re-exports the shipped checkpoints (person/centernet, nms/seq2seq) "
                                   "beside them, with a provenance file: run it after retraining a shipped model.")
    p.add_argument("sensor", nargs="*", help="registry id, e.g. person/centernet, face/hcgym-irnet or nms/seq2seq "
                                             "(with --ship: which shipped exports to rewrite, default all)")
    p.add_argument("--out", type=Path, default=None, help="output directory (not with --ship)")
    p.add_argument("--ship", action="store_true", help="rewrite the shipped ONNX files from the shipped checkpoints")
    p.add_argument("--inputs", type=_args.positive_int, default=32, help="parity inputs (default 32)")
    p.add_argument("--seed", type=_args.seed, default=0, help="seed of the parity inputs")
    p.add_argument("--sensor-arg", type=sensor_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument of the sensor (repeatable), e.g. checkpoint=out/stgcn/action_stgcn.pt")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcgym.perception.export import export_sensor, ship

    if args.ship:
        if args.out is not None:
            raise SpecError("--out", "--ship writes the package's model folders; leave --out out")
        if args.sensor_arg:
            raise SpecError("--sensor-arg", "--ship exports the shipped checkpoints as they are; leave it out")
        for r in ship(args.sensor, n=args.inputs, seed=args.seed):
            _print(r, f"shipped {r['onnx']} ({r['sensor']}, from {r['source']['file']})")
        return 0
    if len(args.sensor) != 1 or args.out is None:
        raise SpecError("sensor", "give one SENSOR and --out DIR (or --ship)")
    r = export_sensor(args.sensor[0], args.out, n=args.inputs, seed=args.seed, **dict(args.sensor_arg))
    _print(r, f"wrote {args.out}/{r['onnx']} (+ .json), export.json, table.md")
    return 0


def _print(r: dict, head: str) -> None:
    lat = r["latency_ms"]
    print(f"{head}: parity {r['parity_max_abs_diff']:.1e} over {r['inputs']} inputs; PyTorch "
          f"{lat['torch_eager_1_thread']:.1f} ms, ONNX Runtime {lat['onnxruntime_1_thread']:.1f} ms (1 thread)")
