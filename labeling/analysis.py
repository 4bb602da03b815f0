"""Key, mode and tempo of audio with Essentia, fast enough for whole datasets.

Key (round 4): a scorer over the 24 candidate keys (a conditional logit, `key_features` x
`KEY_WEIGHTS`): the key Essentia's `KeyExtractor` picks with the `shaath` profile (before round 4
the whole rule) and with the `temperley` profile, the share of the clip's frames whose
best-matching triad is diatonic to the candidate, the candidate's raised seventh (minor keys:
the leading tone against the natural seventh), and the share of the full-band and of the bass
chroma outside its scale. Chroma (`key_chroma`) is the pitch-class amplitude of the spectral
peaks, 100 Hz-5 kHz, and 38-250 Hz from a quarter-rate copy. Features chosen and weights fitted
on development clips only (bench/labels_key_tune.py; bench/README.md has the held-out figures).

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
from functools import lru_cache
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


# Chroma for the key scorer: pitch-class energy of the spectral peaks, full band and bass.
CHROMA_FRAME = 8192  # 0.37 s at 22.05 kHz, 2.7 Hz bins: a semitone apart from 100 Hz up
CHROMA_HOP = 4096
CHROMA_BAND_HZ = (100.0, 5000.0)
BASS_SR = 5512.5  # the bass chroma is read at a quarter of ANALYSIS_SR, 1.35 Hz bins
BASS_FRAME = 4096
BASS_HOP = 1024
BASS_BAND_HZ = (38.0, 250.0)


@dataclass(frozen=True)
class KeyChroma:
    full: np.ndarray  # (frames, 12) pitch-class energy over CHROMA_BAND_HZ, C first
    bass: np.ndarray  # (frames, 12) over BASS_BAND_HZ, at the same frame times


@lru_cache(maxsize=4)
def _pitch_class_map(
    n_fft: int, sample_rate: float, band: tuple[float, float]
) -> tuple[int, int, np.ndarray]:
    """(first bin, end bin, (bins, 12)): each FFT bin in `band` shared between the two nearest
    pitch classes (cos^2 of its distance in semitones to each, within one semitone)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    inside = np.flatnonzero((freqs >= band[0]) & (freqs < band[1]))
    lo, hi = int(inside[0]), int(inside[-1]) + 1
    pitch = 12.0 * np.log2(freqs[lo:hi] / 440.0) + 69.0
    out = np.zeros((hi - lo, 12), dtype=np.float32)
    for pc in range(12):
        dist = np.abs(((pitch - pc + 6.0) % 12.0) - 6.0)
        out[:, pc] = np.where(dist < 1.0, np.cos(0.5 * np.pi * dist) ** 2, 0.0)
    return lo, hi, out


def _peak_chroma(
    audio: np.ndarray, n_fft: int, hop: int, sample_rate: float, band: tuple[float, float]
) -> np.ndarray:
    """(frames, 12) amplitude per pitch class of the spectral peaks (local maxima) in `band`."""
    import scipy.fft

    lo, hi, mapping = _pitch_class_map(n_fft, sample_rate, band)
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop]
    window = np.hanning(n_fft).astype(np.float32)
    spectrum = scipy.fft.rfft(frames * window, axis=1, workers=1)
    mag = np.abs(spectrum[:, lo - 1 : hi + 1])  # a bin either side for the peak test
    inner = mag[:, 1:-1]
    peaks = np.where((inner > mag[:, :-2]) & (inner >= mag[:, 2:]), inner, 0.0)
    return np.sqrt(peaks**2 @ mapping)


def key_chroma(audio: np.ndarray) -> KeyChroma:
    """Full-band and bass chroma of mono audio at ANALYSIS_SR, one row per CHROMA_HOP."""
    import soxr

    full = _peak_chroma(audio, CHROMA_FRAME, CHROMA_HOP, ANALYSIS_SR, CHROMA_BAND_HZ)
    low = soxr.resample(audio, ANALYSIS_SR, BASS_SR, quality="HQ")
    bass = _peak_chroma(low, BASS_FRAME, BASS_HOP, BASS_SR, BASS_BAND_HZ)
    n = min(full.shape[0], bass.shape[0])
    return KeyChroma(full=full[:n].astype(np.float32), bass=bass[:n].astype(np.float32))


PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_PITCH_CLASS = {name: i for i, name in enumerate(PITCH_CLASS_NAMES)} | {
    "Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "B#": 0, "Cb": 11, "E#": 5, "Fb": 4,
}  # fmt: skip


def key_index(key: str, scale: str) -> int:
    """Candidate index of a key: tonic pitch class, + 12 for minor."""
    return _PITCH_CLASS[key] + (12 if scale == "minor" else 0)


def key_mode(index: int) -> str:
    return "minor" if index >= 12 else "major"


def estimate_extractor_key(audio: np.ndarray, profile: str = KEY_PROFILE) -> KeyEstimate | None:
    """Essentia's `KeyExtractor` with `profile` (the rule before key round 4)."""
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


