"""The simulator backend contract.

A :class:`SimBackend` owns one simulator: it loads a :class:`~hcgym.worlds.WorldSpec`
with a seed, moves humans and robots, steps time and renders a camera into a
:class:`~hcgym.types.Frame` with RGB, depth, instance segmentation and ground
truth. Backends know nothing of rewards, agents or sensors.

Subclasses implement the four simulator hooks ``_load``, ``_move_human``,
``_move_robot`` and ``_render``; everything else (avatar building, camera
poses, ground truth) is shared here so every backend reports the same truth.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcgym.camera import CameraPose
from hcgym.errors import SpecError
from hcgym.geometry import rot_z
from hcgym.synthesis.builder import Avatar, build_avatar
from hcgym.types import CameraIntrinsics, Frame
from hcgym.worlds.spec import CameraSpec, Robot, WorldSpec


@dataclass
class HumanState:
    """A human placed in the loaded world."""

    name: str
    avatar: Avatar
    position: np.ndarray  #: feet position, metres.
    heading: float  #: degrees, 0 = facing +x.
    visible: bool = True  #: hidden humans are not rendered (their ground truth has no pixels).
    #: The person's behaviour over time (:class:`~hcgym.synthesis.motion.timeline.HumanMotion`); ``None``: static.
    motion: Any = None
    #: The current :class:`~hcgym.synthesis.motion.rig.PosedBody` of a moving person (``None`` when static).
    posed: Any = None
    #: The current :class:`~hcgym.synthesis.motion.timeline.MotionState` (labels, velocity) of a moving person.
    state: Any = None

    @property
    def transform(self) -> np.ndarray:
        """4x4 avatar-to-world transform."""
        return Avatar.placement(tuple(self.position), self.heading)

    def render_mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(S, 3) positions and normals of the mesh to draw, avatar frame, ``avatar.mesh`` vertex order."""
        if self.posed is None:
            return self.avatar.mesh["positions"], self.avatar.mesh["normals"]
        return self.posed.render_arrays()

    # Geometry in the avatar frame, posed when the person moves (what the ground truth projects).
    @property
    def keypoints(self) -> np.ndarray:
        """(17, 3) COCO keypoints."""
        return self.avatar.keypoints_3d if self.posed is None else self.posed.keypoints

    @property
    def vertices(self) -> np.ndarray:
        """(V, 3) mesh vertices."""
        return self.avatar.mesh["vertices"] if self.posed is None else self.posed.vertices

    def face_points(self, names) -> np.ndarray:
        """(N, 3) named face points (``left_eye``, ``nose_tip``, ``chin``, ...)."""
        if self.posed is None:
            return np.stack([self.avatar.face_points[n] for n in names])
        from hcgym.synthesis.motion.rig import face_point_ids

        kp = self.posed.keypoints
        ids = face_point_ids()
        eyes = {"left_eye": kp[1], "right_eye": kp[2]}
        return np.stack([eyes[n] if n in eyes else self.posed.vertices[ids[n]] for n in names])


@dataclass
class RobotState:
    spec: Robot
    position: np.ndarray
    yaw: float


#: What a backend may or may not do beyond loading a world, moving bodies and rendering its named cameras
#: from any pose; a backend lists what it can do in :attr:`SimBackend.capabilities`.
CAPABILITIES = {
    "intrinsics": "render with a camera model other than the world's cameras (render(intrinsics=...))",
    "lighting": "change the light at run time (set_lighting)",
    "add_human": "add people to a loaded world (add_human)",
}


