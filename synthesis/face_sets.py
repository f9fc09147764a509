"""Face-verification test sets built in the simulator, after LFW, CPLFW and CALFW.

Each set renders held-out avatar identities and draws verification pairs
(half same identity, half different), scored with the LFW protocol (10-fold
cross-validated threshold):

* ``lfw_like``: near-frontal views (yaw within 20 degrees), mild expressions and light changes.
* ``cplfw_like``: every pair crosses pose: a near-frontal view (within 10 degrees) against a
  view at 45-70 degrees of yaw, for same and different identities alike.
* ``calfw_like``: every same-identity pair crosses age: the identity at its own ``age`` against the
  same identity aged by 0.25 (anny phenotype, about 25-30 years; greyer hair); different-identity
  pairs are drawn within the same gender, as CALFW does.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hcgym.synthesis.avatar_spec import AvatarSpec
from hcgym.synthesis.face_crops import CropSettings, identity_spec, render_identity

SETS = ("lfw_like", "cplfw_like", "calfw_like")


def held_out_identities(seed: int, n: int) -> list[int]:
    """Identity seeds of a held-out set (disjoint from the training range 100000-199999)."""
    return [500_000 + 10_000 * int(seed) + i for i in range(n)]


def aged(spec: AvatarSpec, delta: float = 0.25) -> AvatarSpec:
    """The same person ``delta`` older in anny's age phenotype (younger if that would pass 1.0), hair greyer."""
    age = spec.phenotype.get("age", 0.5)
    new_age = age + delta if age + delta <= 1.0 else age - delta
    hair = np.asarray(spec.appearance.hair)
    if new_age > age:
        hair = 0.55 * hair + 0.45 * np.array([0.62, 0.60, 0.58])
    appearance = replace(spec.appearance, hair=tuple(float(x) for x in hair))
    return spec.with_(phenotype={**spec.phenotype, "age": float(new_age)}, appearance=appearance)


def dlib_reference(frame, human: int) -> np.ndarray:
    """dlib's 128-d embedding of the full-resolution render on the ground-truth face box (no detector)."""
    from hcgym.perception.face import dlib_models

    return dlib_models.embed(frame.rgb, frame.humans[human].face_box)


def render_set(kind: str, identity_seeds: list[int], per_identity: int = 8, size: int = 56,
               seed: int = 0, progress: bool = False, with_dlib: bool = True, workers: int = 1,
               chunk: int = 25) -> dict[str, np.ndarray]:
    """Chips, labels (index of the identity), ``group`` (0 frontal/young, 1 profile/aged), yaw, gender
    and (``with_dlib``) dlib's embeddings of the same renders (``dlib``).

    With ``workers > 1`` chunks of ``chunk`` identities render in fresh processes (PyBullet keeps every
    loaded texture until its process ends); results do not depend on ``workers`` or ``chunk``.
    """
    if kind not in SETS:
        from hcgym.errors import SpecError

        raise SpecError("set", f"unknown face set {kind!r} (allowed: {', '.join(SETS)})")
    jobs = [(kind, list(enumerate(identity_seeds))[i:i + chunk], per_identity, size, seed, with_dlib)
            for i in range(0, len(identity_seeds), chunk)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(identity_seeds), desc=kind, unit="identity")
    parts = []
    if workers <= 1:
        for job in jobs:
            parts.append(_render_identities(*job))
            if bar:
                bar.update(len(job[1]))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
            for job, part in zip(jobs, pool.imap(_render_job, jobs)):
                parts.append(part)
                if bar:
                    bar.update(len(job[1]))
    if bar:
        bar.close()
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _render_job(job) -> dict[str, np.ndarray]:
    return _render_identities(*job)


