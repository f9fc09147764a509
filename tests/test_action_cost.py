"""MAC counting by ptflops and fvcore, MACs per prediction and state memory (:mod:`hcgym.perception.action.cost`);
the explicit, traced and per-frame-convolution ways of running the models (:mod:`.stepping`). No timed
assertions: speed is measured by benchmarks/action_continual.py."""

from __future__ import annotations

import continual as co
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.action import cost, gcn, stepping, x3d
from hcgym.perception.action.graph import NUM_JOINTS, ntu_adjacency

V = NUM_JOINTS


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_gcn(strides: tuple[int, ...] = (1, 1, 1, 1), padding: bool = False, model: str = "stgcn") -> gcn.GCN:
    torch.manual_seed(0)
    cfg = gcn.GCNConfig(model=model, channels=(4, 4, 8, 8), strides=strides, temporal_kernel=5, num_classes=3,
                        temporal_padding=padding)
    return gcn.build_gcn(cfg).eval()


def _tiny_x3d(frames: int, padding: bool) -> x3d.X3D:
    torch.manual_seed(0)
    cfg = x3d.X3DConfig(num_classes=3, frames=frames, size=16, stem_width=4, widths=(4, 8), depths=(1, 1),
                        head_width=8, temporal_padding=padding)
    return x3d.build_x3d(cfg).eval()


# ------------------------------------------------------------------------------------------ hand-computable counts
def test_conv3d_macs_equal_the_formula_in_both_counters():
    conv = nn.Conv3d(4, 6, (3, 3, 3), padding=(0, 1, 1), bias=False)
    # output (1, 6, 5, 10, 10); every output position costs 4 x 27 multiply-adds
    assert cost.macs(conv, torch.randn(1, 4, 7, 10, 10)) == {"ptflops": 6 * 4 * 27 * 5 * 100,
                                                            "fvcore": 6 * 4 * 27 * 5 * 100}
    grouped = nn.Conv3d(4, 8, (3, 1, 1), stride=(2, 1, 1), groups=2, bias=False)
    # output (1, 8, 3, 5, 5); groups of 2 input channels
    assert cost.macs(grouped, torch.randn(1, 4, 7, 5, 5))["fvcore"] == 8 * 2 * 3 * 3 * 25


def test_spatial_graph_conv_einsum_counted_by_both():
    k, c_in, c, t = 3, 3, 8, 6
    layer = gcn.SpatialGraphConv(c_in, c, torch.from_numpy(ntu_adjacency())).eval()
    conv, bias, einsum = c_in * k * c * t * V, k * c * t * V, k * c * t * V * V
    bn, relu = 2 * c * t * V, c * t * V
    got = cost.macs(layer, torch.randn(1, c_in, t, V))
    # ptflops counts biases and activations, fvcore does not; both count the graph einsum k c t v w
    assert got == {"ptflops": conv + bias + einsum + bn + relu, "fvcore": conv + einsum + bn}


@pytest.mark.parametrize("attention", ["frame", "clip"])
def test_adaptive_graph_conv_einsums_counted_by_both(attention):
    k, c, t = 3, 8, 5
    e = c // 4
    layer = gcn.AdaptiveGraphConv(c, c, torch.from_numpy(ntu_adjacency()), 4, attention).eval()
    embed, conv = 2 * c * k * e * t * V, k * c * c * t * V  # theta and phi; the stacked 1x1 convolution
    # attention logits; the aggregations: with A + B and C_k per frame, or with A + B + C_k (one per clip)
    einsums = k * e * t * V * V + (2 if attention == "frame" else 1) * k * c * t * V * V
    bn = 2 * c * t * V
    got = cost.macs(layer, torch.randn(1, c, t, V))
    assert got["fvcore"] == embed + conv + einsums + bn
    assert got["ptflops"] == embed + 2 * k * e * t * V + conv + c * t * V + einsums + bn + c * t * V


