"""The small base every hcgym env stands on (after Gymnasium's ``MujocoEnv``).

:class:`HcgymEnv` owns what every task shares, so a task env supplies only its world, actions, reward and
termination:

* the **backend lifecycle**: the backend name is checked at construction against what the task needs
  (:attr:`HcgymEnv.backend_requires`, refused with one message before anything starts); the simulator is
  created from :func:`~hcgym.envs.backends.make_backend` on first use (never in ``__init__``), loaded with
  the task's :meth:`HcgymEnv.make_world`, and released by :meth:`close`;
* the **observation camera** from ``obs_size`` (:meth:`HcgymEnv.camera_spec`), rendered through the world's
  cameras, never through ad-hoc intrinsics;
* **seeding** (``reset(seed=...)`` seeds ``np_random``; every random choice of a task flows from it);
* the **face pipeline and gallery** (:attr:`HcgymEnv.pipeline`, :meth:`HcgymEnv.new_gallery`) with the
  recognizer's calibrated cut-off;
* the **observation and recognition caches** (:class:`LRUCache`; they never change a result);
* ``render_mode`` and **pickling**: a pickled env, even mid-episode, drops its simulator, pipeline and caches
  and rebuilds them on its next call, then puts the episode back (:meth:`HcgymEnv._restore_episode`), so the
  copy steps exactly like the original.

Task hooks: :meth:`make_world`, :meth:`_setup` (once per process, after the simulator exists),
:meth:`_reset_task`, :meth:`_step_task`, :meth:`_restore_episode` and :meth:`_current_image`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from hcgym.errors import SpecError

#: Name of the observation camera in an env's world.
OBS_CAMERA = "obs"


class LRUCache(OrderedDict):
    """A bounded least-recently-used cache (``size`` 0 keeps nothing)."""

    def __init__(self, size: int = 1024) -> None:
        super().__init__()
        self.size = int(size)

    def get_or(self, key, make: Callable[[], Any]):
        """The cached value of ``key``, else ``make()`` (stored, evicting the oldest entry beyond ``size``)."""
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        if self.size > 0:
            self[key] = value
            if len(self) > self.size:
                self.popitem(last=False)
        return value


def check_size(value, name: str = "obs_size", minimum: int = 8) -> tuple[int, int]:
    """``(width, height)`` as ints, or one :class:`SpecError` naming ``name``."""
    try:
        w, h = (int(v) for v in value)
    except (TypeError, ValueError):
        raise SpecError(name, f"expected (width, height), got {value!r}") from None
    if w < minimum or h < minimum:
        raise SpecError(name, f"expected (width, height) of at least {minimum} pixels, got {value!r}")
    return w, h


class HcgymEnv(gym.Env, ABC):
    """Base of the hcgym envs. See the module docstring for what it owns.

    Args:
        obs_size: observation (width, height); ``None``: the env's :attr:`DEFAULT_OBS_SIZE`.
        hfov: horizontal field of view of the observation camera, degrees.
        backend: simulator backend name (``"embedded"`` or ``"webots"``).
        detector, recognizer: registered sensor ids of the face pipeline; ``cutoff``: the gallery cut-off ``a``
            (default: the value calibrated for the recognizer).
        cache_size: observations and recognition results kept (LRU).
        render_mode: ``"rgb_array"`` returns the current observation image.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    #: (width, height) of observations when none is given; training, evaluation and the demo read it here.
    DEFAULT_OBS_SIZE: tuple[int, int] = (400, 300)
    #: Backend capabilities (:data:`hcgym.envs.backends.CAPABILITIES`) the task needs.
    backend_requires: tuple[str, ...] = ()
    #: Attributes of the task rebuilt after unpickling (besides the simulator, pipeline and caches).
    transient: tuple[str, ...] = ()
    #: Embeddings the face pipeline keeps by image content (0: the task caches per state itself).
    PIPELINE_CACHE: int = 0

    def __init__(self, obs_size: tuple[int, int] | None = None, hfov: float = 60.0, backend: str = "embedded",
                 detector: str = "face/mediapipe-full", recognizer: str = "face/dlib", cutoff: float | None = None,
                 cache_size: int = 4096, render_mode: str | None = None) -> None:
        from hcgym.envs.backends import check_backend

        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise SpecError("render_mode", f"unknown render mode {render_mode!r} "
                                           f"(allowed: {', '.join(self.metadata['render_modes'])})")
        self.obs_size = check_size(self.DEFAULT_OBS_SIZE if obs_size is None else obs_size)
        if not 0 < float(hfov) < 180:
            raise SpecError("hfov", f"expected 0 < hfov < 180 degrees, got {hfov!r}")
        self.hfov = float(hfov)
        self.backend_name = check_backend(backend, self.backend_requires)
        self.detector_id, self.recognizer_id, self._cutoff = detector, recognizer, cutoff
        self.render_mode = render_mode
        self._cache_size = int(cache_size)
        self._frames = LRUCache(self._cache_size)
        self._results = LRUCache(self._cache_size)
        self._sim = None
        self._pipeline = None
        self._ready = False  #: the task's _setup ran in this process
        self._in_episode = False  #: reset was called (a restored copy puts the episode back)

    # ------------------------------------------------------------ task hooks
    @abstractmethod
    def make_world(self):
        """The :class:`~hcgym.worlds.WorldSpec` the simulator loads, or ``None`` when the task needs none."""

    def _setup(self) -> None:  # noqa: B027 - optional hook
        """Create what the task needs once per process (galleries, detectors); the simulator exists already."""

    @abstractmethod
    def _reset_task(self, options: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode (draw from ``self.np_random``); return the first observation and info."""

    @abstractmethod
    def _step_task(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply a valid action; return the Gymnasium 5-tuple."""

    def _restore_episode(self) -> None:  # noqa: B027 - optional hook
        """Put the current episode back into a freshly built simulator (after unpickling)."""

    @abstractmethod
    def _current_image(self) -> np.ndarray:
        """The current observation image (H, W, 3) uint8 RGB."""

    # ------------------------------------------------------------ backend
    @property
    def sim(self):
        """The simulator backend, created and loaded with :meth:`make_world` on first use."""
        if self._sim is None:
            world = self.make_world()
            if world is None:
                raise RuntimeError(f"{type(self).__name__} uses no simulator")
            from hcgym.envs.backends import make_backend

            sim = make_backend(self.backend_name, self.backend_requires)
            try:
                sim.load(world, seed=0)
            except BaseException:
                sim.close()
                raise
            self._sim = sim
        return self._sim

    def camera_spec(self, name: str = OBS_CAMERA, size: tuple[int, int] | None = None):
        """The :class:`~hcgym.worlds.CameraSpec` called ``name`` of ``size`` (default ``obs_size``) with the env's
        field of view; task worlds carry their cameras from here."""
        from hcgym.worlds.spec import CameraSpec

        w, h = self.obs_size if size is None else size
        return CameraSpec(name, w, h, self.hfov, near=0.05, far=60.0)

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None
        self._ready = False

    # ------------------------------------------------------------ face recognition
    @property
    def pipeline(self):
        """The :class:`~hcgym.perception.face.pipeline.FacePipeline` of ``detector`` and ``recognizer``."""
        if self._pipeline is None:
            from hcgym.perception.face.pipeline import FacePipeline

            self._pipeline = FacePipeline(self.detector_id, self.recognizer_id, cache_size=self.PIPELINE_CACHE)
        return self._pipeline

    def cutoff_and_normalize(self) -> tuple[float, bool]:
        """The gallery cut-off ``a`` and whether embeddings are L2-normalised."""
        if self._cutoff is None:
            from hcgym.perception.face.models import recognizer_cutoff

            return recognizer_cutoff(self.recognizer_id)
        return float(self._cutoff), self.recognizer_id != "face/dlib"

    def gallery_cutoff(self) -> float:
        """The gallery cut-off ``a`` (the ``cutoff`` argument, else the recognizer's calibrated one)."""
        return self.cutoff_and_normalize()[0]

    def new_gallery(self):
        """An empty :class:`~hcgym.perception.face.gallery.Gallery` with the env's cut-off."""
        from hcgym.perception.face.gallery import Gallery

        cutoff, normalize = self.cutoff_and_normalize()
        return Gallery(cutoff, self.recognizer_id, normalize)

    # ------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._prepare()
        obs, info = self._reset_task(dict(options or {}))
        self._in_episode = True
        return obs, info

    def step(self, action):
        if not self.action_space.contains(action):
            raise SpecError("action", f"{action!r} is not in {self.action_space}")
        if not self._in_episode:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        if not self._ready:  # an unpickled copy: rebuild, then put the episode back
            self._prepare()
            self._restore_episode()
        return self._step_task(int(action))

    def render(self):
        if self.render_mode == "rgb_array" and self._in_episode:
            return self._current_image().copy()
        return None

    def _prepare(self) -> None:
        if not self._ready:
            self._setup()
            self._ready = True

    # ------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """The configuration and the episode state; the simulator, pipeline and caches are rebuilt on use."""
        state = self.__dict__.copy()
        for k in ("_sim", "_pipeline", *self.transient):
            state[k] = None
        state["_frames"] = LRUCache(self._cache_size)
        state["_results"] = LRUCache(self._cache_size)
        state["_ready"] = False
        return state
