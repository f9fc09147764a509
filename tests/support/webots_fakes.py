"""A fake Webots ``controller`` module whose Supervisor is built from an exported ``.wbt``.

It knows the file's DEF nodes (their ``translation``/``rotation`` fields, and the fields of
DirectionalLights), its robots' Camera and RangeFinder devices, and returns test patterns: enough
to drive :class:`hcgym.envs.backends.webots.WebotsBackend` without Webots.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from support.vrml import VNode, read_wbt


class FakeField:
    def __init__(self, value: tuple[float, ...]) -> None:
        self.value = list(value)

    def setSFVec3f(self, v):  # noqa: N802 - Webots API names
        assert len(v) == 3 and all(isinstance(x, float) for x in v)
        self.value = list(v)

    def setSFRotation(self, v):  # noqa: N802
        assert len(v) == 4 and all(isinstance(x, float) for x in v)
        self.value = list(v)

    def setSFColor(self, v):  # noqa: N802
        assert len(v) == 3 and all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in v)
        self.value = list(v)

    def setSFFloat(self, v):  # noqa: N802
        assert isinstance(v, float)
        self.value = [v]


class FakeNode:
    def __init__(self, n: VNode) -> None:
        self.type = n.type
        if n.type == "DirectionalLight":
            self.fields = {k: FakeField(tuple(np.atleast_1d(n.fields[k])))
                           for k in ("direction", "color", "intensity", "ambientIntensity")}
        else:
            self.fields = {k: FakeField(n.fields.get(k, (0, 0, 0) if k == "translation" else (0, 0, 1, 0)))
                           for k in ("translation", "rotation")}

    def getTypeName(self):  # noqa: N802
        return self.type

    def getField(self, name):  # noqa: N802
        return self.fields.get(name)


def pattern(w: int, h: int) -> bytes:
    """BGRA with R = column, G = row, B = 7."""
    img = np.zeros((h, w, 4), np.uint8)
    img[..., 2] = np.arange(w)[None, :] % 256
    img[..., 1] = np.arange(h)[:, None] % 256
    img[..., 0] = 7
    img[..., 3] = 255
    return img.tobytes()


class FakeCamera:
    def __init__(self, n: VNode, seg: bytes) -> None:
        self.w, self.h = int(n.fields["width"][0]), int(n.fields["height"][0])
        self.seg = seg
        self.enabled = self.recognition = self.segmentation = False

    def getWidth(self):  # noqa: N802
        return self.w

    def getHeight(self):  # noqa: N802
        return self.h

    def enable(self, period):
        self.enabled = period > 0

    def recognitionEnable(self, period):  # noqa: N802
        self.recognition = period > 0

    def enableRecognitionSegmentation(self):  # noqa: N802
        assert self.recognition, "segmentation needs recognition enabled first"
        self.segmentation = True

    def getImage(self):  # noqa: N802
        assert self.enabled
        return pattern(self.w, self.h)

    def getRecognitionSegmentationImage(self):  # noqa: N802
        assert self.segmentation
        return self.seg


class FakeRangeFinder:
    def __init__(self, n: VNode) -> None:
        self.w, self.h = int(n.fields["width"][0]), int(n.fields["height"][0])
        self.min, self.max = n.fields["minRange"][0], n.fields["maxRange"][0]
        self.enabled = False

    def enable(self, period):
        self.enabled = period > 0

    def getMaxRange(self):  # noqa: N802
        return self.max

    def getMinRange(self):  # noqa: N802
        return self.min

    def ranges(self) -> np.ndarray:
        r = np.tile(np.linspace(1.0, 5.0, self.w, dtype=np.float32), (self.h, 1))
        r[:, -3] = np.inf  # Webots: nothing hit
        r[:, -2] = self.max  # exactly maxRange
        r[:, -1] = self.max + 1.0
        return r

    def getRangeImage(self, data_type="list"):  # noqa: N802
        assert self.enabled
        r = self.ranges()
        return r.tobytes() if data_type == "buffer" else r.ravel().tolist()


def _segmentation(cam: VNode, humans: list[VNode]) -> bytes:
    """A recognition segmentation image of ``cam``'s size: blocks in the first three humans' exported
    recognition colours at rows 0, 10, 20 (5x5 pixels at the left edge) and an unknown colour bottom right."""
    w, h = int(cam.fields["width"][0]), int(cam.fields["height"][0])
    seg = np.zeros((h, w, 4), np.uint8)
    for i, hn in enumerate(humans[:3]):
        rgb = np.rint(np.array(hn.fields["recognitionColors"]) * 255)
        seg[10 * i:10 * i + 5, :5, :3] = rgb[::-1]
    seg[-5:, -5:, :3] = 255
    return seg.tobytes()


def fake_controller(wbt: Path, robot: str, drop: tuple[str, ...] = ()) -> types.ModuleType:
    """A ``controller`` module whose Supervisor knows the DEF nodes and devices of ``wbt``."""
    world = read_wbt(wbt)
    mod = types.ModuleType("controller")

    class Supervisor:
        def __init__(self) -> None:
            self.nodes = {d: FakeNode(n) for d, n in world.defs.items() if d not in drop}
            self.steps: list[dict[str, list[float]]] = []
            me = next(n for n in world.nodes if n.type == "Robot" and n.fields["name"] == robot)
            self.self_def = me.def_
            humans = [n for d, n in world.defs.items() if d.startswith("HUMAN_")]
            self.devices: dict[str, Any] = {}
            for c in me.children():
                if c.type == "Camera":
                    self.devices[c.fields["name"]] = FakeCamera(c, _segmentation(c, humans))
                elif c.type == "RangeFinder":
                    self.devices[c.fields["name"]] = FakeRangeFinder(c)

        def getBasicTimeStep(self):  # noqa: N802
            return float(world.nodes[0].fields["basicTimeStep"][0])

        def getName(self):  # noqa: N802
            return robot

        def getFromDef(self, name):  # noqa: N802
            return self.nodes.get(name)

        def getDevice(self, name):  # noqa: N802
            return self.devices.get(name)

        def step(self, ms):
            assert ms == self.getBasicTimeStep()
            self.steps.append({f"{d}.{k}": list(f.value) for d, n in self.nodes.items() for k, f in n.fields.items()})
            return 0

    mod.Supervisor = Supervisor
    return mod


def install_fake_webots(monkeypatch, world, out_dir: Path, robot: str | None = None, seed: int = 0,
                        **kw) -> types.ModuleType:
    """Export ``world`` into ``out_dir``, build a fake ``controller`` for robot ``robot`` (default: the first)
    and install it in ``sys.modules``; returns the module."""
    from hcgym.worlds.webots_export import export_webots

    wbt = export_webots(world, out_dir, seed=seed)
    mod = fake_controller(wbt, robot or world.robots[0].name, **kw)
    monkeypatch.setitem(sys.modules, "controller", mod)
    return mod
