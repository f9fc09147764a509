"""RGB-D hand-gesture data: rendered samples of the 16 HANDS gestures, one compressed ``.npz``, and its loader.

:func:`generate_gestures` renders a set (:mod:`hcgym.synthesis.gesture_data_scene`: a person of an identity pool shows
a gesture to a Kinect-like robot camera 0.5-2.5 m away, in a cluttered room with skin-coloured distractors) and
writes, for N samples of crop side S:

================  ====================  ==============================================================
key               shape, dtype          content
================  ====================  ==============================================================
``rgb``           (N, S, S, 3) u8       the hand crop (RGB)
``depth``         (N, S, S) f16         metric z-depth at the same pixels, metres; 0 = no reading
                                        (exact: the Kinect-like noise is drawn at load time)
``box``           (N, 4) f32            the crop ``[x0, y0, x1, y1]`` in pixels of the 640x480 frame
``keypoints``     (N, 21, 3) f32        ground-truth hand keypoints (MediaPipe order): crop pixels
                                        ``u, v`` and camera depth (metres)
``keypoints_3d``  (N, 21, 3) f32        the same points in the person's frame (metres, x = their
                                        left, z = up; :func:`~hcgym.synthesis.motion.hands.
                                        classify_gesture` reads them as they are)
``label``         (N,) i64              gesture id (position in ``labels``)
``labels``        (16,) str             :data:`~hcgym.synthesis.motion.hands.GESTURES` (17 with ``none``,
                                        last: id 16)
``hand``          (N,) str              ``left`` / ``right``: the person's hand showing it
``identity``      (N,) i64              pool identity id (``avatar_seed``: its avatar)
``split``         (N,) str              ``train`` / ``val`` / ``test``, by identity
``distance``      (N,) f32              camera to the keypoints' centre, metres
``props``,        (N,) i16, f16         clutter objects placed; share of the crop showing a second
``distractor``                          person behind (0: none, or out of the crop)
``seconds``       (N,) f32              render time of the sample (posing, scene, render, crop)
``metadata``      () str                JSON: format, the configuration key, counts, timing
``posture``,      (N,) str, str, f16    only in sets with ``none``: the arm (``present``, ``hang``, or
``shape``,                              the timeline clip), the gesture the fingers form (``relaxed``)
``amount``                              and how far (1 for gesture samples, below 0.5 for ``none``)
================  ====================  ==============================================================

The class ``none`` (``GestureSetConfig(none=k)``, ``hcgym generate --mode gestures --with-none``): relaxed
hands whose truth in a world is ``none`` (:mod:`hcgym.synthesis.gesture_data_scene`: hanging at the side,
raised but relaxed, part-way to a gesture under the timeline's labelling weight, or in a relaxed upper-body
action), ``k`` times ``per_class[split]`` of them per identity after its gesture samples, their kinds cycled
(:data:`~hcgym.synthesis.gesture_data_scene.NONE_KINDS`). The gesture samples are the same with and without it
(their seeds do not change), and without it the arrays and the key are those of a 16-class set. So the gesture
samples may be taken from an existing 16-class set of the same configuration (``generate_gestures(cfg,
reuse=path)``, ``--reuse``): only the ``none`` samples are rendered and the result equals a full run but for
``seconds``.

Identities: pool identity ``j`` of dataset seed ``s`` is ``AvatarSpec.random(POOL_SEEDS + 1000 s + j)``; the
pool is split train/val/test by identity (:func:`hcgym.synthesis.dataset.clips.identity_splits`), every
identity shows every gesture ``per_class[split]`` times, and training crops are jittered. Fresh test sets
(:func:`fresh_test_set`) draw ``AvatarSpec.random(FRESH_SEEDS + 1000 seed + k)``: seeds no pool uses.

Generation is resumable: each identity is one chunk, ``<out>.parts/identity_JJJJJ.npz``, written atomically as
it finishes; a rerun renders only the missing chunks, then writes ``<out>`` atomically and removes the parts.

:class:`GestureData` loads such a file, or a folder of real RGB-D images (:meth:`GestureData.from_folder`,
:mod:`hcgym.synthesis.gesture_data_folders`: the HANDS data set or a simple layout), and gives model inputs::

    >>> data = GestureData.load("/tmp/hc16/gest/gestures_112.npz")
    >>> x, y = data.arrays("train", "rgbd")                    # (N, 4, 112, 112) float32, (N,) int64
    >>> x, y = data.arrays("test", "depth", noise=True, seed=3)   # Kinect-like depth, drawn from seed 3
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hcgym.errors import SpecError
from hcgym.perception.gesture.inputs import DEPTH_MODES, HAND_MARGIN, MODALITIES, channels, kinect_crops
from hcgym.synthesis.motion.hands import GESTURES

#: The class of a hand that shows no gesture (last label, after the 16 gestures).
NONE = "none"
FORMAT = "hcgym-gesture-data-1"
SPLITS = ("train", "val", "test")
#: First avatar seed of the identity pools (pool identity j of dataset seed s: POOL_SEEDS + 1000 s + j).
POOL_SEEDS = 300_000
#: First avatar seed of fresh test identities (identity k of seed s: FRESH_SEEDS + 1000 s + k).
FRESH_SEEDS = 700_000
#: Largest dataset seed and pool size (keeps every pool seed below FRESH_SEEDS).
MAX_SEED = 399
MAX_IDENTITIES = 1000
#: Background people drawn per identity (other identities of the same split).
DISTRACTOR_PEOPLE = 2
#: Keys of the file besides ``labels`` and ``metadata``, in order.
KEYS = ("rgb", "depth", "box", "keypoints", "keypoints_3d", "label", "hand", "identity", "avatar_seed", "split",
        "distance", "props", "distractor", "seconds")
#: Keys of sets with ``none`` besides :data:`KEYS`.
NONE_KEYS = ("posture", "shape", "amount")
#: Largest ``none`` factor.
MAX_NONE = 8


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class GestureSetConfig:
    """A rendered gesture set.

    Attributes:
        out: the ``.npz`` file (``None``: keep the set in memory, no resuming).
        seed: dataset seed (0..:data:`MAX_SEED`).
        identities: size of the identity pool.
        splits: train/val/test shares of the pool (normalised; e.g. ``(30, 4, 8)``).
        per_class: samples of each gesture per identity in train, val and test.
        size: crop side S in pixels.
        gestures: the gestures shown (a subset of :data:`GESTURES`, in that order).
        fresh: identities from the fresh range (:data:`FRESH_SEEDS`), every one in ``test``.
        workers: worker processes.
        none: 0 (16 classes), or the class ``none`` with ``none`` times ``per_class`` samples per identity.
    """

    out: Path | None = None
    seed: int = 0
    identities: int = 42
    splits: tuple[float, float, float] = (30.0, 4.0, 8.0)
    per_class: tuple[int, int, int] = (8, 4, 6)
    size: int = 112
    gestures: tuple[str, ...] = GESTURES
    fresh: bool = False
    workers: int = 1
    none: int = 0

    def check(self) -> "GestureSetConfig":
        """The config itself, or a :class:`SpecError` naming the first bad field."""
        if _bad_int(self.seed, 0, MAX_SEED if not self.fresh else 10 ** 6):
            raise SpecError("seed", f"expected an integer in [0, {MAX_SEED}], got {self.seed!r}")
        if _bad_int(self.identities, 1, MAX_IDENTITIES):
            raise SpecError("identities", f"expected an integer in [1, {MAX_IDENTITIES}], got {self.identities!r}")
        if len(self.splits) != 3 or any(not float(x) >= 0 for x in self.splits) or not sum(self.splits) > 0:
            raise SpecError("splits", f"expected three shares >= 0 with a positive sum, got {self.splits!r}")
        if len(self.per_class) != 3 or any(_bad_int(x, 0, 10_000) for x in self.per_class) or not any(
                p and s for p, s in zip(self.per_class, self.splits)):
            raise SpecError("per_class", f"expected three integers >= 0 (train, val, test), at least one positive "
                                         f"for a split with identities, got {self.per_class!r}")
        if _bad_int(self.size, 16, 1024):
            raise SpecError("size", f"expected a crop side in pixels, an integer in [16, 1024], got {self.size!r}")
        if _bad_int(self.none, 0, MAX_NONE):
            raise SpecError("none", f"expected an integer in [0, {MAX_NONE}] (samples of none per identity, in "
                                    f"units of per_class), got {self.none!r}")
        unknown = [g for g in self.gestures if g not in GESTURES]
        if (not self.gestures and not self.none) or unknown or len(set(self.gestures)) != len(self.gestures):
            raise SpecError("gestures", f"expected distinct gestures of {', '.join(GESTURES)}, got {self.gestures!r}")
        if _bad_int(self.workers, 1, 256):
            raise SpecError("workers", f"expected a positive integer, got {self.workers!r}")
        if self.out is not None:
            out = Path(self.out)
            if out.suffix != ".npz":
                raise SpecError("out", f"expected a .npz file name, got {out}")
            if out.is_dir():
                raise SpecError("out", f"{out} is a folder")
            parent = next((p for p in out.parents if p.exists()), None)
            if parent is not None and not parent.is_dir():
                raise SpecError("out", f"{parent} is not a folder")
        return self

    def key(self) -> dict[str, Any]:
        """Everything the samples depend on (stored in the metadata; a resumed run must match it)."""
        from hcgym.synthesis import gesture_data_scene as gs

        return {"format": FORMAT, "seed": int(self.seed), "identities": int(self.identities),
                "splits": [float(x) for x in self.splits], "per_class": [int(x) for x in self.per_class],
                "size": int(self.size), "gestures": list(self.gestures), "fresh": bool(self.fresh),
                "camera": {"size": list(gs.CAMERA_SIZE), "hfov": gs.CAMERA_HFOV, "distance": list(gs.DISTANCE),
                           "height": list(gs.CAMERA_HEIGHT), "body_yaw": gs.BODY_YAW},
                "margin": HAND_MARGIN, **({"none": self._none_key()} if self.none else {})}

    def _none_key(self) -> dict[str, Any]:
        from hcgym.synthesis import gesture_data_scene as gs

        return {"factor": int(self.none), "kinds": list(gs.NONE_KINDS), "label_amount": gs.LABEL_AMOUNT,
                "partial": list(gs.PARTIAL_AMOUNT), "raised_arms": gs.RAISED_ARMS,
                "actions": list(gs.RELAXED_ACTIONS), "clip": [gs.CLIP_SECONDS, *gs.CLIP_TIME]}

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names: :data:`GESTURES`, then :data:`NONE` with ``none``."""
        return GESTURES + ((NONE,) if self.none else ())

    def avatar_seed(self, identity: int) -> int:
        return (FRESH_SEEDS if self.fresh else POOL_SEEDS) + 1000 * int(self.seed) + int(identity)

    def split_of(self) -> list[str]:
        """Split of every pool identity."""
        if self.fresh:
            return ["test"] * int(self.identities)
        from hcgym.synthesis.dataset.clips import identity_splits

        return identity_splits(int(self.seed), int(self.identities), tuple(float(x) for x in self.splits))


