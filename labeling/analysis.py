"""Key, mode and tempo of audio with Essentia, fast enough for whole datasets.

Key: Essentia's `KeyExtractor` (HPCP + key profiles) with the `edma` profile (Faraldo's profile
for electronic/popular music), which held up best of Essentia's profiles on pop-style
progressions that start away from the tonic, on both benchmark clip sets (bench/README.md).

Tempo: a spectral-flux onset curve of the 30 Hz-2.5 kHz band (kick, snare, bass, chords; not the
hi-hats), computed here at 22.05 kHz, feeds Essentia's `TempoTapDegara` beat tracker (the tracker
inside `RhythmExtractor2013(method="degara")`): several times cheaper than the extractor on
44.1 kHz audio, and the band keeps syncopated hi-hat and kick figures from pulling the tracker
to 4/3 of the tempo. Beat trackers still lock onto the wrong metrical level (62 BPM heard as
124, 174 as 87), so the tempo is then checked one octave down and up against the bass register
(`LOW_BAND_HZ`: kick drum and bass line, which mark beats rather than subdivisions):

- ticks that alternate strong/weak there are subdivisions: the tempo is halved;
- midpoints between ticks as strong as the ticks themselves are missed beats: it is doubled.

Without a bass register (solo piano above middle C, a string quartet) the tracker's tempo is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANALYSIS_SR = 22050
# Onset curve: 1024-sample frames every 256 samples (86.13 frames/s, TempoTapDegara's rate).
FRAME = 1024
HOP = 256
ODF_RATE = ANALYSIS_SR / HOP
KEY_PROFILE = "edma"
KEY_FRAME = 4096  # 0.19 s at 22.05 kHz: the resolution of the default 4096 at 44.1 kHz, x2
BEAT_BAND_HZ = (30.0, 2500.0)
LOW_BAND_HZ = (30.0, 250.0)
# Octave rules, set on the benchmark clips (bench/README.md gives the margins).
HALVE_ALTERNATION = 0.40  # |even - odd| / (even + odd) of low-band onset strength at the ticks
DOUBLE_MIDPOINT = 0.75  # low-band onset strength between ticks / at ticks
MIN_LOW_ENERGY = 0.05  # share of the energy below LOW_BAND_HZ[1] needed to use the low band
MIN_BPM, MAX_BPM = 40.0, 220.0
MIN_SECONDS = 3.0


@dataclass(frozen=True)
class KeyEstimate:
    key: str  # "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"
    scale: str  # "major" | "minor"
    strength: float  # Essentia's key strength (correlation with the profile), 0..1


@dataclass(frozen=True)
class TempoEstimate:
    bpm: float
    confidence: float  # 0..1: regularity of the beat grid x periodicity of the onset curve
    tracked_bpm: float  # what the beat tracker said before the octave check
    octave: str  # "kept" | "halved" | "doubled"


def load_mono(path: Path, sample_rate: int = ANALYSIS_SR) -> np.ndarray:
    """Decode `path` (any format soundfile reads) to mono float32 at `sample_rate`."""
    import soundfile as sf
    import soxr

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def to_analysis_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at ANALYSIS_SR from a (samples,) or (samples, channels) array."""
    import soxr

    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    if sample_rate != ANALYSIS_SR:
        mono = soxr.resample(mono, sample_rate, ANALYSIS_SR, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def estimate_key(audio: np.ndarray, profile: str = KEY_PROFILE) -> KeyEstimate | None:
    """Key and mode of mono audio at ANALYSIS_SR; None for silence or too-short audio."""
    import essentia.standard as es

    if audio.size < MIN_SECONDS * ANALYSIS_SR or not np.any(audio):
        return None
    extractor = es.KeyExtractor(
        profileType=profile,
        sampleRate=ANALYSIS_SR,
        frameSize=KEY_FRAME,
        hopSize=KEY_FRAME // 2,
    )
    key, scale, strength = extractor(audio)
    if not key or strength <= 0:
        return None
    return KeyEstimate(key=str(key), scale=str(scale), strength=round(float(strength), 4))


@dataclass(frozen=True)
class OnsetCurves:
    full: np.ndarray  # spectral flux over all bins, per frame
    beat: np.ndarray  # over BEAT_BAND_HZ
    low: np.ndarray  # over LOW_BAND_HZ
    low_energy: float  # share of the signal's energy in LOW_BAND_HZ


def onset_curves(audio: np.ndarray) -> OnsetCurves:
    """Half-wave-rectified log-magnitude spectral flux at ODF_RATE frames per second."""
    if audio.size < FRAME:
        audio = np.pad(audio, (0, FRAME - audio.size))
    frames = np.lib.stride_tricks.sliding_window_view(audio, FRAME)[::HOP]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(FRAME).astype(np.float32), axis=1))
    logmag = np.log1p(1000.0 * spectrum)
    diff = np.maximum(np.diff(logmag, axis=0, prepend=logmag[:1]), 0.0)
    freqs = np.fft.rfftfreq(FRAME, 1.0 / ANALYSIS_SR)

    def band(lo_hi: tuple[float, float]) -> np.ndarray:
        return (freqs >= lo_hi[0]) & (freqs < lo_hi[1])

    power = spectrum**2
    total = float(power.sum())
    low = band(LOW_BAND_HZ)
    return OnsetCurves(
        full=diff.sum(axis=1).astype(np.float32),
        beat=diff[:, band(BEAT_BAND_HZ)].sum(axis=1).astype(np.float32),
        low=diff[:, low].sum(axis=1).astype(np.float32),
        low_energy=float(power[:, low].sum()) / total if total > 0 else 0.0,
    )


