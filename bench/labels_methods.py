"""The key/BPM methods the benchmark compares, each `(path) -> (tonic, mode | None, bpm)`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from labels_metrics import acc1

Estimate = tuple[str | None, str | None, float | None]
Method = Callable[[Path], Estimate]
CHROMA_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def incumbent(path: Path) -> Estimate:
    """The incumbent fine-tuner: librosa's beat tracker and the argmax of the mean chroma.

    It writes the tonic only (no mode); scored as written, i.e. read as the major key.
    """
    import librosa

    y, sr = librosa.load(str(path), sr=None, mono=True)
    tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr)
    tonic = CHROMA_NAMES[int(np.argmax(chroma.mean(axis=1)))]
    return tonic, None, float(np.atleast_1d(tempo)[0])


def essentia_defaults(path: Path) -> Estimate:
    """Essentia's KeyExtractor and RhythmExtractor2013 with every parameter at its default."""
    import essentia.standard as es

    audio = es.MonoLoader(filename=str(path), sampleRate=44100)()
    key, scale, _ = es.KeyExtractor()(audio)
    bpm = es.RhythmExtractor2013()(audio)[0]
    return str(key), str(scale), float(bpm)


# The octave rule before issue 13 (thresholds set on seed 7), kept here to be compared.
OLD_HALVE_ALTERNATION, OLD_DOUBLE_MIDPOINT = 0.40, 0.75


def _old_strength_at(curve: np.ndarray, times: np.ndarray, radius: int = 3) -> np.ndarray:
    from labeling.analysis import ODF_RATE

    idx = np.round(times * ODF_RATE).astype(int)
    idx = idx[(idx >= 0) & (idx < curve.size)]
    return np.array([curve[max(0, i - radius) : i + radius + 1].max() for i in idx])


def old_rule_tempo(audio: np.ndarray) -> float | None:
    """The previous `estimate_tempo`: halve when the bass register alternates strong/weak at the
    ticks, double when it is as strong between them."""
    import essentia.standard as es

    from labeling import analysis

    if audio.size < analysis.MIN_SECONDS * analysis.ANALYSIS_SR or not np.any(audio):
        return None
    curves = analysis.onset_curves(audio)
    odf = curves.beat
    ticks = np.asarray(es.TempoTapDegara(sampleRateODF=analysis.ODF_RATE)(odf), np.float64)
    if ticks.size < 4:
        return None
    tracked = 60.0 / float(np.median(np.diff(ticks)))
    if curves.low_energy < analysis.MIN_LOW_ENERGY:
        return tracked
    strengths = _old_strength_at(curves.low, ticks)
    mids = _old_strength_at(curves.low, (ticks[:-1] + ticks[1:]) / 2.0)
    if strengths.size < 4 or mids.size < 2:
        return tracked
    even, odd = float(np.median(strengths[0::2])), float(np.median(strengths[1::2]))
    alternation = abs(even - odd) / max(even + odd, 1e-9)
    midpoint = float(np.median(mids)) / max(float(np.median(strengths)), 1e-9)
    if alternation > OLD_HALVE_ALTERNATION and tracked / 2 >= analysis.MIN_BPM:
        return tracked / 2
    if midpoint > OLD_DOUBLE_MIDPOINT and tracked * 2 <= analysis.MAX_BPM:
        return tracked * 2
    return tracked


def old_rule(path: Path) -> Estimate:
    """labeling.analysis before issue 13: its key (`edma` profile), the old octave rule."""
    from labeling.analysis import estimate_extractor_key, load_mono

    audio = load_mono(path)
    key = estimate_extractor_key(audio, profile="edma")
    return (key.key if key else None, key.scale if key else None, old_rule_tempo(audio))


# The first round of issue 13 (rule v2: 17 fitted features, `edma` key profile), as committed.
ROUND1_COMMIT = "1ebe127a63a7aff9ab4fec5928e8ecccd0ebf831"
_ROUND1: list[Any] = []


