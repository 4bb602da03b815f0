"""Key, mode and tempo of audio with Essentia, fast enough for whole datasets.

Key: Essentia's `KeyExtractor` (HPCP + key profiles) with the `shaath` profile, the best of
Essentia's profiles over all the development clips (both generators' development seeds; `edma`,
used before, scores as well on one generator and far lower on the other: bench/README.md).

Tempo: a spectral-flux onset curve of the 30 Hz-2.5 kHz band (kick, snare, bass, chords; not the
hi-hats), computed here at 22.05 kHz, feeds Essentia's `TempoTapDegara` beat tracker (the tracker
inside `RhythmExtractor2013(method="degara")`), several times cheaper than the extractor on
44.1 kHz audio. Beat trackers lock onto the wrong metrical level (62 BPM heard as 124, a 6/8 at
66 dotted quarters heard as 99), so the tracked tempo only proposes candidates:

- the levels of a metrical hierarchy built from the tracker's ticks (`metrical_ratios`): the
  tatum (the tracker's level split in 2 or 3, whichever midpoints or third points carry more
  onsets), then three groupings of 2 or 3 pulses each (whichever best phase stands out more),
  plus the tracker's own level;
- each scored by a conditional logit over nine features (`tempo_features` x `WEIGHTS`): a
  log-normal tempo prior (log2 tempo and its square), whether the level is the tracker's own or
  a factor 3 from it, the onset strength at its beats, the bass register's accent of the level
  three beats up, the full band's onsets per beat (squared log2: a beat holds one to a few
  onsets, hi-hats included, counted where the music is busiest), and the beat band's
  periodicity at half and 1.5 beats (a level whose off-beats repeat is too slow) and at 3 beats.

The weights were fitted on development clips only (bench/labels_tune.py; bench/README.md has the
sets and the held-out figures). A candidate's confidence (`TempoEstimate.candidates`) is its
probability x the regularity of the ticks x its pulse clarity (`pulse_clarity`: how far its
beats stand out of the onset curve); the labeling stage writes a tempo only at
`LabelSettings.min_bpm_confidence` or above.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

ANALYSIS_SR = 22050
# Onset curve: 1024-sample frames every 256 samples (86.13 frames/s, TempoTapDegara's rate).
FRAME = 1024
HOP = 256
ODF_RATE = ANALYSIS_SR / HOP
KEY_PROFILE = "shaath"
KEY_FRAME = 4096  # 0.19 s at 22.05 kHz: the resolution of the default 4096 at 44.1 kHz, x2
BEAT_BAND_HZ = (30.0, 2500.0)
LOW_BAND_HZ = (30.0, 250.0)
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
    # 0..1: regularity of the ticks x the chosen level's probability x its pulse clarity
    confidence: float
    tracked_bpm: float  # what the beat tracker said before the choice of metrical level
    octave: str  # "kept", or the ratio to the tracked tempo: "x1/2", "x2", "x2/3", ...
    # Every level considered, most probable first: (bpm, confidence), the first being `bpm`.
    candidates: tuple[tuple[float, float], ...] = ()


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


def _smoothed_max(curve: np.ndarray, radius: int = 2) -> np.ndarray:
    """Running maximum over +-radius frames: onsets a few ms off the grid still count."""
    padded = np.pad(curve, radius, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    return windows.max(axis=1)


def _grid(ticks: np.ndarray, step: float, phase: float) -> np.ndarray:
    """Times at tick positions phase, phase + step, ... (the tracker's ticks interpolated, so a
    grid follows the tracked tempo's drift)."""
    positions = np.arange(phase, ticks.size - 1 + 1e-9, step)
    return np.interp(positions, np.arange(ticks.size), ticks)


def _at(curve: np.ndarray, times: np.ndarray) -> np.ndarray:
    idx = np.round(times * ODF_RATE).astype(int)
    return curve[idx[(idx >= 0) & (idx < curve.size)]]


def _level(curve: np.ndarray, ticks: np.ndarray, step: float) -> tuple[float, float]:
    """(mean strength of `curve` on the best-phased grid of `step` tick intervals, its phase)."""
    phases = [float(p) for p in range(max(1, round(step)))] if step > 1 else [0.0]
    best, best_phase = -1.0, 0.0
    for phase in phases:
        values = _at(curve, _grid(ticks, step, phase))
        value = float(values.mean()) if values.size else 0.0
        if value > best:
            best, best_phase = value, phase
    return max(best, 0.0), best_phase


FEATURES = (
    "log2(bpm/120)",
    "log2(bpm/120)^2",
    "tracker's level",
    "a factor 3 from the tracker's level",
    "beat-band strength at the beats",
    "low-band accent of the level above (x1/3)",
    "log2(onsets per beat)^2 (full band, busiest windows)",
    "beat-band periodicity at half and 1.5 beats",
    "beat-band periodicity at 3 beats",
)
# Weights of the candidate scores (a conditional logit over the candidates of a clip), fitted
# by bench/labels_tune.py on the development clips only; bench/README.md tells how.
WEIGHTS = (-4.206, -1.908, 0.357, 1.296, 2.709, 1.181, -1.666, -0.787, -0.216)
EPS = 1e-3


def _log_ratio(a: float, b: float) -> float:
    return float(np.log((a + EPS) / (b + EPS)))


def _grouping(curve: np.ndarray, ticks: np.ndarray, step: float) -> int:
    """2 or 3: how the pulses of the grid of `step` tick intervals group into the next level up,
    whichever grouping's best phase stands out more from its other phases."""
    contrast = {}
    for group in (2, 3):
        means = []
        for phase in range(group):
            values = _at(curve, _grid(ticks, step * group, phase * step))
            means.append(float(values.mean()) if values.size else 0.0)
        contrast[group] = max(means) / max(float(np.mean(means)), 1e-9)
    return 2 if contrast[2] >= contrast[3] else 3


def metrical_ratios(curve: np.ndarray, ticks: np.ndarray) -> tuple[float, ...]:
    """Candidate levels as ratios to the tracked tempo: the tracker's own, and a metrical
    hierarchy built up from the tatum (the tracker's subdivision into 2 or 3, whichever
    midpoints or third points are stronger) by three groupings of 2 or 3 pulses."""
    mids = _at(curve, _grid(ticks, 1.0, 0.5))
    thirds = np.concatenate([_at(curve, _grid(ticks, 1.0, k / 3)) for k in (1, 2)])
    mid_strength = float(mids.mean()) if mids.size else 0.0
    third_strength = float(thirds.mean()) if thirds.size else 0.0
    ratio = 2.0 if mid_strength >= third_strength else 3.0
    ratios = [1.0, ratio]
    for _ in range(3):
        ratio /= _grouping(curve, ticks, 1.0 / ratio)
        ratios.append(ratio)
    return tuple(dict.fromkeys(round(r, 6) for r in ratios))


def onset_rate(curve: np.ndarray) -> float:
    """Onsets per second: peaks of `curve` above its mean + half its spread, 50 ms apart at
    least (the density of events, whose ratio to a candidate tempo is the subdivision)."""
    if curve.size < 3:
        return 0.0
    threshold = float(curve.mean() + 0.5 * curve.std())
    inner = curve[1:-1]
    peaks = np.flatnonzero((inner > curve[:-2]) & (inner >= curve[2:]) & (inner > threshold)) + 1
    kept, last, gap = 0, -(10**9), round(0.05 * ODF_RATE)
    for index in peaks:
        if index - last >= gap:
            kept, last = kept + 1, int(index)
    return kept / (curve.size / ODF_RATE)


RATE_WINDOW_SECONDS = 6.0


def active_onset_rate(curve: np.ndarray) -> float:
    """Onsets per second where the music is busiest: the 75th percentile of `onset_rate` over
    6 s windows (half overlapping), so a groove that enters halfway counts at its own density."""
    size = round(RATE_WINDOW_SECONDS * ODF_RATE)
    if curve.size <= size:
        return onset_rate(curve)
    rates = [onset_rate(curve[i : i + size]) for i in range(0, curve.size - size + 1, size // 2)]
    return float(np.percentile(rates, 75))


def _has_three(ratio: float) -> bool:
    frac = Fraction(ratio).limit_denominator(9)
    return frac.numerator % 3 == 0 or frac.denominator % 3 == 0


def autocorrelation(curve: np.ndarray) -> np.ndarray:
    """Autocorrelation of the mean-removed `curve`, lag 0 = 1, each lag divided by its overlap
    (unbiased), so lags of a few seconds read like short ones."""
    x = curve.astype(np.float64) - float(curve.mean())
    n = x.size
    spectrum = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    ac = ac / max(float(ac[0]), 1e-9)
    return ac * n / np.maximum(n - np.arange(n), 1)


def comb(ac: np.ndarray, bpm: float, multiples: tuple[float, ...]) -> float:
    """Mean autocorrelation at `multiples` of the beat period of `bpm` (each the best of +-1
    frame); lags beyond half the clip are left out."""
    period = 60.0 / bpm * ODF_RATE
    values = []
    for multiple in multiples:
        lag = round(multiple * period)
        if lag > 1 and lag + 1 < ac.size // 2:
            values.append(float(ac[lag - 1 : lag + 2].max()))
    return float(np.mean(values)) if values else 0.0


def tempo_features(curves: OnsetCurves, ticks: np.ndarray) -> list[tuple[float, float, np.ndarray]]:
    """(ratio, bpm, features) of every candidate level `ratio` x the tracked tempo in range.

    Strengths are read on grids laid on the tracker's ticks (so they follow its drift), each at
    its best phase, from onset curves normalised to their mean; periodicities from the beat
    band's autocorrelation; onsets per beat from the full band (hi-hats included).
    """
    tracked = 60.0 / float(np.median(np.diff(ticks)))
    beat = _smoothed_max(curves.beat / max(float(curves.beat.mean()), 1e-9))
    use_low = curves.low_energy >= MIN_LOW_ENERGY and float(curves.low.mean()) > 0
    low = _smoothed_max(curves.low / max(float(curves.low.mean()), 1e-9)) if use_low else None
    rate = active_onset_rate(curves.full)  # onsets per second
    ac = autocorrelation(curves.beat)
    out = []
    for ratio in metrical_ratios(beat, ticks):
        bpm = tracked * ratio
        if not MIN_BPM <= bpm <= MAX_BPM:
            continue
        step = 1.0 / ratio
        level, _ = _level(beat, ticks, step)
        low_up3 = 0.0
        if low is not None:
            low_level, _ = _level(low, ticks, step)
            low_up3 = _log_ratio(_level(low, ticks, 3 * step)[0], low_level)
        octave = float(np.log2(bpm / 120.0))
        feats = [
            octave,
            octave**2,
            1.0 if ratio == 1.0 else 0.0,
            1.0 if _has_three(ratio) else 0.0,
            float(np.log(level + EPS)),
            low_up3,
            float(np.log2(max(rate * 60.0 / bpm, 0.25))) ** 2,
            comb(ac, bpm, (0.5, 1.5)),
            comb(ac, bpm, (3.0,)),
        ]
        out.append((ratio, bpm, np.asarray(feats, dtype=np.float64)))
    return out


# Pulse clarity: the onset strength at a level's beats, in multiples of the onset curve's mean,
# at which the level counts as fully clear (the median over the development clips, 5.6x).
CLEAR_PULSE = 5.6
LEVEL_FEATURE = FEATURES.index("beat-band strength at the beats")


def pulse_clarity(features: np.ndarray) -> float:
    """0..1: log of the strength at the level's beats over log(CLEAR_PULSE), clipped."""
    return float(np.clip(features[LEVEL_FEATURE] / np.log(CLEAR_PULSE), 0.0, 1.0))


def tempo_candidates(
    curves: OnsetCurves, ticks: np.ndarray, weights: tuple[float, ...] = WEIGHTS
) -> list[tuple[float, float, float, float]]:
    """(ratio, bpm, probability, pulse clarity) of every candidate level, most probable first."""
    cands = tempo_features(curves, ticks)
    scores = np.array([float(np.dot(weights, f)) for _, _, f in cands])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    ranked = sorted(zip(cands, probs, strict=True), key=lambda cp: -cp[1])
    return [(ratio, bpm, float(p), pulse_clarity(f)) for (ratio, bpm, f), p in ranked]


def estimate_tempo(audio: np.ndarray) -> TempoEstimate | None:
    """Tempo of mono audio at ANALYSIS_SR, its metrical level chosen among the candidates;
    None when no beat is found."""
    import essentia.standard as es

    if audio.size < MIN_SECONDS * ANALYSIS_SR or not np.any(audio):
        return None
    curves = onset_curves(audio)
    ticks = np.asarray(es.TempoTapDegara(sampleRateODF=ODF_RATE)(curves.beat), dtype=np.float64)
    if ticks.size < 4:
        return None
    intervals = np.diff(ticks)
    tracked = 60.0 / float(np.median(intervals))
    ranked = tempo_candidates(curves, ticks)
    if not ranked:
        return None
    spread = float(np.std(intervals) / max(float(np.mean(intervals)), 1e-9))
    regularity = max(0.0, 1.0 - 4.0 * spread)
    ratio, bpm, prob, clarity = ranked[0]
    # The median interval is quantised to frames (~1 % at 90 BPM); the least-squares slope of
    # the ticks is not. Used for the written value when the two agree (a steady tempo).
    slope = float(np.polyfit(np.arange(ticks.size), ticks, 1)[0])
    if slope > 0 and abs(60.0 / slope - tracked) <= 0.02 * tracked:
        scale = (60.0 / slope) / tracked
        bpm *= scale
        ranked = [(r, b * scale, p, c) for r, b, p, c in ranked]
    octave = "kept" if ratio == 1.0 else f"x{Fraction(ratio).limit_denominator(3)}"
    candidates = tuple((round(b, 2), round(regularity * p * c, 4)) for _, b, p, c in ranked)
    return TempoEstimate(
        bpm=round(bpm, 2),
        confidence=round(regularity * prob * clarity, 4),
        tracked_bpm=round(tracked, 2),
        octave=octave,
        candidates=candidates,
    )
