"""Latency of every NMS method and of the person detector, PyTorch against ONNX Runtime.

1. Classical NMS family: for N = 100, 200, 400 candidates (jittered boxes around 30 people in a
   640x480 image, random scores), the median time per call in milliseconds of every method and its
   ratio to greedy NMS at IoU 0.5, all measured in this run (numpy).
2. Seq2Seq-NMS (the shipped checkpoint when there is one, else the untrained CPU configuration: the
   time does not depend on the weights): median ms per image at N = 100/200/400 of the full
   ``Seq2SeqNMS`` call, edge map included, with the former dense computation (``fast=False``) and the
   fast path (grid-sample ROIAlign, attention on the unmasked pairs only), the largest score difference
   between the two, and the ONNX export of the fast path (the same call on ONNX Runtime,
   ``hcgym export nms/seq2seq``) with its difference to PyTorch.
3. The person detector: median ms per image (network only, and raw candidates with the pre-NMS) in
   PyTorch and ONNX Runtime, and the ratio.

    python benchmarks/nms.py [--repeats 30] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def crowded_candidates(n: int, rng: np.random.Generator, people: int = 30, w_img: int = 640, h_img: int = 480
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` candidate boxes (xyxy pixels) jittered around ``people`` overlapping persons, and their scores."""
    w = rng.uniform(25, 70, people) * w_img / 640
    h = w * rng.uniform(2.2, 2.8, people)
    x = rng.uniform(0, w_img - w)
    y = rng.uniform(0, h_img - h)
    who = rng.integers(0, people, n)
    sw, sh = np.exp(rng.normal(0, 0.15, n)), np.exp(rng.normal(0, 0.15, n))
    x0 = x[who] + rng.normal(0, 0.15, n) * w[who]
    y0 = y[who] + rng.normal(0, 0.15, n) * h[who]
    boxes = np.stack([x0, y0, x0 + w[who] * sw, y0 + h[who] * sh], axis=1)
    return boxes, rng.uniform(0.01, 1.0, n)


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def alternating_ms(fns: list, repeats: int, warmup: int = 1) -> list[float]:
    """Median ms per call of each of ``fns``, called in turn in every round (so that a varying machine load
    weighs on each alike)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [1000 * statistics.median(t) for t in times]


def scene_image(rng: np.random.Generator, w: int = 640, h: int = 480) -> np.ndarray:
    """A cluttered synthetic RGB image (80 rectangles on noise): edge density like a street scene."""
    from hcgym.perception.nms.simulate import synthetic_scene

    return synthetic_scene(rng, w, h, people=0, clutter=80)[0]


def classical(args: argparse.Namespace, rng: np.random.Generator) -> None:
    from hcgym.perception import nms

    cases = {n: crowded_candidates(n, rng) for n in args.sizes}
    names = [n for n in nms.list_methods() if not getattr(nms.make(n), "requires_image", False)]
    for n in args.sizes:  # let the allocator settle on the largest arrays before anything is timed
        for name in names:
            nms.make(name)(*cases[n])
    table = {name: {n: median_ms(lambda m=nms.make(name), c=cases[n]: m(*c), args.repeats) for n in args.sizes}
             for name in names}
    kept = {name: {n: len(nms.make(name)(*cases[n]).keep) for n in args.sizes} for name in names}
    head = " | ".join(f"N={n}: ms (x greedy_0.5), kept" for n in args.sizes)
    print(f"| method | {head} |")
    print("|---|" + "---|" * len(args.sizes))
    for name in names:
        cells = " | ".join(f"{table[name][n]:.2f} ({table[name][n] / table['greedy_0.5'][n]:.1f}x), {kept[name][n]}"
                           for n in args.sizes)
        print(f"| {name} | {cells} |")
    print(f"\nmedian of {args.repeats} calls after warm-up, seed {args.seed}; numpy float64 on CPU\n")


def seq2seq(args: argparse.Namespace, rng: np.random.Generator, tmp: Path) -> None:
    from hcgym.perception.base import OnnxSensor
    from hcgym.perception.nms import seq2seq as s2s

    method = s2s.Seq2SeqNMS(checkpoint=args.checkpoint)  # None: untrained (the time does not depend on weights)
    method.name = "nms/seq2seq"
    model = method.model
    image = scene_image(rng)
    exported = OnnxSensor(method.export_onnx(tmp / "seq2seq.onnx"), threads=args.threads, sensor="nms/seq2seq")
    old = s2s.Seq2SeqNMS(model=model, fast=False)
    print(f"| Seq2Seq-NMS ({'checkpoint' if args.checkpoint else 'untrained'}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters) | PyTorch before (dense) ms | "
          "PyTorch fast ms | speed-up | fast vs before max abs diff | ONNX Runtime ms | ONNX vs PyTorch max abs diff |")
    print("|---|---|---|---|---|---|---|")
    reps = max(3, args.repeats // 5)
    for n in args.sizes:
        boxes, scores = crowded_candidates(n, rng)
        t_old = median_ms(lambda: old(boxes, scores, image), reps, warmup=1)
        t_fast, t_onnx = alternating_ms([lambda: method(boxes, scores, image), lambda: exported(boxes, scores, image)],
                                        args.repeats)
        p_fast = method(boxes, scores, image).scores
        gap_old = float(np.abs(p_fast - old(boxes, scores, image).scores).max())
        gap = float(np.abs(p_fast - exported(boxes, scores, image).scores).max())
        print(f"| N={n} | {t_old:.1f} | {t_fast:.1f} | {t_old / t_fast:.1f}x | {gap_old:.1e} | {t_onnx:.1f} | {gap:.1e} |")
    print(f"\nmedian of {reps} calls (dense) and {args.repeats} calls (fast path and ONNX, called in turn) after "
          f"warm-up; whole call, edge map included; {args.threads} thread(s)\n")


def detector(args: argparse.Namespace, rng: np.random.Generator, tmp: Path) -> None:
    from hcgym.perception.base import OnnxSensor
    from hcgym.perception.detection.centernet import CenterNet
    from hcgym.perception.detection.sensor import SHIPPED, PersonDetector

    det = PersonDetector() if SHIPPED.is_file() else PersonDetector(model=CenterNet())
    onnx = OnnxSensor(det.export_onnx(tmp / "person.onnx"), threads=args.threads)
    image = scene_image(rng)
    x, _ = det.preprocess(image)
    rows = [("network (384x288 canvas)", lambda: det.run_model(x), lambda: onnx.inner.run_model(x)),
            ("raw candidates, N=400 (pre-NMS 0.8)", lambda: det.candidates(image, 400),
             lambda: onnx.candidates(image, 400))]
    print("| person detector | PyTorch ms | ONNX Runtime ms | ONNX / PyTorch |")
    print("|---|---|---|---|")
    for name, ft, fo in rows:
        tt, to = median_ms(ft, args.repeats), median_ms(fo, args.repeats)
        print(f"| {name} | {tt:.1f} | {to:.1f} | {to / tt:.2f}x |")
    gap = float(np.abs(det.maps(image)[0] - onnx.maps(image)[0]).max())
    print(f"\nmedian of {args.repeats} images after warm-up, {args.threads} thread(s); ONNX vs PyTorch output "
          f"maps max abs diff {gap:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400])
    ap.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    ap.add_argument("--checkpoint", default=None, help="Seq2Seq-NMS checkpoint (default: the shipped one)")
    ap.add_argument("--only", choices=("classical", "seq2seq", "detector"), default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.checkpoint is None:
        from hcgym.perception.nms.seq2seq import SHIPPED

        args.checkpoint = str(SHIPPED) if SHIPPED.is_file() else None
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("classical", "seq2seq", "detector"):
            if args.only in (None, part):
                globals()[part](args, rng, *([] if part == "classical" else [Path(tmp)]))


if __name__ == "__main__":
    main()