def _bad_int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi


# ----------------------------------------------------------------------------- planning and rendering
@dataclass(frozen=True)
class ChunkJob:
    """One identity's samples: the config, the identity, its split, its people to stand behind it; with
    ``none_only`` only its ``none`` samples (the gesture samples come from another set)."""

    config: GestureSetConfig
    identity: int
    split: str
    distractors: tuple[int, ...] = ()
    none_only: bool = False

    @property
    def gesture_count(self) -> int:
        return len(self.config.gestures) * int(self.config.per_class[SPLITS.index(self.split)])

    @property
    def none_count(self) -> int:
        return int(self.config.none) * int(self.config.per_class[SPLITS.index(self.split)])

    @property
    def count(self) -> int:
        """Samples this job renders."""
        return self.none_count + (0 if self.none_only else self.gesture_count)

    def specs(self):
        """The :class:`~hcgym.synthesis.gesture_data_scene.SampleSpec` of every sample it renders: the gestures
        interleaved, then the ``none`` samples (kinds cycled from the identity's offset)."""
        from hcgym.synthesis.gesture_data_scene import NONE_KINDS, SampleSpec

        cfg = self.config
        g = cfg.gestures
        jitter = self.split == "train"
        out = []
        for k in range(0 if self.none_only else self.gesture_count):
            seed = int(np.random.SeedSequence([int(cfg.seed), int(cfg.fresh), self.identity, k, 0x6E57]).generate_state(1)[0])
            out.append(SampleSpec(g[k % len(g)], seed, jitter=jitter))
        for m in range(self.none_count):
            seed = int(np.random.SeedSequence([int(cfg.seed), int(cfg.fresh), self.identity, m, 0x404E]).generate_state(1)[0])
            out.append(SampleSpec(NONE, seed, jitter=jitter, relaxed=NONE_KINDS[(m + self.identity) % len(NONE_KINDS)]))
        return out


