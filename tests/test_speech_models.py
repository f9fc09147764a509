"""Keyword-spotting models (:mod:`hcgym.perception.speech`): MFCC against a numpy reference and through ONNX
Runtime, the Self-ONN layer against convolutions, MatchboxNet configurations A-F, NovoGrad and the schedule."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.fft
import torch
from torch import nn

from hcgym.errors import SpecError
from hcgym.perception.speech import features, matchboxnet, optim, selfonn
from hcgym.perception.speech.matchboxnet import CONFIGS, MatchboxNet, count_parameters, keyword_spotter
from hcgym.perception.speech.selfonn import SelfONN1d


def _audio(n: int = 1, samples: int = 16000, seed: int = 0) -> np.ndarray:
    """A rising chirp in noise, amplitudes within [-1, 1]: ``(n, samples)`` float64."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t)
    return chirp[None] * rng.uniform(0.5, 1.0, (n, 1)) + 0.02 * rng.standard_normal((n, samples))


def _reference_mfcc(audio: np.ndarray, normalize: bool) -> np.ndarray:
    """numpy / scipy MFCCs by the textbook route: centred frames, ``np.fft.rfft``, triangles by ``np.interp``,
    ``scipy.fft.dct``. ``(samples,)`` -> ``(64, frames)``."""
    window = np.zeros(512)
    window[56:456] = np.hanning(401)[:400]  # periodic Hann of 400 samples, centred in the 512-point frame
    padded = np.pad(audio, 256)
    frames = np.stack([padded[t * 160:t * 160 + 512] for t in range(1 + len(audio) // 160)])
    power = np.abs(np.fft.rfft(frames * window, n=512)) ** 2  # (T, 257)
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = 700 * (10 ** (np.linspace(0, mel(8000.0), 66) / 2595) - 1)
    freqs = np.linspace(0, 8000, 257)
    bank = np.stack([np.interp(freqs, hz[m:m + 3], [0, 1, 0], left=0, right=0) for m in range(64)])
    logmel = np.log(np.maximum(power @ bank.T, 1e-6))
    mfcc = scipy.fft.dct(logmel, type=2, norm="ortho", axis=1).T  # (64, T)
    if normalize:
        mfcc = (mfcc - mfcc.mean(1, keepdims=True)) / (mfcc.std(1, keepdims=True) + 1e-5)
    return mfcc


# ------------------------------------------------------------------------------------------------ MFCC
def test_mfcc_shape_is_64_by_101_frames_per_second() -> None:
    mfcc = features.MFCC()
    assert mfcc(torch.zeros(2, 16000)).shape == (2, 64, 101)
    assert mfcc(torch.zeros(1, 8000)).shape == (1, 64, 51) and features.n_frames(16000) == 101
    assert features.MFCC(n_mfcc=13)(torch.zeros(1, 16000)).shape == (1, 13, 101)
    with pytest.raises(SpecError, match="n_mfcc"):
        features.MFCC(n_mfcc=65)


@pytest.mark.parametrize("normalize", [False, True])
def test_mfcc_matches_numpy_reference(normalize: bool) -> None:
    audio = _audio(2, seed=1)
    got = features.MFCC(normalize=normalize)(torch.tensor(audio, dtype=torch.float32)).double().numpy()
    for g, a in zip(got, audio):
        ref = _reference_mfcc(a, normalize)
        assert np.abs(g - ref).max() <= 1e-3 * np.abs(ref).max()
    if normalize:
        assert np.allclose(got.mean(2), 0, atol=1e-4) and np.allclose(got.std(2), 1, atol=1e-3)


def test_mfcc_filterbank_and_dct() -> None:
    bank = features.mel_filterbank()
    assert bank.shape == (64, 257) and bool((bank.sum(1) > 0).all()) and float(bank.max()) <= 1
    d = features.dct_matrix(64)
    assert torch.allclose(d @ d.T, torch.eye(64, dtype=torch.float64), atol=1e-12)
    x = np.random.default_rng(0).standard_normal(64)
    assert np.allclose(d.numpy() @ x, scipy.fft.dct(x, type=2, norm="ortho"))


# ------------------------------------------------------------------------------------------------ ONNX
@pytest.mark.parametrize("name", ["A", "E"])
def test_mfcc_and_matchboxnet_export_to_onnx_runtime(name: str) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = keyword_spotter(12, name)
    audio = torch.tensor(_audio(3, seed=2), dtype=torch.float32)
    with torch.no_grad():
        model.train()
        for _ in range(3):  # non-trivial batch-norm statistics
            model(audio)
    model.eval()
    buf = io.BytesIO()
    torch.onnx.export(model, (audio[:1],), buf, input_names=["audio"], output_names=["logits"], opset_version=17,
                      dynamo=False, dynamic_axes={"audio": {0: "batch", 1: "samples"}, "logits": {0: "batch"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    test = torch.tensor(_audio(2, seed=3), dtype=torch.float32)
    for x in (test, test[:, :12000]):
        with torch.no_grad():
            want = model(x).numpy()
        got = session.run(None, {"audio": x.numpy()})[0]
        assert got.shape == (len(x), 12)
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())


# ------------------------------------------------------------------------------------------------ Self-ONN
@pytest.mark.parametrize("cin,cout,k,groups,stride,dilation", [(8, 16, 11, 1, 1, 1), (8, 12, 5, 4, 2, 1),
                                                                  (6, 6, 7, 6, 1, 2)])
def test_selfonn_q1_equals_conv1d_exactly(cin: int, cout: int, k: int, groups: int, stride: int,
                                         dilation: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv1d(cin, cout, k, stride=stride, padding=3, dilation=dilation, groups=groups)
    layer = SelfONN1d(cin, cout, k, q=1, stride=stride, padding=3, dilation=dilation, groups=groups)
    layer.conv.load_state_dict(conv.state_dict())
    x = torch.randn(2, cin, 40)
    assert torch.equal(layer(x), conv(x))


def test_selfonn_parameters_grow_by_q() -> None:
    counts = [count_parameters(SelfONN1d(8, 16, 11, q=q)) for q in (1, 5, 7)]
    assert counts == [1424, 7056, 9872] == [selfonn.selfonn_parameters(8, 16, 11, q) for q in (1, 5, 7)]
    assert count_parameters(nn.Conv1d(8, 16, 11)) == 1424
    assert count_parameters(SelfONN1d(8, 8, 3, q=3, groups=8, bias=False)) == 3 * 8 * 3


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_selfonn_is_the_sum_of_convolved_powers_within_groups(groups: int) -> None:
    """``Y = sum_i X^i (*) W_i + b``, each ``W_i`` a grouped convolution of ``X^i`` alone."""
    torch.manual_seed(1)
    q, cin, cout = 3, 6, 12
    layer = SelfONN1d(cin, cout, 5, q=q, groups=groups)
    x = torch.randn(2, cin, 30, dtype=torch.float64)
    layer.double()
    w = layer.conv.weight.view(groups, cout // groups, q, cin // groups, 5)
    want = layer.conv.bias.view(1, -1, 1).clone()
    for i in range(q):
        wi = w[:, :, i].reshape(cout, cin // groups, 5)
        want = want + nn.functional.conv1d(x ** (i + 1), wi, padding=2, groups=groups)
    assert torch.allclose(layer(x), want, atol=1e-12)
    if groups == cin:  # depthwise-like: input channel c reaches only its group's outputs
        y0 = layer(x)
        bumped = x.clone()
        bumped[:, 2] += 1
        changed = (layer(bumped) - y0).abs().amax(dim=(0, 2)) > 0
        per = cout // groups
        assert changed.nonzero().flatten().tolist() == list(range(2 * per, 3 * per))


# ------------------------------------------------------------------------------------------------ MatchboxNet
def test_matchboxnet_a_has_the_published_77k_parameters() -> None:
    assert count_parameters(MatchboxNet(30)) == 77214
    assert count_parameters(MatchboxNet(12)) == 74892
    assert not any(isinstance(m, (SelfONN1d, nn.Tanh)) for m in MatchboxNet(12).modules())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_configuration_trains_on_one_second_audio(name: str) -> None:
    torch.manual_seed(0)
    model = keyword_spotter(5, name)
    x = torch.tensor(_audio(2, seed=4), dtype=torch.float32)
    logits = model(x)
    assert logits.shape == (2, 5) and bool(torch.isfinite(logits).all())
    nn.functional.cross_entropy(logits, torch.tensor([1, 3])).backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in model.parameters())
    replaced = CONFIGS[name].q
    qs = sorted({m.q for m in model.modules() if isinstance(m, SelfONN1d)})
    assert qs == sorted(set(replaced.values()))


def _weights(part: nn.Module) -> int:
    """Convolution weights in ``part`` (a Self-ONN layer's single convolution included)."""
    return sum(m.weight.numel() for m in part.modules() if isinstance(m, nn.Conv1d))


def test_configuration_e_changes_only_prologue_and_epilogue() -> None:
    a, e = MatchboxNet(12, "A"), MatchboxNet(12, "E")
    for name in ("blocks", "head"):
        assert [p.shape for p in getattr(a, name).parameters()] == [p.shape for p in getattr(e, name).parameters()]
    # every convolution weight of the prologue (dw 64x11, pw 64->128) and epilogue (dw 64x29, pw 64->128,
    # 1x1 128->128) grows x7
    growth = 6 * (64 * 11 + 64 * 128 + 64 * 29 + 64 * 128 + 128 * 128)
    assert count_parameters(e) - count_parameters(a) == growth == 211968
    assert _weights(e.prologue) == 7 * _weights(a.prologue) and _weights(e.epilogue) == 7 * _weights(a.epilogue)
    # the cheaper variant: only the depthwise halves of the separable layers take powers
    cheap = MatchboxNet(12, "E", separable="depthwise")
    assert count_parameters(cheap) - count_parameters(a) == 6 * (64 * 11 + 64 * 29 + 128 * 128)


def test_tanh_before_every_intermediate_selfonn_layer() -> None:
    def tanh_then_selfonn(model: nn.Module) -> tuple[int, int]:
        seq = [m for m in model.modules() if isinstance(m, (nn.Tanh, SelfONN1d))]
        pairs = sum(isinstance(x, nn.Tanh) and isinstance(y, SelfONN1d) for x, y in zip(seq, seq[1:]))
        return pairs, sum(isinstance(m, SelfONN1d) for m in seq)

    assert tanh_then_selfonn(MatchboxNet(12, "E")) == (4, 5)  # all but the prologue's first convolution
    assert tanh_then_selfonn(MatchboxNet(12, "B")) == (1, 2)
    assert tanh_then_selfonn(MatchboxNet(12, "C")) == (1, 1)
    assert tanh_then_selfonn(MatchboxNet(12, "F")) == (3, 3)
    assert not any(isinstance(m, nn.Tanh) for m in MatchboxNet(12, "E", tanh=False).modules())


def test_macs_grow_by_the_replaced_convolutions() -> None:
    frames = features.n_frames(16000)
    a, e = MatchboxNet(12, "A"), MatchboxNet(12, "E")
    macs_a, macs_e = matchboxnet.count_macs(a), matchboxnet.count_macs(e)
    conv = frames * (64 * 11 + 64 * 128 + 128 * 13 + 128 * 64 * 2 + 64 * 15 + 64 * 64 * 2 + 64 * 17 + 64 * 64 * 2
                     + 64 * 29 + 64 * 128 + 128 * 128)
    bn = 2 * frames * (128 + 3 * (64 + 64) + 128 + 128)  # fvcore: 2 per element, residual BNs included
    assert macs_a["fvcore"] == conv + 12 * 128 + bn  # + the head
    growth = 6 * frames * (64 * 11 + 64 * 128 + 64 * 29 + 64 * 128 + 128 * 128)
    assert macs_e["fvcore"] - macs_a["fvcore"] == growth
    assert macs_e["ptflops"] - macs_a["ptflops"] == growth
    assert matchboxnet.power_products(e, frames) == 6 * frames * (64 + 64 + 64 + 64 + 128)
    assert features.MFCC().macs(16000) == frames * (2 * 257 * 400 + 2 * 257 + 64 * 257 + 64 * 64)


def test_bad_configuration_and_arguments_raise_spec_errors() -> None:
    with pytest.raises(SpecError, match="config.*unknown configuration 'G'"):
        MatchboxNet(12, "G")
    with pytest.raises(SpecError, match="classes"):
        MatchboxNet(1)
    with pytest.raises(SpecError, match="separable"):
        MatchboxNet(12, "E", separable="pointwise")
    with pytest.raises(SpecError, match="groups"):
        SelfONN1d(6, 4, 3, q=2, groups=3)
    with pytest.raises(SpecError, match="input_shape"):
        matchboxnet.count_macs(MatchboxNet(12), (2, 64, 101))


# ------------------------------------------------------------------------------------------------ optimisation
def test_novograd_first_step_and_quadratic_descent() -> None:
    w = nn.Parameter(torch.tensor([3.0, -4.0]))
    opt = optim.NovoGrad([w], lr=0.1, weight_decay=0.01)
    (w ** 2).sum().backward()  # g = (6, -8), ||g|| = 10
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([3.0, -4.0]) - 0.1 * (torch.tensor([0.6, -0.8])
                                                                         + 0.01 * torch.tensor([3.0, -4.0])))
    torch.manual_seed(0)
    a = torch.randn(20, 5) * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0])  # an ill-conditioned quadratic
    x_true = torch.randn(5)
    x = nn.Parameter(torch.zeros(5))
    opt = optim.NovoGrad([x], lr=0.05)
    losses = []
    for step in range(300):
        for group in opt.param_groups:
            group["lr"] = optim.warmup_hold_decay(step, 300)
        opt.zero_grad()
        loss = ((a @ (x - x_true)) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-3 * losses[0] and torch.allclose(x.detach(), x_true, atol=0.02)


def test_warmup_hold_decay_schedule() -> None:
    lr = lambda s: optim.warmup_hold_decay(s, 1000)  # noqa: E731
    assert lr(0) == pytest.approx(0.001) and lr(50) == pytest.approx(0.05) and lr(500) == pytest.approx(0.05)
    assert lr(1000) == pytest.approx(0.001) and lr(2000) == pytest.approx(0.001)
    assert lr(25) == pytest.approx(0.0255)  # linear warm-up
    assert lr(750) == pytest.approx(0.001 + 0.049 * 0.25)  # polynomial decay, power 2
    values = [lr(s) for s in range(1001)]
    assert all(0.001 <= v <= 0.05 for v in values)
    assert values[50:] == sorted(values[50:], reverse=True)
    with pytest.raises(SpecError, match="total"):
        optim.warmup_hold_decay(0, 0)
    with pytest.raises(SpecError, match="warmup"):
        optim.warmup_hold_decay(0, 10, warmup=0.6, hold=0.5)
