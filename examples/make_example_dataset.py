"""Write the bundled example dataset: a small zip of synthesized music with captions.

Everything is generated here (additive synthesis of chords, a bass line and a click/kick
pattern), so the dataset carries no third-party rights: it is released with the project
(MIT). Layout, the way users' archives often look:

    example_dataset.zip
    ├── warm_pad_in_c.wav + warm_pad_in_c.txt
    ├── minor_groove.flac + minor_groove.txt
    └── album/
        └── bright_arpeggio.wav + bright_arpeggio.txt

    python examples/make_example_dataset.py OUT.zip [--seconds 40]
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
NOTE = {
    "C": 0,
    "C#": 1,
    "D": 2,
    "D#": 3,
    "E": 4,
    "F": 5,
    "F#": 6,
    "G": 7,
    "G#": 8,
    "A": 9,
    "A#": 10,
    "B": 11,
}


def midi_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def chord(root: str, minor: bool, octave: int = 4) -> list[float]:
    base = 12 * (octave + 1) + NOTE[root]
    third = 3 if minor else 4
    return [midi_hz(base), midi_hz(base + third), midi_hz(base + 7)]


def tone(freqs: list[float], seconds: float, sr: int, decay: float) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = np.exp(-t / decay) * (1 - np.exp(-t / 0.01))
    out = sum(np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t) for f in freqs)
    return (out * env / max(1, len(freqs))).astype(np.float32)


def piece(
    progression: list[tuple[str, bool]],
    bpm: float,
    seconds: float,
    seed: int,
    stereo: bool,
    kick: bool,
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    total = int(seconds * SR)
    out = np.zeros(total, dtype=np.float32)
    beat = 60.0 / bpm
    bar = 4 * beat
    n_bars = int(np.ceil(seconds / bar))
    for i in range(n_bars):
        root, minor = progression[i % len(progression)]
        start = int(i * bar * SR)
        seg = tone(chord(root, minor), bar, SR, decay=bar)
        seg += 0.6 * tone([chord(root, minor, octave=2)[0]], bar, SR, decay=beat)
        end = min(total, start + seg.size)
        out[start:end] += 0.4 * seg[: end - start]
        for b in range(4):
            onset = int((i * bar + b * beat) * SR)
            if onset >= total:
                break
            n = min(int(0.08 * SR), total - onset)
            t = np.arange(n) / SR
            hit = (
                np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.03)
                if kick
                else rng.standard_normal(n) * np.exp(-t / 0.01) * 0.3
            )
            out[onset : onset + n] += 0.5 * hit.astype(np.float32)
    out /= max(1e-6, float(np.max(np.abs(out)))) / 0.8
    if stereo:
        return np.stack([out, np.roll(out, 64) * 0.9], axis=1)
    return out[:, None]


TRACKS = [
    (
        "warm_pad_in_c.wav",
        [("C", False), ("A", True), ("F", False), ("G", False)],
        90,
        False,
        True,
        "warm ambient pad in C major with a soft kick, 90 bpm",
    ),
    (
        "minor_groove.flac",
        [("A", True), ("D", True), ("E", False), ("A", True)],
        110,
        True,
        True,
        "dark minor groove in A minor with bass and kick, 110 bpm",
    ),
    (
        "album/bright_arpeggio.wav",
        [("G", False), ("D", False), ("E", True), ("C", False)],
        128,
        True,
        False,
        "bright uplifting chords in G major with shaker, 128 bpm",
    ),
]


def write_dataset(out: Path, seconds: float = 40.0) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i, (name, prog, bpm, stereo, kick, caption) in enumerate(TRACKS):
            audio = piece(prog, bpm, seconds, seed=i, stereo=stereo, kick=kick)
            buffer = io.BytesIO()
            fmt = "FLAC" if name.endswith(".flac") else "WAV"
            sf.write(buffer, audio, SR, format=fmt, subtype="PCM_16")
            archive.writestr(name, buffer.getvalue())
            archive.writestr(str(Path(name).with_suffix(".txt")), caption + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    print(write_dataset(args.out, args.seconds))


if __name__ == "__main__":
    main()