def plan_jobs(cfg: GestureSetConfig, none_only: bool = False) -> list[ChunkJob]:
    """One :class:`ChunkJob` per identity with samples (in identity order); ``none_only``: see :class:`ChunkJob`."""
    splits = cfg.split_of()
    jobs = []
    for j, split in enumerate(splits):
        if not cfg.per_class[SPLITS.index(split)]:
            continue
        same = [i for i, s in enumerate(splits) if s == split and i != j]
        rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), int(cfg.fresh), j, 0xD15]))
        people = sorted(int(i) for i in rng.permutation(same)[:DISTRACTOR_PEOPLE]) if same else []
        jobs.append(ChunkJob(cfg, j, split, tuple(people), none_only))
    return jobs


_STAGES: dict[int, Any] = {}


def render_chunk(job: ChunkJob) -> dict[str, np.ndarray]:
    """Render one identity's samples in this process (one :class:`GestureStage` per process and crop size):
    the arrays of :data:`KEYS` for its samples."""
    from hcgym.synthesis.gesture_data_scene import GestureStage

    cfg = job.config
    if cfg.size not in _STAGES:
        _STAGES[cfg.size] = GestureStage(cfg.size)
    stage = _STAGES[cfg.size]
    person = stage.person(cfg.avatar_seed(job.identity))
    others = tuple(stage.person(cfg.avatar_seed(i)) for i in job.distractors)
    stage.person(person.avatar_seed)  # most recently used: kept while the others rotate
    specs = job.specs()
    rows = [stage.render(person, spec, others) for spec in specs]
    label = {g: i for i, g in enumerate(cfg.labels)}
    n = len(rows)
    extra = {} if not cfg.none else {
        "posture": np.array([r["posture"] for r in rows], dtype="<U16"),
        "shape": np.array([r["shape"] for r in rows], dtype="<U16"),
        "amount": np.array([r["amount"] for r in rows], dtype=np.float16)}
    return {
        "rgb": np.stack([r["rgb"] for r in rows]), "depth": np.stack([r["depth"] for r in rows]).astype(np.float16),
        "box": np.stack([r["box"] for r in rows]).astype(np.float32),
        "keypoints": np.stack([r["keypoints"] for r in rows]).astype(np.float32),
        "keypoints_3d": np.stack([r["keypoints_3d"] for r in rows]).astype(np.float32),
        "label": np.array([label[s.gesture] for s in specs], dtype=np.int64),
        "hand": np.array([r["hand"] for r in rows]), "identity": np.full(n, job.identity, dtype=np.int64),
        "avatar_seed": np.full(n, cfg.avatar_seed(job.identity), dtype=np.int64),
        "split": np.array([job.split] * n), "distance": np.array([r["distance"] for r in rows], dtype=np.float32),
        "props": np.array([r["props"] for r in rows], dtype=np.int16),
        "distractor": np.array([r["distractor"] for r in rows], dtype=np.float16),
        "seconds": np.array([r["seconds"] for r in rows], dtype=np.float32), **extra,
    }