class SimBackend(ABC):
    """Abstract simulator backend. Use as a context manager or call :meth:`close`."""

    name = "abstract"
    #: The :data:`CAPABILITIES` this backend offers.
    capabilities: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.world: WorldSpec | None = None
        self.seed: int = 0
        self.time: float = 0.0
        self.humans: list[HumanState] = []
        self.robots: dict[str, RobotState] = {}

    # --------------------------------------------------------------- public
    def load(self, world: WorldSpec, seed: int = 0) -> None:
        """Load ``world``; humans with ``avatar: random`` are drawn from ``seed``."""
        self.world, self.seed, self.time = world, int(seed), 0.0
        specs = world.avatars(self.seed)
        self.humans = [HumanState(h.name, build_avatar(s), np.asarray(h.position, dtype=np.float64), h.heading)
                       for h, s in zip(world.humans, specs)]
        for i, (h, s) in enumerate(zip(world.humans, specs)):
            if h.behaviour is not None and h.behaviour.moves:
                from hcgym.synthesis.motion.rig import rig_for
                from hcgym.synthesis.motion.timeline import HumanMotion

                self.humans[i].motion = HumanMotion(h.behaviour, rig_for(s), h.position, h.heading,
                                                    seed=1_000_003 * self.seed + i, style_key=s.identity_key())
        self.robots = {r.name: RobotState(r, np.asarray(r.position, dtype=np.float64), r.yaw) for r in world.robots}
        self.light, self.ambient = world.lights[0], world.ambient
        self._load(world)
        self._animate()

    def human(self, name: str) -> HumanState:
        for h in self.humans:
            if h.name == name:
                return h
        raise SpecError("human", f"no human {name!r} (humans: {', '.join(h.name for h in self.humans) or 'none'})")

    def set_human_pose(self, name: str, position=None, heading: float | None = None) -> None:
        """Move a human's feet to ``position`` (x, y[, z]) and/or turn it to ``heading`` degrees."""
        h = self.human(name)
        if position is not None:
            p = np.asarray(position, dtype=np.float64)
            h.position = np.array([p[0], p[1], p[2] if p.size > 2 else h.position[2]])
        if heading is not None:
            h.heading = float(heading)
        self._move_human(self.humans.index(h))

    def add_human(self, name: str, avatar, position=(0.0, 0.0, 0.0), heading: float = 0.0,
                  visible: bool = True) -> HumanState:
        """Add a human to the loaded world (an :class:`AvatarSpec` or a built :class:`Avatar`).

        Backends reuse the mesh and texture of avatars they have already uploaded, so a generator
        can keep one loaded world and bring people in and out of it (see :meth:`show_only`).
        """
        from hcgym.synthesis.avatar_spec import AvatarSpec

        self._world()
        if any(h.name == name for h in self.humans):
            raise SpecError("human", f"a human named {name!r} is already in the world")
        built = build_avatar(avatar) if isinstance(avatar, AvatarSpec) else avatar
        p = np.asarray(position, dtype=np.float64).reshape(-1)
        state = HumanState(name, built, np.array([p[0], p[1], p[2] if p.size > 2 else 0.0]), float(heading),
                           bool(visible))
        self.humans.append(state)
        try:
            self._add_human(len(self.humans) - 1)
        except BaseException:
            self.humans.pop()  # the backend could not add it: leave the world as it was
            raise
        return state

    def set_human_visible(self, name: str, visible: bool) -> None:
        """Show or hide a human (hidden humans cost nothing to render)."""
        h = self.human(name)
        if h.visible != bool(visible):
            h.visible = bool(visible)
            self._set_human_visible(self.humans.index(h))

    def show_only(self, names) -> None:
        """Show the named humans (a name or a collection of names) and hide every other one."""
        keep = {names} if isinstance(names, str) else set(names)
        unknown = keep - {h.name for h in self.humans}
        if unknown:
            self.human(sorted(unknown)[0])  # raises with the list of names
        for h in self.humans:
            self.set_human_visible(h.name, h.name in keep)

    def set_lighting(self, direction=None, color=None, intensity: float | None = None,
                     ambient: float | None = None) -> None:
        """Change the main (first) light and the ambient level for the following renders."""
        from dataclasses import replace

        light = self.light
        if direction is not None:
            d = np.asarray(direction, dtype=np.float64).reshape(3)
            if not np.linalg.norm(d) > 0:
                raise SpecError("direction", "must not be the zero vector")
            light = replace(light, direction=tuple(float(x) for x in d))
        if color is not None:
            light = replace(light, color=tuple(float(x) for x in np.clip(color, 0.0, 1.0)))
        if intensity is not None:
            light = replace(light, intensity=float(intensity))
        self.light = light
        if ambient is not None:
            self.ambient = float(np.clip(ambient, 0.0, 1.0))
        self._set_lighting()

    def set_robot_pose(self, name: str, position=None, yaw: float | None = None) -> None:
        """Move a robot body to ``position`` (x, y, z) and/or turn it to ``yaw`` degrees."""
        if name not in self.robots:
            raise SpecError("robot", f"no robot {name!r} (robots: {', '.join(self.robots) or 'none'})")
        r = self.robots[name]
        if position is not None:
            r.position = np.asarray(position, dtype=np.float64).reshape(3)
        if yaw is not None:
            r.yaw = float(yaw)
        self._move_robot(name)

    def step(self, dt: float) -> float:
        """Advance simulation time by ``dt`` seconds; people follow their behaviour. Returns the new time."""
        if dt < 0:
            raise ValueError(f"dt must be >= 0, got {dt}")
        return self.set_time(self.time + dt)

    def set_time(self, t: float) -> float:
        """Jump to time ``t`` (seconds; not before the current time). A person's state is a function of the
        time alone, so ``set_time(k / fps)`` gives the same frames whatever rate reached that time."""
        t = float(t)
        if not t >= self.time - 1e-12:
            raise ValueError(f"time runs forward: cannot go from {self.time:g} s back to {t:g} s")
        dt = max(0.0, t - self.time)
        self._step(dt)
        self.time = t
        self._animate()
        return self.time

    @property
    def has_motion(self) -> bool:
        """Whether any loaded human moves over time."""
        return any(h.motion is not None for h in self.humans)

    def _animate(self) -> None:
        """Pose and place every moving human at ``self.time``."""
        for i, h in enumerate(self.humans):
            if h.motion is None:
                continue
            st = h.motion.state(self.time)
            h.state = st
            h.position, h.heading = st.position, st.heading
            h.posed = h.motion.rig.pose(st.rotations, st.facial, st.pose.root)
            self._deform_human(i)
            self._move_human(i)

    def camera_pose(self, camera: str | None = None) -> tuple[CameraSpec, CameraPose]:
        """The camera spec and its current world pose (robot pose composed with the mount)."""
        robot, cam = self._world().camera(camera)
        state = self.robots[robot.name]
        yaw = state.yaw + cam.mount_yaw
        pos = state.position + rot_z(state.yaw) @ np.asarray(cam.mount_position)
        return cam, CameraPose.from_angles(pos, yaw, cam.mount_pitch)

    def render(self, camera: str | None = None, pose: CameraPose | None = None,
               intrinsics: CameraIntrinsics | None = None, ground_truth: bool = True) -> Frame:
        """Render ``camera`` into a :class:`Frame`.

        Args:
            camera: camera name (``robot/camera`` or ``camera``); the world's first camera if ``None``.
            pose: render from this camera pose instead of the robot's current one.
            intrinsics: render with this camera model instead of the camera's (a virtual zoom).
            ground_truth: compute ``frame.humans`` (projects every human's mesh; envs that only need
                pixels skip it).
        """
        from hcgym.envs.backends.truth import frame_truth

        cam, cam_pose = self.camera_pose(camera)
        if pose is not None:
            cam_pose = pose
        intr = intrinsics if intrinsics is not None else cam.intrinsics()
        rgb, depth, seg = self._render(intr, cam_pose)
        frame = Frame(rgb=rgb, depth=depth, segmentation=seg, intrinsics=intr,
                      world_to_camera=_world_to_camera(cam_pose), camera=cam.name, time=self.time)
        if ground_truth:
            frame.humans = frame_truth(frame, self.humans)
        return frame

    def close(self) -> None:
        """Release the simulator."""

    def __enter__(self) -> "SimBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------ simulator hooks
    @abstractmethod
    def _load(self, world: WorldSpec) -> None:
        """Create the room, props, lights, humans (``self.humans``) and robots in the simulator."""

    @abstractmethod
    def _move_human(self, index: int) -> None:
        """Apply ``self.humans[index]``'s position/heading in the simulator."""

    @abstractmethod
    def _move_robot(self, name: str) -> None:
        """Apply ``self.robots[name]``'s position/yaw in the simulator."""

    @abstractmethod
    def _render(self, intrinsics: CameraIntrinsics, pose: CameraPose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return RGB (H, W, 3) uint8, z-depth (H, W) float32 metres (inf = nothing hit) and
        segmentation (H, W) int32 with 0 = background and ``k + 1`` = human ``k``."""

    def _set_lighting(self) -> None:  # noqa: B027 - optional hook
        """Apply ``self.light`` / ``self.ambient`` (the embedded backend reads them at each render)."""

    def _add_human(self, index: int) -> None:
        """Create ``self.humans[index]`` (just appended) in the simulator."""
        raise NotImplementedError(f"{type(self).__name__} cannot add humans to a loaded world")

    def _set_human_visible(self, index: int) -> None:
        """Apply ``self.humans[index].visible``. Default: move hidden humans far below the floor."""
        h = self.humans[index]
        saved = h.position
        if not h.visible:
            h.position = np.array([saved[0], saved[1], -1000.0])
        self._move_human(index)
        h.position = saved

    def _step(self, dt: float) -> None:  # noqa: B027 - optional hook
        """Advance the simulator (static worlds need nothing)."""

    def _deform_human(self, index: int) -> None:
        """Show ``self.humans[index].render_mesh()``: the person's posed mesh changed."""
        raise NotImplementedError(f"{type(self).__name__} cannot show moving people")

    def _world(self) -> WorldSpec:
        if self.world is None:
            raise RuntimeError(f"{type(self).__name__}: call load(world) first")
        return self.world


def _world_to_camera(pose: CameraPose) -> np.ndarray:
    from hcgym.geometry import world_to_camera

    return world_to_camera(pose.position, pose.rotation)
