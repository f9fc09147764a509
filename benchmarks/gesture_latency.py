"""Cost of early fusion and of each gesture backbone: single-thread batch-1 latency, first-conv MACs, training
throughput.

For every backbone (MobileNetV2, MNASNet 1.0 / 0.5, ResNet-18) x input (RGB 3 channels, depth 1, RGB-D 4) at
each size (default 112 and 224): milliseconds per image in torch eager and in ONNX Runtime (one intra-op
thread), all configurations of a size timed in interleaved rounds (:func:`hcgym.perception.gesture.cost.latency`:
every configuration once per round, the order rotating; median and quartiles), and the RGB-D / RGB time ratio
per round for each backbone and runtime (the seed's claim: about 1.0, since the fourth channel adds only
first-convolution MACs, +1.2 % of MobileNetV2's). Also the MACs of the first convolution and of the whole
network (ptflops and fvcore) for 3 and 4 channels.

``--training``: training samples per second (augmentation, forward, backward, AdamW step on RGB-D batches of
``--batch``) of each backbone at each ``--train-sizes`` (default 112 and 96), on 1 and on 2 threads.

    OMP_NUM_THREADS=1 python benchmarks/gesture_latency.py [--sizes 112 224] [--repeats 200] [--training]
        [--json OUT]

Random weights (cost does not depend on them). The machine may be shared: compare ratios, not absolute times.
On a loaded machine set ``OMP_WAIT_POLICY=PASSIVE`` for the 2-thread rows: with OpenMP's default active wait a
2-thread step there ran 5-10x slower than a 1-thread step (its threads spin waiting for each other).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from hcgym.perception.gesture.backbones import BACKBONES, count_parameters, make_backbone
from hcgym.perception.gesture.cost import (
    first_conv_macs,
    latency,
    latency_markdown,
    model_macs,
    training_throughput,
)


def macs_table(sizes: list[int], backbones: list[str]) -> tuple[str, list[dict]]:
    rows = []
    for size in sizes:
        for b in backbones:
            m3, m4 = make_backbone(b, 3, 16), make_backbone(b, 4, 16)
            total3, total4 = model_macs(m3, size), model_macs(m4, size)
            rows.append({"size": size, "backbone": b, "params_rgb": count_parameters(m3),
                         "params_rgbd": count_parameters(m4), "first_conv_rgb": first_conv_macs(m3, size),
                         "first_conv_rgbd": first_conv_macs(m4, size), "total_rgb": total3, "total_rgbd": total4})
    lines = ["| S | backbone | params RGB / RGB-D | first-conv MACs RGB / RGB-D | network MACs RGB (ptflops / fvcore) "
             "| RGB-D extra |", "|---|---|---|---|---|---|"]
    for r in rows:
        extra = r["first_conv_rgbd"] - r["first_conv_rgb"]
        lines.append(f"| {r['size']} | {r['backbone']} | {r['params_rgb']:,} / {r['params_rgbd']:,} | "
                     f"{r['first_conv_rgb']:,} / {r['first_conv_rgbd']:,} | {r['total_rgb']['ptflops']:,} / "
                     f"{r['total_rgb']['fvcore']:,} | +{extra:,} (+{100 * extra / r['total_rgb']['fvcore']:.2f} %) |")
    return "\n".join(lines), rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    p.add_argument("--repeats", type=int, default=200, help="interleaved timing rounds per size")
    p.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    p.add_argument("--training", action="store_true", help="also time training throughput")
    p.add_argument("--train-sizes", type=int, nargs="+", default=[112, 96])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--train-repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write every number here")
    args = p.parse_args()

    print(f"# gesture backbones: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads available\n")
    table, mac_rows = macs_table(args.sizes, args.backbones)
    print(table + "\n")
    report: dict = {"macs": mac_rows, "latency": [], "training": []}
    for size in args.sizes:
        result = latency(args.backbones, size=size, repeats=args.repeats, seed=args.seed)
        report["latency"].append(result)
        print(latency_markdown(result) + "\n", flush=True)
    if args.training:
        lines = ["| backbone | S | threads | samples/s | step s (median) |", "|---|---|---|---|---|"]
        for size in args.train_sizes:
            for threads in (1, 2):
                res = training_throughput(args.backbones, size=size, batch=args.batch, threads=threads,
                                          repeats=args.train_repeats, seed=args.seed)
                for b, r in res.items():
                    report["training"].append({"backbone": b, "size": size, "threads": threads, **r})
                    lines.append(f"| {b} | {size} | {threads} | {r['samples_per_s']:.1f} | {r['median_step_s']:.3f} |")
                print(f"training throughput S={size}, {threads} thread(s) done", flush=True)
        print(f"Training throughput, RGB-D batches of {args.batch}:\n\n" + "\n".join(lines))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
