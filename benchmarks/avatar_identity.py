"""Identity separability of hcgym avatars under dlib's face recognizer.

Runs :func:`hcgym.synthesis.identity_study.run_identity_study` and writes the
distance histogram and the numbers that ``docs/avatars.md`` reports.

    python benchmarks/avatar_identity.py --n 100 --out docs/figures
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="number of avatars")
    ap.add_argument("--seed", type=int, default=5000, help="first avatar seed")
    ap.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = ap.parse_args()
    from hcgym.synthesis.identity_study import plot_distances, run_identity_study

    t0 = time.perf_counter()
    result = run_identity_study(args.n, args.seed, progress=True)
    summary = {**result.summary(), "seed": args.seed, "resolution": "400x300", "distance_m": 1.0,
               "seconds": round(time.perf_counter() - t0, 1), "misses": result.misses}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "avatar_identity.json").write_text(json.dumps(summary, indent=1))
    fig = plot_distances(result, args.out / "avatar_identity.png")
    print(json.dumps(summary, indent=1))
    print(f"wrote {fig}")


if __name__ == "__main__":
    main()
