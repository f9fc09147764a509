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

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from hcgym.envs.base import OBS_CAMERA, HcgymEnv, check_size
from hcgym.errors import SpecError

STAY, FORWARD, BACKWARD, ARC_LEFT, ARC_RIGHT = range(5)
ACTION_NAMES = ("stay", "forward", "backward", "arc_left", "arc_right")
#: Avatars the pretrained agents train on; evaluate on others (``avatars=`` / ``--avatars``).
TRAIN_AVATARS = tuple(range(300_000, 300_008))
#: Name of the camera the face pipeline sees through (``recognition_size``).
RECOGNITION_CAMERA = "recognition"
#: The gallery images' light: another direction, warmer, less ambient than the room's (no pixel-identical jackpot).
GALLERY_LIGHT = {"direction": (0.5, 0.6, -0.7), "color": (1.0, 0.92, 0.82), "ambient": 0.4}


class ActiveFaceRecognitionEnv(HcgymEnv):
    """Gymnasium env of the paper's active face recognition task.

    Args:
        obs_size: observation (width, height); default :attr:`DEFAULT_OBS_SIZE` (84x84, the input of the paper's
            PPO network and of the shipped agents; agents that need more pixels, such as the rule-based one, ask
            for their own size, e.g. the paper's 400x300).
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
    DEFAULT_OBS_SIZE = (84, 84)
    backend_requires = ("lighting",)  # the gallery images are taken under another light
    transient = ("_detector", "_recognizer", "_gallery", "_store", "_lattice", "_galleries", "_gallery_vectors")

    def __init__(self, obs_size: tuple[int, int] | None = None, frame_stack: int = 1, one_axis: bool = False,
                 arc_step: float = 10.0, move_step: float = 0.1, start_distance: tuple[float, float] = (1.0, 20.0),
                 max_distance: float = 20.5, min_distance: float = 0.5, max_steps: int = 1000,
                 avatars: tuple[int, ...] = TRAIN_AVATARS, recognizer: str = "face/hcgym-irnet",
                 detector: str = "face/mediapipe-full", cutoff: float | None = None,
                 recognition_size: tuple[int, int] = (400, 300), cache_size: int = 20000,
                 backend: str = "embedded", render_mode: str | None = None, lattice_dir: str | None = None,
                 headings: tuple[int, ...] | None = None) -> None:
        super().__init__(obs_size, 60.0, backend, detector, recognizer, cutoff, cache_size, render_mode)
        if frame_stack < 1:
            raise SpecError("frame_stack", f"must be >= 1, got {frame_stack!r}")
        if len(avatars) < 5:
            raise SpecError("avatars", f"need at least 5 avatar seeds (1 person + 4 gallery identities), got {len(avatars)}")
        if not 0 < min_distance < start_distance[0] <= start_distance[1] <= max_distance:
            raise SpecError("start_distance", "need 0 < min_distance < start_distance[0] <= start_distance[1] "
                                              "<= max_distance")
        if 360.0 % arc_step:
            raise SpecError("arc_step", f"must divide 360, got {arc_step!r}")
        w, h = self.obs_size
        self.frame_stack, self.one_axis = int(frame_stack), bool(one_axis)
        self.arc_step, self.move_step = float(arc_step), float(move_step)
        self.start_distance, self.max_steps = (float(start_distance[0]), float(start_distance[1])), int(max_steps)
        self.min_distance, self.max_distance = float(min_distance), float(max_distance)
        self.avatars = tuple(int(a) for a in avatars)
        self.recognition_size = check_size(recognition_size, "recognition_size")
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
        self._galleries: dict[tuple[int, ...], Any] = {}
        self._gallery_vectors: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------ world and set-up
    def make_world(self):
        """The shipped room with the avatar pool at its centre (one shown at a time) and a bodiless drone whose
        cameras are the observation (``obs_size``) and what the face pipeline sees (``recognition_size``)."""
        from hcgym.synthesis.avatar_spec import AvatarSpec
        from hcgym.worlds import load_world
        from hcgym.worlds.spec import Human, Robot
        from hcgym.worlds.studio import populate

        cameras = (self.camera_spec(OBS_CAMERA), self.camera_spec(RECOGNITION_CAMERA, self.recognition_size))
        return populate(load_world("active_face_room"),
                        humans=[Human(f"a{s}", AvatarSpec.random(s), (0.0, 0.0, 0.0)) for s in self.avatars],
                        robots=[Robot("drone", body="none", cameras=cameras)], name="active_face_recognition")

    def _setup(self) -> None:
        from hcgym.envs.lattice import LatticeStore

        self.sim  # noqa: B018 - create and load the simulator
        self._store = LatticeStore(self.lattice_dir) if self.lattice_dir else None
        self._galleries, self._gallery_vectors = {}, {}

    # ------------------------------------------------------------ the lattice of drone poses
    def cell_pose(self, r_i: int, a_i: int):
        """Camera pose of lattice cell (radius index, angle index from the face normal): the drone looks at the
        person's vertical axis at eye height (:func:`hcgym.camera.orbit_pose`)."""
        from hcgym.camera import orbit_pose

        h = self.sim.humans[self._person]
        r = self.min_distance + r_i * self.move_step
        return orbit_pose(h.avatar.eye_axis_point, a_i * self.arc_step, 0.0, r, facing=self._heading)

    def _key(self, r_i: int, a_i: int) -> tuple:
        return (self.avatars[self._person], self._heading_i, r_i, a_i % self.n_angles)

    def render_cell(self, r_i: int, a_i: int, camera: str = OBS_CAMERA) -> np.ndarray:
        """The (H, W, 3) RGB view of ``camera`` at a lattice cell of the current episode (not cached)."""
        return self.sim.render(camera, pose=self.cell_pose(r_i, a_i), ground_truth=False).rgb

    def cell_embedding(self, r_i: int, a_i: int) -> np.ndarray | None:
        """The face pipeline's embedding of the face nearest the centre of the recognition view at a lattice cell
        (``None`` when no face is found; not cached)."""
        frame = self.sim.render(RECOGNITION_CAMERA, pose=self.cell_pose(r_i, a_i), ground_truth=False)
        return self.pipeline.embed(frame, keypoints=False)[0]

    def _observation_frame(self, r_i: int, a_i: int) -> np.ndarray:
        if self._lattice is not None:
            return self._lattice.observation(r_i, a_i % self.n_angles)
        return self._frames.get_or((*self._key(r_i, a_i), self.obs_size), lambda: self.render_cell(r_i, a_i))

    def _embedding(self, r_i: int, a_i: int) -> np.ndarray | None:
        if self._lattice is not None and self._lattice.has_embedding(r_i):
            return self._lattice.embedding(r_i, a_i % self.n_angles)
        return self._results.get_or((*self._key(r_i, a_i), "emb"), lambda: self.cell_embedding(r_i, a_i))

    def _recognise(self, r_i: int, a_i: int) -> tuple[float, str | None, float]:
        """(confidence, predicted label, distance) of the face pipeline at a lattice cell, with this episode's gallery.

        Embeddings are cached per cell; the gallery (which changes between episodes) is applied here.
        """
        emb = self._embedding(r_i, a_i)
        if emb is None:
            return 0.0, None, float("inf")
        who = self._gallery.identify(emb)
        return float(who.confidence), who.label, float(who.distance)

    # ------------------------------------------------------------ the gallery
    def _build_gallery(self, members: tuple[int, ...]):
        """Five identities, one frontal image each, under :data:`GALLERY_LIGHT`."""
        if members not in self._galleries:
            gallery = self.new_gallery()
            for idx in members:
                gallery.enroll(str(self.avatars[idx]), self.gallery_vector(idx)[None])
            self._galleries[members] = gallery
        return self._galleries[members]

    def gallery_vector(self, idx: int) -> np.ndarray:
        """Embedding of avatar ``idx``'s gallery image (computed once per avatar)."""
        if idx in self._gallery_vectors:
            return self._gallery_vectors[idx]
        from hcgym.camera import look_at

        sim = self.sim
        saved = (sim.light, sim.ambient)
        sim.set_lighting(**GALLERY_LIGHT)
        h = sim.humans[idx]
        sim.show_only(h.name)
        sim.set_human_pose(h.name, position=(0.0, 0.0), heading=-90.0)
        eyes = h.avatar.eye_midpoint
        # The shipped gallery's camera: 1 m in front of (0, -eye_y, eye_z), which is about 0.77 m from the eyes
        # (the point is the eyes mirrored behind the vertical axis); kept so the calibrated results hold.
        target = np.array([0.0, -eyes[1], eyes[2]])
        frame = sim.render(RECOGNITION_CAMERA, pose=look_at(target + np.array([0.0, -1.0, 0.0]), target),
                           ground_truth=False)
        sim.set_lighting(direction=saved[0].direction, color=saved[0].color, ambient=saved[1])
        vec = self.pipeline.embed(frame)[0]
        if vec is None:
            raise RuntimeError(f"no face found in the gallery image of avatar {self.avatars[idx]}")
        self._gallery_vectors[idx] = vec
        return vec

    # ------------------------------------------------------------ episodes
    def _reset_task(self, options: dict[str, Any]):
        rng = self.np_random
        self._person = int(options.get("person", rng.integers(len(self.avatars))))
        others = [i for i in range(len(self.avatars)) if i != self._person]
        distractors = sorted(int(i) for i in rng.choice(others, 4, replace=False))
        self._members = tuple(sorted([self._person, *distractors]))
        if "heading_index" in options:
            self._heading_i = int(options["heading_index"]) % self.n_angles
        elif self.headings is not None:
            self._heading_i = self.headings[int(rng.integers(len(self.headings)))]
        else:
            self._heading_i = int(rng.integers(self.n_angles))
        self._heading = self._heading_i * self.arc_step
        self._place_person()
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

    def _place_person(self) -> None:
        """Build the episode's gallery, then show the person at the centre facing ``_heading``."""
        self._gallery = self._build_gallery(self._members)
        person = self.sim.humans[self._person]
        self.sim.show_only(person.name)
        self.sim.set_human_pose(person.name, position=(0.0, 0.0), heading=self._heading)
        self._lattice = (self._store.get(self, self.avatars[self._person], self._heading_i)
                         if self._store is not None else None)

    def _restore_episode(self) -> None:
        self._place_person()

    def _step_task(self, action: int):
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

    def _current_image(self) -> np.ndarray:
        return self._stack[-1]

    def render_frame(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The current view at ``size`` (default: ``recognition_size``; for videos, independent of ``obs_size``).

        Sizes other than ``obs_size`` and ``recognition_size`` need a backend that renders any camera model.
        """
        size = self.recognition_size if size is None else check_size(size, "size")
        camera = {self.obs_size: OBS_CAMERA, self.recognition_size: RECOGNITION_CAMERA}.get(size)
        if camera is not None:
            return self._frames.get_or((*self._key(self._r, self._a), size),
                                       lambda: self.render_cell(self._r, self._a, camera))
        from hcgym.envs.backends import check_backend

        check_backend(self.backend_name, ("intrinsics",))
        intr = self.camera_spec("video", size).intrinsics()
        return self._frames.get_or((*self._key(self._r, self._a), size), lambda: self.sim.render(
            OBS_CAMERA, pose=self.cell_pose(self._r, self._a), intrinsics=intr, ground_truth=False).rgb)

    # ------------------------------------------------------------ helpers
    def _obs(self) -> np.ndarray:
        return np.concatenate(self._stack, axis=2) if self.frame_stack > 1 else self._stack[0].copy()

    def _info(self) -> dict[str, Any]:
        angle = (self._a * self.arc_step + 180.0) % 360.0 - 180.0
        return {"distance": self.min_distance + self._r * self.move_step, "angle": angle,
                "confidence": self._last[0], "identity": self._last[1],
                "person": str(self.avatars[self._person]), "step": self._t}


class ActiveFaceRecognitionOneAxisEnv(ActiveFaceRecognitionEnv):
    """Setup 1: the person starts in front and centred; actions stay, forward, backward."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("one_axis", True)
        super().__init__(**kwargs)
