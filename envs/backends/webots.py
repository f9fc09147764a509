"""Webots backend: drives a running Webots R2023b simulation as an extern Supervisor controller.

Workflow (see ``docs/backends.md``)::

    hcgym export-webots active_face_room out/            # writes out/active_face_room.wbt
    webots out/active_face_room.wbt                      # open it in Webots
    $WEBOTS_HOME/webots-controller --robot-name=drone my_script.py

where ``my_script.py`` creates ``WebotsBackend()`` (or ``make_backend("webots")``) and calls
``load(world, seed)`` with the world and seed that were exported. The controller attaches to one
robot of the world (the Webots ``--robot-name``); it moves every human and robot through their
``translation``/``rotation`` fields and renders that robot's cameras.

Conversions (module-level functions, usable without Webots):

* :func:`bgra_to_rgb`: ``Camera.getImage()`` BGRA bytes -> (H, W, 3) uint8 RGB.
* :func:`range_to_depth`: ``RangeFinder.getRangeImage()`` -> (H, W) float32 z-depth in metres
  along the optical axis, ``inf`` where nothing was hit (Webots returns ``inf`` outside
  ``[minRange, maxRange)``; values >= ``maxRange`` are mapped to ``inf`` too).
* :func:`segmentation_ids`: recognition segmentation BGRA -> (H, W) int32, 0 = background,
  ``k + 1`` = human ``k`` (colours from :func:`hcgym.worlds.webots_export.recognition_color`).
* :func:`robot_pose_for_camera`: the robot ``translation``/``rotation`` that puts a camera at a
  requested :class:`CameraPose`.

Nothing in this module has been run against a real Webots: it follows the R2023b documentation
and is tested with a fake ``controller`` module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcgym.envs.backends.base import CameraPose, SimBackend
from hcgym.errors import DependencyNotInstalled, HcgymError, SpecError
from hcgym.types import CameraIntrinsics, Frame
from hcgym.worlds.spec import CameraSpec, WorldSpec
from hcgym.worlds.webots_export import (
    COLOR_LEVEL_STEP,
    camera_mount_rotation,
    human_def,
    human_field_values,
    light_def,
    light_field_values,
    proto_name,
    robot_def,
    robot_field_values,
    rotation_field,
)

__all__ = ["WebotsBackend", "bgra_to_rgb", "range_to_depth", "segmentation_ids", "robot_pose_for_camera",
           "human_field_values", "robot_field_values", "INSTALL_HINT"]

INSTALL_HINT = (
    "the Webots backend needs the Webots R2023b `controller` Python module, which was not found. "
    "Install Webots R2023b (https://cyberbotics.com), export the world with "
    "`hcgym export-webots WORLD OUTDIR [--seed S]`, open OUTDIR/<world>.wbt in Webots, and run your script "
    "as the extern controller of the robot: `$WEBOTS_HOME/webots-controller --robot-name=<robot> script.py` "
    "(or set WEBOTS_HOME, add $WEBOTS_HOME/lib/controller to LD_LIBRARY_PATH and "
    "$WEBOTS_HOME/lib/controller/python to PYTHONPATH, and set WEBOTS_CONTROLLER_URL=<robot>)."
)

#: OpenCV camera axes (x right, y down, z forward) expressed in Webots camera axes (x forward, y left, z up).
CV_IN_WEBOTS = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# ------------------------------------------------------------------ conversions
def bgra_to_rgb(image: bytes | bytearray | memoryview | np.ndarray, width: int, height: int) -> np.ndarray:
    """Webots BGRA image (``width * height * 4`` bytes, rows top to bottom) -> (H, W, 3) uint8 RGB."""
    a = np.frombuffer(image, dtype=np.uint8) if not isinstance(image, np.ndarray) else image.astype(np.uint8)
    if a.size != width * height * 4:
        raise ValueError(f"expected {width}x{height} BGRA ({width * height * 4} bytes), got {a.size}")
    return np.ascontiguousarray(a.reshape(height, width, 4)[:, :, 2::-1])


def range_to_depth(range_image: Any, width: int, height: int, max_range: float, min_range: float = 0.0,
                   planar: bool = True, hfov_deg: float | None = None) -> np.ndarray:
    """Range-finder image -> (H, W) float32 z-depth in metres; ``inf`` where nothing was hit.

    ``range_image`` is what ``RangeFinder.getRangeImage()`` returns: a flat list of floats, float32
    ``bytes`` (``data_type="buffer"``) or an array, rows top to bottom. Values that are not finite,
    ``<= 0``, ``< min_range`` or ``>= max_range`` become ``inf``. Webots documents its range image as
    the distance to the camera plane (``planar=True``: values are kept); with ``planar=False`` the
    values are Euclidean distances from the camera centre and are projected on the optical axis
    (needs ``hfov_deg``, square pixels, pixel centres at ``(i + 0.5, j + 0.5)``).
    """
    if isinstance(range_image, (bytes, bytearray, memoryview)):
        raw = np.frombuffer(range_image, dtype=np.float32)
    else:
        raw = np.asarray(range_image, dtype=np.float32)
    if raw.size != width * height:
        raise ValueError(f"expected {width}x{height} range values, got {raw.size}")
    raw = raw.reshape(height, width)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(raw) | (raw <= 0) | (raw < min_range) | (raw >= max_range)
    d = raw.astype(np.float32, copy=True)
    if not planar:
        if hfov_deg is None:
            raise ValueError("hfov_deg is needed to convert Euclidean ranges to z-depth")
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        u = (np.arange(width) + 0.5 - width / 2.0) / f
        v = (np.arange(height) + 0.5 - height / 2.0) / f
        with np.errstate(invalid="ignore"):
            d = (d / np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)).astype(np.float32)
    d[bad] = np.inf
    return d


def segmentation_ids(image: bytes | bytearray | memoryview | np.ndarray, width: int, height: int,
                     n_humans: int) -> np.ndarray:
    """Recognition segmentation BGRA image -> (H, W) int32 ids: 0 = background, ``k + 1`` = human ``k``.

    Each channel is rounded to the nearest of the 16 levels ``17 * l`` and the id bits are read back
    as :func:`~hcgym.worlds.webots_export.recognition_color` wrote them; colours that decode to no
    human (black background, unknown objects) give 0.
    """
    rgb = bgra_to_rgb(image, width, height).astype(np.int32)
    levels = np.clip(np.rint(rgb / COLOR_LEVEL_STEP), 0, 15).astype(np.int32)
    ids = np.zeros((height, width), dtype=np.int32)
    for bit in range(12):
        k, c = divmod(bit, 3)
        ids |= ((levels[:, :, c] >> (3 - k)) & 1) << bit
    ids[ids > n_humans] = 0
    return ids


def robot_pose_for_camera(cam: CameraSpec, position: Sequence[float], rotation: np.ndarray
                          ) -> tuple[list[float], list[float]]:
    """Robot ``translation`` and ``rotation`` field values that put ``cam`` at a camera pose.

    ``position`` (metres) and ``rotation`` (camera-to-world, OpenCV axes) are a :class:`CameraPose`.
    The camera keeps its mount on the body, so the whole robot is moved (and tilted if the pose's
    pitch differs from the mount pitch).
    """
    r_cam = np.asarray(rotation, dtype=np.float64) @ CV_IN_WEBOTS.T  # Webots camera axes in the world
    r_body = r_cam @ camera_mount_rotation(cam).T
    t = np.asarray(position, dtype=np.float64) - r_body @ np.asarray(cam.mount_position, dtype=np.float64)
    return [float(x) for x in t], rotation_field(r_body)


# ---------------------------------------------------------------------- backend
def _controller_module() -> Any:
    try:
        import controller  # type: ignore[import-not-found]
    except ImportError as e:
        raise DependencyNotInstalled(INSTALL_HINT) from e
    return controller


_SUPERVISOR: tuple[Any, Any] | None = None  # (controller module, Supervisor): Webots allows one per process


def _supervisor(module: Any) -> Any:
    global _SUPERVISOR
    if _SUPERVISOR is None or _SUPERVISOR[0] is not module:
        _SUPERVISOR = (module, module.Supervisor())
    return _SUPERVISOR[1]


@dataclass
class _Pose:
    translation: Any
    rotation: Any


@dataclass
class _CameraDevices:
    camera: Any
    range_finder: Any


_SAID_RIGID = False


class WebotsBackend(SimBackend):
    """A world running in Webots R2023b, driven as the extern supervisor controller of one robot.

    Args:
        robot: name of the world robot this controller is attached to (checked against the Webots
            robot name); ``None`` accepts whichever robot Webots attached it to.

    Rendering moves the robot so that the camera lands at the requested pose (for a ``pose``
    override the body may tilt), advances Webots one basic time step, reads the Camera, the
    ``<camera>_depth`` RangeFinder and the recognition segmentation, then sets the robot's fields
    back to its own pose (applied at the next step). ``step(dt)`` advances ``round(dt / basicTimeStep)``
    steps; each render also advances Webots one step without changing :attr:`time`.
    """

    name = "webots"
    #: Lighting is set through the exported ``DEF LIGHT_0`` DirectionalLight; cameras are the world's devices
    #: (no ``intrinsics``) and the world's people are fixed by the exported file (no ``add_human``).
    capabilities = frozenset({"lighting"})

    def __init__(self, robot: str | None = None) -> None:
        super().__init__()
        self._controller = _controller_module()
        self._robot_name = robot
        self._sup: Any = None
        self._timestep = 0
        self._human_fields: list[_Pose] = []
        self._robot_fields: dict[str, _Pose] = {}
        self._devices: dict[str, _CameraDevices] = {}
        self._active: CameraSpec | None = None
        self._light: Any = None

    # ---------------------------------------------------------------- hooks
    def _load(self, world: WorldSpec) -> None:
        sup = self._sup = _supervisor(self._controller)
        self._timestep = int(sup.getBasicTimeStep())
        attached = str(sup.getName())
        names = [r.name for r in world.robots] or ["hcgym_supervisor"]
        if self._robot_name is not None and attached != self._robot_name:
            raise SpecError("robot", f"this controller is attached to Webots robot {attached!r}, not "
                                     f"{self._robot_name!r}; start it with --robot-name={self._robot_name}")
        if attached not in names:
            raise SpecError("robot", f"this controller is attached to Webots robot {attached!r}, which is not a "
                                     f"robot of world {world.name!r} (robots: {', '.join(names)})")
        self._robot_name = attached

        missing, wrong = [], []
        self._human_fields = []
        for i, h in enumerate(self.humans):
            node = sup.getFromDef(human_def(i))
            if node is None:
                missing.append(human_def(i))
                continue
            expected = proto_name(h.avatar.key)
            if str(node.getTypeName()) != expected:
                wrong.append(f"{human_def(i)} is {node.getTypeName()}, expected {expected}")
            self._human_fields.append(_Pose(node.getField("translation"), node.getField("rotation")))
        self._robot_fields = {}
        for r in world.robots:
            node = sup.getFromDef(robot_def(r.name))
            if node is None:
                missing.append(robot_def(r.name))
                continue
            self._robot_fields[r.name] = _Pose(node.getField("translation"), node.getField("rotation"))
        self._light = sup.getFromDef(light_def(0)) if world.lights else None
        if world.lights and self._light is None:
            missing.append(light_def(0))
        if missing:
            raise SpecError("webots", f"DEF {', '.join(missing)} not found in the open Webots world; open the .wbt "
                                      f"written by `hcgym export-webots` for world {world.name!r}")
        if wrong:
            raise SpecError("webots", "the open Webots world has other avatars than this world and seed "
                                      f"({'; '.join(wrong)}); export it again with --seed {self.seed}")
        self._open_cameras(world)
        for i in range(len(self.humans)):
            self._move_human(i)
        for name in self.robots:
            self._move_robot(name)

    def _open_cameras(self, world: WorldSpec) -> None:
        self._devices = {}
        robot = next((r for r in world.robots if r.name == self._robot_name), None)
        for cam in robot.cameras if robot else ():
            camera, rf = self._sup.getDevice(cam.name), self._sup.getDevice(cam.name + "_depth")
            if camera is None or rf is None:
                raise SpecError("webots", f"robot {robot.name!r} has no Camera {cam.name!r} and RangeFinder "
                                          f"{cam.name + '_depth'!r}; export the world again")
            size = (int(camera.getWidth()), int(camera.getHeight()))
            if size != (cam.width, cam.height):
                raise SpecError("webots", f"camera {cam.name!r} is {size[0]}x{size[1]} in Webots but "
                                          f"{cam.width}x{cam.height} in the world spec; export the world again")
            camera.enable(self._timestep)
            camera.recognitionEnable(self._timestep)
            camera.enableRecognitionSegmentation()
            rf.enable(self._timestep)
            self._devices[cam.name] = _CameraDevices(camera, rf)

    def _move_human(self, index: int) -> None:
        h = self.humans[index]
        t, r = human_field_values(h.position, h.heading)
        self._human_fields[index].translation.setSFVec3f(t)
        self._human_fields[index].rotation.setSFRotation(r)

    def _deform_human(self, index: int) -> None:
        """Webots shows each person as one rigid mesh: people walk their paths and turn (``_move_human``),
        but their bodies, hands and faces keep the exported pose (said once per process)."""
        global _SAID_RIGID
        if not _SAID_RIGID:
            import logging

            logging.getLogger(__name__).warning(
                "Webots backend: people move along their paths and turn, but their meshes are rigid: body, hand "
                "and face motion are not shown in the images (the ground truth still follows the timeline)")
            _SAID_RIGID = True

    def _move_robot(self, name: str) -> None:
        s = self.robots[name]
        t, r = robot_field_values(s.position, s.yaw)
        self._robot_fields[name].translation.setSFVec3f(t)
        self._robot_fields[name].rotation.setSFRotation(r)

    def _step(self, dt: float) -> None:
        for _ in range(round(dt * 1000.0 / self._timestep)):
            self._advance()

    def render(self, camera: str | None = None, pose: CameraPose | None = None,
               intrinsics: CameraIntrinsics | None = None, ground_truth: bool = True) -> Frame:
        if intrinsics is not None:
            raise SpecError("intrinsics", "the Webots backend renders with the camera devices of the world; "
                                          "change width/height/hfov in the world spec and export it again")
        robot, cam = self._world().camera(camera)
        if cam.name not in self._devices or robot.name != self._robot_name:
            raise SpecError("camera", f"camera {robot.name}/{cam.name} is not on robot {self._robot_name!r}, the "
                                      "robot this controller is attached to; only its cameras can be rendered")
        self._active = cam
        return super().render(camera, pose, ground_truth=ground_truth)

    def _set_lighting(self) -> None:
        """Write ``self.light`` and ``self.ambient`` into the world's first DirectionalLight (``DEF LIGHT_0``)."""
        if self._light is None:
            raise SpecError("lighting", f"world {self._world().name!r} has no light to change")
        values = light_field_values(self.light, self.ambient, len(self._world().lights))
        self._light.getField("direction").setSFVec3f(values["direction"])
        self._light.getField("color").setSFColor(values["color"])
        self._light.getField("intensity").setSFFloat(values["intensity"])
        self._light.getField("ambientIntensity").setSFFloat(values["ambientIntensity"])

    def _render(self, intrinsics: CameraIntrinsics, pose: CameraPose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cam = self._active
        assert cam is not None and self._robot_name is not None
        dev = self._devices[cam.name]
        fields = self._robot_fields[self._robot_name]
        t, r = robot_pose_for_camera(cam, pose.position, pose.rotation)
        fields.translation.setSFVec3f(t)
        fields.rotation.setSFRotation(r)
        self._advance()
        w, h = cam.width, cam.height
        rgb = bgra_to_rgb(dev.camera.getImage(), w, h)
        try:
            ranges = dev.range_finder.getRangeImage(data_type="buffer")
        except TypeError:  # data_type is not in every Webots version
            ranges = dev.range_finder.getRangeImage()
        depth = range_to_depth(ranges, w, h, float(dev.range_finder.getMaxRange()),
                               float(dev.range_finder.getMinRange()))
        seg = segmentation_ids(dev.camera.getRecognitionSegmentationImage(), w, h, len(self.humans))
        self._move_robot(self._robot_name)
        return rgb, depth, seg

    def _advance(self) -> None:
        if self._sup.step(self._timestep) == -1:
            raise HcgymError("Webots ended the simulation (step returned -1)")