def _round1_module() -> Any:
    """labeling/analysis.py as of ROUND1_COMMIT, read from the repository's history."""
    if not _ROUND1:
        import subprocess
        import sys
        import types

        root = Path(__file__).resolve().parent.parent
        source = subprocess.run(
            ["git", "-C", str(root), "show", f"{ROUND1_COMMIT}:labeling/analysis.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        module = types.ModuleType("labeling_analysis_round1")
        sys.modules[module.__name__] = module  # dataclasses look their module up
        exec(compile(source, "labeling_analysis_round1.py", "exec"), module.__dict__)
        _ROUND1.append(module)
    return _ROUND1[0]


def round1_rule(path: Path) -> Estimate:
    """The first round's rule (key and tempo), decode and resample included."""
    module = _round1_module()
    audio = module.load_mono(path)
    key = module.estimate_key(audio)
    tempo = module.estimate_tempo(audio)
    return (
        key.key if key else None,
        key.scale if key else None,
        tempo.bpm if tempo else None,
    )


def extractor_key_rule(path: Path) -> Estimate:
    """The rule before key round 4: Essentia's `KeyExtractor` (`shaath` profile) alone for the
    key, the current tempo rule."""
    from labeling.analysis import estimate_extractor_key, estimate_tempo, load_mono

    audio = load_mono(path)
    key = estimate_extractor_key(audio, profile="shaath")
    tempo = estimate_tempo(audio)
    return (
        key.key if key else None,
        key.scale if key else None,
        tempo.bpm if tempo else None,
    )


def tempo_round3_candidate(path: Path) -> Estimate:
    """Tempo round 3's candidate (not adopted; bench/labels_tempo3_select.py): the key and the
    decode of ours, the tempo level chosen with two harmonic-rhythm features added."""
    from labels_tempo3_select import candidate_tempo

    from labeling.analysis import estimate_key, load_mono

    audio = load_mono(path)
    key = estimate_key(audio)
    bpm = candidate_tempo(audio)
    return (key.key if key else None, key.scale if key else None, bpm)


def ours(path: Path) -> Estimate:
    """labeling.analysis: what the labeling stage runs (decode + resample included)."""
    from labeling.analysis import estimate_key, estimate_tempo, load_mono

    audio = load_mono(path)
    key = estimate_key(audio)
    tempo = estimate_tempo(audio)
    return (
        key.key if key else None,
        key.scale if key else None,
        tempo.bpm if tempo else None,
    )


def confident_tempo(path: Path) -> float | None:
    """Our tempo when its confidence clears the stage's threshold (what a description gets)."""
    from labeling.analysis import estimate_tempo, load_mono
    from labeling.stage import LabelSettings

    tempo = estimate_tempo(load_mono(path))
    if tempo is None or tempo.confidence < LabelSettings().min_bpm_confidence:
        return None
    return tempo.bpm


def written_tempi(clips: Iterable[tuple[float, Path]]) -> tuple[int, int]:
    """Of (true bpm, clip) pairs: how many get a tempo in their description, how many right."""
    written = right = 0
    for bpm, path in clips:
        sure = confident_tempo(path)
        written += sure is not None
        right += sure is not None and acc1(bpm, sure)
    return written, right


METHODS: dict[str, Method] = {
    "incumbent (librosa beat_track + chroma argmax)": incumbent,
    "Essentia defaults (KeyExtractor + RhythmExtractor2013)": essentia_defaults,
    "old rule (labeling.analysis before issue 13)": old_rule,
    "round-1 rule (issue 13 round 1, commit 1ebe127)": round1_rule,
    "before key round 4 (shaath KeyExtractor key, same tempo)": extractor_key_rule,
    "tempo round 3 candidate (harmonic rhythm; not adopted)": tempo_round3_candidate,
    "ours (labeling.analysis)": ours,
}
