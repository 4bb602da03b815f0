"""Synthetic audio for the labeling tests: harmonic chords in known keys, drum grooves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 22050
MAJOR = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR = (0, 2, 3, 5, 7, 8, 10)
PITCHES = {"C": 0, "C#": 1, "D": 2, "Eb": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "Ab": 8, "A": 9,
           "Bb": 10, "B": 11}  # fmt: skip


def tone(midi: int, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5) if f0 * k < sr / 2)
    return np.asarray(wave * np.exp(-2.5 * t), dtype=np.float32)


def progression(
    tonic: str, mode: str, degrees: tuple[int, ...], bars: int = 12, bar_seconds: float = 2.0
) -> np.ndarray:
    """Block chords (with bass) of scale `degrees`, one per bar; minor V takes the leading tone."""
    scale = MAJOR if mode == "major" else NATURAL_MINOR
    root = 48 + PITCHES[tonic]
    out = []
    for bar in range(bars):
        degree = degrees[bar % len(degrees)]
        notes = []
        for k in (0, 2, 4):
            octave, step = divmod(degree + k, 7)
            pitch = root + 12 * octave + scale[step]
            if mode == "minor" and degree == 4 and step == 6:
                pitch += 1
            notes.append(pitch + 12)
        chord = sum(tone(n, bar_seconds) for n in notes) + tone(notes[0] - 12, bar_seconds)
        out.append(chord)
    audio = np.concatenate(out)
    return (0.3 * audio / np.abs(audio).max()).astype(np.float32)


def drums(bpm: float, seconds: float = 20.0, pattern: str = "rock", sr: int = SR) -> np.ndarray:
    """Kick/snare/hat groove on a 16-step bar at `bpm` (quarter notes), plus a bass on beats."""
    rng = np.random.default_rng(0)
    step = 60.0 / bpm / 4
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    t = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-18 * t)
    snare = rng.standard_normal(t.size) * np.exp(-25 * t) * 0.6
    hat = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-80 * t) * 0.15
    bass = np.sin(2 * np.pi * 82.4 * t) * np.exp(-6 * t) * 0.5
    steps = {
        "rock": {
            "kick": (0, 8),
            "snare": (4, 12),
            "hat": tuple(range(0, 16, 2)),
            "bass": (0, 4, 8, 12),
        },
        "clicks": {"kick": (0, 4, 8, 12), "snare": (), "hat": (), "bass": ()},
    }[pattern]
    sounds = {"kick": kick, "snare": snare, "hat": hat, "bass": bass}
    bar = 16 * step
    for b in range(int(seconds / bar) + 1):
        for name, positions in steps.items():
            for s in positions:
                at = int((b * bar + s * step) * sr)
                if at < n:
                    seg = sounds[name][: n - at]
                    out[at : at + seg.size] += seg.astype(np.float32)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def write(path: Path, audio: np.ndarray, sr: int = SR, channels: int = 1) -> Path:
    import soundfile as sf

    data = np.stack([audio] * channels, axis=1) if channels > 1 else audio
    sf.write(path, data, sr)
    return path
