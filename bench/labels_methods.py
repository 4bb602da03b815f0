"""The key/BPM methods the benchmark compares, each `(path) -> (tonic, mode | None, bpm)`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

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


METHODS: dict[str, Method] = {
    "incumbent (librosa beat_track + chroma argmax)": incumbent,
    "Essentia defaults (KeyExtractor + RhythmExtractor2013)": essentia_defaults,
    "ours (labeling.analysis)": ours,
}
