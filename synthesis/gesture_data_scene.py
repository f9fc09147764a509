"""One RGB-D hand-gesture sample: a person shows a HANDS gesture to a robot camera in a cluttered room.

:class:`GestureStage` keeps an OpenGL scene (:class:`hcgym.envs.backends.gl.GLScene`, the embedded backend's
renderer) with the people it has used loaded, and renders one sample per :meth:`GestureStage.render` call, a
pure function of the sample's :class:`SampleSpec` (its seed) and the people shown:

* the person (an avatar of the identity pool) holds the gesture with the ``left`` or ``right`` hand (their own
  handedness with probability :data:`OWN_HAND`) in the presenting-arm posture
  (:func:`hcgym.synthesis.motion.hands.presenting_arm`: one of its three variants, the upper arm, forearm and
  wrist each turned by up to :data:`ARM_JITTER_DEG`; ``left``/``right`` point the index to that side), the
  other arm hanging and its hand relaxed, body turned by up to :data:`BODY_YAW` degrees from the camera;
* the camera (:data:`CAMERA_SIZE` pixels, :data:`CAMERA_HFOV` degrees horizontal field of view, about a
  Kinect's) stands :data:`DISTANCE` metres from the hand (camera to the centre of the 21 keypoints) at a height
  of :data:`CAMERA_HEIGHT` metres (pulled towards the hand's height where the distance is short) and aims so
  that the hand appears off-centre, anywhere the crop box stays inside the frame;
* the room: a textured floor and back wall (procedural textures of
  :func:`hcgym.synthesis.dataset.randomise.background`); :data:`PROPS` boxes, cylinders and spheres placed in
  the view around the hand at three depths (behind the person, beside them, and between the camera and the
  person but clear of the hand), textured or plain, a share :data:`SKIN_PROP` of them skin-coloured; with
  probability :data:`DISTRACTOR` a second person from the same split :data:`DISTRACTOR_DEPTH` metres behind the
  hand, placed so that their face, a hand or the chest falls in or near the crop; one directional light of
  random direction, colour temperature and intensity (:func:`hcgym.synthesis.dataset.randomise.sample_light`).
  Props never touch a person (a sample of their mesh vertices) and no prop or person covers the hand;
* the crop: the square box around the 21 ground-truth hand keypoints, :data:`~hcgym.perception.gesture.inputs.
  HAND_MARGIN` times their extent, jittered in training (:func:`hcgym.perception.gesture.inputs.hand_box`), is
  rendered directly: the full camera's focal length with the principal point moved to the box, a window the
  size of the box, which gives the pixels of the 640x480 frame inside the box (``window=False`` renders the
  whole frame instead); then resized to ``S x S`` (:func:`hcgym.perception.gesture.inputs.crop_rgbd` rules).

A ``none`` sample (:attr:`SampleSpec.relaxed` set) shows a hand whose truth in a world is ``none``
(:meth:`hcgym.synthesis.motion.timeline.HumanMotion.hands` labels a gesture only while its shape weight is at
least :data:`LABEL_AMOUNT`), of one of the :data:`NONE_KINDS`: ``hang`` (the idle body, the hand hanging at the
side), ``raise`` (the arm raised as to show a gesture, the hand relaxed), ``partial`` (raised, the fingers a
share :data:`PARTIAL_AMOUNT` of the way from relaxed to a gesture) or ``action`` (an upper-body action of
:data:`RELAXED_ACTIONS`, the hand relaxed). Raised arms are the presenting arm of the gesture samples or the
timeline's ``gesture_raise`` / ``arm_forward`` clips (:data:`RAISED_ARMS`); clips are sampled at a time in
:data:`CLIP_TIME` of a :data:`CLIP_SECONDS` segment (rising, held or lowering) over the idle body. Camera, room,
clutter and crop are drawn as for a gesture sample, the crop around the hand's 21 ground-truth points.

Depth is the renderer's metric z-depth (the :class:`~hcgym.types.Frame` depth of the embedded backend), 0 where
nothing is hit. Needs OpenGL through EGL (:func:`hcgym.envs.backends.gl.gl_available`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hcgym.perception.gesture.inputs import hand_box

#: The robot camera: image size (W, H), horizontal field of view (degrees), near and far planes (metres).
CAMERA_SIZE = (640, 480)
CAMERA_HFOV = 70.0
CAMERA_CLIP = (0.05, 30.0)
#: Camera-to-hand distance (metres), camera height (metres), body turn from the camera (degrees, either way).
DISTANCE = (0.5, 2.5)
CAMERA_HEIGHT = (0.9, 1.6)
BODY_YAW = 30.0
#: Probability that the person uses their own (dominant) hand.
OWN_HAND = 0.75
#: Largest random turn (degrees, about each axis) added to the presenting arm's bones.
ARM_JITTER_DEG = {"upperarm01": 6.0, "lowerarm01": 6.0, "wrist": 8.0}
#: Props per sample, and the shares of props that are textured and skin-coloured.
PROPS = (5, 12)
TEXTURED_PROP = 0.7
SKIN_PROP = 0.3
#: Probability of a second person, and their distance behind the hand (metres, along the view).
DISTRACTOR = 0.5
DISTRACTOR_DEPTH = (0.9, 3.0)
#: Back wall: metres behind the hand (along the view).
WALL_BEHIND = (0.8, 4.5)
#: Vertices of a person's mesh kept for the props' clearance tests (every k-th).
BODY_STRIDE = 37
#: The timeline labels a hand's gesture while its shape weight is at least this (below it: ``none``).
LABEL_AMOUNT = 0.5
#: Kinds of ``none`` samples (module docstring), and the shape weights of ``partial`` hands (below
#: :data:`LABEL_AMOUNT`, with a margin: a hand just under it looks like the gesture it labels just above).
NONE_KINDS = ("hang", "raise", "partial", "action")
PARTIAL_AMOUNT = (0.05, 0.45)
#: Arm postures of raised ``none`` hands and their probabilities: the gesture samples' presenting arm and the
#: timeline's clips that show a hand to a camera.
RAISED_ARMS = {"present": 0.5, "gesture_raise": 0.25, "arm_forward": 0.25}
#: Upper-body actions of ``action`` samples (their hands are relaxed in a timeline).
RELAXED_ACTIONS = ("wave", "hands_on_hips", "scratch_head", "raise_arms")
#: Seconds of the clip segment a ``none`` arm posture is sampled from, and the range of times sampled.
CLIP_SECONDS = 3.0
CLIP_TIME = (0.15, 2.7)


@dataclass(frozen=True)
class SampleSpec:
    """What one sample shows: ``gesture`` (a :data:`~hcgym.synthesis.motion.hands.GESTURES` name, or ``none``
    with ``relaxed`` one of :data:`NONE_KINDS`), the ``seed`` of every other draw, and whether the crop box is
    jittered (training samples)."""

    gesture: str
    seed: int
    jitter: bool = False
    relaxed: str = ""


@dataclass
class _Person:
    avatar_seed: int
    spec: Any
    rig: Any
    handle: int
    handedness: str
    instance: int
    poses: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]] = field(default_factory=dict)


def sample_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x6E57]))


class GestureStage:
    """An OpenGL scene for gesture samples, with every person it showed kept loaded (hidden when unused).

    Args:
        size: the side S of the square crops.
        max_people: people kept loaded; the least recently used one is dropped beyond this.
    """

    def __init__(self, size: int = 112, max_people: int = 6) -> None:
        from hcgym.envs.backends.gl import GLScene, gl_available
        from hcgym.errors import DependencyNotInstalled

        ok, why = gl_available()
        if not ok:
            raise DependencyNotInstalled(f"gesture samples render with OpenGL through EGL, which this process "
                                         f"cannot use ({why}); install libEGL and Mesa (or a GPU driver)")
        self.size = int(size)
        self.max_people = int(max_people)
        self.scene = GLScene()
        self.people: dict[int, _Person] = {}
        self._instances = 0  # segmentation value of the last person loaded

    # ------------------------------------------------------------------ people
    def person(self, avatar_seed: int) -> _Person:
        """The loaded (hidden) person of ``AvatarSpec.random(avatar_seed)``."""
        from hcgym.synthesis.avatar_spec import AvatarSpec
        from hcgym.synthesis.builder import build_avatar
        from hcgym.synthesis.motion.base import Style
        from hcgym.synthesis.motion.rig import rig_for

        seed = int(avatar_seed)
        if seed in self.people:
            self.people[seed] = self.people.pop(seed)  # most recently used last
            return self.people[seed]
        while len(self.people) >= self.max_people:
            old = self.people.pop(next(iter(self.people)))
            self.scene.remove(old.handle)
        spec = AvatarSpec.random(seed)
        avatar = build_avatar(spec)
        m = avatar.mesh
        self._instances += 1
        handle = self.scene.add_mesh(m["positions"], m["normals"], m["indices"], uvs=m["uvs"],
                                     texture=avatar.texture_path, dynamic=True, instance=self._instances,
                                     visible=False)
        self.people[seed] = _Person(seed, spec, rig_for(spec), handle, Style.from_key(spec.identity_key()).handedness,
                                    self._instances)
        return self.people[seed]

    def release(self) -> None:
        self.scene.release()
        self.people.clear()

    # ------------------------------------------------------------------ one sample
    def render(self, person: _Person, spec: SampleSpec, distractors: tuple[_Person, ...] = (),
               window: bool = True) -> dict[str, Any]:
        """Render one sample of ``person`` (module docstring); ``distractors``: people who may stand behind.

        Returns ``rgb`` (S, S, 3) uint8, ``depth`` (S, S) float32 metres (0 = nothing hit), ``box`` (4,) the crop
        in frame pixels, ``keypoints`` (21, 3) crop pixels ``u, v`` and camera depth (metres), ``keypoints_3d``
        (21, 3) in the person's own frame (metres; x = their left, z = up), ``hand``, ``distance`` (camera to
        the keypoints' centre, metres), ``props`` (count), ``distractor`` (the share of the crop's pixels showing
        the second person, 0 without one), ``posture`` (the arm: ``present``, ``hang`` or a clip's action),
        ``shape`` (the gesture the fingers form, ``relaxed`` for none), ``amount`` (how far they form it, 0..1),
        ``seconds`` (wall time); with ``window=False`` also the whole frame: ``frame_rgb`` (H, W, 3),
        ``frame_depth`` (H, W).
        """
        from hcgym.perception.gesture.inputs import crop_rgbd
        from hcgym.synthesis.dataset.randomise import sample_light
        from hcgym.synthesis.motion.hands import hand_keypoints

        t0 = time.perf_counter()
        rng = sample_rng(spec.seed)
        own = person.handedness
        hand = own if rng.random() < OWN_HAND else ("left" if own == "right" else "right")
        if spec.relaxed:
            posed, (posture, shape, amount) = _relaxed_pose(person, spec.relaxed, hand, rng)
        else:
            posed, (posture, shape, amount) = person.rig.pose(_body_pose(person.rig, spec.gesture, hand, rng)), \
                ("present", spec.gesture, 1.0)
        heading = -90.0 + float(rng.uniform(-BODY_YAW, BODY_YAW))
        place = _placement(np.zeros(3), heading)
        kp_avatar = hand_keypoints(posed, hand)
        kp = _apply(place, kp_avatar)
        body = _apply(place, posed.vertices[::BODY_STRIDE])
        cam = _camera(rng, kp)
        uv, z = cam.project(kp)
        box = hand_box(uv, CAMERA_SIZE, rng=rng if spec.jitter else None)
        light, _ = sample_light(rng)
        background = tuple(float(x) for x in rng.uniform(0.2, 0.8, 3))
        added: list[int] = []
        try:
            shown = [self._show(person, posed, place)]
            bodies = [body]
            extra = None
            if distractors and rng.random() < DISTRACTOR:
                other = distractors[int(rng.integers(len(distractors)))]
                extra = _place_distractor(other, rng, cam, box, float(z.mean()))
                if extra is not None:
                    shown.append(self._show(other, extra[:2], extra[3]))
                    bodies.append(extra[2])
            for p in self.people.values():
                if p.handle not in shown:
                    self.scene.set_visible(p.handle, False)
            wall = _room(self.scene, rng, cam, float(z.mean()), bodies, extra is not None, added)
            props = _props(self.scene, rng, cam, box, uv, float(z.mean()), wall, bodies, added)
            if window:
                intr = cam.window(box)
                rgb, depth, seg = self.scene.render(intr, cam.pose, light_direction=light.direction,
                                                  light_color=light.color, intensity=light.intensity,
                                                  ambient=light.ambient, background=background)
                side = int(box[2] - box[0])
                crop, crop_depth = crop_rgbd(rgb, depth, (0, 0, side, side), self.size)
                full = {}
            else:
                rgb, depth, seg = self.scene.render(cam.intrinsics, cam.pose, light_direction=light.direction,
                                                    light_color=light.color, intensity=light.intensity,
                                                    ambient=light.ambient, background=background)
                crop, crop_depth = crop_rgbd(rgb, depth, box, self.size)
                x0, y0, x1, y1 = (int(v) for v in box)
                seg = seg[y0:y1, x0:x1]
                full = {"frame_rgb": rgb, "frame_depth": np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)}
        finally:
            for h in added:
                self.scene.remove(h)
        seen = float((seg == other.instance).mean()) if extra is not None else 0.0
        scale = self.size / float(box[2] - box[0])
        keypoints = np.concatenate([(uv - box[:2]) * scale, z[:, None]], axis=1)
        return {"rgb": crop, "depth": crop_depth, "box": box.astype(np.float32),
                "keypoints": keypoints.astype(np.float32), "keypoints_3d": kp_avatar.astype(np.float32),
                "hand": hand, "distance": float(np.linalg.norm(kp.mean(axis=0) - cam.eye)), "props": props,
                "distractor": seen, "posture": posture, "shape": shape, "amount": float(amount),
                "seconds": time.perf_counter() - t0, **full}

    def _show(self, person: _Person, posed, place: np.ndarray) -> int:
        positions, normals = posed.render_arrays() if not isinstance(posed, tuple) else posed
        self.scene.update_mesh(person.handle, positions, normals)
        self.scene.set_transform(person.handle, place)
        self.scene.set_visible(person.handle, True)
        return person.handle


# ----------------------------------------------------------------------------- the person
def _body_pose(rig, gesture: str, hand: str, rng: np.random.Generator, amount: float = 1.0) -> dict[str, np.ndarray]:
    """Local-ref bone deltas: the presenting arm (jittered) with the gesture (formed ``amount`` of the way from
    the relaxed hand; ``gesture`` may be ``relaxed``), the other arm hanging, hand relaxed."""
    from scipy.spatial.transform import Rotation

    from hcgym.synthesis.motion.hands import hand_deltas, presenting_arm, relaxed_hand
    from hcgym.synthesis.poses import POSES

    point = gesture if gesture in ("left", "right") else "up"
    arm = presenting_arm(rig, hand, point=point, variant=int(rng.integers(3)))
    side = "L" if hand == "left" else "R"
    for bone, deg in ARM_JITTER_DEG.items():
        key = f"{bone}.{side}"
        turn = Rotation.from_rotvec(np.radians(rng.uniform(-deg, deg, 3))).as_matrix()
        arm[key] = turn @ arm.get(key, np.eye(3))
    other = "right" if hand == "left" else "left"
    o = "R" if other == "right" else "L"
    hang = {k: np.radians(v) for k, v in POSES["stand"].items() if k.endswith("." + o)}
    return {**hang, **arm, **relaxed_hand(rig, other), **hand_deltas(rig, gesture, hand, amount)}


def _relaxed_pose(person: _Person, kind: str, hand: str, rng: np.random.Generator):
    """The pose of a ``none`` sample of ``kind`` (module docstring) with ``hand`` relaxed:
    (:class:`~hcgym.synthesis.motion.rig.PosedBody`, (posture, shape, amount))."""
    from hcgym.synthesis.motion.hands import GESTURES

    if kind not in NONE_KINDS:
        raise ValueError(f"relaxed must be one of {NONE_KINDS}, got {kind!r}")
    shape, amount = "relaxed", 0.0
    if kind == "partial":
        shape, amount = str(GESTURES[int(rng.integers(len(GESTURES)))]), float(rng.uniform(*PARTIAL_AMOUNT))
    if kind == "hang":
        posture = "hang"
    elif kind == "action":
        posture = str(RELAXED_ACTIONS[int(rng.integers(len(RELAXED_ACTIONS)))])
    else:
        posture = str(rng.choice(list(RAISED_ARMS), p=list(RAISED_ARMS.values())))
    if posture == "present":
        return person.rig.pose(_body_pose(person.rig, shape, hand, rng, amount)), (posture, shape, amount)
    return _clip_pose(person, posture, hand, shape, amount, rng), (posture, shape, amount)


def _clip_pose(person: _Person, action: str, hand: str, shape: str, amount: float, rng: np.random.Generator):
    """The timeline's way: the idle body at a random time, the arms of the upper-body ``action`` (``hang``: none)
    at a time in :data:`CLIP_TIME`, ``hand`` shaped ``amount`` of the way to ``shape``, the other hand relaxed."""
    from hcgym.synthesis.motion.actions import action as get_action
    from hcgym.synthesis.motion.base import ClipContext, Style
    from hcgym.synthesis.motion.clips_arms import ARM_BONES
    from hcgym.synthesis.motion.hands import hand_deltas, relaxed_hand
    from hcgym.synthesis.motion.rig import BONE_INDEX

    rig = person.rig
    style = Style.from_key(person.spec.identity_key())
    seed = int(rng.integers(0, 2 ** 31 - 1))
    body = get_action("idle").sample(ClipContext(rig=rig, time=float(rng.uniform(0.0, 60.0)), duration=60.0,
                                                 params={}, style=style, seed=seed))
    rotations = body.rotations.copy()
    if action != "hang":
        ctx = ClipContext(rig=rig, time=float(rng.uniform(*CLIP_TIME)), duration=CLIP_SECONDS,
                          params={"hand": hand, "hands": hand}, style=style, seed=seed + 1)
        upper = get_action(action).sample(ctx)
        idx = [BONE_INDEX[b] for b in ARM_BONES]
        rotations[idx] = upper.rotations[idx]
    other = "left" if hand == "right" else "right"
    for name, d in {**relaxed_hand(rig, other), **hand_deltas(rig, shape, hand, amount)}.items():
        rotations[BONE_INDEX[name]] = d
    return rig.pose(rotations, root=body.root)


def _placement(position: np.ndarray, heading: float) -> np.ndarray:
    from hcgym.synthesis.builder import Avatar

    return Avatar.placement(tuple(float(x) for x in position), heading)


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


# ----------------------------------------------------------------------------- the camera
@dataclass
class _Camera:
    eye: np.ndarray
    yaw: float
    pitch: float
    intrinsics: Any

    @property
    def pose(self):
        from hcgym.camera import CameraPose

        return CameraPose.from_angles(self.eye, self.yaw, self.pitch)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from hcgym.geometry import project, world_to_camera

        p = self.pose
        return project(points, world_to_camera(p.position, p.rotation), self.intrinsics.matrix)

    def point(self, u: float, v: float, z: float) -> np.ndarray:
        """The world point seen at pixel (u, v) at camera depth ``z``."""
        k = self.intrinsics
        return self.eye + self.pose.rotation @ np.array([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z])

    def window(self, box: np.ndarray):
        """Intrinsics that render only the pixels of ``box`` of the full image (same focal length)."""
        from hcgym.types import CameraIntrinsics

        k = self.intrinsics
        side = int(box[2] - box[0])
        return CameraIntrinsics(side, side, k.fx, k.fy, k.cx - float(box[0]), k.cy - float(box[1]), k.near, k.far)


def _camera(rng: np.random.Generator, kp: np.ndarray) -> _Camera:
    """A camera :data:`DISTANCE` from the hand keypoints' centre, in front of the origin's person (who faces -y),
    aimed so that the hand appears off-centre with room for its crop box."""
    from hcgym.geometry import look_at_angles
    from hcgym.types import CameraIntrinsics

    intr = CameraIntrinsics.from_hfov(*CAMERA_SIZE, CAMERA_HFOV, *CAMERA_CLIP)
    c = kp.mean(axis=0)
    d = float(rng.uniform(*DISTANCE))
    height = float(np.clip(rng.uniform(*CAMERA_HEIGHT), c[2] - 0.7 * d, c[2] + 0.7 * d))
    dz = height - c[2]
    az = math.radians(-90.0 + float(rng.uniform(-10.0, 10.0)))
    horizontal = math.sqrt(max(d * d - dz * dz, 1e-6))
    eye = c + np.array([horizontal * math.cos(az), horizontal * math.sin(az), dz])
    yaw, pitch = look_at_angles(eye, c)
    cam = _Camera(eye, yaw, pitch, intr)
    uv, _ = cam.project(kp)
    half = 0.5 * 1.35 * float(np.ptp(uv, axis=0).max()) * 1.5 + 2.0  # the largest jittered box, half side
    w, h = CAMERA_SIZE
    target = np.array([w / 2.0, h / 2.0])
    for k, size in enumerate((w, h)):
        room = max(0.0, size / 2.0 - half)
        target[k] += float(rng.uniform(-0.7, 0.7)) * room
    for _ in range(6):  # turn the camera until the keypoints' centre lands on the target pixel
        (u, v), = cam.project(c[None])[0]
        cam.yaw -= math.degrees(math.atan((u - target[0]) / intr.fx))
        cam.pitch -= math.degrees(math.atan((v - target[1]) / intr.fy))
    return cam


# ----------------------------------------------------------------------------- the room and the clutter
def _uvs(positions: np.ndarray, normals: np.ndarray, shape: str, period: float) -> np.ndarray:
    """Texture coordinates (metres / ``period``): planar per face on boxes and cylinder caps, around the side of
    cylinders and spheres (the angle mirrored at the back, so the texture has no seam)."""
    p = np.asarray(positions, dtype=np.float64)
    n = np.asarray(normals, dtype=np.float64)
    if shape == "box":
        axis = np.abs(n).argmax(axis=1)
        rows = np.arange(len(p))
        uv = np.stack([p[rows, (axis + 1) % 3], p[rows, (axis + 2) % 3]], axis=1)
    else:
        radius = max(float(np.linalg.norm(p[:, :2], axis=1).max()), 1e-6)
        angle = np.abs(np.arctan2(p[:, 1], p[:, 0])) * radius
        second = p[:, 2] if shape == "cylinder" else np.arccos(np.clip(p[:, 2] / radius, -1, 1)) * radius
        uv = np.stack([angle, second], axis=1)
        if shape == "cylinder":
            cap = np.abs(n[:, 2]) > 0.99
            uv[cap] = p[cap, :2]
    return (uv / period).astype(np.float32)


def _texture(rng: np.random.Generator) -> np.ndarray:
    from hcgym.synthesis.dataset.randomise import background

    return background(rng, 64, 64)[0]


def _skin(rng: np.random.Generator) -> tuple[float, float, float]:
    """A skin colour of a random person (the avatar generator's skin tones)."""
    from hcgym.synthesis.avatar_spec import AvatarSpec

    skin = AvatarSpec.random(int(rng.integers(0, 2 ** 31 - 1))).appearance.skin
    return tuple(float(x) for x in np.clip(np.asarray(skin) * rng.uniform(0.85, 1.1), 0.0, 1.0))


def _room(scene, rng: np.random.Generator, cam: _Camera, hand_z: float, bodies: list[np.ndarray],
          deep: bool, added: list[int]) -> float:
    """A textured floor and back wall (perpendicular to the view, turned up to 15 degrees); returns the wall's
    camera depth straight ahead (metres)."""
    from hcgym.envs.backends.gl import box_mesh

    big = 40.0
    period = float(rng.uniform(0.3, 2.0))
    floor = np.array([[-big, -big, 0.0], [big, -big, 0.0], [big, big, 0.0], [-big, big, 0.0]])
    added.append(scene.add_mesh(floor, np.tile([0.0, 0.0, 1.0], (4, 1)), [0, 1, 2, 0, 2, 3],
                                uvs=floor[:, :2] / period, texture=_texture(rng)))
    lo, hi = WALL_BEHIND
    if deep:
        lo = DISTRACTOR_DEPTH[1] + 0.5
        hi = max(hi, lo + 0.5)
    depth = hand_z + float(rng.uniform(lo, hi))
    fwd = np.array([math.cos(math.radians(cam.yaw)), math.sin(math.radians(cam.yaw)), 0.0])
    turn = cam.yaw + float(rng.uniform(-15.0, 15.0))
    normal = np.array([math.cos(math.radians(turn)), math.sin(math.radians(turn)), 0.0])
    centre = cam.eye * np.array([1.0, 1.0, 0.0]) + fwd * depth
    for pts in bodies:  # push the wall back until it clears everybody by 15 cm
        gap = float(((pts - centre) @ normal).max()) + 0.15
        if gap > 0:
            centre = centre + normal * gap / max(float(normal @ fwd), 0.5)
    thick, width, height = 0.1, 16.0, 3.2
    positions, normals, indices = box_mesh([thick / 2, width / 2, height / 2])
    place = _turned(centre + np.array([0.0, 0.0, height / 2]) + normal * thick / 2, turn)
    wall_period = float(rng.uniform(0.3, 2.0))
    added.append(scene.add_mesh(positions, normals, indices, uvs=_uvs(positions, normals, "box", wall_period),
                                texture=_texture(rng), transform=place))
    return float((centre - cam.eye) @ fwd)


def _turned(position: np.ndarray, yaw: float) -> np.ndarray:
    """4x4 transform: a turn of ``yaw`` degrees about z, then a move to ``position``."""
    from hcgym.geometry import rot_z

    out = np.eye(4)
    out[:3, :3] = rot_z(yaw)
    out[:3, 3] = position
    return out


def _props(scene, rng: np.random.Generator, cam: _Camera, box: np.ndarray, uv: np.ndarray, hand_z: float,
           wall_z: float, bodies: list[np.ndarray], added: list[int]) -> int:
    """Boxes, cylinders and spheres in the view around the crop at three depths; returns how many were placed."""
    from hcgym.envs.backends.gl import box_mesh, cylinder_mesh, sphere_mesh

    side = float(box[2] - box[0])
    centre = (box[:2] + box[2:]) / 2.0
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    guard = np.concatenate([lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo)])  # the hand's keypoints, 20 % margin
    people = np.concatenate(bodies)
    f = cam.intrinsics.fx
    placed = 0
    for _ in range(int(rng.integers(PROPS[0], PROPS[1] + 1))):
        shape = str(rng.choice(["box", "cylinder", "sphere"], p=[0.5, 0.3, 0.2]))
        layer = str(rng.choice(["behind", "beside", "front"], p=[0.55, 0.25, 0.2]))
        textured, skin = rng.random() < TEXTURED_PROP, rng.random() < SKIN_PROP
        colour = _skin(rng) if skin else tuple(float(x) for x in rng.uniform(0.05, 0.95, 3))
        texture = _texture(rng) if textured and not skin else None
        period = float(rng.uniform(0.05, 0.5))
        yaw = float(rng.uniform(0.0, 180.0))
        for _attempt in range(4):
            if layer == "behind":
                z = hand_z + float(rng.uniform(0.5, max(0.6, wall_z - hand_z - 0.2)))
            elif layer == "beside":
                z = hand_z + float(rng.uniform(0.05, 0.5))
            else:
                if hand_z - 0.2 < 0.4:
                    break
                z = float(rng.uniform(0.4, hand_z - 0.2))
            u, v = centre + rng.uniform(-1.0, 1.0, 2) * side
            size = float(np.clip(rng.uniform(0.15, 0.8) * side * z / f, 0.04, 1.2))
            dims = np.array([size, size * rng.uniform(0.4, 1.6), size * rng.uniform(0.4, 1.6)])
            if shape == "sphere":
                dims[:] = size
            elif shape == "cylinder":
                dims[1] = dims[0]
            radius = float(np.linalg.norm(dims) / 2.0)
            if z - radius < 0.3:
                continue
            p = cam.point(u, v, z)
            if p[2] - dims[2] / 2 < 0.0 and shape != "sphere":
                p[2] = dims[2] / 2  # standing on the floor
            if np.min(np.linalg.norm(people - p, axis=1)) < radius + 0.03:
                continue
            pu, pz = cam.project(p[None])
            if pz[0] < hand_z + 0.02 + radius:  # could be in front of the hand: keep it off the hand's box
                r_px = f * radius / max(float(pz[0]), 0.05)
                cu, cv = pu[0]
                near_u = min(max(cu, guard[0]), guard[2])
                near_v = min(max(cv, guard[1]), guard[3])
                if math.hypot(cu - near_u, cv - near_v) < r_px:
                    continue
            if shape == "box":
                mesh = box_mesh(dims / 2)
            elif shape == "cylinder":
                mesh = cylinder_mesh(dims[0] / 2, dims[2])
            else:
                mesh = sphere_mesh(dims[0] / 2)
            uvs = _uvs(mesh[0], mesh[1], shape, period)
            added.append(scene.add_mesh(*mesh, uvs=uvs, texture=texture, color=colour if texture is None else
                                        tuple(0.6 + 0.4 * np.asarray(colour)),
                                        transform=_turned(p, yaw)))
            placed += 1
            break
    return placed


def _place_distractor(other: _Person, rng: np.random.Generator, cam: _Camera, box: np.ndarray, hand_z: float):
    """A second person (a cached pose of ``other``) behind the hand, turned towards the camera, placed so that a
    part of them (face, hand or chest) projects in or near the crop: (render arrays, placement, body points) or
    ``None`` when no placement lands near the crop."""
    variant = int(rng.integers(3))
    positions, normals, vertices, parts = _pose_variant(other, variant)
    heading = float(np.degrees(math.atan2(cam.eye[1], cam.eye[0]))) + float(rng.uniform(-45.0, 45.0))
    side = float(box[2] - box[0])
    centre = (box[:2] + box[2:]) / 2.0
    for _attempt in range(10):
        z = hand_z + float(rng.uniform(*DISTRACTOR_DEPTH))
        name = str(rng.choice(sorted(parts)))
        u = float(centre[0] + rng.uniform(-0.8, 0.8) * side)
        rot = _placement(np.zeros(3), heading)
        part = _apply(rot, parts[name][None])[0]
        # the camera-y at depth z where the world height equals the part's height (the camera has no roll)
        a = cam.point(u, cam.intrinsics.cy, z)
        b = cam.point(u, cam.intrinsics.cy + cam.intrinsics.fy, z)  # one unit of y/z further down
        dz = b[2] - a[2]
        if abs(dz) < 1e-6:
            continue
        t = (part[2] - a[2]) / dz
        v = cam.intrinsics.cy + t * cam.intrinsics.fy
        if abs(v - centre[1]) > 1.5 * side:
            continue
        p = cam.point(u, v, z)
        place = _placement(np.array([p[0] - part[0], p[1] - part[1], 0.0]), heading)
        return positions, normals, _apply(place, vertices), place
    return None


def _pose_variant(person: _Person, variant: int):
    """Cached pose ``variant`` of a background person: 0 hands down, 1 presenting a gesture, 2 a raised hand;
    (render positions, normals, body points (avatar frame), named parts (avatar frame))."""
    if variant not in person.poses:
        from hcgym.synthesis.motion.hands import GESTURES, hand_keypoints, presenting_arm, relaxed_hand
        from hcgym.synthesis.poses import POSES

        rng = np.random.default_rng(np.random.SeedSequence([person.avatar_seed, 0xD157, variant]))
        hand = "right" if rng.random() < 0.5 else "left"
        deltas = {**relaxed_hand(person.rig, "left"), **relaxed_hand(person.rig, "right")}
        if variant == 0:
            deltas.update({k: np.radians(v) for k, v in POSES["stand"].items()})
        elif variant == 1:
            gesture = str(GESTURES[int(rng.integers(len(GESTURES)))])
            deltas.update(_body_pose(person.rig, gesture, hand, rng))
        else:
            deltas.update({k: np.radians(v) for k, v in POSES["stand"].items()})
            deltas.update(presenting_arm(person.rig, hand, "up", int(rng.integers(3))))
        posed = person.rig.pose(deltas)
        kp = posed.keypoints
        parts = {"face": kp[[1, 2, 3, 4]].mean(axis=0), "hand": hand_keypoints(posed, hand).mean(axis=0),
                 "chest": kp[[5, 6]].mean(axis=0) - np.array([0.0, 0.0, 0.1])}
        positions, normals = posed.render_arrays()
        person.poses[variant] = (positions, normals, posed.vertices[::BODY_STRIDE], parts)
    return person.poses[variant]