def test_einsum_macs():
    a, b = torch.zeros(2, 3, 4), torch.zeros(2, 4, 5)
    assert cost.einsum_macs("abc,acd->abd", a, b) == 2 * 3 * 4 * 5
    with pytest.raises(SpecError, match="equation"):
        cost.einsum_macs("...c,cd->...d", a, b)


def test_continual_conv_step_costs_eq4_in_both_counters():
    conv = nn.Conv3d(4, 6, (3, 3, 3), padding=(1, 1, 1), bias=False)
    step = co.Conv3d.build_from(conv, padding=(0, 1, 1))
    eq4 = 6 * 4 * 27 * 8 * 8  # [k_T k_H k_W] C_in C_out n_H n_W; the zero-padded frames are not counted
    assert cost.macs(step, torch.randn(1, 4, 5, 8, 8), "step") == {"ptflops": eq4, "fvcore": eq4}
    assert cost.macs(step, torch.randn(1, 4, 5, 8, 8), "step", steps=3) == {"ptflops": 3 * eq4, "fvcore": 3 * eq4}
    assert x3d.state_tensors(step) == []  # left with a clean state


def test_step_costs_one_frame_of_every_layer():
    """Without padding and strides, one more clip frame costs one frame of every layer: the step, plus the
    continual global pool and the frame pickers of strided residuals (ptflops counts pooling), plus the head."""
    clip_model = _tiny_gcn()
    rf = clip_model.cfg.receptive_field()
    shorter, longer = (cost.macs(clip_model, torch.randn(1, 3, t, V, 1)) for t in (rf, rf + 1))
    step = cost.macs(gcn.to_continual(clip_model, rf), torch.randn(1, 3, rf + 2, V, 1), "step")
    fc = 8 * 3
    pools = 8 * V + 4 * V  # the global pool's frame and the residual picker of block 2 (4 -> 8 channels)
    assert step["ptflops"] - (longer["ptflops"] - shorter["ptflops"]) == pools + fc + 3
    assert step["fvcore"] - (longer["fvcore"] - shorter["fvcore"]) == fc


# ------------------------------------------------------------------------------------------ per prediction
def test_continual_costs_less_per_prediction_and_the_ratio_grows_with_t():
    ratios = []
    for t in (32, 64):
        clip_model = _tiny_gcn(strides=(1, 2, 1, 1), padding=True)
        r = cost.flops_per_prediction(clip_model, gcn.to_continual(clip_model, t), torch.randn(1, 3, t, V, 1))
        assert r["frames_per_prediction"] == 2 and r["predictions_per_clip"] == 1
        assert all(r["ratio"][k] > 1 for k in cost.COUNTERS)
        assert r["ratio"]["ptflops"] == pytest.approx(r["ratio"]["fvcore"], rel=0.1)
        ratios.append(r["ratio"])
    assert all(ratios[1][k] > ratios[0][k] for k in cost.COUNTERS)

    x3d_ratios = []
    for t in (12, 24):
        clip_model = _tiny_x3d(t, padding=True)
        r = cost.flops_per_prediction(clip_model, x3d.to_continual(clip_model), torch.randn(1, 3, t, 16, 16))
        assert r["frames_per_prediction"] == 1 and all(r["ratio"][k] > 1 for k in cost.COUNTERS)
        x3d_ratios.append(r["ratio"])
    assert all(x3d_ratios[1][k] > x3d_ratios[0][k] for k in cost.COUNTERS)


def test_strided_prediction_sums_its_frames():
    clip_model = _tiny_gcn(strides=(1, 2, 1, 1))
    co_model = gcn.to_continual(clip_model, 32)
    frames = torch.randn(1, 3, int(co_model.delay) + 2, V, 1)
    first, second = cost.macs(co_model, frames[:, :, :-1], "step"), cost.macs(co_model, frames, "step")
    both = cost.macs(co_model, frames, "step", steps=2)
    for k in cost.COUNTERS:
        assert both[k] == first[k] + second[k]
        # only one of two consecutive frames reaches the layers after the stride
        assert min(first[k], second[k]) < both[k] / 2 < max(first[k], second[k])
    per_prediction = cost.flops_per_prediction(clip_model, co_model, torch.randn(1, 3, 32, V, 1))["step"]
    assert per_prediction == both