# ----------------------------------------------------------------------------- generation
def parts_dir(out: Path) -> Path:
    return Path(str(out) + ".parts")


def _part(out: Path, identity: int) -> Path:
    return parts_dir(out) / f"identity_{identity:05d}.npz"


def generate_gestures(cfg: GestureSetConfig, progress: bool = True, log: Callable[[str], None] | None = None,
                      reuse: str | Path | None = None) -> "GestureData":
    """Render (or resume, or reuse) the set of ``cfg``; returns it loaded. See the module docstring.

    ``reuse``: a 16-class set of the same configuration without ``none`` (``cfg.none`` > 0): its gesture samples
    are taken, only the ``none`` samples are rendered (the parts hold those alone)."""
    from hcgym.paths import atomic_write_bytes
    from hcgym.synthesis.action_data import npz_bytes
    from hcgym.synthesis.dataset import engines

    cfg.check()
    key = cfg.key()
    out = None if cfg.out is None else Path(cfg.out)
    base = None if reuse is None else _reused(cfg, Path(reuse))
    parts_key = key if base is None else {**key, "parts": "none samples only"}
    if out is not None:
        if out.exists():
            data = GestureData.load(out)
            if data.metadata.get("key") != key:
                raise SpecError("out", f"{out} holds a gesture set of another configuration; choose another "
                                       f"file or remove it")
            return data
        parts = parts_dir(out)
        key_file = parts / "key.json"
        if parts.exists():
            try:
                old = json.loads(key_file.read_text())
            except (OSError, ValueError):
                old = None
            if old != parts_key:
                raise SpecError("out", f"{parts} holds the parts of another configuration; remove it or choose "
                                       f"another file")
        else:
            atomic_write_bytes(key_file, json.dumps(parts_key).encode())
    jobs = plan_jobs(cfg, none_only=base is not None)
    results: dict[int, dict[str, np.ndarray]] = {}
    todo = []
    for job in jobs:
        if out is not None and _part(out, job.identity).exists():
            continue
        todo.append(job)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        total = sum(j.count for j in jobs)
        bar = tqdm(total=total, initial=total - sum(j.count for j in todo), desc="gestures", unit="sample",
                   dynamic_ncols=True)
    by_identity = {j.identity: j for j in todo}

    def on_result(arrays: dict[str, np.ndarray]) -> None:
        identity = int(arrays["identity"][0])
        if out is not None:
            atomic_write_bytes(_part(out, identity), npz_bytes(arrays))
        else:
            results[identity] = arrays
        if bar is not None:
            bar.update(by_identity[identity].count)
        if log is not None:
            log(f"identity {identity} ({by_identity[identity].split}): {len(arrays['label'])} samples, "
                f"median {1000 * float(np.median(arrays['seconds'])):.0f} ms/sample")

    t0 = time.perf_counter()
    try:
        engines.run(todo, on_result, "local", cfg.workers, fn=render_chunk)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    chunks = []
    for job in jobs:
        if base is not None:
            chunks.append(_gesture_rows(base, job.identity))
        if out is not None:
            with np.load(_part(out, job.identity), allow_pickle=False) as z:
                chunks.append({k: z[k] for k in z.files})
        else:
            chunks.append(results[job.identity])
    keys = KEYS + (NONE_KEYS if cfg.none else ())
    arrays = {k: np.concatenate([c[k] for c in chunks]) for k in keys}
    arrays["labels"] = np.array(cfg.labels)
    data = GestureData(arrays, {})
    data.metadata = _summary(data, key, wall, sum(j.count for j in todo), cfg.workers)
    if base is not None:
        data.metadata["run"]["reused"] = {"path": str(Path(reuse)), "samples": len(base)}
    if out is not None:
        atomic_write_bytes(out, npz_bytes(data.to_arrays()))
        import shutil

        shutil.rmtree(parts_dir(out), ignore_errors=True)
    return data


