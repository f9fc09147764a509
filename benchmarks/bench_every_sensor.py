"""Every registered sensor through the sensor bench on one world: one table row per sensor.

For each id of ``hcgym sensors`` this runs ``hcgym evaluate sensor ID --world W --seconds S --fps F`` into a
temporary folder and prints the task, the headline metric, the latency median and the files written; a
sensor that needs a file hcgym does not ship (an InsightFace pack) prints the one-line message it stopped
with. The default is ten seconds of the living ``greeting`` world at 2 frames per second.

    python benchmarks/bench_every_sensor.py [--world greeting] [--seconds 10] [--fps 2] [--seed 0] [--size WxH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="greeting")
    ap.add_argument("--seconds", default="10")
    ap.add_argument("--fps", default="2")
    ap.add_argument("--seed", default="0")
    ap.add_argument("--size", default=None, help="render WxH instead of the camera's size")
    ap.add_argument("--only", default="", help="comma-separated id prefixes (default: every sensor)")
    args = ap.parse_args()

    from hcgym.perception.registry import list_sensors

    ids = [i for i in list_sensors() if not args.only or any(i.startswith(p) for p in args.only.split(","))]
    print(f"{args.world}, {args.seconds} s at {args.fps} fps, seed {args.seed}"
          + (f", {args.size}" if args.size else ""))
    print("| sensor | task | headline metric | latency median | files | wall |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="hcgym-bench-all-") as tmp:
        for sid in ids:
            out = Path(tmp) / sid.replace("/", "_")
            cmd = [sys.executable, "-m", "hcgym.scripts.cli", "evaluate", "sensor", sid, "--world", args.world,
                   "--seconds", args.seconds, "--fps", args.fps, "--seed", args.seed, "--out", str(out)]
            if args.size:
                cmd += ["--size", args.size]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                message = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
                print(f"| `{sid}` | stopped (exit {p.returncode}) | {message} | - | nothing | {wall:.0f} s |",
                      flush=True)
                continue
            r = json.loads((out / "results.json").read_text())
            key, m = r.get("primary"), r["metrics"]
            head = f"{r.get('primary_label', key)} {m.get(key)}" if key else "latency only"
            lat = r.get("latency_ms") or {}
            files = sorted(f.name for f in out.iterdir())
            print(f"| `{sid}` | {r['task']} | {head} | {lat.get('median', '-')} ms | {len(files)} "
                  f"({', '.join(files)}) | {wall:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
