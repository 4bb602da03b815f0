"""Synthetic audio for the labeling tests: harmonic chords in known keys, drum grooves, and the
two kinds of audio the stand-in taggers are trained to tell apart (held notes, percussion)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
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


# Grooves: (steps per bar, steps per beat, {sound: steps}). "waltz" is 3/4; "sixeight" counts
# dotted quarters (six sixteenths a beat); "halftime" has the snare on 3 and bass on 1 and 3.
GROOVES: dict[str, tuple[int, int, dict[str, tuple[int, ...]]]] = {
    "rock": (16, 4, {"kick": (0, 8), "snare": (4, 12), "hat": tuple(range(0, 16, 2)),
                     "bass": (0, 4, 8, 12)}),
    "clicks": (16, 4, {"kick": (0, 4, 8, 12), "snare": (), "hat": (), "bass": ()}),
    "waltz": (12, 4, {"kick": (0,), "snare": (4, 8), "hat": tuple(range(0, 12, 2)),
                      "bass": (0,)}),
    "halftime": (16, 4, {"kick": (0, 10), "snare": (8,), "hat": tuple(range(0, 16, 2)),
                         "bass": (0, 8)}),
    "sixeight": (12, 6, {"kick": (0,), "snare": (6,), "hat": tuple(range(0, 12, 2)),
                         "bass": (0, 6)}),
}  # fmt: skip


def drums(bpm: float, seconds: float = 20.0, pattern: str = "rock", sr: int = SR) -> np.ndarray:
    """A kick/snare/hat groove with a bass (`GROOVES`) at `bpm` beats a minute."""
    rng = np.random.default_rng(0)
    steps_per_bar, steps_per_beat, steps = GROOVES[pattern]
    step = 60.0 / bpm / steps_per_beat
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    t = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-18 * t)
    snare = rng.standard_normal(t.size) * np.exp(-25 * t) * 0.6
    hat = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-80 * t) * 0.15
    bass = np.sin(2 * np.pi * 82.4 * t) * np.exp(-6 * t) * 0.5
    sounds = {"kick": kick, "snare": snare, "hat": hat, "bass": bass}
    bar = steps_per_bar * step
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


def held_notes(
    seed: int, seconds: float = 6.0, sr: int = SR, pitches: Sequence[int] = range(36, 73, 2)
) -> np.ndarray:
    """Low sustained tones: one to three held notes at a time (changing one to three times),
    each a few harmonics with a slow attack, a slight vibrato and at most a gentle decay."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = np.zeros(n)
    bounds = np.linspace(0, n, int(rng.integers(1, 4)) + 1).astype(int)
    for start, end in itertools.pairwise(bounds):
        span = t[: end - start]
        attack = np.minimum(1.0, span / rng.uniform(0.05, 0.4))
        envelope = attack * np.exp(-rng.uniform(0.0, 1.5) * span)
        for _ in range(int(rng.integers(1, 4))):
            f0 = 440.0 * 2 ** ((int(rng.choice(np.asarray(pitches))) - 69) / 12)
            vibrato = 1 + 0.003 * np.sin(2 * np.pi * rng.uniform(4.0, 6.0) * span)
            phase = 2 * np.pi * f0 * np.cumsum(vibrato) / sr
            tilt = rng.uniform(1.0, 2.0)
            note = sum(
                np.sin(k * phase) / k**tilt
                for k in range(1, int(rng.integers(2, 7)))
                if f0 * k < 0.45 * sr
            )
            out[start:end] += note * envelope
    return (rng.uniform(0.2, 0.6) * out / np.abs(out).max()).astype(np.float32)


def percussion(seed: int, seconds: float = 6.0, sr: int = SR) -> np.ndarray:
    """Bright noisy percussion: hats, snares and claps (noise bursts) on a 16-step grid at a
    random tempo, with a kick on some beats."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    step = 60.0 / rng.uniform(90.0, 170.0) / 4
    t = np.arange(int(0.3 * sr)) / sr
    hat = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-rng.uniform(40.0, 120.0) * t)
    snare = rng.standard_normal(t.size) * np.exp(-rng.uniform(15.0, 30.0) * t)
    clap = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-rng.uniform(25.0, 50.0) * t)
    kick = np.sin(2 * np.pi * rng.uniform(45.0, 65.0) * t) * np.exp(-rng.uniform(12.0, 25.0) * t)
    chances = {"hat": rng.uniform(0.5, 0.9), "snare": rng.uniform(0.1, 0.3),
               "clap": rng.uniform(0.0, 0.2), "kick": rng.uniform(0.0, 0.3)}  # fmt: skip
    sounds = {"hat": hat * 0.4, "snare": snare * 0.6, "clap": clap * 0.5, "kick": kick}
    for s in range(int(seconds / step) + 1):
        at = int(s * step * sr)
        for name, sound in sounds.items():
            if at < n and rng.random() < chances[name]:
                seg = sound[: n - at]
                out[at : at + seg.size] += seg
    return (rng.uniform(0.2, 0.6) * out / max(float(np.abs(out).max()), 1e-9)).astype(np.float32)
