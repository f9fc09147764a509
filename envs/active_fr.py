"""Active face recognition (OpenDR D3.2 section 2.2): fly a drone to where the person is recognised.

A square room with one person at its centre facing a random direction, and a
drone whose forward camera always looks at the person. The drone lives on a
polar lattice around the person (radius in ``move_step`` metres, angle in
``arc_step`` degrees), so frames and face embeddings are cached by (avatar,
person heading, lattice cell) without changing any result (the episode's
gallery is applied to the cached embedding at each stay); precomputed lattices
on disk (``lattice_dir``, :mod:`hcgym.envs.lattice`) hold the same values.

Actions (setup 2, ``hcgym/ActiveFaceRecognition-v0``): 0 stay, 1 forward,
2 backward, 3 arc-left, 4 arc-right. The one-axis variant
(``hcgym/ActiveFaceRecognitionOneAxis-v0``, setup 1) keeps the person in front
and centred and allows 0 stay, 1 forward, 2 backward: the paper's Table 2
varies only the distance, which arc moves cannot change (the deliverable's
text names both "forward/backward" and "left/right" for this setup; see
docs/active_face_recognition.md).

Reward (eq. 4-5): on *stay* the face pipeline runs (detector, recognizer,
gallery of five enrolled identities, one frontal image each, taken under a
different light) and the reward is ``c = 1 - d / a`` when the person is
identified correctly within the cut-off ``a``, else 0; other actions give 0.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from hcgym.errors import SpecError

STAY, FORWARD, BACKWARD, ARC_LEFT, ARC_RIGHT = range(5)
ACTION_NAMES = ("stay", "forward", "backward", "arc_left", "arc_right")
#: Avatars the pretrained agents train on; evaluate on others (``avatars=`` / ``--avatars``).
TRAIN_AVATARS = tuple(range(300_000, 300_008))


class _LRU(OrderedDict):
    """A bounded least-recently-used cache."""

    def __init__(self, size: int = 1024) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class ActiveFaceRecognitionEnv(gym.Env):
    """Gymnasium env of the paper's active face recognition task.

    Args:
        obs_size: observation (width, height); the paper uses 400x300.
        frame_stack: number of stacked frames (channels = 3 x frame_stack).
        one_axis: setup 1 (stay/forward/backward, person in front) instead of setup 2.
        arc_step: degrees per arc move; ``move_step``: metres per forward/backward move.
        start_distance: (min, max) metres of the random start; ``max_distance``: farthest lattice radius.
        max_steps: episode length (``truncated`` after it).
        avatars: avatar seeds of the people (the episode's person and the gallery's distractors); >= 5.
        recognizer, detector: registered sensor ids of the face pipeline; ``cutoff``: ``a`` (default: the
            value calibrated for the recognizer on held-out avatars).
        recognition_size: resolution of the frame the face pipeline sees (the paper: 400x300).
        cache_size: frames and face embeddings kept (LRU); they never change results.
        backend: ``"embedded"`` (default) or ``"webots"``.
        lattice_dir: a directory of precomputed lattices (:mod:`hcgym.envs.lattice`, ``hcgym train active-fr
            --lattice-dir``); cells found there are looked up instead of rendered, with identical results.
        headings: person headings (indices of ``arc_step``) drawn at reset; default all.
        render_mode: ``"rgb_array"`` returns the current observation image (full colour, last frame).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, obs_size: tuple[int, int] = (400, 300), frame_stack: int = 1, one_axis: bool = False,
                 arc_step: float = 10.0, move_step: float = 0.1, start_distance: tuple[float, float] = (1.0, 20.0),
                 max_distance: float = 20.5, min_distance: float = 0.5, max_steps: int = 1000,
                 avatars: tuple[int, ...] = TRAIN_AVATARS, recognizer: str = "face/hcgym-irnet",
                 detector: str = "face/mediapipe-full", cutoff: float | None = None,
                 recognition_size: tuple[int, int] = (400, 300), cache_size: int = 20000,
                 backend: str = "embedded", render_mode: str | None = None, lattice_dir: str | None = None,
                 headings: tuple[int, ...] | None = None) -> None:
        w, h = (int(v) for v in obs_size)
        if w < 8 or h < 8:
            raise SpecError("obs_size", f"expected (width, height) of at least 8 pixels, got {obs_size!r}")
        if frame_stack < 1:
            raise SpecError("frame_stack", f"must be >= 1, got {frame_stack!r}")
        if len(avatars) < 5:
            raise SpecError("avatars", f"need at least 5 avatar seeds (1 person + 4 gallery identities), got {len(avatars)}")
        if render_mode not in (None, "rgb_array"):
            raise SpecError("render_mode", f"unknown render mode {render_mode!r} (allowed: rgb_array)")
        if not 0 < min_distance < start_distance[0] <= start_distance[1] <= max_distance:
            raise SpecError("start_distance", "need 0 < min_distance < start_distance[0] <= start_distance[1] "
                                              "<= max_distance")
        if 360.0 % arc_step:
            raise SpecError("arc_step", f"must divide 360, got {arc_step!r}")
        self.obs_size, self.frame_stack, self.one_axis = (w, h), int(frame_stack), bool(one_axis)
        self.arc_step, self.move_step = float(arc_step), float(move_step)
        self.start_distance, self.max_steps = (float(start_distance[0]), float(start_distance[1])), int(max_steps)
        self.min_distance, self.max_distance = float(min_distance), float(max_distance)
        self.avatars = tuple(int(a) for a in avatars)
        self.recognizer_id, self.detector_id, self._cutoff = recognizer, detector, cutoff
        self.recognition_size = (int(recognition_size[0]), int(recognition_size[1]))
        self.backend_name, self.render_mode = backend, render_mode
        self.action_space = spaces.Discrete(3 if self.one_axis else 5)
        self.observation_space = spaces.Box(0, 255, (h, w, 3 * self.frame_stack), np.uint8)
        self.n_radii = int(round((self.max_distance - self.min_distance) / self.move_step)) + 1
        self.n_angles = int(round(360.0 / self.arc_step))
        if headings is not None and (not len(headings) or any(not 0 <= int(h) < self.n_angles for h in headings)):
            raise SpecError("headings", f"expected heading indices in [0, {self.n_angles}), got {headings!r}")
        self.headings = None if headings is None else tuple(int(h) for h in headings)
        self.lattice_dir = None if lattice_dir is None else str(lattice_dir)
        if self.lattice_dir is not None and not Path(self.lattice_dir).is_dir():
            raise SpecError("lattice_dir", f"not a directory: {self.lattice_dir}")
        self._lattice = None
        self._cache_size = int(cache_size)
        self._sim = None  # created on the first reset (no simulator in __init__)
        self._frames = _LRU(self._cache_size)
        self._results = _LRU(self._cache_size)
        self._galleries: dict[tuple[int, ...], Any] = {}
        self._gallery_vectors: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------ set-up
    def _setup(self) -> None:
        from dataclasses import replace

        import hcgym.perception as hp
        from hcgym.envs.backends import make_backend
        from hcgym.perception.face.models import recognizer_cutoff
        from hcgym.synthesis.avatar_spec import AvatarSpec
        from hcgym.worlds import load_world
        from hcgym.worlds.spec import CameraSpec, Human, Robot

        # The shipped room, with the avatar pool at its centre (one shown at a time) and a bodiless camera.
        base = load_world("active_face_room")
        world = replace(
            base, name="active_face_recognition",
            humans=tuple(Human(f"a{s}", AvatarSpec.random(s), (0.0, 0.0, 0.0)) for s in self.avatars),
            robots=(Robot("drone", body="none", cameras=(CameraSpec("front", *self.obs_size, 60.0, near=0.05),)),),
        )
        from hcgym.envs.lattice import LatticeStore

        self._store = LatticeStore(self.lattice_dir) if self.lattice_dir else None
        self._sim = make_backend(self.backend_name)
        self._sim.load(world)
        self._detector = hp.make(self.detector_id)
        self._recognizer = hp.make(self.recognizer_id)
        if self._cutoff is None:
            self.cutoff, self._normalize = recognizer_cutoff(self.recognizer_id)
        else:
            self.cutoff, self._normalize = float(self._cutoff), self.recognizer_id != "face/dlib"

    # ------------------------------------------------------------ geometry
    def _pose(self, r_i: int, a_i: int):
        """Camera pose of lattice cell (radius index, angle index from the face normal)."""
        from hcgym.envs.backends.base import CameraPose
        from hcgym.geometry import look_at_angles

        h = self._sim.humans[self._person]
        eyes = (h.avatar.face_points["left_eye"] + h.avatar.face_points["right_eye"]) / 2
        target = np.array([0.0, 0.0, eyes[2]])
        r = self.min_distance + r_i * self.move_step
        ang = math.radians(self._heading + a_i * self.arc_step)
        eye = target + np.array([r * math.cos(ang), r * math.sin(ang), 0.0])
        yaw, pitch = look_at_angles(eye, target)
        return CameraPose.from_angles(eye, yaw, pitch)

    def _key(self, r_i: int, a_i: int) -> tuple:
        return (self.avatars[self._person], self._heading_i, r_i, a_i % self.n_angles)

    def _frame(self, r_i: int, a_i: int, size: tuple[int, int]):
        from hcgym.types import CameraIntrinsics

        intr = CameraIntrinsics.from_hfov(size[0], size[1], 60.0, 0.05, 60.0)
        return self._sim.render(pose=self._pose(r_i, a_i), intrinsics=intr, ground_truth=False)

    def _render_observation(self, r_i: int, a_i: int) -> np.ndarray:
        return self._frame(r_i, a_i, self.obs_size).rgb

    def _observation_frame(self, r_i: int, a_i: int) -> np.ndarray:
        if self._lattice is not None:
            return self._lattice.observation(r_i, a_i % self.n_angles)
        return self._frames.get_or((*self._key(r_i, a_i), self.obs_size),
                                   lambda: self._render_observation(r_i, a_i))

    def _compute_embedding(self, r_i: int, a_i: int) -> np.ndarray | None:
        """Embedding of the face nearest the image centre at a lattice cell (None when no face is found)."""
        from hcgym.types import Detections

        frame = self._frame(r_i, a_i, self.recognition_size)
        det = self._detector(frame)
        if not len(det):
            return None
        centre = np.array([frame.rgb.shape[1] / 2, frame.rgb.shape[0] / 2])
        mid = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
        k = int(np.argmin(np.linalg.norm(mid - centre, axis=1)))
        emb = self._recognizer(frame, Detections(det.boxes[k:k + 1], det.scores[k:k + 1]))
        return np.array(emb.vectors[0]) if len(emb) else None

    def _embedding(self, r_i: int, a_i: int) -> np.ndarray | None:
        if self._lattice is not None and self._lattice.has_embedding(r_i):
            return self._lattice.embedding(r_i, a_i % self.n_angles)
        return self._results.get_or((*self._key(r_i, a_i), "emb"), lambda: self._compute_embedding(r_i, a_i))

    def _recognise(self, r_i: int, a_i: int) -> tuple[float, str | None, float]:
        """(confidence, predicted label, distance) of the face pipeline at a lattice cell, with this episode's gallery.

        Embeddings are cached per cell; the gallery (which changes between episodes) is applied here.
        """
        emb = self._embedding(r_i, a_i)
        if emb is None:
            return 0.0, None, float("inf")
        who = self._gallery.identify(emb)
        return float(who.confidence), who.label, float(who.distance)

    def _build_gallery(self, members: tuple[int, ...]):
        """Five identities, one frontal 1 m image each, under a different light (no pixel-identical jackpot)."""
        if members not in self._galleries:
            from hcgym.perception.face.gallery import Gallery

            gallery = Gallery(self.cutoff, self.recognizer_id, self._normalize)
            for idx in members:
                gallery.enroll(str(self.avatars[idx]), self._gallery_vector(idx)[None])
            self._galleries[members] = gallery
        return self._galleries[members]

    def _gallery_vector(self, idx: int) -> np.ndarray:
        """Embedding of avatar ``idx``'s gallery image (computed once per avatar)."""
        if idx in self._gallery_vectors:
            return self._gallery_vectors[idx]
        from hcgym.envs.backends.base import CameraPose
        from hcgym.geometry import look_at_angles
        from hcgym.types import CameraIntrinsics

        sim = self._sim
        saved = (sim.light, sim.ambient)
        sim.set_lighting(direction=(0.5, 0.6, -0.7), color=(1.0, 0.92, 0.82), ambient=0.4)
        intr = CameraIntrinsics.from_hfov(*self.recognition_size, 60.0, 0.05, 60.0)
        h = sim.humans[idx]
        sim.show_only(h.name)
        sim.set_human_pose(h.name, position=(0.0, 0.0), heading=-90.0)
        eyes = (h.avatar.face_points["left_eye"] + h.avatar.face_points["right_eye"]) / 2
        target = np.array([0.0, -eyes[1], eyes[2]])  # the avatar faces -y: eyes at (0, -y_eyes_local)
        eye = target + np.array([0.0, -1.0, 0.0])
        frame = sim.render(pose=CameraPose.from_angles(eye, *look_at_angles(eye, target)), intrinsics=intr,
                           ground_truth=False)
        sim.set_lighting(direction=saved[0].direction, color=saved[0].color, ambient=saved[1])
        det = self._detector(frame)
        emb = self._recognizer(frame, det) if len(det) else None
        if emb is None or not len(emb):
            raise RuntimeError(f"no face found in the gallery image of avatar {self.avatars[idx]}")
        self._gallery_vectors[idx] = np.array(emb.vectors[0])
        return self._gallery_vectors[idx]

    # ------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self._sim is None:
            self._setup()
        options = dict(options or {})
        rng = self.np_random
        self._person = int(options.get("person", rng.integers(len(self.avatars))))
        others = [i for i in range(len(self.avatars)) if i != self._person]
        distractors = sorted(int(i) for i in rng.choice(others, 4, replace=False))
        self._gallery = self._build_gallery(tuple(sorted([self._person, *distractors])))
        if "heading_index" in options:
            self._heading_i = int(options["heading_index"]) % self.n_angles
        elif self.headings is not None:
            self._heading_i = self.headings[int(rng.integers(len(self.headings)))]
        else:
            self._heading_i = int(rng.integers(self.n_angles))
        self._heading = self._heading_i * self.arc_step
        person = self._sim.humans[self._person]
        self._sim.show_only(person.name)
        self._sim.set_human_pose(person.name, position=(0.0, 0.0), heading=self._heading)
        self._lattice = (self._store.get(self, self.avatars[self._person], self._heading_i)
                         if self._store is not None else None)
        if "distance" in options:
            dist = float(options["distance"])
        else:
            dist = float(rng.uniform(*self.start_distance))
        self._r = int(np.clip(round((dist - self.min_distance) / self.move_step), 0, self.n_radii - 1))
        if self.one_axis:
            self._a = 0
        elif "angle" in options:
            self._a = int(round(float(options["angle"]) / self.arc_step)) % self.n_angles
        else:
            self._a = int(rng.integers(self.n_angles))
        self._t = 0
        self._last = (0.0, None, float("inf"))
        first = self._observation_frame(self._r, self._a)
        self._stack = [first] * self.frame_stack
        return self._obs(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise SpecError("action", f"{action!r} is not in {self.action_space}")
        action = int(action)
        reward = 0.0
        if action == STAY:
            self._last = self._recognise(self._r, self._a)
            correct = self._last[1] == str(self.avatars[self._person])
            reward = self._last[0] if correct else 0.0
            if not correct:
                self._last = (0.0, self._last[1], self._last[2])
        elif action == FORWARD:
            self._r = max(self._r - 1, 0)
        elif action == BACKWARD:
            self._r = min(self._r + 1, self.n_radii - 1)
        elif action == ARC_LEFT:
            self._a = (self._a + 1) % self.n_angles
        elif action == ARC_RIGHT:
            self._a = (self._a - 1) % self.n_angles
        self._t += 1
        self._stack = self._stack[1:] + [self._observation_frame(self._r, self._a)]
        truncated = self._t >= self.max_steps
        return self._obs(), float(reward), False, truncated, self._info()

    def render(self):
        if self.render_mode == "rgb_array":
            return self._stack[-1].copy()
        return None

    def render_frame(self, size: tuple[int, int] = (400, 300)) -> np.ndarray:
        """The current view at ``size`` (for videos; independent of ``obs_size``)."""
        return self._frames.get_or((*self._key(self._r, self._a), tuple(size)),
                                   lambda: self._frame(self._r, self._a, tuple(size)).rgb)

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None

    # ------------------------------------------------------------ helpers
    def _obs(self) -> np.ndarray:
        return np.concatenate(self._stack, axis=2) if self.frame_stack > 1 else self._stack[0].copy()

    def _info(self) -> dict[str, Any]:
        angle = (self._a * self.arc_step + 180.0) % 360.0 - 180.0
        return {"distance": self.min_distance + self._r * self.move_step, "angle": angle,
                "confidence": self._last[0], "identity": self._last[1],
                "person": str(self.avatars[self._person]), "step": self._t}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only; the simulator and caches are rebuilt on the next reset."""
        state = self.__dict__.copy()
        for k in ("_sim", "_detector", "_recognizer", "_gallery", "_store"):
            state.pop(k, None)
        state["_sim"] = None
        state["_frames"] = _LRU(self._cache_size)
        state["_results"] = _LRU(self._cache_size)
        state["_galleries"] = {}
        state["_gallery_vectors"] = {}
        state["_lattice"] = None
        return state


class ActiveFaceRecognitionOneAxisEnv(ActiveFaceRecognitionEnv):
    """Setup 1: the person starts in front and centred; actions stay, forward, backward."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("one_axis", True)
        super().__init__(**kwargs)