def _reused(cfg: GestureSetConfig, path: Path) -> "GestureData":
    """The 16-class set whose gesture samples ``cfg`` (with ``none``) takes, checked before anything is written."""
    from dataclasses import replace

    if not cfg.none:
        raise SpecError("reuse", "a set is reused for its gesture samples when none samples are added (none > 0)")
    if not cfg.gestures:
        raise SpecError("reuse", "this configuration shows no gestures, so there is nothing to reuse")
    try:
        base = GestureData.load(path)
    except SpecError as e:
        raise SpecError("reuse", e.problem) from None
    if base.metadata.get("key") != replace(cfg, none=0).key():
        raise SpecError("reuse", f"{path} is not the set of this configuration without none (its key differs)")
    per_identity = {j.identity: j.gesture_count for j in plan_jobs(cfg)}
    ids, counts = np.unique(base.data["identity"], return_counts=True)
    if dict(zip(ids.tolist(), counts.tolist())) != per_identity:
        raise SpecError("reuse", f"{path} does not hold every identity's gesture samples")
    return base


def _gesture_rows(base: "GestureData", identity: int) -> dict[str, np.ndarray]:
    """One identity's rows of a 16-class set, in its order, with the :data:`NONE_KEYS` a gesture sample has."""
    idx = np.flatnonzero(base.data["identity"] == identity)
    rows = {k: base.data[k][idx] for k in KEYS}
    names = np.array(base.labels, dtype="<U16")
    rows.update(posture=np.full(len(idx), "present", dtype="<U16"), shape=names[rows["label"]],
                amount=np.ones(len(idx), np.float16))
    return rows


