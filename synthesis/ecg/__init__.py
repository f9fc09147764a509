"""Simulated ECG with exact labels: single heartbeats, 30 s rhythm segments and activity-driven streams.

Beats are ECGSYN's Gaussian P, Q, R, S, T waves written in time (McSharry et al. 2003; the morphology of
``neurokit2.ecg_simulate(method="ecgsyn")``), scaled with the RR interval as ECGSYN scales them, with per-person
and per-beat variation and abnormal forms (:mod:`.waves`). Rhythms are R-peak trains (:mod:`.rhythm`): sinus
rhythm with heart-rate variability, atrial fibrillation, ectopic patterns; noise is baseline wander, powerline,
EMG, motion artefacts and bursts at a set SNR (:mod:`.noise`). Everything flows from a seed; arrays of signal
values are float32. See ``docs/biosignal.md``.
"""

from hcgym.synthesis.ecg.datasets import (
    BEAT_CLASSES,
    CINC2017_SHARES,
    BeatSet,
    RhythmSet,
    beat_dataset,
    rhythm_dataset,
)
from hcgym.synthesis.ecg.figures import plot_examples
from hcgym.synthesis.ecg.noise import MOTION_GAIN, NOISY_SNR_DB, NOISY_SNR_RANGE
from hcgym.synthesis.ecg.person import ABNORMAL_KINDS, ACTIVITY_HR, LEVELS, MORPH_KINDS, WAVES
from hcgym.synthesis.ecg.rhythm import (
    ACTION_ACTIVITY,
    DEFAULT_LEVEL,
    LEVEL_MOTION,
    OTHER_KINDS,
    RHYTHMS,
    RUN_SPEED,
    TAU_FALL_S,
    TAU_RISE_S,
    activity_from_timeline,
)
from hcgym.synthesis.ecg.stream import WINDOW_S, Beats, ECGSegment, ECGStream, ecg_stream

__all__ = [
    "ABNORMAL_KINDS", "ACTION_ACTIVITY", "ACTIVITY_HR", "BEAT_CLASSES", "CINC2017_SHARES", "DEFAULT_LEVEL",
    "LEVELS", "LEVEL_MOTION", "MORPH_KINDS", "MOTION_GAIN", "NOISY_SNR_DB", "NOISY_SNR_RANGE", "OTHER_KINDS",
    "RHYTHMS", "RUN_SPEED", "TAU_FALL_S", "TAU_RISE_S", "WAVES", "WINDOW_S", "BeatSet", "Beats", "ECGSegment", "ECGStream",
    "RhythmSet", "activity_from_timeline", "beat_dataset", "ecg_stream", "plot_examples", "rhythm_dataset",
]
