"""Latency of the classical NMS family on crowded random candidates.

For N = 100, 200, 400 candidates (jittered boxes around 30 people in a 640x480 image, random
scores), prints the median time per call in milliseconds of every registered method and its ratio
to greedy NMS at IoU 0.5, all measured in this run (numpy, one CPU thread of work).

    python benchmarks/nms.py [--repeats 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def crowded_candidates(n: int, rng: np.random.Generator, people: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """``n`` candidate boxes (xyxy pixels) jittered around ``people`` overlapping persons, and their scores."""
    w = rng.uniform(25, 70, people)
    h = w * rng.uniform(2.2, 2.8, people)
    x = rng.uniform(0, 640 - w)
    y = rng.uniform(0, 480 - h)
    who = rng.integers(0, people, n)
    sw, sh = np.exp(rng.normal(0, 0.15, n)), np.exp(rng.normal(0, 0.15, n))
    x0 = x[who] + rng.normal(0, 0.15, n) * w[who]
    y0 = y[who] + rng.normal(0, 0.15, n) * h[who]
    boxes = np.stack([x0, y0, x0 + w[who] * sw, y0 + h[who] * sh], axis=1)
    return boxes, rng.uniform(0.01, 1.0, n)


def median_ms(method, boxes, scores, repeats: int) -> float:
    for _ in range(3):  # warm-up
        method(boxes, scores)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        method(boxes, scores)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400])
    args = ap.parse_args()

    from hcgym.perception import nms

    rng = np.random.default_rng(args.seed)
    cases = {n: crowded_candidates(n, rng) for n in args.sizes}
    names = nms.list_methods()
    for n in args.sizes:  # let the allocator settle on the largest arrays before anything is timed
        for name in names:
            nms.make(name)(*cases[n])
    table = {name: {n: median_ms(nms.make(name), *cases[n], args.repeats) for n in args.sizes} for name in names}
    kept = {name: {n: len(nms.make(name)(*cases[n]).keep) for n in args.sizes} for name in names}

    head = " | ".join(f"N={n}: ms (x greedy_0.5), kept" for n in args.sizes)
    print(f"| method | {head} |")
    print("|---|" + "---|" * len(args.sizes))
    for name in names:
        cells = " | ".join(f"{table[name][n]:.2f} ({table[name][n] / table['greedy_0.5'][n]:.1f}x), {kept[name][n]}"
                           for n in args.sizes)
        print(f"| {name} | {cells} |")
    print(f"\nmedian of {args.repeats} calls after warm-up, seed {args.seed}; numpy float64 on CPU")


if __name__ == "__main__":
    main()