def _render_identities(kind: str, labelled: list[tuple[int, int]], per_identity: int, size: int, seed: int,
                       with_dlib: bool) -> dict[str, np.ndarray]:
    from hcgym.synthesis.builder import build_avatar
    from hcgym.synthesis.face_crops import _studio_for

    mild = CropSettings(size=size, yaw=(-20.0, 20.0), pitch=(-10.0, 10.0), variants=2,
                        expression_intensity=(0.2, 0.5), low_res=0.1, light_ambient=(0.4, 0.6))
    out: dict[str, list] = {"chips": [], "labels": [], "group": [], "yaw": [], "gender": [], "dlib": []}
    hook = dlib_reference if with_dlib else None
    for label, ident in labelled:
        rng = np.random.default_rng(np.random.SeedSequence([seed, ident, SETS.index(kind)]))
        base = identity_spec(ident)
        expr = base.with_(expression=str(rng.choice(("happy", "sad", "surprise"))),
                          expression_intensity=float(rng.uniform(0.2, 0.5)))
        if kind == "calfw_like":
            specs = [base, aged(base)]
            group_of = lambda i: i % 2  # noqa: E731 - alternate young / aged
        else:
            specs = [base, expr]
            group_of = None
        for s in specs:
            build_avatar(s)
        sim = _studio_for(specs)
        try:
            if kind == "cplfw_like":
                res = render_identity(sim, len(specs), per_identity, mild, rng, yaw_sampler=_alternating_yaw(),
                                      frame_hook=hook)
                group = (np.abs(res[1]) > 30).astype(np.int8)
            elif kind == "calfw_like":
                res = render_identity(sim, len(specs), per_identity, mild, rng, variant_sampler=group_of,
                                      frame_hook=hook)
                group = res[4].astype(np.int8)
            else:
                res = render_identity(sim, len(specs), per_identity, mild, rng, frame_hook=hook)
                group = np.zeros(len(res[0]), np.int8)
            chips, yaws = res[0], res[1]
            if with_dlib:
                out["dlib"].append(res[5])
        finally:
            sim.close()
        out["chips"].append(chips)
        out["labels"].append(np.full(len(chips), label, np.int32))
        out["group"].append(group)
        out["yaw"].append(yaws)
        out["gender"].append(np.full(len(chips), base.phenotype["gender"] > 0.5, np.int8))
    return {k: np.concatenate(v) for k, v in out.items() if v}


def _alternating_yaw():
    """Yaw sampler alternating a near-frontal view (within 10 degrees) and a 45-70 degree view."""
    count = [0]

    def sample(r: np.random.Generator) -> float:
        count[0] += 1
        return float(r.uniform(-10, 10)) if count[0] % 2 else float(r.choice([-1, 1]) * r.uniform(45, 70))

    return sample


def make_pairs(data: dict[str, np.ndarray], kind: str, n_pairs: int = 6000, seed: int = 0) -> np.ndarray:
    """(n_pairs, 3) int array of (index a, index b, same) with half same and half different pairs."""
    rng = np.random.default_rng(seed)
    labels, group, gender = data["labels"], data["group"], data["gender"]
    by_label: dict[int, np.ndarray] = {int(lab): np.flatnonzero(labels == lab) for lab in np.unique(labels)}
    ids = np.array(sorted(by_label))
    half = n_pairs // 2
    same, diff = set(), set()
    cross = kind in ("cplfw_like", "calfw_like")
    tries = 0
    while len(same) < half and tries < 50 * n_pairs:
        tries += 1
        idx = by_label[int(rng.choice(ids))]
        if cross:
            a_side, b_side = idx[group[idx] == 0], idx[group[idx] == 1]
            if not len(a_side) or not len(b_side):
                continue
            a, b = int(rng.choice(a_side)), int(rng.choice(b_side))
        else:
            if len(idx) < 2:
                continue
            a, b = (int(x) for x in rng.choice(idx, 2, replace=False))
        same.add((min(a, b), max(a, b)))
    while len(diff) < half and tries < 100 * n_pairs:
        tries += 1
        la, lb = rng.choice(ids, 2, replace=False)
        ia, ib = by_label[int(la)], by_label[int(lb)]
        if kind == "calfw_like" and gender[ia[0]] != gender[ib[0]]:
            continue
        if kind == "cplfw_like":
            ia, ib = ia[group[ia] == 0], ib[group[ib] == 1]
            if not len(ia) or not len(ib):
                continue
        a, b = int(rng.choice(ia)), int(rng.choice(ib))
        diff.add((min(a, b), max(a, b)))
    if len(same) < half or len(diff) < half:
        from hcgym.errors import SpecError

        raise SpecError("pairs", f"only {len(same)} same / {len(diff)} different distinct pairs available for "
                                 f"{n_pairs} requested: render more identities or images per identity")
    rows = [(a, b, 1) for a, b in sorted(same)] + [(a, b, 0) for a, b in sorted(diff)]
    out = np.asarray(rows, dtype=np.int64)
    return out[rng.permutation(len(out))]