# ------------------------------------------------------------------------------------------ state memory
def test_state_memory_equals_state_floats():
    co_gcn = gcn.to_continual(_tiny_gcn(strides=(1, 2, 1, 1)), 32)
    memory = cost.state_memory(co_gcn)
    assert memory["floats"] == gcn.state_floats(co_gcn) > 0
    assert memory["bytes"] > 4 * memory["floats"]  # fp32 values plus the int64 ring and stride indices

    co_x3d = x3d.to_continual(_tiny_x3d(12, padding=False))
    frame = torch.randn(1, 3, 16, 16)
    memory = cost.state_memory(co_x3d, frame)
    assert x3d.state_tensors(co_x3d) == []  # left clean
    with torch.no_grad():
        for _ in range(int(co_x3d.delay) + 1):
            co_x3d.forward_step(frame)
    assert memory["floats"] == x3d.state_floats(co_x3d) > 0
    assert memory["bytes"] == sum(t.numel() * t.element_size() for _, t in x3d.state_tensors(co_x3d))


# ------------------------------------------------------------------------------------------ like with like
@pytest.mark.parametrize("stride,padding,dilation,groups", [
    ((1, 1, 1), (0, 1, 1), (1, 1, 1), 1), ((2, 2, 1), (1, 0, 1), (1, 1, 1), 2), ((1, 1, 1), (2, 1, 1), (2, 1, 1), 2),
    ((3, 1, 1), (2, 1, 1), (1, 1, 1), 1)])
def test_conv_by_frames_equals_conv3d_and_conv2d(stride, padding, dilation, groups):
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 4, 7, 9, 9, generator=g), torch.randn(6, 4 // groups, 3, 3, 3, generator=g), torch.randn(6)
    ref = F.conv3d(x, w, b, stride, padding, dilation, groups)
    assert torch.allclose(stepping.conv_by_frames(x, w, b, stride, padding, dilation, groups), ref, atol=1e-5)
    ref2 = F.conv2d(x[..., 0], w[..., 0], None, stride[:2], padding[:2], dilation[:2], groups)
    got2 = stepping.conv_by_frames(x[..., 0], w[..., 0], None, stride[:2], padding[:2], dilation[:2], groups)
    assert torch.allclose(got2, ref2, atol=1e-5)


def test_per_frame_convolutions_keep_the_outputs():
    clip_model = _tiny_x3d(12, padding=True)
    clip = torch.randn(1, 3, 12, 16, 16)
    framed = stepping.per_frame_convolutions(clip_model)
    assert any(isinstance(m, stepping._FrameConv3d) for m in framed.modules())
    assert not any(isinstance(m, stepping._FrameConv3d) for m in clip_model.modules())  # a copy
    with torch.no_grad():
        assert torch.allclose(framed(clip), clip_model(clip), atol=1e-5)
        native, per_frame = x3d.to_continual(clip_model), stepping.per_frame_convolutions(x3d.to_continual(clip_model),
                                                                                      inplace=True)
        stream = torch.randn(1, 3, int(native.delay) + 3, 16, 16)
        outputs = [(native.forward_step(frame), per_frame.forward_step(frame)) for frame in stream.unbind(2)]
        assert outputs[-1][0] is not None
        assert all((a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-5)) for a, b in outputs)
        co_gcn = gcn.to_continual(_tiny_gcn(strides=(1, 2, 1, 1)), 32)
        framed_gcn = stepping.per_frame_convolutions(co_gcn)
        stream = torch.randn(1, 3, 48, V, 1)
        assert torch.allclose(co_gcn.forward_steps(stream), framed_gcn.forward_steps(stream), atol=1e-5)