def _strength_at(curve: np.ndarray, times: np.ndarray, radius: int = 3) -> np.ndarray:
    idx = np.round(times * ODF_RATE).astype(int)
    idx = idx[(idx >= 0) & (idx < curve.size)]
    return np.array([curve[max(0, i - radius) : i + radius + 1].max() for i in idx])


def _periodicity(curve: np.ndarray, bpm: float) -> float:
    """Normalised autocorrelation of the onset curve at the beat period (0..1)."""
    x = curve - curve.mean()
    denom = float(np.dot(x, x))
    lag = round(60.0 / bpm * ODF_RATE)
    if denom <= 0 or lag <= 0 or lag >= x.size:
        return 0.0
    best = max(float(np.dot(x[:-k], x[k:])) for k in (lag - 1, lag, lag + 1) if 0 < k < x.size)
    return max(0.0, min(1.0, best / denom))


def octave_features(curve: np.ndarray, ticks: np.ndarray) -> tuple[float, float]:
    """(alternation of the strengths at the ticks, midpoint/tick strength ratio) of `curve`."""
    strengths = _strength_at(curve, ticks)
    mids = _strength_at(curve, (ticks[:-1] + ticks[1:]) / 2.0)
    if strengths.size < 4 or mids.size < 2:
        return 0.0, 0.0
    even, odd = float(np.median(strengths[0::2])), float(np.median(strengths[1::2]))
    alternation = abs(even - odd) / max(even + odd, 1e-9)
    ratio = float(np.median(mids)) / max(float(np.median(strengths)), 1e-9)
    return alternation, ratio


def estimate_tempo(audio: np.ndarray) -> TempoEstimate | None:
    """Tempo of mono audio at ANALYSIS_SR, octave-checked; None when no beat is found."""
    import essentia.standard as es

    if audio.size < MIN_SECONDS * ANALYSIS_SR or not np.any(audio):
        return None
    curves = onset_curves(audio)
    ticks = np.asarray(es.TempoTapDegara(sampleRateODF=ODF_RATE)(curves.beat), dtype=np.float64)
    if ticks.size < 4:
        return None
    intervals = np.diff(ticks)
    tracked = 60.0 / float(np.median(intervals))
    bpm, octave = tracked, "kept"
    if curves.low_energy >= MIN_LOW_ENERGY:
        alternation, midpoint = octave_features(curves.low, ticks)
        if alternation > HALVE_ALTERNATION and tracked / 2 >= MIN_BPM:
            bpm, octave = tracked / 2, "halved"
        elif midpoint > DOUBLE_MIDPOINT and tracked * 2 <= MAX_BPM:
            bpm, octave = tracked * 2, "doubled"
    spread = float(np.std(intervals) / max(float(np.mean(intervals)), 1e-9))
    regularity = max(0.0, 1.0 - 4.0 * spread)
    confidence = round(regularity * (0.5 + 0.5 * _periodicity(curves.beat, bpm)), 4)
    return TempoEstimate(
        bpm=round(bpm, 2), confidence=confidence, tracked_bpm=round(tracked, 2), octave=octave
    )
