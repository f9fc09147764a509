"""Clip vs continual action models: MACs per prediction, single-thread predictions per second, state memory.

Rows (random weights: cost does not depend on them): CoX3D against X3D on clips of 16 frames at 112x112
(the project's small default X3D, and the X3D-M layout: widths 24/48/96/192, depths 3/5/11/7, SE in every
block; also at 224x224, X3D-M's own resolution), and CoST-GCN, CoST-GCN*, CoAGCN, CoAGCN* against ST-GCN /
AGCN on T = 300 frames, 25 joints, M = 2 persons, the full widths 64x4, 128x3, 256x3.

* MACs per prediction of the clip model and of the continual model, by ptflops and fvcore
  (:mod:`hcgym.perception.action.cost`), and their ratio. The clip models are the regular ones of the
  paper: temporal zero padding (X3D's trunk sees all 16 frames), ST-GCN / AGCN with stride 2 in layers 5
  and 8, AGCN with its whole-clip attention. The continual models are converted from them (no padding,
  per-frame attention); "*" rows set every stride to 1 (one prediction per frame) and are compared with the
  strided clip model, as the paper does. The small X3D also has a row against its clip model without
  temporal padding (its trunk computes only the frames the global pool keeps after the receptive field;
  the X3D-M layout without padding needs more than 16 frames).
* Predictions per second on one thread (``torch.set_num_threads(1)``), batch 1, every variant of a row timed
  in turn in every round (``cost.throughput``): eager (the clip model on one clip; the continual model
  through its public ``forward_step``), traced (both traced with ``torch.jit.trace``; the continual one
  through its explicit-state step, the graph its ONNX export records, so neither pays Python per module),
  and like-with-like (traced, with every convolution of both run as per-frame 2D / 1D convolutions and
  temporal padding skipped, ``stepping.per_frame_convolutions``: the same kernels on both sides, the reference's
  caveat about torch's CPU conv3d). Ratios are per round, median [min - max] over the rounds.
* CoX3D rows also run both models two more ways, each traced in torch and exported to ONNX Runtime (one
  thread, sequential, every graph optimisation, the state outputs fed back as inputs): as exported today (the
  clip model by ``torch.onnx.export``, the step by ``onnx_step.export_step``), and in frame layout
  (``stepping.FrameX3D`` / ``stepping.FrameX3DStep``: batch norms folded, frames in the batch, one conv2d per
  temporal tap, the step's minimal state as separate tensors). "Fastest vs fastest" divides, per round and
  runtime, the fastest clip way by the fastest continual way; a second table lists every way of each CoX3D row.
* Parameters, state floats (and bytes, int64 ring indices included) and the delay in frames.

    python benchmarks/action_continual.py [--quick] [--repeats 7] [--seed 0] [--json OUT]

``--quick``: only the small X3D, GCN widths 16/32/64 and M = 1. Run with ``OMP_NUM_THREADS=1``; the
machine may be shared, hence the spread. (The file is not named ``continual.py``: a script of that name
would shadow the ``continual`` package it imports.)
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

X3D_M = dict(num_classes=400, stem_width=24, widths=(24, 48, 96, 192), depths=(3, 5, 11, 7), head_width=2048,
             attention_reduction=16)
GCN_FULL = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
GCN_REDUCED = (16, 16, 16, 16, 32, 32, 32, 64, 64, 64)


@dataclasses.dataclass
class Case:
    """One table row: a clip model, a factory of its continual version, a clip and a frame."""

    name: str
    clip_name: str
    clip_model: nn.Module
    make_continual: Callable[[], nn.Module]
    clip: torch.Tensor
    stream: torch.Tensor  # (1, C, T, ...) frames to step through


def x3d_cases(quick: bool, g: torch.Generator) -> list[Case]:
    from hcgym.perception.action.x3d import X3DConfig, build_x3d, to_continual

    cases = []
    layouts = [("small X3D", {}, 112)] + ([] if quick else [("X3D-M layout", X3D_M, 112), ("X3D-M layout", X3D_M, 224)])
    for label, layout, size in layouts:
        for padded in (True, False):
            cfg = X3DConfig(**layout, frames=16, size=size, temporal_padding=padded)
            if cfg.pool_size < 1:  # without padding the trunk needs more than 16 frames
                continue
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
            clip_model = build_x3d(cfg).eval()
            clip_name = f"{label}, 16x{size}x{size}, " + ("temporal padding (as the paper)" if padded else "no padding")
            clip = torch.randn(1, 3, 16, size, size, generator=g)
            stream = torch.randn(1, 3, 8, size, size, generator=g)
            cases.append(Case(f"CoX3D, pool {cfg.pool_size}", clip_name, clip_model,
                              lambda m=clip_model: to_continual(m), clip, stream))
    return cases


def gcn_cases(quick: bool, g: torch.Generator, frames: int) -> list[Case]:
    from hcgym.perception.action.gcn import GCNConfig, build_gcn, star_variant, to_continual

    persons = 1 if quick else 2
    cases = []
    for model, co_name in (("stgcn", "CoST-GCN"), ("agcn", "CoAGCN")):
        cfg = GCNConfig(model=model, channels=GCN_REDUCED if quick else GCN_FULL, num_person=persons,
                        temporal_padding=True, attention="clip")
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
        clip_model = build_gcn(cfg).eval()
        clip = torch.randn(1, 3, frames, 25, persons, generator=g)
        stream = torch.randn(1, 3, 8, 25, persons, generator=g)
        clip_name = f"{'ST-GCN' if model == 'stgcn' else 'AGCN'}, T = {frames} (padding, strides 2 at layers 5, 8)"
        cases.append(Case(co_name, clip_name, clip_model, lambda m=clip_model: to_continual(m, frames), clip, stream))
        cases.append(Case(co_name + "*", clip_name, clip_model,
                          lambda m=clip_model: to_continual(star_variant(m), frames), clip, stream))
    return cases


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}x [{min(values):.1f} - {max(values):.1f}]"


def _runtime_variants(case: Case, tmp: Path) -> tuple[dict[str, Callable], dict[str, list[tuple]]]:
    """CoX3D only: the frame-layout clip and step (BN folded, :mod:`stepping`), traced and in ONNX Runtime, and the
    exported clip model and continual step (:func:`onnx_step.export_step`) in ONNX Runtime; each with its inputs."""
    import numpy as np

    from hcgym.perception.action import onnx_step, stepping

    frame_clip, frame_step = stepping.FrameX3D(case.clip_model), stepping.FrameX3DStep(case.clip_model)
    frames = [case.stream[:, :, t].contiguous() for t in range(case.stream.shape[2])]
    arrays = [(np.ascontiguousarray(f.numpy()),) for f in frames]
    clip_array = [(np.ascontiguousarray(case.clip.numpy()),)]
    state = frame_step.initial_state(1)
    traced = torch.jit.trace(frame_step, (frames[0], *state), check_trace=False)
    co_path = tmp / "step.onnx"
    onnx_step.export_step(case.make_continual(), co_path, frame_shape=tuple(case.stream.shape[1:2] + case.stream.shape[3:]))
    frame_state = stepping.export_frame_step(frame_step, tmp / "frame_step.onnx")
    fns = {"clip_frames_traced": stepping.traced_clip(frame_clip, case.clip),
           "step_frames_traced": stepping.StateLoop(traced, state),
           "clip_onnx": stepping.onnx_function(stepping.export_graph(case.clip_model, (case.clip,), tmp / "clip.onnx",
                                                                     ["clip"], ["logits"])),
           "step_onnx": stepping.StateLoop(stepping.onnx_function(co_path), onnx_step.OnnxStepRunner(co_path).state),
           "clip_frames_onnx": stepping.onnx_function(stepping.export_graph(frame_clip, (case.clip,),
                                                                            tmp / "frame_clip.onnx", ["clip"], ["logits"])),
           "step_frames_onnx": stepping.StateLoop(stepping.onnx_function(tmp / "frame_step.onnx"), frame_state)}
    inputs = {"clip_frames_traced": [(case.clip,)], "step_frames_traced": [(f,) for f in frames],
              "clip_onnx": clip_array, "step_onnx": arrays, "clip_frames_onnx": clip_array, "step_frames_onnx": arrays}
    for name in ("step_frames_traced", "step_onnx", "step_frames_onnx"):  # start from a full state
        for t in range(frame_step.delay):
            fns[name](*inputs[name][t % len(inputs[name])])
    return fns, inputs


#: (continual, clip) timings whose per-round ratio is reported; "fastest" pairs take the fastest of a runtime
PAIRS = {"forward_step": ("forward_step", "clip"), "step_traced": ("step_traced", "clip_traced"),
         "step_framed": ("step_framed", "clip_framed"), "frames_traced": ("step_frames_traced", "clip_frames_traced"),
         "onnx": ("step_onnx", "clip_onnx"), "frames_onnx": ("step_frames_onnx", "clip_frames_onnx")}
FASTEST = {"torch": ("forward_step", "step_traced", "step_framed", "step_frames_traced"),
           "onnxruntime": ("step_onnx", "step_frames_onnx")}


def measure(case: Case, repeats: int, seed: int) -> dict[str, Any]:
    """MACs, state and timing of one case."""
    import tempfile

    from hcgym.perception.action import cost, stepping

    co_model = case.make_continual().eval()
    flops = cost.flops_per_prediction(case.clip_model, co_model, case.clip, seed=seed)
    fpp = flops["frames_per_prediction"]
    memory = cost.state_memory(co_model, case.stream[:, :, 0])
    # timing: every continual variant starts from a full state; traced ones trace after the delay
    with torch.no_grad():
        for t in range(int(co_model.delay)):
            co_model.forward_step(case.stream[:, :, t % case.stream.shape[2]])
    framed_clip = stepping.per_frame_convolutions(case.clip_model)
    fns = {"clip": case.clip_model, "forward_step": co_model.forward_step,
           "clip_traced": stepping.traced_clip(case.clip_model, case.clip),
           "step_traced": stepping.TracedStep(case.make_continual(), case.stream),
           "clip_framed": stepping.traced_clip(framed_clip, case.clip),
           "step_framed": stepping.TracedStep(stepping.per_frame_convolutions(case.make_continual(), inplace=True),
                                          case.stream)}
    frames = [(case.stream[:, :, t],) for t in range(case.stream.shape[2])]
    inputs = {name: frames if name.startswith("step") or name == "forward_step" else [(case.clip,)] for name in fns}
    with tempfile.TemporaryDirectory(prefix="hcgym-bench-") as tmp, torch.no_grad():
        if case.name.startswith("CoX3D"):
            more, more_inputs = _runtime_variants(case, Path(tmp))
            fns.update(more)
            inputs.update(more_inputs)
        step_names = [name for name in fns if name.startswith("step") or name == "forward_step"]
        # each step sample covers about a fifth of a clip's MACs (at least one prediction)
        per_sample = max(1, round(flops["ratio"]["ptflops"] / 5)) * fpp
        timing = cost.throughput(fns, inputs, repeats=repeats, threads=1, calls={name: per_sample for name in step_names},
                                 warmup=2)
    seconds = {name: [s * (fpp if name in step_names else 1) for s in t["seconds"]] for name, t in timing.items()}
    ratios = {name: [c / s for c, s in zip(seconds[clip], seconds[step])]
              for name, (step, clip) in PAIRS.items() if step in seconds}
    for runtime, steps in FASTEST.items():  # per round: the fastest clip way over the fastest step way
        pairs = [PAIRS[s] for s in PAIRS if PAIRS[s][0] in steps and PAIRS[s][0] in seconds]
        rounds = range(len(seconds["clip"]) if pairs else 0)
        ratios[f"fastest_{runtime}"] = [min(seconds[c][r] for _, c in pairs) / min(seconds[s][r] for s, _ in pairs)
                                        for r in rounds]
    return {"name": case.name, "clip_model": case.clip_name, "macs": flops, "frames_per_prediction": fpp,
            "params": sum(p.numel() for p in case.clip_model.parameters()), "state": memory,
            "delay": int(co_model.delay),
            "preds_per_s": {name: [1 / s for s in v] for name, v in seconds.items()},
            "throughput_ratio": ratios}


def _m(x: float) -> str:
    return f"{x / 1e6:,.1f} M" if x < 1e9 else f"{x / 1e9:,.2f} G"


def table(rows: list[dict[str, Any]]) -> str:
    from hcgym.report import markdown_table

    head = ["continual model", "vs clip model", "clip MACs (ptflops / fvcore)", "MACs per prediction (ptflops / "
            "fvcore)", "MACs ratio (ptflops / fvcore)", "frames / pred", "clip preds/s (eager / traced)",
            "continual preds/s (forward_step / traced)", "throughput ratio, eager forward_step",
            "throughput ratio, traced", "like-with-like ratio (traced, per-frame convs)",
            "fastest vs fastest, torch", "fastest vs fastest, ONNX Runtime", "params", "state floats (bytes)", "delay"]
    body = []
    for r in rows:
        c, s, q = r["macs"]["clip"], r["macs"]["step"], r["macs"]["ratio"]
        p = {k: statistics.median(v) for k, v in r["preds_per_s"].items()}
        t = r["throughput_ratio"]
        ort = _spread(t["fastest_onnxruntime"]) if t["fastest_onnxruntime"] else "-"
        body.append([r["name"], r["clip_model"], f"{_m(c['ptflops'])} / {_m(c['fvcore'])}",
                     f"{_m(s['ptflops'])} / {_m(s['fvcore'])}", f"{q['ptflops']:.1f}x / {q['fvcore']:.1f}x",
                     str(r["frames_per_prediction"]), f"{p['clip']:.2f} / {p['clip_traced']:.2f}",
                     f"{p['forward_step']:.1f} / {p['step_traced']:.1f}", _spread(t["forward_step"]),
                     _spread(t["step_traced"]), _spread(t["step_framed"]), _spread(t["fastest_torch"]), ort,
                     f"{r['params']:,}", f"{r['state']['floats']:,} ({r['state']['bytes']:,})", str(r["delay"])])
    return "\n".join(markdown_table(head, body))


#: runtime table: (label, continual timing, clip timing, ratio key)
RUNTIMES = (("torch eager (forward_step / clip model)", "forward_step", "clip", "forward_step"),
            ("torch traced (explicit-state step / clip model)", "step_traced", "clip_traced", "step_traced"),
            ("torch traced, per-frame convs", "step_framed", "clip_framed", "step_framed"),
            ("torch traced, frame layout + folded BN", "step_frames_traced", "clip_frames_traced", "frames_traced"),
            ("ONNX Runtime (export_step / clip export)", "step_onnx", "clip_onnx", "onnx"),
            ("ONNX Runtime, frame layout + folded BN", "step_frames_onnx", "clip_frames_onnx", "frames_onnx"))


def runtime_table(rows: list[dict[str, Any]]) -> str:
    """CoX3D rows: predictions per second of clip and continual model and their ratio, per way of running them."""
    from hcgym.report import markdown_table

    head = ["continual model", "vs clip model", "runtime", "clip preds/s", "continual preds/s", "throughput ratio"]
    body = []
    for r in rows:
        if "onnx" not in r["throughput_ratio"]:
            continue
        p = {k: statistics.median(v) for k, v in r["preds_per_s"].items()}
        for label, step, clip, key in RUNTIMES:
            body.append([r["name"], r["clip_model"], label, f"{p[clip]:.2f}", f"{p[step]:.1f}",
                         _spread(r["throughput_ratio"][key])])
    return "\n".join(markdown_table(head, body))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small widths (see the module docstring)")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds per row")
    ap.add_argument("--frames", type=int, default=300, help="skeleton clip length T")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write every number to this JSON file")
    args = ap.parse_args()

    from hcgym.errors import SpecError

    if args.repeats < 1:
        raise SpecError("--repeats", f"expected a positive integer, got {args.repeats}")
    if args.json is not None and (args.json.is_dir() or args.json.suffix != ".json"):
        raise SpecError("--json", f"expected a .json file path, got {args.json}")
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    rows = []
    for case in x3d_cases(args.quick, g) + gcn_cases(args.quick, g, args.frames):
        rows.append(measure(case, args.repeats, args.seed))
        print(f"measured {case.name} vs {case.clip_name} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(table(rows))
    print()
    print(runtime_table(rows))
    widths = "small widths (--quick)" if args.quick else "full widths (GCN 64/128/256, M = 2)"
    import onnxruntime

    print(f"\n{widths}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"{platform.processor() or platform.machine()}, one thread, batch 1, {args.repeats} interleaved rounds, "
          f"seed {args.seed}; {time.perf_counter() - t0:.0f} s in all")
    if args.json is not None:
        from hcgym.paths import atomic_write_bytes
        from hcgym.report import json_bytes

        atomic_write_bytes(args.json, json_bytes({"quick": args.quick, "repeats": args.repeats, "seed": args.seed,
                                                  "frames": args.frames, "rows": rows}))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
