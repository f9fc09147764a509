"""The OpenGL (EGL) renderer of the embedded backend: agreement with TinyRenderer, conventions, moving meshes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hcgym.envs.backends import HumanState, make_backend
from hcgym.envs.backends.gl import GLScene, box_mesh, gl_available
from hcgym.errors import SpecError
from hcgym.types import VISIBLE, CameraIntrinsics
from hcgym.worlds import load_world

pytestmark = pytest.mark.skipif(not gl_available()[0], reason=f"no OpenGL through EGL: {gl_available()[1]}")

INTR = CameraIntrinsics.from_hfov(320, 240, 60.0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def world():
    return load_world("active_face_room")


@pytest.fixture(scope="module")
def frames(world):
    """The active face room at 320x240 under both renderers."""
    out = {}
    for renderer in ("tiny", "gl"):
        with make_backend("embedded", renderer=renderer) as sim:
            assert sim.renderer_name == renderer
            sim.load(world)
            out[renderer] = sim.render(intrinsics=INTR)
    return out


@pytest.fixture()
def gl(world):
    with make_backend("embedded", renderer="gl") as sim:
        sim.load(world)
        yield sim


def test_renderer_choice(world):
    assert gl_available() == (True, "")
    with make_backend("embedded") as sim:  # auto, static world: TinyRenderer bytes stay
        assert sim.renderer_name == "tiny"
    with make_backend("embedded", animated=True) as sim:
        assert sim.renderer_name == "gl" and sim._p is None  # no PyBullet at all
    with pytest.raises(SpecError, match="unknown renderer 'vulkan'.*auto, tiny, gl, egl"):
        make_backend("embedded", renderer="vulkan")


def test_person_mask_depth_and_colour_agree_with_tiny(frames):
    tiny, gl = frames["tiny"], frames["gl"]
    a, b = tiny.segmentation == 1, gl.segmentation == 1
    assert a.sum() > 2000 and _iou(a, b) >= 0.9
    shared = a & b
    assert np.median(np.abs(tiny.depth[shared] - gl.depth[shared])) < 0.02
    # The same shading model: the person's mean colour within a few levels.
    assert np.abs(tiny.rgb[a].mean(0) - gl.rgb[b].mean(0)).max() < 6
    assert gl.humans[0].bbox is not None and gl.humans[0].pixels == int(b.sum())


def test_frame_conventions(frames, world):
    f = frames["gl"]
    assert f.rgb.dtype == np.uint8 and f.rgb.shape == (240, 320, 3)
    assert f.depth.dtype == np.float32 and f.depth.shape == (240, 320)
    assert f.segmentation.dtype == np.int32 and set(np.unique(f.segmentation)) == {0, 1}
    empty = ~np.isfinite(f.depth)
    assert empty.any() and empty[0].all() and not empty[-1].any()  # sky above, floor below (rows top-down)
    assert (f.depth[~empty] > 0).all()
    expected = np.round(np.asarray(world.background) * 255).astype(np.uint8)
    assert (f.rgb[empty] == expected).all() and (f.segmentation[empty] == 0).all()
    # Nothing-hit pixels are the same under both renderers, except along the horizon.
    assert (empty != ~np.isfinite(frames["tiny"].depth)).mean() < 0.01


def test_off_centre_principal_point_follows_the_camera_model(gl):
    intr = CameraIntrinsics(320, 240, 190.0, 180.0, cx=110.0, cy=60.0)  # far from the image centre
    f = gl.render(intrinsics=intr)
    h = f.humans[0]
    mask = f.segmentation == 1
    assert mask.sum() > 1000
    # The mask spans the projected mesh (the person is unoccluded and inside the image) ...
    assert h.bbox_amodal[0] > 0 and h.bbox_amodal[3] < 240
    assert np.abs(h.bbox - h.bbox_amodal).max() <= 1.5
    # ... and every visible keypoint lands on it.
    vis = h.keypoints[:, 2] == VISIBLE
    assert vis.sum() >= 10
    cols, rows = np.floor(h.keypoints[vis, :2]).astype(int).T
    near = np.zeros_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(mask, (dy, dx), axis=(0, 1))
    assert near[rows, cols].all()


def test_deformed_mesh_moves_the_mask_and_hidden_humans_are_not_drawn(gl, monkeypatch):
    base = gl.render(intrinsics=INTR)
    mask0 = base.segmentation == 1
    m = gl.humans[0].avatar.mesh
    shift = np.array([0.0, 0.0, 0.0], np.float32)
    monkeypatch.setattr(HumanState, "render_mesh", lambda self: (m["positions"] + shift, m["normals"]),
                        raising=False)
    shift[0] = 0.2  # avatar x = world x at heading -90: image right
    gl._deform_human(0)
    moved = gl.render(intrinsics=INTR).segmentation == 1
    dx = np.nonzero(moved)[1].mean() - np.nonzero(mask0)[1].mean()
    expected = 0.2 * INTR.fx / 2.0  # the person stands 2 m in front of the camera
    assert 0.7 * expected < dx < 1.3 * expected
    shift[0] = 0.0  # the second deformation rewrites the human's own buffers
    gl._deform_human(0)
    assert _iou(gl.render(intrinsics=INTR).segmentation == 1, mask0) > 0.99
    # Hidden humans are not drawn; shown again, they keep their pose.
    gl.set_human_visible("person", False)
    hidden = gl.render(intrinsics=INTR)
    assert not (hidden.segmentation == 1).any() and hidden.humans[0].pixels == 0
    shift[0] = 0.2
    gl._deform_human(0)  # while hidden
    gl.set_human_visible("person", True)
    assert _iou(gl.render(intrinsics=INTR).segmentation == 1, moved) > 0.99


def test_tiny_fallback_deforms_with_a_warning(world, monkeypatch):
    from hcgym.envs.backends import embedded

    monkeypatch.setattr(embedded, "_SAID", set())
    with make_backend("embedded", renderer="tiny") as sim:
        sim.load(world)
        mask0 = sim.render(intrinsics=INTR).segmentation == 1
        m = sim.humans[0].avatar.mesh
        monkeypatch.setattr(HumanState, "render_mesh", lambda self: (m["positions"] + [0.2, 0, 0], m["normals"]),
                            raising=False)
        with pytest.warns(RuntimeWarning, match="TinyRenderer.*renderer='gl'"):
            sim._deform_human(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sim._deform_human(0)  # said once per process
        moved = sim.render(intrinsics=INTR).segmentation == 1
    assert np.nonzero(moved)[1].mean() - np.nonzero(mask0)[1].mean() > 15


def test_deterministic_and_relightable(gl, world):
    a = gl.render(intrinsics=INTR)
    b = gl.render(intrinsics=INTR)
    assert a.rgb.tobytes() == b.rgb.tobytes() and a.depth.tobytes() == b.depth.tobytes()
    with make_backend("embedded", renderer="gl") as other:
        other.load(world)
        assert other.render(intrinsics=INTR).rgb.tobytes() == a.rgb.tobytes()
    gl.set_lighting(direction=(0.6, -0.5, -0.3), color=(1.0, 0.7, 0.5), ambient=0.2)
    c = gl.render(intrinsics=INTR)
    assert np.abs(c.rgb.astype(int) - a.rgb.astype(int)).mean() > 5
    assert (c.segmentation == a.segmentation).all()


def test_add_human_and_move_bodies(gl):
    before = gl.render(intrinsics=INTR)
    gl.add_human("twin", gl.humans[0].avatar, position=(0.8, 1.0), heading=-90)
    f = gl.render(intrinsics=INTR)
    assert (f.segmentation == 2).sum() > 500 and (f.segmentation == 1).sum() > 0.9 * (before.segmentation == 1).sum()
    gl.set_human_pose("twin", position=(-0.8, 1.0))
    g = gl.render(intrinsics=INTR)
    assert np.nonzero(g.segmentation == 2)[1].mean() < np.nonzero(f.segmentation == 2)[1].mean() - 40
    gl.set_robot_pose("drone", yaw=0)  # the camera turns away from the people
    assert not (gl.render(intrinsics=INTR).segmentation > 0).any()


def test_scene_frees_what_no_mesh_uses(tmp_path):
    from PIL import Image

    path = tmp_path / "t.png"
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(path)
    with GLScene() as scene:
        p, n, i = box_mesh([0.5, 0.5, 0.5])
        a = scene.add_mesh(p, n, i, uvs=np.zeros((len(p), 2)), texture=path, key="box")
        b = scene.add_mesh(p, n, i, uvs=np.zeros((len(p), 2)), texture=path, key="box")
        assert len(scene._textures) == 1 and len(scene._geometries) == 1
        with pytest.raises(SpecError, match="dynamic=False"):
            scene.update_mesh(a, p, n)
        with pytest.raises(SpecError, match=r"normals: need a \(24, 3\) array"):
            scene.add_mesh(p, n[:5], i)
        d = scene.add_mesh(p, n, i, dynamic=True)
        with pytest.raises(SpecError, match=r"positions: need a \(24, 3\) array"):
            scene.update_mesh(d, p[:5], n)
        scene.remove(d)
        with pytest.raises(SpecError, match="indices"):
            scene.add_mesh(p, n, i[:-1])
        scene.remove(a)
        assert len(scene._textures) == 1
        scene.remove(b)
        assert not scene._textures and not scene._geometries
        with pytest.raises(SpecError, match="no mesh"):
            scene.set_visible(a, True)


def test_gl_falls_back_to_tiny_and_says_why(monkeypatch):
    from hcgym.envs.backends import embedded, gl

    monkeypatch.setattr(gl, "_AVAILABLE", (False, "OSError: libEGL.so.1: cannot open shared object file"))
    monkeypatch.setattr(embedded, "_SAID", set())
    with pytest.warns(RuntimeWarning, match="renderer='gl' but no OpenGL context through EGL.*libEGL.*TinyRenderer"):
        sim = make_backend("embedded", renderer="gl")
    with sim:
        assert sim.renderer_name == "tiny"
    with make_backend("embedded") as sim:  # a static world never asks for EGL
        assert sim.renderer_name == "tiny"
