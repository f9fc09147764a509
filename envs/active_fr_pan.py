"""Active face recognition on a pan/tilt sphere (OpenDR D3.2 section 2.4, the HPID setting).

The camera sits on a sphere around a person's head at a fixed distance, always looking at it, and moves in
``step``-degree pan/tilt steps on the grid of :class:`~hcgym.synthesis.multiview.MultiViewSettings` (pan -90..90,
tilt -30..30 by default; pan is positive towards the person's left, tilt above the head). The observation is
the camera image; ``info`` carries the true ``pan`` and ``tilt``. Actions: 0 *recognise* (ends the episode),
1 pan -step, 2 pan +step, 3 tilt -step, 4 tilt +step (a move off the grid leaves the camera where it is).

On *recognise*, the face pipeline (default: MediaPipe full-range detection + dlib's 128-d ResNet, the seed's
[41] recogniser; dlib's HOG detector misses most faces turned beyond 30 degrees on the renders) embeds the
current image and a nearest-neighbour gallery answers; the reward is 1 if the answer is the person, else 0,
and ``move_cost`` is subtracted per move. The gallery is the database split: every person's images at pans
``database_pans`` (-15, 0, 15) and all tilts, in every series.

Two sources of images:

* **simulation** (default): the persons are avatars ``AvatarSpec.random(seed)`` for ``avatars``, in two
  series (light and expression, see :mod:`hcgym.synthesis.multiview`), rendered on demand;
* **dataset**: ``dataset=`` a folder laid out like HPID (``<person>/<series>/<pan>/<tilt>.png`` or HPID's
  own file names) or a :class:`~hcgym.synthesis.multiview.MultiViewSet`; the same env plays over it.

Episodes start at a random person, series, tilt and a pan from ``start_pans`` (default: the grid's pans
outside the database split), unless ``reset(options={"person", "series", "pan", "tilt"})`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from hcgym.envs.base import HcgymEnv
from hcgym.errors import SpecError

RECOGNISE, PAN_MINUS, PAN_PLUS, TILT_MINUS, TILT_PLUS = range(5)
ACTION_NAMES = ("recognise", "pan-", "pan+", "tilt-", "tilt+")
#: Default persons of the simulation mode (the protocol draws its own; see ``hcgym evaluate synth-view``).
DEFAULT_AVATARS = (600_000, 600_001, 600_002, 600_003)


def move_action(move: tuple[float, float]) -> int:
    """The action of a camera move (pan, tilt) in degrees (one of them zero)."""
    pan, tilt = move
    if pan and not tilt:
        return PAN_PLUS if pan > 0 else PAN_MINUS
    if tilt and not pan:
        return TILT_PLUS if tilt > 0 else TILT_MINUS
    raise SpecError("move", f"expected a move along one axis, got {move!r}")


class ActiveFaceRecognitionPanEnv(HcgymEnv):
    """Gymnasium env of active face recognition by pan/tilt moves around a head.

    Args:
        avatars: avatar seeds of the persons (simulation mode); ``dataset``: a folder or a
            :class:`~hcgym.synthesis.multiview.MultiViewSet` (dataset mode; ``avatars`` is then ignored).
        persons: indices of the persons to use (default: all).
        settings: the camera grid and image format (simulation mode; a dataset brings its own grid).
        step: degrees per move; must be a multiple of the grid spacing.
        database_pans: pans (all tilts, all series) enrolled in the gallery.
        start_pans: pans episodes may start at (default: the grid's pans outside ``database_pans``).
        detector, recognizer: registered sensor ids of the face pipeline; ``cutoff``: the gallery cut-off ``a``
            (default: the recognizer's calibrated one).
        max_steps: episode length (``truncated`` after it); ``move_cost``: reward subtracted per move.
        cache_size: images kept (LRU; simulation mode).
        backend: simulator backend of the simulation mode (``"embedded"`` or ``"webots"``).
        render_mode: ``"rgb_array"`` returns the current image.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    DEFAULT_OBS_SIZE = (384, 288)  #: :class:`~hcgym.synthesis.multiview.MultiViewSettings`' HPID image size.
    backend_requires = ("lighting",)  # each series has its own light
    transient = ("recognizer",)
    PIPELINE_CACHE = 8192  # an agent and the env asking about the same image pay once

    def __init__(self, avatars: tuple[int, ...] = DEFAULT_AVATARS, dataset: str | Path | Any = None,
                 persons: tuple[int, ...] | None = None, settings: Any = None, step: int = 15,
                 database_pans: tuple[int, ...] = (-15, 0, 15), start_pans: tuple[int, ...] | None = None,
                 detector: str = "face/mediapipe-full", recognizer: str = "face/dlib", cutoff: float | None = None,
                 max_steps: int = 10, move_cost: float = 0.0, cache_size: int = 4096, backend: str = "embedded",
                 render_mode: str | None = None) -> None:
        from hcgym.synthesis.multiview import MultiViewSet, MultiViewSettings, read_folder

        if max_steps < 1:
            raise SpecError("max_steps", f"must be >= 1, got {max_steps!r}")
        self._data: MultiViewSet | None = None
        if dataset is not None:
            self._data = dataset if isinstance(dataset, MultiViewSet) else read_folder(dataset)
            pans, tilts = self._data.pans, self._data.tilts
            labels = list(self._data.persons)
            size, hfov = (self._data.images.shape[5], self._data.images.shape[4]), 60.0
            self.n_series = self._data.n_series
        else:
            settings = settings or MultiViewSettings(size=self.DEFAULT_OBS_SIZE)
            if not isinstance(settings, MultiViewSettings):
                raise SpecError("settings", "expected a hcgym.synthesis.multiview.MultiViewSettings")
            if len(avatars) < 2:
                raise SpecError("avatars", f"need at least 2 avatar seeds, got {len(avatars)}")
            pans, tilts = settings.pans, settings.tilts
            labels = [f"avatar{int(s)}" for s in avatars]
            size, hfov = settings.size, settings.hfov
            self.n_series = 2
        super().__init__(size, hfov, backend, detector, recognizer, cutoff, cache_size, render_mode)
        self.settings, self.avatars = settings, tuple(int(a) for a in avatars)
        self.pans, self.tilts = tuple(sorted(pans)), tuple(sorted(tilts))
        self.step_deg = int(step)
        self._check_grid()
        self.persons = tuple(range(len(labels))) if persons is None else tuple(int(p) for p in persons)
        if not self.persons or any(not 0 <= p < len(labels) for p in self.persons):
            raise SpecError("persons", f"expected indices in 0..{len(labels) - 1}, got {persons!r}")
        if len(self.persons) < 2:
            raise SpecError("persons", "need at least 2 persons for a gallery to choose between")
        self.labels = labels
        self.database_pans = tuple(int(p) for p in database_pans)
        if not self.database_pans or any(p not in self.pans for p in self.database_pans):
            raise SpecError("database_pans", f"expected pans on the grid {list(self.pans)}, got {database_pans!r}")
        default_start = tuple(p for p in self.pans if p not in self.database_pans) or self.pans
        self.start_pans = default_start if start_pans is None else tuple(int(p) for p in start_pans)
        if not self.start_pans or any(p not in self.pans for p in self.start_pans):
            raise SpecError("start_pans", f"expected pans on the grid {list(self.pans)}, got {start_pans!r}")
        self.max_steps, self.move_cost = int(max_steps), float(move_cost)
        w, h = self.obs_size
        self.action_space = spaces.Discrete(5)
        self.observation_space = spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.recognizer = None  # the pipeline and gallery are built on the first reset

    def _check_grid(self) -> None:
        for name, grid in (("pans", self.pans), ("tilts", self.tilts)):
            diffs = {b - a for a, b in zip(grid, grid[1:])}
            if len(grid) > 1 and (len(diffs) != 1 or self.step_deg % next(iter(diffs))):
                raise SpecError("step", f"{self.step_deg} is not a multiple of the evenly spaced {name} grid "
                                        f"{list(grid)}")
        if self.step_deg <= 0:
            raise SpecError("step", f"must be > 0, got {self.step_deg}")

    # ------------------------------------------------------------ world and set-up
    def make_world(self):
        """The multi-view backdrop holding both series of every person (simulation mode); ``None`` with a dataset."""
        if self._data is not None:
            return None
        from hcgym.synthesis.builder import build_avatar
        from hcgym.synthesis.multiview import multiview_world, series_specs

        specs = [s for i, a in enumerate(self.avatars) for s in series_specs(a, i)]
        for s in specs:
            build_avatar(s)
        return multiview_world(specs, self.settings)

    def _setup(self) -> None:
        from hcgym.perception.face.pipeline import FaceRecognizer

        gallery = self.new_gallery()
        for p in self.persons:
            vecs = []
            for s in range(self.n_series):
                for pan in self.database_pans:
                    for tilt in self.tilts:
                        if self._has(p, s, pan, tilt):
                            v, _ = self.pipeline.embed(self._image(p, s, pan, tilt))
                            if v is not None:
                                vecs.append(v)
            if not vecs:
                raise SpecError("database_pans", f"no face found in any database image of {self.labels[p]!r}")
            gallery.enroll(self.labels[p], np.stack(vecs))
        self.recognizer = FaceRecognizer(self.pipeline, gallery)

    def _has(self, person: int, series: int, pan: int, tilt: int) -> bool:
        if self._data is None:
            return True
        i, j = self._data.pans.index(pan), self._data.tilts.index(tilt)
        return bool(self._data.present[person, series, i, j])

    def _image(self, person: int, series: int, pan: int, tilt: int) -> np.ndarray:
        if self._data is not None:
            return self._data.image(person, series, pan, tilt)
        from hcgym.synthesis.multiview import render_views

        return self._frames.get_or((person, series, pan, tilt), lambda: render_views(
            self.sim, 2 * person + series, series, self.settings, [pan], [tilt])[0, 0])

    # ------------------------------------------------------------ gym API
    def _reset_task(self, options: dict[str, Any]):
        rng = self.np_random
        person = int(options.get("person", self.persons[int(rng.integers(len(self.persons)))]))
        if person not in self.persons:
            raise SpecError("person", f"expected one of {list(self.persons)}, got {person!r}")
        series = int(options.get("series", rng.integers(self.n_series)))
        if not 0 <= series < self.n_series:
            raise SpecError("series", f"expected 0..{self.n_series - 1}, got {series!r}")
        pan = int(options.get("pan", self.start_pans[int(rng.integers(len(self.start_pans)))]))
        tilt = int(options.get("tilt", self.tilts[int(rng.integers(len(self.tilts)))]))
        if pan not in self.pans or tilt not in self.tilts:
            raise SpecError("pan", f"(pan, tilt) = ({pan}, {tilt}) is not on the grid {list(self.pans)} x "
                                   f"{list(self.tilts)}")
        if not self._has(person, series, pan, tilt):
            raise SpecError("pan", f"the dataset has no image of person {person}, series {series + 1} at "
                                   f"({pan}, {tilt})")
        self._person, self._series, self._pan, self._tilt = person, series, pan, tilt
        self._start = (pan, tilt)
        self._t, self._moves = 0, 0
        self._last: dict[str, Any] = {}
        return self._obs(), self._info()

    def _step_task(self, action: int):
        reward, terminated = 0.0, False
        if action == RECOGNISE:
            rec = self.recognizer.recognise(self._obs())
            correct = rec.label == self.labels[self._person]
            reward = 1.0 if correct else 0.0
            terminated = True
            self._last = {"identity": rec.label, "confidence": rec.confidence, "distance": rec.distance,
                          "frc": rec.frc, "correct": bool(correct)}
        else:
            dpan = {PAN_MINUS: -1, PAN_PLUS: 1}.get(action, 0) * self.step_deg
            dtilt = {TILT_MINUS: -1, TILT_PLUS: 1}.get(action, 0) * self.step_deg
            pan, tilt = self._pan + dpan, self._tilt + dtilt
            if pan in self.pans and tilt in self.tilts and self._has(self._person, self._series, pan, tilt):
                self._pan, self._tilt = pan, tilt
                self._moves += 1
            reward = -self.move_cost
        self._t += 1
        truncated = not terminated and self._t >= self.max_steps
        return self._obs(), float(reward), terminated, truncated, self._info()

    def view_at(self, pan: float, tilt: float = 0.0) -> np.ndarray | None:
        """The real image after a move of (pan, tilt) degrees from the current pose, without moving (``None`` off
        the grid). Privileged: for diagnostics such as feeding Algorithm 1 the true views in place of
        synthesised ones; an agent on a robot cannot do this."""
        p, t = self._pan + int(round(pan)), self._tilt + int(round(tilt))
        if p not in self.pans or t not in self.tilts or not self._has(self._person, self._series, p, t):
            return None
        return self._image(self._person, self._series, p, t).copy()

    # ------------------------------------------------------------ helpers
    def _current_image(self) -> np.ndarray:
        return self._image(self._person, self._series, self._pan, self._tilt)

    def _obs(self) -> np.ndarray:
        return self._current_image().copy()

    def _info(self) -> dict[str, Any]:
        return {"pan": self._pan, "tilt": self._tilt, "start_pan": self._start[0], "start_tilt": self._start[1],
                "person": self.labels[self._person], "series": self._series + 1, "step": self._t,
                "moves": self._moves, **self._last}
