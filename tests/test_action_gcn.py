"""NTU graph, ST-GCN / AGCN clip models and their continual CoST-GCN / CoAGCN (exactness after the delay)."""

from __future__ import annotations

import continual as co
import numpy as np
import pytest
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.action.gcn import (
    AdaptiveGraphConv,
    FrameWise,
    GCNBlock,
    GCNConfig,
    SpatialGraphConv,
    _continual_block,
    build_gcn,
    star_variant,
    state_floats,
    state_tensors,
    to_continual,
)
from hcgym.perception.action.graph import (
    CENTER_JOINT,
    NUM_JOINTS,
    binary_partitions,
    hop_distances,
    ntu_adjacency,
)
from hcgym.synthesis.motion.skeleton import NTU_BONES, NTU_JOINTS

TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights (He-like scale, so signals neither vanish nor explode), random BN statistics; eval mode."""
    g = torch.Generator().manual_seed(seed)

    def randn(shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=g)

    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "importance":
                p.copy_(1.0 + 0.2 * randn(p.shape))
            elif leaf == "B":
                p.copy_(0.05 * randn(p.shape))
            elif p.dim() >= 2:
                p.copy_(randn(p.shape) / p[0].numel() ** 0.5)
            else:
                p.copy_(0.1 * randn(p.shape))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(1.0 + 0.2 * randn(m.weight.shape))
                m.running_mean.copy_(0.2 * randn(m.running_mean.shape))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model.eval()


def _cfg(**kw) -> GCNConfig:
    base = dict(channels=(8, 8, 12), strides=(1, 1, 1), num_classes=5, num_person=2)
    return GCNConfig(**{**base, **kw})


def _step_all(model: co.CoModule, x: torch.Tensor) -> list:
    """forward_step over the time axis (dim 2) of x."""
    with torch.no_grad():
        return [model.forward_step(x[:, :, t]) for t in range(x.shape[2])]


# --- graph -----------------------------------------------------------------------------------------------


def test_graph_partitions_and_normalisation():
    a = ntu_adjacency()
    assert a.shape == (3, NUM_JOINTS, NUM_JOINTS) and a.dtype == np.float32
    binary = binary_partitions()
    # root is the identity; root + centripetal + centrifugal = A + I of the bone graph
    assert np.array_equal(binary[0], np.eye(NUM_JOINTS))
    bones = np.zeros((NUM_JOINTS, NUM_JOINTS))
    for i, j in NTU_BONES:
        bones[i, j] = bones[j, i] = 1
    assert np.array_equal(binary.sum(0), bones + np.eye(NUM_JOINTS))
    # each subset normalised by the receiving joint's degree: non-empty rows sum to 1, empty rows are 0
    for p in range(3):
        rows = a[p].sum(1)
        has = binary[p].sum(1) > 0
        assert np.allclose(rows[has], 1.0) and np.all(rows[~has] == 0)
    center = NTU_JOINTS.index(CENTER_JOINT)
    assert CENTER_JOINT == "spine_shoulder" and center == 20
    # every joint but the centre has exactly one neighbour closer to the centre; leaves none farther
    centripetal = binary[1].sum(1)
    assert centripetal[center] == 0 and np.all(np.delete(centripetal, center) == 1)
    dist = hop_distances()
    assert np.all(binary[1][np.nonzero(binary[1])[0]].sum(1) == 1)
    for i, j in zip(*np.nonzero(binary[2])):
        assert dist[j] == dist[i] + 1
    assert binary[2][NTU_JOINTS.index("left_hand_tip")].sum() == 0


def test_graph_every_joint_connected():
    dist = hop_distances()
    assert np.all(dist >= 0)  # reachable from the centre
    assert len(NTU_BONES) == NUM_JOINTS - 1  # a tree
    degree = binary_partitions()[1:].sum(axis=(0, 2))
    assert np.all(degree >= 1)
    # the bones join the joints their names say
    names = {tuple(sorted((NTU_JOINTS[i], NTU_JOINTS[j]))) for i, j in NTU_BONES}
    for pair in [("left_elbow", "left_wrist"), ("neck", "spine_shoulder"), ("head", "neck"),
                 ("right_hip", "spine_base"), ("right_hand", "right_hand_tip"), ("left_ankle", "left_foot")]:
        assert tuple(sorted(pair)) in names


# --- config ----------------------------------------------------------------------------------------------


def test_config_roundtrip_and_errors():
    cfg = GCNConfig()
    assert cfg.layers == 10 and cfg.frames_per_prediction == 4 and cfg.star().frames_per_prediction == 1
    assert GCNConfig.from_dict(cfg.to_dict()) == cfg
    assert GCNConfig.from_dict(cfg.to_dict() | {"model": "agcn"}).model == "agcn"
    for bad, field in [({"model": "gcn"}, "gcn.model"), ({"strides": [1, 2]}, "gcn.strides"),
                       ({"temporal_kernel": 8}, "gcn.temporal_kernel"), ({"channels": []}, "gcn.channels"),
                       ({"num_classes": 0}, "gcn.num_classes"), ({"attention": "x"}, "gcn.attention"),
                       ({"widths": [8]}, "gcn.widths"), ({"channels": [8, -1, 8, 8, 8, 8, 8, 8, 8, 8]},
                                                         "gcn.channels[1]")]:
        with pytest.raises(SpecError) as err:
            GCNConfig.from_dict(cfg.to_dict() | bad)
        assert err.value.field == field
    model = build_gcn(_cfg())
    with pytest.raises(SpecError, match="input"):
        model(torch.zeros(1, 3, 30, 25, 1))  # wrong persons
    with pytest.raises(SpecError, match="too few"):
        model(torch.zeros(1, 3, 20, 25, 2))
    for bad_len in (20, "40", 40.0):
        with pytest.raises(SpecError) as err:
            to_continual(model, bad_len)
        assert err.value.field == "clip_len"


def test_frames_per_prediction_original_and_star():
    clip = build_gcn(GCNConfig())
    assert to_continual(clip, 300).frames_per_prediction == 4
    star = star_variant(clip)
    assert star.cfg.strides == (1,) * 10 and to_continual(star, 300).frames_per_prediction == 1
    # the star model carries every weight over
    for (name, a), (_, b) in zip(clip.state_dict().items(), star.state_dict().items()):
        assert torch.equal(a, b), name


# --- continual modules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["stgcn", "agcn"])
def test_framewise_graph_conv_exact(kind):
    a = torch.from_numpy(ntu_adjacency())
    spatial = SpatialGraphConv(6, 8, a) if kind == "stgcn" else AdaptiveGraphConv(6, 8, a, attention="frame")
    spatial = _randomise(spatial, 1)
    x = torch.randn(2, 6, 12, NUM_JOINTS)
    module = FrameWise(spatial)
    with torch.no_grad():
        ref = spatial(x)
        steps = torch.stack(_step_all(module, x), dim=2)
        assert (steps - ref).abs().max() <= TOL
        assert (module.forward_steps(x) - ref).abs().max() <= TOL
    assert module.delay == 0


def test_agcn_attention_frame_vs_clip():
    a = torch.from_numpy(ntu_adjacency())
    frame = _randomise(AdaptiveGraphConv(6, 8, a, attention="frame"), 2)
    clip = _randomise(AdaptiveGraphConv(6, 8, a, attention="clip"), 2)
    x = torch.randn(2, 6, 12, NUM_JOINTS)
    with torch.no_grad():
        assert (frame(x) - clip(x)).abs().max() > 1e-3  # whole-clip C_k differs from per-frame C_k
        assert (frame(x[:, :, 3:4]) - clip(x[:, :, 3:4])).abs().max() <= TOL  # on one frame they agree
        # per-frame: a frame's output does not depend on the other frames
        y = x.clone()
        y[:, :, 5:] = torch.randn_like(y[:, :, 5:])
        assert (frame(x)[:, :, :5] - frame(y)[:, :, :5]).abs().max() <= TOL


@pytest.mark.parametrize("in_c,out_c,stride", [(3, 8, 1), (8, 8, 1), (8, 12, 2), (8, 8, 2)])
def test_continual_block_exact(in_c, out_c, stride):
    kind = "none" if in_c == 3 else "identity" if (in_c == out_c and stride == 1) else "conv"
    a = torch.from_numpy(ntu_adjacency())
    block = _randomise(GCNBlock(SpatialGraphConv(in_c, out_c, a), in_c, out_c, 9, stride, False, kind), 3)
    coblock = _continual_block(block).eval()
    x = torch.randn(2, in_c, 30, NUM_JOINTS)
    with torch.no_grad():
        ref = block(x)
        assert (coblock.forward(x) - ref).abs().max() <= TOL
    outs = _step_all(coblock, x)
    assert coblock.delay == 8 and all(o is None for o in outs[:8])
    valid = [t for t, o in enumerate(outs) if o is not None]
    assert valid == list(range(8, 30, stride))
    got = torch.stack([outs[t] for t in valid], dim=2)
    assert got.shape == ref.shape and (got - ref).abs().max() <= TOL
    coblock.clean_state()
    with torch.no_grad():
        assert (coblock.forward_steps(x) - ref).abs().max() <= TOL


# --- full models ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["stgcn", "agcn"])
@pytest.mark.parametrize("strides,kernel", [((1, 1, 1), 9), ((1, 2, 1, 2), 5), ((1, 2, 2), 9)])
def test_continual_model_exact(model, strides, kernel):
    cfg = _cfg(model=model, channels=(8, 8, 12, 12)[:len(strides)], strides=strides, temporal_kernel=kernel)
    clip = _randomise(build_gcn(cfg), 4)
    pooled = 2 if len(strides) == 4 else 1
    rf = cfg.receptive_field(pooled)
    comodel = to_continual(clip, rf)
    assert comodel.receptive_field == rf and comodel.delay == rf - 1
    fpp = int(np.prod(strides))
    assert comodel.frames_per_prediction == fpp
    x = torch.randn(2, 3, 40, NUM_JOINTS, 2)
    outs = _step_all(comodel, x)
    assert all(o is None for o in outs[:comodel.delay])
    valid = [t for t, o in enumerate(outs) if o is not None]
    assert valid == list(range(rf - 1, 40, fpp)) and len(valid) >= 2
    assert (outs[valid[0]] - outs[valid[1]]).abs().max() > 1e-2  # the scores follow the input
    with torch.no_grad():
        for t in valid:
            ref = clip(x[:, :, t - rf + 1:t + 1])
            assert outs[t].shape == (2, 5) and (outs[t] - ref).abs().max() <= TOL, t
        # clip mode of the continual model is the unpadded clip model
        assert (comodel.forward(x[:, :, :rf]) - clip(x[:, :, :rf])).abs().max() <= TOL


@pytest.mark.parametrize("model", ["stgcn", "agcn"])
def test_star_continual_exact(model):
    strided = _randomise(build_gcn(_cfg(model=model, strides=(1, 2, 1))), 5)
    star = star_variant(strided)
    comodel = to_continual(star, 30)
    assert comodel.frames_per_prediction == 1 and comodel.delay == 29  # pool over 30 - 24 frames
    x = torch.randn(1, 3, 34, NUM_JOINTS, 2)
    outs = _step_all(comodel, x)
    assert [t for t, o in enumerate(outs) if o is not None] == list(range(29, 34))
    with torch.no_grad():
        for t in range(29, 34):
            assert (outs[t] - star(x[:, :, t - 29:t + 1])).abs().max() <= TOL


def test_forward_steps_and_explicit_state():
    clip = _randomise(build_gcn(_cfg(model="agcn", strides=(1, 2, 1))), 6)
    x = torch.randn(2, 3, 40, NUM_JOINTS, 2)
    a, b = to_continual(clip, 36), to_continual(clip, 36)
    outs = [o for o in _step_all(a, x) if o is not None]
    with torch.no_grad():
        many = b.forward_steps(x)
    assert many.shape == (2, 5, len(outs)) and (many - torch.stack(outs, dim=2)).abs().max() <= TOL
    # the explicit-state protocol (co.onnx): thread the state by hand, no module buffers touched
    c = to_continual(clip, 36)
    state = None
    got = []
    with torch.no_grad():
        for t in range(x.shape[2]):
            out, state = c._forward_step(x[:, :, t], state)
            if out is not None:
                got.append(out)
    assert len(got) == len(outs) and max((g - o).abs().max() for g, o in zip(got, outs)) <= TOL
    names = [n for n, _ in state_tensors(a)]
    assert names == [n for n, _ in state_tensors(b)] and names[0].startswith("block0.")
    assert any(n.startswith("pool.") for n in names)


def test_padding_breaks_exactness():
    cfg = _cfg(temporal_padding=True)
    clip = _randomise(build_gcn(cfg), 7)
    comodel = to_continual(clip, 30)
    x = torch.randn(1, 3, 40, NUM_JOINTS, 2)
    outs = _step_all(comodel, x)
    with torch.no_grad():
        # the padded clip model, on the same frames the continual prediction sees, gives other scores
        diffs = [(outs[t] - clip(x[:, :, t - 29:t + 1])).abs().max().item() for t in range(29, 40)]
        assert min(diffs) > 1e-3
        # without the padding the same weights agree
        unpadded = build_gcn(_cfg())
        unpadded.load_state_dict(clip.state_dict())
        unpadded.eval()
        assert max((outs[t] - unpadded(x[:, :, t - 29:t + 1])).abs().max().item() for t in range(29, 40)) <= TOL


def test_state_floats_counts_library_buffers():
    cfg = _cfg(channels=(8, 8), strides=(1, 1), num_person=1)
    comodel = to_continual(build_gcn(cfg).eval(), 20)
    v, k = NUM_JOINTS, 9
    # co.Conv2d: (k-1) slots of (C, k-1, V); identity residual delay: (k-1)/2 frames of (C_in, V);
    # pool: 4 frames of C (spatially pooled)
    expected = 2 * (k - 1) ** 2 * 8 * v + 4 * 8 * v + (20 - 16) * 8
    assert state_floats(comodel) == expected
    assert state_floats(comodel, batch=3) == 3 * expected
    # measured on a copy: the model's own state is still empty
    assert all(t.numel() == 0 for n, t in state_tensors(comodel) if n.endswith("state_buffer"))


def test_agcn_clip_attention_converts_to_per_frame():
    """A 2s-AGCN clip model (whole-clip C_k) becomes CoAGCN with per-frame C_k: exact to the per-frame model."""
    clip_att = _randomise(build_gcn(_cfg(model="agcn", attention="clip")), 8)
    with torch.no_grad():  # sharper attention, so that whole-clip and per-frame C_k visibly differ
        for block in clip_att.blocks:
            block.gcn.theta.weight.mul_(10.0)
    per_frame = build_gcn(_cfg(model="agcn", attention="frame"))
    per_frame.load_state_dict(clip_att.state_dict())
    per_frame.eval()
    comodel = to_continual(clip_att, 30)
    x = torch.randn(1, 3, 32, NUM_JOINTS, 2)
    outs = _step_all(comodel, x)
    with torch.no_grad():
        for t in (29, 31):
            window = x[:, :, t - 29:t + 1]
            assert (outs[t] - per_frame(window)).abs().max() <= TOL
            assert (outs[t] - clip_att(window)).abs().max() > 1e-3
    assert clip_att.blocks[1].gcn.attention == "clip"  # the clip model is left as it was


def test_strides_without_a_continual_schedule_are_refused():
    """k = 3 with a stride-2 residual block: the residual's frames and the convolution's never line up."""
    cfg = GCNConfig(channels=(8, 16, 16), strides=(1, 2, 1), temporal_kernel=3, num_classes=3)
    with pytest.raises(SpecError, match="multiple of the stride"):
        to_continual(build_gcn(cfg).eval(), 20)