def _summary(data: "GestureData", key: dict[str, Any], wall: float, rendered: int, workers: int) -> dict[str, Any]:
    a = data.data
    sec = a["seconds"].astype(np.float64)
    per_split = {s: {"samples": int((a["split"] == s).sum()),
                     "identities": int(len(np.unique(a["identity"][a["split"] == s])))} for s in SPLITS}
    return {"format": FORMAT, "key": key, "samples": len(data), "splits": per_split,
            "per_label": {str(n): int((a["label"] == i).sum()) for i, n in enumerate(a["labels"])},
            **({} if "posture" not in a else {"none_postures": dict(zip(*(
                x.tolist() for x in np.unique(a["posture"][a["label"] == len(GESTURES)], return_counts=True))))}),
            "hands": {h: int((a["hand"] == h).sum()) for h in ("left", "right")},
            "distractor_in_crop": round(float((a["distractor"] > 0).mean()), 4) if len(data) else 0.0,
            "props_mean": round(float(a["props"].mean()), 3) if len(data) else 0.0,
            "ms_per_sample": {"mean": round(1000 * float(sec.mean()), 1) if len(sec) else None,
                              "median": round(1000 * float(np.median(sec)), 1) if len(sec) else None},
            "run": {"rendered": int(rendered), "wall_seconds": round(wall, 1), "workers": int(workers)},
            "rule_agreement": rule_agreement(data)}


def fresh_test_set(seed: int, identities: int = 8, per_class: int = 6, size: int = 112,
                   gestures: Sequence[str] = GESTURES, workers: int = 1, out: str | Path | None = None,
                   progress: bool = False, none: int = 0) -> "GestureData":
    """A test set of ``identities`` people no pool uses (:data:`FRESH_SEEDS` + 1000 ``seed`` + k), each showing
    every gesture ``per_class`` times (and ``none`` times ``per_class`` relaxed hands of the class ``none``); in
    memory, or in (and reused from) ``out``."""
    cfg = GestureSetConfig(out=None if out is None else Path(out), seed=seed, identities=identities,
                           splits=(0.0, 0.0, 1.0), per_class=(0, 0, per_class), size=size, gestures=tuple(gestures),
                           fresh=True, workers=workers, none=none)
    return generate_gestures(cfg, progress=progress)