# ------------------------------------------------------------------------------------------ timing helper
def test_throughput_interleaves_and_cycles_inputs():
    seen: dict[str, list] = {"a": [], "b": []}
    result = cost.throughput({"a": lambda x: seen["a"].append(x), "b": lambda: seen["b"].append(None)},
                             {"a": [(0,), (1,), (2,)]}, repeats=4, calls={"a": 2}, warmup=1, threads=1)
    assert seen["a"] == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]  # one warm-up round, then 4 rounds of 2 calls
    assert len(seen["b"]) == 5
    for r in result.values():
        assert len(r["seconds"]) == 4 and r["min_s"] <= r["median_s"] <= r["max_s"]
        assert r["per_s"] == pytest.approx(1 / r["median_s"])


def test_explicit_step_equals_forward_step():
    co_model = gcn.to_continual(_tiny_gcn(strides=(1, 2, 1, 1)), 32)
    stepper = stepping.ExplicitStep(gcn.to_continual(_tiny_gcn(strides=(1, 2, 1, 1)), 32))
    stream = torch.randn(1, 3, 48, V, 1)
    emitted = 0
    with torch.no_grad():
        for t in range(48):
            a, b = co_model.forward_step(stream[:, :, t]), stepper(stream[:, :, t])
            assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-6))
            emitted += a is not None
    assert emitted > 0


def test_traced_step_and_clip_equal_the_eager_models():
    """One traced graph per stride phase, used in turn, gives forward_step's outputs; the traced clip equals
    the clip model."""
    clip_model = _tiny_gcn(strides=(1, 2, 1, 1))
    co_model = gcn.to_continual(clip_model, 32)
    stream = torch.randn(1, 3, int(co_model.delay) + 12, V, 1)
    traced = stepping.TracedStep(gcn.to_continual(clip_model, 32), stream[:, :, :1])
    assert len(traced.graphs) == 2
    with torch.no_grad():
        for _ in range(int(co_model.delay)):
            co_model.forward_step(stream[:, :, 0])
        outputs = [(co_model.forward_step(frame), traced(frame)) for frame in stream.unbind(2)]
    assert sum(a is not None for a, _ in outputs) == len(outputs) // 2
    assert all((a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-5)) for a, b in outputs)

    x3d_clip = _tiny_x3d(12, padding=True)
    clip = torch.randn(1, 3, 12, 16, 16)
    with torch.no_grad():
        assert torch.allclose(stepping.traced_clip(x3d_clip, clip)(clip), x3d_clip(clip), atol=1e-6)
        co_x3d, stream = x3d.to_continual(x3d_clip), torch.randn(1, 3, 30, 16, 16)
        traced = stepping.TracedStep(x3d.to_continual(x3d_clip), stream[:, :, :1])
        for _ in range(int(co_x3d.delay)):
            co_x3d.forward_step(stream[:, :, 0])
        assert all(torch.allclose(co_x3d.forward_step(f), traced(f), atol=1e-5) for f in stream.unbind(2))


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_names_the_field():
    conv = nn.Conv3d(2, 2, 1)
    with pytest.raises(SpecError, match="mode"):
        cost.macs(conv, torch.randn(1, 2, 3, 4, 4), mode="frames")
    with pytest.raises(SpecError, match="batch of 1"):
        cost.macs(conv, torch.randn(2, 2, 3, 4, 4))
    with pytest.raises(SpecError, match="continual"):
        cost.macs(conv, torch.randn(1, 2, 3, 4, 4), mode="step")
    co_model = gcn.to_continual(_tiny_gcn(), 24)
    with pytest.raises(SpecError, match="delay"):
        cost.macs(co_model, torch.randn(1, 3, 4, V, 1), mode="step")
    with pytest.raises(SpecError, match="steps"):
        cost.macs(co_model, torch.randn(1, 3, 40, V, 1), mode="step", steps=0)
    with pytest.raises(SpecError, match="predictions_per_clip"):
        cost.flops_per_prediction(_tiny_gcn(), co_model, torch.randn(1, 3, 24, V, 1), predictions_per_clip=0)
    with pytest.raises(SpecError, match="frame"):
        cost.state_memory(x3d.to_continual(_tiny_x3d(12, padding=False)))
    with pytest.raises(SpecError, match="repeats"):
        cost.throughput({"a": lambda: None}, repeats=0)
