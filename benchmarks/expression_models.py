"""Parameters and single-thread CPU time of the expression models: ST-GCN, AGCN, ST-BLN and a PST-BLN.

For clips of ``T = 4`` (CK+ protocol) and ``T = 32`` frames of 51 landmarks, builds ST-GCN, AGCN and ST-BLN at the
seed's widths {8, 16, 16, 32, 32, 64, 64} and a PST-BLN at ``--pstbln`` widths (default the topology the seed
found on AFEW, {15, 10, 15, 5, 5, 10}) on the Delaunay graph of the procedural template, and prints for each
the parameters (all trainable, and without the learnable graph matrices: the seed's convention) and the
eval-mode time per sequence with one torch thread, at batch 1 and at ``--batch``, measured in interleaved
rounds (median), with its ratio to ST-BLN.

    OMP_NUM_THREADS=1 python benchmarks/expression_models.py [--rounds 20] [--batch 32] [--pstbln 15,10,15,5,5,10]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="timing rounds (median reported)")
    ap.add_argument("--batch", type=int, default=32, help="batch of the second timing")
    ap.add_argument("--pstbln", default="15,10,15,5,5,10", help="PST-BLN widths, comma-separated")
    ap.add_argument("--frames", default="4,32", help="clip lengths, comma-separated")
    args = ap.parse_args()

    import dataclasses

    import numpy as np
    import torch

    from hcgym.perception.expression.graph import DLIB51, face_graph
    from hcgym.perception.expression.models import ExprModelConfig, build_model, count_params
    from hcgym.perception.expression.toy import template51, toy_sequences

    torch.set_num_threads(1)
    graph = face_graph(DLIB51, template51())
    pst = tuple(int(w) for w in args.pstbln.split(","))
    print(f"51 landmarks, E = {graph.num_edges} edges (Delaunay, deduplicated, + master node); one torch thread")
    for frames in (int(t) for t in args.frames.split(",")):
        base = ExprModelConfig(graph=graph, frames=frames)
        models = {"ST-GCN": dataclasses.replace(base, model="stgcn"), "AGCN": dataclasses.replace(base, model="agcn"),
                  "ST-BLN": base, "PST-BLN": dataclasses.replace(base, widths=pst, residual="conv")}
        nets = {name: build_model(cfg).eval() for name, cfg in models.items()}
        x = torch.from_numpy(toy_sequences(max(1, args.batch // 7 + 1), frames=frames, seed=0)[0][:args.batch])
        times: dict[str, dict[int, list[float]]] = {name: {1: [], len(x): []} for name in nets}
        with torch.no_grad():
            for net in nets.values():                     # warm-up
                net(x[:1])
                net(x)
            for _ in range(args.rounds):
                for name, net in nets.items():
                    for b in (1, len(x)):
                        t0 = time.perf_counter()
                        net(x[:b])
                        times[name][b].append((time.perf_counter() - t0) * 1e3 / b)
        ms = {name: {b: float(np.median(v)) for b, v in t.items()} for name, t in times.items()}
        ref = ms["ST-BLN"]
        print(f"\nT = {frames} (temporal kernel {base.kernel}, strides {list(base.strides)})")
        print(f"| model | widths | params | params without graph matrices | ms/seq (batch 1) | x ST-BLN | "
              f"ms/seq (batch {len(x)}) | x ST-BLN |")
        print("|---|---|---|---|---|---|---|---|")
        for name, net in nets.items():
            c = count_params(net)
            m = ms[name]
            print(f"| {name} | {list(net.cfg.widths)} | {c['params']:,} | {c['params_no_graph']:,} | {m[1]:.2f} | "
                  f"{m[1] / ref[1]:.2f} | {m[len(x)]:.3f} | {m[len(x)] / ref[len(x)]:.2f} |")


if __name__ == "__main__":
    main()