# The key scorer (key round 4): evidence for each of the 24 candidate keys (index = tonic + 12 x
# minor), scored by a conditional logit (softmax over the candidates). Features chosen by greedy
# forward selection from a pool of 32 (bench/labels_key_tune.py) on the development clips only,
# scored by leave-one-part-out MIREX accuracy; weights fitted by bench/labels_key_tune.py (L2
# 0.005 on standardised features) on all 576 development clips. bench/README.md has the figures.
KEY_FEATURES = (
    "shaath extractor's key",
    "diatonic chord share",
    "temperley extractor's key",
    "raised seventh (minor)",
    "non-scale share, full band",
    "non-scale share, bass",
)
KEY_WEIGHTS = (1.6962, 3.9298, 2.0029, 1.9478, -9.8280, -4.0118)
# Scales (steps from the tonic) of major and minor keys; minor: both sixths and sevenths.
SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10, 11))
# Triads that belong to a key, as (steps from the tonic, minor?): major I ii iii IV V vi; minor
# i III iv v V VI VII.
DIATONIC_CHORDS = (
    ((0, 0), (2, 1), (4, 1), (5, 0), (7, 0), (9, 1)),
    ((0, 1), (3, 0), (5, 1), (7, 1), (7, 0), (8, 0), (10, 0)),
)
CHORD_SMOOTH = 5  # frames (0.93 s) averaged before the triads are matched
# Triad templates, (12 pitch classes, 24 triads): 0-11 major on that root, 12-23 minor.
TRIADS = np.zeros((12, 24))
# Membership of the 24 keys: scale pitch classes (24, 12) and diatonic triads (24, 24).
IN_SCALE = np.zeros((24, 12))
DIATONIC = np.zeros((24, 24))
for _root in range(12):
    for _third, _offset in ((4, 0), (3, 12)):
        TRIADS[[_root, (_root + _third) % 12, (_root + 7) % 12], _root + _offset] = 1.0
    for _minor in (0, 1):
        for _step in SCALES[_minor]:
            IN_SCALE[_root + 12 * _minor, (_root + _step) % 12] = 1.0
        for _step, _chord_minor in DIATONIC_CHORDS[_minor]:
            DIATONIC[_root + 12 * _minor, (_root + _step) % 12 + 12 * _chord_minor] = 1.0
TRIADS /= np.sqrt(3.0)


def triad_matches(chroma: KeyChroma) -> tuple[np.ndarray, np.ndarray]:
    """(frames, 24) cosine of the smoothed full-band chroma with each major/minor triad, and which
    frames are voiced (not near silent)."""
    full = chroma.full.astype(np.float64)
    if full.shape[0] == 0:
        return np.zeros((0, 24)), np.zeros(0, dtype=bool)
    kernel = np.ones(CHORD_SMOOTH) / CHORD_SMOOTH
    smooth = np.stack([np.convolve(full[:, i], kernel, mode="same") for i in range(12)], axis=1)
    energy = np.linalg.norm(smooth, axis=1)
    match = (smooth @ TRIADS) / np.maximum(energy, 1e-12)[:, None]
    return match, energy >= 0.1 * max(float(np.median(energy)), 1e-12)


def chord_histogram(chroma: KeyChroma) -> np.ndarray:
    """(24,) share of the voiced frames whose best-matching triad is each triad."""
    match, voiced = triad_matches(chroma)
    if not voiced.any():
        return np.zeros(24)
    chords = np.argmax(match[voiced], axis=1)
    return np.bincount(chords, minlength=24)[:24] / chords.size


def key_features(chroma: KeyChroma, shaath: int, temperley: int) -> np.ndarray:
    """(24, len(KEY_FEATURES)) evidence for each candidate key; `shaath` and `temperley` are
    the key indices Essentia's `KeyExtractor` picks with those profiles (-1 for none)."""
    full = chroma.full.astype(np.float64).mean(axis=0)
    bass = chroma.bass.astype(np.float64).mean(axis=0)
    full_share = full / max(float(full.sum()), 1e-12)
    bass_share = bass / max(float(bass.sum()), 1e-12)
    tonics = np.arange(12)
    raised = np.zeros(24)
    natural, leading = full[(tonics + 10) % 12], full[(tonics + 11) % 12]
    raised[12:] = leading / np.maximum(natural + leading, 1e-12)
    candidates = np.arange(24)
    return np.stack(
        [
            (candidates == shaath).astype(np.float64),
            DIATONIC @ chord_histogram(chroma),
            (candidates == temperley).astype(np.float64),
            raised,
            1.0 - IN_SCALE @ full_share,
            1.0 - IN_SCALE @ bass_share,
        ],
        axis=1,
    )


def key_probabilities(features: np.ndarray, weights: tuple[float, ...] = KEY_WEIGHTS) -> np.ndarray:
    """(24,) softmax of the candidates' scores."""
    scores = features @ np.asarray(weights)
    probs = np.exp(scores - scores.max())
    return probs / probs.sum()


def estimate_key(audio: np.ndarray) -> KeyEstimate | None:
    """Key and mode of mono audio at ANALYSIS_SR, the most probable of the 24 candidates under
    the key scorer; None for silence or too-short audio. `strength` is the `shaath` extractor's
    (how clearly tonal the audio is, whatever key the scorer picks)."""
    shaath = estimate_extractor_key(audio, KEY_PROFILE)
    if shaath is None:
        return None
    temperley = estimate_extractor_key(audio, "temperley")
    features = key_features(
        key_chroma(audio),
        key_index(shaath.key, shaath.scale),
        key_index(temperley.key, temperley.scale) if temperley is not None else -1,
    )
    best = int(np.argmax(key_probabilities(features)))
    return KeyEstimate(
        key=PITCH_CLASS_NAMES[best % 12], scale=key_mode(best), strength=shaath.strength
    )


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
