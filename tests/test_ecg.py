"""Simulated ECG (hcgym.synthesis.ecg): shapes, determinism, labels, rhythm statistics, noise level, heart rate
following activity, morphology against neurokit2's ECGSYN, and argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hcgym.errors import SpecError
from hcgym.synthesis.ecg import (
    ABNORMAL_KINDS,
    ACTION_ACTIVITY,
    RHYTHMS,
    TAU_FALL_S,
    TAU_RISE_S,
    beat_dataset,
    ecg_stream,
    rhythm_dataset,
)
from hcgym.synthesis.ecg.noise import NOISY_SNR_RANGE, power
from hcgym.synthesis.ecg.person import QRS_SLOTS, P, R, T, draw_person, person_rng
from hcgym.synthesis.ecg.waves import beat_waves, render


def _snr(clean: np.ndarray, noise: np.ndarray) -> float:
    return 10 * math.log10(power(clean) / power(noise))


def _median_beat(sig: np.ndarray, r_times: np.ndarray, fs: float, pre: float = 0.35, post: float = 0.55) -> np.ndarray:
    a, b = int(pre * fs), int(post * fs)
    idx = np.round(r_times * fs).astype(int)
    idx = idx[(idx - a >= 0) & (idx + b <= len(sig))]
    return np.median(np.stack([sig[i - a:i + b] for i in idx]), axis=0)


# ------------------------------------------------------------------------------------------------ beat set
def test_beat_dataset_shapes_range_and_determinism():
    a = beat_dataset(300, 1)
    assert a.x.shape == (300, 187) and a.x.dtype == np.float32
    assert a.y.shape == (300,) and a.y.dtype == np.int64 and a.kind.shape == (300,)
    assert a.x.min() >= 0.0 and a.x.max() <= 1.0
    assert np.allclose(a.x.max(axis=1), 1.0)  # each window is min-max normalised
    assert np.all(a.x[:, -1] == 0.0)  # zero padding after 1.2 x the median RR
    b = beat_dataset(300, 1)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.kind, b.kind)
    assert not np.array_equal(a.x, beat_dataset(300, 2).x)
    assert beat_dataset(20, 1, fs=250, length=300).x.shape == (20, 300)


def test_beat_dataset_share_and_kinds():
    s = beat_dataset(600, 4, abnormal_share=0.2)
    assert int(s.y.sum()) == 120
    assert np.array_equal(s.y, (s.kind != "normal").astype(np.int64))
    assert set(s.kind[s.y == 1]) <= set(ABNORMAL_KINDS) and len(set(s.kind[s.y == 1])) >= 3
    only = beat_dataset(200, 4, abnormal_share=0.5, kinds=["inverted_t"])
    assert set(only.kind) == {"normal", "inverted_t"} and int(only.y.sum()) == 100


def test_beat_dataset_people_hold_out():
    train = beat_dataset(400, 7, people=range(0, 4))
    test = beat_dataset(200, 7, people=range(4, 6))
    assert set(train.person) == {0, 1, 2, 3} and set(test.person) == {4, 5}
    # a person is the same person whatever else is asked for: their first beats do not change
    small = beat_dataset(60, 7, people=[5], abnormal_share=0.0)
    large = beat_dataset(150, 7, people=[5], abnormal_share=0.0)
    assert np.array_equal(small.x[:5], large.x[:5])


def test_beat_dataset_noise_changes_beats():
    clean, noisy = beat_dataset(100, 3), beat_dataset(100, 3, snr_db=5)
    assert np.array_equal(clean.kind, noisy.kind)
    assert 0.01 < float(np.mean(np.abs(clean.x - noisy.x))) < 0.3


# ------------------------------------------------------------------------------------------------ rhythm set
def test_rhythm_dataset_shapes_classes_and_determinism():
    a = rhythm_dataset(12, 0, fs=100, seconds=30)
    assert a.x.shape == (12, 3000) and a.x.dtype == np.float32 and a.y.dtype == np.int64
    assert np.bincount(a.y, minlength=4).tolist() == [3, 3, 3, 3]
    assert np.array_equal(a.x, rhythm_dataset(12, 0, fs=100, seconds=30).x)
    noisy = a.meta["snr"][a.y == RHYTHMS.index("noisy")]
    assert np.all((noisy >= NOISY_SNR_RANGE[0] - 1e-6) & (noisy <= NOISY_SNR_RANGE[1] + 1e-6))
    assert np.all(np.isinf(a.meta["snr"][a.y != RHYTHMS.index("noisy")]))
    other = a.meta["subtype"][a.y == RHYTHMS.index("other")]
    assert all(s for s in other) and not any(a.meta["subtype"][a.y != RHYTHMS.index("other")])
    skewed = rhythm_dataset(20, 0, seconds=10, shares=(0.6, 0.1, 0.25, 0.05))
    assert np.bincount(skewed.y, minlength=4).tolist() == [12, 2, 5, 1]


@pytest.mark.parametrize("snr_db", [0.0, 12.0])
def test_rhythm_snr_is_what_was_asked(snr_db):
    clean = rhythm_dataset(8, 5, seconds=10)
    noisy = rhythm_dataset(8, 5, seconds=10, snr_db=snr_db)
    for i in np.flatnonzero(clean.y != RHYTHMS.index("noisy")):
        got = _snr(clean.x[i], noisy.x[i] - clean.x[i])
        assert abs(got - snr_db) < 0.05, (i, got)


# ------------------------------------------------------------------------------------------------ rhythms
def _rr_irregularity(seed: int, rhythm: str) -> float:
    s = ecg_stream([(0, 120, "rest")], seed, rhythm=rhythm)
    rr = np.diff(s.beats.times)
    return float(np.sqrt(np.mean(np.diff(rr) ** 2)) / np.mean(rr))  # RMSSD / mean RR


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_af_rr_is_irregular(seed):
    assert _rr_irregularity(seed, "af") > 3 * _rr_irregularity(seed, "normal")


@pytest.mark.parametrize("seed", [0, 3])
def test_af_has_no_p_wave(seed):
    """The beat-averaged PR window holds the P wave in sinus rhythm; in AF only f-waves, which average out."""
    def p_wave(rhythm: str) -> float:
        s = ecg_stream([(0, 240, "rest")], seed, rhythm=rhythm, fs=250)
        rr_before = np.diff(s.beats.times, prepend=-np.inf)
        r = s.beats.times[rr_before > 0.7]  # previous T wave well clear of the PR window
        return float(np.max(_median_beat(s.clean, r, s.fs, pre=0.3, post=0.0)[: int(0.22 * s.fs)]))

    sinus, af = p_wave("normal"), p_wave("af")
    assert sinus > 0.06 and abs(af) < min(0.03, 0.25 * sinus)


def test_other_rhythm_and_stream_labels():
    s = ecg_stream([(0, 90, "rest")], 11, rhythm="other", snr_db=20)
    kind = s.meta["subtype"]
    n_pvc = int(np.sum(s.beats.labels == "pvc"))
    if kind == "bigeminy":
        assert abs(n_pvc - len(s.beats) / 2) <= 1
    elif kind != "sinus_arrhythmia":
        assert n_pvc > 0.1 * len(s.beats)
    assert [seg.label for seg in s.segments] == ["other"] * 3
    assert sum(seg.beats for seg in s.segments) == len(s.beats)
    shared = ecg_stream([(0, 600, "rest")], 2, abnormal_share=0.2)
    frac = float(np.mean(np.isin(shared.beats.labels, ("abnormal", "pvc"))))
    assert 0.14 < frac < 0.26
    assert sum(seg.abnormal_beats for seg in shared.segments) == int(round(frac * len(shared.beats)))
    af = ecg_stream([(0, 40, "rest")], 2, rhythm="af")
    assert set(af.beats.labels) == {"af"} and [seg.label for seg in af.segments] == ["af", "af"]


# ------------------------------------------------------------------------------------------------ morphology
def test_abnormal_beats_differ_where_they_should():
    person = draw_person(person_rng(9))
    kinds = np.array(["", "inverted_t", "", "wide_qrs", "pvc"])
    p_absent = np.array([False, False, True, False, False])  # beat 2: missing P
    amp, off, sig = beat_waves(person, np.full(5, 0.9), kinds, p_absent, np.zeros((5, 3)))
    fs, t = 500.0, np.arange(-0.4, 0.6, 1 / 500.0)
    beats = [render(np.array([0.4]), amp[i:i + 1], off[i:i + 1], sig[i:i + 1], fs, len(t)) for i in range(5)]
    normal, inv_t, no_p, wide, pvc = beats
    p_win, qrs_win, t_win = (t > -0.3) & (t < -0.08), np.abs(t) < 0.03, (t > 0.15) & (t < 0.45)
    # inverted T: the P wave and the QRS stay (up to the T's far tail), the T window turns negative
    assert np.max(np.abs(inv_t - normal)[p_win]) < 1e-9 and np.max(np.abs(inv_t - normal)[qrs_win]) < 0.01
    assert np.min(inv_t[t_win]) < -0.5 * amp[0, T] < 0 < np.max(normal[t_win])
    # missing P: nothing changes from the QRS on, and nothing of the P is left
    assert np.max(np.abs(no_p - normal)[t > -0.02]) < 1e-9
    assert np.max(np.abs(no_p[p_win])) < 0.02 < amp[0, P] < np.max(normal[p_win]) + 0.01
    # wide QRS and PVC: a broader QRS (longer above half the height of its largest deflection)
    def width(x):
        qrs = np.abs(x[np.abs(t) < 0.12])
        return np.sum(qrs > 0.5 * qrs.max()) / fs
    assert width(wide) > 1.5 * width(normal) and width(pvc) > 1.5 * width(normal)
    assert np.all(amp[4, [P, 1]] == 0) and sig[4, R] > 2 * sig[0, R]
    # ECGSYN scaling: QRS waves narrow with a shorter RR as sqrt(RR)
    _, _, fast = beat_waves(person, np.array([0.45]), np.array([""]), np.array([False]), np.zeros((1, 3)))
    assert np.allclose(fast[0, list(QRS_SLOTS)] / sig[0, list(QRS_SLOTS)], math.sqrt(0.45 / 0.9))


def test_normal_beat_matches_neurokit_ecgsyn():
    nk = pytest.importorskip("neurokit2")
    from scipy.signal import find_peaks

    fs = 250
    for seed in (0, 1, 2):
        s = ecg_stream([(0, 20, "rest")], seed, fs=fs)
        ours = _median_beat(s.clean, s.beats.times, fs)
        hr = 60.0 / float(np.median(np.diff(s.beats.times)))
        for state in range(5):  # ECGSYN's ODE solve now and then leaves a glitch that swamps its rescaling
            ref = np.asarray(nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=hr, method="ecgsyn",
                                             random_state=state))
            peaks, _ = find_peaks(ref, height=0.6 * ref.max(), distance=int(0.3 * fs))
            if len(peaks) >= 0.8 * 20 * hr / 60:
                break
        theirs = _median_beat(ref, peaks / fs, fs)
        assert np.corrcoef(ours, theirs)[0, 1] > 0.9


# ------------------------------------------------------------------------------------------------ streams
def test_stream_shapes_and_determinism():
    act = [(0, 20, "idle"), (20, 40, "walk"), (35, 45, "wave")]
    s = ecg_stream(act, 3, fs=125, snr_db=15)
    n = 45 * 125
    for arr in (s.signal, s.clean, s.heart_rate, s.motion_level):
        assert arr.shape == (n,) and arr.dtype == np.float32
    assert s.t.shape == (n,) and s.fs == 125
    assert np.all(np.diff(s.beats.times) > 0) and s.beats.times[0] >= 0 and s.beats.times[-1] < 45
    assert [(seg.start, seg.end) for seg in s.segments] == [(0.0, 30.0), (30.0, 45.0)]
    assert np.array_equal(s.signal, ecg_stream(act, 3, fs=125, snr_db=15).signal)
    assert not np.array_equal(s.signal, ecg_stream(act, 4, fs=125, snr_db=15).signal)
    assert s.motion_level[: 15 * 125].max() == 0 and s.motion_level[30 * 125:40 * 125].min() > 0.45


@pytest.mark.parametrize("rhythm", RHYTHMS)
def test_stream_prefix_does_not_depend_on_length(rhythm):
    act = [(0, 20, "sit"), (20, 50, "walk"), (50, 120, "jump")]
    short = ecg_stream(act, 6, rhythm=rhythm, snr_db=10, abnormal_share=0.1, duration=60)
    long = ecg_stream(act, 6, rhythm=rhythm, snr_db=10, abnormal_share=0.1, duration=120)
    n = int(30 * short.fs)
    for name in ("signal", "clean", "heart_rate", "motion_level"):
        assert np.array_equal(getattr(short, name)[:n], getattr(long, name)[:n]), name
    k = int(np.sum(short.beats.times < 30))
    assert np.array_equal(short.beats.times[:k], long.beats.times[:k])
    assert np.array_equal(short.beats.labels[:k], long.beats.labels[:k])
    assert short.segments[0] == long.segments[0]


def test_stream_snr_at_rest():
    s = ecg_stream([(0, 60, "rest")], 8, snr_db=10)
    assert abs(_snr(s.clean, s.signal - s.clean) - 10) < 1.0
    walking = ecg_stream([(0, 60, "walk")], 8, snr_db=10)
    assert _snr(walking.clean, walking.signal - walking.clean) < 8.0  # motion artefacts on top


def test_heart_rate_follows_activity_with_time_constants():
    s = ecg_stream([(0, 60, "rest"), (60, 240, "run"), (240, 480, "rest")], 0, fs=125)
    rest, run = s.meta["hr_levels"][0], s.meta["hr_levels"][2]
    t = s.beats.times[1:]
    hr = 60.0 / np.diff(s.beats.times)
    smooth = np.convolve(hr, np.ones(9) / 9, mode="same")

    def crossing(t0: float, level: float, rising: bool) -> float:
        sel = (t > t0 + 3) & (t < t0 + 170)
        hit = smooth[sel] >= level if rising else smooth[sel] <= level
        return float(t[sel][np.argmax(hit)]) - t0

    rise = crossing(60, rest + (1 - math.exp(-1)) * (run - rest), True)
    fall = crossing(240, run - (1 - math.exp(-1)) * (run - rest), False)
    assert abs(rise - TAU_RISE_S) < 6 and abs(fall - TAU_FALL_S) < 8 and fall > rise
    assert abs(np.median(hr[(t > 200) & (t < 240)]) - run) < 6
    assert np.all(np.abs(s.heart_rate[: 50 * 125] - rest) < 15)


def test_every_behaviour_action_has_an_activity_level():
    from hcgym.synthesis.motion.actions import actions

    assert set(ACTION_ACTIVITY) == set(actions())
    s = ecg_stream([(i, i + 1, name) for i, name in enumerate(sorted(ACTION_ACTIVITY))], 0)
    assert len(s.beats) > 5


def test_activity_from_a_behaviour_timeline():
    from hcgym.synthesis.ecg import activity_from_timeline
    from hcgym.synthesis.motion.timeline import Segment

    timeline = [Segment("idle", 0, 10), Segment("walk", 10, 20, {"speed": 1.2}), Segment("wave", 12, 2),
                Segment("walk", 30, 20, {"speed": 2.8})]
    act = activity_from_timeline(timeline)
    assert act == [(0, 10, "idle"), (10, 30, "walk"), (12, 14, "wave"), (30, 50, "run")]
    s = ecg_stream(act, 1, fs=125)
    assert s.motion_level[int(5 * 125)] == 0 and s.motion_level[int(45 * 125)] > 0.95


def test_plot_examples_writes_a_small_png(tmp_path):
    from hcgym.synthesis.ecg import plot_examples

    path = plot_examples(tmp_path / "ecg.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 200_000


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("call, field", [
    (lambda: beat_dataset(0, 0), "count"),
    (lambda: beat_dataset(10, -1), "seed"),
    (lambda: beat_dataset(10, 0, fs=100), "fs"),
    (lambda: beat_dataset(10, 0, abnormal_share=1.5), "abnormal_share"),
    (lambda: beat_dataset(10, 0, snr_db="loud"), "snr_db"),
    (lambda: beat_dataset(10, 0, kinds=["square"]), "kinds"),
    (lambda: beat_dataset(10, 0, people=[1, 1]), "people"),
    (lambda: beat_dataset(10, 0, length=4), "length"),
    (lambda: rhythm_dataset(4, 0, fs=20), "fs"),
    (lambda: rhythm_dataset(4, 0, seconds=0), "seconds"),
    (lambda: rhythm_dataset(4, 0, snr_db=-10), "snr_db"),
    (lambda: rhythm_dataset(4, 0, shares=(1, 1)), "shares"),
    (lambda: ecg_stream([(0, 10, "rest")], 0, fs=1000), "fs"),
    (lambda: ecg_stream([(0, 10, "rest")], 0, rhythm="vf"), "rhythm"),
    (lambda: ecg_stream([(0, 10, "fly")], 0), "activity[0]"),
    (lambda: ecg_stream([(5, 2, "rest")], 0), "activity[0]"),
    (lambda: ecg_stream("rest", 0), "activity"),
    (lambda: ecg_stream([], 0), "duration"),
    (lambda: ecg_stream([(0, 10, "rest")], 0, duration=-1), "duration"),
    (lambda: ecg_stream([(0, 10, "rest")], 0, snr_db=(0, 10)), "snr_db"),
])
def test_bad_arguments_name_the_field(call, field):
    with pytest.raises(SpecError) as err:
        call()
    assert err.value.field == field


def test_f_waves_and_noise_spectra():
    from scipy.signal import welch

    from hcgym.synthesis.ecg.noise import stationary_noise
    from hcgym.synthesis.ecg.waves import f_waves

    fs = 250.0
    for key in range(4):
        person = draw_person(person_rng(key))
        f, pxx = welch(f_waves(person, int(60 * fs), fs), fs=fs, nperseg=2048)
        assert 4.0 <= f[np.argmax(pxx)] <= 9.0
        noise = stationary_noise(person, int(60 * fs), fs, (key,))
        assert abs(power(noise) - 1.0) < 0.2  # unit expected power: the SNR scaling is exact
        f, pxx = welch(noise, fs=fs, nperseg=1024)
        mains = np.argmin(np.abs(f - person.mains_hz))
        assert pxx[mains] > 10 * np.median(pxx[(f > 20) & (f < 120)])  # the powerline line stands out
