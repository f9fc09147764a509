"""The shipped in-house face embedder: provenance, exits, ONNX parity and identity on rendered avatars."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hcgym.perception as hp
from hcgym.perception.base import OnnxSensor
from hcgym.perception.face.early_exits import AdaptiveFaceEmbedder, ExitHeads
from hcgym.perception.face.evaluation import exit_flops
from hcgym.perception.face.irnet import load_checkpoint
from hcgym.perception.face.models import HERE, shipped_checkpoint


@pytest.fixture(scope="module")
def shipped():
    model, arch, meta = load_checkpoint(shipped_checkpoint())
    heads = ExitHeads.load(HERE / "exit_heads.pt")
    return model, arch, meta, heads


def test_shipped_files_are_small_and_record_their_provenance(shipped):
    for name in ("irnet.pt", "irnet.onnx", "exit_heads.pt"):
        assert (HERE / name).stat().st_size < 10_000_000, name
    prov = json.loads((HERE / "PROVENANCE.json").read_text())
    assert prov["command"].startswith("hcgym train face-embedder")
    assert "seed" in prov and prov["metrics"]["val_verification"] > 95
    assert prov["onnx_max_abs_diff"] < 1e-4


def test_exits_sit_at_the_paper_flop_fractions(shipped):
    model, arch, meta, heads = shipped
    f = exit_flops(model, heads, "proposed")
    fr = [f[f"exit{i}"] / f["final"] for i in (1, 2, 3)]
    assert fr[0] <= 0.25 and fr[0] < fr[1] < fr[2] < 0.65
    assert heads.exits == arch["exits"]


def test_shipped_onnx_matches_pytorch(shipped, studio_portraits):
    torch_sensor = hp.make("face/hcgym-irnet")
    onnx_sensor = OnnxSensor(HERE / "irnet.onnx")
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (4, 56, 56, 3), dtype=np.uint8)
    assert np.abs(torch_sensor.embed_aligned(chips) - onnx_sensor.embed_aligned(chips)).max() < 1e-4
    frame = studio_portraits[0][1]
    a, b = torch_sensor(frame), onnx_sensor(frame)
    assert a.vectors.shape == (1, 512) and np.abs(a.vectors - b.vectors).max() < 1e-4
    # The same file loads as a plain ArcFace-format recognizer.
    arc = hp.make("face/arcface-onnx", model_path=HERE / "irnet.onnx")
    assert arc.dim == 512


@pytest.mark.parametrize("sid", ["face/hcgym-irnet", "face/arcface-onnx"])
def test_shipped_embedder_tells_avatars_apart(studio, sid):
    from hcgym.synthesis.studio import portrait_pose, show_only

    # The ArcFace-format path runs the shipped ONNX export through the generic recognizer.
    sensor = hp.make(sid, model_path=HERE / "irnet.onnx") if sid == "face/arcface-onnx" else hp.make(sid)
    front, side = [], []
    for i, h in enumerate(studio.humans[:8]):
        show_only(studio, i)
        front.append(sensor(studio.render(pose=portrait_pose(h.avatar, 1.0))).vectors[0])
        side.append(sensor(studio.render(pose=portrait_pose(h.avatar, 1.3, 25.0))).vectors[0])
    f = np.asarray(front) / np.linalg.norm(front, axis=1, keepdims=True)
    s = np.asarray(side) / np.linalg.norm(side, axis=1, keepdims=True)
    d = np.linalg.norm(s[:, None] - f[None], axis=-1)
    assert (np.argmin(d, axis=1) == np.arange(8)).all()


def test_adaptive_embedder_uses_shallower_exits_under_load(shipped):
    model, _, _, heads = shipped
    ada = AdaptiveFaceEmbedder(model, heads)
    chips = np.random.default_rng(1).integers(0, 256, (3, 56, 56, 3), dtype=np.uint8)
    full = ada.embed(chips)
    assert full.exit is None and full.fits
    budget = ada.flops_per_face[-1] * 3  # enough for the full network on 3 faces
    assert ada.embed(chips, budget_flops=budget).exit is None
    crowded = ada.embed(chips, budget_flops=budget, n_faces=10)
    assert crowded.exit is not None and crowded.flops_per_face * 10 <= budget
    assert crowded.vectors.shape == (3, 512)