# ----------------------------------------------------------------------------- the data
@dataclass
class GestureData:
    """Gesture samples (the arrays of the module docstring in ``data``) and their ``metadata``."""

    data: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> "GestureData":
        """A set written by :func:`generate_gestures` (or :meth:`save`)."""
        import zipfile

        p = Path(path)
        if not p.is_file():
            raise SpecError("path", f"no such file: {p}")
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("metadata")))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            meta = None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise SpecError("path", f"{p} is not a gesture data file ({FORMAT}; make one with hcgym generate "
                                    f"--mode gestures)")
        return cls(arrays, meta)

    @classmethod
    def from_folder(cls, root: str | Path, size: int = 112, layout: str = "auto", **options: Any) -> "GestureData":
        """Real RGB-D images: the HANDS data set or the simple layout (:mod:`hcgym.synthesis.gesture_data_folders`)."""
        from hcgym.synthesis.gesture_data_folders import read_folder

        arrays, meta = read_folder(root, size=size, layout=layout, **options)
        return cls(arrays, {"format": FORMAT, **meta})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every array plus ``metadata`` as a JSON string (what :meth:`save` writes)."""
        return {**self.data, "metadata": np.array(json.dumps(self.metadata))}

    def save(self, path: str | Path) -> Path:
        """Write the set to ``path`` (``.npz``, atomically)."""
        from hcgym.paths import atomic_write_bytes
        from hcgym.synthesis.action_data import npz_bytes

        p = Path(path)
        if p.suffix != ".npz":
            raise SpecError("path", f"expected a .npz file name, got {p}")
        self.metadata.setdefault("format", FORMAT)
        atomic_write_bytes(p, npz_bytes(self.to_arrays()))
        return p

    def __len__(self) -> int:
        return int(len(self.data["label"]))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(str(s) for s in self.data["labels"])

    @property
    def size(self) -> int:
        return int(self.data["rgb"].shape[1])

    def select(self, split: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Sample indices of a split name, an index array or ``None`` (every sample)."""
        if split is None:
            return np.arange(len(self))
        if isinstance(split, str):
            if split not in SPLITS:
                raise SpecError("split", f"unknown split {split!r} (allowed: {', '.join(SPLITS)})")
            return np.flatnonzero(self.data["split"] == split)
        return np.asarray(split, dtype=np.int64)

    def subset(self, split: str | Sequence[int] | np.ndarray | None) -> "GestureData":
        idx = self.select(split)
        return GestureData({k: (v if k == "labels" else v[idx]) for k, v in self.data.items()}, dict(self.metadata))

    def y(self, split: str | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(N,) int64 gesture ids."""
        return self.data["label"][self.select(split)].astype(np.int64)

    def depth_crops(self, split: str | Sequence[int] | np.ndarray | None = None, noise: bool = False,
                    seed: int = 0) -> np.ndarray:
        """(N, S, S) float32 metres (0 = no reading): exact, or read by the Kinect-like noise model
        (:func:`~hcgym.perception.gesture.inputs.kinect_depth` at the sensor's resolution; sample ``i``'s noise is
        drawn from ``(seed, i)``, whatever else is selected)."""
        idx = self.select(split)
        d = self.data["depth"][idx].astype(np.float32)
        if not noise:
            return d
        rngs = [np.random.default_rng(np.random.SeedSequence([int(seed), 0x4B1C, int(i)])) for i in idx]
        return kinect_crops(d, self.data["box"][idx], rngs)

    def arrays(self, split: str | Sequence[int] | np.ndarray | None = "train", modality: str = "rgbd",
               noise: bool = False, seed: int = 0, depth_mode: str = "relative",
               normalised: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs and labels: ``x`` (N, C, S, S) float32 of ``modality`` (``rgb``, ``depth``, ``rgbd``;
        :func:`~hcgym.perception.gesture.inputs.channels`: RGB ``(rgb / 255 - mean) / std`` with ImageNet
        statistics (``normalised``) or ``rgb / 255``, depth as ``depth_mode``: ``relative`` to the hand (default),
        ``absolute`` or ``metres``), with Kinect-like depth noise (``noise``, drawn from ``seed``); ``y`` (N,)."""
        if modality not in MODALITIES:
            raise SpecError("modality", f"unknown modality {modality!r} (allowed: {', '.join(MODALITIES)})")
        if depth_mode not in DEPTH_MODES:
            raise SpecError("depth_mode", f"unknown depth mode {depth_mode!r} (allowed: {', '.join(DEPTH_MODES)})")
        idx = self.select(split)
        depth = self.depth_crops(idx, noise, seed) if modality != "rgb" else self.data["depth"][idx]
        return channels(self.data["rgb"][idx], depth, modality, depth_mode, normalised), self.y(idx)


# ----------------------------------------------------------------------------- checks and figures
def rule_agreement(data: GestureData) -> dict[str, Any]:
    """How often the rule classifier (:func:`~hcgym.synthesis.motion.hands.classify_gesture`) on the ground-truth
    3-D keypoints names the sample's label: ``{"agree", "total", "rate", "confusions": {label -> {rule: n}}}``
    (samples without 3-D keypoints, and those of ``none``, which the rules do not know, are left out)."""
    from hcgym.synthesis.motion.hands import classify_gesture

    kp = data.data["keypoints_3d"]
    agree, total = 0, 0
    confusions: dict[str, dict[str, int]] = {}
    for i in range(len(data)):
        if not np.isfinite(kp[i]).all():
            continue
        want = data.labels[int(data.data["label"][i])]
        if want == NONE:
            continue
        got = classify_gesture(kp[i].astype(np.float64))
        total += 1
        if got == want:
            agree += 1
        else:
            row = confusions.setdefault(want, {})
            row[got] = row.get(got, 0) + 1
    return {"agree": agree, "total": total, "rate": round(agree / total, 4) if total else None,
            "confusions": confusions}


def contact_sheet(data: GestureData, per_class: int = 4, split: str | None = None, noise: bool = False,
                  seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: a row per gesture with ``per_class`` samples (of different people where it can), each as its
    RGB crop and its depth (colour
    map over the crop's readings, black = no reading), with ``noise`` also the Kinect-like reading of it (drawn
    from ``seed``); the label on the left."""
    from PIL import Image, ImageDraw

    from hcgym.report import pyplot

    cmap = pyplot().get_cmap("viridis")
    idx_all = data.select(split)
    s = data.size
    rows = []
    for i, name in enumerate(data.labels):
        idx = _spread(idx_all[data.data["label"][idx_all] == i], data.data["identity"], per_class)
        if not len(idx):
            continue
        clean = data.depth_crops(idx)
        noisy = data.depth_crops(idx, True, seed) if noise else None
        tiles = []
        for k, j in enumerate(idx):
            v = clean[k][clean[k] > 0]
            lo, span = (float(v.min()), max(float(np.ptp(v)), 1e-6)) if v.size else (0.0, 1.0)
            tiles.append(data.data["rgb"][j])
            for d in (clean[k],) if noisy is None else (clean[k], noisy[k]):
                col = (cmap(np.clip((d - lo) / span, 0, 1))[..., :3] * 255).astype(np.uint8)
                col[d <= 0] = 0
                tiles.append(col)
            tiles.append(np.full((s, 2, 3), 255, np.uint8))
        label = Image.new("RGB", (70, s), (255, 255, 255))
        ImageDraw.Draw(label).text((2, s // 2 - 6), name, fill=(0, 0, 0))
        row = np.concatenate([np.asarray(label)] + tiles, axis=1)
        rows.append(row)
    if not rows:
        return np.full((16, 16, 3), 255, np.uint8)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)


def _spread(idx: np.ndarray, identity: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` of ``idx``: the first sample of each identity in turn, then the next ones."""
    firsts, rest, seen = [], [], set()
    for j in idx:
        (rest if int(identity[j]) in seen else firsts).append(int(j))
        seen.add(int(identity[j]))
    return np.array((firsts + rest)[:n], dtype=np.int64)


__all__ = ["FORMAT", "FRESH_SEEDS", "KEYS", "NONE", "NONE_KEYS", "POOL_SEEDS", "ChunkJob", "GestureData", "GestureSetConfig",
           "contact_sheet", "fresh_test_set", "generate_gestures", "plan_jobs", "render_chunk", "rule_agreement"]
