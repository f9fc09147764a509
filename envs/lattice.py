"""Precomputed drone-pose lattices for the active face recognition env (an on-disk cache).

The drone of :class:`~hcgym.envs.active_fr.ActiveFaceRecognitionEnv` lives on a
polar lattice around the person, so everything the env computes per pose can be
computed once: the observation image of every cell and the face embedding (or
"no face") of every cell within ``recognition_range`` metres. A lattice is one
(avatar, person heading) pair under one env configuration; it is stored as

* ``obs.npy``: ``(n_angles, n_radii, H, W, 3)`` uint8 observations, memory-mapped
  (shared by all worker processes through the page cache);
* ``embeddings.npy``: ``(n_angles, n_rec, D)`` embeddings, ``found.npy``:
  ``(n_angles, n_rec)`` whether the pipeline found a face there;
* ``meta.json``: the configuration the lattice was made for.

The directory name is a hash of that configuration (avatar spec, heading,
lattice geometry, sizes, detector, recognizer and its weights), so a lattice is
only ever used by an env that would compute exactly the same values: the cache
never changes a result. Cells beyond the precomputed range are computed on line
as without a lattice. Embeddings, not identities, are stored, so the gallery of
the episode (and the cut-off) is applied at step time.

Cost on two CPU cores: about 80 s per lattice at 84x84 observations and a 6 m
recognition range (7,236 observation renders at ~5 ms, 2,016 recognitions at
~28 ms); afterwards an env step is a lookup.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

LATTICE_VERSION = 1


def lattice_config(env, avatar_seed: int, heading_index: int) -> dict[str, Any]:
    """Everything a lattice's contents depend on (its directory name is a hash of this)."""
    from hcgym import __version__
    from hcgym.synthesis.avatar_spec import AvatarSpec

    return {
        "format": "hcgym-afr-lattice", "version": LATTICE_VERSION, "hcgym": __version__,
        "world": "active_face_room", "backend": env.backend_name,
        "avatar": AvatarSpec.random(int(avatar_seed)).content_key(), "avatar_seed": int(avatar_seed),
        "heading_index": int(heading_index), "n_angles": 1 if env.one_axis else env.n_angles, "arc_step": env.arc_step, "move_step": env.move_step,
        "min_distance": env.min_distance, "n_radii": env.n_radii, "obs_size": list(env.obs_size),
        "recognition_size": list(env.recognition_size), "detector": env.detector_id,
        "recognizer": env.recognizer_id, "recognizer_weights": _weights_key(env.recognizer_id),
    }


def lattice_key(config: dict[str, Any]) -> str:
    blob = json.dumps({k: v for k, v in config.items() if k != "recognition_range"}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@lru_cache(maxsize=None)
def _weights_key(recognizer: str) -> str | None:
    """Hash of the shipped IRNet weights when the recognizer uses them (a retrained model is a new lattice)."""
    if recognizer != "face/hcgym-irnet":
        return None
    from hcgym.perception.face.models import shipped_checkpoint

    return hashlib.sha256(shipped_checkpoint().read_bytes()).hexdigest()[:16]


class Lattice:
    """One precomputed lattice, memory-mapped read-only."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.meta = json.loads((self.path / "meta.json").read_text())
        self.obs = np.load(self.path / "obs.npy", mmap_mode="r")
        self.embeddings = np.load(self.path / "embeddings.npy", mmap_mode="r")
        self.found = np.load(self.path / "found.npy", mmap_mode="r")
        self.n_rec = self.found.shape[1]

    def observation(self, r_i: int, a_i: int) -> np.ndarray:
        return np.array(self.obs[a_i, r_i])

    def has_embedding(self, r_i: int) -> bool:
        return r_i < self.n_rec

    def embedding(self, r_i: int, a_i: int) -> np.ndarray | None:
        return np.array(self.embeddings[a_i, r_i]) if self.found[a_i, r_i] else None


class LatticeStore:
    """A directory of lattices for one env; opens the one matching its configuration, if present.

    The env's configuration is fixed, so the lookup (and the hashing it needs) happens once per
    (avatar, heading), not at every reset.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._open: dict[tuple[int, int], Lattice | None] = {}

    def get(self, env, avatar_seed: int, heading_index: int) -> Lattice | None:
        cell = (int(avatar_seed), int(heading_index))
        if cell not in self._open:
            path = self.root / lattice_key(lattice_config(env, avatar_seed, heading_index))
            self._open[cell] = Lattice(path) if (path / "meta.json").is_file() else None
        return self._open[cell]


def build_lattice(root: str | Path, env_kwargs: dict[str, Any], person: int, heading_index: int,
                  recognition_range: float = 6.0, one_axis: bool | None = None) -> Path:
    """Compute and write one lattice (atomically; a finished lattice is kept as is). Returns its directory."""
    import gymnasium as gym

    import hcgym.envs  # noqa: F401 - registers the ids
    from hcgym.paths import atomic_dir

    kwargs = dict(env_kwargs)
    if one_axis is not None:
        kwargs["one_axis"] = one_axis
    env = gym.make("hcgym/ActiveFaceRecognition-v0", **kwargs).unwrapped
    config = lattice_config(env, env.avatars[person], heading_index)
    final = Path(root) / lattice_key(config)
    if (final / "meta.json").is_file():
        return final
    env.reset(seed=0, options={"person": person, "heading_index": heading_index, "distance": 1.0, "angle": 0.0})
    n_angles = 1 if env.one_axis else env.n_angles
    n_rec = min(env.n_radii, int(round((recognition_range - env.min_distance) / env.move_step)) + 1)
    w, h = env.obs_size
    obs = np.zeros((n_angles, env.n_radii, h, w, 3), np.uint8)
    found = np.zeros((n_angles, n_rec), bool)
    embeddings = None
    for a_i in range(n_angles):
        for r_i in range(env.n_radii):
            obs[a_i, r_i] = env.render_cell(r_i, a_i)
        for r_i in range(n_rec):
            emb = env.cell_embedding(r_i, a_i)
            if emb is None:
                continue
            if embeddings is None:
                embeddings = np.zeros((n_angles, n_rec, emb.shape[0]), emb.dtype)
            embeddings[a_i, r_i] = emb
            found[a_i, r_i] = True
    env.close()
    if embeddings is None:
        embeddings = np.zeros((n_angles, n_rec, 1), np.float32)
    config["recognition_range"] = recognition_range
    with atomic_dir(final) as tmp:
        np.save(tmp / "obs.npy", obs)
        np.save(tmp / "embeddings.npy", embeddings)
        np.save(tmp / "found.npy", found)
        (tmp / "meta.json").write_text(json.dumps(config, indent=1))
    return final


def _build_task(task: tuple) -> str:
    return str(build_lattice(*task))


def build_lattices(root: str | Path, env_kwargs: dict[str, Any], persons: Iterable[int],
                   headings: Iterable[int], recognition_range: float = 6.0, workers: int = 1,
                   progress: bool = True) -> list[Path]:
    """Build the lattices of ``persons`` (indices into the env's avatars) x ``headings`` (resumable)."""
    tasks = [(str(root), dict(env_kwargs), int(p), int(h), float(recognition_range))
             for p in persons for h in headings]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="lattices", unit="lattice")
    out: list[Path] = []
    if workers <= 1:
        for t in tasks:
            out.append(Path(_build_task(t)))
            if bar:
                bar.update()
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, maxtasksperchild=4) as pool:
            for path in pool.imap(_build_task, tasks):
                out.append(Path(path))
                if bar:
                    bar.update()
    if bar:
        bar.close()
    return out
