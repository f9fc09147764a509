"""``hcgym train expression``: the expression models of the seed's Tables 19-21, the Monte Carlo dropout seed
study and the live sensor's stream model, on the rendered expression caches.

For each protocol (``ck``: the posed cache, frame 0 and three apex frames; ``afew``: the wild cache,
``--afew-frames`` frames over the clip) and landmark source (``--sources``), trains ST-GCN, AGCN and ST-BLN
at the seed's widths and PST-BLN by progressive growth (block 5, thresholds 1e-4), on the caches' ``train``
identities (validated on ``val``, scored on ``test``); then the seed study (the network PST-BLN's search
found, fine-tuned with each of ``--mcd-seeds``) and the stream model (windows of ``--stream-window`` frames at
``--stream-fps`` of both caches, labelled with their last frame's expression). The protocol is
:mod:`hcgym.perception.expression.study`. Every run is keyed by its settings and data and resumable;
``--shard K/N`` splits the runs between processes. Once all runs are done, writes ``OUT/expression_models.pt``,
``OUT/expression_stream.pt`` and their ``PROVENANCE_*.json`` (copy them into perception/expression/models to
ship them)::

    hcgym train expression --posed DATA/posed.npz --wild DATA/wild.npz --out out/expression --shard 0/2 &
    hcgym train expression --posed DATA/posed.npz --wild DATA/wild.npz --out out/expression --shard 1/2

The caches: ``hcgym generate --mode clips --labels expressions --style posed|wild ...`` then
``hcgym.synthesis.expression_data.prepare`` (docs/expression.md, "Training the models").
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from hcgym.scripts import _args


def _words(text: str) -> tuple[str, ...]:
    vals = tuple(v.strip() for v in text.split(",") if v.strip())
    if not vals:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return vals


def register(targets: argparse._SubParsersAction) -> None:
    """Add the ``expression`` target to ``hcgym train``."""
    from hcgym.perception.expression.study import ExprStudySettings

    d = ExprStudySettings()
    p = targets.add_parser("expression", help="expression models (ST-GCN, AGCN, ST-BLN, PST-BLN; MC dropout seeds; "
                                              "the stream model)", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--posed", type=Path, default=None, help="posed expression cache (.npz): protocol ck")
    p.add_argument("--wild", type=Path, default=None, help="wild expression cache (.npz): protocol afew")
    p.add_argument("--out", type=Path, default=Path("out/expression"), help="runs and the shipped files")
    p.add_argument("--protocols", type=_words, default=d.protocols, help="comma-separated: ck, afew")
    p.add_argument("--sources", type=_words, default=d.sources, help="comma-separated: dlib, mesh51, truth")
    p.add_argument("--afew-frames", type=_args.positive_int, default=d.afew_frames,
                   help="frames taken at equal intervals from a wild clip")
    p.add_argument("--epochs-ck", type=_args.positive_int, default=d.epochs_ck)
    p.add_argument("--epochs-afew", type=_args.positive_int, default=d.epochs_afew)
    p.add_argument("--batch", type=_args.positive_int, default=d.batch)
    p.add_argument("--lr", type=_args.positive_float, default=d.lr, help="peak SGD learning rate (cosine decay)")
    p.add_argument("--max-layers", type=_args.positive_int, default=d.max_layers, help="PST-BLN depth cap")
    p.add_argument("--max-width", type=_args.positive_int, default=d.max_width, help="PST-BLN width cap")
    p.add_argument("--step-epochs", type=_args.positive_int, default=d.step_epochs,
                   help="epochs of each PST-BLN growth step (ck)")
    p.add_argument("--step-epochs-afew", type=_args.positive_int, default=d.step_epochs_afew,
                   help="epochs of each PST-BLN growth step (afew)")
    p.add_argument("--mcd-seeds", type=_args.seed_range, default=list(d.mcd_seeds), help="seed study seeds, e.g. 0-4")
    p.add_argument("--mcd-on", type=_words, default=d.mcd_on, help="PROTOCOL-SOURCE pairs of the seed study")
    p.add_argument("--stream-window", type=_args.positive_int, default=d.stream_window, help="frames")
    p.add_argument("--stream-fps", type=_args.positive_float, default=d.stream_fps)
    p.add_argument("--stream-per-clip", type=_args.positive_int, default=d.stream_per_clip,
                   help="windows cut from each training clip")
    p.add_argument("--stream-epochs", type=_args.positive_int, default=d.stream_epochs)
    p.add_argument("--stream-from", default=d.stream_from, help="PROTOCOL-SOURCE whose PST-BLN topology it uses")
    p.add_argument("--shard", default=None, help="K/N: train the runs i with i %% N == K")
    p.add_argument("--threads", type=_args.positive_int, default=1, help="torch CPU threads")
    p.add_argument("--wait", type=_args.positive_float, default=3600.0,
                   help="seconds to wait for another shard's PST-BLN topology")
    p.add_argument("--tiny", action="store_true", help="a seconds-long smoke configuration (tests, CI)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcgym.perception.action.study import parse_shard
    from hcgym.perception.expression.study import ExprStudySettings, train_study

    t0 = time.time()
    settings = ExprStudySettings(
        protocols=args.protocols, sources=args.sources, afew_frames=args.afew_frames, epochs_ck=args.epochs_ck,
        epochs_afew=args.epochs_afew, batch=args.batch, lr=args.lr, max_layers=args.max_layers,
        max_width=args.max_width, step_epochs=args.step_epochs, step_epochs_afew=args.step_epochs_afew,
        mcd_seeds=tuple(args.mcd_seeds), mcd_on=args.mcd_on,
        stream_window=args.stream_window, stream_fps=args.stream_fps, stream_per_clip=args.stream_per_clip,
        stream_epochs=args.stream_epochs, stream_from=args.stream_from, tiny=args.tiny).check()
    shard = parse_shard(args.shard)
    command = "hcgym " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))
    files = train_study(args.posed, args.wild, args.out, settings, shard, args.threads, args.wait, command=command)
    if files is None:
        print(f"[expression] this shard is done ({time.time() - t0:.0f} s); runs of other shards or sets remain",
              flush=True)
    else:
        print(f"[expression] wrote {', '.join(str(f) for f in files)} ({time.time() - t0:.0f} s)", flush=True)
    return 0
